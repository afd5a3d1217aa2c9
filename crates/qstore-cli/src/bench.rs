//! `qstore bench`: qstore against the hardware, measured in one run. For each state class
//! (dense incompressible, QFT-like, half zeros, GHZ) and size, it times a raw sequential write
//! of the same bytes with fdatasync (the physical baseline), a cold and a warm raw read, a
//! durable qstore put, a cold and a warm qstore get into the caller's buffer, and the stall of
//! an asynchronous checkpoint against one copy of the state; it records the peak memory
//! beyond the caller's buffers and the stored size, prints a table of throughput and ratios to
//! the baseline, and can write the rows as JSON. It also times the opt-in lossy puts
//! (`max-infidelity` 1e-6 and 1e-3: stored size and fidelity) and `repack --recompress`
//! (zstd over what the put stored with lz4: the stored size after it).

use crate::output::{Out, human_bytes};
use anyhow::{Context, Result, bail};
use qstore::{ArrayInfo, CommitOptions, DType, PutOptions, RepoConfig, Repository};
use rayon::prelude::*;
use serde::Serialize;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The state classes of the benchmark.
pub const CLASSES: [&str; 4] = ["dense", "qft", "half-zero", "ghz"];

/// One measured row.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub class: String,
    pub bytes: u64,
    pub op: String,
    pub seconds: f64,
    pub gib_per_s: f64,
    /// Throughput over the baseline of the same kind in this run (write: raw write; cold
    /// get: raw cold read; warm get: raw warm read; async stall: one memcpy of the state).
    pub ratio: Option<f64>,
    pub stored_bytes: Option<u64>,
    /// Peak resident memory beyond what the process held before the operation.
    pub peak_extra_bytes: Option<u64>,
    /// Chunks written per codec (raw, shuffle+lz4, shuffle+zstd), for puts.
    pub codecs: Option<[u64; 3]>,
    /// The fidelity a lossy put achieved.
    pub fidelity: Option<f64>,
}

/// Parse `64K`, `256M`, `1G`, `4G`.
pub fn parse_size(s: &str) -> Result<u64> {
    let (num, mult) = match s.chars().last() {
        Some('K') | Some('k') => (&s[..s.len() - 1], 1u64 << 10),
        Some('M') | Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('G') | Some('g') => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v: u64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    let b = v * mult;
    if b < 64 || !b.is_power_of_two() {
        bail!(qstore::Error::InvalidArgument(format!(
            "size {s} must be a power of two of at least 64 bytes (2^n complex128 amplitudes)"
        )));
    }
    Ok(b)
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fill `buf` (complex128 amplitudes) with a state of `class`.
pub(crate) fn generate(class: &str, buf: &mut [u8]) {
    let dim = (buf.len() / 16) as u64;
    let scale = 1.0 / (dim as f64).sqrt();
    let uniform = |i: u64| (splitmix(i) >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    buf.par_chunks_mut(1 << 20)
        .enumerate()
        .for_each(|(c, part)| {
            let first = c as u64 * (1 << 16);
            for (k, a) in part.chunks_exact_mut(16).enumerate() {
                let i = first + k as u64;
                let (re, im) = match class {
                    "dense" => (uniform(2 * i) * scale, uniform(2 * i + 1) * scale),
                    "qft" => {
                        let ph = 2.0 * std::f64::consts::PI * ((5 * i) % dim) as f64 / dim as f64;
                        (scale * ph.cos(), scale * ph.sin())
                    }
                    "half-zero" if i < dim / 2 => {
                        (uniform(2 * i) * scale, uniform(2 * i + 1) * scale)
                    }
                    "ghz" if i == 0 || i == dim - 1 => (std::f64::consts::FRAC_1_SQRT_2, 0.0),
                    _ => (0.0, 0.0),
                };
                a[..8].copy_from_slice(&re.to_le_bytes());
                a[8..].copy_from_slice(&im.to_le_bytes());
            }
        });
}

fn status_kib(field: &str) -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Measure `f`: seconds and peak resident bytes beyond the resident size before it.
fn measure<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, f64, Option<u64>)> {
    // Writing 5 to clear_refs resets the peak resident size (Linux).
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS:");
    let t = Instant::now();
    let v = f()?;
    let secs = t.elapsed().as_secs_f64();
    let peak = if reset { status_kib("VmHWM:") } else { None };
    let extra = match (peak, before) {
        (Some(p), Some(b)) => Some(p.saturating_sub(b) * 1024),
        _ => None,
    };
    Ok((v, secs, extra))
}

/// Ask the kernel to drop the page cache of a file (its pages are clean: it was fsynced).
fn drop_cache(path: &Path) -> Result<()> {
    let f = File::open(path)?;
    let _ = f.sync_all();
    // SAFETY: posix_fadvise only reads its integer arguments; the descriptor is open.
    let rc = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    if rc != 0 {
        bail!("posix_fadvise failed on {}: {rc}", path.display());
    }
    Ok(())
}

fn drop_cache_dir(dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        if e.file_type()?.is_file() {
            drop_cache(&e.path())?;
        }
    }
    Ok(())
}

fn read_file_into(path: &Path, out: &mut [u8]) -> Result<()> {
    let mut f = File::open(path)?;
    for part in out.chunks_mut(8 << 20) {
        f.read_exact(part)?;
    }
    Ok(())
}

fn row(class: &str, bytes: u64, op: &str, secs: f64, ratio: Option<f64>) -> Row {
    Row {
        class: class.into(),
        bytes,
        op: op.into(),
        seconds: secs,
        gib_per_s: bytes as f64 / secs / (1u64 << 30) as f64,
        ratio,
        stored_bytes: None,
        peak_extra_bytes: None,
        codecs: None,
        fidelity: None,
    }
}

fn bench_one(
    dir: &Path,
    class: &str,
    bytes: u64,
    state: &mut [u8],
    out: &mut [u8],
) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    generate(class, state);
    let n = (bytes / 16).trailing_zeros();
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![bytes / 16],
    };
    // Raw baseline: sequential write with fdatasync (best of two, like the put below), then
    // cold and warm reads.
    let raw = dir.join("raw.bin");
    let mut raw_w = f64::INFINITY;
    for _ in 0..2 {
        let _ = std::fs::remove_file(&raw);
        let (_, s, _) = measure(|| {
            let mut f = File::create(&raw)?;
            for part in state.chunks(8 << 20) {
                f.write_all(part)?;
            }
            f.sync_data()?;
            Ok(())
        })?;
        raw_w = raw_w.min(s);
    }
    rows.push(row(class, bytes, "raw write+fdatasync", raw_w, Some(1.0)));
    drop_cache(&raw)?;
    let (_, raw_cold, _) = measure(|| read_file_into(&raw, out))?;
    rows.push(row(class, bytes, "raw read cold", raw_cold, Some(1.0)));
    let (_, raw_warm, _) = measure(|| read_file_into(&raw, out))?;
    rows.push(row(class, bytes, "raw read warm", raw_warm, Some(1.0)));
    std::fs::remove_file(&raw)?;

    // qstore put, durable (best of two, each into a fresh repository).
    let repo_dir = dir.join(format!("repo-{class}-{n}"));
    let addr = repo_dir
        .to_str()
        .context("bench dir is not UTF-8")?
        .to_string();
    let mut best: Option<(f64, Option<u64>, [u64; 3])> = None;
    let mut repo = None;
    for _ in 0..2 {
        drop(repo.take());
        let _ = std::fs::remove_dir_all(&repo_dir);
        let r = Repository::init(&addr, RepoConfig::default())?;
        let (codecs, s, mem) = measure(|| {
            let mut tx = r.transaction("main")?;
            tx.put("s", &info, state, &PutOptions::default())?;
            let codecs = tx.stats().codec_counts;
            tx.commit(CommitOptions::default())?;
            Ok(codecs)
        })?;
        if best.is_none_or(|b| s < b.0) {
            best = Some((s, mem, codecs));
        }
        repo = Some(r);
    }
    let (put_s, put_mem, codecs) = best.context("two puts ran")?;
    let repo = repo.context("a repository")?;
    let pack_bytes = |repo: &Repository| -> Result<u64> {
        Ok(repo.storage().list("packs/")?.iter().map(|b| b.size).sum())
    };
    let stored = pack_bytes(&repo)?;
    let mut r = row(
        class,
        bytes,
        "qstore put (durable)",
        put_s,
        Some(raw_w / put_s),
    );
    r.stored_bytes = Some(stored);
    r.peak_extra_bytes = put_mem;
    r.codecs = Some(codecs);
    rows.push(r);

    // Lossy puts (opt-in), each into its own repository: size and fidelity.
    for (label, mode) in [
        ("qstore put lossy 1e-6", "max-infidelity=1e-6"),
        ("qstore put lossy 1e-3", "max-infidelity=1e-3"),
    ] {
        let dir = dir.join(format!("lossy-{class}-{n}"));
        let _ = std::fs::remove_dir_all(&dir);
        let r = Repository::init(
            dir.to_str().context("bench dir is not UTF-8")?,
            RepoConfig::default(),
        )?;
        let opts = PutOptions {
            lossy: Some(mode.parse()?),
            ..Default::default()
        };
        let (fid, s, mem) = measure(|| {
            let mut tx = r.transaction("main")?;
            let e = tx.put("s", &info, state, &opts)?;
            tx.commit(CommitOptions::default())?;
            Ok(e.lossy.map_or(1.0, |l| l.fidelity))
        })?;
        let mut row = row(class, bytes, label, s, Some(raw_w / s));
        row.stored_bytes = Some(pack_bytes(&r)?);
        row.peak_extra_bytes = mem;
        row.fidelity = Some(fid);
        rows.push(row);
        drop(r);
        std::fs::remove_dir_all(&dir)?;
    }

    // Recompression of what the put stored with lz4 (what pack merges do).
    let (_, s, _) = measure(|| Ok(repo.repack_recompress()?))?;
    let mut r = row(class, bytes, "repack --recompress", s, None);
    r.stored_bytes = Some(pack_bytes(&repo)?);
    rows.push(r);

    // qstore get into the caller's buffer: cold (page cache dropped, fresh process cache),
    // then warm.
    drop(repo);
    drop_cache_dir(&repo_dir.join("packs"))?;
    let repo = Repository::open(&addr)?;
    let elems = bytes / 16;
    let (_, get_cold, get_mem) =
        measure(|| Ok(repo.reader("main", "s")?.read_elements(0, elems, out)?))?;
    if out != state {
        bail!("bench: {class} read back differs");
    }
    let mut r = row(
        class,
        bytes,
        "qstore get cold",
        get_cold,
        Some(raw_cold / get_cold),
    );
    r.peak_extra_bytes = get_mem;
    rows.push(r);
    let (_, get_warm, _) =
        measure(|| Ok(repo.reader("main", "s")?.read_elements(0, elems, out)?))?;
    rows.push(row(
        class,
        bytes,
        "qstore get warm",
        get_warm,
        Some(raw_warm / get_warm),
    ));

    // Asynchronous checkpoint: how long the caller is stalled, against one memcpy.
    let (_, copy_s, _) = measure(|| {
        out.copy_from_slice(state);
        Ok(())
    })?;
    // The first checkpoint allocates the staging buffer; a checkpoint loop reuses it, so the
    // second one shows the steady-state stall.
    let mut stall = 0.0;
    for k in 0..2 {
        let (pending, s, _) = measure(|| {
            Ok(repo.put_async(
                "main",
                &format!("ckpt{k}"),
                &info,
                state,
                PutOptions::default(),
                CommitOptions::default(),
            )?)
        })?;
        pending.wait()?;
        stall = s;
    }
    rows.push(row(
        class,
        bytes,
        "async put: caller stall",
        stall,
        Some(copy_s / stall),
    ));
    drop(repo);
    std::fs::remove_dir_all(&repo_dir)?;
    Ok(rows)
}

/// Run the benchmark.
pub fn run(
    dir: &Path,
    sizes: &[u64],
    classes: &[String],
    json: Option<&PathBuf>,
    out: &Out,
) -> Result<()> {
    for c in classes {
        if !CLASSES.contains(&c.as_str()) {
            bail!(qstore::Error::InvalidArgument(format!(
                "unknown class {c:?} (use {})",
                CLASSES.join(", ")
            )));
        }
    }
    std::fs::create_dir_all(dir)?;
    let mut all = Vec::new();
    for &bytes in sizes {
        let mut state = vec![0u8; bytes as usize];
        let mut buf = vec![0u8; bytes as usize];
        buf.fill(1); // make the caller's output buffer resident before measuring
        let mut rows = Vec::new();
        for class in classes {
            if !out.json {
                eprintln!("bench: {class} {}", human_bytes(bytes as u128));
            }
            rows.extend(bench_one(dir, class, bytes, &mut state, &mut buf)?);
        }
        if !out.json {
            print_table(bytes, &rows);
        }
        all.extend(rows);
    }
    if let Some(p) = json {
        std::fs::write(p, serde_json::to_vec_pretty(&all)?)?;
    }
    if out.json {
        println!("{}", serde_json::to_string_pretty(&all)?);
    }
    let _ = std::fs::remove_dir(dir);
    Ok(())
}

fn print_table(bytes: u64, rows: &[Row]) {
    println!(
        "\nstate size {} (complex128, {} qubits)",
        human_bytes(bytes as u128),
        (bytes / 16).trailing_zeros()
    );
    println!(
        "{:<10} {:<24} {:>9} {:>9} {:>8} {:>11} {:>11}  chunks raw/lz4/zstd, 1 - fidelity",
        "class", "operation", "seconds", "GiB/s", "ratio", "stored", "peak extra"
    );
    for r in rows {
        println!(
            "{:<10} {:<24} {:>9.3} {:>9.2} {:>8} {:>11} {:>11}  {}{}",
            r.class,
            r.op,
            r.seconds,
            r.gib_per_s,
            r.ratio.map(|x| format!("{x:.2}x")).unwrap_or_default(),
            r.stored_bytes
                .map(|b| human_bytes(b as u128))
                .unwrap_or_default(),
            r.peak_extra_bytes
                .map(|b| human_bytes(b as u128))
                .unwrap_or_default(),
            r.codecs
                .map(|c| format!("{}/{}/{}", c[0], c[1], c[2]))
                .unwrap_or_default(),
            r.fidelity
                .map(|f| format!("{:.2e}", 1.0 - f))
                .unwrap_or_default(),
        );
    }
}
