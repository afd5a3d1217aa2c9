//! Pack files: many records appended one after another, then an index of every record and a
//! fixed-size footer. [`PackWriter`] writes one, [`decode_footer`]/[`decode_index`] read its
//! index back, and [`scan_records`] rebuilds an index from the records alone when the index is
//! damaged or missing (a truncated pack). [`PackIndex`] finds one object by id in O(log n)
//! without reading the whole index: version-2 packs keep their index sorted by id, and the
//! pack file is memory-mapped where the storage allows, so opening a repository and looking
//! up an object costs a few pages, not the whole index.
//!
//! ```text
//! header  16 B   "QSTOREPK" | version u32 LE | reserved u32
//! records        RecordHeader (56 B) + payload, repeated
//! index          entry_count x 64 B IndexEntry (version 2: sorted by id)
//! footer  64 B   index_offset u64 | entry_count u64 | blake3(index) 32 B | reserved u64 | "QSPKIDX1"
//! ```

use super::ObjectKind;
use super::record::{RECORD_HEADER_LEN, RecordHeader};
use crate::codec::Codec;
use crate::error::{Error, Result};
use crate::id::{ObjectId, PackId};
use crate::storage::{BlobWriter, MappedBlob, Storage};
use serde::{Deserialize, Serialize};

/// Magic bytes at the start of a pack.
pub const PACK_MAGIC: [u8; 8] = *b"QSTOREPK";
/// Pack layout version written by this build (2: index sorted by id). Version 1 (unsorted
/// index) is still read.
pub const PACK_VERSION: u32 = 2;
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

    /// Parse one 64-byte index entry.
    pub fn decode(e: &[u8]) -> std::result::Result<Self, String> {
        if e.len() < INDEX_ENTRY_LEN as usize {
            return Err("index entry truncated".into());
        }
        let mut id = [0u8; 32];
        id.copy_from_slice(&e[..32]);
        Ok(IndexEntry {
            id: ObjectId(id),
            offset: u64_at(e, 32),
            payload_len: u64_at(e, 40),
            raw_len: u64_at(e, 48),
            kind: ObjectKind::from_u8(e[56]).ok_or_else(|| format!("unknown kind {}", e[56]))?,
            version: e[57],
            codec: Codec::from_u8(e[58]).ok_or_else(|| format!("unknown codec {}", e[58]))?,
            elem: e[59],
        })
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

/// Check a pack header; returns its version (1 or 2).
pub fn check_header(b: &[u8]) -> std::result::Result<u32, String> {
    if b.len() < PACK_HEADER_LEN as usize || b[..8] != PACK_MAGIC {
        return Err("not a qstore pack (bad magic)".into());
    }
    let v = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if !(1..=PACK_VERSION).contains(&v) {
        return Err(format!(
            "unsupported pack version {v} (this build reads 1 to {PACK_VERSION})"
        ));
    }
    Ok(v)
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
        let entry = IndexEntry::decode(e)?;
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

/// Check a whole pack received from an untrusted writer (a client of `qstore serve`): the
/// header, footer and index parse, and every indexed record carries the header its index
/// entry describes and decodes to bytes that hash to its id. Returns the number of objects
/// and the largest decoded length. A pack that passes can be trusted as much as one this
/// process wrote itself.
pub fn verify_pack(bytes: &[u8]) -> std::result::Result<(usize, u64), String> {
    use rayon::prelude::*;
    let len = bytes.len() as u64;
    if len < PACK_HEADER_LEN + FOOTER_LEN {
        return Err(format!("{len} bytes is too short for a pack"));
    }
    check_header(&bytes[..PACK_HEADER_LEN as usize])?;
    let footer = decode_footer(&bytes[(len - FOOTER_LEN) as usize..], len)?;
    let index = &bytes[footer.index_offset as usize..(len - FOOTER_LEN) as usize];
    let entries = decode_index(index, &footer)?;
    entries.par_iter().try_for_each(|e| {
        let at = e.offset as usize;
        let h = RecordHeader::decode(&bytes[at..at + RECORD_HEADER_LEN])
            .map_err(|d| format!("record {}: {d}", e.id.short()))?;
        if h.id != e.id
            || h.kind != e.kind
            || h.version != e.version
            || h.codec != e.codec
            || h.elem != e.elem
            || h.payload_len != e.payload_len
            || h.raw_len != e.raw_len
        {
            return Err(format!(
                "record {} does not match its index entry",
                e.id.short()
            ));
        }
        if e.kind != ObjectKind::Chunk && e.raw_len > 1 << 30 {
            return Err(format!("object {} is implausibly large", e.id.short()));
        }
        if e.payload_len > e.raw_len.saturating_mul(2) + 1024 || e.raw_len > 1 << 34 {
            return Err(format!("record {} has implausible lengths", e.id.short()));
        }
        let payload =
            &bytes[at + RECORD_HEADER_LEN..at + RECORD_HEADER_LEN + e.payload_len as usize];
        let decoded;
        let raw: &[u8] = if e.codec == Codec::Raw {
            if e.payload_len != e.raw_len {
                return Err(format!("raw record {} has two lengths", e.id.short()));
            }
            payload
        } else {
            let mut out = vec![0u8; e.raw_len as usize];
            crate::codec::decode(e.codec, e.elem as usize, payload, &mut out)
                .map_err(|d| format!("record {}: {d}", e.id.short()))?;
            decoded = out;
            &decoded
        };
        let actual = match e.kind {
            ObjectKind::Chunk => ObjectId::of_chunk(raw),
            k => ObjectId::of_object(k as u8, e.version, raw),
        };
        if actual != e.id {
            return Err(format!("record {} does not hash to its id", e.id.short()));
        }
        Ok(())
    })?;
    let largest = entries.iter().map(|e| e.raw_len).max().unwrap_or(0);
    Ok((entries.len(), largest))
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

    /// Write index (sorted by id) and footer and make the pack durable; returns its id, its
    /// index and the pack's length in bytes.
    pub fn finish(mut self) -> Result<(PackId, Vec<IndexEntry>, u64)> {
        self.entries.sort_by_key(|a| a.id);
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
        let len = self.offset + index.len() as u64 + FOOTER_LEN;
        Ok((self.id, self.entries, len))
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

/// Where the sorted index entries of a pack are.
enum IndexBytes {
    /// The pack file mapped into memory; the index starts at `offset`.
    Mapped { blob: MappedBlob, offset: usize },
    /// Sorted entries held in memory (packs just written, version-1 packs, recovered packs).
    Owned(Vec<u8>),
}

/// The index of one pack, searchable by id in O(log n) probes.
pub struct PackIndex {
    pub pack: PackId,
    /// The pack's layout version.
    pub version: u32,
    bytes: IndexBytes,
    count: usize,
    /// The footer's checksum of a mapped index not verified yet.
    checksum: Option<[u8; 32]>,
}

impl std::fmt::Debug for PackIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PackIndex({}, {} entries)", self.pack, self.count)
    }
}

impl PackIndex {
    /// An index held in memory, from entries in any order.
    pub fn from_entries(pack: PackId, version: u32, mut entries: Vec<IndexEntry>) -> Self {
        entries.sort_by_key(|a| a.id);
        let mut b = Vec::with_capacity(entries.len() * INDEX_ENTRY_LEN as usize);
        for e in &entries {
            e.encode(&mut b);
        }
        PackIndex {
            pack,
            version,
            count: entries.len(),
            bytes: IndexBytes::Owned(b),
            checksum: None,
        }
    }

    fn raw(&self) -> &[u8] {
        match &self.bytes {
            IndexBytes::Mapped { blob, offset } => {
                let all = (**blob).as_ref();
                &all[*offset..*offset + self.count * INDEX_ENTRY_LEN as usize]
            }
            IndexBytes::Owned(b) => b,
        }
    }

    fn slot(&self, i: usize) -> &[u8] {
        let at = i * INDEX_ENTRY_LEN as usize;
        &self.raw()[at..at + INDEX_ENTRY_LEN as usize]
    }

    /// Check a mapped index against its checksum (and its order); indexes held in memory were
    /// checked when read.
    pub fn verify(&self) -> std::result::Result<(), String> {
        let Some(sum) = self.checksum else {
            return Ok(());
        };
        let raw = self.raw();
        if *blake3::hash(raw).as_bytes() != sum {
            return Err("index checksum mismatch".into());
        }
        if (1..self.count).any(|i| self.slot(i - 1)[..32] > self.slot(i)[..32]) {
            return Err("index not sorted by id".into());
        }
        Ok(())
    }

    /// The same index, marked as checked (after [`PackIndex::verify`] passed).
    pub fn to_verified(&self) -> PackIndex {
        PackIndex {
            pack: self.pack,
            version: self.version,
            count: self.count,
            bytes: match &self.bytes {
                IndexBytes::Mapped { blob, offset } => IndexBytes::Mapped {
                    blob: blob.clone(),
                    offset: *offset,
                },
                IndexBytes::Owned(b) => IndexBytes::Owned(b.clone()),
            },
            checksum: None,
        }
    }

    /// True when the index was mapped without checking its checksum yet.
    pub fn unverified(&self) -> bool {
        self.checksum.is_some()
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True when the pack holds no record.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The first position whose id is not below `id`.
    /// The first 8 bytes of the id at slot `i`, as a number (ids sort by it first).
    fn prefix_at(&self, i: usize) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&self.slot(i)[..8]);
        u64::from_be_bytes(b)
    }

    fn lower_bound(&self, id: &[u8; 32]) -> usize {
        let (mut lo, mut hi) = (0usize, self.count);
        // Ids are hashes, spread evenly: a few interpolation steps land next to the answer,
        // touching a few pages of a large index where a binary search touches ~log2(n);
        // then a binary search finishes within the narrowed range (and bounds the cost of an
        // uneven index).
        let mut t = [0u8; 8];
        t.copy_from_slice(&id[..8]);
        let target = u64::from_be_bytes(t) as u128;
        for _ in 0..3 {
            if hi - lo < 64 {
                break;
            }
            let (a, b) = (self.prefix_at(lo) as u128, self.prefix_at(hi - 1) as u128);
            if target <= a || target > b || b <= a {
                break;
            }
            let span = (hi - 1 - lo) as u128;
            let guess = lo + ((target - a) * span / (b - a)) as usize;
            // Bracket the guess by a window that grows if it misses.
            let mut w = 16usize;
            let (mut l, mut h) = (guess.saturating_sub(w).max(lo), (guess + w).min(hi));
            loop {
                let below = l == lo || self.slot(l)[..32] < id[..];
                let above = h == hi || self.slot(h - 1)[..32] >= id[..];
                if below && above {
                    break;
                }
                w *= 4;
                l = guess.saturating_sub(w).max(lo);
                h = (guess + w).min(hi);
            }
            // The answer is in [l, h] now: slots before l are below id, slots from h on
            // are not.
            lo = l;
            hi = h;
        }
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if &self.slot(mid)[..32] < id.as_slice() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }

    /// The entry of object `id`, if this pack holds it. An entry that does not parse counts
    /// as absent (fsck reports the pack).
    pub fn find(&self, id: &ObjectId) -> Option<IndexEntry> {
        let i = self.lower_bound(&id.0);
        (i < self.count && self.slot(i)[..32] == id.0)
            .then(|| IndexEntry::decode(self.slot(i)).ok())
            .flatten()
    }

    /// Entries whose id starts with the hex digits `prefix` (lower case), in id order.
    pub fn with_hex_prefix(&self, prefix: &str) -> Vec<IndexEntry> {
        let mut low = [0u8; 32];
        let digits: Vec<u8> = prefix
            .bytes()
            .filter_map(|c| (c as char).to_digit(16).map(|d| d as u8))
            .collect();
        for (i, d) in digits.iter().enumerate().take(64) {
            low[i / 2] |= if i % 2 == 0 { d << 4 } else { *d };
        }
        let mut out = Vec::new();
        for i in self.lower_bound(&low)..self.count {
            let hex = hex::encode(&self.slot(i)[..32]);
            if !hex.starts_with(prefix) {
                break;
            }
            if let Ok(e) = IndexEntry::decode(self.slot(i)) {
                out.push(e);
            }
        }
        out
    }

    /// Every entry that parses, in id order.
    pub fn entries(&self) -> impl Iterator<Item = IndexEntry> + '_ {
        (0..self.count).filter_map(|i| IndexEntry::decode(self.slot(i)).ok())
    }
}

/// Indexes up to this size are checked against their checksum when a pack is opened.
pub const VERIFY_ON_OPEN_BYTES: u64 = 1 << 20;

/// Open the index of pack `id` for lookups. A version-2 pack on storage that can map files is
/// mapped; its index is checked against the footer's checksum now when it is small (up to
/// [`VERIFY_ON_OPEN_BYTES`]), otherwise later ([`PackIndex::verify`], called when a lookup
/// misses, and [`read_index`] in fsck, gc and merges), so opening costs O(1) per pack.
/// Every object found through an index is verified when read. Other packs are read whole
/// (version-1 indexes sorted in memory). A damaged index is rebuilt by scanning the
/// records; the reason is returned beside it.
pub fn open_index(storage: &dyn Storage, id: PackId) -> Result<(PackIndex, Option<String>, u64)> {
    let key = id.key();
    if let Some(blob) = storage.map(&key)? {
        let b = (*blob).as_ref();
        let len = b.len() as u64;
        if len >= PACK_HEADER_LEN + FOOTER_LEN {
            let version = check_header(&b[..PACK_HEADER_LEN as usize])
                .map_err(|d| Error::corrupt(format!("pack {id}"), d))?;
            if let (2, Ok(footer)) = (
                version,
                decode_footer(&b[(len - FOOTER_LEN) as usize..], len),
            ) {
                let index = PackIndex {
                    pack: id,
                    version,
                    count: footer.entry_count as usize,
                    bytes: IndexBytes::Mapped {
                        blob: blob.clone(),
                        offset: footer.index_offset as usize,
                    },
                    checksum: Some(footer.checksum),
                };
                let small = footer.entry_count * INDEX_ENTRY_LEN <= VERIFY_ON_OPEN_BYTES;
                if !small {
                    return Ok((index, None, len));
                }
                if index.verify().is_ok() {
                    return Ok((index.to_verified(), None, len));
                }
            }
        }
    }
    let len = storage.size(&key)?;
    let (entries, damage) = read_index(storage, id)?;
    let mut hb = [0u8; PACK_HEADER_LEN as usize];
    storage.read_at(&key, 0, &mut hb)?;
    let version = check_header(&hb).unwrap_or(PACK_VERSION);
    Ok((PackIndex::from_entries(id, version, entries), damage, len))
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
        fn index_lookups_find_every_entry(ids in proptest::collection::btree_set(any::<[u8; 32]>(), 0..50), probe in any::<[u8; 32]>()) {
            let entries: Vec<IndexEntry> = ids.iter().enumerate().map(|(i, id)| IndexEntry {
                id: ObjectId(*id), kind: ObjectKind::Chunk, version: 1, codec: Codec::Raw, elem: 1,
                offset: 16 + i as u64, payload_len: 1, raw_len: 1,
            }).rev().collect();
            let idx = PackIndex::from_entries(PackId([1; 16]), 2, entries);
            for id in &ids {
                prop_assert_eq!(idx.find(&ObjectId(*id)).map(|e| e.id), Some(ObjectId(*id)));
                let hex = hex::encode(id);
                prop_assert!(idx.with_hex_prefix(&hex[..7]).iter().any(|e| e.id.0 == *id));
            }
            prop_assert_eq!(idx.find(&ObjectId(probe)).is_some(), ids.contains(&probe));
        }

        #[test]
        fn large_and_uneven_indexes_find_every_entry(
            seeds in proptest::collection::btree_set(any::<u64>(), 64..2000),
            skew in 0u8..3,
            probes in proptest::collection::vec(any::<[u8; 32]>(), 20),
        ) {
            // skew 0: uniform ids; 1: all share their first 6 bytes; 2: two far clusters.
            let ids: Vec<[u8; 32]> = seeds.iter().map(|&x| {
                let mut id = *blake3::hash(&x.to_le_bytes()).as_bytes();
                match skew {
                    1 => id[..6].copy_from_slice(&[7; 6]),
                    2 => id[0] = if x % 2 == 0 { 0 } else { 255 },
                    _ => {}
                }
                id
            }).collect();
            let entries: Vec<IndexEntry> = ids.iter().map(|id| IndexEntry {
                id: ObjectId(*id), kind: ObjectKind::Chunk, version: 1, codec: Codec::Raw, elem: 1,
                offset: 16, payload_len: 1, raw_len: 1,
            }).collect();
            let idx = PackIndex::from_entries(PackId([1; 16]), 2, entries);
            for id in &ids {
                prop_assert!(idx.find(&ObjectId(*id)).is_some());
            }
            for p in probes {
                prop_assert_eq!(idx.find(&ObjectId(p)).is_some(), ids.contains(&p));
                let lb = idx.lower_bound(&p);
                prop_assert!(lb == idx.len() || idx.slot(lb)[..32] >= p[..]);
                prop_assert!(lb == 0 || idx.slot(lb - 1)[..32] < p[..]);
            }
        }

        #[test]
        fn verify_pack_accepts_what_it_wrote_and_catches_damage(
            chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..300), 1..6),
            flip in any::<u64>(),
            cut in any::<u64>(),
        ) {
            let bytes = test_pack(&chunks);
            prop_assert_eq!(verify_pack(&bytes).map(|x| x.0), Ok(chunks.len()));
            // Any byte of a payload changed: caught.
            let payload_bytes: Vec<usize> = {
                let mut v = Vec::new();
                let mut off = PACK_HEADER_LEN as usize;
                for c in &chunks {
                    off += RECORD_HEADER_LEN;
                    v.extend(off..off + c.len());
                    off += c.len();
                }
                v
            };
            let mut damaged = bytes.clone();
            damaged[payload_bytes[flip as usize % payload_bytes.len()]] ^= 1;
            prop_assert!(verify_pack(&damaged).is_err());
            // Any byte anywhere changed, or the pack cut short: no panic, and never a
            // different object count passing.
            let mut any = bytes.clone();
            any[flip as usize % bytes.len()] ^= 0x40;
            prop_assert!(verify_pack(&any).map_or(true, |n| n.0 == chunks.len()));
            prop_assert!(verify_pack(&bytes[..cut as usize % bytes.len()]).is_err());
        }

        #[test]
        fn verify_pack_never_panics(b in proptest::collection::vec(any::<u8>(), 0..600)) {
            let _ = verify_pack(&b);
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

    fn test_pack(chunks: &[Vec<u8>]) -> Vec<u8> {
        let mem = crate::storage::memory::MemoryStorage::default();
        let mut w = PackWriter::create(&mem).unwrap();
        for c in chunks {
            let h = RecordHeader {
                kind: ObjectKind::Chunk,
                version: 1,
                codec: Codec::Raw,
                elem: 1,
                raw_len: c.len() as u64,
                payload_len: c.len() as u64,
                id: ObjectId::of_chunk(c),
            };
            w.append(&h, c).unwrap();
        }
        let (id, _, _) = w.finish().unwrap();
        mem.get(&id.key()).unwrap()
    }
}
