//! Moving history between repositories: [`transfer`] copies the commits behind some refs of
//! one repository, with their trees, manifests and chunks, into another and moves the refs
//! there. `qstore clone`, `push`, `pull` and the background drain of `qstore run` are built
//! on it; any two repositories will do (a path, `memory://`, `s3://`).
//!
//! What is sent: the source's commits are walked from the refs being sent back to the
//! commits the destination's refs reach (below those, the destination has everything: gc
//! keeps what refs reach). The trees of the new commits are walked too, pruned at the nodes
//! and manifests of those reached commits' trees, and every object met that the destination
//! lacks (looked up in its pack indexes) is copied. An object the destination holds that no
//! ref of it reaches is not sent again but is still descended, since gc may have taken its
//! children. Records are copied as stored (still compressed), each checked on the way (its
//! decoded bytes must hash to its id), read in parallel and appended to new packs in
//! batches while the next batch is read.
//!
//! Safety, like a transaction's: the destination's shared gc lock is held from the first
//! lookup to the last ref swap, and the refs move by compare-and-swap conditional on the gc
//! generation, so nothing the transfer found present can be collected before a ref names
//! it. Every pack is durable before any ref moves: a transfer killed at any point leaves the
//! destination valid (at most some objects no ref names yet, which gc reclaims after its
//! grace period), and the next run finds what arrived and does not send it again. A branch
//! moves only forward (the destination's commit must be an ancestor of the one sent) and a
//! tag never changes, unless forced; a ref that moved on the destination meanwhile is never
//! overwritten.

use super::Repository;
use super::writer::ObjectWriter;
use crate::error::{Error, Result};
use crate::format::ObjectKind;
use crate::format::commit::Commit;
use crate::format::manifest::ChunkRef;
use crate::id::ObjectId;
use crate::path::RefName;
use crate::refs::CasOutcome;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// One ref to send: `src` in the source becomes `dst` in the destination.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefSpec {
    pub src: RefName,
    pub dst: RefName,
}

impl RefSpec {
    /// Parse `NAME` or `SRC:DST` against the source repository: a branch of that name, else
    /// a tag; the destination ref is of the same kind.
    pub fn parse(source: &Repository, spec: &str) -> Result<RefSpec> {
        let (a, b) = match spec.split_once(':') {
            Some((a, b)) => (a, b),
            None => (spec, spec),
        };
        if let Ok(br) = RefName::branch(a)
            && source.ref_store().get(&br)?.is_some()
        {
            return Ok(RefSpec {
                src: br,
                dst: RefName::branch(b)?,
            });
        }
        if let Ok(t) = RefName::tag(a)
            && source.ref_store().get(&t)?.is_some()
        {
            return Ok(RefSpec {
                src: t,
                dst: RefName::tag(b)?,
            });
        }
        Err(Error::RefNotFound(format!("{a} (in {})", source.address())))
    }

    /// Every branch and tag of the source, under the same names.
    pub fn all(source: &Repository) -> Result<Vec<RefSpec>> {
        Ok(source
            .refs()?
            .into_iter()
            .map(|(r, _)| RefSpec {
                src: r.clone(),
                dst: r,
            })
            .collect())
    }
}

/// Options of [`transfer`].
#[derive(Default)]
pub struct TransferOptions<'a> {
    /// Move refs even when that drops commits the destination had (a branch that is not a
    /// fast-forward) or changes a tag. A ref that moved during the transfer is still refused.
    pub force: bool,
    /// Called as records are copied.
    pub progress: Option<&'a (dyn Fn(&TransferProgress) + Sync)>,
}

/// How far a transfer is.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TransferProgress {
    pub objects_done: u64,
    pub objects_total: u64,
    pub bytes_done: u64,
    pub bytes_total: u64,
}

/// What happened to one ref.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefChange {
    /// The destination already had it.
    UpToDate,
    /// Created on the destination.
    Created,
    /// Moved forward.
    FastForward,
    /// Moved where a fast-forward was not possible (`force`).
    Forced,
}

/// One ref moved (or found up to date) by a transfer.
#[derive(Clone, Debug, Serialize)]
pub struct RefUpdate {
    /// `branch` or `tag`.
    pub kind: &'static str,
    pub name: String,
    pub old: Option<String>,
    pub new: String,
    pub change: RefChange,
}

/// What a transfer did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TransferReport {
    pub source: String,
    pub destination: String,
    /// Commits the destination lacked, sent.
    pub commits_sent: u64,
    /// Objects copied (commits, tree nodes, manifests, chunks).
    pub objects_sent: u64,
    /// Chunks copied.
    pub chunks_sent: u64,
    /// Bytes of the records copied (as stored: compressed).
    pub bytes_sent: u64,
    /// Objects the walk met that the destination already held.
    pub objects_present: u64,
    /// Packs written on the destination.
    pub packs_written: u64,
    pub refs: Vec<RefUpdate>,
}

/// Records read (and checked) in one batch while the previous batch is written.
const BATCH_BYTES: u64 = 32 << 20;
/// The largest pack a transfer writes (smaller than a repository's usual target: what a
/// killed transfer had sent is kept pack by pack).
const TRANSFER_PACK_BYTES: u64 = 64 << 20;
/// Commits walked before the source's metadata is read ahead in bulk (remote storage).
const DEEP_WALK: usize = 8;
/// How often a ref swap is repeated while the destination's ref store is unavailable.
const SWAP_RETRIES: u32 = 20;

struct Plan {
    spec: RefSpec,
    new: ObjectId,
    old: Option<ObjectId>,
    change: RefChange,
}

/// Copy what `specs` name from `src` to `dst` and move the refs (see the module docs).
pub fn transfer(
    src: &Repository,
    dst: &Repository,
    specs: &[RefSpec],
    opts: &TransferOptions<'_>,
) -> Result<TransferReport> {
    dst.check_writable()?;
    let guard = dst.gc_lock(false)?;
    dst.sync_generation()?;
    let generation = dst.known_generation();
    let mut report = TransferReport {
        source: src.address().to_string(),
        destination: dst.address().to_string(),
        ..Default::default()
    };
    let mut plans = Vec::new();
    for spec in specs {
        let new = src.ref_store().get(&spec.src)?.ok_or_else(|| {
            Error::RefNotFound(format!("{} (in {})", spec.src.name(), src.address()))
        })?;
        let old = dst.ref_store().get(&spec.dst)?;
        plans.push(Plan {
            spec: spec.clone(),
            new,
            old,
            change: RefChange::UpToDate,
        });
    }

    // The commits to send, parents before children.
    let mut walk = CommitWalk::new(src, dst)?;
    for p in &plans {
        walk.from(p.new)?;
    }

    // Each ref must move forward (or be forced).
    for p in &mut plans {
        let what = ref_kind(&p.spec.dst);
        p.change = match p.old {
            None => RefChange::Created,
            Some(o) if o == p.new => RefChange::UpToDate,
            Some(o) => {
                let forward =
                    what == "branch" && (walk.is_ancestor(o, p.new)? || is_empty_root(dst, &o)?);
                match (forward, opts.force) {
                    (true, _) => RefChange::FastForward,
                    (false, true) => RefChange::Forced,
                    (false, false) => {
                        return Err(Error::NotFastForward {
                            what,
                            name: p.spec.dst.name().to_string(),
                            destination: dst.address().to_string(),
                            detail: if what == "tag" {
                                format!(
                                    "the tag names commit {} there, not {}; tags do not move \
                                     (pass --force to replace it)",
                                    o.short(),
                                    p.new.short()
                                )
                            } else {
                                format!(
                                    "it is at commit {}, which {} does not contain: not a \
                                     fast-forward, the histories diverged (commit on top of \
                                     the other side's head first, or pass --force to replace \
                                     it and drop its commits there)",
                                    o.short(),
                                    p.new.short()
                                )
                            },
                        });
                    }
                }
            }
        };
    }

    // The objects to send.
    let commits = walk.new_commits.clone();
    let safe = if commits.is_empty() {
        HashSet::new()
    } else {
        walk.safe_objects()?
    };
    let mut objects = Objects::new(src, dst, safe);
    for c in &commits {
        objects.commit(c, &walk.commits[c])?;
    }
    objects.finish_manifests()?;
    report.objects_present = objects.present;
    report.commits_sent = objects
        .send
        .iter()
        .filter(|(_, k, _)| *k == ObjectKind::Commit)
        .count() as u64;

    // Copy.
    send(src, dst, &objects.send, opts, &mut report)?;

    // Commits whose history the source cut stay cut on the destination.
    let cut: Vec<ObjectId> = commits
        .iter()
        .filter(|c| walk.shallow.contains(c))
        .copied()
        .collect();
    if !cut.is_empty() {
        let mut all: Vec<String> = dst.shallow()?.iter().map(|i| i.to_hex()).collect();
        all.extend(cut.iter().map(|c| c.to_hex()));
        all.sort();
        all.dedup();
        let body = serde_json::to_vec(&all).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        dst.coordination()
            .put_document(crate::coord::SHALLOW_DOC, &body)?;
    }

    // Move the refs.
    for p in &plans {
        if p.change != RefChange::UpToDate {
            swap(dst, &p.spec.dst, p.old, p.new, generation)?;
        }
        report.refs.push(RefUpdate {
            kind: ref_kind(&p.spec.dst),
            name: p.spec.dst.name().to_string(),
            old: p.old.map(|o| o.to_hex()),
            new: p.new.to_hex(),
            change: p.change.clone(),
        });
    }
    drop(guard);
    if report.packs_written > 0 {
        // Best effort, as after a commit.
        let _ = dst.auto_merge();
    }
    Ok(report)
}

/// `branch` or `tag`, for reports and messages.
fn ref_kind(r: &RefName) -> &'static str {
    match r {
        RefName::Branch(_) => "branch",
        RefName::Tag(_) => "tag",
    }
}

/// True when `commit` of `repo` has no parents and no states: the commit a new repository's
/// `main` starts at. Moving a branch from there loses nothing.
fn is_empty_root(repo: &Repository, commit: &ObjectId) -> Result<bool> {
    let c = repo.commit(commit)?;
    Ok(c.parents.is_empty() && repo.list_states(commit, None)?.is_empty())
}

/// Move `name` from `old` to `new` on `dst` at gc generation `generation`; a lost reply is
/// repeated and finding the ref at `new` already is success.
fn swap(
    dst: &Repository,
    name: &RefName,
    old: Option<ObjectId>,
    new: ObjectId,
    generation: u64,
) -> Result<()> {
    let coord = dst.coordination();
    let mut attempts = 0u32;
    let mut backoff = Duration::from_millis(50);
    loop {
        match coord.compare_and_swap_at(name, old, Some(new), generation) {
            Ok(CasOutcome::Swapped) => return Ok(()),
            Ok(CasOutcome::Mismatch { actual }) if actual == Some(new) => return Ok(()),
            Ok(CasOutcome::Mismatch { actual }) => {
                return Err(Error::NotFastForward {
                    what: ref_kind(name),
                    name: name.name().to_string(),
                    destination: dst.address().to_string(),
                    detail: format!(
                        "it moved while the objects were sent (from {} to {}); nothing was \
                         overwritten: run again to send on top of it",
                        old.map_or("nothing".into(), |o| o.short()),
                        actual.map_or("nothing".into(), |o| o.short())
                    ),
                });
            }
            Err(e @ Error::Unavailable { .. }) => {
                attempts += 1;
                if attempts > SWAP_RETRIES {
                    return Err(e);
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(Duration::from_secs(2));
            }
            Err(Error::LeaseLost { .. }) if coord.refs().get(name)? == Some(new) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// The source's commit graph, walked from the refs sent back to what the destination has.
struct CommitWalk<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    /// Commits the destination's refs name.
    dst_tips: HashSet<ObjectId>,
    /// Commits the destination's refs reach (walked on first need).
    dst_reached: Option<HashSet<ObjectId>>,
    shallow: HashSet<ObjectId>,
    /// Commits read from the source.
    commits: HashMap<ObjectId, Commit>,
    /// Commits to send, parents first.
    new_commits: Vec<ObjectId>,
    /// Commits the destination's refs reach, where the walk stopped.
    boundary: HashSet<ObjectId>,
    seen: HashSet<ObjectId>,
    /// Metadata read ahead in bulk once a walk goes deep on remote storage.
    src_ahead: Option<super::objects::Prefetched<'a>>,
    dst_ahead: Option<super::objects::Prefetched<'a>>,
}

impl<'a> CommitWalk<'a> {
    fn new(src: &'a Repository, dst: &'a Repository) -> Result<Self> {
        Ok(CommitWalk {
            src,
            dst,
            dst_tips: dst.refs()?.into_iter().map(|(_, id)| id).collect(),
            dst_reached: None,
            shallow: src.shallow()?,
            commits: HashMap::new(),
            new_commits: Vec::new(),
            boundary: HashSet::new(),
            seen: HashSet::new(),
            src_ahead: None,
            dst_ahead: None,
        })
    }

    /// True when the destination's refs reach commit `id`.
    fn dst_reaches(&mut self, id: &ObjectId) -> Result<bool> {
        if self.dst_tips.contains(id) {
            return Ok(true);
        }
        if !self.dst.has_object(id) {
            return Ok(false);
        }
        if self.dst_reached.is_none() {
            if self.dst_ahead.is_none() {
                self.dst_ahead = Some(self.dst.prefetch_metadata());
            }
            let shallow = self.dst.shallow()?;
            let mut reached = HashSet::new();
            let mut stack: Vec<ObjectId> = self.dst_tips.iter().copied().collect();
            while let Some(c) = stack.pop() {
                if !reached.insert(c) {
                    continue;
                }
                if !shallow.contains(&c) {
                    stack.extend(self.dst.commit(&c)?.parents);
                }
            }
            self.dst_reached = Some(reached);
        }
        Ok(self.dst_reached.as_ref().is_some_and(|r| r.contains(id)))
    }

    /// Walk from `tip`, adding the commits the destination lacks (parents first).
    fn from(&mut self, tip: ObjectId) -> Result<()> {
        // Iterative post-order: a commit is emitted once all its parents are.
        let mut stack: Vec<(ObjectId, bool)> = vec![(tip, false)];
        while let Some((c, expanded)) = stack.pop() {
            if expanded {
                self.new_commits.push(c);
                continue;
            }
            if !self.seen.insert(c) {
                continue;
            }
            if self.dst_reaches(&c)? {
                self.boundary.insert(c);
                continue;
            }
            if self.commits.len() == DEEP_WALK && self.src_ahead.is_none() {
                // A long history to send (a clone): read the source's metadata in bulk
                // rather than one commit, node and manifest after another.
                self.src_ahead = Some(self.src.prefetch_metadata());
            }
            let commit = self.src.commit(&c)?;
            stack.push((c, true));
            if !self.shallow.contains(&c) {
                for p in commit.parents.iter().rev() {
                    if !self.seen.contains(p) {
                        stack.push((*p, false));
                    }
                }
            }
            self.commits.insert(c, commit);
        }
        Ok(())
    }

    /// True when `old` is `new` or one of its ancestors in the source.
    fn is_ancestor(&mut self, old: ObjectId, new: ObjectId) -> Result<bool> {
        if !self.src.has_object(&old) {
            return Ok(false);
        }
        let mut seen = HashSet::new();
        let mut stack = vec![new];
        while let Some(c) = stack.pop() {
            if c == old {
                return Ok(true);
            }
            if !seen.insert(c) || self.shallow.contains(&c) {
                continue;
            }
            let parents = match self.commits.get(&c) {
                Some(k) => k.parents.clone(),
                None => self.src.commit(&c)?.parents,
            };
            stack.extend(parents);
        }
        Ok(false)
    }

    /// The tree nodes and manifests of the boundary commits: the destination has them and
    /// everything below them. Read from whichever side is local.
    fn safe_objects(&self) -> Result<HashSet<ObjectId>> {
        let reader = if self.dst.storage().prefers_few_requests() {
            self.src
        } else {
            self.dst
        };
        let mut safe = HashSet::new();
        for b in &self.boundary {
            let c = reader.commit(b)?;
            reader.visit_tree_objects(&c.tree, &mut safe, &mut |_, _| Ok(()))?;
        }
        Ok(safe)
    }
}

/// The objects to send, gathered from the new commits.
struct Objects<'a> {
    src: &'a Repository,
    dst: &'a Repository,
    seen: HashSet<ObjectId>,
    /// Manifests met, to read for their chunks.
    manifests: Vec<ObjectId>,
    /// (id, kind, stored payload length).
    send: Vec<(ObjectId, ObjectKind, u64)>,
    present: u64,
}

impl<'a> Objects<'a> {
    fn new(src: &'a Repository, dst: &'a Repository, safe: HashSet<ObjectId>) -> Self {
        Objects {
            src,
            dst,
            seen: safe,
            manifests: Vec::new(),
            send: Vec::new(),
            present: 0,
        }
    }

    fn want(&mut self, id: ObjectId, kind: ObjectKind) -> Result<()> {
        if self.dst.has_object(&id) {
            self.present += 1;
            return Ok(());
        }
        let len = self.src.locate(&id, kind)?.entry.payload_len;
        self.send.push((id, kind, len));
        Ok(())
    }

    fn commit(&mut self, id: &ObjectId, c: &Commit) -> Result<()> {
        let mut met = Vec::new();
        self.src
            .visit_tree_objects(&c.tree, &mut self.seen, &mut |o, k| {
                met.push((o, k));
                Ok(())
            })?;
        for (o, k) in met {
            if k == ObjectKind::Manifest {
                self.manifests.push(o);
            }
            self.want(o, k)?;
        }
        self.want(*id, ObjectKind::Commit)
    }

    /// Read the manifests met (in parallel) and want their chunks.
    fn finish_manifests(&mut self) -> Result<()> {
        let ids = std::mem::take(&mut self.manifests);
        let src = self.src;
        let read = || crate::par::map(ids, |m| src.manifest(&m));
        let manifests = if src.storage().prefers_few_requests() {
            crate::par::on_remote_pool(read)
        } else {
            read()
        };
        for m in manifests {
            for c in m?.chunks {
                if let ChunkRef::Stored { id, .. } = c
                    && self.seen.insert(id)
                {
                    self.want(id, ObjectKind::Chunk)?;
                }
            }
        }
        Ok(())
    }
}

/// Copy the records `objects` from `src` to new packs of `dst`: batches are read and checked
/// in parallel on one thread while the previous batch is appended on another.
fn send(
    src: &Repository,
    dst: &Repository,
    objects: &[(ObjectId, ObjectKind, u64)],
    opts: &TransferOptions<'_>,
    report: &mut TransferReport,
) -> Result<()> {
    if objects.is_empty() {
        return Ok(());
    }
    let mut batches: Vec<Vec<(ObjectId, ObjectKind)>> = Vec::new();
    let mut cur = Vec::new();
    let mut cur_bytes = 0u64;
    for &(id, kind, len) in objects {
        cur.push((id, kind));
        cur_bytes += len;
        if cur_bytes >= BATCH_BYTES {
            batches.push(std::mem::take(&mut cur));
            cur_bytes = 0;
        }
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    let mut progress = TransferProgress {
        objects_total: objects.len() as u64,
        bytes_total: objects.iter().map(|o| o.2).sum(),
        ..Default::default()
    };
    let remote = src.storage().prefers_few_requests();
    let packs_before = dst.io_counters().packs_written;
    let mut writer = ObjectWriter::new(dst.clone());
    // Packs land often, so a transfer killed midway keeps most of what it sent.
    writer.set_pack_target(dst.config().pack_target_bytes.min(TRANSFER_PACK_BYTES));
    std::thread::scope(|s| -> Result<()> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Result<_>>>(1);
        let reader = s.spawn(move || {
            for batch in batches {
                let recs = if remote {
                    // Back-to-back records in one request each run.
                    crate::par::on_remote_pool(|| src.verified_records(&batch))
                } else {
                    crate::par::map(batch, |(id, kind)| src.verified_record(&id, kind))
                };
                if tx.send(recs).is_err() {
                    break; // the writer stopped on an error
                }
            }
        });
        for recs in rx {
            for r in recs {
                let (h, rec) = r?;
                let payload = &rec[crate::format::record::RECORD_HEADER_LEN..];
                if h.kind == ObjectKind::Tree && h.version >= 3 && !dst.config().has_format_4() {
                    // Only lossy or near-Hermitian states need such nodes; an older
                    // destination must not get them (its builds could not read them).
                    return Err(Error::InvalidArgument(format!(
                        "{} is repository format {} and cannot hold lossy or near-Hermitian \
                         states; run `qstore upgrade` on it first (no ref was moved)",
                        dst.address(),
                        dst.config().format_version
                    )));
                }
                writer.append(&h, payload)?;
                report.objects_sent += 1;
                if h.kind == ObjectKind::Chunk {
                    report.chunks_sent += 1;
                }
                let n = (crate::format::record::RECORD_HEADER_LEN + payload.len()) as u64;
                report.bytes_sent += n;
                progress.objects_done += 1;
                progress.bytes_done += h.payload_len;
                if let Some(p) = opts.progress {
                    p(&progress);
                }
            }
        }
        reader
            .join()
            .map_err(|_| Error::InvalidArgument("a transfer reader thread panicked".into()))?;
        Ok(())
    })?;
    writer.flush()?;
    report.packs_written = dst.io_counters().packs_written - packs_before;
    Ok(())
}

impl Repository {
    /// The settings a copy of this repository is created with: the same chunk size and pack
    /// sizes (so the two chunk states alike and deduplicate against each other), a new id.
    pub fn config_for_copy(&self) -> crate::RepoConfig {
        let c = self.config();
        crate::RepoConfig {
            chunk_size: c.chunk_size,
            pack_target_bytes: c.pack_target_bytes,
            merge_threshold: c.merge_threshold,
            merge_pack_bytes: c.merge_pack_bytes,
            ..crate::RepoConfig::default()
        }
    }

    /// Open the repository at `address`, creating it like this one (see
    /// [`Repository::config_for_copy`]) when there is none.
    pub fn open_or_create_like(&self, address: &str) -> Result<Repository> {
        match Repository::open(address) {
            Err(Error::RepositoryNotFound(_)) => {
                match Repository::init(address, self.config_for_copy()) {
                    Err(Error::RepositoryExists(_)) => Repository::open(address),
                    r => r,
                }
            }
            r => r,
        }
    }

    /// Copy this repository to a new one at `address`: every branch and tag, with the
    /// remote `origin` there naming this one. Fails if a repository exists at `address`.
    pub fn clone_to(
        &self,
        address: &str,
        opts: &TransferOptions<'_>,
    ) -> Result<(Repository, TransferReport)> {
        let dst = Repository::init(address, self.config_for_copy())?;
        dst.add_remote(super::remotes::ORIGIN, self.address(), true)?;
        let specs = RefSpec::all(self)?;
        let report = transfer(self, &dst, &specs, opts)?;
        Ok((dst, report))
    }

    /// Send refs `specs` (all branches and tags when empty) to `remote` (a remote's name or
    /// an address).
    pub fn push(
        &self,
        remote: &str,
        specs: &[String],
        opts: &TransferOptions<'_>,
    ) -> Result<TransferReport> {
        let dst = Repository::open(&self.remote_address(remote)?)?;
        let specs = parse_specs(self, specs)?;
        transfer(self, &dst, &specs, opts)
    }

    /// Fetch refs `specs` (all its branches and tags when empty) from `remote` and move the
    /// refs here.
    pub fn pull(
        &self,
        remote: &str,
        specs: &[String],
        opts: &TransferOptions<'_>,
    ) -> Result<TransferReport> {
        let src = Repository::open(&self.remote_address(remote)?)?;
        let specs = parse_specs(&src, specs)?;
        transfer(&src, self, &specs, opts)
    }
}

fn parse_specs(source: &Repository, specs: &[String]) -> Result<Vec<RefSpec>> {
    if specs.is_empty() {
        return RefSpec::all(source);
    }
    specs.iter().map(|s| RefSpec::parse(source, s)).collect()
}
