//! QIR programs for `qstore run`: [`parse`] reads the textual LLVM IR subset QIR uses (no
//! LLVM needed; bitcode is turned into text by an `llvm-dis` when one is installed),
//! [`interp`] runs it an operation at a time, and [`QirSource`] hands those operations to the
//! runner, which applies them with the same engines, checkpoints and `--resume` as OpenQASM 2
//! circuits (the interpreter's position rides in each checkpoint). A program without
//! branches on results unrolls into an OpenQASM-style [`Program`] ([`to_program`]), so
//! noisy trajectory studies and density-matrix runs take it too. [`run_shots`] runs a program
//! many times and stores the recorded outputs as counts.

pub mod interp;
pub mod parse;

pub use interp::{Machine, Record, Step};
pub use parse::{Module, ParseError, parse};

use crate::SimError;
use crate::basis::words_for;
use crate::circuit::Program;
use crate::hybrid::Hybrid;
use crate::runner::{Next, OpSource, RunOptions, RunState, circuit_hash};
use crate::statevector::StateVector;
use qstore::{CommitOptions, Repository};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::Path;

/// Whether `path` or `text` is a QIR program (`.ll`, `.bc`, or LLVM IR text) rather than
/// OpenQASM.
pub fn is_qir(path: &Path, text: &[u8]) -> bool {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    if ext == "ll" || ext == "bc" {
        return true;
    }
    text.starts_with(b"BC\xC0\xDE")
        || text.starts_with(&[0xDE, 0xC0, 0x17, 0x0B])
        || std::str::from_utf8(&text[..text.len().min(4096)])
            .map(|t| {
                t.lines().any(|l| {
                    let l = l.trim_start();
                    l.starts_with("define ") || l.starts_with("; ModuleID")
                })
            })
            .unwrap_or(false)
}

/// The `llvm-dis` to turn bitcode into text: `llvm-dis`, else the newest `llvm-dis-N` on
/// the PATH (Debian installs them versioned), else `/usr/lib/llvm-N/bin/llvm-dis`.
/// `QSTORE_LLVM_DIS` names one explicitly (empty: none).
pub fn find_llvm_dis() -> Option<std::path::PathBuf> {
    if let Some(p) = std::env::var_os("QSTORE_LLVM_DIS") {
        return (!p.is_empty()).then(|| p.into());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let mut best: Option<(u32, std::path::PathBuf)> = None;
    for dir in std::env::split_paths(&path) {
        let plain = dir.join("llvm-dis");
        if plain.is_file() {
            return Some(plain);
        }
        if let Ok(rd) = std::fs::read_dir(&dir) {
            for e in rd.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if let Some(v) = name
                    .strip_prefix("llvm-dis-")
                    .and_then(|v| v.parse::<u32>().ok())
                    && best.as_ref().is_none_or(|b| v > b.0)
                {
                    best = Some((v, e.path()));
                }
            }
        }
    }
    if best.is_none()
        && let Ok(rd) = std::fs::read_dir("/usr/lib")
    {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(v) = name
                .strip_prefix("llvm-")
                .and_then(|v| v.parse::<u32>().ok())
            {
                let p = e.path().join("bin/llvm-dis");
                if p.is_file() && best.as_ref().is_none_or(|b| v > b.0) {
                    best = Some((v, p));
                }
            }
        }
    }
    best.map(|b| b.1)
}

/// The text of a QIR file: as is, or bitcode through `llvm-dis`.
pub fn read_text(path: &Path, bytes: Vec<u8>) -> Result<String, SimError> {
    let bad = |message: String| SimError::Qir {
        path: path.display().to_string(),
        line: 0,
        message,
    };
    let bitcode = bytes.starts_with(b"BC\xC0\xDE") || bytes.starts_with(&[0xDE, 0xC0, 0x17, 0x0B]);
    if !bitcode {
        return String::from_utf8(bytes)
            .map_err(|_| bad("not UTF-8 text, and not LLVM bitcode".into()));
    }
    let Some(dis) = find_llvm_dis() else {
        return Err(bad(
            "this is LLVM bitcode; reading it needs llvm-dis (Debian: apt-get install llvm, \
             or llvm-14, llvm-19, ...), or give the textual .ll form"
                .into(),
        ));
    };
    let run = |extra: &[&str]| {
        std::process::Command::new(&dis)
            .args(extra)
            .arg(path)
            .arg("-o")
            .arg("-")
            .output()
            .map_err(|e| bad(format!("running {}: {e}", dis.display())))
    };
    let mut out = run(&[])?;
    // LLVM 14 and 15 read opaque-pointer bitcode (pyqir's) only when told to.
    if !out.status.success() && String::from_utf8_lossy(&out.stderr).contains("opaque-pointers") {
        out = run(&["-opaque-pointers"])?;
    }
    if !out.status.success() {
        return Err(bad(format!(
            "{} could not read it: {}",
            dis.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    String::from_utf8(out.stdout).map_err(|_| bad(format!("{} printed non-UTF-8", dis.display())))
}

/// Parse and check a program: the IR, the intrinsics it calls, its size.
pub fn load(path: &Path, text: &str) -> Result<Module, SimError> {
    let p = path.display().to_string();
    let m = parse(text).map_err(|e| SimError::Qir {
        path: p.clone(),
        line: e.line,
        message: e.message,
    })?;
    interp::check_calls(&m).map_err(|e| SimError::Qir {
        path: p.clone(),
        line: e.line,
        message: e.message,
    })?;
    let (q, r) = interp::sizes(&m);
    if q as usize > crate::basis::MAX_SPARSE_QUBITS || q == 0 {
        return Err(SimError::TooManyQubits(
            q as usize,
            crate::basis::MAX_SPARSE_QUBITS,
        ));
    }
    if r > 1 << 20 {
        return Err(SimError::Qir {
            path: p,
            line: m.line,
            message: format!("{r} results are more than this runner keeps (1,048,576)"),
        });
    }
    Ok(m)
}

/// A QIR program as the runner's operation source.
pub struct QirSource<'a> {
    pub module: &'a Module,
    pub machine: Machine,
    pub path: String,
    qubits: u64,
    results: u64,
}

impl<'a> QirSource<'a> {
    pub fn new(module: &'a Module, path: &str) -> Self {
        let (qubits, results) = interp::sizes(module);
        QirSource {
            module,
            machine: Machine::new(),
            path: path.into(),
            qubits,
            results,
        }
    }

    fn err(&self, e: interp::RunError) -> SimError {
        SimError::Qir {
            path: self.path.clone(),
            line: e.line,
            message: e.message,
        }
    }
}

impl OpSource for QirSource<'_> {
    fn qubits(&self) -> usize {
        self.qubits as usize
    }

    fn clbits(&self) -> usize {
        self.results as usize
    }

    fn gate_count(&self) -> usize {
        self.module
            .blocks
            .iter()
            .flat_map(|b| &b.insts)
            .filter(|(i, _)| {
                matches!(i, parse::Inst::Call { callee, .. }
                    if callee.starts_with("__quantum__qis__")
                        && !callee.contains("__m")
                        && !callee.contains("reset")
                        && !callee.contains("read_result")
                        && !callee.contains("barrier"))
            })
            .count()
    }

    fn next(&mut self, clbits: &[bool]) -> Result<Next, SimError> {
        match self.machine.step(self.module, self.qubits, clbits) {
            Ok(Step::Op(op, line)) => Ok(Next::Op(op, line)),
            Ok(Step::Checkpoint(label, _)) => Ok(Next::Checkpoint(label)),
            Ok(Step::End) => Ok(Next::End),
            Err(e) => Err(self.err(e)),
        }
    }

    fn at_end(&self) -> bool {
        self.machine.done
    }

    fn position(&self) -> String {
        serde_json::to_string(&self.machine).unwrap_or_default()
    }

    fn restore(&mut self, position: Option<&str>, _ops: usize) -> Result<(), String> {
        let p =
            position.ok_or("it holds no QIR interpreter position (written by another program?)")?;
        let m: Machine = serde_json::from_str(p).map_err(|e| format!("its QIR position: {e}"))?;
        if m.block >= self.module.blocks.len() || m.pc > self.module.blocks[m.block].insts.len() {
            return Err("its QIR position does not fit this program".into());
        }
        self.machine = m;
        Ok(())
    }
}

/// Whether the program's operations do not depend on measurement results (no
/// `read_result`, no conditional branch): then it unrolls into a [`Program`].
pub fn is_static(m: &Module) -> bool {
    m.blocks
        .iter()
        .flat_map(|b| &b.insts)
        .all(|(i, _)| match i {
            parse::Inst::CondBr { .. } => false,
            parse::Inst::Call { callee, .. } => !callee.contains("read_result"),
            _ => true,
        })
}

/// The operations of a static program in order (see [`is_static`]); `None` for an adaptive
/// one.
pub fn to_program(m: &Module, path: &str) -> Result<Option<Program>, SimError> {
    if !is_static(m) {
        return Ok(None);
    }
    let mut src = QirSource::new(m, path);
    let clbits = vec![false; src.clbits()];
    let mut ops = Vec::new();
    loop {
        match src.next(&clbits)? {
            Next::End => break,
            Next::Checkpoint(_) => {}
            Next::Op(op, line) => ops.push((op, line)),
        }
    }
    Ok(Some(Program {
        qubits: src.qubits(),
        clbits: src.clbits(),
        ops,
    }))
}

/// What a multi-shot run did.
#[derive(Clone, Debug, Default)]
pub struct ShotsReport {
    pub qubits: usize,
    pub shots: u64,
    /// Shots run by this invocation (the rest came from a checkpoint).
    pub run_now: u64,
    pub resumed_at: Option<u64>,
    pub outcomes: usize,
    pub outcome_bits: usize,
    pub commit: String,
    /// The output of each shot run now, in the QIR output schema.
    pub text: String,
    pub seconds: f64,
    pub checkpoints: usize,
}

const META_KIND: &str = "qstore.sim.kind";
const META_HASH: &str = "qstore.sim.circuit_hash";
const META_DONE: &str = "qstore.sim.shots_done";
const META_SHOTS: &str = "qstore.sim.shots";
const META_SEED: &str = "qstore.sim.seed";
const META_RNG: &str = "qstore.sim.rng_word_pos";
const META_WIDTH: &str = "qstore.sim.outcome_bits";

/// Run `m` `shots` times on fresh states (measurements drawn from one ChaCha8 stream of
/// `opts.seed`, carried from shot to shot), storing the counts of the recorded results and
/// booleans (outcome bit k = the k-th recorded in a shot) at `prefix/counts` on the branch.
/// With `opts.checkpoint_every` (a number of shots) the counts so far are committed between
/// shots and `opts.resume` continues from the latest such commit (`opts.abort_after` counts
/// shots here).
pub fn run_shots(
    repo: &Repository,
    text: &str,
    m: &Module,
    path: &str,
    shots: u64,
    prefix: &str,
    opts: &RunOptions,
) -> Result<ShotsReport, SimError> {
    let (q, _) = interp::sizes(m);
    match words_for(q as usize) {
        _ if q <= 30 && opts.method != crate::hybrid::Method::Sparse => {
            shots_with::<StateVector<f64>>(repo, text, m, path, shots, prefix, opts)
        }
        Some(1) => shots_with::<Hybrid<1>>(repo, text, m, path, shots, prefix, opts),
        Some(2) => shots_with::<Hybrid<2>>(repo, text, m, path, shots, prefix, opts),
        Some(4) => shots_with::<Hybrid<4>>(repo, text, m, path, shots, prefix, opts),
        Some(8) => shots_with::<Hybrid<8>>(repo, text, m, path, shots, prefix, opts),
        Some(_) => shots_with::<Hybrid<16>>(repo, text, m, path, shots, prefix, opts),
        None => Err(SimError::TooManyQubits(
            q as usize,
            crate::basis::MAX_SPARSE_QUBITS,
        )),
    }
}

fn shots_with<S: RunState>(
    repo: &Repository,
    text: &str,
    m: &Module,
    path: &str,
    shots: u64,
    prefix: &str,
    opts: &RunOptions,
) -> Result<ShotsReport, SimError> {
    let start = std::time::Instant::now();
    let hash = circuit_hash(text);
    let plan = opts.plan();
    if repo.resolve(&opts.branch).is_err() {
        repo.create_branch(&opts.branch, "main")?;
    }
    let (qubits, _) = interp::sizes(m);
    let mut report = ShotsReport {
        qubits: qubits as usize,
        shots,
        ..Default::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
    let mut counts: BTreeMap<Vec<u64>, u64> = BTreeMap::new();
    let mut width: usize = 0;
    let mut done = 0u64;
    if opts.resume {
        let mut found = false;
        for (id, c) in repo.log(&opts.branch, usize::MAX)? {
            let Some(kind) = c.metadata.get(META_KIND) else {
                continue;
            };
            let cid = id.to_hex();
            if c.metadata.get(META_HASH) != Some(&hash) {
                return Err(SimError::CircuitChanged {
                    branch: opts.branch.clone(),
                    expected: c.metadata.get(META_HASH).cloned().unwrap_or_default(),
                    actual: hash,
                });
            }
            let num = |k: &str| -> Result<u128, SimError> {
                c.metadata
                    .get(k)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| SimError::BadCheckpoint {
                        commit: cid.clone(),
                        detail: format!("metadata {k} is missing or not a number"),
                    })
            };
            if kind != "qir-shots" && kind != "qir-shots-final" {
                return Err(SimError::BadCheckpoint {
                    commit: cid,
                    detail: format!("the latest run on this branch is a {kind} run, not --shots"),
                });
            }
            if num(META_SHOTS)? as u64 != shots || num(META_SEED)? as u64 != opts.seed {
                return Err(SimError::Options(format!(
                    "the run on branch {} was started with --shots {} --seed {}; resume it with the same",
                    opts.branch,
                    num(META_SHOTS)?,
                    num(META_SEED)?
                )));
            }
            done = num(META_DONE)? as u64;
            width = num(META_WIDTH)? as usize;
            rng.set_word_pos(num(META_RNG)?);
            counts = read_counts(repo, &cid, &format!("{prefix}/counts"), width)?;
            report.resumed_at = Some(done);
            found = true;
            break;
        }
        if !found {
            return Err(SimError::NoCheckpoint(opts.branch.clone()));
        }
    }
    let every = match opts.checkpoint_every {
        Some(crate::runner::Every::Ops(k)) => Some(k as u64),
        Some(crate::runner::Every::Time(_)) => {
            return Err(SimError::Options(
                "--checkpoint-every with --shots counts shots (a number)".into(),
            ));
        }
        None => None,
    };
    let commit = |counts: &BTreeMap<Vec<u64>, u64>,
                  done: u64,
                  width: usize,
                  rng: &ChaCha8Rng,
                  fin: bool|
     -> Result<String, SimError> {
        let mut tx = repo.transaction(&opts.branch)?;
        crate::study::put_counts(&mut tx, &format!("{prefix}/counts"), counts, width)?;
        let id = tx.commit(CommitOptions {
            message: if fin {
                format!("counts of {shots} shots of {path}")
            } else {
                format!("counts after {done} of {shots} shots of {path}")
            },
            author: "qstore run".into(),
            metadata: BTreeMap::from([
                (
                    META_KIND.to_string(),
                    if fin { "qir-shots-final" } else { "qir-shots" }.to_string(),
                ),
                (META_HASH.to_string(), hash.clone()),
                (META_DONE.to_string(), done.to_string()),
                (META_SHOTS.to_string(), shots.to_string()),
                (META_SEED.to_string(), opts.seed.to_string()),
                (META_RNG.to_string(), rng.get_word_pos().to_string()),
                (META_WIDTH.to_string(), width.to_string()),
            ]),
        })?;
        Ok(id.to_hex())
    };
    let mut since = 0;
    while done < shots {
        let mut state = S::fresh(qubits as usize, &plan)?;
        let mut src = QirSource::new(m, path);
        let mut clbits = vec![false; src.clbits()];
        let mut k = 0;
        loop {
            match src.next(&clbits)? {
                Next::End => break,
                Next::Checkpoint(_) => {}
                Next::Op(op, line) => {
                    state.step(&op, k, line, &plan, &mut clbits, &mut rng)?;
                    k += 1;
                }
            }
        }
        report.text.push_str(&src.machine.output_text(m));
        let bits = src.machine.outcome_bits(&clbits);
        if done == 0 && report.resumed_at.is_none() {
            width = bits.len();
        }
        if bits.len() != width {
            return Err(SimError::Options(format!(
                "shot {done} recorded {} results where the first recorded {width}: counts need the same number in every shot",
                bits.len()
            )));
        }
        let words = width.div_ceil(64).max(1);
        let mut v = vec![0u64; words];
        for (i, _) in bits.iter().enumerate().filter(|(_, b)| **b) {
            v[words - 1 - i / 64] |= 1u64 << (i % 64);
        }
        *counts.entry(v).or_insert(0) += 1;
        done += 1;
        report.run_now += 1;
        since += 1;
        if opts.abort_after == Some(report.run_now as usize) {
            std::process::abort();
        }
        if let Some(e) = every
            && since >= e.max(1)
            && done < shots
        {
            commit(&counts, done, width, &rng, false)?;
            report.checkpoints += 1;
            since = 0;
        }
    }
    report.commit = commit(&counts, done, width, &rng, true)?;
    report.outcomes = counts.len();
    report.outcome_bits = width;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// Counts stored by [`run_shots`], read back.
fn read_counts(
    repo: &Repository,
    commit: &str,
    path: &str,
    width: usize,
) -> Result<BTreeMap<Vec<u64>, u64>, SimError> {
    let data = repo.reader(commit, path)?.read_all()?;
    let vals: Vec<u64> = data
        .chunks_exact(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8])))
        .collect();
    let mut out = BTreeMap::new();
    let words = width.div_ceil(64).max(1);
    if width <= crate::study::MAX_COUNT_BITS {
        for (i, &n) in vals.iter().enumerate() {
            if n > 0 {
                let mut k = vec![0u64; words];
                k[words - 1] = i as u64;
                out.insert(k, n);
            }
        }
    } else {
        for row in vals.chunks_exact(words + 1) {
            let k: Vec<u64> = row[..words].iter().rev().copied().collect();
            out.insert(k, row[words]);
        }
    }
    Ok(out)
}
