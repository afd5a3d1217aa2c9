"""PennyLane helpers: the output of ``qml.state()`` / ``qml.density_matrix()`` and circuit
parameters.

PennyLane orders wires big-endian (wire 0 is the most significant bit of the basis index);
qstore stores every state little-endian (qubit 0 = lowest bit, as Qiskit), so these helpers
reverse the qubit order on the way in and out (one copy each way) and record
``source=pennylane``. A state saved here and one saved from Qiskit for the same circuit are
bit-for-bit comparable in the repository. Importing this module does not import PennyLane.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _arrays
from ._helpers import Target, load, order_tags, store
from .errors import InvalidState
from .repository import Repository, StateInfo


def save_state(
    target: Target,
    path: str,
    state: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
) -> Union[str, StateInfo]:
    """Store a PennyLane state (``qml.state()``: 2^n amplitudes, or ``qml.density_matrix``:
    2^n x 2^n; NumPy, autograd, torch or jax arrays) in qstore's qubit order."""
    a = _arrays.to_ndarray(state)
    if a.dtype.kind != "c":
        a = a.astype(np.complex128)
    kind = {1: "statevector", 2: "density_matrix"}.get(a.ndim)
    if kind is None:
        raise InvalidState(f"a PennyLane state is 1-D or 2-D, got shape {a.shape}")
    return store(
        target,
        path,
        _arrays.reverse_qubits(a),
        kind=kind,
        tags=order_tags("pennylane", tags),
        branch=branch,
        message=message,
    )


def load_state(repo: Repository, path: str, ref: str = "main") -> np.ndarray:
    """A stored state vector or density matrix in PennyLane's (big-endian) wire order."""
    info = repo.info(path, ref)
    if info.kind not in ("statevector", "density_matrix"):
        raise InvalidState(f"{path!r} is a {info.kind}, not a state")
    return _arrays.reverse_qubits(load(repo, path, ref, info.kind))


def save_params(
    target: Target,
    path: str,
    params: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
) -> Union[str, StateInfo]:
    """Store circuit parameters (any array-like, trainable or not) as an array."""
    a = _arrays.to_ndarray(params)
    t = {"source": "pennylane"}
    t.update(_arrays.tag_map(tags))
    return store(target, path, a, kind="array", tags=t, branch=branch, message=message)


def load_params(repo: Repository, path: str, ref: str = "main") -> np.ndarray:
    return repo.get(path, ref)


__all__ = ["save_state", "load_state", "save_params", "load_params"]
