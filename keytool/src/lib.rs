//! `hetally-keytool`: the collector's offline tool.
//!
//! The collector makes its key pair here ([`keygen`]), hands the public key
//! to the server operator ([`pubkey`] prints the fingerprint clients check),
//! looks at any hetally file without decrypting it ([`inspect`]), decrypts
//! the encrypted aggregates the server releases with a confidence interval
//! on every noisy value ([`decrypt`], [`interval`], [`render`], [`plot`]),
//! and plans the DP noise a task needs ([`dp_plan`]). With a threshold key
//! ([`threshold`]) no one holds the whole secret key: trustees each make a
//! partial decryption of a release, and `combine` decrypts once enough are
//! valid.
//! Nothing here talks to the network: the secret key never leaves the
//! collector's machine.
//!
//! The binary only parses arguments ([`cli::Cli`]) and calls [`run`]; every
//! failure is a [`KeytoolError`] with a one-line message and an exit code
//! ([`KeytoolError::exit_code`], listed in `hetally-keytool --help`). A
//! `decrypt` that succeeds with flagged values ends with
//! [`Outcome::Flagged`]: a warning and an exit code of its own.
//!
//! File formats are those of `hetally_protocol::codec`; task ids are shown as
//! base64url without padding, as DAP (draft-ietf-ppm-dap) does.

pub mod cli;
#[cfg(feature = "dap")]
pub mod dap_hpke;
pub mod decrypt;
pub mod dp_plan;
pub mod error;
mod files;
pub mod inspect;
pub mod interval;
mod iso8601;
pub mod keygen;
pub mod plot;
pub mod pubkey;
pub mod render;
pub mod threshold;

use std::io::Write;

pub use cli::Cli;
pub use error::KeytoolError;

use cli::Command;

/// How a command that did its work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// Nothing more to say: exit code 0.
    Done,
    /// `decrypt` wrote the values, but some cannot come from valid reports
    /// (see [`decrypt`]); the text is the warning for stderr, and the exit
    /// code [`error::EXIT_OUT_OF_RANGE`].
    Flagged(String),
}

impl Outcome {
    /// The process exit code (listed in `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Done => 0,
            Outcome::Flagged(_) => error::EXIT_OUT_OF_RANGE,
        }
    }
}

/// Runs one command, writing its results to `out` (the binary passes
/// stdout). Progress bars, if any, go to stderr.
pub fn run(cli: &Cli, out: &mut dyn Write) -> Result<Outcome, KeytoolError> {
    let outcome = match &cli.command {
        Command::Keygen(args) => keygen::run(args, out).map(|()| Outcome::Done),
        Command::Pubkey(args) => pubkey::run(args, out).map(|()| Outcome::Done),
        Command::Inspect(args) => inspect::run(args, out).map(|()| Outcome::Done),
        Command::Decrypt(args) => decrypt::run(args, out),
        Command::DpPlan(args) => dp_plan::run(args, out).map(|()| Outcome::Done),
        Command::PartialDecrypt(args) => {
            threshold::partial_decrypt(args, out).map(|()| Outcome::Done)
        }
        Command::Combine(args) => threshold::combine(args, out),
    }?;
    out.flush().map_err(KeytoolError::Output)?;
    Ok(outcome)
}
