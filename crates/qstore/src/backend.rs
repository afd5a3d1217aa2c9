//! Repository addresses and the backends behind them: [`Address`] (what an address string
//! names), [`Backends`] (the blob storage and the coordination a repository runs on) and
//! [`Connector`], the hook through which crates outside the engine add schemes
//! (`s3://` from `qstore-cluster`) without the engine knowing their protocols.
//! `memory://` and local directories are built in.

use crate::coord::Coordination;
use crate::error::{Error, Result};
use crate::storage::Storage;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock, RwLock};

/// What a repository runs on.
#[derive(Clone, Debug)]
pub struct Backends {
    /// Immutable blobs: packs, the config.
    pub storage: Arc<dyn Storage>,
    /// Refs, locks and counters; `None` when the address named none (the repository's
    /// config then says which one it needs, and opening fails with that message).
    pub coordination: Option<Arc<dyn Coordination>>,
}

/// Turns addresses of one scheme into [`Backends`].
pub trait Connector: Send + Sync {
    /// Connect to the backends `address` names (`create`: for a new repository).
    fn connect(&self, address: &str, create: bool) -> Result<Backends>;
}

fn registry() -> &'static RwLock<HashMap<String, Arc<dyn Connector>>> {
    static REG: OnceLock<RwLock<HashMap<String, Arc<dyn Connector>>>> = OnceLock::new();
    REG.get_or_init(Default::default)
}

/// Make `scheme://...` addresses open through `connector` (replacing an earlier one).
pub fn register(scheme: &str, connector: Arc<dyn Connector>) {
    registry()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(scheme.to_ascii_lowercase(), connector);
}

/// The connector registered for `scheme`.
pub(crate) fn connector(scheme: &str) -> Option<Arc<dyn Connector>> {
    registry()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(&scheme.to_ascii_lowercase())
        .cloned()
}

/// Where a repository lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Address {
    /// `memory://name`: in this process only.
    Memory(String),
    /// A directory: a plain path or `file:///abs/path`.
    Local(PathBuf),
    /// Another scheme, opened by a registered [`Connector`] (`s3://bucket/prefix?...`).
    Remote { scheme: String },
}

impl Address {
    /// Parse `memory://name`, `file:///abs/path`, a plain path, or `SCHEME://...` of a
    /// registered scheme.
    pub fn parse(s: &str) -> Result<Self> {
        if let Some(name) = s.strip_prefix("memory://") {
            if name.is_empty() {
                return Err(Error::BadAddress(s.into()));
            }
            return Ok(Address::Memory(name.into()));
        }
        if let Some(p) = s.strip_prefix("file://") {
            if !p.starts_with('/') {
                return Err(Error::BadAddress(s.into()));
            }
            return Ok(Address::Local(PathBuf::from(p)));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            if connector(scheme).is_some() {
                return Ok(Address::Remote {
                    scheme: scheme.to_ascii_lowercase(),
                });
            }
            return Err(Error::BadAddress(s.into()));
        }
        if s.is_empty() {
            return Err(Error::BadAddress(s.into()));
        }
        Ok(Address::Local(PathBuf::from(s)))
    }
}
