//! The slot width a Paillier task needs, derived from the task: never
//! chosen by hand, and re-derived by every client and the server before a
//! definition is used.

use hetally_dp::{DpMechanism, Noise, Relation, TrusteeNoise};
use hetally_protocol::{Measurement, SchemeError};
use num_bigint::BigInt;

use crate::packing::{Packing, MAX_SLOT_BITS};

/// Per-value probability that DP noise exceeds the slot headroom: 2^-64.
pub const NOISE_TAIL_LOG2: u32 = 64;

/// The slot width a task needs: room for `max_batch_size` reports at the
/// type's largest value, plus DP noise up to a bound it exceeds with
/// probability below 2^-64 per value ([`NOISE_TAIL_LOG2`]; the sum of all
/// trustees' shares when `trustees` draw it), plus a sign
/// bit and a bit of margin ([`Packing::for_max_abs`]).
///
/// Under add/remove the server decides whether to release from the noisy
/// report count, never the exact one, so a batch released as holding at
/// most `max_batch_size` reports may hold up to the count noise's tail
/// bound more: the slots make room for those too. (Were even that
/// exceeded, with probability below 2^-64, the values would wrap around
/// in their slots: wrong, but still a function of the noisy sums, so the
/// privacy guarantee holds.)
pub fn slot_bits(
    modulus_bits: u32,
    measurement: &Measurement,
    dp: &DpMechanism,
    relation: Option<Relation>,
    trustees: Option<&TrusteeNoise>,
    max_batch_size: u64,
) -> Result<u32, SchemeError> {
    let noise = Noise::for_release(measurement, dp, relation, trustees)
        .map_err(|e| SchemeError::Config(e.to_string()))?;
    let tail = BigInt::from(noise.tail_bound(NOISE_TAIL_LOG2));
    let mut reports = BigInt::from(max_batch_size);
    if relation == Some(Relation::AddRemove) {
        reports += &tail;
    }
    let max_abs = reports * BigInt::from(measurement.max_value()) + tail;
    let packing = Packing::for_max_abs(&max_abs, modulus_bits).map_err(|_| {
        SchemeError::Config(format!(
            "a batch of up to {max_batch_size} reports plus DP noise needs slots wider than \
             {MAX_SLOT_BITS} bits: lower the max batch size"
        ))
    })?;
    Ok(packing.slot_bits())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_width_covers_the_batch_and_the_noise_tail() {
        let count = Measurement::Count;
        // 2^32 - 1 reports of 0/1: 32 bits of sum, a sign bit, a margin bit.
        assert_eq!(
            slot_bits(
                2048,
                &count,
                &DpMechanism::None,
                None,
                None,
                u32::MAX as u64
            )
            .unwrap(),
            34
        );
        // Laplace noise of scale 1 adds a tail bound of ceil(65 ln 2) = 46
        // (2^-64 per value): 1000 + 46 = 1046 needs 11 bits, so 13.
        let dp: DpMechanism = "laplace:1".parse().unwrap();
        let rep = Some(Relation::ReplaceOne);
        assert_eq!(slot_bits(2048, &count, &dp, rep, None, 1000).unwrap(), 13);
        assert_eq!(
            slot_bits(2048, &count, &DpMechanism::None, rep, None, 1000).unwrap(),
            12
        );
        let sum62 = Measurement::new_sum(62).unwrap();
        assert!(slot_bits(2048, &sum62, &DpMechanism::None, rep, None, u64::MAX).is_err());
    }

    #[test]
    fn add_remove_slots_make_room_for_the_count_noise() {
        // sum:8, laplace:1 under add/remove: L1 = 255 + 1, scale 256, tail
        // bound about 256 * 65 ln 2 = 11,534. The slot holds
        // (1000 + 11,534) * 255 + 11,534 = 3,207,704: 22 bits, so 24.
        let sum8 = Measurement::new_sum(8).unwrap();
        let dp: DpMechanism = "laplace:1".parse().unwrap();
        let add = slot_bits(2048, &sum8, &dp, Some(Relation::AddRemove), None, 1000).unwrap();
        assert_eq!(add, 24);
        // Replace-one: 1000 * 255 + about 255 * 65 ln 2 = 266,489: 19 + 2.
        let rep = slot_bits(2048, &sum8, &dp, Some(Relation::ReplaceOne), None, 1000).unwrap();
        assert_eq!(rep, 21);
    }
}
