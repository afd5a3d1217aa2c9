//! [`Manifest`]: the ordered chunks of one state's byte stream. Each [`ChunkRef`] records the
//! chunk's hash and where it lives (pack, offset, length, codec), so a read needs no global
//! index; an all-zero chunk is a [`ChunkRef::Zero`] marker and stores nothing.

use super::pack::Location;
use super::{MetadataObject, ObjectKind};
use crate::codec::Codec;
use crate::id::ObjectId;
use serde::{Deserialize, Serialize};

/// Smallest chunk size a repository may use.
pub const MIN_CHUNK_SIZE: u64 = 256;
/// Largest chunk size a repository may use.
pub const MAX_CHUNK_SIZE: u64 = 1 << 30;

/// One chunk of a stream.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub enum ChunkRef {
    /// All bytes are zero; nothing is stored.
    Zero,
    /// A stored chunk.
    Stored {
        id: ObjectId,
        codec: Codec,
        location: Location,
    },
}

/// The chunk list of one state's byte stream.
#[derive(Clone, PartialEq, Eq, Debug, Serialize, Deserialize)]
pub struct Manifest {
    /// Bytes per chunk (the last one may be shorter).
    pub chunk_size: u64,
    /// Total bytes of the stream.
    pub stream_len: u64,
    /// The chunks in order.
    pub chunks: Vec<ChunkRef>,
}

impl Manifest {
    /// Raw length of chunk `i`.
    pub fn chunk_len(&self, i: usize) -> u64 {
        let start = i as u64 * self.chunk_size;
        self.chunk_size.min(self.stream_len.saturating_sub(start))
    }
}

/// Check that `size` is a valid chunk size.
pub fn check_chunk_size(size: u64) -> Result<(), String> {
    if !size.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&size) {
        return Err(format!(
            "chunk size {size} must be a power of two between {MIN_CHUNK_SIZE} and {MAX_CHUNK_SIZE}"
        ));
    }
    Ok(())
}

impl MetadataObject for Manifest {
    const KIND: ObjectKind = ObjectKind::Manifest;
    const VERSION: u8 = 1;

    fn validate(&self) -> Result<(), String> {
        check_chunk_size(self.chunk_size)?;
        let expected = self.stream_len.div_ceil(self.chunk_size);
        if self.chunks.len() as u64 != expected {
            return Err(format!(
                "{} chunks listed for a stream of {} bytes in chunks of {} (expected {expected})",
                self.chunks.len(),
                self.stream_len,
                self.chunk_size
            ));
        }
        Ok(())
    }
}
