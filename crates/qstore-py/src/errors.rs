//! Engine errors as Python exceptions of the `qstore.errors` hierarchy (defined in Python so
//! that classes can also derive from `LookupError`, `ValueError` and `OSError`).

use pyo3::prelude::*;
use pyo3::types::PyType;
use qstore::{Error, ErrorCategory};

/// The `qstore.errors` class for an engine error.
fn class_name(e: &Error) -> &'static str {
    match e.category() {
        ErrorCategory::NotFound => "NotFound",
        ErrorCategory::Conflict => "Conflict",
        ErrorCategory::Corrupt => "Corrupt",
        ErrorCategory::InvalidInput => "InvalidState",
        ErrorCategory::Io => "StorageError",
        ErrorCategory::QuotaExceeded => "QuotaExceeded",
        ErrorCategory::Unauthorised => "NotAuthorised",
        ErrorCategory::Unavailable => "Unavailable",
    }
}

/// Convert an engine error, keeping the engine's message.
pub fn to_py(e: Error) -> PyErr {
    let msg = e.to_string();
    let name = class_name(&e);
    Python::attach(|py| {
        let class = py
            .import("qstore.errors")
            .and_then(|m| m.getattr(name))
            .and_then(|c| c.cast_into::<PyType>().map_err(PyErr::from));
        match class {
            Ok(c) => PyErr::from_type(c, msg),
            Err(import_err) => import_err,
        }
    })
}

/// `Result` of the engine into `PyResult`.
pub trait IntoPyResult<T> {
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPyResult<T> for qstore::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}

/// A `qstore.errors.InvalidState` raised by this layer itself.
pub fn invalid(msg: impl Into<String>) -> PyErr {
    to_py(Error::InvalidArgument(msg.into()))
}
