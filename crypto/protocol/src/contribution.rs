//! A trustee's noise contribution to a pending release (docs/protocol.md
//! section 6.9): for a task whose trustees draw its DP noise, each of them
//! encrypts one share of noise per value under the task's key, packed in
//! the task's layout, and uploads it with its own token. The server
//! multiplies the shares into the release's encrypted sum and never sees
//! them in the clear.
//!
//! The file names the task, the batch and the trustee, so that a
//! contribution cannot be replayed into another release or passed off as
//! another trustee's.

use crate::aggregate::{MAX_CIPHERTEXTS, MAX_CIPHERTEXT_BYTES};
use crate::codec::{self, CodecError, FileKind, Reader, Writer};

/// See the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoiseContribution {
    /// The task.
    pub task_id: [u8; 32],
    /// The start of the release's batch interval, Unix seconds.
    pub batch_start: u64,
    /// The contributing trustee's index, 1-based, as in its key share.
    pub trustee: u16,
    /// The encrypted, packed noise shares, in the scheme's ciphertext
    /// encoding: as many as the release has ciphertexts.
    pub ciphertexts: Vec<Vec<u8>>,
}

impl NoiseContribution {
    /// The file encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        codec::write_header(&mut w, FileKind::NoiseContribution);
        w.bytes(&self.task_id);
        w.u64(self.batch_start).u16(self.trustee);
        w.count(self.ciphertexts.len());
        for c in &self.ciphertexts {
            w.var_bytes(c);
        }
        w.finish()
    }

    /// Decodes a contribution; the ciphertexts are checked against the key
    /// by the scheme. Trailing bytes and a trustee index of 0 are refused.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        codec::expect_header(&mut r, FileKind::NoiseContribution)?;
        let task_id = r.array("task id")?;
        let batch_start = r.u64("batch start")?;
        let trustee = r.u16("trustee")?;
        if trustee == 0 {
            return Err(CodecError::invalid(
                "trustee",
                "trustees are numbered from 1".to_string(),
            ));
        }
        let count = r.count(MAX_CIPHERTEXTS, "ciphertext count")?;
        let mut ciphertexts = Vec::with_capacity(count.min(1024));
        for _ in 0..count {
            ciphertexts.push(r.var_bytes(MAX_CIPHERTEXT_BYTES, "ciphertext")?.to_vec());
        }
        r.finish("noise contribution")?;
        Ok(NoiseContribution {
            task_id,
            batch_start,
            trustee,
            ciphertexts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_malformed_files() {
        let c = NoiseContribution {
            task_id: [9; 32],
            batch_start: 3600,
            trustee: 2,
            ciphertexts: vec![vec![1, 2, 3], vec![4]],
        };
        let bytes = c.to_bytes();
        assert_eq!(NoiseContribution::from_bytes(&bytes).unwrap(), c);
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(NoiseContribution::from_bytes(&trailing).is_err());
        for cut in 0..bytes.len() {
            assert!(
                NoiseContribution::from_bytes(&bytes[..cut]).is_err(),
                "{cut}"
            );
        }
        let zero = NoiseContribution { trustee: 0, ..c };
        assert!(NoiseContribution::from_bytes(&zero.to_bytes()).is_err());
    }
}
