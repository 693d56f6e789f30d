//! Task definitions and task ids.
//!
//! A task is defined by what it measures, its batch rules, its DP
//! mechanism and budget, and the collector's public key with the layout the
//! ciphertexts use. Its id is the SHA-256 of the canonical encoding of that
//! definition, so a client configured with a task id can check that the
//! definition (and the key in it) that a server hands out is the one the
//! collector created: a server that swaps in its own key changes the hash.
//!
//! This module checks what can be checked without the scheme: the framing,
//! the batch rules, the DP parameters, and that the key's scheme matches
//! the layout's. That the layout is the one the scheme derives for this key
//! and task is checked by `hetally-schemes`, which every client and the
//! server call before using a definition.

use std::fmt;
use std::str::FromStr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::codec::{CodecError, FileKind, Reader, Writer};
use crate::dp::{DpMechanism, Rational, Relation, TrusteeNoise};
use crate::keyfile::{self, MAX_KEY_FILE_BYTES};
use crate::measurement::Measurement;
use crate::scheme::{Layout, Scheme};

/// Domain separation for task ids.
const TASK_ID_DOMAIN: &[u8] = b"hetally task definition v1";

/// Version byte of the canonical task encoding of a task without input
/// proofs: the original encoding, so such tasks keep their ids.
const TASK_ENCODING_V1: u8 = 1;

/// Version byte of a task with input proofs: the version-1 fields, then a
/// flags byte whose bit 0 (input proofs) is set. Written only when a flag is
/// set, so every definition has exactly one encoding.
const TASK_ENCODING_V2: u8 = 2;

/// Version byte of a task that declares its neighbouring relation: the
/// version-1 fields, then the flags byte (bit 0: input proofs; always
/// written), then the relation byte. Every task created since relations
/// exist is written this way.
const TASK_ENCODING_V3: u8 = 3;

/// Flag bit of [`TaskDefinition::input_proofs`] in version-2 and version-3
/// encodings.
const FLAG_INPUT_PROOFS: u8 = 1;

/// Flag bit of [`TaskDefinition::trustee_noise`] in version-3 encodings:
/// when set, its two bytes follow the relation byte.
const FLAG_TRUSTEE_NOISE: u8 = 2;

/// Largest canonical task definition accepted.
pub const MAX_TASK_DEFINITION_BYTES: usize = 64 << 20;

/// Longest time precision: one week.
pub const MAX_TIME_PRECISION: u64 = 7 * 24 * 3600;

/// Errors from building or decoding a task definition.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TaskError {
    /// A parameter is not acceptable.
    #[error("invalid task: {0}")]
    Invalid(String),
    /// The encoding is malformed.
    #[error("malformed task definition: {0}")]
    Codec(#[from] CodecError),
    /// The scheme rejected the key or the layout.
    #[error("{0}")]
    Scheme(String),
    /// The definition does not hash to the expected id.
    #[error("task definition does not match task id {expected} (it hashes to {actual}): the server may have altered the task or its public key")]
    IdMismatch {
        /// The id the caller asked for.
        expected: TaskId,
        /// What the definition hashes to.
        actual: TaskId,
    },
}

/// A 32-byte task id, shown as base64url without padding (as in DAP).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub [u8; 32]);

impl TaskId {
    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0))
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

impl FromStr for TaskId {
    type Err = TaskError;

    /// Parses exactly the text form [`TaskId`]'s `Display` writes: 43
    /// characters of base64url without padding (the last one canonical).
    /// Whitespace, padding and any other character are refused, never
    /// trimmed: `GET /tasks/{id}%20` names no task.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const LEN: usize = 43;
        let bad = |why: String| {
            TaskError::Invalid(format!(
                "{s:?} is not a task id: {why} (a task id is exactly {LEN} characters of \
                 base64url, A-Z a-z 0-9 - _, without padding or spaces)"
            ))
        };
        if let Some((at, c)) = s
            .char_indices()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
        {
            return Err(bad(format!(
                "character {c:?} at byte {at} is not base64url"
            )));
        }
        if s.len() != LEN {
            return Err(bad(format!("it has {} characters", s.len())));
        }
        // The alphabet and length are right; a decoding failure now means
        // the last character carries bits past the 32 bytes.
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|_| bad("its last character is not canonical".into()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| bad("it does not decode to 32 bytes".into()))?;
        Ok(TaskId(bytes))
    }
}

/// Everything that defines a task; see the module docs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskDefinition {
    /// What each report measures.
    pub measurement: Measurement,
    /// Fewest reports a release may hold.
    pub min_batch_size: u64,
    /// Most reports a release may hold (bounds slot sizes and noise growth).
    pub max_batch_size: u64,
    /// Report timestamps are rounded down to a multiple of this many
    /// seconds, and batch intervals are aligned to it.
    pub time_precision: u64,
    /// Noise added to each release.
    pub dp: DpMechanism,
    /// Total privacy budget (epsilon or rho, in the mechanism's unit);
    /// `None` exactly when `dp` is `None`.
    pub budget: Option<Rational>,
    /// The collector's public key file (its canonical encoding).
    pub public_key: Vec<u8>,
    /// How values are laid out in ciphertexts under that key.
    pub layout: Layout,
    /// Reports must carry zero-knowledge proofs that they encrypt a valid
    /// measurement, and the server rejects those that do not
    /// (`docs/proofs.md`). Without it the server trusts every client: one
    /// report can put any value into an aggregate.
    pub input_proofs: bool,
    /// The neighbouring relation the DP guarantee is stated for; `None` for
    /// a task created before relations were declared (see
    /// [`crate::dp::Relation`]: its guarantee is replace-one's, at the
    /// sensitivity replace-one needs).
    pub relation: Option<Relation>,
    /// Set when the trustees of a threshold key draw the DP noise, not the
    /// server ([`TrusteeNoise`]).
    pub trustee_noise: Option<TrusteeNoise>,
}

impl TaskDefinition {
    /// Checks the definition's parameters against each other.
    pub fn check(&self) -> Result<(), TaskError> {
        let invalid = |s: String| Err(TaskError::Invalid(s));
        if self.min_batch_size == 0 {
            return invalid("min_batch_size must be at least 1".into());
        }
        if self.max_batch_size < self.min_batch_size {
            return invalid(format!(
                "max_batch_size ({}) is below min_batch_size ({})",
                self.max_batch_size, self.min_batch_size
            ));
        }
        if self.time_precision == 0 || self.time_precision > MAX_TIME_PRECISION {
            return invalid(format!(
                "time_precision must be between 1 and {MAX_TIME_PRECISION} seconds, got {}",
                self.time_precision
            ));
        }
        self.dp
            .check()
            .map_err(|e| TaskError::Invalid(e.to_string()))?;
        match (&self.dp, &self.budget) {
            (DpMechanism::None, None) => {}
            (DpMechanism::None, Some(_)) => {
                return invalid("a budget was given but the task has no DP mechanism".into())
            }
            (_, None) => return invalid("a task with a DP mechanism needs a budget".into()),
            (_, Some(b)) if b.is_zero() => {
                return invalid("the privacy budget must be greater than zero".into())
            }
            _ => {}
        }
        let key_scheme = keyfile::key_file_scheme(&self.public_key, FileKind::PublicKey)
            .map_err(|e| TaskError::Invalid(format!("the public key: {e}")))?;
        if key_scheme != self.layout.scheme() {
            return invalid(format!(
                "the task's layout is for {} but its key is a {key_scheme} key",
                self.layout.scheme()
            ));
        }
        if self.relation == Some(Relation::AddRemove) && self.dp == DpMechanism::None {
            return invalid(
                "the add-remove relation needs a DP mechanism: its report counts are released \
                 with the task's noise, and without noise nothing is hidden; use replace-one"
                    .into(),
            );
        }
        if let Some(trustees) = &self.trustee_noise {
            self.check_trustee_noise(trustees)?;
        }
        if let Layout::Tfhe { crs_hash, .. } = &self.layout {
            if self.relation == Some(Relation::AddRemove) {
                return invalid(
                    "a TFHE task cannot use the add-remove relation: decrypting a TFHE aggregate \
                     needs its exact report count, which add-remove keeps secret; use \
                     replace-one, or the paillier scheme"
                        .into(),
                );
            }
            match (self.input_proofs, crs_hash) {
                (true, None) => return invalid("a TFHE task with input proofs needs a CRS".into()),
                (false, Some(_)) => {
                    return invalid("a CRS is only part of a task with input proofs".into())
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// What a task with trustee noise needs besides `1 <= honest <=
    /// contributors`: Gaussian noise (the distributed discrete Gaussian is
    /// what is analysed), replace-one (an add/remove task's report count
    /// would need noise at claim time, before any trustee is asked), and a
    /// Paillier threshold key. That the key has at least `contributors`
    /// trustees is checked by `hetally-schemes`, which reads the key.
    fn check_trustee_noise(&self, trustees: &TrusteeNoise) -> Result<(), TaskError> {
        let invalid = |s: &str| Err(TaskError::Invalid(format!("trustee noise: {s}")));
        trustees
            .check()
            .map_err(|e| TaskError::Invalid(format!("trustee noise: {e}")))?;
        if !matches!(self.dp, DpMechanism::Gaussian { .. }) {
            return invalid(
                "trustees draw discrete Gaussian shares, so the task's mechanism must be gaussian:RHO (or gaussian-eps:EPSILON:DELTA)",
            );
        }
        if self.relation != Some(Relation::ReplaceOne) {
            return invalid(
                "a task with trustee noise uses the replace-one relation: under add/remove the report count needs noise when the batch is claimed, before trustees take part",
            );
        }
        let (scheme, threshold) =
            keyfile::read_public_key_header(&mut Reader::new(&self.public_key))
                .map_err(|e| TaskError::Invalid(format!("the public key: {e}")))?;
        if scheme != Scheme::Paillier || !threshold {
            return invalid(
                "trustee noise needs a Paillier threshold key (hetally-keytool keygen --scheme paillier \
                 --trustees N --threshold T): the server draws a TFHE task's noise",
            );
        }
        Ok(())
    }

    /// The task's scheme.
    pub fn scheme(&self) -> Scheme {
        self.layout.scheme()
    }

    /// True if the task's input proofs need its CRS (a TFHE task with input
    /// proofs); the CRS is served at `GET /tasks/{id}/crs` and checked
    /// against the hash in the layout.
    pub fn needs_crs(&self) -> bool {
        self.input_proofs && self.layout.crs_hash().is_some()
    }

    /// The canonical encoding the task id hashes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(match (self.relation, self.input_proofs) {
            (Some(_), _) => TASK_ENCODING_V3,
            (None, true) => TASK_ENCODING_V2,
            (None, false) => TASK_ENCODING_V1,
        });
        self.measurement.encode(&mut w);
        w.u64(self.min_batch_size)
            .u64(self.max_batch_size)
            .u64(self.time_precision);
        self.dp.encode(&mut w);
        match &self.budget {
            None => {
                w.u8(0);
            }
            Some(b) => {
                w.u8(1);
                b.encode(&mut w);
            }
        }
        w.u8(self.layout.scheme().to_byte());
        w.var_bytes(&self.public_key);
        self.layout.encode(&mut w);
        match self.relation {
            Some(relation) => {
                let mut flags = 0;
                if self.input_proofs {
                    flags |= FLAG_INPUT_PROOFS;
                }
                if self.trustee_noise.is_some() {
                    flags |= FLAG_TRUSTEE_NOISE;
                }
                w.u8(flags);
                relation.encode(&mut w);
                if let Some(trustees) = &self.trustee_noise {
                    trustees.encode(&mut w);
                }
            }
            None if self.input_proofs => {
                w.u8(FLAG_INPUT_PROOFS);
            }
            None => {}
        }
        w.finish()
    }

    /// Decodes and checks a canonical encoding.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TaskError> {
        if bytes.len() > MAX_TASK_DEFINITION_BYTES {
            return Err(CodecError::TooLong {
                what: "task definition",
                len: bytes.len() as u64,
                max: MAX_TASK_DEFINITION_BYTES as u64,
            }
            .into());
        }
        let mut r = Reader::new(bytes);
        let version = r.u8("task encoding version")?;
        if !matches!(
            version,
            TASK_ENCODING_V1 | TASK_ENCODING_V2 | TASK_ENCODING_V3
        ) {
            return Err(CodecError::UnsupportedVersion { found: version }.into());
        }
        let measurement = Measurement::decode(&mut r)?;
        let min_batch_size = r.u64("min batch size")?;
        let max_batch_size = r.u64("max batch size")?;
        let time_precision = r.u64("time precision")?;
        let dp = DpMechanism::decode(&mut r)?;
        let budget = match r.u8("budget flag")? {
            0 => None,
            1 => Some(Rational::decode(&mut r)?),
            f => return Err(CodecError::invalid("budget flag", format!("{f}")).into()),
        };
        let scheme = Scheme::from_byte(r.u8("scheme")?)?;
        let public_key = r.var_bytes(MAX_KEY_FILE_BYTES, "public key")?.to_vec();
        let layout = Layout::decode(scheme, &mut r)?;
        let (input_proofs, relation, trustee_noise) = match version {
            TASK_ENCODING_V1 => (false, None, None),
            TASK_ENCODING_V2 => match r.u8("task flags")? {
                FLAG_INPUT_PROOFS => (true, None, None),
                f => {
                    return Err(CodecError::invalid(
                        "task flags",
                        format!("{f:#04x}: only 0x01 (input proofs) is defined, and version 2 is only written with it set"),
                    )
                    .into())
                }
            },
            _ => {
                let flags = r.u8("task flags")?;
                if flags & !(FLAG_INPUT_PROOFS | FLAG_TRUSTEE_NOISE) != 0 {
                    return Err(CodecError::invalid(
                        "task flags",
                        format!(
                            "{flags:#04x}: only 0x01 (input proofs) and 0x02 (trustee noise) \
                             are defined"
                        ),
                    )
                    .into());
                }
                let relation = Relation::decode(&mut r)?;
                let trustees = if flags & FLAG_TRUSTEE_NOISE != 0 {
                    Some(TrusteeNoise::decode(&mut r)?)
                } else {
                    None
                };
                (flags & FLAG_INPUT_PROOFS != 0, Some(relation), trustees)
            }
        };
        r.finish("task definition")?;
        let task = TaskDefinition {
            measurement,
            min_batch_size,
            max_batch_size,
            time_precision,
            dp,
            budget,
            public_key,
            layout,
            input_proofs,
            relation,
            trustee_noise,
        };
        task.check()?;
        Ok(task)
    }

    /// The task id: SHA-256 of a domain tag and the canonical encoding.
    pub fn id(&self) -> TaskId {
        task_id_of(&self.to_bytes())
    }

    /// Decodes a definition received from a server and checks it hashes to
    /// `expected`.
    pub fn verify(bytes: &[u8], expected: &TaskId) -> Result<Self, TaskError> {
        let actual = task_id_of(bytes);
        if actual != *expected {
            return Err(TaskError::IdMismatch {
                expected: *expected,
                actual,
            });
        }
        Self::from_bytes(bytes)
    }
}

/// The id of a canonical task encoding.
pub fn task_id_of(definition: &[u8]) -> TaskId {
    let mut h = Sha256::new();
    h.update(TASK_ID_DOMAIN);
    h.update(definition);
    TaskId(h.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FileKind;
    use crate::keyfile;

    fn definition(input_proofs: bool, relation: Option<Relation>) -> TaskDefinition {
        // The protocol only reads a key's framing; its body is the scheme's.
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::PublicKey, Scheme::Paillier);
        w.bytes(&[7; 40]);
        TaskDefinition {
            measurement: Measurement::Histogram { buckets: 4 },
            min_batch_size: 10,
            max_batch_size: 1000,
            time_precision: 60,
            dp: "laplace:1".parse().unwrap(),
            budget: Some(Rational::new(5, 1)),
            public_key: w.finish(),
            layout: Layout::Paillier { slot_bits: 20 },
            input_proofs,
            relation,
            trustee_noise: None,
        }
    }

    #[test]
    fn every_version_round_trips_and_relations_change_the_id() {
        for proofs in [false, true] {
            for relation in [None, Some(Relation::AddRemove), Some(Relation::ReplaceOne)] {
                let d = definition(proofs, relation);
                let bytes = d.to_bytes();
                let expected = match (relation, proofs) {
                    (Some(_), _) => TASK_ENCODING_V3,
                    (None, true) => TASK_ENCODING_V2,
                    (None, false) => TASK_ENCODING_V1,
                };
                assert_eq!(bytes[0], expected);
                assert_eq!(TaskDefinition::from_bytes(&bytes).unwrap(), d);
                assert_eq!(TaskDefinition::verify(&bytes, &d.id()).unwrap(), d);
            }
        }
        let ids: std::collections::HashSet<TaskId> =
            [None, Some(Relation::AddRemove), Some(Relation::ReplaceOne)]
                .into_iter()
                .map(|r| definition(true, r).id())
                .collect();
        assert_eq!(ids.len(), 3);
    }

    #[test]
    fn malformed_version_3_encodings_are_refused() {
        let good = definition(false, Some(Relation::ReplaceOne)).to_bytes();
        let n = good.len();
        // Unknown flags, unknown relation, missing relation, trailing bytes.
        let mut flags = good.clone();
        flags[n - 2] = 0x02;
        assert!(TaskDefinition::from_bytes(&flags).is_err());
        let mut relation = good.clone();
        relation[n - 1] = 9;
        assert!(TaskDefinition::from_bytes(&relation).is_err());
        assert!(TaskDefinition::from_bytes(&good[..n - 1]).is_err());
        let mut trailing = good.clone();
        trailing.push(0);
        assert!(TaskDefinition::from_bytes(&trailing).is_err());
        let mut version = good;
        version[0] = 4;
        assert!(TaskDefinition::from_bytes(&version).is_err());
    }

    #[test]
    fn tfhe_tasks_cannot_hide_their_batch_size() {
        let mut w = Writer::new();
        keyfile::write_key_header(&mut w, FileKind::PublicKey, Scheme::Tfhe);
        w.bytes(&[1; 16]);
        let mut d = definition(false, Some(Relation::AddRemove));
        d.public_key = w.finish();
        d.layout = Layout::Tfhe {
            delta_log2: 40,
            crs_hash: None,
        };
        assert!(d.check().unwrap_err().to_string().contains("add-remove"));
        d.relation = Some(Relation::ReplaceOne);
        d.check().unwrap();
    }

    #[test]
    fn task_ids_parse_strictly() {
        let id = TaskId([0xfb; 32]);
        let text = id.to_string();
        assert_eq!(text.len(), 43);
        assert_eq!(text.parse::<TaskId>().unwrap(), id);
        let refused = |s: &str| {
            let e = s.parse::<TaskId>().unwrap_err().to_string();
            assert!(e.contains("is not a task id"), "{s:?}: {e}");
            e
        };
        // Whitespace anywhere is refused, not trimmed.
        for s in [
            format!("{text} "),
            format!(" {text}"),
            format!("{text}\n"),
            format!("{}\t{}", &text[..20], &text[20..]),
        ] {
            assert!(refused(&s).contains("is not base64url"), "{s:?}");
        }
        // Padding, the standard alphabet, wrong lengths.
        assert!(refused(&format!("{text}=")).contains("'='"));
        assert!(refused(&text.replace('-', "+").replace('_', "/")).contains("not base64url"));
        assert!(refused(&text[..42]).contains("42 characters"));
        assert!(refused(&format!("{text}A")).contains("44 characters"));
        assert!(refused("").contains("0 characters"));
        // 43 characters hold 258 bits: the last two must be zero.
        let mut last = text.clone();
        last.pop();
        last.push('_');
        assert!(refused(&last).contains("not canonical"));
    }
}
