"""qstore-sim (`qstore run`) against Qiskit Aer's statevector method, in one run, on the same
circuits with the same thread count, and the cost of checkpoints.

For each circuit and size it reports: Aer's simulation time (`time_taken` of the experiment,
with Aer's default gate fusion), qstore-sim's time in the operations (no checkpoint, no
commit), their ratio, and the checkpoint cost: the run is repeated with a checkpoint every
quarter of the circuit, the simulation time the checkpoints took (staging copies and waits) is
divided by their number, and the overhead of one checkpoint per minute is that cost over 60 s.

    cargo build --release -p qstore-cli
    target/py-venv/bin/python python/bench/sim_vs_aer.py --qubits 20,22,24 --json-out sim.json
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qiskit import QuantumCircuit, qasm2
from qiskit_aer import AerSimulator

ROOT = Path(__file__).resolve().parents[2]


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


def layered(n, depth=20, seed=1):
    """Random circuit: a layer of u gates on every qubit, then cx on a random pairing."""
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    for _ in range(depth):
        for q in range(n):
            qc.u(*rng.uniform(-np.pi, np.pi, 3), q)
        perm = rng.permutation(n)
        for a, b in zip(perm[::2], perm[1::2]):
            qc.cx(int(a), int(b))
    return qc


def qaoa(n, p=4, seed=3):
    rng = np.random.default_rng(seed)
    qc = QuantumCircuit(n)
    qc.h(range(n))
    for _ in range(p):
        g, b = rng.uniform(0, np.pi, 2)
        for i in range(n):
            qc.rzz(2 * g, i, (i + 1) % n)
        qc.rx(2 * b, range(n))
    return qc


CIRCUITS = {"qft": qft, "random": layered, "qaoa": qaoa}


def aer_time(qc, threads):
    sim = AerSimulator(method="statevector", max_parallel_threads=threads)
    qc = qc.copy()
    qc.save_statevector()
    best = float("inf")
    for _ in range(2):
        r = sim.run(qc).result()
        best = min(best, r.results[0].time_taken)
    return best, np.asarray(r.get_statevector())


def qstore_run(binary, qasm_file, repo, *args):
    out = subprocess.run(
        [binary, "--repo", str(repo), "--json", "run", str(qasm_file), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--qubits", default="20,22,24")
    p.add_argument("--circuits", default="qft,random,qaoa")
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "qstore"))
    p.add_argument("--dir", default=None)
    p.add_argument("--json-out", default="sim-vs-aer.json")
    args = p.parse_args(argv)
    threads = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="qstore-sim-bench-", dir=args.dir))
    rows = []
    print(f"threads: {threads} for both (rayon uses every core; Aer max_parallel_threads={threads})")
    print(
        f"{'circuit':10} {'qubits':>6} {'gates':>6} {'Aer s':>8} {'qstore s':>9} {'ratio':>6}"
        f" {'ckpts':>5} {'s/ckpt':>7} {'overhead@1/min':>15} {'fidelity':>10}"
    )
    try:
        for n in [int(x) for x in args.qubits.split(",")]:
            for name in args.circuits.split(","):
                qc = CIRCUITS[name](n)
                f = work / f"{name}_{n}.qasm"
                f.write_text(qasm2.dumps(qc))
                t_aer, sv = aer_time(qc, threads)
                plain = min(
                    (qstore_run(args.binary, f, work / f"r{k}", "--branch", "plain") for k in range(2)),
                    key=lambda r: r["sim_seconds"],
                )
                ops = plain["operations_run"]
                ck = qstore_run(
                    args.binary, f, work / "rck", "--branch", "ck", "--checkpoint-every", str(max(1, ops // 4))
                )
                import qstore

                ours = qstore.open(work / "r0").get("final", "plain")
                fid = abs(np.vdot(sv, ours)) ** 2
                per = ck["checkpoint_seconds"] / max(ck["checkpoints"], 1)
                row = dict(
                    circuit=name,
                    qubits=n,
                    gates=plain["gates"],
                    aer_seconds=t_aer,
                    qstore_seconds=plain["sim_seconds"],
                    ratio=plain["sim_seconds"] / t_aer,
                    checkpoints=ck["checkpoints"],
                    seconds_per_checkpoint=per,
                    overhead_one_per_minute=per / 60.0,
                    overhead_in_run=ck["checkpoint_overhead"],
                    fidelity=fid,
                )
                rows.append(row)
                print(
                    f"{name:10} {n:>6} {row['gates']:>6} {t_aer:>8.3f} {row['qstore_seconds']:>9.3f}"
                    f" {row['ratio']:>5.2f}x {row['checkpoints']:>5} {per:>7.3f} {100 * per / 60:>14.3f}%"
                    f" {fid:>10.12f}"
                )
                sys.stdout.flush()
                for d in work.glob("r*"):
                    shutil.rmtree(d, ignore_errors=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    with open(args.json_out, "w") as fh:
        json.dump(dict(date=time.strftime("%Y-%m-%d"), threads=threads, rows=rows), fh, indent=1)
    print(f"figures written to {args.json_out}")


if __name__ == "__main__":
    main()
