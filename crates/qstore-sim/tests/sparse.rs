//! The sparse engine: the same results as the dense one on random circuits (also with the
//! circuit moved past qubit 64, so multi-word indices are exercised), exact wide structured
//! states (GHZ, W, Bernstein-Vazirani written qubit by qubit, a ripple-carry adder on basis
//! states) at up to 1,000 qubits through `run`, `auto` switching to dense, the memory limit,
//! pruning, sparse checkpoints and resume, and wide counts of a study.

use num_complex::Complex64 as C;
use proptest::prelude::*;
use qstore::{Encoding, RepoConfig, Repository};
use qstore_sim::{
    Method, NoiseModel, QuantumState, RunOptions, SimError, SparseState, StateVector, StudyOptions,
    parse, run, study,
};
use rand::SeedableRng;

fn repo() -> Repository {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let k = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let name = format!("memory://sparse-{}-{k}", std::process::id());
    Repository::init(&name, RepoConfig::default()).unwrap()
}

/// The amplitudes of a stored state of any width: (index words, amplitude).
fn stored(repo: &Repository, branch: &str, path: &str) -> (Encoding, Vec<(Vec<u64>, C)>) {
    let mut r = repo.reader(branch, path).unwrap();
    let enc = r.entry().encoding;
    let w = r.read_sparse_wide().unwrap();
    let out = (0..w.len())
        .map(|k| {
            let v = &w.values[k * 16..k * 16 + 16];
            (
                w.basis_index(k).to_vec(),
                C::new(
                    f64::from_le_bytes(v[..8].try_into().unwrap()),
                    f64::from_le_bytes(v[8..].try_into().unwrap()),
                ),
            )
        })
        .collect();
    (enc, out)
}

/// Words of an index with only `bits` set, for an `n`-qubit state.
fn index(n: usize, bits: &[usize]) -> Vec<u64> {
    let mut w = vec![0u64; n.div_ceil(64)];
    for &b in bits {
        w[b / 64] |= 1 << (b % 64);
    }
    w
}

fn run_src(repo: &Repository, src: &str, branch: &str, method: Method) -> qstore_sim::RunReport {
    let p = parse(src).unwrap();
    run(
        repo,
        src,
        &p,
        &RunOptions {
            branch: branch.into(),
            method,
            ..Default::default()
        },
    )
    .unwrap()
}

const HEAD: &str = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\n";

fn ghz(n: usize) -> String {
    let mut s = format!("{HEAD}qreg q[{n}];\nh q[0];\n");
    for i in 0..n - 1 {
        s += &format!("cx q[{i}],q[{}];\n", i + 1);
    }
    s
}

/// W state: |1> at the top qubit, then each controlled-Ry leaves 1/(qubits left) of the
/// probability where it is and moves the rest one qubit down.
fn w_state(n: usize) -> String {
    let mut s = format!("{HEAD}qreg q[{n}];\nx q[{}];\n", n - 1);
    for i in (1..n).rev() {
        let phi = 2.0 * (1.0 / ((i + 1) as f64)).sqrt().acos();
        s += &format!(
            "cry({phi:.17}) q[{i}],q[{}];\ncx q[{}],q[{i}];\n",
            i - 1,
            i - 1
        );
    }
    s
}

/// Bernstein-Vazirani written qubit by qubit (the support stays at 2).
fn bv(secret: &[bool]) -> String {
    let n = secret.len();
    let mut s = format!("{HEAD}qreg q[{}];\nx q[{n}];\nh q[{n}];\n", n + 1);
    for (i, b) in secret.iter().enumerate() {
        s += &format!("h q[{i}];\n");
        if *b {
            s += &format!("cx q[{i}],q[{n}];\n");
        }
        s += &format!("h q[{i}];\n");
    }
    s
}

/// A ripple-carry adder (Vedral et al.) of two `n`-bit numbers: qubits a_i = 3i, b_i = 3i+1,
/// c_i = 3i+2, carry out c_n = 3n; leaves a + b in b and the carry out.
fn adder(n: usize, a: u128, b: u128) -> String {
    let (qa, qb, qc) = (|i: usize| 3 * i, |i: usize| 3 * i + 1, |i: usize| 3 * i + 2);
    let cn = 3 * n;
    let c = |i: usize| if i == n { cn } else { qc(i) };
    let mut s = format!("{HEAD}qreg q[{}];\n", 3 * n + 1);
    for i in 0..n {
        if a >> i & 1 == 1 {
            s += &format!("x q[{}];\n", qa(i));
        }
        if b >> i & 1 == 1 {
            s += &format!("x q[{}];\n", qb(i));
        }
    }
    let carry = |i: usize| {
        format!(
            "ccx q[{}],q[{}],q[{}];\ncx q[{}],q[{}];\nccx q[{}],q[{}],q[{}];\n",
            qa(i),
            qb(i),
            c(i + 1),
            qa(i),
            qb(i),
            c(i),
            qb(i),
            c(i + 1)
        )
    };
    let carry_inv = |i: usize| {
        format!(
            "ccx q[{}],q[{}],q[{}];\ncx q[{}],q[{}];\nccx q[{}],q[{}],q[{}];\n",
            c(i),
            qb(i),
            c(i + 1),
            qa(i),
            qb(i),
            qa(i),
            qb(i),
            c(i + 1)
        )
    };
    let sum = |i: usize| {
        format!(
            "cx q[{}],q[{}];\ncx q[{}],q[{}];\n",
            qa(i),
            qb(i),
            c(i),
            qb(i)
        )
    };
    for i in 0..n {
        s += &carry(i);
    }
    s += &format!("cx q[{}],q[{}];\n", qa(n - 1), qb(n - 1));
    s += &sum(n - 1);
    for i in (0..n - 1).rev() {
        s += &carry_inv(i);
        s += &sum(i);
    }
    s
}

#[test]
fn ghz_states_up_to_1000_qubits_are_two_amplitudes() {
    let repo = repo();
    for n in [40, 127, 1000] {
        let b = format!("ghz{n}");
        let r = run_src(&repo, &ghz(n), &b, Method::Auto);
        assert_eq!(
            (r.engine.as_str(), r.support, r.peak_support),
            ("sparse", 2, 2)
        );
        let (enc, amps) = stored(&repo, &b, "final");
        assert_eq!(enc, Encoding::Sparse);
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert_eq!(amps.len(), 2);
        assert_eq!(amps[0], (index(n, &[]), C::new(h, 0.0)));
        assert_eq!(amps[1].0, index(n, &(0..n).collect::<Vec<_>>()));
        assert!((amps[1].1 - C::new(h, 0.0)).norm() < 1e-15);
    }
}

#[test]
fn w_states_have_n_equal_amplitudes() {
    let repo = repo();
    for n in [36, 118, 380] {
        let b = format!("w{n}");
        let r = run_src(&repo, &w_state(n), &b, Method::Auto);
        assert_eq!((r.engine.as_str(), r.support), ("sparse", n as u64));
        let (_, amps) = stored(&repo, &b, "final");
        assert_eq!(amps.len(), n);
        let want = 1.0 / (n as f64).sqrt();
        for (k, (idx, a)) in amps.iter().enumerate() {
            assert_eq!(*idx, index(n, &[k]), "W-{n} entry {k}");
            assert!((a - C::new(want, 0.0)).norm() < 1e-12, "W-{n}: {a}");
        }
    }
}

#[test]
fn bernstein_vazirani_qubit_by_qubit_finds_its_secret() {
    let repo = repo();
    for n in [70, 300] {
        let secret: Vec<bool> = (0..n).map(|i| (i * 7 + 3) % 5 < 2).collect();
        let b = format!("bv{n}");
        let r = run_src(&repo, &bv(&secret), &b, Method::Sparse);
        assert_eq!(r.support, 2);
        let (_, amps) = stored(&repo, &b, "final");
        let ones: Vec<usize> = (0..n).filter(|&i| secret[i]).collect();
        let mut with_ancilla = ones.clone();
        with_ancilla.push(n);
        assert_eq!(amps[0].0, index(n + 1, &ones));
        assert_eq!(amps[1].0, index(n + 1, &with_ancilla));
        let h = std::f64::consts::FRAC_1_SQRT_2;
        assert!((amps[0].1 - C::new(h, 0.0)).norm() < 1e-12);
        assert!((amps[1].1 - C::new(-h, 0.0)).norm() < 1e-12);
    }
}

#[test]
fn adders_on_basis_states_add() {
    let repo = repo();
    for (n, a, b) in [
        (4usize, 9u128, 7u128),
        (40, 0xde_adbe_ef01, 0x77_1234_5678),
        (100, (1 << 100) - 3, 5),
    ] {
        let br = format!("add{n}");
        let r = run_src(&repo, &adder(n, a, b), &br, Method::Auto);
        assert_eq!((r.engine.as_str(), r.support), ("sparse", 1));
        let (_, amps) = stored(&repo, &br, "final");
        assert_eq!(amps.len(), 1);
        assert_eq!(amps[0].1, C::new(1.0, 0.0));
        let words = &amps[0].0;
        let bit = |q: usize| words[q / 64] >> (q % 64) & 1 == 1;
        let sum: u128 = (0..n).map(|i| u128::from(bit(3 * i + 1)) << i).sum();
        let carry = bit(3 * n);
        let mask = if n == 128 {
            u128::MAX
        } else {
            (1u128 << n) - 1
        };
        assert_eq!(sum, (a + b) & mask, "adder {n}: b register");
        assert_eq!(carry, (a + b) >> n & 1 == 1, "adder {n}: carry out");
        for i in 0..n {
            assert_eq!(bit(3 * i), a >> i & 1 == 1, "a is kept");
            assert!(!bit(3 * i + 2), "carries are cleared");
        }
    }
}

#[test]
fn auto_switches_to_dense_on_a_dense_circuit_and_agrees_with_sparse() {
    let repo = repo();
    let n = 12;
    let mut src = format!("{HEAD}qreg q[{n}];\nh q;\n");
    for j in (0..n).rev() {
        src += &format!("h q[{j}];\n");
        for k in (0..j).rev() {
            src += &format!("cp(pi/{}) q[{k}],q[{j}];\n", 1u64 << (j - k));
        }
    }
    let auto = run_src(&repo, &src, "auto", Method::Auto);
    assert_eq!(auto.engine, "dense");
    assert!(auto.switched_at.is_some());
    let sparse = run_src(&repo, &src, "sparse", Method::Sparse);
    assert_eq!(sparse.engine, "sparse");
    let dense = run_src(&repo, &src, "dense", Method::Dense);
    assert_eq!(dense.switched_at, None);
    let read = |b: &str| {
        let v = repo.reader(b, "final").unwrap().read_all().unwrap();
        bytemuck::cast_slice::<u8, C>(&v).to_vec()
    };
    let (a, s, d) = (read("auto"), read("sparse"), read("dense"));
    for k in 0..a.len() {
        assert!((a[k] - d[k]).norm() < 1e-12 && (s[k] - d[k]).norm() < 1e-12);
    }
}

#[test]
fn rotations_that_cancel_leave_no_rounding_noise() {
    // ry(t) then ry(-t) on amplitudes of 1/sqrt(3) (not 1): exact arithmetic gives the state
    // back, floating point leaves ~1e-17 on the other half unless it is recognised as noise.
    let mut s = SparseState::<1>::zero(40);
    let third = (1.0f64 / 3.0).sqrt();
    let src = format!("{HEAD}qreg q[40];\nry({}) q[0];\n", 2.0 * third.acos());
    let p = parse(&src).unwrap();
    let mut cl = vec![];
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    for (op, _) in &p.ops {
        s.run(op, &mut cl, &mut rng);
    }
    for q in 1..40u32 {
        let t = 0.1 + f64::from(q) * 0.037;
        for angle in [t, -t] {
            let src = format!("{HEAD}qreg q[40];\nry({angle:.17}) q[{q}];\n");
            for (op, _) in &parse(&src).unwrap().ops {
                s.run(op, &mut cl, &mut rng);
            }
        }
        assert_eq!(s.len(), 2, "after qubit {q}");
    }
    assert!((s.entries()[0].1.re - third).abs() < 1e-15);
    // A small amplitude that is not a cancellation is kept.
    let src = format!("{HEAD}qreg q[40];\nry(1e-20) q[5];\n");
    for (op, _) in &parse(&src).unwrap().ops {
        s.run(op, &mut cl, &mut rng);
    }
    assert_eq!(s.len(), 4);
}

#[test]
fn the_memory_limit_refuses_before_allocating_and_names_the_line() {
    let repo = repo();
    let n = 70;
    let src = format!("{HEAD}qreg q[{n}];\nh q;\n");
    let p = parse(&src).unwrap();
    let e = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            memory_limit: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap_err();
    let SimError::OutOfMemory(m) = &e else {
        panic!("{e}")
    };
    assert!(m.contains("line 4") && m.contains("70 qubits"), "{m}");
    // An explicit dense run of too many qubits is refused up front.
    let e = run(
        &repo,
        &ghz(40),
        &parse(&ghz(40)).unwrap(),
        &RunOptions {
            method: Method::Dense,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, SimError::TooManyQubits(40, 34)), "{e}");
    let e = run(
        &repo,
        &ghz(20),
        &parse(&ghz(20)).unwrap(),
        &RunOptions {
            method: Method::Dense,
            memory_limit: Some(1 << 20),
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(e, SimError::OutOfMemory(_)), "{e}");
}

#[test]
fn pruning_drops_dust_and_reports_its_mass() {
    let repo = repo();
    let n = 80;
    let mut src = format!("{HEAD}qreg q[{n}];\n");
    for i in 0..n {
        src += &format!("ry(2e-7) q[{i}];\n");
    }
    let p = parse(&src).unwrap();
    let r = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            method: Method::Sparse,
            prune_below: Some(1e-6),
            ..Default::default()
        },
    )
    .unwrap();
    // Every rotation leaves 1e-7 of amplitude (1e-14 of probability) that is dropped.
    assert_eq!(r.support, 1);
    assert!(
        (r.pruned_mass / (n as f64 * 1e-14) - 1.0).abs() < 1e-6,
        "{}",
        r.pruned_mass
    );
    let head = repo.log("main", 1).unwrap();
    let m: f64 = head[0].1.metadata["qstore.sim.pruned_mass"]
        .parse()
        .unwrap();
    assert_eq!(m, r.pruned_mass);
    // Without pruning nothing is dropped: 2^80 amplitudes cannot fit, and the run says so.
    let small = RunOptions {
        memory_limit: Some(64 << 20),
        ..Default::default()
    };
    let e = run(&repo, &src, &p, &small).unwrap_err();
    assert!(matches!(e, SimError::OutOfMemory(_)), "{e}");
}

#[test]
fn sparse_checkpoints_resume_bit_identical() {
    let repo = repo();
    let n = 200;
    let src = format!(
        "{}creg c[2];\nmeasure q[5] -> c[0];\nif (c == 1) x q[199];\nreset q[3];\n",
        w_state(n)
    );
    let p = parse(&src).unwrap();
    let base = RunOptions {
        seed: 4,
        ..Default::default()
    };
    let full = run(
        &repo,
        &src,
        &p,
        &RunOptions {
            branch: "full".into(),
            ..base.clone()
        },
    )
    .unwrap();
    let opts = RunOptions {
        branch: "ck".into(),
        checkpoint_every: Some(qstore_sim::Every::Ops(37)),
        ..base.clone()
    };
    let r = run(&repo, &src, &p, &opts).unwrap();
    assert!(r.checkpoints >= 10);
    // Checkpoints are sparse: bytes, not 2^200 of anything.
    let log = repo.log("ck", usize::MAX).unwrap();
    let (enc, _) = stored(&repo, &log[1].0.to_hex(), "checkpoints/state");
    assert_eq!(enc, Encoding::Sparse);
    assert!(r.checkpoint_bytes < 200 * 1024 * r.checkpoints as u64);
    let want = stored(&repo, "full", "final");
    assert_eq!(stored(&repo, "ck", "final"), want);
    for (i, (id, c)) in log.iter().enumerate() {
        if c.metadata.get("qstore.sim.kind").map(String::as_str) != Some("checkpoint") {
            continue;
        }
        assert_eq!(c.metadata["qstore.sim.engine"], "sparse");
        let b = format!("resume{i}");
        repo.create_branch(&b, &id.to_hex()).unwrap();
        let rr = run(
            &repo,
            &src,
            &p,
            &RunOptions {
                branch: b.clone(),
                resume: true,
                ..base.clone()
            },
        )
        .unwrap();
        assert!(rr.resumed_from.is_some());
        assert_eq!(
            stored(&repo, &b, "final"),
            want,
            "resumed from checkpoint {i}"
        );
        assert_eq!(rr.clbits, full.clbits);
    }
}

#[test]
fn studies_of_wide_circuits_store_sparse_counts() {
    let repo = repo();
    let n = 100;
    let src = format!("{}creg c[{n}];\nmeasure q -> c;\n", ghz(n));
    let p = parse(&src).unwrap();
    let r = study(
        &repo,
        &src,
        &p,
        &StudyOptions {
            trajectories: 64,
            shots: 4,
            seed: 3,
            noise: NoiseModel::default(),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!((r.sparse_trajectories, r.outcomes, r.shots), (64, 2, 256));
    let mut rd = repo.reader("main", "study/counts").unwrap();
    assert_eq!(rd.entry().shape, vec![2, 3]);
    assert_eq!(rd.entry().tags["layout"], "sparse-counts");
    assert_eq!(rd.entry().tags["outcome_bits"], "100");
    let table: Vec<u64> = bytemuck::cast_slice(&rd.read_all().unwrap()).to_vec();
    assert_eq!(&table[..2], &[0, 0]);
    assert_eq!(&table[3..5], &[u64::MAX, (1 << 36) - 1]);
    assert_eq!(table[2] + table[5], 256);
    assert!(table[2] > 64 && table[5] > 64);
}

/// Run `ops` of a parsed program on the dense engine, and on the sparse one with every qubit
/// moved up by `shift`.
fn both(src: &str, shift: u32) -> (StateVector, SparseState<2>, Vec<bool>, Vec<bool>) {
    let p = parse(src).unwrap();
    let mut d = StateVector::<f64>::zero(p.qubits);
    let mut s = SparseState::<2>::zero(p.qubits + shift as usize);
    let (mut cd, mut cs) = (vec![false; p.clbits], vec![false; p.clbits]);
    let mut rd = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let mut rs = rand_chacha::ChaCha8Rng::seed_from_u64(5);
    let moved = |op: &qstore_sim::Op| shift_op(op, shift);
    for (op, _) in &p.ops {
        d.run(op, &mut cd, &mut rd);
        s.run(&moved(op), &mut cs, &mut rs);
    }
    (d, s, cd, cs)
}

fn shift_op(op: &qstore_sim::Op, k: u32) -> qstore_sim::Op {
    use qstore_sim::{Gate, Op};
    let g = |g: &Gate| match g {
        Gate::Unitary {
            m,
            target,
            controls,
        } => Gate::Unitary {
            m: *m,
            target: target + k,
            controls: controls.iter().map(|c| c + k).collect(),
        },
        Gate::Swap { a, b, controls } => Gate::Swap {
            a: a + k,
            b: b + k,
            controls: controls.iter().map(|c| c + k).collect(),
        },
        Gate::Diag2 { d, a, b } => Gate::Diag2 {
            d: *d,
            a: a + k,
            b: b + k,
        },
    };
    match op {
        Op::Gate(x) => Op::Gate(g(x)),
        Op::Measure { qubit, clbit } => Op::Measure {
            qubit: qubit + k,
            clbit: *clbit,
        },
        Op::Reset { qubit } => Op::Reset { qubit: qubit + k },
        Op::Barrier => Op::Barrier,
        Op::If {
            start,
            size,
            value,
            op,
        } => Op::If {
            start: *start,
            size: *size,
            value: *value,
            op: Box::new(shift_op(op, k)),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn sparse_and_dense_agree_on_random_circuits(
        n in 2usize..7,
        shift in prop_oneof![Just(0u32), Just(60u32), Just(100u32)],
        gates in proptest::collection::vec((0usize..12, 0usize..7, 0usize..7, 0usize..7, -4.0f64..4.0), 1..50),
    ) {
        let mut src = format!("{HEAD}qreg q[{n}];\ncreg c[{n}];\n");
        for (g, a, b, c, t) in &gates {
            let (a, b, c) = (a % n, b % n, c % n);
            let distinct = a != b && b != c && a != c;
            src += &match g {
                0 => format!("h q[{a}];\n"),
                1 => format!("u3({t},{t}*2,-{t}/3) q[{a}];\n"),
                2 => format!("x q[{a}];\n"),
                3 => format!("y q[{a}];\n"),
                4 => format!("rz({t}) q[{a}];\nt q[{b}];\n"),
                5 if a != b => format!("cx q[{a}],q[{b}];\n"),
                6 if a != b => format!("rzz({t}) q[{a}],q[{b}];\nswap q[{a}],q[{b}];\n"),
                7 if distinct => format!("ccx q[{a}],q[{b}],q[{c}];\ncswap q[{a}],q[{b}],q[{c}];\n"),
                8 if a != b => format!("cry({t}) q[{a}],q[{b}];\nrxx({t}) q[{a}],q[{b}];\n"),
                9 => format!("measure q[{a}] -> c[{a}];\n"),
                10 => format!("reset q[{a}];\n"),
                _ => format!("if (c == {}) h q[{a}];\n", b % 4),
            };
        }
        let (d, s, cd, cs) = both(&src, shift);
        prop_assert_eq!(cd, cs);
        let mut want = vec![C::new(0.0, 0.0); 1 << n];
        for (i, a) in s.entries() {
            prop_assert!(i.0[0] & ((1u64 << shift.min(63)) - 1) == 0 || shift == 0);
            let mut k = *i;
            let mut idx = 0usize;
            for q in 0..n as u32 {
                if k.bit(q + shift) {
                    idx |= 1 << q;
                    k.set(q + shift, false);
                }
            }
            prop_assert_eq!(k, qstore_sim::Basis::ZERO);
            want[idx] = *a;
        }
        for (x, y) in d.amps.iter().zip(&want) {
            prop_assert!((x - y).norm() < 1e-12, "{} vs {}", x, y);
        }
    }
}

#[test]
fn noisy_trajectories_run_on_the_sparse_engine() {
    let repo = repo();
    let mut noise = NoiseModel::default();
    noise.add("depolarizing:p1=0.01,p2=0.05").unwrap();
    noise.add("amplitude_damping:gamma=0.01").unwrap();
    noise.add("readout:p=0.01").unwrap();
    // The same seed gives the same counts on either engine (the same random draws).
    let small = format!("{}creg c[6];\nmeasure q -> c;\n", ghz(6));
    let p = parse(&small).unwrap();
    let counts = |method: Method, branch: &str| {
        let r = study(
            &repo,
            &small,
            &p,
            &StudyOptions {
                branch: branch.into(),
                trajectories: 300,
                seed: 9,
                noise,
                method,
                ..Default::default()
            },
        )
        .unwrap();
        let v = repo
            .reader(branch, "study/counts")
            .unwrap()
            .read_all()
            .unwrap();
        (r, v)
    };
    let (rs, sparse) = counts(Method::Sparse, "s");
    let (rd, dense) = counts(Method::Dense, "d");
    assert_eq!((rs.sparse_trajectories, rd.sparse_trajectories), (300, 0));
    assert_eq!(sparse, dense);
    assert!(rs.outcomes > 2, "noise spreads the outcomes");
    assert!(rs.error_free < 300);
    // A 60-qubit GHZ under the same noise: errors give outcomes besides all-0 and all-1.
    let wide = format!("{}creg c[60];\nmeasure q -> c;\n", ghz(60));
    let r = study(
        &repo,
        &wide,
        &parse(&wide).unwrap(),
        &StudyOptions {
            branch: "wide".into(),
            trajectories: 100,
            seed: 2,
            noise,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(r.sparse_trajectories, 100);
    assert!(r.outcomes > 2 && r.error_free < 100, "{r:?}");
    let e = repo.reader("wide", "study/counts").unwrap().entry().clone();
    assert_eq!(e.tags["layout"], "sparse-counts");
}
