//! Threshold keys: no single key holder (docs/threshold.md).
//!
//! * `keygen --trustees N --threshold T` ([`keygen`]) is the trusted
//!   dealer: it finds two safe primes, splits the Paillier key so that any
//!   T of N trustees decrypt together ([`hetally_paillier::threshold`]),
//!   writes `collector.pk` (a threshold public key: the encryption key, N,
//!   T and the trustees' verification values) and one
//!   `trustee-I.share` per trustee (mode 0600), and wipes the rest.
//! * `partial-decrypt` ([`partial_decrypt`]) is one trustee's step: its
//!   share of the decryption of every ciphertext of a release, with a proof
//!   of correctness, bound to that release file by [`release_context`].
//! * `combine` ([`combine`]) checks every partial's proofs, names the
//!   trustees whose partials fail, and decrypts once T valid partials of
//!   distinct trustees are there, showing the release exactly as `decrypt`
//!   does.
//!
//! A partial decryption file carries the threshold public key it was made
//! under, so `combine` needs no other key file; the key is accepted only if
//! its fingerprint is the one the aggregate names (which is the task's key:
//! the server writes it into every release), and `--key` can pin it
//! further.

use std::io::Write;
use std::path::{Path, PathBuf};

use hetally_protocol::aggregate::AggregateFile;
use hetally_protocol::codec::FileKind;
use hetally_protocol::keyfile::{self, KeyFileError, MAX_KEY_FILE_BYTES};
use hetally_schemes::paillier::threshold::{
    generate_threshold, KeyShare, PartialDecryption, ThresholdParams, ThresholdPublicKey,
};
use hetally_schemes::paillier::{release_ciphertexts, unpack_release};
use hetally_schemes::PublicKeyFile;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cli::{CombineArgs, KeygenArgs, PartialDecryptArgs};
use crate::decrypt::{check_outputs, flag, present, release_noise};
use crate::error::KeytoolError;
use crate::files::{self, Role, AGGREGATE_ROLE};
use crate::keygen::{create_dir, refuse_existing, write_error, Spinner, PUBLIC_KEY_FILE};
use crate::Outcome;

/// The share file of trustee `index` in the output directory.
pub fn share_file_name(index: u16) -> String {
    format!("trustee-{index}.share")
}

/// The `--share` argument of `partial-decrypt`.
const SHARE_ROLE: Role = Role {
    name: "--share",
    expected: "key share",
    hint:
        "pass this trustee's share (trustee-I.share, made by `hetally-keytool keygen --trustees`)",
};

/// A PART argument of `combine`.
const PARTIAL_ROLE: Role = Role {
    name: "a PART argument",
    expected: "partial decryption",
    hint: "pass the files `hetally-keytool partial-decrypt` wrote",
};

/// The `--key` argument of `combine`.
const THRESHOLD_KEY_ROLE: Role = Role {
    name: "--key",
    expected: "threshold public key",
    hint: "pass the collector.pk that `keygen --trustees` wrote",
};

/// What a partial decryption is bound to: the domain tag, then the SHA-256
/// of the whole aggregate file, so that a partial made for one release (or
/// one damaged copy of it) can never be combined into another.
pub fn release_context(aggregate_file: &[u8]) -> Vec<u8> {
    let mut context = b"hetally release v1 ".to_vec();
    context.extend_from_slice(&Sha256::digest(aggregate_file));
    context
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `keygen --trustees N --threshold T`.
pub fn keygen(args: &KeygenArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    let (Some(trustees), Some(threshold)) = (args.trustees, args.threshold) else {
        return Err(KeytoolError::Usage(
            "--trustees and --threshold go together".into(),
        ));
    };
    let params = ThresholdParams::new(trustees, threshold)
        .map_err(|e| KeytoolError::Usage(format!("{e}")))?;
    if args.scheme.scheme() != Some(hetally_protocol::Scheme::Paillier) {
        return Err(KeytoolError::Usage(
            "--trustees is available for --scheme paillier (TFHE and DAP keys have one holder)"
                .into(),
        ));
    }
    let pk_path = args.out.join(PUBLIC_KEY_FILE);
    let share_paths: Vec<PathBuf> = (1..=trustees)
        .map(|i| args.out.join(share_file_name(i)))
        .collect();
    let all: Vec<&PathBuf> = std::iter::once(&pk_path).chain(&share_paths).collect();
    refuse_existing(&all, args.force)?;
    create_dir(&args.out)?;

    let mut spinner = Spinner::new_threshold(args.bits, trustees, threshold);
    // Long-term key: draw straight from the operating system.
    let generated = generate_threshold(args.bits, params, &mut rand::rngs::OsRng, &mut |e| {
        spinner.update(e)
    });
    spinner.finish();
    let (key, shares) = generated.map_err(|e| KeytoolError::Keygen(e.to_string()))?;

    // The shares first: a public key without its shares would let clients
    // encrypt to a key nobody can decrypt with.
    for (share, path) in shares.iter().zip(&share_paths) {
        let bytes = Zeroizing::new(share.to_bytes());
        keyfile::write_private_file(path, &bytes, args.force).map_err(|e| write_error(path, e))?;
    }
    drop(shares);
    keyfile::write_public_file(&pk_path, &key.to_bytes(), args.force)
        .map_err(|e| write_error(&pk_path, e))?;

    let w = KeytoolError::Output;
    writeln!(
        out,
        "Generated a {}-bit Paillier threshold key: any {threshold} of {trustees} trustees decrypt together, fewer learn nothing.",
        args.bits
    )
    .map_err(w)?;
    writeln!(
        out,
        "  public key   {} (names the {trustees} trustees, the threshold {threshold} and their verification values)",
        pk_path.display()
    )
    .map_err(w)?;
    for (i, path) in share_paths.iter().enumerate() {
        writeln!(out, "  trustee {:<4} {} (mode 0600)", i + 1, path.display()).map_err(w)?;
    }
    writeln!(out, "  fingerprint  {}", hex::encode(key.fingerprint())).map_err(w)?;
    writeln!(out).map_err(w)?;
    writeln!(
        out,
        "No file holds the whole secret key: this run (the trusted dealer) wiped the primes and the key it split."
    )
    .map_err(w)?;
    writeln!(
        out,
        "Give each trustee its own share file, privately, and delete it here once it is handed over."
    )
    .map_err(w)?;
    writeln!(
        out,
        "Give {PUBLIC_KEY_FILE} to the server operator, and the fingerprint above to whoever configures clients."
    )
    .map_err(w)?;
    Ok(())
}

/// Reads a key share file; the raw bytes are wiped once decoded.
fn read_share(path: &Path) -> Result<KeyShare, KeytoolError> {
    let bytes = Zeroizing::new(files::read_expected(
        path,
        MAX_KEY_FILE_BYTES,
        FileKind::KeyShare,
        SHARE_ROLE,
    )?);
    KeyShare::from_bytes(&bytes).map_err(|e| files::corrupt_file(path, FileKind::KeyShare, e))
}

/// Reads an aggregate file: its bytes (for [`release_context`]) and its
/// decoded form.
fn read_release(path: &Path) -> Result<(Vec<u8>, AggregateFile), KeytoolError> {
    let bytes = files::read_expected(
        path,
        hetally_protocol::aggregate::MAX_AGGREGATE_FILE_BYTES,
        FileKind::Aggregate,
        AGGREGATE_ROLE,
    )?;
    let file = files::read_aggregate(path, AGGREGATE_ROLE)?;
    Ok((bytes, file))
}

/// Runs `partial-decrypt`.
pub fn partial_decrypt(args: &PartialDecryptArgs, out: &mut dyn Write) -> Result<(), KeytoolError> {
    for input in [&args.share, &args.aggregate] {
        if args.out.canonicalize().ok() == Some(input.canonicalize().unwrap_or_default()) {
            return Err(KeytoolError::OutputIsInput {
                flag: "--out",
                path: display(&args.out),
            });
        }
    }
    let share = read_share(&args.share)?;
    let (bytes, aggregate) = read_release(&args.aggregate)?;
    let pk = share.public_key().public_key();
    let (_, cts) = release_ciphertexts(pk, &aggregate)
        .map_err(|e| files::aggregate_error(&args.aggregate, Some(&args.share), e))?;
    let context = release_context(&bytes);
    let part = share
        .partial_decrypt(&cts, &context, &mut rand::rngs::OsRng)
        .map_err(|e| KeytoolError::Threshold(format!("{}: {e}", display(&args.share))))?;
    let encoded = part.to_bytes();
    keyfile::write_public_file(&args.out, &encoded, true).map_err(|e| match e {
        KeyFileError::Io { source, .. } => KeytoolError::Write {
            path: display(&args.out),
            source,
        },
        other => KeytoolError::Write {
            path: display(&args.out),
            source: std::io::Error::other(other.to_string()),
        },
    })?;
    let params = share.public_key().params();
    writeln!(
        out,
        "Wrote trustee {}'s partial decryption of {} ({} ciphertexts, {} bytes) to {}.",
        share.index(),
        display(&args.aggregate),
        cts.len(),
        encoded.len(),
        display(&args.out)
    )
    .map_err(KeytoolError::Output)?;
    writeln!(
        out,
        "Send it to whoever runs `hetally-keytool combine`: {} of the {} trustees' partials decrypt the release.",
        params.threshold(),
        params.trustees()
    )
    .map_err(KeytoolError::Output)?;
    Ok(())
}

/// Runs `combine`.
pub fn combine(args: &CombineArgs, out: &mut dyn Write) -> Result<Outcome, KeytoolError> {
    let mut inputs: Vec<&Path> = vec![&args.aggregate];
    inputs.extend(args.partials.iter().map(PathBuf::as_path));
    if let Some(key) = &args.key {
        inputs.push(key);
    }
    check_outputs(&args.output, &inputs)?;
    let (bytes, aggregate) = read_release(&args.aggregate)?;
    let context = release_context(&bytes);
    let pinned = match &args.key {
        None => None,
        Some(path) => Some(read_threshold_key(path)?),
    };

    // The key: the pinned one, or the one the partials carry, which must be
    // the key the aggregate names.
    let mut parts = Vec::with_capacity(args.partials.len());
    for path in &args.partials {
        let bytes = files::read_expected(
            path,
            hetally_protocol::aggregate::MAX_AGGREGATE_FILE_BYTES,
            FileKind::PartialDecryption,
            PARTIAL_ROLE,
        )?;
        let part = PartialDecryption::from_bytes(&bytes)
            .map_err(|e| files::corrupt_file(path, FileKind::PartialDecryption, e))?;
        parts.push((path, part));
    }
    let key: ThresholdPublicKey = match pinned {
        Some(key) => key,
        None => parts
            .iter()
            .map(|(_, p)| p.key())
            .find(|k| k.fingerprint() == aggregate.key_fingerprint)
            .cloned()
            .ok_or_else(|| {
                KeytoolError::Threshold(format!(
                    "no partial decryption given was made under the key {} names (fingerprint {}…); \
                     they are for another key or another task",
                    display(&args.aggregate),
                    hex::encode(&aggregate.key_fingerprint[..8])
                ))
            })?,
    };
    let pk = key.public_key();
    let (_, cts) = release_ciphertexts(pk, &aggregate)
        .map_err(|e| files::aggregate_error(&args.aggregate, args.key.as_deref(), e))?;
    let partials: Vec<PartialDecryption> = parts.iter().map(|(_, p)| p.clone()).collect();
    let outcome = key.combine(&cts, &context, &partials);
    let name_of = |trustee: u16| -> String {
        parts
            .iter()
            .filter(|(_, p)| p.index() == trustee)
            .map(|(path, _)| display(path))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let params = key.params();
    let combined = match outcome {
        Ok(combined) => combined,
        Err(e) => {
            return Err(KeytoolError::NotEnoughPartials(format!(
                "cannot decrypt {}: {e}; {} valid partial decryptions of distinct trustees are \
                 needed (any {} of the {} trustees)",
                display(&args.aggregate),
                params.threshold(),
                params.threshold(),
                params.trustees()
            )))
        }
    };
    for rejection in &combined.rejected {
        eprintln!(
            "hetally-keytool: warning: rejected trustee {}'s partial decryption ({}): {}",
            rejection.trustee,
            name_of(rejection.trustee),
            rejection.reason
        );
    }
    let used: Vec<String> = combined.used.iter().map(u16::to_string).collect();
    eprintln!(
        "hetally-keytool: decrypted with the partial decryptions of trustees {} ({} of {} needed)",
        used.join(", "),
        params.threshold(),
        params.trustees()
    );
    let decryption = unpack_release(pk, &aggregate, combined.plaintexts)
        .map_err(|e| files::aggregate_error(&args.aggregate, None, e))?;
    let noise = release_noise(&aggregate, &args.aggregate)?;
    let decrypted = flag(decryption, &aggregate, &noise);
    present(&args.output, &aggregate, &args.aggregate, decrypted, out)
}

/// Reads a threshold public key (collector.pk of `keygen --trustees`).
fn read_threshold_key(path: &Path) -> Result<ThresholdPublicKey, KeytoolError> {
    let bytes = files::read_expected(
        path,
        MAX_KEY_FILE_BYTES,
        FileKind::ThresholdPublicKey,
        THRESHOLD_KEY_ROLE,
    )?;
    ThresholdPublicKey::from_bytes(&bytes)
        .map_err(|e| files::corrupt_file(path, FileKind::ThresholdPublicKey, e))
}

/// The threshold facts of a public key, for `inspect` and `pubkey`.
pub fn trustees_of(pk: &PublicKeyFile) -> Option<(u16, u16)> {
    match pk {
        PublicKeyFile::Paillier(pk) => pk.trustees(),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
