//! Noisy Monte-Carlo studies: `trajectories` runs of a circuit under a [`NoiseModel`], each
//! sampled `shots` times, stored as one commit: the counts (`PREFIX/counts`: a uint64
//! histogram indexed by the classical outcome for outcomes of up to 26 bits; beyond, a sparse
//! table of the outcomes seen, see [`SPARSE_COUNTS`]), the trajectory-averaged density matrix
//! (`PREFIX/density_matrix`, for up to 12 qubits) and, when asked, every trajectory's final
//! state (`PREFIX/trajectories/tNNNNN`).
//!
//! Final states go through a scratch space first: it deduplicates them (the trajectories
//! without an error event are identical, and stored once), bounds their memory, and is removed
//! when the study ends, committed or not. Trajectory `t` draws from ChaCha8 stream `t` of the
//! seed, so any single trajectory can be reproduced on its own. Trajectories run on the
//! engine the [`Method`] picks (sparse first by default), so wide structured circuits work too.

use crate::SimError;
use crate::basis::words_for;
use crate::circuit::{Op, Program};
use crate::hybrid::{Hybrid, Method, Plan, Repr, default_memory_limit};
use crate::noise::NoiseModel;
use crate::runner::circuit_hash;
use num_complex::Complex64 as C;
use qstore::{
    ArrayInfo, CommitOptions, DType, PutOptions, Repository, ScratchOptions, SparseInput,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Instant;

/// Most qubits whose averaged density matrix is kept (4^12 amplitudes = 256 MiB).
pub const MAX_DENSITY_QUBITS: usize = 12;
/// Most classical bits of a dense counts histogram; wider outcomes are stored sparse.
pub const MAX_COUNT_BITS: usize = 26;
/// The `layout` tag of a sparse counts table: a uint64 array of shape `[outcomes, words + 1]`,
/// each row an outcome's `words = ceil(bits / 64)` little-endian words (clbit 0 = bit 0 of
/// word 0) then its count, rows in ascending outcome order; tag `outcome_bits` gives the width.
pub const SPARSE_COUNTS: &str = "sparse-counts";

/// What a study stores, and how.
#[derive(Clone, Debug)]
pub struct StudyOptions {
    pub branch: String,
    pub prefix: String,
    pub trajectories: usize,
    pub shots: usize,
    pub seed: u64,
    pub noise: NoiseModel,
    /// Store the trajectory-averaged density matrix (refused beyond 12 qubits).
    pub density: bool,
    /// Store every trajectory's final state.
    pub states: bool,
    /// Quota of the scratch space the final states pass through.
    pub scratch_quota: u64,
    /// The engine of each trajectory.
    pub method: Method,
    /// Bytes a trajectory's state may take; `None`: the memory available on this machine.
    pub memory_limit: Option<u64>,
}

impl Default for StudyOptions {
    fn default() -> Self {
        StudyOptions {
            branch: "main".into(),
            prefix: "study".into(),
            trajectories: 1,
            shots: 1,
            seed: 0,
            noise: NoiseModel::default(),
            density: false,
            states: false,
            scratch_quota: 64 << 30,
            method: Method::Auto,
            memory_limit: None,
        }
    }
}

/// What a study did.
#[derive(Clone, Debug, Default)]
pub struct StudyReport {
    pub qubits: usize,
    pub trajectories: usize,
    pub shots: u64,
    /// Trajectories in which no error event happened.
    pub error_free: usize,
    /// Distinct final states among the trajectories (when states are kept).
    pub distinct_states: usize,
    pub outcomes: usize,
    pub seconds: f64,
    pub commit: String,
    /// Bytes the scratch space held at its peak (memory and spill files).
    pub scratch_peak_bytes: u64,
    /// Trajectories that ended in the sparse engine.
    pub sparse_trajectories: usize,
}

/// Operations with their source lines.
type Ops = [(Op, usize)];

/// The program without its trailing measurements, and the qubit -> clbit map they gave.
fn split_terminal(p: &Program) -> (&Ops, Vec<(u32, u32)>) {
    let mut k = p.ops.len();
    let mut map = Vec::new();
    while k > 0 {
        match &p.ops[k - 1].0 {
            Op::Measure { qubit, clbit } => map.push((*qubit, *clbit)),
            Op::Barrier => {}
            _ => break,
        }
        k -= 1;
    }
    if map.is_empty() {
        map = (0..p.qubits as u32).map(|q| (q, q)).collect();
    }
    map.reverse();
    (&p.ops[..k], map)
}

/// An outcome: `ceil(width / 64)` words, most significant first (so maps sort numerically).
type Outcome = Vec<u64>;

/// Sample `shots` outcomes of measuring `map`'s qubits (readout error included) from a state
/// given as `(probability of entry k)` and `bit(k, qubit)`.
#[allow(clippy::too_many_arguments)]
fn sample(
    probs: impl Iterator<Item = f64>,
    bit: impl Fn(usize, u32) -> bool,
    width: usize,
    map: &[(u32, u32)],
    shots: usize,
    noise: &NoiseModel,
    clbits: &[bool],
    rng: &mut impl Rng,
    counts: &mut BTreeMap<Outcome, u64>,
) {
    let mut cdf = Vec::new();
    let mut acc = 0.0;
    for p in probs {
        acc += p;
        cdf.push(acc);
    }
    if cdf.is_empty() {
        return;
    }
    let words = width.div_ceil(64).max(1);
    for _ in 0..shots {
        let r: f64 = rng.random::<f64>() * acc;
        let i = cdf.partition_point(|&c| c <= r).min(cdf.len() - 1);
        let mut bits: Vec<bool> = clbits.to_vec();
        bits.resize(width, false);
        for &(q, c) in map {
            if let Some(b) = bits.get_mut(c as usize) {
                *b = noise.read(bit(i, q), rng);
            }
        }
        let mut v = vec![0u64; words];
        for (k, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
            v[words - 1 - k / 64] |= 1u64 << (k % 64);
        }
        *counts.entry(v).or_insert(0) += 1;
    }
}

/// Store `counts` (outcomes as words, highest first; clbit 0 = bit 0 of the last word) of
/// `width`-bit outcomes at `path`: a dense uint64 histogram up to [`MAX_COUNT_BITS`] bits, a
/// sparse table ([`SPARSE_COUNTS`]) beyond.
pub(crate) fn put_counts(
    tx: &mut qstore::Transaction,
    path: &str,
    counts: &BTreeMap<Vec<u64>, u64>,
    width: usize,
) -> Result<(), SimError> {
    let arr = |shape: Vec<u64>, dtype| ArrayInfo { dtype, shape };
    if width <= MAX_COUNT_BITS {
        let mut hist = vec![0u64; 1usize << width];
        for (k, v) in counts {
            if let Some(h) = hist.get_mut(k[k.len() - 1] as usize) {
                *h = *v;
            }
        }
        tx.put(
            path,
            &arr(vec![hist.len() as u64], DType::UInt64),
            bytemuck::cast_slice(&hist),
            &PutOptions {
                kind: qstore::KindRequest::Array,
                ..Default::default()
            },
        )?;
    } else {
        let words = width.div_ceil(64);
        let mut table = Vec::with_capacity(counts.len() * (words + 1));
        for (k, v) in counts {
            table.extend(k.iter().rev());
            table.push(*v);
        }
        tx.put(
            path,
            &arr(vec![counts.len() as u64, words as u64 + 1], DType::UInt64),
            bytemuck::cast_slice(&table),
            &PutOptions {
                kind: qstore::KindRequest::Array,
                tags: BTreeMap::from([
                    ("layout".to_string(), SPARSE_COUNTS.to_string()),
                    ("outcome_bits".to_string(), width.to_string()),
                ]),
                ..Default::default()
            },
        )?;
    }
    Ok(())
}

/// Run the study.
pub fn study(
    repo: &Repository,
    source: &str,
    program: &Program,
    opts: &StudyOptions,
) -> Result<StudyReport, SimError> {
    match words_for(program.qubits) {
        Some(1) => study_with::<1>(repo, source, program, opts),
        Some(2) => study_with::<2>(repo, source, program, opts),
        Some(4) => study_with::<4>(repo, source, program, opts),
        Some(8) => study_with::<8>(repo, source, program, opts),
        Some(_) => study_with::<16>(repo, source, program, opts),
        None => Err(SimError::TooManyQubits(
            program.qubits,
            crate::basis::MAX_SPARSE_QUBITS,
        )),
    }
}

fn study_with<const W: usize>(
    repo: &Repository,
    source: &str,
    program: &Program,
    opts: &StudyOptions,
) -> Result<StudyReport, SimError> {
    let start = Instant::now();
    let n = program.qubits;
    if n == 0 {
        return Err(SimError::TooManyQubits(0, crate::runner::MAX_QUBITS));
    }
    if opts.density && n > MAX_DENSITY_QUBITS {
        return Err(SimError::TooManyQubits(n, MAX_DENSITY_QUBITS));
    }
    if opts.states && n > qstore::format::tree::MAX_QUBITS as usize {
        return Err(SimError::Options(format!(
            "--save states keeps trajectory states of up to {} qubits; this circuit has {n}",
            qstore::format::tree::MAX_QUBITS
        )));
    }
    let plan = Plan {
        method: opts.method,
        memory_limit: opts.memory_limit.unwrap_or_else(default_memory_limit),
        prune_below: None,
        checkpoints: false,
    };
    // Outcomes are the classical register, or every qubit when the circuit measures none.
    let width = if program.clbits > 0 {
        program.clbits
    } else {
        n
    };
    if repo.resolve(&opts.branch).is_err() {
        repo.create_branch(&opts.branch, "main")?;
    }
    let (body, map) = split_terminal(program);
    let scratch = repo.scratch(ScratchOptions {
        quota: opts.scratch_quota,
        ..Default::default()
    })?;
    let mut report = StudyReport {
        qubits: n,
        trajectories: opts.trajectories,
        ..Default::default()
    };
    let mut counts = BTreeMap::new();
    let mut rho = opts
        .density
        .then(|| vec![C::new(0.0, 0.0); 1usize << (2 * n)]);
    let mut handles = Vec::new();
    let mut manifests = std::collections::HashSet::new();
    for t in 0..opts.trajectories {
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_stream(t as u64);
        let mut s = Hybrid::<W>::fresh(n, &plan)?;
        let mut clbits = vec![false; program.clbits];
        let mut event = false;
        for (k, (op, line)) in body.iter().enumerate() {
            s.step(op, k, *line, &plan, &mut clbits, &mut rng)?;
            if let Op::Measure { clbit, .. } = op
                && let Some(b) = clbits.get_mut(*clbit as usize)
            {
                *b = opts.noise.read(*b, &mut rng);
            }
            event |= opts.noise.after(op, &mut s, &mut rng);
        }
        report.error_free += usize::from(!event);
        match &s.repr {
            Repr::Dense(d) => sample(
                d.amps.iter().map(|a| a.norm_sqr()),
                |i, q| i >> q & 1 == 1,
                width,
                &map,
                opts.shots,
                &opts.noise,
                &clbits,
                &mut rng,
                &mut counts,
            ),
            Repr::Sparse(sp) => {
                report.sparse_trajectories += 1;
                let e = sp.entries();
                sample(
                    e.iter().map(|(_, a)| a.norm_sqr()),
                    |i, q| e[i].0.bit(q),
                    width,
                    &map,
                    opts.shots,
                    &opts.noise,
                    &clbits,
                    &mut rng,
                    &mut counts,
                )
            }
        }
        if let Some(rho) = rho.as_mut() {
            let dense = match &s.repr {
                Repr::Dense(d) => std::borrow::Cow::Borrowed(d),
                Repr::Sparse(sp) => std::borrow::Cow::Owned(sp.to_dense()),
            };
            let w = 1.0 / opts.trajectories as f64;
            let dim = 1usize << n;
            use rayon::prelude::*;
            rho.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
                let ai = dense.amps[i] * w;
                for (r, b) in row.iter_mut().zip(&dense.amps) {
                    *r += ai * b.conj();
                }
            });
        }
        if opts.states {
            let h = match &s.repr {
                Repr::Dense(d) => scratch.put(
                    &ArrayInfo {
                        dtype: DType::Complex128,
                        shape: vec![1u64 << n],
                    },
                    d.as_bytes(),
                    &PutOptions::default(),
                )?,
                Repr::Sparse(sp) => {
                    let (idx, values) = sp.to_stored();
                    scratch.put_sparse(
                        &SparseInput {
                            n_qubits: n as u32,
                            dtype: DType::Complex128,
                            indices: &idx,
                            values: &values,
                        },
                        &PutOptions::default(),
                    )?
                }
            };
            manifests.insert(h.entry()?.manifest);
            report.scratch_peak_bytes = report.scratch_peak_bytes.max(scratch.usage().total());
            handles.push(h);
        }
    }
    report.distinct_states = manifests.len();
    report.shots = counts.values().sum();
    report.outcomes = counts.len();
    let mut tx = repo.transaction(&opts.branch)?;
    let arr = |shape: Vec<u64>, dtype| ArrayInfo { dtype, shape };
    put_counts(&mut tx, &format!("{}/counts", opts.prefix), &counts, width)?;
    if let Some(rho) = &rho {
        let dim = 1u64 << n;
        tx.put(
            &format!("{}/density_matrix", opts.prefix),
            &arr(vec![dim, dim], DType::Complex128),
            bytemuck::cast_slice(rho),
            &PutOptions::default(),
        )?;
    }
    let width = opts.trajectories.saturating_sub(1).to_string().len().max(5);
    for (t, h) in handles.iter().enumerate() {
        tx.put_from_scratch(&format!("{}/trajectories/t{t:0width$}", opts.prefix), h)?;
    }
    let metadata = BTreeMap::from([
        ("qstore.sim.kind".to_string(), "study".to_string()),
        ("qstore.sim.circuit_hash".to_string(), circuit_hash(source)),
        ("qstore.sim.seed".to_string(), opts.seed.to_string()),
        (
            "qstore.sim.trajectories".to_string(),
            opts.trajectories.to_string(),
        ),
        (
            "qstore.sim.shots_per_trajectory".to_string(),
            opts.shots.to_string(),
        ),
        ("qstore.sim.noise".to_string(), format!("{:?}", opts.noise)),
        ("qstore.sim.qubit_order".to_string(), "little".to_string()),
        (
            "qstore.sim.method".to_string(),
            opts.method.name().to_string(),
        ),
    ]);
    let id = tx.commit(CommitOptions {
        message: format!(
            "noisy study: {} trajectories x {} shots",
            opts.trajectories, opts.shots
        ),
        author: "qstore run".into(),
        metadata,
    })?;
    drop(handles);
    drop(scratch);
    report.commit = id.to_hex();
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
