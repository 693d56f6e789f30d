//! `keygen`: makes the collector's key pair.
//!
//! Writes `DIR/collector.sk` (mode 0600) and `DIR/collector.pk` (0644). Both
//! paths are checked before anything is generated or written, so a refused
//! run leaves the directory as it was. The secret key is written first: it
//! holds the public key too, whereas a public key without its secret key
//! would let clients encrypt to a key nobody can decrypt with.

use std::fs;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use hetally_protocol::keyfile::{self, KeyFileError};
use hetally_protocol::Scheme;
#[cfg(feature = "tfhe")]
use hetally_schemes::lwe;
#[cfg(feature = "tfhe")]
use hetally_schemes::lwe::scheme::TfheDecrypter;
use hetally_schemes::paillier::PaillierDecrypter;
use hetally_schemes::paillier::{KeygenProgress, SecretKey};
use hetally_schemes::{PublicKeyFile, SecretKeyFile};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zeroize::Zeroizing;

use crate::cli::KeygenArgs;
use crate::error::KeytoolError;

/// File name of the secret key in the output directory.
pub const SECRET_KEY_FILE: &str = "collector.sk";

/// File name of the public key in the output directory.
pub const PUBLIC_KEY_FILE: &str = "collector.pk";

/// Generates a key pair of `scheme`, reporting progress to `progress`.
/// `bits` is the Paillier modulus size.
pub fn generate(
    scheme: Scheme,
    bits: u32,
    progress: &mut dyn FnMut(KeygenProgress),
) -> Result<SecretKeyFile, KeytoolError> {
    match scheme {
        Scheme::Paillier => {
            // Long-term key: draw straight from the operating system.
            let sk = SecretKey::generate(bits, &mut rand::rngs::OsRng, progress)
                .map_err(|e| KeytoolError::Keygen(e.to_string()))?;
            Ok(SecretKeyFile::Paillier(PaillierDecrypter::new(sk)))
        }
        #[cfg(feature = "tfhe")]
        Scheme::Tfhe => {
            // TFHE-rs's generators are seeded from the operating system too.
            let sk = lwe::SecretKey::generate(lwe::PKE_ZKV2_2048, &mut rand::rngs::OsRng);
            Ok(SecretKeyFile::Tfhe(TfheDecrypter::new(sk)))
        }
        #[allow(unreachable_patterns)]
        other => Err(KeytoolError::Keygen(format!(
            "this build cannot generate {other} keys"
        ))),
    }
}

/// A spinner on stderr fed by [`KeygenProgress`] events; hidden when stderr
/// is not a terminal.
pub(crate) struct Spinner {
    bar: ProgressBar,
    bits: u32,
    candidates: u64,
}

impl Spinner {
    /// For a threshold key of `bits` bits: the safe-prime search.
    pub(crate) fn new_threshold(bits: u32, trustees: u16, threshold: u16) -> Self {
        let spinner = Spinner::new(Scheme::Paillier, bits);
        spinner.bar.set_message(format!(
            "generating a {bits}-bit {threshold}-of-{trustees} threshold key: searching for safe prime 1 of 2"
        ));
        spinner
    }

    fn new(scheme: Scheme, bits: u32) -> Self {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(None, target);
        // The template is a constant known to be valid.
        let style = ProgressStyle::with_template("{spinner} {msg} [{elapsed}]")
            .unwrap_or_else(|_| ProgressStyle::default_spinner());
        bar.set_style(style);
        bar.set_message(match scheme {
            Scheme::Paillier => format!("generating a {bits}-bit key: searching for prime 1 of 2"),
            other => format!("generating a {other} key"),
        });
        bar.enable_steady_tick(Duration::from_millis(100));
        Spinner {
            bar,
            bits,
            candidates: 0,
        }
    }

    pub(crate) fn update(&mut self, event: KeygenProgress) {
        match event {
            KeygenProgress::Candidate { prime } => {
                self.candidates += 1;
                self.bar.set_message(format!(
                    "generating a {}-bit key: searching for prime {} of 2 ({} candidates tested)",
                    self.bits,
                    u32::from(prime) + 1,
                    self.candidates
                ));
            }
            KeygenProgress::PrimeFound { prime } => {
                self.bar.set_message(format!(
                    "generating a {}-bit key: found prime {} of 2",
                    self.bits,
                    u32::from(prime) + 1
                ));
            }
            KeygenProgress::SafeCandidate { prime } => {
                self.candidates += 1;
                self.bar.set_message(format!(
                    "generating a {}-bit threshold key: searching for safe prime {} of 2 ({} candidates tested; this takes a minute or more)",
                    self.bits,
                    u32::from(prime) + 1,
                    self.candidates
                ));
            }
            _ => {}
        }
    }

    pub(crate) fn finish(self) {
        self.bar.finish_and_clear();
    }
}

/// The scheme's name in prose.
fn scheme_title(scheme: Scheme) -> String {
    match scheme {
        Scheme::Paillier => "Paillier".to_string(),
        Scheme::Tfhe => "TFHE".to_string(),
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Creates `dir` (and missing parents, mode 0700 on Unix) if needed.
pub(crate) fn create_dir(dir: &Path) -> Result<(), KeytoolError> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|source| KeytoolError::CreateDir {
            path: display(dir),
            source,
        })
}

pub(crate) fn write_error(path: &Path, e: KeyFileError) -> KeytoolError {
    match e {
        KeyFileError::Exists(_) => KeytoolError::Exists {
            paths: display(path),
            count: 1,
        },
        KeyFileError::Io { source, .. } => KeytoolError::Write {
            path: display(path),
            source,
        },
        other => KeytoolError::Write {
            path: display(path),
            source: std::io::Error::other(other.to_string()),
        },
    }
}

/// The `paths` that exist already (`symlink_metadata` also sees dangling
/// symlinks); an error naming them unless `force`.
pub(crate) fn refuse_existing<'a>(
    paths: &[&'a PathBuf],
    force: bool,
) -> Result<Vec<&'a PathBuf>, KeytoolError> {
    let existing: Vec<&PathBuf> = paths
        .iter()
        .copied()
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    if !existing.is_empty() && !force {
        return Err(KeytoolError::Exists {
            paths: existing
                .iter()
                .map(|p| display(p))
                .collect::<Vec<_>>()
                .join(" and "),
            count: existing.len(),
        });
    }
    Ok(existing)
}

/// Runs `keygen`.
pub fn run(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    if args.trustees.is_some() || args.threshold.is_some() {
        return crate::threshold::keygen(args, out);
    }
    let Some(scheme) = args.scheme.scheme() else {
        #[cfg(feature = "dap")]
        return crate::dap_hpke::run(args, out);
        #[cfg(not(feature = "dap"))]
        return Err(KeytoolError::Keygen(
            "this build of hetally-keytool has no DAP support (feature `dap`)".into(),
        ));
    };
    let sk_path: PathBuf = args.out.join(SECRET_KEY_FILE);
    let pk_path: PathBuf = args.out.join(PUBLIC_KEY_FILE);

    // Refuse before spending a second on primes, and before touching
    // either file.
    let existing = refuse_existing(&[&sk_path, &pk_path], args.force)?;
    create_dir(&args.out)?;

    let mut spinner = Spinner::new(scheme, args.bits);
    let generated = generate(scheme, args.bits, &mut |e| spinner.update(e));
    spinner.finish();
    let sk = generated?;
    let pk: PublicKeyFile = sk.public_key();

    let sk_bytes = Zeroizing::new(sk.to_bytes());
    keyfile::write_private_file(&sk_path, &sk_bytes, args.force)
        .map_err(|e| write_error(&sk_path, e))?;
    keyfile::write_public_file(&pk_path, &pk.to_bytes(), args.force)
        .map_err(|e| write_error(&pk_path, e))?;

    let details = pk.details();
    let size = match (details.modulus_bits, details.parameter_set) {
        (Some(bits), _) => format!("{bits}-bit "),
        (None, Some(set)) => format!("{set} "),
        (None, None) => String::new(),
    };
    let w = KeytoolError::Output;
    writeln!(
        out,
        "Generated a {size}{scheme} key pair.",
        scheme = scheme_title(scheme)
    )
    .map_err(w)?;
    if !existing.is_empty() {
        writeln!(
            out,
            "Replaced the previous key files: aggregates released under the old key cannot be decrypted with this one."
        )
        .map_err(w)?;
    }
    writeln!(out, "  secret key   {} (mode 0600)", sk_path.display()).map_err(w)?;
    writeln!(out, "  public key   {}", pk_path.display()).map_err(w)?;
    writeln!(out, "  fingerprint  {}", hex::encode(pk.fingerprint())).map_err(w)?;
    writeln!(out).map_err(w)?;
    writeln!(
        out,
        "{SECRET_KEY_FILE} must stay on this machine, the collector's: never copy it to the server or send it anywhere."
    )
    .map_err(w)?;
    writeln!(
        out,
        "Back it up offline: it is the only way to decrypt aggregates released under this key."
    )
    .map_err(w)?;
    writeln!(
        out,
        "Give {PUBLIC_KEY_FILE} to the server operator, and the fingerprint above to whoever configures clients."
    )
    .map_err(w)?;
    Ok(())
}
