//! [`Transaction`]: puts and deletes of many paths, made visible together by one commit.
//!
//! The commit protocol lives here, in [`Transaction::commit`], and nowhere else:
//! 1. every new object (chunks, manifests, trees, the commit) is appended to this
//!    transaction's own pack files, which are made durable (fsync, rename, fsync directory);
//! 2. then the branch ref is moved by compare-and-swap from the commit the transaction was
//!    based on to the new commit; the swap is durable before `commit` returns.
//!
//! If the branch moved meanwhile, the changes of the commits in between are compared with
//! ours: disjoint paths are rebased onto the new head and retried automatically; overlapping
//! paths fail with [`Error::Conflict`]. A crash at any point leaves at most unreferenced
//! objects, never a ref to something missing. Once the branch has moved, small packs are
//! merged if there are enough of them ([`Repository::auto_merge`]); the commit is already
//! durable and visible by then.

use super::Repository;
use super::ingest::{PutOptions, ingest_dense, ingest_sparse, ingest_sparse_wide};
use super::scratch::{SCRATCH_PACK, StateHandle};
use super::tree;
use super::writer::{ObjectWriter, PutStats};
use crate::coord::Lock;
use crate::error::{Error, Result};
use crate::format::commit::Commit;
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::tree::{ItemValue, StateEntry};
use crate::id::ObjectId;
use crate::path::{RefName, StatePath};
use crate::refs::CasOutcome;
use crate::state::input::{ArrayInfo, DenseSource, SliceSource};
use crate::state::sparse::{SparseInput, WideSparseInput};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Message, author and metadata of a commit.
#[derive(Clone, Debug, Default)]
pub struct CommitOptions {
    pub message: String,
    pub author: String,
    pub metadata: BTreeMap<String, String>,
}

const MAX_ATTEMPTS: u32 = 10_000;

/// A set of changes to one branch, committed atomically.
pub struct Transaction {
    repo: Repository,
    branch: RefName,
    base: ObjectId,
    changes: BTreeMap<StatePath, Option<StateEntry>>,
    writer: ObjectWriter,
    stats: PutStats,
    /// The gc generation the transaction started at: its ref swap is conditional on it.
    generation: u64,
    /// Shared gc lock, held for the transaction's life (released before the pack merge that
    /// may follow a commit, which takes its own: a nested shared request would wait behind a
    /// waiting gc that waits for this one).
    gc_guard: Option<Lock>,
}

impl Transaction {
    pub(crate) fn begin(repo: Repository, branch: &str) -> Result<Self> {
        repo.check_writable()?;
        let guard = repo.gc_lock(false)?;
        repo.sync_generation()?;
        let generation = repo.known_generation();
        let base = repo.branch_head(branch)?;
        Ok(Transaction {
            writer: ObjectWriter::new(repo.clone()),
            repo,
            branch: RefName::branch(branch)?,
            base,
            changes: BTreeMap::new(),
            stats: PutStats::default(),
            generation,
            gc_guard: Some(guard),
        })
    }

    /// The commit this transaction started from.
    pub fn base(&self) -> ObjectId {
        self.base
    }

    /// Counters of every put so far.
    pub fn stats(&self) -> PutStats {
        self.stats
    }

    /// The transaction's object writer (for states assembled outside `put`, see
    /// [`super::upload`]).
    pub(crate) fn writer(&mut self) -> &mut ObjectWriter {
        &mut self.writer
    }

    /// Record a state whose chunks and manifest the caller wrote through [`Self::writer`].
    pub(crate) fn record_prepared(
        &mut self,
        path: &str,
        entry: StateEntry,
        stats: PutStats,
    ) -> Result<StateEntry> {
        let p = StatePath::new(path)?;
        Ok(self.record(p, entry, stats))
    }

    fn record(&mut self, path: StatePath, entry: StateEntry, stats: PutStats) -> StateEntry {
        self.stats.add(&stats);
        self.changes.insert(path, Some(entry.clone()));
        entry
    }

    /// Store a dense array held in memory (C order, little-endian).
    pub fn put(
        &mut self,
        path: &str,
        info: &ArrayInfo,
        data: &[u8],
        opts: &PutOptions,
    ) -> Result<StateEntry> {
        self.put_source(path, info, &SliceSource(data), opts)
    }

    /// Store a dense array read from a source (a file region, a generator).
    pub fn put_source(
        &mut self,
        path: &str,
        info: &ArrayInfo,
        src: &dyn DenseSource,
        opts: &PutOptions,
    ) -> Result<StateEntry> {
        let p = StatePath::new(path)?;
        let (entry, manifest, stats) =
            ingest_dense(&mut self.writer, info, src, opts).map_err(|e| e.at_path(path))?;
        self.writer.put_metadata(&manifest)?;
        Ok(self.record(p, entry, stats))
    }

    /// Store a sparse state vector (basis index -> amplitude).
    pub fn put_sparse(
        &mut self,
        path: &str,
        input: &SparseInput<'_>,
        opts: &PutOptions,
    ) -> Result<StateEntry> {
        let p = StatePath::new(path)?;
        let (entry, manifest, stats) =
            ingest_sparse(&mut self.writer, input, opts).map_err(|e| e.at_path(path))?;
        self.writer.put_metadata(&manifest)?;
        Ok(self.record(p, entry, stats))
    }

    /// Store a sparse state vector of up to 1024 qubits, its basis indices given as
    /// little-endian u64 words (`ceil(n / 64)` per index, least significant first). States
    /// of more than 58 qubits have no dense form: read them with
    /// [`crate::StateReader::read_sparse_wide`].
    pub fn put_sparse_wide(
        &mut self,
        path: &str,
        input: &WideSparseInput<'_>,
        opts: &PutOptions,
    ) -> Result<StateEntry> {
        let p = StatePath::new(path)?;
        let (entry, manifest, stats) =
            ingest_sparse_wide(&mut self.writer, input, opts).map_err(|e| e.at_path(path))?;
        self.writer.put_metadata(&manifest)?;
        Ok(self.record(p, entry, stats))
    }

    /// Commit a state held in a scratch space under `path`. Its encoded chunks are copied as
    /// they are (no re-chunking, re-hashing or re-compressing); chunks the repository already
    /// has are not copied at all.
    pub fn put_from_scratch(&mut self, path: &str, handle: &StateHandle) -> Result<StateEntry> {
        let p = StatePath::new(path)?;
        let (scratch, mut entry, manifest) = handle.parts()?;
        let mut stats = PutStats::default();
        let mut chunks = Vec::with_capacity(manifest.chunks.len());
        for (i, c) in manifest.chunks.iter().enumerate() {
            stats.chunks += 1;
            let ChunkRef::Stored { id, location, .. } = c else {
                stats.zero_chunks += 1;
                chunks.push(*c);
                continue;
            };
            if location.pack != SCRATCH_PACK {
                chunks.push(*c);
                continue;
            }
            if let Some((location, codec)) = self.writer.known_chunk(id) {
                stats.dedup_chunks += 1;
                chunks.push(ChunkRef::Stored {
                    id: *id,
                    codec,
                    location,
                });
                continue;
            }
            let (header, payload) = scratch.record(id)?;
            debug_assert_eq!(header.raw_len, manifest.chunk_len(i));
            let location = self.writer.append(&header, &payload)?;
            stats.new_chunks += 1;
            stats.new_raw_bytes += header.raw_len;
            stats.new_stored_bytes += header.payload_len;
            stats.codec_counts[header.codec as usize] += 1;
            chunks.push(ChunkRef::Stored {
                id: *id,
                codec: header.codec,
                location,
            });
        }
        let m = Manifest {
            chunk_size: manifest.chunk_size,
            stream_len: manifest.stream_len,
            chunks,
        };
        entry.manifest = self.writer.put_metadata(&m)?;
        Ok(self.record(p, entry, stats))
    }

    /// Put the state at `from_path` of `from_spec` under `to_path` too, without copying data.
    pub fn copy(&mut self, from_spec: &str, from_path: &str, to_path: &str) -> Result<StateEntry> {
        let p = StatePath::new(to_path)?;
        let (_, entry) = self.repo.state(from_spec, from_path)?;
        Ok(self.record(p, entry, PutStats::default()))
    }

    /// Delete the state or directory at `path`.
    pub fn delete(&mut self, path: &str) -> Result<()> {
        let p = StatePath::new(path)?;
        self.changes.retain(|q, _| !(q.overlaps(&p) && q != &p));
        if matches!(self.changes.get(&p), Some(Some(_)))
            && self.repo.entry_at(&self.base, &p)?.is_none()
            && !self.repo.is_dir(&self.base, &p)?
        {
            // Put earlier in this transaction only: forget the put.
            self.changes.remove(&p);
        } else {
            self.changes.insert(p, None);
        }
        Ok(())
    }

    /// Paths changed so far.
    pub fn changed_paths(&self) -> Vec<String> {
        self.changes.keys().map(|p| p.to_string()).collect()
    }

    /// Commit: make every object durable, then move the branch (rebasing over concurrent
    /// commits to other paths). Returns the new commit id.
    pub fn commit(mut self, opts: CommitOptions) -> Result<ObjectId> {
        if opts.metadata.keys().any(String::is_empty) {
            return Err(Error::InvalidArgument("empty metadata key".into()));
        }
        let mut base = self.base;
        let mut backoff_us = 200u64;
        for _ in 0..MAX_ATTEMPTS {
            let base_commit = self.repo.commit(&base)?;
            let base_root = self.repo.tree_root(&base_commit.tree)?;
            store_computed(&self.repo, &mut self.writer, &base_root)?;
            let tree = apply_changes(&self.repo, &mut self.writer, &base_root, &self.changes)?;
            let commit = Commit {
                parents: vec![base],
                tree,
                message: opts.message.clone(),
                author: opts.author.clone(),
                time_ms: super::now_ms(),
                metadata: opts.metadata.clone(),
            };
            let id = self.writer.put_metadata(&commit)?;
            self.writer.flush()?;
            match self.swap(base, id)? {
                CasOutcome::Swapped => {
                    drop(self.gc_guard.take());
                    // Best effort: the commit is durable and visible; a merge that fails
                    // leaves every pack as it was and is retried after a later commit.
                    let _ = self.repo.auto_merge();
                    return Ok(id);
                }
                CasOutcome::Mismatch { actual: None } => {
                    return Err(Error::RefNotFound(self.branch.name().into()));
                }
                CasOutcome::Mismatch { actual: Some(head) } => {
                    let head_commit = self.repo.commit(&head)?;
                    let head_root = self.repo.tree_root(&head_commit.tree)?;
                    let theirs = tree::diff(&self.repo, &base_root, &head_root)?;
                    let overlap: Vec<String> = theirs
                        .iter()
                        .filter_map(|d| {
                            let p = StatePath::new(&d.path).ok()?;
                            self.changes
                                .keys()
                                .any(|q| q.overlaps(&p))
                                .then(|| d.path.clone())
                        })
                        .collect();
                    if !overlap.is_empty() {
                        return Err(Error::Conflict {
                            branch: self.branch.name().into(),
                            theirs: head.short(),
                            paths: overlap,
                        });
                    }
                    base = head;
                    let jitter = rand::random::<u64>() % backoff_us;
                    std::thread::sleep(Duration::from_micros(jitter));
                    backoff_us = (backoff_us * 2).min(50_000);
                }
            }
        }
        Err(Error::Conflict {
            branch: self.branch.name().into(),
            theirs: "many".into(),
            paths: vec![format!("gave up after {MAX_ATTEMPTS} attempts")],
        })
    }
}

impl Transaction {
    /// Move the branch from `base` to `id`, conditional on the gc generation. A request whose
    /// reply was lost (the store unavailable) is repeated, and finding the branch already at
    /// `id` (this commit's own id: it names this transaction's time and content) is success,
    /// so a retried swap never reports a landed commit as someone else's.
    fn swap(&self, base: ObjectId, id: ObjectId) -> Result<CasOutcome> {
        let coord = self.repo.coordination();
        let mut retried = false;
        let mut backoff = Duration::from_millis(50);
        let mut attempts = 0u32;
        loop {
            match coord.compare_and_swap_at(&self.branch, Some(base), Some(id), self.generation) {
                Ok(CasOutcome::Mismatch { actual: Some(h) }) if h == id => {
                    return Ok(CasOutcome::Swapped);
                }
                Ok(o) => return Ok(o),
                Err(Error::LeaseLost { .. })
                    if retried && coord.refs().get(&self.branch)? == Some(id) =>
                {
                    return Ok(CasOutcome::Swapped);
                }
                Err(e @ Error::Unavailable { .. }) => {
                    attempts += 1;
                    if attempts > SWAP_RETRIES {
                        return Err(e);
                    }
                    retried = true;
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

/// How often a ref swap is repeated while its store is unavailable.
const SWAP_RETRIES: u32 = 20;

/// Store the nodes of a tree computed from a legacy (version-1) tree, so a commit can build
/// on it; nothing to do for a stored tree.
fn store_computed(repo: &Repository, w: &mut ObjectWriter, root: &ObjectId) -> Result<()> {
    let Some(n) = repo.computed_node(root) else {
        return Ok(());
    };
    let mut stack = vec![n];
    while let Some(n) = stack.pop() {
        for it in &n.items {
            if let ItemValue::Child { id, .. } = &it.value
                && let Some(c) = repo.computed_node(id)
            {
                stack.push(c);
            }
        }
        w.put_metadata(&*n)?;
    }
    Ok(())
}

/// The proper ancestors of a path: `a`, `a/b` for `a/b/c`.
fn ancestors(p: &str) -> impl Iterator<Item = &str> {
    p.match_indices('/').map(move |(i, _)| &p[..i])
}

/// Build the tree that results from applying `changes` to the tree `root`; returns its id.
/// The path rules are checked against `root`: a state cannot be put where a directory is or
/// below a state, a deleted path must exist (a directory delete removes every state below
/// it), and one transaction cannot change a path and paths below it.
fn apply_changes(
    repo: &Repository,
    w: &mut ObjectWriter,
    root: &ObjectId,
    changes: &BTreeMap<StatePath, Option<StateEntry>>,
) -> Result<ObjectId> {
    for p in changes.keys() {
        if let Some(a) = ancestors(p.as_str()).find(|a| {
            StatePath::new(a)
                .map(|a| changes.contains_key(&a))
                .unwrap_or(false)
        }) {
            return Err(Error::InvalidPath {
                path: a.to_string(),
                reason: "this transaction also changes paths below it".into(),
            });
        }
    }
    let mut is_state: HashMap<String, bool> = HashMap::new();
    let mut edits: BTreeMap<String, Option<StateEntry>> = BTreeMap::new();
    for (p, e) in changes {
        match e {
            Some(entry) => {
                for a in ancestors(p.as_str()) {
                    let state = match is_state.get(a) {
                        Some(s) => *s,
                        None => {
                            let s = tree::get(repo, root, a)?.is_some();
                            is_state.insert(a.to_string(), s);
                            s
                        }
                    };
                    if state {
                        return Err(Error::InvalidPath {
                            path: p.to_string(),
                            reason: format!("{a} is a state, not a directory"),
                        });
                    }
                }
                if tree::has_below(repo, root, p.as_str())? {
                    return Err(Error::InvalidPath {
                        path: p.to_string(),
                        reason: "it is a directory; delete it first".into(),
                    });
                }
                edits.insert(p.to_string(), Some(entry.clone()));
            }
            None => {
                if tree::get(repo, root, p.as_str())?.is_some() {
                    edits.insert(p.to_string(), None);
                    continue;
                }
                let keys = tree::keys_below(repo, root, p.as_str())?;
                if keys.is_empty() {
                    return Err(Error::PathNotFound {
                        path: p.to_string(),
                        commit: "the transaction's base".into(),
                    });
                }
                edits.extend(keys.into_iter().map(|k| (k, None)));
            }
        }
    }
    tree::edit(repo, w, root, edits)
}
