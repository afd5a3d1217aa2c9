"""PennyLane and Cirq states: stored in qstore's (Qiskit's) qubit order, read back in the
framework's own order bit for bit, and comparable with the same circuit run in Qiskit."""

import numpy as np
import pytest

from conftest import same_bytes


def qiskit_reference(n, ops):
    """The same circuit in Qiskit (little-endian), or None when Qiskit is missing."""
    qiskit = pytest.importorskip("qiskit")
    from qiskit.quantum_info import Statevector

    qc = qiskit.QuantumCircuit(n)
    for op, qubits in ops:
        getattr(qc, op)(*qubits)
    return Statevector(qc).data


OPS = [("h", (0,)), ("cx", (0, 1)), ("x", (2,)), ("ry", (0.3, 1))]


def test_pennylane_state_and_params(repo):
    qml = pytest.importorskip("pennylane")
    from qstore.pennylane import load_params, load_state, save_params, save_state

    dev = qml.device("default.qubit", wires=3)

    @qml.qnode(dev)
    def circuit(theta):
        qml.Hadamard(0)
        qml.CNOT(wires=[0, 1])
        qml.PauliX(2)
        qml.RY(theta, wires=1)
        return qml.state()

    params = qml.numpy.array([0.3], requires_grad=True)
    psi = np.asarray(circuit(params[0]))
    with repo.transaction(message="pennylane") as tx:
        save_state(tx, "pl/psi", psi)
        save_params(tx, "pl/params", params)
    assert same_bytes(load_state(repo, "pl/psi"), psi)
    assert np.array_equal(load_params(repo, "pl/params"), np.asarray(params))
    stored = repo.get("pl/psi")  # qstore order = Qiskit order
    assert np.allclose(stored, qiskit_reference(3, OPS), atol=1e-12)
    assert repo.info("pl/psi").tags["source"] == "pennylane"

    @qml.qnode(qml.device("default.mixed", wires=2))
    def mixed():
        qml.PauliX(0)
        qml.DepolarizingChannel(0.1, wires=1)
        return qml.density_matrix(wires=[0, 1])

    rho = np.asarray(mixed())
    save_state(repo, "pl/rho", rho)
    assert repo.info("pl/rho").kind == "density_matrix"
    assert same_bytes(load_state(repo, "pl/rho"), rho)
    # X on wire 0 (PennyLane's most significant bit) is qubit 0 (lowest bit) in the store.
    assert repo.get("pl/rho")[1, 1].real == pytest.approx(rho[2, 2].real)


def test_cirq_state_vector_and_density_matrix(repo):
    cirq = pytest.importorskip("cirq")
    from qstore.cirq import (
        load_density_matrix,
        load_state_vector,
        save_density_matrix,
        save_state_vector,
    )

    q = cirq.LineQubit.range(3)
    c = cirq.Circuit(
        cirq.H(q[0]), cirq.CNOT(q[0], q[1]), cirq.X(q[2]), cirq.ry(0.3).on(q[1])
    )
    result = cirq.Simulator(dtype=np.complex128).simulate(c, qubit_order=q)
    save_state_vector(repo, "cirq/psi", result)
    psi = result.final_state_vector
    assert same_bytes(load_state_vector(repo, "cirq/psi"), psi)
    assert np.allclose(repo.get("cirq/psi"), qiskit_reference(3, OPS), atol=1e-7)

    c64 = cirq.Simulator().simulate(c, qubit_order=q).final_state_vector  # complex64
    save_state_vector(repo, "cirq/psi64", c64)
    assert same_bytes(load_state_vector(repo, "cirq/psi64"), c64)

    noisy = c.with_noise(cirq.depolarize(0.05))
    dm = cirq.DensityMatrixSimulator(dtype=np.complex128).simulate(noisy, qubit_order=q)
    save_density_matrix(repo, "cirq/rho", dm)
    assert same_bytes(load_density_matrix(repo, "cirq/rho"), dm.final_density_matrix)
