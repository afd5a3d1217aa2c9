//! [`Repository::fsck`]: checks every pack's index (its checksum), walks every ref, commit,
//! tree node (or version-1 directory tree) and manifest, checks every chunk (its record
//! header, or with `full` its decoded bytes against its hash), and reports each problem with
//! the commit and path it affects.

use super::Repository;
use crate::error::Result;
use crate::format::manifest::ChunkRef;
use crate::format::pack::read_index;
use crate::format::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::format::tree::ItemValue;
use crate::id::ObjectId;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// One thing wrong with a repository.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Problem {
    /// `dangling-ref`, `missing`, `corrupt` or `damaged-pack`.
    pub kind: String,
    /// The object (or ref, or pack) concerned.
    pub object: String,
    /// A commit that contains it.
    pub commit: Option<String>,
    /// The state path it belongs to.
    pub path: Option<String>,
    pub detail: String,
}

/// What fsck checked and found.
#[derive(Clone, Debug, Default, Serialize)]
pub struct FsckReport {
    pub refs: u64,
    pub commits: u64,
    pub trees: u64,
    pub states: u64,
    pub chunks: u64,
    /// True when every chunk was read and hashed (`--full`).
    pub full: bool,
    pub problems: Vec<Problem>,
}

impl FsckReport {
    /// True when no problem was found.
    pub fn healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

struct Walk<'a> {
    repo: &'a Repository,
    full: bool,
    report: FsckReport,
    trees: HashSet<ObjectId>,
    manifests: HashSet<ObjectId>,
    chunks: HashMap<ObjectId, bool>,
}

impl Walk<'_> {
    fn problem(
        &mut self,
        kind: &str,
        object: String,
        commit: &ObjectId,
        path: Option<&str>,
        detail: String,
    ) {
        self.report.problems.push(Problem {
            kind: kind.into(),
            object,
            commit: Some(commit.to_hex()),
            path: path.map(str::to_string),
            detail,
        });
    }

    fn kind_of(e: &crate::Error) -> &'static str {
        match e {
            crate::Error::ObjectMissing { .. } | crate::Error::BlobNotFound(_) => "missing",
            _ => "corrupt",
        }
    }

    fn tree_problem(&mut self, id: &ObjectId, path: &str, commit: &ObjectId, e: &crate::Error) {
        let p = if path.is_empty() { "/" } else { path };
        self.problem(
            Self::kind_of(e),
            format!("tree {}", id.short()),
            commit,
            Some(p),
            e.to_string(),
        );
    }

    /// Check the tree of a commit: every node once, every state's manifest and chunks.
    fn tree(&mut self, root: &ObjectId, commit: &ObjectId) {
        if self.trees.contains(root) {
            return;
        }
        match self.repo.is_legacy_tree(root) {
            Ok(true) => return self.legacy_tree(root, commit),
            Ok(false) => {}
            Err(e) => {
                self.trees.insert(*root);
                return self.tree_problem(root, "", commit, &e);
            }
        }
        // (node id, the first path below it, the level and first key its parent expects)
        type Pending = (ObjectId, String, Option<(u8, String)>);
        let mut stack: Vec<Pending> = vec![(*root, String::new(), None)];
        while let Some((id, path, expect)) = stack.pop() {
            if !self.trees.insert(id) {
                continue;
            }
            self.report.trees += 1;
            let n: Arc<crate::format::tree::TreeNode> = match self.repo.tree_node(&id) {
                Ok(n) => n,
                Err(e) => {
                    self.tree_problem(&id, &path, commit, &e);
                    continue;
                }
            };
            if let Some((level, key)) = expect
                && (n.level != level || n.first_key() != Some(key.as_str()))
            {
                let e = crate::Error::corrupt(
                    format!("tree {}", id.short()),
                    "the node does not match its parent (level or first path)",
                );
                self.tree_problem(&id, &path, commit, &e);
            }
            for it in n.items.iter().rev() {
                match &it.value {
                    ItemValue::State(s) => self.state(&s.manifest, &it.key, commit),
                    ItemValue::Child { id: c, .. } => stack.push((
                        *c,
                        it.key.clone(),
                        Some((n.level.saturating_sub(1), it.key.clone())),
                    )),
                }
            }
        }
    }

    /// Check a version-1 directory tree.
    fn legacy_tree(&mut self, root: &ObjectId, commit: &ObjectId) {
        let w = self.repo.walk_legacy_unseen(root, &self.trees);
        self.report.trees += w.trees.len() as u64;
        self.trees.extend(w.trees);
        if let Some(e) = w.error {
            self.tree_problem(root, "", commit, &e);
        }
        for (p, m) in w.states {
            self.state(&m, &p, commit);
        }
    }

    fn state(&mut self, manifest: &ObjectId, path: &str, commit: &ObjectId) {
        self.report.states += 1;
        if !self.manifests.insert(*manifest) {
            return;
        }
        let m = match self.repo.manifest(manifest) {
            Ok(m) => m,
            Err(e) => {
                self.problem(
                    Self::kind_of(&e),
                    format!("manifest {}", manifest.short()),
                    commit,
                    Some(path),
                    e.to_string(),
                );
                return;
            }
        };
        for (i, c) in m.chunks.iter().enumerate() {
            let ChunkRef::Stored { id, location, .. } = c else {
                continue;
            };
            if self.chunks.contains_key(id) {
                continue;
            }
            self.report.chunks += 1;
            let res = if self.full {
                let mut buf = vec![0u8; m.chunk_len(i) as usize];
                self.repo.read_chunk_uncached(c, &mut buf)
            } else {
                self.check_header(id, location, m.chunk_len(i))
            };
            let ok = match res {
                Ok(()) => true,
                Err(e) => {
                    self.problem(
                        Self::kind_of(&e),
                        format!("chunk {}", id.short()),
                        commit,
                        Some(path),
                        e.to_string(),
                    );
                    false
                }
            };
            self.chunks.insert(*id, ok);
        }
    }

    /// Cheap check: the record exists where the manifest (or the index) says, with the
    /// right id and lengths.
    fn check_header(
        &self,
        id: &ObjectId,
        loc: &crate::format::pack::Location,
        raw_len: u64,
    ) -> crate::Result<()> {
        let mut hb = [0u8; RECORD_HEADER_LEN];
        let read = self
            .repo
            .storage()
            .read_at(&loc.pack.key(), loc.offset, &mut hb);
        let found = match read {
            Ok(()) => RecordHeader::decode(&hb)
                .ok()
                .filter(|h| h.id == *id && h.raw_len == raw_len),
            Err(_) => None,
        };
        if found.is_some() {
            return Ok(());
        }
        // The pack may have been rewritten by gc: look the id up.
        let mut buf = vec![0u8; raw_len as usize];
        self.repo.read_chunk_by_id(id, &mut buf)
    }
}

impl Repository {
    /// Check the repository. `full` also reads and hashes every chunk.
    pub fn fsck(&self, full: bool) -> Result<FsckReport> {
        self.reload_index()?;
        let _ahead = self.prefetch_metadata();
        let mut damaged = self.damaged_packs();
        for b in self.storage().list("packs/")? {
            let Some(id) = super::index::pack_id_of_key(&b.key) else {
                continue;
            };
            if damaged.iter().any(|(p, _)| *p == id.to_hex()) {
                continue;
            }
            match read_index(self.storage(), id) {
                Ok((_, None)) | Err(crate::Error::BlobNotFound(_)) => {}
                Ok((_, Some(why))) => damaged.push((id.to_hex(), why)),
                Err(e) => damaged.push((id.to_hex(), e.to_string())),
            }
        }
        let mut w = Walk {
            repo: self,
            full,
            report: FsckReport {
                full,
                ..Default::default()
            },
            trees: HashSet::new(),
            manifests: HashSet::new(),
            chunks: HashMap::new(),
        };
        for (pack, why) in damaged {
            w.report.problems.push(Problem {
                kind: "damaged-pack".into(),
                object: format!("pack {pack}"),
                commit: None,
                path: None,
                detail: format!("{why} (its records were recovered by scanning up to the damage)"),
            });
        }
        let shallow = self.shallow()?;
        let mut seen = HashSet::new();
        // (commit, how it was reached, whether straight from a ref)
        let mut stack: Vec<(ObjectId, String, bool)> = Vec::new();
        for (r, id) in self.refs()? {
            w.report.refs += 1;
            stack.push((id, r.key(), true));
        }
        while let Some((c, via, from_ref)) = stack.pop() {
            if !seen.insert(c) {
                continue;
            }
            let commit = match self.commit(&c) {
                Ok(x) => x,
                Err(e) => {
                    let kind = if from_ref && matches!(e, crate::Error::ObjectMissing { .. }) {
                        "dangling-ref"
                    } else {
                        Walk::kind_of(&e)
                    };
                    w.report.problems.push(Problem {
                        kind: kind.into(),
                        object: format!("commit {}", c.short()),
                        commit: Some(c.to_hex()),
                        path: None,
                        detail: format!("reached from {via}: {e}"),
                    });
                    continue;
                }
            };
            w.report.commits += 1;
            w.tree(&commit.tree, &c);
            if !shallow.contains(&c) {
                for p in commit.parents {
                    stack.push((p, format!("parent of {}", c.short()), false));
                }
            }
        }
        Ok(w.report)
    }
}
