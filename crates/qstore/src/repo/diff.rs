//! Comparing commits: [`Repository::diff`] lists the paths added, removed or changed between
//! two commits (a tree diff that skips equal subtrees by id, see [`super::tree::diff`]) and,
//! for each changed state, how many chunks differ and the fidelity between the two versions.

use super::{Repository, StateReader};
use crate::error::Result;
use crate::format::manifest::ChunkRef;
use crate::format::tree::StateEntry;
use serde::Serialize;

/// How a path differs between two commits.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum DiffEntry {
    Added {
        path: String,
    },
    Removed {
        path: String,
    },
    Changed {
        path: String,
        /// Chunk positions whose content differs.
        chunks_changed: u64,
        /// Chunks in the longer of the two streams.
        chunks_total: u64,
        /// See [`StateReader::fidelity`]; `None` when not defined (arrays, other shapes).
        fidelity: Option<f64>,
        /// True when only tags differ.
        tags_only: bool,
    },
}

fn same_chunk(a: &ChunkRef, b: &ChunkRef) -> bool {
    match (a, b) {
        (ChunkRef::Zero, ChunkRef::Zero) => true,
        (ChunkRef::Stored { id: x, .. }, ChunkRef::Stored { id: y, .. }) => x == y,
        _ => false,
    }
}

impl Repository {
    /// Compare the commits `a` and `b` resolve to.
    pub fn diff(&self, a: &str, b: &str) -> Result<Vec<DiffEntry>> {
        let (ra, rb) = (
            self.root_of(&self.resolve(a)?)?,
            self.root_of(&self.resolve(b)?)?,
        );
        let mut out = Vec::new();
        for ch in super::tree::diff(self, &ra, &rb)? {
            out.push(match (ch.old, ch.new) {
                (None, _) => DiffEntry::Added { path: ch.path },
                (_, None) => DiffEntry::Removed { path: ch.path },
                (Some(o), Some(n)) => {
                    let tags_only = StateEntry {
                        tags: n.tags.clone(),
                        ..o.clone()
                    } == n;
                    let mut ra = StateReader::new(self.clone(), &ch.path, o)?;
                    let mut rb = StateReader::new(self.clone(), &ch.path, n)?;
                    let (ma, mb) = (&ra.manifest().chunks, &rb.manifest().chunks);
                    let total = ma.len().max(mb.len()) as u64;
                    let same = ma
                        .iter()
                        .zip(mb.iter())
                        .filter(|(x, y)| same_chunk(x, y))
                        .count() as u64;
                    let fidelity = StateReader::fidelity(&mut ra, &mut rb)?;
                    DiffEntry::Changed {
                        path: ch.path,
                        chunks_changed: total - same,
                        chunks_total: total,
                        fidelity,
                        tags_only,
                    }
                }
            });
        }
        Ok(out)
    }
}
