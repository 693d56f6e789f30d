//! A fixed tape of random bytes, replayed in order: the `randomness` of a
//! report test vector (`test-vectors/v1`, `docs/protocol.md` section 15).
//!
//! **For test vectors only.** A tape is not random: whoever knows it knows
//! every encryption exponent and proof mask of the report made from it, and
//! so its plaintext, and a tape used twice repeats them. [`Tape`] is private
//! to this crate; the only way to use one is
//! [`crate::Task::prepare_from_tape`], which checks a report against a
//! recorded vector. Production code uses [`crate::Task::prepare`] (the
//! operating system's generator).
//!
//! How the tape is read, so that an implementation in another language can
//! replay it:
//!
//! * `fill_bytes(buf)` (and `try_fill_bytes`) copies the next `buf.len()`
//!   bytes of the tape into `buf`, in order. This is the only way the
//!   client's code draws randomness (report ids, Paillier exponents and
//!   proof masks, TFHE-rs seeds).
//! * `next_u32` takes the next 4 bytes and reads them little-endian;
//!   `next_u64` takes the next 8 bytes, little-endian (as `rand_core`'s
//!   `next_u32_via_fill` and `next_u64_via_fill` do).
//!
//! A tape that runs out is an error, and so is a tape with bytes left over:
//! every byte of a vector's tape is accounted for. The generator cannot fail
//! in the middle of a draw (`RngCore` has no error to return there), so
//! once the tape is exhausted it hands out zero bytes, counts what was
//! asked for, and [`Tape::finish`] reports the shortfall. No client path
//! rejection-samples (Paillier exponents and masks are drawn as fixed-width
//! integers, TFHE-rs seeds as 16 bytes), so the zeros cannot make
//! preparation loop.

use rand::{CryptoRng, RngCore};

use crate::CoreError;

/// Replays a tape of bytes as a random number generator; see the module
/// docs.
#[derive(Debug)]
pub(crate) struct Tape<'a> {
    bytes: &'a [u8],
    /// Bytes asked for so far, including those past the end of the tape.
    drawn: usize,
}

impl<'a> Tape<'a> {
    /// A generator that hands out `bytes` in order.
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Tape { bytes, drawn: 0 }
    }

    /// Succeeds if exactly the whole tape was drawn.
    pub(crate) fn finish(self) -> Result<(), CoreError> {
        let len = self.bytes.len();
        match self.drawn.cmp(&len) {
            std::cmp::Ordering::Greater => Err(CoreError::TapeTooShort {
                len,
                needed: self.drawn,
            }),
            std::cmp::Ordering::Less => Err(CoreError::TapeNotUsedUp {
                len,
                used: self.drawn,
            }),
            std::cmp::Ordering::Equal => Ok(()),
        }
    }
}

impl RngCore for Tape<'_> {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }

    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }

    fn fill_bytes(&mut self, dest: &mut [u8]) {
        let start = self.drawn.min(self.bytes.len());
        let end = self.drawn.saturating_add(dest.len()).min(self.bytes.len());
        let available = &self.bytes[start..end];
        dest[..available.len()].copy_from_slice(available);
        dest[available.len()..].fill(0);
        self.drawn = self.drawn.saturating_add(dest.len());
    }

    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

/// Not random at all: the marker lets a tape stand in for the client's
/// cryptographic generator when a test vector is replayed, which is the
/// only use this crate makes of it (see the module docs).
impl CryptoRng for Tape<'_> {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_come_out_in_order_and_words_are_little_endian() {
        let bytes: Vec<u8> = (1..=15).collect();
        let mut tape = Tape::new(&bytes);
        let mut first = [0u8; 3];
        tape.fill_bytes(&mut first);
        assert_eq!(first, [1, 2, 3]);
        assert_eq!(tape.next_u32(), u32::from_le_bytes([4, 5, 6, 7]));
        assert_eq!(
            tape.next_u64(),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15])
        );
        tape.finish().unwrap();
    }

    #[test]
    fn a_short_tape_is_an_error_naming_what_was_needed() {
        let bytes = [7u8; 5];
        let mut tape = Tape::new(&bytes);
        let mut buf = [0xaa; 8];
        tape.fill_bytes(&mut buf);
        assert_eq!(buf, [7, 7, 7, 7, 7, 0, 0, 0]);
        tape.fill_bytes(&mut buf);
        match tape.finish() {
            Err(CoreError::TapeTooShort { len: 5, needed: 16 }) => {}
            other => panic!("expected TapeTooShort, got {other:?}"),
        }
    }

    #[test]
    fn bytes_left_over_are_an_error() {
        let bytes = [7u8; 5];
        let mut tape = Tape::new(&bytes);
        let _ = tape.next_u32();
        match tape.finish() {
            Err(CoreError::TapeNotUsedUp { len: 5, used: 4 }) => {}
            other => panic!("expected TapeNotUsedUp, got {other:?}"),
        }
        Tape::new(&[]).finish().unwrap();
    }
}
