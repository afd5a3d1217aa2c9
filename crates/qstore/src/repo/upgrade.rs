//! [`Repository::upgrade`]: moves a repository to the current format version (4), in place.
//!
//! From version 2 or 3 it rewrites `config.json` only (same repository id and ref store):
//! nothing stored changes, and from then on this build may write the encodings of version 4
//! (lossy entries, the near-Hermitian layout), which older builds refuse by the version
//! number. From version 1 it does the following (ending at version 4 in the same way):
//!
//! 1. Take the gc lock exclusively, so no writer of either version is inside a transaction
//!    (version-1 builds take the same lock).
//! 2. Write `config.json` as version 2 with a fresh repository id (an atomic replace). From
//!    here on, version-1 builds refuse the repository with their "unsupported format version"
//!    error, and this build writes to it.
//! 3. Merge every version-1 pack into version-2 packs (sorted indexes), copying each record
//!    as it is, then delete the old packs; fold the refs into the packed-refs file.
//!
//! Commits, their ids and their version-1 directory trees are kept as they are: this build
//! reads those trees (converting them in memory), and new commits write the new trees, so
//! history, tags and commit ids users wrote down stay valid. A crash after step 2 leaves a
//! valid version-2 repository that still holds version-1 packs (read like any other, merged
//! by the next merge); running `upgrade` again finishes the job.

use super::Repository;
use crate::error::Result;
use crate::format::config::{CONFIG_KEY, REPO_FORMAT_VERSION, RepoConfig, new_repository_id};
use crate::storage::PutMode;
use serde::Serialize;

/// What an upgrade did.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct UpgradeReport {
    pub address: String,
    pub from_version: u32,
    pub to_version: u32,
    pub repository_id: String,
    /// Version-1 packs rewritten as version-2 packs.
    pub packs_converted: u64,
    /// Packs after the upgrade.
    pub packs_after: u64,
    /// False when the repository was already current.
    pub changed: bool,
}

impl Repository {
    /// Upgrade the repository at `address` to the current format (see the module
    /// documentation); a current repository is left as it is.
    pub fn upgrade(address: &str) -> Result<UpgradeReport> {
        let old = Repository::open(address)?;
        let from = old.config().format_version;
        let lock = old.gc_lock(true)?;
        let repo = if from < REPO_FORMAT_VERSION {
            let cfg = RepoConfig {
                format_version: REPO_FORMAT_VERSION,
                repository_id: if old.config().read_only() {
                    new_repository_id()
                } else {
                    old.config().repository_id.clone()
                },
                ..old.config().clone()
            };
            old.storage()
                .put(CONFIG_KEY, &cfg.encode(), PutMode::Overwrite)?;
            Repository::open_parts(address, old.inner.storage.clone(), old.inner.coord.clone())?
        } else {
            old
        };
        let merged = repo.repack_locked(false)?;
        repo.ref_store().compact()?;
        drop(lock);
        let to = repo.config().format_version;
        let changed = from != to || merged.packs_merged > 0;
        Ok(UpgradeReport {
            address: address.to_string(),
            from_version: from,
            to_version: to,
            repository_id: repo.config().repository_id.clone(),
            packs_converted: merged.packs_merged,
            packs_after: merged.packs_after,
            changed,
        })
    }
}
