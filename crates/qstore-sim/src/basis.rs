//! Basis-state indices of any width: [`Basis<W>`] holds `W` little-endian u64 words (qubit
//! `q` is bit `q % 64` of word `q / 64`, qubit 0 the lowest bit as in Qiskit), so the sparse
//! engine runs circuits of up to `64 W` qubits. A run picks the narrowest `W` of 1, 2, 4, 8
//! or 16 words that holds its qubits ([`words_for`]): up to 1,024 qubits.

use std::cmp::Ordering;

/// Most qubits of a sparse run.
pub const MAX_SPARSE_QUBITS: usize = 1024;

/// One basis index of `64 W` bits. Ordered as the number it is.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Basis<const W: usize>(pub [u64; W]);

impl<const W: usize> Default for Basis<W> {
    fn default() -> Self {
        Basis([0; W])
    }
}

impl<const W: usize> Ord for Basis<W> {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.iter().rev().cmp(other.0.iter().rev())
    }
}

impl<const W: usize> PartialOrd for Basis<W> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl<const W: usize> Basis<W> {
    /// Index 0, |0...0>.
    pub const ZERO: Self = Basis([0; W]);

    /// The index with only the bits of `qubits` set.
    pub fn mask(qubits: &[u32]) -> Self {
        let mut b = Self::ZERO;
        for &q in qubits {
            b.set(q, true);
        }
        b
    }

    /// The bit of qubit `q`.
    #[inline]
    pub fn bit(&self, q: u32) -> bool {
        self.0[(q / 64) as usize] >> (q % 64) & 1 == 1
    }

    /// Set the bit of qubit `q` to `v`.
    #[inline]
    pub fn set(&mut self, q: u32, v: bool) {
        let w = &mut self.0[(q / 64) as usize];
        let m = 1u64 << (q % 64);
        if v { *w |= m } else { *w &= !m }
    }

    /// This index with the bit of qubit `q` flipped.
    #[inline]
    pub fn flipped(mut self, q: u32) -> Self {
        self.0[(q / 64) as usize] ^= 1u64 << (q % 64);
        self
    }

    /// True when every bit of `mask` is set here.
    #[inline]
    pub fn contains(&self, mask: &Self) -> bool {
        self.0.iter().zip(&mask.0).all(|(a, m)| a & m == *m)
    }

    /// The index as one word, when it fits.
    pub fn as_u64(&self) -> Option<u64> {
        self.0[1..].iter().all(|w| *w == 0).then_some(self.0[0])
    }

    /// The index from its words (least significant first; missing words are 0).
    pub fn from_words(words: &[u64]) -> Self {
        let mut b = Self::ZERO;
        for (d, s) in b.0.iter_mut().zip(words) {
            *d = *s;
        }
        b
    }
}

/// Words per index of an `n`-qubit run: the narrowest of 1, 2, 4, 8 and 16 that holds `n`
/// bits (`None` beyond [`MAX_SPARSE_QUBITS`]).
pub fn words_for(n: usize) -> Option<usize> {
    [1, 2, 4, 8, 16].into_iter().find(|w| n <= 64 * w)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_and_bits() {
        let mut a = Basis::<2>::ZERO;
        a.set(70, true);
        let b = Basis::<2>([u64::MAX, 0]);
        assert!(a > b);
        assert!(a.bit(70) && !a.bit(6));
        assert_eq!(a.flipped(70), Basis::ZERO);
        assert!(a.contains(&Basis::mask(&[70])));
        assert!(!b.contains(&Basis::mask(&[70])));
        assert_eq!(a.as_u64(), None);
        assert_eq!(b.as_u64(), Some(u64::MAX));
    }

    #[test]
    fn words() {
        assert_eq!(words_for(64), Some(1));
        assert_eq!(words_for(65), Some(2));
        assert_eq!(words_for(1024), Some(16));
        assert_eq!(words_for(1025), None);
    }
}
