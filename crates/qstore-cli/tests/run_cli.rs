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
