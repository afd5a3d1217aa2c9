//! The QIR front end: both pointer styles read to the same operations; adaptive control flow
//! (`read_result`, `br i1`, `phi`, `select`, `icmp`, integer and double arithmetic) decides
//! the operations from the results; the output schema; `rxx`/`ryy` against their definition;
//! hostile and malformed programs refused with a line, never a panic; the parser against
//! arbitrary text and token soup.

use num_complex::Complex64 as C;
use proptest::prelude::*;
use qstore_sim::qir::{Machine, Step, interp, load, parse, to_program};
use qstore_sim::{Gate, Op, StateVector};
use std::path::Path;

const TYPED: &str = r#"
%Qubit = type opaque
%Result = type opaque

@0 = internal constant [3 x i8] c"r0\00"

define void @ENTRYPOINT__main() #0 {
block_0:
  call void @__quantum__rt__initialize(i8* null)
  call void @__quantum__qis__h__body(%Qubit* inttoptr (i64 0 to %Qubit*))
  call void @__quantum__qis__cx__body(%Qubit* inttoptr (i64 0 to %Qubit*), %Qubit* inttoptr (i64 1 to %Qubit*))
  call void @__quantum__qis__rx__body(double 0x3FD3333333333333, %Qubit* inttoptr (i64 1 to %Qubit*))
  call void @__quantum__qis__mz__body(%Qubit* inttoptr (i64 0 to %Qubit*), %Result* inttoptr (i64 0 to %Result*)) #1
  call void @__quantum__rt__result_record_output(%Result* inttoptr (i64 0 to %Result*), i8* getelementptr inbounds ([3 x i8], [3 x i8]* @0, i64 0, i64 0))
  ret void
}

declare void @__quantum__qis__h__body(%Qubit*)

attributes #0 = { "entry_point" "output_labeling_schema" "qir_profiles"="base_profile" "required_num_qubits"="2" "required_num_results"="1" }
attributes #1 = { "irreversible" }
"#;

const OPAQUE: &str = r#"
@0 = internal constant [3 x i8] c"r0\00"

define void @main() #0 {
entry:
  call void @__quantum__rt__initialize(ptr null)
  br label %body
body:                                             ; preds = %entry
  call void @__quantum__qis__h__body(ptr null)
  call void @__quantum__qis__cnot__body(ptr null, ptr inttoptr (i64 1 to ptr))
  call void @__quantum__qis__rx__body(double 3.000000e-01, ptr inttoptr (i64 1 to ptr))
  br label %measurements
measurements:
  call void @__quantum__qis__mz__body(ptr null, ptr writeonly null)
  br label %output
output:
  call void @__quantum__rt__result_record_output(ptr null, ptr @0)
  ret void
}

attributes #0 = { "entry_point" "output_labeling_schema" "qir_profiles"="base_profile" "required_num_qubits"="2" "required_num_results"="1" }
"#;

/// Measure q0 after X (result 1), then branch: x on q1 if set, and compute an angle through
/// phi, select, icmp, add, sitofp and fmul for an rx on q2.
const ADAPTIVE: &str = r#"
define void @main() #0 {
entry:
  call void @__quantum__qis__x__body(ptr null)
  call void @__quantum__qis__mz__body(ptr null, ptr null)
  %0 = call i1 @__quantum__qis__read_result__body(ptr null)
  br i1 %0, label %then, label %else
then:
  call void @__quantum__qis__x__body(ptr inttoptr (i64 1 to ptr))
  br label %join
else:
  br label %join
join:
  %k = phi i64 [ 3, %then ], [ 5, %else ]
  %k2 = add nsw i64 %k, 1
  %big = icmp sgt i64 %k2, 4
  %m = select i1 %big, i64 100, i64 %k2
  %f = sitofp i64 %m to double
  %theta = fmul double %f, 2.500000e-01
  call void @__quantum__qis__rx__body(double %theta, ptr inttoptr (i64 2 to ptr))
  %z = zext i1 %0 to i64
  call void @__quantum__rt__int_record_output(i64 %z, ptr null)
  call void @__quantum__rt__double_record_output(double %theta, ptr null)
  call void @__quantum__rt__bool_record_output(i1 %big, ptr null)
  ret void
}

attributes #0 = { "entry_point" "qir_profiles"="adaptive_profile" "required_num_qubits"="3" "required_num_results"="1" }
"#;

fn ops(src: &str) -> Vec<Op> {
    let m = load(Path::new("t.ll"), src).unwrap();
    to_program(&m, "t.ll")
        .unwrap()
        .unwrap()
        .ops
        .into_iter()
        .map(|(o, _)| o)
        .collect()
}

#[test]
fn typed_and_opaque_pointers_give_the_same_operations() {
    let (a, b) = (ops(TYPED), ops(OPAQUE));
    assert_eq!(a, b);
    assert_eq!(a.len(), 4);
    assert_eq!(a[3], Op::Measure { qubit: 0, clbit: 0 });
    // The hex double is the IEEE bits of 0.3.
    let Op::Gate(Gate::Unitary { m, .. }) = &a[2] else {
        panic!("{:?}", a[2])
    };
    assert!((m[0].re - (0.15f64).cos()).abs() < 1e-15);
    let m = parse(TYPED).unwrap();
    assert_eq!(m.entry, "ENTRYPOINT__main");
    assert_eq!((m.required_qubits, m.required_results), (Some(2), Some(1)));
    assert_eq!(
        m.attributes[2],
        ("qir_profiles".into(), Some("base_profile".into()))
    );
}

/// Run `src` with the results measured set as `results` says (result r reads results[r]).
fn drive(src: &str, results: &[bool]) -> (Vec<Op>, Machine) {
    let m = load(Path::new("t.ll"), src).unwrap();
    let mut mach = Machine::new();
    let mut clbits = vec![false; results.len()];
    let mut out = Vec::new();
    loop {
        match mach.step(&m, 3, &clbits).unwrap() {
            Step::End => break,
            Step::Checkpoint(..) => {}
            Step::Op(op, _) => {
                if let Op::Measure { clbit, .. } = op {
                    clbits[clbit as usize] = results[clbit as usize];
                }
                out.push(op);
            }
        }
    }
    (out, mach)
}

fn rx_angle(op: &Op) -> f64 {
    let Op::Gate(Gate::Unitary { m, .. }) = op else {
        panic!("{op:?}")
    };
    2.0 * m[0].re.acos()
}

#[test]
fn adaptive_programs_follow_the_results() {
    // Result 1: x on q1; k = 3 -> 4 -> not > 4 -> m = 4 -> theta = 1.0.
    let (ops1, m1) = drive(ADAPTIVE, &[true]);
    assert_eq!(ops1.len(), 4);
    assert!(matches!(
        &ops1[2],
        Op::Gate(Gate::Unitary { target: 1, .. })
    ));
    assert!((rx_angle(&ops1[3]) - 1.0).abs() < 1e-12);
    // Result 0: no x; k = 5 -> 6 -> > 4 -> m = 100 -> theta = 25.
    let (ops0, m0) = drive(ADAPTIVE, &[false]);
    assert_eq!(ops0.len(), 3);
    let t = rx_angle(&ops0[2]);
    // rx(25) is rx(25 - 4 pi) up to a sign: compare cos(theta / 2) exactly.
    let Op::Gate(Gate::Unitary { m, .. }) = &ops0[2] else {
        panic!()
    };
    assert!((m[0].re - (12.5f64).cos()).abs() < 1e-12, "{t}");
    let module = load(Path::new("t.ll"), ADAPTIVE).unwrap();
    let text1 = m1.output_text(&module);
    assert!(text1.contains("OUTPUT\tINT\t1\n"), "{text1}");
    assert!(text1.contains("OUTPUT\tDOUBLE\t1.0\n"), "{text1}");
    assert!(text1.contains("OUTPUT\tBOOL\tfalse\n"), "{text1}");
    let text0 = m0.output_text(&module);
    assert!(
        text0.contains("OUTPUT\tINT\t0\n") && text0.contains("OUTPUT\tBOOL\ttrue\n"),
        "{text0}"
    );
    assert!(
        text0.starts_with(
            "START\nMETADATA\tentry_point\nMETADATA\tqir_profiles\tadaptive_profile\n"
        )
    );
    assert!(text0.ends_with("END\t0\n"));
    // Adaptive programs do not unroll.
    assert!(to_program(&module, "t.ll").unwrap().is_none());
    // The machine's position survives a round trip through JSON (what a checkpoint stores).
    let json = serde_json::to_string(&m1).unwrap();
    assert_eq!(serde_json::from_str::<Machine>(&json).unwrap(), m1);
}

/// The 4x4 matrix of `gates` on qubits 0 and 1 (column k = the image of |k>).
fn unitary(gates: &[Gate]) -> Vec<C> {
    let mut u = vec![C::new(0.0, 0.0); 16];
    for k in 0..4 {
        let mut s = StateVector::<f64>::zero(2);
        let a: &mut [f64] = bytemuck::cast_slice_mut(s.as_bytes_mut());
        a.iter_mut().for_each(|x| *x = 0.0);
        a[2 * k] = 1.0;
        for g in gates {
            s.apply(g);
        }
        let a: &[f64] = bytemuck::cast_slice(s.as_bytes());
        for r in 0..4 {
            u[r * 4 + k] = C::new(a[2 * r], a[2 * r + 1]);
        }
    }
    u
}

#[test]
fn rxx_and_ryy_equal_their_definition() {
    for theta in [0.3, 1.7, -2.2] {
        for (name, pauli) in [
            ("rxx", [[0.0, 1.0], [1.0, 0.0]]),
            ("ryy", [[0.0, 0.0], [0.0, 0.0]]),
        ] {
            let parts = interp::parts(name, &[theta], &[0, 1], 1);
            let gates: Vec<Gate> = parts
                .iter()
                .map(|p| {
                    Gate::builtin(&p.name, &p.v, &p.qs)
                        .unwrap()
                        .unwrap()
                        .remove(0)
                })
                .collect();
            let u = unitary(&gates);
            // exp(-i t/2 P x P) = cos(t/2) I - i sin(t/2) P x P.
            let p1: [[C; 2]; 2] = if name == "rxx" {
                [
                    [C::new(pauli[0][0], 0.0), C::new(pauli[0][1], 0.0)],
                    [C::new(pauli[1][0], 0.0), C::new(pauli[1][1], 0.0)],
                ]
            } else {
                [
                    [C::new(0.0, 0.0), C::new(0.0, -1.0)],
                    [C::new(0.0, 1.0), C::new(0.0, 0.0)],
                ]
            };
            let (c, s) = ((theta / 2.0).cos(), (theta / 2.0).sin());
            for r in 0..4 {
                for k in 0..4 {
                    // basis |b1 b0>: qubit 0 is bit 0.
                    let pp = p1[r & 1][k & 1] * p1[r >> 1][k >> 1];
                    let want = if r == k {
                        C::new(c, 0.0)
                    } else {
                        C::new(0.0, 0.0)
                    } - C::new(0.0, s) * pp;
                    assert!(
                        (u[r * 4 + k] - want).norm() < 1e-12,
                        "{name}({theta}) [{r},{k}]: {} vs {want}",
                        u[r * 4 + k]
                    );
                }
            }
        }
    }
}

fn refused(src: &str) -> (usize, String) {
    match load(Path::new("bad.ll"), src) {
        Err(qstore_sim::SimError::Qir { line, message, .. }) => (line, message),
        Err(e) => (0, e.to_string()),
        Ok(m) => {
            // Some refusals come only when the program runs.
            let mut mach = Machine::new();
            let clbits = vec![false; 4];
            for _ in 0..1000 {
                match mach.step(&m, 2, &clbits) {
                    Err(e) => return (e.line, e.message),
                    Ok(Step::End) => panic!("ran: {src}"),
                    Ok(_) => {}
                }
            }
            panic!("neither refused nor finished: {src}")
        }
    }
}

#[test]
fn hostile_and_malformed_programs_are_refused_with_their_line() {
    let base = |body: &str, attrs: &str| {
        format!(
            "define void @main() #0 {{\nentry:\n{body}\n  ret void\n}}\nattributes #0 = {{ \"entry_point\" {attrs} }}\n"
        )
    };
    let (l, m) = refused(&base(
        "  call void @__quantum__qis__frobnicate__body(ptr null)",
        "\"required_num_qubits\"=\"1\"",
    ));
    assert_eq!(l, 3, "{m}");
    assert!(m.contains("unknown intrinsic"), "{m}");
    let (_, m) = refused(&base("", "\"required_num_qubits\"=\"100000000\""));
    assert!(m.contains("too many"), "{m}");
    let (l, m) = refused(&base("  %x = frob i64 1, 2", ""));
    assert_eq!(l, 3);
    assert!(m.contains("not in the supported QIR subset"), "{m}");
    let (l, m) = refused(&base(
        "  call void @__quantum__qis__h__body(ptr inttoptr (i64 7 to ptr))",
        "\"required_num_qubits\"=\"2\"",
    ));
    assert_eq!(l, 3);
    assert!(m.contains("qubit 7"), "{m}");
    // Recursion: the entry point calls itself.
    let (l, m) = refused(&base("  call void @main()", ""));
    assert_eq!(l, 3);
    assert!(m.contains("defined in the program"), "{m}");
    // No entry point; two entry points; truncated bodies.
    assert!(
        refused("define void @f() {\nentry:\n  ret void\n}\n")
            .1
            .contains("no entry point")
    );
    let two = format!(
        "{}{}",
        base("", ""),
        base("", "")
            .replace("@main", "@main2")
            .replace("attributes #0 = { \"entry_point\"  }\n", "")
    );
    assert!(
        refused(&two).1.contains("more than one entry point"),
        "{}",
        refused(&two).1
    );
    let full = OPAQUE;
    for cut in [40, full.len() / 2, full.len() - 200, full.len() - 120] {
        let (_, m) = refused(&full[..cut]);
        assert!(!m.is_empty());
    }
    // A branch to nowhere, a block without a terminator, a use before definition.
    assert!(
        refused(&base("  br label %nowhere\nx:", ""))
            .1
            .contains("unknown block")
    );
    let (l, m) = refused(
        "define void @main() #0 {\nentry:\n  call void @__quantum__rt__initialize(ptr null)\n}\nattributes #0 = { \"entry_point\" }\n",
    );
    assert!(m.contains("does not end with"), "{l} {m}");
    let (l, m) = refused(&base(
        "  call void @__quantum__qis__rx__body(double %nope, ptr null)",
        "\"required_num_qubits\"=\"1\"",
    ));
    assert_eq!(l, 3);
    assert!(m.contains("before it has a value"), "{m}");
}

#[test]
fn endless_loops_stop_at_the_step_limit() {
    let src = "define void @main() #0 {\nentry:\n  br label %loop\nloop:\n  %i = phi i64 [ 0, %entry ], [ %j, %loop ]\n  %j = add i64 %i, 1\n  br label %loop\n}\nattributes #0 = { \"entry_point\" \"required_num_qubits\"=\"1\" }\n";
    let m = load(Path::new("loop.ll"), src).unwrap();
    let mut mach = Machine::new();
    mach.steps = interp::MAX_STEPS - 1000;
    let e = loop {
        match mach.step(&m, 1, &[]) {
            Err(e) => break e,
            Ok(Step::End) => panic!("a loop ended"),
            Ok(_) => {}
        }
    };
    assert!(e.message.contains("endless loop"), "{}", e.message);
    assert!(mach.vars.contains_key("i"));
}

const SOUP: &[&str] = &[
    "define",
    "void",
    "@main",
    "()",
    "#0",
    "{",
    "}",
    "entry:",
    "call",
    "@__quantum__qis__h__body",
    "(",
    ")",
    "ptr",
    "null",
    "inttoptr",
    "i64",
    "1",
    "to",
    ",",
    "br",
    "label",
    "%x",
    "i1",
    "%0",
    "=",
    "phi",
    "[",
    "]",
    "select",
    "icmp",
    "eq",
    "add",
    "double",
    "0x3FF0000000000000",
    "ret",
    "attributes",
    "\"entry_point\"",
    "\"required_num_qubits\"=\"2\"",
    "\n",
    "\n",
    "x:",
    "getelementptr",
    "inbounds",
    "[3 x i8]",
    "@0",
    "c\"ab\\00\"",
    "%Qubit*",
    "*",
    "fadd",
    "zext",
    "unreachable",
];

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_parser_never_panics_on_arbitrary_text(s in "\\PC{0,400}") {
        let _ = parse(&s);
        let _ = load(Path::new("p.ll"), &s);
    }

    #[test]
    fn the_parser_and_interpreter_never_panic_on_token_soup(
        words in proptest::collection::vec(0..SOUP.len(), 0..120)
    ) {
        let s: String = words.iter().map(|&i| SOUP[i]).collect::<Vec<_>>().join(" ");
        if let Ok(m) = load(Path::new("p.ll"), &s) {
            let mut mach = Machine::new();
            let clbits = vec![false; 4];
            for _ in 0..200 {
                match mach.step(&m, 2, &clbits) {
                    Ok(Step::End) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    }

    #[test]
    fn cut_programs_are_refused_or_run_never_panic(cut in 0usize..OPAQUE.len()) {
        let _ = load(Path::new("p.ll"), &OPAQUE[..cut]);
        let _ = load(Path::new("p.ll"), &ADAPTIVE[..cut.min(ADAPTIVE.len())]);
    }
}

#[test]
fn qstore_checkpoint_intrinsic_asks_for_a_checkpoint() {
    let src = "@0 = internal constant [4 x i8] c\"mid\\00\"\ndefine void @main() #0 {\nentry:\n  call void @__quantum__qis__h__body(ptr null)\n  call void @__quantum__rt__qstore_checkpoint(ptr @0)\n  call void @__quantum__qis__h__body(ptr null)\n  ret void\n}\nattributes #0 = { \"entry_point\" \"required_num_qubits\"=\"1\" }\n";
    let m = load(Path::new("c.ll"), src).unwrap();
    let mut mach = Machine::new();
    assert!(matches!(mach.step(&m, 1, &[]).unwrap(), Step::Op(..)));
    assert_eq!(
        mach.step(&m, 1, &[]).unwrap(),
        Step::Checkpoint("mid".into(), 5)
    );
    assert!(matches!(mach.step(&m, 1, &[]).unwrap(), Step::Op(..)));
    assert_eq!(mach.step(&m, 1, &[]).unwrap(), Step::End);
}
