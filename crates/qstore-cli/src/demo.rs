//! `qstore demo`: the README's main job. First it simulates two bundled circuits with
//! qstore-sim: a QFT with asynchronous checkpoints (branch `sim-qft`) and a noisy
//! Bernstein-Vazirani study of 200 Monte-Carlo trajectories through a scratch space (branch
//! `sim-noisy`). Then it stores a generated workload (GHZ and W states, a QFT of a basis
//! state computed analytically, a Haar-random state, a family of 32 noisy trajectories that
//! share most chunks, a mixed density matrix) with tags, a branch and a diff, reads everything
//! back bit-exactly, and reports time, checkpoint and write throughput next to a raw-write
//! baseline measured in the same run, sizes, dedup and compression ratios, and files.

use crate::output::{Out, human_bytes};
use anyhow::{Context, Result, bail};
use qstore::repo::PutOptions;
use qstore::{ArrayInfo, CommitOptions, DType, RepoConfig, Repository};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::json;
use std::f64::consts::PI;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

type Amps = Vec<[f64; 2]>;

fn ghz(n: u32) -> Amps {
    let mut v = vec![[0.0; 2]; 1 << n];
    let a = std::f64::consts::FRAC_1_SQRT_2;
    v[0] = [a, 0.0];
    v[(1 << n) - 1] = [a, 0.0];
    v
}

fn w_state(n: u32) -> Amps {
    let mut v = vec![[0.0; 2]; 1 << n];
    let a = 1.0 / (n as f64).sqrt();
    for k in 0..n {
        v[1 << k] = [a, 0.0];
    }
    v
}

/// QFT|x> = 1/sqrt(N) sum_k exp(2 pi i x k / N) |k>.
fn qft_basis(n: u32, x: u64) -> Amps {
    let dim = 1u64 << n;
    let s = 1.0 / (dim as f64).sqrt();
    (0..dim)
        .map(|k| {
            let phase = 2.0 * PI * ((x * k) % dim) as f64 / dim as f64;
            [s * phase.cos(), s * phase.sin()]
        })
        .collect()
}

/// A Haar-random state: i.i.d. complex Gaussians, normalised.
fn haar(n: u32, seed: u64) -> Amps {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut v: Amps = (0..1u64 << n)
        .map(|_| {
            let (u1, u2): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
            let r = (-2.0 * u1.ln()).sqrt();
            [r * (2.0 * PI * u2).cos(), r * (2.0 * PI * u2).sin()]
        })
        .collect();
    let norm = v
        .iter()
        .map(|a| a[0] * a[0] + a[1] * a[1])
        .sum::<f64>()
        .sqrt();
    for a in &mut v {
        a[0] /= norm;
        a[1] /= norm;
    }
    v
}

/// Trajectory `t` of a noisy ensemble around `base`: a quarter have no error event and equal
/// the noiseless state; the others carry a phase error controlled on the top 5 qubits, which
/// touches 1/32 of the amplitudes.
fn trajectory(base: &Amps, t: u64, rng: &mut StdRng) -> Amps {
    let mut v = base.clone();
    if t.is_multiple_of(4) {
        return v;
    }
    let block = v.len() / 32;
    let theta: f64 = rng.random::<f64>() * 2.0 * PI;
    let (c, s) = (theta.cos(), theta.sin());
    for a in &mut v[(t as usize % 32) * block..][..block] {
        *a = [a[0] * c - a[1] * s, a[0] * s + a[1] * c];
    }
    v
}

/// rho = p |psi><psi| + (1 - p) I / N, Hermitian bit for bit.
fn mixed_density_matrix(m: u32, p: f64, seed: u64) -> Amps {
    let psi = haar(m, seed);
    let dim = 1usize << m;
    let mut rho = vec![[0.0; 2]; dim * dim];
    for i in 0..dim {
        for j in 0..dim {
            let (a, b) = (psi[i][0], psi[i][1]);
            let (c, d) = (psi[j][0], psi[j][1]);
            let mut re = p * (a * c + b * d);
            let im = p * (b * c - a * d);
            if i == j {
                re += (1.0 - p) / dim as f64;
            }
            rho[i * dim + j] = [re, im];
        }
    }
    rho
}

fn bytes(v: &Amps) -> &[u8] {
    bytemuck::cast_slice(v.as_slice())
}

struct Written {
    path: String,
    hash: blake3::Hash,
    logical: u64,
}

fn raw_write_baseline(dir: &Path, data: &[u8]) -> Result<f64> {
    let p = dir.join("raw-baseline.tmp");
    let t = Instant::now();
    let mut f = std::fs::File::create(&p)?;
    f.write_all(data)?;
    f.sync_data()?;
    let secs = t.elapsed().as_secs_f64();
    drop(f);
    std::fs::remove_file(&p)?;
    Ok(data.len() as f64 / secs)
}

/// The bundled QFT circuit on `n` qubits (OpenQASM 2, as Qiskit writes it).
pub fn qft_circuit(n: u32) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n");
    s += "x q[0];\nx q[2];\n";
    for j in (0..n).rev() {
        s += &format!("h q[{j}];\n");
        for k in (0..j).rev() {
            s += &format!("cp(pi/{}) q[{k}],q[{j}];\n", 1u64 << (j - k));
        }
    }
    for j in 0..n / 2 {
        s += &format!("swap q[{j}],q[{}];\n", n - 1 - j);
    }
    s
}

/// The bundled Bernstein-Vazirani circuit: `n` data qubits, secret 1011..., measured.
pub fn bv_circuit(n: u32) -> String {
    let mut s = format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{}];\ncreg c[{n}];\nx q[{n}];\n",
        n + 1
    );
    for q in 0..=n {
        s += &format!("h q[{q}];\n");
    }
    for q in 0..n {
        if q % 3 != 1 {
            s += &format!("cx q[{q}],q[{n}];\n");
        }
    }
    for q in 0..n {
        s += &format!("h q[{q}];\nmeasure q[{q}] -> c[{q}];\n");
    }
    s
}

/// What the simulation part did.
struct SimPart {
    qft: qstore_sim::RunReport,
    study: qstore_sim::StudyReport,
    bv_qubits: u32,
}

fn simulate(repo: &Repository, n: u32) -> Result<SimPart> {
    let src = qft_circuit(n);
    let program = qstore_sim::parse(&src).context("the bundled QFT circuit")?;
    let ops = program.ops.len();
    let qft = qstore_sim::run(
        repo,
        &src,
        &program,
        &qstore_sim::RunOptions {
            branch: "sim-qft".into(),
            checkpoint_every: Some(qstore_sim::Every::Ops(ops.div_ceil(5))),
            ..Default::default()
        },
    )?;
    let bv_qubits = n.clamp(4, 16) - 1;
    let src = bv_circuit(bv_qubits);
    let program = qstore_sim::parse(&src).context("the bundled BV circuit")?;
    let mut noise = qstore_sim::NoiseModel::default();
    noise
        .add("depolarizing:p1=1e-3,p2=1e-2")
        .and_then(|_| noise.add("readout:p=0.01"))
        .map_err(anyhow::Error::msg)?;
    let study = qstore_sim::study(
        repo,
        &src,
        &program,
        &qstore_sim::StudyOptions {
            branch: "sim-noisy".into(),
            prefix: "bv".into(),
            trajectories: 200,
            shots: 1,
            seed: 7,
            noise,
            density: false,
            states: true,
            scratch_quota: 8 << 30,
            ..Default::default()
        },
    )?;
    Ok(SimPart {
        qft,
        study,
        bv_qubits,
    })
}

/// Run the demo in `dir` with `n`-qubit state vectors.
pub fn run(dir: &Path, n: u32, out: &Out) -> Result<()> {
    if !(6..=28).contains(&n) {
        bail!(qstore::Error::InvalidArgument(format!(
            "--qubits must be between 6 and 28, got {n}"
        )));
    }
    if dir.exists() {
        if dir.join("config.json").is_file() {
            std::fs::remove_dir_all(dir)
                .with_context(|| format!("removing the previous demo at {}", dir.display()))?;
        } else if std::fs::read_dir(dir)?.next().is_some() {
            bail!(qstore::Error::InvalidArgument(format!(
                "{} exists and is not a qstore repository; choose another --dir",
                dir.display()
            )));
        }
    }
    let address = dir.to_str().context("the demo directory is not UTF-8")?;
    let repo = Repository::init(address, RepoConfig::default())?;
    let say = |s: String| {
        if !out.json {
            eprintln!("{s}");
        }
    };
    say(format!(
        "qstore demo: {n}-qubit workload in {}",
        dir.display()
    ));

    let t0 = Instant::now();
    say("qstore demo: simulating the bundled circuits (qstore run)".into());
    let sim = simulate(&repo, n)?;

    let mut written: Vec<Written> = Vec::new();
    let mut write_secs = 0.0;
    let c128 = |len: usize| ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![len as u64],
    };
    let commit = |msg: &str| CommitOptions {
        message: msg.into(),
        author: "qstore demo".into(),
        metadata: [("qubits".to_string(), n.to_string())].into(),
    };
    let opts = |pairs: &[(&str, String)]| PutOptions {
        tags: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        ..Default::default()
    };

    // 1. Basis-like states: GHZ and W (mostly zeros: stored sparse).
    let mut tx = repo.transaction("main")?;
    for (name, state) in [("ghz", ghz(n)), ("w", w_state(n))] {
        let path = format!("{name}/n{n}");
        let t = Instant::now();
        tx.put(
            &path,
            &c128(state.len()),
            bytes(&state),
            &opts(&[("family", name.into())]),
        )?;
        write_secs += t.elapsed().as_secs_f64();
        written.push(Written {
            path,
            hash: blake3::hash(bytes(&state)),
            logical: bytes(&state).len() as u64,
        });
    }
    let t = Instant::now();
    tx.commit(commit("GHZ and W states"))?;
    write_secs += t.elapsed().as_secs_f64();
    repo.create_tag("v1", "main")?;

    // 2. Dense states: QFT of a basis state and a Haar-random state.
    let qft = qft_basis(n, 5);
    let haar_state = haar(n, 7);
    let raw_bps = raw_write_baseline(dir, bytes(&haar_state))?;
    let mut tx = repo.transaction("main")?;
    for (path, state, family) in [
        (format!("qft/n{n}_x5"), &qft, "qft"),
        (format!("haar/n{n}"), &haar_state, "haar"),
    ] {
        let t = Instant::now();
        tx.put(
            &path,
            &c128(state.len()),
            bytes(state),
            &opts(&[("family", family.into())]),
        )?;
        write_secs += t.elapsed().as_secs_f64();
        written.push(Written {
            path,
            hash: blake3::hash(bytes(state)),
            logical: bytes(state).len() as u64,
        });
    }
    let t = Instant::now();
    tx.commit(commit("QFT and Haar-random states"))?;
    write_secs += t.elapsed().as_secs_f64();
    drop(qft);

    // 3. 32 noisy trajectories around the Haar state, on a branch.
    repo.create_branch("noisy", "main")?;
    let mut rng = StdRng::seed_from_u64(11);
    let mut tx = repo.transaction("noisy")?;
    for t_idx in 0..32u64 {
        let state = trajectory(&haar_state, t_idx, &mut rng);
        let path = format!("trajectories/t{t_idx:02}");
        let t = Instant::now();
        tx.put(
            &path,
            &c128(state.len()),
            bytes(&state),
            &opts(&[("trajectory", t_idx.to_string()), ("seed", "11".into())]),
        )?;
        write_secs += t.elapsed().as_secs_f64();
        written.push(Written {
            path: format!("noisy:{path}"),
            hash: blake3::hash(bytes(&state)),
            logical: bytes(&state).len() as u64,
        });
    }
    let t = Instant::now();
    tx.commit(commit("32 noisy trajectories"))?;
    write_secs += t.elapsed().as_secs_f64();
    drop(haar_state);

    // 4. A mixed density matrix (Hermitian: upper triangle stored).
    let m = (n / 2).min(11);
    let rho = mixed_density_matrix(m, 0.9, 3);
    let dim = 1u64 << m;
    let mut tx = repo.transaction("main")?;
    let path = format!("rho/n{m}");
    let t = Instant::now();
    tx.put(
        &path,
        &ArrayInfo {
            dtype: DType::Complex128,
            shape: vec![dim, dim],
        },
        bytes(&rho),
        &opts(&[("p", "0.9".into())]),
    )?;
    tx.commit(commit("mixed density matrix"))?;
    write_secs += t.elapsed().as_secs_f64();
    written.push(Written {
        path,
        hash: blake3::hash(bytes(&rho)),
        logical: bytes(&rho).len() as u64,
    });
    drop(rho);

    // Read everything back and check it bit for bit.
    let mut read_secs = 0.0;
    for w in &written {
        let (reference, path) = w.path.split_once(':').unwrap_or(("main", &w.path));
        let t = Instant::now();
        let data = repo.reader(reference, path)?.read_all()?;
        read_secs += t.elapsed().as_secs_f64();
        if blake3::hash(&data) != w.hash {
            bail!("demo read back {path} and it differs from what was written");
        }
    }
    let diff = repo.diff("v1", "main")?;
    let stats = repo.stats()?;
    let total_secs = t0.elapsed().as_secs_f64();
    let ckpt_bps = sim.qft.checkpoint_bytes as f64 / sim.qft.checkpoint_write_seconds.max(1e-9);
    let logical: u64 = written.iter().map(|w| w.logical).sum();
    let (wbps, rbps) = (logical as f64 / write_secs, logical as f64 / read_secs);
    let states: Vec<_> = repo
        .list_states(&repo.resolve("main")?, None)?
        .into_iter()
        .chain(
            repo.list_states(&repo.resolve("noisy")?, Some("trajectories"))?
                .into_iter()
                .take(1),
        )
        .collect();
    if out.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "qubits": n, "states_written": written.len(), "logical_bytes": logical,
                "write_seconds": write_secs, "read_seconds": read_secs,
                "write_bytes_per_second": wbps, "read_bytes_per_second": rbps,
                "raw_write_bytes_per_second": raw_bps, "verified_bit_exact": written.len(),
                "stats": stats, "diff_v1_main": diff, "seconds": total_secs,
                "simulation": {
                    "qft_qubits": sim.qft.qubits, "qft_gates": sim.qft.gates,
                    "qft_seconds": sim.qft.wall_seconds, "checkpoints": sim.qft.checkpoints,
                    "checkpoint_bytes": sim.qft.checkpoint_bytes,
                    "checkpoint_bytes_per_second": ckpt_bps,
                    "checkpoint_stall_seconds": sim.qft.checkpoint_seconds,
                    "checkpoint_overhead": sim.qft.checkpoint_overhead(),
                    "study_qubits": sim.study.qubits, "trajectories": sim.study.trajectories,
                    "error_free": sim.study.error_free, "distinct_states": sim.study.distinct_states,
                    "study_seconds": sim.study.seconds,
                },
            }))?
        );
        return Ok(());
    }
    println!(
        "qstore demo: simulation and storage in {:.1} s, in {}",
        total_secs,
        dir.display()
    );
    println!();
    println!(
        "  qft circuit        {} qubits, {} gates simulated in {:.2} s (branch sim-qft, final state at `final`)",
        sim.qft.qubits, sim.qft.gates, sim.qft.wall_seconds
    );
    println!(
        "  checkpoints        {} x {} written in the background at {}/s ({:.2}x the raw write, {}/s);",
        sim.qft.checkpoints,
        human_bytes((sim.qft.checkpoint_bytes / sim.qft.checkpoints.max(1) as u64) as u128),
        human_bytes(ckpt_bps as u128),
        ckpt_bps / raw_bps,
        human_bytes(raw_bps as u128)
    );
    let per = sim.qft.checkpoint_seconds / sim.qft.checkpoints.max(1) as f64;
    println!(
        "                     the simulation paused {:.3} s for them: {:.1}% at one every {:.2} s, {:.3}% at one per minute",
        sim.qft.checkpoint_seconds,
        100.0 * sim.qft.checkpoint_overhead(),
        sim.qft.wall_seconds / (sim.qft.checkpoints + 1) as f64,
        100.0 * per / 60.0
    );
    println!(
        "  noisy study        BV on {} qubits, {} trajectories (depolarizing 1e-3/1e-2, readout 1e-2) in {:.2} s:",
        sim.bv_qubits + 1,
        sim.study.trajectories,
        sim.study.seconds
    );
    println!(
        "                     {} without an error event; {} distinct final states, each stored once (branch sim-noisy)",
        sim.study.error_free, sim.study.distinct_states
    );
    println!();
    println!(
        "  and {} generated states of {n} qubits, written, read back and verified:",
        written.len()
    );
    println!(
        "  {:<26} {:<15} {:<10} {:>11} {:>11}",
        "state", "kind", "encoding", "logical", "encoded"
    );
    for (p, e) in &states {
        println!(
            "  {:<26} {:<15} {:<10} {:>11} {:>11}",
            p,
            e.kind.name(),
            e.encoding.name(),
            crate::output::dense_size(e),
            human_bytes(e.stream_len as u128)
        );
    }
    println!("  (+31 more trajectories on branch noisy; tag v1 = GHZ and W only)");
    println!();
    println!("  whole repository (simulation results included):");
    println!(
        "  logical bytes        {:>12}",
        human_bytes(stats.logical_bytes)
    );
    println!(
        "  after zero/sparse    {:>12}",
        human_bytes(stats.encoded_bytes as u128)
    );
    println!(
        "  after dedup          {:>12}   dedup ratio       {:.2}x",
        human_bytes(stats.unique_chunk_bytes as u128),
        stats.dedup_ratio
    );
    println!(
        "  after compression    {:>12}   compression ratio {:.2}x",
        human_bytes(stats.stored_chunk_bytes as u128),
        stats.compression_ratio
    );
    println!(
        "  on disk (packs)      {:>12}   overall ratio     {:.2}x",
        human_bytes(stats.pack_bytes as u128),
        stats.overall_ratio
    );
    println!(
        "  files on disk        {:>12}   ({} packs, {} objects)",
        stats.files.unwrap_or(0),
        stats.packs,
        stats.objects
    );
    println!();
    println!(
        "  write  {:>10}/s  ({} logical in {:.2} s, durable commits; {:.2}x the raw write of one dense state with fdatasync, {}/s)",
        human_bytes(wbps as u128),
        human_bytes(logical as u128),
        write_secs,
        wbps / raw_bps,
        human_bytes(raw_bps as u128)
    );
    println!(
        "  read   {:>10}/s  ({} states read back and verified bit-exact in {:.2} s)",
        human_bytes(rbps as u128),
        written.len(),
        read_secs
    );
    println!();
    println!("  diff v1 main: {} paths added since v1", diff.len());
    println!(
        "  try: qstore --repo {} log; qstore --repo {} show haar/n{n} --top 5",
        dir.display(),
        dir.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generators_are_normalised() {
        for v in [ghz(6), w_state(6), qft_basis(6, 5), haar(6, 1)] {
            let s: f64 = v.iter().map(|a| a[0] * a[0] + a[1] * a[1]).sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
        let rho = mixed_density_matrix(3, 0.9, 3);
        let tr: f64 = (0..8).map(|i| rho[i * 8 + i][0]).sum();
        assert!((tr - 1.0).abs() < 1e-12);
    }
}
