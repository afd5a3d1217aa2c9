//! The API layer: [`Repository`] (open or create by address, refs, commits, trees, log,
//! reading states), with [`Transaction`] for writes, [`StateReader`] for reads and analyses,
//! and the [`diff`] and [`stats`] reports. Submodules: [`index`] (object locations),
//! [`writer`] (the chunk pipeline), [`ingest`] (encodings), [`transaction`] (the commit
//! protocol), [`reader`].

pub mod checkpoint;
pub mod diff;
pub mod fsck;
pub mod gc;
pub mod index;
pub mod ingest;
pub mod reader;
pub mod scratch;
pub mod stats;
pub mod transaction;
pub mod writer;

pub use checkpoint::PendingCommit;
pub use fsck::{FsckReport, Problem};
pub use gc::{GcOptions, GcReport};
pub use ingest::{EncodingChoice, PutOptions};
pub use reader::StateReader;
pub use scratch::{Scratch, ScratchOptions, ScratchUsage, StateHandle};
pub use transaction::{CommitOptions, Transaction};
pub use writer::PutStats;

use crate::codec::decode;
use crate::error::{Error, Result};
use crate::format::commit::Commit;
use crate::format::config::{CONFIG_KEY, RepoConfig};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::format::tree::{Node, StateEntry, Tree};
use crate::format::{MetadataObject, ObjectKind, decode_object};
use crate::id::ObjectId;
use crate::path::{RefName, StatePath};
use crate::refs::local::LocalRefStore;
use crate::refs::memory::MemoryRefStore;
use crate::refs::{CasOutcome, RefStore};
use crate::storage::local::LocalStorage;
use crate::storage::memory::MemoryStorage;
use crate::storage::{PutMode, PutOutcome, Storage};
use index::ObjectIndex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// The branch `init` creates.
pub const DEFAULT_BRANCH: &str = "main";
/// Default limit on the dense size of a state read into memory or a file: 1 TiB.
pub const DEFAULT_MATERIALISE_LIMIT: u64 = 1 << 40;
const METADATA_LIMIT: u64 = 1 << 30;
/// Storage key of the garbage-collection generation counter.
pub const GENERATION_KEY: &str = "gc-generation";
/// Storage key of the list of commits whose history was expired.
pub const SHALLOW_KEY: &str = "shallow.json";

/// Where a repository lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `memory://name`: in this process only.
    Memory(String),
    /// A directory: a plain path or `file:///abs/path`.
    Local(PathBuf),
}

impl Address {
    /// Parse `memory://name`, `file:///abs/path` or a plain path.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(name) = s.strip_prefix("memory://") {
            if name.is_empty() {
                return Err(Error::BadAddress(s.into()));
            }
            return Ok(Address::Memory(name.into()));
        }
        if let Some(p) = s.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(Error::BadAddress(s.into()));
            }
            return Ok(Address::Local(PathBuf::from(p)));
        }
        if s.is_empty() || s.contains("://") {
            return Err(Error::BadAddress(s.into()));
        }
        Ok(Address::Local(PathBuf::from(s)))
    }
}

type MemoryBackends = (Arc<MemoryStorage>, Arc<MemoryRefStore>);

fn memory_registry() -> &'static Mutex<HashMap<String, MemoryBackends>> {
    static REG: OnceLock<Mutex<HashMap<String, MemoryBackends>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

pub(crate) struct Inner {
    address: String,
    storage: Arc<dyn Storage>,
    refs: Arc<dyn RefStore>,
    config: RepoConfig,
    pub(crate) index: RwLock<ObjectIndex>,
    trees: Mutex<HashMap<ObjectId, Arc<Tree>>>,
    materialise_limit: u64,
    /// The directory of a local repository (for locks and scratch leases).
    local_root: Option<PathBuf>,
    /// The garbage-collection generation the index was built at.
    generation: Mutex<u64>,
    /// Decoded chunks shared by every reader of this repository.
    cache: crate::cache::ChunkCache,
    /// Checkpoints staged by `put_async`.
    staging: checkpoint::Staging,
}

/// A repository of versioned quantum states. Cheap to clone; safe to share between threads.
#[derive(Clone)]
pub struct Repository {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Repository({})", self.inner.address)
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl Repository {
    /// Create a repository at `address` with `config`, with an empty first commit on `main`.
    pub fn init(address: &str, config: RepoConfig) -> Result<Self> {
        config.check()?;
        let (storage, refs) = match Address::parse(address)? {
            Address::Memory(name) => {
                let mut reg = memory_registry().lock().unwrap_or_else(|e| e.into_inner());
                if reg.contains_key(&name) {
                    return Err(Error::RepositoryExists(address.into()));
                }
                let b: MemoryBackends = Default::default();
                reg.insert(name, b.clone());
                (b.0 as Arc<dyn Storage>, b.1 as Arc<dyn RefStore>)
            }
            Address::Local(p) => {
                if p.join(CONFIG_KEY).exists() {
                    return Err(Error::RepositoryExists(address.into()));
                }
                let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(&p)?);
                let r: Arc<dyn RefStore> = Arc::new(LocalRefStore::new(p.join("refs"))?);
                (s, r)
            }
        };
        Self::init_parts(address, storage, refs, config)
    }

    /// Create a repository on given backends (used by `init` and by remote backends).
    pub fn init_parts(
        address: &str,
        storage: Arc<dyn Storage>,
        refs: Arc<dyn RefStore>,
        config: RepoConfig,
    ) -> Result<Self> {
        let repo = Repository::assemble(address, storage, refs, config.clone());
        // The first commit and `main` come first, the config last: a repository is
        // initialised exactly when its config exists.
        let mut w = writer::ObjectWriter::new(repo.clone());
        let tree = w.put_metadata(&Tree::default())?;
        let commit = w.put_metadata(&Commit {
            parents: vec![],
            tree,
            message: "initialize repository".into(),
            author: "qstore".into(),
            time_ms: now_ms(),
            metadata: Default::default(),
        })?;
        w.flush()?;
        let main = RefName::branch(DEFAULT_BRANCH)?;
        repo.inner
            .refs
            .compare_and_swap(&main, None, Some(commit))?;
        match repo
            .inner
            .storage
            .put(CONFIG_KEY, &config.encode(), PutMode::Create)?
        {
            PutOutcome::Written => Ok(repo),
            PutOutcome::AlreadyExists => Err(Error::RepositoryExists(address.into())),
        }
    }

    /// Open an existing repository.
    pub fn open(address: &str) -> Result<Self> {
        let (storage, refs) = match Address::parse(address)? {
            Address::Memory(name) => {
                let reg = memory_registry().lock().unwrap_or_else(|e| e.into_inner());
                let b = reg
                    .get(&name)
                    .ok_or_else(|| Error::RepositoryNotFound(address.into()))?;
                (
                    b.0.clone() as Arc<dyn Storage>,
                    b.1.clone() as Arc<dyn RefStore>,
                )
            }
            Address::Local(p) => {
                if !p.join(CONFIG_KEY).is_file() {
                    return Err(Error::RepositoryNotFound(address.into()));
                }
                let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(&p)?);
                let r: Arc<dyn RefStore> = Arc::new(LocalRefStore::new(p.join("refs"))?);
                (s, r)
            }
        };
        Self::open_parts(address, storage, refs)
    }

    /// Open a repository on given backends.
    pub fn open_parts(
        address: &str,
        storage: Arc<dyn Storage>,
        refs: Arc<dyn RefStore>,
    ) -> Result<Self> {
        let bytes = match storage.get(CONFIG_KEY) {
            Ok(b) => b,
            Err(Error::BlobNotFound(_)) => return Err(Error::RepositoryNotFound(address.into())),
            Err(e) => return Err(e),
        };
        let config = RepoConfig::decode(&bytes)?;
        let repo = Repository::assemble(address, storage, refs, config);
        let g = repo.read_generation()?;
        *repo
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = g;
        repo.refresh_index()?;
        Ok(repo)
    }

    /// Open the repository, creating it with the default config if it does not exist.
    pub fn open_or_init(address: &str) -> Result<Self> {
        match Self::open(address) {
            Err(Error::RepositoryNotFound(_)) => match Self::init(address, RepoConfig::default()) {
                Err(Error::RepositoryExists(_)) => Self::open(address),
                r => r,
            },
            r => r,
        }
    }

    fn assemble(
        address: &str,
        storage: Arc<dyn Storage>,
        refs: Arc<dyn RefStore>,
        config: RepoConfig,
    ) -> Self {
        Repository {
            inner: Arc::new(Inner {
                address: address.to_string(),
                storage,
                refs,
                config,
                index: RwLock::new(ObjectIndex::default()),
                trees: Mutex::new(HashMap::new()),
                materialise_limit: DEFAULT_MATERIALISE_LIMIT,
                local_root: match Address::parse(address) {
                    Ok(Address::Local(p)) => Some(p),
                    _ => None,
                },
                generation: Mutex::new(0),
                cache: crate::cache::ChunkCache::new(
                    std::env::var("QSTORE_CACHE_BYTES")
                        .ok()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(crate::cache::DEFAULT_CACHE_BYTES),
                ),
                staging: checkpoint::Staging::new(),
            }),
        }
    }

    /// The address the repository was opened with.
    pub fn address(&self) -> &str {
        &self.inner.address
    }

    /// The repository's settings.
    pub fn config(&self) -> &RepoConfig {
        &self.inner.config
    }

    /// The blob storage.
    pub fn storage(&self) -> &dyn Storage {
        self.inner.storage.as_ref()
    }

    /// The ref store.
    pub fn ref_store(&self) -> &dyn RefStore {
        self.inner.refs.as_ref()
    }

    /// Largest dense form (bytes) a read will materialise.
    pub fn materialise_limit(&self) -> u64 {
        self.inner.materialise_limit
    }

    /// Load the indexes of packs written since the last refresh (by other processes).
    pub fn refresh_index(&self) -> Result<usize> {
        self.inner
            .index
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .refresh(self.storage())
    }

    /// Packs whose index was damaged and recovered by scanning, with the reason.
    pub fn damaged_packs(&self) -> Vec<(String, String)> {
        let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
        idx.damaged
            .iter()
            .map(|(k, v)| (k.to_hex(), v.clone()))
            .collect()
    }

    /// The directory of a local repository.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.inner.local_root.as_deref()
    }

    /// Take the repository's garbage-collection lock: shared by transactions, exclusive by
    /// `gc`, so objects are never deleted while a transaction may still refer to them. The
    /// lock is released when the file is dropped (or the process dies).
    pub(crate) fn gc_lock(&self, exclusive: bool) -> Result<Option<std::fs::File>> {
        let Some(root) = &self.inner.local_root else {
            return Ok(None);
        };
        let dir = root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let p = dir.join("gc");
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(p.display(), e))?;
        if exclusive { f.lock() } else { f.lock_shared() }
            .map_err(|e| Error::io(p.display(), e))?;
        Ok(Some(f))
    }

    fn read_generation(&self) -> Result<u64> {
        match self.storage().get(GENERATION_KEY) {
            Ok(b) => Ok(String::from_utf8_lossy(&b).trim().parse().unwrap_or(0)),
            Err(Error::BlobNotFound(_)) => Ok(0),
            Err(e) => Err(e),
        }
    }

    /// Rebuild the object index if garbage collection moved or deleted packs since it was
    /// built. Called at the start of every transaction, under the shared gc lock.
    pub(crate) fn sync_generation(&self) -> Result<()> {
        let g = self.read_generation()?;
        if *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            != g
        {
            self.reload_index()?;
            *self
                .inner
                .generation
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = g;
        }
        Ok(())
    }

    /// Record that packs were deleted or rewritten (called by `gc` under the exclusive lock).
    pub(crate) fn bump_generation(&self) -> Result<()> {
        let g = self.read_generation()? + 1;
        self.storage()
            .put(GENERATION_KEY, g.to_string().as_bytes(), PutMode::Overwrite)?;
        *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = g;
        Ok(())
    }

    /// Drop the object index and build it again from the packs present now.
    pub fn reload_index(&self) -> Result<()> {
        let mut fresh = ObjectIndex::default();
        fresh.refresh(self.storage())?;
        *self.inner.index.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.inner
            .trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(())
    }

    /// Commits whose history was cut by `expire`: their parents are not followed.
    pub fn shallow(&self) -> Result<std::collections::HashSet<ObjectId>> {
        match self.storage().get(SHALLOW_KEY) {
            Ok(b) => {
                let v: Vec<String> = serde_json::from_slice(&b)
                    .map_err(|e| Error::corrupt(SHALLOW_KEY, e.to_string()))?;
                v.iter()
                    .map(|h| {
                        ObjectId::from_hex(h)
                            .ok_or_else(|| Error::corrupt(SHALLOW_KEY, "not a commit id"))
                    })
                    .collect()
            }
            Err(Error::BlobNotFound(_)) => Ok(Default::default()),
            Err(e) => Err(e),
        }
    }

    pub(crate) fn has_object(&self, id: &ObjectId) -> bool {
        self.inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
            .is_some()
    }

    fn locate(&self, id: &ObjectId, kind: ObjectKind) -> Result<index::IndexedObject> {
        let found = self
            .inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id);
        let found = match found {
            Some(f) => Some(f),
            None => {
                self.refresh_index()?;
                self.inner
                    .index
                    .read()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(id)
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
    fn read_record(
        &self,
        loc: &crate::format::pack::Location,
        id: &ObjectId,
        kind: ObjectKind,
        out: &mut [u8],
        what: &dyn Fn() -> String,
    ) -> Result<RecordHeader> {
        let key = loc.pack.key();
        let mut hb = [0u8; RECORD_HEADER_LEN];
        self.storage()
            .read_at(&key, loc.offset, &mut hb)
            .map_err(|e| match e {
                Error::BlobNotFound(_) => Error::ObjectMissing {
                    id: id.to_hex(),
                    kind: kind.name(),
                    context: format!(" (pack {} is gone)", loc.pack),
                },
                Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof => {
                    Error::corrupt(what(), format!("pack {} is truncated", loc.pack))
                }
                e => e,
            })?;
        if hb[..4] == crate::format::record::RECORD_MAGIC && hb[5] > crate::format::OBJECT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: what(),
                version: hb[5] as u32,
                supported: crate::format::OBJECT_VERSION as u32,
            });
        }
        let h = RecordHeader::decode(&hb).map_err(|d| Error::corrupt(what(), d))?;
        if h.id != *id
            || h.kind != kind
            || h.payload_len != loc.payload_len
            || h.raw_len != out.len() as u64
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
        if h.codec == crate::codec::Codec::Raw {
            self.storage()
                .read_at(&key, payload_at, out)
                .map_err(read_err)?;
        } else {
            if h.payload_len > h.raw_len.saturating_mul(2) + 1024 {
                return Err(Error::corrupt(
                    what(),
                    "payload larger than any codec produces",
                ));
            }
            let mut payload = vec![0u8; h.payload_len as usize];
            self.storage()
                .read_at(&key, payload_at, &mut payload)
                .map_err(read_err)?;
            decode(h.codec, h.elem as usize, &payload, out)
                .map_err(|d| Error::corrupt(what(), d))?;
        }
        Ok(h)
    }

    /// Read, verify and decode a chunk into `out` (its raw length).
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
                    // The pack was rewritten by gc: the id is the truth, the location a hint.
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

    /// Read a chunk found by id in the index, rebuilt if stale (after gc rewrote its pack).
    pub(crate) fn read_chunk_by_id(&self, id: &ObjectId, out: &mut [u8]) -> Result<()> {
        let what = |o: &index::IndexedObject| {
            format!(
                "chunk {} (pack {} offset {})",
                id.short(),
                o.pack,
                o.entry.offset
            )
        };
        // The index usually knows the new location already; rebuild it only when it is stale
        // too, so a reader of many moved chunks does not rebuild it for each one.
        let mut o = self.locate(id, ObjectKind::Chunk)?;
        match self.read_record(&o.location(), id, ObjectKind::Chunk, out, &|| what(&o)) {
            Ok(_) => {}
            Err(Error::ObjectMissing { .. }) => {
                self.reload_index()?;
                o = self.locate(id, ObjectKind::Chunk)?;
                self.read_record(&o.location(), id, ObjectKind::Chunk, out, &|| what(&o))?;
            }
            Err(e) => return Err(e),
        }
        if ObjectId::of_chunk(out) != *id {
            return Err(Error::corrupt(
                what(&o),
                "hash mismatch: the stored bytes are damaged",
            ));
        }
        Ok(())
    }

    fn read_metadata<T: MetadataObject>(&self, id: &ObjectId) -> Result<T> {
        match self.read_metadata_once(id) {
            Err(Error::ObjectMissing { .. }) => {
                // Another process's gc may have rewritten the pack: rebuild the index once.
                self.reload_index()?;
                self.read_metadata_once(id)
            }
            r => r,
        }
    }

    fn read_metadata_once<T: MetadataObject>(&self, id: &ObjectId) -> Result<T> {
        let o = self.locate(id, T::KIND)?;
        let what = || format!("{} {}", T::KIND.name(), id.short());
        if o.entry.raw_len > METADATA_LIMIT {
            return Err(Error::corrupt(what(), "implausibly large"));
        }
        let mut body = vec![0u8; o.entry.raw_len as usize];
        let h = self.read_record(&o.location(), id, T::KIND, &mut body, &what)?;
        decode_object::<T>(id, h.version, &body)
    }

    /// A commit by id.
    pub fn commit(&self, id: &ObjectId) -> Result<Commit> {
        self.read_metadata(id)
    }

    /// A tree by id (cached: trees are immutable).
    pub fn tree(&self, id: &ObjectId) -> Result<Arc<Tree>> {
        if let Some(t) = self
            .inner
            .trees
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)
        {
            return Ok(t.clone());
        }
        let t = Arc::new(self.read_metadata::<Tree>(id)?);
        let mut cache = self.inner.trees.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 4096 {
            cache.clear();
        }
        cache.insert(*id, t.clone());
        Ok(t)
    }

    /// A manifest by id.
    pub fn manifest(&self, id: &ObjectId) -> Result<Manifest> {
        self.read_metadata(id)
    }

    /// The commit a ref names. Accepts a branch, a tag, a full commit id or a unique prefix
    /// of at least 6 hex characters.
    pub fn resolve(&self, spec: &str) -> Result<ObjectId> {
        if let Ok(b) = RefName::branch(spec)
            && let Some(id) = self.inner.refs.get(&b)?
        {
            return Ok(id);
        }
        if let Ok(t) = RefName::tag(spec)
            && let Some(id) = self.inner.refs.get(&t)?
        {
            return Ok(id);
        }
        if spec.len() >= 6 && spec.len() <= 64 && spec.bytes().all(|c| c.is_ascii_hexdigit()) {
            let spec_l = spec.to_ascii_lowercase();
            for attempt in 0..2 {
                let matches: Vec<ObjectId> = {
                    let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
                    idx.ids_of_kind(ObjectKind::Commit)
                        .filter(|(id, _)| id.to_hex().starts_with(&spec_l))
                        .map(|(id, _)| *id)
                        .collect()
                };
                match matches.len() {
                    1 => return Ok(matches[0]),
                    0 if attempt == 0 => {
                        self.refresh_index()?;
                    }
                    0 => break,
                    n => {
                        return Err(Error::InvalidArgument(format!(
                            "commit id prefix {spec:?} is ambiguous ({n} commits match)"
                        )));
                    }
                }
            }
        }
        Err(Error::RefNotFound(spec.into()))
    }

    /// The head commit of a branch.
    pub fn branch_head(&self, branch: &str) -> Result<ObjectId> {
        let name = RefName::branch(branch)?;
        self.inner
            .refs
            .get(&name)?
            .ok_or_else(|| Error::RefNotFound(branch.into()))
    }

    /// Create branch `name` at the commit `from` resolves to.
    pub fn create_branch(&self, name: &str, from: &str) -> Result<ObjectId> {
        self.create_ref(RefName::branch(name)?, from)
    }

    /// Create tag `name` at the commit `target` resolves to. Tags never move.
    pub fn create_tag(&self, name: &str, target: &str) -> Result<ObjectId> {
        self.create_ref(RefName::tag(name)?, target)
    }

    fn create_ref(&self, name: RefName, target: &str) -> Result<ObjectId> {
        // Shared gc lock: a gc cannot delete the target between the check and the swap.
        let _guard = self.gc_lock(false)?;
        let id = self.resolve(target)?;
        self.commit(&id)?;
        match self.inner.refs.compare_and_swap(&name, None, Some(id))? {
            CasOutcome::Swapped => Ok(id),
            CasOutcome::Mismatch { .. } => Err(Error::RefExists(name.key())),
        }
    }

    /// Delete a branch or tag (the commits stay until garbage collection).
    pub fn delete_ref(&self, name: &RefName) -> Result<()> {
        let cur = self
            .inner
            .refs
            .get(name)?
            .ok_or_else(|| Error::RefNotFound(name.key()))?;
        match self.inner.refs.compare_and_swap(name, Some(cur), None)? {
            CasOutcome::Swapped => Ok(()),
            CasOutcome::Mismatch { .. } => Err(Error::Conflict {
                branch: name.name().into(),
                theirs: "unknown".into(),
                paths: vec![],
            }),
        }
    }

    /// Every branch and tag.
    pub fn refs(&self) -> Result<Vec<(RefName, ObjectId)>> {
        self.inner.refs.list()
    }

    /// Start a transaction on `branch`, based on its current head.
    pub fn transaction(&self, branch: &str) -> Result<Transaction> {
        Transaction::begin(self.clone(), branch)
    }

    /// The node at `path` in the tree of `commit`, if any.
    pub fn node(&self, commit: &ObjectId, path: &StatePath) -> Result<Option<Node>> {
        let c = self.commit(commit)?;
        let mut tree = self.tree(&c.tree)?;
        let segs: Vec<&str> = path.segments().collect();
        for (i, seg) in segs.iter().enumerate() {
            let node = match tree.get(seg) {
                Some(n) => n.clone(),
                None => return Ok(None),
            };
            if i + 1 == segs.len() {
                return Ok(Some(node));
            }
            match node {
                Node::Tree(id) => tree = self.tree(&id)?,
                Node::State(_) => return Ok(None),
            }
        }
        Ok(None)
    }

    /// The state at `path` in the commit `spec` resolves to.
    pub fn state(&self, spec: &str, path: &str) -> Result<(ObjectId, StateEntry)> {
        let commit = self.resolve(spec)?;
        let p = StatePath::new(path)?;
        match self.node(&commit, &p)? {
            Some(Node::State(e)) => Ok((commit, *e)),
            _ => Err(Error::PathNotFound {
                path: path.into(),
                commit: commit.short(),
            }),
        }
    }

    /// A reader for the state at `path` in `spec`.
    pub fn reader(&self, spec: &str, path: &str) -> Result<StateReader> {
        let (_, entry) = self.state(spec, path)?;
        StateReader::new(self.clone(), path, entry)
    }

    /// Every state under `prefix` (or all) in `commit`, sorted by path.
    pub fn list_states(
        &self,
        commit: &ObjectId,
        prefix: Option<&str>,
    ) -> Result<Vec<(String, StateEntry)>> {
        let c = self.commit(commit)?;
        let mut out = Vec::new();
        let (start_tree, base) = match prefix {
            None => (c.tree, String::new()),
            Some(p) => {
                let sp = StatePath::new(p)?;
                match self.node(commit, &sp)? {
                    Some(Node::Tree(id)) => (id, format!("{p}/")),
                    Some(Node::State(e)) => return Ok(vec![(p.to_string(), *e)]),
                    None => {
                        return Err(Error::PathNotFound {
                            path: p.into(),
                            commit: commit.short(),
                        });
                    }
                }
            }
        };
        self.walk_tree(&start_tree, &base, &mut |p, e| {
            out.push((p.to_string(), e.clone()))
        })?;
        Ok(out)
    }

    /// Visit every state under tree `id`, whose path prefix is `base`.
    pub fn walk_tree(
        &self,
        id: &ObjectId,
        base: &str,
        f: &mut dyn FnMut(&str, &StateEntry),
    ) -> Result<()> {
        let t = self.tree(id)?;
        for e in &t.entries {
            let p = format!("{base}{}", e.name);
            match &e.node {
                Node::State(s) => f(&p, s),
                Node::Tree(sub) => self.walk_tree(sub, &format!("{p}/"), f)?,
            }
        }
        Ok(())
    }

    /// Commits from `spec` back along first parents, newest first, at most `limit`.
    pub fn log(&self, spec: &str, limit: usize) -> Result<Vec<(ObjectId, Commit)>> {
        let mut id = Some(self.resolve(spec)?);
        let shallow = self.shallow()?;
        let mut out = Vec::new();
        while let Some(c) = id {
            if out.len() >= limit {
                break;
            }
            let commit = self.commit(&c)?;
            id = if shallow.contains(&c) {
                None
            } else {
                commit.parents.first().copied()
            };
            out.push((c, commit));
        }
        Ok(out)
    }
}
