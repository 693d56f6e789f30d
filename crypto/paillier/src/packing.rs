//! Packing several counters into one Paillier plaintext.
//!
//! A plaintext of a `b`-bit modulus holds `k = floor((b - 2) / w)` slots of
//! `w` bits: P = sum_i s_i 2^(w i). Adding plaintexts adds slot-wise as long
//! as no slot leaves [-2^(w-1), 2^(w-1)), so a batch's sum of k counters
//! costs one ciphertext multiplication instead of k.
//!
//! DP noise can make a slot negative. Decoding reads the plaintext as a
//! signed integer in (-n/2, n/2], then takes each slot's low `w` bits as a
//! two's-complement value and carries the borrow into the next slot. Because
//! `k w <= b - 2`, |P| < 2^(b-3) < n/2 and the signed reading is exact.

use thiserror::Error;

use crate::arith::Int;

/// Errors from packing and unpacking.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PackingError {
    /// The slot width cannot be used with this modulus.
    #[error("slot width {slot_bits} bits is not usable with a {modulus_bits}-bit modulus")]
    BadSlotWidth {
        /// Requested slot width.
        slot_bits: u32,
        /// Modulus size.
        modulus_bits: u32,
    },
    /// A value does not fit in a slot.
    #[error("value does not fit in a {slot_bits}-bit slot")]
    ValueTooLarge {
        /// Slot width.
        slot_bits: u32,
    },
    /// Decoding found bits above the last slot: some slot overflowed, or the
    /// plaintext was not produced with this packing.
    #[error("packed plaintext overflows its slots (wrong packing, or the sum exceeded the slot capacity)")]
    Overflow,
    /// The number of plaintexts does not match the number of values.
    #[error("expected {expected} packed plaintexts, got {got}")]
    WrongCount {
        /// Plaintexts needed.
        expected: usize,
        /// Plaintexts given.
        got: usize,
    },
}

/// Largest slot width: decoded slot values are `i128`.
pub const MAX_SLOT_BITS: u32 = hetally_protocol::aggregate::MAX_SLOT_BITS;

/// A slot layout: `w`-bit slots, `k` per plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packing {
    slot_bits: u32,
    slots_per_plaintext: u32,
}

impl Packing {
    /// Slots of `slot_bits` bits in plaintexts of a `modulus_bits`-bit key.
    pub fn new(slot_bits: u32, modulus_bits: u32) -> Result<Self, PackingError> {
        if !(2..=MAX_SLOT_BITS).contains(&slot_bits) || modulus_bits < slot_bits + 2 {
            return Err(PackingError::BadSlotWidth {
                slot_bits,
                modulus_bits,
            });
        }
        Ok(Packing {
            slot_bits,
            slots_per_plaintext: (modulus_bits - 2) / slot_bits,
        })
    }

    /// The narrowest packing whose slots hold any signed value of absolute
    /// value at most `max_abs` (one sign bit, one bit of margin).
    pub fn for_max_abs<B: Int>(max_abs: &B, modulus_bits: u32) -> Result<Self, PackingError> {
        Packing::new(max_abs.bits().max(1) + 2, modulus_bits)
    }

    /// Slot width in bits.
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// Slots per plaintext.
    pub fn slots_per_plaintext(&self) -> u32 {
        self.slots_per_plaintext
    }

    /// Plaintexts (and so ciphertexts) needed for `len` values.
    pub fn plaintext_count(&self, len: usize) -> usize {
        len.div_ceil(self.slots_per_plaintext as usize)
    }

    /// Largest absolute slot value that decodes correctly:
    /// `2^(slot_bits - 1) - 1`.
    pub fn max_abs(&self) -> i128 {
        // slot_bits <= 127, so the shift stays inside i128.
        (1i128 << (self.slot_bits - 1)) - 1
    }

    /// Packs signed values (each of absolute value at most
    /// [`Packing::max_abs`]) into signed plaintexts.
    pub fn pack<B: Int>(&self, values: &[i128]) -> Result<Vec<B>, PackingError> {
        let max = self.max_abs();
        if values.iter().any(|v| v.unsigned_abs() > max as u128) {
            return Err(PackingError::ValueTooLarge {
                slot_bits: self.slot_bits,
            });
        }
        Ok(values
            .chunks(self.slots_per_plaintext as usize)
            .map(|chunk| {
                let mut p = B::zero();
                for v in chunk.iter().rev() {
                    p = p.shl(self.slot_bits).add(&B::from_i128(*v));
                }
                p
            })
            .collect())
    }

    /// Packs non-negative `u64` values (a client's measurement).
    pub fn pack_u64<B: Int>(&self, values: &[u64]) -> Result<Vec<B>, PackingError> {
        let ints: Vec<i128> = values.iter().map(|v| i128::from(*v)).collect();
        self.pack(&ints)
    }

    /// Unpacks `len` signed slot values from signed plaintexts.
    pub fn unpack<B: Int>(&self, plaintexts: &[B], len: usize) -> Result<Vec<i128>, PackingError> {
        let expected = self.plaintext_count(len);
        if plaintexts.len() != expected {
            return Err(PackingError::WrongCount {
                expected,
                got: plaintexts.len(),
            });
        }
        let half = 1i128 << (self.slot_bits - 1);
        let mut out = Vec::with_capacity(len);
        for (i, p) in plaintexts.iter().enumerate() {
            let slots = (len - i * self.slots_per_plaintext as usize)
                .min(self.slots_per_plaintext as usize);
            let mut rest = p.clone();
            for _ in 0..slots {
                // In [0, 2^slot_bits) and slot_bits <= 127 (checked by
                // Packing::new), so it fits an i128.
                let low = rest
                    .low_bits(self.slot_bits)
                    .to_i128()
                    .expect("a value below 2^127 fits an i128");
                // The top half of the slot reads as negative: low - 2^w,
                // taken in two steps so that 2^127 is never formed.
                let signed = if low >= half { low - half - half } else { low };
                rest = rest.sub(&B::from_i128(signed)).shr(self.slot_bits);
                out.push(signed);
            }
            if !rest.is_zero() {
                return Err(PackingError::Overflow);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use num_bigint::BigInt;

    use super::*;

    #[test]
    fn signed_round_trip_with_borrows() {
        let packing = Packing::new(16, 2048).unwrap();
        assert_eq!(packing.slots_per_plaintext(), 127);
        let values: Vec<i128> = (0..300)
            .map(|i| {
                if i % 3 == 0 {
                    -(i as i128)
                } else {
                    i as i128 * 100
                }
            })
            .collect();
        let packed: Vec<BigInt> = packing.pack(&values).unwrap();
        assert_eq!(packed.len(), 3);
        assert_eq!(packing.unpack(&packed, values.len()).unwrap(), values);
    }

    #[test]
    fn sums_of_packed_values_decode_slotwise() {
        let packing = Packing::new(20, 2048).unwrap();
        let pa: Vec<BigInt> = packing.pack(&[5, -7, 0, 1000]).unwrap();
        let pb: Vec<BigInt> = packing.pack(&[-9, 3, -1, -2000]).unwrap();
        let sum = vec![&pa[0] + &pb[0]];
        assert_eq!(packing.unpack(&sum, 4).unwrap(), vec![-4, -4, -1, -1000]);
    }

    #[test]
    fn limits() {
        let packing = Packing::new(8, 2048).unwrap();
        assert!(packing.pack::<BigInt>(&[128]).is_err());
        assert!(packing.pack::<BigInt>(&[-127]).is_ok());
        // A top slot holding bits past the layout is an overflow.
        let bad = vec![BigInt::from(1) << 8];
        assert_eq!(packing.unpack(&bad, 1), Err(PackingError::Overflow));
        assert!(Packing::new(1, 2048).is_err());
        assert!(Packing::new(128, 2048).is_err());
        let p = Packing::for_max_abs(&BigInt::from(1000), 2048).unwrap();
        assert_eq!(p.slot_bits(), 12);
        assert!(p.pack::<BigInt>(&[-1000, 1000]).is_ok());
        assert_eq!(
            packing.unpack::<BigInt>(&[], 1),
            Err(PackingError::WrongCount {
                expected: 1,
                got: 0
            })
        );
    }
}
