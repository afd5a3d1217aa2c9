//! The OpenQASM front end reads files users hand it: whatever the bytes, it returns a program
//! or an error naming a line, never panics, and never builds something the simulator cannot
//! hold (register sizes, nesting and parameter values are bounded).

use proptest::prelude::*;
use qstore_sim::{QuantumState, parse};

const WORDS: &[&str] = &[
    "OPENQASM",
    "2.0",
    "3.0",
    "include",
    "\"qelib1.inc\"",
    "qreg",
    "creg",
    "q",
    "c",
    "[",
    "]",
    "2",
    "3",
    "999999999999",
    "0",
    ";",
    ",",
    "(",
    ")",
    "{",
    "}",
    "->",
    "==",
    "gate",
    "opaque",
    "measure",
    "reset",
    "barrier",
    "if",
    "h",
    "cx",
    "u3",
    "rz",
    "ccx",
    "swap",
    "pi",
    "+",
    "-",
    "*",
    "/",
    "^",
    "sin",
    "1e308",
    "0.5",
    "\n",
    "//",
    "/*",
    "*/",
    "U",
    "CX",
    "x",
    "a",
    "b",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(s in "\\PC{0,400}") {
        let _ = parse(&s);
    }

    #[test]
    fn token_soup_never_panics(words in proptest::collection::vec(0..WORDS.len(), 0..120)) {
        let src: Vec<&str> = words.iter().map(|&i| WORDS[i]).collect();
        if let Err(e) = parse(&src.join(" ")) {
            prop_assert!(e.line >= 1);
        }
    }

    #[test]
    fn valid_programs_parse_and_run(
        n in 1usize..6,
        gates in proptest::collection::vec((0usize..6, 0usize..6, 0usize..6, -10.0f64..10.0), 0..40),
    ) {
        let mut src = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\ncreg c[{n}];\n");
        for (g, a, b, t) in &gates {
            let (a, b) = (a % n, b % n);
            src += &match g {
                0 => format!("h q[{a}];\n"),
                1 => format!("rz({t}) q[{a}];\n"),
                2 => format!("u3({t},{t}*2,-{t}/3) q[{a}];\n"),
                3 if a != b => format!("cx q[{a}],q[{b}];\n"),
                4 if a != b => format!("rzz({t}) q[{a}],q[{b}];\n"),
                _ => format!("measure q[{a}] -> c[{a}];\n"),
            };
        }
        let p = parse(&src).unwrap();
        let mut s = qstore_sim::StateVector::<f64>::zero(p.qubits);
        let mut cl = vec![false; p.clbits];
        let mut rng = <rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(1);
        for (op, _) in &p.ops {
            s.run(op, &mut cl, &mut rng);
        }
        let norm: f64 = s.amps.iter().map(|a| a.norm_sqr()).sum();
        prop_assert!((norm - 1.0).abs() < 1e-9);
    }
}

#[test]
fn limits_are_refused_with_a_message() {
    let deep = format!(
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nrz({}1{}) q[0];",
        "(".repeat(5000),
        ")".repeat(5000)
    );
    assert!(parse(&deep).unwrap_err().msg.contains("nested too deeply"));
    let big = "OPENQASM 2.0;\nqreg q[100000000000];";
    assert!(parse(big).unwrap_err().msg.contains("more than 1024"));
    // Registers past 64 bits are fine, in `if` too.
    let wide_if =
        "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\ncreg c[100];\nif (c == 1) x q[0];";
    assert_eq!(parse(wide_if).unwrap().clbits, 100);
    let inf = "OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[1];\nrz(1e308*10) q[0];";
    assert!(parse(inf).unwrap_err().msg.contains("evaluates to inf"));
}

#[test]
fn noise_specs_are_checked() {
    let mut m = qstore_sim::NoiseModel::default();
    m.add("depolarizing:p1=1e-3,p2=0.01").unwrap();
    m.add("amplitude_damping:gamma=0.1").unwrap();
    assert_eq!((m.p1, m.p2, m.amplitude_damping), (1e-3, 0.01, 0.1));
    for bad in [
        "depolarizing:p1=2",
        "depolarizing:p1=abc",
        "depolarizing:p3=0.1",
        "thermal:t=1",
        "readout:p",
        "readout:p=-0.1",
    ] {
        assert!(qstore_sim::NoiseModel::default().add(bad).is_err(), "{bad}");
    }
}

proptest! {
    #[test]
    fn arbitrary_noise_specs_never_panic(s in "\\PC{0,60}") {
        let _ = qstore_sim::NoiseModel::default().add(&s);
    }
}
