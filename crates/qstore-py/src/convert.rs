//! Engine values as Python objects: state entries and commits as dicts (the Python layer
//! wraps them in dataclasses), option parsing, and reports as JSON text.

use crate::errors::invalid;
use numpy::{Element, PyArray1, PyArrayMethods, PyReadonlyArray1};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use qstore::{ArrayInfo, Commit, DType, EncodingChoice, KindRequest, ObjectId, StateEntry};
use std::collections::BTreeMap;

/// A state entry as a dict: path, kind, dtype, shape, encoding, nnz, norm, tags, ...
pub fn entry_dict<'py>(
    py: Python<'py>,
    path: &str,
    e: &StateEntry,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("path", path)?;
    d.set_item("kind", e.kind.name())?;
    d.set_item("dtype", e.dtype.name())?;
    d.set_item("shape", e.shape.clone())?;
    d.set_item("qubits", e.qubits())?;
    d.set_item("encoding", e.encoding.name())?;
    d.set_item("nnz", e.nnz)?;
    d.set_item("norm", e.norm)?;
    d.set_item("stream_bytes", e.stream_len)?;
    if e.is_wide() {
        // 2^k bytes does not fit a u128: make the exact Python int.
        let k = e.qubits + e.dtype.item_size().trailing_zeros();
        d.set_item(
            "dense_bytes",
            1u32.into_pyobject(py)?.call_method1("__lshift__", (k,))?,
        )?;
    } else {
        d.set_item("dense_bytes", e.dense_bytes())?;
    }
    d.set_item("manifest", e.manifest.to_hex())?;
    d.set_item("tags", e.tags.clone())?;
    match &e.lossy {
        Some(l) => {
            d.set_item("lossy", l.mode.clone())?;
            d.set_item("fidelity", l.fidelity)?;
        }
        None => {
            d.set_item("lossy", py.None())?;
            d.set_item("fidelity", 1.0)?;
        }
    }
    Ok(d)
}

/// A commit as a dict: id, parents, message, author, time_ms, metadata, tree.
pub fn commit_dict<'py>(
    py: Python<'py>,
    id: &ObjectId,
    c: &Commit,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("id", id.to_hex())?;
    d.set_item(
        "parents",
        c.parents.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
    )?;
    d.set_item("message", &c.message)?;
    d.set_item("author", &c.author)?;
    d.set_item("time_ms", c.time_ms)?;
    d.set_item("metadata", c.metadata.clone())?;
    d.set_item("tree", c.tree.to_hex())?;
    Ok(d)
}

/// A report as JSON text (`json.loads` on the Python side).
pub fn json<T: serde::Serialize>(v: &T) -> PyResult<String> {
    serde_json::to_string(v).map_err(|e| invalid(format!("cannot encode report: {e}")))
}

/// Dtype by its NumPy name (`complex128`, `float32`, ...).
pub fn dtype(name: &str) -> PyResult<DType> {
    DType::from_name(name).ok_or_else(|| {
        invalid(format!(
            "dtype {name} is not supported (complex64/128, float32/64, (u)int8-64, bool)"
        ))
    })
}

/// Array description from a dtype name and a shape.
pub fn array_info(dtype_name: &str, shape: Vec<u64>) -> PyResult<ArrayInfo> {
    Ok(ArrayInfo {
        dtype: dtype(dtype_name)?,
        shape,
    })
}

/// Put options from the Python arguments.
pub fn put_options(
    kind: &str,
    dense: bool,
    tags: BTreeMap<String, String>,
    lossy: Option<&str>,
) -> PyResult<qstore::PutOptions> {
    let lossy = lossy
        .map(|m| m.parse::<qstore::state::lossy::LossySpec>())
        .transpose()
        .map_err(|e| invalid(e.to_string()))?;
    let kind = match kind {
        "auto" => KindRequest::Auto,
        "statevector" => KindRequest::StateVector,
        "density_matrix" => KindRequest::DensityMatrix,
        "array" => KindRequest::Array,
        other => {
            return Err(invalid(format!(
                "kind {other:?} is not one of auto, statevector, density_matrix, array"
            )));
        }
    };
    Ok(qstore::PutOptions {
        kind,
        encoding: if dense {
            EncodingChoice::Dense
        } else {
            EncodingChoice::Auto
        },
        tags,
        progress: None,
        lossy,
        best_codecs: false,
    })
}

/// A read borrow of a 1-D NumPy array handed in by the Python layer (`what` names it in
/// errors); [`slice`] then gives its elements.
pub fn readonly<'py, T: Element>(
    a: &Bound<'py, PyArray1<T>>,
    what: &str,
) -> PyResult<PyReadonlyArray1<'py, T>> {
    a.try_readonly()
        .map_err(|e| invalid(format!("{what} cannot be read: {e}")))
}

/// The contiguous elements of a borrowed array.
pub fn slice<'a, T: Element>(ro: &'a PyReadonlyArray1<'_, T>, what: &str) -> PyResult<&'a [T]> {
    ro.as_slice()
        .map_err(|e| invalid(format!("{what} is not contiguous: {e}")))
}

/// What every dense put from Python takes: the array description, the put options, and a read
/// borrow of the caller's buffer (its bytes via [`slice`]).
pub fn dense_put<'py>(
    data: &Bound<'py, PyArray1<u8>>,
    dtype_name: &str,
    shape: Vec<u64>,
    kind: &str,
    dense: bool,
    tags: BTreeMap<String, String>,
    lossy: Option<&str>,
) -> PyResult<(ArrayInfo, qstore::PutOptions, PyReadonlyArray1<'py, u8>)> {
    Ok((
        array_info(dtype_name, shape)?,
        put_options(kind, dense, tags, lossy)?,
        readonly(data, "input buffer")?,
    ))
}
