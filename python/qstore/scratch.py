"""Scratch spaces for intermediate states, and reference-counted handles to them."""

from __future__ import annotations

import json
from typing import Any, Dict, Mapping, Optional

import numpy as np

from . import _arrays
from .repository import SparseState, StateInfo, _read, _sparse_state


class Scratch:
    """A scratch space (see :meth:`qstore.Repository.scratch`). Closing it (or leaving its
    ``with`` block) removes every state in it, pinned ones included; a crashed process's
    space is reclaimed by the next ``gc`` once its lease expires."""

    def __init__(self, native):
        self._n = native

    def __enter__(self) -> "Scratch":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"qstore.Scratch({self.id!r})"

    @property
    def id(self) -> str:
        return self._n.id

    def put(
        self,
        array: Any,
        *,
        tags: Optional[Mapping[str, Any]] = None,
        kind: Optional[str] = None,
        dense: bool = False,
        lossy: Optional[str] = None,
    ) -> "Handle":
        """Store an intermediate state; returns a handle. The state is freed when its last
        handle is released (or garbage collected) unless pinned. Raises ``QuotaExceeded``
        (nothing stored) past the quota. ``lossy`` as for ``Repository.put``."""
        a = _arrays.to_ndarray(array)
        view, dtype, shape = _arrays.byte_view(a)
        return Handle(
            self._n.put(
                view, dtype, shape, _arrays.default_kind(kind, a), dense, _arrays.tag_map(tags), lossy
            )
        )

    def usage(self) -> Dict[str, int]:
        """quota, memory_bytes, disk_bytes, disk_live_bytes, states, chunks, spill_files."""
        return json.loads(self._n.usage())

    def close(self) -> None:
        """Remove the space and everything in it (idempotent)."""
        self._n.close()

    @property
    def closed(self) -> bool:
        return not self._n.is_open()


class Handle:
    """A reference to a state in a scratch space. ``release()`` (or garbage collection, or
    the end of its ``with`` block) drops it."""

    def __init__(self, native):
        self._n = native

    def __enter__(self) -> "Handle":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.release()

    def info(self) -> StateInfo:
        return StateInfo._from(self._n.info())

    def get(
        self,
        *,
        start: Optional[int] = None,
        stop: Optional[int] = None,
        out: Optional[np.ndarray] = None,
    ) -> np.ndarray:
        """The state (or flat elements ``start..stop``), as :meth:`Repository.get`."""
        return _read(self._n.info(), self._n.read_into, self._n.check_materialise, start, stop, out)

    def get_sparse(self) -> SparseState:
        idx, raw, words = self._n.read_sparse()
        return _sparse_state(self._n.info(), idx, raw, words)

    def pin(self) -> None:
        """Keep the state after every handle is gone (until ``unpin`` or the space closes)."""
        self._n.pin()

    def unpin(self) -> None:
        self._n.unpin()

    @property
    def pinned(self) -> bool:
        return self._n.is_pinned()

    def release(self) -> None:
        """Drop this handle now (idempotent)."""
        self._n.release()

    def clone(self) -> "Handle":
        """A second handle to the same state."""
        return Handle(self._n.clone_handle())
