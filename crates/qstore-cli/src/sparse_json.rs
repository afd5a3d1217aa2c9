//! The sparse JSON file `put` reads and `get` writes:
//! `{"n_qubits": 50, "dtype": "complex128", "amplitudes": {"0": [0.7071, 0.0], "0b11": [..]}}`.
//! Keys are decimal indices, `0b` binary, or Qiskit-style bit strings of `n_qubits` characters.

use anyhow::{Context, Result, bail};
use qstore::state::sparse::parse_basis_key;
use qstore::{DType, SparseInput, StateEntry, WideSparse};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

#[derive(Deserialize, Serialize)]
struct SparseFile {
    n_qubits: u32,
    #[serde(default = "default_dtype")]
    dtype: String,
    amplitudes: BTreeMap<String, [f64; 2]>,
}

fn default_dtype() -> String {
    "complex128".into()
}

/// A parsed sparse state.
pub struct Sparse {
    n_qubits: u32,
    dtype: DType,
    indices: Vec<u64>,
    values: Vec<u8>,
}

impl Sparse {
    /// The engine's view of it.
    pub fn as_input(&self) -> SparseInput<'_> {
        SparseInput {
            n_qubits: self.n_qubits,
            dtype: self.dtype,
            indices: &self.indices,
            values: &self.values,
        }
    }
}

/// Read a sparse JSON file.
pub fn read(path: &Path) -> Result<Sparse> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let f: SparseFile = serde_json::from_slice(&text).map_err(|e| {
        qstore::Error::InvalidArgument(format!("{}: not a sparse state file: {e}", path.display()))
    })?;
    let dtype = match DType::from_name(&f.dtype) {
        Some(d @ (DType::Complex64 | DType::Complex128)) => d,
        _ => bail!(qstore::Error::InvalidArgument(format!(
            "sparse dtype must be complex64 or complex128, got {:?}",
            f.dtype
        ))),
    };
    let mut indices = Vec::with_capacity(f.amplitudes.len());
    let mut values = Vec::with_capacity(f.amplitudes.len() * dtype.item_size());
    for (k, [re, im]) in &f.amplitudes {
        indices.push(parse_basis_key(k, f.n_qubits)?);
        if dtype == DType::Complex128 {
            values.extend_from_slice(&re.to_le_bytes());
            values.extend_from_slice(&im.to_le_bytes());
        } else {
            values.extend_from_slice(&(*re as f32).to_le_bytes());
            values.extend_from_slice(&(*im as f32).to_le_bytes());
        }
    }
    Ok(Sparse {
        n_qubits: f.n_qubits,
        dtype,
        indices,
        values,
    })
}

/// Decimal digits of a multi-word number (least significant word first).
fn to_decimal(words: &[u64]) -> String {
    let mut w: Vec<u64> = words.to_vec();
    while w.len() > 1 && w.last() == Some(&0) {
        w.pop();
    }
    if w.len() == 1 {
        return w[0].to_string();
    }
    // Repeated division by 10^19 (the largest power of ten in a u64).
    const BASE: u64 = 10_000_000_000_000_000_000;
    let mut groups = Vec::new();
    while w.iter().any(|x| *x != 0) {
        let mut rem: u128 = 0;
        for x in w.iter_mut().rev() {
            let cur = (rem << 64) | u128::from(*x);
            *x = (cur / u128::from(BASE)) as u64;
            rem = cur % u128::from(BASE);
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

/// Write a state's non-zero entries as a sparse JSON file (decimal keys, of any width).
pub fn write(w: &mut dyn Write, e: &StateEntry, s: &WideSparse) -> Result<()> {
    let Some(n) = e
        .qubits()
        .filter(|_| e.kind == qstore::StateKind::StateVector)
    else {
        bail!(qstore::Error::InvalidArgument(
            "sparse output is for state vectors".into()
        ));
    };
    write!(
        w,
        "{{\"n_qubits\": {n}, \"dtype\": \"{}\", \"amplitudes\": {{",
        e.dtype.name()
    )?;
    for k in 0..s.len() {
        let [re, im] = e.dtype.amplitude(&s.values, k);
        let sep = if k == 0 { "" } else { ", " };
        write!(
            w,
            "{sep}\"{}\": [{}, {}]",
            to_decimal(s.basis_index(k)),
            serde_json::to_string(&re)?,
            serde_json::to_string(&im)?
        )?;
    }
    writeln!(w, "}}}}")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::to_decimal;

    #[test]
    fn decimal_keys_of_any_width() {
        assert_eq!(to_decimal(&[0, 0]), "0");
        assert_eq!(to_decimal(&[42]), "42");
        assert_eq!(to_decimal(&[0, 1]), "18446744073709551616");
        assert_eq!(to_decimal(&[u64::MAX, u64::MAX]), u128::MAX.to_string());
        assert_eq!(to_decimal(&[5, 0, 0, 0]), "5");
        assert_eq!(
            to_decimal(&[0, 0, 1]),
            "340282366920938463463374607431768211456"
        );
    }
}
