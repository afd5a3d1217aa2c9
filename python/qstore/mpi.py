"""States written and read in parts by MPI ranks (mpi4py; imported only when this module is).

Block layout, for any communicator size P and a state of N amplitudes: rank r holds the flat
elements ``[floor(r*N/P), floor((r+1)*N/P))`` (:func:`block_range`), so P = 3 works as well as
P = 4, and the layout of the writer does not constrain the reader: a state written by 4 ranks
reads back on 2, 3 or 8, each rank reading only its own range. Parts need not be aligned to
qstore's chunks; the library joins the chunks two ranks share.

    from mpi4py import MPI
    import qstore, qstore.mpi
    repo = qstore.open("/scratch/states")           # every rank opens the same repository
    qstore.mpi.save_distributed(repo, "run/psi", local, MPI.COMM_WORLD)
    local = qstore.mpi.load_distributed(repo, "run/psi", MPI.COMM_WORLD)
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .errors import InvalidState


def block_range(n: int, size: int, rank: int) -> Tuple[int, int]:
    """Rank ``rank``'s elements of ``n`` over ``size`` ranks: ``[floor(r*n/P), floor((r+1)*n/P))``."""
    return (rank * n) // size, ((rank + 1) * n) // size


def save_distributed(
    repo: Any,
    path: str,
    local: Any,
    comm: Any,
    *,
    branch: str = "main",
    message: str = "",
    kind: Optional[str] = None,
    shape: Optional[Tuple[int, ...]] = None,
    root: int = 0,
) -> str:
    """Store the state whose block (see :func:`block_range`) each rank of ``comm`` holds in
    ``local`` (1-D, the same dtype everywhere) as one commit at ``path``; returns the commit
    id on every rank. ``shape`` defaults to ``(N,)`` (pass ``(d, d)`` for a density matrix
    split by flat element). Every rank writes its part concurrently; ``root`` begins and
    completes the upload. If any rank fails, nothing is committed, the upload is aborted, and
    every rank raises."""
    a = np.ascontiguousarray(np.asarray(local).reshape(-1))
    size, rank = comm.Get_size(), comm.Get_rank()
    n = comm.allreduce(a.size)
    dtypes = comm.allgather(a.dtype.str)
    if len(set(dtypes)) != 1:
        raise InvalidState(f"the ranks hold different dtypes: {sorted(set(dtypes))}")
    start, stop = block_range(n, size, rank)
    ok = a.size == stop - start
    if not all(comm.allgather(ok)):
        raise InvalidState(
            f"rank {rank} holds {a.size} elements; the block layout gives it {stop - start} "
            f"(elements {start}..{stop} of {n})"
        )
    upload = None
    err = None
    if rank == root:
        try:
            upload = repo.begin_upload(path, a.dtype, shape or (n,), size, kind)
        except Exception as e:  # noqa: BLE001 - handed to every rank
            err = f"{type(e).__name__}: {e}"
    upload, err = comm.bcast((upload, err), root=root)
    if err:
        raise InvalidState(f"beginning the upload failed: {err}")
    mine = None
    try:
        repo.put_part(upload, rank, a)
    except Exception as e:  # noqa: BLE001
        mine = f"rank {rank}: {type(e).__name__}: {e}"
    errors = [e for e in comm.gather(mine, root=root) or [] if e]
    commit = None
    if rank == root:
        if errors:
            try:
                repo.abort_upload(upload)
            finally:
                pass
        else:
            try:
                commit = repo.complete_upload(upload, branch=branch, message=message or f"{path} from {size} ranks")
            except Exception as e:  # noqa: BLE001
                errors = [f"completing: {type(e).__name__}: {e}"]
    commit, errors = comm.bcast((commit, errors), root=root)
    if errors:
        raise InvalidState("the distributed put failed: " + "; ".join(errors))
    return commit


def load_distributed(repo: Any, path: str, comm: Any, *, ref: str = "main") -> np.ndarray:
    """This rank's block of the state at ``path`` (see :func:`block_range`), read alone: each
    rank reads only its range, whatever the number of ranks that wrote it."""
    size, rank = comm.Get_size(), comm.Get_rank()
    # One commit for every rank, even if the ref moves meanwhile.
    commit = comm.bcast(repo.resolve(ref) if rank == 0 else None, root=0)
    info = repo.info(path, ref=commit)
    n = int(np.prod(info.shape))
    start, stop = block_range(n, size, rank)
    return repo.get(path, ref=commit, start=start, stop=stop)
