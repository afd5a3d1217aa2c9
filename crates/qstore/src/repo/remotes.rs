//! Named remotes: other repositories' addresses kept with a repository (`qstore remote add
//! NAME URL`), so `push`, `pull` and the drain can name them. Stored as the small document
//! `remotes.json` of the repository's coordination (a file beside `config.json` locally, a
//! key in etcd for a cluster repository), a JSON object of name to address. Older builds
//! ignore it: no format change.

use super::Repository;
use crate::error::{Error, Result};
use std::collections::BTreeMap;

/// The coordination document holding the remotes.
pub const REMOTES_DOC: &str = "remotes.json";

/// The remote every clone records: where it was cloned from.
pub const ORIGIN: &str = "origin";

fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "remote name {name:?}: use 1 to 64 letters, digits, '-', '_' or '.', not starting \
             with '.'"
        )))
    }
}

/// A relative local path made absolute (a remote is used from any working directory);
/// other addresses as they are.
fn absolute_path(address: &str) -> String {
    if address.contains("://") {
        return address.to_string();
    }
    std::path::absolute(address).map_or_else(|_| address.to_string(), |p| p.display().to_string())
}

/// True when `s` is written as an address rather than a remote name.
fn looks_like_address(s: &str) -> bool {
    s.contains("://") || s.contains('/') || s.starts_with('.') || s.starts_with('~')
}

impl Repository {
    /// The named remotes (name to address).
    pub fn remotes(&self) -> Result<BTreeMap<String, String>> {
        match self.coordination().document(REMOTES_DOC)? {
            None => Ok(BTreeMap::new()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| {
                Error::corrupt(
                    REMOTES_DOC,
                    format!("not a JSON object of names to addresses: {e}"),
                )
            }),
        }
    }

    fn put_remotes(&self, r: &BTreeMap<String, String>) -> Result<()> {
        let body =
            serde_json::to_vec_pretty(r).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        self.coordination().put_document(REMOTES_DOC, &body)
    }

    /// Record remote `name` at `address` (replacing an earlier one only when `replace`).
    pub fn add_remote(&self, name: &str, address: &str, replace: bool) -> Result<()> {
        check_name(name)?;
        if address.trim().is_empty() {
            return Err(Error::InvalidArgument("an empty remote address".into()));
        }
        self.check_writable()?;
        let address = &absolute_path(address);
        let mut r = self.remotes()?;
        if !replace && r.get(name).is_some_and(|a| a != address) {
            return Err(Error::InvalidArgument(format!(
                "remote {name:?} exists (at {}); remove it first",
                r[name]
            )));
        }
        r.insert(name.to_string(), address.to_string());
        self.put_remotes(&r)
    }

    /// Forget remote `name`.
    pub fn remove_remote(&self, name: &str) -> Result<()> {
        self.check_writable()?;
        let mut r = self.remotes()?;
        if r.remove(name).is_none() {
            return Err(Error::InvalidArgument(format!("no remote named {name:?}")));
        }
        self.put_remotes(&r)
    }

    /// The address `remote` stands for: a remote's name, or an address as it is.
    pub fn remote_address(&self, remote: &str) -> Result<String> {
        if let Some(a) = self.remotes()?.get(remote) {
            return Ok(a.clone());
        }
        if looks_like_address(remote) {
            return Ok(remote.to_string());
        }
        Err(Error::InvalidArgument(format!(
            "no remote named {remote:?} (add it with `qstore remote add {remote} ADDRESS`, or \
             give an address)"
        )))
    }
}
