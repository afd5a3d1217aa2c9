//! [`RepoStats`]: what a repository holds and what it costs: logical bytes of every state
//! version in the history of every ref, bytes after zero elision and sparse/Hermitian
//! encoding, after deduplication, after compression, and on storage; object and file counts.

use super::Repository;
use crate::error::Result;
use crate::format::ObjectKind;
use crate::format::manifest::ChunkRef;
use crate::id::ObjectId;
use serde::Serialize;
use std::collections::{HashMap, HashSet};

/// Sizes and counts of a repository.
#[derive(Clone, Debug, Default, Serialize)]
pub struct RepoStats {
    pub branches: u64,
    pub tags: u64,
    /// Commits reachable from any ref.
    pub commits: u64,
    /// Distinct (path, content) state versions in that history.
    pub state_versions: u64,
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
        let mut s = RepoStats::default();
        let refs = self.refs()?;
        for (r, _) in &refs {
            match r {
                crate::path::RefName::Branch(_) => s.branches += 1,
                crate::path::RefName::Tag(_) => s.tags += 1,
            }
        }
        let mut seen_commits = HashSet::new();
        let mut stack: Vec<ObjectId> = refs.iter().map(|(_, id)| *id).collect();
        let mut versions: HashSet<(String, ObjectId)> = HashSet::new();
        let mut manifests: HashMap<ObjectId, u128> = HashMap::new();
        let mut per_version: Vec<(ObjectId, u128)> = Vec::new();
        let mut seen_trees: HashSet<(ObjectId, String)> = HashSet::new();
        while let Some(c) = stack.pop() {
            if !seen_commits.insert(c) {
                continue;
            }
            let commit = self.commit(&c)?;
            stack.extend(commit.parents.iter().copied());
            if !seen_trees.insert((commit.tree, String::new())) {
                continue;
            }
            self.walk_tree(&commit.tree, "", &mut |p, e| {
                if versions.insert((p.to_string(), e.manifest)) {
                    per_version.push((e.manifest, e.dense_bytes()));
                    manifests.insert(e.manifest, e.dense_bytes());
                }
            })?;
        }
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
            s.logical_bytes += dense;
            s.encoded_bytes += encoded_of.get(m).copied().unwrap_or(0);
        }
        s.unique_chunk_bytes = unique.values().map(|v| v.0).sum();
        s.stored_chunk_bytes = unique.values().map(|v| v.1).sum();
        let packs = self.storage().list("packs/")?;
        s.packs = packs.len() as u64;
        s.pack_bytes = packs.iter().map(|b| b.size).sum();
        {
            let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
            s.objects = idx.len() as u64;
            s.chunk_objects = idx.ids_of_kind(ObjectKind::Chunk).count() as u64;
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
