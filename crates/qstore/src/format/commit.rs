//! [`Commit`]: an immutable snapshot: a root tree, its parents, message, author, time and
//! key/value metadata.

use super::{MetadataObject, ObjectKind};
use crate::id::ObjectId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A commit object.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Commit {
    /// Parent commits (none for the first commit of a repository).
    pub parents: Vec<ObjectId>,
    /// The root tree.
    pub tree: ObjectId,
    pub message: String,
    pub author: String,
    /// Milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Free-form key/value metadata (circuit hash, gate index, ...).
    pub metadata: BTreeMap<String, String>,
}

impl MetadataObject for Commit {
    const KIND: ObjectKind = ObjectKind::Commit;

    fn validate(&self) -> Result<(), String> {
        if self.parents.len() > 64 {
            return Err(format!("{} parents", self.parents.len()));
        }
        Ok(())
    }
}
