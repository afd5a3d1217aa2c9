//! `NativeRepository`: one open repository (a cheap clone of the engine's `Repository`),
//! with reads into caller-provided NumPy buffers, listings, history, refs and maintenance.

use crate::convert::{commit_dict, dense_put, entry_dict, json, slice};
use crate::errors::{IntoPyResult, invalid};
use crate::scratch::NativeScratch;
use crate::transaction::NativeTransaction;
use numpy::{PyArray1, PyArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;
use qstore::{
    CommitOptions, GcOptions, PendingCommit, RefName, Repository, ScratchOptions, StateReader,
};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

/// Fill `out` (a 1-D `uint8` array) with elements `start..stop` of the reader's state, with
/// the GIL released.
pub fn read_into(
    py: Python<'_>,
    open: impl FnOnce() -> qstore::Result<StateReader> + Send,
    start: u64,
    stop: u64,
    out: &Bound<'_, PyArray1<u8>>,
) -> PyResult<()> {
    let mut rw = out
        .try_readwrite()
        .map_err(|e| invalid(format!("output buffer is not writable: {e}")))?;
    let buf = rw
        .as_slice_mut()
        .map_err(|e| invalid(format!("output buffer is not contiguous: {e}")))?;
    py.detach(|| {
        let mut r = open()?;
        let e = r.entry();
        if start > stop || stop > e.elements() {
            return Err(qstore::Error::InvalidArgument(format!(
                "element range {start}..{stop} is outside 0..{}",
                e.elements()
            )));
        }
        let need = (stop - start) * e.dtype.item_size() as u64;
        if need != buf.len() as u64 {
            return Err(qstore::Error::InvalidArgument(format!(
                "output buffer holds {} bytes, elements {start}..{stop} of {} need {need}",
                buf.len(),
                e.dtype
            )));
        }
        r.read_elements(start, stop, buf)
    })
    .py_err()
}

/// Basis index words, amplitude bytes and words per index of a sparse form.
pub type SparseArrays<'py> = (Bound<'py, PyArray1<u64>>, Bound<'py, PyArray1<u8>>, usize);

/// The sparse form as (index words, value bytes) NumPy arrays, moved without copying, and
/// the words per index (1 up to 64 qubits; states of up to 1,024 qubits have more).
pub fn read_sparse<'py>(
    py: Python<'py>,
    open: impl FnOnce() -> qstore::Result<StateReader> + Send,
) -> PyResult<SparseArrays<'py>> {
    let w = py.detach(|| open()?.read_sparse_wide()).py_err()?;
    Ok((
        PyArray1::from_vec(py, w.indices),
        PyArray1::from_vec(py, w.values),
        w.words,
    ))
}

/// An open repository.
#[pyclass(module = "qstore._native", frozen)]
pub struct NativeRepository {
    pub repo: Repository,
}

#[pymethods]
impl NativeRepository {
    /// Open the repository at `address` (`file:///path`, a plain path, `memory://name`, or
    /// `s3://BUCKET/PREFIX?...`, with its ref store `refs` if the address has none, or
    /// `https://HOST:PORT/NAME` of `qstore serve`, with `token` and `ca_cert` if given, else
    /// from the environment); with `create`, make it when missing (not for served ones).
    #[new]
    #[pyo3(signature = (address, create = true, refs = None, token = None, ca_cert = None))]
    fn new(
        py: Python<'_>,
        address: &str,
        create: bool,
        refs: Option<&str>,
        token: Option<String>,
        ca_cert: Option<std::path::PathBuf>,
    ) -> PyResult<Self> {
        let served = address.starts_with("https://") || address.starts_with("http://");
        if served && (token.is_some() || ca_cert.is_some()) {
            let opts = qstore_cluster::served::ClientOptions { token, ca_cert };
            let addr = address.to_string();
            let repo = py
                .detach(|| {
                    let b = qstore_cluster::served::connect(&addr, false, Some(opts))?;
                    let coord = b.coordination.ok_or_else(|| {
                        qstore::Error::BadAddress(format!("{addr}: no coordination"))
                    })?;
                    Repository::open_parts(&addr, b.storage, coord)
                })
                .py_err()?;
            return Ok(NativeRepository { repo });
        }
        let address = &qstore_cluster::with_refs(address, refs);
        let repo = py
            .detach(|| {
                if create && !served {
                    Repository::open_or_init(address)
                } else {
                    Repository::open(address)
                }
            })
            .py_err()?;
        Ok(NativeRepository { repo })
    }

    #[getter]
    fn address(&self) -> String {
        self.repo.address().to_string()
    }

    /// The entry of the state at `path` in `spec`, plus `commit`.
    fn info<'py>(&self, py: Python<'py>, spec: &str, path: &str) -> PyResult<Bound<'py, PyDict>> {
        let (commit, entry) = py.detach(|| self.repo.state(spec, path)).py_err()?;
        let d = entry_dict(py, path, &entry)?;
        d.set_item("commit", commit.to_hex())?;
        Ok(d)
    }

    /// Read elements `start..stop` (flat, C order) into `out`, a 1-D uint8 view.
    fn read_into(
        &self,
        py: Python<'_>,
        spec: &str,
        path: &str,
        start: u64,
        stop: u64,
        out: &Bound<'_, PyArray1<u8>>,
    ) -> PyResult<()> {
        read_into(py, || self.repo.reader(spec, path), start, stop, out)
    }

    /// The sparse form: (index words uint64, amplitude bytes uint8, words per index).
    fn read_sparse<'py>(
        &self,
        py: Python<'py>,
        spec: &str,
        path: &str,
    ) -> PyResult<SparseArrays<'py>> {
        read_sparse(py, || self.repo.reader(spec, path))
    }

    /// The `k` most probable basis states, streamed: [(index, probability)].
    fn top_k(&self, py: Python<'_>, spec: &str, path: &str, k: usize) -> PyResult<Vec<(u64, f64)>> {
        py.detach(|| self.repo.reader(spec, path)?.top_k(k))
            .py_err()
    }

    /// Marginal distribution of `qubits` (first listed = lowest bit of the outcome index).
    fn marginals(
        &self,
        py: Python<'_>,
        spec: &str,
        path: &str,
        qubits: Vec<u32>,
    ) -> PyResult<Vec<f64>> {
        py.detach(|| self.repo.reader(spec, path)?.marginals(&qubits))
            .py_err()
    }

    /// Squared norm (state vector), trace (density matrix), streamed.
    fn norm(&self, py: Python<'_>, spec: &str, path: &str) -> PyResult<f64> {
        py.detach(|| self.repo.reader(spec, path)?.norm()).py_err()
    }

    /// |<a|b>|^2 of two state vectors (None for other kinds), streamed.
    fn fidelity(
        &self,
        py: Python<'_>,
        spec_a: &str,
        path_a: &str,
        spec_b: &str,
        path_b: &str,
    ) -> PyResult<Option<f64>> {
        py.detach(|| {
            let mut a = self.repo.reader(spec_a, path_a)?;
            let mut b = self.repo.reader(spec_b, path_b)?;
            StateReader::fidelity(&mut a, &mut b)
        })
        .py_err()
    }

    /// Entries of every state under `prefix` (or all) in `spec`.
    #[pyo3(signature = (spec, prefix = None))]
    fn list<'py>(
        &self,
        py: Python<'py>,
        spec: &str,
        prefix: Option<&str>,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let states = py
            .detach(|| {
                let c = self.repo.resolve(spec)?;
                self.repo.list_states(&c, prefix)
            })
            .py_err()?;
        states.iter().map(|(p, e)| entry_dict(py, p, e)).collect()
    }

    /// Commits from `spec` back along first parents, newest first.
    fn log<'py>(
        &self,
        py: Python<'py>,
        spec: &str,
        limit: usize,
    ) -> PyResult<Vec<Bound<'py, PyDict>>> {
        let log = py.detach(|| self.repo.log(spec, limit)).py_err()?;
        log.iter().map(|(id, c)| commit_dict(py, id, c)).collect()
    }

    /// The commit a branch, tag, commit id or unique prefix names.
    fn resolve(&self, py: Python<'_>, spec: &str) -> PyResult<String> {
        py.detach(|| self.repo.resolve(spec))
            .py_err()
            .map(|id| id.to_hex())
    }

    /// Every ref: [(kind, name, commit)], kind "branch" or "tag".
    fn refs(&self, py: Python<'_>) -> PyResult<Vec<(String, String, String)>> {
        let refs = py.detach(|| self.repo.refs()).py_err()?;
        Ok(refs
            .into_iter()
            .map(|(r, id)| {
                let kind = match r {
                    RefName::Branch(_) => "branch",
                    RefName::Tag(_) => "tag",
                };
                (kind.to_string(), r.name().to_string(), id.to_hex())
            })
            .collect())
    }

    fn create_branch(&self, py: Python<'_>, name: &str, from: &str) -> PyResult<String> {
        py.detach(|| self.repo.create_branch(name, from))
            .py_err()
            .map(|id| id.to_hex())
    }

    fn create_tag(&self, py: Python<'_>, name: &str, target: &str) -> PyResult<String> {
        py.detach(|| self.repo.create_tag(name, target))
            .py_err()
            .map(|id| id.to_hex())
    }

    /// Delete branch or tag `name` (`kind` "branch" or "tag").
    fn delete_ref(&self, py: Python<'_>, kind: &str, name: &str) -> PyResult<()> {
        let r = match kind {
            "branch" => RefName::branch(name),
            "tag" => RefName::tag(name),
            other => return Err(invalid(format!("ref kind {other:?} is not branch or tag"))),
        }
        .py_err()?;
        py.detach(|| self.repo.delete_ref(&r)).py_err()
    }

    /// Changes from `a` to `b`, as JSON.
    fn diff(&self, py: Python<'_>, a: &str, b: &str) -> PyResult<String> {
        json(&py.detach(|| self.repo.diff(a, b)).py_err()?)
    }

    /// Repository statistics, as JSON (cache counters under "cache").
    fn stats(&self, py: Python<'_>) -> PyResult<String> {
        let s = py.detach(|| self.repo.stats()).py_err()?;
        let mut v = serde_json::to_value(&s)
            .map_err(|e| invalid(format!("cannot encode statistics: {e}")))?;
        v["cache"] = serde_json::to_value(self.repo.cache_stats())
            .map_err(|e| invalid(format!("cannot encode cache statistics: {e}")))?;
        json(&v)
    }

    fn set_cache_bytes(&self, bytes: u64) {
        self.repo.set_cache_bytes(bytes)
    }

    /// Empty the chunk cache (for cold-read measurements).
    fn clear_cache(&self) {
        self.repo.clear_cache()
    }

    /// Raise `TooLargeToMaterialise` (as `InvalidState`) when the dense form of the state is
    /// beyond the repository's limit; returns its bytes otherwise.
    fn check_materialise(&self, py: Python<'_>, spec: &str, path: &str) -> PyResult<u64> {
        py.detach(|| self.repo.reader(spec, path)?.check_materialise())
            .py_err()
    }

    /// Declare a state of `dtype`/`shape` written in `parts` parts for `path`; returns the
    /// upload id.
    fn begin_upload(
        &self,
        py: Python<'_>,
        path: &str,
        dtype: &str,
        shape: Vec<u64>,
        kind: &str,
        parts: u32,
    ) -> PyResult<String> {
        let info = crate::convert::array_info(dtype, shape)?;
        let opts = crate::convert::put_options(kind, false, BTreeMap::new(), None)?;
        py.detach(|| self.repo.begin_upload(path, &info, opts.kind, parts))
            .py_err()
    }

    /// Store part `k` of upload `id` from a 1-D uint8 view of the caller's buffer.
    fn put_part(
        &self,
        py: Python<'_>,
        id: &str,
        k: u32,
        data: &Bound<'_, PyArray1<u8>>,
    ) -> PyResult<()> {
        let ro = crate::convert::readonly(data, "part buffer")?;
        let bytes = slice(&ro, "part buffer")?;
        py.detach(|| self.repo.put_part(id, k, bytes)).py_err()?;
        Ok(())
    }

    /// Commit upload `id` on `branch`; returns the commit id.
    fn complete_upload(
        &self,
        py: Python<'_>,
        id: &str,
        branch: &str,
        message: &str,
        author: &str,
    ) -> PyResult<String> {
        let opts = qstore::CommitOptions {
            message: message.into(),
            author: author.into(),
            metadata: Default::default(),
        };
        py.detach(|| self.repo.complete_upload(id, branch, opts))
            .py_err()
            .map(|c| c.to_hex())
    }

    /// Give up upload `id`.
    fn abort_upload(&self, py: Python<'_>, id: &str) -> PyResult<()> {
        py.detach(|| self.repo.abort_upload(id)).py_err()
    }

    /// Every upload, as JSON.
    fn uploads(&self, py: Python<'_>) -> PyResult<String> {
        json(&py.detach(|| self.repo.uploads()).py_err()?)
    }

    /// Collect garbage; report as JSON.
    fn gc(&self, py: Python<'_>, grace_s: f64, dry_run: bool, threshold: f64) -> PyResult<String> {
        if !(grace_s >= 0.0 && grace_s.is_finite()) {
            return Err(invalid(format!(
                "grace must be a non-negative number of seconds, got {grace_s}"
            )));
        }
        let opts = GcOptions {
            grace: Duration::from_secs_f64(grace_s),
            dry_run,
            repack_threshold: threshold,
            ..Default::default()
        };
        json(&py.detach(|| self.repo.gc(&opts)).py_err()?)
    }

    /// Drop history of `branch` older than `older_than_s`; returns commits cut.
    fn expire(&self, py: Python<'_>, branch: &str, older_than_s: f64) -> PyResult<u64> {
        if !(older_than_s >= 0.0 && older_than_s.is_finite()) {
            return Err(invalid(format!(
                "older_than must be a non-negative number of seconds, got {older_than_s}"
            )));
        }
        py.detach(|| {
            self.repo
                .expire(branch, Duration::from_secs_f64(older_than_s))
        })
        .py_err()
    }

    /// Merge small packs now (`all`: every pack under the pack size target); report as JSON.
    #[pyo3(signature = (all, recompress=false))]
    fn repack(&self, py: Python<'_>, all: bool, recompress: bool) -> PyResult<String> {
        json(
            &py.detach(|| {
                if recompress {
                    self.repo.repack_recompress()
                } else {
                    self.repo.repack(all)
                }
            })
            .py_err()?,
        )
    }

    /// Check the repository; report as JSON.
    fn fsck(&self, py: Python<'_>, full: bool) -> PyResult<String> {
        json(&py.detach(|| self.repo.fsck(full)).py_err()?)
    }

    /// Start a transaction on `branch`.
    fn transaction(&self, py: Python<'_>, branch: &str) -> PyResult<NativeTransaction> {
        let tx = py.detach(|| self.repo.transaction(branch)).py_err()?;
        Ok(NativeTransaction::new(tx))
    }

    /// Open a scratch space.
    #[pyo3(signature = (quota, memory_budget = None, spill_dir = None, lease_ttl_s = None))]
    fn scratch(
        &self,
        py: Python<'_>,
        quota: u64,
        memory_budget: Option<u64>,
        spill_dir: Option<std::path::PathBuf>,
        lease_ttl_s: Option<f64>,
    ) -> PyResult<NativeScratch> {
        let mut opts = ScratchOptions {
            quota,
            spill_dir,
            ..Default::default()
        };
        if let Some(m) = memory_budget {
            opts.memory_budget = m;
        }
        if let Some(t) = lease_ttl_s {
            if !(t > 0.0 && t.is_finite()) {
                return Err(invalid(format!(
                    "lease_ttl must be positive seconds, got {t}"
                )));
            }
            opts.lease_ttl = Duration::from_secs_f64(t);
        }
        let s = py.detach(|| self.repo.scratch(opts)).py_err()?;
        Ok(NativeScratch::new(s))
    }

    /// Copy `data` (1-D uint8 view) into a staging buffer and commit it to `branch` in the
    /// background; returns once the copy is made.
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (branch, path, data, dtype, shape, kind, dense, tags, message, author, metadata, lossy=None))]
    fn put_async(
        &self,
        py: Python<'_>,
        branch: &str,
        path: &str,
        data: &Bound<'_, PyArray1<u8>>,
        dtype: &str,
        shape: Vec<u64>,
        kind: &str,
        dense: bool,
        tags: BTreeMap<String, String>,
        message: String,
        author: String,
        metadata: BTreeMap<String, String>,
        lossy: Option<&str>,
    ) -> PyResult<NativePending> {
        let (info, opts, ro) = dense_put(data, dtype, shape, kind, dense, tags, lossy)?;
        let bytes = slice(&ro, "input buffer")?;
        let commit = CommitOptions {
            message,
            author,
            metadata,
        };
        let pending = py
            .detach(|| {
                self.repo
                    .put_async(branch, path, &info, bytes, opts, commit)
            })
            .py_err()?;
        Ok(NativePending {
            pending: Mutex::new(Some(pending)),
        })
    }
}

/// A commit being written in the background.
#[pyclass(module = "qstore._native", frozen)]
pub struct NativePending {
    pending: Mutex<Option<PendingCommit>>,
}

#[pymethods]
impl NativePending {
    /// Wait for the commit; returns its id. A second call raises.
    fn wait(&self, py: Python<'_>) -> PyResult<String> {
        py.detach(|| {
            let p = self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| {
                    qstore::Error::InvalidArgument("this checkpoint was already waited for".into())
                })?;
            p.wait()
        })
        .py_err()
        .map(|id| id.to_hex())
    }

    /// True once the background commit has finished (successfully or not).
    fn done(&self, py: Python<'_>) -> bool {
        py.detach(|| {
            self.pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .is_none_or(|p| p.is_done())
        })
    }
}
