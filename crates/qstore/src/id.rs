//! Identifiers: [`ObjectId`] (the BLAKE3 hash that names every stored object) and
//! [`PackId`] (the random name of a pack file).

use serde::{Deserialize, Serialize};
use std::fmt;

/// The 32-byte BLAKE3 hash that names a stored object.
///
/// For a chunk it is the hash of its raw (uncompressed) bytes; for a metadata object it is the
/// hash of its kind byte, its format version byte and its body (see `docs/format.md`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ObjectId(pub [u8; 32]);

impl ObjectId {
    /// The hash of raw chunk bytes.
    pub fn of_chunk(raw: &[u8]) -> Self {
        ObjectId(*blake3::hash(raw).as_bytes())
    }

    /// The id of a metadata object of `kind` and `version` whose body is `body`.
    pub fn of_object(kind: u8, version: u8, body: &[u8]) -> Self {
        let mut h = blake3::Hasher::new();
        h.update(&[kind, version]);
        h.update(body);
        ObjectId(*h.finalize().as_bytes())
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// The first 12 hex characters, for people.
    pub fn short(&self) -> String {
        self.to_hex()[..12].to_string()
    }

    /// Parse 64 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(ObjectId(out))
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.short())
    }
}

/// The random 16-byte name of a pack file (`packs/<hex>.pack`).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PackId(pub [u8; 16]);

impl PackId {
    /// A fresh random pack id.
    pub fn random() -> Self {
        PackId(rand::random())
    }

    /// Lower-case hex, 32 characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parse 32 hex characters.
    pub fn from_hex(s: &str) -> Option<Self> {
        if s.len() != 32 {
            return None;
        }
        let mut out = [0u8; 16];
        hex::decode_to_slice(s, &mut out).ok()?;
        Some(PackId(out))
    }

    /// The storage key of this pack.
    pub fn key(&self) -> String {
        format!("packs/{}.pack", self.to_hex())
    }
}

impl fmt::Display for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PackId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PackId({})", self.to_hex())
    }
}
