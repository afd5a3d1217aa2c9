//! [`StateReader`]: reads one stored state: its byte stream (chunks decoded in parallel
//! straight into the caller's buffer, verified by hash), any range of elements in dense
//! order whatever the encoding, the whole dense form (refused with
//! [`Error::TooLargeToMaterialise`] beyond the limit), its sparse form, and streaming
//! analyses (norm, top-k, marginals, fidelity) that hold one chunk at a time.

use super::Repository;
use super::scratch::{SCRATCH_PACK, ScratchInner};
use crate::error::{Error, Result};
use crate::format::manifest::ChunkRef;
use crate::format::manifest::Manifest;
use crate::format::tree::StateEntry;
use crate::state::analysis::{Marginals, Overlap, TopK};
use crate::state::dtype::{Encoding, StateKind};
use crate::state::hermitian::{apply_residual, mirror, residual_offset, upper_offset};
use crate::state::input::all_zero;
use crate::state::sparse::{WideSparse, cmp_wide, decode_wide};
use rayon::prelude::*;
use std::io::Write;
use std::sync::Arc;

/// Bytes a block-wise read holds at once.
const BLOCK_BYTES: u64 = 64 << 20;

/// Reads one state.
pub struct StateReader {
    repo: Repository,
    path: String,
    entry: StateEntry,
    manifest: Arc<Manifest>,
    cached: Option<(usize, Vec<u8>)>,
    /// The scratch space holding chunks marked with [`SCRATCH_PACK`], if any.
    scratch: Option<Arc<ScratchInner>>,
    /// The start of a (near-)Hermitian stream's upper triangle read by a large read, kept
    /// for the next one (a whole read arrives in several ranges).
    upper: Vec<u8>,
}

/// Rows `i0..i1` of an N x N (near-)Hermitian matrix into `block` (whole rows), from the
/// upper-triangle stream `upper` (rows 0..i1 at least) and, for a near-Hermitian one, the
/// residuals `res` starting at element `res_first` of the stream.
fn hermitian_rows(
    dtype: crate::state::dtype::DType,
    n: u64,
    i0: u64,
    i1: u64,
    upper: &[u8],
    res: Option<(&[u8], u64)>,
    block: &mut [u8],
) {
    const TILE: u64 = 64;
    let item = dtype.item_size();
    let row = n as usize * item;
    // The upper part of each row is one contiguous piece of the stream.
    for i in i0..i1 {
        let o = upper_offset(n, i, i) as usize * item;
        let len = (n - i) as usize * item;
        let at = (i - i0) as usize * row + i as usize * item;
        block[at..at + len].copy_from_slice(&upper[o..o + len]);
    }
    // The lower part mirrors columns, in tiles: element (j, i) is at base[j] + i.
    let mut j0 = 0;
    while j0 + 1 < i1 {
        let j1 = (j0 + TILE).min(i1);
        let base: Vec<usize> = (j0..j1)
            .map(|j| (upper_offset(n, j, j) - j) as usize)
            .collect();
        for i in i0.max(j0 + 1)..i1 {
            let line = &mut block[(i - i0) as usize * row..][..row];
            for j in j0..j1.min(i) {
                let o = (base[(j - j0) as usize] + i as usize) * item;
                let d = j as usize * item;
                mirror(dtype, &upper[o..o + item], &mut line[d..d + item]);
            }
        }
        j0 = j1;
    }
    if let Some((res, res_first)) = res {
        for i in i0..i1 {
            let o = (residual_offset(n, i, 0) - res_first) as usize * item;
            let len = i as usize * item;
            let at = (i - i0) as usize * row;
            apply_residual(dtype, &mut block[at..at + len], &res[o..o + len]);
        }
    }
}

/// Decode chunk `c` from wherever it lives: a pack of `repo` (through its cache; `keep` adds
/// a miss to the cache) or a scratch space.
fn fetch_chunk(
    repo: &Repository,
    scratch: Option<&ScratchInner>,
    c: &ChunkRef,
    out: &mut [u8],
    keep: bool,
) -> Result<()> {
    match (c, scratch) {
        (ChunkRef::Stored { id, location, .. }, Some(s)) if location.pack == SCRATCH_PACK => {
            s.read_chunk(id, out)
        }
        _ => repo.read_chunk_cached(c, out, keep),
    }
}

impl StateReader {
    /// A reader for `entry`, stored at `path`.
    pub fn new(repo: Repository, path: &str, entry: StateEntry) -> Result<Self> {
        let manifest = repo
            .manifest(&entry.manifest)
            .map_err(|e| e.at_path(path))?;
        if manifest.stream_len != entry.stream_len {
            return Err(Error::corrupt(
                format!("manifest {}", entry.manifest.short()),
                "its length does not match the state entry",
            )
            .at_path(path));
        }
        Ok(StateReader {
            repo,
            path: path.to_string(),
            entry,
            manifest: Arc::new(manifest),
            cached: None,
            scratch: None,
            upper: Vec::new(),
        })
    }

    /// A reader over a state held in a scratch space.
    pub(crate) fn from_scratch(
        repo: Repository,
        scratch: Arc<ScratchInner>,
        entry: StateEntry,
        manifest: Arc<Manifest>,
    ) -> Self {
        StateReader {
            repo,
            path: "(scratch)".into(),
            entry,
            manifest,
            cached: None,
            scratch: Some(scratch),
            upper: Vec::new(),
        }
    }

    /// The state's entry (kind, dtype, shape, encoding, tags...).
    pub fn entry(&self) -> &StateEntry {
        &self.entry
    }

    /// The state's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    fn chunk(&mut self, i: usize) -> Result<&[u8]> {
        if self.cached.as_ref().is_none_or(|(c, _)| *c != i) {
            let mut buf = vec![0u8; self.manifest.chunk_len(i) as usize];
            fetch_chunk(
                &self.repo,
                self.scratch.as_deref(),
                &self.manifest.chunks[i],
                &mut buf,
                true,
            )
            .map_err(|e| e.at_path(&self.path))?;
            self.cached = Some((i, buf));
        }
        Ok(&self.cached.as_ref().expect("just filled").1)
    }

    /// Fill `out` with the encoded stream bytes at `offset`. Whole chunks are decoded in
    /// parallel directly into `out`.
    pub fn read_stream(&mut self, offset: u64, out: &mut [u8]) -> Result<()> {
        let end = offset
            .checked_add(out.len() as u64)
            .filter(|&e| e <= self.manifest.stream_len)
            .ok_or_else(|| Error::InvalidArgument("read past the end of the state".into()))?;
        let cs = self.manifest.chunk_size;
        let mut whole: Vec<(usize, &mut [u8])> = Vec::new();
        let mut rest = out;
        let mut pos = offset;
        while pos < end {
            let i = (pos / cs) as usize;
            let cstart = i as u64 * cs;
            let clen = self.manifest.chunk_len(i);
            let take = ((cstart + clen).min(end) - pos) as usize;
            let (head, tail) = rest.split_at_mut(take);
            if pos == cstart && take as u64 == clen {
                whole.push((i, head));
            } else {
                let from = (pos - cstart) as usize;
                let c = self.chunk(i)?;
                head.copy_from_slice(&c[from..from + take]);
            }
            rest = tail;
            pos += take as u64;
        }
        let repo = &self.repo;
        // Keep what a read brings in only when the read fits easily in the cache.
        let keep = (end - offset) * 2 <= repo.cache_stats().capacity_bytes;
        let scratch = self.scratch.as_deref();
        let chunks = &self.manifest.chunks;
        let fetch = || {
            whole
                .into_par_iter()
                .try_for_each(|(i, buf)| fetch_chunk(repo, scratch, &chunks[i], buf, keep))
        };
        // Remote chunks wait on the network: many requests in flight, not one per core.
        if repo.storage().prefers_few_requests() {
            crate::par::on_remote_pool(fetch)
        } else {
            fetch()
        }
        .map_err(|e| e.at_path(&self.path))
    }

    fn read_u64(&mut self, offset: u64) -> Result<u64> {
        let mut b = [0u8; 8];
        self.read_stream(offset, &mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn corrupt_stream(&self, detail: String) -> Error {
        Error::corrupt(
            format!("sparse stream of manifest {}", self.entry.manifest.short()),
            detail,
        )
        .at_path(&self.path)
    }

    /// Index of sparse entry `k`, checked against the dimension.
    fn sparse_index(&mut self, k: u64) -> Result<u64> {
        let i = self.read_u64(k * 8)?;
        if i >= self.entry.elements() {
            return Err(self.corrupt_stream(format!("basis index {i} out of range")));
        }
        Ok(i)
    }

    /// The whole encoded stream (a sparse state's), within the materialise limit.
    fn read_whole_stream(&mut self) -> Result<Vec<u8>> {
        let limit = self.repo.materialise_limit();
        if self.entry.stream_len > limit {
            return Err(Error::TooLargeToMaterialise {
                path: Some(self.path.clone()),
                bytes: self.entry.stream_len as u128,
                limit,
            });
        }
        let mut stream = vec![0u8; self.entry.stream_len as usize];
        self.read_stream(0, &mut stream)?;
        Ok(stream)
    }

    /// Refuse an operation that needs 64-bit basis indices on a state of more than
    /// [`MAX_QUBITS`](crate::format::tree::MAX_QUBITS) qubits.
    fn require_narrow(&self, what: &str) -> Result<()> {
        if self.entry.is_wide() {
            return Err(Error::InvalidArgument(format!(
                "{:?} is a {}-qubit state vector, which has no dense form: {what} works up to \
                 {} qubits; read it with read_sparse_wide",
                self.path,
                self.entry.qubits,
                crate::format::tree::MAX_QUBITS
            )));
        }
        Ok(())
    }

    /// The sparse form with multi-word basis indices, for a state vector of any width (up to
    /// 1024 qubits; one word per index up to 64 qubits). A dense state vector is scanned as
    /// [`StateReader::read_sparse`] does.
    pub fn read_sparse_wide(&mut self) -> Result<WideSparse> {
        if self.entry.kind != StateKind::StateVector {
            return Err(Error::InvalidArgument(format!(
                "{:?} is not a state vector",
                self.path
            )));
        }
        if !self.entry.is_wide() {
            let (idx, values) = self.read_sparse()?;
            return Ok(WideSparse {
                n_qubits: self.entry.qubits,
                words: 1,
                indices: idx,
                values,
            });
        }
        let stream = self.read_whole_stream()?;
        decode_wide(
            &stream,
            self.entry.nnz,
            self.entry.dtype.item_size(),
            self.entry.qubits,
        )
        .map_err(|d| self.corrupt_stream(d))
    }

    /// Fill `out` with elements `start..stop` of the dense form (C order), whatever the
    /// encoding.
    pub fn read_elements(&mut self, start: u64, stop: u64, out: &mut [u8]) -> Result<()> {
        self.require_narrow("reading elements")?;
        let item = self.entry.dtype.item_size() as u64;
        if start > stop || stop > self.entry.elements() {
            return Err(Error::InvalidArgument(format!(
                "element range {start}..{stop} is outside 0..{}",
                self.entry.elements()
            )));
        }
        if out.len() as u64 != (stop - start) * item {
            return Err(Error::InvalidArgument(
                "output buffer has the wrong length".into(),
            ));
        }
        match self.entry.encoding {
            Encoding::Dense => self.read_stream(start * item, out),
            Encoding::Sparse => self.read_sparse_range(start, stop, out),
            Encoding::Hermitian | Encoding::NearHermitian => {
                self.read_hermitian_range(start, stop, out)
            }
        }
    }

    /// [`Self::read_hermitian_range`] for large ranges: the upper-triangle rows the range
    /// needs in one read (decoded in parallel, kept by the reader for the next range), then
    /// the rows rebuilt from memory in parallel, 64 at a time (the mirrored half read
    /// column-wise in 64 x 64 tiles), with the residuals of a near-Hermitian stream applied.
    /// Holds the upper rows read (at most half the matrix) and about 64 MiB of rows.
    fn read_hermitian_bulk(&mut self, start: u64, stop: u64, out: &mut [u8]) -> Result<()> {
        const TILE: u64 = 64;
        let dtype = self.entry.dtype;
        let item = dtype.item_size();
        let n = self.entry.shape[0];
        let r_first = start / n;
        let r_end = (stop - 1) / n + 1;
        // Rows 0..r_end of the upper triangle hold every element rows r_first..r_end need.
        let upper_end = if r_end == n {
            upper_offset(n, n - 1, n - 1) + 1
        } else {
            upper_offset(n, r_end, r_end)
        };
        let need = upper_end as usize * item;
        if self.upper.len() < need {
            let mut upper = std::mem::take(&mut self.upper);
            let have = upper.len();
            upper.resize(need, 0);
            self.read_stream(have as u64, &mut upper[have..])?;
            self.upper = upper;
        }
        let upper = std::mem::take(&mut self.upper);
        let near = self.entry.encoding == Encoding::NearHermitian;
        let row = n as usize * item;
        // Super-blocks of about 64 MiB of rows: their residuals in one read, their rows
        // rebuilt in parallel, 64 rows per task.
        let per_super = ((BLOCK_BYTES as usize / row.max(1)) as u64).max(TILE);
        let mut s0 = r_first;
        while s0 < r_end {
            let s1 = (s0 + per_super).min(r_end);
            let res = if near {
                let first = residual_offset(n, s0, 0);
                let count = residual_offset(n, s1, 0) - first;
                let mut res = vec![0u8; count as usize * item];
                self.read_stream(first * item as u64, &mut res)?;
                res
            } else {
                Vec::new()
            };
            let res_first = residual_offset(n, s0, 0);
            let (upper, res) = (&upper, &res);
            // Rows s0..s1 into `rows` (whole rows), 64 per task.
            let rebuild = |rows: &mut [u8]| {
                rows.par_chunks_mut(TILE as usize * row)
                    .enumerate()
                    .for_each(|(t, block)| {
                        let i0 = s0 + t as u64 * TILE;
                        let i1 = (i0 + TILE).min(s1);
                        hermitian_rows(
                            dtype,
                            n,
                            i0,
                            i1,
                            upper,
                            near.then_some((res, res_first)),
                            block,
                        );
                    })
            };
            let (blk_start, blk_stop) = (s0 * n, s1 * n);
            if start <= blk_start && blk_stop <= stop {
                // Whole rows of the range: straight into the caller's buffer.
                let dst = ((blk_start - start) as usize) * item;
                rebuild(&mut out[dst..dst + (blk_stop - blk_start) as usize * item]);
            } else {
                let mut buf = vec![0u8; (s1 - s0) as usize * row];
                rebuild(&mut buf);
                let s = start.max(blk_start);
                let e = stop.min(blk_stop);
                let dst = ((s - start) as usize) * item;
                let src = ((s - blk_start) as usize) * item;
                let len = ((e - s) as usize) * item;
                out[dst..dst + len].copy_from_slice(&buf[src..src + len]);
            }
            s0 = s1;
        }
        self.upper = upper;
        Ok(())
    }

    fn read_sparse_range(&mut self, start: u64, stop: u64, out: &mut [u8]) -> Result<()> {
        out.fill(0);
        let item = self.entry.dtype.item_size() as u64;
        let nnz = self.entry.nnz;
        let (mut lo, mut hi) = (0u64, nnz);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.sparse_index(mid)? < start {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        // Indices and values in batches: one large read of each per batch (reading them one
        // element at a time would switch between the index and value chunks every element).
        const BATCH: u64 = 1 << 16;
        let mut prev: Option<u64> = None;
        let (mut idx, mut vals) = (Vec::new(), Vec::new());
        let mut k = lo;
        while k < nnz {
            let n = BATCH.min(nnz - k);
            idx.resize((n * 8) as usize, 0u8);
            self.read_stream(k * 8, &mut idx)?;
            let mut m = 0u64;
            for e in idx.chunks_exact(8) {
                let i = u64::from_le_bytes(e.try_into().expect("8 bytes"));
                if prev.is_some_and(|p| i <= p) || i < start {
                    return Err(self.corrupt_stream(format!("indices not increasing at {i}")));
                }
                if i >= stop {
                    break;
                }
                prev = Some(i);
                m += 1;
            }
            if m > 0 {
                vals.resize((m * item) as usize, 0u8);
                self.read_stream(nnz * 8 + k * item, &mut vals)?;
                for (e, v) in idx.chunks_exact(8).zip(vals.chunks_exact(item as usize)) {
                    let i = u64::from_le_bytes(e.try_into().expect("8 bytes"));
                    let o = ((i - start) * item) as usize;
                    out[o..o + item as usize].copy_from_slice(v);
                }
            }
            if m < n {
                break;
            }
            k += n;
        }
        Ok(())
    }

    fn read_hermitian_range(&mut self, start: u64, stop: u64, out: &mut [u8]) -> Result<()> {
        if start == stop {
            return Ok(());
        }
        let n = self.entry.shape[0];
        if (stop - start) >= n * n / 8 {
            return self.read_hermitian_bulk(start, stop, out);
        }
        let dtype = self.entry.dtype;
        let item = dtype.item_size() as u64;
        let n = self.entry.shape[0];
        let row = n * item;
        let r_first = start / n;
        let r_end = (stop - 1) / n + 1;
        let block = (BLOCK_BYTES / row).max(1);
        let mut b0 = r_first;
        while b0 < r_end {
            let b1 = (b0 + block).min(r_end);
            let mut buf = vec![0u8; ((b1 - b0) * row) as usize];
            let mut piece = vec![0u8; ((b1 - b0) * item) as usize];
            for j in 0..b1 {
                if j >= b0 {
                    let at = ((j - b0) * row + j * item) as usize;
                    let len = ((n - j) * item) as usize;
                    self.read_stream(upper_offset(n, j, j) * item, &mut buf[at..at + len])?;
                }
                let c_start = b0.max(j + 1);
                if c_start >= b1 {
                    continue;
                }
                let count = (b1 - c_start) as usize;
                let src: &[u8] = if j >= b0 {
                    let at = ((j - b0) * row + c_start * item) as usize;
                    piece[..count * item as usize]
                        .copy_from_slice(&buf[at..at + count * item as usize]);
                    &piece[..count * item as usize]
                } else {
                    self.read_stream(
                        upper_offset(n, j, c_start) * item,
                        &mut piece[..count * item as usize],
                    )?;
                    &piece[..count * item as usize]
                };
                for k in 0..count {
                    let c = c_start + k as u64;
                    let at = ((c - b0) * row + j * item) as usize;
                    mirror(
                        dtype,
                        &src[k * item as usize..(k + 1) * item as usize],
                        &mut buf[at..at + item as usize],
                    );
                }
            }
            if self.entry.encoding == Encoding::NearHermitian {
                // The residuals of rows b0..b1 follow each other in the stream.
                let first = residual_offset(n, b0, 0);
                let count = residual_offset(n, b1, 0) - first;
                let mut res = vec![0u8; (count * item) as usize];
                self.read_stream(first * item, &mut res)?;
                let mut o = 0usize;
                for i in b0..b1 {
                    let len = (i * item) as usize;
                    let at = ((i - b0) * row) as usize;
                    apply_residual(dtype, &mut buf[at..at + len], &res[o..o + len]);
                    o += len;
                }
            }
            // Copy the part of this block that lies in start..stop.
            let blk_start = b0 * n;
            let blk_stop = b1 * n;
            let s = start.max(blk_start);
            let e = stop.min(blk_stop);
            let dst = ((s - start) * item) as usize;
            let src = ((s - blk_start) * item) as usize;
            let len = ((e - s) * item) as usize;
            out[dst..dst + len].copy_from_slice(&buf[src..src + len]);
            b0 = b1;
        }
        Ok(())
    }

    /// Refuse when the dense form exceeds the repository's materialise limit.
    pub fn check_materialise(&self) -> Result<u64> {
        let bytes = self.entry.dense_bytes();
        let limit = self.repo.materialise_limit();
        if bytes > limit as u128 || bytes > isize::MAX as u128 {
            return Err(Error::TooLargeToMaterialise {
                path: Some(self.path.clone()),
                bytes,
                limit,
            });
        }
        Ok(bytes as u64)
    }

    /// The whole dense form in memory.
    pub fn read_all(&mut self) -> Result<Vec<u8>> {
        let bytes = self.check_materialise()?;
        let mut out = vec![0u8; bytes as usize];
        self.read_elements(0, self.entry.elements(), &mut out)?;
        Ok(out)
    }

    /// Stream the dense form to `w` in blocks; `progress` gets the bytes written so far.
    pub fn write_dense_to(&mut self, w: &mut dyn Write, progress: &dyn Fn(u64)) -> Result<()> {
        self.check_materialise()?;
        let item = self.entry.dtype.item_size() as u64;
        let total = self.entry.elements();
        let per_block = (BLOCK_BYTES / item).max(1);
        let mut buf = Vec::new();
        let mut s = 0;
        while s < total {
            let e = (s + per_block).min(total);
            buf.resize(((e - s) * item) as usize, 0);
            self.read_elements(s, e, &mut buf)?;
            w.write_all(&buf).map_err(|e| Error::io("output", e))?;
            s = e;
            progress(s * item);
        }
        Ok(())
    }

    /// The sparse form: sorted basis indices of the non-zero elements and their values.
    /// A sparse-encoded state is returned as stored; a dense one is scanned (within the
    /// materialise limit).
    pub fn read_sparse(&mut self) -> Result<(Vec<u64>, Vec<u8>)> {
        self.require_narrow("read_sparse")?;
        let item = self.entry.dtype.item_size();
        if self.entry.encoding == Encoding::Sparse {
            let nnz = self.entry.nnz;
            let stream = self.read_whole_stream()?;
            return crate::state::sparse::decode(&stream, nnz, item, self.entry.elements())
                .map_err(|d| self.corrupt_stream(d));
        }
        self.check_materialise()?;
        let (mut idx, mut vals) = (Vec::new(), Vec::new());
        self.visit_blocks(&mut |start, block| {
            for (k, e) in block.chunks_exact(item).enumerate() {
                if !all_zero(e) {
                    idx.push(start + k as u64);
                    vals.extend_from_slice(e);
                }
            }
        })?;
        Ok((idx, vals))
    }

    /// Visit the dense form in blocks: `f(first_element_index, bytes)`.
    fn visit_blocks(&mut self, f: &mut dyn FnMut(u64, &[u8])) -> Result<()> {
        let item = self.entry.dtype.item_size() as u64;
        let total = self.entry.elements();
        let per_block = (self.manifest.chunk_size / item).max(1) * 4;
        let mut buf = Vec::new();
        let mut s = 0;
        while s < total {
            let e = (s + per_block).min(total);
            buf.resize(((e - s) * item) as usize, 0);
            self.read_elements(s, e, &mut buf)?;
            f(s, &buf);
            s = e;
        }
        Ok(())
    }

    fn require_state(&self) -> Result<()> {
        if self.entry.kind == StateKind::Array {
            return Err(Error::InvalidArgument(format!(
                "{:?} is a generic array; probabilities are defined for state vectors and density matrices",
                self.path
            )));
        }
        Ok(())
    }

    /// Visit the probability of every basis state that may be non-zero: |a_i|^2 of a state
    /// vector (only the stored entries of a sparse one), the diagonal of a density matrix.
    pub fn visit_probabilities(&mut self, f: &mut dyn FnMut(u64, f64)) -> Result<()> {
        self.require_state()?;
        self.require_narrow("probabilities with 64-bit indices (top-k, marginals, norm)")?;
        let dtype = self.entry.dtype;
        let item = dtype.item_size() as u64;
        match (self.entry.kind, self.entry.encoding) {
            (StateKind::StateVector, Encoding::Sparse) => {
                let nnz = self.entry.nnz;
                let mut v = vec![0u8; item as usize];
                for k in 0..nnz {
                    let i = self.sparse_index(k)?;
                    self.read_stream(nnz * 8 + k * item, &mut v)?;
                    let [re, im] = dtype.amplitude(&v, 0);
                    f(i, re * re + im * im);
                }
                Ok(())
            }
            (StateKind::StateVector, _) => self.visit_blocks(&mut |start, b| {
                for k in 0..b.len() / item as usize {
                    let [re, im] = dtype.amplitude(b, k);
                    f(start + k as u64, re * re + im * im);
                }
            }),
            (_, enc) => {
                let n = self.entry.shape[0];
                let mut v = vec![0u8; item as usize];
                for i in 0..n {
                    let off = match enc {
                        Encoding::Hermitian | Encoding::NearHermitian => upper_offset(n, i, i),
                        _ => i * n + i,
                    };
                    self.read_stream(off * item, &mut v)?;
                    f(i, dtype.amplitude(&v, 0)[0]);
                }
                Ok(())
            }
        }
    }

    /// The `k` most probable basis states, most probable first.
    pub fn top_k(&mut self, k: usize) -> Result<Vec<(u64, f64)>> {
        let mut t = TopK::new(k)?;
        self.visit_probabilities(&mut |i, p| t.push(i, p))?;
        Ok(t.into_sorted())
    }

    /// Marginal distribution of `qubits` (see [`Marginals`]).
    pub fn marginals(&mut self, qubits: &[u32]) -> Result<Vec<f64>> {
        self.require_state()?;
        let n = self.entry.qubits().unwrap_or(0);
        let mut m = Marginals::new(qubits, n)?;
        self.visit_probabilities(&mut |i, p| m.add(i, p))?;
        Ok(m.into_probs())
    }

    /// Squared norm (state vector) or trace (density matrix), recomputed from the data.
    pub fn norm(&mut self) -> Result<f64> {
        let mut s = 0.0;
        self.visit_probabilities(&mut |_, p| s += p)?;
        Ok(s)
    }

    /// Fidelity between two states of the same kind and shape: `|<a|b>|^2 / (<a|a><b|b>)`
    /// for state vectors, `|Tr(a^dagger b)| / (||a|| ||b||)` for density matrices (which is
    /// `|<a|b>|^2` for pure states). `None` for arrays or mismatched shapes.
    pub fn fidelity(a: &mut StateReader, b: &mut StateReader) -> Result<Option<f64>> {
        if a.entry.kind != b.entry.kind
            || a.entry.shape != b.entry.shape
            || a.entry.kind == StateKind::Array
        {
            return Ok(None);
        }
        let (da, db) = (a.entry.dtype, b.entry.dtype);
        let mut o = Overlap::default();
        if a.entry.is_wide() || b.entry.is_wide() {
            if a.entry.qubits != b.entry.qubits {
                return Ok(None);
            }
            // Both sparse: join the sorted index lists.
            let (sa, sb) = (a.read_sparse_wide()?, b.read_sparse_wide()?);
            let (mut i, mut j) = (0, 0);
            while i < sa.len() && j < sb.len() {
                match cmp_wide(sa.basis_index(i), sb.basis_index(j)) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        o.add(da.amplitude(&sa.values, i), db.amplitude(&sb.values, j));
                        i += 1;
                        j += 1;
                    }
                }
            }
            o.norm_a = a.entry.norm;
            o.norm_b = b.entry.norm;
            return Ok(Some(o.fidelity()));
        }
        if a.entry.kind == StateKind::StateVector
            && (a.entry.encoding == Encoding::Sparse || b.entry.encoding == Encoding::Sparse)
        {
            // Sum over the stored entries of the sparse side only.
            let swap = a.entry.encoding != Encoding::Sparse;
            let (s, d) = if swap { (b, a) } else { (a, b) };
            let (idx, vals) = s.read_sparse()?;
            let (ds, dd) = (s.entry.dtype, d.entry.dtype);
            let mut v = vec![0u8; dd.item_size()];
            for (k, &i) in idx.iter().enumerate() {
                d.read_elements(i, i + 1, &mut v)?;
                let (x, y) = (ds.amplitude(&vals, k), dd.amplitude(&v, 0));
                if swap { o.add(y, x) } else { o.add(x, y) }
            }
            o.norm_a = if swap { d.entry.norm } else { s.entry.norm };
            o.norm_b = if swap { s.entry.norm } else { d.entry.norm };
            return Ok(Some(o.fidelity()));
        }
        let total = a.entry.elements();
        let per = 1u64 << 16;
        let (mut ba, mut bb) = (Vec::new(), Vec::new());
        let mut s = 0;
        while s < total {
            let e = (s + per).min(total);
            ba.resize(((e - s) as usize) * da.item_size(), 0);
            bb.resize(((e - s) as usize) * db.item_size(), 0);
            a.read_elements(s, e, &mut ba)?;
            b.read_elements(s, e, &mut bb)?;
            for k in 0..(e - s) as usize {
                o.add(da.amplitude(&ba, k), db.amplitude(&bb, k));
            }
            s = e;
        }
        Ok(Some(match a.entry.kind {
            StateKind::DensityMatrix => o.fidelity().sqrt(),
            _ => o.fidelity(),
        }))
    }
}
