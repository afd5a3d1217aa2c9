"""qstore against the file formats simulation users reach for, in one run, on the same states
from Qiskit Aer.

For each state class (a dense random circuit, a QFT, QAOA, a GHZ state) and size, and each
method (qstore; np.save; h5py without compression, gzip and lzf; zarr v3 with its default
codecs, blosc zstd and blosc lz4 with byte shuffle), it measures:

- write: from the in-memory array until the data is durable (every file fsynced, and the
  directories holding them), best of ``--repeat`` runs, each into a fresh directory;
- read cold: after the written files are evicted from the page cache (posix_fadvise
  DONTNEED after fsync; qstore's chunk cache cleared), back into a NumPy array;
- read warm: the same read again;
- stored bytes and number of files; every read is checked bit for bit.

It prints one table per state size with throughputs and ratios to qstore, and writes every
figure to a JSON file. Run it with the test environment (``scripts/test-all.sh`` creates it):

    target/py-venv/bin/python python/bench/peers.py --qubits 20,22,24 --json-out peers.json

``--history N`` (default 2000; 0 skips it) then runs the noise-trajectory workload of many
small commits: N commits of one 16-amplitude complex128 state each under ``traj/``, one
process, by qstore (``repo.put``, a durable commit each) and by icechunk (a writable session,
a zarr array and a commit each; skipped when icechunk is not installed), and prints the
repository bytes, files and seconds at 100, 500, 1000 and 2000 commits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

import qstore


# ---- states ------------------------------------------------------------------------------


def aer_state(kind: str, n: int, seed: int = 1) -> np.ndarray:
    from qiskit import QuantumCircuit, transpile
    from qiskit.circuit.library import QFTGate
    from qiskit.circuit.random import random_circuit
    from qiskit_aer import AerSimulator

    if kind == "random":
        qc = random_circuit(n, 8, max_operands=2, seed=seed)
    elif kind == "qft":
        qc = QuantumCircuit(n)
        qc.x([0, n // 3, n // 2])
        qc.append(QFTGate(n), range(n))
    elif kind == "qaoa":
        rng = np.random.default_rng(seed)
        qc = QuantumCircuit(n)
        qc.h(range(n))
        for _ in range(2):
            g, b = rng.uniform(0, np.pi, 2)
            for i in range(n):
                qc.rzz(2 * g, i, (i + 1) % n)
            qc.rx(2 * b, range(n))
    elif kind == "ghz":
        qc = QuantumCircuit(n)
        qc.h(0)
        for i in range(n - 1):
            qc.cx(i, i + 1)
    elif kind == "midqft":
        # Half of a decomposed QFT after Hadamards on every other qubit: a mid-circuit state.
        full = QuantumCircuit(n)
        full.append(QFTGate(n), range(n))
        full = transpile(full, basis_gates=["h", "cp", "swap", "cx", "rz", "u"])
        qc = QuantumCircuit(n)
        qc.x([0, n // 3, n // 2])
        qc.h(range(0, n, 2))
        for ins in full.data[: len(full.data) // 2]:
            qc.append(ins)
    else:
        raise SystemExit(f"unknown state class {kind}")
    sim = AerSimulator(method="statevector", max_parallel_threads=os.cpu_count() or 1)
    qc = transpile(qc, sim)
    qc.save_statevector()
    return np.ascontiguousarray(sim.run(qc).result().get_statevector().data)


def aer_density_matrix(n: int, seed: int = 3) -> np.ndarray:
    """A noisy density matrix from Aer (depolarising noise on a random circuit): Hermitian
    only up to rounding, as Aer computes them."""
    from qiskit import transpile
    from qiskit.circuit.random import random_circuit
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel, depolarizing_error

    basis = ["u", "cx", "rz", "sx", "x", "h"]
    noise = NoiseModel()
    noise.add_all_qubit_quantum_error(depolarizing_error(0.01, 1), ["u", "rz", "sx", "x", "h"])
    noise.add_all_qubit_quantum_error(depolarizing_error(0.02, 2), ["cx"])
    sim = AerSimulator(method="density_matrix", noise_model=noise)
    qc = transpile(random_circuit(n, 6, max_operands=2, seed=seed), basis_gates=basis)
    qc.save_density_matrix()
    return np.ascontiguousarray(sim.run(qc).result().data()["density_matrix"].data)


# ---- durability and cache helpers ---------------------------------------------------------


def files_under(path: str) -> List[str]:
    if os.path.isfile(path):
        return [path]
    return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in fs]


def fsync_tree(path: str) -> None:
    """fsync every file under ``path`` and every directory on the way (what makes a write
    survive a power cut)."""
    dirs = set()
    for f in files_under(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        dirs.add(os.path.dirname(f))
    dirs.add(os.path.dirname(os.path.abspath(path)))
    for d in dirs:
        fd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def evict(path: str) -> None:
    """Drop the (clean) pages of every file under ``path`` from the page cache."""
    for f in files_under(path):
        fd = os.open(f, os.O_RDONLY)
        try:
            os.fdatasync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def stored_bytes(path: str) -> int:
    return sum(os.path.getsize(f) for f in files_under(path))


# ---- many small commits: the noise-trajectory workload ------------------------------------


def trajectory(k: int) -> np.ndarray:
    v = np.zeros(16, dtype=np.complex128)
    a = ((k % 1000) + 1) * 1e-4
    v[0] = np.sqrt(1 - a * a)
    v[1 + k % 15] = a
    return v


def history_qstore(dest: str, n: int, marks: List[int]) -> List[Dict]:
    repo = qstore.open(dest)
    out, t = [], time.perf_counter()
    for k in range(n):
        repo.put(f"traj/t{k:05}", trajectory(k), message=f"trajectory {k}")
        if k + 1 in marks:
            out.append(dict(commits=k + 1, bytes=stored_bytes(dest), files=len(files_under(dest)),
                            seconds=time.perf_counter() - t))
    return out


def history_icechunk(dest: str, n: int, marks: List[int]) -> List[Dict]:
    import icechunk
    import zarr

    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(dest))
    out, t = [], time.perf_counter()
    for k in range(n):
        session = repo.writable_session("main")
        root = zarr.open_group(store=session.store, mode="a")
        arr = root.create_array(f"traj/t{k:05}", shape=(16,), dtype="complex128", chunks=(16,))
        arr[:] = trajectory(k)
        session.commit(f"trajectory {k}")
        if k + 1 in marks:
            out.append(dict(commits=k + 1, bytes=stored_bytes(dest), files=len(files_under(dest)),
                            seconds=time.perf_counter() - t))
    return out


def run_history(workdir: str, n: int) -> Dict:
    marks = [m for m in (100, 500, 1000, 2000) if m <= n] or [n]
    if n not in marks:
        marks.append(n)
    res = {"qstore": history_qstore(os.path.join(workdir, "h-qstore"), n, marks)}
    try:
        import icechunk

        res["icechunk " + icechunk.__version__] = history_icechunk(
            os.path.join(workdir, "h-icechunk"), n, marks)
    except ImportError:
        print("(icechunk is not installed: pip install icechunk to compare)")
    print(f"\n{n} commits of one 16-amplitude state each (one process):")
    print(f"{'method':<18} {'commits':>8} {'bytes':>12} {'files':>7} {'seconds':>9} {'bytes vs qstore':>16}")
    base = {r["commits"]: r for r in res["qstore"]}
    for name, rows in res.items():
        for r in rows:
            ratio = r["bytes"] / base[r["commits"]]["bytes"]
            print(f"{name:<18} {r['commits']:>8} {size_str(r['bytes']):>12} {r['files']:>7} "
                  f"{r['seconds']:>9.2f} {ratio:>15.2f}x")
    return res


# ---- methods: (write(array, dest), read(dest) -> array, cache reset) -----------------------


class QstoreMethod:
    """qstore's durable put. ``lossy``: a lossy mode (the read is then checked by fidelity,
    not bit for bit); ``recompress``: after the timed put, ``repack(recompress=True)`` is
    timed on its own (``recompress_s``) and the stored size is measured after it; ``base``:
    a directory for the repository instead of the work directory (a tmpfs takes the fsync
    cost out, leaving the CPU cost)."""

    def __init__(self, label="qstore", lossy=None, recompress=False, base=None):
        self.name = label
        self.lossy = lossy
        self.recompress = recompress
        self.base = base
        self.repo = None
        self.extra: Dict = {}

    def prepare(self, dest: str) -> None:
        self.repo = qstore.open(dest)  # creating the repository is set-up, not timed

    def write(self, a: np.ndarray, dest: str) -> None:
        self.repo.put("state", a, message="bench", lossy=self.lossy)  # durable when put returns

    def after_write(self, dest: str) -> None:
        if self.recompress:
            t = time.perf_counter()
            self.repo.repack(recompress=True)
            self.extra["recompress_s"] = time.perf_counter() - t
        if self.lossy:
            self.extra["fidelity"] = self.repo.info("state").fidelity

    def read(self, dest: str) -> np.ndarray:
        return self.repo.get("state")

    def reset(self, dest: str) -> None:
        self.repo = qstore.open(dest, create=False)


class NpSave:
    def __init__(self, label="np.save", base=None):
        self.name = label
        self.base = base

    def write(self, a, dest):
        with open(dest, "wb") as f:
            np.save(f, a)
        fsync_tree(dest)

    def read(self, dest):
        return np.load(dest)

    def reset(self, dest):
        pass


class H5:
    def __init__(self, compression, opts=None):
        self.compression = compression
        self.opts = opts
        self.name = f"h5py {compression or 'none'}"

    def write(self, a, dest):
        import h5py

        kw = {}
        if self.compression:
            kw = dict(compression=self.compression, compression_opts=self.opts, chunks=True)
        with h5py.File(dest, "w") as f:
            f.create_dataset("state", data=a, **kw)
        fsync_tree(dest)

    def read(self, dest):
        import h5py

        with h5py.File(dest, "r") as f:
            return f["state"][()]

    def reset(self, dest):
        pass


class Zarr:
    def __init__(self, label, compressor_factory):
        self.name = f"zarr {label}"
        self.factory = compressor_factory

    def write(self, a, dest):
        import zarr

        kw = {}
        if self.factory is not None:
            kw["compressors"] = [self.factory()]
        # Chunks of 2^16 elements (1 MiB of complex128), as qstore's: whole rows of a matrix.
        if a.ndim == 1:
            chunks = (min(a.shape[0], 1 << 16),)
        else:
            chunks = (max(1, min(a.shape[0], (1 << 16) // a.shape[1])), a.shape[1])
        z = zarr.create_array(store=dest, shape=a.shape, dtype=a.dtype, chunks=chunks, **kw)
        z[:] = a
        fsync_tree(dest)

    def read(self, dest):
        import zarr

        return zarr.open_array(dest, mode="r")[:]

    def reset(self, dest):
        pass


def methods(dm: bool = False, tmpfs: Optional[str] = None) -> List:
    from zarr.codecs import BloscCodec

    lossy = [] if dm else [
        QstoreMethod("qstore lossy 1e-6", lossy="max-infidelity=1e-6"),
        QstoreMethod("qstore lossy 1e-3", lossy="max-infidelity=1e-3"),
    ]
    cpu = [] if tmpfs is None else [
        QstoreMethod("qstore (tmpfs)", base=tmpfs),
        NpSave("np.save (tmpfs)", base=tmpfs),
    ]
    return [
        QstoreMethod(),
        QstoreMethod("qstore recompressed", recompress=True),
        *lossy,
        *cpu,
        NpSave(),
        H5(None),
        H5("gzip", 4),
        H5("lzf"),
        Zarr("default", None),
        Zarr("blosc-zstd", lambda: BloscCodec(cname="zstd", clevel=3, shuffle="shuffle")),
        Zarr("blosc-lz4", lambda: BloscCodec(cname="lz4", clevel=5, shuffle="shuffle")),
    ]


# ---- measurement -----------------------------------------------------------------------------


def clear(dest: str) -> None:
    if os.path.isdir(dest):
        shutil.rmtree(dest)
    elif os.path.exists(dest):
        os.remove(dest)


def fidelity(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a.ravel(), b.ravel()
    return float(abs(np.vdot(a, b)) ** 2 / (np.vdot(a, a).real * np.vdot(b, b).real))


def measure(m, a: np.ndarray, workdir: str, repeat: int) -> Dict:
    best = float("inf")
    dest = ""
    base = getattr(m, "base", None) or workdir
    for r in range(repeat):
        if dest:
            clear(dest)
        dest = os.path.join(base, f"{m.name.replace(' ', '_')}_{r}")
        getattr(m, "prepare", lambda d: None)(dest)
        t = time.perf_counter()
        m.write(a, dest)
        best = min(best, time.perf_counter() - t)
    getattr(m, "after_write", lambda d: None)(dest)
    evict(dest)
    m.reset(dest)
    t = time.perf_counter()
    back = m.read(dest)
    cold = time.perf_counter() - t
    lossy = getattr(m, "lossy", None)
    if lossy:
        # A lossy row is checked by its fidelity: the stored value must be what was read.
        ok = back.dtype == a.dtype and back.shape == a.shape and abs(
            fidelity(a, back) - m.extra["fidelity"]
        ) < 1e-9
    else:
        ok = back.dtype == a.dtype and back.shape == a.shape and back.tobytes() == a.tobytes()
    del back
    t = time.perf_counter()
    back = m.read(dest)
    warm = time.perf_counter() - t
    ok = ok and (lossy or back.tobytes() == a.tobytes())
    del back
    row = dict(
        method=m.name,
        write_s=best,
        read_cold_s=cold,
        read_warm_s=warm,
        stored_bytes=stored_bytes(dest),
        files=len(files_under(dest)),
        bit_exact=bool(ok),
        **getattr(m, "extra", {}),
    )
    if hasattr(m, "extra"):
        m.extra = {}
    clear(dest)
    return row


def gib(x: float) -> str:
    return f"{x / (1 << 30):6.2f}"


def size_str(b: int) -> str:
    for unit, div in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if b >= div:
            return f"{b / div:.2f} {unit}"
    return f"{b} B"


def print_table(n: int, kind: str, nbytes: int, rows: List[Dict]) -> None:
    q = next(r for r in rows if r["method"] == "qstore")
    what = "density matrix" if kind == "noisy-dm" else "state"
    print(f"\n{kind} {what}, {n} qubits, {size_str(nbytes)} (complex128)")
    print(
        f"{'method':18} {'write GiB/s':>11} {'cold GiB/s':>10} {'warm GiB/s':>10}"
        f" {'stored':>11} {'files':>5}  {'qstore is: write / cold / warm faster, x smaller':>48}"
    )
    for r in rows:
        w, c, h = (nbytes / r[k] for k in ("write_s", "read_cold_s", "read_warm_s"))
        ratios = (
            f"{r['write_s'] / q['write_s']:5.2f}x / {r['read_cold_s'] / q['read_cold_s']:5.2f}x"
            f" / {r['read_warm_s'] / q['read_warm_s']:5.2f}x, {r['stored_bytes'] / max(q['stored_bytes'], 1):7.2f}x"
        )
        flag = "" if r["bit_exact"] else "  READ CHECK FAILED"
        if "fidelity" in r:
            flag += f"  (1 - F = {1 - r['fidelity']:.2e})"
        if "recompress_s" in r:
            flag += f"  (recompress {r['recompress_s']:.2f} s)"
        print(
            f"{r['method']:18} {gib(w):>11} {gib(c):>10} {gib(h):>10} {size_str(r['stored_bytes']):>11}"
            f" {r['files']:>5}  {ratios:>48}{flag}"
        )


def summarise(results: List[Dict]) -> List[Dict]:
    """The codec goals, one line per state: qstore against np.save (+fsync), its CPU cost
    (tmpfs), stored sizes against zarr's default before and after recompression, reads
    against np.load and the raw cold read, and the lossy ratios."""
    out = []
    print("\ncodec goals (ratios within this run)")
    print(f"{'state':>16} {'put/np.save':>11} {'tmpfs GiB/s':>11} {'size/zarr':>9} "
          f"{'recompr.':>8} {'warm/np.load':>12} {'cold/np.save':>12} {'lossy 1e-6':>10} {'lossy 1e-3':>10}")
    for res in results:
        by = {r["method"]: r for r in res["rows"]}
        q, z, npy = by["qstore"], by.get("zarr default"), by["np.save"]
        g = dict(state=res["state"], qubits=res["qubits"])
        g["put_vs_np_save"] = npy["write_s"] / q["write_s"]
        if "qstore (tmpfs)" in by:
            g["tmpfs_put_gib_s"] = res["bytes"] / by["qstore (tmpfs)"]["write_s"] / (1 << 30)
        if z:
            g["size_vs_zarr"] = q["stored_bytes"] / max(z["stored_bytes"], 1)
            g["recompressed_size_vs_zarr"] = (
                by["qstore recompressed"]["stored_bytes"] / max(z["stored_bytes"], 1)
            )
        g["warm_vs_np_load"] = npy["read_warm_s"] / q["read_warm_s"]
        g["cold_vs_np_cold"] = npy["read_cold_s"] / q["read_cold_s"]
        for k in ("1e-6", "1e-3"):
            r = by.get(f"qstore lossy {k}")
            if r:
                g[f"lossy_{k}_ratio"] = res["bytes"] / max(r["stored_bytes"], 1)
                g[f"lossy_{k}_infidelity"] = 1 - r["fidelity"]
        out.append(g)
        fmt = lambda k, f="{:.2f}x": f.format(g[k]) if k in g else "-"  # noqa: E731
        print(f"{res['state'] + ' ' + str(res['qubits']):>16} {fmt('put_vs_np_save'):>11} "
              f"{fmt('tmpfs_put_gib_s', '{:.2f}'):>11} {fmt('size_vs_zarr'):>9} "
              f"{fmt('recompressed_size_vs_zarr'):>8} {fmt('warm_vs_np_load'):>12} "
              f"{fmt('cold_vs_np_cold'):>12} {fmt('lossy_1e-6_ratio', '{:.1f}x'):>10} "
              f"{fmt('lossy_1e-3_ratio', '{:.1f}x'):>10}")
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--qubits", default="20,22,24", help="state sizes, comma-separated")
    p.add_argument("--classes", default="random,qft,qaoa,midqft,ghz")
    p.add_argument("--dm-qubits", default="10,11,12",
                   help="sizes of the noisy Aer density matrices, comma-separated ('' skips)")
    p.add_argument("--tmpfs", default="/dev/shm" if os.path.isdir("/dev/shm") else None,
                   help="a tmpfs for the rows without fsync cost (CPU cost); '' skips them")
    p.add_argument("--repeat", type=int, default=2, help="writes per method (best is kept)")
    p.add_argument("--dir", default=None, help="work directory (default: a temporary one)")
    p.add_argument("--json-out", default="peers-bench.json")
    p.add_argument("--history", type=int, default=2000,
                   help="commits of the many-small-commits workload (0: skip it)")
    args = p.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="qstore-peers-", dir=args.dir)
    results = []
    history = None
    try:
        if args.history > 0:
            history = run_history(workdir, args.history)
            sys.stdout.flush()
        tmpfs = tempfile.mkdtemp(prefix="qstore-peers-", dir=args.tmpfs) if args.tmpfs else None
        cases = [(int(x), kind) for x in args.qubits.split(",") if x
                 for kind in args.classes.split(",")]
        cases += [(int(x), "noisy-dm") for x in args.dm_qubits.split(",") if x]
        for n, kind in cases:
            a = aer_density_matrix(n) if kind == "noisy-dm" else aer_state(kind, n)
            ms = methods(dm=kind == "noisy-dm", tmpfs=tmpfs)
            rows = [measure(m, a, workdir, args.repeat) for m in ms]
            print_table(n, kind, a.nbytes, rows)
            sys.stdout.flush()
            results.append(dict(qubits=n, state=kind, bytes=a.nbytes, rows=rows))
            del a
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if args.tmpfs and tmpfs:
            shutil.rmtree(tmpfs, ignore_errors=True)
    goals = summarise(results)
    meta = dict(
        date=time.strftime("%Y-%m-%d"),
        cpus=os.cpu_count(),
        qstore=qstore.__version__,
        numpy=np.__version__,
    )
    with open(args.json_out, "w") as f:
        json.dump(dict(meta=meta, results=results, history=history, goals=goals), f, indent=1)
    print(f"\nfigures written to {args.json_out}")
    bad = [r for res in results for r in res["rows"] if not r["bit_exact"]]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
