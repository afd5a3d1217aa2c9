//! Turning input into stored states: [`ingest_dense`] (validate, pick the encoding, stream the
//! chosen layout through a [`ChunkSink`]) and [`ingest_sparse`]. Nothing is written before the
//! input has passed every check.

use super::writer::{ChunkSink, ChunkStore, PutStats};
use crate::error::{Error, Result};
use crate::format::encode_object;
use crate::format::manifest::Manifest;
use crate::format::tree::MAX_QUBITS;
use crate::format::tree::StateEntry;
use crate::state::dtype::{DType, Encoding, StateKind};
use crate::state::hermitian::is_hermitian;
use crate::state::input::{
    ArrayInfo, DenseSource, KindRequest, ScanSummary, all_zero, check_len, infer_kind, scan,
    scan_chunk,
};
use crate::state::sparse::{SparseInput, WideSparseInput, prepare, prepare_wide, stream_len};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Which encodings a put may choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum EncodingChoice {
    /// The smallest lossless layout: sparse for mostly-zero state vectors, Hermitian upper
    /// triangle for Hermitian density matrices, dense otherwise.
    #[default]
    Auto,
    /// Always dense.
    Dense,
}

/// Options of a put.
#[derive(Clone, Default)]
pub struct PutOptions {
    pub kind: KindRequest,
    pub encoding: EncodingChoice,
    /// User tags stored with the state.
    pub tags: BTreeMap<String, String>,
    /// Called with the number of stream bytes stored so far.
    pub progress: Option<Arc<dyn Fn(u64) + Send + Sync>>,
}

impl std::fmt::Debug for PutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOptions")
            .field("kind", &self.kind)
            .field("encoding", &self.encoding)
            .field("tags", &self.tags)
            .finish()
    }
}

/// Check user tags.
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<()> {
    for (k, v) in tags {
        if k.is_empty() || k.len() > 256 || k.chars().any(|c| c.is_control() || c == '=') {
            return Err(Error::InvalidArgument(format!(
                "tag key {k:?} must be 1-256 characters without '=' or control characters"
            )));
        }
        if v.len() > 64 << 10 {
            return Err(Error::InvalidArgument(format!(
                "tag {k:?} is longer than 64 KiB"
            )));
        }
    }
    Ok(())
}

/// Store a dense array given by `src`.
pub fn ingest_dense(
    w: &mut dyn ChunkStore,
    info: &ArrayInfo,
    src: &dyn DenseSource,
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    check_tags(&opts.tags)?;
    let kind = infer_kind(info, opts.kind)?;
    if kind == StateKind::DensityMatrix {
        return ingest_matrix(w, info, src, opts);
    }
    let chunk_size = w.chunk_size();
    let total = check_len(src, info)?;
    let dtype = info.dtype;
    let item = dtype.item_size() as u64;
    // One pass: read a batch of chunks in parallel, check and measure them in parallel, and
    // hand them to the sink. While the state might still be stored sparse (a state vector
    // whose non-zero chunks fit in HOLD_BYTES), its chunks are held back instead, so that a
    // sparse result leaves nothing behind.
    let mut holding = kind == StateKind::StateVector && opts.encoding == EncodingChoice::Auto;
    let mut held: Vec<(u64, Option<Vec<u8>>)> = Vec::new();
    let mut held_bytes = 0u64;
    let mut summary = ScanSummary::default();
    let progress = opts.progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync));
    let mut sink = ChunkSink::new(w, dtype.component_size(), progress);
    let n_chunks = total.div_ceil(chunk_size);
    let batch = sink.batch_len() as u64;
    let mut c0 = 0;
    while c0 < n_chunks {
        let c1 = (c0 + batch).min(n_chunks);
        let bufs: Vec<(u64, Vec<u8>)> = (c0..c1)
            .map(|c| {
                (
                    c,
                    sink.buffer(chunk_size.min(total - c * chunk_size) as usize),
                )
            })
            .collect();
        let parts: Vec<Result<(Vec<u8>, ScanSummary)>> = crate::par::map(bufs, |(c, mut buf)| {
            let start = c * chunk_size;
            src.read_at(start, &mut buf)?;
            let s = scan_chunk(&buf, start, info, kind)?;
            Ok((buf, s))
        });
        for p in parts {
            let (buf, s) = p?;
            summary.add(&s);
            if !holding {
                sink.push_chunk(buf)?;
                continue;
            }
            if s.nonzero_chunks == 0 {
                held.push((buf.len() as u64, None));
            } else {
                held_bytes += buf.len() as u64;
                held.push((buf.len() as u64, Some(buf)));
            }
            if held_bytes > HOLD_BYTES {
                holding = false;
                for (len, b) in held.drain(..) {
                    sink.push_chunk(b.unwrap_or_else(|| vec![0u8; len as usize]))?;
                }
            }
        }
        c0 = c1;
    }
    // Sparse only when its stream is smaller than the non-zero chunks it replaces (their
    // real lengths: a state smaller than one chunk has one short chunk).
    let sparse = holding && stream_len(summary.nnz, item as usize) < held_bytes;
    if sparse {
        // The indices, then the values, from the held non-zero chunks.
        for values in [false, true] {
            let mut off = 0u64;
            for (len, b) in &held {
                if let Some(b) = b {
                    for (k, e) in b.chunks_exact(item as usize).enumerate() {
                        if all_zero(e) {
                            continue;
                        }
                        if values {
                            sink.write(e)?;
                        } else {
                            sink.write(&(off / item + k as u64).to_le_bytes())?;
                        }
                    }
                }
                off += len;
            }
        }
    } else {
        for (len, b) in held {
            sink.push_chunk(b.unwrap_or_else(|| vec![0u8; len as usize]))?;
        }
    }
    let encoding = if sparse {
        Encoding::Sparse
    } else {
        Encoding::Dense
    };
    finish_entry(sink, info, kind, encoding, summary, opts)
}

/// Most bytes of non-zero chunks held back while a state vector might still be stored sparse.
const HOLD_BYTES: u64 = 64 << 20;

/// Density matrices: a measuring pass, a bit-exact Hermitian check, then the chosen layout.
fn ingest_matrix(
    w: &mut dyn ChunkStore,
    info: &ArrayInfo,
    src: &dyn DenseSource,
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    let kind = StateKind::DensityMatrix;
    let summary = scan(src, info, kind, w.chunk_size())?;
    let dtype = info.dtype;
    let item = dtype.item_size() as u64;
    let n = info.shape[0];
    let hermitian = opts.encoding == EncodingChoice::Auto && is_hermitian(src, n, dtype)?;
    let progress = opts.progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync));
    let cs = w.chunk_size();
    let mut sink = ChunkSink::new(w, dtype.component_size(), progress);
    if hermitian {
        let mut row = vec![0u8; (n * item) as usize];
        for i in 0..n {
            let r = &mut row[..((n - i) * item) as usize];
            src.read_at((i * n + i) * item, r)?;
            sink.write(r)?;
        }
    } else {
        let total = n * n * item;
        let mut off = 0;
        while off < total {
            let mut buf = vec![0u8; cs.min(total - off) as usize];
            src.read_at(off, &mut buf)?;
            sink.push_chunk(buf)?;
            off += cs;
        }
    }
    let encoding = if hermitian {
        Encoding::Hermitian
    } else {
        Encoding::Dense
    };
    finish_entry(sink, info, kind, encoding, summary, opts)
}

fn finish_entry(
    sink: ChunkSink<'_>,
    info: &ArrayInfo,
    kind: StateKind,
    encoding: Encoding,
    summary: ScanSummary,
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    let (m, stats) = sink.finish()?;
    let manifest = encode_object(&m).0;
    let entry = StateEntry {
        kind,
        dtype: info.dtype,
        qubits: match kind {
            StateKind::Array => 0,
            _ => info.shape.first().copied().unwrap_or(1).trailing_zeros(),
        },
        shape: info.shape.clone(),
        encoding,
        manifest,
        stream_len: m.stream_len,
        nnz: if encoding == Encoding::Sparse {
            summary.nnz
        } else {
            0
        },
        norm: summary.norm,
        tags: opts.tags.clone(),
    };
    entry
        .validate()
        .map_err(|r| Error::corrupt("new state entry", r))?;
    Ok((entry, m, stats))
}

/// Store a sparse state vector.
pub fn ingest_sparse(
    w: &mut dyn ChunkStore,
    input: &SparseInput<'_>,
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    check_tags(&opts.tags)?;
    let (idx, vals) = prepare(input)?;
    store_sparse(w, input.n_qubits, input.dtype, &idx, &vals, opts)
}

/// Store a sparse state vector with multi-word basis indices (up to 1024 qubits). One of at
/// most [`MAX_QUBITS`] qubits is stored exactly as [`ingest_sparse`] stores it.
pub fn ingest_sparse_wide(
    w: &mut dyn ChunkStore,
    input: &WideSparseInput<'_>,
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    check_tags(&opts.tags)?;
    let (idx, vals) = prepare_wide(input)?;
    store_sparse(w, input.n_qubits, input.dtype, &idx, &vals, opts)
}

/// Write sorted, checked sparse entries (`idx`: the index words) and make the state entry.
fn store_sparse(
    w: &mut dyn ChunkStore,
    n_qubits: u32,
    dtype: DType,
    idx: &[u64],
    vals: &[u8],
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    let nnz = vals.len() / dtype.item_size();
    let norm = (0..nnz)
        .map(|k| {
            let [re, im] = dtype.amplitude(vals, k);
            re * re + im * im
        })
        .sum();
    let progress = opts.progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync));
    let mut sink = ChunkSink::new(w, dtype.component_size(), progress);
    for i in idx {
        sink.write(&i.to_le_bytes())?;
    }
    sink.write(vals)?;
    let (m, stats) = sink.finish()?;
    let manifest = encode_object(&m).0;
    let entry = StateEntry {
        kind: StateKind::StateVector,
        dtype,
        qubits: n_qubits,
        shape: if n_qubits <= MAX_QUBITS {
            vec![1u64 << n_qubits]
        } else {
            vec![]
        },
        encoding: Encoding::Sparse,
        manifest,
        stream_len: m.stream_len,
        nnz: nnz as u64,
        norm,
        tags: opts.tags.clone(),
    };
    entry
        .validate()
        .map_err(|r| Error::corrupt("new state entry", r))?;
    Ok((entry, m, stats))
}
