//! The API layer: [`Repository`] (open or create by address, refs, commits, paths, log,
//! reading states), with [`Transaction`] for writes, [`StateReader`] for reads and analyses,
//! and the [`diff`] and [`stats`] reports. Submodules: [`index`] (object locations through
//! the packs' sorted indexes), [`objects`] (reading and verifying records, tree nodes,
//! legacy trees, I/O counters), [`tree`] (the path tree's algorithms), [`writer`] (the chunk
//! pipeline), [`ingest`] (encodings), [`transaction`] (the commit protocol), [`merge`]
//! (automatic and explicit pack merges), [`upgrade`] (format version 1 to 2), [`reader`].

pub mod checkpoint;
pub mod diff;
pub mod drain;
pub mod fsck;
pub mod gc;
pub mod index;
pub mod ingest;
pub mod inspect;
pub mod merge;
pub mod objects;
pub mod reader;
pub mod remotes;
pub mod scratch;
pub mod stats;
pub mod transaction;
pub mod transfer;
pub mod tree;
pub mod upgrade;
pub mod upload;
pub mod writer;

pub use checkpoint::PendingCommit;
pub use drain::{Drain, DrainReport};
pub use fsck::{FsckReport, Problem};
pub use gc::{GcOptions, GcReport};
pub use ingest::{EncodingChoice, PutOptions};
pub use merge::MergeReport;
pub use objects::IoCounters;
pub use reader::StateReader;
pub use scratch::{Scratch, ScratchOptions, ScratchUsage, StateHandle};
pub use transaction::{CommitOptions, Transaction};
pub use transfer::{
    RefChange, RefSpec, RefUpdate, TransferOptions, TransferProgress, TransferReport, transfer,
};
pub use writer::PutStats;

use crate::backend::Backends;
use crate::coord::local::LocalCoordination;
use crate::coord::memory::MemoryCoordination;
use crate::coord::{Coordination, GC_LOCK, Lock, LockMode, SHALLOW_DOC};
use crate::error::{Error, Result};
use crate::format::ObjectKind;
use crate::format::commit::Commit;
use crate::format::config::{CONFIG_KEY, RefStoreInfo, RepoConfig, new_repository_id};
use crate::format::tree::StateEntry;
use crate::id::ObjectId;
use crate::path::{RefName, StatePath};
use crate::refs::{CasOutcome, RefStore};
use crate::storage::local::LocalStorage;
use crate::storage::memory::MemoryStorage;
use crate::storage::{PutMode, PutOutcome, Storage};
use index::ObjectIndex;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// The coordination a repository with `config` needs, checked against what the address
/// gave: the right kind, and a store bound to this repository's id.
fn check_ref_store(
    address: &str,
    config: &RepoConfig,
    given: Option<Arc<dyn Coordination>>,
) -> Result<Arc<dyn Coordination>> {
    match (&config.ref_store, given) {
        (None, Some(c)) if refs_beside_blobs(c.kind()) => Ok(c),
        (None, Some(c)) => Err(Error::RefStoreMismatch {
            store: c.describe(),
            detail: format!(
                "the repository at {address} keeps its refs beside its data; open it \
                 without a ref store"
            ),
        }),
        (None, None) => Err(Error::BadAddress(address.into())),
        (Some(info), None) => Err(Error::RefStoreMismatch {
            store: "(none given)".into(),
            detail: format!(
                "the repository at {address} keeps its refs in {kind} (it was created with \
                 {}); pass that ref store: refs=... in the address, --refs or QSTORE_REFS",
                info.created_with,
                kind = info.kind
            ),
        }),
        (Some(info), Some(c)) => {
            if c.kind() != info.kind {
                return Err(Error::RefStoreMismatch {
                    store: c.describe(),
                    detail: format!(
                        "the repository at {address} keeps its refs in {} (created with {})",
                        info.kind, info.created_with
                    ),
                });
            }
            c.bind(&config.repository_id, false).map_err(|e| match e {
                Error::RefStoreMismatch { store, detail } => Error::RefStoreMismatch {
                    store,
                    detail: format!(
                        "{detail}; the repository at {address} was created with {}",
                        info.created_with
                    ),
                },
                e => e,
            })?;
            Ok(c)
        }
    }
}

/// The branch `init` creates.
pub const DEFAULT_BRANCH: &str = "main";
/// Default limit on the dense size of a state read into memory or a file: 1 TiB.
pub const DEFAULT_MATERIALISE_LIMIT: u64 = 1 << 40;
/// Storage key of the garbage-collection generation counter (local repositories).
pub use crate::coord::local::GENERATION_KEY;
/// Name of the list of commits whose history was expired.
pub const SHALLOW_KEY: &str = SHALLOW_DOC;

pub use crate::backend::Address;

/// The backends of `memory://` repositories, by name, for this process.
type MemoryBackends = (Arc<MemoryStorage>, Arc<MemoryCoordination>);

fn memory_registry() -> &'static Mutex<HashMap<String, MemoryBackends>> {
    static REG: OnceLock<Mutex<HashMap<String, MemoryBackends>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Connect to the backends `address` names.
fn connect(address: &str, create: bool) -> Result<Backends> {
    match Address::parse(address)? {
        Address::Memory(name) => {
            let mut reg = memory_registry().lock().unwrap_or_else(|e| e.into_inner());
            let b = if create {
                if reg.contains_key(&name) {
                    return Err(Error::RepositoryExists(address.into()));
                }
                let b: MemoryBackends = Default::default();
                reg.insert(name, b.clone());
                b
            } else {
                reg.get(&name)
                    .cloned()
                    .ok_or_else(|| Error::RepositoryNotFound(address.into()))?
            };
            Ok(Backends {
                storage: b.0,
                coordination: Some(b.1),
            })
        }
        Address::Local(p) => {
            if create && p.join(CONFIG_KEY).exists() {
                return Err(Error::RepositoryExists(address.into()));
            }
            if !create && !p.join(CONFIG_KEY).is_file() {
                return Err(Error::RepositoryNotFound(address.into()));
            }
            let s: Arc<dyn Storage> = Arc::new(LocalStorage::new(&p)?);
            let c: Arc<dyn Coordination> = Arc::new(LocalCoordination::new(&p, s.clone())?);
            Ok(Backends {
                storage: s,
                coordination: Some(c),
            })
        }
        Address::Remote { scheme } => match crate::backend::connector(&scheme) {
            Some(c) => c.connect(address, create),
            None => Err(Error::BadAddress(address.into())),
        },
    }
}

/// True for coordination kinds that live beside the blobs (format version 2).
fn refs_beside_blobs(kind: &str) -> bool {
    matches!(kind, "local" | "memory")
}

/// The blob an `init` in progress writes first: the id it is creating (see `init_parts`).
pub const INIT_MARKER_KEY: &str = "init.json";

/// The id recorded by an init that did not finish, if any.
fn read_init_marker(storage: &Arc<dyn Storage>) -> Result<Option<String>> {
    let bytes = match storage.get(INIT_MARKER_KEY) {
        Ok(b) => b,
        Err(Error::BlobNotFound(_)) => return Ok(None),
        Err(e) => return Err(e),
    };
    let v: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::corrupt(
            INIT_MARKER_KEY,
            format!("{e} (left by an interrupted init; delete it to start over)"),
        )
    })?;
    match v.get("repository_id").and_then(|i| i.as_str()) {
        Some(id) if !id.is_empty() => Ok(Some(id.to_string())),
        _ => Err(Error::corrupt(
            INIT_MARKER_KEY,
            "no repository_id (left by an interrupted init; delete it to start over)",
        )),
    }
}

pub(crate) struct Inner {
    address: String,
    storage: Arc<dyn Storage>,
    coord: Arc<dyn Coordination>,
    config: RepoConfig,
    pub(crate) index: RwLock<ObjectIndex>,
    pub(crate) nodes: Mutex<objects::NodeCache>,
    /// Metadata this handle wrote, kept for reading back (remote storage).
    pub(crate) recent: Mutex<objects::RecentMetadata>,
    /// Metadata read ahead in bulk for a walk of the whole history (remote storage).
    pub(crate) prefetched: RwLock<objects::RecentMetadata>,
    pub(crate) counters: objects::Counters,
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
    /// A fresh repository id is assigned when the config has none.
    pub fn init(address: &str, config: RepoConfig) -> Result<Self> {
        config.check()?;
        let b = connect(address, true)?;
        let coord = b.coordination.ok_or_else(|| Error::RefStoreMismatch {
            store: "(none given)".into(),
            detail: format!(
                "a repository at {address} keeps its refs in a separate ref store: add \
                 refs=etcd://HOST:PORT/PREFIX to the address (or pass --refs / QSTORE_REFS)"
            ),
        })?;
        Self::init_parts(address, b.storage, coord, config)
    }

    /// Create a repository on given backends (used by `init` and by remote backends).
    pub fn init_parts(
        address: &str,
        storage: Arc<dyn Storage>,
        coord: Arc<dyn Coordination>,
        mut config: RepoConfig,
    ) -> Result<Self> {
        config.check()?;
        if config.format_version != crate::format::config::REPO_FORMAT_VERSION {
            return Err(Error::InvalidArgument(format!(
                "this build creates repositories of format version {} only",
                crate::format::config::REPO_FORMAT_VERSION
            )));
        }
        let generated = config.repository_id.is_empty();
        if generated {
            config.repository_id = new_repository_id();
        }
        if !refs_beside_blobs(coord.kind()) {
            config.ref_store = Some(RefStoreInfo {
                kind: coord.kind().into(),
                created_with: coord.describe(),
            });
        }
        match storage.get(CONFIG_KEY) {
            Ok(_) => return Err(Error::RepositoryExists(address.into())),
            Err(Error::BlobNotFound(_)) => {}
            Err(e) => return Err(e),
        }
        // The id being created is recorded beside the blobs before the ref store is claimed:
        // an init killed after claiming it (before the config landed) is completed by the
        // next init of the same location with the same id, instead of finding its ref store
        // held by a repository that never came to be.
        let resuming = match read_init_marker(&storage)? {
            Some(id) if generated || id == config.repository_id => {
                config.repository_id = id;
                true
            }
            _ => {
                let marker = serde_json::json!({ "repository_id": config.repository_id });
                storage.put(
                    INIT_MARKER_KEY,
                    marker.to_string().as_bytes(),
                    PutMode::Overwrite,
                )?;
                false
            }
        };
        // The ref store is claimed first: of two inits racing on one ref store, one wins
        // here, whatever the object store does with conditional writes.
        coord.bind(&config.repository_id, true)?;
        let repo = Repository::assemble(address, storage, coord, config.clone());
        // The first commit and `main` come first, the config last: a repository is
        // initialised exactly when its config exists.
        let mut w = writer::ObjectWriter::new(repo.clone());
        let tree = w.put_metadata(&tree::empty())?;
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
        match repo
            .ref_store()
            .compare_and_swap(&main, None, Some(commit))?
        {
            CasOutcome::Swapped => {}
            // The interrupted init had created `main` (its first commit is stored: packs
            // land before refs name them).
            CasOutcome::Mismatch { actual: Some(_) } if resuming => {}
            CasOutcome::Mismatch { .. } => return Err(Error::RepositoryExists(address.into())),
        }
        match repo
            .inner
            .storage
            .put(CONFIG_KEY, &config.encode(), PutMode::Create)?
        {
            PutOutcome::Written => {
                // Best effort: once the config exists the marker means nothing.
                let _ = repo.inner.storage.delete(INIT_MARKER_KEY);
                Ok(repo)
            }
            PutOutcome::AlreadyExists => Err(Error::RepositoryExists(address.into())),
        }
    }

    /// Open an existing repository.
    pub fn open(address: &str) -> Result<Self> {
        let b = connect(address, false)?;
        Self::open_backends(address, b)
    }

    /// Open a repository on given backends.
    pub fn open_parts(
        address: &str,
        storage: Arc<dyn Storage>,
        coord: Arc<dyn Coordination>,
    ) -> Result<Self> {
        Self::open_backends(
            address,
            Backends {
                storage,
                coordination: Some(coord),
            },
        )
    }

    fn open_backends(address: &str, b: Backends) -> Result<Self> {
        let bytes = match b.storage.get(CONFIG_KEY) {
            Ok(b) => b,
            Err(Error::BlobNotFound(_)) => return Err(Error::RepositoryNotFound(address.into())),
            Err(e) => return Err(e),
        };
        let config = RepoConfig::decode(&bytes)?;
        let coord = check_ref_store(address, &config, b.coordination)?;
        let repo = Repository::assemble(address, b.storage, coord, config);
        let g = repo.inner.coord.generation()?;
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
        coord: Arc<dyn Coordination>,
        config: RepoConfig,
    ) -> Self {
        Repository {
            inner: Arc::new(Inner {
                address: address.to_string(),
                storage,
                coord,
                config,
                index: RwLock::new(ObjectIndex::default()),
                nodes: Mutex::new(Default::default()),
                recent: Mutex::new(Default::default()),
                prefetched: RwLock::new(Default::default()),
                counters: Default::default(),
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
        self.inner.coord.refs()
    }

    /// The coordination (refs, locks, counters).
    pub fn coordination(&self) -> &dyn Coordination {
        self.inner.coord.as_ref()
    }

    /// Largest dense form (bytes) a read will materialise.
    pub fn materialise_limit(&self) -> u64 {
        self.inner.materialise_limit
    }

    /// Refuse a change to a repository of an older format (read-only until upgraded).
    pub(crate) fn check_writable(&self) -> Result<()> {
        if self.inner.config.read_only() {
            return Err(Error::ReadOnlyFormat {
                address: self.inner.address.clone(),
                version: self.inner.config.format_version,
            });
        }
        Ok(())
    }

    /// Synchronise the object index with the packs present now (written, merged or deleted
    /// by other processes); returns how many packs were listed that it did not know (some
    /// may have vanished before their index was opened).
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
    /// lock is released when the guard is dropped (or the holder dies).
    pub(crate) fn gc_lock(&self, exclusive: bool) -> Result<Lock> {
        let mode = if exclusive {
            LockMode::Exclusive
        } else {
            LockMode::Shared
        };
        self.inner.coord.lock(GC_LOCK, mode)
    }

    /// The generation this handle's object index was built at.
    pub(crate) fn known_generation(&self) -> u64 {
        *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Rebuild the object index if garbage collection deleted objects since it was built,
    /// otherwise synchronise it with the packs present. Called at the start of every
    /// transaction, under the shared gc lock.
    pub(crate) fn sync_generation(&self) -> Result<()> {
        let g = self.inner.coord.generation()?;
        if *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            != g
        {
            // gc deleted or rewrote packs: forget those (refresh lists what is present), and
            // the tree nodes read through them.
            self.refresh_index()?;
            self.clear_node_cache();
            *self
                .inner
                .generation
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = g;
        } else {
            // Packs merged away by other processes are forgotten (and their space freed).
            self.refresh_index()?;
        }
        Ok(())
    }

    /// Record that objects are about to be deleted (called by `gc` under the exclusive lock,
    /// before it deletes anything): every transaction that began earlier fails its commit.
    pub(crate) fn bump_generation(&self) -> Result<()> {
        let g = self.inner.coord.bump_generation()?;
        *self
            .inner
            .generation
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = g;
        Ok(())
    }

    /// Drop the object index and the node cache and open the packs present now again.
    pub fn reload_index(&self) -> Result<()> {
        let mut fresh = ObjectIndex::default();
        fresh.refresh(self.storage())?;
        *self.inner.index.write().unwrap_or_else(|e| e.into_inner()) = fresh;
        self.clear_node_cache();
        Ok(())
    }

    /// Commits whose history was cut by `expire`: their parents are not followed.
    pub fn shallow(&self) -> Result<std::collections::HashSet<ObjectId>> {
        match self.inner.coord.document(SHALLOW_DOC)? {
            Some(b) => {
                let v: Vec<String> = serde_json::from_slice(&b)
                    .map_err(|e| Error::corrupt(SHALLOW_DOC, e.to_string()))?;
                v.iter()
                    .map(|h| {
                        ObjectId::from_hex(h)
                            .ok_or_else(|| Error::corrupt(SHALLOW_DOC, "not a commit id"))
                    })
                    .collect()
            }
            None => Ok(Default::default()),
        }
    }

    /// The commit a ref names. Accepts a branch, a tag, a full commit id or a unique prefix
    /// of at least 6 hex characters.
    pub fn resolve(&self, spec: &str) -> Result<ObjectId> {
        if let Ok(b) = RefName::branch(spec)
            && let Some(id) = self.ref_store().get(&b)?
        {
            return Ok(id);
        }
        if let Ok(t) = RefName::tag(spec)
            && let Some(id) = self.ref_store().get(&t)?
        {
            return Ok(id);
        }
        if spec.len() >= 6 && spec.len() <= 64 && spec.bytes().all(|c| c.is_ascii_hexdigit()) {
            let spec_l = spec.to_ascii_lowercase();
            for attempt in 0..2 {
                let matches: Vec<ObjectId> = {
                    let idx = self.inner.index.read().unwrap_or_else(|e| e.into_inner());
                    idx.with_hex_prefix(&spec_l)
                        .into_iter()
                        .filter(|o| o.entry.kind == ObjectKind::Commit)
                        .map(|o| o.entry.id)
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
        self.ref_store()
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
        self.check_writable()?;
        // Shared gc lock: a gc cannot delete the target between the check and the swap.
        let _guard = self.gc_lock(false)?;
        let generation = self.inner.coord.generation()?;
        let id = self.resolve(target)?;
        self.commit(&id)?;
        match self
            .inner
            .coord
            .compare_and_swap_at(&name, None, Some(id), generation)?
        {
            CasOutcome::Swapped => Ok(id),
            CasOutcome::Mismatch { .. } => Err(Error::RefExists(name.key())),
        }
    }

    /// Delete a branch or tag (the commits stay until garbage collection).
    pub fn delete_ref(&self, name: &RefName) -> Result<()> {
        self.check_writable()?;
        let cur = self
            .ref_store()
            .get(name)?
            .ok_or_else(|| Error::RefNotFound(name.key()))?;
        match self.ref_store().compare_and_swap(name, Some(cur), None)? {
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
        self.ref_store().list()
    }

    /// Start a transaction on `branch`, based on its current head.
    pub fn transaction(&self, branch: &str) -> Result<Transaction> {
        Transaction::begin(self.clone(), branch)
    }

    /// The root of the path tree of `commit`.
    pub fn root_of(&self, commit: &ObjectId) -> Result<ObjectId> {
        let c = self.commit(commit)?;
        self.tree_root(&c.tree)
    }

    /// The state at `path` in `commit`, if any (reads one tree node per level).
    pub fn entry_at(&self, commit: &ObjectId, path: &StatePath) -> Result<Option<StateEntry>> {
        let root = self.root_of(commit)?;
        tree::get(self, &root, path.as_str())
    }

    /// True when `commit` holds states below `path` (`path` is a directory).
    pub fn is_dir(&self, commit: &ObjectId, path: &StatePath) -> Result<bool> {
        tree::has_below(self, &self.root_of(commit)?, path.as_str())
    }

    /// The state at `path` in the commit `spec` resolves to.
    pub fn state(&self, spec: &str, path: &str) -> Result<(ObjectId, StateEntry)> {
        let commit = self.resolve(spec)?;
        let p = StatePath::new(path)?;
        match self.entry_at(&commit, &p)? {
            Some(e) => Ok((commit, e)),
            None => Err(Error::PathNotFound {
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

    /// Every state at or under `prefix` (or all) in `commit`, sorted by path (byte order).
    pub fn list_states(
        &self,
        commit: &ObjectId,
        prefix: Option<&str>,
    ) -> Result<Vec<(String, StateEntry)>> {
        let mut out = Vec::new();
        self.for_each_state(commit, prefix, &mut |p, e| {
            out.push((p.to_string(), e.clone()));
            true
        })?;
        Ok(out)
    }

    /// Visit every state at or under `prefix` (or all) in `commit`, in path order, reading
    /// only the tree nodes that hold them; `f` returns false to stop. A prefix that is
    /// neither a state nor a directory is [`Error::PathNotFound`].
    pub fn for_each_state(
        &self,
        commit: &ObjectId,
        prefix: Option<&str>,
        f: &mut dyn FnMut(&str, &StateEntry) -> bool,
    ) -> Result<()> {
        let root = self.root_of(commit)?;
        let Some(p) = prefix else {
            return tree::scan(self, &root, "", None, f);
        };
        let sp = StatePath::new(p)?;
        if let Some(e) = tree::get(self, &root, sp.as_str())? {
            f(p, &e);
            return Ok(());
        }
        let (lo, hi) = tree::dir_range(sp.as_str());
        let mut any = false;
        tree::scan(self, &root, &lo, Some(&hi), &mut |k, e| {
            any = true;
            f(k, e)
        })?;
        if !any {
            return Err(Error::PathNotFound {
                path: p.into(),
                commit: commit.short(),
            });
        }
        Ok(())
    }

    /// The number of states in `commit` (read from the root node).
    pub fn state_count(&self, commit: &ObjectId) -> Result<u64> {
        let root = self.root_of(commit)?;
        Ok(self.tree_node(&root)?.states())
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
