//! `hetally-keytool`: parses the command line and runs
//! [`hetally_keytool::run`]. See `hetally-keytool --help`.

use std::io::{self, BufWriter, Write};
use std::process::ExitCode;

use clap::Parser;
use hetally_keytool::{Cli, KeytoolError, Outcome};

fn main() -> ExitCode {
    let cli = Cli::parse();
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let result = hetally_keytool::run(&cli, &mut out);
    // Flushing is part of `run`; a failure here was already reported.
    drop(out);
    match result {
        Ok(outcome) => {
            if let Outcome::Flagged(warning) = &outcome {
                // The values are on stdout; what is wrong with some of
                // them, over several lines, goes to stderr.
                let _ = writeln!(io::stderr(), "hetally-keytool: warning: {warning}");
            }
            ExitCode::from(outcome.exit_code())
        }
        // The reader of our output went away (`| head`): not an error.
        Err(KeytoolError::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever a path or an OS message holds.
            let message = e.to_string().replace(['\n', '\r'], " ");
            let _ = writeln!(io::stderr(), "hetally-keytool: error: {message}");
            ExitCode::from(e.exit_code())
        }
    }
}
