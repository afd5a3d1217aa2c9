"""The public API on plain NumPy arrays: round trips, ranges, sparse input, history, errors,
threads and asynchronous checkpoints."""

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import qstore
from conftest import random_state, same_bytes, snapshot


DTYPES = [
    np.complex64,
    np.complex128,
    np.float32,
    np.float64,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.bool_,
]


def test_import_needs_only_numpy():
    code = (
        "import sys, qstore; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'qiskit', 'pennylane', 'cirq'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
    assert qstore.__version__


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_arrays_of_every_dtype_round_trip_bit_exact(repo, dtype):
    rng = np.random.default_rng(1)
    shapes = [(0,), (1,), (7, 3), (2, 3, 5), (1000,)]
    with repo.transaction("main", message="arrays") as tx:
        for i, shape in enumerate(shapes):
            a = (rng.standard_normal(shape) * 100).astype(dtype)
            tx.put(f"a/{i}", a, kind="array")
    for i, shape in enumerate(shapes):
        back = repo.get(f"a/{i}")
        assert back.shape == shape and back.dtype == np.dtype(dtype)
    a = (rng.standard_normal((33, 3)) * 100).astype(dtype)
    repo.put("one", a, kind="array")
    assert same_bytes(repo.get("one"), a)


@pytest.mark.parametrize("n", [1, 2, 5, 12, 17])
@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_state_vectors_round_trip_bit_exact(repo, n, dtype):
    psi = random_state(n, seed=n, dtype=dtype)
    psi[0] = complex(-0.0, 0.0)  # negative zero must survive
    with repo.transaction(message=f"n={n}") as tx:
        info = tx.put(f"sv/{n}", psi, tags={"n": n})
    assert info.kind == "statevector" and info.n_qubits == n and info.tags == {"n": str(n)}
    back = repo.get(f"sv/{n}")
    assert same_bytes(back, psi)
    assert repo.info(f"sv/{n}").dtype == np.dtype(dtype).name


def test_density_matrices_hermitian_and_not(repo):
    rng = np.random.default_rng(3)
    a = rng.standard_normal((32, 32)) + 1j * rng.standard_normal((32, 32))
    rho = a @ a.conj().T
    rho /= np.trace(rho)
    not_h = a / 10
    with repo.transaction() as tx:
        h = tx.put("rho", rho)
        nh = tx.put("not_hermitian", not_h)
    assert h.kind == "density_matrix"
    assert nh.encoding == "dense"
    assert same_bytes(repo.get("rho"), rho)
    assert same_bytes(repo.get("not_hermitian"), not_h)


def test_ranges_and_reading_into_a_caller_buffer(repo):
    psi = random_state(16)
    repo.put("psi", psi)
    part = repo.get("psi", start=100, stop=60000)
    assert same_bytes(part, psi[100:60000])
    assert same_bytes(repo.get("psi", stop=5), psi[:5])
    assert same_bytes(repo.get("psi", start=65530), psi[65530:])
    out = np.empty_like(psi)
    got = repo.get("psi", out=out)
    assert got is out and same_bytes(out, psi)
    with pytest.raises(qstore.InvalidState, match="outside"):
        repo.get("psi", start=10, stop=1 << 20)
    with pytest.raises(qstore.InvalidState, match="dtype"):
        repo.get("psi", out=np.empty(1 << 16, dtype=np.complex64))
    with pytest.raises(qstore.InvalidState, match="contiguous"):
        repo.get("psi", out=np.empty((1 << 17), dtype=np.complex128)[::2])


def test_non_contiguous_and_big_endian_inputs_are_converted(repo):
    a = np.arange(64, dtype=np.float64).reshape(8, 8)
    repo.put("t", a.T)
    assert same_bytes(repo.get("t"), np.ascontiguousarray(a.T))
    big = np.arange(10, dtype=">i4")
    repo.put("big", big)
    back = repo.get("big")
    assert back.dtype == np.dtype("<i4") and np.array_equal(back, big)
    repo.put("list", [1.5, 2.5])
    assert same_bytes(repo.get("list"), np.array([1.5, 2.5]))


def test_sparse_input_in_every_key_form(repo):
    amp = 2 ** -0.5
    with repo.transaction(message="sparse") as tx:
        ghz = tx.put_sparse("ghz50", {0: amp, (1 << 50) - 1: amp}, n_qubits=50)
        tx.put_sparse("bits", {"000": amp, "101": -amp})
        tx.put_sparse("hex", {"0x0": amp, "0x5": amp}, n_qubits=3)
        tx.put_sparse("pair", (np.array([5, 0]), np.array([amp, amp])), n_qubits=3, dtype="complex64")
    assert ghz.encoding == "sparse" and ghz.nnz == 2 and ghz.n_qubits == 50
    s = repo.get_sparse("ghz50")
    assert s.n_qubits == 50 and list(s.indices) == [0, (1 << 50) - 1]
    assert s.to_dict() == {0: amp, (1 << 50) - 1: amp}
    assert repo.get_sparse("bits").to_dict(bitstrings=True) == {"000": amp, "101": -amp}
    assert np.array_equal(repo.get("bits"), np.array([amp, 0, 0, 0, 0, -amp, 0, 0]))
    assert same_bytes(repo.get("hex").astype(np.complex64), repo.get("pair"))
    # A 50-qubit state is never materialised: refused with the reason, ranges still work.
    with pytest.raises(qstore.InvalidState, match="too large to materialise"):
        repo.get("ghz50")
    tail = repo.get("ghz50", start=(1 << 50) - 4, stop=1 << 50)
    assert np.array_equal(tail, np.array([0, 0, 0, amp]))
    assert repo.top_k("ghz50", 2) == [(0, pytest.approx(0.5)), ((1 << 50) - 1, pytest.approx(0.5))]
    assert repo.marginals("ghz50", [0]).tolist() == pytest.approx([0.5, 0.5])
    assert repo.norm("ghz50") == pytest.approx(1.0)


def test_bad_sparse_input_is_refused(repo):
    before = snapshot(repo)
    with repo.transaction() as tx:
        with pytest.raises(qstore.InvalidState, match="bit string"):
            tx.put_sparse("x", {"012": 1.0})
        with pytest.raises(qstore.InvalidState, match="n_qubits"):
            tx.put_sparse("x", {0: 1.0})
        with pytest.raises(qstore.InvalidState):
            tx.put_sparse("x", {8: 1.0}, n_qubits=3)
        with pytest.raises(qstore.InvalidState, match="different lengths"):
            tx.put_sparse("x", {"01": 1.0, "1": 0.0})
        tx.abort()
    assert snapshot(repo) == before


def test_history_refs_and_diff(repo):
    psi = random_state(10)
    c1 = repo.put("s/psi", psi, message="first", metadata={"step": 1})
    repo.tag("v1")
    repo.branch("exp", "v1")
    psi2 = psi.copy()
    psi2[:4] = 0
    c2 = repo.put("s/psi", psi2, branch="exp", message="second")
    log = repo.log("exp")
    assert [c.id for c in log[:2]] == [c2, c1]
    assert log[0].message == "second" and log[1].metadata == {"step": "1"}
    assert log[0].time.tzinfo is not None and log[0].parents == (c1,)
    assert repo.tags() == {"v1": c1} and repo.branches()["exp"] == c2
    assert repo.resolve("v1") == c1 and repo.resolve(c1[:10]) == c1
    assert same_bytes(repo.get("s/psi", "v1"), psi)
    assert same_bytes(repo.get("s/psi", "exp"), psi2)
    d = repo.diff("v1", "exp")
    assert len(d) == 1 and "s/psi" in str(d[0])
    assert [s.path for s in repo.ls("s", ref="exp")] == ["s/psi"]
    assert repo.fidelity("s/psi", "s/psi", ref_a="v1", ref_b="exp") < 1.0
    with pytest.raises(qstore.Conflict):
        repo.tag("v1", "exp")
    repo.delete_branch("exp")
    assert "exp" not in repo.branches()
    with pytest.raises(qstore.NotFound):
        repo.get("s/psi", "exp")


def test_a_failing_transaction_commits_nothing(repo):
    repo.put("keep", random_state(4))
    before = snapshot(repo)
    with pytest.raises(RuntimeError):
        with repo.transaction(message="never") as tx:
            tx.put("lost", random_state(5))
            raise RuntimeError("simulation crashed")
    assert snapshot(repo) == before
    with pytest.raises(qstore.InvalidState, match="already been committed or aborted"):
        tx.put("late", random_state(2))


def test_errors_are_typed_and_change_nothing(repo):
    repo.put("keep", random_state(6))
    before = snapshot(repo)
    assert issubclass(qstore.NotFound, qstore.Error) and issubclass(qstore.NotFound, LookupError)
    assert issubclass(qstore.InvalidState, ValueError)
    with pytest.raises(qstore.NotFound, match="missing"):
        repo.get("missing")
    with pytest.raises(qstore.NotFound):
        repo.get("keep", "no-such-branch")
    with pytest.raises(qstore.InvalidState, match="power of two|2\\^n"):
        repo.put("bad", np.ones(3, dtype=complex))
    with pytest.raises(qstore.InvalidState, match="NaN|finite"):
        repo.put("nan", np.array([np.nan, 1], dtype=complex))
    with pytest.raises(qstore.InvalidState):
        repo.put("../escape", random_state(2))
    with pytest.raises(qstore.InvalidState, match="not supported"):
        repo.put("obj", np.array(["a", "b"]))
    with pytest.raises(qstore.InvalidState, match="kind"):
        repo.put("k", random_state(2), kind="banana")
    assert snapshot(repo) == before
    with pytest.raises(qstore.NotFound):
        qstore.open(os.path.join(repo.address, "nowhere"), create=False)


def test_memory_repositories_and_qstore_repo(tmp_path, monkeypatch):
    m = qstore.open("memory://pytest-mem")
    m.put("x", random_state(3))
    assert qstore.open("memory://pytest-mem").info("x").n_qubits == 3
    monkeypatch.setenv("QSTORE_REPO", str(tmp_path / "env"))
    r = qstore.open()
    r.put("y", random_state(3))
    assert os.path.isdir(tmp_path / "env")
    monkeypatch.delenv("QSTORE_REPO")
    with pytest.raises(qstore.InvalidState, match="QSTORE_REPO"):
        qstore.open()


def test_the_gil_is_released_during_io(repo):
    """With a long switch interval the interpreter does not preempt the main thread, and the
    worker gives the GIL back after every step (sleep): so it can only count while a qstore
    call has released the GIL."""
    psi = random_state(22)  # 64 MiB
    count = [0]
    stop = threading.Event()
    started = threading.Event()

    def worker():
        started.set()
        while not stop.is_set():
            count[0] += 1
            time.sleep(0.0001)  # releases the GIL

    old = sys.getswitchinterval()
    t = threading.Thread(target=worker)
    t.start()
    started.wait()
    sys.setswitchinterval(30.0)
    try:
        c0 = count[0]
        repo.put("big", psi)
        c1 = count[0]
        back = repo.get("big")
        c2 = count[0]
    finally:
        sys.setswitchinterval(old)
        stop.set()
        t.join()
    assert c1 > c0, "the worker never ran during put"
    assert c2 > c1, "the worker never ran during get"
    assert same_bytes(back, psi)


def test_threads_commit_to_one_branch_concurrently(repo):
    errors = []

    def writer(k):
        try:
            for i in range(5):
                repo.put(f"t{k}/s{i}", random_state(8, seed=k * 10 + i), message=f"{k}/{i}")
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(repo.ls()) == 20 and len(repo.log()) == 21
    for k in range(4):
        for i in range(5):
            assert same_bytes(repo.get(f"t{k}/s{i}"), random_state(8, seed=k * 10 + i))


def test_async_checkpoint(repo):
    psi = random_state(18)
    p = repo.put_async("ckpt/0", psi, message="async", metadata={"gate": 10})
    psi[:] = 0  # the caller may reuse its buffer at once: the state was copied
    cid = p.wait()
    assert p.done() and repo.resolve("main") == cid
    assert same_bytes(repo.get("ckpt/0"), random_state(18))
    assert repo.log()[0].metadata == {"gate": "10"}
    with pytest.raises(qstore.InvalidState):
        repo.put_async("bad", np.ones(3, dtype=complex))


def test_maintenance_reports(repo):
    psi = random_state(14)
    for i in range(3):
        repo.put(f"copies/{i}", psi)  # deduplicated
    s = repo.stats()
    assert s["dedup_ratio"] >= 2.9 and s["files"] < 20
    assert "hits" in s["cache"]
    assert repo.fsck(full=True)["problems"] == []
    r = repo.gc(grace=0, dry_run=True)
    assert r["dry_run"] is True
    repo.set_cache_bytes("16MiB")
    repo.clear_cache()


def test_many_small_commits_stay_few_files_and_repack(repo):
    v = np.zeros(16, dtype=complex)
    for k in range(300):
        v[:] = 0
        v[0], v[1 + k % 15] = 1, 1e-3 * (k + 1)
        repo.put(f"traj/t{k:03}", v)
    s = repo.stats()
    assert s["format_version"] == 4 and len(s["repository_id"]) == 36
    assert s["files"] < 40 and s["packs"] < 20, s
    r = repo.repack()
    assert r["packs_after"] <= 2, r
    assert len(repo.ls("traj")) == 300
    assert repo.get("traj/t123")[1 + 123 % 15] == 1e-3 * 124
    assert repo.fsck(full=True)["problems"] == []


def test_a_version_1_repository_reads_refuses_changes_and_upgrades(tmp_path):
    import shutil

    src = os.path.join(os.path.dirname(__file__), "..", "..", "crates", "qstore", "tests",
                       "fixtures", "v1", "repo")
    dest = tmp_path / "old"
    shutil.copytree(src, dest)
    old = qstore.open(dest, create=False)
    assert old.get("runs/a/psi").shape == (64,)
    with pytest.raises(qstore.InvalidState, match="qstore upgrade"):
        old.put("new", np.array([1, 0], dtype=complex))
    r = qstore.upgrade(dest)
    assert (r["from_version"], r["to_version"], r["changed"]) == (1, 4, True)
    new = qstore.open(dest, create=False)
    new.put("new", np.array([1, 0], dtype=complex))
    log = new.log()
    assert len(log) == 5 and log[1].message == "drop ghz"
    assert same_bytes(new.get("runs/a/psi", ref="v1"), old.get("runs/a/psi", ref="v1"))


def test_wide_sparse_states_round_trip(tmp_path):
    """States of more than 64 qubits go in and come out with Python-int indices."""
    repo = qstore.open(tmp_path / "wide")
    n = 300
    amps = {0: 0.6, (1 << 299) | 5: 0.8j, "1" * n: 0.0 + 0j}
    amps = {k: v for k, v in amps.items() if v != 0}
    with repo.transaction("main", message="wide") as tx:
        tx.put_sparse("w", amps, n_qubits=n)
    s = repo.get_sparse("w")
    assert s.n_qubits == n
    assert list(s.indices) == [0, (1 << 299) | 5]
    np.testing.assert_array_equal(s.values, [0.6, 0.8j])
    info = repo.info("w")
    assert info.encoding == "sparse" and info.dense_bytes == 16 << n
    with pytest.raises(qstore.InvalidState):
        with repo.transaction("main") as tx:
            tx.put_sparse("bad", {1 << n: 1.0}, n_qubits=n)
    with pytest.raises(qstore.InvalidState):
        repo.get("w")  # no dense form
