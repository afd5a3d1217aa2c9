"""Repositories, transactions, commits and the descriptions of stored states."""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from . import _arrays, _native
from ._native import NativeRepository, NativeTransaction
from .errors import InvalidState

if TYPE_CHECKING:  # pragma: no cover
    from .scratch import Handle, Scratch


@dataclass(frozen=True)
class StateInfo:
    """What is stored at a path: kind (``statevector``, ``density_matrix``, ``array``),
    dtype, shape, encoding (``dense``, ``sparse``, ``hermitian``, ``near-hermitian``),
    non-zeros of a sparse encoding, norm (squared norm, trace, or sum of squares), tags, the
    commit read, and for a lossy state its mode (``lossy``, ``None`` when lossless) and the
    fidelity to the state that was put (1.0 when lossless)."""

    path: str
    kind: str
    dtype: str
    shape: Tuple[int, ...]
    encoding: str
    nnz: int
    norm: float
    tags: Dict[str, str]
    stream_bytes: int
    dense_bytes: int
    manifest: str
    commit: Optional[str] = None
    lossy: Optional[str] = None
    fidelity: float = 1.0

    @property
    def n_qubits(self) -> Optional[int]:
        """Qubits of a state vector or density matrix, ``None`` for arrays."""
        if self.kind in ("statevector", "density_matrix"):
            return int(self.shape[0]).bit_length() - 1
        return None

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "StateInfo":
        return cls(
            path=d["path"],
            kind=d["kind"],
            dtype=d["dtype"],
            shape=tuple(int(x) for x in d["shape"]),
            encoding=d["encoding"],
            nnz=int(d["nnz"]),
            norm=float(d["norm"]),
            tags=dict(d["tags"]),
            stream_bytes=int(d["stream_bytes"]),
            dense_bytes=int(d["dense_bytes"]),
            manifest=d["manifest"],
            commit=d.get("commit"),
            lossy=d.get("lossy"),
            fidelity=float(d.get("fidelity", 1.0)),
        )


@dataclass(frozen=True)
class Commit:
    """One commit of the history."""

    id: str
    message: str
    author: str
    time: _dt.datetime
    parents: Tuple[str, ...]
    metadata: Dict[str, str]
    tree: str

    @classmethod
    def _from(cls, d: Mapping[str, Any]) -> "Commit":
        return cls(
            id=d["id"],
            message=d["message"],
            author=d["author"],
            time=_dt.datetime.fromtimestamp(d["time_ms"] / 1000, tz=_dt.timezone.utc),
            parents=tuple(d["parents"]),
            metadata=dict(d["metadata"]),
            tree=d["tree"],
        )


@dataclass
class SparseState:
    """A state vector's non-zero amplitudes: ``indices`` (ascending, qubit 0 = bit 0; uint64 up
    to 64 qubits, an object array of Python ints for wider states, up to 1,024 qubits) and
    ``values`` (complex), of a ``2**n_qubits`` vector."""

    n_qubits: int
    indices: np.ndarray
    values: np.ndarray
    dtype: str = field(default="complex128")

    def __len__(self) -> int:
        return len(self.indices)

    def to_dict(self, bitstrings: bool = False) -> Dict[Union[int, str], complex]:
        """``{index: amplitude}``, or ``{"0101": amplitude}`` (leftmost = highest qubit)."""
        if bitstrings:
            w = self.n_qubits
            return {format(int(i), f"0{w}b"): complex(v) for i, v in zip(self.indices, self.values)}
        return {int(i): complex(v) for i, v in zip(self.indices, self.values)}

    def to_dense(self) -> np.ndarray:
        """The dense vector (refused beyond 2^34 amplitudes)."""
        if self.n_qubits > 34:
            raise InvalidState(f"a dense {self.n_qubits}-qubit vector is too large to materialise")
        out = np.zeros(1 << self.n_qubits, dtype=self.dtype)
        out[self.indices.astype(np.intp)] = self.values
        return out


def _sparse_state(info: Mapping[str, Any], idx: np.ndarray, raw: np.ndarray, words: int = 1) -> SparseState:
    dtype = info["dtype"]
    n = int(info.get("qubits") or 0)
    if words > 1:
        rows = idx.reshape(-1, words)
        wide = np.empty(len(rows), dtype=object)
        for k, row in enumerate(rows):
            wide[k] = sum(int(w) << (64 * j) for j, w in enumerate(row))
        idx = wide
    return SparseState(n_qubits=n, indices=idx, values=raw.view(np.dtype(dtype)), dtype=dtype)


def _read(
    info: Mapping[str, Any],
    read_into,
    check_materialise,
    start: Optional[int],
    stop: Optional[int],
    out: Optional[np.ndarray],
) -> np.ndarray:
    """Allocate (or check) the output and let the native layer fill it."""
    dtype = np.dtype(info["dtype"])
    shape = tuple(int(x) for x in info["shape"])
    total = 1
    for d in shape:
        total *= d
    if start is None and stop is None:
        check_materialise()
        buf = _arrays.output_buffer(out, dtype, shape)
        s, e = 0, total
    else:
        s = 0 if start is None else int(start)
        e = total if stop is None else int(stop)
        if s < 0 or e < s or e > total:
            raise InvalidState(f"element range {s}..{e} is outside 0..{total}")
        buf = _arrays.output_buffer(out, dtype, (e - s,))
    read_into(s, e, _arrays.into_view(buf))
    return buf


class Repository:
    """A qstore repository. Open one with :func:`qstore.open`.

    Every method that reads or writes releases the GIL while the engine works, so other
    Python threads keep running."""

    def __init__(self, native: NativeRepository):
        self._n = native

    def __repr__(self) -> str:
        return f"qstore.Repository({self.address!r})"

    @property
    def address(self) -> str:
        return self._n.address

    # ---- writing -------------------------------------------------------------------------

    def transaction(
        self,
        branch: str = "main",
        message: str = "",
        author: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> "Transaction":
        """Start a transaction on ``branch``. As a context manager it commits on a clean exit
        (with ``message``, ``author``, ``metadata``) and aborts on an exception."""
        return Transaction(self._n.transaction(branch), branch, message, author, metadata)

    def put(
        self,
        path: str,
        array: Any,
        *,
        branch: str = "main",
        message: str = "",
        tags: Optional[Mapping[str, Any]] = None,
        kind: Optional[str] = None,
        dense: bool = False,
        author: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        lossy: Optional[str] = None,
    ) -> str:
        """Store one array in its own commit; returns the commit id. ``lossy`` (opt-in, state
        vectors only) stores an approximation: ``"max-infidelity=1e-6"`` (1 - F guaranteed
        at most that), ``"f32"``, ``"mantissa-bits=K"``, ``"zero-below=EPS"``, or several
        joined by commas; ``info(path).fidelity`` then says how close it is."""
        with self.transaction(branch, message, author, metadata) as tx:
            tx.put(path, array, tags=tags, kind=kind, dense=dense, lossy=lossy)
        assert tx.commit_id is not None
        return tx.commit_id

    def put_async(
        self,
        path: str,
        array: Any,
        *,
        branch: str = "main",
        message: str = "",
        tags: Optional[Mapping[str, Any]] = None,
        kind: Optional[str] = None,
        dense: bool = False,
        author: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
        lossy: Optional[str] = None,
    ) -> "PendingCommit":
        """Checkpoint without waiting: the array is copied into a bounded staging buffer
        (the only stall), then stored and committed on a background thread. Call
        ``.wait()`` on the result for the commit id (and any error)."""
        a = _arrays.to_ndarray(array)
        view, dtype, shape = _arrays.byte_view(a)
        p = self._n.put_async(
            branch,
            path,
            view,
            dtype,
            shape,
            _arrays.default_kind(kind, a),
            dense,
            _arrays.tag_map(tags),
            message,
            author or _default_author(),
            _arrays.tag_map(metadata),
            lossy,
        )
        return PendingCommit(p)

    # ---- reading -------------------------------------------------------------------------

    def info(self, path: str, ref: str = "main") -> StateInfo:
        """What is stored at ``path`` in ``ref`` (a branch, tag, commit id or prefix)."""
        return StateInfo._from(self._n.info(ref, path))

    def get(
        self,
        path: str,
        ref: str = "main",
        *,
        start: Optional[int] = None,
        stop: Optional[int] = None,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """The stored array, same dtype and shape, read straight into NumPy-owned memory (or
        into ``out``). With ``start``/``stop``: flat elements ``start..stop`` (C order) as a
        1-D array; the rest of the state is not read."""
        info = self._n.info(ref, path)
        commit = info["commit"]
        return _read(
            info,
            lambda s, e, v: self._n.read_into(commit, path, s, e, v),
            lambda: self._n.check_materialise(commit, path),
            start,
            stop,
            out,
        )

    def get_sparse(self, path: str, ref: str = "main") -> SparseState:
        """Non-zero amplitudes of a state vector (a sparse-encoded state as stored; a dense
        one scanned)."""
        info = self._n.info(ref, path)
        idx, raw, words = self._n.read_sparse(info["commit"], path)
        return _sparse_state(info, idx, raw, words)

    def ls(self, prefix: Optional[str] = None, ref: str = "main") -> List[StateInfo]:
        """Every state under ``prefix`` (or all), sorted by path."""
        return [StateInfo._from(d) for d in self._n.list(ref, prefix)]

    def __contains__(self, path: str) -> bool:
        try:
            self._n.info("main", path)
            return True
        except LookupError:
            return False

    def top_k(self, path: str, k: int, ref: str = "main") -> List[Tuple[int, float]]:
        """The ``k`` most probable basis states ``[(index, probability)]``, streamed chunk by
        chunk (the state is never loaded whole)."""
        return self._n.top_k(ref, path, int(k))

    def marginals(self, path: str, qubits: Sequence[int], ref: str = "main") -> np.ndarray:
        """Probabilities of the outcomes of ``qubits`` (the first listed is the lowest bit of
        the outcome index), streamed."""
        return np.asarray(self._n.marginals(ref, path, [int(q) for q in qubits]))

    def norm(self, path: str, ref: str = "main") -> float:
        """Squared norm of a state vector, trace of a density matrix, streamed."""
        return self._n.norm(ref, path)

    def fidelity(
        self, path_a: str, path_b: Optional[str] = None, ref_a: str = "main", ref_b: Optional[str] = None
    ) -> Optional[float]:
        """|<a|b>|^2 of two stored state vectors (None for other kinds), streamed."""
        return self._n.fidelity(ref_a, path_a, ref_b or ref_a, path_b or path_a)

    # ---- history and refs ----------------------------------------------------------------

    def log(self, ref: str = "main", limit: Optional[int] = None) -> List[Commit]:
        """Commits from ``ref`` back along first parents, newest first."""
        n = (1 << 62) if limit is None else int(limit)
        return [Commit._from(d) for d in self._n.log(ref, n)]

    def resolve(self, ref: str) -> str:
        """The commit id a branch, tag, commit id or unique prefix names."""
        return self._n.resolve(ref)

    def branches(self) -> Dict[str, str]:
        return {name: c for kind, name, c in self._n.refs() if kind == "branch"}

    def tags(self) -> Dict[str, str]:
        return {name: c for kind, name, c in self._n.refs() if kind == "tag"}

    def branch(self, name: str, from_ref: str = "main") -> str:
        """Create branch ``name`` at ``from_ref`` (instant, copy-on-write)."""
        return self._n.create_branch(name, from_ref)

    def tag(self, name: str, target: str = "main") -> str:
        """Create immutable tag ``name`` at ``target``."""
        return self._n.create_tag(name, target)

    def delete_branch(self, name: str) -> None:
        self._n.delete_ref("branch", name)

    def delete_tag(self, name: str) -> None:
        self._n.delete_ref("tag", name)

    def diff(self, a: str, b: str) -> List[Dict[str, Any]]:
        """Paths added, removed or changed from ``a`` to ``b`` (chunks changed, fidelity)."""
        return json.loads(self._n.diff(a, b))

    # ---- states written in parts ---------------------------------------------------------

    def begin_upload(
        self, path: str, dtype: Any, shape: Sequence[int], parts: int, kind: Optional[str] = None
    ) -> str:
        """Declare a state of ``dtype``/``shape`` that ``parts`` writers will store in parts
        (part k holds flat elements ``floor(k*N/P)`` to ``floor((k+1)*N/P)``), committed at
        ``path`` by :meth:`complete_upload`; returns the upload id to hand to every writer.
        See ``qstore.mpi`` for MPI programs."""
        name = np.dtype(dtype).name
        if name not in _arrays.SUPPORTED_DTYPES:
            raise InvalidState(f"dtype {name} is not supported; use one of {', '.join(_arrays.SUPPORTED_DTYPES)}")
        shape = [int(x) for x in shape]
        return self._n.begin_upload(path, name, shape, kind or "auto", int(parts))

    def put_part(self, upload: str, k: int, array: Any) -> None:
        """Store part ``k`` of ``upload``: exactly its flat elements, in the upload's dtype.
        Any process or host can store any part; storing a part again replaces it."""
        a = _arrays.to_ndarray(array)
        view, _, _ = _arrays.byte_view(np.ascontiguousarray(a).reshape(-1))
        self._n.put_part(upload, int(k), view)

    def complete_upload(
        self, upload: str, branch: str = "main", message: str = "", author: Optional[str] = None
    ) -> str:
        """Commit ``upload`` from its parts (all must be stored); returns the commit id.
        Completing it again returns the same commit."""
        return self._n.complete_upload(upload, branch, message or "put in parts", author or _default_author())

    def abort_upload(self, upload: str) -> None:
        """Give up ``upload``; gc reclaims its parts."""
        self._n.abort_upload(upload)

    def uploads(self) -> List[Dict[str, Any]]:
        """Every upload here: its spec, the parts stored, the commit once completed."""
        return json.loads(self._n.uploads())

    # ---- maintenance ---------------------------------------------------------------------

    def stats(self) -> Dict[str, Any]:
        """Logical, encoded, unique and stored bytes, ratios, objects, files, cache counters."""
        return json.loads(self._n.stats())

    def gc(self, grace: Any = "1h", dry_run: bool = False, threshold: float = 0.3) -> Dict[str, Any]:
        """Delete what no ref reaches (packs younger than ``grace`` are left alone); safe
        while other processes commit."""
        return json.loads(self._n.gc(_arrays.parse_seconds(grace), dry_run, float(threshold)))

    def expire(self, branch: str, older_than: Any) -> int:
        """Cut the history of ``branch`` older than ``older_than``; returns commits cut."""
        return self._n.expire(branch, _arrays.parse_seconds(older_than))

    def fsck(self, full: bool = False) -> Dict[str, Any]:
        """Check every ref, commit, tree and manifest (and with ``full`` every chunk)."""
        return json.loads(self._n.fsck(full))

    def repack(self, all: bool = False, recompress: bool = False) -> Dict[str, Any]:
        """Merge small packs into few large ones now (``all``: every pack under the pack size
        target; ``recompress``: every pack, recompressing with zstd what puts stored with
        lz4). Commits already merge small packs past a threshold; safe while others commit."""
        return json.loads(self._n.repack(all, recompress))

    def set_cache_bytes(self, n: Union[int, str]) -> None:
        """Size the chunk cache shared by this repository's readers."""
        self._n.set_cache_bytes(_arrays.parse_size(n))

    def clear_cache(self) -> None:
        self._n.clear_cache()

    # ---- other repositories --------------------------------------------------------------

    def push(
        self,
        remote: str = "origin",
        refs: Optional[Sequence[str]] = None,
        force: bool = False,
    ) -> Dict[str, Any]:
        """Send branches and tags (``refs``: names or ``"src:dst"``; default all) to
        ``remote`` (a remote's name or an address): only the objects it lacks, refs moved
        only forward unless ``force``. Raises :class:`qstore.Conflict` on a
        non-fast-forward. Returns the report (objects, chunks and bytes sent, refs moved)."""
        return json.loads(_native.push(self._n, os.fspath(remote), list(refs or []), force))

    def pull(
        self,
        remote: str = "origin",
        refs: Optional[Sequence[str]] = None,
        force: bool = False,
    ) -> Dict[str, Any]:
        """Fetch branches and tags from ``remote`` into this repository (like :meth:`push`,
        the other way)."""
        return json.loads(_native.pull(self._n, os.fspath(remote), list(refs or []), force))

    def remotes(self) -> Dict[str, str]:
        """The named remotes (name -> address)."""
        return dict(_native.remotes(self._n))

    def add_remote(self, name: str, address: str, replace: bool = False) -> None:
        """Record remote ``name`` at ``address`` (a relative path is made absolute)."""
        _native.add_remote(self._n, name, os.fspath(address), replace)

    def remove_remote(self, name: str) -> None:
        _native.remove_remote(self._n, name)

    def drain_to(self, remote: str, branch: str = "main", every: Any = "1s") -> "Drain":
        """Push ``branch`` to ``remote`` (created like this repository when missing) in the
        background whenever it moves, so checkpoints land at local speed while the shared
        store catches up. Use as a context manager, or call :meth:`Drain.finish`."""
        return Drain(
            _native.drain_to(self._n, os.fspath(remote), branch, _arrays.parse_seconds(every))
        )

    # ---- scratch -------------------------------------------------------------------------

    def scratch(
        self,
        quota: Union[int, str] = "8GiB",
        memory_budget: Union[int, str, None] = None,
        spill_dir: Union[str, "os.PathLike[str]", None] = None,
        lease_ttl: Any = None,
    ) -> "Scratch":
        """A scratch space for intermediate states: deduplicated, held in memory up to
        ``memory_budget`` and spilled beyond, refusing puts past ``quota``, removed with
        everything in it when closed (or when the ``with`` block ends)."""
        from .scratch import Scratch

        n = self._n.scratch(
            _arrays.parse_size(quota),
            None if memory_budget is None else _arrays.parse_size(memory_budget),
            None if spill_dir is None else os.fspath(spill_dir),
            None if lease_ttl is None else _arrays.parse_seconds(lease_ttl),
        )
        return Scratch(n)


def _default_author() -> str:
    return os.environ.get("QSTORE_AUTHOR") or os.environ.get("USER") or ""


class Transaction:
    """Changes to one branch, committed atomically. Use it as a context manager, or call
    :meth:`commit` / :meth:`abort` yourself."""

    def __init__(
        self,
        native: NativeTransaction,
        branch: str,
        message: str = "",
        author: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ):
        self._n = native
        self.branch = branch
        self.message = message
        self.author = author
        self.metadata = dict(metadata or {})
        self.commit_id: Optional[str] = None

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()
        elif self._n.is_open():
            self.commit()

    def put(
        self,
        path: str,
        array: Any,
        *,
        tags: Optional[Mapping[str, Any]] = None,
        kind: Optional[str] = None,
        dense: bool = False,
        lossy: Optional[str] = None,
    ) -> StateInfo:
        """Store ``array`` at ``path``, read straight from the caller's buffer (no copy when
        it is C-contiguous and little-endian). ``kind`` is inferred: complex 2^n vectors are
        state vectors, complex 2^n x 2^n matrices density matrices (other complex shapes are
        refused unless ``kind="array"``); real and integer data are arrays. ``dense=True``
        turns off the sparse and Hermitian encodings. ``lossy`` stores an approximation of a
        state vector (see ``Repository.put``). Do not modify the array during the call: the
        GIL is released while it is read."""
        a = _arrays.to_ndarray(array)
        view, dtype, shape = _arrays.byte_view(a)
        d = self._n.put(
            path,
            view,
            dtype,
            shape,
            _arrays.default_kind(kind, a),
            dense,
            _arrays.tag_map(tags),
            lossy,
        )
        return StateInfo._from(d)

    def put_sparse(
        self,
        path: str,
        amplitudes: Any,
        n_qubits: Optional[int] = None,
        *,
        dtype: str = "complex128",
        tags: Optional[Mapping[str, Any]] = None,
    ) -> StateInfo:
        """Store a state vector given by its non-zero amplitudes: a dict with integer keys,
        bit-string keys (``"0110"``, leftmost = highest qubit, as Qiskit prints them) or hex
        keys (``"0x6"``, Aer's ``save_statevector_dict``), or an ``(indices, values)`` pair.
        It stays sparse in the repository, whatever ``n_qubits`` (up to 1,024; indices past
        64 bits as Python ints)."""
        n, idx, vals = _arrays.sparse_input(amplitudes, n_qubits, dtype)
        d = self._n.put_sparse(path, n, idx, vals.view(np.uint8), dtype, _arrays.tag_map(tags))
        return StateInfo._from(d)

    def put_from_scratch(self, path: str, handle: "Handle") -> StateInfo:
        """Commit a scratch state without re-encoding it."""
        return StateInfo._from(self._n.put_from_scratch(path, handle._n))

    def copy(self, from_path: str, to_path: str, ref: str = "main") -> StateInfo:
        """Copy a stored state (``from_path`` in ``ref``) to ``to_path``; no bytes are
        rewritten."""
        return StateInfo._from(self._n.copy(ref, from_path, to_path))

    def delete(self, path: str) -> None:
        self._n.delete(path)

    @property
    def changed_paths(self) -> List[str]:
        return self._n.changed_paths()

    def stats(self) -> Dict[str, int]:
        """Chunks seen, deduplicated, zero, written; raw and stored bytes written."""
        return json.loads(self._n.stats())

    def commit(
        self,
        message: Optional[str] = None,
        author: Optional[str] = None,
        metadata: Optional[Mapping[str, Any]] = None,
    ) -> str:
        """Commit every change atomically and durably; returns the commit id. Changes to
        other paths committed meanwhile are merged; overlapping ones raise ``Conflict``."""
        meta = dict(self.metadata)
        meta.update(metadata or {})
        self.commit_id = self._n.commit(
            self.message if message is None else message,
            author or self.author or _default_author(),
            _arrays.tag_map(meta),
        )
        return self.commit_id

    def abort(self) -> None:
        """Drop every change (nothing becomes visible)."""
        self._n.abort()


class PendingCommit:
    """A checkpoint being committed in the background."""

    def __init__(self, native):
        self._n = native
        self._id: Optional[str] = None

    def wait(self) -> str:
        """Block until the commit is durable; returns its id (raises its error)."""
        if self._id is None:
            self._id = self._n.wait()
        return self._id

    def done(self) -> bool:
        return self._n.done()


class Drain:
    """A branch pushed to a remote in the background (see :meth:`Repository.drain_to`)."""

    def __init__(self, native):
        self._n = native
        self.report: Optional[Dict[str, Any]] = None

    def wake(self) -> None:
        """Push soon (the branch just moved)."""
        self._n.wake()

    def finish(self) -> Dict[str, Any]:
        """Make a last push and stop. Returns the report: commits and bytes sent, both heads,
        ``behind`` (local commits the remote lacks; 0 when caught up) and ``last_error``."""
        if self.report is None:
            self.report = json.loads(self._n.finish())
        return self.report

    def __enter__(self) -> "Drain":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.finish()


def clone(
    src: Union[str, "os.PathLike[str]"],
    dst: Union[str, "os.PathLike[str]"],
    *,
    refs: Optional[str] = None,
) -> Repository:
    """Copy the repository at ``src`` to a new repository at ``dst`` (``refs``: the ref store
    of an ``s3://`` destination whose address has none): every branch and tag, with the
    remote ``origin`` naming ``src``. Returns the new repository."""
    native, _report = _native.clone(os.fspath(src), os.fspath(dst), refs)
    return Repository(native)


def upgrade(url: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
    """Rewrite a repository of an older format (version 1) as the current one, in place,
    keeping every commit id (older qstore builds cannot open it afterwards). Until then this
    build reads it but refuses changes."""
    return json.loads(_native.upgrade(os.fspath(url)))


def open(
    url: Union[str, "os.PathLike[str]", None] = None,
    *,
    create: bool = True,
    refs: Optional[str] = None,
    token: Optional[str] = None,
    ca_cert: Union[str, "os.PathLike[str]", None] = None,
) -> Repository:
    """Open the repository at ``url`` (a path, ``file:///path``, ``memory://name``,
    ``s3://BUCKET/PREFIX?endpoint=...&refs=etcd://HOST:PORT/PREFIX``, or
    ``https://HOST:PORT/NAME`` of ``qstore serve``; default ``$QSTORE_REPO``), creating it
    when missing unless ``create=False`` (served repositories are never created from here).
    ``refs`` (default ``$QSTORE_REFS``) names the ref store of an ``s3://`` repository whose
    address has none; S3 credentials come from the standard AWS environment variables. For a
    served repository, ``token`` (default ``$QSTORE_TOKEN`` or the file ``$QSTORE_TOKEN_FILE``)
    and ``ca_cert`` (a PEM file trusted besides the system roots; default
    ``$QSTORE_CA_CERT``); refusals raise :class:`qstore.errors.NotAuthorised`, an unreachable
    server :class:`qstore.errors.Unavailable`."""
    if url is None:
        url = os.environ.get("QSTORE_REPO")
        if not url:
            raise InvalidState("no repository given: pass a path or set QSTORE_REPO")
    if refs is None:
        refs = os.environ.get("QSTORE_REFS") or None
    return Repository(
        NativeRepository(
            os.fspath(url),
            create,
            refs,
            token,
            os.fspath(ca_cert) if ca_cert is not None else None,
        )
    )
