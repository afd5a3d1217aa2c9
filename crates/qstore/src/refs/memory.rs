//! [`MemoryRefStore`]: refs in a process-local map, for `memory://` repositories and tests.

use super::{CasOutcome, RefStore};
use crate::error::Result;
use crate::id::ObjectId;
use crate::path::RefName;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Refs held in memory.
#[derive(Debug, Default)]
pub struct MemoryRefStore {
    refs: Mutex<BTreeMap<RefName, ObjectId>>,
}

impl RefStore for MemoryRefStore {
    fn get(&self, name: &RefName) -> Result<Option<ObjectId>> {
        Ok(self
            .refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .copied())
    }

    fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome> {
        let mut m = self.refs.lock().unwrap_or_else(|e| e.into_inner());
        let actual = m.get(name).copied();
        if actual != expected {
            return Ok(CasOutcome::Mismatch { actual });
        }
        match new {
            Some(id) => m.insert(name.clone(), id),
            None => m.remove(name),
        };
        Ok(CasOutcome::Swapped)
    }

    fn list(&self) -> Result<Vec<(RefName, ObjectId)>> {
        Ok(self
            .refs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect())
    }
}
