//! Pack files: many records appended one after another, then an index of every record and a
//! fixed-size footer. [`PackWriter`] writes one, [`decode_footer`]/[`decode_index`] read its
//! index back, and [`scan_records`] rebuilds an index from the records alone when the index is
//! damaged or missing (a truncated pack).
//!
//! ```text
//! header  16 B   "QSTOREPK" | version u32 LE | reserved u32
//! records        RecordHeader (56 B) + payload, repeated
//! index          entry_count x 64 B IndexEntry
//! footer  64 B   index_offset u64 | entry_count u64 | blake3(index) 32 B | reserved u64 | "QSPKIDX1"
//! ```

use super::ObjectKind;
use super::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::storage::{BlobWriter, Storage};
use serde::{Deserialize, Serialize};

/// Magic bytes at the start of a pack.
pub const PACK_MAGIC: [u8; 8] = *b"QSTOREPK";
/// Pack layout version written and read by this build.
pub const PACK_VERSION: u32 = 1;
/// Length of the pack header.
pub const PACK_HEADER_LEN: u64 = 16;
/// Magic bytes at the end of a pack's footer.
pub const FOOTER_MAGIC: [u8; 8] = *b"QSPKIDX1";
/// Length of the footer.
pub const FOOTER_LEN: u64 = 64;
/// Length of one index entry.
pub const INDEX_ENTRY_LEN: u64 = 64;

/// Where a record lives: pack, offset of its header, payload length.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub struct Location {
    pub pack: PackId,
    pub offset: u64,
    pub payload_len: u64,
}

/// One entry of a pack index.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct IndexEntry {
    pub id: ObjectId,
    pub kind: ObjectKind,
    pub version: u8,
    pub codec: Codec,
    pub elem: u8,
    /// Offset of the record header in the pack.
    pub offset: u64,
    pub payload_len: u64,
    pub raw_len: u64,
}

impl IndexEntry {
    fn from_header(h: &RecordHeader, offset: u64) -> Self {
        IndexEntry {
            id: h.id,
            kind: h.kind,
            version: h.version,
            codec: h.codec,
            elem: h.elem,
            offset,
            payload_len: h.payload_len,
            raw_len: h.raw_len,
        }
    }

    /// The location of this record in `pack`.
    pub fn location(&self, pack: PackId) -> Location {
        Location {
            pack,
            offset: self.offset,
            payload_len: self.payload_len,
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.id.0);
        out.extend_from_slice(&self.offset.to_le_bytes());
        out.extend_from_slice(&self.payload_len.to_le_bytes());
        out.extend_from_slice(&self.raw_len.to_le_bytes());
        out.extend_from_slice(&[self.kind as u8, self.version, self.codec as u8, self.elem]);
        out.extend_from_slice(&[0u8; 4]);
    }
}

/// The pack header bytes.
pub fn encode_header() -> [u8; PACK_HEADER_LEN as usize] {
    let mut b = [0u8; PACK_HEADER_LEN as usize];
    b[..8].copy_from_slice(&PACK_MAGIC);
    b[8..12].copy_from_slice(&PACK_VERSION.to_le_bytes());
    b
}

/// Check a pack header.
pub fn check_header(b: &[u8]) -> std::result::Result<(), String> {
    if b.len() < PACK_HEADER_LEN as usize || b[..8] != PACK_MAGIC {
        return Err("not a qstore pack (bad magic)".into());
    }
    let v = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if v != PACK_VERSION {
        return Err(format!(
            "unsupported pack version {v} (this build reads {PACK_VERSION})"
        ));
    }
    Ok(())
}

/// A decoded footer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Footer {
    pub index_offset: u64,
    pub entry_count: u64,
    pub checksum: [u8; 32],
}

fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

/// Parse the last [`FOOTER_LEN`] bytes of a pack of `file_len` bytes.
pub fn decode_footer(b: &[u8], file_len: u64) -> std::result::Result<Footer, String> {
    if b.len() != FOOTER_LEN as usize {
        return Err("footer truncated".into());
    }
    if b[56..64] != FOOTER_MAGIC {
        return Err("no pack footer (truncated or unfinished pack)".into());
    }
    let index_offset = u64_at(b, 0);
    let entry_count = u64_at(b, 8);
    let mut checksum = [0u8; 32];
    checksum.copy_from_slice(&b[16..48]);
    let expected_end = entry_count
        .checked_mul(INDEX_ENTRY_LEN)
        .and_then(|n| n.checked_add(index_offset))
        .and_then(|n| n.checked_add(FOOTER_LEN));
    if index_offset < PACK_HEADER_LEN || expected_end != Some(file_len) {
        return Err(format!(
            "footer does not match the file length {file_len} (index at {index_offset}, {entry_count} entries)"
        ));
    }
    Ok(Footer {
        index_offset,
        entry_count,
        checksum,
    })
}

/// Parse and check the index bytes described by `footer`.
pub fn decode_index(b: &[u8], footer: &Footer) -> std::result::Result<Vec<IndexEntry>, String> {
    if b.len() as u64 != footer.entry_count.saturating_mul(INDEX_ENTRY_LEN) {
        return Err("index length does not match its entry count".into());
    }
    if *blake3::hash(b).as_bytes() != footer.checksum {
        return Err("index checksum mismatch".into());
    }
    let mut out = Vec::with_capacity(b.len() / INDEX_ENTRY_LEN as usize);
    for e in b.chunks_exact(INDEX_ENTRY_LEN as usize) {
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[..32]);
        let entry = IndexEntry {
            id: ObjectId(id),
            offset: u64_at(e, 32),
            payload_len: u64_at(e, 40),
            raw_len: u64_at(e, 48),
            kind: ObjectKind::from_u8(e[56]).ok_or_else(|| format!("unknown kind {}", e[56]))?,
            version: e[57],
            codec: Codec::from_u8(e[58]).ok_or_else(|| format!("unknown codec {}", e[58]))?,
            elem: e[59],
        };
        let end = entry
            .offset
            .checked_add(RECORD_HEADER_LEN as u64)
            .and_then(|n| n.checked_add(entry.payload_len));
        if entry.offset < PACK_HEADER_LEN || end.is_none_or(|end| end > footer.index_offset) {
            return Err(format!(
                "index entry {} points outside the records",
                entry.id.short()
            ));
        }
        out.push(entry);
    }
    Ok(out)
}

/// Rebuild an index by walking the records of a pack whose bytes are given by `read_at`
/// (`file_len` bytes in all). Stops at the first record that does not parse: everything
/// before a truncation or a damaged header is recovered.
pub fn scan_records(
    file_len: u64,
    mut read_at: impl FnMut(u64, &mut [u8]) -> Result<()>,
) -> Vec<IndexEntry> {
    let mut out = Vec::new();
    let mut off = PACK_HEADER_LEN;
    let mut hb = [0u8; RECORD_HEADER_LEN];
    while off + RECORD_HEADER_LEN as u64 <= file_len {
        if read_at(off, &mut hb).is_err() {
            break;
        }
        let Ok(h) = RecordHeader::decode(&hb) else {
            break;
        };
        let Some(end) = (off + RECORD_HEADER_LEN as u64).checked_add(h.payload_len) else {
            break;
        };
        if end > file_len {
            break;
        }
        out.push(IndexEntry::from_header(&h, off));
        off = end;
    }
    out
}

/// Writes one pack file through a [`BlobWriter`]: records, then index and footer on
/// [`PackWriter::finish`], which makes the pack durable and visible at once.
pub struct PackWriter {
    id: PackId,
    out: Box<dyn BlobWriter>,
    offset: u64,
    entries: Vec<IndexEntry>,
}

impl PackWriter {
    /// Start a new pack with a fresh random id.
    pub fn create(storage: &dyn Storage) -> Result<Self> {
        let id = PackId::random();
        let mut out = storage.writer(&id.key())?;
        out.write_all(&encode_header())?;
        Ok(PackWriter {
            id,
            out,
            offset: PACK_HEADER_LEN,
            entries: Vec::new(),
        })
    }

    /// The id of the pack being written.
    pub fn id(&self) -> PackId {
        self.id
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.offset
    }

    /// True when no record was appended.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Append one record; returns where it lives.
    pub fn append(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<Location> {
        debug_assert_eq!(header.payload_len, payload.len() as u64);
        let at = self.offset;
        self.out.write_all(&header.encode())?;
        self.out.write_all(payload)?;
        self.offset += RECORD_HEADER_LEN as u64 + payload.len() as u64;
        self.entries.push(IndexEntry::from_header(header, at));
        Ok(Location {
            pack: self.id,
            offset: at,
            payload_len: payload.len() as u64,
        })
    }

    /// Write index and footer and make the pack durable; returns its id and index.
    pub fn finish(mut self) -> Result<(PackId, Vec<IndexEntry>)> {
        let mut index = Vec::with_capacity(self.entries.len() * INDEX_ENTRY_LEN as usize);
        for e in &self.entries {
            e.encode(&mut index);
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        footer[0..8].copy_from_slice(&self.offset.to_le_bytes());
        footer[8..16].copy_from_slice(&(self.entries.len() as u64).to_le_bytes());
        footer[16..48].copy_from_slice(blake3::hash(&index).as_bytes());
        footer[56..64].copy_from_slice(&FOOTER_MAGIC);
        self.out.write_all(&index)?;
        self.out.write_all(&footer)?;
        self.out.finish()?;
        Ok((self.id, self.entries))
    }
}

/// Read and check the index of pack `id`; on a damaged or missing index, recover it by
/// scanning the records. Returns the entries and whether recovery was needed.
pub fn read_index(storage: &dyn Storage, id: PackId) -> Result<(Vec<IndexEntry>, Option<String>)> {
    let key = id.key();
    let len = storage.size(&key)?;
    let parsed = (|| -> std::result::Result<Vec<IndexEntry>, String> {
        if len < PACK_HEADER_LEN + FOOTER_LEN {
            return Err("pack too short".into());
        }
        let mut hb = [0u8; PACK_HEADER_LEN as usize];
        storage
            .read_at(&key, 0, &mut hb)
            .map_err(|e| e.to_string())?;
        check_header(&hb)?;
        let mut fb = [0u8; FOOTER_LEN as usize];
        storage
            .read_at(&key, len - FOOTER_LEN, &mut fb)
            .map_err(|e| e.to_string())?;
        let footer = decode_footer(&fb, len)?;
        let mut ib = vec![0u8; (footer.entry_count * INDEX_ENTRY_LEN) as usize];
        storage
            .read_at(&key, footer.index_offset, &mut ib)
            .map_err(|e| e.to_string())?;
        decode_index(&ib, &footer)
    })();
    match parsed {
        Ok(entries) => Ok((entries, None)),
        Err(why) => {
            let mut hb = [0u8; PACK_HEADER_LEN as usize];
            if len < PACK_HEADER_LEN
                || storage.read_at(&key, 0, &mut hb).is_err()
                || check_header(&hb).is_err()
            {
                return Err(Error::corrupt(format!("pack {id}"), why));
            }
            let entries = scan_records(len, |o, b| storage.read_at(&key, o, b));
            Ok((entries, Some(why)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn footer_and_index_decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..400), len in any::<u64>()) {
            if b.len() >= 64
                && let Ok(f) = decode_footer(&b[..64], len)
            {
                let _ = decode_index(&b[64..], &f);
            }
            let f = Footer { index_offset: 16, entry_count: (b.len() / 64) as u64, checksum: *blake3::hash(&b[..b.len() / 64 * 64]).as_bytes() };
            let _ = decode_index(&b[..b.len() / 64 * 64], &f);
        }

        #[test]
        fn scan_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400)) {
            let _ = scan_records(b.len() as u64, |o, buf| {
                let o = o as usize;
                buf.copy_from_slice(&b[o..o + buf.len()]);
                Ok(())
            });
        }
    }
}
