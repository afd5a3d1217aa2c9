//! The sparse JSON file `put` reads and `get` writes:
//! `{"n_qubits": 50, "dtype": "complex128", "amplitudes": {"0": [0.7071, 0.0], "0b11": [..]}}`.
//! Keys are decimal indices, `0b` binary, or Qiskit-style bit strings of `n_qubits` characters.

use anyhow::{Context, Result, bail};
use qstore::state::sparse::parse_basis_key;
use qstore::{DType, SparseInput, StateEntry};
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

/// Write a state's non-zero entries as a sparse JSON file (decimal keys).
pub fn write(w: &mut dyn Write, e: &StateEntry, idx: &[u64], vals: &[u8]) -> Result<()> {
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
    for (k, i) in idx.iter().enumerate() {
        let [re, im] = e.dtype.amplitude(vals, k);
        let sep = if k == 0 { "" } else { ", " };
        write!(
            w,
            "{sep}\"{i}\": [{}, {}]",
            serde_json::to_string(&re)?,
            serde_json::to_string(&im)?
        )?;
    }
    writeln!(w, "}}}}")?;
    Ok(())
}
