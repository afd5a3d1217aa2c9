"""Scratch spaces from Python: handles, pins, quota, commit without re-encoding, cleanup."""

import os

import numpy as np
import pytest

import qstore
from conftest import random_state, same_bytes, snapshot


def files_under(path):
    return sorted(os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs)


def test_scratch_lifecycle(repo, tmp_path):
    repo.put("base", random_state(4))
    before_files = files_under(repo.address)
    rho = np.eye(64, dtype=complex) / 64
    with repo.scratch(quota="64MiB", memory_budget="1MiB") as s:
        h = s.put(rho)
        assert h.info().kind == "density_matrix"
        assert same_bytes(h.get(), rho)
        trajectories = [s.put(random_state(14, seed=i % 8)) for i in range(16)]
        u = s.usage()
        assert u["states"] == 17 and u["disk_bytes"] > 0  # spilled past the 1 MiB budget
        for t in trajectories[4:]:
            t.release()
        assert s.usage()["states"] <= 17
        keep = trajectories[0]
        keep.pin()
        assert keep.pinned
        keep.release()
        assert s.usage()["states"] >= 1
        with repo.transaction(message="best trajectory") as tx:
            info = tx.put_from_scratch("study/best", h)
        assert info.kind == "density_matrix"
    assert s.closed
    assert same_bytes(repo.get("study/best"), rho)
    with pytest.raises(qstore.InvalidState, match="closed|released"):
        h.get()
    # Everything the space wrote is gone; only the commit's packs are new.
    after = set(files_under(repo.address))
    assert not [f for f in after if "/scratch/" in f and not f.endswith(".lease")]


def test_quota_exceeded_stores_nothing(repo):
    with repo.scratch(quota="1MiB") as s:
        s.put(random_state(14))  # 256 KiB
        used = s.usage()
        with pytest.raises(qstore.QuotaExceeded):
            s.put(random_state(17))  # 2 MiB
        assert s.usage() == used


def test_bad_sizes_are_refused(repo):
    for bad in ("lots", "-1G", 0, "1.5XB"):
        with pytest.raises(qstore.InvalidState):
            repo.scratch(quota=bad)
