//! `qstore bench --history`: what history costs as a repository grows, measured in one run.
//!
//! Part 1, one directory at growing sizes (10^3 .. 10^6 entries by default): `traj/` is
//! filled in bulk commits of distinct 16-amplitude states (no tags), 100 branches and tags are
//! created, then at each size a number of single-path commits is made, each by a fresh
//! `qstore` process (open included), which reports its open and commit times and what it read
//! and wrote (tree nodes, objects, metadata bytes: trees + commit + manifest + the framing of
//! records and pack, everything but the state's own chunk bytes). Beside them, the baseline: a
//! 256-byte file written durably (write, fdatasync, rename, directory fsync) in this process,
//! the least a durable save costs on this disk. Then, at each size, paths at random commits
//! are read by fresh handles, counting the objects read, and the files on disk are counted
//! after the automatic merges.
//!
//! Part 2, the noise-trajectory workload of the history issue: 2,000 commits of one
//! 16-amplitude state each into a fresh repository, in one process, reporting repository
//! bytes, files and time at 100, 500, 1,000 and 2,000 commits.

use crate::output::{Out, human_bytes};
use anyhow::{Context, Result, bail};
use qstore::{ArrayInfo, CommitOptions, DType, IoCounters, PutOptions, RepoConfig, Repository};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

/// What one single-path commit by a fresh process reported (`qstore bench-commit`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OneCommit {
    pub open_s: f64,
    pub commit_s: f64,
    pub io: IoCounters,
}

/// The figures at one size.
#[derive(Clone, Debug, Serialize)]
pub struct SizeRow {
    pub entries: u64,
    pub tree_depth: u64,
    pub commits: usize,
    /// Open + commit inside the fresh process, median and 90th percentile.
    pub latency_p50_s: f64,
    pub latency_p90_s: f64,
    /// Medians of the two parts: opening the repository, and the transaction and commit.
    pub open_p50_s: f64,
    pub commit_p50_s: f64,
    /// The whole fresh process (start, open, commit, exit), median.
    pub process_p50_s: f64,
    /// The durable 256-byte file write of this run, median.
    pub baseline_p50_s: f64,
    /// latency_p50 / baseline_p50.
    pub ratio_to_baseline: f64,
    /// latency_p50 / latency_p50 at the smallest size.
    pub ratio_to_smallest: f64,
    pub metadata_bytes_p50: u64,
    pub metadata_bytes_max: u64,
    pub tree_nodes_written_max: u64,
    pub objects_read_p50: u64,
    pub objects_read_max: u64,
    /// Objects read by a fresh handle to find one path at a random commit (commit + nodes).
    pub read_path_objects_max: u64,
    pub files: u64,
    pub packs: u64,
    pub repo_bytes: u64,
}

/// The trajectory workload at one commit count.
#[derive(Clone, Debug, Serialize)]
pub struct TrajectoryRow {
    pub commits: u64,
    pub repo_bytes: u64,
    pub files: u64,
    pub seconds: f64,
}

/// Everything the history benchmark measured.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub sizes: Vec<SizeRow>,
    pub trajectories: Vec<TrajectoryRow>,
}

fn info() -> ArrayInfo {
    ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![16],
    }
}

/// A distinct, normalised 16-amplitude state for each `i`.
fn amps(i: u64) -> Vec<u8> {
    let mut v = [0f64; 32];
    let a = ((i % 1000) as f64 + 1.0) * 1e-4;
    v[0] = (1.0 - a * a).sqrt();
    v[2 + 2 * (i % 15) as usize] = a;
    v[1] = (i / 1000) as f64 * 1e-12;
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// Commit one new path in a fresh handle; the hidden `qstore bench-commit` runs this in a
/// fresh process.
pub fn commit_one(address: &str, path: &str, k: u64) -> Result<OneCommit> {
    let t0 = Instant::now();
    let repo = Repository::open(address)?;
    let open_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut tx = repo.transaction("main")?;
    tx.put(path, &info(), &amps(k), &PutOptions::default())?;
    tx.commit(CommitOptions {
        message: format!("one {path}"),
        ..Default::default()
    })?;
    Ok(OneCommit {
        open_s,
        commit_s: t1.elapsed().as_secs_f64(),
        io: repo.io_counters(),
    })
}

fn percentile(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn median_u64(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

/// One durable small-file write: the baseline of a commit.
fn durable_write(dir: &Path, k: u64) -> Result<f64> {
    let t = Instant::now();
    let tmp = dir.join(format!("tmp-{k}"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&amps(k))?;
    f.sync_data()?;
    drop(f);
    std::fs::rename(&tmp, dir.join(format!("f-{}", k % 64)))?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(t.elapsed().as_secs_f64())
}

fn dir_bytes_and_files(dir: &Path) -> (u64, u64) {
    let (mut b, mut n) = (0, 0);
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            match e.file_type() {
                Ok(t) if t.is_dir() => {
                    let (x, y) = dir_bytes_and_files(&e.path());
                    b += x;
                    n += y;
                }
                Ok(_) => {
                    b += e.metadata().map(|m| m.len()).unwrap_or(0);
                    n += 1;
                }
                Err(_) => {}
            }
        }
    }
    (b, n)
}

fn fill(repo: &Repository, from: u64, to: u64, quiet: bool) -> Result<()> {
    const BATCH: u64 = 50_000;
    let t_fill = Instant::now();
    let mut i = from;
    while i < to {
        let end = (i + BATCH).min(to);
        let mut tx = repo.transaction("main")?;
        for k in i..end {
            tx.put(
                &format!("traj/t{k:07}"),
                &info(),
                &amps(k),
                &PutOptions::default(),
            )?;
        }
        tx.commit(CommitOptions {
            message: format!("bulk {i}..{end}"),
            ..Default::default()
        })?;
        if !quiet {
            eprintln!(
                "bench --history: filled {end} entries ({:.1} s)",
                t_fill.elapsed().as_secs_f64()
            );
        }
        i = end;
    }
    Ok(())
}

/// Run the history benchmark in `dir` (emptied first).
pub fn run(
    dir: &Path,
    sizes: &[u64],
    commits: usize,
    json: Option<&PathBuf>,
    out: &Out,
) -> Result<()> {
    if sizes.is_empty() || commits == 0 {
        bail!(qstore::Error::InvalidArgument(
            "give at least one size and one commit per size".into()
        ));
    }
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir)?;
    let exe = std::env::current_exe().context("finding the qstore binary")?;
    let repo_dir = dir.join("repo");
    let address = repo_dir
        .to_str()
        .context("non-UTF-8 directory")?
        .to_string();
    let repo = Repository::init(&address, RepoConfig::default())?;
    let base_dir = dir.join("baseline");
    std::fs::create_dir_all(&base_dir)?;
    let mut rows: Vec<SizeRow> = Vec::new();
    let mut filled = 0;
    let mut sorted = sizes.to_vec();
    sorted.sort_unstable();
    for (si, &n) in sorted.iter().enumerate() {
        fill(&repo, filled, n, out.json)?;
        filled = n;
        if si == 0 {
            for b in 0..50 {
                repo.create_branch(&format!("branch-{b:02}"), "main")?;
                repo.create_tag(&format!("tag-{b:02}"), "main")?;
            }
        }
        let head = repo.branch_head("main")?;
        let root = repo.root_of(&head)?;
        let depth = repo.tree_node(&root)?.level as u64 + 1;
        let (mut lat, mut proc_s, mut base) = (Vec::new(), Vec::new(), Vec::new());
        let (mut opens, mut commits_s) = (Vec::new(), Vec::new());
        let (mut meta, mut nodes, mut reads) = (Vec::new(), Vec::new(), Vec::new());
        for c in 0..commits {
            let k = n * 10 + c as u64;
            let t = Instant::now();
            let o = Command::new(&exe)
                .args(["--repo", &address, "bench-commit"])
                .arg(format!("traj/t{k:07}x"))
                .arg(k.to_string())
                .output()
                .context("running qstore bench-commit")?;
            proc_s.push(t.elapsed().as_secs_f64());
            if !o.status.success() {
                bail!(
                    "bench-commit failed: {}",
                    String::from_utf8_lossy(&o.stderr)
                );
            }
            let one: OneCommit = serde_json::from_slice(&o.stdout)?;
            lat.push(one.open_s + one.commit_s);
            opens.push(one.open_s);
            commits_s.push(one.commit_s);
            meta.push(one.io.metadata_bytes_written());
            nodes.push(one.io.tree_nodes_written);
            reads.push(one.io.objects_read);
            base.push(durable_write(&base_dir, k)?);
        }
        // Reading one path at random commits, by fresh handles.
        let log = repo.log("main", usize::MAX)?;
        let mut read_max = 0;
        // Every commit but the first holds the first fill (all leaves are at the same depth, so
        // which path is read does not matter).
        for r in 0..20u64 {
            let fresh = Repository::open(&address)?;
            let (cid, _) = &log[(r as usize * 7919) % (log.len() - 1)];
            let k = (r * 104_729) % sorted[0];
            let _ = fresh.state(&cid.to_hex(), &format!("traj/t{k:07}"))?;
            read_max = read_max.max(fresh.io_counters().objects_read);
        }
        let (repo_bytes, files) = dir_bytes_and_files(&repo_dir);
        let packs = repo.storage().list("packs/")?.len() as u64;
        let p50 = percentile(&mut lat.clone(), 0.5);
        let b50 = percentile(&mut base, 0.5);
        let row = SizeRow {
            entries: n,
            tree_depth: depth,
            commits,
            latency_p50_s: p50,
            latency_p90_s: percentile(&mut lat, 0.9),
            open_p50_s: percentile(&mut opens, 0.5),
            commit_p50_s: percentile(&mut commits_s, 0.5),
            process_p50_s: percentile(&mut proc_s, 0.5),
            baseline_p50_s: b50,
            ratio_to_baseline: p50 / b50,
            ratio_to_smallest: rows.first().map_or(1.0, |r0| p50 / r0.latency_p50_s),
            metadata_bytes_p50: median_u64(&mut meta.clone()),
            metadata_bytes_max: meta.iter().copied().max().unwrap_or(0),
            tree_nodes_written_max: nodes.iter().copied().max().unwrap_or(0),
            objects_read_p50: median_u64(&mut reads.clone()),
            objects_read_max: reads.iter().copied().max().unwrap_or(0),
            read_path_objects_max: read_max,
            files,
            packs,
            repo_bytes,
        };
        if !out.json {
            eprintln!(
                "bench --history: {n} entries: commit p50 {:.2} ms",
                p50 * 1e3
            );
        }
        rows.push(row);
    }
    let trajectories = trajectory_workload(&dir.join("trajectories"))?;
    let report = Report {
        sizes: rows,
        trajectories,
    };
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_vec_pretty(&report)?)?;
    }
    if out.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_report(&report);
    }
    // QSTORE_BENCH_KEEP=1 keeps the repositories for a closer look.
    if std::env::var_os("QSTORE_BENCH_KEEP").is_none() {
        let _ = std::fs::remove_dir_all(dir);
    }
    Ok(())
}

/// 2,000 commits of one 16-amplitude state each, in one process.
fn trajectory_workload(dir: &Path) -> Result<Vec<TrajectoryRow>> {
    let address = dir.to_str().context("non-UTF-8 directory")?.to_string();
    let repo = Repository::init(&address, RepoConfig::default())?;
    let t = Instant::now();
    let mut out = Vec::new();
    for k in 0..2_000u64 {
        let mut tx = repo.transaction("main")?;
        tx.put(
            &format!("traj/t{k:05}"),
            &info(),
            &amps(k),
            &PutOptions::default(),
        )?;
        tx.commit(CommitOptions::default())?;
        if [100, 500, 1_000, 2_000].contains(&(k + 1)) {
            let (repo_bytes, files) = dir_bytes_and_files(dir);
            out.push(TrajectoryRow {
                commits: k + 1,
                repo_bytes,
                files,
                seconds: t.elapsed().as_secs_f64(),
            });
        }
    }
    Ok(out)
}

fn print_report(r: &Report) {
    println!("\none directory, single-path commits by fresh processes (open included):");
    println!(
        "{:>9} {:>5} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>8} {:>10} {:>10} {:>6} {:>7} {:>7} {:>6} {:>10}",
        "entries",
        "depth",
        "p50 ms",
        "open",
        "commit",
        "p90 ms",
        "vs 1st",
        "vs fsync",
        "proc ms",
        "meta p50",
        "meta max",
        "nodes",
        "reads",
        "path rd",
        "files",
        "repo"
    );
    for s in &r.sizes {
        println!(
            "{:>9} {:>5} {:>7.2} {:>7.2} {:>7.2} {:>7.2} {:>7.2}x {:>8.2}x {:>8.2} {:>10} {:>10} {:>6} {:>7} {:>7} {:>6} {:>10}",
            s.entries,
            s.tree_depth,
            s.latency_p50_s * 1e3,
            s.open_p50_s * 1e3,
            s.commit_p50_s * 1e3,
            s.latency_p90_s * 1e3,
            s.ratio_to_smallest,
            s.ratio_to_baseline,
            s.process_p50_s * 1e3,
            human_bytes(s.metadata_bytes_p50 as u128),
            human_bytes(s.metadata_bytes_max as u128),
            s.tree_nodes_written_max,
            s.objects_read_max,
            s.read_path_objects_max,
            s.files,
            human_bytes(s.repo_bytes as u128),
        );
    }
    println!(
        "(p50: open + commit in the fresh process, median, with the medians of its two parts; \
         vs 1st: p50 over the smallest size's; vs fsync: p50 over a durable 256-byte file write \
         in this run, {:.2} ms at the last size; nodes: most tree nodes one commit wrote; reads: \
         most objects open + commit read; path rd: most objects a fresh handle read to find one \
         path at a random commit; files: on disk after automatic merges, 100 branches and tags)",
        r.sizes.last().map_or(0.0, |s| s.baseline_p50_s * 1e3)
    );
    println!("\n2,000 commits of one 16-amplitude state each (one process):");
    println!(
        "{:>8} {:>12} {:>7} {:>9}",
        "commits", "repository", "files", "seconds"
    );
    for t in &r.trajectories {
        println!(
            "{:>8} {:>12} {:>7} {:>9.2}",
            t.commits,
            human_bytes(t.repo_bytes as u128),
            t.files,
            t.seconds
        );
    }
}
