//! [`LocalCoordination`]: coordination of a local repository (a directory). Locks are
//! `flock`s on files under `locks/` (released by the kernel when the holder dies, so no time
//! to live is needed), refs are a [`LocalRefStore`] under `refs/`, and the gc generation and
//! documents are blobs of the repository's storage (`gc-generation`, `shallow.json`). Safe
//! for many processes on one host, and on a shared POSIX file system that provides atomic
//! rename, `O_EXCL` and `flock` across clients (see `docs/cluster.md`).

use super::{Coordination, Lock, LockGuard, LockMode};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path::RefName;
use crate::refs::local::LocalRefStore;
use crate::refs::{CasOutcome, RefStore};
use crate::storage::{PutMode, Storage};
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Storage key of the garbage-collection generation counter.
pub const GENERATION_KEY: &str = "gc-generation";

/// Coordination through files of a repository directory.
#[derive(Debug)]
pub struct LocalCoordination {
    root: PathBuf,
    refs: LocalRefStore,
    storage: Arc<dyn Storage>,
}

struct FileLock(#[allow(dead_code)] File);
impl LockGuard for FileLock {}

impl LocalCoordination {
    /// Coordination for the repository at `root`, whose blobs are in `storage`.
    pub fn new(root: &Path, storage: Arc<dyn Storage>) -> Result<Self> {
        Ok(LocalCoordination {
            root: root.to_path_buf(),
            refs: LocalRefStore::new(root.join("refs"))?,
            storage,
        })
    }

    fn lock_file(&self, name: &str) -> Result<(PathBuf, File)> {
        let dir = self.root.join("locks");
        std::fs::create_dir_all(&dir).map_err(|e| Error::io(dir.display(), e))?;
        let p = dir.join(name);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(p.display(), e))?;
        Ok((p, f))
    }
}

/// Read a decimal counter blob (0 when absent).
pub(crate) fn read_counter(storage: &dyn Storage, key: &str) -> Result<u64> {
    match storage.get(key) {
        Ok(b) => String::from_utf8_lossy(&b)
            .trim()
            .parse()
            .map_err(|_| Error::corrupt(key, "not a decimal counter")),
        Err(Error::BlobNotFound(_)) => Ok(0),
        Err(e) => Err(e),
    }
}

impl Coordination for LocalCoordination {
    fn kind(&self) -> &'static str {
        "local"
    }

    fn describe(&self) -> String {
        format!("the directory {}", self.root.display())
    }

    fn refs(&self) -> &dyn RefStore {
        &self.refs
    }

    fn lock(&self, name: &str, mode: LockMode) -> Result<Lock> {
        let (p, f) = self.lock_file(name)?;
        match mode {
            LockMode::Shared => f.lock_shared(),
            LockMode::Exclusive => f.lock(),
        }
        .map_err(|e| Error::io(p.display(), e))?;
        Ok(Box::new(FileLock(f)))
    }

    fn try_lock(&self, name: &str, mode: LockMode) -> Result<Option<Lock>> {
        let (p, f) = self.lock_file(name)?;
        let r = match mode {
            LockMode::Shared => f.try_lock_shared(),
            LockMode::Exclusive => f.try_lock(),
        };
        match r {
            Ok(()) => Ok(Some(Box::new(FileLock(f)))),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(Error::io(p.display(), e)),
        }
    }

    fn generation(&self) -> Result<u64> {
        read_counter(self.storage.as_ref(), GENERATION_KEY)
    }

    fn bump_generation(&self) -> Result<u64> {
        let g = self.generation()? + 1;
        self.storage
            .put(GENERATION_KEY, g.to_string().as_bytes(), PutMode::Overwrite)?;
        Ok(g)
    }

    fn document(&self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.storage.get(name) {
            Ok(b) => Ok(Some(b)),
            Err(Error::BlobNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put_document(&self, name: &str, body: &[u8]) -> Result<()> {
        self.storage.put(name, body, PutMode::Overwrite).map(|_| ())
    }

    fn compare_and_swap_at(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: u64,
    ) -> Result<CasOutcome> {
        // A flock does not lapse while its holder lives, so gc cannot have run during the
        // caller's transaction; the check covers a gc run with the lock broken by hand.
        let now = self.generation()?;
        if now != generation {
            return Err(Error::LeaseLost {
                store: self.describe(),
                detail: format!("garbage collection generation moved from {generation} to {now}"),
            });
        }
        self.refs.compare_and_swap(name, expected, new)
    }

    fn bind(&self, _id: &str, _create: bool) -> Result<()> {
        // The refs live inside the repository's own directory: nothing to tie.
        Ok(())
    }
}
