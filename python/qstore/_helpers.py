"""What the framework helpers share: storing into a repository (one commit) or into an open
transaction, and reading back with the qubit order checked."""

from __future__ import annotations

from typing import Any, Mapping, Optional, Union

import numpy as np

from . import _arrays
from .errors import InvalidState
from .repository import Repository, StateInfo, Transaction

Target = Union[Repository, Transaction]


def store(
    target: Target,
    path: str,
    array: np.ndarray,
    *,
    kind: str,
    tags: Mapping[str, Any],
    branch: str = "main",
    message: Optional[str] = None,
) -> Union[str, StateInfo]:
    """Put ``array`` at ``path``: into an open transaction (returns the ``StateInfo``) or as
    its own commit on ``branch`` of a repository (returns the commit id)."""
    if isinstance(target, Transaction):
        return target.put(path, array, kind=kind, tags=tags)
    if isinstance(target, Repository):
        return target.put(
            path, array, branch=branch, kind=kind, tags=tags, message=message or f"save {path}"
        )
    raise InvalidState(f"expected a qstore.Repository or Transaction, got {type(target).__name__}")


def store_sparse(
    target: Target,
    path: str,
    amplitudes: Mapping[Any, Any],
    n_qubits: int,
    *,
    tags: Mapping[str, Any],
    branch: str = "main",
    message: Optional[str] = None,
) -> Union[str, StateInfo]:
    if isinstance(target, Transaction):
        return target.put_sparse(path, amplitudes, n_qubits, tags=tags)
    if isinstance(target, Repository):
        with target.transaction(branch, message=message or f"save {path}") as tx:
            tx.put_sparse(path, amplitudes, n_qubits, tags=tags)
        assert tx.commit_id is not None
        return tx.commit_id
    raise InvalidState(f"expected a qstore.Repository or Transaction, got {type(target).__name__}")


def load(repo: Repository, path: str, ref: str, kind: str) -> np.ndarray:
    """The stored array, checked to be of ``kind``, in qstore's (little-endian) order."""
    info = repo.info(path, ref)
    if info.kind != kind:
        raise InvalidState(f"{path!r} in {ref!r} is a {info.kind}, not a {kind}")
    order = info.tags.get("qubit_order", "little")
    if order != "little":
        raise InvalidState(f"{path!r} records qubit order {order!r}; expected 'little'")
    return repo.get(path, ref)


def order_tags(source: str, tags: Optional[Mapping[str, Any]]) -> dict:
    """Tags every helper records: the source framework and the stored qubit order."""
    t = {"source": source, "qubit_order": "little"}
    t.update(_arrays.tag_map(tags))
    return t
