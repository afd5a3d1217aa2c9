//! `qstore run`: simulate an OpenQASM 2 circuit or a QIR program (`.ll`, `.bc`) with
//! qstore-sim, checkpointing into the repository, and print the run summary (and a QIR
//! program's output in the QIR output schema).

use crate::output::{Out, human_bytes};
use anyhow::{Context, Result};
use qstore::Repository;
use qstore_sim::{Every, NoiseModel, RunOptions, SimError, StudyOptions};
use serde_json::json;
use std::path::Path;

/// `1000` (operations) or `30s`, `5m`, `1h` (time).
pub fn parse_every(s: &str) -> std::result::Result<Every, String> {
    if let Ok(n) = s.parse::<usize>() {
        if n == 0 {
            return Err("--checkpoint-every must be positive".into());
        }
        return Ok(Every::Ops(n));
    }
    crate::parse_duration(s).map(Every::Time)
}

/// A program file as read: OpenQASM 2 or QIR.
enum Loaded {
    Qasm(String, qstore_sim::Program),
    Qir(String, qstore_sim::qir::Module),
}

fn read(circuit: &Path) -> Result<Loaded> {
    let bytes =
        std::fs::read(circuit).with_context(|| format!("cannot read {}", circuit.display()))?;
    if qstore_sim::qir::is_qir(circuit, &bytes) {
        let text = qstore_sim::qir::read_text(circuit, bytes)?;
        let m = qstore_sim::qir::load(circuit, &text)?;
        return Ok(Loaded::Qir(text, m));
    }
    let source = String::from_utf8(bytes).map_err(|_| SimError::Qasm {
        path: circuit.display().to_string(),
        error: qstore_sim::QasmError {
            line: 0,
            msg: "not UTF-8 text".into(),
        },
    })?;
    let program = qstore_sim::parse(&source).map_err(|e| SimError::Qasm {
        path: circuit.display().to_string(),
        error: e,
    })?;
    Ok(Loaded::Qasm(source, program))
}

/// The program as a fixed list of operations: OpenQASM, or a QIR program that does not
/// branch on results (studies and density-matrix runs need one).
fn load(circuit: &Path) -> Result<(String, qstore_sim::Program)> {
    match read(circuit)? {
        Loaded::Qasm(s, p) => Ok((s, p)),
        Loaded::Qir(s, m) => {
            match qstore_sim::qir::to_program(&m, &circuit.display().to_string())? {
                Some(p) => Ok((s, p)),
                None => Err(SimError::Options(format!(
                    "{} branches on measurement results (adaptive QIR): it runs as a single run \
                     or with --shots, not with --trajectories or --density-matrix",
                    circuit.display()
                ))
                .into()),
            }
        }
    }
}

/// Run a noisy Monte-Carlo study of `circuit` on the repository at `address`. `save` is the
/// `--save` list (counts, density, states); without it, the averaged density matrix is kept
/// up to 10 qubits.
pub fn study(
    address: &str,
    circuit: &Path,
    mut opts: StudyOptions,
    save: &[String],
    out: &Out,
) -> Result<()> {
    let (source, program) = load(circuit)?;
    if let Some(w) = save
        .iter()
        .find(|w| !["counts", "density", "states"].contains(&w.as_str()))
    {
        return Err(crate::UsageError(format!("--save {w}: use counts, density or states")).into());
    }
    opts.density = if save.is_empty() {
        program.qubits <= 10
    } else {
        save.iter().any(|w| w == "density")
    };
    opts.states = save.iter().any(|w| w == "states");
    let repo = Repository::open_or_init(address)?;
    let r = qstore_sim::study(&repo, &source, &program, &opts)?;
    out.emit(
        json!({
            "circuit": circuit.display().to_string(), "qubits": r.qubits,
            "trajectories": r.trajectories, "shots": r.shots, "error_free": r.error_free,
            "distinct_states": r.distinct_states, "outcomes": r.outcomes, "seconds": r.seconds,
            "scratch_peak_bytes": r.scratch_peak_bytes, "branch": opts.branch, "prefix": opts.prefix,
            "sparse_trajectories": r.sparse_trajectories,
            "commit": r.commit,
        }),
        || {
            let mut t = format!(
                "{}: {} qubits, {} trajectories, {} shots in {:.2} s; {} without an error event\n",
                circuit.display(),
                r.qubits,
                r.trajectories,
                r.shots,
                r.seconds,
                r.error_free
            );
            if opts.states {
                t += &format!(
                    "final states: {} distinct of {} (through a scratch space, peak {})\n",
                    r.distinct_states,
                    r.trajectories,
                    human_bytes(r.scratch_peak_bytes as u128)
                );
            }
            t += &format!(
                "stored under {}/ on branch {} (commit {}): counts ({} outcomes){}{}",
                opts.prefix,
                opts.branch,
                &r.commit[..12.min(r.commit.len())],
                r.outcomes,
                if opts.density { ", density_matrix" } else { "" },
                if opts.states { ", trajectories/" } else { "" }
            );
            t
        },
    );
    Ok(())
}

/// Run `circuit` on the repository at `address` (created when missing).
pub fn run(
    address: &str,
    circuit: &Path,
    opts: RunOptions,
    drain_to: Option<&str>,
    out: &Out,
) -> Result<()> {
    let loaded = read(circuit)?;
    let repo = Repository::open_or_init(address)?;
    let drain = match drain_to {
        Some(remote) => Some(qstore::repo::Drain::start_to(
            &repo,
            remote,
            &opts.branch,
            std::time::Duration::from_millis(500),
        )?),
        None => None,
    };
    let mut qir_output = None;
    let r = match &loaded {
        Loaded::Qasm(source, program) => qstore_sim::run(&repo, source, program, &opts)?,
        Loaded::Qir(text, m) => {
            let mut src = qstore_sim::qir::QirSource::new(m, &circuit.display().to_string());
            let r = qstore_sim::run_source(&repo, text, &mut src, &opts)?;
            if !r.already_done {
                qir_output = Some(src.machine.output_text(m));
            }
            r
        }
    };
    let drained = drain.map(|d| d.finish());
    let overhead = r.checkpoint_overhead();
    out.emit(
        json!({
            "circuit": circuit.display().to_string(), "qubits": r.qubits, "gates": r.gates,
            "operations_run": r.ops, "resumed_from": r.resumed_from, "already_done": r.already_done,
            "seconds": r.wall_seconds, "sim_seconds": r.sim_seconds, "checkpoints": r.checkpoints,
            "checkpoint_bytes": r.checkpoint_bytes, "checkpoint_seconds": r.checkpoint_seconds,
            "checkpoint_overhead": overhead, "branch": opts.branch, "output": r.output,
            "commit": r.final_commit, "clbits": r.clbits, "drain": drained,
            "method": opts.method.name(), "engine": r.engine, "support": r.support,
            "peak_support": r.peak_support, "switched_to_dense_at": r.switched_at,
            "pruned_mass": r.pruned_mass, "resumed_from_lossy_fidelity": r.resumed_from_lossy,
            "checkpoint_lossy": opts.checkpoint_lossy.map(|l| l.to_string()),
            "qir_output": qir_output,
        }),
        || {
            if r.already_done {
                return format!(
                    "{}: already finished on branch {} (commit {}); nothing to do",
                    circuit.display(),
                    opts.branch,
                    &r.final_commit[..12.min(r.final_commit.len())]
                );
            }
            let mut s = format!(
                "{}: {} qubits, {} gates; {} operations run{} in {:.2} s\n",
                circuit.display(),
                r.qubits,
                r.gates,
                r.ops,
                r.resumed_from
                    .map(|k| format!(" (resumed at operation {k})"))
                    .unwrap_or_default(),
                r.wall_seconds
            );
            if let Some(f) = r.resumed_from_lossy {
                s += &format!(
                    "resumed from a lossy checkpoint (fidelity {f:.12}): the result approximates the exact run\n"
                );
            }
            s += &format!(
                "checkpoints: {} ({} written asynchronously), {:.3} s of simulation time, overhead {:.1}%\n",
                r.checkpoints,
                human_bytes(r.checkpoint_bytes as u128),
                r.checkpoint_seconds,
                overhead * 100.0
            );
            s += &engine_line(&r, &opts);
            s += &format!(
                "final state: {} on branch {} (commit {})",
                r.output,
                opts.branch,
                &r.final_commit[..12.min(r.final_commit.len())]
            );
            if !r.clbits.is_empty() {
                s += &format!(", classical bits {}", r.clbits.chars().rev().collect::<String>());
            }
            if let Some(d) = &drained {
                s += &format!("\n{}", drain_line(d));
            }
            if let Some(o) = &qir_output {
                s += &format!("\n{}", o.trim_end());
            }
            s
        },
    );
    Ok(())
}

/// Run the QIR program `circuit` `shots` times; print every shot's output (QIR output
/// schema) and store the counts at `prefix/counts`.
pub fn shots(
    address: &str,
    circuit: &Path,
    shots: u64,
    prefix: &str,
    opts: RunOptions,
    out: &Out,
) -> Result<()> {
    let Loaded::Qir(text, m) = read(circuit)? else {
        return Err(crate::UsageError(
            "--shots runs QIR programs; for OpenQASM use --trajectories N --shots-per-trajectory K"
                .into(),
        )
        .into());
    };
    let repo = Repository::open_or_init(address)?;
    let path = circuit.display().to_string();
    let r = qstore_sim::qir::run_shots(&repo, &text, &m, &path, shots, prefix, &opts)?;
    out.emit(
        json!({
            "circuit": path, "qubits": r.qubits, "shots": r.shots, "run_now": r.run_now,
            "resumed_at": r.resumed_at, "outcomes": r.outcomes, "outcome_bits": r.outcome_bits,
            "branch": opts.branch, "prefix": prefix, "commit": r.commit, "seconds": r.seconds,
            "checkpoints": r.checkpoints, "output": r.text,
        }),
        || {
            format!(
                "{}{}: {} qubits, {} shots{} in {:.2} s; {} outcomes of {} recorded bits\n\
                 counts: {}/counts on branch {} (commit {})",
                r.text,
                path,
                r.qubits,
                r.shots,
                r.resumed_at
                    .map(|k| format!(" (resumed after {k})"))
                    .unwrap_or_default(),
                r.seconds,
                r.outcomes,
                r.outcome_bits,
                prefix,
                opts.branch,
                &r.commit[..12.min(r.commit.len())]
            )
        },
    );
    Ok(())
}

/// The run summary's line about the engine.
fn engine_line(r: &qstore_sim::RunReport, opts: &RunOptions) -> String {
    let mut s = format!("engine: {} (--method {})", r.engine, opts.method.name());
    if let Some(k) = r.switched_at {
        s += &format!(
            ", switched to dense before operation {} (support could pass 1/32 of 2^{})",
            k + 1,
            r.qubits
        );
    }
    if r.engine == "sparse" {
        s += &format!(
            "; {} non-zero amplitudes at the end, at most {}",
            r.support, r.peak_support
        );
    }
    if opts.prune_below.is_some() {
        s += &format!("; pruning dropped {:.3e} of the probability", r.pruned_mass);
    }
    s + "\n"
}

/// Run `circuit` in the density-matrix mode.
pub fn density(
    address: &str,
    circuit: &Path,
    branch: &str,
    output: &str,
    seed: u64,
    model: &NoiseModel,
    out: &Out,
) -> Result<()> {
    let (source, program) = load(circuit)?;
    let repo = Repository::open_or_init(address)?;
    let r = qstore_sim::run_density(&repo, &source, &program, branch, output, seed, model)?;
    out.emit(
        json!({
            "circuit": circuit.display().to_string(), "qubits": r.qubits, "gates": r.gates,
            "seconds": r.wall_seconds, "sim_seconds": r.sim_seconds, "branch": branch,
            "output": r.output, "commit": r.final_commit, "clbits": r.clbits,
            "mode": "density_matrix",
        }),
        || {
            format!(
                "{}: {} qubits, {} gates as a density matrix in {:.2} s\nfinal density matrix: {} on branch {} (commit {})",
                circuit.display(),
                r.qubits,
                r.gates,
                r.wall_seconds,
                r.output,
                branch,
                &r.final_commit[..12.min(r.final_commit.len())]
            )
        },
    );
    Ok(())
}

/// The run summary's line about the drain.
fn drain_line(d: &qstore::repo::DrainReport) -> String {
    let head = |h: &Option<String>| {
        h.as_deref()
            .map_or("nothing".to_string(), |h| h[..12].to_string())
    };
    let mut s = format!(
        "drain to {}: {} commits sent ({}) in {} pushes; remote {} at {}, ",
        d.remote,
        d.commits_sent,
        human_bytes(d.bytes_sent as u128),
        d.pushes,
        d.branch,
        head(&d.remote_head)
    );
    match d.behind {
        Some(0) => s += "caught up",
        Some(n) => s += &format!("{n} commits behind (run `qstore push` to catch up)"),
        None => s += "how far behind is unknown",
    }
    if let Some(e) = &d.last_error {
        s += &format!("; last push failed: {e}");
    }
    s
}
