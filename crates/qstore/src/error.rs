//! Typed errors of the engine: [`Error`] and the coarse [`ErrorCategory`] front ends map to
//! exit codes and exception classes. Every variant carries the context a user needs to act:
//! which path, which ref or commit, which object, what was expected.

use std::path::PathBuf;

/// Result alias used throughout the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every failure the engine reports.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A state path that breaks the path rules (`[A-Za-z0-9._-]` segments separated by `/`).
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath { path: String, reason: String },

    /// A branch or tag name that breaks the naming rules.
    #[error("invalid ref name {name:?}: {reason}")]
    InvalidRefName { name: String, reason: String },

    /// A transaction's lease lapsed (its holder paused past the time to live) and garbage
    /// collection ran meanwhile: nothing was committed, since objects it wrote or reused may
    /// be gone.
    #[error(
        "the transaction's lease on {store} lapsed and garbage collection ran meanwhile \
         ({detail}); nothing was committed: run the transaction again"
    )]
    LeaseLost { store: String, detail: String },

    /// The ref store given is not the one the repository was created with.
    #[error("wrong ref store {store}: {detail}")]
    RefStoreMismatch { store: String, detail: String },

    /// A remote service (object store, etcd) could not be reached or failed the request.
    #[error("{service} unavailable: {reason}")]
    Unavailable { service: String, reason: String },

    /// A server refused the request's credentials: no token, an unknown, expired or revoked
    /// one, or one whose scope does not cover the request.
    #[error("not authorised by {service}: {reason}")]
    Unauthorised { service: String, reason: String },

    /// A push or pull that would drop commits the destination ref has (it is not an ancestor
    /// of what is being sent), or a tag that names another commit there.
    #[error("{what} {name:?} on {destination}: {detail}")]
    NotFastForward {
        what: &'static str,
        name: String,
        destination: String,
        detail: String,
    },

    /// A branch, tag or commit id that does not exist.
    #[error("ref not found: {0:?} is not a branch, tag or commit id in this repository")]
    RefNotFound(String),

    /// A ref that cannot be created because it exists.
    #[error("ref {0:?} already exists")]
    RefExists(String),

    /// A path that has no state in the given commit.
    #[error("path {path:?} not found in commit {commit}")]
    PathNotFound { path: String, commit: String },

    /// An object named by a ref, tree or manifest that is not in the repository.
    #[error("object {id} ({kind}) is missing from the repository{context}")]
    ObjectMissing {
        id: String,
        kind: &'static str,
        context: String,
    },

    /// Input that is not a valid state (shape, dtype, NaN, ...).
    #[error("invalid state{}: {reason}", fmt_path(path))]
    InvalidState {
        path: Option<String>,
        reason: String,
    },

    /// A `.npy` file this version refuses to read (unsupported header, order, dtype...).
    #[error("unsupported .npy file{}: {reason}", fmt_file(file))]
    Npy {
        file: Option<PathBuf>,
        reason: String,
    },

    /// An argument to an API call that makes no sense (empty top-k, bad range...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// The branch moved and the concurrent commits touched the same paths.
    #[error(
        "conflict on branch {branch:?}: commit {theirs} changed {paths:?} concurrently; \
         nothing was lost, retry the transaction on the new head"
    )]
    Conflict {
        branch: String,
        theirs: String,
        paths: Vec<String>,
    },

    /// Stored bytes that fail verification (hash, checksum, structure).
    #[error("corrupt {object}{}: {detail}", fmt_path(path))]
    Corrupt {
        object: String,
        path: Option<String>,
        detail: String,
    },

    /// A stored object or repository written by a newer (or unknown) format version.
    #[error(
        "unsupported format version {version} of {what} (this build reads version {supported})"
    )]
    UnsupportedVersion {
        what: String,
        version: u32,
        supported: u32,
    },

    /// The dense form of a state is too large to hold or write.
    #[error(
        "state{} is too large to materialise: its dense form is {bytes} bytes, the limit is \
         {limit} bytes; read it sparse or read a range",
        fmt_path(path)
    )]
    TooLargeToMaterialise {
        path: Option<String>,
        bytes: u128,
        limit: u64,
    },

    /// A scratch-space put that would pass the quota; nothing was stored.
    #[error(
        "scratch space {scratch}: quota of {quota} bytes exceeded ({usage} bytes in use, {needed} more needed); \
         nothing was stored"
    )]
    QuotaExceeded {
        scratch: String,
        quota: u64,
        usage: u64,
        needed: u64,
    },

    /// A change to a repository of an older format, which this build reads but does not write.
    #[error(
        "the repository at {address} has format version {version}, which this build reads but \
         does not change: run `qstore upgrade {address}` (older qstore builds cannot open it \
         afterwards)"
    )]
    ReadOnlyFormat { address: String, version: u32 },

    /// No repository at the given address.
    #[error("no qstore repository at {0} (run `qstore init {0}`)")]
    RepositoryNotFound(String),

    /// `init` on an address that already holds a repository.
    #[error("a qstore repository already exists at {0}")]
    RepositoryExists(String),

    /// A repository address that cannot be understood.
    #[error(
        "unsupported repository address {0:?}: use a path, file:///abs/path, memory://name or \
         s3://BUCKET/PREFIX?endpoint=URL&refs=etcd://HOST:PORT/PREFIX"
    )]
    BadAddress(String),

    /// A blob that does not exist in storage.
    #[error("blob {0:?} not found in storage")]
    BlobNotFound(String),

    /// An operating-system I/O failure, with the file it concerned.
    #[error("I/O error on {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn fmt_path(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" at {p:?}"),
        None => String::new(),
    }
}

fn fmt_file(file: &Option<PathBuf>) -> String {
    match file {
        Some(p) => format!(" {}", p.display()),
        None => String::new(),
    }
}

/// Coarse classes of [`Error`], for exit codes and exception classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCategory {
    /// Something asked for does not exist.
    NotFound,
    /// A concurrent change got in the way.
    Conflict,
    /// Stored bytes are damaged or from an unknown format.
    Corrupt,
    /// The input or arguments were refused.
    InvalidInput,
    /// The operating system failed an I/O operation.
    Io,
    /// A scratch space is full.
    QuotaExceeded,
    /// A server refused the credentials (or their scope).
    Unauthorised,
    /// A remote service could not be reached or failed.
    Unavailable,
}

impl Error {
    /// The coarse class of this error.
    pub fn category(&self) -> ErrorCategory {
        use Error::*;
        match self {
            RefNotFound(_) | PathNotFound { .. } | RepositoryNotFound(_) | BlobNotFound(_) => {
                ErrorCategory::NotFound
            }
            Conflict { .. }
            | NotFastForward { .. }
            | RefExists(_)
            | RepositoryExists(_)
            | LeaseLost { .. } => ErrorCategory::Conflict,
            Corrupt { .. } | ObjectMissing { .. } | UnsupportedVersion { .. } => {
                ErrorCategory::Corrupt
            }
            InvalidPath { .. }
            | InvalidRefName { .. }
            | InvalidState { .. }
            | Npy { .. }
            | InvalidArgument(_)
            | TooLargeToMaterialise { .. }
            | ReadOnlyFormat { .. }
            | BadAddress(_)
            | RefStoreMismatch { .. } => ErrorCategory::InvalidInput,
            Io { .. } => ErrorCategory::Io,
            Unavailable { .. } => ErrorCategory::Unavailable,
            Unauthorised { .. } => ErrorCategory::Unauthorised,
            QuotaExceeded { .. } => ErrorCategory::QuotaExceeded,
        }
    }

    /// Attach the state path an error concerns, where the error has room for one.
    pub fn at_path(mut self, p: &str) -> Self {
        match &mut self {
            Error::Corrupt { path, .. }
            | Error::InvalidState { path, .. }
            | Error::TooLargeToMaterialise { path, .. }
                if path.is_none() =>
            {
                *path = Some(p.to_string());
            }
            Error::ObjectMissing { context, .. } if context.is_empty() => {
                *context = format!(" (needed by state {p:?})");
            }
            _ => {}
        }
        self
    }

    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> Self {
        Error::Io {
            path: path.to_string(),
            source,
        }
    }

    pub fn corrupt(object: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            object: object.into(),
            path: None,
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid_state(reason: impl Into<String>) -> Self {
        Error::InvalidState {
            path: None,
            reason: reason.into(),
        }
    }
}
