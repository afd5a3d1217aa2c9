//! The sparse JSON file `put` reads and `get` writes:
//! `{"n_qubits": 50, "dtype": "complex128", "amplitudes": {"0": [0.7071, 0.0], "0b11": [..]}}`.
//! Keys are decimal indices, `0b` binary, or Qiskit-style bit strings of `n_qubits` characters,
//! for states of up to 1,024 qubits.

use anyhow::{Context, Result, bail};
use qstore::state::sparse::{basis_key_decimal, parse_basis_key_wide};
use qstore::{DType, StateEntry, Transaction, WideSparse, WideSparseInput};
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

/// A parsed sparse state: `index_words(n_qubits)` words per index.
pub struct Sparse {
    n_qubits: u32,
    dtype: DType,
    indices: Vec<u64>,
    values: Vec<u8>,
}

impl Sparse {
    /// Store it at `path` in `tx`.
    pub fn put(
        &self,
        tx: &mut Transaction,
        path: &str,
        opts: &qstore::PutOptions,
    ) -> qstore::Result<StateEntry> {
        let input = WideSparseInput {
            n_qubits: self.n_qubits,
            dtype: self.dtype,
            indices: &self.indices,
            values: &self.values,
        };
        if self.n_qubits <= qstore::format::tree::MAX_QUBITS {
            tx.put_sparse(
                path,
                &qstore::SparseInput {
                    n_qubits: input.n_qubits,
                    dtype: input.dtype,
                    indices: input.indices,
                    values: input.values,
                },
                opts,
            )
        } else {
            tx.put_sparse_wide(path, &input, opts)
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
        indices.extend(parse_basis_key_wide(k, f.n_qubits)?);
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
            basis_key_decimal(s.basis_index(k)),
            serde_json::to_string(&re)?,
            serde_json::to_string(&im)?
        )?;
    }
    writeln!(w, "}}}}")?;
    Ok(())
}
