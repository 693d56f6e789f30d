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

use crate::codec::{CodecError, Reader, Writer};

/// Media type of an encoded [`Report`].
pub const REPORT_MEDIA_TYPE: &str = "application/vnd.hetally.report";

/// Media type of an aggregate file.
pub const AGGREGATE_MEDIA_TYPE: &str = "application/vnd.hetally.aggregate";

/// Header of a release response carrying the batch's exact report count
/// (tasks whose relation publishes it: replace-one).
pub const REPORT_COUNT_HEADER: &str = "Hetally-Report-Count";

/// Header of a release response carrying the batch's report count as
/// released with DP noise (add-remove tasks, which never publish the exact
/// count).
pub const NOISY_REPORT_COUNT_HEADER: &str = "Hetally-Noisy-Report-Count";

/// Version byte of the report encoding.
const REPORT_VERSION: u8 = 1;

/// Largest payload any backend may use; backends set tighter limits.
pub const MAX_REPORT_PAYLOAD: usize = 16 << 20;

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
}
