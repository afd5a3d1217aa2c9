//! The density-matrix mode for small circuits: ρ (2^n x 2^n, row-major) is held as a
//! 2n-qubit vector whose low n bits index the column and high n bits the row, so every gate is
//! two state-vector kernels (U on the row qubits, conj(U) on the column qubits: ρ -> UρU†),
//! and every noise channel of the [`NoiseModel`] is applied exactly as its Kraus sum instead
//! of being sampled. Measurements are drawn from the seeded RNG (the state collapses as in
//! Aer's density-matrix method); `reset` is the exact channel.

use crate::circuit::{Gate, Op, PAULI_X};
use crate::noise::NoiseModel;
use crate::statevector::StateVector;
use num_complex::Complex64 as C;
use rand::Rng;
use rayon::prelude::*;

/// Most qubits of the density-matrix mode (4^12 amplitudes = 256 MiB).
pub const MAX_QUBITS: usize = 12;

/// A density matrix of `n` qubits.
#[derive(Clone, Debug)]
pub struct DensityMatrix {
    pub n: usize,
    /// Row-major amplitudes as a 2n-qubit vector.
    pub rho: StateVector,
}

fn shift(qs: &[u32], by: u32) -> Vec<u32> {
    qs.iter().map(|q| q + by).collect()
}

/// One weighted Kraus term: its weight and its one-qubit factors (matrix, qubit).
type KrausTerm = (f64, Vec<([C; 4], u32)>);

fn conj4(m: &[C; 4]) -> [C; 4] {
    [m[0].conj(), m[1].conj(), m[2].conj(), m[3].conj()]
}

impl DensityMatrix {
    /// |0...0><0...0|.
    pub fn zero(n: usize) -> Self {
        DensityMatrix {
            n,
            rho: StateVector::zero(2 * n),
        }
    }

    /// ρ -> K ρ K† for a 2x2 matrix K on `target` (with controls), unitary or not.
    fn sandwich(&mut self, m: [C; 4], target: u32, controls: &[u32]) {
        let n = self.n as u32;
        self.rho.apply(&Gate::Unitary {
            m,
            target: target + n,
            controls: shift(controls, n),
        });
        self.rho.apply(&Gate::Unitary {
            m: conj4(&m),
            target,
            controls: controls.to_vec(),
        });
    }

    /// Apply a gate: ρ -> UρU†.
    pub fn apply(&mut self, g: &Gate) {
        let n = self.n as u32;
        match g {
            Gate::Unitary {
                m,
                target,
                controls,
            } => self.sandwich(*m, *target, controls),
            Gate::Swap { a, b, controls } => {
                self.rho.apply(&Gate::Swap {
                    a: a + n,
                    b: b + n,
                    controls: shift(controls, n),
                });
                self.rho.apply(&Gate::Swap {
                    a: *a,
                    b: *b,
                    controls: controls.clone(),
                });
            }
            Gate::Diag2 { d, a, b } => {
                self.rho.apply(&Gate::Diag2 {
                    d: *d,
                    a: a + n,
                    b: b + n,
                });
                self.rho.apply(&Gate::Diag2 {
                    d: conj4(d),
                    a: *a,
                    b: *b,
                });
            }
        }
    }

    /// Σ_k w_k K_k ρ K_k†, each term given as the list of (matrix, qubit) factors of K_k.
    fn kraus_sum(&mut self, terms: &[KrausTerm]) {
        let mut acc = vec![C::new(0.0, 0.0); self.rho.amps.len()];
        for (w, factors) in terms {
            let mut t = self.clone();
            for (m, q) in factors {
                t.sandwich(*m, *q, &[]);
            }
            let w = *w;
            acc.par_iter_mut()
                .zip(t.rho.amps.par_iter())
                .for_each(|(a, b)| *a += b * w);
        }
        self.rho.amps = acc;
    }

    /// The noise of `model` after gate op `op`, applied exactly.
    pub fn noise_after(&mut self, op: &Op, model: &NoiseModel) {
        let qs = match op {
            Op::Gate(g) => crate::noise::gate_qubits(g),
            _ => return,
        };
        let z = C::new(0.0, 0.0);
        let o = C::new(1.0, 0.0);
        let paulis = [
            [o, z, z, o],
            PAULI_X,
            [z, C::new(0.0, -1.0), C::new(0.0, 1.0), z],
            [o, z, z, -o],
        ];
        let p = if qs.len() == 1 { model.p1 } else { model.p2 };
        if p > 0.0 {
            let terms: Vec<KrausTerm> = if qs.len() == 1 {
                (0..4)
                    .map(|k| {
                        let w = if k == 0 { 1.0 - 0.75 * p } else { p / 4.0 };
                        (w, vec![(paulis[k], qs[0])])
                    })
                    .collect()
            } else {
                (0..16)
                    .map(|k| {
                        let w = if k == 0 {
                            1.0 - p * 15.0 / 16.0
                        } else {
                            p / 16.0
                        };
                        (w, vec![(paulis[k & 3], qs[0]), (paulis[k >> 2], qs[1])])
                    })
                    .collect()
            };
            self.kraus_sum(&terms);
        }
        for &q in &qs {
            let g = model.amplitude_damping;
            if g > 0.0 {
                self.kraus_sum(&[
                    (1.0, vec![([o, z, z, C::new((1.0 - g).sqrt(), 0.0)], q)]),
                    (1.0, vec![([z, C::new(g.sqrt(), 0.0), z, z], q)]),
                ]);
            }
            let l = model.phase_damping;
            if l > 0.0 {
                self.kraus_sum(&[
                    (1.0, vec![([o, z, z, C::new((1.0 - l).sqrt(), 0.0)], q)]),
                    (1.0, vec![([z, z, z, C::new(l.sqrt(), 0.0)], q)]),
                ]);
            }
        }
    }

    /// Make ρ exactly Hermitian: (ρ + ρ†)/2. The two halves of every kernel round
    /// differently, leaving ρ[i,j] and conj(ρ[j,i]) a few ulps apart; the true ρ is Hermitian,
    /// and a bit-exact Hermitian matrix is stored as its upper triangle (half the bytes).
    pub fn hermitize(&mut self) {
        let dim = 1usize << self.n;
        let a = &mut self.rho.amps;
        for i in 0..dim {
            a[i * dim + i].im = 0.0;
            for j in i + 1..dim {
                let v = (a[i * dim + j] + a[j * dim + i].conj()) * 0.5;
                a[i * dim + j] = v;
                // The engine's mirror: imaginary part `0.0 - im` (+0.0 stays +0.0).
                a[j * dim + i] = C::new(v.re, 0.0 - v.im);
            }
        }
    }

    /// Probability that `qubit` reads 1: the trace over the diagonal entries with it set.
    pub fn prob_one(&self, qubit: u32) -> f64 {
        let dim = 1usize << self.n;
        (0..dim)
            .filter(|i| i >> qubit & 1 == 1)
            .map(|i| self.rho.amps[i * dim + i].re)
            .sum()
    }

    fn project(&mut self, qubit: u32, one: bool, scale: f64) {
        let (z, s) = (C::new(0.0, 0.0), C::new(scale.sqrt(), 0.0));
        let m = if one { [z, z, z, s] } else { [s, z, z, z] };
        self.sandwich(m, qubit, &[]);
    }

    /// Run one operation (gates, measurement, reset, `if`), then its noise.
    pub fn run(&mut self, op: &Op, clbits: &mut [bool], model: &NoiseModel, rng: &mut impl Rng) {
        match op {
            Op::Gate(g) => {
                self.apply(g);
                self.noise_after(op, model);
            }
            Op::Measure { qubit, clbit } => {
                let p1 = self.prob_one(*qubit).clamp(0.0, 1.0);
                let one = rng.random::<f64>() < p1;
                let keep = if one { p1 } else { 1.0 - p1 };
                self.project(*qubit, one, if keep > 0.0 { 1.0 / keep } else { 0.0 });
                if let Some(c) = clbits.get_mut(*clbit as usize) {
                    *c = model.read(one, rng);
                }
            }
            Op::Reset { qubit } => {
                // ρ -> P0 ρ P0 + X P1 ρ P1 X.
                let mut flipped = self.clone();
                flipped.project(*qubit, true, 1.0);
                flipped.sandwich(PAULI_X, *qubit, &[]);
                self.project(*qubit, false, 1.0);
                self.rho
                    .amps
                    .par_iter_mut()
                    .zip(flipped.rho.amps.par_iter())
                    .for_each(|(a, b)| *a += b);
            }
            Op::Barrier => {}
            Op::If {
                start,
                size,
                value,
                op,
            } => {
                if crate::circuit::creg_equals(clbits, *start, *size, *value) {
                    self.run(op, clbits, model, rng);
                }
            }
        }
    }
}

/// Run `program` in the density-matrix mode with `model`'s noise applied exactly, and commit
/// the final ρ at `output` on `branch` (Hermitian: its upper triangle is stored).
pub fn run_density(
    repo: &qstore::Repository,
    source: &str,
    program: &crate::Program,
    branch: &str,
    output: &str,
    seed: u64,
    model: &NoiseModel,
) -> Result<crate::RunReport, crate::SimError> {
    use rand::SeedableRng;
    let start = std::time::Instant::now();
    let n = program.qubits;
    if n == 0 || n > MAX_QUBITS {
        return Err(crate::SimError::TooManyQubits(n, MAX_QUBITS));
    }
    if repo.resolve(branch).is_err() {
        repo.create_branch(branch, "main")?;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut dm = DensityMatrix::zero(n);
    let mut clbits = vec![false; program.clbits];
    for (op, _) in &program.ops {
        dm.run(op, &mut clbits, model, &mut rng);
    }
    dm.hermitize();
    let sim_seconds = start.elapsed().as_secs_f64();
    let dim = 1u64 << n;
    let mut tx = repo.transaction(branch)?;
    let tags = [
        ("qubit_order".to_string(), "little".to_string()),
        ("source".to_string(), "qstore-sim".to_string()),
    ]
    .into();
    tx.put(
        output,
        &qstore::ArrayInfo {
            dtype: qstore::DType::Complex128,
            shape: vec![dim, dim],
        },
        dm.rho.as_bytes(),
        &qstore::PutOptions {
            tags,
            ..Default::default()
        },
    )?;
    let clbit_text: String = clbits.iter().map(|&b| if b { '1' } else { '0' }).collect();
    let id = tx.commit(qstore::CommitOptions {
        message: format!(
            "final density matrix of the circuit ({} operations)",
            program.ops.len()
        ),
        author: "qstore run".into(),
        metadata: [
            (
                "qstore.sim.kind".to_string(),
                "final-density-matrix".to_string(),
            ),
            (
                "qstore.sim.circuit_hash".to_string(),
                crate::runner::circuit_hash(source),
            ),
            ("qstore.sim.seed".to_string(), seed.to_string()),
            ("qstore.sim.noise".to_string(), format!("{model:?}")),
            ("qstore.sim.clbits".to_string(), clbit_text.clone()),
            ("qstore.sim.qubit_order".to_string(), "little".to_string()),
        ]
        .into(),
    })?;
    Ok(crate::RunReport {
        qubits: n,
        ops: program.ops.len(),
        gates: program.gate_count(),
        wall_seconds: start.elapsed().as_secs_f64(),
        sim_seconds,
        final_commit: id.to_hex(),
        output: output.to_string(),
        clbits: clbit_text,
        ..Default::default()
    })
}
