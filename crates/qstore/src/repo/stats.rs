//! [`RepoStats`]: what a repository holds and what it costs: logical bytes of every state
//! version in the history of every ref, bytes after zero elision and sparse/Hermitian
//! encoding, after deduplication, after compression, and on storage; object and file counts.

use super::Repository;
use super::tree;
use crate::error::Result;
use crate::format::ObjectKind;
use crate::format::manifest::ChunkRef;
use crate::format::tree::ItemValue;
use crate::id::ObjectId;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

/// Sizes and counts of a repository.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepoStats {
    /// The repository's format version and id.
    pub format_version: u32,
    pub repository_id: String,
    pub branches: u64,
    pub tags: u64,
    /// Commits reachable from any ref.
    pub commits: u64,
    /// Distinct (path, content) state versions in that history.
    pub state_versions: u64,
    /// Distinct tree nodes in that history.
    pub tree_nodes: u64,
    /// Dense bytes of every state version.
    pub logical_bytes: u128,
    /// Bytes of the non-zero chunks of every version (after zero elision and
    /// sparse/Hermitian encoding, before deduplication).
    pub encoded_bytes: u64,
    /// Raw bytes of the distinct chunks referenced.
    pub unique_chunk_bytes: u64,
    /// Stored (compressed) bytes of those chunks.
    pub stored_chunk_bytes: u64,
    /// Bytes of all pack files (chunks, metadata, indexes, unreferenced objects).
    pub pack_bytes: u64,
    pub packs: u64,
    /// Objects in the pack indexes.
    pub objects: u64,
    pub chunk_objects: u64,
    /// Files the repository uses on a file system.
    pub files: Option<u64>,
    /// encoded / unique.
    pub dedup_ratio: f64,
    /// unique / stored.
    pub compression_ratio: f64,
    /// logical / pack bytes.
    pub overall_ratio: f64,
    /// Packs whose index had to be rebuilt by scanning.
    pub damaged_packs: u64,
    /// The chunk cache of this process.
    pub cache: crate::cache::CacheStats,
}

fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

impl Repository {
    /// Measure the repository (walks the history of every ref).
    pub fn stats(&self) -> Result<RepoStats> {
        self.refresh_index()?;
        let mut s = RepoStats {
            format_version: self.config().format_version,
            repository_id: self.config().repository_id.clone(),
            ..Default::default()
        };
        let refs = self.refs()?;
        for (r, _) in &refs {
            match r {
                crate::path::RefName::Branch(_) => s.branches += 1,
                crate::path::RefName::Tag(_) => s.tags += 1,
            }
        }
        let mut seen_commits = HashSet::new();
        let mut stack: Vec<ObjectId> = refs.iter().map(|(_, id)| *id).collect();
        // (hash of the path, manifest): a version is counted once, however many tree nodes
        // and commits hold it.
        let mut versions: HashSet<(u64, ObjectId)> = HashSet::new();
        let mut manifests: HashMap<ObjectId, u128> = HashMap::new();
        let mut per_version: Vec<(ObjectId, u128)> = Vec::new();
        let mut nodes: HashSet<ObjectId> = HashSet::new();
        while let Some(c) = stack.pop() {
            if !seen_commits.insert(c) {
                continue;
            }
            let commit = self.commit(&c)?;
            stack.extend(commit.parents.iter().copied());
            let root = self.tree_root(&commit.tree)?;
            tree::walk_nodes(self, &root, &mut nodes, &mut |_, n| {
                for it in &n.items {
                    if let ItemValue::State(e) = &it.value {
                        let mut h = std::collections::hash_map::DefaultHasher::new();
                        it.key.hash(&mut h);
                        if versions.insert((h.finish(), e.manifest)) {
                            per_version.push((e.manifest, e.dense_bytes()));
                            manifests.insert(e.manifest, e.dense_bytes());
                        }
                    }
                }
                Ok(())
            })?;
        }
        s.tree_nodes = nodes.len() as u64;
        s.commits = seen_commits.len() as u64;
        s.state_versions = versions.len() as u64;
        let mut encoded_of: HashMap<ObjectId, u64> = HashMap::new();
        let mut unique: HashMap<ObjectId, (u64, u64)> = HashMap::new();
        for m_id in manifests.keys() {
            let m = self.manifest(m_id)?;
            let mut enc = 0;
            for (i, c) in m.chunks.iter().enumerate() {
                if let ChunkRef::Stored { id, location, .. } = c {
                    let len = m.chunk_len(i);
                    enc += len;
                    unique.insert(*id, (len, location.payload_len));
                }
            }
            encoded_of.insert(*m_id, enc);
        }
        for (m, dense) in &per_version {
            s.logical_bytes = s.logical_bytes.saturating_add(*dense);
            s.encoded_bytes += encoded_of.get(m).copied().unwrap_or(0);
        }
        s.unique_chunk_bytes = unique.values().map(|v| v.0).sum();
        // Stored sizes as the chunks are now (a merge may have recompressed them since the
        // manifest recorded its location hint): one pass over the index.
        {
            let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
            let mut now: HashMap<ObjectId, u64> = HashMap::with_capacity(unique.len());
            idx.for_each_entry(&mut |_, e| {
                if e.kind == crate::format::ObjectKind::Chunk && unique.contains_key(&e.id) {
                    now.insert(e.id, e.payload_len);
                }
            });
            s.stored_chunk_bytes = unique
                .iter()
                .map(|(id, v)| now.get(id).copied().unwrap_or(v.1))
                .sum();
        }
        let packs = self.storage().list("packs/")?;
        s.packs = packs.len() as u64;
        s.pack_bytes = packs.iter().map(|b| b.size).sum();
        {
            let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
            let mut ids: HashSet<ObjectId> = HashSet::new();
            let mut chunks = 0u64;
            idx.for_each_entry(&mut |_, e| {
                if ids.insert(e.id) && e.kind == ObjectKind::Chunk {
                    chunks += 1;
                }
            });
            s.objects = ids.len() as u64;
            s.chunk_objects = chunks;
            s.damaged_packs = idx.damaged.len() as u64;
        }
        s.files = self.storage().file_count();
        s.cache = self.cache_stats();
        s.dedup_ratio = ratio(s.encoded_bytes as f64, s.unique_chunk_bytes as f64);
        s.compression_ratio = ratio(s.unique_chunk_bytes as f64, s.stored_chunk_bytes as f64);
        s.overall_ratio = ratio(s.logical_bytes as f64, s.pack_bytes as f64);
        Ok(s)
    }
}
