//! Binary encoding helpers shared by every hetally file and wire format.
//!
//! Every format is a sequence of big-endian integers and length-prefixed byte
//! strings. Decoding goes through [`Reader`], which never reads past the end of
//! its input, caps every length prefix with a limit given by the caller, and
//! makes the caller say when it is done ([`Reader::finish`]) so that trailing
//! bytes are an error rather than silently ignored.
//!
//! Files additionally start with a [`FileHeader`]: the magic bytes `HTLY`, a
//! format version and a kind byte, so that a tool handed the wrong file says
//! so instead of misreading it.

use thiserror::Error;

/// Magic bytes at the start of every hetally file.
pub const MAGIC: [u8; 4] = *b"HTLY";

/// The file format version of key files, and of aggregate files of tasks
/// that declare no neighbouring relation.
pub const FORMAT_VERSION: u8 = 1;

/// The newest format version of aggregate files: version 1 plus the task's
/// neighbouring relation, and the report count as the relation releases it
/// (exact for replace-one, noisy for add/remove).
pub const AGGREGATE_FORMAT_VERSION: u8 = 2;

/// Format version of an aggregate of a task whose trustees draw its noise:
/// version 2 with the trustee-noise bytes after the relation.
pub const AGGREGATE_TRUSTEES_FORMAT_VERSION: u8 = 3;

/// Errors from decoding untrusted bytes.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CodecError {
    /// The input ended before a field was complete.
    #[error("truncated input: {what} needs {needed} bytes but only {available} remain")]
    Truncated {
        /// The field being read.
        what: &'static str,
        /// Bytes the field needs.
        needed: usize,
        /// Bytes left in the input.
        available: usize,
    },
    /// A length prefix exceeds the cap for its field.
    #[error("{what} is {len} long, over the limit of {max}")]
    TooLong {
        /// The field being read.
        what: &'static str,
        /// The length found.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// Bytes remain after the last field.
    #[error("{count} unexpected trailing bytes after the end of the {what}")]
    TrailingBytes {
        /// What was decoded.
        what: &'static str,
        /// Number of bytes left over.
        count: usize,
    },
    /// The input does not start with the hetally magic bytes.
    #[error("not a hetally file (bad magic bytes)")]
    BadMagic,
    /// The file was written by an unknown format version.
    #[error("unsupported format version {found} (this build reads versions {FORMAT_VERSION} to {AGGREGATE_TRUSTEES_FORMAT_VERSION})")]
    UnsupportedVersion {
        /// Version byte found.
        found: u8,
    },
    /// The file is a hetally file of another kind.
    #[error("expected a {expected} but this file is a {found}")]
    WrongKind {
        /// Kind the caller wanted.
        expected: &'static str,
        /// Kind the file says it is.
        found: &'static str,
    },
    /// A field decoded but its value is not acceptable.
    #[error("invalid {what}: {reason}")]
    Invalid {
        /// The field.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
}

impl CodecError {
    /// Shorthand for [`CodecError::Invalid`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        CodecError::Invalid {
            what,
            reason: reason.into(),
        }
    }
}

/// A cursor over untrusted bytes (a clone reads on from the same place,
/// independently: a look ahead).
#[derive(Debug, Clone)]
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// Starts reading `buf` from its first byte.
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet read.
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Reads exactly `n` bytes.
    pub fn bytes(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let available = self.remaining();
        if n > available {
            return Err(CodecError::Truncated {
                what,
                needed: n,
                available,
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Reads a fixed-size array.
    pub fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], CodecError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.bytes(N, what)?);
        Ok(out)
    }

    /// Reads one byte.
    pub fn u8(&mut self, what: &'static str) -> Result<u8, CodecError> {
        Ok(self.array::<1>(what)?[0])
    }

    /// Reads a big-endian `u16`.
    pub fn u16(&mut self, what: &'static str) -> Result<u16, CodecError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `u32`.
    pub fn u32(&mut self, what: &'static str) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    /// Reads a big-endian `u64`.
    pub fn u64(&mut self, what: &'static str) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// Reads a byte string with a `u32` length prefix of at most `max` bytes.
    pub fn var_bytes(&mut self, max: usize, what: &'static str) -> Result<&'a [u8], CodecError> {
        let len = self.u32(what)?;
        if len as u64 > max as u64 {
            return Err(CodecError::TooLong {
                what,
                len: len.into(),
                max: max as u64,
            });
        }
        self.bytes(len as usize, what)
    }

    /// Reads a `u32` item count of at most `max`.
    pub fn count(&mut self, max: usize, what: &'static str) -> Result<usize, CodecError> {
        let len = self.u32(what)?;
        if len as u64 > max as u64 {
            return Err(CodecError::TooLong {
                what,
                len: len.into(),
                max: max as u64,
            });
        }
        Ok(len as usize)
    }

    /// Reads a UTF-8 string with a `u32` length prefix of at most `max` bytes.
    pub fn string(&mut self, max: usize, what: &'static str) -> Result<&'a str, CodecError> {
        let raw = self.var_bytes(max, what)?;
        std::str::from_utf8(raw).map_err(|_| CodecError::invalid(what, "not valid UTF-8"))
    }

    /// Ends decoding: fails if any byte is left over.
    pub fn finish(self, what: &'static str) -> Result<(), CodecError> {
        match self.remaining() {
            0 => Ok(()),
            count => Err(CodecError::TrailingBytes { what, count }),
        }
    }
}

/// Builds an encoding; the mirror of [`Reader`].
#[derive(Debug, Default, Clone)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// An empty writer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends raw bytes with no prefix.
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.buf.extend_from_slice(b);
        self
    }

    /// Appends one byte.
    pub fn u8(&mut self, v: u8) -> &mut Self {
        self.buf.push(v);
        self
    }

    /// Appends a big-endian `u16`.
    pub fn u16(&mut self, v: u16) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Appends a big-endian `u32`.
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Appends a big-endian `u64`.
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes(&v.to_be_bytes())
    }

    /// Appends a `u32` count. Panics on counts over `u32::MAX`, which no
    /// encoder in hetally produces (every count is capped far below).
    pub fn count(&mut self, n: usize) -> &mut Self {
        self.u32(u32::try_from(n).expect("count fits in u32"))
    }

    /// Appends a byte string with a `u32` length prefix.
    pub fn var_bytes(&mut self, b: &[u8]) -> &mut Self {
        self.count(b.len());
        self.bytes(b)
    }

    /// Appends a string with a `u32` length prefix.
    pub fn string(&mut self, s: &str) -> &mut Self {
        self.var_bytes(s.as_bytes())
    }

    /// The encoding so far.
    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

/// What a hetally file holds, as stated in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// A collector public key.
    PublicKey,
    /// A collector secret key.
    SecretKey,
    /// A released, encrypted aggregate.
    Aggregate,
    /// A threshold public key: the collector public key plus the
    /// trustees' verification values (`hetally-paillier`, `threshold`).
    ThresholdPublicKey,
    /// One trustee's share of a threshold secret key.
    KeyShare,
    /// One trustee's partial decryption of a release, with proofs.
    PartialDecryption,
    /// One trustee's encrypted noise for a pending release
    /// ([`crate::contribution`]).
    NoiseContribution,
}

impl FileKind {
    fn to_byte(self) -> u8 {
        match self {
            FileKind::PublicKey => 1,
            FileKind::SecretKey => 2,
            FileKind::Aggregate => 3,
            FileKind::ThresholdPublicKey => 4,
            FileKind::KeyShare => 5,
            FileKind::PartialDecryption => 6,
            FileKind::NoiseContribution => 7,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        Some(match b {
            1 => FileKind::PublicKey,
            2 => FileKind::SecretKey,
            3 => FileKind::Aggregate,
            4 => FileKind::ThresholdPublicKey,
            5 => FileKind::KeyShare,
            6 => FileKind::PartialDecryption,
            7 => FileKind::NoiseContribution,
            _ => return None,
        })
    }

    /// A human name for messages.
    pub fn name(self) -> &'static str {
        match self {
            FileKind::PublicKey => "public key",
            FileKind::SecretKey => "secret key",
            FileKind::Aggregate => "aggregate",
            FileKind::ThresholdPublicKey => "threshold public key",
            FileKind::KeyShare => "key share",
            FileKind::PartialDecryption => "partial decryption",
            FileKind::NoiseContribution => "noise contribution",
        }
    }
}

/// Writes the common file header, format version 1.
pub fn write_header(w: &mut Writer, kind: FileKind) {
    write_header_version(w, kind, FORMAT_VERSION);
}

/// Writes the common file header with the given format version.
pub fn write_header_version(w: &mut Writer, kind: FileKind, version: u8) {
    w.bytes(&MAGIC).u8(version).u8(kind.to_byte());
}

/// Reads the common file header and returns the kind it declares, checking
/// only that the version is one this build reads for some kind (for
/// telling what a file is; decoding it checks the version for its kind).
pub fn read_header(r: &mut Reader<'_>) -> Result<FileKind, CodecError> {
    let (kind, version) = read_header_unchecked(r)?;
    if !(FORMAT_VERSION..=AGGREGATE_TRUSTEES_FORMAT_VERSION).contains(&version) {
        return Err(CodecError::UnsupportedVersion { found: version });
    }
    Ok(kind)
}

/// Reads the common file header: the kind and the format version, which
/// must be one this build reads for that kind (1 for keys, 1 or 2 for
/// aggregates).
pub fn read_header_version(r: &mut Reader<'_>) -> Result<(FileKind, u8), CodecError> {
    let (kind, version) = read_header_unchecked(r)?;
    check_version(kind, version)?;
    Ok((kind, version))
}

/// Reads the header's kind and version without checking the version
/// against the kind (a caller expecting one kind says "wrong kind" first).
fn read_header_unchecked(r: &mut Reader<'_>) -> Result<(FileKind, u8), CodecError> {
    let magic: [u8; 4] = r.array("file header").map_err(|_| CodecError::BadMagic)?;
    if magic != MAGIC {
        return Err(CodecError::BadMagic);
    }
    let version = r.u8("format version")?;
    let kind = r.u8("file kind")?;
    let kind = FileKind::from_byte(kind)
        .ok_or_else(|| CodecError::invalid("file kind", format!("unknown kind byte {kind}")))?;
    Ok((kind, version))
}

fn check_version(kind: FileKind, version: u8) -> Result<(), CodecError> {
    let newest = match kind {
        FileKind::Aggregate => AGGREGATE_TRUSTEES_FORMAT_VERSION,
        _ => FORMAT_VERSION,
    };
    if !(FORMAT_VERSION..=newest).contains(&version) {
        return Err(CodecError::UnsupportedVersion { found: version });
    }
    Ok(())
}

/// Reads the header, checks that the file is of the `expected` kind, and
/// returns its format version (one this build reads for that kind).
pub fn expect_header_version(r: &mut Reader<'_>, expected: FileKind) -> Result<u8, CodecError> {
    let (found, version) = read_header_unchecked(r)?;
    if found != expected {
        return Err(CodecError::WrongKind {
            expected: expected.name(),
            found: found.name(),
        });
    }
    check_version(found, version)?;
    Ok(version)
}

/// Reads the header and checks that the file is of the `expected` kind.
pub fn expect_header(r: &mut Reader<'_>, expected: FileKind) -> Result<(), CodecError> {
    expect_header_version(r, expected).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_trailing_bytes() {
        let mut w = Writer::new();
        w.u8(7).u16(513).u32(70000).u64(1 << 40).var_bytes(b"abc");
        w.string("héllo");
        let bytes = w.finish();

        let mut r = Reader::new(&bytes);
        assert_eq!(r.u8("a").unwrap(), 7);
        assert_eq!(r.u16("b").unwrap(), 513);
        assert_eq!(r.u32("c").unwrap(), 70000);
        assert_eq!(r.u64("d").unwrap(), 1 << 40);
        assert_eq!(r.var_bytes(3, "e").unwrap(), b"abc");
        assert_eq!(r.string(16, "f").unwrap(), "héllo");
        r.finish("test").unwrap();

        let mut long = bytes.clone();
        long.push(0);
        let mut r = Reader::new(&long);
        r.bytes(bytes.len(), "all").unwrap();
        assert_eq!(
            r.finish("test"),
            Err(CodecError::TrailingBytes {
                what: "test",
                count: 1
            })
        );
    }

    #[test]
    fn truncation_and_caps() {
        let mut r = Reader::new(&[0, 0, 0, 9, 1, 2]);
        assert!(matches!(
            r.var_bytes(100, "x"),
            Err(CodecError::Truncated {
                needed: 9,
                available: 2,
                ..
            })
        ));
        let mut r = Reader::new(&[0, 0, 1, 0]);
        assert!(matches!(
            r.var_bytes(255, "x"),
            Err(CodecError::TooLong { len: 256, .. })
        ));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff]);
        assert!(matches!(
            r.count(1000, "n"),
            Err(CodecError::TooLong { .. })
        ));
    }

    #[test]
    fn headers() {
        let mut w = Writer::new();
        write_header(&mut w, FileKind::Aggregate);
        let bytes = w.finish();
        let mut r = Reader::new(&bytes);
        assert_eq!(
            expect_header(&mut r, FileKind::PublicKey),
            Err(CodecError::WrongKind {
                expected: "public key",
                found: "aggregate"
            })
        );
        assert_eq!(
            read_header(&mut Reader::new(b"NOPE\x01\x01")),
            Err(CodecError::BadMagic)
        );
        assert_eq!(
            read_header(&mut Reader::new(b"HTLY\x09\x01")),
            Err(CodecError::UnsupportedVersion { found: 9 })
        );
        assert_eq!(
            read_header(&mut Reader::new(b"HT")),
            Err(CodecError::BadMagic)
        );
    }
}
