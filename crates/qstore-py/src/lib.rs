//! `qstore._native`: the thin PyO3 layer between the qstore engine and the pure-Python
//! package in `python/qstore`.
//!
//! This layer moves bytes, not NumPy semantics: the Python side turns arrays into C-contiguous
//! `uint8` views of the caller's own buffer (writes) or of a freshly allocated NumPy array
//! (reads), and this side hands those buffers to the engine without copying. Every call that
//! does I/O releases the GIL (`Python::detach`); locks of this layer are only taken with the
//! GIL released, so a thread waiting for one never blocks the interpreter.
//!
//! Modules: [`errors`] (engine errors to the `qstore.errors` hierarchy), [`convert`]
//! (entries, commits and reports to Python objects), [`repository`], [`transaction`],
//! [`scratch`], [`remote`] (clone, push, pull, drain).

mod convert;
mod errors;
mod remote;
mod repository;
mod scratch;
mod transaction;

use pyo3::prelude::*;

/// Upgrade the repository at `address` to the current format in place; report as JSON.
#[pyfunction]
fn upgrade(py: Python<'_>, address: &str) -> PyResult<String> {
    use errors::IntoPyResult;
    convert::json(
        &py.detach(|| qstore::Repository::upgrade(address))
            .py_err()?,
    )
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    qstore_cluster::register();
    m.add_function(wrap_pyfunction!(upgrade, m)?)?;
    m.add_function(wrap_pyfunction!(remote::clone, m)?)?;
    m.add_function(wrap_pyfunction!(remote::push, m)?)?;
    m.add_function(wrap_pyfunction!(remote::pull, m)?)?;
    m.add_function(wrap_pyfunction!(remote::remotes, m)?)?;
    m.add_function(wrap_pyfunction!(remote::add_remote, m)?)?;
    m.add_function(wrap_pyfunction!(remote::remove_remote, m)?)?;
    m.add_function(wrap_pyfunction!(remote::drain_to, m)?)?;
    m.add_class::<remote::NativeDrain>()?;
    m.add_class::<repository::NativeRepository>()?;
    m.add_class::<repository::NativePending>()?;
    m.add_class::<transaction::NativeTransaction>()?;
    m.add_class::<scratch::NativeScratch>()?;
    m.add_class::<scratch::NativeHandle>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
