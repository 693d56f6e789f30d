//! Only the bench in benches/kzen.rs; see Cargo.toml.
