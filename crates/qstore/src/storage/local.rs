//! [`LocalStorage`]: blobs as files under a directory (local disk, NVMe, a bind mount, a
//! parallel file system). New blobs are written under `tmp/`, fsynced, then renamed into
//! place and the directory fsynced, so a blob is either absent or complete and durable.

use super::{BlobMeta, BlobWriter, MappedBlob, PutMode, PutOutcome, Storage};
use crate::error::{Error, Result};
use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Directory (relative to the root) for blobs being written.
pub const TMP_DIR: &str = "tmp";
const OPEN_FILE_CACHE: usize = 512;

/// Blob storage in a local directory.
#[derive(Debug)]
pub struct LocalStorage {
    root: PathBuf,
    open: Mutex<HashMap<String, Arc<File>>>,
}

/// fsync a directory so a rename or unlink in it is durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(dir.display(), e))
}

/// A unique temporary file name.
pub(crate) fn tmp_name() -> String {
    format!("{}-{:016x}.tmp", std::process::id(), rand::random::<u64>())
}

impl LocalStorage {
    /// Use `root` (created if missing) as the storage directory.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self> {
        let root = root.into();
        fs::create_dir_all(root.join(TMP_DIR)).map_err(|e| Error::io(root.display(), e))?;
        Ok(LocalStorage {
            root,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    fn open_cached(&self, key: &str) -> Result<Arc<File>> {
        let mut m = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = m.get(key) {
            return Ok(f.clone());
        }
        let p = self.path(key);
        let f = File::open(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::BlobNotFound(key.to_string())
            } else {
                Error::io(p.display(), e)
            }
        })?;
        if m.len() >= OPEN_FILE_CACHE {
            m.clear();
        }
        let f = Arc::new(f);
        m.insert(key.to_string(), f.clone());
        Ok(f)
    }

    /// Directory entries directly under `prefix` whose names start with its last part,
    /// with their keys, sorted by key. Open files of blobs no longer listed (deleted by other
    /// processes) are forgotten, so their space is freed.
    fn entries(&self, prefix: &str) -> Result<Vec<(String, fs::DirEntry)>> {
        let (dir, name_prefix) = match prefix.rfind('/') {
            Some(i) => (&prefix[..i], &prefix[i + 1..]),
            None => ("", prefix),
        };
        let d = self.root.join(dir);
        let rd = match fs::read_dir(&d) {
            Ok(rd) => rd,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(Error::io(d.display(), e)),
        };
        let mut out = Vec::new();
        for ent in rd {
            let ent = ent.map_err(|e| Error::io(d.display(), e))?;
            let name = ent.file_name();
            let Some(name) = name.to_str() else { continue };
            if !name.starts_with(name_prefix) {
                continue;
            }
            let key = if dir.is_empty() {
                name.to_string()
            } else {
                format!("{dir}/{name}")
            };
            out.push((key, ent));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        let depth = if dir.is_empty() { 0 } else { dir.len() + 1 };
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|k, _| {
                !k.starts_with(prefix)
                    || k[depth..].contains('/')
                    || out.binary_search_by(|b| b.0.as_str().cmp(k)).is_ok()
            });
        Ok(out)
    }

    fn new_tmp(&self) -> Result<(PathBuf, File)> {
        let p = self.root.join(TMP_DIR).join(tmp_name());
        let f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&p)
            .map_err(|e| Error::io(p.display(), e))?;
        Ok((p, f))
    }

    fn ensure_parent(&self, key: &str) -> Result<PathBuf> {
        let dest = self.path(key);
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| Error::io(parent.display(), e))?;
        }
        Ok(dest)
    }
}

struct LocalWriter {
    tmp: PathBuf,
    dest: PathBuf,
    out: Option<BufWriter<File>>,
    /// Bytes written since write-back was last started.
    unflushed: u64,
}

/// Start write-back of a file's dirty pages every this many bytes, so the fsync at the end
/// finds little left to do and the disk works while the pipeline computes.
const WRITEBACK_EVERY: u64 = 32 << 20;

/// Ask the kernel to start writing a file's dirty pages back now, without waiting.
fn start_writeback(f: &File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: sync_file_range only reads its integer arguments; the descriptor is open.
        unsafe {
            libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE);
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = f;
}

impl BlobWriter for LocalWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        let out = self.out.as_mut().expect("writer used after finish");
        out.write_all(data)
            .map_err(|e| Error::io(self.tmp.display(), e))?;
        self.unflushed += data.len() as u64;
        if self.unflushed >= WRITEBACK_EVERY {
            self.unflushed = 0;
            out.flush().map_err(|e| Error::io(self.tmp.display(), e))?;
            start_writeback(out.get_ref());
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        let out = self.out.take().expect("finish called once");
        let f = out
            .into_inner()
            .map_err(|e| Error::io(self.tmp.display(), e.into_error()))?;
        f.sync_data()
            .map_err(|e| Error::io(self.tmp.display(), e))?;
        drop(f);
        fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(self.dest.display(), e))?;
        if let Some(parent) = self.dest.parent() {
            sync_dir(parent)?;
        }
        Ok(())
    }
}

impl Drop for LocalWriter {
    fn drop(&mut self) {
        if self.out.is_some() {
            let _ = fs::remove_file(&self.tmp);
        }
    }
}

impl Storage for LocalStorage {
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome> {
        let dest = self.ensure_parent(key)?;
        let (tmp, mut f) = self.new_tmp()?;
        let res = (|| {
            f.write_all(data).map_err(|e| Error::io(tmp.display(), e))?;
            f.sync_data().map_err(|e| Error::io(tmp.display(), e))?;
            match mode {
                PutMode::Overwrite => {
                    fs::rename(&tmp, &dest).map_err(|e| Error::io(dest.display(), e))?
                }
                PutMode::Create => match fs::hard_link(&tmp, &dest) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        return Ok(PutOutcome::AlreadyExists);
                    }
                    Err(e) => return Err(Error::io(dest.display(), e)),
                },
            }
            if let Some(parent) = dest.parent() {
                sync_dir(parent)?;
            }
            Ok(PutOutcome::Written)
        })();
        let _ = fs::remove_file(&tmp);
        res
    }

    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter>> {
        let dest = self.ensure_parent(key)?;
        let (tmp, f) = self.new_tmp()?;
        Ok(Box::new(LocalWriter {
            tmp,
            dest,
            out: Some(BufWriter::with_capacity(4 << 20, f)),
            unflushed: 0,
        }))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let p = self.path(key);
        fs::read(&p).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::BlobNotFound(key.to_string())
            } else {
                Error::io(p.display(), e)
            }
        })
    }

    fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let f = self.open_cached(key)?;
        f.read_exact_at(buf, offset)
            .map_err(|e| Error::io(self.path(key).display(), e))
    }

    fn size(&self, key: &str) -> Result<u64> {
        let f = self.open_cached(key)?;
        Ok(f.metadata()
            .map_err(|e| Error::io(self.path(key).display(), e))?
            .len())
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        let mut out = Vec::new();
        for (key, ent) in self.entries(prefix)? {
            let meta = match ent.metadata() {
                Ok(m) => m,
                // Deleted since the directory was read (a merge or gc in another process).
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(self.root.join(&key).display(), e)),
            };
            if !meta.is_file() {
                continue;
            }
            out.push(BlobMeta {
                key,
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
        Ok(out)
    }

    fn list_keys(&self, prefix: &str) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for (key, ent) in self.entries(prefix)? {
            // The directory entry's type, without a stat where the file system records it.
            match ent.file_type() {
                Ok(t) if t.is_file() => out.push(key),
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(self.root.join(&key).display(), e)),
            }
        }
        Ok(out)
    }

    fn map(&self, key: &str) -> Result<Option<MappedBlob>> {
        let f = self.open_cached(key)?;
        let len = f
            .metadata()
            .map_err(|e| Error::io(self.path(key).display(), e))?
            .len();
        if len == 0 {
            return Ok(None);
        }
        // SAFETY: only immutable blobs are mapped (packs are written once under tmp/ and
        // renamed into place, never modified or truncated afterwards; deleting one leaves an
        // existing mapping valid). A file changed behind qstore's back is outside the format.
        let m = unsafe { memmap2::Mmap::map(f.as_ref()) }
            .map_err(|e| Error::io(self.path(key).display(), e))?;
        Ok(Some(Arc::new(m) as MappedBlob))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        let p = self.path(key);
        match fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    fn file_count(&self) -> Option<u64> {
        fn count(d: &Path) -> u64 {
            let Ok(rd) = fs::read_dir(d) else { return 0 };
            rd.flatten()
                .map(|e| match e.file_type() {
                    Ok(t) if t.is_dir() => count(&e.path()),
                    Ok(_) => 1,
                    Err(_) => 0,
                })
                .sum()
        }
        Some(count(&self.root))
    }
}
