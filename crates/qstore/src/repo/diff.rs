//! Comparing commits: [`diff_trees`] walks two trees, skipping shared subtrees by id, and
//! lists the paths added, removed or changed; [`Repository::diff`] adds, for each changed
//! state, how many chunks differ and the fidelity between the two versions.

use super::{Repository, StateReader};
use crate::error::Result;
use crate::format::manifest::ChunkRef;
use crate::format::tree::{Node, StateEntry};
use crate::id::ObjectId;
use serde::Serialize;

/// A path whose state differs between two trees.
#[derive(Clone, Debug, PartialEq)]
pub struct TreeChange {
    pub path: String,
    pub old: Option<StateEntry>,
    pub new: Option<StateEntry>,
}

/// Every state that differs between trees `a` and `b` (sorted by path).
pub fn diff_trees(repo: &Repository, a: &ObjectId, b: &ObjectId) -> Result<Vec<TreeChange>> {
    let mut out = Vec::new();
    diff_rec(repo, Some(a), Some(b), "", &mut out)?;
    Ok(out)
}

fn all_states(
    repo: &Repository,
    id: &ObjectId,
    base: &str,
    old: bool,
    out: &mut Vec<TreeChange>,
) -> Result<()> {
    repo.walk_tree(id, base, &mut |p, e| {
        out.push(TreeChange {
            path: p.to_string(),
            old: old.then(|| e.clone()),
            new: (!old).then(|| e.clone()),
        })
    })
}

fn diff_rec(
    repo: &Repository,
    a: Option<&ObjectId>,
    b: Option<&ObjectId>,
    base: &str,
    out: &mut Vec<TreeChange>,
) -> Result<()> {
    if a == b {
        return Ok(());
    }
    let ta = a.map(|id| repo.tree(id)).transpose()?;
    let tb = b.map(|id| repo.tree(id)).transpose()?;
    let ea = ta.as_ref().map(|t| t.entries.as_slice()).unwrap_or(&[]);
    let eb = tb.as_ref().map(|t| t.entries.as_slice()).unwrap_or(&[]);
    let (mut i, mut j) = (0, 0);
    while i < ea.len() || j < eb.len() {
        let ord = match (ea.get(i), eb.get(j)) {
            (Some(x), Some(y)) => x.name.cmp(&y.name),
            (Some(_), None) => std::cmp::Ordering::Less,
            _ => std::cmp::Ordering::Greater,
        };
        let (na, nb) = match ord {
            std::cmp::Ordering::Less => {
                i += 1;
                (Some(&ea[i - 1]), None)
            }
            std::cmp::Ordering::Greater => {
                j += 1;
                (None, Some(&eb[j - 1]))
            }
            std::cmp::Ordering::Equal => {
                i += 1;
                j += 1;
                (Some(&ea[i - 1]), Some(&eb[j - 1]))
            }
        };
        let name = &na.or(nb).expect("one side exists").name;
        let path = format!("{base}{name}");
        let sub = format!("{path}/");
        match (na.map(|e| &e.node), nb.map(|e| &e.node)) {
            (Some(Node::Tree(x)), Some(Node::Tree(y))) => {
                diff_rec(repo, Some(x), Some(y), &sub, out)?
            }
            (Some(Node::State(x)), Some(Node::State(y))) => {
                if x != y {
                    out.push(TreeChange {
                        path,
                        old: Some((**x).clone()),
                        new: Some((**y).clone()),
                    });
                }
            }
            (x, y) => {
                match x {
                    Some(Node::Tree(id)) => all_states(repo, id, &sub, true, out)?,
                    Some(Node::State(s)) => out.push(TreeChange {
                        path: path.clone(),
                        old: Some((**s).clone()),
                        new: None,
                    }),
                    None => {}
                }
                match y {
                    Some(Node::Tree(id)) => all_states(repo, id, &sub, false, out)?,
                    Some(Node::State(s)) => out.push(TreeChange {
                        path: path.clone(),
                        old: None,
                        new: Some((**s).clone()),
                    }),
                    None => {}
                }
            }
        }
    }
    Ok(())
}

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
        let (ca, cb) = (
            self.commit(&self.resolve(a)?)?,
            self.commit(&self.resolve(b)?)?,
        );
        let mut out = Vec::new();
        for ch in diff_trees(self, &ca.tree, &cb.tree)? {
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
