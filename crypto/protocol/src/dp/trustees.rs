//! Noise drawn by trustees instead of the server (docs/threshold.md,
//! "Distributed noise").
//!
//! A task whose key is a threshold key may state that its DP noise comes
//! from the trustees: `contributors` distinct trustees each encrypt one
//! share of noise per value and send it to the pending release, and the
//! server adds none of its own. Each share is calibrated so that the shares
//! of any `honest` of them already give the task's guarantee
//! (`hetally_dp::Noise::for_trustees`); the shares of the others only add
//! more noise, which cannot weaken it. What holds, then, holds under the
//! assumption that at least `honest` of the `contributors` trustees whose
//! shares a release carries drew them as specified and told no one.

use std::fmt;
use std::str::FromStr;

use crate::codec::{CodecError, Reader, Writer};

/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TrusteeNoise {
    /// How many distinct trustees contribute noise to every release.
    pub contributors: u8,
    /// How many of them the guarantee assumes honest (at least 1, at most
    /// `contributors`).
    pub honest: u8,
}

impl TrusteeNoise {
    /// Checks `1 <= honest <= contributors`.
    pub fn check(&self) -> Result<(), String> {
        if self.honest == 0 || self.honest > self.contributors {
            return Err(format!(
                "trustee noise needs 1 <= honest <= contributors, got {} honest of {} \
                 contributors",
                self.honest, self.contributors
            ));
        }
        Ok(())
    }

    /// Appends the canonical encoding: the two bytes.
    pub fn encode(&self, w: &mut Writer) {
        w.u8(self.contributors).u8(self.honest);
    }

    /// Reads and checks the canonical encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let t = TrusteeNoise {
            contributors: r.u8("noise contributors")?,
            honest: r.u8("honest noise contributors")?,
        };
        t.check()
            .map_err(|e| CodecError::invalid("trustee noise", e))?;
        Ok(t)
    }

    /// The assumption the guarantee rests on, in words.
    pub fn assumption(&self) -> String {
        let verb = if self.honest == 1 { "is" } else { "are" };
        format!(
            "at least {} of the {} trustees contributing noise to a release {verb} honest",
            self.honest, self.contributors
        )
    }
}

impl fmt::Display for TrusteeNoise {
    /// `3/1`: contributors, then honest (the form [`FromStr`] reads).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.contributors, self.honest)
    }
}

impl FromStr for TrusteeNoise {
    type Err = String;

    /// `CONTRIBUTORS` (honest 1) or `CONTRIBUTORS/HONEST`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            format!(
                "{s:?} is not a trustee-noise setting: write CONTRIBUTORS or \
                 CONTRIBUTORS/HONEST, for example 3 or 3/2"
            )
        };
        let (c, h) = match s.split_once('/') {
            Some((c, h)) => (c, h),
            None => (s, "1"),
        };
        let t = TrusteeNoise {
            contributors: c.trim().parse().map_err(|_| bad())?,
            honest: h.trim().parse().map_err(|_| bad())?,
        };
        t.check()?;
        Ok(t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_checks_and_round_trips() {
        let t: TrusteeNoise = "3".parse().unwrap();
        assert_eq!((t.contributors, t.honest), (3, 1));
        let t: TrusteeNoise = "5/2".parse().unwrap();
        assert_eq!(t.to_string(), "5/2");
        let mut w = Writer::new();
        t.encode(&mut w);
        let bytes = w.finish();
        assert_eq!(bytes, [5, 2]);
        assert_eq!(TrusteeNoise::decode(&mut Reader::new(&bytes)).unwrap(), t);
        for bad in ["0", "2/3", "3/0", "x", "", "300"] {
            assert!(bad.parse::<TrusteeNoise>().is_err(), "{bad}");
        }
        assert!(TrusteeNoise::decode(&mut Reader::new(&[2, 3])).is_err());
        assert!(TrusteeNoise::decode(&mut Reader::new(&[2, 0])).is_err());
    }
}
