//! [`LocalRefStore`]: one small file per ref under `refs/` (`refs/branches/main` holds the
//! commit id in hex). A compare-and-swap takes an exclusive `flock` on `refs/lock`, reads,
//! compares, writes a temporary file, fsyncs it, renames it over the ref and fsyncs the
//! directory. Readers need no lock: a rename is atomic. Safe for many processes on one host;
//! a process killed while holding the lock releases it with its file descriptor.

use super::{CasOutcome, RefStore};
use crate::error::{Error, Result};
use crate::id::ObjectId;
use crate::path::RefName;
use crate::storage::local::{sync_dir, tmp_name};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Refs as files in a directory.
#[derive(Debug)]
pub struct LocalRefStore {
    dir: PathBuf,
}

impl LocalRefStore {
    /// Use `dir` (created if missing) for refs.
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self> {
        let dir = dir.into();
        for sub in ["branches", "tags"] {
            let d = dir.join(sub);
            fs::create_dir_all(&d).map_err(|e| Error::io(d.display(), e))?;
        }
        Ok(LocalRefStore { dir })
    }

    fn file(&self, name: &RefName) -> PathBuf {
        self.dir.join(name.key())
    }

    fn read(path: &Path, name: &str) -> Result<Option<ObjectId>> {
        match fs::read_to_string(path) {
            Ok(s) => ObjectId::from_hex(s.trim())
                .map(Some)
                .ok_or_else(|| Error::corrupt(format!("ref {name}"), "not a commit id")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    fn lock(&self) -> Result<File> {
        let p = self.dir.join("lock");
        let f = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&p)
            .map_err(|e| Error::io(p.display(), e))?;
        f.lock().map_err(|e| Error::io(p.display(), e))?;
        Ok(f)
    }
}

impl RefStore for LocalRefStore {
    fn get(&self, name: &RefName) -> Result<Option<ObjectId>> {
        Self::read(&self.file(name), &name.key())
    }

    fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome> {
        let _lock = self.lock()?;
        let path = self.file(name);
        let actual = Self::read(&path, &name.key())?;
        if actual != expected {
            return Ok(CasOutcome::Mismatch { actual });
        }
        let parent = path.parent().unwrap_or(&self.dir).to_path_buf();
        match new {
            Some(id) => {
                let tmp = parent.join(format!(".{}", tmp_name()));
                let res = (|| {
                    let mut f = File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
                    f.write_all(format!("{}\n", id.to_hex()).as_bytes())
                        .and_then(|_| f.sync_data())
                        .map_err(|e| Error::io(tmp.display(), e))?;
                    fs::rename(&tmp, &path).map_err(|e| Error::io(path.display(), e))
                })();
                if res.is_err() {
                    let _ = fs::remove_file(&tmp);
                }
                res?;
            }
            None => fs::remove_file(&path).map_err(|e| Error::io(path.display(), e))?,
        }
        sync_dir(&parent)?;
        Ok(CasOutcome::Swapped)
    }

    fn list(&self) -> Result<Vec<(RefName, ObjectId)>> {
        let mut out = Vec::new();
        for sub in ["branches", "tags"] {
            let d = self.dir.join(sub);
            let rd = fs::read_dir(&d).map_err(|e| Error::io(d.display(), e))?;
            for ent in rd {
                let ent = ent.map_err(|e| Error::io(d.display(), e))?;
                let Some(n) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if n.starts_with('.') {
                    continue;
                }
                let name = RefName::from_key(&format!("{sub}/{n}"))?;
                if let Some(id) = Self::read(&ent.path(), &name.key())? {
                    out.push((name, id));
                }
            }
        }
        out.sort();
        Ok(out)
    }
}
