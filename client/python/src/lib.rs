//! `hetally._core`: the Python bindings of hetally's client core
//! (`hetally-client-core`), built with PyO3 and maturin.
//!
//! The core has no I/O of its own, and neither has this module: it checks a
//! task served by `GET /tasks/{id}` against the task id the app was given
//! ([`Task::from_info`]), prepares encrypted (and, where the task asks,
//! proven) reports as bytes, and answers the core's retry policy. The
//! `hetally` Python package around it (`python/hetally/`) fetches and
//! uploads with the standard library's `urllib`; `docs/python.md` is its
//! user guide.
//!
//! Paillier tasks use pure-Rust arithmetic unless the crate is built with
//! the `gmp` feature; TFHE tasks need the `tfhe` feature and are refused
//! with [`UnsupportedTask`] otherwise.

use std::str::FromStr;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hetally_client_core::hetally_protocol::api::TaskInfo;
use hetally_client_core::hetally_protocol::problem::ProblemType;
use hetally_client_core::hetally_protocol::task::TaskError;
use hetally_client_core::hetally_protocol::Scheme;
use hetally_client_core::hetally_protocol::{SchemeError, TaskDefinition, TaskId};
use hetally_client_core::retry::{self, Attempt, Outcome, RetryPolicy as CorePolicy};
use hetally_client_core::{Arithmetic, CoreError, PreparedReport as CoreReport};
use pyo3::create_exception;
use pyo3::exceptions::{PyException, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyBytes;

create_exception!(
    hetally,
    HetallyError,
    PyException,
    "Base class of every error the hetally SDK raises."
);
create_exception!(
    hetally,
    TaskMismatch,
    HetallyError,
    "The task the server served is not the task the id names (the server may have altered it or \
     its public key), or its definition is not valid."
);
create_exception!(
    hetally,
    InvalidMeasurement,
    HetallyError,
    "The value is not a valid measurement for the task (wrong length, too large, not one-hot)."
);
create_exception!(
    hetally,
    UnsupportedTask,
    HetallyError,
    "The task needs something this build of the SDK was built without (TFHE tasks need the `tfhe` \
     feature)."
);

/// The message for a TFHE task in a build without TFHE.
const TFHE_NOT_BUILT: &str = "TFHE tasks are not supported by this build of the hetally Python \
                              SDK: reinstall it built with the `tfhe` feature (docs/python.md, \
                              \"TFHE tasks\")";

/// The arithmetic this build prepares Paillier reports with.
fn arithmetic() -> Arithmetic {
    Arithmetic::fastest()
}

/// Parses a task id's text form, raising `ValueError` with the core's
/// explanation.
fn parse_task_id(text: &str) -> PyResult<TaskId> {
    TaskId::from_str(text).map_err(|e| PyValueError::new_err(e.to_string()))
}

/// Raises a core error from checking a task as the Python exception that
/// says what went wrong.
fn task_error(error: CoreError) -> PyErr {
    match error {
        CoreError::Scheme(SchemeError::Measurement(e)) => {
            InvalidMeasurement::new_err(e.to_string())
        }
        CoreError::Task(TaskError::IdMismatch { .. }) => TaskMismatch::new_err(error.to_string()),
        CoreError::Task(_) | CoreError::Scheme(_) => {
            TaskMismatch::new_err(format!("the task served is not usable: {error}"))
        }
        other => HetallyError::new_err(other.to_string()),
    }
}

/// Raises a core error from preparing a report.
fn prepare_error(error: CoreError) -> PyErr {
    match error {
        CoreError::Scheme(SchemeError::Measurement(e)) => {
            InvalidMeasurement::new_err(e.to_string())
        }
        other => HetallyError::new_err(other.to_string()),
    }
}

/// Refuses a TFHE definition in a build without TFHE, before the core
/// does, so that the error is [`UnsupportedTask`] with a clear message.
fn check_supported(definition: &[u8]) -> PyResult<()> {
    if cfg!(feature = "tfhe") {
        return Ok(());
    }
    // A definition that does not decode is left to the core, which says why.
    match TaskDefinition::from_bytes(definition) {
        Ok(d) if d.scheme() == Scheme::Tfhe => Err(UnsupportedTask::new_err(TFHE_NOT_BUILT)),
        _ => Ok(()),
    }
}

/// A task, checked against its id and ready to prepare reports.
#[pyclass(frozen, module = "hetally._core")]
struct Task {
    inner: hetally_client_core::Task,
}

#[pymethods]
impl Task {
    /// Checks the JSON body of `GET /tasks/{task_id}` against `task_id`
    /// (and, for a TFHE task with input proofs, the body of
    /// `GET /tasks/{task_id}/crs`).
    #[staticmethod]
    #[pyo3(signature = (task_id, info_json, crs=None))]
    fn from_info(task_id: &str, info_json: &[u8], crs: Option<&[u8]>) -> PyResult<Self> {
        let id = parse_task_id(task_id)?;
        let definition = definition_of_info(info_json)?;
        check_supported(&definition)?;
        let inner = hetally_client_core::Task::from_info(&id, info_json, crs, arithmetic())
            .map_err(task_error)?;
        Ok(Task { inner })
    }

    /// Checks a canonical task definition against `task_id`.
    #[staticmethod]
    #[pyo3(signature = (task_id, definition, crs=None))]
    fn from_definition(task_id: &str, definition: &[u8], crs: Option<&[u8]>) -> PyResult<Self> {
        let id = parse_task_id(task_id)?;
        check_supported(definition)?;
        let inner = hetally_client_core::Task::from_definition(&id, definition, crs, arithmetic())
            .map_err(task_error)?;
        Ok(Task { inner })
    }

    /// Whether the JSON body of `GET /tasks/{id}` describes a task that
    /// needs its CRS (`GET /tasks/{id}/crs`) to be used.
    #[staticmethod]
    fn info_needs_crs(info_json: &[u8]) -> PyResult<bool> {
        let definition = definition_of_info(info_json)?;
        hetally_client_core::Task::definition_needs_crs(&definition).map_err(task_error)
    }

    /// The task id, base64url.
    #[getter]
    fn id(&self) -> String {
        self.inner.id().to_string()
    }

    /// The canonical definition the id hashes.
    #[getter]
    fn definition<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.inner.definition().to_bytes())
    }

    /// `paillier` or `tfhe`.
    #[getter]
    fn scheme(&self) -> String {
        self.inner.definition().scheme().to_string()
    }

    /// The measurement's text form (`count`, `histogram:4`, ...).
    #[getter]
    fn measurement(&self) -> String {
        self.inner.definition().measurement.to_string()
    }

    /// Values per report.
    #[getter]
    fn length(&self) -> usize {
        self.inner.definition().measurement.len()
    }

    /// Whether reports carry input proofs.
    #[getter]
    fn input_proofs(&self) -> bool {
        self.inner.definition().input_proofs
    }

    /// Report times are rounded down to a multiple of this many seconds.
    #[getter]
    fn time_precision(&self) -> u64 {
        self.inner.definition().time_precision
    }

    /// The path to upload reports to, relative to the server's base URL.
    #[getter]
    fn upload_path(&self) -> String {
        self.inner.upload_path()
    }

    /// Parses a value as the CLI takes it (`1`, a bucket index, `3,0,7`).
    fn parse_value(&self, text: &str) -> PyResult<Vec<u64>> {
        self.inner.parse_value(text).map_err(prepare_error)
    }

    /// Encrypts (and proves) `values` into a report timestamped
    /// `unix_time`, rounded down to the task's time precision. The
    /// interpreter lock is released while it works.
    fn prepare(
        &self,
        py: Python<'_>,
        values: Vec<u64>,
        unix_time: u64,
    ) -> PyResult<PreparedReport> {
        let report = py
            .detach(|| self.inner.prepare(&values, unix_time))
            .map_err(prepare_error)?;
        Ok(report.into())
    }

    fn __repr__(&self) -> String {
        format!(
            "Task(id='{}', scheme='{}', measurement='{}', input_proofs={})",
            self.id(),
            self.scheme(),
            self.measurement(),
            if self.input_proofs() { "True" } else { "False" }
        )
    }
}

/// Reads the `definition` field of a `GET /tasks/{id}` body.
fn definition_of_info(info_json: &[u8]) -> PyResult<Vec<u8>> {
    let invalid = |why: String| {
        HetallyError::new_err(format!("the server's task description is not valid: {why}"))
    };
    let info: TaskInfo = serde_json::from_slice(info_json).map_err(|e| invalid(e.to_string()))?;
    URL_SAFE_NO_PAD
        .decode(&info.definition)
        .map_err(|_| invalid("its definition is not base64url".into()))
}

/// One prepared report: the body of `PUT {upload_path}` with media type
/// `REPORT_MEDIA_TYPE`.
#[pyclass(frozen, module = "hetally._core")]
struct PreparedReport {
    /// The report id, base64url.
    #[pyo3(get)]
    id: String,
    /// The report's time, rounded down to the task's time precision.
    #[pyo3(get)]
    time: u64,
    body: Vec<u8>,
}

impl From<CoreReport> for PreparedReport {
    fn from(report: CoreReport) -> Self {
        PreparedReport {
            id: report.id.to_string(),
            time: report.time,
            body: report.bytes,
        }
    }
}

#[pymethods]
impl PreparedReport {
    /// The encoded report.
    #[getter]
    fn bytes<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        PyBytes::new(py, &self.body)
    }

    fn __bytes__<'py>(&self, py: Python<'py>) -> Bound<'py, PyBytes> {
        self.bytes(py)
    }

    fn __len__(&self) -> usize {
        self.body.len()
    }

    fn __repr__(&self) -> String {
        format!(
            "PreparedReport(id='{}', time={}, {} bytes)",
            self.id,
            self.time,
            self.body.len()
        )
    }
}

/// Prepares a report drawing every random byte from `tape`, which must be
/// used up exactly: for the test vectors (`test-vectors/v1/`) only.
#[pyfunction]
fn _prepare_from_tape(
    py: Python<'_>,
    task: &Task,
    values: Vec<u64>,
    unix_time: u64,
    tape: Vec<u8>,
) -> PyResult<PreparedReport> {
    let report = py
        .detach(|| task.inner.prepare_from_tape(&values, unix_time, &tape))
        .map_err(prepare_error)?;
    Ok(report.into())
}

/// Times `n` calls of the core's `Task::prepare` in Rust, with no Python
/// in between: the seconds each took. For `client/python/bench.py`, which
/// sets them beside the same preparation called from Python.
#[pyfunction]
fn _time_core_prepare(
    py: Python<'_>,
    task: &Task,
    values: Vec<u64>,
    unix_time: u64,
    n: usize,
) -> PyResult<Vec<f64>> {
    py.detach(|| {
        (0..n)
            .map(|_| {
                let start = std::time::Instant::now();
                let report = task.inner.prepare(&values, unix_time);
                let elapsed = start.elapsed().as_secs_f64();
                report.map(|r| {
                    std::hint::black_box(r);
                    elapsed
                })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .map_err(prepare_error)
}

/// The core's retry policy: when to try an upload again.
#[pyclass(frozen, module = "hetally._core")]
struct RetryPolicy {
    inner: CorePolicy,
}

#[pymethods]
impl RetryPolicy {
    /// `attempts` in all (including the first); backoff from
    /// `initial_delay` seconds doubling up to `max_delay`; a server's
    /// `Retry-After` honoured up to `max_retry_after` seconds.
    #[new]
    #[pyo3(signature = (attempts=None, initial_delay=None, max_delay=None, max_retry_after=None))]
    fn new(
        attempts: Option<u32>,
        initial_delay: Option<f64>,
        max_delay: Option<f64>,
        max_retry_after: Option<f64>,
    ) -> PyResult<Self> {
        let default = CorePolicy::default();
        let seconds = |name: &str, v: Option<f64>, d: Duration| match v {
            None => Ok(d),
            Some(s) => Duration::try_from_secs_f64(s).map_err(|_| {
                PyValueError::new_err(format!(
                    "{name} must be a non-negative number of seconds, got {s}"
                ))
            }),
        };
        let attempts = attempts.unwrap_or(default.attempts);
        if attempts == 0 {
            return Err(PyValueError::new_err("attempts must be at least 1"));
        }
        Ok(RetryPolicy {
            inner: CorePolicy {
                attempts,
                initial_delay: seconds("initial_delay", initial_delay, default.initial_delay)?,
                max_delay: seconds("max_delay", max_delay, default.max_delay)?,
                max_retry_after: seconds(
                    "max_retry_after",
                    max_retry_after,
                    default.max_retry_after,
                )?,
            },
        })
    }

    /// Attempts in all.
    #[getter]
    fn attempts(&self) -> u32 {
        self.inner.attempts
    }

    /// What to do after attempt number `n` (1 for the first): `status` is
    /// the HTTP status, or `None` when no answer came; `problem_type` the
    /// problem document's `type`; `retry_after` the `Retry-After` header's
    /// value; `jitter` a random number in `[0.5, 1]`. Returns `("stored",
    /// 0.0)`, `("retry", seconds)` or `("give_up", 0.0)`.
    #[pyo3(signature = (n, status, problem_type, retry_after, jitter))]
    fn after(
        &self,
        n: u32,
        status: Option<u16>,
        problem_type: Option<&str>,
        retry_after: Option<&str>,
        jitter: f64,
    ) -> (&'static str, f64) {
        let attempt = match status {
            None => Attempt::Unreachable,
            Some(status) => Attempt::Answer {
                status,
                problem: problem_type.and_then(ProblemType::from_uri),
                retry_after: retry_after.and_then(retry::parse_retry_after),
            },
        };
        match self.inner.after(n, &attempt, jitter) {
            Outcome::Stored => ("stored", 0.0),
            Outcome::RetryAfter(delay) => ("retry", delay.as_secs_f64()),
            Outcome::GiveUp => ("give_up", 0.0),
        }
    }

    fn __repr__(&self) -> String {
        let p = &self.inner;
        format!(
            "RetryPolicy(attempts={}, initial_delay={}, max_delay={}, max_retry_after={})",
            p.attempts,
            p.initial_delay.as_secs_f64(),
            p.max_delay.as_secs_f64(),
            p.max_retry_after.as_secs_f64()
        )
    }
}

/// The module `hetally._core`.
#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("REPORT_MEDIA_TYPE", hetally_client_core::REPORT_MEDIA_TYPE)?;
    m.add("TFHE_SUPPORTED", cfg!(feature = "tfhe"))?;
    m.add(
        "ARITHMETIC",
        match arithmetic() {
            Arithmetic::Pure => "pure-rust",
            #[allow(unreachable_patterns)]
            _ => "gmp",
        },
    )?;
    m.add("HetallyError", py.get_type::<HetallyError>())?;
    m.add("TaskMismatch", py.get_type::<TaskMismatch>())?;
    m.add("InvalidMeasurement", py.get_type::<InvalidMeasurement>())?;
    m.add("UnsupportedTask", py.get_type::<UnsupportedTask>())?;
    m.add_class::<Task>()?;
    m.add_class::<PreparedReport>()?;
    m.add_class::<RetryPolicy>()?;
    m.add_function(wrap_pyfunction!(_prepare_from_tape, m)?)?;
    m.add_function(wrap_pyfunction!(_time_core_prepare, m)?)?;
    Ok(())
}
