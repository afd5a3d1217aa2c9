"""Shared fixtures: a fresh on-disk repository per test, and helpers for bit-exact checks."""

import numpy as np
import pytest

import qstore


@pytest.fixture
def repo(tmp_path):
    return qstore.open(tmp_path / "repo")


def same_bytes(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit-exact equality (tells -0.0 from 0.0 and compares NaN payloads), plus dtype/shape."""
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def random_state(n: int, seed: int = 0, dtype=np.complex128) -> np.ndarray:
    rng = np.random.default_rng(seed)
    psi = rng.standard_normal(1 << n) + 1j * rng.standard_normal(1 << n)
    return (psi / np.linalg.norm(psi)).astype(dtype)


def snapshot(repo):
    """What a failed call must leave unchanged: refs, the listing, the history length."""
    return (
        repo.branches(),
        repo.tags(),
        [(s.path, s.manifest) for s in repo.ls()],
        len(repo.log()),
    )
