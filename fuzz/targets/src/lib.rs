//! The bodies of hetally's fuzz targets.
//!
//! Each public function here takes untrusted bytes and drives one decoder
//! (and what the server or the collector does right after it) the way the
//! real code does. They must never panic, whatever the input; a target
//! panics only when an invariant is broken (an accepted report whose
//! stored form does not read back, a decoded value that does not
//! re-encode to itself), which is a bug.
//!
//! Two things run them:
//!
//! * `fuzz/` is the cargo-fuzz crate: one libFuzzer binary per target
//!   (`cargo +nightly fuzz run <target>`), see docs/testing.md;
//! * `tests/replay.rs` replays every file of `fuzz/corpus/<target>/` as an
//!   ordinary test, so that CI keeps every input the fuzzer ever kept,
//!   crashes included, passing.
//!
//! [`seeds`] writes the seed corpora from real reports, keys, task
//! definitions and aggregates; [`fixtures`] holds the fixed keys and tasks
//! the targets check input against.

pub mod fixtures;
pub mod seeds;
mod targets;

pub use targets::{
    aggregate_file, dap_message, json_body, key_file, paillier_payload, report, task_definition,
    tfhe_payload, upload, UploadCase,
};

/// A target: untrusted bytes in, a panic only on a bug.
pub type Target = fn(&[u8]);

/// Every target by name: the name of its cargo-fuzz binary and of its
/// corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("report", report),
    ("paillier_payload", paillier_payload),
    ("tfhe_payload", tfhe_payload),
    ("task_definition", task_definition),
    ("key_file", key_file),
    ("aggregate_file", aggregate_file),
    ("dap_message", dap_message),
    ("json_body", json_body),
    ("upload", upload),
];
