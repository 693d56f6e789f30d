//! Fixed-base exponentiation with a precomputed window table
//! (Brickell, Gordon, McCurley and Wilson, Eurocrypt 1992).
//!
//! For a base b and exponents below 2^t, the table holds b^(j 2^(8i)) for
//! every byte position i < t/8 and byte value 1 <= j <= 255. Then
//! b^e = prod_i table[i][e_i] where e_i is the i-th byte of e: at most t/8
//! modular multiplications and no squarings. For t = 256 and a 2048-bit key
//! that is 32 multiplications mod n^2 and a 4 MB table built once per key.

use crate::arith::Int;

/// See the module docs. Window width is fixed at 8 bits.
pub(crate) struct FixedBaseTable<B: Int> {
    modulus: B,
    exponent_bits: u32,
    /// `windows * 255` entries; entry `i * 255 + (j - 1)` is b^(j 2^(8i)).
    entries: Vec<B>,
}

impl<B: Int> FixedBaseTable<B> {
    pub(crate) fn new(base: &B, modulus: &B, exponent_bits: u32, window_bits: u32) -> Self {
        assert_eq!(window_bits, 8, "only byte windows are implemented");
        let windows = exponent_bits.div_ceil(8) as usize;
        let mut entries = Vec::with_capacity(windows * 255);
        let mut window_base = base.rem_euclid(modulus);
        for _ in 0..windows {
            let mut x = window_base.clone();
            for _ in 1..=255 {
                entries.push(x.clone());
                x.mul_mod_assign(&window_base, modulus);
            }
            // x is now window_base^256: the next window's base.
            window_base = x;
        }
        FixedBaseTable {
            modulus: modulus.clone(),
            exponent_bits,
            entries,
        }
    }

    /// Largest exponent size, in bits, that [`FixedBaseTable::pow`] takes.
    pub(crate) fn exponent_bits(&self) -> u32 {
        self.exponent_bits
    }

    /// base^exp mod modulus for 0 <= exp < 2^exponent_bits.
    pub(crate) fn pow(&self, exp: &B) -> B {
        assert!(
            !exp.is_negative() && exp.bits() <= self.exponent_bits,
            "exponent outside the table's range"
        );
        let mut acc: Option<B> = None;
        for (i, byte) in exp.to_le_bytes().into_iter().enumerate() {
            if byte == 0 {
                continue;
            }
            let entry = &self.entries[i * 255 + (byte as usize - 1)];
            acc = Some(match acc {
                None => entry.clone(),
                Some(mut a) => {
                    a.mul_mod_assign(entry, &self.modulus);
                    a
                }
            });
        }
        acc.unwrap_or_else(|| B::from_u64(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn matches_pow_mod<B: Int>() {
        let modulus = B::from_u64(1).shl(521).sub(&B::from_u64(1));
        let base = B::from_u64(123_456_789);
        let table = FixedBaseTable::new(&base, &modulus, 64, 8);
        for e in [0u64, 1, 255, 256, 0xdead_beef, u64::MAX] {
            let e = B::from_u64(e);
            assert_eq!(table.pow(&e), base.pow_mod(&e, &modulus), "exponent {e:?}");
        }
    }

    #[test]
    fn matches_pow_mod_num_bigint() {
        matches_pow_mod::<num_bigint::BigInt>();
    }

    #[cfg(feature = "gmp")]
    #[test]
    fn matches_pow_mod_gmp() {
        matches_pow_mod::<rug::Integer>();
    }
}
