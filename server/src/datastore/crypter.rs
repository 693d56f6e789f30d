//! Secrets at rest: the datastore keys and the AEAD that seals secret
//! columns with them.
//!
//! The DAP tables hold secrets that a copy of the database must not give
//! away: each task's HPKE private keys, its Prio3 verification key and the
//! token the leader presents to the helper (incoming tokens are stored as
//! SHA-256 hashes and need no sealing). Each is sealed with AES-GCM (the
//! RustCrypto `aes-gcm` crate, which `hpke` already builds on) under a
//! *datastore key* that lives outside the database: a file
//! (`--datastore-keys-file`), the environment (`HETALLY_DATASTORE_KEYS`), or,
//! for SQLite only, a file the server generates in its data directory.
//!
//! * **Several keys, newest first.** The first key seals; every key is tried
//!   to open. Rotation is: put a new key first, restart (the start-up pass,
//!   `DapStore::secure_secrets`, re-seals every secret under the new first
//!   key), then drop the old key. Janus does the same with its `Crypter`.
//! * **Bound to its place.** The associated data names the table, the column
//!   and the row's key (the task id, and the config id for HPKE keys), so a
//!   sealed value copied into another row or column does not open.
//! * **Format.** `0x01 || nonce (12 bytes, random) || ciphertext || tag`.
//!   Random 96-bit nonces are safe here: a datastore seals a handful of
//!   values per task, far below the 2^32 messages per key at which random
//!   nonces start to risk a collision.
//! * Keys are 16 bytes (AES-128-GCM) or 32 bytes (AES-256-GCM), written as
//!   base64url with or without padding. They zeroize on drop and never
//!   appear in `Debug` output, logs or errors.

use std::fmt;
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, Payload};
use aes_gcm::{Aes128Gcm, Aes256Gcm, KeyInit, Nonce};
use base64::engine::general_purpose::{URL_SAFE, URL_SAFE_NO_PAD};
use base64::Engine;
use rand::RngCore;
use thiserror::Error;
use zeroize::Zeroizing;

/// File the server generates in a SQLite data directory when no datastore
/// key is configured.
pub const GENERATED_KEYS_FILE: &str = "datastore.keys";

/// Environment variable holding the datastore keys themselves (base64url,
/// separated by commas or white space, the sealing key first).
pub const KEYS_ENV: &str = "HETALLY_DATASTORE_KEYS";

/// Version byte of the sealed format.
const FORMAT_V1: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
/// Domain separation of the associated data.
const AAD_LABEL: &[u8] = b"hetally datastore secret v1";

/// Errors of this module. None of them carries key material.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum CrypterError {
    /// The key list holds no key.
    #[error("{origin} holds no datastore key")]
    NoKeys {
        /// Where the list came from.
        origin: String,
    },
    /// A key in the list is not base64url of 16 or 32 bytes.
    #[error(
        "datastore key {position} of {origin} is not base64url of 16 or 32 bytes (make one with \
         `head -c 32 /dev/urandom | basenc --base64url`)"
    )]
    BadKey {
        /// Its position in the list, from 1.
        position: usize,
        /// Where the list came from.
        origin: String,
    },
    /// The key file could not be read or written.
    #[error("datastore keys file {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        reason: String,
    },
    /// Keys were given twice.
    #[error("datastore keys are given both by --datastore-keys-file and by {KEYS_ENV}: give one")]
    Ambiguous,
    /// PostgreSQL without a configured key.
    #[error(
        "a PostgreSQL datastore needs a datastore key shared by every replica: give \
         --datastore-keys-file FILE or {KEYS_ENV} (see docs/operations.md, Secrets)"
    )]
    KeyRequired,
    /// A sealed value opens under none of the keys.
    #[error(
        "the sealed {table}.{column} opens under none of the {keys} datastore key(s): the key \
         that sealed it is missing from the list, or the value was altered or moved from \
         another row"
    )]
    Undecryptable {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// How many keys were tried.
        keys: usize,
    },
    /// A sealed value is not in the sealed format.
    #[error("the sealed {table}.{column} is malformed ({len} bytes)")]
    Malformed {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
        /// Its length.
        len: usize,
    },
    /// Sealing failed (a bug: AES-GCM only fails on absurd lengths).
    #[error("sealing {table}.{column} failed")]
    Seal {
        /// Table.
        table: &'static str,
        /// Column.
        column: &'static str,
    },
}

/// The raw datastore keys, the sealing key first. Zeroized on drop; `Debug`
/// shows only how many there are.
#[derive(Clone)]
pub struct DatastoreKeys {
    keys: Vec<Zeroizing<Vec<u8>>>,
}

impl fmt::Debug for DatastoreKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatastoreKeys")
            .field("count", &self.keys.len())
            .finish_non_exhaustive()
    }
}

impl DatastoreKeys {
    /// Parses a key list: base64url keys (padded or not) separated by
    /// commas, spaces or new lines; `#` starts a comment that runs to the
    /// end of its line. `origin` names the source in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CrypterError> {
        let mut keys = Vec::new();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("");
            for word in line
                .split(|c: char| c == ',' || c.is_whitespace())
                .filter(|w| !w.is_empty())
            {
                let position = keys.len() + 1;
                let bad = || CrypterError::BadKey {
                    position,
                    origin: origin.to_string(),
                };
                let bytes = Zeroizing::new(if word.ends_with('=') {
                    URL_SAFE.decode(word).map_err(|_| bad())?
                } else {
                    URL_SAFE_NO_PAD.decode(word).map_err(|_| bad())?
                });
                if bytes.len() != 16 && bytes.len() != 32 {
                    return Err(bad());
                }
                keys.push(bytes);
            }
        }
        if keys.is_empty() {
            return Err(CrypterError::NoKeys {
                origin: origin.to_string(),
            });
        }
        Ok(DatastoreKeys { keys })
    }

    /// Reads a key list from a file.
    pub fn read(path: &Path) -> Result<Self, CrypterError> {
        let text =
            Zeroizing::new(
                std::fs::read_to_string(path).map_err(|e| CrypterError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                })?,
            );
        Self::parse(&text, &path.display().to_string())
    }

    /// How many keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a parsed list holds at least one key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// A fresh random 32-byte key, as the text of a key file.
    pub fn generate_file_text() -> Zeroizing<String> {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Zeroizing::new(format!(
            "# hetally datastore key (AES-256-GCM), base64url. Keep it with the backups of the \
             database: DAP task secrets cannot be read without it.\n{}\n",
            URL_SAFE_NO_PAD.encode(key.as_ref())
        ))
    }
}

/// Where the server's datastore keys come from.
#[derive(Debug)]
pub enum KeysOrigin {
    /// `--datastore-keys-file`.
    File(PathBuf),
    /// `HETALLY_DATASTORE_KEYS`.
    Environment,
    /// The file in the SQLite data directory, read.
    DataDir(PathBuf),
    /// The file in the SQLite data directory, generated now.
    Generated(PathBuf),
}

impl fmt::Display for KeysOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeysOrigin::File(p) | KeysOrigin::DataDir(p) => write!(f, "{}", p.display()),
            KeysOrigin::Generated(p) => write!(f, "{} (generated)", p.display()),
            KeysOrigin::Environment => write!(f, "{KEYS_ENV}"),
        }
    }
}

/// The server's datastore keys: from `file`, else from `env`, else (SQLite,
/// `sqlite_data_dir` given) from [`GENERATED_KEYS_FILE`] in the data
/// directory, generated with mode 0600 if missing. PostgreSQL replicas
/// must share a key, so there a key must be given.
pub fn load_keys(
    file: Option<&Path>,
    env: Option<DatastoreKeys>,
    sqlite_data_dir: Option<&Path>,
) -> Result<(DatastoreKeys, KeysOrigin), CrypterError> {
    match (file, env) {
        (Some(_), Some(_)) => Err(CrypterError::Ambiguous),
        (Some(path), None) => Ok((
            DatastoreKeys::read(path)?,
            KeysOrigin::File(path.to_path_buf()),
        )),
        (None, Some(keys)) => Ok((keys, KeysOrigin::Environment)),
        (None, None) => {
            let dir = sqlite_data_dir.ok_or(CrypterError::KeyRequired)?;
            let path = dir.join(GENERATED_KEYS_FILE);
            if path.exists() {
                return Ok((DatastoreKeys::read(&path)?, KeysOrigin::DataDir(path)));
            }
            let text = DatastoreKeys::generate_file_text();
            hetally_protocol::keyfile::write_private_file(&path, text.as_bytes(), false).map_err(
                |e| CrypterError::File {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                },
            )?;
            Ok((DatastoreKeys::read(&path)?, KeysOrigin::Generated(path)))
        }
    }
}

/// Where a sealed value lives: it opens only there.
#[derive(Debug, Clone, Copy)]
pub struct SecretSlot<'a> {
    /// Table.
    pub table: &'static str,
    /// Column.
    pub column: &'static str,
    /// The row's primary key, as bytes.
    pub row: &'a [u8],
}

impl SecretSlot<'_> {
    fn aad(&self) -> Vec<u8> {
        let mut aad = Vec::with_capacity(AAD_LABEL.len() + 64 + self.row.len());
        for part in [
            AAD_LABEL,
            self.table.as_bytes(),
            self.column.as_bytes(),
            self.row,
        ] {
            // Length-prefixed, so that no two slots share associated data.
            aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
            aad.extend_from_slice(part);
        }
        aad
    }
}

enum Cipher {
    Aes128(Box<Aes128Gcm>),
    Aes256(Box<Aes256Gcm>),
}

impl Cipher {
    fn new(key: &[u8]) -> Self {
        // `DatastoreKeys::parse` admits 16 and 32 bytes only, the lengths
        // these two take, so neither `new_from_slice` can fail.
        if key.len() == 16 {
            Cipher::Aes128(Box::new(
                Aes128Gcm::new_from_slice(key).expect("a 16-byte key"),
            ))
        } else {
            Cipher::Aes256(Box::new(
                Aes256Gcm::new_from_slice(key).expect("a 32-byte key"),
            ))
        }
    }

    fn encrypt(&self, nonce: &[u8; NONCE_LEN], payload: Payload<'_, '_>) -> Option<Vec<u8>> {
        let nonce = Nonce::from(*nonce);
        match self {
            Cipher::Aes128(c) => c.encrypt(&nonce, payload).ok(),
            Cipher::Aes256(c) => c.encrypt(&nonce, payload).ok(),
        }
    }

    fn decrypt(&self, nonce: &[u8; NONCE_LEN], payload: Payload<'_, '_>) -> Option<Vec<u8>> {
        let nonce = Nonce::from(*nonce);
        match self {
            Cipher::Aes128(c) => c.decrypt(&nonce, payload).ok(),
            Cipher::Aes256(c) => c.decrypt(&nonce, payload).ok(),
        }
    }
}

/// Seals and opens secret columns with the datastore keys (module docs).
pub struct Crypter {
    ciphers: Vec<Cipher>,
}

impl fmt::Debug for Crypter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Crypter")
            .field("keys", &self.ciphers.len())
            .finish_non_exhaustive()
    }
}

/// A value opened by [`Crypter::open`].
pub struct Opened {
    /// The plaintext (zeroized on drop).
    pub plaintext: Zeroizing<Vec<u8>>,
    /// True if a key other than the first opened it: the value should be
    /// sealed again under the first key.
    pub stale: bool,
}

impl Crypter {
    /// A crypter over `keys`, the first of which seals.
    pub fn new(keys: &DatastoreKeys) -> Self {
        Crypter {
            ciphers: keys.keys.iter().map(|k| Cipher::new(k)).collect(),
        }
    }

    /// A crypter under one fresh random key that lives only in this
    /// process: what it seals cannot be opened once the process ends. For
    /// tests, never for a server's datastore.
    pub fn ephemeral() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        rand::rngs::OsRng.fill_bytes(key.as_mut());
        Crypter {
            ciphers: vec![Cipher::new(key.as_ref())],
        }
    }

    /// Seals `plaintext` for `slot` under the first key.
    pub fn seal(&self, slot: SecretSlot<'_>, plaintext: &[u8]) -> Result<Vec<u8>, CrypterError> {
        let err = || CrypterError::Seal {
            table: slot.table,
            column: slot.column,
        };
        let cipher = self.ciphers.first().ok_or_else(err)?;
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = slot.aad();
        let ct = cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .ok_or_else(err)?;
        let mut sealed = Vec::with_capacity(1 + NONCE_LEN + ct.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ct);
        Ok(sealed)
    }

    /// Opens a value sealed for `slot`, trying every key in order.
    pub fn open(&self, slot: SecretSlot<'_>, sealed: &[u8]) -> Result<Opened, CrypterError> {
        if sealed.len() < 1 + NONCE_LEN + TAG_LEN || sealed[0] != FORMAT_V1 {
            return Err(CrypterError::Malformed {
                table: slot.table,
                column: slot.column,
                len: sealed.len(),
            });
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&sealed[1..1 + NONCE_LEN]);
        let aad = slot.aad();
        for (i, cipher) in self.ciphers.iter().enumerate() {
            let payload = Payload {
                msg: &sealed[1 + NONCE_LEN..],
                aad: &aad,
            };
            if let Some(plaintext) = cipher.decrypt(&nonce, payload) {
                return Ok(Opened {
                    plaintext: Zeroizing::new(plaintext),
                    stale: i != 0,
                });
            }
        }
        Err(CrypterError::Undecryptable {
            table: slot.table,
            column: slot.column,
            keys: self.ciphers.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    const K2: &str = "HxwdHhscGRgXFhUUExIREA8ODQwLCgkIBwYFBAMCAQA=";

    fn slot(row: &[u8]) -> SecretSlot<'_> {
        SecretSlot {
            table: "dap_tasks",
            column: "vdaf_verify_key",
            row,
        }
    }

    #[test]
    fn seals_opens_and_binds_the_slot() {
        let c = Crypter::new(&DatastoreKeys::parse(K1, "test").unwrap());
        let sealed = c.seal(slot(b"row-a"), b"secret").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        let opened = c.open(slot(b"row-a"), &sealed).unwrap();
        assert_eq!(&opened.plaintext[..], b"secret");
        assert!(!opened.stale);
        assert!(matches!(
            c.open(slot(b"row-b"), &sealed),
            Err(CrypterError::Undecryptable { .. })
        ));
        let other_column = SecretSlot {
            column: "peer_auth_token",
            ..slot(b"row-a")
        };
        assert!(c.open(other_column, &sealed).is_err());
        assert!(matches!(
            c.open(slot(b"row-a"), &sealed[..10]),
            Err(CrypterError::Malformed { .. })
        ));
    }

    #[test]
    fn rotation_opens_with_old_keys_and_flags_stale() {
        let old = Crypter::new(&DatastoreKeys::parse(K1, "test").unwrap());
        let sealed = old.seal(slot(b"r"), b"s").unwrap();
        let both = Crypter::new(&DatastoreKeys::parse(&format!("{K2}, {K1}"), "test").unwrap());
        assert!(both.open(slot(b"r"), &sealed).unwrap().stale);
        let resealed = both.seal(slot(b"r"), b"s").unwrap();
        let new_only = Crypter::new(&DatastoreKeys::parse(K2, "test").unwrap());
        assert!(!new_only.open(slot(b"r"), &resealed).unwrap().stale);
        assert!(new_only.open(slot(b"r"), &sealed).is_err());
    }

    #[test]
    fn parses_lists_and_rejects_bad_keys_without_echoing_them() {
        let text = format!("# comment\n{K1}\n\n  {K2} # old\n");
        assert_eq!(DatastoreKeys::parse(&text, "f").unwrap().len(), 2);
        // 16-byte keys (AES-128-GCM) too.
        let short = URL_SAFE_NO_PAD.encode([7u8; 16]);
        let c = Crypter::new(&DatastoreKeys::parse(&short, "f").unwrap());
        let sealed = c.seal(slot(b"r"), b"x").unwrap();
        assert_eq!(&c.open(slot(b"r"), &sealed).unwrap().plaintext[..], b"x");
        let err = DatastoreKeys::parse("c2VjcmV0LWJ1dC1zaG9ydA_", "f")
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 1 of f"), "{err}");
        assert!(!err.contains("c2VjcmV0"), "{err}");
        assert!(matches!(
            DatastoreKeys::parse("# nothing\n", "f"),
            Err(CrypterError::NoKeys { .. })
        ));
        let keys = DatastoreKeys::parse(K1, "f").unwrap();
        assert_eq!(format!("{keys:?}"), "DatastoreKeys { count: 1, .. }");
        assert!(!format!("{:?}", Crypter::new(&keys)).contains(K1));
    }

    #[test]
    fn generated_file_is_one_fresh_key() {
        let text = DatastoreKeys::generate_file_text();
        assert_eq!(DatastoreKeys::parse(&text, "g").unwrap().len(), 1);
        assert_ne!(*text, *DatastoreKeys::generate_file_text());
    }
}
