"""Run by `mpirun` from python/tests/test_mpi.py: each rank writes or reads its block of a
state whose amplitude i is a fixed function of i, so any rank can check any range.

    worker.py write REPO PATH QUBITS SEED [DIE_RANK]
    worker.py read  REPO PATH QUBITS SEED
"""

import os
import signal
import sys

import numpy as np
from mpi4py import MPI

import qstore
import qstore.mpi


def amplitudes(start, stop, seed):
    i = np.arange(start, stop, dtype=np.float64)
    return (np.cos(i * 0.37 + seed) + 1j * np.sin(i * 0.11 - seed)) * 1e-3


def main():
    mode, repo_path, path, qubits, seed = sys.argv[1:6]
    n, seed = 1 << int(qubits), int(seed)
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    repo = qstore.open(repo_path)
    start, stop = qstore.mpi.block_range(n, size, rank)
    if mode == "write":
        die = int(sys.argv[6]) if len(sys.argv) > 6 else -1
        local = amplitudes(start, stop, seed)
        if rank == die:
            # Die mid-write: the upload has begun, the other ranks are storing their parts,
            # this one is killed as it starts on its own.
            def killed(*_):
                os.kill(os.getpid(), signal.SIGKILL)

            repo.put_part = killed
        commit = qstore.mpi.save_distributed(repo, path, local, comm, message=f"{path} by {size} ranks")
        if rank == 0:
            print("commit", commit, flush=True)
    else:
        local = qstore.mpi.load_distributed(repo, path, comm)
        want = amplitudes(start, stop, seed)
        bad = int(local.tobytes() != want.tobytes()) if local.shape == want.shape else 1
        bad = comm.allreduce(bad)
        if rank == 0:
            print("bit-exact" if bad == 0 else f"MISMATCH on {bad} ranks", flush=True)
        sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
