//! hetally's cryptography and file formats.
//!
//! Everything that touches key material, ciphertexts or noise lives here, so
//! the server, client and keytool never do cryptographic arithmetic
//! themselves:
//!
//! * [`paillier`]: the Paillier scheme over GMP, with slot packing;
//! * [`lwe`]: the TFHE (LWE) scheme on TFHE-rs `core_crypto`, with zk-pok
//!   input proofs;
//! * [`dp`]: exact discrete Laplace / Gaussian noise and budget accounting;
//! * [`measurement`]: the measurement types shared by every backend;
//! * [`keyfile`], [`aggregate`]: the collector's key files and the released
//!   aggregate file, in the versioned binary encoding of [`codec`];
//! * [`task`], [`report`]: task definitions (whose hash is the task id) and
//!   the report wire format;
//! * [`proofs`]: zero-knowledge proofs that a Paillier report encrypts a
//!   valid measurement;
//! * [`backend`]: the one boundary the server and client use for every
//!   homomorphic scheme.

pub mod aggregate;
pub mod api;
pub mod backend;
pub mod codec;
pub mod dap;
pub mod dp;
pub mod keyfile;
pub mod lwe;
pub mod measurement;
pub mod paillier;
pub mod proofs;
pub mod report;
pub mod task;

pub use measurement::Measurement;
pub use report::{Report, ReportId};
pub use task::{TaskDefinition, TaskId};
