//! Reading stored objects: locating a record by id through the [`super::index::ObjectIndex`],
//! reading and verifying it (chunks through the shared chunk cache; metadata checked against
//! its id), tree nodes through a bounded node cache, and legacy (format version 1) directory
//! trees, which are converted on read into the current tree ([`Repository::tree_root`]) by
//! computing its nodes in memory. [`IoCounters`] count what a repository handle read and
//! wrote, so tests and benchmarks can bound it.

use super::Repository;
use super::index::IndexedObject;
use super::tree::{self, NodeSource};
use crate::codec::decode;
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::pack::Location;
use crate::format::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::format::tree::{StateEntry, TreeNode};
use crate::format::tree_v1::{LegacyNode, LegacyTree};
use crate::format::{MetadataObject, ObjectKind, decode_object};
use crate::id::ObjectId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

const METADATA_LIMIT: u64 = 1 << 30;
/// How many times a read follows an object whose pack went away before giving up.
const PACK_GONE_ATTEMPTS: u32 = 12;
/// Decoded tree nodes kept per repository handle.
const NODE_CACHE_ENTRIES: usize = 16_384;

/// What a repository handle has read and written since it was opened (or reset).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IoCounters {
    /// Records read from storage (chunks and metadata; cache hits excluded).
    pub objects_read: u64,
    /// Tree nodes among them.
    pub tree_nodes_read: u64,
    /// Records appended to packs.
    pub objects_written: u64,
    /// Tree nodes among them.
    pub tree_nodes_written: u64,
    /// Packs written.
    pub packs_written: u64,
    /// Bytes of the packs written (headers, records, indexes and footers).
    pub pack_bytes_written: u64,
    /// Payload bytes of the chunk records among them (state data); the rest is metadata.
    pub chunk_payload_bytes_written: u64,
}

impl IoCounters {
    /// Pack bytes written that are not chunk payloads: tree nodes, manifests, commits and
    /// the framing of every record and pack.
    pub fn metadata_bytes_written(&self) -> u64 {
        self.pack_bytes_written
            .saturating_sub(self.chunk_payload_bytes_written)
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    objects_read: AtomicU64,
    tree_nodes_read: AtomicU64,
    objects_written: AtomicU64,
    tree_nodes_written: AtomicU64,
    packs_written: AtomicU64,
    pack_bytes_written: AtomicU64,
    chunk_payload_bytes_written: AtomicU64,
}

impl Counters {
    pub(crate) fn record_written(&self, kind: ObjectKind, payload: u64) {
        self.objects_written.fetch_add(1, Ordering::Relaxed);
        match kind {
            ObjectKind::Tree => {
                self.tree_nodes_written.fetch_add(1, Ordering::Relaxed);
            }
            ObjectKind::Chunk => {
                self.chunk_payload_bytes_written
                    .fetch_add(payload, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    pub(crate) fn pack_written(&self, bytes: u64) {
        self.packs_written.fetch_add(1, Ordering::Relaxed);
        self.pack_bytes_written.fetch_add(bytes, Ordering::Relaxed);
    }

    fn snapshot(&self) -> IoCounters {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        IoCounters {
            objects_read: l(&self.objects_read),
            tree_nodes_read: l(&self.tree_nodes_read),
            objects_written: l(&self.objects_written),
            tree_nodes_written: l(&self.tree_nodes_written),
            packs_written: l(&self.packs_written),
            pack_bytes_written: l(&self.pack_bytes_written),
            chunk_payload_bytes_written: l(&self.chunk_payload_bytes_written),
        }
    }

    fn reset(&self) {
        for a in [
            &self.objects_read,
            &self.tree_nodes_read,
            &self.objects_written,
            &self.tree_nodes_written,
            &self.packs_written,
            &self.pack_bytes_written,
            &self.chunk_payload_bytes_written,
        ] {
            a.store(0, Ordering::Relaxed);
        }
    }
}

/// Tree nodes of this handle: a bounded cache of stored ones, and the nodes computed from
/// legacy trees (never stored unless a commit builds on them).
#[derive(Default)]
pub(crate) struct NodeCache {
    stored: HashMap<ObjectId, Arc<TreeNode>>,
    pub(crate) computed: HashMap<ObjectId, Arc<TreeNode>>,
    /// Legacy root tree id -> root of the computed tree.
    pub(crate) legacy_roots: HashMap<ObjectId, ObjectId>,
}

impl NodeCache {
    pub(crate) fn clear_stored(&mut self) {
        self.stored.clear();
    }
}

/// A failed read of the record of `id` at `loc`: a pack that is gone means the object moved
/// or is missing (callers look again), a short read that the pack is truncated.
fn record_read_error(
    e: Error,
    id: &ObjectId,
    kind: ObjectKind,
    loc: &Location,
    what: &dyn Fn() -> String,
) -> Error {
    match e {
        Error::BlobNotFound(_) => Error::ObjectMissing {
            id: id.to_hex(),
            kind: kind.name(),
            context: format!(" (pack {} is gone)", loc.pack),
        },
        Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
            Error::corrupt(what(), format!("pack {} is truncated", loc.pack))
        }
        e => e,
    }
}

/// The most metadata [`Repository::prefetch_metadata`] reads ahead (raw bytes).
pub(crate) const PREFETCH_LIMIT: u64 = 256 << 20;
/// Records at most this far apart in a pack are fetched with one read.
const PREFETCH_GAP: u64 = 64 << 10;
/// The most one prefetch read spans.
const PREFETCH_SPAN: u64 = 8 << 20;

/// Metadata read ahead by [`Repository::prefetch_metadata`], freed when dropped.
pub(crate) struct Prefetched<'a> {
    repo: &'a Repository,
}

impl Drop for Prefetched<'_> {
    fn drop(&mut self) {
        self.repo
            .inner
            .prefetched
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

/// Metadata objects a handle keeps after writing them (remote storage only).
const RECENT_LIMIT: usize = 4096;

/// Bodies of metadata objects written by a handle, by id.
pub(crate) type RecentMetadata = std::collections::HashMap<ObjectId, (ObjectKind, u8, Arc<[u8]>)>;

impl Repository {
    /// What this handle has read and written so far.
    pub fn io_counters(&self) -> IoCounters {
        self.inner.counters.snapshot()
    }

    /// Start counting from zero.
    pub fn reset_io_counters(&self) {
        self.inner.counters.reset()
    }

    /// On remote storage, read every metadata object (commits, trees, manifests) the packs
    /// hold into memory at once, for a walk of the whole history (gc's mark, fsck): records
    /// next to each other in a pack (a commit's objects are written together) are fetched
    /// with one ranged read, 16 reads in flight, instead of one request after another as the
    /// walk meets them. Each body is checked against its id; one that fails is skipped and
    /// read (and reported) the usual way. Nothing happens on local storage or when the
    /// metadata is larger than [`PREFETCH_LIMIT`]. Dropping the guard frees it.
    pub(crate) fn prefetch_metadata(&self) -> Prefetched<'_> {
        let guard = Prefetched { repo: self };
        if !self.storage().prefers_few_requests() {
            return guard;
        }
        let mut entries: Vec<(crate::id::PackId, crate::format::pack::IndexEntry)> = Vec::new();
        {
            let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
            let mut seen = std::collections::HashSet::new();
            idx.for_each_entry(&mut |pack, e| {
                if e.kind != ObjectKind::Chunk && seen.insert(e.id) {
                    entries.push((pack, *e));
                }
            });
        }
        let total: u64 = entries.iter().map(|(_, e)| e.raw_len).sum();
        if entries.is_empty() || total > PREFETCH_LIMIT {
            return guard;
        }
        entries.sort_by_key(|(p, e)| (p.0, e.offset));
        // Runs of records close together in one pack, each read with one request.
        let mut spans: Vec<Vec<(crate::id::PackId, crate::format::pack::IndexEntry)>> = Vec::new();
        for (p, e) in entries {
            let end = |x: &crate::format::pack::IndexEntry| {
                x.offset + RECORD_HEADER_LEN as u64 + x.payload_len
            };
            match spans.last_mut() {
                Some(run)
                    if run[0].0 == p
                        && e.offset >= end(&run[run.len() - 1].1)
                        && e.offset - end(&run[run.len() - 1].1) <= PREFETCH_GAP
                        && end(&e) - run[0].1.offset <= PREFETCH_SPAN =>
                {
                    run.push((p, e))
                }
                _ => spans.push(vec![(p, e)]),
            }
        }
        let bodies = crate::par::on_remote_pool(|| {
            crate::par::map(spans, |run| {
                let start = run[0].1.offset;
                let last = &run[run.len() - 1].1;
                let len = last.offset + RECORD_HEADER_LEN as u64 + last.payload_len - start;
                let mut buf = vec![0u8; len as usize];
                if self
                    .storage()
                    .read_at(&run[0].0.key(), start, &mut buf)
                    .is_err()
                {
                    return Vec::new();
                }
                run.iter()
                    .filter_map(|(_, e)| {
                        let at = (e.offset - start) as usize;
                        let rec = buf.get(at..at + RECORD_HEADER_LEN + e.payload_len as usize)?;
                        let h = RecordHeader::decode(&rec[..RECORD_HEADER_LEN]).ok()?;
                        if h.id != e.id || h.kind != e.kind || h.raw_len > METADATA_LIMIT {
                            return None;
                        }
                        let payload = &rec[RECORD_HEADER_LEN..];
                        let mut body = vec![0u8; h.raw_len as usize];
                        if h.codec == crate::codec::Codec::Raw {
                            if payload.len() != body.len() {
                                return None;
                            }
                            body.copy_from_slice(payload);
                        } else {
                            decode(h.codec, h.elem as usize, payload, &mut body).ok()?;
                        }
                        (ObjectId::of_object(h.kind as u8, h.version, &body) == e.id)
                            .then(|| (e.id, (h.kind, h.version, Arc::<[u8]>::from(body))))
                    })
                    .collect::<Vec<_>>()
            })
        });
        let mut m = self
            .inner
            .prefetched
            .write()
            .unwrap_or_else(|e| e.into_inner());
        for v in bodies {
            m.extend(v);
        }
        guard
    }

    /// Keep the body of a metadata object this handle just wrote, so reading it back (the
    /// next commit reads its parent and tree) costs no request on remote storage.
    pub(crate) fn remember_written(
        &self,
        id: ObjectId,
        kind: ObjectKind,
        version: u8,
        body: &[u8],
    ) {
        if !self.storage().prefers_few_requests() {
            return;
        }
        let mut r = self.inner.recent.lock().unwrap_or_else(|e| e.into_inner());
        if r.len() >= RECENT_LIMIT {
            r.clear();
        }
        r.insert(id, (kind, version, body.to_vec().into()));
    }

    /// Drop every decoded tree node held by this handle (the next reads go to storage).
    pub fn clear_node_cache(&self) {
        self.inner
            .recent
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        self.inner
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear_stored();
    }

    pub(crate) fn has_object(&self, id: &ObjectId) -> bool {
        self.inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some()
    }

    pub(crate) fn locate(&self, id: &ObjectId, kind: ObjectKind) -> Result<IndexedObject> {
        let found = self
            .inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id);
        let found = match found {
            Some(f) => Some(f),
            None => {
                let mut tries = 0u32;
                loop {
                    let listed_new = self.refresh_index()?;
                    let mut idx = self.inner.index.write().unwrap_or_else(|e| e.into_inner());
                    if let Some(f) = idx.get(id) {
                        break Some(f);
                    }
                    // New packs were listed but the object is in none of them: the pack
                    // holding it may have been merged away between the listing and the
                    // opening of its index, into a pack that listing missed. Look again
                    // while listings keep finding new packs.
                    tries += 1;
                    if listed_new > 0 && tries < PACK_GONE_ATTEMPTS {
                        continue;
                    }
                    // Not found anywhere: make sure no unchecked index is hiding it.
                    break if idx.verify_unverified(self.storage()) {
                        idx.get(id)
                    } else {
                        None
                    };
                }
            }
        };
        let o = found.ok_or_else(|| Error::ObjectMissing {
            id: id.to_hex(),
            kind: kind.name(),
            context: String::new(),
        })?;
        if o.entry.kind != kind {
            return Err(Error::corrupt(
                format!("{} {}", kind.name(), id.short()),
                format!("the index lists it as a {}", o.entry.kind.name()),
            ));
        }
        Ok(o)
    }

    /// Read and verify the record at `loc`, decoding it into `out` (whose length is the
    /// expected raw length). `what` names the object in errors.
    pub(crate) fn read_record(
        &self,
        loc: &Location,
        id: &ObjectId,
        kind: ObjectKind,
        out: &mut [u8],
        what: &dyn Fn() -> String,
    ) -> Result<RecordHeader> {
        self.inner
            .counters
            .objects_read
            .fetch_add(1, Ordering::Relaxed);
        let key = loc.pack.key();
        let gone = |e: Error| record_read_error(e, id, kind, loc, what);
        if loc.payload_len > (out.len() as u64).saturating_mul(2) + 1024 {
            return Err(Error::corrupt(
                what(),
                "payload larger than any codec produces",
            ));
        }
        // Remote storage: header and payload in one request (one ranged GET per record).
        let whole = if self.storage().prefers_few_requests() {
            let mut rec = vec![0u8; RECORD_HEADER_LEN + loc.payload_len as usize];
            self.storage()
                .read_at(&key, loc.offset, &mut rec)
                .map_err(gone)?;
            Some(rec)
        } else {
            None
        };
        let mut hb = [0u8; RECORD_HEADER_LEN];
        match &whole {
            Some(rec) => hb.copy_from_slice(&rec[..RECORD_HEADER_LEN]),
            None => self
                .storage()
                .read_at(&key, loc.offset, &mut hb)
                .map_err(gone)?,
        }
        if hb[..4] == crate::format::record::RECORD_MAGIC
            && let Some(k) = ObjectKind::from_u8(hb[4])
            && hb[5] > k.newest_version()
        {
            return Err(Error::UnsupportedVersion {
                what: what(),
                version: hb[5] as u32,
                supported: k.newest_version() as u32,
            });
        }
        let h = RecordHeader::decode(&hb).map_err(|d| Error::corrupt(what(), d))?;
        if h.id != *id
            || h.kind != kind
            || h.payload_len != loc.payload_len
            || h.raw_len != out.len() as u64
            || (h.codec == crate::codec::Codec::Raw && h.payload_len != h.raw_len)
        {
            return Err(Error::corrupt(
                what(),
                format!(
                    "record header at pack {} offset {} does not match",
                    loc.pack, loc.offset
                ),
            ));
        }
        let payload_at = loc.offset + RECORD_HEADER_LEN as u64;
        let read_err = |e: Error| match e {
            Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                Error::corrupt(what(), format!("pack {} is truncated", loc.pack))
            }
            e => e,
        };
        if let Some(rec) = &whole {
            let payload = &rec[RECORD_HEADER_LEN..];
            if h.codec == crate::codec::Codec::Raw {
                out.copy_from_slice(payload);
            } else {
                decode(h.codec, h.elem as usize, payload, out)
                    .map_err(|d| Error::corrupt(what(), d))?;
            }
        } else if h.codec == crate::codec::Codec::Raw {
            self.storage()
                .read_at(&key, payload_at, out)
                .map_err(read_err)?;
        } else {
            let mut payload = vec![0u8; h.payload_len as usize];
            self.storage()
                .read_at(&key, payload_at, &mut payload)
                .map_err(read_err)?;
            decode(h.codec, h.elem as usize, &payload, out)
                .map_err(|d| Error::corrupt(what(), d))?;
        }
        Ok(h)
    }

    /// Read a chunk through the cache; `keep` says whether a miss is added to it (a large
    /// sequential read would only evict everything else).
    pub(crate) fn read_chunk_cached(&self, c: &ChunkRef, out: &mut [u8], keep: bool) -> Result<()> {
        let ChunkRef::Stored { id, .. } = c else {
            out.fill(0);
            return Ok(());
        };
        if self.inner.cache.get_into(id, out) {
            return Ok(());
        }
        self.read_chunk_uncached(c, out)?;
        if keep {
            self.inner.cache.insert(*id, out);
        }
        Ok(())
    }

    /// The chunk cache (capacity, hits, misses).
    pub fn cache_stats(&self) -> crate::cache::CacheStats {
        self.inner.cache.stats()
    }

    /// Set the chunk cache's capacity in bytes (0 turns it off). The default is 64 MiB, or
    /// `QSTORE_CACHE_BYTES` when set.
    pub fn set_cache_bytes(&self, bytes: u64) {
        self.inner.cache.set_capacity(bytes);
    }

    /// Drop every cached chunk.
    pub fn clear_cache(&self) {
        self.inner.cache.clear();
    }

    /// Read, verify and decode a chunk from storage, bypassing the cache (fsck uses this).
    pub(crate) fn read_chunk_uncached(&self, c: &ChunkRef, out: &mut [u8]) -> Result<()> {
        match c {
            ChunkRef::Zero => {
                out.fill(0);
                Ok(())
            }
            ChunkRef::Stored { id, location, .. } => {
                let what = || {
                    format!(
                        "chunk {} (pack {} offset {})",
                        id.short(),
                        location.pack,
                        location.offset
                    )
                };
                match self.read_record(location, id, ObjectKind::Chunk, out, &what) {
                    Ok(_) => {}
                    // The pack was merged or rewritten: the id is the truth, the location a
                    // hint.
                    Err(Error::ObjectMissing { .. }) => return self.read_chunk_by_id(id, out),
                    Err(e) => return Err(e),
                }
                if ObjectId::of_chunk(out) != *id {
                    return Err(Error::corrupt(
                        what(),
                        "hash mismatch: the stored bytes are damaged",
                    ));
                }
                Ok(())
            }
        }
    }

    /// Read a chunk found by id in the index, resynchronised if stale (after its pack was
    /// merged or rewritten).
    pub(crate) fn read_chunk_by_id(&self, id: &ObjectId, out: &mut [u8]) -> Result<()> {
        let what = |o: &IndexedObject| {
            format!(
                "chunk {} (pack {} offset {})",
                id.short(),
                o.pack,
                o.entry.offset
            )
        };
        let o = self.at_current_location(id, ObjectKind::Chunk, |o| {
            self.read_record(&o.location(), id, ObjectKind::Chunk, out, &|| what(o))?;
            Ok(*o)
        })?;
        if ObjectId::of_chunk(out) != *id {
            return Err(Error::corrupt(
                what(&o),
                "hash mismatch: the stored bytes are damaged",
            ));
        }
        Ok(())
    }

    /// The record of object `id` as stored (its header, and the record's bytes: the header,
    /// then the payload still encoded), checked on the way: the header names the object, and the decoded bytes hash to its
    /// id. Copying objects between repositories forwards records without re-encoding them
    /// and never spreads damage.
    pub(crate) fn verified_record(
        &self,
        id: &ObjectId,
        kind: ObjectKind,
    ) -> Result<(RecordHeader, Vec<u8>)> {
        self.at_current_location(id, kind, |o| {
            let what = || {
                format!(
                    "{} {} (pack {} offset {})",
                    kind.name(),
                    id.short(),
                    o.pack,
                    o.entry.offset
                )
            };
            let loc = o.location();
            if kind != ObjectKind::Chunk && o.entry.raw_len > METADATA_LIMIT {
                return Err(Error::corrupt(what(), "implausibly large"));
            }
            if loc.payload_len > o.entry.raw_len.saturating_mul(2) + 1024 {
                return Err(Error::corrupt(
                    what(),
                    "payload larger than any codec produces",
                ));
            }
            let mut rec = vec![0u8; RECORD_HEADER_LEN + loc.payload_len as usize];
            self.storage()
                .read_at(&loc.pack.key(), loc.offset, &mut rec)
                .map_err(|e| record_read_error(e, id, kind, &loc, &what))?;
            check_record(id, kind, &loc, rec, &what)
        })
    }

    /// [`Repository::verified_record`] of many objects, for remote storage where a request
    /// costs a round trip: records that lie back to back in one pack are fetched with one
    /// read (runs of up to 4 MiB, several in flight), then each is checked as
    /// `verified_record` checks it. An object whose run cannot be read (its pack merged away
    /// meanwhile) is read on its own, following it to its new pack. Results are in the order
    /// of `objects`.
    pub(crate) fn verified_records(
        &self,
        objects: &[(ObjectId, ObjectKind)],
    ) -> Vec<Result<CheckedRecord>> {
        const RUN_BYTES: u64 = 4 << 20;
        let mut located: Vec<(usize, IndexedObject)> = Vec::new();
        let mut alone: Vec<usize> = Vec::new();
        for (i, (id, kind)) in objects.iter().enumerate() {
            match self.locate(id, *kind) {
                Ok(o)
                    if (*kind == ObjectKind::Chunk || o.entry.raw_len <= METADATA_LIMIT)
                        && o.entry.payload_len <= o.entry.raw_len.saturating_mul(2) + 1024
                        && o.entry.payload_len < RUN_BYTES =>
                {
                    located.push((i, o))
                }
                _ => alone.push(i),
            }
        }
        located.sort_by_key(|(_, o)| (o.pack, o.entry.offset));
        let mut runs: Vec<Vec<(usize, IndexedObject)>> = Vec::new();
        for (i, o) in located {
            let end =
                |o: &IndexedObject| o.entry.offset + RECORD_HEADER_LEN as u64 + o.entry.payload_len;
            match runs.last_mut() {
                Some(run)
                    if run[0].1.pack == o.pack
                        && run.last().is_some_and(|(_, p)| end(p) == o.entry.offset)
                        && end(&o) - run[0].1.entry.offset <= RUN_BYTES =>
                {
                    run.push((i, o))
                }
                _ => runs.push(vec![(i, o)]),
            }
        }
        let mut out: Vec<Option<Result<CheckedRecord>>> =
            (0..objects.len()).map(|_| None).collect();
        let read_run = |run: Vec<(usize, IndexedObject)>| -> Vec<(usize, Result<CheckedRecord>)> {
            let start = run[0].1.entry.offset;
            let last = &run[run.len() - 1].1;
            let len = last.entry.offset + RECORD_HEADER_LEN as u64 + last.entry.payload_len - start;
            let mut buf = vec![0u8; len as usize];
            if self
                .storage()
                .read_at(&run[0].1.pack.key(), start, &mut buf)
                .is_err()
            {
                return run
                    .into_iter()
                    .map(|(i, _)| (i, self.verified_record(&objects[i].0, objects[i].1)))
                    .collect();
            }
            run.into_iter()
                .map(|(i, o)| {
                    let (id, kind) = objects[i];
                    let loc = o.location();
                    let at = (o.entry.offset - start) as usize;
                    let rec =
                        buf[at..at + RECORD_HEADER_LEN + o.entry.payload_len as usize].to_vec();
                    let what = || {
                        format!(
                            "{} {} (pack {} offset {})",
                            kind.name(),
                            id.short(),
                            o.pack,
                            o.entry.offset
                        )
                    };
                    (i, check_record(&id, kind, &loc, rec, &what))
                })
                .collect()
        };
        for (i, r) in crate::par::map(runs, read_run).into_iter().flatten() {
            out[i] = Some(r);
        }
        for i in alone {
            out[i] = Some(self.verified_record(&objects[i].0, objects[i].1));
        }
        out.into_iter()
            .map(|r| r.unwrap_or_else(|| Err(Error::InvalidArgument("object not read".into()))))
            .collect()
    }

    /// Run `read` on where the index says object `id` lives; while its pack is gone (merged
    /// or rewritten by another process since the index was synchronised), resynchronise and
    /// run it again. A merge writes its output before it deletes its sources, so each retry
    /// finds the object in a newer pack; under heavy merging (many writers, gc) one object
    /// can move several times while a reader catches up. The bound only stops a store that
    /// keeps listing a pack it cannot serve.
    fn at_current_location<T>(
        &self,
        id: &ObjectId,
        kind: ObjectKind,
        mut read: impl FnMut(&IndexedObject) -> Result<T>,
    ) -> Result<T> {
        let mut gone: Option<crate::id::PackId> = None;
        let mut attempt = 0u32;
        loop {
            let o = self.locate(id, kind)?;
            match read(&o) {
                Err(e @ Error::ObjectMissing { .. }) => {
                    attempt += 1;
                    if attempt >= PACK_GONE_ATTEMPTS {
                        return Err(e);
                    }
                    if gone == Some(o.pack) {
                        // Listed but not served: give a lagging listing a moment.
                        std::thread::sleep(std::time::Duration::from_millis(20 * attempt as u64));
                    }
                    gone = Some(o.pack);
                    self.refresh_index()?;
                }
                r => return r,
            }
        }
    }

    /// The version and body of metadata object `id` of `kind` (the body not yet decoded, its
    /// id not yet checked).
    fn read_body(&self, id: &ObjectId, kind: ObjectKind) -> Result<(u8, Vec<u8>)> {
        let held = |m: &RecentMetadata| {
            m.get(id)
                .filter(|(k, _, _)| *k == kind)
                .map(|(_, v, body)| (*v, body.to_vec()))
        };
        if let Some(hit) = held(&self.inner.recent.lock().unwrap_or_else(|e| e.into_inner())) {
            return Ok(hit);
        }
        if let Some(hit) = held(
            &self
                .inner
                .prefetched
                .read()
                .unwrap_or_else(|e| e.into_inner()),
        ) {
            return Ok(hit);
        }
        let what = || format!("{} {}", kind.name(), id.short());
        self.at_current_location(id, kind, |o| {
            if o.entry.raw_len > METADATA_LIMIT {
                return Err(Error::corrupt(what(), "implausibly large"));
            }
            let mut body = vec![0u8; o.entry.raw_len as usize];
            let h = self.read_record(&o.location(), id, kind, &mut body, &what)?;
            Ok((h.version, body))
        })
    }

    pub(crate) fn read_metadata<T: MetadataObject>(&self, id: &ObjectId) -> Result<T> {
        let (version, body) = self.read_body(id, T::KIND)?;
        decode_object::<T>(id, version, &body)
    }

    /// A commit by id.
    pub fn commit(&self, id: &ObjectId) -> Result<crate::format::commit::Commit> {
        self.read_metadata(id)
    }

    /// A manifest by id.
    pub fn manifest(&self, id: &ObjectId) -> Result<Manifest> {
        self.read_metadata(id)
    }

    /// A node of the path tree by id (cached: nodes are immutable).
    pub fn tree_node(&self, id: &ObjectId) -> Result<Arc<TreeNode>> {
        {
            let c = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(n) = c.stored.get(id).or_else(|| c.computed.get(id)) {
                return Ok(n.clone());
            }
        }
        let (version, body) = self.read_body(id, ObjectKind::Tree)?;
        if version == LegacyTree::VERSION {
            return Err(Error::corrupt(
                format!("tree {}", id.short()),
                "a version-1 directory tree where a tree node was expected",
            ));
        }
        let n = Arc::new(decode_object::<TreeNode>(id, version, &body)?);
        self.inner
            .counters
            .tree_nodes_read
            .fetch_add(1, Ordering::Relaxed);
        let mut c = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
        if c.stored.len() >= NODE_CACHE_ENTRIES {
            c.stored.clear();
        }
        c.stored.insert(*id, n.clone());
        Ok(n)
    }

    /// The root node id of a commit's tree. A version-1 directory tree is converted: its
    /// states are listed and the current tree is computed in memory (not stored).
    pub fn tree_root(&self, tree: &ObjectId) -> Result<ObjectId> {
        {
            let c = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(r) = c.legacy_roots.get(tree) {
                return Ok(*r);
            }
            if c.stored.contains_key(tree) || c.computed.contains_key(tree) {
                return Ok(*tree);
            }
        }
        let (version, body) = self.read_body(tree, ObjectKind::Tree)?;
        if version != LegacyTree::VERSION {
            let n = Arc::new(decode_object::<TreeNode>(tree, version, &body)?);
            self.inner
                .counters
                .tree_nodes_read
                .fetch_add(1, Ordering::Relaxed);
            let mut c = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
            c.stored.insert(*tree, n);
            return Ok(*tree);
        }
        let mut states = Vec::new();
        self.walk_legacy(tree, "", &mut |_| Ok(true), &mut |p, e| {
            states.push((p.to_string(), e.clone()));
            Ok(())
        })?;
        states.sort_by(|a, b| a.0.cmp(&b.0));
        let mut computed = tree::MemoryNodes::default();
        let root = tree::build(self, &mut computed, states)?;
        let mut c = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
        c.computed.extend(computed.nodes);
        c.legacy_roots.insert(*tree, root);
        Ok(root)
    }

    /// Visit a version-1 directory tree: `on_tree` for every legacy tree id (this one
    /// first; it returns false to skip that subtree), `on_state` for every state with its
    /// full path.
    pub(crate) fn walk_legacy(
        &self,
        id: &ObjectId,
        base: &str,
        on_tree: &mut dyn FnMut(&ObjectId) -> Result<bool>,
        on_state: &mut dyn FnMut(&str, &StateEntry) -> Result<()>,
    ) -> Result<()> {
        if !on_tree(id)? {
            return Ok(());
        }
        let t: LegacyTree = self.read_metadata(id)?;
        for e in t.entries {
            let p = format!("{base}{}", e.name);
            match e.node {
                LegacyNode::State(s) => {
                    let cur = s
                        .into_current()
                        .map_err(|d| Error::corrupt(format!("tree {}", id.short()), d))?;
                    on_state(&p, &cur)?
                }
                LegacyNode::Tree(sub) => {
                    self.walk_legacy(&sub, &format!("{p}/"), on_tree, on_state)?
                }
            }
        }
        Ok(())
    }

    /// Walk a version-1 directory tree, skipping the subtrees whose ids are in `known`:
    /// the legacy tree ids met (not in `known`), every state's path and manifest, and the
    /// error that stopped the walk, if any (what was found before it is kept).
    pub(crate) fn walk_legacy_unseen(
        &self,
        root: &ObjectId,
        known: &std::collections::HashSet<ObjectId>,
    ) -> LegacyWalk {
        let (mut trees, mut states) = (Vec::new(), Vec::new());
        let mut met = std::collections::HashSet::new();
        let error = self
            .walk_legacy(
                root,
                "",
                &mut |t| {
                    let fresh = !known.contains(t) && met.insert(*t);
                    if fresh {
                        trees.push(*t);
                    }
                    Ok(fresh)
                },
                &mut |p, e| {
                    states.push((p.to_string(), e.manifest));
                    Ok(())
                },
            )
            .err();
        LegacyWalk {
            trees,
            states,
            error,
        }
    }

    /// Visit the objects of the tree `root` (a version-1 tree or a path tree) that are not in
    /// `seen`, adding them: `on(id, Tree)` for each tree object, then `on(id, Manifest)` for
    /// each state's manifest. Shared subtrees and manifests are visited once across calls.
    pub(crate) fn visit_tree_objects(
        &self,
        root: &ObjectId,
        seen: &mut std::collections::HashSet<ObjectId>,
        on: &mut dyn FnMut(ObjectId, ObjectKind) -> Result<()>,
    ) -> Result<()> {
        if seen.contains(root) {
            return Ok(());
        }
        let mut manifests = Vec::new();
        if self.is_legacy_tree(root)? {
            let w = self.walk_legacy_unseen(root, seen);
            if let Some(e) = w.error {
                return Err(e);
            }
            for t in w.trees {
                seen.insert(t);
                on(t, ObjectKind::Tree)?;
            }
            manifests.extend(w.states.into_iter().map(|(_, m)| m));
        } else {
            let mut nodes = Vec::new();
            tree::walk_nodes(self, root, seen, &mut |id, n| {
                nodes.push(*id);
                if n.level == 0 {
                    for it in &n.items {
                        if let crate::format::tree::ItemValue::State(e) = &it.value {
                            manifests.push(e.manifest);
                        }
                    }
                }
                Ok(())
            })?;
            for n in nodes {
                on(n, ObjectKind::Tree)?;
            }
        }
        for m in manifests {
            if seen.insert(m) {
                on(m, ObjectKind::Manifest)?;
            }
        }
        Ok(())
    }

    /// True when tree object `id` is a version-1 directory tree.
    pub(crate) fn is_legacy_tree(&self, id: &ObjectId) -> Result<bool> {
        {
            let c = self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner());
            if c.legacy_roots.contains_key(id) {
                return Ok(true);
            }
            if c.stored.contains_key(id) {
                return Ok(false);
            }
        }
        Ok(self.locate(id, ObjectKind::Tree)?.entry.version == LegacyTree::VERSION)
    }

    /// Nodes computed from legacy trees (not stored), for commits that build on them.
    pub(crate) fn computed_node(&self, id: &ObjectId) -> Option<Arc<TreeNode>> {
        self.inner
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .computed
            .get(id)
            .cloned()
    }
}

/// What [`Repository::walk_legacy_unseen`] found.
pub(crate) struct LegacyWalk {
    pub trees: Vec<ObjectId>,
    /// (path, manifest) of every state.
    pub states: Vec<(String, ObjectId)>,
    pub error: Option<Error>,
}

impl NodeSource for Repository {
    fn node(&self, id: &ObjectId) -> Result<Arc<TreeNode>> {
        self.tree_node(id)
    }
}

/// A record's header and its bytes (header, then payload), checked against its id.
pub(crate) type CheckedRecord = (RecordHeader, Vec<u8>);

/// Check a record read from `loc` for object `id` of `kind`: the header names the object, and
/// the decoded bytes hash to its id. Returns the header and the whole record (header bytes,
/// then the payload still encoded: `&rec[RECORD_HEADER_LEN..]`), without copying it.
fn check_record(
    id: &ObjectId,
    kind: ObjectKind,
    loc: &Location,
    rec: Vec<u8>,
    what: &dyn Fn() -> String,
) -> Result<(RecordHeader, Vec<u8>)> {
    let h =
        RecordHeader::decode(&rec[..RECORD_HEADER_LEN]).map_err(|d| Error::corrupt(what(), d))?;
    if h.id != *id
        || h.kind != kind
        || h.payload_len != loc.payload_len
        || (h.codec == crate::codec::Codec::Raw && h.payload_len != h.raw_len)
    {
        return Err(Error::corrupt(what(), "record header does not match"));
    }
    let payload = &rec[RECORD_HEADER_LEN..];
    let decoded;
    let raw: &[u8] = if h.codec == crate::codec::Codec::Raw {
        payload
    } else {
        let mut out = vec![0u8; h.raw_len as usize];
        decode(h.codec, h.elem as usize, payload, &mut out)
            .map_err(|d| Error::corrupt(what(), d))?;
        decoded = out;
        &decoded
    };
    let actual = match kind {
        ObjectKind::Chunk => ObjectId::of_chunk(raw),
        k => ObjectId::of_object(k as u8, h.version, raw),
    };
    if actual != *id {
        return Err(Error::corrupt(
            what(),
            "hash mismatch: the stored bytes are damaged",
        ));
    }
    Ok((h, rec))
}

#[cfg(test)]
mod tests {
    use crate::coord::memory::MemoryCoordination;
    use crate::storage::memory::MemoryStorage;
    use crate::storage::{BlobMeta, BlobWriter, PutMode, PutOutcome, Storage};
    use crate::{ArrayInfo, CommitOptions, DType, ObjectId, PutOptions, RepoConfig, Repository};
    use std::sync::{Arc, Mutex};

    type Hook = Box<dyn FnOnce() + Send>;

    /// Memory storage that runs a hook (once) when a given record is about to be read, and
    /// counts reads; `remote` makes it ask for few requests, as S3 does.
    #[derive(Default)]
    struct Hooked {
        inner: MemoryStorage,
        hook: Mutex<Option<(String, u64, Hook)>>,
        /// Runs (once) after a listing of `packs/` is taken, before it is returned.
        list_hook: Mutex<Option<Hook>>,
        remote: bool,
        reads: std::sync::atomic::AtomicU64,
    }

    impl std::fmt::Debug for Hooked {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Hooked")
        }
    }

    impl Storage for Hooked {
        fn put(&self, key: &str, data: &[u8], mode: PutMode) -> crate::Result<PutOutcome> {
            self.inner.put(key, data, mode)
        }
        fn writer(&self, key: &str) -> crate::Result<Box<dyn BlobWriter>> {
            self.inner.writer(key)
        }
        fn get(&self, key: &str) -> crate::Result<Vec<u8>> {
            self.inner.get(key)
        }
        fn prefers_few_requests(&self) -> bool {
            self.remote
        }
        fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> crate::Result<()> {
            self.reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let fire = {
                let mut h = self.hook.lock().unwrap();
                match h.as_ref() {
                    Some((k, o, _)) if k == key && *o == offset => h.take().map(|(_, _, f)| f),
                    _ => None,
                }
            };
            if let Some(f) = fire {
                f();
            }
            self.inner.read_at(key, offset, buf)
        }
        fn size(&self, key: &str) -> crate::Result<u64> {
            self.inner.size(key)
        }
        fn list(&self, prefix: &str) -> crate::Result<Vec<BlobMeta>> {
            let r = self.inner.list(prefix);
            if prefix == "packs/" {
                let fire = self.list_hook.lock().unwrap().take();
                if let Some(f) = fire {
                    f();
                }
            }
            r
        }
        fn delete(&self, key: &str) -> crate::Result<()> {
            self.inner.delete(key)
        }
    }

    fn commit(repo: &Repository, path: &str, v: f64) -> ObjectId {
        let mut tx = repo.transaction("main").unwrap();
        let amps = [v, 0.0, 0.0, v];
        tx.put(
            path,
            &ArrayInfo {
                dtype: DType::Complex128,
                shape: vec![2],
            },
            bytemuck::cast_slice(&amps),
            &PutOptions::default(),
        )
        .unwrap();
        tx.commit(CommitOptions::default()).unwrap()
    }

    /// A reader whose index is two merges behind: the object's pack is gone, and the pack
    /// it moved to goes too before the reader gets there. The read follows it.
    #[test]
    fn a_read_follows_an_object_through_successive_merges() {
        let storage = Arc::new(Hooked::default());
        let coord = Arc::new(MemoryCoordination::default());
        let writer = Repository::init_parts(
            "memory://hooked",
            storage.clone(),
            coord.clone(),
            RepoConfig::default(),
        )
        .unwrap();
        let x = commit(&writer, "a", 1.0);
        let reader = Repository::open_parts("memory://hooked", storage.clone(), coord).unwrap();
        assert!(reader.has_object(&x));
        // First move: the reader's pack is merged away.
        commit(&writer, "b", 2.0);
        assert!(writer.repack(false).unwrap().packs_merged >= 2);
        let moved = writer
            .locate(&x, crate::format::ObjectKind::Commit)
            .unwrap();
        // Second move, just as the reader arrives at the first new home.
        let fired = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (w, f) = (writer.clone(), fired.clone());
        *storage.hook.lock().unwrap() = Some((
            moved.pack.key(),
            moved.entry.offset,
            Box::new(move || {
                commit(&w, "c", 3.0);
                assert!(w.repack(false).unwrap().packs_merged >= 2);
                f.store(true, std::sync::atomic::Ordering::SeqCst);
            }),
        ));
        let c = reader.commit(&x).unwrap();
        assert!(fired.load(std::sync::atomic::Ordering::SeqCst));
        assert_eq!(c, writer.commit(&x).unwrap());
        let now = reader
            .locate(&x, crate::format::ObjectKind::Commit)
            .unwrap();
        assert_ne!(now.pack, moved.pack);
    }

    /// A reader that lists the packs just before the one holding the object it wants is
    /// merged away (into a pack its listing missed) finds the object on a second look.
    #[test]
    fn a_read_survives_a_merge_between_listing_and_opening() {
        let storage = Arc::new(Hooked::default());
        let coord = Arc::new(MemoryCoordination::default());
        let writer = Repository::init_parts(
            "memory://listed",
            storage.clone(),
            coord.clone(),
            RepoConfig::default(),
        )
        .unwrap();
        let reader = Repository::open_parts("memory://listed", storage.clone(), coord).unwrap();
        let x = commit(&writer, "a", 1.0);
        assert!(!reader.has_object(&x));
        let w = writer.clone();
        *storage.list_hook.lock().unwrap() = Some(Box::new(move || {
            commit(&w, "b", 2.0);
            assert!(w.repack(false).unwrap().packs_merged >= 2);
        }));
        assert_eq!(reader.commit(&x).unwrap(), writer.commit(&x).unwrap());
        assert!(storage.list_hook.lock().unwrap().is_none(), "the hook ran");
    }

    /// On remote storage gc's mark reads the history's metadata in a few large reads (one
    /// per run of adjacent records), not one request per object, and collects exactly what
    /// it should.
    #[test]
    fn gc_reads_the_history_in_bulk_on_remote_storage() {
        let storage = Arc::new(Hooked {
            remote: true,
            ..Default::default()
        });
        let coord = Arc::new(MemoryCoordination::default());
        let config = RepoConfig {
            merge_threshold: 0,
            ..RepoConfig::default()
        };
        let repo = Repository::init_parts("memory://bulk", storage.clone(), coord.clone(), config)
            .unwrap();
        for i in 0..40 {
            commit(&repo, &format!("p{}", i % 5), i as f64);
        }
        repo.repack(true).unwrap();
        let fresh = Repository::open_parts("memory://bulk", storage.clone(), coord).unwrap();
        let before = storage.reads.load(std::sync::atomic::Ordering::Relaxed);
        let live = super::super::gc::mark(&fresh).unwrap();
        let reads = storage.reads.load(std::sync::atomic::Ordering::Relaxed) - before;
        // 41 commits, their tree nodes and manifests: well over 100 objects.
        assert!(live.len() > 100, "{} live", live.len());
        assert!(reads <= 4, "{reads} reads for {} objects", live.len());
        // A side branch that is then deleted leaves garbage for gc.
        fresh.create_branch("side", "main").unwrap();
        let mut tx = fresh.transaction("side").unwrap();
        let amps = [9.0f64, 0.0, 0.0, 9.0];
        tx.put(
            "garbage",
            &ArrayInfo {
                dtype: DType::Complex128,
                shape: vec![2],
            },
            bytemuck::cast_slice(&amps),
            &PutOptions::default(),
        )
        .unwrap();
        tx.commit(CommitOptions::default()).unwrap();
        fresh
            .delete_ref(&crate::RefName::branch("side").unwrap())
            .unwrap();
        let r = fresh
            .gc(&crate::GcOptions {
                grace: std::time::Duration::ZERO,
                ..Default::default()
            })
            .unwrap();
        assert!(r.objects_deleted > 0, "{r:?}");
        assert!(fresh.fsck(true).unwrap().healthy());
        for i in 35..40 {
            let got = fresh
                .reader("main", &format!("p{}", i % 5))
                .unwrap()
                .read_all()
                .unwrap();
            let want: Vec<u8> = bytemuck::cast_slice(&[i as f64, 0.0, 0.0, i as f64]).to_vec();
            assert_eq!(got, want);
        }
    }
}
