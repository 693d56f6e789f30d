//! Differential privacy: mechanisms, exact rationals for privacy parameters.
//!
//! Noise is sampled exactly with prio's discrete Laplace and discrete Gaussian
//! samplers (integer arithmetic only, Canonne, Kamath and Steinke 2020); privacy
//! parameters are exact rationals so that budget accounting never rounds.

use std::fmt;
use std::str::FromStr;

use num_bigint::BigUint;
use num_rational::Ratio;
use num_traits::{ToPrimitive, Zero};
use thiserror::Error;

use crate::codec::{CodecError, Reader, Writer};

/// Errors from DP configuration.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpError {
    /// A number could not be parsed as a non-negative decimal or fraction.
    #[error("{0:?} is not a non-negative decimal number or fraction (examples: 0.5, 1/3, 2e-3)")]
    BadNumber(String),
    /// A mechanism string could not be parsed.
    #[error("unknown DP mechanism {0:?}: expected none, laplace:EPSILON, gaussian:RHO or gaussian-eps:EPSILON:DELTA")]
    BadMechanism(String),
    /// A parameter is out of its allowed range.
    #[error("{what} must be {requirement}, got {value}")]
    OutOfRange {
        /// Parameter name.
        what: &'static str,
        /// What is required.
        requirement: &'static str,
        /// The value given.
        value: String,
    },
}

/// A non-negative exact rational number.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rational(Ratio<BigUint>);

/// Largest byte length of a numerator or denominator in an encoding.
const MAX_RATIONAL_BYTES: usize = 64;

impl Rational {
    /// Builds `num / den`. Panics if `den` is zero.
    pub fn new(num: u64, den: u64) -> Self {
        Rational(Ratio::new(num.into(), den.into()))
    }

    /// Zero.
    pub fn zero() -> Self {
        Rational(Ratio::zero())
    }

    /// The underlying ratio, as prio's samplers take it.
    pub fn as_ratio(&self) -> &Ratio<BigUint> {
        &self.0
    }

    /// Wraps a ratio.
    pub fn from_ratio(r: Ratio<BigUint>) -> Self {
        Rational(r)
    }

    /// True if zero.
    pub fn is_zero(&self) -> bool {
        self.0.is_zero()
    }

    /// Nearest `f64`, for display and for planning only, never for accounting.
    pub fn to_f64(&self) -> f64 {
        let n = self.0.numer().to_f64().unwrap_or(f64::INFINITY);
        let d = self.0.denom().to_f64().unwrap_or(f64::INFINITY);
        n / d
    }

    /// A rational no larger than `x` that is within a relative 1e-12 of it.
    /// Used to turn a derived floating-point parameter (such as the rho of a
    /// `gaussian-eps` mechanism) into an exact one, rounding towards less
    /// privacy loss.
    pub fn from_f64_floor(x: f64) -> Result<Self, DpError> {
        if !x.is_finite() || x < 0.0 {
            return Err(DpError::BadNumber(x.to_string()));
        }
        let den: u64 = 1 << 52;
        let num = (x * den as f64).floor();
        if num > u64::MAX as f64 {
            return Err(DpError::BadNumber(x.to_string()));
        }
        Ok(Rational::new(num as u64, den))
    }

    /// Sum.
    pub fn add(&self, other: &Rational) -> Rational {
        Rational(&self.0 + &other.0)
    }

    /// Difference, or `None` if it would be negative.
    pub fn checked_sub(&self, other: &Rational) -> Option<Rational> {
        (self.0 >= other.0).then(|| Rational(&self.0 - &other.0))
    }

    /// Appends the encoding: numerator then denominator, big-endian bytes.
    pub fn encode(&self, w: &mut Writer) {
        w.var_bytes(&self.0.numer().to_bytes_be());
        w.var_bytes(&self.0.denom().to_bytes_be());
    }

    /// Decodes and checks the denominator is non-zero.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let num = BigUint::from_bytes_be(r.var_bytes(MAX_RATIONAL_BYTES, "numerator")?);
        let den = BigUint::from_bytes_be(r.var_bytes(MAX_RATIONAL_BYTES, "denominator")?);
        if den.is_zero() {
            return Err(CodecError::invalid("rational", "zero denominator"));
        }
        Ok(Rational(Ratio::new(num, den)))
    }
}

impl fmt::Debug for Rational {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for Rational {
    /// Exact decimal if the denominator has only the factors 2 and 5 (every
    /// value typed as a decimal), otherwise `num/den`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (num, den) = (self.0.numer(), self.0.denom());
        let mut d = den.clone();
        let (two, five) = (BigUint::from(2u8), BigUint::from(5u8));
        let (mut twos, mut fives) = (0u32, 0u32);
        while (&d % &two).is_zero() {
            d /= &two;
            twos += 1;
        }
        while (&d % &five).is_zero() {
            d /= &five;
            fives += 1;
        }
        if d != BigUint::from(1u8) || twos.max(fives) > 30 {
            return write!(f, "{num}/{den}");
        }
        let digits = twos.max(fives);
        let scaled = num * BigUint::from(10u8).pow(digits) / den;
        let s = scaled.to_string();
        if digits == 0 {
            return write!(f, "{s}");
        }
        let digits = digits as usize;
        let s = format!("{s:0>width$}", width = digits + 1);
        let (int, frac) = s.split_at(s.len() - digits);
        write!(f, "{int}.{}", frac.trim_end_matches('0'))
    }
}

impl FromStr for Rational {
    type Err = DpError;

    /// Parses `3`, `0.25`, `2.5e-3`, `1E2` or `1/3` exactly.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DpError::BadNumber(s.to_string());
        let s = s.trim();
        if let Some((n, d)) = s.split_once('/') {
            let n: BigUint = n.trim().parse().map_err(|_| bad())?;
            let d: BigUint = d.trim().parse().map_err(|_| bad())?;
            if d.is_zero() {
                return Err(bad());
            }
            return Ok(Rational(Ratio::new(n, d)));
        }
        let (mantissa, exp) = match s.find(['e', 'E']) {
            Some(i) => (&s[..i], s[i + 1..].parse::<i32>().map_err(|_| bad())?),
            None => (s, 0),
        };
        let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
            || !(-300..=300).contains(&exp)
        {
            return Err(bad());
        }
        let digits: BigUint = format!("{int}{frac}").parse().map_err(|_| bad())?;
        let exp = exp - frac.len() as i32;
        let ten = BigUint::from(10u8);
        let r = if exp >= 0 {
            Ratio::from_integer(digits * ten.pow(exp as u32))
        } else {
            Ratio::new(digits, ten.pow(exp.unsigned_abs()))
        };
        Ok(Rational(r))
    }
}

/// The noise a task's releases carry.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DpMechanism {
    /// No noise: the release is the exact sum.
    None,
    /// Pure epsilon-DP: discrete Laplace noise of scale `sensitivity_l1 / epsilon`
    /// on every value, independently.
    Laplace {
        /// Epsilon spent by one release.
        epsilon: Rational,
    },
    /// rho-zCDP: discrete Gaussian noise with variance
    /// `sensitivity_l2^2 / (2 rho)` on every value, independently.
    Gaussian {
        /// Rho spent by one release.
        rho: Rational,
    },
}

impl DpMechanism {
    /// Appends the canonical encoding.
    pub fn encode(&self, w: &mut Writer) {
        match self {
            DpMechanism::None => {
                w.u8(0);
            }
            DpMechanism::Laplace { epsilon } => {
                w.u8(1);
                epsilon.encode(w);
            }
            DpMechanism::Gaussian { rho } => {
                w.u8(2);
                rho.encode(w);
            }
        }
    }

    /// Decodes the canonical encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        let m = match r.u8("DP mechanism")? {
            0 => DpMechanism::None,
            1 => DpMechanism::Laplace {
                epsilon: Rational::decode(r)?,
            },
            2 => DpMechanism::Gaussian {
                rho: Rational::decode(r)?,
            },
            t => {
                return Err(CodecError::invalid(
                    "DP mechanism",
                    format!("unknown mechanism tag {t}"),
                ))
            }
        };
        m.check().map_err(|e| CodecError::invalid("DP mechanism", e.to_string()))?;
        Ok(m)
    }

    /// Checks the parameters are positive.
    pub fn check(&self) -> Result<(), DpError> {
        let positive = |what, v: &Rational| {
            if v.is_zero() {
                Err(DpError::OutOfRange {
                    what,
                    requirement: "greater than zero",
                    value: v.to_string(),
                })
            } else {
                Ok(())
            }
        };
        match self {
            DpMechanism::None => Ok(()),
            DpMechanism::Laplace { epsilon } => positive("epsilon", epsilon),
            DpMechanism::Gaussian { rho } => positive("rho", rho),
        }
    }
}

impl fmt::Display for DpMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpMechanism::None => write!(f, "none"),
            DpMechanism::Laplace { epsilon } => write!(f, "laplace:{epsilon}"),
            DpMechanism::Gaussian { rho } => write!(f, "gaussian:{rho}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rationals_parse_exactly() {
        let r: Rational = "0.4".parse().unwrap();
        assert_eq!(r, Rational::new(2, 5));
        assert_eq!(r.to_string(), "0.4");
        assert_eq!("2.5e-3".parse::<Rational>().unwrap(), Rational::new(1, 400));
        assert_eq!("1/3".parse::<Rational>().unwrap().to_string(), "1/3");
        assert_eq!("3".parse::<Rational>().unwrap().to_string(), "3");
        assert_eq!("1E2".parse::<Rational>().unwrap(), Rational::new(100, 1));
        assert_eq!(".5".parse::<Rational>().unwrap(), Rational::new(1, 2));
        for bad in ["", ".", "-1", "abc", "1/0", "1e999", "0x10"] {
            assert!(bad.parse::<Rational>().is_err(), "{bad}");
        }
        let sum = r.add(&r).add(&r);
        assert!(sum > Rational::new(1, 1));
        assert_eq!(Rational::new(1, 1).checked_sub(&sum), None);
    }

    #[test]
    fn mechanism_encoding() {
        for m in [
            DpMechanism::None,
            DpMechanism::Laplace {
                epsilon: Rational::new(2, 5),
            },
            DpMechanism::Gaussian {
                rho: Rational::new(1, 8),
            },
        ] {
            let mut w = Writer::new();
            m.encode(&mut w);
            let bytes = w.finish();
            let mut r = Reader::new(&bytes);
            assert_eq!(DpMechanism::decode(&mut r).unwrap(), m);
            r.finish("mechanism").unwrap();
        }
        let mut w = Writer::new();
        DpMechanism::Laplace {
            epsilon: Rational::zero(),
        }
        .encode(&mut w);
        assert!(DpMechanism::decode(&mut Reader::new(&w.finish())).is_err());
    }
}

/// The noise distribution of one value of a release.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Noise {
    /// No noise.
    None,
    /// Discrete Laplace with P(x) proportional to exp(-|x| / scale).
    DiscreteLaplace {
        /// The scale.
        scale: Rational,
    },
    /// Discrete Gaussian with P(x) proportional to exp(-x^2 / (2 sigma^2)).
    DiscreteGaussian {
        /// The standard deviation parameter.
        sigma: Rational,
    },
}

impl Noise {
    /// The noise a release of `measurement` needs under `dp`, for the
    /// add-or-remove-one-report neighbouring relation.
    pub fn for_measurement(measurement: &crate::Measurement, dp: &DpMechanism) -> Result<Noise, DpError> {
        dp.check()?;
        Ok(match dp {
            DpMechanism::None => Noise::None,
            DpMechanism::Laplace { epsilon } => {
                let l1 = Ratio::from_integer(BigUint::from(measurement.max_l1_norm()));
                Noise::DiscreteLaplace {
                    scale: Rational(l1 / epsilon.as_ratio()),
                }
            }
            DpMechanism::Gaussian { rho } => {
                // sigma^2 = l2^2 / (2 rho); take a rational sigma at or above
                // the square root (more noise is always safe).
                let var = Ratio::from_integer(BigUint::from(measurement.max_l2_norm_squared()))
                    / (rho.as_ratio() * BigUint::from(2u8));
                let den = BigUint::from(1u64 << 32);
                let scaled = (var * &den * &den).ceil().to_integer();
                let mut root = scaled.sqrt();
                if &root * &root < scaled {
                    root += 1u8;
                }
                Noise::DiscreteGaussian {
                    sigma: Rational(Ratio::new(root, den)),
                }
            }
        })
    }

    /// A bound t with P(|X| > t) < 2^-log2_failure for one value.
    ///
    /// Discrete Laplace: P(|X| > t) <= 2 exp(-(t+1)/scale), so t = scale *
    /// (log2_failure + 1) * ln 2 suffices. Discrete Gaussian: it is
    /// sub-Gaussian with variance proxy sigma^2 (Canonne, Kamath and Steinke
    /// 2020), so P(|X| > t) <= 2 exp(-t^2 / (2 sigma^2)) and t = sigma *
    /// sqrt(2 (log2_failure + 1) ln 2) suffices. Both are rounded up.
    pub fn tail_bound(&self, log2_failure: u32) -> u128 {
        let ln2_upper = Ratio::new(BigUint::from(6_931_472u32), BigUint::from(10_000_000u32));
        let k = Ratio::from_integer(BigUint::from(log2_failure + 1)) * ln2_upper;
        let to_u128 = |r: Ratio<BigUint>| r.ceil().to_integer().to_u128().unwrap_or(u128::MAX);
        match self {
            Noise::None => 0,
            Noise::DiscreteLaplace { scale } => to_u128(scale.as_ratio() * k),
            Noise::DiscreteGaussian { sigma } => {
                // t^2 = 2 k sigma^2; take the integer square root, rounded up.
                let t2 = (sigma.as_ratio() * sigma.as_ratio() * k * BigUint::from(2u8)).ceil().to_integer();
                let mut t = t2.sqrt();
                if &t * &t < t2 {
                    t += 1u8;
                }
                t.to_u128().unwrap_or(u128::MAX)
            }
        }
    }

    /// Draws `len` independent values with prio's exact samplers.
    pub fn sample<R: rand::RngCore + rand::CryptoRng + ?Sized>(&self, len: usize, rng: &mut R) -> Vec<i128> {
        use prio::dp::distributions::{DiscreteGaussian, DiscreteLaplace};
        use rand::distributions::Distribution;
        let to_i128 = |x: num_bigint::BigInt| x.to_i128().unwrap_or(if x.sign() == num_bigint::Sign::Minus { i128::MIN } else { i128::MAX });
        match self {
            Noise::None => vec![0; len],
            Noise::DiscreteLaplace { scale } => {
                // The scale is positive by construction.
                let d = DiscreteLaplace::new(scale.as_ratio().clone()).expect("positive scale");
                (0..len).map(|_| to_i128(d.sample(&mut *rng))).collect()
            }
            Noise::DiscreteGaussian { sigma } => {
                let d = DiscreteGaussian::new(sigma.as_ratio().clone()).expect("positive sigma");
                (0..len).map(|_| to_i128(d.sample(&mut *rng))).collect()
            }
        }
    }
}

impl FromStr for DpMechanism {
    type Err = DpError;

    /// Parses `none`, `laplace:EPSILON` or `gaussian:RHO`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || DpError::BadMechanism(s.to_string());
        let m = match s.trim().split(':').collect::<Vec<_>>().as_slice() {
            ["none"] => DpMechanism::None,
            ["laplace", eps] => DpMechanism::Laplace { epsilon: eps.parse()? },
            ["gaussian", rho] => DpMechanism::Gaussian { rho: rho.parse()? },
            _ => return Err(bad()),
        };
        m.check()?;
        Ok(m)
    }
}
