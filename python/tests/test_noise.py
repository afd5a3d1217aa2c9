"""Noisy Monte-Carlo studies (`qstore run --trajectories`) against Qiskit Aer's exact
density-matrix simulation with the same noise model, and readout error against its rate."""

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("qiskit_aer")
from qiskit import QuantumCircuit, qasm2  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.noise import (  # noqa: E402
    NoiseModel,
    amplitude_damping_error,
    depolarizing_error,
    phase_damping_error,
)

import qstore  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
QSTORE = os.environ.get("QSTORE_BIN", str(ROOT / "target" / "debug" / "qstore"))
if not os.path.exists(QSTORE):
    pytest.skip(f"the qstore binary is not built ({QSTORE})", allow_module_level=True)


def qstore_run(tmp_path, qc, *args):
    f = tmp_path / "c.qasm"
    f.write_text(qasm2.dumps(qc))
    repo = tmp_path / "states"
    out = subprocess.run(
        [QSTORE, "--repo", str(repo), "run", str(f), "--branch", "noisy", *args],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    return qstore.open(repo)


def circuit():
    qc = QuantumCircuit(3)
    qc.h(0)
    qc.cx(0, 1)
    qc.rx(0.7, 2)
    qc.cx(1, 2)
    qc.h(1)
    return qc


def test_trajectory_average_matches_aer_density_matrix(tmp_path):
    p1, p2, g, lam = 0.06, 0.1, 0.08, 0.05
    noise = NoiseModel()
    one = depolarizing_error(p1, 1).compose(amplitude_damping_error(g)).compose(phase_damping_error(lam))
    two_d = amplitude_damping_error(g).compose(phase_damping_error(lam))
    two = depolarizing_error(p2, 2).compose(two_d.tensor(two_d))
    noise.add_all_qubit_quantum_error(one, ["h", "rx"])
    noise.add_all_qubit_quantum_error(two, ["cx"])
    qc = circuit()
    exact = qc.copy()
    exact.save_density_matrix()
    rho_aer = np.asarray(
        AerSimulator(method="density_matrix", noise_model=noise).run(exact).result().data()["density_matrix"]
    )
    repo = qstore_run(
        tmp_path,
        qc,
        "--trajectories", "4000",
        "--seed", "11",
        "--noise", f"depolarizing:p1={p1},p2={p2}",
        "--noise", f"amplitude_damping:gamma={g}",
        "--noise", f"phase_damping:lambda={lam}",
        "--save", "counts,density",
    )
    rho = repo.get("study/density_matrix", "noisy")
    assert rho.shape == (8, 8)
    assert abs(np.trace(rho) - 1) < 1e-9
    # Monte-Carlo error ~ 1/sqrt(4000) per entry.
    diff = np.linalg.norm(rho - rho_aer)
    assert diff < 0.05, f"Frobenius distance {diff}"
    # The noiseless state is far from the noisy one (the noise is really applied).
    ideal = np.asarray(qiskit_statevector(qc))
    assert np.linalg.norm(np.outer(ideal, ideal.conj()) - rho_aer) > 0.2


def noise_model(p1, p2, g, lam):
    noise = NoiseModel()
    one = depolarizing_error(p1, 1).compose(amplitude_damping_error(g)).compose(phase_damping_error(lam))
    two_d = amplitude_damping_error(g).compose(phase_damping_error(lam))
    noise.add_all_qubit_quantum_error(one, ["h", "rx", "ry", "x"])
    noise.add_all_qubit_quantum_error(depolarizing_error(p2, 2).compose(two_d.tensor(two_d)), ["cx"])
    return noise


@pytest.mark.parametrize("noisy", [False, True])
def test_density_matrix_mode_matches_aer_exactly(tmp_path, noisy):
    p1, p2, g, lam = (0.03, 0.08, 0.05, 0.04) if noisy else (0, 0, 0, 0)
    qc = QuantumCircuit(4)
    qc.h(0)
    qc.cx(0, 1)
    qc.rx(0.7, 2)
    qc.cx(1, 2)
    qc.ry(-1.1, 3)
    qc.cx(3, 0)
    qc.h(1)
    qc.x(3)
    exact = qc.copy()
    exact.save_density_matrix()
    sim = AerSimulator(method="density_matrix", noise_model=noise_model(p1, p2, g, lam) if noisy else None)
    rho_aer = np.asarray(sim.run(exact).result().data()["density_matrix"])
    args = ["--density-matrix"]
    if noisy:
        args += [
            "--noise", f"depolarizing:p1={p1},p2={p2}",
            "--noise", f"amplitude_damping:gamma={g}",
            "--noise", f"phase_damping:lambda={lam}",
        ]
    repo = qstore_run(tmp_path, qc, *args)
    info = repo.info("final", "noisy")
    assert info.kind == "density_matrix" and info.encoding == "hermitian"
    rho = repo.get("final", "noisy")
    np.testing.assert_allclose(rho, rho_aer, atol=1e-12)


def qiskit_statevector(qc):
    from qiskit.quantum_info import Statevector

    return Statevector(qc).data


def test_readout_error_and_counts(tmp_path):
    qc = QuantumCircuit(2, 2)
    qc.x(0)
    qc.measure([0, 1], [0, 1])
    repo = qstore_run(
        tmp_path, qc, "--trajectories", "500", "--shots-per-trajectory", "8", "--seed", "3",
        "--noise", "readout:p=0.2", "--save", "counts,states",
    )
    counts = repo.get("study/counts", "noisy")
    assert counts.dtype == np.uint64 and counts.sum() == 4000
    # c0 reads 1 with probability 0.8, c1 reads 0 with probability 0.8.
    p_c0 = (counts[1] + counts[3]) / 4000
    p_c1 = (counts[2] + counts[3]) / 4000
    assert abs(p_c0 - 0.8) < 0.03 and abs(p_c1 - 0.2) < 0.03
    # No gate noise: every trajectory's final state is the same, stored once.
    infos = repo.ls("study/trajectories", ref="noisy")
    assert len(infos) == 500 and len({i.manifest for i in infos}) == 1


def test_a_study_is_reproducible_from_its_seed(tmp_path):
    args = ["--trajectories", "50", "--seed", "5", "--noise", "depolarizing:p1=0.1,p2=0.2", "--save", "counts,states"]
    repos = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        repos.append(qstore_run(tmp_path / name, circuit(), *args))
    a, b = repos
    assert np.array_equal(a.get("study/counts", "noisy"), b.get("study/counts", "noisy"))
    paths = [i.path for i in a.ls("study/trajectories", ref="noisy")]
    states = [a.get(p, "noisy").tobytes() for p in paths]
    assert states == [b.get(p, "noisy").tobytes() for p in paths]
    assert 1 < len(set(states)) < 50  # some trajectories had errors, some did not
