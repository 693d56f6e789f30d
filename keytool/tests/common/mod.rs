//! Running `hetally-keytool` from the integration tests: the real binary,
//! its exit code and both output streams.

#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Stdio};

/// What one run of the binary did.
pub(crate) struct Output {
    pub(crate) code: i32,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

pub(crate) fn keytool<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(env!("CARGO_BIN_EXE_hetally-keytool"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run hetally-keytool");
    Output {
        // None only when killed by a signal, which is a failure too.
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(out.stderr).expect("stderr is UTF-8"),
    }
}

pub(crate) fn p(path: &Path) -> &str {
    path.to_str().expect("temporary paths are UTF-8")
}

#[track_caller]
pub(crate) fn assert_success(out: &Output) {
    assert_eq!(
        out.code, 0,
        "stdout:\n{}\nstderr:\n{}",
        out.stdout, out.stderr
    );
}

/// A failure as the user should see it: the given exit code, nothing on
/// stdout, one line on stderr that mentions every `needle`, and no panic.
#[track_caller]
pub(crate) fn assert_clean_failure(out: &Output, code: i32, needles: &[&str]) {
    assert!(!out.stderr.contains("panicked"), "panic: {}", out.stderr);
    assert_eq!(out.code, code, "stderr: {}", out.stderr);
    assert_eq!(out.stdout, "", "nothing on stdout on failure");
    assert_eq!(out.stderr.lines().count(), 1, "one line: {:?}", out.stderr);
    for needle in needles {
        assert!(
            out.stderr.contains(needle),
            "{needle:?} not in {:?}",
            out.stderr
        );
    }
}
