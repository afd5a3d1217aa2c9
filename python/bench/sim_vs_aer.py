"""qstore-sim (`qstore run`) against Qiskit Aer's statevector method, in one run, on the same
circuits with the same thread count, and the cost of checkpoints.

For each circuit and size it reports: Aer's simulation time (`time_taken` of the experiment,
with Aer's default gate fusion), qstore-sim's time in the operations (no checkpoint, no
commit), their ratio, and the checkpoint cost: the run is repeated with a checkpoint every
quarter of the circuit, the simulation time the checkpoints took (staging copies and waits) is
divided by their number, and the overhead of one checkpoint per minute is that cost over 60 s.

With `--wide`, it times wide structured circuits instead (GHZ-60 and GHZ-127, W-118 with its
controlled rotations written as ry and cx, cat-260 and Bernstein-Vazirani-200 written qubit by
qubit, each measured once at the end): qstore's
sparse engine against Aer's matrix_product_state and extended_stabilizer methods (the ones
that can hold 100+ qubits), same circuits, same thread count; a method that refuses a
circuit or passes `--aer-timeout` is reported as such.

    cargo build --release -p qstore-cli
    target/py-venv/bin/python python/bench/sim_vs_aer.py --qubits 20,22,24 --json-out sim.json
    target/py-venv/bin/python python/bench/sim_vs_aer.py --wide --json-out sim-wide.json
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


def ghz(n):
    qc = QuantumCircuit(n)
    qc.h(0)
    for i in range(n - 1):
        qc.cx(i, i + 1)
    return qc


def w_state(n):
    """W state in gates every engine takes: each controlled-Ry written as ry, cx, ry, cx (in
    program order), then a cx moving the excitation down."""
    qc = QuantumCircuit(n)
    qc.x(n - 1)
    for i in reversed(range(1, n)):
        phi = 2 * np.arccos(np.sqrt(1 / (i + 1)))
        qc.ry(phi / 2, i - 1)
        qc.cx(i, i - 1)
        qc.ry(-phi / 2, i - 1)
        qc.cx(i, i - 1)
        qc.cx(i - 1, i)
    return qc


def bv_by_qubit(n, seed=5):
    secret = np.random.default_rng(seed).integers(2, size=n)
    qc = QuantumCircuit(n + 1)
    qc.x(n)
    qc.h(n)
    for i in range(n):
        qc.h(i)
        if secret[i]:
            qc.cx(i, n)
        qc.h(i)
    return qc


WIDE = {"ghz60": lambda: ghz(60), "ghz127": lambda: ghz(127), "w118": lambda: w_state(118), "cat260": lambda: ghz(260), "bv200": lambda: bv_by_qubit(200)}


def aer_wide(qc, method, threads, timeout):
    """Aer's time for one shot of `qc` with `method`, or why it could not run it."""
    import multiprocessing as mp

    def work(q):
        try:
            sim = AerSimulator(method=method, max_parallel_threads=threads)
            r = sim.run(qc, shots=1).result()
            msg = str(r.results[0].status if r.results else r.status)
            q.put(("ok", r.results[0].time_taken) if r.success else ("failed", msg.split("ERROR:")[-1].strip()))
        except Exception as e:  # noqa: BLE001 - reported, not hidden
            q.put(("refused", str(e).splitlines()[0][:80]))

    q = mp.Queue()
    p = mp.Process(target=work, args=(q,))
    p.start()
    p.join(timeout)
    if p.is_alive():
        p.kill()
        return None, f"over {timeout:.0f} s"
    kind, v = q.get() if not q.empty() else ("failed", "no result")
    return (v, "") if kind == "ok" else (None, f"{kind}: {v}")


def wide(args, threads, work):
    rows = []
    print(f"{'circuit':8} {'qubits':>6} {'gates':>6} {'qstore s':>9} {'Aer MPS s':>10} {'Aer ext-stab s':>15}")
    for name, make in WIDE.items():
        qc = make()
        qc.measure_all()
        f = work / f"{name}.qasm"
        f.write_text(qasm2.dumps(qc))
        ours = min(
            (qstore_run(args.binary, f, work / f"w{k}", "--method", "sparse") for k in range(2)),
            key=lambda r: r["sim_seconds"],
        )
        row = dict(circuit=name, qubits=qc.num_qubits, gates=ours["gates"], qstore_seconds=ours["sim_seconds"],
                   qstore_peak_support=ours["peak_support"])
        cells = []
        for method in ("matrix_product_state", "extended_stabilizer"):
            t, why = aer_wide(qc, method, threads, args.aer_timeout)
            row[f"aer_{method}_seconds"] = t
            row[f"aer_{method}_note"] = why
            cells.append(f"{t:.4f}" if t is not None else "n/a")
        rows.append(row)
        notes = "; ".join(f"{m}: {row[f'aer_{m}_note']}" for m in ("matrix_product_state", "extended_stabilizer") if row[f"aer_{m}_note"])
        print(f"{name:8} {qc.num_qubits:>6} {ours['gates']:>6} {ours['sim_seconds']:>9.4f} {cells[0]:>10} {cells[1]:>15}" + (f"   ({notes})" if notes else ""))
        sys.stdout.flush()
        for d in work.glob("w*"):
            if d.is_dir():
                shutil.rmtree(d, ignore_errors=True)
    return rows


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
    p.add_argument("--wide", action="store_true", help="wide structured circuits: sparse vs Aer MPS and extended_stabilizer")
    p.add_argument("--aer-timeout", type=float, default=300.0)
    args = p.parse_args(argv)
    threads = os.cpu_count() or 1
    work = Path(tempfile.mkdtemp(prefix="qstore-sim-bench-", dir=args.dir))
    if args.wide:
        print(f"threads: {threads} for both")
        try:
            rows = wide(args, threads, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        with open(args.json_out, "w") as fh:
            json.dump(dict(date=time.strftime("%Y-%m-%d"), threads=threads, wide=True, rows=rows), fh, indent=1)
        print(f"figures written to {args.json_out}")
        return
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
