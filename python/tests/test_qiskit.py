"""Real states from Qiskit Aer (GHZ, QFT, a random circuit, QAOA, a noisy density matrix, a
batch of noisy trajectories) stored and read back bit for bit through the Qiskit helpers."""

import numpy as np
import pytest

qiskit = pytest.importorskip("qiskit")
aer = pytest.importorskip("qiskit_aer")

from qiskit import QuantumCircuit, transpile  # noqa: E402
from qiskit.circuit.library import QFTGate  # noqa: E402
from qiskit.circuit.random import random_circuit  # noqa: E402
from qiskit.quantum_info import DensityMatrix, Statevector  # noqa: E402
from qiskit_aer import AerSimulator  # noqa: E402
from qiskit_aer.noise import NoiseModel, depolarizing_error  # noqa: E402

import qstore  # noqa: E402
from qstore.qiskit import (  # noqa: E402
    load_density_matrix,
    load_statevector,
    save_density_matrix,
    save_result,
    save_statevector,
    save_statevector_dict,
)
from conftest import same_bytes  # noqa: E402


def ghz(n):
    qc = QuantumCircuit(n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    return qc


def qft(n):
    qc = QuantumCircuit(n)
    qc.x([0, n // 2])
    qc.append(QFTGate(n), range(n))
    return qc


def qaoa(n, p=2, seed=5):
    rng = np.random.default_rng(seed)
    edges = [(i, (i + 1) % n) for i in range(n)] + [(i, (i + 3) % n) for i in range(0, n, 2)]
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for _ in range(p):
        gamma, beta = rng.uniform(0, np.pi, 2)
        for a, b in edges:
            qc.rzz(2 * gamma, a, b)
        qc.rx(2 * beta, range(n))
    return qc


BASIS = ["h", "x", "sx", "rx", "rz", "cx"]


def aer_statevector(qc, **opts):
    sim = AerSimulator(method="statevector", **opts)
    qc = transpile(qc, sim)
    qc.save_statevector()
    return sim.run(qc).result()


CIRCUITS = {
    "ghz16": lambda: ghz(16),
    "qft14": lambda: qft(14),
    "random12": lambda: random_circuit(12, 12, seed=11),
    "qaoa12": lambda: qaoa(12),
}


@pytest.mark.parametrize("name", sorted(CIRCUITS))
def test_aer_state_vectors_round_trip(repo, name):
    result = aer_statevector(CIRCUITS[name]())
    sv = result.get_statevector()
    cid = save_statevector(repo, f"aer/{name}", sv, tags={"circuit": name})
    assert repo.resolve("main") == cid
    back = load_statevector(repo, f"aer/{name}")
    assert isinstance(back, Statevector)
    assert same_bytes(back.data, sv.data)
    info = repo.info(f"aer/{name}")
    assert info.tags == {"circuit": name, "source": "qiskit", "qubit_order": "little"}
    # The Result itself is accepted too.
    save_statevector(repo, f"aer/{name}_result", result)
    assert same_bytes(repo.get(f"aer/{name}_result"), sv.data)
    # Probabilities streamed from the store agree with Qiskit's.
    probs = sv.probabilities()
    top = repo.top_k(f"aer/{name}", 3)
    assert top[0][1] == pytest.approx(probs.max(), abs=1e-12)
    assert repo.marginals(f"aer/{name}", [0, 1]) == pytest.approx(
        sv.probabilities([0, 1]), abs=1e-12
    )


def test_ghz_is_stored_sparse_and_qubit_order_matches_qiskit(repo):
    sv = Statevector(aer_statevector(ghz(16)).get_statevector())
    with repo.transaction(message="ghz") as tx:
        info = save_statevector(tx, "ghz16", sv)
        one = QuantumCircuit(3)
        one.x(0)  # qubit 0 set: basis index 1 in Qiskit's (and qstore's) order
        save_statevector(tx, "x0", Statevector(one))
    assert info.encoding == "sparse" and info.nnz == 2
    assert repo.get_sparse("x0").to_dict(bitstrings=True) == {"001": 1.0}
    assert same_bytes(repo.get("ghz16"), sv.data)


def test_aer_statevector_dict(repo):
    sim = AerSimulator(method="statevector")
    qc = transpile(ghz(20), sim)
    qc.save_statevector_dict()
    d = sim.run(qc).result().data()["statevector"]  # the label save_statevector_dict uses
    assert all(k.startswith("0x") for k in d)
    save_statevector_dict(repo, "ghz20", d, n_qubits=20)
    assert repo.info("ghz20").encoding == "sparse"
    s = repo.get_sparse("ghz20")
    assert s.n_qubits == 20 and list(s.indices) == [0, (1 << 20) - 1]
    assert s.values.tolist() == pytest.approx([2**-0.5, 2**-0.5])


def test_noisy_density_matrix(repo):
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.02, 1), ["h", "rx", "sx", "x"])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.05, 2), ["cx"])
    sim = AerSimulator(method="density_matrix", noise_model=noise)
    qc = transpile(qaoa(6, p=1), basis_gates=BASIS)
    qc.save_density_matrix()
    result = sim.run(qc).result()
    rho = result.data()["density_matrix"]
    assert isinstance(rho, DensityMatrix) and rho.purity() < 0.99
    save_density_matrix(repo, "noisy/rho", rho)
    info = repo.info("noisy/rho")
    assert info.kind == "density_matrix" and info.n_qubits == 6
    assert same_bytes(load_density_matrix(repo, "noisy/rho").data, rho.data)
    save_density_matrix(repo, "noisy/rho_result", result)
    assert same_bytes(repo.get("noisy/rho_result"), rho.data)
    with pytest.raises(qstore.InvalidState, match="density_matrix|statevector"):
        load_statevector(repo, "noisy/rho")


def test_noisy_trajectories_are_deduplicated(repo):
    """64 Monte-Carlo trajectories (one state per shot): the error-free ones are identical
    and stored once."""
    n = 14
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.002, 1), ["h", "x", "sx", "rx", "rz"])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 2), ["cx"])
    sim = AerSimulator(method="statevector", noise_model=noise, seed_simulator=7)
    qc = transpile(qft(n), basis_gates=BASIS)
    qc.save_statevector(pershot=True)
    result = sim.run(qc, shots=64).result()
    states = result.data()["statevector"]
    assert len(states) == 64
    infos = save_result(repo, "traj", result, tags={"noise": "depolarizing"})
    assert len(infos) == 64
    for k, sv in enumerate(states):
        assert same_bytes(repo.get(f"traj/statevector/{k:05d}"), sv.data)
    distinct = {sv.data.tobytes() for sv in states}
    assert len({i.manifest for i in infos.values()}) == len(distinct)
    assert len(distinct) < 64  # some trajectories had no error event
    s = repo.stats()
    assert s["unique_chunk_bytes"] <= len(distinct) * (16 << n)


def test_aer_noisy_density_matrix_is_stored_near_hermitian_bit_exact(repo):
    """Aer's density matrices are Hermitian only up to rounding: stored as the upper triangle
    plus the exact bit-pattern residual of the lower one, smaller than dense, bit for bit."""
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["u", "rz", "sx", "x", "h"])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.02, 2), ["cx"])
    sim = AerSimulator(method="density_matrix", noise_model=noise)
    qc = transpile(random_circuit(9, 6, max_operands=2, seed=3), basis_gates=["u", "cx", "rz", "sx", "x", "h"])
    qc.save_density_matrix()
    rho = np.ascontiguousarray(sim.run(qc).result().data()["density_matrix"].data)
    assert not np.array_equal(rho, rho.conj().T), "Aer's matrix is not exactly Hermitian"
    stored = {}
    for path, dense in [("rho/auto", False), ("rho/dense", True)]:
        with repo.transaction(message=path) as tx:
            info = tx.put(path, rho, dense=dense)
            stored[path] = (info.encoding, tx.stats()["new_stored_bytes"])
    assert stored["rho/auto"][0] == "near-hermitian" and stored["rho/dense"][0] == "dense"
    assert stored["rho/auto"][1] < 0.75 * stored["rho/dense"][1], stored
    assert same_bytes(repo.get("rho/auto"), rho)
    assert same_bytes(repo.get("rho/dense"), rho)


@pytest.mark.parametrize("name", ["qft14", "qaoa12"])
def test_aer_state_vectors_lossy(repo, name):
    sv = aer_statevector(CIRCUITS[name]()).get_statevector().data
    repo.put(f"{name}/exact", sv)
    for mode, bound in [("max-infidelity=1e-6", 1e-6), ("max-infidelity=1e-3", 1e-3), ("f32", None)]:
        repo.put(f"{name}/{mode.split('=')[0]}-{bound}", sv, lossy=mode)
        info = repo.info(f"{name}/{mode.split('=')[0]}-{bound}")
        back = repo.get(f"{name}/{mode.split('=')[0]}-{bound}")
        assert back.dtype == sv.dtype and back.shape == sv.shape
        f = abs(np.vdot(sv, back)) ** 2 / (np.vdot(sv, sv).real * np.vdot(back, back).real)
        assert info.lossy == mode and info.fidelity == pytest.approx(f, abs=1e-9)
        if bound is not None:
            assert 1 - info.fidelity <= bound
    exact = repo.info(f"{name}/exact")
    assert exact.lossy is None and exact.fidelity == 1.0
    assert same_bytes(repo.get(f"{name}/exact"), sv)
    with pytest.raises(ValueError, match="meaningless"):
        repo.put(f"{name}/bad", sv, lossy="max-infidelity=1e-14")
