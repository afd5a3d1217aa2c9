//! The hardware layer for data: the [`Storage`] trait (immutable blobs addressed by key) and
//! its backends, [`memory::MemoryStorage`] and [`local::LocalStorage`]. Blobs are written
//! once and never modified; a blob becomes visible only when it is complete and durable.
//! Remote backends (S3, in `qstore-cluster`) implement the same trait; [`disk_cache::DiskCache`]
//! keeps ranges of their immutable blobs on local disk.

pub mod disk_cache;
pub mod local;
pub mod memory;

use crate::error::Result;
use std::fmt::Debug;
use std::sync::Arc;

/// A whole blob mapped into (or held in) memory, read without copying.
pub type MappedBlob = Arc<dyn AsRef<[u8]> + Send + Sync>;

/// How [`Storage::put`] treats an existing blob.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutMode {
    /// Fail (return [`PutOutcome::AlreadyExists`]) if the key exists.
    Create,
    /// Replace whatever is there.
    Overwrite,
}

/// What [`Storage::put`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PutOutcome {
    Written,
    AlreadyExists,
}

/// A blob listed by [`Storage::list`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobMeta {
    pub key: String,
    pub size: u64,
    /// When the blob was written, where the backend knows.
    pub modified: Option<std::time::SystemTime>,
}

/// Streams one new blob. Nothing is visible under the key until [`BlobWriter::finish`]
/// returns; then the blob is complete and durable. Dropping the writer abandons it.
pub trait BlobWriter: Send {
    /// Append bytes.
    fn write_all(&mut self, data: &[u8]) -> Result<()>;
    /// Make the blob durable and visible.
    fn finish(self: Box<Self>) -> Result<()>;
}

/// Immutable blob storage.
pub trait Storage: Send + Sync + Debug {
    /// Store a whole blob, durably and atomically.
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome>;
    /// Stream a new blob.
    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter>>;
    /// Read a whole blob.
    fn get(&self, key: &str) -> Result<Vec<u8>>;
    /// Fill `buf` with the bytes at `offset`; fails if the blob is shorter.
    fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<()>;
    /// Size of a blob.
    fn size(&self, key: &str) -> Result<u64>;
    /// Blobs directly under a directory-like prefix such as `packs/`.
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>>;
    /// The keys [`Storage::list`] would return, sorted, without sizes or times (cheaper
    /// where the backend must ask for them one blob at a time).
    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        Ok(self.list(prefix)?.into_iter().map(|b| b.key).collect())
    }
    /// Delete a blob (missing is not an error).
    fn delete(&self, key: &str) -> Result<()>;
    /// The whole blob in memory without copying it (a memory map of a local file), where the
    /// backend can; `None` otherwise. Only for immutable blobs (packs).
    fn map(&self, _key: &str) -> Result<Option<MappedBlob>> {
        Ok(None)
    }
    /// True for remote storage, where a request costs a round trip: readers then fetch a
    /// record's header and payload in one read.
    fn prefers_few_requests(&self) -> bool {
        false
    }
    /// True when a server behind this storage merges packs itself (a repository served by
    /// `qstore serve`): clients then skip the automatic merge after their commits, which
    /// would need to delete blobs.
    fn merged_by_server(&self) -> bool {
        false
    }
    /// Number of files the backend uses on a file system, if it has one.
    fn file_count(&self) -> Option<u64> {
        None
    }
}
