//! The sparse layout of a state vector: `nnz` little-endian u64 basis indices, strictly
//! increasing and below 2^n, followed by the `nnz` amplitudes. [`SparseInput`] is what a
//! caller hands in (any order), [`prepare`] validates and sorts it, [`decode`] checks stored
//! bytes, and [`parse_basis_key`] reads `"5"`, `"0b101"` or Qiskit-style bit strings (`"101"`).

use super::dtype::DType;
use crate::error::{Error, Result};
use crate::format::tree::MAX_QUBITS;

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

/// Validate a sparse input and return its indices and values sorted by index.
pub fn prepare(input: &SparseInput<'_>) -> Result<(Vec<u64>, Vec<u8>)> {
    let item = input.dtype.item_size();
    if !input.dtype.is_complex() {
        return Err(Error::invalid_state(format!(
            "sparse amplitudes must be complex64 or complex128, got {}",
            input.dtype
        )));
    }
    if input.n_qubits == 0 || input.n_qubits > MAX_QUBITS {
        return Err(Error::invalid_state(format!(
            "a sparse state vector has 1..={MAX_QUBITS} qubits, got {}",
            input.n_qubits
        )));
    }
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

/// Parse a basis-state key: a decimal index, `0b`-prefixed binary, or a bit string of exactly
/// `n_qubits` characters written Qiskit-style (leftmost character = highest qubit).
pub fn parse_basis_key(key: &str, n_qubits: u32) -> Result<u64> {
    let bad = |why: &str| Error::invalid_state(format!("basis key {key:?}: {why}"));
    let value = if let Some(b) = key.strip_prefix("0b") {
        u64::from_str_radix(b, 2).map_err(|_| bad("not a binary number"))?
    } else if key.len() == n_qubits as usize
        && key.len() > 1
        && key.bytes().all(|c| c == b'0' || c == b'1')
    {
        u64::from_str_radix(key, 2).map_err(|_| bad("not a bit string"))?
    } else {
        key.parse::<u64>()
            .map_err(|_| bad("not an index or a bit string"))?
    };
    if n_qubits < 64 && value >> n_qubits != 0 {
        return Err(bad(&format!("out of range for {n_qubits} qubits")));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
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
