//! [`MemoryCoordination`]: coordination inside one process (`memory://` repositories and
//! tests): a [`MemoryRefStore`], reader-writer locks on a mutex and condition variable, and
//! the generation and documents in memory.

use super::{Coordination, Lock, LockGuard, LockMode};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path::RefName;
use crate::refs::memory::MemoryRefStore;
use crate::refs::{CasOutcome, RefStore};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Default)]
struct State {
    /// name -> (shared holders, exclusive held)
    locks: HashMap<String, (usize, bool)>,
    generation: u64,
    documents: HashMap<String, Vec<u8>>,
    id: Option<String>,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    freed: Condvar,
}

/// Coordination held in memory.
#[derive(Debug, Default)]
pub struct MemoryCoordination {
    refs: MemoryRefStore,
    shared: Arc<Shared>,
}

struct MemoryLock {
    shared: Arc<Shared>,
    name: String,
    mode: LockMode,
}

impl LockGuard for MemoryLock {}

impl Drop for MemoryLock {
    fn drop(&mut self) {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(l) = st.locks.get_mut(&self.name) {
            match self.mode {
                LockMode::Shared => l.0 = l.0.saturating_sub(1),
                LockMode::Exclusive => l.1 = false,
            }
        }
        self.shared.freed.notify_all();
    }
}

impl MemoryCoordination {
    fn take(&self, name: &str, mode: LockMode, wait: bool) -> Option<Lock> {
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let l = st.locks.entry(name.to_string()).or_default();
            let free = match mode {
                LockMode::Shared => !l.1,
                LockMode::Exclusive => !l.1 && l.0 == 0,
            };
            if free {
                match mode {
                    LockMode::Shared => l.0 += 1,
                    LockMode::Exclusive => l.1 = true,
                }
                return Some(Box::new(MemoryLock {
                    shared: self.shared.clone(),
                    name: name.to_string(),
                    mode,
                }));
            }
            if !wait {
                return None;
            }
            st = self
                .shared
                .freed
                .wait(st)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Coordination for MemoryCoordination {
    fn kind(&self) -> &'static str {
        "memory"
    }

    fn describe(&self) -> String {
        "this process's memory".into()
    }

    fn refs(&self) -> &dyn RefStore {
        &self.refs
    }

    fn lock(&self, name: &str, mode: LockMode) -> Result<Lock> {
        self.take(name, mode, true)
            .ok_or_else(|| Error::InvalidArgument("lock not taken".into()))
    }

    fn try_lock(&self, name: &str, mode: LockMode) -> Result<Option<Lock>> {
        Ok(self.take(name, mode, false))
    }

    fn generation(&self) -> Result<u64> {
        Ok(self.state().generation)
    }

    fn bump_generation(&self) -> Result<u64> {
        let mut st = self.state();
        st.generation += 1;
        Ok(st.generation)
    }

    fn document(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.state().documents.get(name).cloned())
    }

    fn put_document(&self, name: &str, body: &[u8]) -> Result<()> {
        self.state()
            .documents
            .insert(name.to_string(), body.to_vec());
        Ok(())
    }

    fn compare_and_swap_at(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: u64,
    ) -> Result<CasOutcome> {
        // Holding the state lock across the swap makes the check and the swap one step.
        let st = self.state();
        if st.generation != generation {
            return Err(Error::LeaseLost {
                store: self.describe(),
                detail: format!(
                    "garbage collection generation moved from {generation} to {}",
                    st.generation
                ),
            });
        }
        let r = self.refs.compare_and_swap(name, expected, new);
        drop(st);
        r
    }

    fn bind(&self, id: &str, create: bool) -> Result<()> {
        let mut st = self.state();
        match (&st.id, create) {
            (None, true) => {
                st.id = Some(id.to_string());
                Ok(())
            }
            (Some(have), _) if have == id => Ok(()),
            (None, false) => Ok(()),
            (Some(have), _) => Err(Error::RefStoreMismatch {
                store: self.describe(),
                detail: format!("it holds repository {have}, not {id}"),
            }),
        }
    }
}
