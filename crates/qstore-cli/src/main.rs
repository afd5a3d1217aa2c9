//! The `qstore` command line: parses arguments, calls the `qstore` library, formats the
//! result for people (or JSON with `--json`), and maps errors to exit codes. No storage logic
//! lives here.

mod bench;
mod bench_history;
mod bench_remote;
mod bench_served;
mod demo;
mod output;
mod remote;
mod run;
mod sparse_json;

use anyhow::{Context, Result, anyhow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use output::{Out, human_bytes, progress_bar};
use qstore::repo::PutOptions;
use qstore::state::lossy::LossySpec;
use qstore::state::npy;
use qstore::{
    ArrayInfo, CommitOptions, DiffEntry, EncodingChoice, Error, ErrorCategory, KindRequest,
    RepoConfig, Repository, StateEntry,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Exit codes, one per kind of failure.
mod exit {
    pub const OTHER: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const NOT_FOUND: i32 = 3;
    pub const CONFLICT: i32 = 4;
    pub const CORRUPT: i32 = 5;
    pub const INVALID_INPUT: i32 = 6;
    pub const QUOTA: i32 = 7;
    pub const NOT_AUTHORISED: i32 = 8;
    pub const UNAVAILABLE: i32 = 9;
}

#[derive(Parser)]
#[command(
    name = "qstore",
    version,
    about = "A versioned, deduplicated, compressed store of quantum states"
)]
struct Cli {
    /// Repository: a path, file:///abs/path, memory://name,
    /// s3://BUCKET/PREFIX?endpoint=URL&region=R&refs=etcd://HOST:PORT/PREFIX (credentials from
    /// the AWS environment variables), or https://HOST:PORT/NAME of `qstore serve` (token from
    /// QSTORE_TOKEN or --token-file). `serve` takes it several times, as [NAME=]ADDRESS.
    #[arg(long = "repo", global = true, env = "QSTORE_REPO", action = clap::ArgAction::Append)]
    repos: Vec<String>,
    #[arg(skip)]
    repo: Option<String>,
    /// A file holding the token for https:// repositories (instead of QSTORE_TOKEN).
    #[arg(long, global = true, env = "QSTORE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// PEM CA certificates trusted for https:// repositories besides the system roots.
    #[arg(long, global = true, env = "QSTORE_CA_CERT")]
    ca_cert: Option<PathBuf>,
    /// The ref store of an s3:// repository (etcd://HOST:PORT[,HOST:PORT...]/PREFIX, or s3
    /// where the server honours conditional writes), if the address has no refs=.
    #[arg(long, global = true, env = "QSTORE_REFS")]
    refs: Option<String>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum TokenCmd {
    /// Create a token; it is printed once, as the last word of the output.
    Create {
        /// read, write (upload, move refs) or admin (also gc, fsck, deletes).
        #[arg(long, value_parser = parse_scope)]
        scope: qstore_server::tokens::Scope,
        /// Only branches starting with PREFIX may be moved (e.g. exp- or exp-*); tags never.
        #[arg(long, value_name = "PREFIX")]
        branch: Option<String>,
        /// Lifetime (30d, 12h); without it the token lasts until revoked.
        #[arg(long, value_parser = parse_duration)]
        expires: Option<std::time::Duration>,
        /// A note stored with the token (who or what it is for).
        #[arg(long, default_value = "")]
        label: String,
    },
    /// List tokens (ids, scopes, expiry; never secrets).
    List,
    /// Revoke a token by id (or by the token itself).
    Revoke { id: String },
}

fn parse_scope(s: &str) -> std::result::Result<qstore_server::tokens::Scope, String> {
    s.parse()
}

#[derive(Subcommand)]
enum Cmd {
    /// Create a repository (at PATH, or at --repo / QSTORE_REPO).
    Init {
        path: Option<String>,
        /// Chunk size in bytes (a power of two).
        #[arg(long, default_value_t = 1 << 20)]
        chunk_size: u64,
        /// Merge the small packs automatically once there are this many (0: only `qstore
        /// repack` and `qstore gc` merge).
        #[arg(long, default_value_t = qstore::format::config::DEFAULT_MERGE_THRESHOLD)]
        merge_threshold: u32,
        /// Packs smaller than this are small (e.g. 32M).
        #[arg(long, default_value = "32M", value_parser = parse_bytes)]
        merge_pack_bytes: u64,
        /// A writer starts a new pack once the current one reaches this size (e.g. 256M).
        #[arg(long, default_value = "256M", value_parser = parse_bytes)]
        pack_size: u64,
    },
    /// Rewrite a repository of an older format (version 1) as the current one, in place,
    /// keeping every commit id; older qstore builds cannot open it afterwards.
    Upgrade {
        /// The repository (default: --repo / QSTORE_REPO).
        path: Option<String>,
    },
    /// Merge small packs into few large ones now (`--all`: every pack under the pack size
    /// target). Commits already do this automatically past a threshold.
    Repack {
        #[arg(long)]
        all: bool,
        /// Rewrite every pack, whatever its size, recompressing with zstd the chunks puts
        /// stored with lz4 (merges of small packs do this on their own).
        #[arg(long, conflicts_with = "all")]
        recompress: bool,
    },
    /// Store a state from a .npy file (dense) or a .json file (sparse) and commit it.
    Put(PutArgs),
    /// Write a state as a Zarr v3 array (zarr-python 3, tensorstore): `export PATH --format
    /// zarr DIR`.
    Export {
        path: String,
        /// The array's directory (created; must not exist or be empty).
        dir: PathBuf,
        /// The format: zarr (Zarr v3).
        #[arg(long, default_value = "zarr")]
        format: String,
        /// Branch, tag or commit id.
        #[arg(long = "ref", default_value = "main")]
        reference: String,
    },
    /// Store a Zarr v3 array (as zarr-python writes it: codecs bytes, zstd, gzip, crc32c) as
    /// a state and commit it: `import PATH DIR`.
    Import {
        path: String,
        /// The array's directory (holding zarr.json).
        dir: PathBuf,
        /// What the array is; `auto` accepts only state vectors and density matrices.
        #[arg(long, value_enum, default_value = "auto")]
        kind: KindArg,
        #[command(flatten)]
        commit: CommitArgs,
    },
    /// Read a state into a .npy file (dense) or a .json file (sparse).
    Get {
        path: String,
        /// Output file: .npy (dense) or .json (sparse basis -> amplitude).
        #[arg(short, long)]
        output: PathBuf,
        /// Branch, tag or commit id.
        #[arg(long = "ref", default_value = "main")]
        reference: String,
        /// Only elements START:STOP of the dense form (written as a 1-D .npy).
        #[arg(long)]
        range: Option<String>,
    },
    /// List states.
    Ls {
        prefix: Option<String>,
        #[arg(long = "ref", default_value = "main")]
        reference: String,
        /// Also the encoded size and, for lossy states, the mode and the fidelity.
        #[arg(short, long)]
        long: bool,
    },
    /// Show the commits of a branch, newest first.
    Log {
        #[arg(long = "ref", default_value = "main")]
        reference: String,
        #[arg(short = 'n', long, default_value_t = 50)]
        limit: usize,
    },
    /// Describe a state; --top K and --marginal Q,Q stream its probabilities.
    Show {
        path: String,
        #[arg(long = "ref", default_value = "main")]
        reference: String,
        /// Print the K most probable basis states.
        #[arg(long)]
        top: Option<usize>,
        /// Print the marginal distribution of these qubits (comma-separated).
        #[arg(long, value_delimiter = ',')]
        marginal: Vec<u32>,
    },
    /// Delete states or directories and commit.
    Rm {
        #[arg(required = true)]
        paths: Vec<String>,
        #[command(flatten)]
        commit: CommitArgs,
    },
    /// List branches, or create one: `branch NAME FROM`; delete with -d.
    Branch {
        name: Option<String>,
        #[arg(default_value = "main")]
        from: String,
        #[arg(short = 'd', long)]
        delete: bool,
    },
    /// List tags, or create one: `tag NAME TARGET`; delete with -d.
    Tag {
        name: Option<String>,
        #[arg(default_value = "main")]
        target: String,
        #[arg(short = 'd', long)]
        delete: bool,
    },
    /// Compare two refs: paths added, removed, changed (chunks changed, fidelity).
    Diff { a: String, b: String },
    /// Logical and stored sizes, dedup and compression ratios, object and file counts.
    Stats,
    /// Write a realistic workload into a fresh local repository and report what it cost.
    Demo {
        /// Directory of the demo repository (replaced if it holds an earlier demo).
        #[arg(long, default_value = "qstore-demo")]
        dir: PathBuf,
        /// Qubits of the state vectors (2^n complex128 amplitudes each).
        #[arg(long, default_value_t = 22)]
        qubits: u32,
    },
    /// Delete unreachable objects older than the grace period; rewrite mostly-dead packs;
    /// reclaim scratch spaces whose lease expired.
    Gc {
        /// Report what would be freed without changing anything.
        #[arg(long)]
        dry_run: bool,
        /// Never touch packs younger than this (e.g. 30s, 10m, 1h, 2d).
        #[arg(long, default_value = "1h", value_parser = parse_duration)]
        grace: std::time::Duration,
        /// Rewrite packs whose dead fraction exceeds this.
        #[arg(long, default_value_t = 0.3)]
        threshold: f64,
        /// Uploads (states written in parts) not completed for this long are abandoned:
        /// their parts are reclaimed.
        #[arg(long, default_value = "7d", value_parser = parse_duration)]
        upload_ttl: std::time::Duration,
    },
    /// States written in parts by several writers (MPI ranks, hosts): `begin`, `put`,
    /// `complete`, `abort`, `ls` (docs in README "States written in parts").
    Upload {
        #[command(subcommand)]
        cmd: UploadCmd,
    },
    /// Drop a branch's history older than a duration so gc can reclaim it (tags keep what
    /// they name).
    Expire {
        branch: String,
        #[arg(long, value_parser = parse_duration)]
        older_than: std::time::Duration,
    },
    /// Check every ref, commit, tree and manifest (and with --full every chunk's hash).
    Fsck {
        #[arg(long)]
        full: bool,
    },
    /// Scratch spaces: `ls`, or `rm ID` (add --force for a live one).
    Scratch {
        #[command(subcommand)]
        cmd: ScratchCmd,
    },
    /// Measure qstore against raw file I/O on this machine, in one run (see the README);
    /// with --repo s3://..., against raw multipart PUT and ranged GET on that object store
    /// (one size: the first of --sizes, 1G by default).
    Bench {
        /// Working directory (created and emptied by the benchmark).
        #[arg(long, default_value = "qstore-bench")]
        dir: PathBuf,
        /// State sizes (powers of two): e.g. 256M,1G,4G.
        #[arg(long, default_value = "256M,1G,4G", value_delimiter = ',')]
        sizes: Vec<String>,
        /// State classes: dense, qft, half-zero, ghz.
        #[arg(long, default_value = "dense,qft,half-zero,ghz", value_delimiter = ',')]
        classes: Vec<String>,
        /// Also write the rows to this JSON file.
        #[arg(long = "json-out")]
        json_out: Option<PathBuf>,
        /// Measure history instead: single-path commits by fresh processes in one directory
        /// of growing size, and 2,000 one-state commits (see the README).
        #[arg(long)]
        history: bool,
        /// Measure `qstore serve` instead: put, get, push and pull over loopback TLS against
        /// a local repository, and the bytes a one-chunk change sends (size: the first of
        /// --sizes, 1G by default).
        #[arg(long)]
        served: bool,
        /// Directory sizes of --history (entries).
        #[arg(
            long,
            default_value = "1000,10000,100000,1000000",
            value_delimiter = ','
        )]
        history_sizes: Vec<u64>,
        /// Single-path commits timed at each size of --history.
        #[arg(long, default_value_t = 1000)]
        history_commits: usize,
    },
    /// Copy repository SRC to a new repository DST: every branch and tag, deduplicated; DST
    /// records SRC as its remote `origin`. `--refs` names DST's ref store when DST is s3://.
    Clone {
        /// The repository to copy (a path, memory://, s3://...).
        src: String,
        /// Where to create the copy.
        dst: String,
    },
    /// Send branches and tags to another repository: only the objects it lacks, refs moved by
    /// compare-and-swap, only forward unless --force. Refs: NAME or SRC:DST (default: every
    /// branch and tag).
    Push {
        /// A remote's name (default `origin`) or an address.
        remote: Option<String>,
        refs: Vec<String>,
        /// Move a destination branch even when that drops its commits, or replace a tag.
        #[arg(long)]
        force: bool,
    },
    /// Fetch branches and tags from another repository into this one (like push, the other
    /// way). Refs: NAME or SRC:DST (default: every branch and tag of the remote).
    Pull {
        /// A remote's name (default `origin`) or an address.
        remote: Option<String>,
        refs: Vec<String>,
        /// Move a local branch even when that drops its commits, or replace a tag.
        #[arg(long)]
        force: bool,
    },
    /// Named remotes: `remote add NAME ADDRESS`, `remote rm NAME`, `remote ls`.
    Remote {
        #[command(subcommand)]
        cmd: RemoteCmd,
    },
    /// Simulate an OpenQASM 2.0 circuit or a QIR program (docs/qir.md) into the repository
    /// (created when missing), with asynchronous checkpoints; `--resume` continues from the
    /// latest checkpoint of the branch.
    Run {
        /// The program: OpenQASM 2.0, or QIR (`.ll` text, `.bc` bitcode via llvm-dis).
        circuit: PathBuf,
        /// Run a QIR program this many times and store the counts of its recorded results
        /// (`--output` is then their prefix, default `shots`).
        #[arg(long)]
        shots: Option<u64>,
        /// Branch of the run (created from main when missing).
        #[arg(long, default_value = "main")]
        branch: String,
        /// State path of the final state (default `final`), or the prefix of a study's results
        /// (default `study`).
        #[arg(long)]
        output: Option<String>,
        /// Checkpoint every N operations (`1000`) or every T (`30s`, `5m`).
        #[arg(long, value_parser = run::parse_every)]
        checkpoint_every: Option<qstore_sim::Every>,
        /// Continue from the latest checkpoint of the branch.
        #[arg(long)]
        resume: bool,
        /// Seed of the measurement RNG.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Fault injection for tests: abort after N operations.
        #[arg(long, hide = true)]
        abort_after: Option<usize>,
        /// A noise channel (repeatable): `depolarizing:p1=1e-3,p2=1e-2`,
        /// `amplitude_damping:gamma=1e-3`, `phase_damping:lambda=1e-3`, `readout:p=0.02`.
        #[arg(long)]
        noise: Vec<String>,
        /// Run a noisy Monte-Carlo study of this many trajectories.
        #[arg(long)]
        trajectories: Option<usize>,
        /// Shots sampled from each trajectory's final state.
        #[arg(long, default_value_t = 1)]
        shots_per_trajectory: usize,
        /// What a study stores: counts, density (averaged density matrix, up to 12 qubits),
        /// states (every trajectory's final state). Default: counts, plus density up to 10
        /// qubits.
        #[arg(long, value_delimiter = ',')]
        save: Vec<String>,
        /// Amplitude dtype of a state-vector run: complex128, or complex64 (half the memory).
        #[arg(long, default_value = "complex128", value_parser = ["complex128", "complex64"])]
        dtype: String,
        /// Simulate the density matrix (up to 12 qubits) with the noise applied exactly, and
        /// store the final density matrix at --output.
        #[arg(long)]
        density_matrix: bool,
        /// Push the run's branch to this remote (a name or an address; created when missing)
        /// in the background as checkpoints land: checkpoints at local speed, the shared
        /// store catches up.
        #[arg(long)]
        drain_to: Option<String>,
        /// The engine: `auto` (sparse while the support is small, then dense), `sparse` (up
        /// to 1,024 qubits) or `dense` (up to 34 qubits).
        #[arg(long, default_value = "auto", value_parser = ["auto", "sparse", "dense"])]
        method: String,
        /// Most memory the state may take (`16GiB`, `512MiB`); default: what the machine
        /// has available.
        #[arg(long, value_parser = parse_bytes)]
        memory_limit: Option<u64>,
        /// Drop amplitudes of magnitude below EPS after every operation of the sparse engine
        /// (renormalising); the probability mass dropped is reported and stored.
        #[arg(long, value_parser = parse_eps)]
        prune_below: Option<f64>,
        /// Store dense checkpoints lossy with this mode (as `put --lossy`; opt-in): smaller
        /// checkpoints, but `--resume` continues from the approximation. Sparse checkpoints
        /// and the final state stay lossless.
        #[arg(long, value_name = "MODE", value_parser = parse_lossy)]
        checkpoint_lossy: Option<LossySpec>,
    },
    /// Serve repositories over HTTPS (HTTP on loopback only) to clients holding tokens:
    /// `qstore serve --repo [NAME=]ADDRESS ... --listen ADDR --tls-cert F --tls-key F`.
    Serve {
        /// Address to listen on (port 0: any free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8443")]
        listen: std::net::SocketAddr,
        /// PEM certificate chain (with --tls-key); without TLS only loopback is served.
        #[arg(long, requires = "tls_key")]
        tls_cert: Option<PathBuf>,
        /// PEM private key of --tls-cert.
        #[arg(long, requires = "tls_cert")]
        tls_key: Option<PathBuf>,
        /// Make a CA and a server certificate in DIR (ca.pem, cert.pem, key.pem; kept and
        /// reused when present) and serve with them; clients pass --ca-cert DIR/ca.pem.
        #[arg(long, value_name = "DIR", conflicts_with_all = ["tls_cert", "tls_key"])]
        self_signed: Option<PathBuf>,
        /// Refuse clients that offer no post-quantum hybrid group (X25519MLKEM768).
        #[arg(long)]
        pq_only: bool,
        /// Largest request body (an uploaded pack or state).
        #[arg(long, default_value = "1GiB", value_parser = parse_bytes)]
        max_body: u64,
        /// Largest object in an uploaded pack.
        #[arg(long, default_value = "64MiB", value_parser = parse_bytes)]
        max_chunk: u64,
        /// Requests one token may have in flight (more wait their turn).
        #[arg(long, default_value_t = 16)]
        per_token_concurrency: usize,
        /// Longest a request may take, its body included.
        #[arg(long, default_value = "10m", value_parser = parse_duration)]
        request_timeout: std::time::Duration,
        /// Also serve the web view at /ui/ (it asks for a token; see docs/ui.md).
        #[arg(long)]
        ui: bool,
    },
    /// Look at a repository in a browser: serves the web view on loopback with a random
    /// one-time login code (no stored token needed) and prints the URL to open.
    Ui {
        /// Loopback address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: std::net::SocketAddr,
        /// Let the page create and delete branches and tags (the session gets write scope;
        /// read only by default).
        #[arg(long)]
        write: bool,
    },
    /// Access tokens of a repository served by `qstore serve` (run against the repository's
    /// own address, on the server's side): `create`, `list`, `revoke`.
    Token {
        #[command(subcommand)]
        cmd: TokenCmd,
    },
    /// Serve the Docker volume plugin (legacy protocol) on a unix socket; volumes live under
    /// --root and are snapshotted into the repository.
    VolumePlugin {
        /// Where volumes, disk images and the volume table live.
        #[arg(long, default_value = "/var/lib/qstore/volumes")]
        root: PathBuf,
        /// The socket Docker discovers the plugin by.
        #[arg(long, default_value = "/run/docker/plugins/qstore.sock")]
        socket: PathBuf,
        /// Docker's API socket, to reconcile mount counts with running containers.
        #[arg(long, default_value = "/var/run/docker.sock")]
        docker_socket: PathBuf,
        /// How often to reconcile.
        #[arg(long, default_value = "30s", value_parser = parse_duration)]
        reconcile_every: std::time::Duration,
    },
    /// Talk to a running volume plugin: `ls`, `snapshot NAME -m MSG`, `rm NAME`.
    Volume {
        #[command(subcommand)]
        cmd: VolumeCmd,
        /// The plugin's socket.
        #[arg(long, global = true, default_value = "/run/docker/plugins/qstore.sock")]
        socket: PathBuf,
    },
    /// Commit COUNT small states, printing each commit id once it is durable (used by the
    /// crash and gc tests). With --cycle N, paths repeat every N commits (making garbage).
    #[command(hide = true)]
    ScratchHold {
        /// Lease time-to-live in seconds.
        #[arg(long, default_value_t = 2.0)]
        ttl: f64,
    },
    /// Commit one state at PATH in a fresh process and print what it cost as JSON (used by
    /// `bench --history`).
    #[command(hide = true)]
    BenchCommit { path: String, seed: u64 },
    #[command(hide = true)]
    CommitLoop {
        prefix: String,
        #[arg(long, default_value_t = 1_000_000)]
        count: u64,
        #[arg(long)]
        cycle: Option<u64>,
        /// Stop after this many seconds.
        #[arg(long)]
        seconds: Option<f64>,
        #[arg(long, default_value = "main")]
        branch: String,
        /// Amplitudes per state: 256 (values i*512+k) or another power of two
        /// (incompressible values, see `loop_amplitude`).
        #[arg(long, default_value_t = 256)]
        amps: u64,
        /// Start numbering states here (a restarted writer continues its sequence).
        #[arg(long, default_value_t = 0)]
        start: u64,
        /// On a conflict (overlapping writers), a lapsed lease or a store that did not
        /// answer, run the same commit again.
        #[arg(long)]
        retry: bool,
    },
}

/// Component `k` of state `i` written by `commit-loop --amps N` (N != 256): a finite double in
/// [-1, 1) from a splitmix64 hash, so the states do not compress.
fn loop_amplitude(i: u64, k: u64) -> f64 {
    let mut z = (i << 32 | k).wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
}

#[derive(Subcommand)]
enum UploadCmd {
    /// Declare a state of DTYPE and SHAPE to be written in PARTS parts and committed at PATH;
    /// prints the upload id (last word).
    Begin {
        path: String,
        #[arg(long, default_value = "complex128")]
        dtype: String,
        /// N (a vector) or N,M (a matrix).
        #[arg(long)]
        shape: String,
        #[arg(long)]
        parts: u32,
        #[arg(long, value_enum, default_value = "auto")]
        kind: KindArg,
    },
    /// Store part K of upload ID from a .npy file holding exactly the part's elements
    /// (part k of P holds flat elements floor(k*N/P) to floor((k+1)*N/P)).
    Put { id: String, k: u32, file: PathBuf },
    /// Commit upload ID from its parts (completing again prints the same commit).
    Complete {
        id: String,
        #[command(flatten)]
        commit: CommitArgs,
    },
    /// Give up upload ID (gc reclaims its parts).
    Abort { id: String },
    /// List the uploads and the parts stored.
    Ls,
}

#[derive(Subcommand)]
enum RemoteCmd {
    /// Record remote NAME at ADDRESS.
    Add {
        name: String,
        address: String,
        /// Replace a remote of that name.
        #[arg(long)]
        replace: bool,
    },
    /// Forget remote NAME.
    Rm { name: String },
    /// List the remotes.
    Ls,
}

#[derive(Subcommand)]
enum VolumeCmd {
    /// List the plugin's volumes.
    Ls,
    /// Commit a volume's files to the repository now (under volumes/NAME).
    Snapshot {
        name: String,
        #[arg(short, long, default_value = "snapshot")]
        message: String,
    },
    /// Remove a volume (refused while mounted).
    Rm { name: String },
}

#[derive(Subcommand)]
enum ScratchCmd {
    /// List scratch spaces and their leases.
    Ls,
    /// Remove a scratch space's files.
    Rm {
        id: String,
        #[arg(long)]
        force: bool,
    },
}

/// Parse a byte count: `4096`, `64K`, `32M`, `2G` (binary multiples).
/// A pruning threshold: a finite number in (0, 1).
fn parse_eps(s: &str) -> std::result::Result<f64, String> {
    match s.parse::<f64>() {
        Ok(e) if e > 0.0 && e < 1.0 => Ok(e),
        _ => Err(format!("{s} is not a threshold in (0, 1)")),
    }
}

fn parse_bytes(s: &str) -> std::result::Result<u64, String> {
    // `64G`, `64GiB`, `64GB` and `64g` are the same (binary units); `64`, `64B`: bytes.
    let t = s.trim().to_ascii_lowercase();
    let unitless = t
        .strip_suffix("ib")
        .or_else(|| t.strip_suffix('b'))
        .unwrap_or(&t);
    let (num, mult) = match unitless.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let m = match c.to_ascii_uppercase() {
                'K' => 1u64 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("unknown unit in {s:?} (use K, M, G or T)")),
            };
            (&unitless[..i], m)
        }
        _ => (unitless, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("{s:?} is not a byte count"))
}

/// Parse `30s`, `10m`, `1h`, `2d`, `1w` (a bare number is seconds).
fn parse_duration(s: &str) -> std::result::Result<std::time::Duration, String> {
    let (num, unit) = s.split_at(
        s.find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(s.len()),
    );
    let v: f64 = num
        .parse()
        .map_err(|_| format!("bad duration {s:?} (use e.g. 30s, 10m, 1h, 30d)"))?;
    let mult = match unit {
        "" | "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        "w" => 604_800.0,
        _ => return Err(format!("bad duration unit in {s:?} (use s, m, h, d or w)")),
    };
    Ok(std::time::Duration::from_secs_f64(v * mult))
}

#[derive(Args)]
struct CommitArgs {
    /// Branch to commit to.
    #[arg(long, default_value = "main")]
    branch: String,
    /// Commit message.
    #[arg(short = 'm', long, default_value = "")]
    message: String,
    /// Commit author (default: $USER).
    #[arg(long)]
    author: Option<String>,
    /// Commit metadata KEY=VALUE (repeatable).
    #[arg(long = "meta", value_parser = parse_kv)]
    meta: Vec<(String, String)>,
}

impl From<KindArg> for KindRequest {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Auto => KindRequest::Auto,
            KindArg::Statevector => KindRequest::StateVector,
            KindArg::DensityMatrix => KindRequest::DensityMatrix,
            KindArg::Array => KindRequest::Array,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum KindArg {
    Auto,
    Statevector,
    DensityMatrix,
    Array,
}

#[derive(Args)]
struct PutArgs {
    /// Where the state goes, e.g. qft24/step_0100.
    path: String,
    /// Input: .npy (dense array) or .json (sparse state).
    file: PathBuf,
    /// What the array is; `auto` accepts only state vectors and density matrices.
    #[arg(long, value_enum, default_value = "auto")]
    kind: KindArg,
    /// State tag KEY=VALUE (repeatable).
    #[arg(long = "tag", value_parser = parse_kv)]
    tags: Vec<(String, String)>,
    /// Store dense even where sparse or Hermitian would be smaller.
    #[arg(long)]
    dense: bool,
    /// Store an approximation of a state vector (opt-in; lossless by default):
    /// max-infidelity=E (guaranteed 1 - F <= E, E >= 1e-12), f32, mantissa-bits=K,
    /// zero-below=EPS, or several joined by commas. The fidelity achieved is stored with it.
    #[arg(long, value_name = "MODE", value_parser = parse_lossy)]
    lossy: Option<LossySpec>,
    #[command(flatten)]
    commit: CommitArgs,
}

fn parse_lossy(s: &str) -> std::result::Result<LossySpec, String> {
    s.parse::<LossySpec>().map_err(|e| e.to_string())
}

fn parse_kv(s: &str) -> std::result::Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

fn main() {
    qstore_cluster::register();
    let mut cli = Cli::parse();
    if cli.repos.len() > 1 && !matches!(cli.cmd, Cmd::Serve { .. }) {
        eprintln!(
            "error: --repo given {} times; only `serve` takes several",
            cli.repos.len()
        );
        std::process::exit(exit::USAGE);
    }
    qstore_cluster::served::set_client_options(qstore_cluster::served::ClientOptions {
        token: std::env::var("QSTORE_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
            .map(|t| t.trim().to_string()),
        ca_cert: cli.ca_cert.clone(),
    });
    if let Some(f) = &cli.token_file {
        match qstore_cluster::served::read_token_file(f) {
            Ok(t) => {
                qstore_cluster::served::set_client_options(qstore_cluster::served::ClientOptions {
                    token: Some(t),
                    ca_cert: cli.ca_cert.clone(),
                })
            }
            Err(e) => {
                eprintln!("error: --token-file: {e}");
                std::process::exit(exit::USAGE);
            }
        }
    }
    cli.repo = cli.repos.first().cloned();
    cli.repo = cli
        .repo
        .map(|r| qstore_cluster::with_refs(&r, cli.refs.as_deref()));
    // Die quietly on a closed pipe (`qstore ls | head`), as command-line tools do, instead of
    // panicking in println!. Not for the plugin server: a client that goes away mid-answer
    // must cost it one connection (EPIPE), not the process.
    if !matches!(cli.cmd, Cmd::VolumePlugin { .. }) {
        // SAFETY: restoring the default disposition of SIGPIPE before any thread starts.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    let json = cli.json;
    if let Err(e) = run(cli) {
        let code = exit_code(&e);
        if json {
            println!("{}", json!({"error": format!("{e:#}"), "exit_code": code}));
        } else {
            eprintln!("error: {e:#}");
        }
        std::process::exit(code);
    }
}

fn exit_code(e: &anyhow::Error) -> i32 {
    if e.downcast_ref::<UsageError>().is_some() {
        return exit::USAGE;
    }
    match e.downcast_ref::<qstore_sim::SimError>() {
        Some(
            qstore_sim::SimError::Qasm { .. }
            | qstore_sim::SimError::Qir { .. }
            | qstore_sim::SimError::TooManyQubits(..),
        ) => {
            return exit::INVALID_INPUT;
        }
        Some(qstore_sim::SimError::CircuitChanged { .. }) => return exit::CONFLICT,
        Some(qstore_sim::SimError::OutOfMemory(_)) => return exit::QUOTA,
        Some(qstore_sim::SimError::Options(_)) => return exit::USAGE,
        Some(qstore_sim::SimError::NoCheckpoint(_)) => return exit::NOT_FOUND,
        Some(qstore_sim::SimError::BadCheckpoint { .. }) => return exit::CORRUPT,
        Some(qstore_sim::SimError::Store(inner)) => {
            return match inner.category() {
                ErrorCategory::NotFound => exit::NOT_FOUND,
                ErrorCategory::Conflict => exit::CONFLICT,
                ErrorCategory::Corrupt => exit::CORRUPT,
                ErrorCategory::InvalidInput => exit::INVALID_INPUT,
                ErrorCategory::QuotaExceeded => exit::QUOTA,
                ErrorCategory::Unauthorised => exit::NOT_AUTHORISED,
                ErrorCategory::Unavailable => exit::UNAVAILABLE,
                ErrorCategory::Io => exit::OTHER,
            };
        }
        None => {}
    }
    match e
        .chain()
        .find_map(|c| c.downcast_ref::<Error>())
        .map(Error::category)
    {
        Some(ErrorCategory::NotFound) => exit::NOT_FOUND,
        Some(ErrorCategory::Conflict) => exit::CONFLICT,
        Some(ErrorCategory::Corrupt) => exit::CORRUPT,
        Some(ErrorCategory::InvalidInput) => exit::INVALID_INPUT,
        Some(ErrorCategory::QuotaExceeded) => exit::QUOTA,
        Some(ErrorCategory::Unauthorised) => exit::NOT_AUTHORISED,
        Some(ErrorCategory::Unavailable) => exit::UNAVAILABLE,
        _ => exit::OTHER,
    }
}

/// A command line that makes no sense (exit code 2, like clap's own usage errors).
#[derive(Debug)]
struct UsageError(String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// The noise model of `--noise` specs (a bad one is a usage error).
fn noise_model(specs: &[String]) -> Result<qstore_sim::NoiseModel> {
    let mut model = qstore_sim::NoiseModel::default();
    for spec in specs {
        model.add(spec).map_err(UsageError)?;
    }
    Ok(model)
}

fn repo_address(cli_repo: &Option<String>) -> Result<String> {
    cli_repo.clone().ok_or_else(|| {
        anyhow::Error::new(UsageError(
            "no repository given: pass --repo ADDRESS or set QSTORE_REPO".into(),
        ))
    })
}

fn open(cli_repo: &Option<String>) -> Result<Repository> {
    Ok(Repository::open(&repo_address(cli_repo)?)?)
}

fn commit_options(c: &CommitArgs) -> CommitOptions {
    CommitOptions {
        message: c.message.clone(),
        author: c
            .author
            .clone()
            .or_else(|| std::env::var("USER").ok())
            .unwrap_or_else(|| "unknown".into()),
        metadata: c.meta.iter().cloned().collect(),
    }
}

fn run(cli: Cli) -> Result<()> {
    let out = Out { json: cli.json };
    match cli.cmd {
        Cmd::Init {
            path,
            chunk_size,
            merge_threshold,
            merge_pack_bytes,
            pack_size,
        } => {
            let address = match path {
                Some(p) => qstore_cluster::with_refs(&p, cli.refs.as_deref()),
                None => repo_address(&cli.repo)?,
            };
            let config = RepoConfig {
                chunk_size,
                merge_threshold,
                merge_pack_bytes,
                pack_target_bytes: pack_size,
                ..RepoConfig::default()
            };
            let repo = Repository::init(&address, config)?;
            let head = repo.branch_head("main")?;
            let id = repo.config().repository_id.clone();
            out.emit(
                json!({"repository": address, "repository_id": id, "format_version": repo.config().format_version, "branch": "main", "commit": head.to_hex(), "chunk_size": chunk_size}),
                || format!("initialized qstore repository at {address} (branch main, chunk size {}, id {id})", human_bytes(chunk_size as u128)),
            );
        }
        Cmd::Upgrade { path } => {
            let address = match path {
                Some(p) => qstore_cluster::with_refs(&p, cli.refs.as_deref()),
                None => repo_address(&cli.repo)?,
            };
            let r = Repository::upgrade(&address)?;
            out.emit(serde_json::to_value(&r)?, || {
                if r.changed {
                    format!(
                        "upgraded {} from format version {} to {} (repository id {}); {} old packs rewritten, {} packs now; commit ids unchanged",
                        r.address, r.from_version, r.to_version, r.repository_id, r.packs_converted, r.packs_after
                    )
                } else {
                    format!("{} is already format version {}", r.address, r.to_version)
                }
            });
        }
        Cmd::Clone { src, dst } => {
            let dst = qstore_cluster::with_refs(&dst, cli.refs.as_deref());
            remote::clone(&src, &dst, &out)?;
        }
        Cmd::Push {
            remote: r,
            refs,
            force,
        } => remote::exchange(
            &open(&cli.repo)?,
            remote::Direction::Push,
            r,
            &refs,
            force,
            &out,
        )?,
        Cmd::Pull {
            remote: r,
            refs,
            force,
        } => remote::exchange(
            &open(&cli.repo)?,
            remote::Direction::Pull,
            r,
            &refs,
            force,
            &out,
        )?,
        Cmd::Remote { cmd } => {
            let repo = open(&cli.repo)?;
            match cmd {
                RemoteCmd::Add {
                    name,
                    address,
                    replace,
                } => {
                    repo.add_remote(&name, &address, replace)?;
                    let address = repo.remote_address(&name)?;
                    out.emit(json!({"remote": name, "address": address}), || {
                        format!("remote {name} = {address}")
                    });
                }
                RemoteCmd::Rm { name } => {
                    repo.remove_remote(&name)?;
                    out.emit(json!({"removed": name}), || {
                        format!("removed remote {name}")
                    });
                }
                RemoteCmd::Ls => {
                    let r = repo.remotes()?;
                    out.emit(serde_json::to_value(&r)?, || {
                        if r.is_empty() {
                            return "no remotes (add one with `qstore remote add NAME ADDRESS`)"
                                .into();
                        }
                        r.iter()
                            .map(|(n, a)| format!("{n}\t{a}"))
                            .collect::<Vec<_>>()
                            .join("\n")
                    });
                }
            }
        }
        Cmd::Repack { all, recompress } => {
            let repo = open(&cli.repo)?;
            let r = if recompress {
                repo.repack_recompress()?
            } else {
                repo.repack(all)?
            };
            out.emit(serde_json::to_value(&r)?, || {
                format!(
                    "merged {} packs ({}) into {} ({}); {} objects copied, {} recompressed, {} duplicates dropped; {} packs now",
                    r.packs_merged,
                    human_bytes(r.bytes_merged as u128),
                    r.packs_written,
                    human_bytes(r.bytes_written as u128),
                    r.objects_copied,
                    r.chunks_recompressed,
                    r.duplicates_dropped,
                    r.packs_after
                )
            });
        }
        Cmd::Put(args) => put(&open(&cli.repo)?, args, &out)?,
        Cmd::Export {
            path,
            dir,
            format,
            reference,
        } => {
            if format != "zarr" {
                return Err(UsageError(format!("--format {format}: only zarr is written")).into());
            }
            let repo = open(&cli.repo)?;
            let (commit, _) = repo.state(&reference, &path)?;
            let mut r = repo.reader(&commit.to_hex(), &path)?;
            let rep = qstore::zarr::export(&mut r, &path, &commit.to_hex(), &dir)?;
            out.emit(json!(rep), || {
                format!(
                    "exported {path} ({} of {:?}, chunks {:?}) to {} as Zarr v3: {} chunks written ({}), {} all-zero chunks left out",
                    rep.data_type,
                    rep.shape,
                    rep.chunk_shape,
                    dir.display(),
                    rep.chunks_written,
                    human_bytes(rep.bytes_written as u128),
                    rep.chunks_skipped
                )
            });
        }
        Cmd::Import {
            path,
            dir,
            kind,
            commit,
        } => {
            let repo = open(&cli.repo)?;
            let (info, data) = qstore::zarr::read_array(&dir)?;
            let opts = PutOptions {
                kind: KindRequest::from(kind),
                ..Default::default()
            };
            let mut tx = repo.transaction(&commit.branch)?;
            let entry = tx.put(&path, &info, &data, &opts)?;
            let mut c = commit_options(&commit);
            if c.message.is_empty() {
                c.message = format!("import {path} from {}", dir.display());
            }
            let id = tx.commit(c)?;
            out.emit(
                json!({"commit": id.to_hex(), "path": path, "state": output::entry_json(&path, &entry)}),
                || {
                    format!(
                        "imported {} ({} {} {}, {}) as {path} in commit {}",
                        dir.display(),
                        entry.kind.name(),
                        entry.dtype.name(),
                        entry.encoding.name(),
                        output::dense_size(&entry),
                        id.short()
                    )
                },
            );
        }
        Cmd::Get {
            path,
            output,
            reference,
            range,
        } => get(
            &open(&cli.repo)?,
            &path,
            &output,
            &reference,
            range.as_deref(),
            &out,
        )?,
        Cmd::Ls {
            prefix,
            reference,
            long,
        } => {
            let repo = open(&cli.repo)?;
            let commit = repo.resolve(&reference)?;
            let states = repo.list_states(&commit, prefix.as_deref())?;
            if out.json {
                let v: Vec<_> = states
                    .iter()
                    .map(|(p, e)| output::entry_json(p, e))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (p, e) in &states {
                    let extra = if long {
                        format!(
                            " {:>10}  {}",
                            human_bytes(e.stream_len as u128),
                            output::lossy_note(e).unwrap_or_else(|| "lossless".into())
                        )
                    } else {
                        String::new()
                    };
                    println!(
                        "{:<40} {:<15} {:<10} {:<9} {:>10}{extra}",
                        p,
                        e.kind.name(),
                        e.dtype.name(),
                        e.encoding.name(),
                        output::dense_size(e)
                    );
                }
            }
        }
        Cmd::Log { reference, limit } => {
            let repo = open(&cli.repo)?;
            let log = repo.log(&reference, limit)?;
            if out.json {
                let v: Vec<_> = log
                    .iter()
                    .map(|(id, c)| {
                        json!({"id": id.to_hex(), "parents": c.parents.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
                               "message": c.message, "author": c.author, "time_ms": c.time_ms, "metadata": c.metadata})
                    })
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (id, c) in &log {
                    println!("commit {}", id.to_hex());
                    println!("Author: {}", c.author);
                    println!("Date:   {}", output::format_time(c.time_ms));
                    for (k, v) in &c.metadata {
                        println!("Meta:   {k}={v}");
                    }
                    println!("\n    {}\n", c.message);
                }
            }
        }
        Cmd::Show {
            path,
            reference,
            top,
            marginal,
        } => show(&open(&cli.repo)?, &path, &reference, top, &marginal, &out)?,
        Cmd::Rm { paths, commit } => {
            let repo = open(&cli.repo)?;
            let mut tx = repo.transaction(&commit.branch)?;
            for p in &paths {
                tx.delete(p)?;
            }
            let id = tx.commit(commit_options(&commit))?;
            out.emit(json!({"commit": id.to_hex(), "deleted": paths}), || {
                format!("deleted {} path(s) in commit {}", paths.len(), id.short())
            });
        }
        Cmd::Branch { name, from, delete } => {
            let repo = open(&cli.repo)?;
            refs_command(&repo, name, &from, delete, true, &out)?
        }
        Cmd::Tag {
            name,
            target,
            delete,
        } => {
            let repo = open(&cli.repo)?;
            refs_command(&repo, name, &target, delete, false, &out)?
        }
        Cmd::Diff { a, b } => {
            let repo = open(&cli.repo)?;
            let d = repo.diff(&a, &b)?;
            // The lossy states on the new side, with the fidelity they were stored at.
            let lossy = |path: &str| -> Option<String> {
                let (_, e) = repo.state(&b, path).ok()?;
                output::lossy_note(&e)
            };
            if out.json {
                let mut v = serde_json::to_value(&d)?;
                if let Some(items) = v.as_array_mut() {
                    for (item, e) in items.iter_mut().zip(&d) {
                        let path = match e {
                            DiffEntry::Added { path } | DiffEntry::Changed { path, .. } => path,
                            DiffEntry::Removed { .. } => continue,
                        };
                        if let Ok((_, entry)) = repo.state(&b, path)
                            && let Some(l) = &entry.lossy
                            && let Some(obj) = item.as_object_mut()
                        {
                            obj.insert("lossy".into(), json!(l.mode));
                            obj.insert("stored_fidelity".into(), json!(l.fidelity));
                        }
                    }
                }
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else if d.is_empty() {
                println!("no differences");
            } else {
                let note = |path: &str| {
                    lossy(path)
                        .map(|l| format!("  [lossy: {l}]"))
                        .unwrap_or_default()
                };
                for e in &d {
                    match e {
                        DiffEntry::Added { path } => println!("A  {path}{}", note(path)),
                        DiffEntry::Removed { path } => println!("D  {path}"),
                        DiffEntry::Changed {
                            path,
                            chunks_changed,
                            chunks_total,
                            fidelity,
                            tags_only,
                        } => {
                            let f = fidelity
                                .map(|f| format!("{f:.12}"))
                                .unwrap_or_else(|| "n/a".into());
                            let t = if *tags_only { " (tags only)" } else { "" };
                            println!(
                                "M  {path}  chunks changed {chunks_changed}/{chunks_total}  fidelity {f}{t}{}",
                                note(path)
                            );
                        }
                    }
                }
            }
        }
        Cmd::Stats => {
            let repo = open(&cli.repo)?;
            let s = repo.stats()?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&s)?);
            } else {
                output::print_stats(&s);
            }
        }
        Cmd::Demo { dir, qubits } => demo::run(&dir, qubits, &out)?,
        Cmd::Serve {
            listen,
            tls_cert,
            tls_key,
            self_signed,
            pq_only,
            max_body,
            max_chunk,
            per_token_concurrency,
            request_timeout,
            ui,
        } => serve(
            &cli.repos,
            qstore_server::ServeConfig {
                repos: Vec::new(),
                listen,
                tls: match self_signed {
                    Some(dir) => Some(self_signed_cert(&dir, listen)?),
                    None => tls_cert.zip(tls_key),
                },
                pq_only,
                limits: qstore_server::Limits {
                    max_body,
                    max_chunk,
                    per_token_concurrency,
                    request_timeout,
                    ..Default::default()
                },
                ui,
                sessions: None,
            },
            cli.refs.as_deref(),
            None,
        )?,
        Cmd::Ui { listen, write } => {
            if !listen.ip().is_loopback() {
                return Err(UsageError(format!(
                    "{listen} is not a loopback address: `qstore ui` serves this machine only;                      use `qstore serve --ui` with TLS and tokens to serve others"
                ))
                .into());
            }
            let scope = if write {
                qstore_server::tokens::Scope::Write
            } else {
                qstore_server::tokens::Scope::Read
            };
            let (sessions, code) = qstore_server::tokens::SessionTokens::new(scope);
            serve(
                &[repo_address(&cli.repo)?],
                qstore_server::ServeConfig {
                    repos: Vec::new(),
                    listen,
                    tls: None,
                    pq_only: false,
                    limits: Default::default(),
                    ui: true,
                    sessions: Some(std::sync::Arc::new(sessions)),
                },
                None,
                Some(code),
            )?;
        }
        Cmd::Token { cmd } => token(&cli.repo, cmd, cli.json)?,
        Cmd::VolumePlugin {
            root,
            socket,
            docker_socket,
            reconcile_every,
        } => {
            let repo = Repository::open_or_init(&repo_address(&cli.repo)?)?;
            let driver = qstore_volume::Driver::open(&root, repo).map_err(anyhow::Error::msg)?;
            eprintln!("qstore volume-plugin: serving {}", socket.display());
            qstore_volume::server::serve(driver, &socket, &docker_socket, reconcile_every)
                .map_err(anyhow::Error::msg)?;
        }
        Cmd::Volume { cmd, socket } => {
            let call = |endpoint: &str, body: serde_json::Value| -> Result<serde_json::Value> {
                let v = qstore_volume::client::call(&socket, endpoint, &body)
                    .map_err(anyhow::Error::msg)?;
                match v["Err"].as_str() {
                    Some(e) if !e.is_empty() => Err(anyhow::Error::msg(e.to_string())),
                    _ => Ok(v),
                }
            };
            match cmd {
                VolumeCmd::Ls => {
                    let v = call("/VolumeDriver.List", json!({}))?;
                    out.emit(v.clone(), || {
                        v["Volumes"]
                            .as_array()
                            .map(|a| {
                                a.iter()
                                    .map(|x| {
                                        format!(
                                            "{:<24} {:<7} {:>14} mounts={} {}",
                                            x["Name"].as_str().unwrap_or(""),
                                            x["Status"]["tier"].as_str().unwrap_or(""),
                                            x["Status"]["size"],
                                            x["Status"]["mounts"],
                                            x["Mountpoint"].as_str().unwrap_or("")
                                        )
                                    })
                                    .collect::<Vec<_>>()
                                    .join("\n")
                            })
                            .unwrap_or_default()
                    });
                }
                VolumeCmd::Snapshot { name, message } => {
                    let v = call(
                        "/QStore.Snapshot",
                        json!({"Name": name, "Message": message}),
                    )?;
                    out.emit(v.clone(), || {
                        format!(
                            "snapshot of {name}: commit {}",
                            v["Commit"].as_str().unwrap_or("")
                        )
                    });
                }
                VolumeCmd::Rm { name } => {
                    call("/VolumeDriver.Remove", json!({"Name": name}))?;
                    out.emit(json!({"removed": name}), || format!("removed {name}"));
                }
            }
        }
        Cmd::Run {
            circuit,
            shots,
            branch,
            output,
            checkpoint_every,
            resume,
            seed,
            abort_after,
            noise,
            trajectories,
            shots_per_trajectory,
            save,
            dtype,
            density_matrix,
            drain_to,
            method,
            memory_limit,
            prune_below,
            checkpoint_lossy,
        } => {
            let method = qstore_sim::Method::from_name(&method).unwrap_or_default();
            if checkpoint_lossy.is_some() && (density_matrix || trajectories.is_some()) {
                return Err(UsageError(
                    "--checkpoint-lossy applies to checkpointed single state-vector runs".into(),
                )
                .into());
            }
            if density_matrix && method == qstore_sim::Method::Sparse {
                return Err(UsageError(
                    "--density-matrix simulates a dense density matrix: not with --method sparse"
                        .into(),
                )
                .into());
            }
            if prune_below.is_some() && (density_matrix || trajectories.is_some()) {
                return Err(UsageError(
                    "--prune-below applies to single runs, not to --density-matrix or --trajectories".into(),
                )
                .into());
            }
            if drain_to.is_some() && (density_matrix || trajectories.is_some()) {
                return Err(UsageError(
                    "--drain-to applies to checkpointed single runs, not to --density-matrix or --trajectories (push the branch afterwards)".into(),
                )
                .into());
            }
            let precision = if dtype == "complex64" {
                qstore_sim::Precision::Single
            } else {
                qstore_sim::Precision::Double
            };
            if precision == qstore_sim::Precision::Single
                && (density_matrix || trajectories.is_some())
            {
                return Err(UsageError(
                    "--dtype complex64 applies to state-vector runs, not to --density-matrix or --trajectories".into(),
                )
                .into());
            }
            let address = repo_address(&cli.repo)?;
            // The options of a single run or of --shots (which stores counts, no state).
            let run_opts = |output: String| qstore_sim::RunOptions {
                precision,
                branch: branch.clone(),
                output,
                checkpoint_every,
                resume,
                seed,
                method,
                memory_limit,
                prune_below,
                checkpoint_lossy,
                abort_after,
            };
            if let Some(n) = shots {
                if density_matrix || trajectories.is_some() || !noise.is_empty() {
                    return Err(UsageError(
                        "--shots runs a QIR program N times noiselessly: not with --density-matrix, --trajectories or --noise (use --trajectories for noisy counts)".into(),
                    )
                    .into());
                }
                if n == 0 {
                    return Err(UsageError("--shots must be positive".into()).into());
                }
                return run::shots(
                    &address,
                    &circuit,
                    n,
                    &output.unwrap_or_else(|| "shots".into()),
                    run_opts(String::new()),
                    &out,
                );
            }
            if density_matrix {
                if trajectories.is_some() || resume || checkpoint_every.is_some() {
                    return Err(UsageError(
                        "--density-matrix runs once, without --trajectories, --resume or --checkpoint-every".into(),
                    )
                    .into());
                }
                let model = noise_model(&noise)?;
                return run::density(
                    &address,
                    &circuit,
                    &branch,
                    &output.unwrap_or_else(|| "final".into()),
                    seed,
                    &model,
                    &out,
                );
            }
            match trajectories {
                Some(t) => {
                    if resume || checkpoint_every.is_some() {
                        return Err(UsageError(
                            "--resume and --checkpoint-every apply to single runs, not to --trajectories".into(),
                        )
                        .into());
                    }
                    let model = noise_model(&noise)?;
                    run::study(
                        &address,
                        &circuit,
                        qstore_sim::StudyOptions {
                            branch,
                            prefix: output.unwrap_or_else(|| "study".into()),
                            trajectories: t,
                            shots: shots_per_trajectory,
                            seed,
                            noise: model,
                            density: false,
                            states: false,
                            scratch_quota: 64 << 30,
                            method,
                            memory_limit,
                        },
                        &save,
                        &out,
                    )?
                }
                None => {
                    if !noise.is_empty() {
                        return Err(UsageError(
                            "--noise needs --trajectories N (noise is simulated by Monte-Carlo trajectories)".into(),
                        )
                        .into());
                    }
                    run::run(
                        &address,
                        &circuit,
                        run_opts(output.unwrap_or_else(|| "final".into())),
                        drain_to.as_deref(),
                        &out,
                    )?
                }
            }
        }
        Cmd::Bench {
            dir,
            history: true,
            history_sizes,
            history_commits,
            json_out,
            ..
        } => bench_history::run(
            &dir,
            &history_sizes,
            history_commits,
            json_out.as_ref(),
            &out,
        )?,
        Cmd::Bench {
            dir,
            served: true,
            sizes,
            json_out,
            ..
        } => {
            let bytes = if sizes.len() > 1 {
                1 << 30
            } else {
                bench::parse_size(&sizes[0])?
            };
            bench_served::run(&dir, bytes, json_out.as_ref(), &out)?
        }
        Cmd::BenchCommit { path, seed } => {
            let one = bench_history::commit_one(&repo_address(&cli.repo)?, &path, seed)?;
            println!("{}", serde_json::to_string(&one)?);
        }
        Cmd::Bench {
            dir,
            sizes,
            classes,
            json_out,
            ..
        } => {
            let sizes = sizes
                .iter()
                .map(|s| bench::parse_size(s))
                .collect::<Result<Vec<_>>>()?;
            match cli.repo.as_deref() {
                // A remote repository: qstore against the object store itself.
                Some(r) if r.get(..5).is_some_and(|p| p.eq_ignore_ascii_case("s3://")) => {
                    let bytes = if sizes == [256 << 20, 1 << 30, 4 << 30] {
                        1 << 30
                    } else {
                        sizes[0]
                    };
                    bench_remote::run(r, bytes, json_out.as_ref(), &out)?
                }
                _ => bench::run(&dir, &sizes, &classes, json_out.as_ref(), &out)?,
            }
        }
        Cmd::Upload { cmd } => upload(&open(&cli.repo)?, cmd, &out)?,
        Cmd::Gc {
            dry_run,
            grace,
            threshold,
            upload_ttl,
        } => {
            let repo = open(&cli.repo)?;
            let r = repo.gc(&qstore::GcOptions {
                grace,
                dry_run,
                repack_threshold: threshold,
                upload_ttl,
            })?;
            out.emit(serde_json::to_value(&r)?, || {
                format!(
                    "{}{} of {} packs deleted, {} rewritten, {} too young to touch, {} small ones merged, {} left; {} objects removed; {} freed of {}; {} live objects{}{}",
                    if r.dry_run { "dry run: would have: " } else { "" },
                    r.packs_deleted,
                    r.packs_before,
                    r.packs_rewritten,
                    r.packs_too_young,
                    r.packs_merged,
                    r.packs_after,
                    r.objects_deleted,
                    human_bytes(r.bytes_freed as u128),
                    human_bytes(r.bytes_before as u128),
                    r.live_objects,
                    if r.scratch_reclaimed.is_empty() { String::new() } else { format!("; reclaimed scratch {:?}", r.scratch_reclaimed) },
                    if r.tmp_files_removed > 0 { format!("; {} stale temporary files removed", r.tmp_files_removed) } else { String::new() },
                )
            });
        }
        Cmd::Expire { branch, older_than } => {
            let repo = open(&cli.repo)?;
            let n = repo.expire(&branch, older_than)?;
            out.emit(json!({"branch": branch, "commits_cut": n}), || {
                format!("cut {n} commit(s) from the history of {branch}; run `qstore gc` to reclaim their space")
            });
        }
        Cmd::Fsck { full } => {
            let repo = open(&cli.repo)?;
            let r = repo.fsck(full)?;
            if out.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                for p in &r.problems {
                    println!(
                        "{}: {}{}{}: {}",
                        p.kind,
                        p.object,
                        p.commit
                            .as_ref()
                            .map(|c| format!(" in commit {}", &c[..12]))
                            .unwrap_or_default(),
                        p.path
                            .as_ref()
                            .map(|p| format!(" at {p:?}"))
                            .unwrap_or_default(),
                        p.detail
                    );
                }
                println!(
                    "checked {} refs, {} commits, {} trees, {} states, {} chunks{}: {}",
                    r.refs,
                    r.commits,
                    r.trees,
                    r.states,
                    r.chunks,
                    if r.full {
                        " (read and hashed)"
                    } else {
                        " (headers)"
                    },
                    if r.healthy() {
                        "healthy".to_string()
                    } else {
                        format!("{} problem(s)", r.problems.len())
                    }
                );
            }
            if !r.healthy() {
                std::process::exit(exit::CORRUPT);
            }
        }
        Cmd::Scratch { cmd } => {
            let repo = open(&cli.repo)?;
            match cmd {
                ScratchCmd::Ls => {
                    let leases = qstore::repo::scratch::list_leases(&repo)?;
                    if out.json {
                        let v: Vec<_> = leases
                            .iter()
                            .map(|(l, live)| json!({"lease": l, "live": live}))
                            .collect();
                        println!("{}", serde_json::to_string_pretty(&v)?);
                    } else if leases.is_empty() {
                        println!("no scratch spaces");
                    } else {
                        for (l, live) in leases {
                            println!(
                                "{}  pid {:<8} {}  expires {}  {}",
                                l.id,
                                l.pid,
                                if live { "live   " } else { "expired" },
                                output::format_time(l.expires_ms),
                                l.spill_dir.display()
                            );
                        }
                    }
                }
                ScratchCmd::Rm { id, force } => {
                    qstore::repo::scratch::remove_scratch(&repo, &id, force)?;
                    out.emit(json!({"removed": id}), || {
                        format!("removed scratch space {id}")
                    });
                }
            }
        }
        Cmd::ScratchHold { ttl } => {
            // Opens a scratch space, stores a state, says so, and waits to be killed.
            let repo = open(&cli.repo)?;
            let s = repo.scratch(qstore::ScratchOptions {
                lease_ttl: std::time::Duration::from_secs_f64(ttl),
                memory_budget: 0,
                ..Default::default()
            })?;
            let amp: Vec<f64> = (0..2048).map(|k| k as f64).collect();
            let _h = s.put(
                &ArrayInfo {
                    dtype: qstore::DType::Complex128,
                    shape: vec![1024],
                },
                bytemuck::cast_slice(&amp),
                &PutOptions::default(),
            )?;
            println!("ready {}", s.id());
            std::io::stdout().flush()?;
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        Cmd::CommitLoop {
            prefix,
            count,
            cycle,
            seconds,
            branch,
            amps,
            start,
            retry,
        } => {
            if !amps.is_power_of_two() || amps < 2 {
                return Err(anyhow!(Error::InvalidArgument(
                    "--amps must be a power of two".into()
                )));
            }
            let repo = open(&cli.repo)?;
            let stdout = std::io::stdout();
            let started = std::time::Instant::now();
            for i in start..start + count {
                if seconds.is_some_and(|s| started.elapsed().as_secs_f64() > s) {
                    break;
                }
                let path = format!("{prefix}/s{:06}", cycle.map_or(i, |c| i % c.max(1)));
                let amp: Vec<f64> = if amps == 256 {
                    (0..512).map(|k| (i * 512 + k) as f64).collect()
                } else {
                    (0..2 * amps).map(|k| loop_amplitude(i, k)).collect()
                };
                let attempt = || -> qstore::Result<qstore::ObjectId> {
                    let mut tx = repo.transaction(&branch)?;
                    tx.put(
                        &path,
                        &ArrayInfo {
                            dtype: qstore::DType::Complex128,
                            shape: vec![amps],
                        },
                        bytemuck::cast_slice(&amp),
                        &PutOptions::default(),
                    )?;
                    tx.commit(CommitOptions {
                        message: format!("loop {i}"),
                        ..Default::default()
                    })
                };
                let id = loop {
                    match attempt() {
                        Err(
                            Error::Conflict { .. }
                            | Error::LeaseLost { .. }
                            | Error::Unavailable { .. },
                        ) if retry => continue,
                        r => break r?,
                    }
                };
                let mut l = stdout.lock();
                writeln!(l, "committed {} {path} {i}", id.to_hex())?;
                l.flush()?;
            }
        }
    }
    Ok(())
}

fn refs_command(
    repo: &Repository,
    name: Option<String>,
    target: &str,
    delete: bool,
    branch: bool,
    out: &Out,
) -> Result<()> {
    let what = if branch { "branch" } else { "tag" };
    match name {
        None => {
            let refs: Vec<_> = repo
                .refs()?
                .into_iter()
                .filter(|(r, _)| matches!(r, qstore::RefName::Branch(_)) == branch)
                .collect();
            if out.json {
                let v: BTreeMap<_, _> = refs
                    .iter()
                    .map(|(r, id)| (r.name().to_string(), id.to_hex()))
                    .collect();
                println!("{}", serde_json::to_string_pretty(&v)?);
            } else {
                for (r, id) in refs {
                    println!("{:<24} {}", r.name(), id.short());
                }
            }
        }
        Some(n) if delete => {
            let r = if branch {
                qstore::RefName::branch(&n)?
            } else {
                qstore::RefName::tag(&n)?
            };
            repo.delete_ref(&r)?;
            out.emit(json!({"deleted": n, "kind": what}), || {
                format!("deleted {what} {n}")
            });
        }
        Some(n) => {
            let id = if branch {
                repo.create_branch(&n, target)?
            } else {
                repo.create_tag(&n, target)?
            };
            out.emit(json!({what: n, "commit": id.to_hex()}), || {
                format!("created {what} {n} at {}", id.short())
            });
        }
    }
    Ok(())
}

fn put(repo: &Repository, args: PutArgs, out: &Out) -> Result<()> {
    let kind = KindRequest::from(args.kind);
    let mut opts = PutOptions {
        kind,
        encoding: if args.dense {
            EncodingChoice::Dense
        } else {
            EncodingChoice::Auto
        },
        tags: args.tags.iter().cloned().collect(),
        progress: None,
        lossy: args.lossy,
        best_codecs: false,
    };
    let mut tx = repo.transaction(&args.commit.branch)?;
    let is_json = args.file.extension().is_some_and(|e| e == "json");
    let started = std::time::Instant::now();
    let entry: StateEntry = if is_json {
        sparse_json::read(&args.file)?.put(&mut tx, &args.path, &opts)?
    } else {
        let (info, src) = npy::open(&args.file)?;
        let total = info.byte_len().unwrap_or(0);
        let bar = progress_bar(total, "put");
        if let Some(b) = bar.clone() {
            opts.progress = Some(Arc::new(move |n| b.set_position(n)));
        }
        let e = tx.put_source(&args.path, &info, &src, &opts)?;
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        e
    };
    let stats = tx.stats();
    let id = tx.commit(commit_options(&args.commit))?;
    let secs = started.elapsed().as_secs_f64();
    out.emit(
        json!({"commit": id.to_hex(), "path": args.path, "state": output::entry_json(&args.path, &entry),
               "stats": stats, "seconds": secs}),
        || {
            format!(
                "stored {} ({} {} {}, {}) in commit {}\n  chunks: {} total, {} new, {} deduplicated, {} zero; {} written{}",
                args.path,
                entry.kind.name(),
                entry.dtype.name(),
                entry.encoding.name(),
                output::dense_size(&entry),
                id.short(),
                stats.chunks,
                stats.new_chunks,
                stats.dedup_chunks,
                stats.zero_chunks,
                human_bytes(stats.new_stored_bytes as u128),
                output::lossy_note(&entry)
                    .map(|l| format!("\n  lossy: {l}"))
                    .unwrap_or_default()
            )
        },
    );
    Ok(())
}

fn parse_range(r: &str) -> Result<(u64, u64)> {
    let (a, b) = r.split_once(':').ok_or_else(|| {
        anyhow::Error::new(UsageError(format!("--range expects START:STOP, got {r:?}")))
    })?;
    let a: u64 = a
        .parse()
        .map_err(|_| anyhow::Error::new(UsageError(format!("bad range start {a:?}"))))?;
    let b: u64 = b
        .parse()
        .map_err(|_| anyhow::Error::new(UsageError(format!("bad range stop {b:?}"))))?;
    Ok((a, b))
}

fn get(
    repo: &Repository,
    path: &str,
    output: &Path,
    reference: &str,
    range: Option<&str>,
    out: &Out,
) -> Result<()> {
    let mut reader = repo.reader(reference, path)?;
    let entry = reader.entry().clone();
    let tmp = output.with_extension("qstore-partial");
    let write_result = (|| -> Result<u128> {
        let file =
            std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
        let mut w = BufWriter::with_capacity(8 << 20, file);
        let written = if output.extension().is_some_and(|e| e == "json") {
            if range.is_some() {
                return Err(anyhow::Error::new(UsageError(
                    "--range writes .npy output only".into(),
                )));
            }
            let sparse = reader.read_sparse_wide()?;
            sparse_json::write(&mut w, &entry, &sparse)?;
            sparse.len() as u128
        } else if let Some(r) = range {
            let (a, b) = parse_range(r)?;
            let item = entry.dtype.item_size() as u64;
            let mut buf = vec![0u8; (b.saturating_sub(a) * item) as usize];
            reader.read_elements(a, b, &mut buf)?;
            w.write_all(&npy::encode_header(&ArrayInfo {
                dtype: entry.dtype,
                shape: vec![b - a],
            }))?;
            w.write_all(&buf)?;
            buf.len() as u128
        } else {
            reader.check_materialise()?;
            w.write_all(&npy::encode_header(&ArrayInfo {
                dtype: entry.dtype,
                shape: entry.shape.clone(),
            }))?;
            let total = entry.dense_bytes();
            let bar = progress_bar(total as u64, "get");
            reader.write_dense_to(&mut w, &|n| {
                if let Some(b) = &bar {
                    b.set_position(n)
                }
            })?;
            if let Some(b) = bar {
                b.finish_and_clear();
            }
            total
        };
        let f = w
            .into_inner()
            .map_err(|e| anyhow!("writing {}: {}", tmp.display(), e.error()))?;
        f.sync_data()?;
        Ok(written)
    })();
    match write_result {
        Ok(n) => {
            std::fs::rename(&tmp, output)
                .with_context(|| format!("writing {}", output.display()))?;
            out.emit(
                json!({"path": path, "output": output, "bytes_or_entries": n.to_string()}),
                || format!("wrote {path} to {}", output.display()),
            );
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            Err(e)
        }
    }
}

fn show(
    repo: &Repository,
    path: &str,
    reference: &str,
    top: Option<usize>,
    marginal: &[u32],
    out: &Out,
) -> Result<()> {
    let mut reader = repo.reader(reference, path)?;
    let entry = reader.entry().clone();
    let top_k = top.map(|k| reader.top_k(k)).transpose()?;
    let marg = if marginal.is_empty() {
        None
    } else {
        Some(reader.marginals(marginal)?)
    };
    let n = entry.qubits().unwrap_or(0) as usize;
    let bits = |i: u64| format!("{:0width$b}", i, width = n.max(1));
    if out.json {
        let mut v = output::entry_json(path, &entry);
        v["chunks"] = json!(reader.manifest().chunks.len());
        if let Some(t) = &top_k {
            v["top"] = json!(
                t.iter()
                    .map(|(i, p)| json!({"index": i, "bits": bits(*i), "probability": p}))
                    .collect::<Vec<_>>()
            );
        }
        if let Some(m) = &marg {
            v["marginal"] = json!({"qubits": marginal, "probabilities": m});
        }
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!("path:      {path}");
    println!("kind:      {}", entry.kind.name());
    if let Some(q) = entry.qubits() {
        println!("qubits:    {q}");
    }
    println!("dtype:     {}", entry.dtype.name());
    println!("shape:     {:?}", entry.shape);
    println!(
        "encoding:  {}{}",
        entry.encoding.name(),
        if entry.nnz > 0 {
            format!(" ({} non-zero)", entry.nnz)
        } else {
            String::new()
        }
    );
    println!(
        "size:      {} dense, {} encoded in {} chunks",
        output::dense_size(&entry),
        human_bytes(entry.stream_len as u128),
        reader.manifest().chunks.len()
    );
    if let Some(l) = output::lossy_note(&entry) {
        println!("lossy:     {l}");
    }
    let norm_label = if entry.kind == qstore::StateKind::DensityMatrix {
        "trace"
    } else {
        "norm^2"
    };
    println!("{norm_label:<10} {:.15}", entry.norm);
    for (k, v) in &entry.tags {
        println!("tag:       {k}={v}");
    }
    if let Some(t) = top_k {
        println!("top {}:", t.len());
        for (i, p) in t {
            println!("  |{}>  (index {i})  p = {p:.12}", bits(i));
        }
    }
    if let Some(m) = marg {
        println!("marginal of qubits {marginal:?}:");
        for (i, p) in m.iter().enumerate() {
            println!("  {:0width$b}  p = {p:.12}", i, width = marginal.len());
        }
    }
    Ok(())
}

/// `qstore serve`.
/// `qstore upload ...`.
fn upload(repo: &Repository, cmd: UploadCmd, out: &Out) -> Result<()> {
    match cmd {
        UploadCmd::Begin {
            path,
            dtype,
            shape,
            parts,
            kind,
        } => {
            let dtype = qstore::DType::from_name(&dtype)
                .ok_or_else(|| UsageError(format!("unknown dtype {dtype:?}")))?;
            let shape: Vec<u64> = shape
                .split(',')
                .map(|x| x.trim().parse::<u64>())
                .collect::<std::result::Result<_, _>>()
                .map_err(|_| UsageError(format!("malformed shape {shape:?} (N or N,M)")))?;
            let kind = KindRequest::from(kind);
            let id = repo.begin_upload(&path, &ArrayInfo { dtype, shape }, kind, parts)?;
            out.emit(json!({"upload": id, "path": path, "parts": parts}), || {
                format!("upload of {path} in {parts} parts: {id}")
            });
        }
        UploadCmd::Put { id, k, file } => {
            let (info, src) = npy::open(&file)?;
            let mut data = vec![0u8; info.byte_len().unwrap_or(0) as usize];
            qstore::DenseSource::read_at(&src, 0, &mut data)?;
            let st = repo.put_part(&id, k, &data)?;
            out.emit(json!({"upload": id, "part": k, "stats": st}), || {
                format!(
                    "part {k} of upload {id} stored: {} chunks, {} new, {} written",
                    st.chunks,
                    st.new_chunks,
                    human_bytes(st.new_stored_bytes as u128)
                )
            });
        }
        UploadCmd::Complete { id, commit } => {
            let mut c = commit_options(&commit);
            if c.message.is_empty() {
                c.message = "put in parts".into();
            }
            let spec = repo.upload_spec(&id)?;
            let cid = repo.complete_upload(&id, &commit.branch, c)?;
            out.emit(
                json!({"upload": id, "commit": cid.to_hex(), "path": spec.path}),
                || {
                    format!(
                        "stored {} from {} parts in commit {}",
                        spec.path,
                        spec.parts,
                        cid.short()
                    )
                },
            );
        }
        UploadCmd::Abort { id } => {
            repo.abort_upload(&id)?;
            out.emit(json!({"upload": id, "aborted": true}), || {
                format!("upload {id} aborted; gc reclaims its parts")
            });
        }
        UploadCmd::Ls => {
            let v = repo.uploads()?;
            out.emit(serde_json::to_value(&v)?, || {
                v.iter()
                    .map(|u| {
                        format!(
                            "{} {} {:?} {}: parts {}/{} stored{}",
                            u.spec.id,
                            u.spec.path,
                            u.spec.shape,
                            u.spec.dtype,
                            u.parts_stored.len(),
                            u.spec.parts,
                            u.completed
                                .as_ref()
                                .map(|c| format!(", completed in {}", &c[..12]))
                                .unwrap_or_default()
                        )
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

/// Serve until told to stop. With `login_code` (`qstore ui`), the URL to open, carrying the
/// one-time code after `#` (never sent to the server as part of a URL), is printed too.
fn serve(
    repos: &[String],
    mut cfg: qstore_server::ServeConfig,
    refs: Option<&str>,
    login_code: Option<String>,
) -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(match std::env::var("QSTORE_LOG").as_deref() {
            Ok("debug") => tracing::Level::DEBUG,
            Ok("warn") => tracing::Level::WARN,
            _ => tracing::Level::INFO,
        })
        .with_ansi(false)
        .init();
    if repos.is_empty() {
        return Err(UsageError("no repository to serve: pass --repo [NAME=]ADDRESS".into()).into());
    }
    for r in repos {
        let (name, addr) = qstore_server::parse_repo_arg(r).map_err(UsageError)?;
        cfg.repos
            .push((name, qstore_cluster::with_refs(&addr, refs)));
    }
    let tls = cfg.tls.is_some();
    let ui = cfg.ui;
    let names: Vec<String> = cfg.repos.iter().map(|(n, _)| n.clone()).collect();
    let server = qstore_server::start(cfg).map_err(anyhow::Error::msg)?;
    let scheme = if tls { "https" } else { "http" };
    // The first line of stdout names the address (port 0 picks one).
    println!("listening {scheme}://{}", server.addr);
    if let Some(code) = login_code {
        println!("open {scheme}://{}/ui/#code={code}", server.addr);
        eprintln!(
            "qstore ui: open the URL above in a browser on this machine; its login code works \
             once (Ctrl-C stops the server)"
        );
    } else if ui {
        eprintln!("qstore serve: web view at {scheme}://{}/ui/", server.addr);
    }
    let _ = std::io::stdout().flush();
    eprintln!(
        "qstore serve: {} on {scheme}://{} (open as {scheme}://{}/NAME with a token)",
        names.join(", "),
        server.addr,
        server.addr
    );
    server.wait_for_signal();
    eprintln!("qstore serve: stopping");
    Ok(())
}

/// The certificate and key of `serve --self-signed DIR`, made on first use.
fn self_signed_cert(dir: &Path, listen: std::net::SocketAddr) -> Result<(PathBuf, PathBuf)> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let mut names = vec!["localhost".to_string(), "127.0.0.1".into(), "::1".into()];
    if !listen.ip().is_unspecified() && !listen.ip().is_loopback() {
        names.push(listen.ip().to_string());
    }
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() {
            names.push(h.to_string());
        }
    }
    let (ca, cert, key) =
        qstore_server::tls::write_self_signed(dir, &names).map_err(anyhow::Error::msg)?;
    eprintln!(
        "qstore serve: made a CA and a certificate for {} in {} (clients: --ca-cert {})",
        names.join(", "),
        dir.display(),
        ca.display()
    );
    Ok((cert, key))
}

/// `qstore token ...`.
fn token(repo: &Option<String>, cmd: TokenCmd, json_out: bool) -> Result<()> {
    let address = repo_address(repo)?;
    if address.starts_with("https://") || address.starts_with("http://") {
        return Err(UsageError(
            "tokens are managed on the repository itself (its path or s3:// address, where \
             `qstore serve` runs), not through the server"
                .into(),
        )
        .into());
    }
    let repo = Repository::open(&address)?;
    let store = qstore_server::tokens::TokenStore::new(repo.coordination());
    match cmd {
        TokenCmd::Create {
            scope,
            branch,
            expires,
            label,
        } => {
            let (rec, text) = store.create(scope, branch, expires, &label)?;
            if json_out {
                println!(
                    "{}",
                    json!({"id": rec.id, "scope": rec.scope.to_string(), "branch_prefix": rec.branch_prefix,
                           "expires_ms": rec.expires_ms, "label": rec.label, "token": text})
                );
            } else {
                let mut what = format!("{} token {}", rec.scope, rec.id);
                if let Some(p) = &rec.branch_prefix {
                    what.push_str(&format!(", branches {p}*"));
                }
                if let Some(e) = expires {
                    what.push_str(&format!(", expires in {}s", e.as_secs()));
                }
                println!("created {what}; it is shown only this once:\n{text}");
            }
        }
        TokenCmd::List => {
            let v = store.list()?;
            if json_out {
                let rows: Vec<_> = v
                    .iter()
                    .map(|r| json!({"id": r.id, "scope": r.scope.to_string(), "branch_prefix": r.branch_prefix,
                                    "created_ms": r.created_ms, "expires_ms": r.expires_ms, "revoked": r.revoked, "label": r.label}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for r in v {
                    println!(
                        "{}  {:<5}  {:<10}  {}{}  {}",
                        r.id,
                        r.scope.to_string(),
                        r.branch_prefix
                            .as_deref()
                            .map(|p| format!("{p}*"))
                            .unwrap_or_else(|| "all".into()),
                        if r.revoked { "revoked" } else { "active" },
                        r.expires_ms
                            .map(|e| format!(" (expires at {e} ms)"))
                            .unwrap_or_default(),
                        r.label
                    );
                }
            }
        }
        TokenCmd::Revoke { id } => {
            let r = store.revoke(&id)?;
            if json_out {
                println!("{}", json!({"revoked": r.id}));
            } else {
                println!("revoked token {}", r.id);
            }
        }
    }
    Ok(())
}
