//! `qstore bench --repo s3://...`: qstore on a remote repository against the object store
//! itself, in one run. The baseline uploads the same bytes as one raw object with a multipart
//! upload (16 MiB parts, four in flight) and reads them back with parallel ranged GETs of
//! 16 MiB; qstore then puts the state as a durable commit and reads it back through a fresh
//! handle with no disk cache (every chunk fetched). Last, one chunk of the state changes and
//! it is put again, to show what deduplication uploads. Then the same amount of new data is
//! committed to a local repository and sent with `qstore push` (against the same raw
//! multipart PUT), and pushed again after one chunk changed.

use crate::output::{Out, human_bytes};
use anyhow::{Context, Result};
use qstore::storage::Storage;
use qstore::{ArrayInfo, CommitOptions, DType, PutOptions, Repository};
use rayon::prelude::*;
use serde::Serialize;
use std::time::Instant;

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct RemoteRow {
    pub op: String,
    pub bytes: u64,
    pub seconds: f64,
    pub gib_per_s: f64,
    /// Throughput over the raw baseline of the same direction, this run.
    pub ratio: Option<f64>,
    /// Bytes uploaded (stored) by the operation, where it is a put.
    pub uploaded_bytes: Option<u64>,
}

const RANGE: u64 = 16 << 20;

fn gib_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1u64 << 30) as f64 / secs.max(1e-9)
}

/// Run the benchmark against the repository at `address` (created when missing).
pub fn run(
    address: &str,
    bytes: u64,
    json_out: Option<&std::path::PathBuf>,
    out: &Out,
) -> Result<()> {
    let a = qstore_cluster::S3Address::parse(address)?;
    let raw = qstore_cluster::s3::S3Storage::connect(&a)?;
    let mut state = vec![0u8; bytes as usize];
    crate::bench::generate("dense", &mut state);
    let mut rows = Vec::new();

    // Baseline: the same bytes as one object, multipart up, ranged GETs down.
    let key = format!("bench/raw-{:016x}", rand::random::<u64>());
    let t = Instant::now();
    let mut w = raw.writer(&key)?;
    w.write_all(&state)?;
    w.finish()?;
    let raw_put = t.elapsed().as_secs_f64();
    let mut back = vec![0u8; bytes as usize];
    let t = Instant::now();
    back.par_chunks_mut(RANGE as usize)
        .enumerate()
        .try_for_each(|(i, part)| raw.read_at(&key, i as u64 * RANGE, part))?;
    let raw_get = t.elapsed().as_secs_f64();
    anyhow::ensure!(back == state, "the raw object read back differs");
    raw.delete(&key)?;
    rows.push(RemoteRow {
        op: "raw multipart PUT".into(),
        bytes,
        seconds: raw_put,
        gib_per_s: gib_s(bytes, raw_put),
        ratio: None,
        uploaded_bytes: Some(bytes),
    });
    rows.push(RemoteRow {
        op: "raw ranged GET".into(),
        bytes,
        seconds: raw_get,
        gib_per_s: gib_s(bytes, raw_get),
        ratio: None,
        uploaded_bytes: None,
    });

    // qstore: a durable commit, then a cold read through a fresh handle.
    let repo = Repository::open_or_init(address).context("opening the benchmark repository")?;
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![bytes / 16],
    };
    let path = format!("bench/state-{:08x}", rand::random::<u32>());
    let put = |repo: &Repository, data: &[u8], msg: &str| -> Result<(f64, u64)> {
        let t = Instant::now();
        let mut tx = repo.transaction("main")?;
        tx.put(&path, &info, data, &PutOptions::default())?;
        let stats = tx.stats();
        tx.commit(CommitOptions {
            message: msg.into(),
            ..Default::default()
        })?;
        Ok((t.elapsed().as_secs_f64(), stats.new_stored_bytes))
    };
    let (q_put, uploaded) = put(&repo, &state, "bench: put")?;
    rows.push(RemoteRow {
        op: "qstore put (commit)".into(),
        bytes,
        seconds: q_put,
        gib_per_s: gib_s(bytes, q_put),
        ratio: Some(raw_put / q_put),
        uploaded_bytes: Some(uploaded),
    });
    let cold = qstore_cluster::with_refs(address, None);
    let cold = if cold.contains("cache_bytes=") {
        cold
    } else {
        format!("{cold}&cache_bytes=0")
    };
    let fresh = Repository::open(&cold)?;
    fresh.set_cache_bytes(0);
    let t = Instant::now();
    let mut r = fresh.reader("main", &path)?;
    let n = r.entry().elements();
    r.read_elements(0, n, &mut back)?;
    let q_get = t.elapsed().as_secs_f64();
    anyhow::ensure!(back == state, "the state read back differs");
    rows.push(RemoteRow {
        op: "qstore get (cold)".into(),
        bytes,
        seconds: q_get,
        gib_per_s: gib_s(bytes, q_get),
        ratio: Some(raw_get / q_get),
        uploaded_bytes: None,
    });

    // Deduplication: one chunk changes, about one chunk is uploaded.
    let chunk = repo.config().chunk_size as usize;
    let mid = state.len() / 2 / chunk * chunk;
    for b in &mut state[mid..mid + 64] {
        *b ^= 0x5a;
    }
    let (q_put2, uploaded2) = put(&repo, &state, "bench: one chunk changed")?;
    rows.push(RemoteRow {
        op: "qstore put, one chunk changed".into(),
        bytes,
        seconds: q_put2,
        gib_per_s: gib_s(bytes, q_put2),
        ratio: Some(raw_put / q_put2),
        uploaded_bytes: Some(uploaded2),
    });

    // Push: the same amount of new data committed to a local repository (same chunk size),
    // then `qstore push` to this one; again after one chunk changed.
    for (i, c) in state.chunks_mut(chunk).enumerate() {
        c[8..16].copy_from_slice(&(i as u64 ^ 0x00f0_5a5a_a5a5_0f00).to_le_bytes());
    }
    let tmp = tempfile::Builder::new()
        .prefix("qstore-bench-push")
        .tempdir()?;
    let local = Repository::init(
        tmp.path().join("local").to_str().context("temp path")?,
        repo.config_for_copy(),
    )?;
    let lput = |data: &[u8]| -> Result<()> {
        let mut tx = local.transaction("main")?;
        tx.put(&path, &info, data, &PutOptions::default())?;
        tx.commit(CommitOptions::default())?;
        Ok(())
    };
    let branch = format!("main:bench-push-{:08x}", rand::random::<u32>());
    let push = || -> Result<(f64, u64)> {
        let t = Instant::now();
        let r = local.push(address, std::slice::from_ref(&branch), &Default::default())?;
        Ok((t.elapsed().as_secs_f64(), r.bytes_sent))
    };
    lput(&state)?;
    let (q_push, sent) = push()?;
    rows.push(RemoteRow {
        op: "qstore push (local -> S3)".into(),
        bytes,
        seconds: q_push,
        gib_per_s: gib_s(bytes, q_push),
        ratio: Some(raw_put / q_push),
        uploaded_bytes: Some(sent),
    });
    for b in &mut state[mid..mid + 64] {
        *b ^= 0x33;
    }
    lput(&state)?;
    let (q_push2, sent2) = push()?;
    rows.push(RemoteRow {
        op: "qstore push, one chunk changed".into(),
        bytes,
        seconds: q_push2,
        gib_per_s: gib_s(bytes, q_push2),
        ratio: Some(raw_put / q_push2),
        uploaded_bytes: Some(sent2),
    });

    out.emit(serde_json::to_value(&rows)?, || {
        let mut s = format!(
            "{} of incompressible complex128 amplitudes on {} (this run):\n",
            human_bytes(bytes as u128),
            raw.name()
        );
        s += &format!(
            "{:<32} {:>9} {:>9} {:>8} {:>12}\n",
            "operation", "seconds", "GiB/s", "vs raw", "uploaded"
        );
        for r in &rows {
            s += &format!(
                "{:<32} {:>9.2} {:>9.3} {:>8} {:>12}\n",
                r.op,
                r.seconds,
                r.gib_per_s,
                r.ratio
                    .map(|x| format!("{x:.2}x"))
                    .unwrap_or_else(|| "-".into()),
                r.uploaded_bytes
                    .map(|b| human_bytes(b as u128))
                    .unwrap_or_else(|| "-".into())
            );
        }
        s.trim_end().to_string()
    });
    if let Some(p) = json_out {
        std::fs::write(p, serde_json::to_vec_pretty(&rows)?)?;
    }
    Ok(())
}
