//! [`RepoConfig`]: the `config.json` blob written once at `init`: format version, chunk size,
//! pack size target.

use super::manifest::check_chunk_size;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};

/// The repository format version this build writes and reads.
pub const REPO_FORMAT_VERSION: u32 = 1;
/// Storage key of the configuration blob.
pub const CONFIG_KEY: &str = "config.json";
/// Default chunk size: 1 MiB.
pub const DEFAULT_CHUNK_SIZE: u64 = 1 << 20;
/// Default pack size target: 256 MiB.
pub const DEFAULT_PACK_TARGET: u64 = 256 << 20;

/// Per-repository settings, fixed at `init`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoConfig {
    pub format_version: u32,
    /// Bytes per chunk, a power of two.
    pub chunk_size: u64,
    /// A writer starts a new pack once the current one reaches this size.
    pub pack_target_bytes: u64,
}

impl Default for RepoConfig {
    fn default() -> Self {
        RepoConfig {
            format_version: REPO_FORMAT_VERSION,
            chunk_size: DEFAULT_CHUNK_SIZE,
            pack_target_bytes: DEFAULT_PACK_TARGET,
        }
    }
}

impl RepoConfig {
    /// Parse and check `config.json`.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        #[derive(Deserialize)]
        struct Probe {
            format_version: u32,
        }
        let probe: Probe = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("repository config.json", e.to_string()))?;
        if probe.format_version != REPO_FORMAT_VERSION {
            return Err(Error::UnsupportedVersion {
                what: "repository".into(),
                version: probe.format_version,
                supported: REPO_FORMAT_VERSION,
            });
        }
        let c: RepoConfig = serde_json::from_slice(bytes)
            .map_err(|e| Error::corrupt("repository config.json", e.to_string()))?;
        c.check()?;
        Ok(c)
    }

    /// Check the settings.
    pub fn check(&self) -> Result<()> {
        check_chunk_size(self.chunk_size).map_err(Error::InvalidArgument)?;
        if self.pack_target_bytes < self.chunk_size {
            return Err(Error::InvalidArgument(
                "the pack size target must be at least one chunk".into(),
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

    #[test]
    fn config_round_trips_and_checks() {
        let c = RepoConfig::default();
        assert_eq!(RepoConfig::decode(&c.encode()).unwrap(), c);
        let bad = RepoConfig {
            chunk_size: 1000,
            ..c
        };
        assert!(RepoConfig::decode(&bad.encode()).is_err());
    }
}
