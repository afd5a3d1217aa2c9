//! qstore-sim: a state-vector simulator for OpenQASM 2 circuits that checkpoints into a
//! qstore repository while it computes and resumes exactly where it stopped.
//!
//! Modules: [`qasm`] (the OpenQASM 2 front end), [`circuit`] (operations and the built-in
//! gates), [`statevector`] (the dense engine), [`sparse`] (the sparse engine, up to 1,024
//! qubits, over [`basis`] indices), [`state`] (what both offer), [`hybrid`] (which one a run
//! uses, and when it switches), [`runner`] (checkpoints, resume and the final commit), [`noise`] and [`study`] (noisy Monte-Carlo trajectories). It depends on the engine; the engine knows nothing of it.

pub mod basis;
pub mod circuit;
pub mod density;
pub mod hybrid;
pub mod noise;
pub mod qasm;
pub mod qir;
pub mod runner;
pub mod sparse;
pub mod state;
pub mod statevector;
pub mod study;

pub use basis::{Basis, MAX_SPARSE_QUBITS};
pub use circuit::{Gate, Op, Program};
pub use density::{DensityMatrix, run_density};
pub use hybrid::{Hybrid, Method, Plan};
pub use noise::NoiseModel;
pub use qasm::{QasmError, parse};
pub use runner::{
    Every, Next, OpSource, Precision, ProgramSource, RunOptions, RunReport, run, run_source,
};
pub use sparse::SparseState;
pub use state::QuantumState;
pub use statevector::{Real, StateVector};
pub use study::{StudyOptions, StudyReport, study};

/// Errors of a simulation run.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("{path}: {error}")]
    Qasm { path: String, error: QasmError },
    /// A QIR program that cannot be read or run: what and on which line (0: the file).
    #[error("{path}: {}{message}", if *line > 0 { format!("line {line}: ") } else { String::new() })]
    Qir {
        path: String,
        line: usize,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] qstore::Error),
    #[error(
        "{0} qubits are too many for this engine (at most {1}; the sparse engine takes up to 1024)"
    )]
    TooManyQubits(usize, usize),
    /// The state would not fit the memory limit.
    #[error("out of memory: {0}")]
    OutOfMemory(String),
    /// Options that do not go together.
    #[error("{0}")]
    Options(String),
    #[error(
        "the circuit changed since the checkpoint on branch {branch} (checkpoint circuit {expected}, this file {actual}); run without --resume to start over"
    )]
    CircuitChanged {
        branch: String,
        expected: String,
        actual: String,
    },
    #[error("nothing to resume on branch {0}: it has no checkpoint of a run; run without --resume")]
    NoCheckpoint(String),
    #[error("checkpoint {commit} is unreadable: {detail}")]
    BadCheckpoint { commit: String, detail: String },
}
