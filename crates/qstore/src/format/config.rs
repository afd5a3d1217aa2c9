//! [`RepoConfig`]: the `config.json` blob written at `init`: format version, repository id,
//! chunk size, pack size target and the automatic pack-merge settings.
//!
//! Format version 2 is refused by older builds (they read version 1 only), and this build
//! refuses any config field it does not know, so a later format change cannot be half
//! understood. Version-1 configs still parse: such a repository is read-only until
//! `qstore upgrade` rewrites it (see [`RepoConfig::read_only`]).
//!
//! Format version 3 is version 2 plus `ref_store`: the repository keeps its refs, locks and
//! counters outside its storage (etcd, or S3 conditional writes), and `ref_store` says which
//! kind and where it was at `init`. Builds that know only version 2 refuse it by number, so
//! an older binary can never open such a repository without its ref store (and see no refs).
//! Repositories that keep their refs beside their blobs (local, memory) stay version 2.
//!
//! Format version 4 adds the encodings of the codecs work: lossy state entries and the
//! near-Hermitian layout (tree nodes of version 3, which only such entries need). `ref_store`
//! is optional in version 4 (the refs may live beside the blobs or outside). This build
//! creates version 4; it reads and writes versions 2 and 3 with the older encodings only
//! (so builds that know those versions keep reading them) until `qstore upgrade` rewrites the
//! config as version 4. Builds that know only versions up to 3 refuse version 4 by number.

use super::manifest::check_chunk_size;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The repository format version this build creates (and `upgrade` moves repositories to).
pub const REPO_FORMAT_VERSION: u32 = 4;
/// The format version before 4 of repositories that keep their refs beside their blobs.
pub const LOCAL_REFS_FORMAT_VERSION: u32 = 2;
/// The format version before 4 of repositories whose refs live in an external ref store.
pub const SHARED_REFS_FORMAT_VERSION: u32 = 3;
/// The oldest repository format version this build reads (read-only, until upgraded).
pub const OLDEST_READABLE_FORMAT: u32 = 1;
/// Storage key of the configuration blob.
pub const CONFIG_KEY: &str = "config.json";
/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;
/// Default pack size target: 256 MiB.
pub const DEFAULT_PACK_TARGET: u64 = 256 << 20;
/// Default number of small packs that triggers an automatic merge.
pub const DEFAULT_MERGE_THRESHOLD: u32 = 16;
/// Default size under which a pack counts as small (merged automatically): 32 MiB.
pub const DEFAULT_MERGE_PACK_BYTES: u64 = 32 << 20;

/// Per-repository settings, fixed at `init` (the merge settings may be changed later).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepoConfig {
    pub format_version: u32,
    /// A UUID naming this repository (assigned at `init` when empty). Stores that hold part
    /// of a repository elsewhere (a ref store) record the same id.
    pub repository_id: String,
    /// Bytes per chunk, a power of two.
    pub chunk_size: u64,
    /// A writer starts a new pack once the current one reaches this size.
    pub pack_target_bytes: u64,
    /// Merge the small packs once there are this many (0: never automatically; `qstore
    /// repack` and `qstore gc` still do).
    pub merge_threshold: u32,
    /// Packs smaller than this are small: merged automatically.
    pub merge_pack_bytes: u64,
    /// Version 3 only: the external store of refs, locks and counters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_store: Option<RefStoreInfo>,
}

/// Which external ref store a version-3 repository requires.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefStoreInfo {
    /// The kind: `etcd` or `s3`.
    pub kind: String,
    /// Where it was when the repository was created (no credentials), for messages.
    pub created_with: String,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            format_version: REPO_FORMAT_VERSION,
            repository_id: String::new(),
            chunk_size: DEFAULT_CHUNK_SIZE,
            pack_target_bytes: DEFAULT_PACK_TARGET,
            merge_threshold: DEFAULT_MERGE_THRESHOLD,
            merge_pack_bytes: DEFAULT_MERGE_PACK_BYTES,
            ref_store: None,
        }
    }
}

/// The version-1 config, exactly as version-1 builds wrote it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigV1 {
    #[allow(dead_code)]
    format_version: u32,
    chunk_size: u64,
    pack_target_bytes: u64,
}

/// A fresh repository id: a random (version 4) UUID.
pub fn new_repository_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

impl RepoConfig {
    /// Parse and check `config.json`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            format_version: u32,
        }
        let corrupt =
            |e: serde_json::Error| Error::corrupt("repository config.json", e.to_string());
        let probe: Probe = serde_json::from_slice(bytes).map_err(corrupt)?;
        let c = match probe.format_version {
            1 => {
                let v1: ConfigV1 = serde_json::from_slice(bytes).map_err(corrupt)?;
                RepoConfig {
                    format_version: 1,
                    repository_id: String::new(),
                    chunk_size: v1.chunk_size,
                    pack_target_bytes: v1.pack_target_bytes,
                    ..Default::default()
                }
            }
            LOCAL_REFS_FORMAT_VERSION | SHARED_REFS_FORMAT_VERSION | REPO_FORMAT_VERSION => {
                let c: RepoConfig = serde_json::from_slice(bytes).map_err(corrupt)?;
                if c.format_version != REPO_FORMAT_VERSION
                    && c.ref_store.is_some() != (c.format_version == SHARED_REFS_FORMAT_VERSION)
                {
                    return Err(Error::corrupt(
                        "repository config.json",
                        "ref_store is required in format version 3 and refused in version 2",
                    ));
                }
                if uuid::Uuid::parse_str(&c.repository_id).is_err() {
                    return Err(Error::corrupt(
                        "repository config.json",
                        format!("repository_id {:?} is not a UUID", c.repository_id),
                    ));
                }
                c
            }
            v => {
                return Err(Error::UnsupportedVersion {
                    what: "repository".into(),
                    version: v,
                    supported: REPO_FORMAT_VERSION,
                });
            }
        };
        c.check()?;
        Ok(c)
    }

    /// True for a repository of an older format that this build reads but does not write.
    pub fn read_only(&self) -> bool {
        self.format_version < LOCAL_REFS_FORMAT_VERSION
    }

    /// True when the repository may hold the encodings of format version 4 (lossy entries,
    /// the near-Hermitian layout).
    pub fn has_format_4(&self) -> bool {
        self.format_version >= REPO_FORMAT_VERSION
    }

    /// Check the settings.
    pub fn check(&self) -> Result<()> {
        check_chunk_size(self.chunk_size).map_err(Error::InvalidArgument)?;
        if self.pack_target_bytes < self.chunk_size {
            return Err(Error::InvalidArgument(
                "the pack size target must be at least one chunk".into(),
            ));
        }
        if self.merge_pack_bytes == 0 {
            return Err(Error::InvalidArgument(
                "the small-pack size of automatic merges must be positive".into(),
            ));
        }
        Ok(())
    }

    /// The JSON bytes (pretty-printed, so people can read it).
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec_pretty(self).expect("config serialises")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn config_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = RepoConfig::decode(&b);
        }
    }

    fn v2() -> RepoConfig {
        RepoConfig {
            format_version: LOCAL_REFS_FORMAT_VERSION,
            repository_id: new_repository_id(),
            ..Default::default()
        }
    }

    #[test]
    fn config_round_trips_and_checks() {
        let c = v2();
        assert_eq!(RepoConfig::decode(&c.encode()).unwrap(), c);
        let bad = RepoConfig {
            chunk_size: 1000,
            ..c.clone()
        };
        assert!(RepoConfig::decode(&bad.encode()).is_err());
        let no_id = RepoConfig {
            repository_id: "x".into(),
            ..c
        };
        assert!(RepoConfig::decode(&no_id.encode()).is_err());
    }

    #[test]
    fn unknown_fields_and_versions_are_refused() {
        let mut j: serde_json::Value = serde_json::from_slice(&v2().encode()).unwrap();
        j["refs"] = "etcd://x".into();
        assert!(RepoConfig::decode(j.to_string().as_bytes()).is_err());
        let mut j: serde_json::Value = serde_json::from_slice(&v2().encode()).unwrap();
        j["format_version"] = 5.into();
        assert!(matches!(
            RepoConfig::decode(j.to_string().as_bytes()),
            Err(Error::UnsupportedVersion { version: 5, .. })
        ));
        // Version 3 needs its ref store, version 2 refuses one.
        let mut j: serde_json::Value = serde_json::from_slice(&v2().encode()).unwrap();
        j["format_version"] = 3.into();
        assert!(RepoConfig::decode(j.to_string().as_bytes()).is_err());
        j["ref_store"] = serde_json::json!({"kind": "etcd", "created_with": "etcd://h:1/p"});
        let c = RepoConfig::decode(j.to_string().as_bytes()).unwrap();
        assert_eq!(c.ref_store.as_ref().unwrap().kind, "etcd");
        assert!(!c.read_only());
        j["format_version"] = 2.into();
        assert!(RepoConfig::decode(j.to_string().as_bytes()).is_err());
        // Version 4 takes a ref store or none.
        j["format_version"] = 4.into();
        let c = RepoConfig::decode(j.to_string().as_bytes()).unwrap();
        assert!(c.has_format_4() && c.ref_store.is_some());
        j.as_object_mut().unwrap().remove("ref_store");
        assert!(
            RepoConfig::decode(j.to_string().as_bytes())
                .unwrap()
                .has_format_4()
        );
    }

    #[test]
    fn version_one_reads_as_read_only() {
        let c = RepoConfig::decode(
            br#"{"format_version": 1, "chunk_size": 256, "pack_target_bytes": 4096}"#,
        )
        .unwrap();
        assert!(c.read_only());
        assert_eq!(c.chunk_size, 256);
        assert!(
            RepoConfig::decode(
                br#"{"format_version": 1, "chunk_size": 256, "pack_target_bytes": 4096, "x": 1}"#
            )
            .is_err()
        );
    }
}
