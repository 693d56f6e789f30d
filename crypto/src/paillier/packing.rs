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

use rug::Integer;
use thiserror::Error;

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
pub const MAX_SLOT_BITS: u32 = 127;

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
    pub fn for_max_abs(max_abs: &Integer, modulus_bits: u32) -> Result<Self, PackingError> {
        Packing::new(max_abs.significant_bits().max(1) + 2, modulus_bits)
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

    /// Largest absolute slot value that decodes correctly.
    pub fn max_abs(&self) -> Integer {
        Integer::from(Integer::u_pow_u(2, self.slot_bits - 1)) - 1u32
    }

    /// Packs signed values (each of absolute value at most
    /// [`Packing::max_abs`]) into signed plaintexts.
    pub fn pack(&self, values: &[Integer]) -> Result<Vec<Integer>, PackingError> {
        let max = self.max_abs();
        if values.iter().any(|v| Integer::from(v.abs_ref()) > max) {
            return Err(PackingError::ValueTooLarge {
                slot_bits: self.slot_bits,
            });
        }
        Ok(values
            .chunks(self.slots_per_plaintext as usize)
            .map(|chunk| {
                let mut p = Integer::new();
                for v in chunk.iter().rev() {
                    p <<= self.slot_bits;
                    p += v;
                }
                p
            })
            .collect())
    }

    /// Packs non-negative `u64` values (a client's measurement).
    pub fn pack_u64(&self, values: &[u64]) -> Result<Vec<Integer>, PackingError> {
        let ints: Vec<Integer> = values.iter().map(|v| Integer::from(*v)).collect();
        self.pack(&ints)
    }

    /// Unpacks `len` signed slot values from signed plaintexts.
    pub fn unpack(&self, plaintexts: &[Integer], len: usize) -> Result<Vec<i128>, PackingError> {
        let expected = self.plaintext_count(len);
        if plaintexts.len() != expected {
            return Err(PackingError::WrongCount {
                expected,
                got: plaintexts.len(),
            });
        }
        let half = Integer::from(Integer::u_pow_u(2, self.slot_bits - 1));
        let full = Integer::from(Integer::u_pow_u(2, self.slot_bits));
        let mut out = Vec::with_capacity(len);
        for (i, p) in plaintexts.iter().enumerate() {
            let slots = (len - i * self.slots_per_plaintext as usize)
                .min(self.slots_per_plaintext as usize);
            let mut rest = p.clone();
            for _ in 0..slots {
                let mut low = Integer::from(rest.keep_bits_ref(self.slot_bits));
                if low >= half {
                    low -= &full;
                }
                rest -= &low;
                rest >>= self.slot_bits;
                // |low| < 2^126, so it fits in an i128.
                out.push(low.to_i128().expect("slot value fits in i128"));
            }
            if rest != 0 {
                return Err(PackingError::Overflow);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
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
        let ints: Vec<Integer> = values.iter().map(|v| Integer::from(*v)).collect();
        let packed = packing.pack(&ints).unwrap();
        assert_eq!(packed.len(), 3);
        assert_eq!(packing.unpack(&packed, values.len()).unwrap(), values);
    }

    #[test]
    fn sums_of_packed_values_decode_slotwise() {
        let packing = Packing::new(20, 2048).unwrap();
        let a: Vec<Integer> = [5, -7, 0, 1000].iter().map(|v| Integer::from(*v)).collect();
        let b: Vec<Integer> = [-9, 3, -1, -2000]
            .iter()
            .map(|v| Integer::from(*v))
            .collect();
        let pa = packing.pack(&a).unwrap();
        let pb = packing.pack(&b).unwrap();
        let sum = vec![Integer::from(&pa[0] + &pb[0])];
        assert_eq!(packing.unpack(&sum, 4).unwrap(), vec![-4, -4, -1, -1000]);
    }

    #[test]
    fn limits() {
        let packing = Packing::new(8, 2048).unwrap();
        assert!(packing.pack(&[Integer::from(128)]).is_err());
        assert!(packing.pack(&[Integer::from(-127)]).is_ok());
        // A top slot holding bits past the layout is an overflow.
        let bad = vec![Integer::from(1) << 8];
        assert_eq!(packing.unpack(&bad, 1), Err(PackingError::Overflow));
        assert!(Packing::new(1, 2048).is_err());
        assert!(Packing::new(128, 2048).is_err());
        let p = Packing::for_max_abs(&Integer::from(1000), 2048).unwrap();
        assert_eq!(p.slot_bits(), 12);
        assert!(p.pack(&[Integer::from(-1000), Integer::from(1000)]).is_ok());
        assert_eq!(
            packing.unpack(&[], 1),
            Err(PackingError::WrongCount {
                expected: 1,
                got: 0
            })
        );
    }
}
