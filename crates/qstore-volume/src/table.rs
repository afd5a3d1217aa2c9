//! The volume table: every volume's options and its mounts (a multiset of mount IDs),
//! persisted in `ROOT/volumes.json` by write-to-temporary, fsync, rename, fsync of the
//! directory, before any answer is sent, so the plugin's state survives `kill -9`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Where a volume's bytes live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// A tmpfs of the given size.
    Memory,
    /// An ext4 file system in a loop-mounted image file of the given size.
    Disk,
}

/// A volume's options, checked at Create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VolumeSpec {
    pub tier: Tier,
    /// Hard size limit in bytes.
    pub size: u64,
    /// Commit the files to the repository when the last container unmounts.
    pub snapshot_on_unmount: bool,
    /// `REF:PATH` the volume was created from.
    pub from: Option<String>,
}

/// One volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub spec: VolumeSpec,
    /// RFC 3339 creation time.
    pub created_at: String,
    /// Mount ID -> how many times it is mounted.
    pub mounts: BTreeMap<String, u32>,
}

impl Volume {
    /// Mounts outstanding.
    pub fn mount_count(&self) -> u32 {
        self.mounts.values().sum()
    }
}

/// Every volume, by name.
#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Table {
    pub volumes: BTreeMap<String, Volume>,
}

fn io(path: &Path, e: std::io::Error) -> String {
    format!("{}: {e}", path.display())
}

impl Table {
    fn file(root: &Path) -> PathBuf {
        root.join("volumes.json")
    }

    /// The table saved under `root` (empty when none was saved yet).
    pub fn load(root: &Path) -> Result<Table, String> {
        let f = Table::file(root);
        match std::fs::read(&f) {
            Ok(b) => {
                serde_json::from_slice(&b).map_err(|e| format!("{} is damaged: {e}", f.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Table::default()),
            Err(e) => Err(io(&f, e)),
        }
    }

    /// Save durably: temporary file, fsync, rename over the table, fsync of the directory.
    pub fn save(&self, root: &Path) -> Result<(), String> {
        let f = Table::file(root);
        let tmp = root.join("volumes.json.tmp");
        let body = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        let mut out = std::fs::File::create(&tmp).map_err(|e| io(&tmp, e))?;
        out.write_all(&body).map_err(|e| io(&tmp, e))?;
        out.sync_all().map_err(|e| io(&tmp, e))?;
        std::fs::rename(&tmp, &f).map_err(|e| io(&f, e))?;
        std::fs::File::open(root)
            .and_then(|d| d.sync_all())
            .map_err(|e| io(root, e))
    }
}

/// Parse `2g`, `512m`, `100k`, `1048576` (powers of 1024, as Docker's own size options).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let t = t.strip_suffix('b').unwrap_or(&t);
    let (num, mult) = match t.chars().last() {
        Some('k') => (&t[..t.len() - 1], 1u64 << 10),
        Some('m') => (&t[..t.len() - 1], 1 << 20),
        Some('g') => (&t[..t.len() - 1], 1 << 30),
        Some('t') => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    let v: f64 = num
        .parse()
        .map_err(|_| format!("size {s:?} is not like 2g, 512m or 1048576"))?;
    let bytes = v * mult as f64;
    if !(bytes.is_finite() && (1.0..1e18).contains(&bytes)) {
        return Err(format!("size {s:?} is out of range"));
    }
    Ok(bytes as u64)
}

/// Check a volume name: 1-128 characters of letters, digits, `_`, `-`, `.`, not `.`/`..`.
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name != "."
        && !name.contains("..")
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "volume name {name:?} must be 1-128 letters, digits, '_', '-' or '.' (no '/' or '..')"
        ))
    }
}

/// Options of Create: `tier=memory|disk`, `size=2g` (required unless `from` is given),
/// `snapshot=on-unmount`, `from=REF:PATH`. Unknown options are refused. Without `size`, a
/// volume made `from` a snapshot is sized at Create by [`default_size`] (size 0 until then).
pub fn parse_spec(opts: &BTreeMap<String, String>) -> Result<VolumeSpec, String> {
    let mut tier = None;
    let mut size = None;
    let mut snapshot = false;
    let mut from = None;
    for (k, v) in opts {
        match k.as_str() {
            "tier" => {
                tier = Some(match v.as_str() {
                    "memory" => Tier::Memory,
                    "disk" => Tier::Disk,
                    _ => return Err(format!("tier={v} is not memory or disk")),
                })
            }
            "size" => size = Some(parse_size(v)?),
            "snapshot" => match v.as_str() {
                "on-unmount" => snapshot = true,
                "never" => snapshot = false,
                _ => return Err(format!("snapshot={v} is not on-unmount or never")),
            },
            "from" => {
                if !v.contains(':') {
                    return Err(format!("from={v} is not REF:PATH"));
                }
                from = Some(v.clone())
            }
            _ => {
                return Err(format!(
                    "unknown option {k} (use tier, size, snapshot, from)"
                ));
            }
        }
    }
    let size = match (size, &from) {
        (Some(s), _) => s,
        // Sized from the snapshot at Create (see `default_size`).
        (None, Some(_)) => 0,
        (None, None) => {
            return Err(
                "option size is required (e.g. --opt size=2g), unless from=REF:PATH gives a \
                 snapshot to size the volume from"
                    .into(),
            );
        }
    };
    Ok(VolumeSpec {
        tier: tier.unwrap_or(Tier::Disk),
        size,
        snapshot_on_unmount: snapshot,
        from,
    })
}

/// The size of a volume made from a snapshot of `snapshot_bytes` without `size=`: the
/// snapshot plus half as much again, at least 64 MiB more (room to work, and the ext4
/// journal and tables of the disk tier), rounded up to a MiB.
pub fn default_size(snapshot_bytes: u64) -> u64 {
    const MIB: u64 = 1 << 20;
    let want = snapshot_bytes.saturating_add((snapshot_bytes / 2).max(64 * MIB));
    want.div_ceil(MIB).saturating_mul(MIB)
}
