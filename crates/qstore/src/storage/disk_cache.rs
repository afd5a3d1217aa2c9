//! [`DiskCache`]: a bounded on-disk cache of byte ranges of immutable blobs, in front of a
//! remote [`Storage`] (beside the decoded-chunk memory cache of [`crate::cache`]). Packs never
//! change once written, so a range read once (a record: one ranged GET) is kept as a file
//! named by the BLAKE3 hash of (key, offset, length) and served locally afterwards. Files are
//! written to a temporary name and renamed, so a crash leaves no half entry; an entry whose
//! length is wrong is ignored and refetched. When the total passes the bound, the least
//! recently used entries (file modification time, refreshed on every hit) are deleted down to
//! nine tenths of it. Everything else (writes, listing, whole-blob reads) goes straight to the
//! remote storage.

use super::{BlobMeta, BlobWriter, MappedBlob, PutMode, PutOutcome, Storage};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

/// Ranges larger than this are not cached (whole-pack copies by merges and gc).
const MAX_ENTRY: usize = 32 << 20;

/// A byte-range cache on local disk in front of another storage.
pub struct DiskCache {
    inner: Arc<dyn Storage>,
    dir: PathBuf,
    max_bytes: u64,
    used: AtomicU64,
    evicting: std::sync::Mutex<()>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl std::fmt::Debug for DiskCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DiskCache({}, {:?})", self.dir.display(), self.inner)
    }
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

impl DiskCache {
    /// Cache reads of `inner` in `dir` (created if missing), at most `max_bytes`.
    pub fn new(inner: Arc<dyn Storage>, dir: &Path, max_bytes: u64) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir.display(), e))?;
        Ok(DiskCache {
            used: AtomicU64::new(dir_bytes(dir)),
            inner,
            dir: dir.to_path_buf(),
            max_bytes,
            evicting: Default::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// (hits, misses) since this cache was opened.
    pub fn counters(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    fn entry(&self, key: &str, offset: u64, len: usize) -> PathBuf {
        let mut h = blake3::Hasher::new();
        h.update(key.as_bytes());
        h.update(&offset.to_le_bytes());
        h.update(&(len as u64).to_le_bytes());
        self.dir.join(&h.finalize().to_hex()[..32])
    }

    fn store(&self, path: &Path, data: &[u8]) {
        let tmp = path.with_extension(format!("tmp{:x}", rand::random::<u32>()));
        if std::fs::write(&tmp, data).is_ok() && std::fs::rename(&tmp, path).is_ok() {
            let used =
                self.used.fetch_add(data.len() as u64, Ordering::Relaxed) + data.len() as u64;
            if used > self.max_bytes {
                self.evict();
            }
        } else {
            let _ = std::fs::remove_file(&tmp);
        }
    }

    fn evict(&self) {
        let Ok(_g) = self.evicting.try_lock() else {
            return;
        };
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<(SystemTime, u64, PathBuf)> = rd
            .flatten()
            .filter_map(|e| {
                let m = e.metadata().ok()?;
                m.is_file().then(|| {
                    (
                        m.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                        m.len(),
                        e.path(),
                    )
                })
            })
            .collect();
        files.sort();
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let target = self.max_bytes / 10 * 9;
        for (_, len, p) in files {
            if total <= target {
                break;
            }
            if std::fs::remove_file(&p).is_ok() {
                total -= len;
            }
        }
        self.used.store(total, Ordering::Relaxed);
    }
}

impl Storage for DiskCache {
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome> {
        self.inner.put(key, data, mode)
    }
    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter>> {
        self.inner.writer(key)
    }
    fn get(&self, key: &str) -> Result<Vec<u8>> {
        self.inner.get(key)
    }
    fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        if buf.len() > MAX_ENTRY || !key.starts_with("packs/") {
            return self.inner.read_at(key, offset, buf);
        }
        let path = self.entry(key, offset, buf.len());
        if let Ok(data) = std::fs::read(&path)
            && data.len() == buf.len()
        {
            buf.copy_from_slice(&data);
            self.hits.fetch_add(1, Ordering::Relaxed);
            if let Ok(f) = std::fs::File::options().append(true).open(&path) {
                let _ = f.set_modified(SystemTime::now());
            }
            return Ok(());
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        self.inner.read_at(key, offset, buf)?;
        self.store(&path, buf);
        Ok(())
    }
    fn size(&self, key: &str) -> Result<u64> {
        self.inner.size(key)
    }
    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        self.inner.list(prefix)
    }
    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_keys(prefix)
    }
    fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key)
    }
    fn map(&self, key: &str) -> Result<Option<MappedBlob>> {
        self.inner.map(key)
    }
    fn file_count(&self) -> Option<u64> {
        self.inner.file_count()
    }
    fn merged_by_server(&self) -> bool {
        self.inner.merged_by_server()
    }
    fn prefers_few_requests(&self) -> bool {
        self.inner.prefers_few_requests()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::memory::MemoryStorage;

    #[test]
    fn serves_ranges_from_disk_and_stays_bounded() {
        let mem = Arc::new(MemoryStorage::default());
        let blob: Vec<u8> = (0..200_000u32).map(|i| (i * 7) as u8).collect();
        mem.put("packs/a.pack", &blob, PutMode::Create).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let c = DiskCache::new(mem.clone(), dir.path(), 50_000).unwrap();
        let mut buf = vec![0u8; 10_000];
        for round in 0..2 {
            for i in 0..10u64 {
                c.read_at("packs/a.pack", i * 10_000, &mut buf).unwrap();
                let o = (i * 10_000) as usize;
                assert_eq!(buf, blob[o..o + 10_000], "round {round} range {i}");
            }
        }
        assert!(dir_bytes(dir.path()) <= 50_000 + 10_000);
        let (hits, misses) = c.counters();
        assert_eq!(hits + misses, 20);
        // A damaged entry (wrong length) is refetched, never served.
        c.read_at("packs/a.pack", 0, &mut buf).unwrap();
        let e = c.entry("packs/a.pack", 0, 10_000);
        std::fs::write(&e, b"short").unwrap();
        c.read_at("packs/a.pack", 0, &mut buf).unwrap();
        assert_eq!(buf, blob[..10_000]);
    }
}
