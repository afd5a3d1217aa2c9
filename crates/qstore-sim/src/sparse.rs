//! The sparse state-vector engine: the non-zero amplitudes of a state of up to 1,024 qubits,
//! held as a vector sorted by basis index ([`Basis<W>`]), for circuits whose support stays
//! small (GHZ, W states, adders on basis states, Bernstein-Vazirani written qubit by qubit).
//!
//! A gate costs time in proportion to the support, not to 2^n: diagonal gates scale in place;
//! gates that only permute (X, CX, SWAP, anti-diagonal matrices) move indices and re-sort;
//! any other 2x2 matrix pairs each index with its partner by a merge of the two sorted halves
//! and merges its results back, so nothing is hashed. Amplitudes that cancel to zero are
//! dropped: exactly, or to within the rounding error of the sum that produced them (see
//! `cancel`); small amplitudes that did not come from a cancellation only by
//! [`SparseState::prune`], on request.
//!
//! Every kernel computes each amplitude with the dense engine's arithmetic (the results agree
//! to a few ulps; the dense engine keeps cancellation noise the sparse one drops), and every
//! sum runs over fixed blocks in index order, so results do not depend on thread count or
//! scheduling: a resumed run is bit-identical to an uninterrupted one.

use crate::basis::Basis;
use crate::circuit::Gate;
use crate::state::QuantumState;
use crate::statevector::StateVector;
use num_complex::Complex64 as C;
use rayon::prelude::*;

/// Entries per block of a sum (fixed, so sums are deterministic).
const BLOCK: usize = 1 << 14;
/// Below this many entries the kernels run on one thread.
const PAR_MIN: usize = 1 << 15;

const ZERO: C = C::new(0.0, 0.0);
const ONE: C = C::new(1.0, 0.0);

/// Relative size below which a sum is rounding noise: a few ulps of its terms.
const ROUNDING: f64 = 8.0 * f64::EPSILON;

/// `p + q`, or exactly 0 when the terms cancel to within the rounding error of computing them
/// (`|p + q| <= 8 eps (|p| + |q|)`, in the 1-norm): what is left then is noise whose sign and
/// size mean nothing (`ry(t) ry(-t)` on an amplitude that is not 1 leaves ~1e-17 where exact
/// arithmetic leaves 0), and keeping it would spread the support over 2^n. A term that is
/// small on its own is never touched: only [`SparseState::prune`] drops those.
#[inline]
fn cancel(p: C, q: C) -> C {
    let s = p + q;
    if s.l1_norm() <= ROUNDING * (p.l1_norm() + q.l1_norm()) {
        ZERO
    } else {
        s
    }
}

/// A state vector of `n` qubits as its non-zero amplitudes, sorted by basis index.
#[derive(Clone, Debug, PartialEq)]
pub struct SparseState<const W: usize> {
    pub n: usize,
    entries: Vec<(Basis<W>, C)>,
}

type Entry<const W: usize> = (Basis<W>, C);

/// Merge three vectors, each sorted by index, with no index in two of them, into one.
fn merge3<const W: usize>(parts: [Vec<Entry<W>>; 3]) -> Vec<Entry<W>> {
    let total = parts.iter().map(Vec::len).sum();
    let mut nonempty: Vec<Vec<Entry<W>>> = parts.into_iter().filter(|p| !p.is_empty()).collect();
    if nonempty.len() <= 1 {
        return nonempty.pop().unwrap_or_default();
    }
    let mut out = Vec::with_capacity(total);
    let mut at = vec![0usize; nonempty.len()];
    loop {
        let mut best: Option<usize> = None;
        for (k, p) in nonempty.iter().enumerate() {
            if let Some(e) = p.get(at[k])
                && best.is_none_or(|b| e.0 < nonempty[b][at[b]].0)
            {
                best = Some(k);
            }
        }
        let Some(k) = best else { break };
        out.push(nonempty[k][at[k]]);
        at[k] += 1;
    }
    out
}

impl<const W: usize> SparseState<W> {
    /// |0...0> of `n` qubits.
    pub fn zero(n: usize) -> Self {
        SparseState {
            n,
            entries: vec![(Basis::ZERO, ONE)],
        }
    }

    /// A state from its entries in any order; exact zeros are dropped. Refuses an index
    /// given twice or one with bits at or above qubit `n`.
    pub fn from_entries(n: usize, mut entries: Vec<(Basis<W>, C)>) -> Result<Self, String> {
        if n > 64 * W {
            return Err(format!("{n} qubits do not fit {W} index words"));
        }
        entries.retain(|e| e.1 != ZERO);
        entries.par_sort_unstable_by_key(|e| e.0);
        if let Some(w) = entries.windows(2).find(|w| w[0].0 == w[1].0) {
            return Err(format!("basis index {:?} is given twice", w[0].0.0));
        }
        if let Some(e) = entries.last()
            && (n..64 * W).any(|q| e.0.bit(q as u32))
        {
            return Err(format!("basis index {:?} has bits past qubit {n}", e.0.0));
        }
        Ok(SparseState { n, entries })
    }

    /// A state from stored multi-word indices (`words` per index, least significant first)
    /// and complex128 amplitudes (little-endian re, im).
    pub fn from_stored(n: usize, words: usize, idx: &[u64], values: &[u8]) -> Result<Self, String> {
        if words == 0 || !idx.len().is_multiple_of(words) || values.len() != idx.len() / words * 16
        {
            return Err("index words and amplitudes do not match".into());
        }
        let entries = idx
            .chunks_exact(words)
            .zip(values.chunks_exact(16))
            .map(|(w, v)| {
                let re = f64::from_le_bytes(v[..8].try_into().unwrap_or_default());
                let im = f64::from_le_bytes(v[8..].try_into().unwrap_or_default());
                (Basis::from_words(w), C::new(re, im))
            })
            .collect();
        Self::from_entries(n, entries)
    }

    /// The non-zero amplitudes of a dense state.
    pub fn from_dense(s: &StateVector<f64>) -> Self {
        let entries = s
            .amps
            .iter()
            .enumerate()
            .filter(|(_, a)| **a != ZERO)
            .map(|(i, a)| (Basis::from_words(&[i as u64]), *a))
            .collect();
        SparseState { n: s.n, entries }
    }

    /// The dense form (for states of up to 34 qubits).
    pub fn to_dense(&self) -> StateVector<f64> {
        let mut s = StateVector::<f64> {
            n: self.n,
            amps: vec![ZERO; 1usize << self.n],
        };
        for (i, a) in &self.entries {
            if let Some(k) = i.as_u64() {
                s.amps[k as usize] = *a;
            }
        }
        s
    }

    /// The entries, sorted by basis index.
    pub fn entries(&self) -> &[(Basis<W>, C)] {
        &self.entries
    }

    /// Non-zero amplitudes.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no amplitude is left (a state projected on an impossible outcome).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The stored form: `ceil(n / 64)` index words per entry and complex128 amplitude bytes.
    pub fn to_stored(&self) -> (Vec<u64>, Vec<u8>) {
        let words = self.n.div_ceil(64).max(1);
        let mut idx = Vec::with_capacity(self.entries.len() * words);
        let mut vals = Vec::with_capacity(self.entries.len() * 16);
        for (i, a) in &self.entries {
            idx.extend_from_slice(&i.0[..words]);
            vals.extend_from_slice(&a.re.to_le_bytes());
            vals.extend_from_slice(&a.im.to_le_bytes());
        }
        (idx, vals)
    }

    /// Most non-zero amplitudes the state can have after `g`.
    pub fn bound_after(&self, g: &Gate) -> usize {
        let full = if self.n >= usize::BITS as usize - 1 {
            usize::MAX
        } else {
            1usize << self.n
        };
        match g {
            Gate::Unitary { m, .. } => {
                let diagonal = m[1] == ZERO && m[2] == ZERO;
                let permutes = m[0] == ZERO && m[3] == ZERO;
                if diagonal || permutes {
                    self.len()
                } else {
                    self.len().saturating_mul(2).min(full)
                }
            }
            Gate::Swap { .. } | Gate::Diag2 { .. } => self.len(),
        }
    }

    /// Squared norm (fixed blocks in order: deterministic).
    pub fn norm_sqr(&self) -> f64 {
        self.block_sum(|_| true)
    }

    fn block_sum(&self, keep: impl Fn(&Basis<W>) -> bool + Sync) -> f64 {
        let parts: Vec<f64> = self
            .entries
            .par_chunks(BLOCK)
            .map(|c| {
                c.iter()
                    .filter(|(i, _)| keep(i))
                    .map(|(_, a)| a.norm_sqr())
                    .sum::<f64>()
            })
            .collect();
        parts.iter().sum()
    }

    /// Drop the amplitudes of magnitude below `eps` and rescale the rest to the norm the
    /// state had. Returns the probability mass dropped (as a fraction of the norm).
    pub fn prune(&mut self, eps: f64) -> f64 {
        let cut = eps * eps;
        if !self.entries.iter().any(|(_, a)| a.norm_sqr() < cut) {
            return 0.0;
        }
        let total = self.norm_sqr();
        let dropped: f64 = self
            .entries
            .iter()
            .map(|(_, a)| a.norm_sqr())
            .filter(|p| *p < cut)
            .sum();
        self.entries.retain(|(_, a)| a.norm_sqr() >= cut);
        let kept = self.norm_sqr();
        if kept > 0.0 && total > 0.0 {
            let scale = (total / kept).sqrt();
            self.each(|e| e.1 *= scale);
            dropped / total
        } else {
            1.0
        }
    }

    /// Apply `f` to every entry (in parallel when there are many).
    fn each(&mut self, f: impl Fn(&mut (Basis<W>, C)) + Sync + Send) {
        if self.entries.len() >= PAR_MIN {
            self.entries.par_iter_mut().for_each(f);
        } else {
            self.entries.iter_mut().for_each(f);
        }
    }

    /// Split the entries into the ones that stay (class 0) and two classes (1, 2) whose
    /// members share the bits `change` flips, apply `change` to those, and merge the three
    /// back in order: a flip of bits every member of a class shares keeps the class sorted.
    fn regroup(
        &mut self,
        class: impl Fn(&Entry<W>) -> usize,
        change: impl Fn(&mut Entry<W>) + Sync + Send,
    ) {
        let mut parts: [Vec<Entry<W>>; 3] = Default::default();
        for e in std::mem::take(&mut self.entries) {
            parts[class(&e)].push(e);
        }
        for p in &mut parts[1..] {
            if p.len() >= PAR_MIN {
                p.par_iter_mut().for_each(&change);
            } else {
                p.iter_mut().for_each(&change);
            }
        }
        self.entries = merge3(parts);
    }

    fn drop_zeros(&mut self) {
        self.entries.retain(|e| e.1 != ZERO);
    }

    fn unitary(&mut self, m: [C; 4], t: u32, cm: Basis<W>) {
        let [m00, m01, m10, m11] = m;
        if m01 == ZERO && m10 == ZERO {
            if m00 == ONE && m11 == ONE {
                return;
            }
            self.each(|(i, a)| {
                if i.contains(&cm) {
                    let d = if i.bit(t) { m11 } else { m00 };
                    if d != ONE {
                        *a *= d;
                    }
                }
            });
            self.drop_zeros();
        } else if m00 == ZERO && m11 == ZERO {
            // |0> -> m10 |1>, |1> -> m01 |0>: indices move, amplitudes scale. Flipping one
            // bit keeps the order among the entries that share it, so the moved halves stay
            // sorted and are merged back.
            let moving = |(i, _): &Entry<W>| {
                if !i.contains(&cm) {
                    0
                } else if i.bit(t) {
                    1
                } else {
                    2
                }
            };
            self.regroup(moving, |(i, a)| {
                *a = if i.bit(t) { m01 * *a } else { m10 * *a };
                *i = i.flipped(t);
            });
            self.drop_zeros();
        } else {
            self.mix(m, t, cm);
        }
    }

    /// A general 2x2 matrix: pair every index with its partner (the two halves, with bit `t`
    /// cleared, are each sorted: a merge finds the pairs), compute both members as the dense
    /// engine does (a missing partner is 0), and merge the results back in order.
    fn mix(&mut self, m: [C; 4], t: u32, cm: Basis<W>) {
        let [m00, m01, m10, m11] = m;
        let entries = std::mem::take(&mut self.entries);
        let (mut rest, mut lo, mut hi) = (Vec::new(), Vec::new(), Vec::new());
        for (i, a) in entries {
            if !i.contains(&cm) {
                rest.push((i, a));
            } else if i.bit(t) {
                hi.push((i.flipped(t), a));
            } else {
                lo.push((i, a));
            }
        }
        let mut pairs: Vec<(Basis<W>, C, C)> = Vec::with_capacity(lo.len().max(hi.len()));
        let (mut p, mut q) = (0, 0);
        while p < lo.len() || q < hi.len() {
            let ord = match (lo.get(p), hi.get(q)) {
                (Some(a), Some(b)) => a.0.cmp(&b.0),
                (Some(_), None) => std::cmp::Ordering::Less,
                _ => std::cmp::Ordering::Greater,
            };
            match ord {
                std::cmp::Ordering::Less => {
                    pairs.push((lo[p].0, lo[p].1, ZERO));
                    p += 1;
                }
                std::cmp::Ordering::Greater => {
                    pairs.push((hi[q].0, ZERO, hi[q].1));
                    q += 1;
                }
                std::cmp::Ordering::Equal => {
                    pairs.push((lo[p].0, lo[p].1, hi[q].1));
                    p += 1;
                    q += 1;
                }
            }
        }
        drop((lo, hi));
        let kernel =
            |(_, x, y): &(Basis<W>, C, C)| (cancel(m00 * x, m01 * y), cancel(m10 * x, m11 * y));
        let (mut new_lo, mut new_hi) = (
            Vec::with_capacity(pairs.len()),
            Vec::with_capacity(pairs.len()),
        );
        let mut keep = |k: &Basis<W>, (a, b): (C, C)| {
            if a != ZERO {
                new_lo.push((*k, a));
            }
            if b != ZERO {
                new_hi.push((k.flipped(t), b));
            }
        };
        if pairs.len() >= PAR_MIN {
            let out: Vec<(C, C)> = pairs.par_iter().map(kernel).collect();
            for (e, r) in pairs.iter().zip(out) {
                keep(&e.0, r);
            }
        } else {
            for e in &pairs {
                keep(&e.0, kernel(e));
            }
        }
        self.entries = merge3([rest, new_lo, new_hi]);
    }
}

impl<const W: usize> QuantumState for SparseState<W> {
    fn apply(&mut self, g: &Gate) {
        match g {
            Gate::Unitary {
                m,
                target,
                controls,
            } => self.unitary(*m, *target, Basis::mask(controls)),
            Gate::Swap { a, b, controls } => {
                let (a, b, cm) = (*a, *b, Basis::<W>::mask(controls));
                let moving = |(i, _): &Entry<W>| {
                    if !i.contains(&cm) || i.bit(a) == i.bit(b) {
                        0
                    } else if i.bit(a) {
                        1
                    } else {
                        2
                    }
                };
                if self.entries.iter().any(|e| moving(e) != 0) {
                    self.regroup(moving, |(i, _)| *i = i.flipped(a).flipped(b));
                }
            }
            Gate::Diag2 { d, a, b } => {
                let (a, b, d) = (*a, *b, *d);
                self.each(|(i, x)| {
                    *x *= d[usize::from(i.bit(a)) | (usize::from(i.bit(b)) << 1)];
                });
                self.drop_zeros();
            }
        }
    }

    fn prob_one(&self, qubit: u32) -> f64 {
        self.block_sum(|i| i.bit(qubit))
    }

    fn project(&mut self, qubit: u32, one: bool, scale: f64) {
        self.entries.retain(|(i, _)| i.bit(qubit) == one);
        self.each(|e| e.1 *= scale);
        self.drop_zeros();
    }
}
