//! The simulator on its own: parsing (and refusing with the line), gate kernels against
//! known states, determinism, and checkpoint/resume through a repository.

use num_complex::Complex64 as C;
use qstore::{RepoConfig, Repository};
use qstore_sim::{Every, Precision, QuantumState, RunOptions, SimError, StateVector, parse, run};
use rand::SeedableRng;

fn simulate(src: &str) -> StateVector {
    let p = parse(src).unwrap();
    let mut s = StateVector::<f64>::zero(p.qubits);
    let mut cl = vec![false; p.clbits];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (op, _) in &p.ops {
        s.run(op, &mut cl, &mut rng);
    }
    s
}

fn close(a: &[C], b: &[C]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).norm() < 1e-12)
}

const H: f64 = std::f64::consts::FRAC_1_SQRT_2;

#[test]
fn bell_ghz_and_qubit_order() {
    let s = simulate("OPENQASM 2.0; include \"qelib1.inc\"; qreg q[2]; h q[0]; cx q[0],q[1];");
    assert!(close(
        &s.amps,
        &[
            C::new(H, 0.0),
            C::new(0.0, 0.0),
            C::new(0.0, 0.0),
            C::new(H, 0.0)
        ]
    ));
    // x on qubit 0 sets bit 0 of the index (Qiskit's order).
    let s = simulate("OPENQASM 2.0; include \"qelib1.inc\"; qreg q[3]; x q[0];");
    assert_eq!(s.amps[1], C::new(1.0, 0.0));
    // Registers are laid out one after the other; broadcast over a whole register.
    let s = simulate("OPENQASM 2.0; include \"qelib1.inc\"; qreg a[1]; qreg b[2]; x b;");
    assert_eq!(s.amps[0b110], C::new(1.0, 0.0));
}

#[test]
fn user_gates_parameters_and_builtin_equivalences() {
    let a = simulate(
        "OPENQASM 2.0; include \"qelib1.inc\";
         gate mycx(theta) c, t { h t; cu1(theta) c, t; h t; }
         qreg q[3]; h q; mycx(pi) q[0], q[2]; rzz(0.3) q[1], q[2]; swap q[0], q[1];
         cswap q[2], q[0], q[1]; rxx(-2*pi/3+0.1^2) q[0], q[2];",
    );
    let b = simulate(
        "OPENQASM 2.0; include \"qelib1.inc\";
         qreg q[3]; h q; cx q[0], q[2]; cx q[1], q[2]; rz(0.3) q[2]; cx q[1], q[2];
         cx q[0], q[1]; cx q[1], q[0]; cx q[0], q[1];
         cx q[1], q[0]; ccx q[2], q[0], q[1]; cx q[1], q[0];
         h q[0]; h q[2]; cx q[0], q[2]; rz(-2*pi/3+0.01) q[2]; cx q[0], q[2]; h q[0]; h q[2];",
    );
    let ov: C = a.amps.iter().zip(&b.amps).map(|(x, y)| x.conj() * y).sum();
    assert!(
        (ov.norm_sqr() - 1.0).abs() < 1e-12,
        "fidelity {}",
        ov.norm_sqr()
    );
}

#[test]
fn errors_name_the_line() {
    let cases = [
        ("OPENQASM 2.0;\nqreg q[2];\nh q[0];", 3, "unknown gate h"),
        (
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\ncx q[0], q[0];",
            4,
            "same qubit",
        ),
        (
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[2];\n\nx q[2];",
            5,
            "out of range",
        ),
        ("OPENQASM 2.0;\nopaque magic a;\n", 2, "opaque"),
        (
            "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nrx q[0];",
            4,
            "takes 1 parameters",
        ),
        ("OPENQASM 2.0;\ninclude \"other.inc\";", 2, "not supported"),
        (
            "OPENQASM 3.0;\nqreg q[1];",
            1,
            "version `3` is not supported",
        ),
        (
            "OPENQASM 2.0;\nqreg q[1];\nU(0,0,0) q[0]\n",
            3,
            "expected `;`",
        ),
    ];
    for (src, line, what) in cases {
        let e = parse(src).unwrap_err();
        assert_eq!(e.line, line, "{src}: {e}");
        assert!(e.to_string().contains(what), "{src}: {e}");
    }
}

#[test]
fn measurement_reset_and_if_are_seeded() {
    let src = "OPENQASM 2.0; include \"qelib1.inc\"; qreg q[2]; creg c[1];
               h q[0]; measure q[0] -> c[0]; if (c == 1) x q[1]; reset q[0];";
    let p = parse(src).unwrap();
    for seed in 0..20u64 {
        let mut s = StateVector::<f64>::zero(2);
        let mut cl = vec![false; 1];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        for (op, _) in &p.ops {
            s.run(op, &mut cl, &mut rng);
        }
        // q0 is reset to 0; q1 equals the measured bit.
        let want = if cl[0] { 0b10 } else { 0b00 };
        assert!((s.amps[want].norm_sqr() - 1.0).abs() < 1e-12, "seed {seed}");
    }
}

fn circuit(n: usize, layers: usize) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[{n}];\n");
    for l in 0..layers {
        for q in 0..n {
            s += &format!(
                "u3({}, {}, {}) q[{q}];\n",
                0.1 * (l + q) as f64,
                0.7,
                -0.3 * l as f64
            );
        }
        for q in 0..n - 1 {
            s += &format!("cx q[{q}], q[{}];\n", (q + 1 + l % (n - 1)) % n);
        }
        s += &format!("measure q[{}] -> c[{}];\n", l % n, l % n);
    }
    s
}

#[test]
fn resume_after_any_stop_is_bit_identical() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        dir.path().join("r").to_str().unwrap(),
        RepoConfig::default(),
    )
    .unwrap();
    let src = circuit(10, 12);
    let p = parse(&src).unwrap();
    let full = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            branch: "full".into(),
            seed: 9,
            ..Default::default()
        },
    )
    .unwrap();
    let want = repo.reader("full", "final").unwrap().read_all().unwrap();
    // Checkpoint every 7 operations; "stop" by resuming from each checkpoint in turn.
    let opts = RunOptions {
        branch: "ck".into(),
        seed: 9,
        checkpoint_every: Some(Every::Ops(7)),
        ..Default::default()
    };
    let r = run(&repo, &src, &p, &opts).unwrap();
    assert!(r.checkpoints > 10);
    assert_eq!(
        repo.reader("ck", "final").unwrap().read_all().unwrap(),
        want
    );
    assert_eq!(r.clbits, full.clbits);
    // Every checkpoint commit resumes to the same final state and classical bits.
    let log = repo.log("ck", usize::MAX).unwrap();
    let checkpoints: Vec<_> = log
        .iter()
        .filter(|(_, c)| {
            c.metadata.get("qstore.sim.kind").map(|k| k.as_str()) == Some("checkpoint")
        })
        .collect();
    assert_eq!(checkpoints.len(), r.checkpoints);
    for (i, (id, _)) in checkpoints.iter().enumerate().step_by(5) {
        let b = format!("resume{i}");
        repo.create_branch(&b, &id.to_hex()).unwrap();
        let rr = run(
            &repo,
            &src,
            &p,
            &RunOptions {
                branch: b.clone(),
                resume: true,
                ..Default::default()
            },
        )
        .unwrap();
        assert!(rr.resumed_from.is_some());
        assert_eq!(
            repo.reader(&b, "final").unwrap().read_all().unwrap(),
            want,
            "from {id}"
        );
        assert_eq!(rr.clbits, full.clbits);
    }
    // A finished run resumes to nothing; a changed circuit is refused.
    let again = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            branch: "ck".into(),
            resume: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert!(again.already_done);
    let other = circuit(10, 11);
    let e = run(
        &repo,
        &other,
        &parse(&other).unwrap(),
        &RunOptions {
            branch: "ck".into(),
            resume: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, SimError::CircuitChanged { .. }), "{e}");
    let e = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            branch: "fresh".into(),
            resume: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, SimError::NoCheckpoint(_)), "{e}");
}

#[test]
fn complex64_runs_checkpoint_resume_and_agree_with_complex128() {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repository::init(
        dir.path().join("r").to_str().unwrap(),
        RepoConfig::default(),
    )
    .unwrap();
    let src = circuit(12, 8).replace("measure", "// measure");
    let p = parse(&src).unwrap();
    let single = |branch: &str| RunOptions {
        precision: Precision::Single,
        branch: branch.into(),
        ..Default::default()
    };
    run(&repo, &src, &p, &single("c64")).unwrap();
    run(
        &repo,
        &src,
        &p,
        &RunOptions {
            branch: "c128".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let e = repo.state("c64", "final").unwrap().1;
    assert_eq!(e.dtype, qstore::DType::Complex64);
    let a = repo.reader("c64", "final").unwrap().read_all().unwrap();
    let b = repo.reader("c128", "final").unwrap().read_all().unwrap();
    let a: &[num_complex::Complex32] = bytemuck::cast_slice(&a);
    let b: &[C] = bytemuck::cast_slice(&b);
    let ov: C = a
        .iter()
        .zip(b)
        .map(|(x, y)| C::new(x.re as f64, -x.im as f64) * y)
        .sum();
    assert!(
        (ov.norm_sqr() - 1.0).abs() < 1e-5,
        "fidelity {}",
        ov.norm_sqr()
    );
    // Checkpoints in complex64, resumed from one: bit-identical to the uninterrupted run.
    let mut o = single("c64ck");
    o.checkpoint_every = Some(Every::Ops(13));
    run(&repo, &src, &p, &o).unwrap();
    let (id, _) = repo
        .log("c64ck", usize::MAX)
        .unwrap()
        .into_iter()
        .find(|(_, c)| c.metadata.get("qstore.sim.kind").map(|k| k.as_str()) == Some("checkpoint"))
        .unwrap();
    repo.create_branch("c64r", &id.to_hex()).unwrap();
    let mut o = single("c64r");
    o.resume = true;
    assert!(run(&repo, &src, &p, &o).unwrap().resumed_from.is_some());
    assert_eq!(
        repo.reader("c64r", "final").unwrap().read_all().unwrap(),
        a_bytes(&repo)
    );
    // A complex128 run cannot resume a complex64 checkpoint.
    repo.create_branch("mixed", &id.to_hex()).unwrap();
    let e = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            branch: "mixed".into(),
            resume: true,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, SimError::BadCheckpoint { .. }), "{e}");
}

fn a_bytes(repo: &Repository) -> Vec<u8> {
    repo.reader("c64", "final").unwrap().read_all().unwrap()
}
