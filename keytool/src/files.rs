//! Reading hetally files from disk and turning every way they can be wrong
//! into a [`KeytoolError`] that names the file and says what to do.
//!
//! Each reader checks the file header itself first, so that a file of the
//! wrong kind is reported as such ("a public key was given as --key")
//! rather than as a decoding failure.

use std::path::Path;

use hetally_protocol::aggregate::{AggregateError, AggregateFile, MAX_AGGREGATE_FILE_BYTES};
use hetally_protocol::codec::{self, CodecError, FileKind, Reader};
use hetally_protocol::keyfile::{self, KeyFileError, MAX_KEY_FILE_BYTES};
#[cfg(feature = "tfhe")]
use hetally_schemes::lwe;
use hetally_schemes::paillier::threshold as paillier_threshold;
use hetally_schemes::{KeyError, PublicKeyFile, SecretKeyFile};
use zeroize::Zeroizing;

use crate::error::KeytoolError;

/// Where a file was given, so that a wrong-kind message can say which
/// argument needs what.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Role {
    /// The argument, as the user typed it ("--key", "AGG").
    pub(crate) name: &'static str,
    /// What the argument needs ("secret key").
    pub(crate) expected: &'static str,
    /// What to pass instead, when something else was given.
    pub(crate) hint: &'static str,
}

/// The `--key` argument of `decrypt`.
pub(crate) const SECRET_KEY_ROLE: Role = Role {
    name: "--key",
    expected: "secret key",
    hint: "pass the collector's secret key (collector.sk, made by `hetally-keytool keygen`)",
};

/// The aggregate argument of `decrypt`.
pub(crate) const AGGREGATE_ROLE: Role = Role {
    name: "the AGG argument",
    expected: "aggregate",
    hint: "pass the encrypted aggregate file the server released",
};

/// The key argument of `pubkey`.
pub(crate) const PUBLIC_KEY_ROLE: Role = Role {
    name: "PK",
    expected: "public key",
    hint: "pass the collector's public key (collector.pk)",
};

/// Any hetally file, decoded and validated.
#[derive(Debug)]
pub(crate) enum AnyFile {
    PublicKey(PublicKeyFile),
    SecretKey(SecretKeyFile),
    Aggregate(AggregateFile),
    /// A trustee's share of a threshold key.
    KeyShare(Share),
    /// A trustee's partial decryption of a release.
    PartialDecryption(Partial),
}

/// A trustee's key share, of either scheme.
#[derive(Debug)]
pub(crate) enum Share {
    /// A share of a T-of-N Paillier key.
    Paillier(paillier_threshold::KeyShare),
    /// An additive share of an N-of-N TFHE key.
    #[cfg(feature = "tfhe")]
    Tfhe(lwe::threshold::KeyShare),
}

/// A trustee's partial decryption, of either scheme.
#[derive(Debug, Clone)]
pub(crate) enum Partial {
    /// With a proof per ciphertext.
    Paillier(paillier_threshold::PartialDecryption),
    /// Smudged, without proofs.
    #[cfg(feature = "tfhe")]
    Tfhe(lwe::threshold::PartialDecryption),
}

/// What `inspect` shows of a share or a partial: (trustee, N, T, key
/// fingerprint, ciphertexts or values covered).
pub(crate) struct TrusteeFileFacts {
    pub(crate) trustee: u16,
    pub(crate) trustees: u16,
    pub(crate) threshold: u16,
    pub(crate) key_fingerprint: [u8; 32],
    pub(crate) covers: Option<usize>,
}

impl Share {
    /// Decodes a key share file of either scheme.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        match keyfile::key_file_scheme(bytes, FileKind::KeyShare).map_err(|e| e.to_string())? {
            #[cfg(feature = "tfhe")]
            hetally_protocol::Scheme::Tfhe => lwe::threshold::KeyShare::from_bytes(bytes)
                .map(Share::Tfhe)
                .map_err(|e| e.to_string()),
            _ => paillier_threshold::KeyShare::from_bytes(bytes)
                .map(Share::Paillier)
                .map_err(|e| e.to_string()),
        }
    }

    pub(crate) fn facts(&self) -> TrusteeFileFacts {
        match self {
            Share::Paillier(s) => TrusteeFileFacts {
                trustee: s.index(),
                trustees: s.public_key().params().trustees(),
                threshold: s.public_key().params().threshold(),
                key_fingerprint: s.public_key().fingerprint(),
                covers: None,
            },
            #[cfg(feature = "tfhe")]
            Share::Tfhe(s) => TrusteeFileFacts {
                trustee: s.index(),
                trustees: s.trustees(),
                threshold: s.trustees(),
                key_fingerprint: s.key_fingerprint(),
                covers: None,
            },
        }
    }
}

impl Partial {
    /// Decodes a partial decryption file of either scheme.
    pub(crate) fn from_bytes(bytes: &[u8]) -> Result<Self, String> {
        match keyfile::key_file_scheme(bytes, FileKind::PartialDecryption)
            .map_err(|e| e.to_string())?
        {
            #[cfg(feature = "tfhe")]
            hetally_protocol::Scheme::Tfhe => lwe::threshold::PartialDecryption::from_bytes(bytes)
                .map(Partial::Tfhe)
                .map_err(|e| e.to_string()),
            _ => paillier_threshold::PartialDecryption::from_bytes(bytes)
                .map(Partial::Paillier)
                .map_err(|e| e.to_string()),
        }
    }

    pub(crate) fn facts(&self) -> TrusteeFileFacts {
        match self {
            Partial::Paillier(p) => TrusteeFileFacts {
                trustee: p.index(),
                trustees: p.key().params().trustees(),
                threshold: p.key().params().threshold(),
                key_fingerprint: p.key().fingerprint(),
                covers: Some(p.values().len()),
            },
            #[cfg(feature = "tfhe")]
            Partial::Tfhe(p) => TrusteeFileFacts {
                trustee: p.index(),
                trustees: p.trustees(),
                threshold: p.trustees(),
                key_fingerprint: p.key_fingerprint(),
                covers: Some(p.len()),
            },
        }
    }
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

/// What to do about a corrupt file of this kind.
fn remedy(kind: Option<FileKind>) -> &'static str {
    match kind {
        Some(FileKind::PublicKey) => "copy the collector's public key again",
        Some(FileKind::SecretKey) => "restore collector.sk from your backup",
        Some(FileKind::Aggregate) => "download the aggregate from the server again",
        Some(FileKind::ThresholdPublicKey) => "copy collector.pk again",
        Some(FileKind::KeyShare) => "restore this trustee's share from its backup",
        Some(FileKind::PartialDecryption) => "ask the trustee for its partial decryption again",
        _ => "check that this is the right file, or fetch it again",
    }
}

fn kind_name(kind: Option<FileKind>) -> &'static str {
    kind.map_or("hetally", FileKind::name)
}

/// Reads a whole file of at most `max` bytes.
fn read_bytes(path: &Path, max: usize, what: &'static str) -> Result<Vec<u8>, KeytoolError> {
    match keyfile::read_file_capped(path, max) {
        Ok(bytes) => Ok(bytes),
        Err(KeyFileError::Io { source, .. }) => Err(KeytoolError::Read {
            path: display(path),
            source,
        }),
        Err(KeyFileError::Codec(CodecError::TooLong { len, max, .. })) => {
            Err(KeytoolError::TooLarge {
                path: display(path),
                len,
                what,
                max,
            })
        }
        Err(other) => Err(KeytoolError::Read {
            path: display(path),
            source: std::io::Error::other(other.to_string()),
        }),
    }
}

/// The file format versions this build reads, for errors.
const SUPPORTED_VERSIONS: &str = "version 1 of key files and versions 1 and 2 of aggregate files";

/// Maps a decoding error of a file of `kind` (`None`: the header itself).
fn codec_error(
    path: &Path,
    kind: Option<FileKind>,
    expected: &'static str,
    e: CodecError,
) -> KeytoolError {
    match e {
        CodecError::BadMagic => KeytoolError::NotHetally {
            path: display(path),
            expected,
        },
        CodecError::UnsupportedVersion { found } => KeytoolError::UnsupportedVersion {
            path: display(path),
            found,
            supported: SUPPORTED_VERSIONS,
        },
        CodecError::Invalid {
            what: "scheme",
            reason,
        } => KeytoolError::UnsupportedScheme {
            path: display(path),
            reason,
        },
        other => corrupt(path, kind, other.to_string()),
    }
}

fn corrupt(path: &Path, kind: Option<FileKind>, reason: String) -> KeytoolError {
    KeytoolError::Corrupt {
        path: display(path),
        kind: kind_name(kind),
        reason,
        remedy: remedy(kind),
    }
}

fn key_file_error(path: &Path, kind: FileKind, e: KeyError) -> KeytoolError {
    match e {
        KeyError::Codec(e) => codec_error(path, Some(kind), kind.name(), e),
        KeyError::NotBuilt(reason) => KeytoolError::UnsupportedScheme {
            path: display(path),
            reason,
        },
        other => corrupt(path, Some(kind), other.to_string()),
    }
}

/// Maps errors of decoding an aggregate, or of decrypting it with the key
/// in `key_path`.
pub(crate) fn aggregate_error(
    path: &Path,
    key_path: Option<&Path>,
    e: AggregateError,
) -> KeytoolError {
    let key = || key_path.map(display).unwrap_or_default();
    match e {
        AggregateError::Codec(e) => codec_error(path, Some(FileKind::Aggregate), "aggregate", e),
        AggregateError::WrongKey { expected, found } => KeytoolError::WrongKey {
            key: key(),
            aggregate: display(path),
            expected,
            found,
        },
        AggregateError::WrongScheme {
            aggregate,
            key: key_scheme,
        } => KeytoolError::WrongScheme {
            key: key(),
            aggregate: display(path),
            key_scheme: key_scheme.to_string(),
            aggregate_scheme: aggregate.to_string(),
        },
        AggregateError::BadCiphertext { index, reason } => corrupt(
            path,
            Some(FileKind::Aggregate),
            format!("ciphertext {index} is invalid under this key ({reason})"),
        ),
        AggregateError::Layout(reason) => corrupt(path, Some(FileKind::Aggregate), reason),
        other => corrupt(path, Some(FileKind::Aggregate), other.to_string()),
    }
}

/// Reads the header of `bytes`, the contents of `path`.
fn header_kind(
    path: &Path,
    bytes: &[u8],
    expected: &'static str,
) -> Result<FileKind, KeytoolError> {
    if bytes.is_empty() {
        return Err(KeytoolError::Empty {
            path: display(path),
            expected,
        });
    }
    codec::read_header(&mut Reader::new(bytes)).map_err(|e| codec_error(path, None, expected, e))
}

/// Checks the header of `bytes` says `want`; otherwise explains what the
/// file is and what `role` needs.
fn expect_kind(path: &Path, bytes: &[u8], want: FileKind, role: Role) -> Result<(), KeytoolError> {
    let found = header_kind(path, bytes, role.expected)?;
    if found != want {
        return Err(KeytoolError::WrongKind {
            path: display(path),
            found: found.name(),
            role: role.name,
            expected: role.expected,
            hint: role.hint,
        });
    }
    Ok(())
}

/// Reads a whole file of at most `max` bytes whose header says `want`.
/// The caller wipes the bytes if they hold a secret.
pub(crate) fn read_expected(
    path: &Path,
    max: usize,
    want: FileKind,
    role: Role,
) -> Result<Vec<u8>, KeytoolError> {
    let bytes = read_bytes(path, max, role.expected)?;
    expect_kind(path, &bytes, want, role)?;
    Ok(bytes)
}

/// A file of `kind` that failed to decode, with `reason`.
pub(crate) fn corrupt_file(
    path: &Path,
    kind: FileKind,
    reason: impl std::fmt::Display,
) -> KeytoolError {
    corrupt(path, Some(kind), reason.to_string())
}

/// Reads a secret key file. The raw bytes are wiped once decoded.
pub(crate) fn read_secret_key(path: &Path, role: Role) -> Result<SecretKeyFile, KeytoolError> {
    let bytes = Zeroizing::new(read_bytes(path, MAX_KEY_FILE_BYTES, "key file")?);
    expect_kind(path, &bytes, FileKind::SecretKey, role)?;
    SecretKeyFile::from_bytes(&bytes).map_err(|e| key_file_error(path, FileKind::SecretKey, e))
}

/// Reads an aggregate file.
pub(crate) fn read_aggregate(path: &Path, role: Role) -> Result<AggregateFile, KeytoolError> {
    let bytes = read_bytes(path, MAX_AGGREGATE_FILE_BYTES, "aggregate")?;
    expect_kind(path, &bytes, FileKind::Aggregate, role)?;
    let file = AggregateFile::from_bytes(&bytes).map_err(|e| aggregate_error(path, None, e))?;
    hetally_schemes::check_aggregate(&file).map_err(|e| aggregate_error(path, None, e))?;
    Ok(file)
}

/// Reads a public key, or the public half of a secret key file.
pub(crate) fn read_public_key(path: &Path, role: Role) -> Result<PublicKeyFile, KeytoolError> {
    match read_any(path, MAX_KEY_FILE_BYTES, role.expected)? {
        (AnyFile::PublicKey(pk), _) => Ok(pk),
        (AnyFile::SecretKey(sk), _) => Ok(sk.public_key()),
        (
            other @ (AnyFile::Aggregate(_) | AnyFile::KeyShare(_) | AnyFile::PartialDecryption(_)),
            _,
        ) => Err(KeytoolError::WrongKind {
            path: display(path),
            found: match other {
                AnyFile::KeyShare(_) => FileKind::KeyShare.name(),
                AnyFile::PartialDecryption(_) => FileKind::PartialDecryption.name(),
                _ => FileKind::Aggregate.name(),
            },
            role: role.name,
            expected: role.expected,
            hint: role.hint,
        }),
    }
}

/// Reads and fully decodes any hetally file of at most `max` bytes,
/// returning it with its size in bytes.
pub(crate) fn read_any(
    path: &Path,
    max: usize,
    expected: &'static str,
) -> Result<(AnyFile, usize), KeytoolError> {
    let bytes = Zeroizing::new(read_bytes(path, max, "file")?);
    let kind = header_kind(path, &bytes, expected)?;
    let size = bytes.len();
    let file = match kind {
        FileKind::PublicKey | FileKind::ThresholdPublicKey => AnyFile::PublicKey(
            PublicKeyFile::from_bytes(&bytes).map_err(|e| key_file_error(path, kind, e))?,
        ),
        FileKind::SecretKey => AnyFile::SecretKey(
            SecretKeyFile::from_bytes(&bytes).map_err(|e| key_file_error(path, kind, e))?,
        ),
        FileKind::Aggregate => {
            let file =
                AggregateFile::from_bytes(&bytes).map_err(|e| aggregate_error(path, None, e))?;
            hetally_schemes::check_aggregate(&file).map_err(|e| aggregate_error(path, None, e))?;
            AnyFile::Aggregate(file)
        }
        FileKind::KeyShare => {
            AnyFile::KeyShare(Share::from_bytes(&bytes).map_err(|e| corrupt(path, Some(kind), e))?)
        }
        FileKind::PartialDecryption => AnyFile::PartialDecryption(
            Partial::from_bytes(&bytes).map_err(|e| corrupt(path, Some(kind), e))?,
        ),
        #[allow(unreachable_patterns)]
        other => {
            return Err(KeytoolError::UnsupportedScheme {
                path: display(path),
                reason: format!("unknown file kind {}", other.name()),
            })
        }
    };
    Ok((file, size))
}

/// The largest file [`read_any`] is asked to read by `inspect`.
pub(crate) const MAX_ANY_FILE_BYTES: usize = MAX_AGGREGATE_FILE_BYTES;

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }

    #[test]
    fn header_problems_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let empty = write(dir.path(), "empty", b"");
        let e = read_aggregate(&empty, AGGREGATE_ROLE).unwrap_err();
        assert!(matches!(e, KeytoolError::Empty { .. }), "{e}");

        let text = write(dir.path(), "notes.txt", b"hello world");
        let e = read_secret_key(&text, SECRET_KEY_ROLE).unwrap_err();
        assert!(matches!(e, KeytoolError::NotHetally { .. }), "{e}");
        assert!(e.to_string().contains("notes.txt"));

        let future = write(dir.path(), "future", b"HTLY\x09\x03rest");
        let e = read_aggregate(&future, AGGREGATE_ROLE).unwrap_err();
        assert!(
            matches!(e, KeytoolError::UnsupportedVersion { found: 9, .. }),
            "{e}"
        );

        let short = write(dir.path(), "short", b"HTLY\x01");
        let e = read_aggregate(&short, AGGREGATE_ROLE).unwrap_err();
        assert!(matches!(e, KeytoolError::Corrupt { .. }), "{e}");

        let missing = dir.path().join("missing");
        let e = read_any(&missing, MAX_ANY_FILE_BYTES, "hetally").unwrap_err();
        assert!(matches!(e, KeytoolError::Read { .. }), "{e}");
    }

    #[test]
    fn wrong_kind_says_what_the_file_is() {
        let dir = tempfile::tempdir().unwrap();
        // A secret key header where an aggregate is expected.
        let sk = write(dir.path(), "collector.sk", b"HTLY\x01\x02\x01");
        let e = read_aggregate(&sk, AGGREGATE_ROLE).unwrap_err();
        let msg = e.to_string();
        assert!(matches!(e, KeytoolError::WrongKind { .. }), "{msg}");
        assert!(
            msg.contains("collector.sk is a secret key, but the AGG argument must be an aggregate; pass the encrypted"),
            "{msg}"
        );
    }
}
