//! Threshold keys: no single key holder (docs/threshold.md).
//!
//! * `keygen --trustees N --threshold T` ([`keygen`]) is the trusted
//!   dealer: it finds two safe primes, splits the Paillier key so that any
//!   T of N trustees decrypt together ([`hetally_paillier::threshold`]),
//!   writes `collector.pk` (a threshold public key: the encryption key, N,
//!   T and the trustees' verification values) and one
//!   `trustee-I.share` per trustee (mode 0600), and wipes the rest. With
//!   `--scheme tfhe` it splits an LWE key N-of-N instead
//!   (`hetally_lwe::threshold`), and the public key declares N and the
//!   least smudging lambda.
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
use hetally_protocol::keyfile::{self, MAX_KEY_FILE_BYTES};
use hetally_protocol::Scheme;
#[cfg(feature = "tfhe")]
use hetally_schemes::lwe;
use hetally_schemes::paillier::threshold::{
    generate_threshold, PartialDecryption, ThresholdParams, ThresholdPublicKey,
};
use hetally_schemes::paillier::{release_ciphertexts, unpack_release};
use hetally_schemes::PublicKeyFile;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::cli::{CombineArgs, KeygenArgs, PartialDecryptArgs};
use crate::decrypt::{check_outputs, flag, present, release_noise};
use crate::error::KeytoolError;
use crate::files::{self, Partial, Role, Share, AGGREGATE_ROLE};
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
    let Some(trustees) = args.trustees else {
        return Err(KeytoolError::Usage("--threshold needs --trustees".into()));
    };
    match args.scheme.scheme() {
        Some(Scheme::Paillier) => {}
        #[cfg(feature = "tfhe")]
        Some(Scheme::Tfhe) => return keygen_tfhe(args, trustees, out),
        _ => {
            return Err(KeytoolError::Usage(
                "--trustees is available for --scheme paillier and --scheme tfhe (DAP \
                 credentials have one holder)"
                    .into(),
            ))
        }
    }
    if args.smudging_lambda.is_some() {
        return Err(KeytoolError::Usage(
            "--smudging-lambda is for --scheme tfhe: Paillier partial decryptions are exact and \
             carry proofs"
                .into(),
        ));
    }
    let Some(threshold) = args.threshold else {
        return Err(KeytoolError::Usage(
            "a Paillier threshold key needs --threshold T: how many of the --trustees decrypt \
             together"
                .into(),
        ));
    };
    let params = ThresholdParams::new(trustees, threshold)
        .map_err(|e| KeytoolError::Usage(format!("{e}")))?;
    let committee = Committee::prepare(args, trustees)?;
    let mut spinner = Spinner::new_threshold(args.bits, trustees, threshold);
    // Long-term key: draw straight from the operating system.
    let generated = generate_threshold(args.bits, params, &mut rand::rngs::OsRng, &mut |e| {
        spinner.update(e)
    });
    spinner.finish();
    let (key, shares) = generated.map_err(|e| KeytoolError::Keygen(e.to_string()))?;
    committee.write(
        shares.iter().map(|s| Zeroizing::new(s.to_bytes())),
        &key.to_bytes(),
        args.force,
    )?;
    drop(shares);
    committee.report(
        out,
        &format!(
            "Generated a {}-bit Paillier threshold key: any {threshold} of {trustees} trustees decrypt together, fewer learn nothing.",
            args.bits
        ),
        &format!("names the {trustees} trustees, the threshold {threshold} and their verification values"),
        &key.fingerprint(),
        &["No file holds the whole secret key: this run (the trusted dealer) wiped the primes and the key it split.".into()],
    )
}

/// The files `keygen --trustees` writes: collector.pk and one share per
/// trustee.
struct Committee {
    pk_path: PathBuf,
    share_paths: Vec<PathBuf>,
}

impl Committee {
    /// Checks that none of the files exists (unless --force) and creates
    /// the directory, before anything is generated.
    fn prepare(args: &KeygenArgs, trustees: u16) -> Result<Self, KeytoolError> {
        let committee = Committee {
            pk_path: args.out.join(PUBLIC_KEY_FILE),
            share_paths: (1..=trustees)
                .map(|i| args.out.join(share_file_name(i)))
                .collect(),
        };
        let all: Vec<&PathBuf> = std::iter::once(&committee.pk_path)
            .chain(&committee.share_paths)
            .collect();
        refuse_existing(&all, args.force)?;
        create_dir(&args.out)?;
        Ok(committee)
    }

    /// Writes the shares (mode 0600), then the public key: a public key
    /// without its shares would let clients encrypt to a key nobody can
    /// decrypt with.
    fn write(
        &self,
        shares: impl Iterator<Item = Zeroizing<Vec<u8>>>,
        public_key: &[u8],
        force: bool,
    ) -> Result<(), KeytoolError> {
        for (bytes, path) in shares.zip(&self.share_paths) {
            keyfile::write_private_file(path, &bytes, force).map_err(|e| write_error(path, e))?;
        }
        keyfile::write_public_file(&self.pk_path, public_key, force)
            .map_err(|e| write_error(&self.pk_path, e))
    }

    /// Tells the dealer what was written and what to do with it.
    fn report(
        &self,
        out: &mut dyn Write,
        headline: &str,
        key_names: &str,
        fingerprint: &[u8; 32],
        notes: &[String],
    ) -> Result<(), KeytoolError> {
        let w = KeytoolError::Output;
        writeln!(out, "{headline}").map_err(w)?;
        writeln!(
            out,
            "  public key   {} ({key_names})",
            self.pk_path.display()
        )
        .map_err(w)?;
        for (i, path) in self.share_paths.iter().enumerate() {
            writeln!(out, "  trustee {:<4} {} (mode 0600)", i + 1, path.display()).map_err(w)?;
        }
        writeln!(out, "  fingerprint  {}", hex::encode(fingerprint)).map_err(w)?;
        writeln!(out).map_err(w)?;
        for note in notes {
            writeln!(out, "{note}").map_err(w)?;
        }
        writeln!(
            out,
            "Give each trustee its own share file, privately, and delete it here once it is handed over."
        )
        .map_err(w)?;
        writeln!(
            out,
            "Give {PUBLIC_KEY_FILE} to the server operator, and the fingerprint above to whoever configures clients."
        )
        .map_err(w)
    }
}

/// Runs `keygen --scheme tfhe --trustees N`: an N-of-N TFHE key.
#[cfg(feature = "tfhe")]
fn keygen_tfhe(args: &KeygenArgs, trustees: u16, out: &mut dyn Write) -> Result<(), KeytoolError> {
    if let Some(threshold) = args.threshold {
        if threshold != trustees {
            return Err(KeytoolError::Usage(format!(
                "a TFHE threshold key is N-of-N: all {trustees} trustees take part in every \
                 decryption, so --threshold can only be {trustees} (or left out); for T of N \
                 use --scheme paillier"
            )));
        }
    }
    let min_lambda = args
        .smudging_lambda
        .unwrap_or(crate::cli::DEFAULT_SMUDGING_LAMBDA);
    let declared = lwe::Trustees {
        count: trustees,
        min_lambda,
    };
    let committee = Committee::prepare(args, trustees)?;
    // TFHE-rs's generators are seeded from the operating system.
    let (pk, shares) =
        lwe::threshold::generate_threshold(lwe::PKE_ZKV2_2048, declared, &mut rand::rngs::OsRng)
            .map_err(|e| KeytoolError::Keygen(e.to_string()))?;
    committee.write(
        shares.iter().map(|s| Zeroizing::new(s.to_bytes())),
        &pk.to_bytes(),
        args.force,
    )?;
    drop(shares);

    let count = hetally_protocol::Measurement::Count;
    let largest = lwe::scheme::max_feasible_batch_for(
        &pk,
        &count,
        &hetally_dp::DpMechanism::None,
        Some(hetally_dp::Relation::ReplaceOne),
    )
    .map(|k| k.to_string())
    .unwrap_or_else(|_| "no".into());
    committee.report(
        out,
        &format!(
            "Generated a TFHE threshold key (LWE dimension {}): all {trustees} trustees decrypt together, any {} learn nothing.",
            pk.params().lwe_dimension,
            trustees - 1
        ),
        &format!("names the {trustees} trustees and the least smudging lambda {min_lambda}"),
        &pk.fingerprint(),
        &[
            format!("Each trustee's partial decryption hides the release's noise to statistical distance below 2^-{min_lambda} + 2^-40 per release; tasks under this key get a Delta with room for that, which limits their batches (a count task: at most {largest} reports per release; docs/threshold.md)."),
            "No file holds the whole secret key: this run (the trusted dealer) wiped the key it split.".into(),
        ],
    )
}

/// Reads a key share file of either scheme; the raw bytes are wiped once
/// decoded.
fn read_share(path: &Path) -> Result<Share, KeytoolError> {
    let bytes = Zeroizing::new(files::read_expected(
        path,
        MAX_KEY_FILE_BYTES,
        FileKind::KeyShare,
        SHARE_ROLE,
    )?);
    Share::from_bytes(&bytes).map_err(|e| files::corrupt_file(path, FileKind::KeyShare, e))
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
    // Without the `tfhe` feature the match has one arm.
    #[allow(clippy::infallible_destructuring_match)]
    let share = match share {
        Share::Paillier(share) => share,
        #[cfg(feature = "tfhe")]
        Share::Tfhe(share) => return partial_decrypt_tfhe(args, &share, &bytes, &aggregate, out),
    };
    let pk = share.public_key().public_key();
    let (_, cts) = release_ciphertexts(pk, &aggregate)
        .map_err(|e| files::aggregate_error(&args.aggregate, Some(&args.share), e))?;
    let context = release_context(&bytes);
    let part = share
        .partial_decrypt(&cts, &context, &mut rand::rngs::OsRng)
        .map_err(|e| KeytoolError::Threshold(format!("{}: {e}", display(&args.share))))?;
    let encoded = part.to_bytes();
    write_partial(&args.out, &encoded)?;
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

/// Writes a partial decryption file (public; replacing it).
fn write_partial(path: &Path, encoded: &[u8]) -> Result<(), KeytoolError> {
    keyfile::write_public_file(path, encoded, true).map_err(|e| write_error(path, e))
}

/// `partial-decrypt` with a TFHE share: refuses a release that the key's
/// least lambda does not hold for.
#[cfg(feature = "tfhe")]
fn partial_decrypt_tfhe(
    args: &PartialDecryptArgs,
    share: &lwe::threshold::KeyShare,
    bytes: &[u8],
    aggregate: &AggregateFile,
    out: &mut dyn Write,
) -> Result<(), KeytoolError> {
    if aggregate.key_fingerprint != share.key_fingerprint() {
        return Err(KeytoolError::Threshold(format!(
            "{} was released under key {}…, but {} is trustee {}'s share of key {}…: use the \
             share of the key the task was created with",
            display(&args.aggregate),
            hex::encode(&aggregate.key_fingerprint[..8]),
            display(&args.share),
            share.index(),
            hex::encode(&share.key_fingerprint()[..8])
        )));
    }
    let context = release_context(bytes);
    let part = share
        .partial_decrypt(
            aggregate,
            &context,
            share.min_lambda(),
            &mut rand::rngs::OsRng,
        )
        .map_err(|e| KeytoolError::Threshold(format!("{}: {e}", display(&args.share))))?;
    let encoded = part.to_bytes();
    write_partial(&args.out, &encoded)?;
    writeln!(
        out,
        "Wrote trustee {}'s partial decryption of {} ({} values, smudged to statistical distance below 2^-{} + 2^-40; {} bytes) to {}.",
        share.index(),
        display(&args.aggregate),
        part.len(),
        part.lambda(),
        encoded.len(),
        display(&args.out)
    )
    .map_err(KeytoolError::Output)?;
    writeln!(
        out,
        "Send it to whoever runs `hetally-keytool combine`: all {} trustees' partials decrypt the release. Make no second partial of this release: fresh noise would average the smudging down.",
        share.trustees()
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

    // The key: the pinned one, or the one the partials carry, which must be
    // the key the aggregate names.
    let mut all = Vec::with_capacity(args.partials.len());
    for path in &args.partials {
        let bytes = files::read_expected(
            path,
            hetally_protocol::aggregate::MAX_AGGREGATE_FILE_BYTES,
            FileKind::PartialDecryption,
            PARTIAL_ROLE,
        )?;
        let part = Partial::from_bytes(&bytes)
            .map_err(|e| files::corrupt_file(path, FileKind::PartialDecryption, e))?;
        all.push((path, part));
    }
    if aggregate.scheme == Scheme::Tfhe {
        #[cfg(feature = "tfhe")]
        return combine_tfhe(args, &aggregate, &context, all, out);
    }
    let mut parts = Vec::with_capacity(all.len());
    for (path, part) in all {
        match part {
            Partial::Paillier(part) => parts.push((path, part)),
            #[cfg(feature = "tfhe")]
            Partial::Tfhe(_) => {
                return Err(KeytoolError::Threshold(format!(
                    "{} is a TFHE partial decryption, but {} is a Paillier release",
                    display(path),
                    display(&args.aggregate)
                )))
            }
        }
    }
    let pinned = match &args.key {
        None => None,
        Some(path) => Some(read_threshold_key(path)?),
    };
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

/// `combine` of a TFHE release: all N trustees' partials.
#[cfg(feature = "tfhe")]
fn combine_tfhe(
    args: &CombineArgs,
    aggregate: &AggregateFile,
    context: &[u8],
    all: Vec<(&PathBuf, Partial)>,
    out: &mut dyn Write,
) -> Result<Outcome, KeytoolError> {
    use lwe::threshold::ThresholdError;

    if let Some(path) = &args.key {
        let pk = match files::read_public_key(path, THRESHOLD_KEY_ROLE)? {
            PublicKeyFile::Tfhe(pk) if pk.trustees().is_some() => pk,
            _ => {
                return Err(KeytoolError::Threshold(format!(
                    "{} is not a TFHE threshold public key (made by `hetally-keytool keygen \
                     --scheme tfhe --trustees N`)",
                    display(path)
                )))
            }
        };
        if pk.fingerprint() != aggregate.key_fingerprint {
            return Err(KeytoolError::Threshold(format!(
                "{} was released under key {}…, not under --key {} ({}…)",
                display(&args.aggregate),
                hex::encode(&aggregate.key_fingerprint[..8]),
                display(path),
                hex::encode(&pk.fingerprint()[..8])
            )));
        }
    }
    let mut parts = Vec::with_capacity(all.len());
    let mut names = Vec::with_capacity(all.len());
    for (path, part) in all {
        match part {
            Partial::Tfhe(part) => {
                names.push(format!("trustee {}: {}", part.index(), display(path)));
                parts.push(part);
            }
            Partial::Paillier(_) => {
                return Err(KeytoolError::Threshold(format!(
                    "{} is a Paillier partial decryption, but {} is a TFHE release",
                    display(path),
                    display(&args.aggregate)
                )))
            }
        }
    }
    let trustees = parts.first().map(|p| p.trustees()).unwrap_or_default();
    let values = match lwe::threshold::combine(&parts, aggregate, context) {
        Ok(values) => values,
        Err(e) => {
            let message = format!(
                "cannot decrypt {}: {e}; all {trustees} trustees' partial decryptions of this \
                 release are needed (given: {})",
                display(&args.aggregate),
                names.join(", ")
            );
            return Err(match e {
                ThresholdError::Aggregate(_)
                | ThresholdError::Lwe(_)
                | ThresholdError::MarginExceeded { .. }
                | ThresholdError::Codec(_) => KeytoolError::Threshold(message),
                _ => KeytoolError::NotEnoughPartials(message),
            });
        }
    };
    let used: Vec<String> = parts.iter().map(|p| p.index().to_string()).collect();
    let lambda = parts.iter().map(|p| p.lambda()).min().unwrap_or_default();
    eprintln!(
        "hetally-keytool: decrypted with the partial decryptions of trustees {} (all {trustees} needed; smudged to statistical distance below 2^-{lambda} + 2^-40)",
        used.join(", ")
    );
    let noise = release_noise(aggregate, &args.aggregate)?;
    let decrypted = flag(
        hetally_protocol::aggregate::Decryption::clean(values),
        aggregate,
        &noise,
    );
    present(&args.output, aggregate, &args.aggregate, decrypted, out)
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
        #[cfg(feature = "tfhe")]
        PublicKeyFile::Tfhe(pk) => pk.trustees().map(|t| (t.count, t.count)),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}
