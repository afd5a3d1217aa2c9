//! The immutable objects of a repository and their bytes: [`record`] (the header every stored
//! object starts with), [`pack`] (pack files, their sorted index and footer), [`manifest`]
//! (the chunks of one state), [`tree`] (the path tree's nodes and state entries),
//! [`tree_v1`] (the directory trees of format version 1, still read), [`commit`],
//! [`refs`] (the packed-refs file) and [`config`]. `docs/format.md` describes the same
//! bytes for people.

pub mod commit;
pub mod config;
pub mod manifest;
pub mod pack;
pub mod record;
pub mod refs;
pub mod tree;
pub mod tree_v1;

use crate::error::{Error, Result};
use crate::id::ObjectId;
use serde::{Serialize, de::DeserializeOwned};

/// The format version of chunk records. Each [`MetadataObject`] names its own version, and
/// [`ObjectKind::newest_version`] the newest this build reads of each kind.
pub const CHUNK_VERSION: u8 = 1;

/// The kind of a stored object. The numeric values are part of the on-disk format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
#[repr(u8)]
pub enum ObjectKind {
    /// A slice of a state's byte stream.
    Chunk = 0,
    /// The ordered chunk list of one state.
    Manifest = 1,
    /// A directory: names to subtrees or state entries.
    Tree = 2,
    /// A commit: tree, parents, message, author, time, metadata.
    Commit = 3,
}

impl ObjectKind {
    /// Parse the on-disk byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(ObjectKind::Chunk),
            1 => Some(ObjectKind::Manifest),
            2 => Some(ObjectKind::Tree),
            3 => Some(ObjectKind::Commit),
            _ => None,
        }
    }

    /// The newest format version of this kind that this build reads.
    pub fn newest_version(self) -> u8 {
        match self {
            ObjectKind::Tree => 2,
            ObjectKind::Chunk | ObjectKind::Manifest | ObjectKind::Commit => 1,
        }
    }

    /// `chunk`, `manifest`, `tree` or `commit`.
    pub fn name(self) -> &'static str {
        match self {
            ObjectKind::Chunk => "chunk",
            ObjectKind::Manifest => "manifest",
            ObjectKind::Tree => "tree",
            ObjectKind::Commit => "commit",
        }
    }
}

/// A metadata object (manifest, tree, commit): serialisable and checked after decoding.
pub trait MetadataObject: Serialize + DeserializeOwned {
    /// The kind byte of this object.
    const KIND: ObjectKind;
    /// The format version byte this type is stored with.
    const VERSION: u8;
    /// Structural checks beyond what deserialisation enforces.
    fn validate(&self) -> std::result::Result<(), String>;
}

/// Serialise a metadata object: returns its id and body.
pub fn encode_object<T: MetadataObject>(value: &T) -> (ObjectId, Vec<u8>) {
    let body = postcard::to_stdvec(value).expect("serialising into a Vec cannot fail");
    (ObjectId::of_object(T::KIND as u8, T::VERSION, &body), body)
}

/// Decode and check a metadata object body. `id` is verified against the body.
pub fn decode_object<T: MetadataObject>(id: &ObjectId, version: u8, body: &[u8]) -> Result<T> {
    let what = || format!("{} {}", T::KIND.name(), id.short());
    if version != T::VERSION {
        return Err(Error::UnsupportedVersion {
            what: what(),
            version: version as u32,
            supported: T::VERSION as u32,
        });
    }
    if ObjectId::of_object(T::KIND as u8, version, body) != *id {
        return Err(Error::corrupt(
            what(),
            "checksum mismatch: the bytes do not hash to the object's id",
        ));
    }
    decode_body::<T>(body).map_err(|d| Error::corrupt(what(), d))
}

/// Decode a body without verifying an id (for property tests and fsck).
pub fn decode_body<T: MetadataObject>(body: &[u8]) -> std::result::Result<T, String> {
    let (v, rest): (T, &[u8]) =
        postcard::take_from_bytes(body).map_err(|e| format!("undecodable body: {e}"))?;
    if !rest.is_empty() {
        return Err(format!("{} trailing bytes after the body", rest.len()));
    }
    v.validate()?;
    Ok(v)
}
