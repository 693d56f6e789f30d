//! The Fiat–Shamir transcript: SHA-256 over a domain tag and a sequence of
//! labelled, length-prefixed fields.
//!
//! Every field is written as `u32 label length || label || u64 value length
//! || value`, so no two different sequences of fields hash the same input
//! (the encoding is injective), and a field can never be read as part of its
//! neighbour.

use sha2::{Digest, Sha256};

use crate::arith::Int;

/// See the module docs.
pub(super) struct Transcript {
    hash: Sha256,
}

impl Transcript {
    /// A transcript for one protocol, named by `domain`.
    pub(super) fn new(domain: &[u8]) -> Self {
        let mut t = Transcript {
            hash: Sha256::new(),
        };
        t.append(b"domain", domain);
        t
    }

    /// Appends one labelled field.
    pub(super) fn append(&mut self, label: &[u8], value: &[u8]) {
        // Labels are short constants and values are capped far below 4 GiB
        // by the payload limits, so neither length overflows its prefix.
        self.hash.update((label.len() as u32).to_be_bytes());
        self.hash.update(label);
        self.hash.update((value.len() as u64).to_be_bytes());
        self.hash.update(value);
    }

    /// Appends a `u64` field.
    pub(super) fn append_u64(&mut self, label: &[u8], value: u64) {
        self.append(label, &value.to_be_bytes());
    }

    /// Ends the transcript: the challenge is the first `bytes` bytes of the
    /// digest, read as a big-endian integer (`bytes` is at most 32).
    pub(super) fn challenge<B: Int>(self, bytes: usize) -> B {
        let digest = self.hash.finalize();
        B::from_be_bytes(&digest[..bytes.min(digest.len())])
    }
}

#[cfg(test)]
mod tests {
    use num_bigint::BigInt;

    use super::*;

    #[test]
    fn fields_are_not_ambiguous() {
        let mut a = Transcript::new(b"d");
        a.append(b"x", b"ab");
        a.append(b"x", b"c");
        let mut b = Transcript::new(b"d");
        b.append(b"x", b"a");
        b.append(b"x", b"bc");
        assert_ne!(a.challenge::<BigInt>(16), b.challenge::<BigInt>(16));
        let mut c = Transcript::new(b"d");
        c.append(b"x", b"ab");
        let mut d = Transcript::new(b"e");
        d.append(b"x", b"ab");
        assert_ne!(c.challenge::<BigInt>(16), d.challenge::<BigInt>(16));
    }
}
