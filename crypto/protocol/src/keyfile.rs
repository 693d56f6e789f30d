//! Collector key files: their framing, and how files holding secrets are
//! written to disk.
//!
//! A key file is a [`crate::codec`] header (kind public or secret key), a
//! scheme byte, then the scheme's key body (`hetally-paillier`,
//! `hetally-lwe`). The fingerprint of a public key is the SHA-256 of its
//! whole file encoding. Secret key files are written with mode 0600,
//! atomically (temporary file, then rename).

use std::fs;
use std::io::{self, Write};
use std::path::Path;

use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::codec::{self, CodecError, FileKind, Reader, Writer};
use crate::scheme::Scheme;

/// Largest key file this build reads (a generous cap: Paillier keys are
/// under 1 KB, TFHE keys about 34 KB).
pub const MAX_KEY_FILE_BYTES: usize = 64 << 20;

/// Errors from reading and writing key files.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyFileError {
    /// The file is malformed.
    #[error("malformed key file: {0}")]
    Codec(#[from] CodecError),
    /// Reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The target exists and overwriting was not asked for.
    #[error("{0} already exists (pass --force to overwrite it)")]
    Exists(String),
}

/// Writes the framing of a key file of `kind` and `scheme`; the caller
/// appends the body.
pub fn write_key_header(w: &mut Writer, kind: FileKind, scheme: Scheme) {
    codec::write_header(w, kind);
    w.u8(scheme.to_byte());
}

/// Reads the framing of a key file of `kind`: the scheme, with the reader
/// left at the start of the body.
///
/// A threshold public key ([`FileKind::ThresholdPublicKey`]) is read where
/// a public key is expected: it is one (its body starts with the ordinary
/// public key body, and clients encrypt under it alike), followed by the
/// trustees' verification values. [`read_public_key_header`] says which
/// of the two a file is.
pub fn read_key_header(r: &mut Reader<'_>, kind: FileKind) -> Result<Scheme, CodecError> {
    if kind == FileKind::PublicKey {
        return read_public_key_header(r).map(|(scheme, _)| scheme);
    }
    codec::expect_header(r, kind)?;
    Scheme::from_byte(r.u8("scheme")?)
}

/// Reads the framing of a public key file, plain or threshold: the scheme
/// and whether the key is a threshold key, with the reader left at the
/// start of the body.
pub fn read_public_key_header(r: &mut Reader<'_>) -> Result<(Scheme, bool), CodecError> {
    let mut peek = r.clone();
    let threshold = matches!(
        codec::read_header_version(&mut peek),
        Ok((FileKind::ThresholdPublicKey, _))
    );
    let kind = if threshold {
        FileKind::ThresholdPublicKey
    } else {
        FileKind::PublicKey
    };
    codec::expect_header(r, kind)?;
    Ok((Scheme::from_byte(r.u8("scheme")?)?, threshold))
}

/// The scheme of a key file of `kind`, read from its framing alone.
pub fn key_file_scheme(bytes: &[u8], kind: FileKind) -> Result<Scheme, CodecError> {
    read_key_header(&mut Reader::new(bytes), kind)
}

/// The fingerprint of a public key: SHA-256 of its file encoding.
pub fn fingerprint(public_key_file: &[u8]) -> [u8; 32] {
    Sha256::digest(public_key_file).into()
}

/// Reads a whole file of at most [`MAX_KEY_FILE_BYTES`].
pub fn read_capped(path: &Path) -> Result<Vec<u8>, KeyFileError> {
    read_file_capped(path, MAX_KEY_FILE_BYTES)
}

/// Reads a whole file, refusing files over `max` bytes.
pub fn read_file_capped(path: &Path, max: usize) -> Result<Vec<u8>, KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    let len = fs::metadata(path).map_err(io_err)?.len();
    if len > max as u64 {
        return Err(KeyFileError::Codec(CodecError::TooLong {
            what: "file",
            len,
            max: max as u64,
        }));
    }
    fs::read(path).map_err(io_err)
}

/// Writes `bytes` to `path` readable by the owner only (mode 0600 on Unix),
/// atomically: a temporary file in the same directory, synced, then renamed.
/// Refuses to replace an existing file unless `overwrite`.
pub fn write_private_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), KeyFileError> {
    write_file(path, bytes, overwrite, 0o600)
}

/// Like [`write_private_file`] but with mode 0644, for public material.
pub fn write_public_file(path: &Path, bytes: &[u8], overwrite: bool) -> Result<(), KeyFileError> {
    write_file(path, bytes, overwrite, 0o644)
}

fn write_file(path: &Path, bytes: &[u8], overwrite: bool, mode: u32) -> Result<(), KeyFileError> {
    let io_err = |source| KeyFileError::Io {
        path: path.display().to_string(),
        source,
    };
    if !overwrite && path.exists() {
        return Err(KeyFileError::Exists(path.display().to_string()));
    }
    let file_name = path.file_name().ok_or_else(|| {
        io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a file path",
        ))
    })?;
    // A random suffix as well as the pid: a temporary file left by a killed
    // run with the same pid (pid 1 in every container) must not block us.
    let tmp = path.with_file_name(format!(
        ".{}.tmp-{}-{:016x}",
        file_name.to_string_lossy(),
        std::process::id(),
        rand::random::<u64>()
    ));
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let result = (|| {
        let mut f = options.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        if overwrite {
            fs::rename(&tmp, path)
        } else {
            // link(2) fails if the path exists, atomically: two writers
            // racing past the check above cannot both succeed, and neither
            // replaces the other's file (rename would).
            fs::hard_link(&tmp, path)?;
            fs::remove_file(&tmp)
        }
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        if e.kind() == io::ErrorKind::AlreadyExists {
            return Err(KeyFileError::Exists(path.display().to_string()));
        }
        return Err(io_err(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_temporary_file_of_the_same_pid_does_not_block_writing() {
        let dir = std::env::temp_dir().join(format!(
            "hetally-keyfile-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        fs::create_dir_all(&dir).unwrap();
        let path = dir.join("collector.sk");
        // What a run killed between creating and renaming its temporary
        // file used to leave behind.
        let stale = dir.join(format!(".collector.sk.tmp-{}", std::process::id()));
        fs::write(stale, b"stale").unwrap();
        write_private_file(&path, b"key", false).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"key");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(matches!(
            write_private_file(&path, b"new", false),
            Err(KeyFileError::Exists(_))
        ));
        write_private_file(&path, b"new", true).unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn racing_writers_without_overwrite_leave_exactly_one_winner() {
        for round in 0..20 {
            let dir = std::env::temp_dir().join(format!(
                "hetally-keyfile-race-{}-{round}-{:x}",
                std::process::id(),
                rand::random::<u64>()
            ));
            fs::create_dir_all(&dir).unwrap();
            let path = dir.join("admin.token");
            let barrier = std::sync::Barrier::new(4);
            let results: Vec<(u8, bool)> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..4u8)
                    .map(|i| {
                        let (path, barrier) = (&path, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            (i, write_private_file(path, &[i], false).is_ok())
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().unwrap()).collect()
            });
            let winners: Vec<u8> = results.iter().filter(|r| r.1).map(|r| r.0).collect();
            assert_eq!(winners.len(), 1, "round {round}: {results:?}");
            assert_eq!(fs::read(&path).unwrap(), [winners[0]]);
            // No temporary files left behind.
            assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
            fs::remove_dir_all(&dir).unwrap();
        }
    }
}
