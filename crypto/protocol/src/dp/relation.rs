//! Which batches a task's DP guarantee treats as neighbours.
//!
//! * **Replace-one**: two batches of the *same size* that differ in one
//!   report's value. The batch size is public (as in DAP deployments), and
//!   the noise is calibrated to how far one report's change can move the
//!   release (a histogram report moving from one bucket to another changes
//!   two buckets).
//! * **Add/remove**: two batches that differ by one report present in one
//!   and absent from the other. The batch size itself differs between such
//!   neighbours, so it is never published exactly: the report count is
//!   released with noise, as one more value of the release.
//!
//! A task states its relation in its definition, so it is part of the task
//! id. Tasks created before relations were declared have none (`None`
//! where a relation is optional): their noise was calibrated for
//! add/remove, but their batch sizes were published, so the guarantee that
//! holds for them is replace-one's, at the sensitivity replace-one needs
//! (`hetally_dp::Guarantee`).

use std::fmt;
use std::str::FromStr;

use crate::codec::{CodecError, Reader, Writer};

/// See the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Relation {
    /// Neighbours differ by adding or removing one report.
    AddRemove,
    /// Neighbours have the same size and differ in one report's value.
    ReplaceOne,
}

impl Relation {
    /// The byte of the canonical encoding.
    pub fn to_byte(self) -> u8 {
        match self {
            Relation::AddRemove => 1,
            Relation::ReplaceOne => 2,
        }
    }

    /// Reads the byte of the canonical encoding.
    pub fn from_byte(b: u8) -> Result<Self, CodecError> {
        match b {
            1 => Ok(Relation::AddRemove),
            2 => Ok(Relation::ReplaceOne),
            _ => Err(CodecError::invalid(
                "neighbouring relation",
                format!("unknown relation byte {b}: 1 is add/remove, 2 replace-one"),
            )),
        }
    }

    /// Appends the canonical encoding.
    pub fn encode(self, w: &mut Writer) {
        w.u8(self.to_byte());
    }

    /// Reads the canonical encoding.
    pub fn decode(r: &mut Reader<'_>) -> Result<Self, CodecError> {
        Self::from_byte(r.u8("neighbouring relation")?)
    }

    /// The name on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Relation::AddRemove => "add-remove",
            Relation::ReplaceOne => "replace-one",
        }
    }

    /// True if the batch size is published exactly under this relation.
    pub fn publishes_batch_size(self) -> bool {
        self == Relation::ReplaceOne
    }

    /// What neighbouring batches are, in one phrase.
    pub fn explain(self) -> &'static str {
        match self {
            Relation::AddRemove => {
                "neighbouring batches differ by one report added or removed; the report count is \
                 released with noise, never exactly"
            }
            Relation::ReplaceOne => {
                "neighbouring batches have the same size and differ in one report's value; the \
                 report count is public"
            }
        }
    }
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A relation name that is not `add-remove` or `replace-one`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown neighbouring relation {0:?}: expected add-remove or replace-one")]
pub struct UnknownRelation(pub String);

impl FromStr for Relation {
    type Err = UnknownRelation;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "add-remove" | "add/remove" | "addremove" => Ok(Relation::AddRemove),
            "replace-one" | "replace" | "substitution" => Ok(Relation::ReplaceOne),
            _ => Err(UnknownRelation(s.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_bytes_round_trip() {
        for r in [Relation::AddRemove, Relation::ReplaceOne] {
            assert_eq!(r.name().parse::<Relation>().unwrap(), r);
            assert_eq!(Relation::from_byte(r.to_byte()).unwrap(), r);
        }
        assert!(Relation::from_byte(0).is_err());
        assert!(Relation::from_byte(3).is_err());
        assert!("both".parse::<Relation>().is_err());
        assert!(Relation::ReplaceOne.publishes_batch_size());
        assert!(!Relation::AddRemove.publishes_batch_size());
    }
}
