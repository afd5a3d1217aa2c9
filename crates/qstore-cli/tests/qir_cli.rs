//! `qstore run PROGRAM.ll`: QIR programs run with the output schema printed, checkpoints
//! (periodic and the program's own), a crash (abort, like kill -9) at many points then
//! `--resume` ending bit-identical to an uninterrupted run, multi-shot runs checkpointed
//! between shots and resumed to the same counts, bitcode through llvm-dis (and a clear
//! message without one), and malformed programs refused with exit 6 and their line.

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

/// An adaptive program on `n` qubits: layers of rotations and CNOTs, a mid-circuit
/// measurement per layer, and a correction that depends on it (x when the result is 1, an
/// angle computed from it through phi and arithmetic otherwise).
fn adaptive(n: usize, layers: usize) -> String {
    let mut s = String::from(
        "@0 = internal constant [4 x i8] c\"mid\\00\"\n\ndefine void @main() #0 {\nentry:\n  call void @__quantum__rt__initialize(ptr null)\n  br label %l0\n",
    );
    let q = |i: usize| {
        if i == 0 {
            "ptr null".to_string()
        } else {
            format!("ptr inttoptr (i64 {i} to ptr)")
        }
    };
    for l in 0..layers {
        s += &format!("l{l}:\n");
        for i in 0..n {
            s += &format!(
                "  call void @__quantum__qis__rx__body(double {:.6e}, {})\n  call void @__quantum__qis__rz__body(double {:.6e}, {})\n",
                0.3 + 0.01 * i as f64,
                q(i),
                0.1 * l as f64,
                q(i)
            );
        }
        for i in 0..n - 1 {
            s += &format!(
                "  call void @__quantum__qis__cnot__body({}, {})\n",
                q(i),
                q(i + 1)
            );
        }
        if l == layers / 2 {
            s += "  call void @__quantum__rt__qstore_checkpoint(ptr @0)\n";
        }
        let m = l % n;
        s += &format!(
            "  call void @__quantum__qis__mz__body({}, {})\n  %r{l} = call i1 @__quantum__qis__read_result__body({})\n  br i1 %r{l}, label %t{l}, label %e{l}\n",
            q(m),
            q(l),
            q(l)
        );
        s += &format!(
            "t{l}:\n  call void @__quantum__qis__x__body({})\n  br label %j{l}\ne{l}:\n  br label %j{l}\nj{l}:\n  %k{l} = phi i64 [ 1, %t{l} ], [ 3, %e{l} ]\n  %f{l} = sitofp i64 %k{l} to double\n  %a{l} = fmul double %f{l}, 2.000000e-01\n  call void @__quantum__qis__ry__body(double %a{l}, {})\n  br label %l{}\n",
            q(m),
            q((m + 1) % n),
            l + 1
        );
    }
    s += &format!("l{layers}:\n");
    for l in 0..layers {
        s += &format!(
            "  call void @__quantum__rt__result_record_output({}, ptr null)\n",
            q(l)
        );
    }
    s += "  ret void\n}\n\n";
    for d in [
        "void @__quantum__rt__initialize(ptr)",
        "void @__quantum__qis__rx__body(double, ptr)",
        "void @__quantum__qis__ry__body(double, ptr)",
        "void @__quantum__qis__rz__body(double, ptr)",
        "void @__quantum__qis__cnot__body(ptr, ptr)",
        "void @__quantum__qis__x__body(ptr)",
        "void @__quantum__qis__mz__body(ptr, ptr)",
        "i1 @__quantum__qis__read_result__body(ptr)",
        "void @__quantum__rt__qstore_checkpoint(ptr)",
        "void @__quantum__rt__result_record_output(ptr, ptr)",
    ] {
        s += &format!("declare {d}\n");
    }
    s += &format!(
        "\nattributes #0 = {{ \"entry_point\" \"qir_profiles\"=\"adaptive_profile\" \"required_num_qubits\"=\"{n}\" \"required_num_results\"=\"{layers}\" }}\n"
    );
    s
}

#[test]
fn an_adaptive_program_crashed_anywhere_resumes_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("p.ll");
    std::fs::write(&file, adaptive(8, 10)).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(&repo, &["run", f, "--branch", "clean", "--seed", "5"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("START\nMETADATA\tentry_point\n"), "{text}");
    assert_eq!(text.matches("OUTPUT\tRESULT\t").count(), 10, "{text}");
    assert!(text.trim_end().ends_with("END\t0"), "{text}");
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let want = r.reader("clean", "final").unwrap().read_all().unwrap();
    // The program's own checkpoint request made a commit even without --checkpoint-every.
    assert!(
        r.log("clean", 100)
            .unwrap()
            .iter()
            .any(|(_, c)| c.message.starts_with("checkpoint mid after operation"))
    );
    let want_out = text.split("START").nth(1).unwrap().to_string();
    for (k, stop) in [5usize, 40, 77, 130, 170].iter().enumerate() {
        let b = format!("crash{k}");
        let o = qstore(
            &repo,
            &[
                "run",
                f,
                "--branch",
                &b,
                "--seed",
                "5",
                "--checkpoint-every",
                "7",
                "--abort-after",
                &stop.to_string(),
            ],
        );
        assert!(!o.status.success(), "the run was meant to crash at {stop}");
        let o = qstore(&repo, &["run", f, "--branch", &b, "--resume"]);
        if *stop < 7 {
            assert_eq!(
                o.status.code(),
                Some(3),
                "{}",
                String::from_utf8_lossy(&o.stderr)
            );
            continue;
        }
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let out = String::from_utf8_lossy(&o.stdout);
        assert!(out.contains("resumed at operation"), "{out}");
        // The same recorded outputs (the interpreter's variables and results came back).
        assert_eq!(
            out.split("START").nth(1).unwrap(),
            want_out,
            "crash at {stop}"
        );
        let r = Repository::open(repo.to_str().unwrap()).unwrap();
        assert_eq!(
            r.reader(&b, "final").unwrap().read_all().unwrap(),
            want,
            "crash at {stop}"
        );
    }
}

#[test]
fn shots_checkpointed_between_shots_resume_to_the_same_counts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("p.ll");
    std::fs::write(&file, adaptive(4, 4)).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(
        &repo,
        &[
            "run", f, "--shots", "60", "--seed", "9", "--branch", "a", "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["shots"], 60);
    assert_eq!(v["outcome_bits"], 4);
    assert_eq!(v["output"].as_str().unwrap().matches("START").count(), 60);
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let want = r.reader("a", "shots/counts").unwrap().read_all().unwrap();
    let counts: Vec<u64> = want
        .chunks(8)
        .map(|c| u64::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(counts.len(), 16);
    assert_eq!(counts.iter().sum::<u64>(), 60);
    let o = qstore(
        &repo,
        &[
            "run",
            f,
            "--shots",
            "60",
            "--seed",
            "9",
            "--branch",
            "b",
            "--checkpoint-every",
            "10",
            "--abort-after",
            "37",
        ],
    );
    assert!(!o.status.success());
    let o = qstore(
        &repo,
        &[
            "run", f, "--shots", "60", "--seed", "9", "--branch", "b", "--resume", "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        (v["resumed_at"].as_u64(), v["run_now"].as_u64()),
        (Some(30), Some(30))
    );
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    assert_eq!(
        r.reader("b", "shots/counts").unwrap().read_all().unwrap(),
        want
    );
    // A different --shots on resume is refused.
    let o = qstore(
        &repo,
        &[
            "run", f, "--shots", "61", "--seed", "9", "--branch", "b", "--resume",
        ],
    );
    assert!(!o.status.success());
}

#[test]
fn bad_programs_are_refused_with_exit_6_and_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    for (src, needle) in [
        (
            "define void @main() #0 {\nentry:\n  call void @__quantum__qis__magic__body(ptr null)\n  ret void\n}\nattributes #0 = { \"entry_point\" }\n",
            "line 3: unknown intrinsic",
        ),
        (
            "define void @main() #0 {\nentry:\n  %x = fneg double 1.0\n  ret void\n}\nattributes #0 = { \"entry_point\" }\n",
            "line 3:",
        ),
        (
            "define void @main() #0 {\nentry:\n  call void @main()\n  ret void\n}\nattributes #0 = { \"entry_point\" }\n",
            "line 3:",
        ),
        (
            "define void @main() #0 {\nentry:\n  call void @__quantum__qis__h__body(ptr null)\n",
            "no closing brace",
        ),
        ("; ModuleID = 'x'\n", "no entry point"),
    ] {
        let file = dir.path().join("bad.ll");
        std::fs::write(&file, src).unwrap();
        let o = qstore(&repo, &["run", file.to_str().unwrap()]);
        assert_eq!(
            o.status.code(),
            Some(6),
            "{src}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.contains(needle), "{src}: {err}");
    }
    // Huge qubit counts: refused before any memory is taken.
    let file = dir.path().join("huge.ll");
    std::fs::write(&file, "define void @main() #0 {\nentry:\n  ret void\n}\nattributes #0 = { \"entry_point\" \"required_num_qubits\"=\"4000000000\" }\n").unwrap();
    let o = qstore(&repo, &["run", file.to_str().unwrap()]);
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn bitcode_goes_through_llvm_dis_or_is_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let ll = dir.path().join("p.ll");
    std::fs::write(&ll, adaptive(3, 2)).unwrap();
    let bc = dir.path().join("p.bc");
    // Without an llvm-dis: a clear message, exit 6.
    std::fs::write(&bc, b"BC\xC0\xDE\x00\x00\x00\x00").unwrap();
    let o = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", &repo)
        .env("QSTORE_LLVM_DIS", "")
        .args(["run", bc.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("needs llvm-dis"));
    // With one (Debian's llvm, installed by the test script): same output as the text.
    let Some(dis) = qstore_sim::qir::find_llvm_dis() else {
        if std::env::var("QSTORE_REQUIRE_LLVM").as_deref() == Ok("1") {
            panic!("no llvm-dis found");
        }
        eprintln!("no llvm-dis here: bitcode not tested");
        return;
    };
    let llvm_as = dis.with_file_name(
        dis.file_name()
            .unwrap()
            .to_string_lossy()
            .replace("llvm-dis", "llvm-as"),
    );
    // Opaque pointers (as pyqir writes): LLVM 14/15 assemble them only when told to.
    let mut a = Command::new(&llvm_as)
        .arg(&ll)
        .arg("-o")
        .arg(&bc)
        .output()
        .unwrap();
    if !a.status.success() || !String::from_utf8_lossy(&a.stderr).is_empty() {
        a = Command::new(&llvm_as)
            .arg("-opaque-pointers")
            .arg(&ll)
            .arg("-o")
            .arg(&bc)
            .output()
            .unwrap();
    }
    assert!(a.status.success(), "{}", String::from_utf8_lossy(&a.stderr));
    let text = qstore(
        &repo,
        &["run", ll.to_str().unwrap(), "--branch", "t", "--seed", "3"],
    );
    let bits = qstore(
        &repo,
        &["run", bc.to_str().unwrap(), "--branch", "b", "--seed", "3"],
    );
    assert!(
        bits.status.success(),
        "{}",
        String::from_utf8_lossy(&bits.stderr)
    );
    let body = |o: &Output| {
        String::from_utf8_lossy(&o.stdout)
            .split("START")
            .nth(1)
            .unwrap()
            .to_string()
    };
    assert_eq!(body(&text), body(&bits));
}

#[test]
fn static_programs_take_noise_studies_and_adaptive_ones_say_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("s.ll");
    std::fs::write(
        &file,
        "define void @main() #0 {\nentry:\n  call void @__quantum__qis__h__body(ptr null)\n  call void @__quantum__qis__cnot__body(ptr null, ptr inttoptr (i64 1 to ptr))\n  call void @__quantum__qis__mz__body(ptr null, ptr null)\n  call void @__quantum__qis__mz__body(ptr inttoptr (i64 1 to ptr), ptr inttoptr (i64 1 to ptr))\n  ret void\n}\nattributes #0 = { \"entry_point\" \"required_num_qubits\"=\"2\" \"required_num_results\"=\"2\" }\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(
        &repo,
        &[
            "run",
            f,
            "--trajectories",
            "8",
            "--noise",
            "depolarizing:p1=0.01,p2=0.02",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["trajectories"], 8);
    let o = qstore(
        &repo,
        &[
            "run",
            f,
            "--density-matrix",
            "--noise",
            "depolarizing:p1=0.01",
            "--output",
            "dm",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let a = dir.path().join("a.ll");
    std::fs::write(&a, adaptive(3, 2)).unwrap();
    let o = qstore(
        &repo,
        &[
            "run",
            a.to_str().unwrap(),
            "--trajectories",
            "4",
            "--noise",
            "depolarizing:p1=0.01",
        ],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("adaptive QIR"));
}

#[test]
fn kill_9_of_an_adaptive_run_then_resume_gives_the_same_final_state() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    let file = dir.path().join("big.ll");
    std::fs::write(&file, adaptive(18, 30)).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(
        &repo,
        &[
            "run", f, "--branch", "clean", "--seed", "3", "--method", "dense",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let want_out = String::from_utf8_lossy(&o.stdout)
        .split("START")
        .nth(1)
        .unwrap()
        .to_string();
    let want = Repository::open(repo.to_str().unwrap())
        .unwrap()
        .reader("clean", "final")
        .unwrap()
        .read_all()
        .unwrap();
    let mut resumed = 0;
    for (k, delay_ms) in [300u64, 900, 1800].iter().enumerate() {
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
                "--method",
                "dense",
                "--checkpoint-every",
                "40",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(*delay_ms));
        let _ = child.kill(); // SIGKILL (it may have finished already)
        let _ = child.wait();
        let o = qstore(
            &repo,
            &["run", f, "--branch", &b, "--resume", "--method", "dense"],
        );
        let out = String::from_utf8_lossy(&o.stdout).to_string();
        if o.status.code() == Some(3) {
            // Killed before its first checkpoint was durable: start it over.
            let o = qstore(
                &repo,
                &["run", f, "--branch", &b, "--seed", "3", "--method", "dense"],
            );
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        } else {
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            if out.contains("resumed at operation") {
                resumed += 1;
                assert_eq!(
                    out.split("START").nth(1).unwrap(),
                    want_out,
                    "kill after {delay_ms} ms"
                );
            }
        }
        let r = Repository::open(repo.to_str().unwrap()).unwrap();
        assert_eq!(
            r.reader(&b, "final").unwrap().read_all().unwrap(),
            want,
            "kill after {delay_ms} ms"
        );
        assert!(r.fsck(false).unwrap().problems.is_empty());
    }
    assert!(resumed > 0, "no kill landed mid-run");
}
