//! The write pipeline: [`ChunkStore`] is where encoded chunks go: [`ObjectWriter`] appends the
//! new objects of one transaction to its own pack files (rolling over at the repository's pack
//! target), a scratch space keeps them in memory or spill files. [`ChunkSink`] cuts a byte
//! stream into fixed-size chunks and, a batch at a time, hashes them in parallel, drops zero
//! chunks and duplicates, compresses the rest in parallel and stores them in order. Memory
//! stays bounded to a few chunks per worker.

use super::Repository;
use crate::codec::{Choice, Codec, Effort, encode_auto, encode_hinted, encode_with};
use crate::error::Error;
use crate::error::Result;
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::pack::{Location, PackWriter};
use crate::format::record::RecordHeader;
use crate::format::tree::TreeNode;
use crate::format::{CHUNK_VERSION, MetadataObject, ObjectKind, encode_object};
use crate::id::{ObjectId, PackId};
use crate::state::input::all_zero;
use std::collections::{HashMap, HashSet};

/// Counters of one put.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct PutStats {
    /// Chunks in the stream.
    pub chunks: u64,
    /// All-zero chunks (stored as markers).
    pub zero_chunks: u64,
    /// Chunks already in the repository (or earlier in this transaction).
    pub dedup_chunks: u64,
    /// Chunks written.
    pub new_chunks: u64,
    /// Raw bytes of the chunks written.
    pub new_raw_bytes: u64,
    /// Stored (encoded) bytes of the chunks written.
    pub new_stored_bytes: u64,
    /// Chunks written per codec: raw, shuffle+lz4, shuffle+zstd.
    pub codec_counts: [u64; 3],
}

impl PutStats {
    /// Add another put's counters.
    pub fn add(&mut self, o: &PutStats) {
        self.chunks += o.chunks;
        self.zero_chunks += o.zero_chunks;
        self.dedup_chunks += o.dedup_chunks;
        self.new_chunks += o.new_chunks;
        self.new_raw_bytes += o.new_raw_bytes;
        self.new_stored_bytes += o.new_stored_bytes;
        for i in 0..3 {
            self.codec_counts[i] += o.codec_counts[i];
        }
    }
}

/// A destination for encoded chunks.
pub trait ChunkStore {
    /// Bytes per chunk.
    fn chunk_size(&self) -> u64;
    /// Where an existing copy of chunk `id` lives, if any.
    fn lookup(&self, id: &ObjectId) -> Option<(Location, Codec)>;
    /// Store one chunk record; returns where it lives.
    fn store(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<Location>;
    /// True when the repository takes the encodings of format version 4.
    fn has_format_4(&self) -> bool;
}

impl ChunkStore for ObjectWriter {
    fn chunk_size(&self) -> u64 {
        self.repo.config().chunk_size
    }

    fn lookup(&self, id: &ObjectId) -> Option<(Location, Codec)> {
        self.known_chunk(id)
    }

    fn store(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<Location> {
        self.append(header, payload)
    }

    fn has_format_4(&self) -> bool {
        self.repo.config().has_format_4()
    }
}

/// A pack being finished in the background: its id and index once durable.
type Finishing =
    std::thread::JoinHandle<Result<(PackId, Vec<crate::format::pack::IndexEntry>, u64)>>;

/// Appends the objects of one transaction to pack files.
pub struct ObjectWriter {
    repo: Repository,
    pack: Option<PackWriter>,
    written: HashMap<ObjectId, (Location, Codec)>,
    /// Full packs being made durable in the background.
    finishing: Vec<Finishing>,
    /// A pack is finished once it reaches this size.
    pack_target: u64,
}

impl ObjectWriter {
    /// A writer for `repo`.
    pub fn new(repo: Repository) -> Self {
        ObjectWriter {
            pack_target: repo.config().pack_target_bytes,
            repo,
            pack: None,
            written: HashMap::new(),
            finishing: Vec::new(),
        }
    }

    /// Finish packs at `bytes` instead of the repository's pack target.
    pub fn set_pack_target(&mut self, bytes: u64) {
        self.pack_target = bytes.max(1);
    }

    /// Where an existing copy of chunk `id` lives, if any.
    pub(crate) fn known_chunk(&self, id: &ObjectId) -> Option<(Location, Codec)> {
        if let Some(k) = self.written.get(id) {
            return Some(*k);
        }
        let o = self
            .repo
            .inner
            .index
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(id)?;
        (o.entry.kind == ObjectKind::Chunk).then(|| (o.location(), o.entry.codec))
    }

    pub(crate) fn append(&mut self, header: &RecordHeader, payload: &[u8]) -> Result<Location> {
        if self.pack.is_none() {
            self.pack = Some(PackWriter::create(self.repo.storage())?);
        }
        let pack = self.pack.as_mut().expect("just created");
        let loc = pack.append(header, payload)?;
        self.repo
            .inner
            .counters
            .record_written(header.kind, payload.len() as u64);
        self.written.insert(header.id, (loc, header.codec));
        if pack.len() >= self.pack_target {
            // Finish a full pack in the background: its fsync overlaps with the chunks that
            // follow. `flush` waits for it before anything can refer to it.
            if let Some(p) = self.pack.take() {
                self.finishing.push(std::thread::spawn(move || p.finish()));
            }
        }
        Ok(loc)
    }

    fn finish_pack(&mut self) -> Result<()> {
        let mut done = Vec::new();
        if let Some(p) = self.pack.take() {
            done.push(p.finish());
        }
        for t in self.finishing.drain(..) {
            done.push(t.join().unwrap_or_else(|_| {
                Err(Error::InvalidArgument(
                    "a pack-finishing thread panicked".into(),
                ))
            }));
        }
        let mut first_err = None;
        for r in done {
            match r {
                Ok((id, entries, len)) => {
                    self.repo.inner.counters.pack_written(len);
                    self.repo
                        .inner
                        .index
                        .write()
                        .unwrap_or_else(|e| e.into_inner())
                        .add_pack(id, entries, len)
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        first_err.map_or(Ok(()), Err)
    }

    /// Store a metadata object (unless it exists); returns its id.
    ///
    /// Manifests are looked up in the repository first (putting the same state again stores
    /// nothing new). Tree nodes and commits are not: the nodes a commit writes are the ones
    /// it changed, almost never already stored, and a rare duplicate costs a few hundred bytes
    /// until the next pack merge keeps one copy, where a lookup would search every pack.
    pub fn put_metadata<T: MetadataObject>(&mut self, obj: &T) -> Result<ObjectId> {
        let (id, body) = encode_object(obj);
        if self.written.contains_key(&id)
            || (T::KIND == ObjectKind::Manifest && self.repo.has_object(&id))
        {
            return Ok(id);
        }
        let (choice, payload) = encode_auto(&body, 1, Effort::Best);
        let payload = payload.unwrap_or_else(|| encode_with(Codec::Raw, &body, 1));
        let header = RecordHeader {
            kind: T::KIND,
            version: obj.version(),
            codec: choice.codec,
            elem: choice.elem as u8,
            raw_len: body.len() as u64,
            payload_len: payload.len() as u64,
            id,
        };
        self.append(&header, &payload)?;
        self.repo
            .remember_written(id, T::KIND, obj.version(), &body);
        Ok(id)
    }

    /// Make everything written so far durable (finishes the open pack).
    pub fn flush(&mut self) -> Result<()> {
        self.finish_pack()
    }
}

impl super::tree::NodeSink for ObjectWriter {
    fn put_node(&mut self, node: &TreeNode) -> Result<ObjectId> {
        self.put_metadata(node)
    }
}

/// Cuts a byte stream into chunks and stores them in a [`ChunkStore`].
pub struct ChunkSink<'w> {
    w: &'w mut dyn ChunkStore,
    elem: usize,
    chunk_size: usize,
    cur: Vec<u8>,
    /// Chunks of the current batch, with their ids when the caller hashed them already.
    pending: Vec<(Vec<u8>, Option<Option<ObjectId>>)>,
    batch: usize,
    chunks: Vec<ChunkRef>,
    stream_len: u64,
    stats: PutStats,
    progress: Option<&'w (dyn Fn(u64) + Sync)>,
    /// The codec most chunks of this stream chose when last probed, and how many batches
    /// have used it since.
    hint: Option<Choice>,
    batches_since_probe: u32,
    /// Chunk buffers of processed batches, reused so a put does not fault in fresh memory
    /// for every chunk.
    free: Vec<Vec<u8>>,
    /// Try every codec (zstd included) instead of the fast ones.
    best: bool,
}

/// The id of a chunk, `None` for an all-zero chunk (stored as a marker).
pub fn chunk_id(chunk: &[u8]) -> Option<ObjectId> {
    (!all_zero(chunk)).then(|| ObjectId::of_chunk(chunk))
}

/// Batches encoded with the hinted codec between two full probes.
const REPROBE_EVERY: u32 = 4;

impl<'w> ChunkSink<'w> {
    /// A sink whose chunks hold elements with `elem`-byte scalar components.
    pub fn new(
        w: &'w mut dyn ChunkStore,
        elem: usize,
        progress: Option<&'w (dyn Fn(u64) + Sync)>,
    ) -> Self {
        let chunk_size = w.chunk_size() as usize;
        ChunkSink {
            w,
            elem,
            chunk_size,
            cur: Vec::new(),
            pending: Vec::new(),
            batch: (crate::par::workers() * 2).max(4),
            chunks: Vec::new(),
            stream_len: 0,
            stats: PutStats::default(),
            progress,
            hint: None,
            batches_since_probe: 0,
            free: Vec::new(),
            best: false,
        }
    }

    /// Compress with every codec (zstd included) instead of the fast ones (lz4, raw).
    pub fn set_best_codecs(&mut self, best: bool) {
        self.best = best;
    }

    /// Forget the codec earlier chunks chose: the bytes that follow are of another kind
    /// (the residuals after the triangle of a near-Hermitian stream).
    pub fn reprobe(&mut self) {
        self.hint = None;
    }

    /// The chunk size in bytes.
    pub fn chunk_size(&self) -> usize {
        self.chunk_size
    }

    /// Append bytes to the stream.
    pub fn write(&mut self, mut data: &[u8]) -> Result<()> {
        while !data.is_empty() {
            if self.cur.capacity() == 0 {
                self.cur.reserve_exact(self.chunk_size);
            }
            let take = (self.chunk_size - self.cur.len()).min(data.len());
            self.cur.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.cur.len() == self.chunk_size {
                let full = std::mem::take(&mut self.cur);
                self.push_chunk(full)?;
            }
        }
        Ok(())
    }

    /// A buffer of `len` bytes to be overwritten by the caller (not necessarily zeroed),
    /// reusing one from an earlier batch when possible.
    pub fn buffer(&mut self, len: usize) -> Vec<u8> {
        match self.free.pop() {
            Some(mut b) => {
                // Callers overwrite the whole buffer; keep what it held instead of zeroing.
                b.resize(len, 0);
                b
            }
            None => vec![0u8; len],
        }
    }

    /// The number of chunks processed together.
    pub fn batch_len(&self) -> usize {
        self.batch
    }

    /// Append one whole chunk (exactly the chunk size, or shorter as the last one). Only
    /// valid when no partial chunk is buffered.
    pub fn push_chunk(&mut self, chunk: Vec<u8>) -> Result<()> {
        self.push_hashed(chunk, None)
    }

    /// [`Self::push_chunk`] of a chunk whose id the caller computed ([`chunk_id`]), so
    /// hashing can share a parallel pass with the caller's own work on the chunk.
    pub fn push_hashed(&mut self, chunk: Vec<u8>, id: Option<Option<ObjectId>>) -> Result<()> {
        debug_assert!(self.cur.is_empty() && chunk.len() <= self.chunk_size);
        self.pending.push((chunk, id));
        if self.pending.len() >= self.batch {
            self.flush_batch()?;
        }
        Ok(())
    }

    fn flush_batch(&mut self) -> Result<()> {
        let pending = std::mem::take(&mut self.pending);
        if pending.is_empty() {
            return Ok(());
        }
        let (pending, known): (Vec<Vec<u8>>, Vec<Option<Option<ObjectId>>>) =
            pending.into_iter().unzip();
        let ids: Vec<Option<ObjectId>> = if known.iter().all(|k| k.is_some()) {
            known.into_iter().flatten().collect()
        } else {
            crate::par::map(pending.iter().collect(), |c| chunk_id(c))
        };
        let mut seen = HashSet::new();
        let need: Vec<bool> = ids
            .iter()
            .map(|id| match id {
                Some(id) => self.w.lookup(id).is_none() && seen.insert(*id),
                None => false,
            })
            .collect();
        let elem = self.elem;
        let effort = if self.best {
            Effort::Best
        } else {
            Effort::Fast
        };
        // Probe every chunk of a batch now and then; in between, use the codec the probes
        // chose, so incompressible states skip compression and compressible ones skip
        // trying every codec.
        let hint = match self.hint {
            Some(h) if self.batches_since_probe < REPROBE_EVERY => {
                self.batches_since_probe += 1;
                Some(h)
            }
            _ => None,
        };
        let encoded: Vec<Option<(Choice, Option<Vec<u8>>)>> =
            crate::par::map(pending.iter().zip(need.iter()).collect(), |(c, &n)| {
                n.then(|| match hint {
                    Some(h) => encode_hinted(c, h),
                    None => encode_auto(c, elem, effort),
                })
            });
        if hint.is_none() {
            // The choice most chunks of this batch made becomes the hint.
            let mut counts: Vec<(Choice, usize)> = Vec::new();
            for (c, _) in encoded.iter().flatten() {
                match counts.iter_mut().find(|(k, _)| k == c) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((*c, 1)),
                }
            }
            if let Some((best, _)) = counts.iter().max_by_key(|(_, n)| *n) {
                self.hint = Some(*best);
                self.batches_since_probe = 0;
            }
        }
        for ((chunk, id), enc) in pending.iter().zip(ids).zip(encoded) {
            self.stats.chunks += 1;
            self.stream_len += chunk.len() as u64;
            let Some(id) = id else {
                self.stats.zero_chunks += 1;
                self.chunks.push(ChunkRef::Zero);
                continue;
            };
            let (location, codec) = match enc {
                Some((choice, payload)) => {
                    let codec = choice.codec;
                    let payload = payload.as_deref().unwrap_or(chunk);
                    let header = RecordHeader {
                        kind: ObjectKind::Chunk,
                        version: CHUNK_VERSION,
                        codec,
                        elem: choice.elem as u8,
                        raw_len: chunk.len() as u64,
                        payload_len: payload.len() as u64,
                        id,
                    };
                    let loc = self.w.store(&header, payload)?;
                    self.stats.new_chunks += 1;
                    self.stats.new_raw_bytes += chunk.len() as u64;
                    self.stats.new_stored_bytes += payload.len() as u64;
                    self.stats.codec_counts[codec as usize] += 1;
                    (loc, codec)
                }
                None => {
                    self.stats.dedup_chunks += 1;
                    self.w
                        .lookup(&id)
                        .expect("a chunk seen as a duplicate has a location")
                }
            };
            self.chunks.push(ChunkRef::Stored {
                id,
                codec,
                location,
            });
        }
        if let Some(p) = self.progress {
            p(self.stream_len);
        }
        for b in pending {
            if self.free.len() < self.batch && b.capacity() >= self.chunk_size {
                self.free.push(b);
            }
        }
        Ok(())
    }

    /// Store the last chunks; returns the manifest and the counters.
    pub fn finish(mut self) -> Result<(Manifest, PutStats)> {
        if !self.cur.is_empty() {
            let last = std::mem::take(&mut self.cur);
            self.pending.push((last, None));
        }
        self.flush_batch()?;
        let manifest = Manifest {
            chunk_size: self.chunk_size as u64,
            stream_len: self.stream_len,
            chunks: self.chunks,
        };
        Ok((manifest, self.stats))
    }
}
