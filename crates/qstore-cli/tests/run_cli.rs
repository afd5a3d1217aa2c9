//! `qstore run`: a run stopped by a crash at many points (abort, like kill -9) resumes to the
//! bit-identical final state; a changed circuit and bad OpenQASM are refused with their exit
//! codes.

use qstore::Repository;
use std::path::Path;
use std::process::{Command, Output};

fn qstore(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .args(args)
        .output()
        .expect("runs qstore")
}

fn circuit(n: usize, layers: usize) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[{n}];\n");
    for l in 0..layers {
        for q in 0..n {
            s += &format!(
                "rx({}) q[{q}];\nrz({}) q[{q}];\n",
                0.3 + 0.01 * q as f64,
                0.1 * l as f64
            );
        }
        for q in 0..n - 1 {
            s += &format!("cx q[{q}], q[{}];\n", q + 1);
        }
        s += &format!("measure q[{}] -> c[{}];\n", l % n, l % n);
    }
    s
}

#[test]
fn a_crashed_run_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("c.qasm");
    std::fs::write(&file, circuit(12, 10)).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(&repo, &["run", f, "--branch", "clean", "--seed", "7"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let want = r.reader("clean", "final").unwrap().read_all().unwrap();
    for (k, stop) in [3usize, 40, 111, 230, 333].iter().enumerate() {
        let b = format!("crash{k}");
        let o = qstore(
            &repo,
            &[
                "run",
                f,
                "--branch",
                &b,
                "--seed",
                "7",
                "--checkpoint-every",
                "9",
                "--abort-after",
                &stop.to_string(),
            ],
        );
        assert!(!o.status.success(), "the run was meant to crash");
        let o = qstore(&repo, &["run", f, "--branch", &b, "--resume", "--json"]);
        let text = String::from_utf8_lossy(&o.stdout);
        if *stop < 9 {
            // Crashed before its first checkpoint: nothing to resume.
            assert_eq!(
                o.status.code(),
                Some(3),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            continue;
        }
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        assert!(text.contains("\"resumed_from\""), "{text}");
        let r = Repository::open(repo.to_str().unwrap()).unwrap();
        assert_eq!(
            r.reader(&b, "final").unwrap().read_all().unwrap(),
            want,
            "crash at {stop}"
        );
    }
    // The circuit file changed: --resume refuses (exit 4) and names both hashes.
    std::fs::write(&file, circuit(12, 9)).unwrap();
    let o = qstore(&repo, &["run", f, "--branch", "crash1", "--resume"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("circuit changed"));
}

#[test]
fn kill_9_at_random_moments_then_resume_gives_the_same_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("c.qasm");
    std::fs::write(&file, circuit(18, 40)).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(&repo, &["run", f, "--branch", "clean", "--seed", "3"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want = Repository::open(repo.to_str().unwrap())
        .unwrap()
        .reader("clean", "final")
        .unwrap()
        .read_all()
        .unwrap();
    let mut resumed = 0;
    for (k, delay_ms) in [300u64, 1200, 2500].iter().enumerate() {
        let b = format!("killed{k}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
            .env("QSTORE_REPO", &repo)
            .args([
                "run",
                f,
                "--branch",
                &b,
                "--seed",
                "3",
                "--checkpoint-every",
                "25",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*delay_ms));
        let _ = child.kill(); // SIGKILL (it may have finished already)
        let _ = child.wait();
        let o = qstore(&repo, &["run", f, "--branch", &b, "--resume", "--json"]);
        resumed += usize::from(
            serde_json::from_slice::<serde_json::Value>(&o.stdout)
                .is_ok_and(|v| v["resumed_from"].as_u64().is_some()),
        );
        if o.status.code() == Some(3) {
            // Killed before its first checkpoint was durable: start it over.
            let o = qstore(&repo, &["run", f, "--branch", &b, "--seed", "3"]);
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        } else {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        }
        let r = Repository::open(repo.to_str().unwrap()).unwrap();
        assert_eq!(
            r.reader(&b, "final").unwrap().read_all().unwrap(),
            want,
            "kill after {delay_ms} ms"
        );
        assert!(r.fsck(false).unwrap().problems.is_empty());
    }
    // The run lasts several seconds: at least one kill landed after a checkpoint.
    assert!(resumed > 0, "no kill landed mid-run");
}

#[test]
fn bad_openqasm_is_refused_with_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad.qasm");
    std::fs::write(
        &file,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\nfoo q[0];\n",
    )
    .unwrap();
    let o = qstore(&dir.path().join("r"), &["run", file.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(6));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("line 4") && e.contains("unknown gate foo"),
        "{e}"
    );
}

#[test]
fn the_demo_simulates_checkpoints_and_runs_a_noisy_study() {
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let o = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .args([
            "--json",
            "demo",
            "--qubits",
            "10",
            "--dir",
            demo.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let sim = &v["simulation"];
    assert_eq!(sim["qft_qubits"], 10);
    assert!(sim["checkpoints"].as_u64().unwrap() >= 4, "{sim}");
    assert_eq!(sim["trajectories"], 200);
    let (free, distinct) = (
        sim["error_free"].as_u64().unwrap(),
        sim["distinct_states"].as_u64().unwrap(),
    );
    assert!(
        free > 0 && distinct >= 1 && distinct <= 200 - free + 1,
        "{sim}"
    );
    assert_eq!(v["verified_bit_exact"], v["states_written"]);
    // The checkpointed QFT can be resumed: it is already done.
    let o = qstore(&demo, &["log", "--ref", "sim-qft"]);
    assert!(String::from_utf8_lossy(&o.stdout).contains("checkpoint after operation"));
}

/// W state of `n` qubits written with controlled-Ry gates, then a mid-circuit measurement
/// and a conditional gate, so a resumed run must restore the RNG and the classical bits.
fn w_circuit(n: usize) -> String {
    let mut s = format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[2];\nx q[{}];\n",
        n - 1
    );
    for i in (1..n).rev() {
        let phi = 2.0 * (1.0 / ((i + 1) as f64)).sqrt().acos();
        s += &format!(
            "cry({phi:.17}) q[{i}],q[{}];\ncx q[{}],q[{i}];\n",
            i - 1,
            i - 1
        );
    }
    s + "measure q[7] -> c[0];\nif (c == 1) x q[0];\nh q[1];\n"
}

#[test]
fn a_wide_sparse_run_killed_anywhere_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("w.qasm");
    std::fs::write(&file, w_circuit(300)).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(&repo, &["run", f, "--branch", "clean", "--seed", "11"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("engine: sparse"), "{text}");
    let json = |b: &str| {
        let out = dir.path().join(format!("{b}.json"));
        let o = qstore(
            &repo,
            &["get", "final", "--ref", b, "-o", out.to_str().unwrap()],
        );
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        std::fs::read_to_string(out).unwrap()
    };
    let want = json("clean");
    // 300 amplitudes, or 301 after the Hadamard: keys are decimal indices of 300 bits.
    assert!(want.contains("\"n_qubits\": 300"), "{want}");
    assert!(want.contains(&format!("\"{}\"", 1u128 << 100)), "{want}");
    for (k, stop) in [150usize, 400, 598].iter().enumerate() {
        let b = format!("crash{k}");
        let o = qstore(
            &repo,
            &[
                "run",
                f,
                "--branch",
                &b,
                "--seed",
                "11",
                "--checkpoint-every",
                "50",
                "--abort-after",
                &stop.to_string(),
            ],
        );
        assert!(!o.status.success(), "the run was meant to crash");
        // The checkpoints are sparse states: a few KiB for 2^300 amplitudes.
        let o = qstore(&repo, &["ls", "--ref", &b, "--json"]);
        let ls = String::from_utf8_lossy(&o.stdout);
        assert!(ls.contains("\"sparse\""), "{ls}");
        let o = qstore(&repo, &["run", f, "--branch", &b, "--resume", "--json"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        assert_eq!(v["engine"], "sparse");
        assert!(v["resumed_from"].as_u64().is_some());
        assert_eq!(json(&b), want, "crash at {stop}");
    }
}

#[test]
fn wide_circuits_run_sparse_and_the_memory_limit_is_explained() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let ghz = dir.path().join("ghz.qasm");
    let mut s = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[100];\nh q[0];\n".to_string();
    for i in 0..99 {
        s += &format!("cx q[{i}],q[{}];\n", i + 1);
    }
    std::fs::write(&ghz, s).unwrap();
    let g = ghz.to_str().unwrap();
    let o = qstore(&repo, &["run", g, "--branch", "ghz"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("ghz.json");
    let o = qstore(
        &repo,
        &["get", "final", "--ref", "ghz", "-o", out.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = std::fs::read_to_string(&out).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let amps = v["amplitudes"].as_object().unwrap();
    assert_eq!(amps.len(), 2);
    assert!(amps.contains_key("0"));
    assert!(
        amps.contains_key(&((1u128 << 100) - 1).to_string()),
        "{text}"
    );
    // The JSON goes back in as it came out: the same chunk, deduplicated.
    let o = qstore(
        &repo,
        &["put", "copy", out.to_str().unwrap(), "--branch", "ghz"],
    );
    let put = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success() && put.contains("0 new, 1 deduplicated"),
        "{put}"
    );
    // Its dense size is 16 x 2^100 bytes, said so rather than as a saturated number.
    let o = qstore(&repo, &["show", "final", "--ref", "ghz"]);
    let shown = String::from_utf8_lossy(&o.stdout);
    assert!(
        shown.contains("2^104 B dense") && shown.contains("sparse (2 non-zero)"),
        "{shown}"
    );
    // Dense cannot hold 100 qubits: refused as invalid input (exit 6), naming the limit.
    let o = qstore(&repo, &["run", g, "--branch", "d", "--method", "dense"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("at most 34"));
    // H on every qubit of 70 cannot fit 256 MiB either way: exit 7, naming the line.
    let all = dir.path().join("all.qasm");
    std::fs::write(
        &all,
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[70];\nh q;\n",
    )
    .unwrap();
    let o = qstore(
        &repo,
        &["run", all.to_str().unwrap(), "--memory-limit", "256MiB"],
    );
    assert_eq!(o.status.code(), Some(7));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("line 4") && err.contains("memory limit of 256.0 MiB"),
        "{err}"
    );
}

#[test]
fn qasmbench_wide_circuits_run_on_the_sparse_engine() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/circuits/qasmbench/large");
    if !dir.exists() {
        eprintln!(
            "QASMBench large circuits absent ({}); skipped",
            dir.display()
        );
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("states");
    let run = |name: &str, extra: &[&str]| {
        let f = dir.join(format!("{name}.qasm"));
        let branch = format!("{name}{}", extra.len());
        let mut args = vec!["run", f.to_str().unwrap(), "--branch", &branch, "--json"];
        args.extend_from_slice(extra);
        let o = qstore(&repo, &args);
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // GHZ and cat states measured at the end: every measured bit agrees.
    for (name, n) in [("ghz_n78", 78), ("cat_n65", 65), ("cat_n130", 130)] {
        let (code, out, err) = run(name, &[]);
        assert_eq!(code, Some(0), "{name}: {err}");
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let bits = v["clbits"].as_str().unwrap();
        let meas = &bits[n..];
        assert!(
            meas.chars().all(|c| c == meas.as_bytes()[0] as char),
            "{name}: {bits}"
        );
        assert_eq!(v["engine"], "sparse");
    }
    // The W state's `ry(-t) cz ry(t)` cancel on the branches the cz leaves alone only to
    // within rounding (~1e-17): that noise is dropped, so the support stays at 76, and one
    // measured bit is set.
    let (code, out, err) = run("wstate_n76", &[]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["peak_support"].as_u64().unwrap() <= 2 * 76);
    assert_eq!(v["clbits"].as_str().unwrap()[76..].matches('1').count(), 1);
    // Pruning on top drops nothing more.
    let (code, out, err) = run("wstate_n76", &["--prune-below", "1e-12"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["pruned_mass"].as_f64(), Some(0.0));
    // The adder works on basis states: one amplitude throughout.
    let (code, out, err) = run("adder_n28", &[]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["peak_support"], 1);
    // QASMBench's BV applies every H first: 2^70 amplitudes, refused before they exist.
    let (code, _, err) = run("bv_n70", &["--memory-limit", "1G"]);
    assert_eq!(code, Some(7), "{err}");
}

#[test]
fn lossy_checkpoints_resume_approximately_and_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("c.qasm");
    let text: String = circuit(12, 10)
        .lines()
        .filter(|l| !l.starts_with("measure"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&file, text).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(&repo, &["run", f, "--branch", "exact", "--seed", "7"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let o = qstore(
        &repo,
        &[
            "run",
            f,
            "--branch",
            "lossy",
            "--seed",
            "7",
            "--checkpoint-every",
            "20",
            "--checkpoint-lossy",
            "max-infidelity=1e-8",
            "--abort-after",
            "150",
        ],
    );
    assert!(!o.status.success(), "the run was meant to crash");
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let (_, ck) = r.state("lossy", "checkpoints/state").unwrap();
    let l = ck.lossy.expect("the checkpoint is lossy");
    assert!(1.0 - l.fidelity <= 1e-8, "{l:?}");
    let o = qstore(&repo, &["run", f, "--branch", "lossy", "--resume"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("resumed from a lossy checkpoint (fidelity"),
        "{out}"
    );
    // The final state is lossless, and close to the exact run's.
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let (_, fin) = r.state("lossy", "final").unwrap();
    assert!(fin.lossy.is_none());
    let a = r.reader("exact", "final").unwrap().read_all().unwrap();
    let b = r.reader("lossy", "final").unwrap().read_all().unwrap();
    let amp = |x: &[u8], k: usize| {
        let v = |o: usize| f64::from_le_bytes(x[o..o + 8].try_into().unwrap());
        (v(16 * k), v(16 * k + 8))
    };
    let (mut re, mut im) = (0.0, 0.0);
    for k in 0..a.len() / 16 {
        let ((ar, ai), (br, bi)) = (amp(&a, k), amp(&b, k));
        re += ar * br + ai * bi;
        im += ar * bi - ai * br;
    }
    let fid = re * re + im * im;
    assert!(fid > 1.0 - 1e-6, "{fid}");
    assert_ne!(a, b, "an approximate resume is not bit-identical");
}
