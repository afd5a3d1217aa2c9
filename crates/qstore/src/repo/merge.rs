//! Merging packs, so a repository stays a handful of files however many commits it has.
//!
//! Every commit writes its own pack; small ones add up. After each commit,
//! [`Repository::auto_merge`] counts the small packs (smaller than half the config's
//! `merge_pack_bytes`, or written by format version 1) and, once there are `merge_threshold`
//! of them, merges a geometric selection: the two smallest, rolled up with the next smallest
//! while it is no larger than their sum, at most `merge_pack_bytes` in all (a binary counter:
//! packs of similar size merge, a pack bigger than everything below it stays). Merged sizes
//! grow geometrically, so a byte is copied O(log n) times over a repository's life, one
//! automatic merge copies at most `merge_pack_bytes`, and the small packs left after a merge
//! number at most about log2 of their size range. [`Repository::repack`] (`qstore repack`)
//! and `gc` merge every pack smaller than `merge_pack_bytes` at once, `repack --all` every
//! pack smaller than the pack size target.
//!
//! Puts compress with the fast codecs only (lz4, see [`crate::codec::Effort`]); every merge
//! recompresses the lz4 chunks it copies with zstd where that saves at least 3%, so a
//! repository reaches zstd's sizes as its packs merge: automatically for the small packs of
//! many commits, and through `qstore repack` / `gc` (small packs), `repack --all` (packs
//! below the pack target) or `repack --recompress` (every pack) for large states.
//!
//! A merge copies, then deletes: every record of the source packs (live or not, one copy of
//! each id) is appended verbatim to new packs, which are made durable; only then are the
//! sources deleted. A crash at any point leaves every object in at least one complete pack,
//! so nothing acknowledged is lost and the repository needs no repair; at worst some objects
//! are held twice until the next merge. Manifests keep the old chunk locations as hints; a
//! read whose pack is gone finds the chunk by id. A merge holds the gc lock shared (gc never
//! runs at the same time; writers are never blocked) and a merge lock taken without waiting,
//! so two processes never merge at once. Packs whose index is damaged are left alone for
//! `fsck` and people.

use super::Repository;
use super::index::pack_id_of_key;
use crate::codec::{Codec, Effort, decode, encode_auto};
use crate::coord::{Lock, LockMode, MERGE_LOCK};
use crate::error::{Error, Result};
use crate::format::ObjectKind;
use crate::format::pack::{PackWriter, check_header, read_index};
use crate::format::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::id::{ObjectId, PackId};
use serde::Serialize;
use std::collections::HashSet;

/// What a merge did.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct MergeReport {
    /// Packs present before.
    pub packs_before: u64,
    /// Packs merged (deleted after their records were copied).
    pub packs_merged: u64,
    /// Packs written.
    pub packs_written: u64,
    /// Records copied.
    pub objects_copied: u64,
    /// Records not copied because another source held the same object.
    pub duplicates_dropped: u64,
    /// Bytes of the merged packs.
    pub bytes_merged: u64,
    /// Bytes of the packs written.
    pub bytes_written: u64,
    /// Packs present after.
    pub packs_after: u64,
    /// Chunks a put stored with lz4 that were recompressed with zstd on the way.
    pub chunks_recompressed: u64,
}

/// Records read and recompressed together while merging.
const RECOMPRESS_WINDOW: usize = 32;

/// A chunk record stored with the fast codec (lz4) re-encoded with every codec
/// ([`Effort::Best`]): the new header and payload when that saves at least 3% of the stored
/// bytes, `None` otherwise (and for every other record, copied as it is). The chunk id is
/// the hash of the raw bytes, so it does not change; manifests name chunks by id and find
/// them wherever they now live. A payload that does not decode is copied as it is, for
/// `fsck` to report.
fn recompress(h: &RecordHeader, payload: &[u8]) -> Option<(RecordHeader, Vec<u8>)> {
    if h.kind != ObjectKind::Chunk || h.codec != Codec::ShuffleLz4 {
        return None;
    }
    let mut raw = vec![0u8; usize::try_from(h.raw_len).ok()?];
    decode(h.codec, h.elem as usize, payload, &mut raw).ok()?;
    let width = if h.elem > 1 { h.elem as usize } else { 8 };
    let (choice, enc) = encode_auto(&raw, width, Effort::Best);
    let enc = enc?;
    if choice.codec == Codec::ShuffleLz4 || enc.len() as f64 > payload.len() as f64 * 0.97 {
        return None;
    }
    Some((
        RecordHeader {
            codec: choice.codec,
            elem: choice.elem as u8,
            payload_len: enc.len() as u64,
            ..*h
        },
        enc,
    ))
}

/// Packs small enough to read whole while merging.
const READ_WHOLE_BYTES: u64 = 64 << 20;

/// A pack considered for merging.
#[derive(Clone, Copy, Debug)]
struct Candidate {
    id: PackId,
    size: u64,
}

/// The smallest packs to merge: the geometric roll-up described in the module documentation,
/// at least two packs, at most `cap` bytes (`None` when nothing qualifies).
fn geometric_selection(mut packs: Vec<Candidate>, cap: u64) -> Option<Vec<Candidate>> {
    packs.sort_by_key(|p| p.size);
    if packs.len() < 2 {
        return None;
    }
    let mut merged = packs[0].size.saturating_add(packs[1].size);
    if merged > cap {
        return None;
    }
    let mut split = 2;
    while split < packs.len()
        && packs[split].size <= merged
        && merged.saturating_add(packs[split].size) <= cap
    {
        merged += packs[split].size;
        split += 1;
    }
    packs.truncate(split);
    Some(packs)
}

impl Repository {
    /// Take the merge lock without waiting: `None` when another merge is running.
    fn try_merge_lock(&self) -> Result<Option<Lock>> {
        self.coordination()
            .try_lock(MERGE_LOCK, LockMode::Exclusive)
    }

    /// The packs present now and the merge candidates among them: packs smaller than
    /// `small_below` (and than the pack size target: a full pack is never small), and packs of
    /// format version 1.
    fn merge_candidates(&self, small_below: u64) -> Result<(u64, Vec<Candidate>)> {
        let small_below = small_below.min(self.config().pack_target_bytes);
        let listed = self.storage().list("packs/")?;
        let damaged: HashSet<String> = self.damaged_packs().into_iter().map(|(k, _)| k).collect();
        let mut out = Vec::new();
        for b in &listed {
            let Some(id) = pack_id_of_key(&b.key) else {
                continue;
            };
            if damaged.contains(&id.to_hex()) {
                continue;
            }
            let old = b.size < small_below || self.pack_version(id).is_ok_and(|v| v < 2);
            if old {
                out.push(Candidate { id, size: b.size });
            }
        }
        Ok((listed.len() as u64, out))
    }

    fn pack_version(&self, id: PackId) -> Result<u32> {
        let mut hb = [0u8; crate::format::pack::PACK_HEADER_LEN as usize];
        self.storage().read_at(&id.key(), 0, &mut hb)?;
        check_header(&hb).map_err(|d| Error::corrupt(format!("pack {id}"), d))
    }

    /// Merge small packs if the repository has at least `merge_threshold` of them (see the
    /// module documentation). Called after every commit; returns `None` when nothing was
    /// due, or another process is merging.
    pub fn auto_merge(&self) -> Result<Option<MergeReport>> {
        let cfg = self.config();
        if cfg.merge_threshold == 0 || cfg.read_only() || self.storage().merged_by_server() {
            return Ok(None);
        }
        // Cheap test first: most commits find too few packs.
        // Two packs below half the cap always fit in one merge; bigger ones are left to
        // `repack` and `gc`. The cheap test uses the packs this handle knows (synchronised
        // when its transaction began, plus the one it just wrote): no listing.
        let small_below = (cfg.merge_pack_bytes / 2).min(cfg.pack_target_bytes);
        let small = self
            .inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .packs()
            .filter(|p| p.size < small_below)
            .count();
        if small < cfg.merge_threshold as usize {
            return Ok(None);
        }
        let _gc = self.gc_lock(false)?;
        let Some(_merge) = self.try_merge_lock()? else {
            return Ok(None);
        };
        let (before, candidates) = self.merge_candidates(small_below)?;
        if candidates.len() < cfg.merge_threshold as usize {
            return Ok(None);
        }
        let Some(selected) = geometric_selection(candidates, cfg.merge_pack_bytes) else {
            return Ok(None);
        };
        self.merge_packs(before, &selected).map(Some)
    }

    /// Merge every pack smaller than `merge_pack_bytes` (and every pack of format version 1)
    /// into as few packs as the pack size target allows; with `all`, every pack smaller than
    /// the pack size target. Waits for a running merge or gc.
    pub fn repack(&self, all: bool) -> Result<MergeReport> {
        self.check_writable()?;
        let _gc = self.gc_lock(false)?;
        let _merge = loop {
            match self.try_merge_lock()? {
                Some(g) => break g,
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        self.repack_locked(all)
    }

    /// Rewrite every pack, whatever its size, recompressing every chunk a put stored with
    /// the fast codecs (`qstore repack --recompress`). Waits for a running merge or gc.
    pub fn repack_recompress(&self) -> Result<MergeReport> {
        self.check_writable()?;
        let _gc = self.gc_lock(false)?;
        let _merge = loop {
            match self.try_merge_lock()? {
                Some(g) => break g,
                None => std::thread::sleep(std::time::Duration::from_millis(50)),
            }
        };
        let (before, mut c) = self.merge_candidates(u64::MAX)?;
        c.sort_by_key(|p| p.size);
        self.merge_packs(before, &c)
    }

    /// [`Repository::repack`] for a caller that holds the gc lock (gc itself).
    pub(crate) fn repack_locked(&self, all: bool) -> Result<MergeReport> {
        let cfg = self.config();
        let below = if all {
            cfg.pack_target_bytes
        } else {
            cfg.merge_pack_bytes
        };
        let (before, candidates) = self.merge_candidates(below)?;
        if candidates.len() < 2
            && candidates
                .iter()
                .all(|c| self.pack_version(c.id).is_ok_and(|v| v >= 2))
        {
            return Ok(MergeReport {
                packs_before: before,
                packs_after: before,
                ..Default::default()
            });
        }
        let mut c = candidates;
        c.sort_by_key(|p| p.size);
        self.merge_packs(before, &c)
    }

    /// Copy every record of `sources` (one copy per id) into new packs, make them durable,
    /// then delete the sources.
    fn merge_packs(&self, before: u64, sources: &[Candidate]) -> Result<MergeReport> {
        let mut report = MergeReport {
            packs_before: before,
            ..Default::default()
        };
        let target = self.config().pack_target_bytes;
        let mut seen: HashSet<ObjectId> = HashSet::new();
        let mut writer: Option<PackWriter> = None;
        let mut finished = Vec::new();
        let mut merged = Vec::new();
        for src in sources {
            let key = src.id.key();
            let (mut entries, damage) = match read_index(self.storage(), src.id) {
                Ok(x) => x,
                // Gone since the listing (gc or another merge): nothing to copy.
                Err(Error::BlobNotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            if damage.is_some() {
                continue;
            }
            entries.sort_by_key(|e| e.offset);
            let whole = if src.size <= READ_WHOLE_BYTES {
                match self.storage().get(&key) {
                    Ok(b) => Some(b),
                    Err(Error::BlobNotFound(_)) => continue,
                    Err(e) => return Err(e),
                }
            } else {
                None
            };
            // Records in windows: read in order, recompressed in parallel, appended in order.
            let fresh: Vec<_> = entries
                .iter()
                .filter(|e| {
                    let new = seen.insert(e.id);
                    if !new {
                        report.duplicates_dropped += 1;
                    }
                    new
                })
                .collect();
            for window in fresh.chunks(RECOMPRESS_WINDOW) {
                let mut recs = Vec::with_capacity(window.len());
                for e in window {
                    let len = RECORD_HEADER_LEN + e.payload_len as usize;
                    let rec: Vec<u8> = match &whole {
                        Some(b) => {
                            let start = e.offset as usize;
                            b.get(start..start + len)
                                .ok_or_else(|| {
                                    Error::corrupt(
                                        format!("pack {}", src.id),
                                        "record past the end",
                                    )
                                })?
                                .to_vec()
                        }
                        None => {
                            let mut buf = vec![0u8; len];
                            self.storage().read_at(&key, e.offset, &mut buf)?;
                            buf
                        }
                    };
                    let h = RecordHeader::decode(&rec[..RECORD_HEADER_LEN])
                        .map_err(|d| Error::corrupt(format!("pack {}", src.id), d))?;
                    if h.id != e.id || h.payload_len != e.payload_len {
                        return Err(Error::corrupt(
                            format!("pack {}", src.id),
                            "index and record disagree",
                        ));
                    }
                    recs.push((h, rec));
                }
                let recs = crate::par::map(recs, |(h, rec)| {
                    match recompress(&h, &rec[RECORD_HEADER_LEN..]) {
                        Some((h2, payload)) => (h2, payload, true),
                        None => (h, rec[RECORD_HEADER_LEN..].to_vec(), false),
                    }
                });
                for (h, payload, changed) in recs {
                    if changed {
                        report.chunks_recompressed += 1;
                    }
                    if writer.is_none() {
                        writer = Some(PackWriter::create(self.storage())?);
                    }
                    let w = writer.as_mut().expect("just created");
                    w.append(&h, &payload)?;
                    report.objects_copied += 1;
                    if w.len() >= target
                        && let Some(full) = writer.take()
                    {
                        finished.push(full.finish()?);
                    }
                }
            }
            merged.push(*src);
        }
        if let Some(w) = writer.take() {
            finished.push(w.finish()?);
        }
        // Every record is durable in the new packs: now the sources can go.
        for src in &merged {
            self.storage().delete(&src.id.key())?;
        }
        report.packs_merged = merged.len() as u64;
        report.bytes_merged = merged.iter().map(|s| s.size).sum();
        report.packs_written = finished.len() as u64;
        report.bytes_written = finished.iter().map(|f| f.2).sum();
        {
            let mut idx = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
            for (id, entries, len) in finished {
                idx.add_pack(id, entries, len);
            }
        }
        self.refresh_index()?;
        report.packs_after = self.storage().list("packs/")?.len() as u64;
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(sizes: &[u64]) -> Vec<Candidate> {
        sizes
            .iter()
            .enumerate()
            .map(|(i, &size)| Candidate {
                id: PackId([i as u8; 16]),
                size,
            })
            .collect()
    }

    fn picked(sizes: &[u64], cap: u64) -> Option<Vec<u64>> {
        geometric_selection(c(sizes), cap).map(|v| v.iter().map(|p| p.size).collect())
    }

    #[test]
    fn geometric_selection_rolls_up_the_small_end() {
        // Already doubling: the two smallest are merged to make progress.
        assert_eq!(picked(&[1, 2, 4, 8, 16], 1000), Some(vec![1, 2]));
        // Many equal small packs: all of them.
        assert_eq!(picked(&[5; 16], 1000).map(|v| v.len()), Some(16));
        // Small ones below big ones: the small ones only.
        assert_eq!(
            picked(&[1, 1, 1, 1, 100, 100], 1000),
            Some(vec![1, 1, 1, 1])
        );
        // The cap bounds one merge.
        assert_eq!(picked(&[10; 16], 35), Some(vec![10, 10, 10]));
        assert_eq!(picked(&[40, 40], 35), None);
        assert_eq!(picked(&[3], 35), None);
    }
}
