//! Running a circuit against a repository: asynchronous checkpoints every N operations or T
//! seconds (each one a commit of `checkpoints/state` whose metadata holds the circuit hash,
//! the next operation, the RNG position, the classical bits and the qubit order), `--resume`
//! from the latest checkpoint of the branch, and the final state committed at the output path.
//!
//! At most one checkpoint is in flight: before staging the next, the previous one is waited
//! for, so the extra memory is one copy of the state. The time the simulation spends on
//! checkpoints (the copy, and any wait for the previous one) is reported as the overhead.

use crate::SimError;
use crate::circuit::Program;
use crate::statevector::{Real, StateVector};
use qstore::{ArrayInfo, CommitOptions, PendingCommit, PutOptions, Repository};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where checkpoints are stored on the branch.
pub const CHECKPOINT_PATH: &str = "checkpoints/state";
/// Most qubits simulated (a 34-qubit state vector is 256 GiB).
pub const MAX_QUBITS: usize = 34;

const META_KIND: &str = "qstore.sim.kind";
const META_HASH: &str = "qstore.sim.circuit_hash";
const META_NEXT: &str = "qstore.sim.next_op";
const META_SEED: &str = "qstore.sim.seed";
const META_RNG: &str = "qstore.sim.rng_word_pos";
const META_CLBITS: &str = "qstore.sim.clbits";
const META_ORDER: &str = "qstore.sim.qubit_order";
const META_OUTPUT: &str = "qstore.sim.output";

/// How often to checkpoint.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Every {
    Ops(usize),
    Time(Duration),
}

/// The precision of the amplitudes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Precision {
    /// complex128.
    #[default]
    Double,
    /// complex64: half the memory and checkpoint bytes, about 1e-7 relative error.
    Single,
}

/// Options of a run.
#[derive(Clone, Debug)]
pub struct RunOptions {
    pub precision: Precision,
    pub branch: String,
    /// State path of the final state.
    pub output: String,
    pub checkpoint_every: Option<Every>,
    pub resume: bool,
    pub seed: u64,
    /// Fault injection for tests: abort the process (no clean-up, like `kill -9`) once this
    /// many operations have run.
    pub abort_after: Option<usize>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            precision: Precision::Double,
            branch: "main".into(),
            output: "final".into(),
            checkpoint_every: None,
            resume: false,
            seed: 0,
            abort_after: None,
        }
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct RunReport {
    pub qubits: usize,
    pub ops: usize,
    pub gates: usize,
    /// The operation a resumed run started from.
    pub resumed_from: Option<usize>,
    /// The run had already finished; nothing was simulated.
    pub already_done: bool,
    pub wall_seconds: f64,
    /// Time in the operations themselves (no checkpoints, no final commit).
    pub sim_seconds: f64,
    /// Time spent on checkpoints by the simulation (copies and waits).
    pub checkpoint_seconds: f64,
    /// Time the checkpoints took from staging to durable commit, in the background (each one
    /// observed at the first operation boundary after it finished).
    pub checkpoint_write_seconds: f64,
    pub checkpoints: usize,
    pub checkpoint_bytes: u64,
    pub final_commit: String,
    pub output: String,
    pub clbits: String,
}

impl RunReport {
    /// Checkpoint time over the time the simulation would have taken without it.
    pub fn checkpoint_overhead(&self) -> f64 {
        let sim = (self.wall_seconds - self.checkpoint_seconds).max(1e-9);
        self.checkpoint_seconds / sim
    }
}

/// The hash that identifies a circuit file.
pub fn circuit_hash(source: &str) -> String {
    blake3::hash(source.as_bytes()).to_hex().to_string()
}

fn bits(clbits: &[bool]) -> String {
    clbits.iter().map(|&b| if b { '1' } else { '0' }).collect()
}

fn info<F: Real>(n: usize) -> ArrayInfo {
    ArrayInfo {
        dtype: F::DTYPE,
        shape: vec![1u64 << n],
    }
}

struct Resume<F: Real> {
    state: StateVector<F>,
    next: usize,
    seed: u64,
    rng: ChaCha8Rng,
    clbits: Vec<bool>,
}

fn meta<'a>(m: &'a BTreeMap<String, String>, k: &str, commit: &str) -> Result<&'a str, SimError> {
    m.get(k)
        .map(|s| s.as_str())
        .ok_or_else(|| SimError::BadCheckpoint {
            commit: commit.into(),
            detail: format!("metadata {k} is missing"),
        })
}

fn parse_meta<T: std::str::FromStr>(
    m: &BTreeMap<String, String>,
    k: &str,
    commit: &str,
) -> Result<T, SimError> {
    meta(m, k, commit)?
        .parse()
        .map_err(|_| SimError::BadCheckpoint {
            commit: commit.into(),
            detail: format!("metadata {k} is not a number"),
        })
}

/// The latest checkpoint (or final state) of a run on `branch`, checked against the circuit.
type Latest<F> = Option<(String, Option<Resume<F>>)>;

fn latest<F: Real>(
    repo: &Repository,
    branch: &str,
    hash: &str,
    program: &Program,
) -> Result<Latest<F>, SimError> {
    for (id, c) in repo.log(branch, usize::MAX)? {
        let Some(kind) = c.metadata.get(META_KIND) else {
            continue;
        };
        let cid = id.to_hex();
        let h = meta(&c.metadata, META_HASH, &cid)?;
        if h != hash {
            return Err(SimError::CircuitChanged {
                branch: branch.into(),
                expected: h.into(),
                actual: hash.into(),
            });
        }
        if kind == "final" {
            return Ok(Some((cid, None)));
        }
        let next: usize = parse_meta(&c.metadata, META_NEXT, &cid)?;
        let seed: u64 = parse_meta(&c.metadata, META_SEED, &cid)?;
        let pos: u128 = parse_meta(&c.metadata, META_RNG, &cid)?;
        let clbits: Vec<bool> = meta(&c.metadata, META_CLBITS, &cid)?
            .chars()
            .map(|ch| ch == '1')
            .collect();
        if next > program.ops.len() || clbits.len() != program.clbits {
            return Err(SimError::BadCheckpoint {
                commit: cid,
                detail: "it does not fit this circuit".into(),
            });
        }
        let mut r = repo.reader(&cid, CHECKPOINT_PATH)?;
        let e = r.entry();
        if e.dtype != F::DTYPE || e.shape != vec![1u64 << program.qubits] {
            return Err(SimError::BadCheckpoint {
                commit: cid,
                detail: format!(
                    "its state is {} {:?}, this run is {}",
                    e.dtype,
                    e.shape,
                    F::DTYPE
                ),
            });
        }
        let mut state = StateVector::<F>::zero(program.qubits);
        r.read_elements(0, 1u64 << program.qubits, state.as_bytes_mut())?;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_word_pos(pos);
        return Ok(Some((
            cid,
            Some(Resume {
                state,
                next,
                seed,
                rng,
                clbits,
            }),
        )));
    }
    Ok(None)
}

/// Run `program` (parsed from `source`) on `repo` as `opts` says.
pub fn run(
    repo: &Repository,
    source: &str,
    program: &Program,
    opts: &RunOptions,
) -> Result<RunReport, SimError> {
    match opts.precision {
        Precision::Double => run_with::<f64>(repo, source, program, opts),
        Precision::Single => run_with::<f32>(repo, source, program, opts),
    }
}

fn run_with<F: Real>(
    repo: &Repository,
    source: &str,
    program: &Program,
    opts: &RunOptions,
) -> Result<RunReport, SimError> {
    let start = Instant::now();
    let n = program.qubits;
    if n == 0 || n > MAX_QUBITS {
        return Err(SimError::TooManyQubits(n, MAX_QUBITS));
    }
    let hash = circuit_hash(source);
    if repo.resolve(&opts.branch).is_err() {
        repo.create_branch(&opts.branch, "main")?;
    }
    let mut report = RunReport {
        qubits: n,
        gates: program.gate_count(),
        output: opts.output.clone(),
        ..Default::default()
    };
    let (mut state, mut next, mut rng, mut clbits, seed) = if opts.resume {
        match latest::<F>(repo, &opts.branch, &hash, program)? {
            None => return Err(SimError::NoCheckpoint(opts.branch.clone())),
            Some((cid, None)) => {
                report.already_done = true;
                report.final_commit = cid;
                report.wall_seconds = start.elapsed().as_secs_f64();
                return Ok(report);
            }
            Some((_, Some(r))) => {
                report.resumed_from = Some(r.next);
                (r.state, r.next, r.rng, r.clbits, r.seed)
            }
        }
    } else {
        (
            StateVector::<F>::zero(n),
            0,
            ChaCha8Rng::seed_from_u64(opts.seed),
            vec![false; program.clbits],
            opts.seed,
        )
    };
    let metadata = |kind: &str, next: usize, rng: &ChaCha8Rng, clbits: &[bool]| {
        BTreeMap::from([
            (META_KIND.to_string(), kind.to_string()),
            (META_HASH.to_string(), hash.clone()),
            (META_NEXT.to_string(), next.to_string()),
            (META_SEED.to_string(), seed.to_string()),
            (META_RNG.to_string(), rng.get_word_pos().to_string()),
            (META_CLBITS.to_string(), bits(clbits)),
            (META_ORDER.to_string(), "little".to_string()),
            (META_OUTPUT.to_string(), opts.output.clone()),
        ])
    };
    let mut pending: Option<(PendingCommit, Instant)> = None;
    let mut since = (0usize, Instant::now());
    let loop_start = Instant::now();
    while next < program.ops.len() {
        state.run(&program.ops[next].0, &mut clbits, &mut rng);
        next += 1;
        if let Some((p, t)) = pending.take_if(|(p, _)| p.is_done()) {
            report.checkpoint_write_seconds += t.elapsed().as_secs_f64();
            p.wait()?;
        }
        report.ops += 1;
        if opts.abort_after == Some(report.ops) {
            std::process::abort();
        }
        let due = match opts.checkpoint_every {
            Some(Every::Ops(k)) => next - since.0 >= k.max(1),
            Some(Every::Time(t)) => since.1.elapsed() >= t,
            None => false,
        };
        if due && next < program.ops.len() {
            let t0 = Instant::now();
            if let Some((p, t)) = pending.take() {
                p.wait()?;
                report.checkpoint_write_seconds += t.elapsed().as_secs_f64();
            }
            pending = Some((
                repo.put_async(
                    &opts.branch,
                    CHECKPOINT_PATH,
                    &info::<F>(n),
                    state.as_bytes(),
                    PutOptions::default(),
                    CommitOptions {
                        message: format!("checkpoint after operation {next}"),
                        author: "qstore run".into(),
                        metadata: metadata("checkpoint", next, &rng, &clbits),
                    },
                )?,
                Instant::now(),
            ));
            report.checkpoints += 1;
            report.checkpoint_bytes += state.as_bytes().len() as u64;
            report.checkpoint_seconds += t0.elapsed().as_secs_f64();
            since = (next, Instant::now());
        }
    }
    report.sim_seconds = loop_start.elapsed().as_secs_f64() - report.checkpoint_seconds;
    if let Some((p, t)) = pending.take() {
        let t0 = Instant::now();
        p.wait()?;
        report.checkpoint_seconds += t0.elapsed().as_secs_f64();
        report.checkpoint_write_seconds += t.elapsed().as_secs_f64();
    }
    let mut tx = repo.transaction(&opts.branch)?;
    let mut tags = BTreeMap::new();
    tags.insert("qubit_order".to_string(), "little".to_string());
    tags.insert("source".to_string(), "qstore-sim".to_string());
    tx.put(
        &opts.output,
        &info::<F>(n),
        state.as_bytes(),
        &PutOptions {
            tags,
            ..Default::default()
        },
    )?;
    let id = tx.commit(CommitOptions {
        message: format!(
            "final state of the circuit ({} operations)",
            program.ops.len()
        ),
        author: "qstore run".into(),
        metadata: metadata("final", next, &rng, &clbits),
    })?;
    report.final_commit = id.to_hex();
    report.clbits = bits(&clbits);
    report.wall_seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
