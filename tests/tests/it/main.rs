//! Integration tests across crates, compiled into one binary: real
//! `hetally-server` processes, the real CLIs, real HTTP on loopback.

mod bad_input;
mod client_core;
mod crash;
mod dp;
mod flow;
mod janus_interop;
mod lifecycle;
mod out_of_range;
mod proofs;
mod replicas;
mod tfhe;
