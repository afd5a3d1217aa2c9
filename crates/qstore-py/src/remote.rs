//! Moving history between repositories from Python: clone, push, pull, named remotes, and
//! the background drain (`NativeDrain`). Reports go back as JSON.

use crate::convert::json;
use crate::errors::IntoPyResult;
use crate::repository::NativeRepository;
use pyo3::prelude::*;
use qstore::Repository;
use qstore::repo::{Drain, TransferOptions};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Copy the repository at `src` to a new repository at `dst` (its ref store `refs`, if the
/// address has none); returns the copy and the report as JSON.
#[pyfunction]
#[pyo3(signature = (src, dst, refs = None))]
pub fn clone(
    py: Python<'_>,
    src: &str,
    dst: &str,
    refs: Option<&str>,
) -> PyResult<(NativeRepository, String)> {
    let dst = qstore_cluster::with_refs(dst, refs);
    let (repo, report) = py
        .detach(|| Repository::open(src)?.clone_to(&dst, &TransferOptions::default()))
        .py_err()?;
    Ok((NativeRepository { repo }, json(&report)?))
}

fn exchange(
    py: Python<'_>,
    repo: &NativeRepository,
    pull: bool,
    remote: &str,
    refs: Vec<String>,
    force: bool,
) -> PyResult<String> {
    let opts = TransferOptions {
        force,
        progress: None,
    };
    let r = py.detach(|| {
        if pull {
            repo.repo.pull(remote, &refs, &opts)
        } else {
            repo.repo.push(remote, &refs, &opts)
        }
    });
    json(&r.py_err()?)
}

/// Send `refs` (all branches and tags when empty) from `repo` to `remote`; report as JSON.
#[pyfunction]
#[pyo3(signature = (repo, remote, refs, force = false))]
pub fn push(
    py: Python<'_>,
    repo: &NativeRepository,
    remote: &str,
    refs: Vec<String>,
    force: bool,
) -> PyResult<String> {
    exchange(py, repo, false, remote, refs, force)
}

/// Fetch `refs` (all of the remote's branches and tags when empty) from `remote` into
/// `repo`; report as JSON.
#[pyfunction]
#[pyo3(signature = (repo, remote, refs, force = false))]
pub fn pull(
    py: Python<'_>,
    repo: &NativeRepository,
    remote: &str,
    refs: Vec<String>,
    force: bool,
) -> PyResult<String> {
    exchange(py, repo, true, remote, refs, force)
}

/// The named remotes of `repo`.
#[pyfunction]
pub fn remotes(py: Python<'_>, repo: &NativeRepository) -> PyResult<BTreeMap<String, String>> {
    py.detach(|| repo.repo.remotes()).py_err()
}

/// Record remote `name` at `address` in `repo`.
#[pyfunction]
#[pyo3(signature = (repo, name, address, replace = false))]
pub fn add_remote(
    py: Python<'_>,
    repo: &NativeRepository,
    name: &str,
    address: &str,
    replace: bool,
) -> PyResult<()> {
    py.detach(|| repo.repo.add_remote(name, address, replace))
        .py_err()
}

/// Forget remote `name` of `repo`.
#[pyfunction]
pub fn remove_remote(py: Python<'_>, repo: &NativeRepository, name: &str) -> PyResult<()> {
    py.detach(|| repo.repo.remove_remote(name)).py_err()
}

/// Start pushing `branch` of `repo` to `remote` (opened, and created like `repo` when
/// missing, by the drain, which keeps trying while it is unreachable) in the background, at
/// least every `every_s` seconds.
#[pyfunction]
pub fn drain_to(
    _py: Python<'_>,
    repo: &NativeRepository,
    remote: &str,
    branch: &str,
    every_s: f64,
) -> PyResult<NativeDrain> {
    let every = Duration::from_secs_f64(every_s.max(0.01));
    let drain = Drain::start_to(&repo.repo, remote, branch, every).py_err()?;
    Ok(NativeDrain {
        drain: Mutex::new(Some(drain)),
    })
}

/// A branch pushed to a remote in the background.
#[pyclass(module = "qstore._native", frozen)]
pub struct NativeDrain {
    drain: Mutex<Option<Drain>>,
}

#[pymethods]
impl NativeDrain {
    /// Push soon (the branch moved).
    fn wake(&self, py: Python<'_>) {
        py.detach(|| {
            if let Some(d) = self
                .drain
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                d.wake();
            }
        })
    }

    /// Make a last push and stop; the report as JSON. A second call raises.
    fn finish(&self, py: Python<'_>) -> PyResult<String> {
        let report = py
            .detach(|| {
                let d = self
                    .drain
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .take()
                    .ok_or_else(|| {
                        qstore::Error::InvalidArgument("this drain was already finished".into())
                    })?;
                Ok::<_, qstore::Error>(d.finish())
            })
            .py_err()?;
        json(&report)
    }
}
