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
            ObjectKind::Tree => 3,
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

    /// The version byte this value is stored with ([`Self::VERSION`] unless a type stores
    /// values that older builds can read in an older version).
    fn version(&self) -> u8 {
        Self::VERSION
    }

    /// True for the version bytes this build decodes.
    fn reads(version: u8) -> bool {
        version == Self::VERSION
    }

    /// Decode a body of `version` (one [`Self::reads`] accepts), before [`Self::validate`].
    fn decode_versioned(body: &[u8], version: u8) -> std::result::Result<Self, String> {
        let _ = version;
        let (v, rest): (Self, &[u8]) =
            postcard::take_from_bytes(body).map_err(|e| format!("undecodable body: {e}"))?;
        if !rest.is_empty() {
            return Err(format!("{} trailing bytes after the body", rest.len()));
        }
        Ok(v)
    }
}

/// Serialise a metadata object: returns its id and body.
pub fn encode_object<T: MetadataObject>(value: &T) -> (ObjectId, Vec<u8>) {
    let body = postcard::to_stdvec(value).expect("serialising into a Vec cannot fail");
    (
        ObjectId::of_object(T::KIND as u8, value.version(), &body),
        body,
    )
}

/// Decode and check a metadata object body. `id` is verified against the body.
pub fn decode_object<T: MetadataObject>(id: &ObjectId, version: u8, body: &[u8]) -> Result<T> {
    let what = || format!("{} {}", T::KIND.name(), id.short());
    if !T::reads(version) {
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
    decode_body_versioned::<T>(body, version).map_err(|d| Error::corrupt(what(), d))
}

/// Decode a body of the newest version without verifying an id (for property tests).
pub fn decode_body<T: MetadataObject>(body: &[u8]) -> std::result::Result<T, String> {
    decode_body_versioned(body, T::VERSION)
}

/// Decode and check a body of `version` without verifying an id (for fsck and tests).
pub fn decode_body_versioned<T: MetadataObject>(
    body: &[u8],
    version: u8,
) -> std::result::Result<T, String> {
    let v = T::decode_versioned(body, version)?;
    v.validate()?;
    Ok(v)
}
