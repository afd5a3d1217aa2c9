"""States written in parts by MPI ranks and read back with any rank count (`qstore.mpi`, real
OpenMPI via mpirun and mpi4py): 4 ranks write a 24-qubit state, 2, 3 and 8 ranks read it
back bit-exact (each its own block); 3 ranks write one too; a rank killed mid-write leaves no
commit, and after the upload is aborted gc reclaims its parts; the committed state
deduplicates against the same state put whole."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import qstore

HERE = Path(__file__).resolve().parent
WORKER = HERE / "mpi" / "worker.py"
sys.path.insert(0, str(HERE / "mpi"))
REQUIRED = os.environ.get("QSTORE_REQUIRE_MPI") == "1"
MPIRUN = shutil.which("mpirun")
try:
    import mpi4py  # noqa: F401
except ImportError:  # pragma: no cover - the test script installs it
    mpi4py = None
if MPIRUN is None or mpi4py is None:
    why = "the MPI tests need mpirun (Debian openmpi-bin) and mpi4py"
    if REQUIRED:
        raise RuntimeError(why)
    pytest.skip(why, allow_module_level=True)

from worker import amplitudes  # noqa: E402


def mpirun(np_, *args, check=True):
    env = dict(os.environ, OMPI_MCA_btl_vader_single_copy_mechanism="none",
               OMPI_MCA_rmaps_base_oversubscribe="1", PYTHONUNBUFFERED="1")
    out = subprocess.run(
        [MPIRUN, "--allow-run-as-root", "--oversubscribe", "-np", str(np_),
         sys.executable, str(WORKER), *map(str, args)],
        capture_output=True, text=True, env=env, timeout=600,
    )
    if check:
        assert out.returncode == 0, out.stdout + out.stderr
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    repo = tmp_path_factory.mktemp("mpi") / "repo"
    qstore.open(repo)
    out = mpirun(4, "write", repo, "run/psi", 24, 7)
    assert "commit" in out.stdout
    return repo


@pytest.mark.parametrize("ranks", [2, 3, 8])
def test_written_by_4_read_by_any_count(written, ranks):
    out = mpirun(ranks, "read", written, "run/psi", 24, 7)
    assert "bit-exact" in out.stdout


def test_written_by_3_and_dedup_against_a_whole_put(written):
    out = mpirun(3, "write", written, "run/phi", 22, 3)
    assert "commit" in out.stdout
    assert "bit-exact" in mpirun(4, "read", written, "run/phi", 22, 3).stdout
    assert "bit-exact" in mpirun(1, "read", written, "run/phi", 22, 3).stdout
    r = qstore.open(written)
    info = r.info("run/psi")
    assert info.shape == (1 << 24,) and info.kind == "statevector"
    whole = amplitudes(0, 1 << 24, 7)
    assert r.get("run/psi", start=5_000_000, stop=5_000_100).tobytes() == whole[5_000_000:5_000_100].tobytes()
    with r.transaction("main", message="the same state, whole") as tx:
        tx.put("run/psi-whole", whole, dense=True)
        stats = tx.stats()
    assert stats["new_chunks"] == 0, stats
    assert stats["chunks"] == 256


def test_a_rank_killed_mid_write_commits_nothing_and_gc_reclaims(tmp_path):
    repo = tmp_path / "repo"
    r = qstore.open(repo)
    packs_before = len(list((repo / "packs").glob("*.pack"))) if (repo / "packs").exists() else 0
    log_before = len(r.log())
    out = mpirun(4, "write", repo, "run/psi", 20, 1, 2, check=False)
    assert out.returncode != 0
    r = qstore.open(repo)
    assert len(r.log()) == log_before
    with pytest.raises(qstore.NotFound):
        r.info("run/psi")
    ups = r.uploads()
    assert len(ups) == 1 and ups[0]["completed"] is None
    assert len(ups[0]["parts_stored"]) < 4
    r.abort_upload(ups[0]["spec"]["id"])
    report = r.gc(grace=0)
    assert report["packs_deleted"] >= len(ups[0]["parts_stored"]), report
    packs_after = len(list((repo / "packs").glob("*.pack")))
    assert packs_after == packs_before, (packs_before, packs_after)
    assert r.uploads() == []
    assert r.fsck(full=True)["problems"] == []
