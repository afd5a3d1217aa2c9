//! `NativeScratch` and `NativeHandle`: a scratch space and reference-counted handles to the
//! states in it. Closing the space (or dropping it) removes everything it holds; a handle
//! released from Python drops its engine handle at once.

use crate::convert::{dense_put, entry_dict, json, slice};
use crate::errors::{IntoPyResult, invalid};
use crate::repository::{SparseArrays, read_into, read_sparse};
use numpy::PyArray1;
use pyo3::prelude::*;
use pyo3::types::PyDict;
use qstore::{Error, Scratch, StateHandle};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

/// A scratch space; `close` removes it.
#[pyclass(module = "qstore._native", frozen)]
pub struct NativeScratch {
    scratch: Arc<Mutex<Option<Scratch>>>,
    id: String,
}

impl NativeScratch {
    pub fn new(s: Scratch) -> Self {
        NativeScratch {
            id: s.id().to_string(),
            scratch: Arc::new(Mutex::new(Some(s))),
        }
    }
}

fn closed() -> Error {
    Error::InvalidArgument("the scratch space has been closed".into())
}

#[pymethods]
impl NativeScratch {
    #[getter]
    fn id(&self) -> &str {
        &self.id
    }

    /// Store a dense array (1-D uint8 view of the caller's buffer); returns a handle.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (data, dtype, shape, kind, dense, tags, lossy=None))]
    fn put(
        &self,
        py: Python<'_>,
        data: &Bound<'_, PyArray1<u8>>,
        dtype: &str,
        shape: Vec<u64>,
        kind: &str,
        dense: bool,
        tags: BTreeMap<String, String>,
        lossy: Option<&str>,
    ) -> PyResult<NativeHandle> {
        let (info, opts, ro) = dense_put(data, dtype, shape, kind, dense, tags, lossy)?;
        let bytes = slice(&ro, "input buffer")?;
        let h = py
            .detach(|| {
                let g = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
                g.as_ref().ok_or_else(closed)?.put(&info, bytes, &opts)
            })
            .py_err()?;
        Ok(NativeHandle {
            handle: Mutex::new(Some(h)),
        })
    }

    /// Memory and disk use, as JSON.
    fn usage(&self, py: Python<'_>) -> PyResult<String> {
        let u = py
            .detach(|| {
                let g = self.scratch.lock().unwrap_or_else(|e| e.into_inner());
                g.as_ref().map(|s| s.usage()).ok_or_else(closed)
            })
            .py_err()?;
        json(&u)
    }

    /// Remove the space and everything in it (idempotent). Pinned states go too.
    fn close(&self, py: Python<'_>) {
        py.detach(|| {
            drop(
                self.scratch
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take(),
            )
        })
    }

    fn is_open(&self, py: Python<'_>) -> bool {
        py.detach(|| {
            self.scratch
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_some()
        })
    }
}

/// A handle to a state in a scratch space.
#[pyclass(module = "qstore._native", frozen)]
pub struct NativeHandle {
    handle: Mutex<Option<StateHandle>>,
}

impl NativeHandle {
    /// A clone of the engine handle (keeps the state alive while it is used).
    pub fn handle(&self) -> PyResult<StateHandle> {
        self.handle
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| invalid("this scratch handle has been released"))
    }
}

#[pymethods]
impl NativeHandle {
    fn info<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let h = self.handle()?;
        let e = py.detach(|| h.entry()).py_err()?;
        entry_dict(py, "(scratch)", &e)
    }

    fn check_materialise(&self, py: Python<'_>) -> PyResult<u64> {
        let h = self.handle()?;
        py.detach(|| h.reader()?.check_materialise()).py_err()
    }

    fn read_into(
        &self,
        py: Python<'_>,
        start: u64,
        stop: u64,
        out: &Bound<'_, PyArray1<u8>>,
    ) -> PyResult<()> {
        let h = self.handle()?;
        read_into(py, || h.reader(), start, stop, out)
    }

    fn read_sparse<'py>(&self, py: Python<'py>) -> PyResult<SparseArrays<'py>> {
        let h = self.handle()?;
        read_sparse(py, || h.reader())
    }

    fn pin(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.handle()?;
        py.detach(|| h.pin()).py_err()
    }

    fn unpin(&self, py: Python<'_>) -> PyResult<()> {
        let h = self.handle()?;
        py.detach(|| h.unpin()).py_err()
    }

    fn is_pinned(&self) -> PyResult<bool> {
        Ok(self.handle()?.is_pinned())
    }

    /// Drop this handle now (idempotent); an unpinned state with no other handle is freed.
    fn release(&self, py: Python<'_>) {
        py.detach(|| drop(self.handle.lock().unwrap_or_else(|e| e.into_inner()).take()))
    }

    /// A second handle to the same state.
    fn clone_handle(&self) -> PyResult<NativeHandle> {
        Ok(NativeHandle {
            handle: Mutex::new(Some(self.handle()?)),
        })
    }
}
