//! hetally's client core: what an app embeds to send encrypted reports.
//!
//! It has no I/O of its own (after Mozilla Glean's SDK core): the app's HTTP
//! stack fetches `GET /tasks/{id}` and uploads the bytes this crate
//! prepares; `hetally-client`'s uploader and the language bindings
//! (`client/python`) are two such stacks. What it does:
//!
//! * [`Task::from_info`] checks that a task served by a server hashes to the
//!   task id the app was configured with, so a server that substitutes its
//!   own public key is detected, and checks the definition's layout;
//! * [`Task::prepare`] encrypts a measurement (and proves it valid where the
//!   task asks) into a report, ready for `PUT /tasks/{id}/reports` with
//!   media type [`REPORT_MEDIA_TYPE`];
//! * [`retry`] says, from an answer's status, problem type and
//!   `Retry-After`, whether and when to try an upload again;
//! * [`Task::prepare_from_tape`] replays a test vector's recorded
//!   randomness (`test-vectors/v1`), for tests only.
//!
//! Paillier tasks use pure-Rust big integers by default, so the core builds
//! without a C toolchain and cross-compiles to phones; the `gmp` feature
//! uses GMP instead (same bytes, about twice as fast). TFHE tasks need the
//! `tfhe` feature.

#![forbid(unsafe_code)]

pub mod retry;
mod tape;

use std::sync::Arc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_protocol::api::TaskInfo;
use hetally_protocol::roles::{Encrypter, ReportContext, SchemeError};
use hetally_protocol::task::TaskError;
use hetally_protocol::{Report, ReportId, TaskDefinition, TaskId};
use rand::rngs::OsRng;
use rand::{CryptoRng, RngCore};
use thiserror::Error;

pub use hetally_protocol;
pub use hetally_protocol::report::REPORT_MEDIA_TYPE;
pub use hetally_schemes::Arithmetic;

/// Errors of the client core.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The task served does not match the task id, or does not decode.
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The task's scheme refused its definition, or the measurement.
    #[error(transparent)]
    Scheme(#[from] SchemeError),
    /// The server's description of the task could not be read.
    #[error("the server's task description is not valid: {0}")]
    Protocol(String),
    /// [`Task::prepare_from_tape`]: the tape ran out before the report was
    /// prepared.
    #[error(
        "the randomness tape has {len} bytes, but preparing this report draws {needed}: the \
         tape does not belong to this task, measurement or report"
    )]
    TapeTooShort {
        /// Bytes on the tape.
        len: usize,
        /// Bytes preparing the report drew.
        needed: usize,
    },
    /// [`Task::prepare_from_tape`]: the report was prepared with bytes of
    /// the tape left over.
    #[error(
        "the randomness tape has {len} bytes, but preparing this report drew only {used}: a \
         tape must be used up exactly, so it does not belong to this task, measurement or report"
    )]
    TapeNotUsedUp {
        /// Bytes on the tape.
        len: usize,
        /// Bytes preparing the report drew.
        used: usize,
    },
}

/// A task, verified against its id and ready to prepare reports.
#[derive(Debug, Clone)]
pub struct Task {
    id: TaskId,
    definition: Arc<TaskDefinition>,
    encrypter: Arc<dyn Encrypter>,
}

/// One prepared report: its id, its rounded time, and its wire encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedReport {
    /// The random report id.
    pub id: ReportId,
    /// The report's time, rounded down to the task's time precision.
    pub time: u64,
    /// The encoded report: the body of `PUT /tasks/{id}/reports`.
    pub bytes: Vec<u8>,
}

impl Task {
    /// Verifies the JSON answer of `GET /tasks/{task_id}` against the task
    /// id the app was configured with. A task whose input proofs need a CRS
    /// (TFHE) also needs the body of `GET /tasks/{task_id}/crs`.
    pub fn from_info(
        task_id: &TaskId,
        info_json: &[u8],
        crs: Option<&[u8]>,
        arithmetic: Arithmetic,
    ) -> Result<Self, CoreError> {
        let info: TaskInfo =
            serde_json::from_slice(info_json).map_err(|e| CoreError::Protocol(e.to_string()))?;
        let definition = URL_SAFE_NO_PAD
            .decode(&info.definition)
            .map_err(|_| CoreError::Protocol("the task definition is not base64url".into()))?;
        Self::from_definition(task_id, &definition, crs, arithmetic)
    }

    /// Verifies a canonical task definition against the task id.
    pub fn from_definition(
        task_id: &TaskId,
        definition: &[u8],
        crs: Option<&[u8]>,
        arithmetic: Arithmetic,
    ) -> Result<Self, CoreError> {
        let definition = TaskDefinition::verify(definition, task_id)?;
        let encrypter = hetally_schemes::encrypter_with(&definition, crs, arithmetic)?;
        Ok(Task {
            id: *task_id,
            definition: Arc::new(definition),
            encrypter,
        })
    }

    /// Whether a definition needs its CRS to be used (see
    /// [`Task::from_definition`]).
    pub fn definition_needs_crs(definition: &[u8]) -> Result<bool, CoreError> {
        Ok(TaskDefinition::from_bytes(definition)?.needs_crs())
    }

    /// The task id.
    pub fn id(&self) -> &TaskId {
        &self.id
    }

    /// The verified definition.
    pub fn definition(&self) -> &TaskDefinition {
        &self.definition
    }

    /// The path to upload reports to, relative to the server's base URL.
    pub fn upload_path(&self) -> String {
        format!("tasks/{}/reports", self.id)
    }

    /// Parses a value as a user types it (`1`, a bucket index, `3,0,7`) into
    /// the measurement's values.
    pub fn parse_value(&self, text: &str) -> Result<Vec<u64>, CoreError> {
        Ok(self
            .definition
            .measurement
            .parse_value(text)
            .map_err(SchemeError::from)?)
    }

    /// Encrypts a measurement into a report timestamped `unix_time` (rounded
    /// down to the task's precision), with a fresh random report id and
    /// randomness from the operating system.
    pub fn prepare(&self, values: &[u64], unix_time: u64) -> Result<PreparedReport, CoreError> {
        self.prepare_with_rng(values, unix_time, &mut OsRng)
    }

    /// [`Task::prepare`] with the given randomness (for tests and test
    /// vectors; production code uses [`Task::prepare`]).
    pub fn prepare_with_rng<R: RngCore + CryptoRng>(
        &self,
        values: &[u64],
        unix_time: u64,
        rng: &mut R,
    ) -> Result<PreparedReport, CoreError> {
        let report = self.prepare_report(values, unix_time, rng)?;
        Ok(PreparedReport {
            id: report.id,
            time: report.time,
            bytes: report.to_bytes(),
        })
    }

    /// [`Task::prepare`] with every random byte taken, in order, from
    /// `tape`: the `randomness` of a report test vector
    /// (`test-vectors/v1`). The tape must be used up exactly; one that runs
    /// out is [`CoreError::TapeTooShort`], one with bytes left over
    /// [`CoreError::TapeNotUsedUp`]. The order in which a report draws its
    /// bytes (report id first, then the scheme's encryption and proof
    /// randomness) is in `docs/protocol.md`, section 15.
    ///
    /// **For test vectors only.** The report's secrecy rests entirely on
    /// the tape: anyone who knows it can decrypt the report, and a tape
    /// used twice repeats every exponent and proof mask. Apps use
    /// [`Task::prepare`].
    pub fn prepare_from_tape(
        &self,
        values: &[u64],
        unix_time: u64,
        tape: &[u8],
    ) -> Result<PreparedReport, CoreError> {
        let mut rng = tape::Tape::new(tape);
        let report = self.prepare_with_rng(values, unix_time, &mut rng)?;
        rng.finish()?;
        Ok(report)
    }

    /// [`Task::prepare_with_rng`], as the decoded report (for callers that
    /// look inside it before encoding it).
    pub fn prepare_report<R: RngCore + CryptoRng>(
        &self,
        values: &[u64],
        unix_time: u64,
        rng: &mut R,
    ) -> Result<Report, CoreError> {
        let precision = self.definition.time_precision;
        let time = unix_time - unix_time % precision;
        let id = ReportId::random(rng);
        let ctx = ReportContext {
            task_id: &self.id,
            report_id: &id,
            time,
        };
        let payload = self.encrypter.encrypt(values, &ctx, rng)?;
        Ok(Report { id, time, payload })
    }
}
