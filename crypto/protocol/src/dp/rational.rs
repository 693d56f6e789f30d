//! Exact non-negative rationals for privacy parameters.
//!
//! Epsilon, rho, noise scales and budgets are kept as exact fractions so that
//! accounting never rounds: a budget of 1 at 0.4 per release allows exactly
//! two releases. Floating point appears only for display and for the
//! planner's search, and every conversion from a float states which way it
//! rounds.

use std::fmt;
use std::str::FromStr;

use num_bigint::{BigInt, BigUint};
use num_rational::Ratio;
use num_traits::{One, Signed, ToPrimitive, Zero};

use super::DpError;
use crate::codec::{CodecError, Reader, Writer};

/// A non-negative exact rational number.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rational(Box<Ratio<BigUint>>);

/// Largest byte length of a numerator or denominator in an encoding.
const MAX_RATIONAL_BYTES: usize = 64;

impl Rational {
    /// Wraps a ratio. The ratio is boxed so that a `Rational` is one pointer
    /// wide and errors carrying several of them stay small.
    fn wrap(r: Ratio<BigUint>) -> Self {
        Rational(Box::new(r))
    }

    /// Builds `num / den`. Panics if `den` is zero.
    pub fn new(num: u64, den: u64) -> Self {
        Rational::wrap(Ratio::new(num.into(), den.into()))
    }

    /// Zero.
    pub fn zero() -> Self {
        Rational::wrap(Ratio::zero())
    }

    /// The underlying ratio, as prio's samplers take it.
    pub fn as_ratio(&self) -> &Ratio<BigUint> {
        &self.0
    }

    /// Wraps a ratio.
    pub fn from_ratio(r: Ratio<BigUint>) -> Self {
        Rational::wrap(r)
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
        Rational::wrap(&*self.0 + &*other.0)
    }

    /// Difference, or `None` if it would be negative.
    pub fn checked_sub(&self, other: &Rational) -> Option<Rational> {
        (self.0 >= other.0).then(|| Rational::wrap(&*self.0 - &*other.0))
    }

    /// The integer `n`.
    pub fn from_integer(n: u128) -> Self {
        Rational::wrap(Ratio::from_integer(BigUint::from(n)))
    }

    /// The integer `n`, of any size.
    pub fn from_biguint(n: BigUint) -> Self {
        Rational::wrap(Ratio::from_integer(n))
    }

    /// Product.
    pub fn mul(&self, other: &Rational) -> Rational {
        Rational::wrap(&*self.0 * &*other.0)
    }

    /// Quotient, or `None` if `other` is zero.
    pub fn checked_div(&self, other: &Rational) -> Option<Rational> {
        (!other.is_zero()).then(|| Rational::wrap(&*self.0 / &*other.0))
    }

    /// Smallest integer `>= self`.
    pub fn ceil_integer(&self) -> BigUint {
        self.0.ceil().to_integer()
    }

    /// Smallest integer `m` with `m^2 >= self`, computed exactly.
    pub fn ceil_sqrt_integer(&self) -> BigUint {
        // m^2 is an integer, so m^2 >= x exactly when m^2 >= ceil(x).
        let c = self.ceil_integer();
        let m = c.sqrt();
        if &m * &m < c {
            m + 1u8
        } else {
            m
        }
    }

    /// Exact square root if both the reduced numerator and denominator are
    /// perfect squares.
    pub fn exact_sqrt(&self) -> Option<Rational> {
        let (n, d) = (self.0.numer(), self.0.denom());
        let (rn, rd) = (n.sqrt(), d.sqrt());
        (&rn * &rn == *n && &rd * &rd == *d).then(|| Rational::wrap(Ratio::new(rn, rd)))
    }

    /// A decimal with `significant` significant digits, rounded from the
    /// exact binary value of `x` in the direction `up` says: `m * 10^e` with
    /// `m` an integer of (about) `significant` digits. Errors on negative,
    /// zero-rounding or non-finite input.
    ///
    /// The exponent is estimated in floating point; if the estimate is off
    /// by one near a power of ten the result has one digit more or less, but
    /// the rounding direction is exact.
    pub fn from_f64_decimal(x: f64, significant: u32, up: bool) -> Result<Self, DpError> {
        let bad = || DpError::BadNumber(x.to_string());
        if !x.is_finite() || x <= 0.0 {
            return Err(bad());
        }
        let exact = Ratio::<BigInt>::from_float(x).ok_or_else(bad)?;
        let exponent = x.log10().floor() as i32 - (significant as i32 - 1);
        let ten = BigInt::from(10u8);
        let unit = if exponent >= 0 {
            Ratio::from_integer(ten.pow(exponent.unsigned_abs()))
        } else {
            Ratio::new(BigInt::one(), ten.pow(exponent.unsigned_abs()))
        };
        let m = &exact / &unit;
        let m = if up { m.ceil() } else { m.floor() };
        let value = m * unit;
        if !value.is_positive() {
            return Err(bad());
        }
        let (n, d) = value.into_raw();
        // Both are positive: `value` was checked just above.
        let n = n.to_biguint().ok_or_else(bad)?;
        let d = d.to_biguint().ok_or_else(bad)?;
        Ok(Rational::wrap(Ratio::new(n, d)))
    }

    /// The smallest integer `>= self`, saturating at `u128::MAX`.
    pub fn ceil_u128(&self) -> u128 {
        self.ceil_integer().to_u128().unwrap_or(u128::MAX)
    }

    /// True if the value is a whole number.
    pub fn is_integer(&self) -> bool {
        self.0.denom().is_one()
    }

    /// True if numerator and denominator fit the encoding's 64-byte cap, so
    /// that what is encoded can be decoded again.
    pub fn fits_encoding(&self) -> bool {
        let max_bits = 8 * MAX_RATIONAL_BYTES as u64;
        self.0.numer().bits() <= max_bits && self.0.denom().bits() <= max_bits
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
        Ok(Rational::wrap(Ratio::new(num, den)))
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
            return Ok(Rational::wrap(Ratio::new(n, d)));
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
        Ok(Rational::wrap(r))
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
    fn arithmetic_is_exact() {
        let third = Rational::new(1, 3);
        assert_eq!(third.mul(&Rational::from_integer(3)), Rational::new(1, 1));
        assert_eq!(
            Rational::new(1, 1).checked_div(&third),
            Some(Rational::from_integer(3))
        );
        assert_eq!(third.checked_div(&Rational::zero()), None);
        assert!(Rational::from_integer(7).is_integer());
        assert!(!third.is_integer());
    }

    #[test]
    fn square_roots_round_up() {
        assert_eq!(
            Rational::from_integer(16).ceil_sqrt_integer(),
            BigUint::from(4u8)
        );
        assert_eq!(
            Rational::from_integer(17).ceil_sqrt_integer(),
            BigUint::from(5u8)
        );
        assert_eq!(Rational::new(1, 2).ceil_sqrt_integer(), BigUint::from(1u8));
        assert_eq!(Rational::zero().ceil_sqrt_integer(), BigUint::from(0u8));
        assert_eq!(Rational::new(9, 4).exact_sqrt(), Some(Rational::new(3, 2)));
        assert_eq!(Rational::new(2, 1).exact_sqrt(), None);
    }

    #[test]
    fn decimal_rounding_goes_the_stated_way() {
        let down = Rational::from_f64_decimal(0.017_469_8, 3, false).unwrap();
        assert_eq!(down.to_string(), "0.0174");
        let up = Rational::from_f64_decimal(0.017_469_8, 3, true).unwrap();
        assert_eq!(up.to_string(), "0.0175");
        // 0.1 is not exactly representable; its binary value is slightly
        // above 0.1, so rounding up at 3 digits gives 0.101, down 0.1.
        assert_eq!(
            Rational::from_f64_decimal(0.1, 3, true)
                .unwrap()
                .to_string(),
            "0.101"
        );
        assert_eq!(
            Rational::from_f64_decimal(0.1, 3, false)
                .unwrap()
                .to_string(),
            "0.1"
        );
        assert_eq!(
            Rational::from_f64_decimal(12345.0, 2, true)
                .unwrap()
                .to_string(),
            "13000"
        );
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(Rational::from_f64_decimal(bad, 3, true).is_err());
        }
    }
}
