"""qstore-sim (`qstore run`) against Qiskit Aer: the same circuits (QFT, GHZ, Grover,
Bernstein-Vazirani, QAOA, random circuits, 2-22 qubits, and the QASMBench circuits in
../shared/circuits) give the same final state (fidelity > 1 - 1e-10, no qubit reordering) and
the same noiseless measurement distribution."""

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")
from qiskit import QuantumCircuit, qasm2, transpile  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402

import qstore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QSTORE = os.environ.get("QSTORE_BIN", str(ROOT / "target" / "debug" / "qstore"))
QASMBENCH = ROOT.parent / "shared" / "circuits" / "qasmbench"

if not os.path.exists(QSTORE):
    pytest.skip(f"the qstore binary is not built ({QSTORE}); cargo build first", allow_module_level=True)


def run_qstore(tmp_path, source: str, name: str, *args: str) -> np.ndarray:
    f = tmp_path / f"{name}.qasm"
    f.write_text(source)
    repo = tmp_path / "states"
    out = subprocess.run(
        [QSTORE, "--repo", str(repo), "run", str(f), "--branch", name, *args],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return qstore.open(repo).get("final", name)


def aer_state(qc: QuantumCircuit) -> np.ndarray:
    sim = AerSimulator(method="statevector")
    qc = qc.copy()
    qc.remove_final_measurements()
    qc.save_statevector()
    return np.asarray(sim.run(transpile(qc, sim, optimization_level=0)).result().get_statevector())


def check(tmp_path, qc: QuantumCircuit, name: str, *args: str) -> None:
    qc = qc.copy()
    qc.remove_final_measurements()
    ours = run_qstore(tmp_path, qasm2.dumps(qc), name, *args)
    theirs = aer_state(qc)
    fid = abs(np.vdot(theirs, ours)) ** 2
    assert fid > 1 - 1e-10, f"{name}: fidelity {fid}"
    np.testing.assert_allclose(np.abs(ours) ** 2, np.abs(theirs) ** 2, atol=1e-10)


def qft(n):
    qc = QuantumCircuit(n)
    qc.x([0, n // 2])
    for j in reversed(range(n)):
        qc.h(j)
        for k in reversed(range(j)):
            qc.cp(np.pi / 2 ** (j - k), k, j)
    for j in range(n // 2):
        qc.swap(j, n - 1 - j)
    return qc


def ghz(n):
    qc = QuantumCircuit(n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    return qc


def grover3():
    qc = QuantumCircuit(3)
    qc.h(range(3))
    for _ in range(2):
        qc.x(1)  # oracle marks |101>
        qc.h(2)
        qc.ccx(0, 1, 2)
        qc.h(2)
        qc.x(1)
        qc.h(range(3))
        qc.x(range(3))
        qc.h(2)
        qc.ccx(0, 1, 2)
        qc.h(2)
        qc.x(range(3))
        qc.h(range(3))
    return qc


def bv(secret):
    n = len(secret)
    qc = QuantumCircuit(n + 1)
    qc.x(n)
    qc.h(range(n + 1))
    for i, b in enumerate(reversed(secret)):
        if b == "1":
            qc.cx(i, n)
    qc.h(range(n))
    return qc


def qaoa(n, p=2, seed=3):
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for _ in range(p):
        g, b = rng.uniform(0, np.pi, 2)
        for i in range(n):
            qc.rzz(2 * g, i, (i + 2) % n)
        qc.rx(2 * b, range(n))
    return qc


def random_circuit(n, depth, seed):
    """Random layers of every built-in gate family, with random qubits and angles."""
    rng = np.random.default_rng(seed)
    one = ["h", "x", "y", "z", "s", "sdg", "t", "tdg", "sx", "sxdg", "id"]
    rot = ["rx", "ry", "rz", "p"]
    two = ["cx", "cy", "cz", "ch", "swap"]
    two_rot = ["cp", "crx", "cry", "crz", "rzz", "rxx"]
    qc = QuantumCircuit(n)
    for _ in range(depth):
        for q in range(n):
            kind = rng.integers(4)
            if kind == 0:
                getattr(qc, one[rng.integers(len(one))])(q)
            elif kind == 1:
                getattr(qc, rot[rng.integers(len(rot))])(rng.uniform(-np.pi, np.pi), q)
            elif kind == 2:
                qc.u(*rng.uniform(-np.pi, np.pi, 3), q)
            else:
                a, b = rng.choice(n, 2, replace=False)
                if rng.integers(2):
                    getattr(qc, two[rng.integers(len(two))])(int(a), int(b))
                else:
                    getattr(qc, two_rot[rng.integers(len(two_rot))])(rng.uniform(-np.pi, np.pi), int(a), int(b))
        if n >= 3:
            a, b, c = (int(x) for x in rng.choice(n, 3, replace=False))
            (qc.ccx if rng.integers(2) else qc.cswap)(a, b, c)
    return qc


CIRCUITS = {
    "qft2": lambda: qft(2),
    "qft12": lambda: qft(12),
    "qft22": lambda: qft(22),
    "ghz22": lambda: ghz(22),
    "grover3": grover3,
    "bv16": lambda: bv("101100111010110"),
    "qaoa14": lambda: qaoa(14),
    "random4": lambda: random_circuit(4, 12, 1),
    "random10": lambda: random_circuit(10, 14, 2),
    "random16": lambda: random_circuit(16, 10, 3),
}


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_generated_circuits_match_aer(tmp_path, name):
    check(tmp_path, CIRCUITS[name](), name)


def w_state(n):
    qc = QuantumCircuit(n)
    qc.x(n - 1)
    for i in reversed(range(1, n)):
        qc.cry(2 * np.arccos(np.sqrt(1 / (i + 1))), i, i - 1)
        qc.cx(i - 1, i)
    return qc


# The sparse engine on every circuit small enough for it in a debug build, and on 24-qubit
# structured ones; the dense engine on all of them.
SPARSE_CIRCUITS = {k: v for k, v in CIRCUITS.items() if k not in ("qft22",)}
SPARSE_CIRCUITS.update({"ghz24": lambda: ghz(24), "w24": lambda: w_state(24), "bv23": lambda: bv("1011001110101101110010")})


@pytest.mark.parametrize("name", sorted(SPARSE_CIRCUITS))
@pytest.mark.parametrize("method", ["sparse", "dense"])
def test_sparse_and_dense_engines_match_aer(tmp_path, name, method):
    check(tmp_path, SPARSE_CIRCUITS[name](), name, "--method", method)


def test_auto_switches_to_dense_on_qft20_of_a_superposition(tmp_path):
    qc = QuantumCircuit(20)
    qc.h(range(20))
    qc.compose(qft(20), inplace=True)
    f = tmp_path / "qft.qasm"
    f.write_text(qasm2.dumps(qc))
    repo = tmp_path / "states"
    out = subprocess.run(
        [QSTORE, "--repo", str(repo), "--json", "run", str(f)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    import json

    report = json.loads(out.stdout)
    assert report["engine"] == "dense" and report["switched_to_dense_at"] is not None, report
    ours = qstore.open(repo).get("final")
    fid = abs(np.vdot(aer_state(qc), ours)) ** 2
    assert fid > 1 - 1e-10, fid


def test_wide_sparse_states_read_back_in_python(tmp_path):
    n = 100
    src = 'OPENQASM 2.0;\ninclude "qelib1.inc";\n' + f"qreg q[{n}];\nh q[0];\n"
    src += "".join(f"cx q[{i}],q[{i + 1}];\n" for i in range(n - 1))
    f = tmp_path / "ghz.qasm"
    f.write_text(src)
    repo = tmp_path / "states"
    out = subprocess.run([QSTORE, "--repo", str(repo), "run", str(f)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    r = qstore.open(repo)
    s = r.get_sparse("final")
    assert s.n_qubits == n and len(s) == 2
    assert list(s.indices) == [0, 2**n - 1]
    np.testing.assert_allclose(s.values, [2**-0.5, 2**-0.5], atol=1e-15)
    assert s.to_dict(bitstrings=True)["1" * n] == pytest.approx(2**-0.5)
    info = r.info("final")
    assert info.encoding == "sparse"
    assert info.dense_bytes == 16 << n  # exact, though no dense form exists


def qasmbench_files():
    if not QASMBENCH.exists():
        return []
    out = []
    for f in sorted(QASMBENCH.glob("*/*/*.qasm")):
        text = f.read_text()
        lines = [l.strip() for l in text.splitlines()]
        # Terminal measurements only (they are removed); mid-circuit ones, resets and `if`
        # make the state random and are covered by the Rust tests.
        last_gate = max((i for i, l in enumerate(lines) if l and not l.startswith(("measure", "//", "barrier"))), default=0)
        if any(l.startswith("measure") for l in lines[: last_gate + 1]) or re.search(r"\b(if|reset)\b", text):
            continue
        if os.path.getsize(f) > 2_000_000:
            continue  # hhl_n10 and friends: hundreds of thousands of gates, slow in Aer's parser
        out.append(f)
    return out


@pytest.mark.parametrize("path", qasmbench_files(), ids=lambda p: p.parent.name)
def test_qasmbench_circuits_match_aer(tmp_path, path):
    text = path.read_text()
    try:
        qc = qasm2.load(str(path), custom_instructions=qasm2.LEGACY_CUSTOM_INSTRUCTIONS)
    except Exception as e:  # a file Qiskit itself refuses is not a comparison
        pytest.skip(f"Qiskit cannot load it: {e}")
    stripped = "\n".join(l for l in text.splitlines() if not l.strip().startswith("measure"))
    ours = run_qstore(tmp_path, stripped, path.parent.name.replace("_", "-"))
    theirs = aer_state(qc)
    fid = abs(np.vdot(theirs, ours)) ** 2
    assert fid > 1 - 1e-10, f"{path.name}: fidelity {fid}"


def test_complex64_runs_match_aer_to_single_precision(tmp_path):
    qc = qft(14)
    f = tmp_path / "qft14.qasm"
    f.write_text(qasm2.dumps(qc))
    repo = tmp_path / "states"
    out = subprocess.run(
        [QSTORE, "--repo", str(repo), "run", str(f), "--dtype", "complex64"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    ours = qstore.open(repo).get("final")
    assert ours.dtype == np.complex64
    fid = abs(np.vdot(aer_state(qc), ours.astype(np.complex128))) ** 2
    assert fid > 1 - 1e-6, fid
