//! `NativeTransaction`: puts, deletes and copies on one branch, committed atomically. The
//! engine transaction sits behind a mutex that is only locked with the GIL released.

use crate::convert::{dense_put, dtype, entry_dict, json, put_options, readonly, slice};
use crate::errors::IntoPyResult;
use crate::scratch::NativeHandle;
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use qstore::{CommitOptions, Error, SparseInput, StateEntry, Transaction};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// An open transaction; `commit` or `abort` ends it.
#[pyclass(module = "qstore._native", frozen)]
pub struct NativeTransaction {
    tx: Mutex<Option<Transaction>>,
}

impl NativeTransaction {
    pub fn new(tx: Transaction) -> Self {
        NativeTransaction {
            tx: Mutex::new(Some(tx)),
        }
    }

    /// Run `f` on the open transaction with the GIL released.
    fn with<T: Send>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Transaction) -> qstore::Result<T> + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            let mut g = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            match g.as_mut() {
                Some(tx) => f(tx),
                None => Err(Error::InvalidArgument(
                    "the transaction has already been committed or aborted".into(),
                )),
            }
        })
        .py_err()
    }
}

fn entry_out<'py>(py: Python<'py>, path: &str, e: &StateEntry) -> PyResult<Bound<'py, PyDict>> {
    entry_dict(py, path, e)
}

#[pymethods]
impl NativeTransaction {
    /// Store a dense array given as a 1-D uint8 view of the caller's buffer (no copy).
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, data, dtype, shape, kind, dense, tags, lossy=None))]
    fn put<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        data: &Bound<'py, PyArray1<u8>>,
        dtype: &str,
        shape: Vec<u64>,
        kind: &str,
        dense: bool,
        tags: BTreeMap<String, String>,
        lossy: Option<&str>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let (info, opts, ro) = dense_put(data, dtype, shape, kind, dense, tags, lossy)?;
        let bytes = slice(&ro, "input buffer")?;
        let e = self.with(py, |tx| tx.put(path, &info, bytes, &opts))?;
        entry_out(py, path, &e)
    }

    /// Store a sparse state vector: sorted or unsorted unique basis indices and their
    /// amplitudes (a 1-D uint8 view of a complex array). Beyond 64 qubits each index is
    /// `ceil(n_qubits / 64)` little-endian words.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (path, n_qubits, indices, values, dtype, tags))]
    fn put_sparse<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        n_qubits: u32,
        indices: &Bound<'py, PyArray1<u64>>,
        values: &Bound<'py, PyArray1<u8>>,
        dtype: &str,
        tags: BTreeMap<String, String>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dt = self::dtype(dtype)?;
        let opts = put_options("statevector", false, tags, None)?;
        let (ri, rv) = (readonly(indices, "indices")?, readonly(values, "values")?);
        let (idx, vals) = (slice(&ri, "indices")?, slice(&rv, "values")?);
        let e = if n_qubits > 64 {
            let input = qstore::WideSparseInput {
                n_qubits,
                dtype: dt,
                indices: idx,
                values: vals,
            };
            self.with(py, |tx| tx.put_sparse_wide(path, &input, &opts))?
        } else {
            let input = SparseInput {
                n_qubits,
                dtype: dt,
                indices: idx,
                values: vals,
            };
            self.with(py, |tx| tx.put_sparse(path, &input, &opts))?
        };
        entry_out(py, path, &e)
    }

    /// Commit a scratch state under `path` without re-encoding it.
    fn put_from_scratch<'py>(
        &self,
        py: Python<'py>,
        path: &str,
        handle: &NativeHandle,
    ) -> PyResult<Bound<'py, PyDict>> {
        let h = handle.handle()?;
        let e = self.with(py, |tx| tx.put_from_scratch(path, &h))?;
        entry_out(py, path, &e)
    }

    /// Copy a stored state (no bytes are rewritten).
    fn copy<'py>(
        &self,
        py: Python<'py>,
        from_spec: &str,
        from_path: &str,
        to_path: &str,
    ) -> PyResult<Bound<'py, PyDict>> {
        let e = self.with(py, |tx| tx.copy(from_spec, from_path, to_path))?;
        entry_out(py, to_path, &e)
    }

    fn delete(&self, py: Python<'_>, path: &str) -> PyResult<()> {
        self.with(py, |tx| tx.delete(path))
    }

    /// Paths changed so far.
    fn changed_paths(&self, py: Python<'_>) -> PyResult<Vec<String>> {
        self.with(py, |tx| Ok(tx.changed_paths()))
    }

    /// Counters of every put so far, as JSON.
    fn stats(&self, py: Python<'_>) -> PyResult<String> {
        json(&self.with(py, |tx| Ok(tx.stats()))?)
    }

    /// The commit the transaction started from.
    fn base(&self, py: Python<'_>) -> PyResult<String> {
        self.with(py, |tx| Ok(tx.base().to_hex()))
    }

    /// Commit; returns the new commit id. The transaction is closed afterwards, also when the
    /// commit fails.
    fn commit(
        &self,
        py: Python<'_>,
        message: String,
        author: String,
        metadata: BTreeMap<String, String>,
    ) -> PyResult<String> {
        py.detach(|| {
            let tx = self
                .tx
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| {
                    Error::InvalidArgument(
                        "the transaction has already been committed or aborted".into(),
                    )
                })?;
            tx.commit(CommitOptions {
                message,
                author,
                metadata,
            })
        })
        .py_err()
        .map(|id| id.to_hex())
    }

    /// Drop every change (idempotent).
    fn abort(&self, py: Python<'_>) {
        py.detach(|| drop(self.tx.lock().unwrap_or_else(|e| e.into_inner()).take()))
    }

    /// True until committed or aborted.
    fn is_open(&self, py: Python<'_>) -> bool {
        py.detach(|| self.tx.lock().unwrap_or_else(|e| e.into_inner()).is_some())
    }
}
