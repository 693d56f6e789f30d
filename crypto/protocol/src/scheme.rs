//! Which homomorphic scheme a task, key or aggregate uses, and the
//! ciphertext layout a task definition records for it.
//!
//! The scheme byte and the layout fields are part of the canonical
//! encodings (task definitions, key files, aggregate files), so they are
//! fixed here. What a layout *should* be for a given key and task is the
//! scheme's own business (`hetally-paillier`, `hetally-lwe`): the layout is
//! derived from the task, never chosen by hand, and a definition whose
//! layout differs from the derived one is refused (`hetally-schemes`).

use std::fmt;
use std::str::FromStr;

use crate::codec::{CodecError, Reader, Writer};

/// Scheme byte of Paillier keys and aggregates.
pub const SCHEME_PAILLIER: u8 = 1;

/// Scheme byte of TFHE (LWE) keys and aggregates.
pub const SCHEME_TFHE: u8 = 2;

/// The homomorphic scheme of a key, task or aggregate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// Paillier with packed slots (`hetally-paillier`).
    Paillier,
    /// TFHE-rs LWE compact lists (`hetally-lwe`).
    Tfhe,
}

impl Scheme {
    /// The scheme's byte in encodings.
    pub fn to_byte(self) -> u8 {
        match self {
            Scheme::Paillier => SCHEME_PAILLIER,
            Scheme::Tfhe => SCHEME_TFHE,
        }
    }

    /// Parses a scheme byte.
    pub fn from_byte(b: u8) -> Result<Self, CodecError> {
        match b {
            SCHEME_PAILLIER => Ok(Scheme::Paillier),
            SCHEME_TFHE => Ok(Scheme::Tfhe),
            _ => Err(CodecError::invalid(
                "scheme",
                format!("unknown scheme byte {b}"),
            )),
        }
    }

    /// The scheme's name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Scheme::Paillier => "paillier",
            Scheme::Tfhe => "tfhe",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheme name that is not `paillier` or `tfhe`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheme {0:?}: expected paillier or tfhe")]
pub struct UnknownScheme(pub String);

impl FromStr for Scheme {
    type Err = UnknownScheme;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "paillier" => Ok(Scheme::Paillier),
            "tfhe" => Ok(Scheme::Tfhe),
            other => Err(UnknownScheme(other.to_string())),
        }
    }
}

/// How a task's values are laid out in its ciphertexts: the part of the
/// definition that the scheme derives from the key, the measurement, the DP
/// mechanism and the largest batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Paillier: values packed into slots of `slot_bits` bits.
    Paillier {
        /// Slot width.
        slot_bits: u32,
    },
    /// TFHE: values scaled by Delta = 2^`delta_log2` in compact lists.
    Tfhe {
        /// log2 of the plaintext scale Delta.
        delta_log2: u32,
        /// SHA-256 of the task's CRS, for a task with input proofs (the CRS
        /// itself is served beside the task).
        crs_hash: Option<[u8; 32]>,
    },
}

impl Layout {
    /// The scheme this layout belongs to.
    pub fn scheme(&self) -> Scheme {
        match self {
            Layout::Paillier { .. } => Scheme::Paillier,
            Layout::Tfhe { .. } => Scheme::Tfhe,
        }
    }

    /// The CRS hash, for layouts whose input proofs need a CRS.
    pub fn crs_hash(&self) -> Option<[u8; 32]> {
        match self {
            Layout::Tfhe { crs_hash, .. } => *crs_hash,
            Layout::Paillier { .. } => None,
        }
    }

    /// Appends the layout fields (after the scheme byte and key).
    pub fn encode(&self, w: &mut Writer) {
        match self {
            Layout::Paillier { slot_bits } => {
                w.u32(*slot_bits);
            }
            Layout::Tfhe {
                delta_log2,
                crs_hash,
            } => {
                // Delta's log2 is at most 60 (checked by the scheme), so it
                // fits the byte.
                w.u8(*delta_log2 as u8);
                match crs_hash {
                    None => {
                        w.u8(0);
                    }
                    Some(h) => {
                        w.u8(1).bytes(h);
                    }
                }
            }
        }
    }

    /// Reads the layout fields of `scheme`.
    pub fn decode(scheme: Scheme, r: &mut Reader<'_>) -> Result<Self, CodecError> {
        match scheme {
            Scheme::Paillier => Ok(Layout::Paillier {
                slot_bits: r.u32("slot width")?,
            }),
            Scheme::Tfhe => {
                let delta_log2 = u32::from(r.u8("Delta")?);
                let crs_hash = match r.u8("CRS flag")? {
                    0 => None,
                    1 => Some(r.array("CRS hash")?),
                    f => {
                        return Err(CodecError::invalid(
                            "CRS flag",
                            format!("{f}: only 0 (no CRS) and 1 are defined"),
                        ))
                    }
                };
                Ok(Layout::Tfhe {
                    delta_log2,
                    crs_hash,
                })
            }
        }
    }
}
