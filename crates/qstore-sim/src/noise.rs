//! Noise by Monte-Carlo trajectories: a [`NoiseModel`] of depolarizing, amplitude damping
//! (T1), phase damping (T2) and readout error, applied after every gate to the qubits it acts
//! on, each error drawn from the trajectory's own seeded RNG (ChaCha8 stream `t` of the run's
//! seed), so every trajectory is reproducible on its own.
//!
//! Conventions follow Qiskit Aer: depolarizing with parameter p replaces the state by the
//! maximally mixed one with probability p, i.e. applies each non-identity Pauli with
//! probability p/4 (one qubit) or p/16 (two qubits); amplitude damping with γ has Kraus
//! operators [[1,0],[0,√(1-γ)]] and [[0,√γ],[0,0]]; phase damping with λ has
//! [[1,0],[0,√(1-λ)]] and [[0,0],[0,√λ]]; readout error p flips each measured bit with
//! probability p.

use crate::circuit::{Gate, Op, PAULI_X};
use crate::state::QuantumState;
use num_complex::Complex64 as C;
use rand::Rng;

/// The noise applied to a run.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct NoiseModel {
    /// Depolarizing parameter after one-qubit gates.
    pub p1: f64,
    /// Depolarizing parameter after gates on two or more qubits (to the first two).
    pub p2: f64,
    /// Amplitude damping γ after every gate, on each qubit it touches.
    pub amplitude_damping: f64,
    /// Phase damping λ after every gate, on each qubit it touches.
    pub phase_damping: f64,
    /// Readout error: each measured bit flips with this probability.
    pub readout: f64,
}

fn parse_prob(v: &str, what: &str) -> Result<f64, String> {
    let p: f64 = v
        .parse()
        .map_err(|_| format!("{what}={v} is not a number"))?;
    if !(0.0..=1.0).contains(&p) {
        return Err(format!("{what}={v} is not a probability in [0, 1]"));
    }
    Ok(p)
}

impl NoiseModel {
    /// Add a channel given as `depolarizing:p1=1e-3,p2=1e-2`, `amplitude_damping:gamma=1e-3`,
    /// `phase_damping:lambda=1e-3` or `readout:p=0.02`.
    pub fn add(&mut self, spec: &str) -> Result<(), String> {
        let (name, args) = spec.split_once(':').unwrap_or((spec, ""));
        for kv in args.split(',').filter(|s| !s.is_empty()) {
            let (k, v) = kv
                .split_once('=')
                .ok_or_else(|| format!("{kv:?} in {spec:?} is not KEY=VALUE"))?;
            match (name, k) {
                ("depolarizing", "p1") => self.p1 = parse_prob(v, k)?,
                ("depolarizing", "p2") => self.p2 = parse_prob(v, k)?,
                ("amplitude_damping", "gamma" | "g") => self.amplitude_damping = parse_prob(v, k)?,
                ("phase_damping", "lambda" | "l") => self.phase_damping = parse_prob(v, k)?,
                ("readout", "p") => self.readout = parse_prob(v, k)?,
                _ => {
                    return Err(format!(
                        "unknown noise {name}:{k} (use depolarizing:p1=,p2=; amplitude_damping:gamma=; phase_damping:lambda=; readout:p=)"
                    ));
                }
            }
        }
        Ok(())
    }

    /// True when no channel is set.
    pub fn is_noiseless(&self) -> bool {
        *self == NoiseModel::default()
    }

    /// Apply the noise that follows `op` (a gate) to the state. Returns true when an error
    /// event happened.
    pub fn after(&self, op: &Op, s: &mut impl QuantumState, rng: &mut impl Rng) -> bool {
        let qs = match op {
            Op::Gate(g) => gate_qubits(g),
            Op::If { op, .. } => match &**op {
                Op::Gate(g) => gate_qubits(g),
                _ => return false,
            },
            _ => return false,
        };
        let mut event = false;
        let p = if qs.len() == 1 { self.p1 } else { self.p2 };
        if p > 0.0 {
            let r: f64 = rng.random();
            if qs.len() == 1 {
                if r < p * 0.75 {
                    pauli(s, qs[0], 1 + (r / (p * 0.25)) as u8 % 3);
                    event = true;
                }
            } else if r < p * 15.0 / 16.0 {
                let k = 1 + (r / (p / 16.0)) as u8 % 15;
                pauli(s, qs[0], k & 3);
                pauli(s, qs[1], k >> 2);
                event = true;
            }
        }
        for &q in &qs {
            if self.amplitude_damping > 0.0 {
                event |= damp(s, q, self.amplitude_damping, true, rng);
            }
            if self.phase_damping > 0.0 {
                event |= damp(s, q, self.phase_damping, false, rng);
            }
        }
        event
    }

    /// A measured bit after readout error.
    pub fn read(&self, bit: bool, rng: &mut impl Rng) -> bool {
        if self.readout > 0.0 && rng.random::<f64>() < self.readout {
            !bit
        } else {
            bit
        }
    }
}

/// The qubits a gate acts on (controls first).
pub fn gate_qubits(g: &Gate) -> Vec<u32> {
    match g {
        Gate::Unitary {
            target, controls, ..
        } => controls.iter().copied().chain([*target]).collect(),
        Gate::Swap { a, b, controls } => controls.iter().copied().chain([*a, *b]).collect(),
        Gate::Diag2 { a, b, .. } => vec![*a, *b],
    }
}

/// Apply Pauli `k` (0 I, 1 X, 2 Y, 3 Z) to qubit `q`.
fn pauli(s: &mut impl QuantumState, q: u32, k: u8) {
    let z = C::new(0.0, 0.0);
    let o = C::new(1.0, 0.0);
    let m = match k {
        1 => PAULI_X,
        2 => [z, C::new(0.0, -1.0), C::new(0.0, 1.0), z],
        3 => [o, z, z, -o],
        _ => return,
    };
    s.apply(&Gate::Unitary {
        m,
        target: q,
        controls: vec![],
    });
}

/// One trajectory step of amplitude damping (`amplitude`) or phase damping with strength `g`
/// on qubit `q`. Returns true when the jump operator was applied.
fn damp(s: &mut impl QuantumState, q: u32, g: f64, amplitude: bool, rng: &mut impl Rng) -> bool {
    let p1 = s.prob_one(q);
    let jump = g * p1;
    let r: f64 = rng.random();
    let z = C::new(0.0, 0.0);
    let (m, norm) = if r < jump {
        // The jump √g|0><1| (amplitude) or √g|1><1| (phase), renormalised by √(g p1).
        let scale = C::new(1.0 / p1.sqrt(), 0.0);
        if amplitude {
            ([z, scale, z, z], true)
        } else {
            ([z, z, z, scale], true)
        }
    } else {
        // No jump: diag(1, √(1-g)), renormalised by √(1 - g p1).
        let n = 1.0 / (1.0 - jump).sqrt();
        (
            [C::new(n, 0.0), z, z, C::new((1.0 - g).sqrt() * n, 0.0)],
            false,
        )
    };
    apply_raw(s, q, m);
    norm
}

/// Apply a (not necessarily unitary) 2x2 matrix to qubit `q`.
fn apply_raw(s: &mut impl QuantumState, q: u32, m: [C; 4]) {
    s.apply(&Gate::Unitary {
        m,
        target: q,
        controls: vec![],
    });
}
