//! DAP-09 (draft-ietf-ppm-dap-09) adapters for the two-server Prio3 mode.
//!
//! Everything here is built on the published crates the protocol is
//! deployed with, never on a hand-written codec or VDAF:
//!
//! * wire types from `janus_messages` 0.7 (re-exported as [`messages`]);
//! * the Prio3 VDAFs and the ping-pong preparation topology from `prio`
//!   0.16 (VDAF draft 08), and its exact discrete Laplace sampler for DP;
//! * HPKE (X25519 / HKDF-SHA256 / AES-128-GCM by default) through
//!   `janus_core::hpke`.
//!
//! [`vdaf`] names the four supported VDAFs (`prio3count`, `prio3sum:BITS`,
//! `prio3histogram:LENGTH[:CHUNK]`, `prio3sumvec:LENGTH:BITS[:CHUNK]`), the
//! DP strategies, and does one report's preparation on either side;
//! [`hpke`] makes key pairs and the collector's credential file.

#![forbid(unsafe_code)]

pub mod hpke;
pub mod vdaf;

pub use janus_core;
pub use janus_messages as messages;
pub use prio;
