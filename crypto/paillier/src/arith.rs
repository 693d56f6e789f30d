//! The big-integer arithmetic Paillier needs, behind one trait, with two
//! implementations:
//!
//! * [`num_bigint::BigInt`], pure Rust: what the client core uses, so that
//!   an app builds with no C toolchain and cross-compiles to phones;
//! * [`rug::Integer`] (GMP, feature `gmp`): what the server and the keytool
//!   use, about twice as fast per multiplication (`BENCHMARKS.md`, bench
//!   `bigint`).
//!
//! Everything above this module is written once, generically, so the two
//! backends compute the same values: given the same random bytes, they
//! produce byte-for-byte the same ciphertexts and proofs (tested in
//! `tests/backends.rs`).
//!
//! Values are signed. Unless a method says otherwise, modular operations
//! take operands already reduced into `[0, m)` and return values there.

use std::fmt;

use num_bigint::{BigInt, Sign};
use num_integer::Integer as _;
use num_traits::{One, Signed, ToPrimitive, Zero};

/// A signed big integer; see the module docs.
pub trait Int: Clone + Eq + Ord + Send + Sync + fmt::Debug + 'static {
    /// 0.
    fn zero() -> Self;
    /// `v`.
    fn from_u64(v: u64) -> Self;
    /// `v`.
    fn from_i128(v: i128) -> Self;
    /// The non-negative integer whose big-endian bytes are `bytes`.
    fn from_be_bytes(bytes: &[u8]) -> Self;
    /// Big-endian bytes of `self >= 0`, left-padded with zeros to `len`.
    /// `self` must fit.
    fn to_be_bytes_padded(&self, len: usize) -> Vec<u8>;
    /// Little-endian bytes of `|self|` (no padding; empty for 0).
    fn to_le_bytes(&self) -> Vec<u8>;
    /// Number of significant bits of `|self|` (0 for 0).
    fn bits(&self) -> u32;
    /// `self < 0`.
    fn is_negative(&self) -> bool;
    /// `self == 0`.
    fn is_zero(&self) -> bool;
    /// `self` is odd.
    fn is_odd(&self) -> bool;
    /// `self == v`.
    fn eq_u64(&self, v: u64) -> bool;
    /// `self + other`.
    fn add(&self, other: &Self) -> Self;
    /// `self - other`.
    fn sub(&self, other: &Self) -> Self;
    /// `self * other`.
    fn mul(&self, other: &Self) -> Self;
    /// `-self`.
    fn neg(&self) -> Self;
    /// `self * 2^bits`.
    fn shl(&self, bits: u32) -> Self;
    /// `floor(self / 2^bits)`.
    fn shr(&self, bits: u32) -> Self;
    /// `self mod 2^bits`, in `[0, 2^bits)`.
    fn low_bits(&self, bits: u32) -> Self;
    /// `self mod m` in `[0, m)`, for any sign of `self` (`m > 0`).
    fn rem_euclid(&self, m: &Self) -> Self;
    /// `self <- self * other mod m`; the hot path of every scheme.
    fn mul_mod_assign(&mut self, other: &Self, m: &Self);
    /// `self <- self^2 mod m`.
    fn square_mod_assign(&mut self, m: &Self);
    /// `self^exp mod m` for `exp >= 0`.
    fn pow_mod(&self, exp: &Self, m: &Self) -> Self;
    /// `self^-1 mod m`, if it exists.
    fn invert_mod(&self, m: &Self) -> Option<Self>;
    /// `gcd(self, other) == 1`.
    fn gcd_is_one(&self, other: &Self) -> bool;
    /// `self` is the square of an integer.
    fn is_perfect_square(&self) -> bool;
    /// `self` as an `i128`, if it fits.
    fn to_i128(&self) -> Option<i128>;
    /// Lowercase hexadecimal of `self >= 0`, for debugging output.
    fn to_hex(&self) -> String;
}

impl Int for BigInt {
    fn zero() -> Self {
        Zero::zero()
    }

    fn from_u64(v: u64) -> Self {
        BigInt::from(v)
    }

    fn from_i128(v: i128) -> Self {
        BigInt::from(v)
    }

    fn from_be_bytes(bytes: &[u8]) -> Self {
        BigInt::from_bytes_be(Sign::Plus, bytes)
    }

    fn to_be_bytes_padded(&self, len: usize) -> Vec<u8> {
        let (_, digits) = self.to_bytes_be();
        let digits: &[u8] = if Zero::is_zero(self) { &[] } else { &digits };
        debug_assert!(digits.len() <= len);
        let mut out = vec![0u8; len - digits.len()];
        out.extend_from_slice(digits);
        out
    }

    fn to_le_bytes(&self) -> Vec<u8> {
        if Zero::is_zero(self) {
            return Vec::new();
        }
        self.to_bytes_le().1
    }

    fn bits(&self) -> u32 {
        // At most 2^32 bits: every value hetally handles is far smaller.
        self.magnitude().bits() as u32
    }

    fn is_negative(&self) -> bool {
        Signed::is_negative(self)
    }

    fn is_zero(&self) -> bool {
        Zero::is_zero(self)
    }

    fn is_odd(&self) -> bool {
        num_integer::Integer::is_odd(self)
    }

    fn eq_u64(&self, v: u64) -> bool {
        *self == BigInt::from(v)
    }

    fn add(&self, other: &Self) -> Self {
        self + other
    }

    fn sub(&self, other: &Self) -> Self {
        self - other
    }

    fn mul(&self, other: &Self) -> Self {
        self * other
    }

    fn neg(&self) -> Self {
        -self
    }

    fn shl(&self, bits: u32) -> Self {
        self << bits
    }

    fn shr(&self, bits: u32) -> Self {
        // num-bigint's >> rounds towards negative infinity for negatives.
        self >> bits
    }

    fn low_bits(&self, bits: u32) -> Self {
        self.rem_euclid(&(BigInt::one() << bits))
    }

    fn rem_euclid(&self, m: &Self) -> Self {
        self.mod_floor(m)
    }

    fn mul_mod_assign(&mut self, other: &Self, m: &Self) {
        *self *= other;
        *self %= m;
    }

    fn square_mod_assign(&mut self, m: &Self) {
        let sq = &*self * &*self;
        *self = sq % m;
    }

    fn pow_mod(&self, exp: &Self, m: &Self) -> Self {
        self.modpow(exp, m)
    }

    fn invert_mod(&self, m: &Self) -> Option<Self> {
        self.modinv(m)
    }

    fn gcd_is_one(&self, other: &Self) -> bool {
        self.gcd(other).is_one()
    }

    fn is_perfect_square(&self) -> bool {
        if Signed::is_negative(self) {
            return false;
        }
        let r = self.sqrt();
        &r * &r == *self
    }

    fn to_i128(&self) -> Option<i128> {
        ToPrimitive::to_i128(self)
    }

    fn to_hex(&self) -> String {
        self.to_str_radix(16)
    }
}

#[cfg(feature = "gmp")]
mod gmp {
    use rug::integer::{IsPrime, Order};
    use rug::{Complete, Integer};

    use super::Int;

    impl Int for Integer {
        fn zero() -> Self {
            Integer::new()
        }

        fn from_u64(v: u64) -> Self {
            Integer::from(v)
        }

        fn from_i128(v: i128) -> Self {
            Integer::from(v)
        }

        fn from_be_bytes(bytes: &[u8]) -> Self {
            Integer::from_digits(bytes, Order::Msf)
        }

        fn to_be_bytes_padded(&self, len: usize) -> Vec<u8> {
            let digits = self.to_digits::<u8>(Order::Msf);
            debug_assert!(digits.len() <= len);
            let mut out = vec![0u8; len - digits.len()];
            out.extend_from_slice(&digits);
            out
        }

        fn to_le_bytes(&self) -> Vec<u8> {
            self.to_digits::<u8>(Order::Lsf)
        }

        fn bits(&self) -> u32 {
            self.significant_bits()
        }

        fn is_negative(&self) -> bool {
            *self < 0
        }

        fn is_zero(&self) -> bool {
            *self == 0
        }

        fn is_odd(&self) -> bool {
            Integer::is_odd(self)
        }

        fn eq_u64(&self, v: u64) -> bool {
            *self == v
        }

        fn add(&self, other: &Self) -> Self {
            (self + other).complete()
        }

        fn sub(&self, other: &Self) -> Self {
            (self - other).complete()
        }

        fn mul(&self, other: &Self) -> Self {
            (self * other).complete()
        }

        fn neg(&self) -> Self {
            (-self).complete()
        }

        fn shl(&self, bits: u32) -> Self {
            (self << bits).complete()
        }

        fn shr(&self, bits: u32) -> Self {
            // GMP's >> on Integer rounds towards negative infinity, as
            // num-bigint's does.
            (self >> bits).complete()
        }

        fn low_bits(&self, bits: u32) -> Self {
            self.keep_bits_ref(bits).complete()
        }

        fn rem_euclid(&self, m: &Self) -> Self {
            self.modulo_ref(m).complete()
        }

        fn mul_mod_assign(&mut self, other: &Self, m: &Self) {
            *self *= other;
            *self %= m;
        }

        fn square_mod_assign(&mut self, m: &Self) {
            self.square_mut();
            *self %= m;
        }

        fn pow_mod(&self, exp: &Self, m: &Self) -> Self {
            // pow_mod only fails for a negative exponent without an inverse.
            self.pow_mod_ref(exp, m)
                .map(Integer::from)
                .expect("pow_mod takes a non-negative exponent")
        }

        fn invert_mod(&self, m: &Self) -> Option<Self> {
            self.invert_ref(m).map(Integer::from)
        }

        fn gcd_is_one(&self, other: &Self) -> bool {
            self.gcd_ref(other).complete() == 1
        }

        fn is_perfect_square(&self) -> bool {
            Integer::is_perfect_square(self)
        }

        fn to_i128(&self) -> Option<i128> {
            Integer::to_i128(self)
        }

        fn to_hex(&self) -> String {
            self.to_string_radix(16)
        }
    }

    /// Primality with GMP's `mpz_probab_prime_p`: trial division,
    /// Baillie–PSW, then `reps - 24` Miller–Rabin rounds.
    pub(crate) fn is_probably_prime(x: &Integer, reps: u32) -> bool {
        x.is_probably_prime(reps) != IsPrime::No
    }
}

#[cfg(feature = "gmp")]
pub(crate) use gmp::is_probably_prime;

/// Draws an integer uniformly from `[0, bound)` by rejection sampling on
/// `bits(bound)`-bit candidates, read big-endian from `rng`'s bytes.
pub(crate) fn random_below<B: Int, R: rand_core::RngCore + ?Sized>(bound: &B, rng: &mut R) -> B {
    let bits = bound.bits();
    let mut buf = vec![0u8; (bits as usize).div_ceil(8)];
    let excess = buf.len() as u32 * 8 - bits;
    loop {
        rng.fill_bytes(&mut buf);
        buf[0] &= 0xff >> excess;
        let x = B::from_be_bytes(&buf);
        if &x < bound {
            return x;
        }
    }
}

/// Draws a uniform integer of at most `bits` bits, read big-endian from
/// `rng`'s bytes.
pub(crate) fn random_bits<B: Int, R: rand_core::RngCore + ?Sized>(bits: u32, rng: &mut R) -> B {
    let mut buf = vec![0u8; (bits as usize).div_ceil(8)];
    rng.fill_bytes(&mut buf);
    let excess = buf.len() as u32 * 8 - bits;
    buf[0] &= 0xff >> excess;
    B::from_be_bytes(&buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn laws<B: Int>() {
        let m = B::from_be_bytes(&[0xff; 40]).sub(&B::from_u64(2));
        let a = B::from_be_bytes(&[0x12; 33]);
        let b = B::from_be_bytes(&[0xab; 31]);
        let mut x = a.clone();
        x.mul_mod_assign(&b, &m);
        assert_eq!(x, a.mul(&b).rem_euclid(&m));
        let mut s = a.clone();
        s.square_mod_assign(&m);
        assert_eq!(s, a.mul(&a).rem_euclid(&m));
        assert_eq!(
            a.pow_mod(&B::from_u64(3), &m),
            a.mul(&a).mul(&a).rem_euclid(&m)
        );
        let inv = a.invert_mod(&m).unwrap();
        let mut one = a.clone();
        one.mul_mod_assign(&inv, &m);
        assert!(one.eq_u64(1));
        assert_eq!(B::from_i128(-5).rem_euclid(&B::from_u64(3)), B::from_u64(1));
        assert_eq!(B::from_i128(-5).shr(1), B::from_i128(-3));
        assert_eq!(B::from_i128(-5).low_bits(3), B::from_u64(3));
        assert_eq!(B::from_u64(0x0102).to_be_bytes_padded(4), vec![0, 0, 1, 2]);
        assert_eq!(B::from_u64(0x0102).to_le_bytes(), vec![2, 1]);
        assert!(B::zero().to_le_bytes().is_empty());
        assert_eq!(B::zero().to_be_bytes_padded(2), vec![0, 0]);
        assert_eq!(B::from_u64(255).bits(), 8);
        assert!(B::from_u64(49).is_perfect_square());
        assert!(!B::from_u64(50).is_perfect_square());
        assert!(B::from_u64(9).gcd_is_one(&B::from_u64(10)));
        assert!(!B::from_u64(6).gcd_is_one(&B::from_u64(10)));
        assert_eq!(B::from_i128(-7).to_i128(), Some(-7));
        assert_eq!(B::from_u64(1).shl(130).to_i128(), None);
    }

    #[test]
    fn num_bigint_obeys_the_laws() {
        laws::<BigInt>();
    }

    #[cfg(feature = "gmp")]
    #[test]
    fn gmp_obeys_the_laws() {
        laws::<rug::Integer>();
    }
}
