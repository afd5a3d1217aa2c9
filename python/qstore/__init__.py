"""qstore: versioned, deduplicated, compressed storage of quantum states.

>>> import numpy as np, qstore
>>> repo = qstore.open("memory://doc")
>>> with repo.transaction("main", message="bell") as tx:
...     _ = tx.put("bell", np.array([1, 0, 0, 1], dtype=complex) / np.sqrt(2))
>>> repo.get("bell").shape
(4,)

Framework helpers live in optional submodules: ``qstore.qiskit``, ``qstore.pennylane``,
``qstore.cirq`` (importing ``qstore`` needs only NumPy).
"""

from ._native import __version__
from .errors import (
    Conflict,
    Corrupt,
    Error,
    InvalidState,
    NotAuthorised,
    NotFound,
    QuotaExceeded,
    StorageError,
    Unavailable,
)
from .repository import (
    Commit,
    Drain,
    PendingCommit,
    Repository,
    SparseState,
    StateInfo,
    Transaction,
    clone,
    open,
    upgrade,
)
from .scratch import Handle, Scratch

__all__ = [
    "__version__",
    "open",
    "clone",
    "upgrade",
    "Repository",
    "Transaction",
    "PendingCommit",
    "Drain",
    "Commit",
    "StateInfo",
    "SparseState",
    "Scratch",
    "Handle",
    "Error",
    "NotFound",
    "Conflict",
    "Corrupt",
    "QuotaExceeded",
    "InvalidState",
    "StorageError",
    "NotAuthorised",
    "Unavailable",
]
