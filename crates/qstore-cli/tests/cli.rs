//! The `qstore` binary end to end: the README's tour, exit codes, `.npy` handling, many
//! processes committing to one branch at once, and kill -9 of a writer at random points.

use qstore::state::npy::encode_header;
use qstore::{ArrayInfo, DType, Repository};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn qstore(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .env_remove("USER")
        .args(args)
        .output()
        .expect("runs qstore")
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = qstore(repo, args);
    assert!(
        o.status.success(),
        "qstore {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn code(repo: &Path, args: &[&str]) -> (i32, String) {
    let o = qstore(repo, args);
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn write_npy(path: &Path, dtype: DType, shape: &[u64], data: &[u8]) {
    let mut bytes = encode_header(&ArrayInfo {
        dtype,
        shape: shape.to_vec(),
    });
    bytes.extend_from_slice(data);
    std::fs::write(path, bytes).unwrap();
}

fn amplitudes(n: u32, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..2usize << n)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5).to_le_bytes()
        })
        .collect()
}

struct Env {
    _dir: tempfile::TempDir,
    root: PathBuf,
    repo: PathBuf,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let repo = root.join("states");
    Env {
        _dir: dir,
        root,
        repo,
    }
}

#[test]
fn the_readme_tour_works_and_round_trips_bit_for_bit() {
    let e = env();
    ok(&e.repo, &["init", e.repo.to_str().unwrap()]);
    let psi = e.root.join("psi.npy");
    let data = amplitudes(12, 1);
    write_npy(&psi, DType::Complex128, &[1 << 12], &data);
    let out = ok(
        &e.repo,
        &[
            "put",
            "qft24/step_0100",
            psi.to_str().unwrap(),
            "--tag",
            "circuit=qft",
            "--tag",
            "step=100",
            "-m",
            "qft checkpoint",
        ],
    );
    assert!(out.contains("stored qft24/step_0100"), "{out}");
    let psi2 = e.root.join("psi2.npy");
    ok(
        &e.repo,
        &["get", "qft24/step_0100", "-o", psi2.to_str().unwrap()],
    );
    assert_eq!(
        std::fs::read(&psi).unwrap(),
        std::fs::read(&psi2).unwrap(),
        "bit-identical .npy"
    );
    ok(&e.repo, &["tag", "v1", "main"]);
    ok(&e.repo, &["branch", "exp1", "main"]);
    let mut changed = data.clone();
    changed[..16].copy_from_slice(&[0u8; 16]);
    write_npy(&psi, DType::Complex128, &[1 << 12], &changed);
    ok(
        &e.repo,
        &[
            "put",
            "qft24/step_0100",
            psi.to_str().unwrap(),
            "--branch",
            "exp1",
            "-m",
            "changed",
        ],
    );
    let old = e.root.join("old.npy");
    ok(
        &e.repo,
        &[
            "get",
            "qft24/step_0100",
            "--ref",
            "v1",
            "-o",
            old.to_str().unwrap(),
        ],
    );
    assert_eq!(std::fs::read(&old).unwrap(), std::fs::read(&psi2).unwrap());
    let ls = ok(&e.repo, &["ls"]);
    assert!(
        ls.contains("qft24/step_0100") && ls.contains("statevector"),
        "{ls}"
    );
    let log = ok(&e.repo, &["log", "--ref", "exp1"]);
    assert!(
        log.contains("changed") && log.contains("qft checkpoint"),
        "{log}"
    );
    let show = ok(
        &e.repo,
        &["show", "qft24/step_0100", "--top", "3", "--marginal", "0,1"],
    );
    assert!(
        show.contains("tag:       circuit=qft")
            && show.contains("top 3:")
            && show.contains("marginal"),
        "{show}"
    );
    let diff = ok(&e.repo, &["diff", "v1", "exp1"]);
    assert!(
        diff.contains("M  qft24/step_0100  chunks changed 1/") && diff.contains("fidelity 0.99"),
        "{diff}"
    );
    let stats: serde_json::Value =
        serde_json::from_str(&ok(&e.repo, &["stats", "--json"])).unwrap();
    assert_eq!(stats["state_versions"], 2);
    assert!(stats["files"].as_u64().unwrap() < 20);
    let j: serde_json::Value =
        serde_json::from_str(&ok(&e.repo, &["show", "qft24/step_0100", "--json"])).unwrap();
    assert_eq!(j["tags"]["step"], "100");
    // Density matrix and a generic array.
    let rho = e.root.join("rho.npy");
    write_npy(&rho, DType::Complex64, &[4, 4], &[0u8; 128]);
    ok(&e.repo, &["put", "rho/r", rho.to_str().unwrap()]);
    let arr = e.root.join("counts.npy");
    write_npy(
        &arr,
        DType::Int64,
        &[3, 5],
        &(0..15i64).flat_map(|v| v.to_le_bytes()).collect::<Vec<_>>(),
    );
    let (c, err) = code(&e.repo, &["put", "counts", arr.to_str().unwrap()]);
    assert_eq!(c, 6, "refused without --kind array: {err}");
    assert!(err.contains("--kind array"), "{err}");
    ok(
        &e.repo,
        &["put", "counts", arr.to_str().unwrap(), "--kind", "array"],
    );
    let back = e.root.join("back.npy");
    ok(&e.repo, &["get", "counts", "-o", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&arr).unwrap(), std::fs::read(&back).unwrap());
    ok(&e.repo, &["rm", "counts", "-m", "drop counts"]);
}

#[test]
fn sparse_json_ghz50_and_exit_codes() {
    let e = env();
    ok(&e.repo, &["init", e.repo.to_str().unwrap()]);
    let ghz = e.root.join("ghz.json");
    std::fs::write(&ghz, format!(r#"{{"n_qubits": 50, "amplitudes": {{"0": [0.7071067811865476, 0.0], "{}": [0.7071067811865476, 0.0]}}}}"#, "1".repeat(50))).unwrap();
    ok(&e.repo, &["put", "ghz50", ghz.to_str().unwrap()]);
    let out = e.root.join("ghz_back.json");
    ok(&e.repo, &["get", "ghz50", "-o", out.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        v["amplitudes"]["1125899906842623"][0],
        std::f64::consts::FRAC_1_SQRT_2
    );
    let dense = e.root.join("ghz.npy");
    let (c, err) = code(&e.repo, &["get", "ghz50", "-o", dense.to_str().unwrap()]);
    assert_eq!(c, 6);
    assert!(err.contains("too large to materialise"), "{err}");
    assert!(!dense.exists(), "no partial output left behind");
    assert_eq!(
        code(&e.repo, &["get", "nope", "-o", dense.to_str().unwrap()]).0,
        3
    );
    assert_eq!(code(&e.repo, &["log", "--ref", "nope"]).0, 3);
    assert_eq!(code(&e.repo, &["tag", "t", "main"]).0, 0);
    assert_eq!(
        code(&e.repo, &["tag", "t", "main"]).0,
        4,
        "tag exists: conflict"
    );
    assert_eq!(code(&e.repo, &["frobnicate"]).0, 2, "usage error");
    assert_eq!(
        code(&e.root.join("nothing-here"), &["ls"]).0,
        3,
        "no repository"
    );
    let empty = tempfile::tempdir().unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env_remove("QSTORE_REPO")
        .current_dir(empty.path())
        .arg("ls")
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn unsupported_npy_files_are_refused_with_the_reason() {
    let e = env();
    ok(&e.repo, &["init", e.repo.to_str().unwrap()]);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "fortran.npy",
            b"{'descr': '<c16', 'fortran_order': True, 'shape': (2, 2), }".to_vec(),
            "Fortran",
        ),
        (
            "big.npy",
            b"{'descr': '>c16', 'fortran_order': False, 'shape': (4,), }".to_vec(),
            "big-endian",
        ),
        (
            "object.npy",
            b"{'descr': '|O', 'fortran_order': False, 'shape': (4,), }".to_vec(),
            "not supported",
        ),
        (
            "struct.npy",
            b"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (4,), }".to_vec(),
            "structured",
        ),
        (
            "garbage.npy",
            b"{'descr': '<c16', 'shape': ((((".to_vec(),
            ".npy",
        ),
    ];
    for (name, dict, needle) in cases {
        let p = e.root.join(name);
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend_from_slice(&(dict.len() as u16).to_le_bytes());
        bytes.extend_from_slice(&dict);
        bytes.extend_from_slice(&[0u8; 64]);
        std::fs::write(&p, bytes).unwrap();
        let (c, err) = code(&e.repo, &["put", "x", p.to_str().unwrap()]);
        assert_eq!(c, 6, "{name}: {err}");
        assert!(err.contains(needle), "{name}: {err}");
    }
    let t = e.root.join("truncated.npy");
    write_npy(&t, DType::Complex128, &[8], &[0u8; 100]);
    let (c, err) = code(&e.repo, &["put", "x", t.to_str().unwrap()]);
    assert_eq!(c, 6);
    assert!(err.contains("truncated"), "{err}");
    let n = e.root.join("notnpy.npy");
    std::fs::write(&n, b"hello").unwrap();
    assert_eq!(code(&e.repo, &["put", "x", n.to_str().unwrap()]).0, 6);
    assert_eq!(ok(&e.repo, &["ls"]).trim(), "", "nothing was stored");
}

#[test]
fn eight_processes_commit_fifty_times_each_to_one_branch() {
    let e = env();
    ok(&e.repo, &["init", e.repo.to_str().unwrap()]);
    let children: Vec<_> = (0..8)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_qstore"))
                .env("QSTORE_REPO", &e.repo)
                .args(["commit-loop", &format!("w{w}"), "--count", "50"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for c in children {
        let o = c.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert_eq!(String::from_utf8_lossy(&o.stdout).lines().count(), 50);
    }
    let repo = Repository::open(e.repo.to_str().unwrap()).unwrap();
    let log = repo.log("main", 10_000).unwrap();
    assert_eq!(log.len(), 401, "400 commits plus the initial one");
    let head = repo.branch_head("main").unwrap();
    let states = repo.list_states(&head, None).unwrap();
    assert_eq!(states.len(), 400);
    for (p, _) in states {
        let data = repo.reader("main", &p).unwrap().read_all().unwrap();
        assert_eq!(data.len(), 4096);
    }
}

#[test]
fn kill_9_at_random_points_never_loses_a_reported_commit() {
    let e = env();
    ok(&e.repo, &["init", e.repo.to_str().unwrap()]);
    let mut reported: Vec<(String, String)> = Vec::new();
    let mut rng_state = 0x2545_F491_4F6C_DD1Du64;
    for round in 0..60 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
            .env("QSTORE_REPO", &e.repo)
            .args(["commit-loop", &format!("r{round:02}")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        std::thread::sleep(Duration::from_micros(rng_state % 60_000));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap());
        for line in out.lines().map_while(Result::ok) {
            let mut parts = line.split_whitespace().skip(1);
            if let (Some(id), Some(path)) = (parts.next(), parts.next()) {
                reported.push((id.to_string(), path.to_string()));
            }
        }
        // The repository always opens, and every reported commit is there and readable.
        let repo = Repository::open(e.repo.to_str().unwrap()).unwrap();
        let head = repo.branch_head("main").unwrap();
        let listed: std::collections::HashSet<String> = repo
            .list_states(&head, None)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        for (id, path) in &reported {
            assert!(
                listed.contains(path),
                "round {round}: reported {path} is missing"
            );
            let c = repo.resolve(id).unwrap();
            repo.commit(&c).unwrap();
        }
        // No partial commit: every commit in the log is complete and every state reads.
        for (c, _) in repo.log("main", 100_000).unwrap() {
            for (p, _) in repo
                .list_states(&c, None)
                .unwrap()
                .into_iter()
                .rev()
                .take(3)
            {
                repo.reader(&c.to_hex(), &p).unwrap().read_all().unwrap();
            }
        }
    }
    assert!(
        reported.len() > 10,
        "the writer made progress between kills ({} commits)",
        reported.len()
    );
}

#[test]
fn bench_runs_and_reports_every_row_against_its_baseline() {
    let e = env();
    let json = e.root.join("bench.json");
    let o = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .args([
            "bench",
            "--sizes",
            "64K,1M",
            "--classes",
            "dense,ghz",
            "--dir",
        ])
        .arg(e.root.join("bench"))
        .arg("--json-out")
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("qstore put (durable)") && text.contains("raw write+fdatasync"),
        "{text}"
    );
    let rows: Vec<serde_json::Value> =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(rows.len(), 2 * 2 * 10, "10 rows per class and size");
    for r in &rows {
        assert!(r["seconds"].as_f64().unwrap() > 0.0, "{r}");
        if r["op"] != "repack --recompress" {
            assert!(r["ratio"].as_f64().unwrap() > 0.0, "{r}");
        }
    }
    for r in rows
        .iter()
        .filter(|r| r["op"].as_str().unwrap().contains("lossy 1e-"))
    {
        let f = r["fidelity"].as_f64().unwrap();
        let bound = if r["op"].as_str().unwrap().ends_with("1e-6") {
            1e-6
        } else {
            1e-3
        };
        assert!(1.0 - f <= bound, "{r}");
    }
    let put = rows
        .iter()
        .find(|r| r["class"] == "ghz" && r["op"] == "qstore put (durable)")
        .unwrap();
    assert!(
        put["stored_bytes"].as_u64().unwrap() < 4096,
        "GHZ is stored sparse: {put}"
    );
    assert!(
        !e.root.join("bench").exists(),
        "the bench cleans up after itself"
    );
}

#[test]
fn lossy_puts_show_their_fidelity_everywhere_and_coexist_with_lossless_ones() {
    let e = env();
    ok(&e.repo, &["init", e.repo.to_str().unwrap()]);
    // A normalised 12-qubit state.
    let raw = amplitudes(12, 9);
    let vals: Vec<f64> = raw
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
        .collect();
    let norm = vals.iter().map(|v| v * v).sum::<f64>().sqrt();
    let data: Vec<u8> = vals.iter().flat_map(|v| (v / norm).to_le_bytes()).collect();
    let npy = e.root.join("psi.npy");
    write_npy(&npy, DType::Complex128, &[1 << 12], &data);
    let f = npy.to_str().unwrap();
    ok(&e.repo, &["put", "psi/exact", f, "-m", "exact"]);
    ok(&e.repo, &["tag", "base", "main"]);
    let put = ok(
        &e.repo,
        &[
            "put",
            "psi/e6",
            f,
            "--lossy",
            "max-infidelity=1e-6",
            "-m",
            "lossy",
        ],
    );
    assert!(
        put.contains("lossy: max-infidelity=1e-6, fidelity 0.99999"),
        "{put}"
    );
    let v: serde_json::Value = serde_json::from_str(&ok(
        &e.repo,
        &["--json", "put", "psi/f32", f, "--lossy", "f32"],
    ))
    .unwrap();
    assert_eq!(v["state"]["lossy"], "f32");
    let fid = v["state"]["fidelity"].as_f64().unwrap();
    assert!(fid < 1.0 && 1.0 - fid < 1e-12, "{fid}");
    // show, ls --long, diff and the JSON forms all carry the mode and the fidelity.
    let show = ok(&e.repo, &["show", "psi/e6"]);
    assert!(
        show.contains("lossy:     max-infidelity=1e-6, fidelity"),
        "{show}"
    );
    let ls = ok(&e.repo, &["ls", "--long", "psi"]);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("psi/exact") && l.ends_with("lossless")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("psi/f32") && l.contains("f32, fidelity")),
        "{ls}"
    );
    let diff = ok(&e.repo, &["diff", "base", "main"]);
    assert!(
        diff.contains("A  psi/e6  [lossy: max-infidelity=1e-6, fidelity"),
        "{diff}"
    );
    let dj: serde_json::Value =
        serde_json::from_str(&ok(&e.repo, &["--json", "diff", "base", "main"])).unwrap();
    assert!(dj.to_string().contains("stored_fidelity"), "{dj}");
    // Read back in the original dtype; the lossless state is bit-exact.
    let out = e.root.join("back.npy");
    ok(&e.repo, &["get", "psi/exact", "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&npy).unwrap());
    ok(&e.repo, &["get", "psi/e6", "-o", out.to_str().unwrap()]);
    assert_eq!(
        std::fs::read(&out).unwrap().len(),
        std::fs::read(&npy).unwrap().len()
    );
    // Refusals: usage errors for bad modes, nothing committed.
    let head = ok(&e.repo, &["log", "-n", "1"]);
    let (c, err) = code(&e.repo, &["put", "x", f, "--lossy", "max-infidelity=1e-15"]);
    assert_eq!(c, 2, "{err}");
    assert!(err.contains("meaningless"), "{err}");
    assert_eq!(ok(&e.repo, &["log", "-n", "1"]), head);
    let fsck = qstore(&e.repo, &["fsck", "--full"]);
    assert!(fsck.status.success(), "{fsck:?}");
    // Recompression keeps every state readable.
    let r = ok(&e.repo, &["repack", "--recompress"]);
    assert!(r.contains("recompressed"), "{r}");
    ok(&e.repo, &["get", "psi/exact", "-o", out.to_str().unwrap()]);
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&npy).unwrap());
}
