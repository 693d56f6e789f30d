//! Writes the protocol test vectors, `test-vectors/v1` (see
//! `test-vectors/README.md`): `cargo run -p hetally-tests --bin
//! gen-test-vectors`, or with a folder to write elsewhere. Every input
//! comes from fixed seeds, so the files it writes are the same bytes each
//! time; `cargo test -p hetally-tests --test vectors` checks them.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let out = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(hetally_tests::vectors::dir);
    match hetally_tests::vectors::generate(&out) {
        Ok(()) => {
            let out = out.canonicalize().unwrap_or(out);
            println!("wrote the test vectors to {}", out.display());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
