//! [`LocalRefStore`]: refs of a local repository, as git keeps them: recently moved refs as
//! small loose files (`refs/branches/main` holds the commit id in hex), all others in one
//! packed file (`refs/packed`, see [`crate::format::refs`]). A loose file wins over the
//! packed entry of the same name. Once there are more than [`LOOSE_LIMIT`] loose refs, the
//! store folds them into the packed file, so a repository with hundreds of branches and tags
//! still has a handful of files.
//!
//! Every change takes an exclusive `flock` on `refs/lock`, reads, compares, writes a temporary
//! file, fsyncs it, renames it into place and fsyncs the directory. Readers need no lock:
//! renames are atomic, and the write order (packed file first, loose file removed last) means
//! a reader never sees a ref go back to an older value. Safe for many processes on one host;
//! a process killed while holding the lock releases it with its file descriptor.

use super::{CasOutcome, RefStore};
use crate::error::{Error, Result};
use crate::format::refs::PackedRefs;
use crate::id::ObjectId;
use crate::path::RefName;
use crate::storage::local::{sync_dir, tmp_name};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Loose refs beyond this many are folded into the packed file.
pub const LOOSE_LIMIT: usize = 8;
/// Name of the packed file inside the refs directory.
pub const PACKED_FILE: &str = "packed";

/// Refs as files in a directory.
#[derive(Debug)]
pub struct LocalRefStore {
    dir: PathBuf,
}

/// Write `bytes` to `path` atomically and durably (temporary file, fsync, rename, fsync dir).
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = path.parent().unwrap_or(Path::new("."));
    let tmp = parent.join(format!(".{}", tmp_name()));
    let res = (|| {
        let mut f = File::create(&tmp).map_err(|e| Error::io(tmp.display(), e))?;
        f.write_all(bytes)
            .and_then(|_| f.sync_data())
            .map_err(|e| Error::io(tmp.display(), e))?;
        fs::rename(&tmp, path).map_err(|e| Error::io(path.display(), e))
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res?;
    sync_dir(parent)
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

    fn read_loose(path: &Path, name: &str) -> Result<Option<ObjectId>> {
        match fs::read_to_string(path) {
            Ok(s) => ObjectId::from_hex(s.trim())
                .map(Some)
                .ok_or_else(|| Error::corrupt(format!("ref {name}"), "not a commit id")),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io(path.display(), e)),
        }
    }

    fn read_packed(&self) -> Result<PackedRefs> {
        let p = self.dir.join(PACKED_FILE);
        match fs::read(&p) {
            Ok(b) => PackedRefs::decode(&b).map_err(|d| Error::corrupt("refs/packed", d)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(PackedRefs::default()),
            Err(e) => Err(Error::io(p.display(), e)),
        }
    }

    /// Loose refs on disk, with their files.
    fn loose(&self) -> Result<Vec<(RefName, ObjectId, PathBuf)>> {
        let mut out = Vec::new();
        for sub in ["branches", "tags"] {
            let d = self.dir.join(sub);
            let rd = match fs::read_dir(&d) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(Error::io(d.display(), e)),
            };
            for ent in rd {
                let ent = ent.map_err(|e| Error::io(d.display(), e))?;
                let Some(n) = ent.file_name().to_str().map(str::to_string) else {
                    continue;
                };
                if n.starts_with('.') {
                    continue;
                }
                let name = RefName::from_key(&format!("{sub}/{n}"))?;
                if let Some(id) = Self::read_loose(&ent.path(), &name.key())? {
                    out.push((name, id, ent.path()));
                }
            }
        }
        Ok(out)
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

    /// Fold every loose ref into the packed file (caller holds the lock): write the packed
    /// file first, then remove the loose files, so every read in between sees the same value.
    fn pack_loose(&self) -> Result<()> {
        let loose = self.loose()?;
        if loose.is_empty() {
            return Ok(());
        }
        let mut packed = self.read_packed()?;
        for (name, id, _) in &loose {
            packed.refs.insert(name.clone(), *id);
        }
        write_atomic(&self.dir.join(PACKED_FILE), &packed.encode())?;
        for (_, _, path) in &loose {
            fs::remove_file(path).map_err(|e| Error::io(path.display(), e))?;
        }
        for sub in ["branches", "tags"] {
            sync_dir(&self.dir.join(sub))?;
        }
        Ok(())
    }

    /// Fold all loose refs into the packed file now.
    pub fn pack(&self) -> Result<()> {
        let _lock = self.lock()?;
        self.pack_loose()
    }

    /// Number of loose ref files.
    pub fn loose_count(&self) -> Result<usize> {
        Ok(self.loose()?.len())
    }
}

impl RefStore for LocalRefStore {
    fn get(&self, name: &RefName) -> Result<Option<ObjectId>> {
        if let Some(id) = Self::read_loose(&self.file(name), &name.key())? {
            return Ok(Some(id));
        }
        Ok(self.read_packed()?.refs.get(name).copied())
    }

    fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome> {
        let _lock = self.lock()?;
        let actual = self.get(name)?;
        if actual != expected {
            return Ok(CasOutcome::Mismatch { actual });
        }
        let path = self.file(name);
        match new {
            Some(id) => write_atomic(&path, format!("{}\n", id.to_hex()).as_bytes())?,
            None => {
                let mut packed = self.read_packed()?;
                if packed.refs.remove(name).is_some() {
                    write_atomic(&self.dir.join(PACKED_FILE), &packed.encode())?;
                }
                match fs::remove_file(&path) {
                    Ok(()) => sync_dir(path.parent().unwrap_or(&self.dir))?,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(Error::io(path.display(), e)),
                }
            }
        }
        if self.loose()?.len() > LOOSE_LIMIT {
            self.pack_loose()?;
        }
        Ok(CasOutcome::Swapped)
    }

    fn compact(&self) -> Result<()> {
        self.pack()
    }

    fn list(&self) -> Result<Vec<(RefName, ObjectId)>> {
        let mut all = self.read_packed()?.refs;
        for (name, id, _) in self.loose()? {
            all.insert(name, id);
        }
        Ok(all.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_refs_stay_few_files_and_keep_their_values() {
        let dir = tempfile::tempdir().unwrap();
        let s = LocalRefStore::new(dir.path()).unwrap();
        let id = |i: u8| ObjectId([i; 32]);
        for i in 0..100u8 {
            let name = if i % 2 == 0 {
                RefName::branch(&format!("b{i}")).unwrap()
            } else {
                RefName::tag(&format!("t{i}")).unwrap()
            };
            assert_eq!(
                s.compare_and_swap(&name, None, Some(id(i))).unwrap(),
                CasOutcome::Swapped
            );
            assert!(s.loose_count().unwrap() <= LOOSE_LIMIT);
        }
        let b4 = RefName::branch("b4").unwrap();
        assert_eq!(s.get(&b4).unwrap(), Some(id(4)));
        // Move a packed ref (goes loose), then delete it: it must not come back.
        s.compare_and_swap(&b4, Some(id(4)), Some(id(200))).unwrap();
        assert_eq!(s.get(&b4).unwrap(), Some(id(200)));
        assert!(matches!(
            s.compare_and_swap(&b4, Some(id(4)), None).unwrap(),
            CasOutcome::Mismatch { actual: Some(_) }
        ));
        s.compare_and_swap(&b4, Some(id(200)), None).unwrap();
        assert_eq!(s.get(&b4).unwrap(), None);
        let all = s.list().unwrap();
        assert_eq!(all.len(), 99);
        let files = fs::read_dir(dir.path().join("branches")).unwrap().count()
            + fs::read_dir(dir.path().join("tags")).unwrap().count();
        assert!(files <= LOOSE_LIMIT, "{files} loose files");
    }
}
