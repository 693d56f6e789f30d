//! Integration tests across crates, compiled into one binary: real
//! `hetally-server` processes, the real CLIs, real HTTP on loopback.

mod bad_input;
mod client_core;
mod connections;
mod cors;
mod crash;
mod dap_hpke_rotation;
mod dap_js_interop;
mod dap_resume;
mod dp;
mod flow;
mod janus_interop;
mod lifecycle;
mod openapi;
mod out_of_range;
mod overload;
mod proofs;
mod replicas;
mod retention;
mod tfhe;
mod threshold;
mod threshold_tfhe;
mod tls;
