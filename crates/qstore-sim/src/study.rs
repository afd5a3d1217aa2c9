//! Noisy Monte-Carlo studies: `trajectories` runs of a circuit under a [`NoiseModel`], each
//! sampled `shots` times, stored as one commit: the counts histogram (`PREFIX/counts`, a
//! uint64 array indexed by the classical outcome), the trajectory-averaged density matrix
//! (`PREFIX/density_matrix`, for up to 12 qubits) and, when asked, every trajectory's final
//! state (`PREFIX/trajectories/tNNNNN`).
//!
//! Final states go through a scratch space first: it deduplicates them (the trajectories
//! without an error event are identical, and stored once), bounds their memory, and is removed
//! when the study ends, committed or not. Trajectory `t` draws from ChaCha8 stream `t` of the
//! seed, so any single trajectory can be reproduced on its own.

use crate::SimError;
use crate::circuit::{Op, Program};
use crate::noise::NoiseModel;
use crate::runner::circuit_hash;
use crate::statevector::StateVector;
use num_complex::Complex64 as C;
use qstore::{ArrayInfo, CommitOptions, DType, PutOptions, Repository, ScratchOptions};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::Instant;

/// Most qubits whose averaged density matrix is kept (4^12 amplitudes = 256 MiB).
pub const MAX_DENSITY_QUBITS: usize = 12;
/// Most classical bits of a dense counts histogram.
pub const MAX_COUNT_BITS: usize = 26;

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

/// Sample `shots` outcomes of measuring `map`'s qubits (readout error included).
#[allow(clippy::too_many_arguments)]
fn sample(
    s: &StateVector,
    width: usize,
    map: &[(u32, u32)],
    shots: usize,
    noise: &NoiseModel,
    clbits: &[bool],
    rng: &mut impl Rng,
    counts: &mut BTreeMap<u64, u64>,
) {
    let mut cdf = Vec::with_capacity(s.amps.len());
    let mut acc = 0.0;
    for a in &s.amps {
        acc += a.norm_sqr();
        cdf.push(acc);
    }
    for _ in 0..shots {
        let r: f64 = rng.random::<f64>() * acc;
        let i = cdf.partition_point(|&c| c <= r).min(cdf.len() - 1);
        let mut bits: Vec<bool> = clbits.to_vec();
        bits.resize(width, false);
        for &(q, c) in map {
            if let Some(b) = bits.get_mut(c as usize) {
                *b = noise.read(i >> q & 1 == 1, rng);
            }
        }
        let v = bits
            .iter()
            .enumerate()
            .fold(0u64, |v, (k, &b)| v | (u64::from(b) << k));
        *counts.entry(v).or_insert(0) += 1;
    }
}

/// Run the study.
pub fn study(
    repo: &Repository,
    source: &str,
    program: &Program,
    opts: &StudyOptions,
) -> Result<StudyReport, SimError> {
    let start = Instant::now();
    let n = program.qubits;
    if n == 0 || n > crate::runner::MAX_QUBITS {
        return Err(SimError::TooManyQubits(n, crate::runner::MAX_QUBITS));
    }
    if opts.density && n > MAX_DENSITY_QUBITS {
        return Err(SimError::TooManyQubits(n, MAX_DENSITY_QUBITS));
    }
    // Outcomes are the classical register, or every qubit when the circuit measures none.
    let width = if program.clbits > 0 {
        program.clbits
    } else {
        n
    };
    if width > MAX_COUNT_BITS {
        return Err(SimError::TooManyQubits(width, MAX_COUNT_BITS));
    }
    if repo.resolve(&opts.branch).is_err() {
        repo.create_branch(&opts.branch, "main")?;
    }
    let (body, map) = split_terminal(program);
    let scratch = repo.scratch(ScratchOptions {
        quota: opts.scratch_quota,
        ..Default::default()
    })?;
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![1u64 << n],
    };
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
        let mut s = StateVector::zero(n);
        let mut clbits = vec![false; program.clbits];
        let mut event = false;
        for (op, _) in body {
            s.run(op, &mut clbits, &mut rng);
            if let Op::Measure { clbit, .. } = op
                && let Some(b) = clbits.get_mut(*clbit as usize)
            {
                *b = opts.noise.read(*b, &mut rng);
            }
            event |= opts.noise.after(op, &mut s, &mut rng);
        }
        report.error_free += usize::from(!event);
        sample(
            &s,
            width,
            &map,
            opts.shots,
            &opts.noise,
            &clbits,
            &mut rng,
            &mut counts,
        );
        if let Some(rho) = rho.as_mut() {
            let w = 1.0 / opts.trajectories as f64;
            let dim = 1usize << n;
            use rayon::prelude::*;
            rho.par_chunks_mut(dim).enumerate().for_each(|(i, row)| {
                let ai = s.amps[i] * w;
                for (r, b) in row.iter_mut().zip(&s.amps) {
                    *r += ai * b.conj();
                }
            });
        }
        if opts.states {
            let h = scratch.put(&info, s.as_bytes(), &PutOptions::default())?;
            manifests.insert(h.entry()?.manifest);
            report.scratch_peak_bytes = report.scratch_peak_bytes.max(scratch.usage().total());
            handles.push(h);
        }
    }
    report.distinct_states = manifests.len();
    report.shots = counts.values().sum();
    report.outcomes = counts.len();
    let mut tx = repo.transaction(&opts.branch)?;
    let mut hist = vec![0u64; 1usize << width];
    for (k, v) in &counts {
        if let Some(h) = hist.get_mut(*k as usize) {
            *h = *v;
        }
    }
    let arr = |shape: Vec<u64>, dtype| ArrayInfo { dtype, shape };
    tx.put(
        &format!("{}/counts", opts.prefix),
        &arr(vec![hist.len() as u64], DType::UInt64),
        bytemuck::cast_slice(&hist),
        &PutOptions {
            kind: qstore::KindRequest::Array,
            ..Default::default()
        },
    )?;
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
