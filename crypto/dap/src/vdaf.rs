//! The Prio3 VDAFs of DAP tasks, their DP strategies, and one report's
//! preparation on the leader and on the helper.
//!
//! The VDAFs are `prio` 0.16's own Prio3 instances (VDAF draft 08, the
//! version DAP-09 and the janus 0.7 crates use). Preparation follows the
//! ping-pong topology of VDAF-08 section 5.8 through prio's
//! `PingPongTopology`; Prio3 finishes in one round: the leader sends its
//! prepare share (`initialize`), the helper combines both shares, checks the
//! proof and answers with the prepare message (`finish`), and both recover
//! their output shares.

use std::fmt;
use std::str::FromStr;

use janus_messages::{PrepareError, ReportId};
use prio::codec::{Decode, Encode, ParameterizedDecode};
use prio::dp::distributions::PureDpDiscreteLaplace;
use prio::dp::{DifferentialPrivacyStrategy, PureDpBudget, Rational};
use prio::field::{Field128, Field64, FieldElementWithInteger};
use prio::topology::ping_pong::{
    PingPongContinuedValue, PingPongMessage, PingPongState, PingPongTopology,
};
use prio::vdaf::prio3::{optimal_chunk_length, Prio3Count, Prio3Histogram, Prio3Sum, Prio3SumVec};
use prio::vdaf::{self, Aggregator, AggregatorWithNoise};
use thiserror::Error;

/// Length of a Prio3 verification key (XofTurboShake128 seed), bytes.
pub const VERIFY_KEY_LEN: usize = 16;

/// Largest histogram length / vector length accepted in a task definition.
pub const MAX_VECTOR_LENGTH: usize = 1 << 20;

/// Errors of this module.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum DapVdafError {
    /// A VDAF or DP strategy string did not parse.
    #[error("{0}")]
    Parse(String),
    /// prio refused the parameters or an operation.
    #[error("VDAF error: {0}")]
    Vdaf(#[from] prio::vdaf::VdafError),
    /// An encoded share did not decode.
    #[error("decoding failed: {0}")]
    Codec(#[from] prio::codec::CodecError),
}

/// One of the supported Prio3 VDAFs, with its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VdafSpec {
    /// `prio3count`: 0 or 1 per report.
    Count,
    /// `prio3sum:BITS`: an integer in `[0, 2^BITS)` per report.
    Sum {
        /// Bits of each measurement (1..=64).
        bits: usize,
    },
    /// `prio3histogram:LENGTH[:CHUNK]`: one bucket index in `[0, LENGTH)`.
    Histogram {
        /// Buckets.
        length: usize,
        /// Chunk length of the proof's parallel sum gadget.
        chunk_length: usize,
    },
    /// `prio3sumvec:LENGTH:BITS[:CHUNK]`: a vector of LENGTH integers of BITS
    /// bits each.
    SumVec {
        /// Vector length.
        length: usize,
        /// Bits per element (1..=64).
        bits: usize,
        /// Chunk length of the proof's parallel sum gadget.
        chunk_length: usize,
    },
}

impl FromStr for VdafSpec {
    type Err = DapVdafError;

    fn from_str(s: &str) -> Result<Self, DapVdafError> {
        let usage = "expected prio3count, prio3sum:BITS, prio3histogram:LENGTH[:CHUNK] or \
                     prio3sumvec:LENGTH:BITS[:CHUNK]";
        let mut parts = s.trim().split(':');
        let name = parts.next().unwrap_or_default().to_ascii_lowercase();
        let nums: Vec<usize> = parts
            .map(|p| {
                p.parse::<usize>().map_err(|_| {
                    DapVdafError::Parse(format!("{s:?}: {p:?} is not a number; {usage}"))
                })
            })
            .collect::<Result<_, _>>()?;
        let bad = || DapVdafError::Parse(format!("{s:?}: {usage}"));
        let check_bits = |bits: usize| {
            if (1..=64).contains(&bits) {
                Ok(bits)
            } else {
                Err(DapVdafError::Parse(format!("{s:?}: BITS must be 1..=64")))
            }
        };
        let check_len = |len: usize| {
            if (1..=MAX_VECTOR_LENGTH).contains(&len) {
                Ok(len)
            } else {
                Err(DapVdafError::Parse(format!(
                    "{s:?}: LENGTH must be 1..={MAX_VECTOR_LENGTH}"
                )))
            }
        };
        let spec = match (name.as_str(), nums.as_slice()) {
            ("prio3count", []) => VdafSpec::Count,
            ("prio3sum", [bits]) => VdafSpec::Sum {
                bits: check_bits(*bits)?,
            },
            ("prio3histogram", [length]) => VdafSpec::Histogram {
                length: check_len(*length)?,
                chunk_length: optimal_chunk_length(*length),
            },
            ("prio3histogram", [length, chunk]) => VdafSpec::Histogram {
                length: check_len(*length)?,
                chunk_length: *chunk,
            },
            ("prio3sumvec", [length, bits]) => VdafSpec::SumVec {
                length: check_len(*length)?,
                bits: check_bits(*bits)?,
                chunk_length: optimal_chunk_length(length.saturating_mul(*bits)),
            },
            ("prio3sumvec", [length, bits, chunk]) => VdafSpec::SumVec {
                length: check_len(*length)?,
                bits: check_bits(*bits)?,
                chunk_length: *chunk,
            },
            _ => return Err(bad()),
        };
        // Let prio validate the chunk length and the rest.
        spec.instantiate()
            .map_err(|e| DapVdafError::Parse(format!("{s:?}: {e}")))?;
        Ok(spec)
    }
}

impl fmt::Display for VdafSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VdafSpec::Count => write!(f, "prio3count"),
            VdafSpec::Sum { bits } => write!(f, "prio3sum:{bits}"),
            VdafSpec::Histogram {
                length,
                chunk_length,
            } => write!(f, "prio3histogram:{length}:{chunk_length}"),
            VdafSpec::SumVec {
                length,
                bits,
                chunk_length,
            } => write!(f, "prio3sumvec:{length}:{bits}:{chunk_length}"),
        }
    }
}

/// A prio VDAF instance of a [`VdafSpec`].
#[derive(Debug, Clone)]
pub enum DapVdaf {
    /// Prio3Count.
    Count(Prio3Count),
    /// Prio3Sum.
    Sum(Prio3Sum),
    /// Prio3Histogram.
    Histogram(Prio3Histogram),
    /// Prio3SumVec.
    SumVec(Prio3SumVec),
}

/// Runs `$body` with `$v` bound to the concrete prio VDAF inside a
/// [`DapVdaf`], so generic code monomorphises once per VDAF.
#[macro_export]
macro_rules! with_dap_vdaf {
    ($vdaf:expr, |$v:ident| $body:expr) => {
        match $vdaf {
            $crate::vdaf::DapVdaf::Count($v) => $body,
            $crate::vdaf::DapVdaf::Sum($v) => $body,
            $crate::vdaf::DapVdaf::Histogram($v) => $body,
            $crate::vdaf::DapVdaf::SumVec($v) => $body,
        }
    };
}

impl VdafSpec {
    /// The two-aggregator prio instance.
    pub fn instantiate(&self) -> Result<DapVdaf, DapVdafError> {
        Ok(match *self {
            VdafSpec::Count => DapVdaf::Count(Prio3Count::new_count(2)?),
            VdafSpec::Sum { bits } => DapVdaf::Sum(Prio3Sum::new_sum(2, bits)?),
            VdafSpec::Histogram {
                length,
                chunk_length,
            } => DapVdaf::Histogram(Prio3Histogram::new_histogram(2, length, chunk_length)?),
            VdafSpec::SumVec {
                length,
                bits,
                chunk_length,
            } => DapVdaf::SumVec(Prio3SumVec::new_sum_vec(2, bits, length, chunk_length)?),
        })
    }

    /// Encoded sizes of one report's public share and of its leader's and
    /// helper's input shares, from sharding a zero measurement (Prio3's
    /// shares have a fixed size per VDAF): what the servers' body limits
    /// are worked out from.
    pub fn share_lens(&self) -> Result<ShareLens, DapVdafError> {
        fn lens<V: vdaf::Client<16>>(v: &V, m: &V::Measurement) -> Result<ShareLens, DapVdafError> {
            let (public, inputs) = v.shard(m, &[0; 16])?;
            let input = |i: usize| -> Result<usize, DapVdafError> {
                Ok(inputs
                    .get(i)
                    .map(|s| s.get_encoded())
                    .transpose()?
                    .map_or(0, |e| e.len()))
            };
            Ok(ShareLens {
                public: public.get_encoded()?.len(),
                leader: input(0)?,
                helper: input(1)?,
            })
        }
        match *self {
            VdafSpec::Count => lens(&Prio3Count::new_count(2)?, &false),
            VdafSpec::Sum { bits } => lens(&Prio3Sum::new_sum(2, bits)?, &0),
            VdafSpec::Histogram {
                length,
                chunk_length,
            } => lens(&Prio3Histogram::new_histogram(2, length, chunk_length)?, &0),
            VdafSpec::SumVec {
                length,
                bits,
                chunk_length,
            } => lens(
                &Prio3SumVec::new_sum_vec(2, bits, length, chunk_length)?,
                &vec![0; length],
            ),
        }
    }

    /// The modulus of the VDAF's field, for [`signed`].
    pub fn field_modulus(&self) -> u128 {
        match self {
            VdafSpec::Count => u128::from(Field64::modulus()),
            _ => Field128::modulus(),
        }
    }

    /// Whether the VDAF can add DP noise (prio implements noise for
    /// histogram and sumvec only, as Janus offers).
    pub fn supports_dp(&self) -> bool {
        matches!(self, VdafSpec::Histogram { .. } | VdafSpec::SumVec { .. })
    }

    /// The L1 sensitivity prio 0.16 calibrates `PureDpDiscreteLaplace`
    /// for, under the substitution (replace-one) relation: 2 for a
    /// histogram (one report moving between buckets changes two),
    /// `(2^BITS - 1) × LENGTH` for a sumvec; `None` for the VDAFs prio adds
    /// no noise to. Saturates at `u128::MAX`.
    pub fn l1_sensitivity(&self) -> Option<u128> {
        match *self {
            VdafSpec::Histogram { .. } => Some(2),
            VdafSpec::SumVec { length, bits, .. } => {
                let max = if bits >= 128 {
                    u128::MAX
                } else {
                    (1u128 << bits) - 1
                };
                Some(max.saturating_mul(length as u128))
            }
            VdafSpec::Count | VdafSpec::Sum { .. } => None,
        }
    }
}

/// Encoded sizes of one report's shares; see [`VdafSpec::share_lens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShareLens {
    /// The public share.
    pub public: usize,
    /// The leader's input share.
    pub leader: usize,
    /// The helper's input share.
    pub helper: usize,
}

/// Maps a field element (as an integer in `[0, p)`) to the signed integer
/// it stands for: values above p/2 are negative. DP noise can push an
/// aggregate below zero, which the field wraps around to near p
/// (`janus_collector` reports such values unmapped, see janus issue #3346).
pub fn signed(value: u128, modulus: u128) -> i128 {
    if value > modulus / 2 {
        // modulus - value <= p/2 < 2^127.
        -((modulus - value) as i128)
    } else {
        value as i128
    }
}

/// How an aggregator noises its aggregate share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DpStrategy {
    /// No noise.
    None,
    /// Pure epsilon-DP: discrete Laplace noise with scale
    /// sensitivity / epsilon added by each aggregator to each element
    /// (prio's `PureDpDiscreteLaplace`).
    PureDpDiscreteLaplace {
        /// Epsilon numerator.
        numerator: u64,
        /// Epsilon denominator (non-zero).
        denominator: u64,
    },
}

impl FromStr for DpStrategy {
    type Err = DapVdafError;

    /// `none`, or `pure-dp-discrete-laplace:EPSILON` where EPSILON is a
    /// positive decimal (`0.5`) or fraction (`1/2`).
    fn from_str(s: &str) -> Result<Self, DapVdafError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("none") {
            return Ok(DpStrategy::None);
        }
        let eps = s.strip_prefix("pure-dp-discrete-laplace:").ok_or_else(|| {
            DapVdafError::Parse(format!(
                "DP strategy {s:?}: expected none or pure-dp-discrete-laplace:EPSILON"
            ))
        })?;
        let bad = || DapVdafError::Parse(format!("epsilon {eps:?}: expected e.g. 0.5 or 1/2, > 0"));
        let (numerator, denominator) = if let Some((n, d)) = eps.split_once('/') {
            (
                n.parse::<u64>().map_err(|_| bad())?,
                d.parse::<u64>().map_err(|_| bad())?,
            )
        } else if let Some((int, frac)) = eps.split_once('.') {
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad());
            }
            let den = 10u64.pow(frac.len() as u32);
            let int: u64 = if int.is_empty() {
                0
            } else {
                int.parse().map_err(|_| bad())?
            };
            let frac: u64 = if frac.is_empty() {
                0
            } else {
                frac.parse().map_err(|_| bad())?
            };
            let num = int
                .checked_mul(den)
                .and_then(|v| v.checked_add(frac))
                .ok_or_else(bad)?;
            (num, den)
        } else {
            (eps.parse::<u64>().map_err(|_| bad())?, 1)
        };
        if numerator == 0 || denominator == 0 {
            return Err(bad());
        }
        Ok(DpStrategy::PureDpDiscreteLaplace {
            numerator,
            denominator,
        })
    }
}

impl fmt::Display for DpStrategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DpStrategy::None => write!(f, "none"),
            DpStrategy::PureDpDiscreteLaplace {
                numerator,
                denominator,
            } => write!(f, "pure-dp-discrete-laplace:{numerator}/{denominator}"),
        }
    }
}

impl DpStrategy {
    /// The neighbouring relation of every DAP task's guarantee: replace-one.
    /// DAP-09 publishes each collection's exact report count, which only
    /// replace-one allows, and prio calibrates for substitution.
    pub const RELATION: &'static str = "replace-one";

    /// The guarantee one collection of a `spec` task gives, in words
    /// (docs/dap.md): relation, mechanism, sensitivity and epsilon.
    pub fn guarantee(&self, spec: &VdafSpec) -> String {
        match (self, spec.l1_sensitivity()) {
            (DpStrategy::None, _) | (_, None) => {
                "none: no noise is added, collections are exact sums and give no DP guarantee"
                    .into()
            }
            (
                DpStrategy::PureDpDiscreteLaplace {
                    numerator,
                    denominator,
                },
                Some(l1),
            ) => {
                let epsilon = if *denominator == 1 {
                    numerator.to_string()
                } else {
                    format!("{numerator}/{denominator}")
                };
                format!(
                    "pure {epsilon}-DP per collection for replace-one neighbours (the report \
                     count is public): each aggregator adds discrete Laplace noise of scale \
                     {l1}/{epsilon} to every element of its aggregate share (prio's \
                     PureDpDiscreteLaplace, L1 sensitivity {l1}), so it holds even if one \
                     aggregator is dishonest"
                )
            }
        }
    }

    fn prio_strategy(&self) -> Result<Option<PureDpDiscreteLaplace>, DapVdafError> {
        match self {
            DpStrategy::None => Ok(None),
            DpStrategy::PureDpDiscreteLaplace {
                numerator,
                denominator,
            } => {
                let eps = Rational::from_unsigned(*numerator, *denominator)
                    .map_err(|e| DapVdafError::Parse(e.to_string()))?;
                let budget =
                    PureDpBudget::new(eps).map_err(|e| DapVdafError::Parse(e.to_string()))?;
                Ok(Some(PureDpDiscreteLaplace::from_budget(budget)))
            }
        }
    }
}

impl DapVdaf {
    /// Adds this aggregator's DP noise to an encoded aggregate share and
    /// returns the re-encoded share. Fails if the strategy asks for noise
    /// that the VDAF does not support.
    pub fn noised_aggregate_share(
        &self,
        strategy: &DpStrategy,
        encoded: &[u8],
        num_measurements: usize,
    ) -> Result<Vec<u8>, DapVdafError> {
        let Some(strategy) = strategy.prio_strategy()? else {
            return Ok(encoded.to_vec());
        };
        fn noise<V>(
            vdaf: &V,
            strategy: &PureDpDiscreteLaplace,
            encoded: &[u8],
            n: usize,
        ) -> Result<Vec<u8>, DapVdafError>
        where
            V: AggregatorWithNoise<16, 16, PureDpDiscreteLaplace>
                + Aggregator<16, 16, AggregationParam = ()>,
        {
            let mut share = V::AggregateShare::get_decoded_with_param(&(vdaf, &()), encoded)?;
            vdaf.add_noise_to_agg_share(strategy, &(), &mut share, n)?;
            Ok(share.get_encoded()?)
        }
        match self {
            DapVdaf::Histogram(v) => noise(v, &strategy, encoded, num_measurements),
            DapVdaf::SumVec(v) => noise(v, &strategy, encoded, num_measurements),
            DapVdaf::Count(_) | DapVdaf::Sum(_) => Err(DapVdafError::Parse(
                "DP noise is available for prio3histogram and prio3sumvec only".into(),
            )),
        }
    }
}

/// What the ping-pong preparation of every supported VDAF provides.
pub trait DapPrepare:
    vdaf::Aggregator<
        16,
        16,
        AggregationParam = (),
        PrepareState: Send + Sync,
        PrepareShare: Send + Sync,
        PrepareMessage: Send + Sync,
    > + vdaf::Vdaf<OutputShare: Send + Sync, InputShare: Send + Sync, PublicShare: Send + Sync>
    + vdaf::Collector
    + PingPongTopology<
        16,
        16,
        State = PingPongState<16, 16, Self>,
        ContinuedValue = PingPongContinuedValue<16, 16, Self>,
    > + Send
    + Sync
    + 'static
{
}

impl<T> DapPrepare for T where
    T: vdaf::Aggregator<
            16,
            16,
            AggregationParam = (),
            PrepareState: Send + Sync,
            PrepareShare: Send + Sync,
            PrepareMessage: Send + Sync,
        > + vdaf::Vdaf<OutputShare: Send + Sync, InputShare: Send + Sync, PublicShare: Send + Sync>
        + vdaf::Collector
        + PingPongTopology<
            16,
            16,
            State = PingPongState<16, 16, T>,
            ContinuedValue = PingPongContinuedValue<16, 16, T>,
        > + Send
        + Sync
        + 'static
{
}

/// The leader's state between its `initialize` message and the helper's
/// answer.
pub type LeaderState<V> = PingPongState<16, 16, V>;

fn decode_shares<V: DapPrepare>(
    vdaf: &V,
    role_index: usize,
    public_share: &[u8],
    input_share: &[u8],
) -> Result<(V::PublicShare, V::InputShare), PrepareError> {
    let public = V::PublicShare::get_decoded_with_param(vdaf, public_share)
        .map_err(|_| PrepareError::InvalidMessage)?;
    let input = V::InputShare::get_decoded_with_param(&(vdaf, role_index), input_share)
        .map_err(|_| PrepareError::InvalidMessage)?;
    Ok((public, input))
}

/// The leader's first step: decodes its shares and computes its prepare
/// share. `input_share` is the decrypted payload of its input share.
pub fn leader_initialize<V: DapPrepare>(
    vdaf: &V,
    verify_key: &[u8; VERIFY_KEY_LEN],
    report_id: &ReportId,
    public_share: &[u8],
    input_share: &[u8],
) -> Result<(LeaderState<V>, PingPongMessage), PrepareError> {
    let (public, input) = decode_shares(vdaf, 0, public_share, input_share)?;
    vdaf.leader_initialized(verify_key, &(), report_id.as_ref(), &public, &input)
        .map_err(|_| PrepareError::VdafPrepError)
}

/// The helper's only step: combines the leader's prepare share with its
/// own, checks the proof, and returns its output share and the `finish`
/// message for the leader. A report that fails the proof check is
/// rejected with `vdaf_prep_error`.
pub fn helper_initialize<V: DapPrepare>(
    vdaf: &V,
    verify_key: &[u8; VERIFY_KEY_LEN],
    report_id: &ReportId,
    public_share: &[u8],
    input_share: &[u8],
    inbound: &PingPongMessage,
) -> Result<(V::OutputShare, PingPongMessage), PrepareError> {
    let (public, input) = decode_shares(vdaf, 1, public_share, input_share)?;
    let transition = vdaf
        .helper_initialized(
            verify_key,
            &(),
            report_id.as_ref(),
            &public,
            &input,
            inbound,
        )
        .map_err(|_| PrepareError::VdafPrepError)?;
    match transition.evaluate(vdaf) {
        Ok((PingPongState::Finished(out), message)) => Ok((out, message)),
        // Prio3 finishes in one round; anything else is a protocol error.
        Ok((PingPongState::Continued(_), _)) => Err(PrepareError::InvalidMessage),
        Err(_) => Err(PrepareError::VdafPrepError),
    }
}

/// The leader's last step: the helper's `finish` message gives its output
/// share.
pub fn leader_finish<V: DapPrepare>(
    vdaf: &V,
    state: LeaderState<V>,
    inbound: &PingPongMessage,
) -> Result<V::OutputShare, PrepareError> {
    match vdaf.leader_continued(state, &(), inbound) {
        Ok(PingPongContinuedValue::FinishedNoMessage { output_share }) => Ok(output_share),
        Ok(PingPongContinuedValue::WithMessage { .. }) => Err(PrepareError::InvalidMessage),
        Err(_) => Err(PrepareError::VdafPrepError),
    }
}

/// Sums output shares into an aggregate share (the zero share if there
/// are none).
pub fn aggregate<V: DapPrepare>(
    vdaf: &V,
    output_shares: impl IntoIterator<Item = V::OutputShare>,
) -> Result<V::AggregateShare, DapVdafError> {
    Ok(vdaf.aggregate(&(), output_shares)?)
}

/// Decodes an aggregate share of `vdaf`; trailing bytes are an error.
pub fn decode_aggregate_share<V: DapPrepare>(
    vdaf: &V,
    bytes: &[u8],
) -> Result<V::AggregateShare, DapVdafError> {
    Ok(V::AggregateShare::get_decoded_with_param(
        &(vdaf, &()),
        bytes,
    )?)
}

/// Adds the encoded aggregate share `other` into `into` (both encodings).
pub fn merge_encoded(vdaf: &DapVdaf, into: &[u8], other: &[u8]) -> Result<Vec<u8>, DapVdafError> {
    use prio::vdaf::Aggregatable;
    with_dap_vdaf!(vdaf, |v| {
        let mut a = decode_aggregate_share(v, into)?;
        let b = decode_aggregate_share(v, other)?;
        a.merge(&b)?;
        Ok(a.get_encoded()?)
    })
}

/// The encoded zero aggregate share of `vdaf`.
pub fn zero_share(vdaf: &DapVdaf) -> Result<Vec<u8>, DapVdafError> {
    with_dap_vdaf!(vdaf, |v| Ok(
        aggregate(v, std::iter::empty())?.get_encoded()?
    ))
}

/// Checks that a report's public share and one aggregator's input share
/// (`role_index` 0 for the leader) decode as `vdaf`'s, trailing bytes
/// refused.
pub fn check_shares<V: DapPrepare>(
    vdaf: &V,
    role_index: usize,
    public_share: &[u8],
    input_share: &[u8],
) -> Result<(), DapVdafError> {
    V::PublicShare::get_decoded_with_param(vdaf, public_share)?;
    V::InputShare::get_decoded_with_param(&(vdaf, role_index), input_share)?;
    Ok(())
}

/// Decodes a field vector-free aggregation parameter: Prio3's is empty.
pub fn check_aggregation_parameter(bytes: &[u8]) -> Result<(), DapVdafError> {
    <()>::get_decoded(bytes)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prio::vdaf::{Client, Collector};

    #[test]
    fn specs_parse_and_print() {
        for (text, shown) in [
            ("prio3count", "prio3count"),
            ("prio3sum:8", "prio3sum:8"),
            ("prio3histogram:4:2", "prio3histogram:4:2"),
            ("prio3sumvec:3:8:6", "prio3sumvec:3:8:6"),
        ] {
            let spec: VdafSpec = text.parse().unwrap();
            assert_eq!(spec.to_string(), shown);
            assert_eq!(shown.parse::<VdafSpec>().unwrap(), spec);
        }
        assert!(matches!(
            "prio3histogram:1024".parse::<VdafSpec>().unwrap(),
            VdafSpec::Histogram { length: 1024, chunk_length: c } if c == optimal_chunk_length(1024)
        ));
        for bad in [
            "prio3sum",
            "prio3sum:0",
            "prio3sum:65",
            "prio3count:1",
            "prio3histogram:0",
            "paillier",
            "prio3histogram:4:0",
        ] {
            assert!(bad.parse::<VdafSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn dp_strategies_parse() {
        assert_eq!("none".parse::<DpStrategy>().unwrap(), DpStrategy::None);
        let half = DpStrategy::PureDpDiscreteLaplace {
            numerator: 5,
            denominator: 10,
        };
        assert_eq!(
            "pure-dp-discrete-laplace:0.5"
                .parse::<DpStrategy>()
                .unwrap(),
            half
        );
        assert_eq!(
            "pure-dp-discrete-laplace:3"
                .parse::<DpStrategy>()
                .unwrap()
                .to_string(),
            "pure-dp-discrete-laplace:3/1"
        );
        for bad in [
            "laplace:1",
            "pure-dp-discrete-laplace:0",
            "pure-dp-discrete-laplace:-1",
            "pure-dp-discrete-laplace:1/0",
        ] {
            assert!(bad.parse::<DpStrategy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn signed_maps_upper_half_to_negative() {
        let p = VdafSpec::Count.field_modulus();
        assert_eq!(signed(5, p), 5);
        assert_eq!(signed(p - 3, p), -3);
        let p = VdafSpec::Sum { bits: 8 }.field_modulus();
        assert_eq!(signed(p - 1, p), -1);
    }

    /// A full one-round preparation of a histogram report, then a tampered
    /// helper share that the proof check must reject.
    #[test]
    fn prepare_round_trip_and_tamper() {
        let spec: VdafSpec = "prio3histogram:4".parse().unwrap();
        let DapVdaf::Histogram(vdaf) = spec.instantiate().unwrap() else {
            unreachable!()
        };
        let key = [7u8; 16];
        let report_id = ReportId::from([1u8; 16]);
        let (public, shares) = vdaf.shard(&2, report_id.as_ref()).unwrap();
        let public = public.get_encoded().unwrap();
        let leader_in = shares[0].get_encoded().unwrap();
        let mut helper_in = shares[1].get_encoded().unwrap();
        let (state, msg) = leader_initialize(&vdaf, &key, &report_id, &public, &leader_in).unwrap();
        let (helper_out, finish) =
            helper_initialize(&vdaf, &key, &report_id, &public, &helper_in, &msg).unwrap();
        let leader_out = leader_finish(&vdaf, state.clone(), &finish).unwrap();
        let shares = [
            aggregate(&vdaf, [leader_out]).unwrap(),
            aggregate(&vdaf, [helper_out]).unwrap(),
        ];
        assert_eq!(vdaf.unshard(&(), shares, 1).unwrap(), vec![0, 0, 1, 0]);

        let last = helper_in.len() - 1;
        helper_in[last] ^= 1;
        let err = helper_initialize(&vdaf, &key, &report_id, &public, &helper_in, &msg);
        assert!(matches!(
            err,
            Err(PrepareError::VdafPrepError | PrepareError::InvalidMessage)
        ));
    }
}
