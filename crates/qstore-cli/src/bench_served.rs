//! `qstore bench --served`: a repository behind `qstore serve` over loopback TLS
//! (X25519MLKEM768, a self-signed CA) against the same operations on a local repository, in
//! one run. Rows: put (a durable commit) and a cold get of one incompressible state; a put
//! after one chunk changed, with the bytes the server received; `push` of a new state
//! committed locally to the served repository and `pull` of it into another local
//! repository that already holds the rest, both against the local put of the same bytes.
//! The server runs in this process (its own runtime and
//! listener), so the client and server share the machine as they would on loopback.

use crate::output::{Out, human_bytes};
use anyhow::{Context, Result};
use qstore::{ArrayInfo, CommitOptions, DType, PutOptions, Repository};
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct ServedRow {
    pub op: String,
    pub bytes: u64,
    pub seconds: f64,
    pub gib_per_s: f64,
    /// Local time over served time for the same work (1.0 = as fast as local).
    pub ratio_to_local: Option<f64>,
    /// Bytes that crossed the network for the row: request bodies the server received for
    /// puts and pushes, the records a pull copied.
    pub transferred_bytes: Option<u64>,
    /// The TLS key-exchange group of the connection.
    pub tls_group: Option<String>,
}

fn gib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / secs.max(1e-9)
}

/// Run the benchmark with a state of `bytes`, in `dir` (emptied first).
pub fn run(dir: &Path, bytes: u64, json_out: Option<&std::path::PathBuf>, out: &Out) -> Result<()> {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let s = |p: &str| -> Result<String> {
        Ok(dir
            .join(p)
            .to_str()
            .context("non-UTF-8 bench directory")?
            .to_string())
    };
    let local = Repository::open_or_init(&s("local")?)?;
    let served_path = s("served")?;
    let served_repo = Repository::open_or_init(&served_path)?;
    let (_, token) = qstore_server::tokens::TokenStore::new(served_repo.coordination()).create(
        qstore_server::tokens::Scope::Write,
        None,
        None,
        "bench",
    )?;
    drop(served_repo);
    let (ca, cert, key) = qstore_server::tls::write_self_signed(
        &dir.join("tls"),
        &["localhost".into(), "127.0.0.1".into()],
    )
    .map_err(anyhow::Error::msg)?;
    let server = qstore_server::start(qstore_server::ServeConfig {
        repos: vec![("bench".into(), served_path)],
        listen: "127.0.0.1:0".parse()?,
        tls: Some((cert, key)),
        pq_only: false,
        limits: Default::default(),
        ui: false,
        sessions: None,
    })
    .map_err(anyhow::Error::msg)?;
    let url = format!("https://127.0.0.1:{}/bench", server.addr.port());
    qstore_cluster::served::set_client_options(qstore_cluster::served::ClientOptions {
        token: Some(token),
        ca_cert: Some(ca),
    });
    let received = || server.state.metrics.bytes_in.load(Ordering::Relaxed);
    let group = || -> Option<String> {
        let m = server.state.metrics.render();
        m.lines()
            .find(|l| l.starts_with("qstore_tls_handshakes_total{group=\"X25519MLKEM768\"}"))
            .map(|_| "X25519MLKEM768".to_string())
            .or_else(|| Some("X25519".into()))
    };

    let mut state = vec![0u8; bytes as usize];
    crate::bench::generate("dense", &mut state);
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![bytes / 16],
    };
    // Every timed operation starts with the page cache's dirty data written back, so one
    // row's writes do not slow the next one down.
    let settle = || {
        // SAFETY: sync(2) takes no arguments and cannot fail.
        unsafe { libc::sync() };
    };
    let put = |repo: &Repository, path: &str, data: &[u8]| -> Result<f64> {
        settle();
        let t = Instant::now();
        let mut tx = repo.transaction("main")?;
        tx.put(path, &info, data, &PutOptions::default())?;
        tx.commit(CommitOptions {
            message: format!("bench: {path}"),
            ..Default::default()
        })?;
        Ok(t.elapsed().as_secs_f64())
    };
    let mut back = vec![0u8; bytes as usize];
    let mut get = |address: &str, path: &str, expect: &[u8]| -> Result<f64> {
        let fresh = Repository::open(address)?;
        fresh.set_cache_bytes(0);
        settle();
        let t = Instant::now();
        let mut r = fresh.reader("main", path)?;
        let n = r.entry().elements();
        r.read_elements(0, n, &mut back)?;
        let secs = t.elapsed().as_secs_f64();
        anyhow::ensure!(back == expect, "{path} read back from {address} differs");
        Ok(secs)
    };
    let mut rows = Vec::new();
    let mut row = |op: &str, secs: f64, ratio: Option<f64>, recv: Option<u64>, tls: bool| {
        rows.push(ServedRow {
            op: op.into(),
            bytes,
            seconds: secs,
            gib_per_s: gib_s(bytes, secs),
            ratio_to_local: ratio,
            transferred_bytes: recv,
            tls_group: if tls { group() } else { None },
        });
    };

    let local_put = put(&local, "psi", &state)?;
    row("local put (commit)", local_put, None, None, false);
    let client = Repository::open(&url)?;
    let r0 = received();
    let served_put = put(&client, "psi", &state)?;
    row(
        "served put over TLS (commit)",
        served_put,
        Some(local_put / served_put),
        Some(received() - r0),
        true,
    );
    let local_get = get(local.address(), "psi", &state)?;
    row("local get (cold)", local_get, None, None, false);
    let served_get = get(&url, "psi", &state)?;
    row(
        "served get over TLS (cold)",
        served_get,
        Some(local_get / served_get),
        None,
        true,
    );
    // One chunk changes: about one chunk goes over.
    let chunk = client.config().chunk_size as usize;
    let mid = state.len() / 2 / chunk * chunk;
    for b in &mut state[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let r0 = received();
    let t = put(&client, "psi", &state)?;
    row(
        "served put, one chunk changed",
        t,
        None,
        Some(received() - r0),
        true,
    );
    // push and pull of new data (every chunk new).
    for (i, c) in state.chunks_mut(chunk).enumerate() {
        c[8..16].copy_from_slice(&(i as u64 ^ 0x00f0_5a5a_a5a5_0f00).to_le_bytes());
    }
    let local_put2 = put(&local, "pushed", &state)?;
    let r0 = received();
    settle();
    let t = Instant::now();
    local.push(&url, &["main:pushed".to_string()], &Default::default())?;
    let push = t.elapsed().as_secs_f64();
    row(
        "push local -> served over TLS",
        push,
        Some(local_put2 / push),
        Some(received() - r0),
        true,
    );
    // The destination of the pull already holds the served repository's main (untimed), so
    // the timed pull copies exactly the new state, as the push did.
    let other = Repository::init(&s("pulled")?, local.config_for_copy())?;
    other.pull(&url, &["main:base".to_string()], &Default::default())?;
    // The server merges the pushed packs in the background; the pull is timed after that.
    while server.state.repos.values().any(|r| r.merging()) {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    settle();
    let t = Instant::now();
    let report = other.pull(&url, &["pushed:pulled".to_string()], &Default::default())?;
    let pull = t.elapsed().as_secs_f64();
    row(
        "pull served -> local over TLS",
        pull,
        Some(local_put2 / pull),
        Some(report.bytes_sent),
        true,
    );
    anyhow::ensure!(
        other.reader("pulled", "pushed")?.read_all()? == state,
        "the pulled state differs"
    );
    drop(server);

    out.emit(serde_json::to_value(&rows)?, || {
        let mut s = format!(
            "{} of incompressible complex128 amplitudes, qstore serve on loopback TLS vs a local repository (this run; ratio = local time / served time):\n",
            human_bytes(bytes as u128)
        );
        s += &format!(
            "{:<32} {:>9} {:>9} {:>9} {:>12}  {}\n",
            "operation", "seconds", "GiB/s", "vs local", "sent", "TLS group"
        );
        for r in &rows {
            s += &format!(
                "{:<32} {:>9.2} {:>9.3} {:>9} {:>12}  {}\n",
                r.op,
                r.seconds,
                r.gib_per_s,
                r.ratio_to_local
                    .map(|x| format!("{x:.2}x"))
                    .unwrap_or_else(|| "-".into()),
                r.transferred_bytes
                    .map(|b| human_bytes(b as u128))
                    .unwrap_or_else(|| "-".into()),
                r.tls_group.clone().unwrap_or_else(|| "-".into())
            );
        }
        s.trim_end().to_string()
    });
    if let Some(p) = json_out {
        std::fs::write(p, serde_json::to_vec_pretty(&rows)?)?;
    }
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
