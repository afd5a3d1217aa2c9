//! Reclaiming space: [`Repository::gc`] marks every object reachable from a branch or tag
//! (stopping at expired history), then, under the exclusive gc lock (so no transaction is in
//! flight), deletes packs with nothing live and rewrites packs whose dead fraction exceeds a
//! threshold; packs and temporary files younger than the grace period are never touched.
//! It also reclaims scratch spaces whose lease expired. [`Repository::expire`] cuts a
//! branch's old history so gc can reclaim it.

use super::Repository;
use super::scratch::reap_expired_scratch;
use crate::error::{Error, Result};
use crate::format::ObjectKind;
use crate::format::commit::Commit;
use crate::format::manifest::ChunkRef;
use crate::format::pack::{IndexEntry, PackWriter, read_index};
use crate::format::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::id::{ObjectId, PackId};
use serde::Serialize;
use std::collections::HashSet;
use std::time::{Duration, SystemTime};

/// Options of [`Repository::gc`].
#[derive(Clone, Debug)]
pub struct GcOptions {
    /// Objects in packs younger than this are never deleted or moved.
    pub grace: Duration,
    /// Report what would be done, change nothing.
    pub dry_run: bool,
    /// Rewrite a pack when more than this fraction of its bytes is dead.
    pub repack_threshold: f64,
    /// Uploads not completed for this long are abandoned: their parts are reclaimed.
    pub upload_ttl: Duration,
}

impl Default for GcOptions {
    fn default() -> Self {
        GcOptions {
            grace: Duration::from_secs(3600),
            dry_run: false,
            repack_threshold: 0.3,
            upload_ttl: super::upload::UPLOAD_TTL,
        }
    }
}

/// What a gc run did (or would do, with `dry_run`).
#[derive(Clone, Debug, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub live_objects: u64,
    pub packs_before: u64,
    pub packs_deleted: u64,
    pub packs_rewritten: u64,
    pub packs_too_young: u64,
    pub objects_deleted: u64,
    pub bytes_before: u64,
    pub bytes_freed: u64,
    pub tmp_files_removed: u64,
    pub scratch_reclaimed: Vec<String>,
    /// Small packs merged into bigger ones after the sweep.
    pub packs_merged: u64,
    /// Packs left.
    pub packs_after: u64,
    /// Keys of finished or abandoned uploads removed.
    pub upload_keys_removed: u64,
}

/// Objects reachable from every ref, honouring expired history, and the parts of open uploads.
#[cfg(test)]
pub(crate) fn mark(repo: &Repository) -> Result<HashSet<ObjectId>> {
    mark_with(repo, super::upload::UPLOAD_TTL)
}

fn mark_with(repo: &Repository, upload_ttl: Duration) -> Result<HashSet<ObjectId>> {
    let _ahead = repo.prefetch_metadata();
    let shallow = repo.shallow()?;
    let mut live = HashSet::new();
    let mut nodes = HashSet::new();
    let mut stack: Vec<ObjectId> = repo.refs()?.into_iter().map(|(_, id)| id).collect();
    while let Some(c) = stack.pop() {
        if !live.insert(c) {
            continue;
        }
        let commit: Commit = repo.commit(&c)?;
        if !shallow.contains(&c) {
            stack.extend(commit.parents.iter().copied());
        }
        mark_tree(repo, &commit.tree, &mut live, &mut nodes)?;
    }
    live.extend(nodes);
    for m in super::upload::live_manifests(repo, upload_ttl)?.0 {
        mark_manifest(repo, &m, &mut live)?;
    }
    Ok(live)
}

/// Mark a commit's tree: its tree objects and manifests (into `nodes`), and the manifests and
/// chunks of its states (into `live`).
fn mark_tree(
    repo: &Repository,
    tree: &ObjectId,
    live: &mut HashSet<ObjectId>,
    nodes: &mut HashSet<ObjectId>,
) -> Result<()> {
    repo.visit_tree_objects(tree, nodes, &mut |id, kind| {
        if kind == ObjectKind::Manifest {
            mark_manifest(repo, &id, live)?;
        }
        Ok(())
    })
}

fn mark_manifest(repo: &Repository, id: &ObjectId, live: &mut HashSet<ObjectId>) -> Result<()> {
    if live.insert(*id) {
        for c in repo.manifest(id)?.chunks {
            if let ChunkRef::Stored { id, .. } = c {
                live.insert(id);
            }
        }
    }
    Ok(())
}

fn record_bytes(e: &IndexEntry) -> u64 {
    RECORD_HEADER_LEN as u64 + e.payload_len
}

impl Repository {
    /// Collect garbage (see the module documentation). Do not call it while this thread
    /// holds an open [`crate::Transaction`]: it waits for every transaction to finish.
    pub fn gc(&self, opts: &GcOptions) -> Result<GcReport> {
        self.check_writable()?;
        let _lock = self.gc_lock(true)?;
        if !opts.dry_run {
            // Before marking: a transaction whose lease lapsed (so it no longer holds the
            // shared lock) either moved its ref before this point, and the mark sees its
            // commit, or fails its conditional ref swap afterwards.
            self.bump_generation()?;
        }
        self.reload_index()?;
        let mut report = GcReport {
            dry_run: opts.dry_run,
            ..Default::default()
        };
        let live = mark_with(self, opts.upload_ttl)?;
        report.live_objects = live.len() as u64;
        let now = SystemTime::now();
        let young = |m: Option<SystemTime>| {
            m.and_then(|m| now.duration_since(m).ok())
                .is_none_or(|age| age < opts.grace)
        };
        let packs = self.storage().list("packs/")?;
        report.packs_before = packs.len() as u64;
        report.bytes_before = packs.iter().map(|b| b.size).sum();
        // Young packs are kept whole: what they hold counts as kept.
        let mut kept: HashSet<ObjectId> = HashSet::new();
        let mut candidates = Vec::new();
        for b in &packs {
            let Some(id) = pack_id(&b.key) else { continue };
            let (entries, _) = match read_index(self.storage(), id) {
                Ok(x) => x,
                Err(_) => continue, // unreadable header: leave it for fsck and people
            };
            if young(b.modified) {
                report.packs_too_young += 1;
                kept.extend(entries.iter().map(|e| e.id));
            } else {
                candidates.push((id, b.size, entries));
            }
        }
        let mut changed = false;
        for (pack, size, entries) in candidates {
            let keep: Vec<&IndexEntry> = entries
                .iter()
                .filter(|e| live.contains(&e.id) && !kept.contains(&e.id))
                .collect();
            let live_bytes: u64 = keep.iter().map(|e| record_bytes(e)).sum();
            let dead_objects = (entries.len() - keep.len()) as u64;
            if keep.is_empty() {
                report.packs_deleted += 1;
                report.objects_deleted += dead_objects;
                report.bytes_freed += size;
                if !opts.dry_run {
                    self.storage().delete(&pack.key())?;
                    changed = true;
                }
                continue;
            }
            let dead_fraction = 1.0 - live_bytes as f64 / size.max(1) as f64;
            if dead_fraction > opts.repack_threshold && dead_objects > 0 {
                report.packs_rewritten += 1;
                report.objects_deleted += dead_objects;
                if !opts.dry_run {
                    let new_size = self.rewrite_pack(pack, &keep)?;
                    report.bytes_freed += size.saturating_sub(new_size);
                    changed = true;
                } else {
                    report.bytes_freed += size.saturating_sub(live_bytes);
                }
            }
            kept.extend(keep.iter().map(|e| e.id));
        }
        if !opts.dry_run {
            report.tmp_files_removed = self.remove_old_tmp(opts.grace)?;
            // The keys of uploads that are over (completed, abandoned).
            for id in super::upload::live_manifests(self, opts.upload_ttl)?.1 {
                for k in super::upload::keys_starting(self, &super::upload::keys_of(&id))? {
                    self.storage().delete(&k)?;
                    report.upload_keys_removed += 1;
                }
            }
            report.scratch_reclaimed = reap_expired_scratch(self)?;
            if changed {
                self.reload_index()?;
            }
            report.packs_merged = self.repack_locked(false)?.packs_merged;
        }
        report.packs_after = self.storage().list("packs/")?.len() as u64;
        Ok(report)
    }

    /// Copy the records `keep` of `pack` verbatim into a new pack, then delete `pack`.
    fn rewrite_pack(&self, pack: PackId, keep: &[&IndexEntry]) -> Result<u64> {
        let key = pack.key();
        let mut w = PackWriter::create(self.storage())?;
        for e in keep {
            let mut hb = [0u8; RECORD_HEADER_LEN];
            self.storage().read_at(&key, e.offset, &mut hb)?;
            let h =
                RecordHeader::decode(&hb).map_err(|d| Error::corrupt(format!("pack {pack}"), d))?;
            if h.id != e.id {
                return Err(Error::corrupt(
                    format!("pack {pack}"),
                    "index and record disagree",
                ));
            }
            let mut payload = vec![0u8; h.payload_len as usize];
            self.storage()
                .read_at(&key, e.offset + RECORD_HEADER_LEN as u64, &mut payload)?;
            w.append(&h, &payload)?;
        }
        let (_, _, new_len) = w.finish()?;
        self.storage().delete(&key)?;
        Ok(new_len)
    }

    fn remove_old_tmp(&self, grace: Duration) -> Result<u64> {
        let Some(root) = self.local_root() else {
            return Ok(0);
        };
        let mut n = 0;
        let now = SystemTime::now();
        if let Ok(rd) = std::fs::read_dir(root.join(crate::storage::local::TMP_DIR)) {
            for e in rd.flatten() {
                let old = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| now.duration_since(m).ok())
                    .is_some_and(|age| age >= grace.max(Duration::from_secs(60)));
                if old && std::fs::remove_file(e.path()).is_ok() {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Cut the history of `branch` older than `older_than`: the newest commit older than the
    /// cut-off stays (as the oldest snapshot), its ancestors become unreachable from this
    /// branch and gc can reclaim them. Tags keep what they name. Returns how many commits
    /// were cut from the branch's first-parent history.
    pub fn expire(&self, branch: &str, older_than: Duration) -> Result<u64> {
        self.check_writable()?;
        let cutoff = SystemTime::now()
            .checked_sub(older_than)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let log = self.log(branch, usize::MAX)?;
        let Some(pos) = log.iter().position(|(_, c)| c.time_ms < cutoff) else {
            return Ok(0);
        };
        let cut = (log.len() - pos - 1) as u64;
        if cut == 0 {
            return Ok(0);
        }
        let _lock = self.gc_lock(true)?;
        let mut shallow: Vec<String> = self.shallow()?.iter().map(|i| i.to_hex()).collect();
        shallow.push(log[pos].0.to_hex());
        shallow.sort();
        shallow.dedup();
        let body =
            serde_json::to_vec(&shallow).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.coordination()
            .put_document(crate::coord::SHALLOW_DOC, &body)?;
        Ok(cut)
    }
}

fn pack_id(key: &str) -> Option<PackId> {
    key.strip_prefix("packs/")
        .and_then(|n| n.strip_suffix(".pack"))
        .and_then(PackId::from_hex)
}
