//! The volume driver: what each protocol call does to the volume table, the mounts and the
//! repository. Every change is saved durably before the call answers.
//!
//! - Create checks the name and options, provisions the file system (and fills it from
//!   `from=REF:PATH`; without `size=` it is sized from that snapshot), then records the
//!   volume. Creating an existing name is a no-op, as Docker
//!   expects (it calls Get first anyway).
//! - Mount IDs are counted per volume as a multiset; Unmount of an unknown ID succeeds. When
//!   the last mount goes and the volume has `snapshot=on-unmount`, its files are committed.
//! - Remove of a volume that is gone succeeds; of a mounted one it fails, naming the mounts.

use crate::protocol::VolumeInfo;
use crate::provision::{is_mounted, provision, unprovision};
use crate::table::{Table, Volume, check_name, default_size, parse_spec};
use qstore::state::input::FileSource;
use qstore::{ArrayInfo, CommitOptions, DType, KindRequest, PutOptions, Repository};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The driver's state.
pub struct Driver {
    root: PathBuf,
    repo: Repository,
    table: Table,
    /// Volumes with mounts that no running container used at the last reconciliation.
    unused: std::collections::BTreeSet<String>,
}

fn now_rfc3339() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let [y, m, d, h, mi, se] = qstore::format::commit::utc_fields(ms);
    format!("{y:04}-{m:02}-{d:02}T{h:02}:{mi:02}:{se:02}Z")
}

impl Driver {
    /// Open the driver's state under `root` and the repository it snapshots into. Volumes whose
    /// file system is not mounted any more (after a reboot) are provisioned again.
    pub fn open(root: &Path, repo: Repository) -> Result<Driver, String> {
        std::fs::create_dir_all(root.join("volumes"))
            .and_then(|_| std::fs::create_dir_all(root.join("images")))
            .map_err(|e| format!("{}: {e}", root.display()))?;
        let table = Table::load(root)?;
        let d = Driver {
            root: root.to_path_buf(),
            repo,
            table,
            unused: Default::default(),
        };
        // A volume that cannot be mounted again is reported, not fatal: the plugin must still
        // answer Get for every volume, or Docker forgets them all. Its next Mount retries.
        for v in d.table.volumes.values() {
            if let Err(e) = provision(&v.spec, &d.dir(&v.name), &d.image(&v.name)) {
                eprintln!("qstore volume-plugin: volume {}: {e}", v.name);
            }
        }
        Ok(d)
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join("volumes").join(name)
    }

    fn image(&self, name: &str) -> PathBuf {
        self.root.join("images").join(format!("{name}.img"))
    }

    fn info(&self, v: &Volume) -> VolumeInfo {
        let mut status = BTreeMap::new();
        status.insert("tier".into(), serde_json::json!(v.spec.tier));
        status.insert("size".into(), serde_json::json!(v.spec.size));
        status.insert("mounts".into(), serde_json::json!(v.mount_count()));
        status.insert(
            "snapshot".into(),
            serde_json::json!(if v.spec.snapshot_on_unmount {
                "on-unmount"
            } else {
                "never"
            }),
        );
        VolumeInfo {
            name: v.name.clone(),
            mountpoint: self.dir(&v.name).display().to_string(),
            created_at: v.created_at.clone(),
            status,
        }
    }

    /// Create a volume.
    pub fn create(&mut self, name: &str, opts: &BTreeMap<String, String>) -> Result<(), String> {
        check_name(name)?;
        let mut spec = parse_spec(opts)?;
        if self.table.volumes.contains_key(name) {
            return Ok(());
        }
        if let Some(from) = &spec.from {
            let (r, p) = from.split_once(':').unwrap_or((from, ""));
            let commit = self
                .repo
                .resolve(r)
                .map_err(|e| format!("from={from}: {e}"))?;
            let states = self
                .repo
                .list_states(&commit, (!p.is_empty()).then_some(p))
                .map_err(|e| format!("from={from}: {e}"))?;
            if spec.size == 0 {
                let bytes: u128 = states.iter().map(|(_, e)| e.dense_bytes()).sum();
                spec.size = default_size(u64::try_from(bytes).unwrap_or(u64::MAX));
            }
        }
        let (dir, image) = (self.dir(name), self.image(name));
        provision(&spec, &dir, &image)?;
        if let Some(from) = &spec.from
            && let Err(e) = self.restore(from, &dir)
        {
            let _ = unprovision(&dir, &image);
            return Err(e);
        }
        self.table.volumes.insert(
            name.to_string(),
            Volume {
                name: name.to_string(),
                spec,
                created_at: now_rfc3339(),
                mounts: BTreeMap::new(),
            },
        );
        self.table.save(&self.root)
    }

    /// Remove a volume (a missing one is not an error; a mounted one is).
    pub fn remove(&mut self, name: &str) -> Result<(), String> {
        let Some(v) = self.table.volumes.get(name) else {
            return Ok(());
        };
        if v.mount_count() > 0 {
            return Err(format!(
                "volume {name} is in use ({} mounts); stop its containers first",
                v.mount_count()
            ));
        }
        unprovision(&self.dir(name), &self.image(name))?;
        self.table.volumes.remove(name);
        self.table.save(&self.root)
    }

    /// Mount for mount ID `id`; returns the mount point.
    pub fn mount(&mut self, name: &str, id: &str) -> Result<String, String> {
        // Fault injection for the tests (a Mount that fails, as a broken backing store would).
        if std::env::var("QSTORE_VOLUME_FAIL_MOUNT").is_ok_and(|v| v == name) {
            return Err(format!("mount of {name} failed (QSTORE_VOLUME_FAIL_MOUNT)"));
        }
        let dir = self.dir(name);
        let v = self
            .table
            .volumes
            .get_mut(name)
            .ok_or_else(|| format!("no volume {name}"))?;
        if !is_mounted(&dir) {
            provision(
                &v.spec,
                &dir,
                &self.root.join("images").join(format!("{name}.img")),
            )?;
        }
        *v.mounts.entry(id.to_string()).or_insert(0) += 1;
        self.table.save(&self.root)?;
        Ok(dir.display().to_string())
    }

    /// Unmount for mount ID `id` (unknown IDs and volumes succeed). The last unmount of a
    /// `snapshot=on-unmount` volume commits its files.
    pub fn unmount(&mut self, name: &str, id: &str) -> Result<(), String> {
        let Some(v) = self.table.volumes.get_mut(name) else {
            return Ok(());
        };
        let Some(n) = v.mounts.get_mut(id) else {
            return Ok(());
        };
        *n -= 1;
        if *n == 0 {
            v.mounts.remove(id);
        }
        let last = v.mount_count() == 0 && v.spec.snapshot_on_unmount;
        self.table.save(&self.root)?;
        if last {
            self.snapshot(name, "snapshot on last unmount")?;
        }
        Ok(())
    }

    /// The mount point of a volume.
    pub fn path(&self, name: &str) -> Result<String, String> {
        self.table
            .volumes
            .get(name)
            .map(|_| self.dir(name).display().to_string())
            .ok_or_else(|| format!("no volume {name}"))
    }

    pub fn get(&self, name: &str) -> Result<VolumeInfo, String> {
        self.table
            .volumes
            .get(name)
            .map(|v| self.info(v))
            .ok_or_else(|| format!("no volume {name}"))
    }

    pub fn list(&self) -> Vec<VolumeInfo> {
        self.table.volumes.values().map(|v| self.info(v)).collect()
    }

    /// Reconcile mount counts with the containers Docker runs (its API on `docker_socket`):
    /// a volume with mounts that no running container uses, at two reconciliations in a row
    /// (or once when `now` is set, at plugin start), has its mounts dropped, as if Docker had
    /// sent the Unmounts it never will after its own restart (and is snapshotted when it
    /// asks for it). Returns the volumes reconciled; nothing when Docker cannot be reached.
    pub fn reconcile(&mut self, docker_socket: &Path, now: bool) -> Vec<String> {
        let Ok(containers) = crate::client::request(docker_socket, "GET", "/containers/json", None)
        else {
            return Vec::new();
        };
        let mut used = std::collections::BTreeSet::new();
        for c in containers.as_array().into_iter().flatten() {
            for m in c["Mounts"].as_array().into_iter().flatten() {
                if m["Driver"] == "qstore"
                    && let Some(n) = m["Name"].as_str()
                {
                    used.insert(n.to_string());
                }
            }
        }
        let idle: Vec<String> = self
            .table
            .volumes
            .values()
            .filter(|v| v.mount_count() > 0 && !used.contains(&v.name))
            .map(|v| v.name.clone())
            .collect();
        let mut done = Vec::new();
        for name in &idle {
            if (now || self.unused.contains(name))
                && let Some(v) = self.table.volumes.get_mut(name)
            {
                v.mounts.clear();
                let snap = v.spec.snapshot_on_unmount;
                if self.table.save(&self.root).is_ok() && snap {
                    let _ = self.snapshot(name, "snapshot after reconciliation");
                }
                done.push(name.clone());
            }
        }
        self.unused = idle.into_iter().filter(|n| !done.contains(n)).collect();
        done
    }

    /// Commit the volume's regular files under `volumes/NAME/` (each one a uint8 array,
    /// chunked and deduplicated; files gone since the last snapshot are deleted). Returns the
    /// commit id.
    pub fn snapshot(&self, name: &str, message: &str) -> Result<String, String> {
        if !self.table.volumes.contains_key(name) {
            return Err(format!("no volume {name}"));
        }
        let dir = self.dir(name);
        let prefix = format!("volumes/{name}");
        let mut files = Vec::new();
        walk(&dir, &dir, &mut files)?;
        let err = |e: qstore::Error| e.to_string();
        let mut tx = self.repo.transaction("main").map_err(err)?;
        let head = self.repo.resolve("main").map_err(err)?;
        let before: Vec<String> = self
            .repo
            .list_states(&head, Some(&prefix))
            .map(|v| v.into_iter().map(|(p, _)| p).collect())
            .unwrap_or_default();
        let mut now = std::collections::BTreeSet::new();
        for (rel, path) in &files {
            let f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let len = f
                .metadata()
                .map_err(|e| format!("{}: {e}", path.display()))?
                .len();
            let p = format!("{prefix}/{rel}");
            let src = FileSource::new(f, path.clone(), 0, len);
            tx.put_source(
                &p,
                &ArrayInfo {
                    dtype: DType::UInt8,
                    shape: vec![len],
                },
                &src,
                &PutOptions {
                    kind: KindRequest::Array,
                    ..Default::default()
                },
            )
            .map_err(err)?;
            now.insert(p);
        }
        for p in before.iter().filter(|p| !now.contains(*p)) {
            tx.delete(p).map_err(err)?;
        }
        tx.commit(CommitOptions {
            message: format!("{message}: volume {name}"),
            author: "qstore volume-plugin".into(),
            metadata: [("qstore.volume".to_string(), name.to_string())].into(),
        })
        .map(|id| id.to_hex())
        .map_err(err)
    }

    /// Write the files stored under `REF:PATH` into `dir`.
    fn restore(&self, from: &str, dir: &Path) -> Result<(), String> {
        let (r, p) = from.split_once(':').unwrap_or((from, ""));
        let err = |e: qstore::Error| format!("from={from}: {e}");
        let commit = self.repo.resolve(r).map_err(err)?;
        let states = self
            .repo
            .list_states(&commit, (!p.is_empty()).then_some(p))
            .map_err(err)?;
        for (path, _) in states {
            let rel = path
                .strip_prefix(p)
                .unwrap_or(&path)
                .trim_start_matches('/');
            let out = dir.join(if rel.is_empty() { &path } else { rel });
            if let Some(parent) = out.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            let mut r = self.repo.reader(&commit.to_hex(), &path).map_err(err)?;
            let mut f =
                std::fs::File::create(&out).map_err(|e| format!("{}: {e}", out.display()))?;
            r.write_dense_to(&mut f, &|_| {}).map_err(err)?;
        }
        Ok(())
    }
}

/// Regular files under `dir`, as (path relative to `base` with `/`, full path).
fn walk(base: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", dir.display()))?;
        let path = e.path();
        let ft = e
            .file_type()
            .map_err(|e| format!("{}: {e}", path.display()))?;
        if ft.is_dir() {
            if path.file_name().is_some_and(|n| n == "lost+found") {
                continue;
            }
            walk(base, &path, out)?;
        } else if ft.is_file() {
            let rel = path
                .strip_prefix(base)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .into_owned();
            out.push((rel, path));
        }
    }
    Ok(())
}
