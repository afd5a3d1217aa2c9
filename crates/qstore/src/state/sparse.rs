//! The sparse layout of a state vector: `nnz` basis indices, strictly increasing and below
//! 2^n, followed by the `nnz` amplitudes. An index is a little-endian u64 up to 64 qubits, and
//! `ceil(n / 64)` little-endian u64 words (least significant first) beyond. [`SparseInput`]
//! is what a caller hands in (any order, up to [`MAX_QUBITS`] qubits), [`WideSparseInput`] the
//! same with multi-word indices (up to [`MAX_SPARSE_QUBITS`] qubits); [`prepare`] and
//! [`prepare_wide`] validate and sort them, [`decode`] and [`decode_wide`] check stored bytes,
//! and [`parse_basis_key`] reads `"5"`, `"0b101"` or Qiskit-style bit strings (`"101"`).

use super::dtype::DType;
use crate::error::{Error, Result};
use crate::format::tree::{MAX_QUBITS, MAX_SPARSE_QUBITS, index_bytes};
use std::cmp::Ordering;

/// A sparse state vector handed to `put_sparse`: basis indices and their amplitudes.
#[derive(Clone, Debug)]
pub struct SparseInput<'a> {
    pub n_qubits: u32,
    pub dtype: DType,
    /// Basis indices (little-endian qubit order: qubit 0 is bit 0), in any order, unique.
    pub indices: &'a [u64],
    /// `indices.len()` amplitudes of `dtype`, little-endian.
    pub values: &'a [u8],
}

/// Bytes of a sparse stream with `nnz` entries of `item` bytes.
pub fn stream_len(nnz: u64, item: usize) -> u64 {
    nnz * (8 + item as u64)
}

/// Check the dtype and qubit count of a sparse input (at most `max_qubits`).
fn check_kind(dtype: DType, n_qubits: u32, max_qubits: u32) -> Result<()> {
    if !dtype.is_complex() {
        return Err(Error::invalid_state(format!(
            "sparse amplitudes must be complex64 or complex128, got {dtype}"
        )));
    }
    if n_qubits == 0 || n_qubits > max_qubits {
        return Err(Error::invalid_state(format!(
            "a sparse state vector has 1..={max_qubits} qubits, got {n_qubits}"
        )));
    }
    Ok(())
}

/// Validate a sparse input and return its indices and values sorted by index.
pub fn prepare(input: &SparseInput<'_>) -> Result<(Vec<u64>, Vec<u8>)> {
    let item = input.dtype.item_size();
    check_kind(input.dtype, input.n_qubits, MAX_QUBITS)?;
    if input.values.len() != input.indices.len() * item {
        return Err(Error::invalid_state(format!(
            "{} indices need {} bytes of {} amplitudes, got {}",
            input.indices.len(),
            input.indices.len() * item,
            input.dtype,
            input.values.len()
        )));
    }
    let dim = 1u64 << input.n_qubits;
    for (k, &i) in input.indices.iter().enumerate() {
        if i >= dim {
            return Err(Error::invalid_state(format!(
                "basis index {i} is out of range for {} qubits (must be < {dim})",
                input.n_qubits
            )));
        }
        let [re, im] = input.dtype.amplitude(input.values, k);
        if !(re.is_finite() && im.is_finite()) {
            return Err(Error::invalid_state(format!(
                "amplitude of basis index {i} is not finite ({re} + {im}i)"
            )));
        }
    }
    let mut order: Vec<usize> = (0..input.indices.len()).collect();
    order.sort_unstable_by_key(|&k| input.indices[k]);
    let mut idx = Vec::with_capacity(order.len());
    let mut vals = Vec::with_capacity(input.values.len());
    for &k in &order {
        let i = input.indices[k];
        if idx.last() == Some(&i) {
            return Err(Error::invalid_state(format!(
                "basis index {i} is given twice"
            )));
        }
        idx.push(i);
        vals.extend_from_slice(&input.values[k * item..(k + 1) * item]);
    }
    Ok((idx, vals))
}

/// Check a run of stored indices: strictly increasing (after `prev`) and below `dim`.
pub fn check_indices(
    indices: &[u64],
    mut prev: Option<u64>,
    dim: u64,
) -> std::result::Result<(), String> {
    for &i in indices {
        if i >= dim {
            return Err(format!("stored basis index {i} is out of range (< {dim})"));
        }
        if prev.is_some_and(|p| i <= p) {
            return Err(format!(
                "stored basis indices are not strictly increasing at {i}"
            ));
        }
        prev = Some(i);
    }
    Ok(())
}

/// Decode a whole sparse stream; every structural problem is an error, never a panic.
pub fn decode(
    stream: &[u8],
    nnz: u64,
    item: usize,
    dim: u64,
) -> std::result::Result<(Vec<u64>, Vec<u8>), String> {
    let expected = nnz
        .checked_mul(8 + item as u64)
        .ok_or("entry count overflows")?;
    if stream.len() as u64 != expected {
        return Err(format!(
            "sparse stream is {} bytes, {nnz} entries need {expected}",
            stream.len()
        ));
    }
    let n = nnz as usize;
    let idx: Vec<u64> = stream[..n * 8]
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    check_indices(&idx, None, dim)?;
    Ok((idx, stream[n * 8..].to_vec()))
}

/// A sparse state vector of up to [`MAX_SPARSE_QUBITS`] qubits: each basis index is
/// `words = ceil(n / 64)` little-endian u64 words, least significant first.
#[derive(Clone, Debug)]
pub struct WideSparseInput<'a> {
    pub n_qubits: u32,
    pub dtype: DType,
    /// `nnz * words` words: the basis indices, in any order, unique.
    pub indices: &'a [u64],
    /// `nnz` amplitudes of `dtype`, little-endian.
    pub values: &'a [u8],
}

/// A sparse state read back: sorted multi-word basis indices and their amplitudes.
#[derive(Clone, Debug, PartialEq)]
pub struct WideSparse {
    pub n_qubits: u32,
    /// u64 words per index.
    pub words: usize,
    /// `nnz * words` words, indices strictly increasing.
    pub indices: Vec<u64>,
    /// `nnz` amplitudes.
    pub values: Vec<u8>,
}

impl WideSparse {
    /// Number of stored entries.
    pub fn len(&self) -> usize {
        self.indices.len() / self.words.max(1)
    }

    /// True when no entry is stored.
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// The words of index `k`.
    pub fn basis_index(&self, k: usize) -> &[u64] {
        &self.indices[k * self.words..(k + 1) * self.words]
    }
}

/// Words of one basis index of an `n`-qubit state.
pub fn index_words(n_qubits: u32) -> usize {
    index_bytes(n_qubits) / 8
}

/// Compare two multi-word indices (least significant word first).
pub fn cmp_wide(a: &[u64], b: &[u64]) -> Ordering {
    a.iter().rev().cmp(b.iter().rev())
}

/// True when the multi-word index `w` is below 2^n.
fn wide_in_range(w: &[u64], n: u32) -> bool {
    let full = (n / 64) as usize;
    let rem = n % 64;
    w.iter().enumerate().all(|(i, &x)| {
        if i < full {
            true
        } else if i == full && rem > 0 {
            x >> rem == 0
        } else {
            x == 0
        }
    })
}

/// Validate a wide sparse input and return its indices (words) and values sorted by index.
pub fn prepare_wide(input: &WideSparseInput<'_>) -> Result<(Vec<u64>, Vec<u8>)> {
    let item = input.dtype.item_size();
    check_kind(input.dtype, input.n_qubits, MAX_SPARSE_QUBITS)?;
    let words = index_words(input.n_qubits);
    if !input.indices.len().is_multiple_of(words) {
        return Err(Error::invalid_state(format!(
            "{} index words are not a whole number of {words}-word indices ({} qubits)",
            input.indices.len(),
            input.n_qubits
        )));
    }
    let nnz = input.indices.len() / words;
    if input.values.len() != nnz * item {
        return Err(Error::invalid_state(format!(
            "{nnz} indices need {} bytes of {} amplitudes, got {}",
            nnz * item,
            input.dtype,
            input.values.len()
        )));
    }
    let idx = |k: usize| &input.indices[k * words..(k + 1) * words];
    for k in 0..nnz {
        if !wide_in_range(idx(k), input.n_qubits) {
            return Err(Error::invalid_state(format!(
                "basis index {} is out of range for {} qubits",
                wide_hex(idx(k)),
                input.n_qubits
            )));
        }
        let [re, im] = input.dtype.amplitude(input.values, k);
        if !(re.is_finite() && im.is_finite()) {
            return Err(Error::invalid_state(format!(
                "amplitude of basis index {} is not finite ({re} + {im}i)",
                wide_hex(idx(k))
            )));
        }
    }
    let mut order: Vec<usize> = (0..nnz).collect();
    order.sort_unstable_by(|&a, &b| cmp_wide(idx(a), idx(b)));
    let mut out = Vec::with_capacity(input.indices.len());
    let mut vals = Vec::with_capacity(input.values.len());
    for (j, &k) in order.iter().enumerate() {
        if j > 0 && cmp_wide(idx(order[j - 1]), idx(k)) == Ordering::Equal {
            return Err(Error::invalid_state(format!(
                "basis index {} is given twice",
                wide_hex(idx(k))
            )));
        }
        out.extend_from_slice(idx(k));
        vals.extend_from_slice(&input.values[k * item..(k + 1) * item]);
    }
    Ok((out, vals))
}

/// A multi-word index in hexadecimal, for messages.
pub fn wide_hex(w: &[u64]) -> String {
    let mut s = String::from("0x");
    for x in w.iter().rev() {
        s.push_str(&format!("{x:016x}"));
    }
    s
}

/// Decode a whole sparse stream of an `n_qubits` state with multi-word indices; every
/// structural problem is an error, never a panic.
pub fn decode_wide(
    stream: &[u8],
    nnz: u64,
    item: usize,
    n_qubits: u32,
) -> std::result::Result<WideSparse, String> {
    if n_qubits == 0 || n_qubits > MAX_SPARSE_QUBITS {
        return Err(format!("{n_qubits} qubits"));
    }
    let ib = index_bytes(n_qubits);
    let words = ib / 8;
    let expected = nnz
        .checked_mul((ib + item) as u64)
        .ok_or("entry count overflows")?;
    if stream.len() as u64 != expected {
        return Err(format!(
            "sparse stream is {} bytes, {nnz} entries need {expected}",
            stream.len()
        ));
    }
    let n = nnz as usize;
    let indices: Vec<u64> = stream[..n * ib]
        .chunks_exact(8)
        .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    for k in 0..n {
        let w = &indices[k * words..(k + 1) * words];
        if !wide_in_range(w, n_qubits) {
            return Err(format!(
                "stored basis index {} is out of range",
                wide_hex(w)
            ));
        }
        if k > 0 && cmp_wide(&indices[(k - 1) * words..k * words], w) != Ordering::Less {
            return Err(format!(
                "stored basis indices are not strictly increasing at {}",
                wide_hex(w)
            ));
        }
    }
    Ok(WideSparse {
        n_qubits,
        words,
        indices,
        values: stream[n * ib..].to_vec(),
    })
}

/// Parse a basis-state key: a decimal index, `0b`-prefixed binary, or a bit string of exactly
/// `n_qubits` characters written Qiskit-style (leftmost character = highest qubit).
pub fn parse_basis_key(key: &str, n_qubits: u32) -> Result<u64> {
    match parse_basis_key_wide(key, n_qubits.min(64))?[..] {
        [w] => Ok(w),
        _ => Err(Error::invalid_state(format!(
            "basis key {key:?}: out of range for {n_qubits} qubits"
        ))),
    }
}

/// The words of basis key `key` of an `n_qubits`-qubit state of any width (up to 1,024
/// qubits): a decimal index, `0b` binary, or a bit string of exactly `n_qubits` characters
/// (leftmost = highest qubit), as [`parse_basis_key`] reads them; `index_words(n_qubits)`
/// little-endian words.
pub fn parse_basis_key_wide(key: &str, n_qubits: u32) -> Result<Vec<u64>> {
    let bad = |why: &str| Error::invalid_state(format!("basis key {key:?}: {why}"));
    let out_of_range = || bad(&format!("out of range for {n_qubits} qubits"));
    let mut w = vec![0u64; index_words(n_qubits)];
    let bits = |digits: &str, w: &mut Vec<u64>| -> Result<()> {
        if digits.is_empty() {
            return Err(bad("no digits"));
        }
        for (k, c) in digits.bytes().rev().enumerate() {
            match c {
                b'0' => {}
                b'1' if k < 64 * w.len() => w[k / 64] |= 1 << (k % 64),
                b'1' => return Err(out_of_range()),
                _ => return Err(bad("not a binary number")),
            }
        }
        Ok(())
    };
    if let Some(b) = key.strip_prefix("0b") {
        bits(b, &mut w)?;
    } else if key.len() == n_qubits as usize
        && key.len() > 1
        && key.bytes().all(|c| c == b'0' || c == b'1')
    {
        bits(key, &mut w)?;
    } else {
        if key.is_empty() || !key.bytes().all(|c| c.is_ascii_digit()) {
            return Err(bad("not an index or a bit string"));
        }
        for d in key.bytes() {
            // w = w * 10 + d, word by word; a carry out of the top word is out of range.
            let mut carry = u128::from(d - b'0');
            for x in w.iter_mut() {
                let v = u128::from(*x) * 10 + carry;
                *x = v as u64;
                carry = v >> 64;
            }
            if carry != 0 {
                return Err(out_of_range());
            }
        }
    }
    let top = n_qubits as usize;
    if (top..64 * w.len()).any(|k| w[k / 64] >> (k % 64) & 1 == 1) {
        return Err(out_of_range());
    }
    Ok(w)
}

/// The decimal form of a multi-word basis index (least significant word first).
pub fn basis_key_decimal(words: &[u64]) -> String {
    let mut w: Vec<u64> = words.to_vec();
    while w.len() > 1 && w.last() == Some(&0) {
        w.pop();
    }
    if w.len() == 1 {
        return w[0].to_string();
    }
    // Repeated division by 10^19 (the largest power of ten in a u64).
    const BASE: u128 = 10_000_000_000_000_000_000;
    let mut groups = Vec::new();
    while w.iter().any(|x| *x != 0) {
        let mut rem: u128 = 0;
        for x in w.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*x);
            *x = (cur / BASE) as u64;
            rem = cur % BASE;
        }
        groups.push(rem as u64);
    }
    let mut s = groups
        .pop()
        .map_or_else(|| "0".to_string(), |g| g.to_string());
    for g in groups.iter().rev() {
        s += &format!("{g:019}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decimal_keys_of_any_width() {
        assert_eq!(basis_key_decimal(&[0, 0]), "0");
        assert_eq!(basis_key_decimal(&[42]), "42");
        assert_eq!(basis_key_decimal(&[0, 1]), "18446744073709551616");
        assert_eq!(
            basis_key_decimal(&[u64::MAX, u64::MAX]),
            u128::MAX.to_string()
        );
        assert_eq!(basis_key_decimal(&[5, 0, 0, 0]), "5");
        assert_eq!(
            basis_key_decimal(&[0, 0, 1]),
            "340282366920938463463374607431768211456"
        );
        let k = |s: &str, n| parse_basis_key_wide(s, n);
        assert_eq!(k("18446744073709551616", 100).unwrap(), vec![0, 1]);
        assert_eq!(k("0b101", 100).unwrap(), vec![5, 0]);
        assert_eq!(k(&"1".repeat(70), 70).unwrap(), vec![u64::MAX, 63]);
        for bad in ["", "0b", "12a", "-1", "0b2", &(1u128 << 100).to_string()] {
            assert!(k(bad, 100).is_err(), "{bad:?}");
        }
        // 2^130 needs 131 bits: out of range for 130 qubits, fine for 131.
        let big = basis_key_decimal(&[0, 0, 4]);
        assert!(k(&big, 130).is_err());
        assert_eq!(k(&big, 131).unwrap(), vec![0, 0, 4]);
    }

    proptest! {
        #[test]
        fn basis_keys_round_trip_and_never_panic(
            n in 1u32..=1024,
            raw in proptest::collection::vec(any::<u64>(), 16),
            junk in "\\PC{0,60}",
        ) {
            let words = index_words(n);
            let mut w = raw[..words].to_vec();
            for k in n as usize..64 * words {
                w[k / 64] &= !(1 << (k % 64));
            }
            prop_assert_eq!(parse_basis_key_wide(&basis_key_decimal(&w), n).unwrap(), w.clone());
            let _ = parse_basis_key_wide(&junk, n);
        }

        #[test]
        fn wide_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..400), nnz in 0u64..20, n in 0u32..1100) {
            let _ = decode_wide(&b, nnz, 16, n);
        }

        #[test]
        fn wide_prepare_then_decode_round_trips(
            n in 59u32..=1024,
            raw in proptest::collection::vec(any::<u64>(), 0..160),
        ) {
            let words = index_words(n);
            let nnz = raw.len() / words;
            // Mask every index into range.
            let mut idx: Vec<u64> = raw[..nnz * words].to_vec();
            for k in 0..nnz {
                for (i, w) in idx[k * words..(k + 1) * words].iter_mut().enumerate() {
                    let lo = i as u32 * 64;
                    if lo + 64 > n { *w = if lo >= n { 0 } else { *w & ((1u64 << (n - lo)) - 1) }; }
                }
            }
            // Drop duplicates.
            let mut seen = std::collections::HashSet::new();
            let mut uniq = Vec::new();
            for k in 0..nnz {
                let w = idx[k * words..(k + 1) * words].to_vec();
                if seen.insert(w.clone()) { uniq.extend(w); }
            }
            let m = uniq.len() / words;
            let vals: Vec<u8> = (0..m).flat_map(|k| [(k as f64).to_le_bytes(), 0.5f64.to_le_bytes()].concat()).collect();
            let (si, sv) = prepare_wide(&WideSparseInput { n_qubits: n, dtype: DType::Complex128, indices: &uniq, values: &vals }).unwrap();
            let mut stream: Vec<u8> = si.iter().flat_map(|w| w.to_le_bytes()).collect();
            stream.extend_from_slice(&sv);
            let back = decode_wide(&stream, m as u64, 16, n).unwrap();
            prop_assert_eq!(&back.indices, &si);
            prop_assert_eq!(&back.values, &sv);
            for k in 1..m {
                prop_assert_eq!(cmp_wide(back.basis_index(k - 1), back.basis_index(k)), Ordering::Less);
            }
        }

        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300), nnz in 0u64..40, dim in 1u64..1000) {
            let _ = decode(&b, nnz, 16, dim);
            let _ = decode(&b, u64::MAX / 3, 16, dim);
        }

        #[test]
        fn prepare_then_decode_round_trips(mut idx in proptest::collection::btree_set(0u64..(1 << 20), 0..50)) {
            let idx: Vec<u64> = std::mem::take(&mut idx).into_iter().rev().collect();
            let vals: Vec<u8> = idx.iter().flat_map(|&i| [(i as f64).to_le_bytes(), 1.5f64.to_le_bytes()].concat()).collect();
            let (si, sv) = prepare(&SparseInput { n_qubits: 20, dtype: DType::Complex128, indices: &idx, values: &vals }).unwrap();
            let mut stream: Vec<u8> = si.iter().flat_map(|i| i.to_le_bytes()).collect();
            stream.extend_from_slice(&sv);
            let (di, dv) = decode(&stream, si.len() as u64, 16, 1 << 20).unwrap();
            prop_assert_eq!(di, si);
            prop_assert_eq!(dv, sv);
        }
    }

    #[test]
    fn wide_bad_input_is_refused() {
        let v = [0u8; 32];
        let p = |idx: &[u64], n| {
            prepare_wide(&WideSparseInput {
                n_qubits: n,
                dtype: DType::Complex128,
                indices: idx,
                values: &v[..idx.len() / index_words(n) * 16],
            })
        };
        assert!(p(&[1, 0, 1, 0], 100).is_err(), "duplicate");
        assert!(p(&[0, 1 << 36], 100).is_err(), "bit 100 is out of range");
        assert!(p(&[0, 1 << 35], 100).is_ok());
        assert!(p(&[0, 0, 0], 100).is_err(), "not whole indices");
        assert!(p(&[0], 2000).is_err());
    }

    #[test]
    fn basis_keys() {
        assert_eq!(parse_basis_key("011", 3).unwrap(), 3);
        assert_eq!(parse_basis_key("5", 3).unwrap(), 5);
        assert_eq!(parse_basis_key("0b111", 3).unwrap(), 7);
        assert!(parse_basis_key("8", 3).is_err());
        assert!(parse_basis_key("x", 3).is_err());
        assert_eq!(
            parse_basis_key(&"1".repeat(50), 50).unwrap(),
            (1u64 << 50) - 1
        );
    }

    #[test]
    fn bad_input_is_refused() {
        let v = [0u8; 32];
        let p = |idx: &[u64], n| {
            prepare(&SparseInput {
                n_qubits: n,
                dtype: DType::Complex128,
                indices: idx,
                values: &v[..idx.len() * 16],
            })
        };
        assert!(p(&[1, 1], 3).is_err());
        assert!(p(&[9], 3).is_err());
        assert!(p(&[0], 0).is_err());
        let nan = [f64::NAN.to_le_bytes(), 0f64.to_le_bytes()].concat();
        assert!(
            prepare(&SparseInput {
                n_qubits: 2,
                dtype: DType::Complex128,
                indices: &[0],
                values: &nan
            })
            .is_err()
        );
    }
}
