//! Asynchronous checkpoints: [`Repository::put_async`] copies the caller's state into a
//! staging buffer and returns a [`PendingCommit`] at once; a background thread stores and
//! commits it durably. The caller computes on; `wait()` (blocking) or `.await` (any async
//! runtime, tokio included) returns the commit id once the commit is durable. At most
//! `max_pending` checkpoints are staged at a time: a further `put_async` waits for one to
//! finish, which bounds the staging memory.

use super::{CommitOptions, PutOptions, Repository};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path::StatePath;
use crate::state::input::{ArrayInfo, infer_kind};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Waker};

/// Default number of checkpoints that may be staged at once.
pub const DEFAULT_MAX_PENDING: usize = 2;

#[derive(Default)]
struct Slot {
    result: Option<Result<ObjectId>>,
    waker: Option<Waker>,
}

/// A checkpoint being written. Dropping it does not cancel the write.
pub struct PendingCommit {
    slot: Arc<(Mutex<Slot>, Condvar)>,
}

impl PendingCommit {
    /// Block until the commit is durable; returns its id (or the error that stopped it).
    pub fn wait(self) -> Result<ObjectId> {
        let (m, cv) = &*self.slot;
        let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(r) = s.result.take() {
                return r;
            }
            s = cv.wait(s).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// True once the write has finished (successfully or not).
    pub fn is_done(&self) -> bool {
        self.slot
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .result
            .is_some()
    }
}

impl Future for PendingCommit {
    type Output = Result<ObjectId>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut s = self.slot.0.lock().unwrap_or_else(|e| e.into_inner());
        match s.result.take() {
            Some(r) => Poll::Ready(r),
            None => {
                s.waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

/// Counts staged checkpoints of one repository handle and keeps their buffers for reuse, so
/// a checkpoint loop copies into memory that is already resident.
#[derive(Default)]
pub(crate) struct Staging {
    pending: Mutex<usize>,
    freed: Condvar,
    pub(crate) max_pending: Mutex<usize>,
    pool: Mutex<Vec<Vec<u8>>>,
}

impl Staging {
    pub(crate) fn new() -> Self {
        Staging {
            max_pending: Mutex::new(DEFAULT_MAX_PENDING),
            ..Default::default()
        }
    }

    fn acquire(&self) {
        let max = *self.max_pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut n = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        while *n >= max.max(1) {
            n = self.freed.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        *n += 1;
    }

    fn release(&self, buf: Vec<u8>) {
        let max = *self.max_pending.lock().unwrap_or_else(|e| e.into_inner());
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        if pool.len() < max {
            pool.push(buf);
        }
        drop(pool);
        *self.pending.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.freed.notify_one();
    }

    /// A buffer holding a copy of `data`, reusing a pooled one when it is large enough.
    fn stage(&self, data: &[u8]) -> Vec<u8> {
        let reused = {
            let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
            let i = pool.iter().position(|b| b.capacity() >= data.len());
            i.map(|i| pool.swap_remove(i))
        };
        match reused {
            Some(mut b) => {
                b.clear();
                b.extend_from_slice(data);
                b
            }
            None => data.to_vec(),
        }
    }

    /// Drop the pooled buffers.
    pub(crate) fn clear_pool(&self) {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }
}

impl Repository {
    /// Stage a dense state and commit it to `branch` in the background (see the module
    /// documentation). Returns once the state is copied; path and kind are checked first.
    pub fn put_async(
        &self,
        branch: &str,
        path: &str,
        info: &ArrayInfo,
        data: &[u8],
        opts: PutOptions,
        commit: CommitOptions,
    ) -> Result<PendingCommit> {
        StatePath::new(path)?;
        infer_kind(info, opts.kind).map_err(|e| e.at_path(path))?;
        if info.byte_len() != Some(data.len() as u64) {
            return Err(Error::invalid_state(format!(
                "{} bytes given for a {} array of shape {:?}",
                data.len(),
                info.dtype,
                info.shape
            ))
            .at_path(path));
        }
        self.inner.staging.acquire();
        let staged = self.inner.staging.stage(data);
        let slot = Arc::new((Mutex::new(Slot::default()), Condvar::new()));
        let (repo, branch, path, info, done) = (
            self.clone(),
            branch.to_string(),
            path.to_string(),
            info.clone(),
            slot.clone(),
        );
        std::thread::spawn(move || {
            let r = (|| {
                let mut tx = repo.transaction(&branch)?;
                tx.put(&path, &info, &staged, &opts)?;
                tx.commit(commit)
            })();
            repo.inner.staging.release(staged);
            let (m, cv) = &*done;
            let mut s = m.lock().unwrap_or_else(|e| e.into_inner());
            s.result = Some(r);
            if let Some(w) = s.waker.take() {
                w.wake();
            }
            cv.notify_all();
        });
        Ok(PendingCommit { slot })
    }

    /// How many checkpoints `put_async` may stage at once (at least 1); also how many staging
    /// buffers are kept for reuse.
    pub fn set_max_pending(&self, n: usize) {
        *self
            .inner
            .staging
            .max_pending
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = n.max(1);
    }

    /// Free the staging buffers kept for reuse by `put_async`.
    pub fn release_staging_buffers(&self) {
        self.inner.staging.clear_pool();
    }
}
