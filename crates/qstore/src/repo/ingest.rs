//! Turning input into stored states: [`ingest_dense`] (validate, pick the encoding, stream the
//! chosen layout through a [`ChunkSink`]) and [`ingest_sparse`]. Nothing is written before the
//! input has passed every check.

use super::writer::{ChunkSink, ChunkStore, PutStats};
use crate::error::{Error, Result};
use crate::format::encode_object;
use crate::format::manifest::Manifest;
use crate::format::tree::StateEntry;
use crate::state::dtype::{DType, Encoding, StateKind};
use crate::state::hermitian::is_hermitian;
use crate::state::input::{ArrayInfo, DenseSource, KindRequest, all_zero, infer_kind, scan};
use crate::state::sparse::{SparseInput, prepare, stream_len};
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
    let chunk_size = w.chunk_size();
    let summary = scan(src, info, kind, chunk_size)?;
    let dtype = info.dtype;
    let item = dtype.item_size() as u64;
    let elements = info.elements().unwrap_or(0);
    let auto = opts.encoding == EncodingChoice::Auto;
    let encoding = match kind {
        StateKind::DensityMatrix if auto && is_hermitian(src, info.shape[0], dtype)? => {
            Encoding::Hermitian
        }
        StateKind::StateVector
            if auto
                && stream_len(summary.nnz, item as usize) < summary.nonzero_chunks * chunk_size =>
        {
            Encoding::Sparse
        }
        _ => Encoding::Dense,
    };
    let progress = opts.progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync));
    let mut sink = ChunkSink::new(w, dtype.component_size(), progress);
    let cs = chunk_size;
    let total = elements * item;
    match encoding {
        Encoding::Dense => {
            let mut off = 0;
            while off < total {
                let mut buf = vec![0u8; cs.min(total - off) as usize];
                src.read_at(off, &mut buf)?;
                sink.push_chunk(buf)?;
                off += cs;
            }
        }
        Encoding::Sparse => {
            // Two passes over the source: the indices, then the values.
            for values in [false, true] {
                let mut buf = vec![0u8; cs as usize];
                let mut off = 0;
                while off < total {
                    let b = &mut buf[..cs.min(total - off) as usize];
                    src.read_at(off, b)?;
                    if !all_zero(b) {
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
                    off += cs;
                }
            }
        }
        Encoding::Hermitian => {
            let n = info.shape[0];
            let mut row = vec![0u8; (n * item) as usize];
            for i in 0..n {
                let r = &mut row[..((n - i) * item) as usize];
                src.read_at((i * n + i) * item, r)?;
                sink.write(r)?;
            }
        }
    }
    let (m, stats) = sink.finish()?;
    let manifest = encode_object(&m).0;
    let entry = StateEntry {
        kind,
        dtype,
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
    let dtype: DType = input.dtype;
    let norm = (0..idx.len())
        .map(|k| {
            let [re, im] = dtype.amplitude(&vals, k);
            re * re + im * im
        })
        .sum();
    let progress = opts.progress.as_deref().map(|p| p as &(dyn Fn(u64) + Sync));
    let mut sink = ChunkSink::new(w, dtype.component_size(), progress);
    for i in &idx {
        sink.write(&i.to_le_bytes())?;
    }
    sink.write(&vals)?;
    let (m, stats) = sink.finish()?;
    let manifest = encode_object(&m).0;
    let entry = StateEntry {
        kind: StateKind::StateVector,
        dtype,
        shape: vec![1u64 << input.n_qubits],
        encoding: Encoding::Sparse,
        manifest,
        stream_len: m.stream_len,
        nnz: idx.len() as u64,
        norm,
        tags: opts.tags.clone(),
    };
    entry
        .validate()
        .map_err(|r| Error::corrupt("new state entry", r))?;
    Ok((entry, m, stats))
}
