"""Cirq helpers: ``final_state_vector`` and ``final_density_matrix`` of simulation results.

Cirq orders qubits big-endian (the first qubit of ``qubit_order`` is the most significant bit);
qstore stores every state little-endian (qubit 0 = lowest bit, as Qiskit), so these helpers
reverse the order on the way in and out (one copy each way) and record ``source=cirq``.
Cirq's default dtype, complex64, is kept. Importing this module does not import Cirq.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _arrays
from ._helpers import Target, load, order_tags, store
from .errors import InvalidState
from .repository import Repository, StateInfo


def _array(state: Any, attr: str) -> np.ndarray:
    if hasattr(state, attr):  # a cirq SimulationTrialResult
        state = getattr(state, attr)
    return _arrays.to_ndarray(state)


def save_state_vector(
    target: Target,
    path: str,
    state: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
) -> Union[str, StateInfo]:
    """Store a Cirq state vector (an array, or a result with ``final_state_vector``)."""
    a = _array(state, "final_state_vector")
    if a.ndim != 1:
        raise InvalidState(f"a state vector is 1-D, got shape {a.shape}")
    return store(
        target,
        path,
        _arrays.reverse_qubits(a),
        kind="statevector",
        tags=order_tags("cirq", tags),
        branch=branch,
        message=message,
    )


def load_state_vector(repo: Repository, path: str, ref: str = "main") -> np.ndarray:
    """A stored state vector in Cirq's (big-endian) qubit order."""
    return _arrays.reverse_qubits(load(repo, path, ref, "statevector"))


def save_density_matrix(
    target: Target,
    path: str,
    rho: Any,
    *,
    branch: str = "main",
    message: Optional[str] = None,
    tags: Optional[Mapping[str, Any]] = None,
) -> Union[str, StateInfo]:
    """Store a Cirq density matrix (an array, or a result with ``final_density_matrix``)."""
    a = _array(rho, "final_density_matrix")
    return store(
        target,
        path,
        _arrays.reverse_qubits(a),
        kind="density_matrix",
        tags=order_tags("cirq", tags),
        branch=branch,
        message=message,
    )


def load_density_matrix(repo: Repository, path: str, ref: str = "main") -> np.ndarray:
    return _arrays.reverse_qubits(load(repo, path, ref, "density_matrix"))


__all__ = ["save_state_vector", "load_state_vector", "save_density_matrix", "load_density_matrix"]
