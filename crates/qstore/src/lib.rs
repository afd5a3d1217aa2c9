//! qstore: a versioned, deduplicated, compressed store of quantum states.
//!
//! Layers (see `docs/format.md` and `docs/consistency.md`):
//! - API: [`Repository`], [`Transaction`], [`StateReader`] in [`repo`];
//! - encodings and objects: [`state`] (dtypes, sparse, Hermitian, `.npy`, analyses),
//!   [`codec`] (chunk codecs), [`format`] (packs, manifests, trees, commits);
//! - hardware: [`storage::Storage`] (immutable blobs) and [`coord::Coordination`] (refs with
//!   compare-and-swap through [`refs::RefStore`], locks, counters), each with memory and
//!   local-filesystem backends; [`backend`] lets other crates add schemes (`s3://`).
//!
//! ```
//! use qstore::{Repository, RepoConfig, ArrayInfo, DType, PutOptions, CommitOptions};
//! let repo = Repository::init("memory://doc-example", RepoConfig::default())?;
//! let psi: Vec<f64> = vec![0.6, 0.0, 0.0, 0.8]; // |0> * 0.6 + |1> * 0.8i, complex128
//! let mut tx = repo.transaction("main")?;
//! tx.put("demo/psi", &ArrayInfo { dtype: DType::Complex128, shape: vec![2] },
//!        bytemuck::cast_slice(&psi), &PutOptions::default())?;
//! tx.commit(CommitOptions { message: "first state".into(), ..Default::default() })?;
//! let back = repo.reader("main", "demo/psi")?.read_all()?;
//! assert_eq!(back, bytemuck::cast_slice::<f64, u8>(&psi));
//! # Ok::<(), qstore::Error>(())
//! ```

pub mod backend;
pub mod cache;
pub mod codec;
pub mod coord;
pub mod error;
pub mod format;
pub mod id;
pub mod par;
pub mod path;
pub mod refs;
pub mod repo;
pub mod state;
pub mod storage;
pub mod zarr;

pub use error::{Error, ErrorCategory, Result};
pub use format::commit::Commit;
pub use format::config::RepoConfig;
pub use format::tree::StateEntry;
pub use id::ObjectId;
pub use path::{RefName, StatePath};
pub use repo::diff::DiffEntry;
pub use repo::stats::RepoStats;
pub use repo::upgrade::UpgradeReport;
pub use repo::{
    CommitOptions, EncodingChoice, FsckReport, GcOptions, GcReport, IoCounters, MergeReport,
    PendingCommit, Problem, PutOptions, PutStats, Repository, Scratch, ScratchOptions,
    ScratchUsage, StateHandle, StateReader, Transaction,
};
pub use state::dtype::{DType, Encoding, StateKind};
pub use state::input::{ArrayInfo, DenseSource, FnSource, KindRequest, SliceSource};
pub use state::sparse::{SparseInput, WideSparse, WideSparseInput};
