//! Streaming analyses that never hold a whole state: [`TopK`] (the k most probable basis
//! states), [`Marginals`] (probabilities of chosen qubits) and [`Overlap`] (the inner
//! product behind fidelity). Readers feed them one basis state at a time.

use crate::error::{Error, Result};
use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

#[derive(PartialEq)]
struct Prob(f64, u64);

impl Eq for Prob {}

impl PartialOrd for Prob {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Prob {
    // Larger probability first; on ties the smaller index wins.
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.total_cmp(&other.0).then(other.1.cmp(&self.1))
    }
}

/// The `k` most probable basis states seen so far.
pub struct TopK {
    k: usize,
    heap: BinaryHeap<Reverse<Prob>>,
}

impl TopK {
    /// Keep the `k` largest.
    pub fn new(k: usize) -> Result<Self> {
        if k == 0 {
            return Err(Error::InvalidArgument("top-k needs k >= 1".into()));
        }
        Ok(TopK {
            k,
            heap: BinaryHeap::with_capacity(k.min(1 << 20) + 1),
        })
    }

    /// Offer basis state `index` with probability `p`.
    pub fn push(&mut self, index: u64, p: f64) {
        let item = Prob(p, index);
        if self.heap.len() < self.k {
            self.heap.push(Reverse(item));
        } else if self.heap.peek().is_some_and(|Reverse(min)| item > *min) {
            self.heap.pop();
            self.heap.push(Reverse(item));
        }
    }

    /// `(index, probability)`, most probable first.
    pub fn into_sorted(self) -> Vec<(u64, f64)> {
        let mut v: Vec<Prob> = self.heap.into_iter().map(|Reverse(p)| p).collect();
        v.sort_by(|a, b| b.cmp(a));
        v.into_iter().map(|p| (p.1, p.0)).collect()
    }
}

/// Marginal probabilities of a few qubits: entry `m` of the result is the probability that
/// qubit `qubits[b]` reads bit `b` of `m`, for every `b`.
pub struct Marginals {
    qubits: Vec<u32>,
    probs: Vec<f64>,
}

impl Marginals {
    /// Up to 24 distinct qubits below `n_qubits`.
    pub fn new(qubits: &[u32], n_qubits: u32) -> Result<Self> {
        if qubits.is_empty() || qubits.len() > 24 {
            return Err(Error::InvalidArgument(
                "marginals need 1 to 24 qubits".into(),
            ));
        }
        for (i, q) in qubits.iter().enumerate() {
            if *q >= n_qubits {
                return Err(Error::InvalidArgument(format!(
                    "qubit {q} does not exist in a {n_qubits}-qubit state"
                )));
            }
            if qubits[..i].contains(q) {
                return Err(Error::InvalidArgument(format!("qubit {q} is listed twice")));
            }
        }
        Ok(Marginals {
            qubits: qubits.to_vec(),
            probs: vec![0.0; 1 << qubits.len()],
        })
    }

    /// Add probability `p` of basis state `index`.
    pub fn add(&mut self, index: u64, p: f64) {
        let mut m = 0usize;
        for (b, q) in self.qubits.iter().enumerate() {
            m |= (((index >> q) & 1) as usize) << b;
        }
        self.probs[m] += p;
    }

    /// The marginal distribution.
    pub fn into_probs(self) -> Vec<f64> {
        self.probs
    }
}

/// Accumulates `<a|b> = sum conj(a_i) b_i` and both squared norms.
#[derive(Default, Debug, Clone, Copy)]
pub struct Overlap {
    pub re: f64,
    pub im: f64,
    pub norm_a: f64,
    pub norm_b: f64,
}

impl Overlap {
    /// Add one pair of amplitudes.
    pub fn add(&mut self, a: [f64; 2], b: [f64; 2]) {
        self.re += a[0] * b[0] + a[1] * b[1];
        self.im += a[0] * b[1] - a[1] * b[0];
        self.norm_a += a[0] * a[0] + a[1] * a[1];
        self.norm_b += b[0] * b[0] + b[1] * b[1];
    }

    /// `|<a|b>|^2 / (<a|a><b|b>)`; 0 when either state is zero.
    pub fn fidelity(&self) -> f64 {
        let d = self.norm_a * self.norm_b;
        if d == 0.0 {
            0.0
        } else {
            (self.re * self.re + self.im * self.im) / d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_keeps_largest_and_breaks_ties_by_index() {
        let mut t = TopK::new(2).unwrap();
        for (i, p) in [(0, 0.1), (1, 0.4), (2, 0.4), (3, 0.05)] {
            t.push(i, p);
        }
        assert_eq!(t.into_sorted(), vec![(1, 0.4), (2, 0.4)]);
    }

    #[test]
    fn marginals_sum_bits() {
        let mut m = Marginals::new(&[1], 2).unwrap();
        m.add(0b10, 0.25);
        m.add(0b11, 0.25);
        m.add(0b01, 0.5);
        assert_eq!(m.into_probs(), vec![0.5, 0.5]);
        assert!(Marginals::new(&[2], 2).is_err());
    }

    #[test]
    fn fidelity_of_orthogonal_and_equal_states() {
        let mut o = Overlap::default();
        o.add([1.0, 0.0], [0.0, 0.0]);
        o.add([0.0, 0.0], [0.0, 1.0]);
        assert_eq!(o.fidelity(), 0.0);
        let mut e = Overlap::default();
        e.add([0.6, 0.0], [0.0, 0.6]);
        e.add([0.0, 0.8], [-0.8, 0.0]);
        assert!((e.fidelity() - 1.0).abs() < 1e-12);
    }
}
