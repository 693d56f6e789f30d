//! The published TFHE-rs parameter sets this backend accepts, the plaintext
//! encoding (Delta) and the capacity analysis: how many encryptions one sum
//! can hold before a value may decrypt wrongly.
//!
//! # Capacity
//!
//! With the compact public key (a, b = a*s + e), an encryption of the
//! encoded vector Delta*m is mask = a*r + e1, body = b*r + e2 + Delta*m
//! (products in Z_{2^64}[X]/(X^n + 1) in TFHE-rs's "semi-reverse" form),
//! with r binary and e1, e2 drawn from TUniform(b) on [-2^b, 2^b]. The
//! phase of value j, body_j - <mask_j, s>, is Delta*m_j plus
//!
//! ```text
//! noise_j = sum_i c_{j,i} r_i  +  e2_j  -  sum_i s_i e1_{j,i}
//! ```
//!
//! where every c_{j,i} is +-e_k for some coefficient k of the public key's
//! error: each r_i appears once per value. Since r_i has mean 1/2, the
//! first sum has mean E_j / 2 with E_j = sum_i c_{j,i}, a fixed number of
//! the key; summed over K encryptions it grows like K * E_j / 2, linearly
//! in K. That is what makes an uncorrected sum fail at K = 1,000 with
//! Delta = 2^32. The collector, who holds s, computes E_j exactly (the
//! phase of the encryption of zero with r = 1 and no e1, e2; see
//! [`super::SecretKey`]) and subtracts round(K * E_j / 2) before rounding.
//!
//! What is left is a sum of independent, zero-mean, bounded terms (the key
//! is fixed; r, e1 and e2 are fresh for every encryption). Per encryption
//! and value the terms have ranges of width at most |e_k| <= B for the n
//! terms c (r - 1/2), 2B for the at most n terms s_i e1_i, and 2B for e2,
//! B = 2^b. Hoeffding's inequality gives, for a sum of K encryptions,
//!
//! ```text
//! P(|noise| >= t) <= 2 exp(-2 t^2 / (K * S)),   S = B^2 (n + 4n + 4)
//! ```
//!
//! for every key (the bound uses the worst case |e_k| = B and a secret key
//! of weight n). A value decrypts correctly when |noise| < Delta/2 - 1
//! (the 1 covers the rounding of K * E_j / 2). hetally asks for a failure
//! probability below 2^-40 for a whole release: with at most
//! [`MAX_VALUES_PER_RELEASE`] values, a union bound asks 2^-56 per value,
//! so
//!
//! ```text
//! K_max = floor( 2 (Delta/2 - 1)^2 / (S * ln(2^57)) ).
//! ```
//!
//! For the default set (n = 2048, b = 17) this is 1,326 at Delta = 2^32,
//! 21,223 at 2^34 and 84,894 at 2^35: each extra bit of Delta multiplies
//! the capacity by 4. docs/tfhe.md has the table.

use super::LweError;

/// The most values one release can hold (the measurement types' largest
/// length); the union bound of the capacity analysis is over this many.
pub const MAX_VALUES_PER_RELEASE: u64 = hetally_protocol::measurement::MAX_LENGTH as u64;

/// Failure probability target for one release, as a negative power of two.
pub const RELEASE_FAILURE_LOG2: u32 = 40;

/// A published TFHE-rs compact-public-key parameter set: only the values
/// that matter to this backend (the LWE dimension and the encryption
/// noise). Security rests on these; the message and carry moduli of the
/// shortint encoding are not used, hetally chooses its own Delta.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParameterSet {
    /// The byte that names the set in hetally encodings.
    pub id: u8,
    /// The TFHE-rs constant the values come from.
    pub tfhe_name: &'static str,
    /// LWE dimension n (also the most values one compact list carries).
    pub lwe_dimension: usize,
    /// The encryption noise is TUniform with this bound: uniform on
    /// [-2^b, 2^b] with half weight at the ends.
    pub noise_bound_log2: u32,
}

/// TFHE-rs 1.8's
/// `V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2` (the set
/// `PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128` aliases): compact
/// public-key encryption with zk-pok V2 proofs, LWE dimension 2048,
/// TUniform(17) noise, native 2^64 modulus, 128-bit security. A unit test
/// checks these values against the TFHE-rs constant.
pub const PKE_ZKV2_2048: ParameterSet = ParameterSet {
    id: 1,
    tfhe_name: "V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2",
    lwe_dimension: 2048,
    noise_bound_log2: 17,
};

/// Every parameter set this build accepts.
pub const PARAMETER_SETS: [ParameterSet; 1] = [PKE_ZKV2_2048];

impl ParameterSet {
    /// The set named by `id`.
    pub fn from_id(id: u8) -> Result<Self, LweError> {
        PARAMETER_SETS
            .iter()
            .find(|p| p.id == id)
            .copied()
            .ok_or(LweError::UnknownParameterSet(id))
    }

    /// The default set.
    pub fn default_set() -> Self {
        PKE_ZKV2_2048
    }

    /// Hoeffding's sum of squared ranges S for one encryption, see the
    /// module docs: B^2 (5n + 4).
    fn squared_ranges_per_encryption(&self) -> f64 {
        let b = 2f64.powi(self.noise_bound_log2 as i32);
        b * b * (5.0 * self.lwe_dimension as f64 + 4.0)
    }

    /// ln(2 / p) for the per-value failure probability p of the module
    /// docs: 2^-40 per release over [`MAX_VALUES_PER_RELEASE`] values.
    fn per_value_log_term() -> f64 {
        let per_value_log2 = RELEASE_FAILURE_LOG2 as f64 + (MAX_VALUES_PER_RELEASE as f64).log2();
        (per_value_log2 + 1.0) * std::f64::consts::LN_2
    }

    /// The most encryptions (reports, plus the release's noise list) one
    /// sum may hold at this Delta with a release failure probability below
    /// 2^-40; see the module docs. 0 when even one is not safe.
    pub fn max_encryptions(&self, delta: Delta) -> u64 {
        let half = 2f64.powi(delta.log2() as i32 - 1) - 1.0;
        let log_term = Self::per_value_log_term();
        let k = 2.0 * half * half / (self.squared_ranges_per_encryption() * log_term);
        // f64 keeps 53 bits: shave a part in 2^-40 so rounding can only
        // make the answer smaller.
        let k = (k * (1.0 - 1e-12)).floor();
        if k < 1.0 {
            0
        } else if k >= u64::MAX as f64 {
            u64::MAX
        } else {
            k as u64
        }
    }

    /// The bound t on the noise of one value of a sum of `encryptions`
    /// honest encryptions, after the bias is removed, that the module docs'
    /// Hoeffding bound exceeds with probability below 2^-56 per value
    /// (2^-40 per release): t = sqrt(K * S * ln(2^57) / 2), rounded up.
    /// [`ParameterSet::max_encryptions`] is the largest K with
    /// t <= Delta/2 - 1; threshold decryption (`crate::threshold`) sizes its
    /// smudging noise from t.
    pub fn noise_bound(&self, encryptions: u64) -> u64 {
        let t = (encryptions as f64
            * self.squared_ranges_per_encryption()
            * Self::per_value_log_term()
            / 2.0)
            .sqrt();
        // Round up, with a part in 2^-40 to spare for f64 rounding.
        let t = (t * (1.0 + 1e-12)).ceil();
        if t >= u64::MAX as f64 {
            u64::MAX
        } else {
            t as u64
        }
    }

    /// The smallest Delta that holds `encryptions` encryptions.
    pub fn min_delta_for(&self, encryptions: u64) -> Result<Delta, LweError> {
        (Delta::MIN_LOG2..=Delta::MAX_LOG2)
            .map(|log2| Delta { log2 })
            .find(|d| self.max_encryptions(*d) >= encryptions)
            .ok_or(LweError::CapacityExceeded {
                encryptions,
                max: self.max_encryptions(Delta {
                    log2: Delta::MAX_LOG2,
                }),
            })
    }
}

/// The plaintext scaling: a value m is encrypted as m * Delta mod 2^64,
/// Delta = 2^log2, so the plaintext space is Z_{2^(64 - log2)} and values
/// decode as signed integers in [-2^(63 - log2), 2^(63 - log2)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Delta {
    log2: u32,
}

impl Delta {
    /// Smallest Delta accepted: below it not even one encryption decrypts
    /// safely with the default set (2^27 holds one).
    pub const MIN_LOG2: u32 = 27;
    /// Largest Delta accepted: leaves 4 plaintext bits.
    pub const MAX_LOG2: u32 = 60;

    /// Delta = 2^log2.
    pub fn new(log2: u32) -> Result<Self, LweError> {
        if !(Self::MIN_LOG2..=Self::MAX_LOG2).contains(&log2) {
            return Err(LweError::BadDelta(log2));
        }
        Ok(Delta { log2 })
    }

    /// log2 of Delta.
    pub fn log2(self) -> u32 {
        self.log2
    }

    /// Bits of the plaintext space, 64 - log2.
    pub fn plaintext_bits(self) -> u32 {
        64 - self.log2
    }

    /// Largest |value| a sum may reach and still decode: 2^(63 - log2) - 1.
    pub fn max_abs_value(self) -> u64 {
        (1u64 << (63 - self.log2)) - 1
    }

    /// m * Delta mod 2^64 (m is reduced mod the plaintext space).
    pub fn encode(self, m: i128) -> u64 {
        // Truncation to the low 64 bits is the reduction mod 2^64.
        (m as u64).wrapping_shl(self.log2)
    }

    /// Rounds a phase to the nearest multiple of Delta and returns the
    /// signed value.
    pub fn decode(self, phase: u64) -> i128 {
        let rounded = phase.wrapping_add(1u64 << (self.log2 - 1)) >> self.log2;
        let bits = self.plaintext_bits();
        // Sign-extend from `bits` bits.
        let shifted = (rounded << (64 - bits)) as i64;
        i128::from(shifted >> (64 - bits))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tfhe::core_crypto::prelude::DynamicDistribution;
    use tfhe::shortint::parameters::v1_8::V1_8_PARAM_PKE_MESSAGE_2_CARRY_2_KS_PBS_TUNIFORM_2M128_ZKV2 as TFHE_SET;

    #[test]
    fn default_set_matches_tfhe_rs() {
        let p = PKE_ZKV2_2048;
        assert_eq!(TFHE_SET.encryption_lwe_dimension.0, p.lwe_dimension);
        match TFHE_SET.encryption_noise_distribution {
            DynamicDistribution::TUniform(t) => assert_eq!(t.bound_log2(), p.noise_bound_log2),
            other => panic!("unexpected distribution {other:?}"),
        }
        assert!(TFHE_SET.ciphertext_modulus.is_native_modulus());
        assert!(matches!(
            TFHE_SET.zk_scheme,
            tfhe::shortint::parameters::SupportedCompactPkeZkScheme::V2
        ));
    }

    #[test]
    fn delta_round_trip_signed() {
        let d = Delta::new(32).unwrap();
        for m in [0i128, 1, -1, 12345, -12345, 2147483647, -2147483648] {
            let enc = d.encode(m);
            assert_eq!(d.decode(enc), m);
            // Noise below Delta/2 either way rounds away.
            assert_eq!(d.decode(enc.wrapping_add((1 << 31) - 1)), m);
            assert_eq!(d.decode(enc.wrapping_sub((1 << 31) - 1)), m);
        }
        assert_eq!(d.max_abs_value(), (1 << 31) - 1);
        assert!(Delta::new(26).is_err());
        assert_eq!(PKE_ZKV2_2048.max_encryptions(Delta::new(27).unwrap()), 1);
        assert!(Delta::new(61).is_err());
    }

    #[test]
    fn capacity_figures() {
        let p = PKE_ZKV2_2048;
        let at = |log2| p.max_encryptions(Delta::new(log2).unwrap());
        assert_eq!(at(28), 5);
        assert_eq!(at(32), 1326);
        assert_eq!(at(34), 21223);
        assert_eq!(at(35), 84894);
        // Four times per extra bit, up to rounding.
        for log2 in 30..50 {
            let (a, b) = (at(log2), at(log2 + 1));
            assert!(b >= 4 * a && b <= 4 * a + 4, "{log2}: {a} -> {b}");
        }
        assert_eq!(p.min_delta_for(10_001).unwrap().log2(), 34);
        assert_eq!(p.min_delta_for(1326).unwrap().log2(), 32);
        assert_eq!(p.min_delta_for(1327).unwrap().log2(), 33);
    }

    #[test]
    fn noise_bound_is_the_inverse_of_the_capacity() {
        let p = PKE_ZKV2_2048;
        for log2 in [28, 32, 34, 39, 45] {
            let delta = Delta::new(log2).unwrap();
            let k = p.max_encryptions(delta);
            let half = (1u64 << (log2 - 1)) - 1;
            assert!(p.noise_bound(k) <= half, "2^{log2}: t({k}) > Delta/2 - 1");
            assert!(p.noise_bound(k + 2) > half, "2^{log2}: t({}) fits", k + 2);
        }
        // sqrt(K) growth: about 2^25.8 * sqrt(K).
        assert_eq!(p.noise_bound(1).ilog2(), 25);
        assert_eq!(p.noise_bound(10_001).ilog2(), 32);
        assert!(p.noise_bound(4 * 10_001) <= 2 * p.noise_bound(10_001) + 1);
    }
}
