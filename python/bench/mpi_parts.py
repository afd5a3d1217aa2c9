"""Benchmark: P MPI ranks writing one state in parts (`qstore.mpi.save_distributed`) against
one process putting the same state whole, in the same run, on fresh repositories.

    mpirun --allow-run-as-root --oversubscribe -np 4 python python/bench/mpi_parts.py DIR [GiB]

Prints seconds and GiB/s of both and their ratio (whole time / parts time: above 1 means the
parts were faster). Every rank generates its block first (not timed); the whole put is by
rank 0 alone while the others wait; both end with a durable commit.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
from mpi4py import MPI

import qstore
import qstore.mpi


def main():
    base = Path(sys.argv[1])
    gib = float(sys.argv[2]) if len(sys.argv) > 2 else 1.0
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    n = int(gib * (1 << 30)) // 16
    start, stop = qstore.mpi.block_range(n, size, rank)
    rng = np.random.default_rng(rank)
    local = (rng.standard_normal(stop - start) + 1j * rng.standard_normal(stop - start)).astype(np.complex128)
    whole = comm.gather(local, root=0)
    result = {}
    if rank == 0:
        whole = np.concatenate(whole)
        r = qstore.open(base / "whole")
        t = time.perf_counter()
        r.put("psi", whole, dense=True, message="whole")
        result["whole_s"] = time.perf_counter() - t
        del whole
    comm.barrier()
    repo = qstore.open(base / "parts") if rank == 0 else None
    comm.barrier()
    repo = qstore.open(base / "parts")
    comm.barrier()
    t = time.perf_counter()
    qstore.mpi.save_distributed(repo, "psi", local, comm)
    elapsed = comm.reduce(time.perf_counter() - t, op=MPI.MAX, root=0)
    if rank == 0:
        gbytes = n * 16 / (1 << 30)
        result.update(
            ranks=size,
            gib=gbytes,
            parts_s=elapsed,
            whole_gib_s=gbytes / result["whole_s"],
            parts_gib_s=gbytes / elapsed,
            ratio=result["whole_s"] / elapsed,
        )
        print(json.dumps(result))


if __name__ == "__main__":
    main()
