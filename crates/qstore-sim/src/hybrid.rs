//! The engine a complex128 run uses, and when it changes: [`Method::Sparse`] keeps the
//! sparse engine throughout, [`Method::Dense`] the dense one, and [`Method::Auto`] (the
//! default) starts sparse and switches to dense once the support could pass 1/32 of 2^n and
//! the dense vector fits the memory limit (never back). Before every operation the support it
//! could reach is checked against the memory limit, so a run that fits neither way stops
//! with [`SimError::OutOfMemory`] naming the operation and its line, before allocating.

use crate::SimError;
use crate::basis::Basis;
use crate::circuit::{Gate, Op};
use crate::sparse::SparseState;
use crate::state::QuantumState;
use crate::statevector::StateVector;
use rand::Rng;

/// Most qubits of a dense state vector (2^34 amplitudes, 256 GiB).
pub const MAX_DENSE_QUBITS: usize = 34;

/// Which engine a run uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Method {
    /// Sparse first, dense once the support is large and the dense vector fits.
    #[default]
    Auto,
    Sparse,
    Dense,
}

impl Method {
    /// The name `--method` takes.
    pub fn name(self) -> &'static str {
        match self {
            Method::Auto => "auto",
            Method::Sparse => "sparse",
            Method::Dense => "dense",
        }
    }

    /// `auto`, `sparse` or `dense`.
    pub fn from_name(s: &str) -> Option<Method> {
        [Method::Auto, Method::Sparse, Method::Dense]
            .into_iter()
            .find(|m| m.name() == s)
    }
}

/// The resources a run may use.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Plan {
    pub method: Method,
    /// Bytes the state (and its working copies) may take.
    pub memory_limit: u64,
    /// Drop amplitudes of magnitude below this after every operation of a sparse run.
    pub prune_below: Option<f64>,
    /// A staged copy of the dense state is held while a checkpoint is written.
    pub checkpoints: bool,
}

/// Bytes `x` for people (binary units).
pub fn human(x: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"];
    let mut v = x;
    for u in units {
        if v < 1024.0 {
            return format!("{v:.1} {u}");
        }
        v /= 1024.0;
    }
    format!("{x:.3e} B")
}

/// The machine's default memory limit: the memory available now (Linux `MemAvailable`),
/// or less where the process's cgroup (v2) allows less (a container's limit); 8 GiB where
/// neither can be read.
pub fn default_memory_limit() -> u64 {
    let read = |p: &str| std::fs::read_to_string(p).ok();
    let available = read("/proc/meminfo").and_then(|t| {
        t.lines()
            .find(|l| l.starts_with("MemAvailable:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<u64>().ok())
            .map(|kb| kb * 1024)
    });
    let cgroup = read("/sys/fs/cgroup/memory.max")
        .and_then(|m| m.trim().parse::<u64>().ok())
        .map(|max| {
            let used = read("/sys/fs/cgroup/memory.current")
                .and_then(|c| c.trim().parse::<u64>().ok())
                .unwrap_or(0);
            max.saturating_sub(used)
        });
    match (available, cgroup) {
        (Some(a), Some(c)) => a.min(c),
        (Some(x), None) | (None, Some(x)) => x,
        (None, None) => 8 << 30,
    }
}

impl Plan {
    /// Bytes a dense state of `n` qubits needs (with the staged checkpoint copy).
    pub fn dense_bytes(&self, n: usize) -> f64 {
        16.0 * 2f64.powi(n as i32) * if self.checkpoints { 2.0 } else { 1.0 }
    }

    /// True when a dense state of `n` qubits fits.
    pub fn dense_fits(&self, n: usize) -> bool {
        n <= MAX_DENSE_QUBITS && self.dense_bytes(n) <= self.memory_limit as f64
    }

    /// Bytes a sparse state of `entries` amplitudes needs while a gate runs (the old
    /// entries, the pairs and the merged result).
    pub fn sparse_bytes<const W: usize>(&self, entries: usize) -> f64 {
        3.0 * entries as f64 * std::mem::size_of::<(Basis<W>, num_complex::Complex64)>() as f64
    }

    /// Refuse a dense run that does not fit.
    pub fn check_dense(&self, n: usize) -> Result<(), SimError> {
        if n > MAX_DENSE_QUBITS {
            return Err(SimError::TooManyQubits(n, MAX_DENSE_QUBITS));
        }
        if !self.dense_fits(n) {
            return Err(SimError::OutOfMemory(format!(
                "a dense state of {n} qubits needs {}{}, more than the memory limit of {} \
                 (--memory-limit; --method sparse if the circuit's support stays small)",
                human(self.dense_bytes(n)),
                if self.checkpoints {
                    " with its checkpoint copy"
                } else {
                    ""
                },
                human(self.memory_limit as f64)
            )));
        }
        Ok(())
    }
}

/// The state of a complex128 run: sparse or dense.
#[derive(Clone, Debug)]
pub enum Repr<const W: usize> {
    Sparse(SparseState<W>),
    Dense(StateVector<f64>),
}

/// A complex128 state that follows a [`Plan`].
#[derive(Clone, Debug)]
pub struct Hybrid<const W: usize> {
    pub repr: Repr<W>,
    /// Probability mass dropped by pruning so far (the sum of each prune's fraction).
    pub pruned_mass: f64,
    /// Most non-zero amplitudes the sparse state held.
    pub peak_support: usize,
    /// The operation before which a run switched to dense.
    pub switched_at: Option<usize>,
}

fn gate_of(op: &Op) -> Option<&Gate> {
    match op {
        Op::Gate(g) => Some(g),
        Op::If { op, .. } => gate_of(op),
        _ => None,
    }
}

impl<const W: usize> Hybrid<W> {
    /// |0...0> of `n` qubits in the engine the plan starts with.
    pub fn fresh(n: usize, plan: &Plan) -> Result<Self, SimError> {
        let repr = if plan.method == Method::Dense {
            plan.check_dense(n)?;
            Repr::Dense(StateVector::zero(n))
        } else {
            Repr::Sparse(SparseState::zero(n))
        };
        Ok(Self::of(repr))
    }

    /// A state in the engine it is in (see [`Hybrid::adopt`] to move it).
    pub fn of(repr: Repr<W>) -> Self {
        let peak_support = match &repr {
            Repr::Sparse(s) => s.len(),
            Repr::Dense(_) => 0,
        };
        Hybrid {
            repr,
            pruned_mass: 0.0,
            peak_support,
            switched_at: None,
        }
    }

    /// `sparse` or `dense`.
    pub fn engine(&self) -> &'static str {
        match self.repr {
            Repr::Sparse(_) => "sparse",
            Repr::Dense(_) => "dense",
        }
    }

    /// Non-zero amplitudes (of a sparse state; 2^n for a dense one).
    pub fn support(&self) -> u64 {
        match &self.repr {
            Repr::Sparse(s) => s.len() as u64,
            Repr::Dense(s) => s.amps.len() as u64,
        }
    }

    /// Move to the dense engine.
    pub fn to_dense(&mut self) {
        if let Repr::Sparse(s) = &self.repr {
            self.repr = Repr::Dense(s.to_dense());
        }
    }

    /// Move to the engine `plan` asks for (after a resume with another `--method`).
    pub fn adopt(&mut self, plan: &Plan) -> Result<(), SimError> {
        match (&self.repr, plan.method) {
            (Repr::Sparse(s), Method::Dense) => {
                plan.check_dense(s.n)?;
                self.to_dense();
            }
            (Repr::Dense(d), Method::Sparse) => {
                self.repr = Repr::Sparse(SparseState::from_dense(d));
            }
            _ => {}
        }
        Ok(())
    }

    /// Run operation `index` (on source line `line`): check the support it could reach
    /// against the plan first (switching to dense, or refusing), prune after it if asked.
    pub fn step(
        &mut self,
        op: &Op,
        index: usize,
        line: usize,
        plan: &Plan,
        clbits: &mut [bool],
        rng: &mut impl Rng,
    ) -> Result<(), SimError> {
        self.prepare(op, index, line, plan)?;
        self.run(op, clbits, rng);
        self.settle(plan);
        Ok(())
    }

    /// The checks before an operation.
    pub fn prepare(
        &mut self,
        op: &Op,
        index: usize,
        line: usize,
        plan: &Plan,
    ) -> Result<(), SimError> {
        let Repr::Sparse(s) = &self.repr else {
            return Ok(());
        };
        let Some(g) = gate_of(op) else {
            return Ok(());
        };
        let bound = s.bound_after(g);
        if bound <= s.len() {
            return Ok(());
        }
        let n = s.n;
        let threshold = if n <= MAX_DENSE_QUBITS {
            (1usize << n) >> 5
        } else {
            usize::MAX
        };
        if plan.method == Method::Auto && bound > threshold && plan.dense_fits(n) {
            self.to_dense();
            self.switched_at = Some(index);
            return Ok(());
        }
        let need = plan.sparse_bytes::<W>(bound);
        if need > plan.memory_limit as f64 {
            return Err(SimError::OutOfMemory(format!(
                "operation {} (line {line}) could grow the sparse state to {bound} amplitudes, \
                 which need {} while the gate runs, more than the memory limit of {}; {} \
                 (--memory-limit, or --prune-below EPS to drop near-zero amplitudes)",
                index + 1,
                human(need),
                human(plan.memory_limit as f64),
                if plan.dense_fits(n) {
                    format!(
                        "a dense state ({}) would fit: use --method auto or dense",
                        human(plan.dense_bytes(n))
                    )
                } else {
                    format!(
                        "a dense state of {n} qubits needs {}",
                        human(plan.dense_bytes(n))
                    )
                }
            )));
        }
        Ok(())
    }

    /// The work after an operation: pruning and the peak support.
    pub fn settle(&mut self, plan: &Plan) {
        if let Repr::Sparse(s) = &mut self.repr {
            if let Some(eps) = plan.prune_below {
                self.pruned_mass += s.prune(eps);
            }
            self.peak_support = self.peak_support.max(s.len());
        }
    }
}

impl<const W: usize> QuantumState for Hybrid<W> {
    fn apply(&mut self, g: &Gate) {
        match &mut self.repr {
            Repr::Sparse(s) => s.apply(g),
            Repr::Dense(s) => s.apply(g),
        }
    }

    fn prob_one(&self, qubit: u32) -> f64 {
        match &self.repr {
            Repr::Sparse(s) => s.prob_one(qubit),
            Repr::Dense(s) => s.prob_one(qubit),
        }
    }

    fn project(&mut self, qubit: u32, one: bool, scale: f64) {
        match &mut self.repr {
            Repr::Sparse(s) => s.project(qubit, one, scale),
            Repr::Dense(s) => s.project(qubit, one, scale),
        }
    }
}
