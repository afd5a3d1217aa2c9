//! The hardware layer for refs: the [`RefStore`] trait (branch and tag heads with
//! compare-and-swap) and its backends, [`memory::MemoryRefStore`] and
//! [`local::LocalRefStore`]. A ref is the only mutable thing in a repository; every commit
//! becomes visible through one [`RefStore::compare_and_swap`]. Consensus stores (etcd) and
//! S3 conditional writes implement the same trait.

pub mod local;
pub mod memory;

use crate::error::Result;
use crate::id::ObjectId;
use crate::path::RefName;
use std::fmt::Debug;

/// What a compare-and-swap did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CasOutcome {
    /// The ref held the expected value and now holds the new one, durably.
    Swapped,
    /// The ref held `actual`, not the expected value; nothing changed.
    Mismatch { actual: Option<ObjectId> },
}

/// Mutable refs with compare-and-swap.
pub trait RefStore: Send + Sync + Debug {
    /// The commit a ref names, if it exists.
    fn get(&self, name: &RefName) -> Result<Option<ObjectId>>;
    /// Atomically replace `expected` by `new` (`None` = absent: create or delete). The change
    /// is durable when this returns [`CasOutcome::Swapped`].
    fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome>;
    /// Every ref and the commit it names, sorted by name.
    fn list(&self) -> Result<Vec<(RefName, ObjectId)>>;
    /// Fold the store's refs into its most compact form (the packed file of a local store);
    /// nothing by default.
    fn compact(&self) -> Result<()> {
        Ok(())
    }
}
