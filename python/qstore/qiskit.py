"""Qiskit helpers: ``Statevector``, ``DensityMatrix``, and the results of Qiskit Aer's
``save_statevector`` / ``save_density_matrix`` / ``save_statevector_dict``.

Qiskit orders qubits little-endian (qubit 0 is the lowest bit of the basis index), as qstore
does, so states are stored as they are, without a copy; each gets the tags
``source=qiskit`` and ``qubit_order=little``.

>>> from qiskit.quantum_info import Statevector
>>> from qstore.qiskit import save_statevector, load_statevector
>>> save_statevector(repo, "bell", Statevector([1, 0, 0, 1]) / 2 ** 0.5)   # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Union

import numpy as np
from qiskit.quantum_info import DensityMatrix, Statevector

from ._helpers import Target, load, order_tags, store, store_sparse
from .errors import InvalidState
from .repository import Repository, StateInfo


def _qubits(dims) -> None:
    if any(d != 2 for d in dims):
        raise InvalidState(f"only qubit states are supported, got subsystem dimensions {dims}")


def _as_statevector(state: Any, experiment: int) -> Union[np.ndarray, Statevector]:
    """A Statevector, an array, or an Aer/Qiskit ``Result`` (its saved state vector)."""
    if hasattr(state, "get_statevector") and hasattr(state, "results"):
        state = state.get_statevector(experiment)
    return state


def save_statevector(
    target: Target,
    path: str,
    state: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
    experiment: int = 0,
) -> Union[str, StateInfo]:
    """Store a ``Statevector`` (or a complex array of 2^n amplitudes, or an Aer ``Result``
    holding a saved state vector) at ``path``. ``target`` is a Repository (its own commit on
    ``branch``; returns the commit id) or an open Transaction (returns the StateInfo)."""
    state = _as_statevector(state, experiment)
    if isinstance(state, Statevector):
        _qubits(state.dims())
        data = state.data
    else:
        data = np.asarray(state)
        if data.ndim != 1:
            raise InvalidState(f"a state vector is 1-D, got shape {data.shape}")
    return store(
        target,
        path,
        data,
        kind="statevector",
        tags=order_tags("qiskit", tags),
        branch=branch,
        message=message,
    )


def load_statevector(repo: Repository, path: str, ref: str = "main") -> Statevector:
    """The state vector at ``path`` as a ``Statevector`` (same dtype as stored)."""
    return Statevector(load(repo, path, ref, "statevector"))


def save_density_matrix(
    target: Target,
    path: str,
    rho: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
    experiment: int = 0,
) -> Union[str, StateInfo]:
    """Store a ``DensityMatrix`` (or a 2^n x 2^n complex array, or an Aer ``Result`` holding
    a saved density matrix). Hermitian matrices are stored as their upper triangle."""
    if hasattr(rho, "data") and hasattr(rho, "results") and callable(rho.data):
        rho = rho.data(experiment)["density_matrix"]
    if isinstance(rho, DensityMatrix):
        _qubits(rho.dims())
        data = rho.data
    else:
        data = np.asarray(rho)
    return store(
        target,
        path,
        data,
        kind="density_matrix",
        tags=order_tags("qiskit", tags),
        branch=branch,
        message=message,
    )


def load_density_matrix(repo: Repository, path: str, ref: str = "main") -> DensityMatrix:
    return DensityMatrix(load(repo, path, ref, "density_matrix"))


def save_statevector_dict(
    target: Target,
    path: str,
    amplitudes: Mapping[Any, Any],
    n_qubits: int,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
) -> Union[str, StateInfo]:
    """Store the output of Aer's ``save_statevector_dict`` (``{"0x3": amp, ...}``), or any
    dict of bit-string or integer keys, as a sparse state of ``n_qubits`` qubits."""
    return store_sparse(
        target, path, amplitudes, n_qubits, tags=order_tags("qiskit", tags), branch=branch, message=message
    )


def save_result(
    target: Target,
    prefix: str,
    result: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
) -> Dict[str, StateInfo]:
    """Store every state an Aer ``Result`` saved: ``PREFIX/LABEL`` for each saved
    ``Statevector``/``DensityMatrix`` of a single experiment (``PREFIX/EXPERIMENT/LABEL`` with
    several), and ``.../LABEL/SHOT`` (zero-padded) for per-shot saves
    (``save_statevector(pershot=True)``: one state per noisy trajectory; identical
    trajectories are stored once). All go into one commit. Returns ``{path: StateInfo}``."""
    if isinstance(target, Repository):
        with target.transaction(branch, message=message or f"save result under {prefix}") as tx:
            out = save_result(tx, prefix, result, tags=tags)
        return out
    out: Dict[str, StateInfo] = {}
    n_exp = len(result.results)
    for e in range(n_exp):
        data = result.data(e)
        base = prefix if n_exp == 1 else f"{prefix}/{e}"
        for label, value in data.items():
            items: List[Any] = value if isinstance(value, list) else [value]
            width = max(5, len(str(len(items))))
            for k, v in enumerate(items):
                p = f"{base}/{label}" if not isinstance(value, list) else f"{base}/{label}/{k:0{width}d}"
                if isinstance(v, Statevector):
                    out[p] = save_statevector(target, p, v, tags=tags)  # type: ignore[assignment]
                elif isinstance(v, DensityMatrix):
                    out[p] = save_density_matrix(target, p, v, tags=tags)  # type: ignore[assignment]
    if not out:
        raise InvalidState("the result holds no saved Statevector or DensityMatrix")
    return out


__all__ = [
    "save_statevector",
    "load_statevector",
    "save_density_matrix",
    "load_density_matrix",
    "save_statevector_dict",
    "save_result",
]
