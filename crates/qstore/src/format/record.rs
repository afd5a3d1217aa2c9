//! [`RecordHeader`]: the 56 bytes that start every object in a pack file: magic, kind, format
//! version, codec, shuffle width, raw and payload lengths, and the object id.

use super::ObjectKind;
use crate::codec::Codec;
use crate::id::ObjectId;

/// Magic bytes of a record.
pub const RECORD_MAGIC: [u8; 4] = *b"QREC";
/// Length of an encoded [`RecordHeader`].
pub const RECORD_HEADER_LEN: usize = 56;

/// The header of one stored object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordHeader {
    pub kind: ObjectKind,
    pub version: u8,
    pub codec: Codec,
    /// Byte-shuffle width used by the codec (1 = no shuffle).
    pub elem: u8,
    /// Length of the decoded object.
    pub raw_len: u64,
    /// Length of the payload that follows the header.
    pub payload_len: u64,
    pub id: ObjectId,
}

impl RecordHeader {
    /// The 56 header bytes.
    pub fn encode(&self) -> [u8; RECORD_HEADER_LEN] {
        let mut b = [0u8; RECORD_HEADER_LEN];
        b[0..4].copy_from_slice(&RECORD_MAGIC);
        b[4] = self.kind as u8;
        b[5] = self.version;
        b[6] = self.codec as u8;
        b[7] = self.elem;
        b[8..16].copy_from_slice(&self.raw_len.to_le_bytes());
        b[16..24].copy_from_slice(&self.payload_len.to_le_bytes());
        b[24..56].copy_from_slice(&self.id.0);
        b
    }

    /// Parse header bytes; the error says what is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        if b.len() < RECORD_HEADER_LEN {
            return Err(format!("record header truncated ({} bytes)", b.len()));
        }
        if b[0..4] != RECORD_MAGIC {
            return Err("bad record magic".into());
        }
        let kind =
            ObjectKind::from_u8(b[4]).ok_or_else(|| format!("unknown object kind {}", b[4]))?;
        let version = b[5];
        if version == 0 || version > kind.newest_version() {
            return Err(format!(
                "unsupported {} format version {version} (this build reads 1 to {})",
                kind.name(),
                kind.newest_version()
            ));
        }
        let codec = Codec::from_u8(b[6]).ok_or_else(|| format!("unknown codec {}", b[6]))?;
        let elem = b[7];
        if !matches!(elem, 1 | 2 | 4 | 8 | 16) {
            return Err(format!("invalid shuffle width {elem}"));
        }
        let u64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            u64::from_le_bytes(a)
        };
        let mut id = [0u8; 32];
        id.copy_from_slice(&b[24..56]);
        Ok(RecordHeader {
            kind,
            version,
            codec,
            elem,
            raw_len: u64_at(8),
            payload_len: u64_at(16),
            id: ObjectId(id),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..80)) {
            let _ = RecordHeader::decode(&b);
        }
    }

    #[test]
    fn header_round_trips() {
        let h = RecordHeader {
            kind: ObjectKind::Chunk,
            version: 1,
            codec: Codec::ShuffleZstd,
            elem: 8,
            raw_len: 1 << 20,
            payload_len: 12345,
            id: ObjectId([7; 32]),
        };
        assert_eq!(RecordHeader::decode(&h.encode()).unwrap(), h);
    }
}
