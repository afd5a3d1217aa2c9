//! The state-vector engine, in complex128 or (on request) complex64: gate kernels parallel
//! over every core (rayon) with fast paths for diagonal gates, and measurement and reset
//! drawn from a seeded RNG ([`QuantumState`]).
//!
//! Every kernel updates each amplitude (or pair) independently, and every reduction sums fixed
//! blocks in order, so results do not depend on the thread count or scheduling: a resumed
//! run is bit-identical to an uninterrupted one.

use crate::circuit::Gate;
use crate::state::QuantumState;
use num_complex::Complex;
use num_traits::{Float, FromPrimitive, ToPrimitive};
use rayon::prelude::*;

/// The precision of a simulation: f64 (complex128 amplitudes) or f32 (complex64).
pub trait Real:
    Float
    + FromPrimitive
    + ToPrimitive
    + num_traits::NumAssign
    + Send
    + Sync
    + std::fmt::Debug
    + Default
    + 'static
{
    /// The dtype states of this precision are stored as.
    const DTYPE: qstore::DType;
    fn bytes(v: &[Complex<Self>]) -> &[u8];
    fn bytes_mut(v: &mut [Complex<Self>]) -> &mut [u8];
    fn of(x: f64) -> Self {
        Self::from_f64(x).unwrap_or_else(Self::zero)
    }
}

impl Real for f64 {
    const DTYPE: qstore::DType = qstore::DType::Complex128;
    fn bytes(v: &[Complex<f64>]) -> &[u8] {
        bytemuck::cast_slice(v)
    }
    fn bytes_mut(v: &mut [Complex<f64>]) -> &mut [u8] {
        bytemuck::cast_slice_mut(v)
    }
}

impl Real for f32 {
    const DTYPE: qstore::DType = qstore::DType::Complex64;
    fn bytes(v: &[Complex<f32>]) -> &[u8] {
        bytemuck::cast_slice(v)
    }
    fn bytes_mut(v: &mut [Complex<f32>]) -> &mut [u8] {
        bytemuck::cast_slice_mut(v)
    }
}

fn cv<F: Real>(c: num_complex::Complex64) -> Complex<F> {
    Complex::new(F::of(c.re), F::of(c.im))
}

/// Amplitudes per parallel task.
const BLOCK: usize = 1 << 14;

/// A state vector of `n` qubits (qubit 0 is bit 0 of the index), in precision `F`.
#[derive(Clone, Debug, PartialEq)]
pub struct StateVector<F: Real = f64> {
    pub n: usize,
    pub amps: Vec<Complex<F>>,
}

fn mask(qs: &[u32]) -> usize {
    qs.iter().fold(0usize, |m, &q| m | (1usize << q))
}

impl<F: Real> StateVector<F> {
    /// |0...0> of `n` qubits.
    pub fn zero(n: usize) -> Self {
        let mut amps = vec![Complex::new(F::zero(), F::zero()); 1usize << n];
        amps[0] = Complex::new(F::one(), F::zero());
        StateVector { n, amps }
    }

    /// Apply `f(index, amplitude)` to every amplitude, in parallel.
    fn each(&mut self, f: impl Fn(usize, &mut Complex<F>) + Sync) {
        self.amps
            .par_chunks_mut(BLOCK)
            .enumerate()
            .for_each(|(b, chunk)| {
                for (k, a) in chunk.iter_mut().enumerate() {
                    f(b * BLOCK + k, a);
                }
            });
    }

    /// Apply `f(index of the |0> member, lo, hi)` to every pair of amplitudes differing in
    /// bit `t`, in parallel.
    fn pairs(&mut self, t: u32, f: impl Fn(usize, &mut Complex<F>, &mut Complex<F>) + Sync) {
        let stride = 1usize << t;
        if stride >= BLOCK {
            for (blk, block) in self.amps.chunks_mut(2 * stride).enumerate() {
                let (lo, hi) = block.split_at_mut(stride);
                let base = blk * 2 * stride;
                lo.par_chunks_mut(BLOCK)
                    .zip(hi.par_chunks_mut(BLOCK))
                    .enumerate()
                    .for_each(|(c, (l, h))| {
                        for (k, (a, b)) in l.iter_mut().zip(h.iter_mut()).enumerate() {
                            f(base + c * BLOCK + k, a, b);
                        }
                    });
            }
        } else {
            let span = (2 * stride).max(BLOCK);
            self.amps
                .par_chunks_mut(span)
                .enumerate()
                .for_each(|(c, chunk)| {
                    for (blk, block) in chunk.chunks_mut(2 * stride).enumerate() {
                        let (lo, hi) = block.split_at_mut(stride);
                        let base = c * span + blk * 2 * stride;
                        for (k, (a, b)) in lo.iter_mut().zip(hi.iter_mut()).enumerate() {
                            f(base + k, a, b);
                        }
                    }
                });
        }
    }

    /// Apply a gate.
    pub fn apply(&mut self, g: &Gate) {
        match g {
            Gate::Unitary {
                m,
                target,
                controls,
            } => {
                let cm = mask(controls);
                let [m00, m01, m10, m11] = m.map(cv::<F>);
                let zero = Complex::new(F::zero(), F::zero());
                if m01 == zero && m10 == zero {
                    // Diagonal: one multiply per amplitude that changes.
                    let t = 1usize << target;
                    let one = Complex::new(F::one(), F::zero());
                    self.each(|i, a| {
                        if i & cm == cm {
                            let d = if i & t == 0 { m00 } else { m11 };
                            if d != one {
                                *a *= d;
                            }
                        }
                    });
                } else {
                    self.pairs(*target, |i, a, b| {
                        if i & cm == cm {
                            let (x, y) = (*a, *b);
                            *a = m00 * x + m01 * y;
                            *b = m10 * x + m11 * y;
                        }
                    });
                }
            }
            Gate::Swap { a, b, controls } => {
                // swap(a, b) = CX(a, b) CX(b, a) CX(a, b); with controls, only the middle
                // one needs them (the outer pair cancels where a control is 0).
                let x = crate::circuit::PAULI_X;
                let cx = |c: u32, t: u32, more: &[u32]| Gate::Unitary {
                    m: x,
                    target: t,
                    controls: std::iter::once(c).chain(more.iter().copied()).collect(),
                };
                self.apply(&cx(*a, *b, &[]));
                self.apply(&cx(*b, *a, controls));
                self.apply(&cx(*a, *b, &[]));
            }
            Gate::Diag2 { d, a, b } => {
                let (ba, bb) = (1usize << a, 1usize << b);
                let d = d.map(cv::<F>);
                self.each(|i, x| {
                    let k = usize::from(i & ba != 0) | (usize::from(i & bb != 0) << 1);
                    *x *= d[k];
                });
            }
        }
    }

    /// The amplitudes as bytes (complex128 or complex64, little-endian interleaved re/im).
    pub fn as_bytes(&self) -> &[u8] {
        F::bytes(&self.amps)
    }

    /// The amplitudes as writable bytes (to read a stored state into).
    pub fn as_bytes_mut(&mut self) -> &mut [u8] {
        F::bytes_mut(&mut self.amps)
    }
}

impl<F: Real> QuantumState for StateVector<F> {
    fn apply(&mut self, g: &Gate) {
        StateVector::apply(self, g)
    }

    fn prob_one(&self, qubit: u32) -> f64 {
        let bit = 1usize << qubit;
        let parts: Vec<f64> = self
            .amps
            .par_chunks(BLOCK)
            .enumerate()
            .map(|(b, c)| {
                c.iter()
                    .enumerate()
                    .filter(|(k, _)| (b * BLOCK + k) & bit != 0)
                    .map(|(_, a)| a.norm_sqr().to_f64().unwrap_or(0.0))
                    .sum::<f64>()
            })
            .collect();
        parts.iter().sum()
    }

    fn project(&mut self, qubit: u32, one: bool, scale: f64) {
        let scale = F::of(scale);
        let bit = 1usize << qubit;
        self.each(|i, a| {
            if (i & bit != 0) == one {
                *a *= scale;
            } else {
                *a = Complex::new(F::zero(), F::zero());
            }
        });
    }
}
