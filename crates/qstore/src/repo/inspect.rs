//! Views of stored states for people (the web view of `qstore serve --ui`): per-qubit Bloch
//! vectors, the Shannon entropy of the measurement distribution, amplitudes at chosen
//! indices (for their phases), a density matrix's heat map downsampled to a small grid,
//! what a state costs in storage, a checkpoint series over a branch's history, and the
//! commit graph of every ref in time order, a page at a time. Each streams the state a
//! block at a time and never holds a large state whole.

use super::{Repository, StateReader};
use crate::error::{Error, Result};
use crate::format::manifest::ChunkRef;
use crate::id::ObjectId;
use crate::path::StatePath;
use crate::state::analysis::TopK;
use crate::state::dtype::{Encoding, StateKind};
use rayon::prelude::*;
use serde::Serialize;
use std::collections::{BTreeMap, BinaryHeap, HashSet};

/// Most qubits of a state vector whose Bloch vectors are computed (30 qubits: 16 GiB of
/// complex128, streamed in a few passes).
pub const MAX_BLOCH_QUBITS: u32 = 30;
/// Most qubits of a density matrix whose Bloch vectors or heat map are computed (the whole
/// matrix is streamed by rows: 4^12 elements).
pub const MAX_MATRIX_VIEW_QUBITS: u32 = 12;
/// Amplitudes held per block when streaming a state vector (64 MiB of complex128).
const BLOCK_LOG2: u32 = 22;

/// What one state costs: its dense size against the bytes its distinct stored chunks take.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StoredSize {
    /// Bytes of the dense form.
    pub logical_bytes: u128,
    /// Bytes of the stored stream before compression.
    pub stream_bytes: u64,
    /// Bytes the distinct stored chunks take in packs (compressed).
    pub stored_bytes: u64,
    pub chunks: u64,
    /// Chunks that are all zero (not stored).
    pub zero_chunks: u64,
    /// Chunk positions that repeat a chunk already counted (dedup within the state).
    pub repeated_chunks: u64,
}

/// A density matrix averaged over `side` x `side` cells of `block` x `block` elements.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Heatmap {
    pub side: usize,
    pub block: u64,
    /// Mean |rho_ij| over each cell, row-major.
    pub magnitude: Vec<f64>,
    /// Phase (radians) of the sum of each cell, row-major.
    pub phase: Vec<f64>,
}

/// What one pass over a state's probabilities gives (see [`StateReader::summary`]).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// The most probable basis states with probability above zero, most probable first.
    pub top: Vec<(u64, f64)>,
    /// Squared norm (state vector) or trace (density matrix), measured.
    pub norm: f64,
    /// Shannon entropy (bits) of the distribution divided by the norm.
    pub entropy_bits: f64,
    /// P(qubit q = 1) for q below `marginal_qubits`, divided by the norm.
    pub p1: Vec<f64>,
}

/// One point of a checkpoint series.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SeriesPoint {
    pub commit: String,
    pub time_ms: i64,
    pub message: String,
    pub metadata: BTreeMap<String, String>,
    /// Fidelity to the series' final state (see [`StateReader::fidelity`]); `None` when the
    /// shapes differ.
    pub fidelity_to_final: Option<f64>,
    /// Shannon entropy (bits) of the measurement distribution.
    pub entropy_bits: f64,
    pub norm: f64,
}

/// One commit in the graph of every ref.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphCommit {
    pub id: String,
    pub parents: Vec<String>,
    pub message: String,
    pub author: String,
    pub time_ms: i64,
    pub metadata: BTreeMap<String, String>,
    /// Refs pointing here (`branches/NAME`, `tags/NAME`).
    pub refs: Vec<String>,
}

/// A page of the commit graph.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct GraphPage {
    pub offset: usize,
    pub commits: Vec<GraphCommit>,
    /// Whether older commits follow.
    pub more: bool,
}

fn not_for(what: &str, path: &str, why: &str) -> Error {
    Error::InvalidArgument(format!("{what} of {path:?}: {why}"))
}

impl StateReader {
    /// The Bloch vector `[x, y, z]` of every qubit's reduced state (qubit q is bit q of the
    /// basis index), normalised by the norm or trace. State vectors up to
    /// [`MAX_BLOCH_QUBITS`] (dense ones streamed: one pass for the low qubits, one per high
    /// qubit over pairs of blocks), density matrices up to [`MAX_MATRIX_VIEW_QUBITS`].
    pub fn bloch_vectors(&mut self, path: &str) -> Result<Vec<[f64; 3]>> {
        let e = self.entry().clone();
        let n = e.qubits;
        match e.kind {
            StateKind::Array => Err(not_for("Bloch vectors", path, "it is a generic array")),
            StateKind::StateVector if n > MAX_BLOCH_QUBITS => Err(not_for(
                "Bloch vectors",
                path,
                &format!("{n} qubits is more than {MAX_BLOCH_QUBITS}"),
            )),
            StateKind::DensityMatrix if n > MAX_MATRIX_VIEW_QUBITS => Err(not_for(
                "Bloch vectors",
                path,
                &format!("a density matrix of {n} qubits is more than {MAX_MATRIX_VIEW_QUBITS}"),
            )),
            StateKind::StateVector if e.encoding == Encoding::Sparse => self.bloch_sparse(n),
            StateKind::StateVector => self.bloch_dense(n, BLOCK_LOG2),
            StateKind::DensityMatrix => self.bloch_matrix(n),
        }
    }

    fn bloch_sparse(&mut self, n: u32) -> Result<Vec<[f64; 3]>> {
        let dtype = self.entry().dtype;
        let (idx, vals) = self.read_sparse()?;
        let mut acc = vec![Pair::default(); n as usize];
        let mut norm = 0.0;
        for (k, &i) in idx.iter().enumerate() {
            let a = dtype.amplitude(&vals, k);
            let p = a[0] * a[0] + a[1] * a[1];
            norm += p;
            for (q, pair) in acc.iter_mut().enumerate() {
                let bit = 1u64 << q;
                if i & bit != 0 {
                    pair.p1 += p;
                } else if let Ok(j) = idx.binary_search(&(i | bit)) {
                    pair.add(a, dtype.amplitude(&vals, j));
                }
            }
        }
        Ok(acc.iter().map(|p| p.bloch(norm)).collect())
    }

    /// [`Self::bloch_vectors`] of a dense state vector streamed in blocks of
    /// `2^block_log2` amplitudes (tests use small blocks to exercise the pairs of blocks).
    #[doc(hidden)]
    pub fn bloch_dense(&mut self, n: u32, block_log2: u32) -> Result<Vec<[f64; 3]>> {
        let dtype = self.entry().dtype;
        let item = dtype.item_size();
        let b = n.min(block_log2);
        let per = 1u64 << b;
        let blocks = 1u64 << (n - b);
        let mut acc = vec![Pair::default(); n as usize];
        let mut norm = 0.0;
        let mut buf = vec![0u8; per as usize * item];
        let mut amps = vec![[0.0f64; 2]; per as usize];
        let mut probs = vec![0.0f64; per as usize];
        // Pass 1, block by block: P(1) of every qubit, coherences of the qubits inside a
        // block (each qubit's pairs in one strided loop, the qubits in parallel).
        for j in 0..blocks {
            self.read_elements(j * per, (j + 1) * per, &mut buf)?;
            decode_block(dtype, &buf, &mut amps, &mut probs);
            let block_sum: f64 = probs.iter().sum();
            norm += block_sum;
            let low: Vec<Pair> = (0..b)
                .into_par_iter()
                .map(|q| pairs_within(&amps, &probs, 1usize << q))
                .collect();
            for (q, x) in low.into_iter().enumerate() {
                acc[q].re += x.re;
                acc[q].im += x.im;
                acc[q].p1 += x.p1;
            }
            for q in b..n {
                if j >> (q - b) & 1 == 1 {
                    acc[q as usize].p1 += block_sum;
                }
            }
        }
        // One pass per high qubit: block j against block j + 2^(q-b).
        let mut other = vec![0u8; buf.len()];
        let mut other_amps = vec![[0.0f64; 2]; per as usize];
        for q in b..n {
            let step = 1u64 << (q - b);
            for j in (0..blocks).filter(|j| j & step == 0) {
                self.read_elements(j * per, (j + 1) * per, &mut buf)?;
                self.read_elements((j + step) * per, (j + step + 1) * per, &mut other)?;
                decode_block(dtype, &buf, &mut amps, &mut probs);
                decode_block(dtype, &other, &mut other_amps, &mut probs);
                let x = amps
                    .par_chunks(1 << 16)
                    .zip(other_amps.par_chunks(1 << 16))
                    .map(|(a, c)| {
                        let mut x = Pair::default();
                        for (a, c) in a.iter().zip(c) {
                            x.add(*a, *c);
                        }
                        x
                    })
                    .reduce(Pair::default, |mut x, y| {
                        x.re += y.re;
                        x.im += y.im;
                        x
                    });
                acc[q as usize].re += x.re;
                acc[q as usize].im += x.im;
            }
        }
        Ok(acc.iter().map(|p| p.bloch(norm)).collect())
    }

    fn bloch_matrix(&mut self, n: u32) -> Result<Vec<[f64; 3]>> {
        let dtype = self.entry().dtype;
        let dim = 1u64 << n;
        let mut acc = vec![Pair::default(); n as usize];
        let mut trace = 0.0;
        let mut row = vec![0u8; dim as usize * dtype.item_size()];
        for i in 0..dim {
            self.read_elements(i * dim, (i + 1) * dim, &mut row)?;
            let d = dtype.amplitude(&row, i as usize)[0];
            trace += d;
            for (q, pair) in acc.iter_mut().enumerate() {
                let bit = 1u64 << q;
                if i & bit != 0 {
                    pair.p1 += d;
                } else {
                    let r = dtype.amplitude(&row, (i | bit) as usize);
                    pair.re += r[0];
                    pair.im += r[1];
                }
            }
        }
        Ok(acc.iter().map(|p| p.bloch(trace)).collect())
    }

    /// Shannon entropy (bits) of the measurement distribution (probabilities divided by the
    /// norm or trace), in one pass.
    pub fn entropy_bits(&mut self) -> Result<f64> {
        Ok(self.summary(0, 0)?.entropy_bits)
    }

    /// In one pass over the probabilities: the `k` most probable basis states (those above
    /// zero), the norm, the entropy (`H = log2 N - (sum p log2 p) / N`, so the norm need not
    /// be known first) and P(1) of the first `marginal_qubits` qubits.
    pub fn summary(&mut self, k: usize, marginal_qubits: u32) -> Result<Summary> {
        let mut top = TopK::new(k.max(1))?;
        let mut p1 = vec![0.0; marginal_qubits as usize];
        let (mut norm, mut plogp) = (0.0f64, 0.0f64);
        self.visit_probabilities(&mut |i, p| {
            if p <= 0.0 {
                return;
            }
            norm += p;
            plogp += p * p.log2();
            if k > 0 {
                top.push(i, p);
            }
            for (q, x) in p1.iter_mut().enumerate() {
                if i >> q & 1 == 1 {
                    *x += p;
                }
            }
        })?;
        let entropy_bits = if norm > 0.0 {
            (norm.log2() - plogp / norm).max(0.0)
        } else {
            0.0
        };
        if norm > 0.0 {
            p1.iter_mut().for_each(|x| *x /= norm);
        }
        Ok(Summary {
            top: if k > 0 { top.into_sorted() } else { Vec::new() },
            norm,
            entropy_bits,
            p1,
        })
    }

    /// The elements at `indices` (dense order), as `[re, im]`.
    pub fn elements_at(&mut self, indices: &[u64]) -> Result<Vec<[f64; 2]>> {
        let dtype = self.entry().dtype;
        let n = self.entry().elements();
        let mut v = vec![0u8; dtype.item_size()];
        let mut out = Vec::with_capacity(indices.len());
        for &i in indices {
            if i >= n {
                return Err(Error::InvalidArgument(format!(
                    "element {i} is outside 0..{n}"
                )));
            }
            self.read_elements(i, i + 1, &mut v)?;
            out.push(dtype.amplitude(&v, 0));
        }
        Ok(out)
    }

    /// A density matrix averaged over a grid of at most `max_side` x `max_side` cells
    /// (exact when the matrix is no larger), streamed by rows.
    pub fn density_heatmap(&mut self, path: &str, max_side: usize) -> Result<Heatmap> {
        let e = self.entry().clone();
        if e.kind != StateKind::DensityMatrix {
            return Err(not_for("a heat map", path, "it is not a density matrix"));
        }
        if e.qubits > MAX_MATRIX_VIEW_QUBITS {
            return Err(not_for(
                "a heat map",
                path,
                &format!(
                    "a density matrix of {} qubits is more than {MAX_MATRIX_VIEW_QUBITS}",
                    e.qubits
                ),
            ));
        }
        let dim = 1u64 << e.qubits;
        let side = (max_side.max(1).next_power_of_two() as u64).min(dim).max(1);
        let block = dim / side;
        let cells = (side * side) as usize;
        let (mut mag, mut re, mut im) = (vec![0.0; cells], vec![0.0; cells], vec![0.0; cells]);
        let mut row = vec![0u8; dim as usize * e.dtype.item_size()];
        for i in 0..dim {
            self.read_elements(i * dim, (i + 1) * dim, &mut row)?;
            let r = (i / block) as usize * side as usize;
            for j in 0..dim {
                let v = e.dtype.amplitude(&row, j as usize);
                let c = r + (j / block) as usize;
                mag[c] += v[0].hypot(v[1]);
                re[c] += v[0];
                im[c] += v[1];
            }
        }
        let per = (block * block) as f64;
        Ok(Heatmap {
            side: side as usize,
            block,
            magnitude: mag.iter().map(|m| m / per).collect(),
            phase: re.iter().zip(&im).map(|(r, i)| i.atan2(*r)).collect(),
        })
    }

    /// What the state costs in storage.
    pub fn stored_size(&self) -> StoredSize {
        let e = self.entry();
        let mut seen = HashSet::new();
        let (mut stored, mut zero, mut repeated) = (0, 0, 0);
        for c in &self.manifest().chunks {
            match c {
                ChunkRef::Zero => zero += 1,
                ChunkRef::Stored { id, location, .. } => {
                    if seen.insert(*id) {
                        stored += location.payload_len;
                    } else {
                        repeated += 1;
                    }
                }
            }
        }
        StoredSize {
            logical_bytes: e.dense_bytes(),
            stream_bytes: e.stream_len,
            stored_bytes: stored,
            chunks: self.manifest().chunks.len() as u64,
            zero_chunks: zero,
            repeated_chunks: repeated,
        }
    }
}

/// The amplitudes of a block as `[re, im]` and their probabilities.
fn decode_block(
    dtype: crate::state::dtype::DType,
    buf: &[u8],
    amps: &mut [[f64; 2]],
    probs: &mut [f64],
) {
    amps.par_chunks_mut(1 << 16)
        .zip(probs.par_chunks_mut(1 << 16))
        .enumerate()
        .for_each(|(c, (a, p))| {
            for (k, (a, p)) in a.iter_mut().zip(p.iter_mut()).enumerate() {
                *a = dtype.amplitude(buf, (c << 16) + k);
                *p = a[0] * a[0] + a[1] * a[1];
            }
        });
}

/// rho_01 and P(1) of the qubit whose bit is `bit`, over the pairs inside one block.
fn pairs_within(amps: &[[f64; 2]], probs: &[f64], bit: usize) -> Pair {
    let mut x = Pair::default();
    for base in (0..amps.len()).step_by(2 * bit) {
        let (lo, hi) = (&amps[base..base + bit], &amps[base + bit..base + 2 * bit]);
        for (a, c) in lo.iter().zip(hi) {
            x.add(*a, *c);
        }
        x.p1 += probs[base + bit..base + 2 * bit].iter().sum::<f64>();
    }
    x
}

/// Sums for one qubit's reduced state.
#[derive(Clone, Copy, Default)]
struct Pair {
    /// Probability of |1>.
    p1: f64,
    /// rho_01 = sum over pairs of a_i conj(a_{i + 2^q}).
    re: f64,
    im: f64,
}

impl Pair {
    fn add(&mut self, a: [f64; 2], b: [f64; 2]) {
        self.re += a[0] * b[0] + a[1] * b[1];
        self.im += a[1] * b[0] - a[0] * b[1];
    }

    /// rho = (I + xX + yY + zZ) / 2, so x = 2 Re rho01, y = -2 Im rho01, z = rho00 - rho11.
    fn bloch(&self, norm: f64) -> [f64; 3] {
        if norm <= 0.0 {
            return [0.0; 3];
        }
        [
            2.0 * self.re / norm,
            -2.0 * self.im / norm,
            (norm - 2.0 * self.p1) / norm,
        ]
    }
}

impl Repository {
    /// The versions of `path` along the first-parent history of `spec` (at most `limit`
    /// commits back), oldest first, one point per distinct version, each with its fidelity
    /// to the final one (the newest, or the state at `final_path` in the newest commit when
    /// given) and its entropy.
    pub fn series(
        &self,
        spec: &str,
        path: &str,
        final_path: Option<&str>,
        limit: usize,
    ) -> Result<Vec<SeriesPoint>> {
        let p = StatePath::new(path)?;
        let log = self.log(spec, limit)?;
        let mut versions = Vec::new();
        let mut last: Option<ObjectId> = None;
        for (id, c) in log.iter().rev() {
            if let Some(e) = self.entry_at(id, &p)? {
                if last == Some(e.manifest) {
                    continue;
                }
                last = Some(e.manifest);
                versions.push((*id, c, e));
            }
        }
        let final_entry = match (final_path, log.first()) {
            (Some(f), Some((head, _))) => match self.entry_at(head, &StatePath::new(f)?)? {
                Some(e) => Some(e),
                None => {
                    return Err(Error::PathNotFound {
                        path: f.into(),
                        commit: head.short(),
                    });
                }
            },
            _ => versions.last().map(|v| v.2.clone()),
        };
        let final_name = final_path.unwrap_or(path);
        let mut out = Vec::with_capacity(versions.len());
        for (id, c, e) in versions {
            let mut r = StateReader::new(self.clone(), path, e)?;
            let sum = r.summary(0, 0)?;
            let fidelity_to_final = match &final_entry {
                Some(f) => {
                    let mut fr = StateReader::new(self.clone(), final_name, f.clone())?;
                    StateReader::fidelity(&mut r, &mut fr)?
                }
                None => None,
            };
            out.push(SeriesPoint {
                commit: id.to_hex(),
                time_ms: c.time_ms,
                message: c.message.clone(),
                metadata: c.metadata.clone(),
                fidelity_to_final,
                entropy_bits: sum.entropy_bits,
                norm: sum.norm,
            });
        }
        Ok(out)
    }

    /// A page of the commits reachable from every branch and tag, newest first (by time,
    /// then id), each with the refs pointing at it: `offset` commits skipped, at most
    /// `limit` returned. Walks `offset + limit` commits.
    pub fn graph(&self, offset: usize, limit: usize) -> Result<GraphPage> {
        let mut at: BTreeMap<ObjectId, Vec<String>> = BTreeMap::new();
        for (name, id) in self.refs()? {
            at.entry(id).or_default().push(name.key());
        }
        let shallow = self.shallow()?;
        let mut heap = BinaryHeap::new();
        let mut seen = HashSet::new();
        for id in at.keys() {
            if seen.insert(*id) {
                heap.push((self.commit(id)?.time_ms, *id));
            }
        }
        let mut commits = Vec::new();
        let mut walked = 0;
        while let Some((_, id)) = heap.pop() {
            if walked >= offset + limit {
                return Ok(GraphPage {
                    offset,
                    commits,
                    more: true,
                });
            }
            let c = self.commit(&id)?;
            if !shallow.contains(&id) {
                for p in &c.parents {
                    if seen.insert(*p) {
                        heap.push((self.commit(p)?.time_ms, *p));
                    }
                }
            }
            if walked >= offset {
                commits.push(GraphCommit {
                    id: id.to_hex(),
                    parents: c.parents.iter().map(|p| p.to_hex()).collect(),
                    message: c.message,
                    author: c.author,
                    time_ms: c.time_ms,
                    metadata: c.metadata,
                    refs: at.get(&id).cloned().unwrap_or_default(),
                });
            }
            walked += 1;
        }
        Ok(GraphPage {
            offset,
            commits,
            more: false,
        })
    }
}
