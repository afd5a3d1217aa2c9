//! Running a circuit against a repository: asynchronous checkpoints every N operations or T
//! seconds (each one a commit of `checkpoints/state` whose metadata holds the circuit hash,
//! the next operation, the RNG position, the classical bits, the engine and the qubit
//! order), `--resume` from the latest checkpoint of the branch, and the final state committed
//! at the output path.
//!
//! A complex128 run follows a [`Plan`] ([`crate::hybrid`]): sparse, dense, or sparse first and
//! dense once the support is large. Checkpoints and the final state are stored in the form the
//! run is in: a sparse run's as a sparse state (a checkpoint of GHZ-127 costs bytes), written
//! synchronously (it is small); a dense run's dense, in the background: at most one dense
//! checkpoint is in flight, so the extra memory is one copy of the state. The time the
//! simulation spends on checkpoints (copies, sparse writes and waits) is reported as the
//! overhead.

use crate::SimError;
use crate::basis::words_for;
use crate::circuit::{Op, Program};
use crate::hybrid::{Hybrid, Method, Plan, Repr, default_memory_limit};
use crate::sparse::SparseState;
use crate::state::QuantumState;
use crate::statevector::{Real, StateVector};
use qstore::{
    ArrayInfo, CommitOptions, DType, PendingCommit, PutOptions, Repository, StateReader,
    WideSparseInput,
};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Where checkpoints are stored on the branch.
pub const CHECKPOINT_PATH: &str = "checkpoints/state";
/// Most qubits of a dense run (a 34-qubit state vector is 256 GiB).
pub const MAX_QUBITS: usize = crate::hybrid::MAX_DENSE_QUBITS;

const META_KIND: &str = "qstore.sim.kind";
const META_HASH: &str = "qstore.sim.circuit_hash";
const META_NEXT: &str = "qstore.sim.next_op";
const META_SEED: &str = "qstore.sim.seed";
const META_RNG: &str = "qstore.sim.rng_word_pos";
const META_CLBITS: &str = "qstore.sim.clbits";
const META_ORDER: &str = "qstore.sim.qubit_order";
const META_OUTPUT: &str = "qstore.sim.output";
const META_ENGINE: &str = "qstore.sim.engine";
const META_PRUNED: &str = "qstore.sim.pruned_mass";
/// The program's position (a QIR interpreter's state as JSON; an OpenQASM index).
const META_POSITION: &str = "qstore.sim.position";

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
    /// complex64: half the memory and checkpoint bytes, about 1e-7 relative error (dense
    /// engine only).
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
    /// The engine: auto (sparse, then dense), sparse or dense.
    pub method: Method,
    /// Bytes the state may take; `None`: the memory available on this machine.
    pub memory_limit: Option<u64>,
    /// Drop amplitudes of magnitude below this (sparse engine), reporting the mass dropped.
    pub prune_below: Option<f64>,
    /// Store dense checkpoints lossy (opt-in: `--resume` then continues from an
    /// approximation, whose fidelity is in the checkpoint's entry). Sparse checkpoints and
    /// the final state stay lossless.
    pub checkpoint_lossy: Option<qstore::state::lossy::LossySpec>,
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
            method: Method::Auto,
            memory_limit: None,
            prune_below: None,
            checkpoint_lossy: None,
            abort_after: None,
        }
    }
}

impl RunOptions {
    /// The plan the options give.
    pub fn plan(&self) -> Plan {
        Plan {
            method: self.method,
            memory_limit: self.memory_limit.unwrap_or_else(default_memory_limit),
            prune_below: self.prune_below,
            checkpoints: self.checkpoint_every.is_some(),
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
    /// The fidelity of the lossy checkpoint a resumed run started from (the result is then
    /// approximate); `None` for a lossless one.
    pub resumed_from_lossy: Option<f64>,
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
    /// The engine the run ended in: `sparse` or `dense`.
    pub engine: String,
    /// Non-zero amplitudes at the end (2^n for a dense state).
    pub support: u64,
    /// Most non-zero amplitudes the sparse engine held.
    pub peak_support: u64,
    /// The operation before which an `auto` run switched to dense (in this process).
    pub switched_at: Option<usize>,
    /// Probability mass dropped by `prune_below`, over the whole run.
    pub pruned_mass: f64,
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

/// A state in the form it is stored.
pub(crate) enum Stored<'a> {
    Dense(DType, &'a [u8]),
    /// Index words (`ceil(n / 64)` per entry) and complex128 amplitude bytes.
    Sparse(Vec<u64>, Vec<u8>),
}

/// What the runner needs of a state: the dense engine in either precision, or a complex128
/// [`Hybrid`].
pub(crate) trait RunState: QuantumState + Sized {
    fn fresh(n: usize, plan: &Plan) -> Result<Self, SimError>;
    #[allow(clippy::too_many_arguments)]
    fn step(
        &mut self,
        op: &Op,
        index: usize,
        line: usize,
        plan: &Plan,
        clbits: &mut [bool],
        rng: &mut ChaCha8Rng,
    ) -> Result<(), SimError>;
    fn stored(&self) -> Stored<'_>;
    fn engine(&self) -> &'static str;
    /// Read a checkpoint written in `engine`'s form.
    fn load(r: &mut StateReader, engine: &str, n: usize, plan: &Plan) -> Result<Self, String>;
    fn pruned_mass(&self) -> f64 {
        0.0
    }
    fn add_pruned_mass(&mut self, _: f64) {}
    fn support(&self) -> u64;
    fn peak_support(&self) -> u64 {
        0
    }
    fn switched_at(&self) -> Option<usize> {
        None
    }
}

/// Read a dense state of `n` qubits and dtype `F`, checking its entry.
fn read_dense<F: Real>(r: &mut StateReader, n: usize) -> Result<StateVector<F>, String> {
    let e = r.entry();
    if e.dtype != F::DTYPE || e.shape != vec![1u64 << n] {
        return Err(format!(
            "its state is {} {:?}, this run is {} of {n} qubits",
            e.dtype,
            e.shape,
            F::DTYPE
        ));
    }
    let mut state = StateVector::<F>::zero(n);
    r.read_elements(0, 1u64 << n, state.as_bytes_mut())
        .map_err(|e| e.to_string())?;
    Ok(state)
}

impl<F: Real> RunState for StateVector<F> {
    fn fresh(n: usize, plan: &Plan) -> Result<Self, SimError> {
        let scaled = Plan {
            memory_limit: plan
                .memory_limit
                .saturating_mul(16 / F::DTYPE.item_size() as u64),
            ..*plan
        };
        scaled.check_dense(n)?;
        Ok(StateVector::zero(n))
    }

    fn step(
        &mut self,
        op: &Op,
        _: usize,
        _: usize,
        _: &Plan,
        clbits: &mut [bool],
        rng: &mut ChaCha8Rng,
    ) -> Result<(), SimError> {
        self.run(op, clbits, rng);
        Ok(())
    }

    fn stored(&self) -> Stored<'_> {
        Stored::Dense(F::DTYPE, self.as_bytes())
    }

    fn engine(&self) -> &'static str {
        "dense"
    }

    fn load(r: &mut StateReader, engine: &str, n: usize, _: &Plan) -> Result<Self, String> {
        if engine != "dense" {
            return Err(format!(
                "it holds a {engine} state; {} runs are dense",
                F::DTYPE
            ));
        }
        read_dense(r, n)
    }

    fn support(&self) -> u64 {
        self.amps.len() as u64
    }
}

impl<const W: usize> RunState for Hybrid<W> {
    fn fresh(n: usize, plan: &Plan) -> Result<Self, SimError> {
        Hybrid::fresh(n, plan)
    }

    fn step(
        &mut self,
        op: &Op,
        index: usize,
        line: usize,
        plan: &Plan,
        clbits: &mut [bool],
        rng: &mut ChaCha8Rng,
    ) -> Result<(), SimError> {
        Hybrid::step(self, op, index, line, plan, clbits, rng)
    }

    fn stored(&self) -> Stored<'_> {
        match &self.repr {
            Repr::Dense(s) => Stored::Dense(DType::Complex128, s.as_bytes()),
            Repr::Sparse(s) => {
                let (idx, vals) = s.to_stored();
                Stored::Sparse(idx, vals)
            }
        }
    }

    fn engine(&self) -> &'static str {
        Hybrid::engine(self)
    }

    fn load(r: &mut StateReader, engine: &str, n: usize, plan: &Plan) -> Result<Self, String> {
        let repr = if engine == "sparse" {
            let e = r.entry();
            if e.dtype != DType::Complex128 || e.qubits as usize != n {
                return Err(format!(
                    "its state is {} of {} qubits, this run is complex128 of {n}",
                    e.dtype, e.qubits
                ));
            }
            let w = r.read_sparse_wide().map_err(|e| e.to_string())?;
            Repr::Sparse(SparseState::from_stored(n, w.words, &w.indices, &w.values)?)
        } else {
            Repr::Dense(read_dense::<f64>(r, n)?)
        };
        let mut h = Hybrid::of(repr);
        h.adopt(plan).map_err(|e| e.to_string())?;
        Ok(h)
    }

    fn pruned_mass(&self) -> f64 {
        self.pruned_mass
    }

    fn add_pruned_mass(&mut self, m: f64) {
        self.pruned_mass += m;
    }

    fn support(&self) -> u64 {
        Hybrid::support(self)
    }

    fn peak_support(&self) -> u64 {
        self.peak_support as u64
    }

    fn switched_at(&self) -> Option<usize> {
        self.switched_at
    }
}

/// What the runner does next, as an [`OpSource`] says.
pub enum Next {
    /// Apply this operation (from this source line).
    Op(Op, usize),
    /// Checkpoint now (a program's own request), with this label.
    Checkpoint(String),
    /// The program is done.
    End,
}

/// Where a run's operations come from: an OpenQASM [`Program`] read in order, or a QIR
/// program's interpreter ([`crate::qir::QirSource`]), which decides the next operation from
/// the measurement results so far. Its position is stored in each checkpoint.
pub trait OpSource {
    fn qubits(&self) -> usize;
    fn clbits(&self) -> usize;
    /// Gates in the program (as written; a loop's gates count once).
    fn gate_count(&self) -> usize;
    /// The next operation; `clbits` holds the measurement results so far.
    fn next(&mut self, clbits: &[bool]) -> Result<Next, SimError>;
    /// Whether the program has no operation left (to skip a checkpoint at the very end).
    fn at_end(&self) -> bool;
    /// The position to store in a checkpoint.
    fn position(&self) -> String;
    /// Continue from a stored position, `ops` operations in.
    fn restore(&mut self, position: Option<&str>, ops: usize) -> Result<(), String>;
}

/// An OpenQASM program read in order: its position is the index of the next operation.
pub struct ProgramSource<'a> {
    pub program: &'a Program,
    pub next: usize,
}

impl OpSource for ProgramSource<'_> {
    fn qubits(&self) -> usize {
        self.program.qubits
    }

    fn clbits(&self) -> usize {
        self.program.clbits
    }

    fn gate_count(&self) -> usize {
        self.program.gate_count()
    }

    fn next(&mut self, _clbits: &[bool]) -> Result<Next, SimError> {
        match self.program.ops.get(self.next) {
            Some((op, line)) => {
                self.next += 1;
                Ok(Next::Op(op.clone(), *line))
            }
            None => Ok(Next::End),
        }
    }

    fn at_end(&self) -> bool {
        self.next >= self.program.ops.len()
    }

    fn position(&self) -> String {
        self.next.to_string()
    }

    fn restore(&mut self, _position: Option<&str>, ops: usize) -> Result<(), String> {
        if ops > self.program.ops.len() {
            return Err("it does not fit this circuit".into());
        }
        self.next = ops;
        Ok(())
    }
}

struct Resume<S> {
    state: S,
    /// The fidelity of a lossy checkpoint to the state it approximates.
    lossy_fidelity: Option<f64>,
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
type Latest<S> = Option<(String, Option<Resume<S>>)>;

fn latest<S: RunState>(
    repo: &Repository,
    branch: &str,
    hash: &str,
    source: &mut dyn OpSource,
    plan: &Plan,
) -> Result<Latest<S>, SimError> {
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
        if clbits.len() != source.clbits() {
            return Err(SimError::BadCheckpoint {
                commit: cid,
                detail: "it does not fit this circuit".into(),
            });
        }
        source
            .restore(c.metadata.get(META_POSITION).map(|s| s.as_str()), next)
            .map_err(|detail| SimError::BadCheckpoint {
                commit: cid.clone(),
                detail,
            })?;
        // Checkpoints written before the sparse engine existed are dense.
        let engine = c.metadata.get(META_ENGINE).map_or("dense", |s| s.as_str());
        let mut r = repo.reader(&cid, CHECKPOINT_PATH)?;
        let lossy_fidelity = r.entry().lossy.as_ref().map(|l| l.fidelity);
        let mut state = S::load(&mut r, engine, source.qubits(), plan).map_err(|detail| {
            SimError::BadCheckpoint {
                commit: cid.clone(),
                detail,
            }
        })?;
        if let Some(m) = c.metadata.get(META_PRUNED) {
            state.add_pruned_mass(m.parse().unwrap_or(0.0));
        }
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        rng.set_word_pos(pos);
        return Ok(Some((
            cid,
            Some(Resume {
                state,
                lossy_fidelity,
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
    run_source(repo, source, &mut ProgramSource { program, next: 0 }, opts)
}

/// Run the operations `program` gives (its text is `source`) on `repo` as `opts` says.
pub fn run_source(
    repo: &Repository,
    source: &str,
    program: &mut dyn OpSource,
    opts: &RunOptions,
) -> Result<RunReport, SimError> {
    let n = program.qubits();
    if n == 0 {
        return Err(SimError::TooManyQubits(0, MAX_QUBITS));
    }
    match opts.precision {
        Precision::Single if opts.method == Method::Sparse => Err(SimError::Options(
            "complex64 runs use the dense engine: --method sparse needs --dtype complex128".into(),
        )),
        Precision::Single => run_with::<StateVector<f32>>(repo, source, program, opts),
        Precision::Double => match words_for(n) {
            Some(1) => run_with::<Hybrid<1>>(repo, source, program, opts),
            Some(2) => run_with::<Hybrid<2>>(repo, source, program, opts),
            Some(4) => run_with::<Hybrid<4>>(repo, source, program, opts),
            Some(8) => run_with::<Hybrid<8>>(repo, source, program, opts),
            Some(_) => run_with::<Hybrid<16>>(repo, source, program, opts),
            None => Err(SimError::TooManyQubits(n, crate::basis::MAX_SPARSE_QUBITS)),
        },
    }
}

fn run_with<S: RunState>(
    repo: &Repository,
    source: &str,
    program: &mut dyn OpSource,
    opts: &RunOptions,
) -> Result<RunReport, SimError> {
    let start = Instant::now();
    let n = program.qubits();
    let plan = opts.plan();
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
        match latest::<S>(repo, &opts.branch, &hash, program, &plan)? {
            None => return Err(SimError::NoCheckpoint(opts.branch.clone())),
            Some((cid, None)) => {
                report.already_done = true;
                report.final_commit = cid;
                report.wall_seconds = start.elapsed().as_secs_f64();
                return Ok(report);
            }
            Some((_, Some(r))) => {
                report.resumed_from = Some(r.next);
                report.resumed_from_lossy = r.lossy_fidelity;
                (r.state, r.next, r.rng, r.clbits, r.seed)
            }
        }
    } else {
        (
            S::fresh(n, &plan)?,
            0,
            ChaCha8Rng::seed_from_u64(opts.seed),
            vec![false; program.clbits()],
            opts.seed,
        )
    };
    let metadata =
        |kind: &str, next: usize, position: String, rng: &ChaCha8Rng, clbits: &[bool], s: &S| {
            let mut m = BTreeMap::from([
                (META_POSITION.to_string(), position),
                (META_KIND.to_string(), kind.to_string()),
                (META_HASH.to_string(), hash.clone()),
                (META_NEXT.to_string(), next.to_string()),
                (META_SEED.to_string(), seed.to_string()),
                (META_RNG.to_string(), rng.get_word_pos().to_string()),
                (META_CLBITS.to_string(), bits(clbits)),
                (META_ORDER.to_string(), "little".to_string()),
                (META_OUTPUT.to_string(), opts.output.clone()),
                (META_ENGINE.to_string(), s.engine().to_string()),
            ]);
            if plan.prune_below.is_some() {
                m.insert(META_PRUNED.to_string(), s.pruned_mass().to_string());
            }
            m
        };
    let mut pending: Option<(PendingCommit, Instant)> = None;
    let mut since = (0usize, Instant::now());
    let loop_start = Instant::now();
    let dense_info = |dtype: DType| ArrayInfo {
        dtype,
        shape: vec![1u64 << n],
    };
    loop {
        let (due_now, label) = match program.next(&clbits)? {
            Next::End => break,
            Next::Checkpoint(label) => (true, Some(label)),
            Next::Op(op, line) => {
                state.step(&op, next, line, &plan, &mut clbits, &mut rng)?;
                next += 1;
                (false, None)
            }
        };
        if let Some((p, t)) = pending.take_if(|(p, _)| p.is_done()) {
            report.checkpoint_write_seconds += t.elapsed().as_secs_f64();
            p.wait()?;
        }
        if label.is_none() {
            report.ops += 1;
            if opts.abort_after == Some(report.ops) {
                std::process::abort();
            }
        }
        let due = due_now
            || match opts.checkpoint_every {
                Some(Every::Ops(k)) => next - since.0 >= k.max(1),
                Some(Every::Time(t)) => since.1.elapsed() >= t,
                None => false,
            };
        if due && (due_now || !program.at_end()) {
            let t0 = Instant::now();
            if let Some((p, t)) = pending.take() {
                p.wait()?;
                report.checkpoint_write_seconds += t.elapsed().as_secs_f64();
            }
            let commit = CommitOptions {
                message: match &label {
                    Some(l) if !l.is_empty() => format!("checkpoint {l} after operation {next}"),
                    _ => format!("checkpoint after operation {next}"),
                },
                author: "qstore run".into(),
                metadata: metadata(
                    "checkpoint",
                    next,
                    program.position(),
                    &rng,
                    &clbits,
                    &state,
                ),
            };
            match state.stored() {
                Stored::Dense(dtype, bytes) => {
                    report.checkpoint_bytes += bytes.len() as u64;
                    pending = Some((
                        repo.put_async(
                            &opts.branch,
                            CHECKPOINT_PATH,
                            &dense_info(dtype),
                            bytes,
                            PutOptions {
                                lossy: opts.checkpoint_lossy,
                                ..Default::default()
                            },
                            commit,
                        )?,
                        Instant::now(),
                    ));
                }
                Stored::Sparse(idx, vals) => {
                    report.checkpoint_bytes += (idx.len() * 8 + vals.len()) as u64;
                    let mut tx = repo.transaction(&opts.branch)?;
                    tx.put_sparse_wide(
                        CHECKPOINT_PATH,
                        &WideSparseInput {
                            n_qubits: n as u32,
                            dtype: DType::Complex128,
                            indices: &idx,
                            values: &vals,
                        },
                        &PutOptions::default(),
                    )?;
                    tx.commit(commit)?;
                    report.checkpoint_write_seconds += t0.elapsed().as_secs_f64();
                }
            }
            report.checkpoints += 1;
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
    let put = PutOptions {
        tags,
        ..Default::default()
    };
    match state.stored() {
        Stored::Dense(dtype, bytes) => {
            tx.put(&opts.output, &dense_info(dtype), bytes, &put)?;
        }
        Stored::Sparse(idx, vals) => {
            tx.put_sparse_wide(
                &opts.output,
                &WideSparseInput {
                    n_qubits: n as u32,
                    dtype: DType::Complex128,
                    indices: &idx,
                    values: &vals,
                },
                &put,
            )?;
        }
    }
    let id = tx.commit(CommitOptions {
        message: format!("final state of the circuit ({next} operations)"),
        author: "qstore run".into(),
        metadata: metadata("final", next, program.position(), &rng, &clbits, &state),
    })?;
    report.final_commit = id.to_hex();
    report.clbits = bits(&clbits);
    report.engine = state.engine().to_string();
    report.support = state.support();
    report.peak_support = state.peak_support();
    report.switched_at = state.switched_at();
    report.pruned_mass = state.pruned_mass();
    report.wall_seconds = start.elapsed().as_secs_f64();
    Ok(report)
}
