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

use hetally_protocol::aggregate::{Decryption, SlotFlag, SlotProblem};
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
    /// A plaintext looks like random bits, not a sum of packed values
    /// ([`Packing::unpack_flagged`]).
    #[error("plaintext {plaintext} looks like random bits: {flagged} of its {places} places do not fit the slots (a damaged ciphertext, or one not encrypted with this packing)")]
    Random {
        /// Which plaintext.
        plaintext: usize,
        /// Places (slots, and the bits above the last) that do not fit.
        flagged: usize,
        /// Places it has.
        places: usize,
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

    /// The smallest slot magnitude no sum of valid reports plus noise
    /// reaches: `2^(slot_bits - 2)`. [`Packing::for_max_abs`] keeps a bit
    /// of margin above the largest sum, so a value at or past this limit
    /// came from a plaintext that was not a packed valid report.
    pub fn sum_limit(&self) -> i128 {
        1i128 << (self.slot_bits - 2)
    }

    /// Unpacks like [`Packing::unpack`], but what does not fit the slots is
    /// flagged rather than refused (the collector still gets every value):
    ///
    /// * a used slot of magnitude at least [`Packing::sum_limit`];
    /// * a slot past the last value that is not 0;
    /// * bits above the last slot of a plaintext;
    /// * and, as [`SlotProblem::Adjacent`], a used slot next to any of
    ///   those (the slot right below may hold the low bits of the value
    ///   that spilled, the one above took its carry; bits past the last
    ///   value make the last value suspect).
    ///
    /// One out-of-range value flags the few places its bits reach. A
    /// plaintext that is random (a damaged ciphertext decrypts to one)
    /// flags about half of its used slots and nearly every other place, so
    /// a plaintext with a quarter or more of its places (slots plus the
    /// bits above them) flagged is refused as [`PackingError::Random`].
    /// With a 2048-bit key a plaintext has at least 16 slots, so a random
    /// one passes for out-of-range values with probability about 1% at the
    /// widest slots and far less at the usual ones.
    pub fn unpack_flagged<B: Int>(
        &self,
        plaintexts: &[B],
        len: usize,
    ) -> Result<Decryption, PackingError> {
        let expected = self.plaintext_count(len);
        if plaintexts.len() != expected {
            return Err(PackingError::WrongCount {
                expected,
                got: plaintexts.len(),
            });
        }
        let k = self.slots_per_plaintext as usize;
        let half = 1i128 << (self.slot_bits - 1);
        let limit = self.sum_limit();
        let mut values = Vec::with_capacity(len);
        let mut flags = Vec::new();
        for (i, p) in plaintexts.iter().enumerate() {
            let used = (len - i * k).min(k);
            let mut decoded = Vec::with_capacity(k);
            let mut rest = p.clone();
            for _ in 0..k {
                // As in `unpack`: below 2^127, so it fits an i128.
                let low = rest
                    .low_bits(self.slot_bits)
                    .to_i128()
                    .expect("a value below 2^127 fits an i128");
                let signed = if low >= half { low - half - half } else { low };
                rest = rest.sub(&B::from_i128(signed)).shr(self.slot_bits);
                decoded.push(signed);
            }
            // Places 0..k are the slots, place k the bits above them.
            let mut bad = vec![false; k + 1];
            let mut problems: Vec<(usize, SlotProblem)> = Vec::new();
            for (slot, &v) in decoded.iter().enumerate() {
                if slot < used && v.unsigned_abs() >= limit.unsigned_abs() {
                    bad[slot] = true;
                    problems.push((slot, SlotProblem::OutOfRange { decoded: v, limit }));
                } else if slot >= used && v != 0 {
                    bad[slot] = true;
                    problems.push((slot, SlotProblem::PastLastValue { decoded: v }));
                }
            }
            if !rest.is_zero() {
                bad[k] = true;
                problems.push((k, SlotProblem::AboveLastSlot { bits: rest.bits() }));
            }
            let flagged = bad.iter().filter(|b| **b).count();
            if flagged > 0 && flagged * 4 > k {
                return Err(PackingError::Random {
                    plaintext: i,
                    flagged,
                    places: k + 1,
                });
            }
            let past_last = bad[used..].iter().any(|b| *b);
            for slot in 0..used {
                let next_to =
                    (slot > 0 && bad[slot - 1]) || bad[slot + 1] || (slot + 1 == used && past_last);
                if !bad[slot] && next_to {
                    problems.push((
                        slot,
                        SlotProblem::Adjacent {
                            decoded: decoded[slot],
                        },
                    ));
                }
            }
            problems.sort_by_key(|(slot, _)| *slot);
            flags.extend(problems.into_iter().map(|(slot, problem)| SlotFlag {
                ciphertext: i,
                slot,
                value: (slot < used).then_some(i * k + slot),
                problem,
            }));
            values.extend_from_slice(&decoded[..used]);
        }
        Ok(Decryption { values, flags })
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
    fn valid_sums_unpack_with_nothing_flagged() {
        let packing = Packing::new(16, 2048).unwrap();
        let values: Vec<i128> = (0..200).map(|i| (i as i128 % 41) * 100 - 2000).collect();
        let packed: Vec<BigInt> = packing.pack(&values).unwrap();
        let d = packing.unpack_flagged(&packed, values.len()).unwrap();
        assert_eq!(d.values, values);
        assert!(d.flags.is_empty(), "{:?}", d.flags);
        // The largest magnitude sums reach is below the limit.
        let edge: Vec<BigInt> = packing
            .pack(&[packing.sum_limit() - 1, 1 - packing.sum_limit()])
            .unwrap();
        assert!(packing.unpack_flagged(&edge, 2).unwrap().flags.is_empty());
    }

    #[test]
    fn a_value_above_its_slot_is_flagged_not_refused() {
        let packing = Packing::new(13, 2048).unwrap();
        let w = 13;
        // A histogram:3 sum of 500, 300, 200 plus one report that set the
        // bit just above bucket 0 (2^13: bucket 1 gains 1, which nothing
        // can see) and one that set bucket 1's sign bit (2^12 in slot 1),
        // which wraps bucket 1 negative and borrows from bucket 2.
        let honest: Vec<BigInt> = packing.pack(&[500, 300, 200]).unwrap();
        let bad = &honest[0] + (BigInt::from(1) << w) + (BigInt::from(1) << (w + 12));
        let d = packing.unpack_flagged(&[bad], 3).unwrap();
        assert_eq!(d.values.len(), 3);
        assert_eq!(d.values[0], 500);
        let by_value: Vec<(Option<usize>, &str)> = d
            .flags
            .iter()
            .map(|f| (f.value, f.problem.name()))
            .collect();
        assert_eq!(
            by_value,
            [
                (Some(0), "adjacent"),
                (Some(1), "out_of_range"),
                (Some(2), "adjacent")
            ],
            "{:?}",
            d.flags
        );
        assert_eq!(d.flags[1].slot, 1);
        assert_eq!(d.flags[1].ciphertext, 0);

        // A count whose one report sent 2^64 - 1 (a negative number read as
        // u64): bits land in slots past the only value.
        let count: Vec<BigInt> = packing.pack(&[700]).unwrap();
        let bad = &count[0] + BigInt::from(u64::MAX);
        assert_eq!(
            packing.unpack(std::slice::from_ref(&bad), 1),
            Err(PackingError::Overflow)
        );
        let d = packing.unpack_flagged(&[bad], 1).unwrap();
        assert_eq!(d.values, [699]);
        assert!(d
            .flags
            .iter()
            .any(|f| f.value.is_none() && f.problem.name() == "past_last_value"));
        assert!(d
            .flags
            .iter()
            .any(|f| f.value == Some(0) && f.problem.name() == "adjacent"));
        // A negative sign bit in the only slot.
        let bad = &count[0] + (BigInt::from(1) << (w - 1));
        let d = packing.unpack_flagged(&[bad], 1).unwrap();
        assert_eq!(d.values, [700 - 4096]);
        assert_eq!(
            d.flags[0].problem,
            SlotProblem::OutOfRange {
                decoded: 700 - 4096,
                limit: 2048
            }
        );
        assert_eq!(
            d.flags[1].problem,
            SlotProblem::PastLastValue { decoded: 1 }
        );
    }

    #[test]
    fn random_plaintexts_are_refused() {
        use rand::{RngCore, SeedableRng};
        let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(7);
        for (w, len) in [(13, 1), (13, 157), (34, 11), (34, 60), (64, 31)] {
            let packing = Packing::new(w, 2048).unwrap();
            for _ in 0..20 {
                let mut bytes = [0u8; 255];
                rng.fill_bytes(&mut bytes);
                let p = BigInt::from_bytes_be(num_bigint::Sign::Plus, &bytes);
                let p = if bytes[0] & 1 == 1 { -p } else { p };
                let e = packing.unpack_flagged(&[p], len).unwrap_err();
                assert!(
                    matches!(e, PackingError::Random { plaintext: 0, .. }),
                    "{w}/{len}: {e}"
                );
            }
        }
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
