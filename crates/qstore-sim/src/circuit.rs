//! What the simulator runs: a [`Program`] of [`Op`]s on one qubit index space (qubit 0 is
//! bit 0 of the basis index, as in Qiskit), and the built-in gates of `qelib1.inc` with
//! Qiskit's matrices ([`Gate::builtin`]).

use num_complex::Complex64 as C;
use std::f64::consts::{FRAC_1_SQRT_2, PI};

/// A gate on the state vector.
#[derive(Debug, Clone, PartialEq)]
pub enum Gate {
    /// A 2x2 unitary `[m00, m01, m10, m11]` on `target`, applied where every control is 1.
    Unitary {
        m: [C; 4],
        target: u32,
        controls: Vec<u32>,
    },
    /// Swap of `a` and `b` where every control is 1.
    Swap { a: u32, b: u32, controls: Vec<u32> },
    /// A diagonal two-qubit gate: phases of |b a> = |00>, |01>, |10>, |11>.
    Diag2 { d: [C; 4], a: u32, b: u32 },
}

/// One operation, in program order.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Gate(Gate),
    Measure {
        qubit: u32,
        clbit: u32,
    },
    Reset {
        qubit: u32,
    },
    Barrier,
    /// `if (creg == value) op`: the creg is clbits `start..start + size`, bit 0 lowest.
    If {
        start: u32,
        size: u32,
        value: u64,
        op: Box<Op>,
    },
}

/// True when classical register `start..start + size` (bit 0 lowest) in `clbits` holds
/// `value` (bits past the 64th must be 0).
pub fn creg_equals(clbits: &[bool], start: u32, size: u32, value: u64) -> bool {
    (0..size).all(|k| {
        let bit = clbits.get((start + k) as usize).copied().unwrap_or(false);
        let want = k < 64 && value >> k & 1 == 1;
        bit == want
    }) && (size >= 64 || value >> size == 0)
}

/// A parsed circuit: qubit and clbit counts, and operations with their source lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Program {
    pub qubits: usize,
    pub clbits: usize,
    pub ops: Vec<(Op, usize)>,
}

impl Program {
    /// Gates (not barriers, measurements or resets) in the program.
    pub fn gate_count(&self) -> usize {
        self.ops
            .iter()
            .filter(|(o, _)| {
                matches!(o, Op::Gate(_))
                    || matches!(o, Op::If { op, .. } if matches!(**op, Op::Gate(_)))
            })
            .count()
    }
}

/// The exact Pauli X matrix.
pub const PAULI_X: [C; 4] = [
    C::new(0.0, 0.0),
    C::new(1.0, 0.0),
    C::new(1.0, 0.0),
    C::new(0.0, 0.0),
];

fn c(re: f64, im: f64) -> C {
    C::new(re, im)
}

fn phase(a: f64) -> C {
    C::from_polar(1.0, a)
}

/// Qiskit's U(θ, φ, λ).
pub fn u3(t: f64, p: f64, l: f64) -> [C; 4] {
    let (cs, sn) = ((t / 2.0).cos(), (t / 2.0).sin());
    [c(cs, 0.0), -phase(l) * sn, phase(p) * sn, phase(p + l) * cs]
}

fn diag(a: C, b: C) -> [C; 4] {
    [a, c(0.0, 0.0), c(0.0, 0.0), b]
}

fn one_qubit(name: &str, v: &[f64]) -> Option<(usize, [C; 4])> {
    let z = c(0.0, 0.0);
    let o = c(1.0, 0.0);
    let h = FRAC_1_SQRT_2;
    let p = |i: usize| v.get(i).copied().unwrap_or(0.0);
    Some(match name {
        "U" | "u" | "u3" => (3, u3(p(0), p(1), p(2))),
        "u2" => (2, u3(PI / 2.0, p(0), p(1))),
        "u1" | "p" => (1, diag(o, phase(p(0)))),
        "id" => (0, diag(o, o)),
        "x" => (0, [z, o, o, z]),
        "y" => (0, [z, c(0.0, -1.0), c(0.0, 1.0), z]),
        "z" => (0, diag(o, -o)),
        "h" => (0, [c(h, 0.0), c(h, 0.0), c(h, 0.0), c(-h, 0.0)]),
        "s" => (0, diag(o, c(0.0, 1.0))),
        "sdg" => (0, diag(o, c(0.0, -1.0))),
        "t" => (0, diag(o, phase(PI / 4.0))),
        "tdg" => (0, diag(o, phase(-PI / 4.0))),
        "sx" => (0, [c(0.5, 0.5), c(0.5, -0.5), c(0.5, -0.5), c(0.5, 0.5)]),
        "sxdg" => (0, [c(0.5, -0.5), c(0.5, 0.5), c(0.5, 0.5), c(0.5, -0.5)]),
        "rx" => {
            let (cs, sn) = ((p(0) / 2.0).cos(), (p(0) / 2.0).sin());
            (1, [c(cs, 0.0), c(0.0, -sn), c(0.0, -sn), c(cs, 0.0)])
        }
        "ry" => {
            let (cs, sn) = ((p(0) / 2.0).cos(), (p(0) / 2.0).sin());
            (1, [c(cs, 0.0), c(-sn, 0.0), c(sn, 0.0), c(cs, 0.0)])
        }
        "rz" => (1, diag(phase(-p(0) / 2.0), phase(p(0) / 2.0))),
        _ => return None,
    })
}

impl Gate {
    /// The gates a built-in (`U`, `CX` or a `qelib1.inc` gate) applies to `qs` with
    /// parameters `v`; `None` for an unknown name, an error for a wrong arity.
    pub fn builtin(name: &str, v: &[f64], qs: &[u32]) -> Option<Result<Vec<Gate>, String>> {
        let check = |np: usize, nq: usize| {
            if v.len() != np || qs.len() != nq {
                Err(format!(
                    "gate {name} takes {np} parameters and {nq} qubits, given {} and {}",
                    v.len(),
                    qs.len()
                ))
            } else {
                Ok(())
            }
        };
        let un = |m: [C; 4], target: u32, controls: Vec<u32>| Gate::Unitary {
            m,
            target,
            controls,
        };
        // Controlled one-qubit gates: c<name> with the control first.
        let controlled = |base: &str, ncontrols: usize| -> Option<Result<Vec<Gate>, String>> {
            let (np, m) = one_qubit(base, v)?;
            Some(
                check(np, ncontrols + 1)
                    .map(|_| vec![un(m, qs[ncontrols], qs[..ncontrols].to_vec())]),
            )
        };
        if let Some((np, m)) = one_qubit(name, v) {
            return Some(check(np, 1).map(|_| vec![un(m, qs[0], vec![])]));
        }
        match name {
            "CX" | "cx" => controlled("x", 1),
            "cy" => controlled("y", 1),
            "cz" => controlled("z", 1),
            "ch" => controlled("h", 1),
            "csx" => controlled("sx", 1),
            "crx" => controlled("rx", 1),
            "cry" => controlled("ry", 1),
            "crz" => controlled("rz", 1),
            "cu1" | "cp" => controlled("u1", 1),
            "cu3" => controlled("u3", 1),
            "ccx" => controlled("x", 2),
            "swap" => Some(check(0, 2).map(|_| {
                vec![Gate::Swap {
                    a: qs[0],
                    b: qs[1],
                    controls: vec![],
                }]
            })),
            "cswap" => Some(check(0, 3).map(|_| {
                vec![Gate::Swap {
                    a: qs[1],
                    b: qs[2],
                    controls: vec![qs[0]],
                }]
            })),
            "rzz" => Some(check(1, 2).map(|_| {
                let (m, p) = (phase(-v[0] / 2.0), phase(v[0] / 2.0));
                vec![Gate::Diag2 {
                    d: [m, p, p, m],
                    a: qs[0],
                    b: qs[1],
                }]
            })),
            "rxx" => Some(check(1, 2).map(|_| {
                let h = one_qubit("h", &[]).map(|x| x.1).unwrap_or_default();
                let (m, p) = (phase(-v[0] / 2.0), phase(v[0] / 2.0));
                vec![
                    un(h, qs[0], vec![]),
                    un(h, qs[1], vec![]),
                    Gate::Diag2 {
                        d: [m, p, p, m],
                        a: qs[0],
                        b: qs[1],
                    },
                    un(h, qs[0], vec![]),
                    un(h, qs[1], vec![]),
                ]
            })),
            _ => None,
        }
    }
}
