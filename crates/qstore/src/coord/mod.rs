//! The hardware layer for coordination: the [`Coordination`] trait, everything a repository
//! shares between its writers beyond immutable blobs. It owns the refs (through its
//! [`RefStore`]), the named locks (shared by transactions and exclusive for garbage
//! collection; exclusive for pack merges), the garbage-collection generation, small
//! documents (the shallow list) and the repository id binding that keeps a repository from
//! being opened on the wrong ref store.
//!
//! Implementations: [`local::LocalCoordination`] (`flock` and files, many processes on one
//! host or on a POSIX file system that honours them), [`memory::MemoryCoordination`] (one
//! process), and remote ones outside the engine (etcd, in `qstore-cluster`). Nothing in
//! `repo/` reads a coordination file directly.
//!
//! Locks of remote implementations are leases with a time to live: a holder that dies or
//! pauses past it loses the lock. Safety does not rest on the lease alone: garbage collection
//! bumps the generation before it deletes anything, and a commit's ref swap is conditional on
//! the generation its transaction started at ([`Coordination::compare_and_swap_at`]), in one
//! atomic step of the store.

pub mod local;
pub mod memory;

use crate::error::Result;
use crate::id::ObjectId;
use crate::path::RefName;
use crate::refs::{CasOutcome, RefStore};
use std::fmt::Debug;

/// How a lock is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    /// Many holders at once (transactions, merges against gc).
    Shared,
    /// One holder, no shared holders (gc, a merge against other merges).
    Exclusive,
}

/// A held lock, released when dropped.
pub trait LockGuard: Send + Sync {}

/// A held lock of any implementation.
pub type Lock = Box<dyn LockGuard>;

/// The lock taken shared by transactions and exclusively by garbage collection.
pub const GC_LOCK: &str = "gc";
/// The lock a pack merge takes exclusively (without waiting).
pub const MERGE_LOCK: &str = "merge";
/// The document holding the commits whose history was expired (JSON list of ids).
pub const SHALLOW_DOC: &str = "shallow.json";

/// Where a repository's refs, locks and counters live.
pub trait Coordination: Send + Sync + Debug {
    /// Which implementation this is, as recorded in a repository's config (`local`,
    /// `memory`, `etcd`, `s3`).
    fn kind(&self) -> &'static str;
    /// Where it is, for messages (no credentials).
    fn describe(&self) -> String;
    /// The refs.
    fn refs(&self) -> &dyn RefStore;
    /// Take lock `name` in `mode`, waiting as long as it takes.
    fn lock(&self, name: &str, mode: LockMode) -> Result<Lock>;
    /// Take lock `name` in `mode` if it is free now.
    fn try_lock(&self, name: &str, mode: LockMode) -> Result<Option<Lock>>;
    /// The garbage-collection generation (0 before the first gc that deleted anything).
    fn generation(&self) -> Result<u64>;
    /// Increment the generation (gc, under the exclusive gc lock, before it deletes);
    /// returns the new value.
    fn bump_generation(&self) -> Result<u64>;
    /// A small named document, if set.
    fn document(&self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Replace a small named document.
    fn put_document(&self, name: &str, body: &[u8]) -> Result<()>;
    /// [`RefStore::compare_and_swap`], done only while the generation is still
    /// `generation`, in one atomic step; [`crate::Error::LeaseLost`] when it moved (a gc
    /// ran while the caller's lease had lapsed, so objects it wrote may be gone).
    fn compare_and_swap_at(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: u64,
    ) -> Result<CasOutcome>;
    /// Tie the store to repository `id`: record it when `create` (refusing a store that
    /// holds another repository), otherwise check that the store holds exactly this id.
    fn bind(&self, id: &str, create: bool) -> Result<()>;
}
