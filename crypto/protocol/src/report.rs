//! The hetally report: what a client uploads for one measurement.
//!
//! ```text
//! version   u8      = 1
//! report id [u8;16] random, chosen by the client; replay protection
//! time      u64     Unix seconds, rounded down to the task's time precision
//! payload   u32 length + bytes: the backend's encrypted measurement
//! ```
//!
//! It travels as the body of `PUT /tasks/{task_id}/reports` with media type
//! [`REPORT_MEDIA_TYPE`]. (DAP-09 reports go to the DAP routes under
//! `/dap/`, with DAP's own media type.)

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use rand::{CryptoRng, RngCore};
use thiserror::Error;

use crate::codec::{CodecError, Reader, Writer};

/// Media type of an encoded [`Report`].
pub const REPORT_MEDIA_TYPE: &str = "application/vnd.hetally.report";

/// Media type of an aggregate file.
pub const AGGREGATE_MEDIA_TYPE: &str = "application/vnd.hetally.aggregate";

/// Media type of a trustee's noise contribution (docs/protocol.md
/// section 6.9).
pub const NOISE_CONTRIBUTION_MEDIA_TYPE: &str = "application/vnd.hetally.noise-contribution";

/// Header of a release response carrying the batch's exact report count
/// (tasks whose relation publishes it: replace-one).
pub const REPORT_COUNT_HEADER: &str = "Hetally-Report-Count";

/// Header of a release response carrying the batch's report count as
/// released with DP noise (add-remove tasks, which never publish the exact
/// count).
pub const NOISY_REPORT_COUNT_HEADER: &str = "Hetally-Noisy-Report-Count";

/// Version byte of the report encoding.
pub const REPORT_VERSION: u8 = 1;

/// Largest payload any backend may use; backends set tighter limits.
pub const MAX_REPORT_PAYLOAD: usize = 16 << 20;

/// Bytes of the envelope around the payload: version, report id, time and
/// the payload's length prefix.
pub const REPORT_ENVELOPE_LEN: usize = 1 + 16 + 8 + 4;

/// Most bytes a payload may run over the task's largest payload and still
/// be decoded ([`payload_cap`]).
pub const PAYLOAD_SLACK: usize = 64 << 10;

/// The payload cap a server decodes an upload with, for a task whose
/// largest payload is `max_payload_len` bytes: that plus the smaller of
/// itself and [`PAYLOAD_SLACK`] (64 KiB), and never over
/// [`MAX_REPORT_PAYLOAD`].
///
/// A payload a little over the layout's largest is still decoded, so that
/// the scheme says what is wrong with it (a ciphertext too many is
/// `wrongCiphertextCount`, not `payloadTooLarge`), while the bytes the
/// server buffers before anything is authenticated stay within twice the
/// largest valid report, and within 64 KiB of it for large reports.
pub fn payload_cap(max_payload_len: usize) -> usize {
    max_payload_len
        .saturating_add(max_payload_len.min(PAYLOAD_SLACK))
        .min(MAX_REPORT_PAYLOAD)
}

/// The largest upload body a server accepts for a task whose largest
/// payload is `max_payload_len` bytes: the envelope around a payload of
/// [`payload_cap`] bytes. Longer bodies are refused before they are read
/// (`payloadTooLarge`).
pub fn max_report_len(max_payload_len: usize) -> usize {
    REPORT_ENVELOPE_LEN + payload_cap(max_payload_len)
}

/// Why a report envelope does not decode, said in report terms: the view
/// of a [`CodecError`] from [`Report::from_bytes`] that a server answers
/// with (`invalidMessage`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReportError {
    /// The version byte is not one this build reads.
    #[error("report version {found} is not supported (this server reads report version {REPORT_VERSION}); upgrade the client or send version {REPORT_VERSION} reports")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
    },
    /// The body ends inside a field.
    #[error("report is truncated: its {what} needs {needed} bytes but only {available} remain (the envelope is version, 16-byte report id, 8-byte time, then the payload with a 4-byte length)")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes it needs.
        needed: usize,
        /// Bytes left.
        available: usize,
    },
    /// The payload's length prefix is over the task's cap.
    #[error("report payload is {len} bytes long, over the limit of {max} bytes for this task")]
    PayloadTooLong {
        /// The length the prefix states.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// Bytes follow the payload.
    #[error("report has {count} trailing byte{} after its payload; the payload's length prefix must cover all of it", if *.count == 1 { "" } else { "s" })]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// Any other decoding failure.
    #[error("report does not decode: {0}")]
    Other(CodecError),
}

impl From<CodecError> for ReportError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::UnsupportedVersion { found } => ReportError::UnsupportedVersion { found },
            CodecError::Truncated {
                what,
                needed,
                available,
            } => ReportError::Truncated {
                // The reader names the fields "report version", "report
                // id", ...: the message says "its version", "its id".
                what: what.strip_prefix("report ").unwrap_or(what),
                needed,
                available,
            },
            CodecError::TooLong { len, max, .. } => ReportError::PayloadTooLong { len, max },
            CodecError::TrailingBytes { count, .. } => ReportError::TrailingBytes { count },
            other => ReportError::Other(other),
        }
    }
}

/// A 16-byte report id, shown as base64url without padding.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportId(pub [u8; 16]);

impl ReportId {
    /// A fresh random id.
    pub fn random<R: RngCore + CryptoRng + ?Sized>(rng: &mut R) -> Self {
        let mut id = [0u8; 16];
        rng.fill_bytes(&mut id);
        ReportId(id)
    }
}

impl fmt::Display for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for ReportId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ReportId({self})")
    }
}

impl FromStr for ReportId {
    type Err = CodecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || CodecError::invalid("report id", "expected 22 characters of base64url");
        let bytes = URL_SAFE_NO_PAD.decode(s).map_err(|_| bad())?;
        Ok(ReportId(bytes.try_into().map_err(|_| bad())?))
    }
}

/// One uploaded report; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Random id chosen by the client.
    pub id: ReportId,
    /// Unix seconds, rounded down to the task's time precision.
    pub time: u64,
    /// The backend's encrypted measurement.
    pub payload: Vec<u8>,
}

impl Report {
    /// The wire encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(REPORT_VERSION)
            .bytes(&self.id.0)
            .u64(self.time)
            .var_bytes(&self.payload);
        w.finish()
    }

    /// Decodes a report whose payload is at most `max_payload` bytes.
    /// A server passes [`payload_cap`] of the task's largest payload, and
    /// reads the error in report terms with [`ReportError::from`].
    pub fn from_bytes(bytes: &[u8], max_payload: usize) -> Result<Self, CodecError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("report version")?;
        if version != REPORT_VERSION {
            return Err(CodecError::UnsupportedVersion { found: version });
        }
        let id = ReportId(r.array("report id")?);
        let time = r.u64("report time")?;
        let payload = r
            .var_bytes(max_payload.min(MAX_REPORT_PAYLOAD), "report payload")?
            .to_vec();
        r.finish("report")?;
        Ok(Report { id, time, payload })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejections() {
        let report = Report {
            id: ReportId([7; 16]),
            time: 1_700_000_000,
            payload: vec![1, 2, 3],
        };
        let bytes = report.to_bytes();
        assert_eq!(Report::from_bytes(&bytes, 3).unwrap(), report);
        assert!(matches!(
            Report::from_bytes(&bytes, 2),
            Err(CodecError::TooLong { .. })
        ));
        assert!(matches!(
            Report::from_bytes(&bytes[..bytes.len() - 1], 3),
            Err(CodecError::Truncated { .. })
        ));
        let mut long = bytes.clone();
        long.push(9);
        assert!(matches!(
            Report::from_bytes(&long, 3),
            Err(CodecError::TrailingBytes { .. })
        ));
        let mut v2 = bytes;
        v2[0] = 2;
        assert!(matches!(
            Report::from_bytes(&v2, 3),
            Err(CodecError::UnsupportedVersion { found: 2 })
        ));
        let id = ReportId([200; 16]);
        assert_eq!(id.to_string().parse::<ReportId>().unwrap(), id);
    }

    #[test]
    fn errors_are_said_in_report_terms() {
        let report = Report {
            id: ReportId([7; 16]),
            time: 60,
            payload: vec![1, 2, 3],
        };
        let bytes = report.to_bytes();
        let say = |bytes: &[u8], max| {
            ReportError::from(Report::from_bytes(bytes, max).unwrap_err()).to_string()
        };
        let mut v2 = bytes.clone();
        v2[0] = 2;
        let text = say(&v2, 3);
        assert!(
            text.starts_with(
                "report version 2 is not supported (this server reads report version 1)"
            ),
            "{text}"
        );
        assert!(!text.contains("format version"), "{text}");
        let text = say(&bytes[..20], 3);
        assert!(
            text.starts_with("report is truncated: its time needs 8 bytes but only 3 remain"),
            "{text}"
        );
        assert!(say(&[], 3).starts_with("report is truncated: its version"));
        let mut long = bytes.clone();
        long.extend_from_slice(&[0, 0]);
        assert!(say(&long, 3).starts_with("report has 2 trailing bytes after its payload"));
        long.pop();
        assert!(say(&long, 3).starts_with("report has 1 trailing byte after"));
        assert_eq!(
            say(&bytes, 2),
            "report payload is 3 bytes long, over the limit of 2 bytes for this task"
        );
    }

    #[test]
    fn the_cap_leaves_room_for_a_ciphertext_too_many() {
        // A count report of a 2048-bit Paillier task: 4 + 512 bytes.
        assert_eq!(payload_cap(516), 1032);
        assert_eq!(max_report_len(516), 29 + 1032);
        // Large payloads get 64 KiB more, and nothing passes 16 MiB.
        assert_eq!(payload_cap(1 << 20), (1 << 20) + (64 << 10));
        assert_eq!(payload_cap(MAX_REPORT_PAYLOAD), MAX_REPORT_PAYLOAD);
        assert_eq!(payload_cap(usize::MAX), MAX_REPORT_PAYLOAD);
    }
}
