//! Turning input into stored states: [`ingest_dense`] (validate, pick the encoding, stream the
//! chosen layout through a [`ChunkSink`]) and [`ingest_sparse`]. Nothing is written before the
//! input has passed every check.

use super::writer::{ChunkSink, ChunkStore, PutStats, chunk_id};
use crate::error::{Error, Result};
use crate::format::encode_object;
use crate::format::manifest::Manifest;
use crate::format::tree::LossyInfo;
use crate::format::tree::MAX_QUBITS;
use crate::format::tree::StateEntry;
use crate::id::ObjectId;
use crate::state::dtype::{DType, Encoding, StateKind};
use crate::state::hermitian::{is_hermitian, lower_rows, near_hermitian_saves};
use crate::state::input::{
    ArrayInfo, DenseSource, KindRequest, ScanSummary, all_zero, check_len, infer_kind, scan,
    scan_chunk,
};
use crate::state::lossy::{LossySpec, QuantizedSource, choose};
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
    /// Store an approximation of a dense state vector (opt-in; format version 4).
    pub lossy: Option<LossySpec>,
    /// Compress with every codec (zstd included) at write time instead of the fast ones
    /// (lz4, raw); lossy puts always do.
    pub best_codecs: bool,
}

impl std::fmt::Debug for PutOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutOptions")
            .field("kind", &self.kind)
            .field("encoding", &self.encoding)
            .field("tags", &self.tags)
            .field("lossy", &self.lossy)
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
    if let Some(spec) = &opts.lossy {
        return ingest_lossy(w, info, kind, src, spec, opts);
    }
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
    sink.set_best_codecs(opts.best_codecs);
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
        let hash = !holding;
        let parts: Vec<Result<Scanned>> = crate::par::map(bufs, |(c, mut buf)| {
            let start = c * chunk_size;
            src.read_at(start, &mut buf)?;
            let s = scan_chunk(&buf, start, info, kind)?;
            let id = hash.then(|| {
                if s.nonzero_chunks == 0 {
                    None
                } else {
                    chunk_id(&buf)
                }
            });
            Ok((buf, s, id))
        });
        for p in parts {
            let (buf, s, id) = p?;
            summary.add(&s);
            if !holding {
                sink.push_hashed(buf, id)?;
                continue;
            }
            if s.nonzero_chunks == 0 {
                held.push((buf.len() as u64, None));
            } else {
                held_bytes += buf.len() as u64;
                held.push((buf.len() as u64, Some(buf)));
            }
            // Stop holding once the state is too big to hold, or once the chunks held are
            // dense enough that the sparse form of them is already larger (a state whose
            // start is dense is stored dense, whatever follows).
            if held_bytes > HOLD_BYTES
                || (held_bytes >= HOLD_MIN_BYTES
                    && stream_len(summary.nnz, item as usize) >= held_bytes)
            {
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
        // The indices, then the values, from the held non-zero chunks (gathered per chunk
        // in parallel, written in large slices).
        let mut starts = Vec::with_capacity(held.len());
        let mut off = 0u64;
        for (len, _) in &held {
            starts.push(off);
            off += len;
        }
        let item = item as usize;
        let parts: Vec<(Vec<u8>, Vec<u8>)> = crate::par::map(
            held.iter()
                .zip(starts)
                .filter(|((_, b), _)| b.is_some())
                .collect(),
            |((_, b), start)| {
                let b = b.as_deref().unwrap_or_default();
                let (mut idx, mut vals) = (Vec::new(), Vec::new());
                for (k, e) in b.chunks_exact(item).enumerate() {
                    if !all_zero(e) {
                        idx.extend_from_slice(&(start / item as u64 + k as u64).to_le_bytes());
                        vals.extend_from_slice(e);
                    }
                }
                (idx, vals)
            },
        );
        for (idx, _) in &parts {
            sink.write(idx)?;
        }
        for (_, vals) in &parts {
            sink.write(vals)?;
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

/// A lossy put: choose the quantizer and measure its fidelity over the whole input (checked
/// first, so bad input is refused before any measuring), then store the quantized state like
/// any other (sparse when that is smaller) with the best codecs, and record the fidelity.
fn ingest_lossy(
    w: &mut dyn ChunkStore,
    info: &ArrayInfo,
    kind: StateKind,
    src: &dyn DenseSource,
    spec: &LossySpec,
    opts: &PutOptions,
) -> Result<(StateEntry, Manifest, PutStats)> {
    if kind != StateKind::StateVector {
        return Err(Error::InvalidArgument(format!(
            "lossy modes are for state vectors (this is a {kind}); a density matrix or array \
             is stored lossless"
        )));
    }
    if !w.has_format_4() {
        return Err(Error::InvalidArgument(
            "lossy states need repository format version 4; run `qstore upgrade` (older \
             builds then refuse the repository)"
                .into(),
        ));
    }
    let total = check_len(src, info)?;
    scan(src, info, kind, w.chunk_size())?;
    let (q, fidelity) = choose(spec, src, total, info.dtype)?;
    if fidelity == 0.0 {
        return Err(Error::InvalidArgument(format!(
            "lossy mode {spec} leaves nothing of this state (fidelity 0); nothing was stored"
        )));
    }
    let quantized = QuantizedSource { inner: src, q };
    let opts = PutOptions {
        lossy: None,
        best_codecs: true,
        ..opts.clone()
    };
    let (mut entry, m, stats) = ingest_dense(w, info, &quantized, &opts)?;
    entry.lossy = Some(LossyInfo {
        mode: spec.to_string(),
        fidelity,
    });
    entry
        .validate()
        .map_err(|r| Error::corrupt("new state entry", r))?;
    Ok((entry, m, stats))
}

/// A chunk read and checked, with its id when it was hashed in the same pass (`Some(None)`:
/// all zero).
type Scanned = (Vec<u8>, ScanSummary, Option<Option<ObjectId>>);

/// Most bytes of non-zero chunks held back while a state vector might still be stored sparse.
const HOLD_BYTES: u64 = 64 << 20;
/// Non-zero chunk bytes held before the density of the state so far may end the holding.
const HOLD_MIN_BYTES: u64 = 4 << 20;

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
    let auto = opts.encoding == EncodingChoice::Auto;
    let hermitian = auto && is_hermitian(src, n, dtype)?;
    let near = auto && !hermitian && w.has_format_4() && near_hermitian_saves(src, n, dtype)?;
    let progress = opts.progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync));
    let cs = w.chunk_size();
    let mut sink = ChunkSink::new(w, dtype.component_size(), progress);
    sink.set_best_codecs(opts.best_codecs);
    if hermitian || near {
        let mut row = vec![0u8; (n * item) as usize];
        for i in 0..n {
            let r = &mut row[..((n - i) * item) as usize];
            src.read_at((i * n + i) * item, r)?;
            sink.write(r)?;
        }
    }
    if near {
        // The residuals, in blocks of rows of about 16 MiB: small integers, which only an
        // entropy coder (zstd) squeezes well, so these are compressed with every codec.
        sink.reprobe();
        sink.set_best_codecs(true);
        let mut r0 = 1;
        while r0 < n {
            let mut r1 = r0 + 1;
            while r1 < n && (r1 * (r1 + 1) / 2 - r0 * (r0 + 1) / 2) * item < (16 << 20) {
                r1 += 1;
            }
            let (_, res) = lower_rows(src, n, dtype, r0, r1)?;
            sink.write(&res)?;
            r0 = r1;
        }
    } else if !hermitian {
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
    } else if near {
        Encoding::NearHermitian
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
        lossy: None,
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
    sink.set_best_codecs(opts.best_codecs);
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
        lossy: None,
    };
    entry
        .validate()
        .map_err(|r| Error::corrupt("new state entry", r))?;
    Ok((entry, m, stats))
}
