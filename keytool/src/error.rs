//! The keytool's errors: each names the file concerned, says what is wrong
//! and what to do, on one line, and maps to a documented exit code.

use std::io;

use thiserror::Error;

/// Exit code of internal failures.
pub const EXIT_INTERNAL: u8 = 1;
/// Exit code of a bad command line (also clap's).
pub const EXIT_USAGE: u8 = 2;
/// Exit code of unreadable, missing or unwritable files.
pub const EXIT_IO: u8 = 3;
/// Exit code of corrupt, truncated or foreign files.
pub const EXIT_CORRUPT: u8 = 4;
/// Exit code of a file of the wrong kind, scheme or format version.
pub const EXIT_WRONG_KIND: u8 = 5;
/// Exit code of a key that does not match the aggregate.
pub const EXIT_WRONG_KEY: u8 = 6;
/// Exit code of `keygen` refusing to overwrite key files.
pub const EXIT_EXISTS: u8 = 7;
/// Exit code of `decrypt` when it decrypted the release but some values
/// cannot come from valid reports (a client of a task without input proofs
/// sent a value out of range): the values are written, the flagged ones
/// marked, and a warning names them ([`crate::Outcome::Flagged`]).
pub const EXIT_OUT_OF_RANGE: u8 = 8;

/// `combine` found fewer valid partial decryptions than the key's
/// threshold.
pub const EXIT_NOT_ENOUGH_PARTIALS: u8 = 9;

/// Everything that can go wrong in a keytool command.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeytoolError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}; check the path and the file's permissions")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A file is larger than any file of its kind.
    #[error("{path} is {len} bytes, more than any hetally {what} ({max} bytes at most); check that this is the right file")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        len: u64,
        /// What it was supposed to be.
        what: &'static str,
        /// The cap.
        max: u64,
    },
    /// A file is empty.
    #[error("{path} is empty; pass a hetally {expected} file")]
    Empty {
        /// The file.
        path: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A file does not start with the hetally magic bytes.
    #[error("{path} is not a hetally file (it does not start with the HTLY magic bytes); pass a hetally {expected} file")]
    NotHetally {
        /// The file.
        path: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A file was written by another format version.
    #[error("{path} uses file format version {found}, but this hetally-keytool reads {supported}; use a hetally-keytool release that matches the server")]
    UnsupportedVersion {
        /// The file.
        path: String,
        /// Its version byte.
        found: u8,
        /// The versions this build reads.
        supported: &'static str,
    },
    /// A file of a scheme this build does not handle.
    #[error("{path} uses a scheme this hetally-keytool does not support ({reason}); use a hetally-keytool release that matches the server")]
    UnsupportedScheme {
        /// The file.
        path: String,
        /// What was found.
        reason: String,
    },
    /// A valid hetally file of another kind than the argument needs.
    #[error("{path} is {}, but {role} must be {}; {hint}", a(.found), a(.expected))]
    WrongKind {
        /// The file.
        path: String,
        /// What the file is.
        found: &'static str,
        /// The argument it was given as.
        role: &'static str,
        /// What the argument needs.
        expected: &'static str,
        /// What to pass instead.
        hint: &'static str,
    },
    /// A file is damaged.
    #[error("{path} is a corrupt {kind} file: {reason}; {remedy}")]
    Corrupt {
        /// The file.
        path: String,
        /// Its kind.
        kind: &'static str,
        /// What is wrong.
        reason: String,
        /// What to do.
        remedy: &'static str,
    },
    /// The secret key is not the one the aggregate was encrypted under.
    #[error("{key} is not the key {aggregate} was encrypted under (the aggregate names key {expected}…, this key is {found}…); pass the collector secret key whose public key fingerprint starts with {expected} (`hetally-keytool inspect` shows a key's fingerprint)")]
    WrongKey {
        /// The secret key file.
        key: String,
        /// The aggregate file.
        aggregate: String,
        /// Fingerprint prefix named by the aggregate.
        expected: String,
        /// Fingerprint prefix of the key given.
        found: String,
    },
    /// The secret key is for another scheme than the aggregate.
    #[error("{key} is a {key_scheme} key but {aggregate} is a {aggregate_scheme} aggregate; pass the collector's {aggregate_scheme} secret key")]
    WrongScheme {
        /// The secret key file.
        key: String,
        /// The aggregate file.
        aggregate: String,
        /// The key's scheme.
        key_scheme: String,
        /// The aggregate's scheme.
        aggregate_scheme: String,
    },
    /// `keygen` would replace existing key files.
    #[error("{paths} already exist{s}; pass --force to replace {them} (aggregates released under the old key could then no longer be decrypted), or choose another --out directory", s = plural(.count, "s", ""), them = plural(.count, "it", "them"))]
    Exists {
        /// The files, joined for display.
        paths: String,
        /// How many.
        count: usize,
    },
    /// The output directory could not be created.
    #[error(
        "cannot create directory {path}: {source}; check the path and its parent's permissions"
    )]
    CreateDir {
        /// The directory.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("cannot write {path}: {source}; check that its directory exists and is writable")]
    Write {
        /// The file.
        path: String,
        /// Why.
        source: io::Error,
    },
    /// `--out` or `--plot` names one of the input files.
    #[error("{flag} {path} is also an input of this command; writing there would destroy it, so choose another output file")]
    OutputIsInput {
        /// The option: `--out` or `--plot`.
        flag: &'static str,
        /// The path given to it.
        path: String,
    },
    /// `--out` and `--plot` name the same file.
    #[error("--out and --plot both name {path}; one would overwrite the other, so give the plot its own file (for example plot.svg)")]
    SameOutput {
        /// The path given to both.
        path: String,
    },
    /// The plot could not be drawn.
    #[error("cannot draw the plot {path}: {reason}; the decrypted values are fine, run again without --plot to get them")]
    Plot {
        /// The path given to `--plot`.
        path: String,
        /// Why.
        reason: String,
    },
    /// `dp-plan` cannot answer the question asked.
    #[error("{0}")]
    Plan(String),
    /// Arguments that clap cannot check alone do not go together.
    #[error("{0}")]
    Usage(String),
    /// Writing to stdout failed.
    #[error("cannot write the output: {0}")]
    Output(#[source] io::Error),
    /// Key generation failed (a bug: the parameters are checked first).
    #[error("key generation failed: {0}")]
    Keygen(String),
    /// A threshold operation was refused: a share or partial decryption of
    /// another key or release, or the partials' key not the one expected.
    #[error("{0}")]
    Threshold(String),
    /// `combine` has fewer valid partial decryptions than the threshold.
    #[error("{0}")]
    NotEnoughPartials(String),
}

/// `name` with its indefinite article: "a secret key", "an aggregate".
fn a(name: &str) -> String {
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {name}")
}

fn plural(count: &usize, one: &'static str, many: &'static str) -> &'static str {
    if *count == 1 {
        one
    } else {
        many
    }
}

impl KeytoolError {
    /// The process exit code for this error (listed in `--help`).
    pub fn exit_code(&self) -> u8 {
        match self {
            KeytoolError::Read { .. }
            | KeytoolError::CreateDir { .. }
            | KeytoolError::Write { .. }
            | KeytoolError::Output(_) => EXIT_IO,
            KeytoolError::TooLarge { .. }
            | KeytoolError::Empty { .. }
            | KeytoolError::NotHetally { .. }
            | KeytoolError::Corrupt { .. } => EXIT_CORRUPT,
            KeytoolError::UnsupportedVersion { .. }
            | KeytoolError::UnsupportedScheme { .. }
            | KeytoolError::WrongKind { .. } => EXIT_WRONG_KIND,
            KeytoolError::WrongKey { .. }
            | KeytoolError::WrongScheme { .. }
            | KeytoolError::Threshold(_) => EXIT_WRONG_KEY,
            KeytoolError::NotEnoughPartials(_) => EXIT_NOT_ENOUGH_PARTIALS,
            KeytoolError::Exists { .. } => EXIT_EXISTS,
            KeytoolError::OutputIsInput { .. }
            | KeytoolError::SameOutput { .. }
            | KeytoolError::Plan(_)
            | KeytoolError::Usage(_) => EXIT_USAGE,
            KeytoolError::Keygen(_) | KeytoolError::Plot { .. } => EXIT_INTERNAL,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exists_message_agrees_in_number() {
        let one = KeytoolError::Exists {
            paths: "d/collector.sk".into(),
            count: 1,
        };
        assert!(one
            .to_string()
            .starts_with("d/collector.sk already exists; pass --force to replace it "));
        let two = KeytoolError::Exists {
            paths: "d/collector.sk and d/collector.pk".into(),
            count: 2,
        };
        assert!(two
            .to_string()
            .contains("already exist; pass --force to replace them "));
        assert_eq!(two.exit_code(), EXIT_EXISTS);
    }

    #[test]
    fn codes_are_distinct_per_class() {
        let read = KeytoolError::Read {
            path: "x".into(),
            source: io::Error::from(io::ErrorKind::NotFound),
        };
        let corrupt = KeytoolError::Corrupt {
            path: "x".into(),
            kind: "aggregate",
            reason: "r".into(),
            remedy: "d",
        };
        let wrong = KeytoolError::WrongKey {
            key: "k".into(),
            aggregate: "a".into(),
            expected: "00".into(),
            found: "11".into(),
        };
        let codes = [read.exit_code(), corrupt.exit_code(), wrong.exit_code()];
        assert_eq!(codes, [EXIT_IO, EXIT_CORRUPT, EXIT_WRONG_KEY]);
        // Exit code 2 means a bad command line, as for clap's errors.
        assert!(!codes.contains(&EXIT_USAGE));
    }
}
