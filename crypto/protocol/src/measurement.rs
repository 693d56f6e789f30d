//! What a task measures: the measurement types shared by every backend.
//!
//! A measurement is a vector of non-negative integers with known bounds. The
//! same four types exist on every backend (Paillier, TFHE, Prio3) and mean the
//! same thing, so a task can move between backends without changing what it
//! measures:
//!
//! | type | one report is | each value in |
//! |---|---|---|
//! | `count` | one value | `0..=1` |
//! | `sum:BITS` | one value | `0..=2^BITS-1` |
//! | `histogram:BUCKETS` | one-hot vector of `BUCKETS` values | `0..=1`, exactly one 1 |
//! | `sumvec:LENGTH:BITS` | `LENGTH` values | `0..=2^BITS-1` |
//!
//! The aggregate of a batch is the element-wise sum of its reports.

use std::fmt;
use std::str::FromStr;

use rand::Rng;
use thiserror::Error;

use crate::codec::{CodecError, Reader, Writer};

/// Largest `BITS` for `sum` and `sumvec`. Values are `u64`; 62 bits leave
/// room for a batch's sum and DP noise in an `i128` after decryption.
pub const MAX_BITS: u32 = 62;

/// Largest number of histogram buckets or vector elements.
pub const MAX_LENGTH: u32 = 65_536;

/// Errors from parsing or validating measurements.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum MeasurementError {
    /// The type string could not be parsed.
    #[error("unknown measurement type {0:?}: expected count, sum:BITS, histogram:BUCKETS or sumvec:LENGTH:BITS")]
    UnknownType(String),
    /// A parameter is out of range.
    #[error("measurement {what} is {value}, but must be between {min} and {max}")]
    ParameterOutOfRange {
        /// Parameter name.
        what: &'static str,
        /// Value given.
        value: u64,
        /// Smallest accepted.
        min: u64,
        /// Largest accepted.
        max: u64,
    },
    /// A value given for a report does not fit the type.
    #[error("invalid value for a {measurement} measurement: {reason}")]
    InvalidValue {
        /// The measurement type.
        measurement: String,
        /// What was wrong.
        reason: String,
    },
}

/// A measurement type; see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Measurement {
    /// A 0/1 counter.
    Count,
    /// A bounded integer in `0..=2^bits-1`.
    Sum {
        /// Bit width of each value.
        bits: u32,
    },
    /// One of `buckets` buckets.
    Histogram {
        /// Number of buckets.
        buckets: u32,
    },
    /// A vector of `length` bounded integers.
    SumVec {
        /// Number of elements.
        length: u32,
        /// Bit width of each element.
        bits: u32,
    },
}

fn check_range(
    what: &'static str,
    value: u64,
    min: u64,
    max: u64,
) -> Result<u32, MeasurementError> {
    if value < min || value > max {
        return Err(MeasurementError::ParameterOutOfRange {
            what,
            value,
            min,
            max,
        });
    }
    // Every max passed in is at most MAX_LENGTH, which fits in u32.
    Ok(value as u32)
}

impl Measurement {
    /// Builds a measurement type, checking its parameters.
    pub fn new_sum(bits: u32) -> Result<Self, MeasurementError> {
        let bits = check_range("bits", bits.into(), 1, MAX_BITS.into())?;
        Ok(Measurement::Sum { bits })
    }

    /// Builds a histogram type, checking its parameters.
    pub fn new_histogram(buckets: u32) -> Result<Self, MeasurementError> {
        let buckets = check_range("buckets", buckets.into(), 2, MAX_LENGTH.into())?;
        Ok(Measurement::Histogram { buckets })
    }

    /// Builds a sumvec type, checking its parameters.
    pub fn new_sumvec(length: u32, bits: u32) -> Result<Self, MeasurementError> {
        let length = check_range("length", length.into(), 1, MAX_LENGTH.into())?;
        let bits = check_range("bits", bits.into(), 1, MAX_BITS.into())?;
        Ok(Measurement::SumVec { length, bits })
    }

    /// Number of values in one report (and in the aggregate).
    pub fn len(&self) -> usize {
        match *self {
            Measurement::Count | Measurement::Sum { .. } => 1,
            Measurement::Histogram { buckets } => buckets as usize,
            Measurement::SumVec { length, .. } => length as usize,
        }
    }

    /// Always false: every type has at least one value. Present for clippy's
    /// `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Bit width of one value.
    pub fn value_bits(&self) -> u32 {
        match *self {
            Measurement::Count | Measurement::Histogram { .. } => 1,
            Measurement::Sum { bits } | Measurement::SumVec { bits, .. } => bits,
        }
    }

    /// Largest value one element of one report may take.
    pub fn max_value(&self) -> u64 {
        (1u64 << self.value_bits()) - 1
    }

    /// True for histograms, whose reports have exactly one element set to 1.
    pub fn is_one_hot(&self) -> bool {
        matches!(self, Measurement::Histogram { .. })
    }

    /// Checks that `values` is a valid report for this type.
    pub fn validate(&self, values: &[u64]) -> Result<(), MeasurementError> {
        let invalid = |reason: String| MeasurementError::InvalidValue {
            measurement: self.to_string(),
            reason,
        };
        if values.len() != self.len() {
            return Err(invalid(format!(
                "expected {} values, got {}",
                self.len(),
                values.len()
            )));
        }
        let max = self.max_value();
        if let Some((i, v)) = values.iter().enumerate().find(|(_, v)| **v > max) {
            return Err(invalid(format!("value {v} at position {i} exceeds {max}")));
        }
        if self.is_one_hot() {
            let ones = values.iter().filter(|v| **v == 1).count();
            if ones != 1 {
                return Err(invalid(format!(
                    "a histogram report must have exactly one bucket set, found {ones}"
                )));
            }
        }
        Ok(())
    }

    /// Parses a value as a user types it: `0`/`1` for count, a number for
    /// sum, a bucket index for histogram, comma-separated numbers for sumvec.
    pub fn parse_value(&self, text: &str) -> Result<Vec<u64>, MeasurementError> {
        let invalid = |reason: String| MeasurementError::InvalidValue {
            measurement: self.to_string(),
            reason,
        };
        let number = |s: &str| -> Result<u64, MeasurementError> {
            s.trim()
                .parse::<u64>()
                .map_err(|_| invalid(format!("{s:?} is not a non-negative integer")))
        };
        let values = match self {
            Measurement::Count | Measurement::Sum { .. } => vec![number(text)?],
            Measurement::Histogram { buckets } => {
                let bucket = number(text)?;
                if bucket >= u64::from(*buckets) {
                    return Err(invalid(format!(
                        "bucket {bucket} is out of range: buckets are numbered 0 to {}",
                        buckets - 1
                    )));
                }
                let mut v = vec![0; *buckets as usize];
                v[bucket as usize] = 1;
                v
            }
            Measurement::SumVec { .. } => text.split(',').map(number).collect::<Result<_, _>>()?,
        };
        self.validate(&values)?;
        Ok(values)
    }

    /// Draws a uniformly random valid report (for simulation and tests).
    pub fn random_value<R: Rng + ?Sized>(&self, rng: &mut R) -> Vec<u64> {
        match *self {
            Measurement::Histogram { buckets } => {
                let mut v = vec![0; buckets as usize];
                v[rng.gen_range(0..buckets as usize)] = 1;
                v
            }
            _ => {
                let max = self.max_value();
                (0..self.len()).map(|_| rng.gen_range(0..=max)).collect()
            }
        }
    }

    /// Appends the canonical binary encoding.
    pub fn encode(&self, w: &mut Writer) {
        match *self {
            Measurement::Count => {
                w.u8(1);
            }
            Measurement::Sum { bits } => {
                w.u8(2).u32(bits);
            }
            Measurement::Histogram { buckets } => {
                w.u8(3).u32(buckets);
            }
            Measurement::SumVec { length, bits } => {
                w.u8(4).u32(length).u32(bits);
            }
        }
    }

    /// Decodes the canonical binary encoding, validating parameters.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let bad = |e: MeasurementError| CodecError::invalid("measurement", e.to_string());
        match r.u8("measurement type")? {
            1 => Ok(Measurement::Count),
            2 => Measurement::new_sum(r.u32("bits")?).map_err(bad),
            3 => Measurement::new_histogram(r.u32("buckets")?).map_err(bad),
            4 => {
                let length = r.u32("length")?;
                let bits = r.u32("bits")?;
                Measurement::new_sumvec(length, bits).map_err(bad)
            }
            t => Err(CodecError::invalid(
                "measurement",
                format!("unknown measurement tag {t}"),
            )),
        }
    }
}

impl fmt::Display for Measurement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Measurement::Count => write!(f, "count"),
            Measurement::Sum { bits } => write!(f, "sum:{bits}"),
            Measurement::Histogram { buckets } => write!(f, "histogram:{buckets}"),
            Measurement::SumVec { length, bits } => write!(f, "sumvec:{length}:{bits}"),
        }
    }
}

impl FromStr for Measurement {
    type Err = MeasurementError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || MeasurementError::UnknownType(s.to_string());
        let parts: Vec<&str> = s.trim().split(':').collect();
        let num = |p: &str| p.parse::<u32>().map_err(|_| unknown());
        match parts.as_slice() {
            ["count"] => Ok(Measurement::Count),
            ["sum", bits] => Measurement::new_sum(num(bits)?),
            ["histogram", buckets] => Measurement::new_histogram(num(buckets)?),
            ["sumvec", length, bits] => Measurement::new_sumvec(num(length)?, num(bits)?),
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn parse_display_round_trip() {
        for s in ["count", "sum:8", "histogram:11", "sumvec:4:8"] {
            let m: Measurement = s.parse().unwrap();
            assert_eq!(m.to_string(), s);
            let mut w = Writer::new();
            m.encode(&mut w);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes);
            assert_eq!(Measurement::decode(&mut r).unwrap(), m);
            r.finish("measurement").unwrap();
        }
    }

    #[test]
    fn rejects_bad_types() {
        for s in [
            "",
            "counts",
            "sum",
            "sum:0",
            "sum:63",
            "histogram:1",
            "sumvec:0:8",
            "sum:x",
            "histogram:70000",
        ] {
            assert!(s.parse::<Measurement>().is_err(), "{s} should not parse");
        }
    }

    #[test]
    fn values() {
        let h: Measurement = "histogram:4".parse().unwrap();
        assert_eq!(h.parse_value("2").unwrap(), vec![0, 0, 1, 0]);
        assert!(h.parse_value("4").is_err());
        assert!(h.validate(&[1, 1, 0, 0]).is_err());
        assert!(h.validate(&[0, 0, 0, 0]).is_err());
        let v: Measurement = "sumvec:3:4".parse().unwrap();
        assert_eq!(v.parse_value("1, 2,15").unwrap(), vec![1, 2, 15]);
        assert!(v.parse_value("1,2,16").is_err());
        assert!(v.parse_value("1,2").is_err());
        let c = Measurement::Count;
        assert!(c.parse_value("2").is_err());
        assert!(c.parse_value("-1").is_err());
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        for m in [c, h, v, Measurement::new_sum(8).unwrap()] {
            for _ in 0..100 {
                m.validate(&m.random_value(&mut rng)).unwrap();
            }
        }
    }
}
