//! What every state-vector engine offers the runner, the noise model and the studies
//! ([`QuantumState`]): gates, the probability of a qubit reading 1 and projection; measurement,
//! reset and `if` are built on those once, so the dense and sparse engines draw the same
//! random numbers for the same circuit.

use crate::circuit::{Gate, Op, PAULI_X};
use rand::Rng;

/// A pure state that gates act on.
pub trait QuantumState {
    /// Apply a gate (any 2x2 matrix: the noise model applies non-unitary Kraus operators
    /// renormalised).
    fn apply(&mut self, g: &Gate);

    /// Probability that `qubit` reads 1 (a deterministic sum: independent of threads).
    fn prob_one(&self, qubit: u32) -> f64;

    /// Keep the amplitudes whose `qubit` reads `one`, scaled by `scale`; zero the others.
    fn project(&mut self, qubit: u32, one: bool, scale: f64);

    /// Measure `qubit`: draw the outcome, collapse and renormalise. Returns the outcome.
    fn measure(&mut self, qubit: u32, rng: &mut impl Rng) -> bool
    where
        Self: Sized,
    {
        let p1 = self.prob_one(qubit).clamp(0.0, 1.0);
        let r: f64 = rng.random();
        let one = r < p1;
        let keep = if one { p1 } else { 1.0 - p1 };
        let scale = if keep > 0.0 { 1.0 / keep.sqrt() } else { 0.0 };
        self.project(qubit, one, scale);
        one
    }

    /// Reset `qubit` to |0> (measure, then flip if it read 1), as Qiskit Aer does.
    fn reset(&mut self, qubit: u32, rng: &mut impl Rng)
    where
        Self: Sized,
    {
        if self.measure(qubit, rng) {
            self.apply(&Gate::Unitary {
                m: PAULI_X,
                target: qubit,
                controls: vec![],
            });
        }
    }

    /// Run one operation; `clbits` is the classical register file.
    fn run(&mut self, op: &Op, clbits: &mut [bool], rng: &mut impl Rng)
    where
        Self: Sized,
    {
        match op {
            Op::Gate(g) => self.apply(g),
            Op::Measure { qubit, clbit } => {
                let v = self.measure(*qubit, rng);
                if let Some(c) = clbits.get_mut(*clbit as usize) {
                    *c = v;
                }
            }
            Op::Reset { qubit } => self.reset(*qubit, rng),
            Op::Barrier => {}
            Op::If {
                start,
                size,
                value,
                op,
            } => {
                if crate::circuit::creg_equals(clbits, *start, *size, *value) {
                    self.run(op, clbits, rng);
                }
            }
        }
    }
}
