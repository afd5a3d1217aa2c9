//! Scratch spaces: [`Scratch`] holds states that are not (yet) committed: Monte-Carlo
//! trajectories, pre-measurement branches, intermediate steps. Chunks are deduplicated within
//! the space, kept in memory up to a budget and spilled to segment files in a local directory
//! beyond it; a quota bounds memory plus disk together and a put that would pass it fails with
//! [`Error::QuotaExceeded`], changing nothing.
//!
//! [`StateHandle`]s are reference counted: dropping the last handle of a state frees its
//! chunks (memory and disk) unless it is pinned. [`crate::Transaction::put_from_scratch`]
//! commits a state by copying its encoded chunks as they are (no re-chunking, re-hashing or
//! re-compressing). Dropping the [`Scratch`] removes everything in it.
//!
//! A live scratch space renews a lease file (`scratch/<id>.lease` in a local repository);
//! when its process dies the lease expires and `gc` (or the next [`Repository::scratch`])
//! removes what it left. A live space of another process is never touched.

use super::ingest::{PutOptions, ingest_dense, ingest_sparse};
use super::reader::StateReader;
use super::writer::{ChunkStore, PutStats};
use super::{Repository, now_ms};
use crate::codec::{Codec, decode};
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::pack::Location;
use crate::format::record::RecordHeader;
use crate::format::tree::StateEntry;
use crate::id::{ObjectId, PackId};
use crate::state::input::{ArrayInfo, DenseSource, SliceSource};
use crate::state::sparse::SparseInput;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

/// The pseudo pack id that marks a chunk held by a scratch space.
pub const SCRATCH_PACK: PackId = PackId([0xff; 16]);

/// Settings of a scratch space.
#[derive(Clone, Debug)]
pub struct ScratchOptions {
    /// Most bytes (memory plus spill files) the space may hold.
    pub quota: u64,
    /// Most bytes kept in memory before spilling to disk.
    pub memory_budget: u64,
    /// Where spill files go (a tmpfs or NVMe path); default `scratch/<id>/` in the repository
    /// (or the system temporary directory for a `memory://` repository).
    pub spill_dir: Option<PathBuf>,
    /// How long the lease lasts without renewal (it is renewed every third of this).
    pub lease_ttl: Duration,
    /// Size at which a spill segment file is closed and a new one started.
    pub segment_bytes: u64,
}

impl Default for ScratchOptions {
    fn default() -> Self {
        ScratchOptions {
            quota: 8 << 30,
            memory_budget: 256 << 20,
            spill_dir: None,
            lease_ttl: Duration::from_secs(60),
            segment_bytes: 64 << 20,
        }
    }
}

/// How much a scratch space holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ScratchUsage {
    pub quota: u64,
    pub memory_bytes: u64,
    /// Bytes of spill files on disk (live and not yet reclaimed).
    pub disk_bytes: u64,
    /// Live bytes in spill files.
    pub disk_live_bytes: u64,
    pub states: u64,
    pub chunks: u64,
    pub spill_files: u64,
}

impl ScratchUsage {
    /// Memory plus disk: what the quota bounds.
    pub fn total(&self) -> u64 {
        self.memory_bytes + self.disk_bytes
    }
}

/// The lease file of a scratch space.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Lease {
    pub id: String,
    pub pid: u32,
    pub spill_dir: PathBuf,
    pub created_ms: i64,
    pub expires_ms: i64,
}

enum Data {
    Mem(Vec<u8>),
    Spill { seg: u32, offset: u64 },
}

struct Chunk {
    data: Data,
    codec: Codec,
    elem: u8,
    raw_len: u64,
    payload_len: u64,
    refs: u64,
}

struct Segment {
    file: File,
    path: PathBuf,
    len: u64,
    live: u64,
}

struct Held {
    entry: StateEntry,
    manifest: Arc<Manifest>,
    handles: u64,
    pinned: bool,
}

#[derive(Default)]
struct State {
    chunks: HashMap<ObjectId, Chunk>,
    states: HashMap<u64, Held>,
    next_state: u64,
    mem_bytes: u64,
    segments: BTreeMap<u32, Segment>,
    current: Option<u32>,
    next_seg: u32,
    puts_in_flight: u64,
    deferred: Vec<ObjectId>,
}

pub(crate) struct ScratchInner {
    repo: Repository,
    id: String,
    dir: PathBuf,
    lease_path: Option<PathBuf>,
    opts: ScratchOptions,
    st: Mutex<State>,
    closed: AtomicBool,
    stop: Mutex<Option<mpsc::Sender<()>>>,
    renewer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

fn io(p: &Path, e: std::io::Error) -> Error {
    Error::io(p.display(), e)
}

impl ScratchInner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn check_open(&self) -> Result<()> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(Error::InvalidArgument(format!(
                "scratch space {} is closed",
                self.id
            )));
        }
        Ok(())
    }

    fn usage_of(&self, st: &State) -> ScratchUsage {
        ScratchUsage {
            quota: self.opts.quota,
            memory_bytes: st.mem_bytes,
            disk_bytes: st.segments.values().map(|s| s.len).sum(),
            disk_live_bytes: st.segments.values().map(|s| s.live).sum(),
            states: st.states.len() as u64,
            chunks: st.chunks.len() as u64,
            spill_files: st.segments.len() as u64,
        }
    }

    fn write_lease(&self) -> Result<()> {
        let Some(p) = &self.lease_path else {
            return Ok(());
        };
        let lease = Lease {
            id: self.id.clone(),
            pid: std::process::id(),
            spill_dir: self.dir.clone(),
            created_ms: now_ms(),
            expires_ms: now_ms() + self.opts.lease_ttl.as_millis() as i64,
        };
        let tmp = p.with_extension("lease.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&lease).unwrap_or_default())
            .map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, p).map_err(|e| io(p, e))
    }

    /// Free a chunk whose last reference went away (or defer it while puts run, since a put
    /// may have just found it as a duplicate).
    fn free_chunk(&self, st: &mut State, id: ObjectId) {
        if st.puts_in_flight > 0 {
            st.deferred.push(id);
            return;
        }
        let Some(c) = st.chunks.get(&id) else { return };
        if c.refs > 0 {
            return;
        }
        let c = st.chunks.remove(&id).expect("present");
        match c.data {
            Data::Mem(_) => st.mem_bytes -= c.payload_len,
            Data::Spill { seg, .. } => {
                let empty = match st.segments.get_mut(&seg) {
                    Some(s) => {
                        s.live -= c.payload_len;
                        s.live == 0
                    }
                    None => false,
                };
                if empty {
                    if let Some(s) = st.segments.remove(&seg) {
                        let _ = std::fs::remove_file(&s.path);
                    }
                    if st.current == Some(seg) {
                        st.current = None;
                    }
                }
            }
        }
    }

    fn end_put(&self, st: &mut State) {
        st.puts_in_flight -= 1;
        if st.puts_in_flight == 0 {
            for id in std::mem::take(&mut st.deferred) {
                self.free_chunk(st, id);
            }
        }
    }

    /// After frees: compact segments that became mostly dead, so disk follows live use.
    fn reclaim(&self, st: &mut State) {
        if st.puts_in_flight == 0 {
            let _ = self.compact(st);
        }
    }

    fn release_state(&self, st: &mut State, sid: u64) {
        let Some(h) = st.states.remove(&sid) else {
            return;
        };
        for c in &h.manifest.chunks {
            if let ChunkRef::Stored { id, .. } = c
                && let Some(ch) = st.chunks.get_mut(id)
            {
                ch.refs -= 1;
                if ch.refs == 0 {
                    self.free_chunk(st, *id);
                }
            }
        }
        self.reclaim(st);
    }

    /// Move the live chunks of mostly-dead spill segments into the current segment, so
    /// disk use follows live use. Only runs when no put is in flight.
    fn compact(&self, st: &mut State) -> Result<()> {
        if st.puts_in_flight > 1 {
            return Ok(());
        }
        // A mostly-dead current segment is closed so that it can be compacted too.
        if let Some(c) = st.current
            && st
                .segments
                .get(&c)
                .is_some_and(|s| s.live * 2 < s.len && s.len * 2 >= self.opts.segment_bytes)
        {
            st.current = None;
        }
        let victims: Vec<u32> = st
            .segments
            .iter()
            .filter(|(k, s)| Some(**k) != st.current && s.live * 2 < s.len)
            .map(|(k, _)| *k)
            .collect();
        for seg in victims {
            let live = st.segments.get(&seg).map_or(0, |s| s.live);
            if self.usage_of(st).total() + live > self.opts.quota {
                continue;
            }
            let ids: Vec<ObjectId> = st
                .chunks
                .iter()
                .filter(|(_, c)| matches!(c.data, Data::Spill { seg: s, .. } if s == seg))
                .map(|(id, _)| *id)
                .collect();
            for id in ids {
                let payload = self.payload(st, &id)?;
                let (new_seg, off) = self.append_spill(st, &payload)?;
                if let Some(c) = st.chunks.get_mut(&id) {
                    c.data = Data::Spill {
                        seg: new_seg,
                        offset: off,
                    };
                }
            }
            if let Some(s) = st.segments.remove(&seg) {
                let _ = std::fs::remove_file(&s.path);
            }
        }
        Ok(())
    }

    fn append_spill(&self, st: &mut State, payload: &[u8]) -> Result<(u32, u64)> {
        let need_new = match st.current.and_then(|c| st.segments.get(&c)) {
            Some(s) => s.len + payload.len() as u64 > self.opts.segment_bytes && s.len > 0,
            None => true,
        };
        if need_new {
            std::fs::create_dir_all(&self.dir).map_err(|e| io(&self.dir, e))?;
            let n = st.next_seg;
            st.next_seg += 1;
            let path = self.dir.join(format!("seg-{n:06}.spill"));
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(&path)
                .map_err(|e| io(&path, e))?;
            st.segments.insert(
                n,
                Segment {
                    file,
                    path,
                    len: 0,
                    live: 0,
                },
            );
            st.current = Some(n);
        }
        let n = st.current.expect("a current segment");
        let s = st.segments.get_mut(&n).expect("current segment exists");
        let off = s.len;
        s.file
            .write_all_at(payload, off)
            .map_err(|e| io(&s.path, e))?;
        s.len += payload.len() as u64;
        s.live += payload.len() as u64;
        Ok((n, off))
    }

    fn payload(&self, st: &State, id: &ObjectId) -> Result<Vec<u8>> {
        let c = st.chunks.get(id).ok_or_else(|| Error::ObjectMissing {
            id: id.to_hex(),
            kind: "chunk",
            context: format!(" (scratch space {})", self.id),
        })?;
        match &c.data {
            Data::Mem(v) => Ok(v.clone()),
            Data::Spill { seg, offset } => {
                let s = st
                    .segments
                    .get(seg)
                    .ok_or_else(|| Error::corrupt(format!("scratch segment {seg}"), "missing"))?;
                let mut buf = vec![0u8; c.payload_len as usize];
                s.file
                    .read_exact_at(&mut buf, *offset)
                    .map_err(|e| io(&s.path, e))?;
                Ok(buf)
            }
        }
    }

    /// The encoded record of a chunk: header fields and payload.
    pub(crate) fn record(&self, id: &ObjectId) -> Result<(RecordHeader, Vec<u8>)> {
        self.check_open()?;
        let st = self.lock();
        let payload = self.payload(&st, id)?;
        let c = &st.chunks[id];
        Ok((
            RecordHeader {
                kind: crate::format::ObjectKind::Chunk,
                version: crate::format::CHUNK_VERSION,
                codec: c.codec,
                elem: c.elem,
                raw_len: c.raw_len,
                payload_len: c.payload_len,
                id: *id,
            },
            payload,
        ))
    }

    /// Decode chunk `id` into `out` and verify it.
    pub(crate) fn read_chunk(&self, id: &ObjectId, out: &mut [u8]) -> Result<()> {
        let (h, payload) = self.record(id)?;
        decode(h.codec, h.elem as usize, &payload, out)
            .map_err(|d| Error::corrupt(format!("scratch chunk {}", id.short()), d))?;
        if ObjectId::of_chunk(out) != *id {
            return Err(Error::corrupt(
                format!("scratch chunk {}", id.short()),
                "hash mismatch",
            ));
        }
        Ok(())
    }

    fn close(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        if let Some(tx) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = tx.send(());
        }
        if let Some(t) = self
            .renewer
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = t.join();
        }
        let mut st = self.lock();
        st.segments.clear();
        st.chunks.clear();
        st.states.clear();
        st.mem_bytes = 0;
        drop(st);
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(p) = &self.lease_path {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Stores the chunks of one put into a scratch space, checking the quota before each.
struct ScratchStore<'a> {
    inner: &'a ScratchInner,
    new: Vec<ObjectId>,
}

impl ChunkStore for ScratchStore<'_> {
    fn chunk_size(&self) -> u64 {
        self.inner.repo.config().chunk_size
    }

    fn has_format_4(&self) -> bool {
        self.inner.repo.config().has_format_4()
    }

    fn lookup(&self, id: &ObjectId) -> Option<(Location, Codec)> {
        let st = self.inner.lock();
        st.chunks.get(id).map(|c| {
            (
                Location {
                    pack: SCRATCH_PACK,
                    offset: 0,
                    payload_len: c.payload_len,
                },
                c.codec,
            )
        })
    }

    fn store(&mut self, h: &RecordHeader, payload: &[u8]) -> Result<Location> {
        let inner = self.inner;
        let mut st = inner.lock();
        let len = payload.len() as u64;
        let mut usage = inner.usage_of(&st).total();
        if usage + len > inner.opts.quota {
            inner.compact(&mut st)?;
            usage = inner.usage_of(&st).total();
            if usage + len > inner.opts.quota {
                return Err(Error::QuotaExceeded {
                    scratch: inner.id.clone(),
                    quota: inner.opts.quota,
                    usage,
                    needed: len,
                });
            }
        }
        let data = if st.mem_bytes + len <= inner.opts.memory_budget {
            st.mem_bytes += len;
            Data::Mem(payload.to_vec())
        } else {
            let (seg, offset) = inner.append_spill(&mut st, payload)?;
            Data::Spill { seg, offset }
        };
        st.chunks.insert(
            h.id,
            Chunk {
                data,
                codec: h.codec,
                elem: h.elem,
                raw_len: h.raw_len,
                payload_len: len,
                refs: 0,
            },
        );
        self.new.push(h.id);
        Ok(Location {
            pack: SCRATCH_PACK,
            offset: 0,
            payload_len: len,
        })
    }
}

/// A scratch space (see the module documentation).
pub struct Scratch {
    inner: Arc<ScratchInner>,
}

/// A reference-counted handle to a state in a scratch space.
pub struct StateHandle {
    inner: Arc<ScratchInner>,
    sid: u64,
}

impl Repository {
    /// Open a new scratch space. Also reclaims scratch spaces whose lease expired.
    pub fn scratch(&self, opts: ScratchOptions) -> Result<Scratch> {
        if opts.quota == 0 {
            return Err(Error::InvalidArgument(
                "a scratch quota must be positive".into(),
            ));
        }
        reap_expired_scratch(self)?;
        let id = format!("{:016x}", rand::random::<u64>());
        let (dir, lease_path) = match (&opts.spill_dir, self.local_root()) {
            (Some(d), root) => (
                d.join(&id),
                root.map(|r| r.join("scratch").join(format!("{id}.lease"))),
            ),
            (None, Some(root)) => (
                root.join("scratch").join(&id),
                Some(root.join("scratch").join(format!("{id}.lease"))),
            ),
            (None, None) => (
                std::env::temp_dir().join(format!("qstore-scratch-{id}")),
                None,
            ),
        };
        if let Some(p) = &lease_path
            && let Some(parent) = p.parent()
        {
            std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        }
        let inner = Arc::new(ScratchInner {
            repo: self.clone(),
            id,
            dir,
            lease_path,
            opts,
            st: Mutex::new(State::default()),
            closed: AtomicBool::new(false),
            stop: Mutex::new(None),
            renewer: Mutex::new(None),
        });
        inner.write_lease()?;
        if inner.lease_path.is_some() {
            let (tx, rx) = mpsc::channel::<()>();
            let weak = Arc::downgrade(&inner);
            let every = inner.opts.lease_ttl / 3;
            let t = std::thread::spawn(move || {
                while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(every) {
                    match weak.upgrade() {
                        Some(i) if !i.closed.load(Ordering::SeqCst) => {
                            let _ = i.write_lease();
                        }
                        _ => break,
                    }
                }
            });
            *inner.stop.lock().unwrap_or_else(|e| e.into_inner()) = Some(tx);
            *inner.renewer.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
        }
        Ok(Scratch { inner })
    }
}

impl Scratch {
    /// The space's id.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// Current memory and disk use.
    pub fn usage(&self) -> ScratchUsage {
        let st = self.inner.lock();
        self.inner.usage_of(&st)
    }

    fn put_with(
        &self,
        f: impl FnOnce(&mut ScratchStore<'_>) -> Result<(StateEntry, Manifest, PutStats)>,
    ) -> Result<StateHandle> {
        self.inner.check_open()?;
        self.inner.lock().puts_in_flight += 1;
        let mut store = ScratchStore {
            inner: &self.inner,
            new: Vec::new(),
        };
        let res = f(&mut store);
        let new = std::mem::take(&mut store.new);
        let mut st = self.inner.lock();
        let out = match res {
            Ok((entry, manifest, _)) => {
                for c in &manifest.chunks {
                    if let ChunkRef::Stored { id, .. } = c
                        && let Some(ch) = st.chunks.get_mut(id)
                    {
                        ch.refs += 1;
                    }
                }
                let sid = st.next_state;
                st.next_state += 1;
                st.states.insert(
                    sid,
                    Held {
                        entry,
                        manifest: Arc::new(manifest),
                        handles: 1,
                        pinned: false,
                    },
                );
                Ok(StateHandle {
                    inner: self.inner.clone(),
                    sid,
                })
            }
            Err(e) => {
                st.deferred.extend(new);
                Err(e)
            }
        };
        self.inner.end_put(&mut st);
        out
    }

    /// Store a dense array held in memory.
    pub fn put(&self, info: &ArrayInfo, data: &[u8], opts: &PutOptions) -> Result<StateHandle> {
        self.put_source(info, &SliceSource(data), opts)
    }

    /// Store a dense array read from a source.
    pub fn put_source(
        &self,
        info: &ArrayInfo,
        src: &dyn DenseSource,
        opts: &PutOptions,
    ) -> Result<StateHandle> {
        self.put_with(|s| ingest_dense(s, info, src, opts))
    }

    /// Store a sparse state vector.
    pub fn put_sparse(&self, input: &SparseInput<'_>, opts: &PutOptions) -> Result<StateHandle> {
        self.put_with(|s| ingest_sparse(s, input, opts))
    }

    /// Handles to every pinned state (to unpin them later).
    pub fn pinned(&self) -> Vec<StateHandle> {
        let mut st = self.inner.lock();
        let ids: Vec<u64> = st
            .states
            .iter()
            .filter(|(_, h)| h.pinned)
            .map(|(k, _)| *k)
            .collect();
        for k in &ids {
            if let Some(h) = st.states.get_mut(k) {
                h.handles += 1;
            }
        }
        ids.into_iter()
            .map(|sid| StateHandle {
                inner: self.inner.clone(),
                sid,
            })
            .collect()
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        self.inner.close();
    }
}

impl StateHandle {
    fn held<T>(&self, f: impl FnOnce(&Held) -> T) -> Result<T> {
        self.inner.check_open()?;
        let st = self.inner.lock();
        st.states
            .get(&self.sid)
            .map(f)
            .ok_or_else(|| Error::InvalidArgument("scratch state was released".into()))
    }

    /// The state's entry (kind, dtype, shape, encoding, tags).
    pub fn entry(&self) -> Result<StateEntry> {
        self.held(|h| h.entry.clone())
    }

    /// Keep the state after its handles are dropped, until [`StateHandle::unpin`].
    pub fn pin(&self) -> Result<()> {
        self.inner.check_open()?;
        if let Some(h) = self.inner.lock().states.get_mut(&self.sid) {
            h.pinned = true;
        }
        Ok(())
    }

    /// Undo [`StateHandle::pin`]: the state is freed when its last handle goes.
    pub fn unpin(&self) -> Result<()> {
        self.inner.check_open()?;
        if let Some(h) = self.inner.lock().states.get_mut(&self.sid) {
            h.pinned = false;
        }
        Ok(())
    }

    /// True when pinned.
    pub fn is_pinned(&self) -> bool {
        self.held(|h| h.pinned).unwrap_or(false)
    }

    /// A reader over the state (whole, ranges, sparse form, analyses).
    pub fn reader(&self) -> Result<StateReader> {
        let (entry, manifest) = self.held(|h| (h.entry.clone(), h.manifest.clone()))?;
        Ok(StateReader::from_scratch(
            self.inner.repo.clone(),
            self.inner.clone(),
            entry,
            manifest,
        ))
    }

    /// The whole dense form.
    pub fn read_all(&self) -> Result<Vec<u8>> {
        self.reader()?.read_all()
    }

    pub(crate) fn parts(&self) -> Result<(Arc<ScratchInner>, StateEntry, Arc<Manifest>)> {
        let (e, m) = self.held(|h| (h.entry.clone(), h.manifest.clone()))?;
        Ok((self.inner.clone(), e, m))
    }
}

impl Clone for StateHandle {
    fn clone(&self) -> Self {
        if let Some(h) = self.inner.lock().states.get_mut(&self.sid) {
            h.handles += 1;
        }
        StateHandle {
            inner: self.inner.clone(),
            sid: self.sid,
        }
    }
}

impl Drop for StateHandle {
    fn drop(&mut self) {
        let mut st = self.inner.lock();
        let free = match st.states.get_mut(&self.sid) {
            Some(h) => {
                h.handles -= 1;
                h.handles == 0 && !h.pinned
            }
            None => false,
        };
        if free {
            self.inner.release_state(&mut st, self.sid);
        }
    }
}

/// Every scratch lease of a local repository, with whether it is still live.
pub fn list_leases(repo: &Repository) -> Result<Vec<(Lease, bool)>> {
    let Some(root) = repo.local_root() else {
        return Ok(Vec::new());
    };
    let dir = root.join("scratch");
    let rd = match std::fs::read_dir(&dir) {
        Ok(rd) => rd,
        Err(_) => return Ok(Vec::new()),
    };
    let now = now_ms();
    let mut out = Vec::new();
    for e in rd.flatten() {
        let p = e.path();
        if p.extension().is_none_or(|x| x != "lease") {
            continue;
        }
        let lease: Lease = match std::fs::read(&p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
        {
            Some(l) => l,
            None => {
                // Unreadable (being written, or left half-written by a crash): judge by age.
                let id = p
                    .file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("")
                    .to_string();
                let age_ms = e
                    .metadata()
                    .and_then(|m| m.modified())
                    .ok()
                    .and_then(|m| SystemTime::now().duration_since(m).ok())
                    .map(|d| d.as_millis() as i64)
                    .unwrap_or(0);
                Lease {
                    spill_dir: dir.join(&id),
                    id,
                    pid: 0,
                    created_ms: 0,
                    expires_ms: now - age_ms + 3_600_000,
                }
            }
        };
        let live = lease.expires_ms > now;
        out.push((lease, live));
    }
    out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
    Ok(out)
}

/// Remove a scratch space's files and lease. `force` also removes a live one.
pub fn remove_scratch(repo: &Repository, id: &str, force: bool) -> Result<()> {
    let leases = list_leases(repo)?;
    let Some((lease, live)) = leases.into_iter().find(|(l, _)| l.id == id) else {
        return Err(Error::InvalidArgument(format!("no scratch space {id:?}")));
    };
    if live && !force {
        return Err(Error::InvalidArgument(format!(
            "scratch space {id} has a live lease (pid {}); wait for it to expire or force",
            lease.pid
        )));
    }
    let _ = std::fs::remove_dir_all(&lease.spill_dir);
    if let Some(root) = repo.local_root() {
        let _ = std::fs::remove_file(root.join("scratch").join(format!("{id}.lease")));
    }
    Ok(())
}

/// Remove every scratch space whose lease expired; returns their ids.
pub fn reap_expired_scratch(repo: &Repository) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for (lease, live) in list_leases(repo)? {
        if !live {
            remove_scratch(repo, &lease.id, true)?;
            out.push(lease.id);
        }
    }
    Ok(out)
}
