//! Running a parsed QIR program: [`Machine`] executes the entry point's classical
//! instructions (branches, `phi`, `select`, comparisons, integer and double arithmetic,
//! casts) and hands each quantum intrinsic to the simulator as an [`Op`], one at a time, so
//! the runner applies it, checkpoints between any two, and feeds measurement results back
//! (result `r` is classical bit `r`). Its whole position (block, instruction, previous block,
//! values, the outputs recorded so far) is plain data that a checkpoint stores and `--resume`
//! restores. Output is recorded in the QIR output schema, as `qir-runner` prints it.

use super::parse::{BinOp, CastOp, Inst, Module, Operand, Ty};
use crate::circuit::{Gate, Op};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A runtime value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Int(i64),
    Double(f64),
    Ptr(u64),
}

/// One recorded output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    Result(bool, String),
    Bool(bool, String),
    Int(i64, String),
    Double(f64, String),
    Tuple(i64, String),
    Array(i64, String),
}

/// What the machine does next.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Apply this operation (from this line).
    Op(Op, usize),
    /// The program asked for a checkpoint here (`__quantum__rt__qstore_checkpoint`).
    Checkpoint(String, usize),
    /// The entry point returned.
    End,
}

/// A runtime error: what and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}: {}", self.line, self.message)
    }
}

fn rerr<T>(line: usize, message: impl Into<String>) -> Result<T, RunError> {
    Err(RunError {
        line,
        message: message.into(),
    })
}

/// Most instructions one run may execute (a guard against endless loops).
pub const MAX_STEPS: u64 = 100_000_000;

/// The quantum intrinsics: QIR name -> (gate name of [`Gate::builtin`], doubles, qubits).
const GATES: &[(&str, &str, usize, usize)] = &[
    ("h", "h", 0, 1),
    ("x", "x", 0, 1),
    ("y", "y", 0, 1),
    ("z", "z", 0, 1),
    ("s", "s", 0, 1),
    ("s__adj", "sdg", 0, 1),
    ("t", "t", 0, 1),
    ("t__adj", "tdg", 0, 1),
    ("sx", "sx", 0, 1),
    ("rx", "rx", 1, 1),
    ("ry", "ry", 1, 1),
    ("rz", "rz", 1, 1),
    ("rxx", "rxx", 1, 2),
    ("ryy", "ryy", 1, 2),
    ("rzz", "rzz", 1, 2),
    ("cnot", "cx", 0, 2),
    ("cx", "cx", 0, 2),
    ("cy", "cy", 0, 2),
    ("cz", "cz", 0, 2),
    ("ccx", "ccx", 0, 3),
    ("swap", "swap", 0, 2),
];

/// The runtime functions understood besides the gates.
const RUNTIME: &[&str] = &[
    "__quantum__rt__initialize",
    "__quantum__rt__result_record_output",
    "__quantum__rt__tuple_record_output",
    "__quantum__rt__array_record_output",
    "__quantum__rt__bool_record_output",
    "__quantum__rt__int_record_output",
    "__quantum__rt__double_record_output",
    "__quantum__rt__read_result",
    "__quantum__rt__qstore_checkpoint",
    "__quantum__qis__mz__body",
    "__quantum__qis__m__body",
    "__quantum__qis__mresetz__body",
    "__quantum__qis__reset__body",
    "__quantum__qis__read_result__body",
    "__quantum__qis__barrier__body",
];

/// Whether `name` is an intrinsic this interpreter knows.
pub fn known_intrinsic(name: &str) -> bool {
    RUNTIME.contains(&name)
        || name
            .strip_prefix("__quantum__qis__")
            .and_then(|n| n.strip_suffix("__body"))
            .is_some_and(|g| GATES.iter().any(|x| x.0 == g))
}

/// Refuse calls to intrinsics the interpreter does not know (with their line).
pub fn check_calls(m: &Module) -> Result<(), RunError> {
    for b in &m.blocks {
        for (inst, line) in &b.insts {
            if let Inst::Call { callee, .. } = inst
                && !known_intrinsic(callee)
            {
                return rerr(*line, format!("unknown intrinsic @{callee}"));
            }
        }
    }
    Ok(())
}

/// The qubits and results a program uses: its `required_num_*` attributes, else the
/// largest constant index it names plus one.
pub fn sizes(m: &Module) -> (u64, u64) {
    let (mut q, mut r) = (0u64, 0u64);
    for b in &m.blocks {
        for (inst, _) in &b.insts {
            if let Inst::Call { callee, args, .. } = inst {
                let ptrs: Vec<u64> = args
                    .iter()
                    .filter_map(|(_, o)| match o {
                        Operand::Ptr(p) => Some(*p),
                        _ => None,
                    })
                    .collect();
                let is_result_fn =
                    callee.contains("record_output") || callee.contains("read_result");
                for (k, p) in ptrs.iter().enumerate() {
                    // Measurements: (qubit, result); result functions: (result).
                    let result = is_result_fn
                        || (k == 1
                            && matches!(
                                callee.as_str(),
                                "__quantum__qis__mz__body"
                                    | "__quantum__qis__m__body"
                                    | "__quantum__qis__mresetz__body"
                            ));
                    if callee.contains("record_output") && !callee.contains("result_record") {
                        continue;
                    }
                    if result {
                        r = r.max(p + 1);
                    } else {
                        q = q.max(p + 1);
                    }
                }
            }
        }
    }
    (
        m.required_qubits.unwrap_or(q),
        m.required_results.unwrap_or(r),
    )
}

/// One primitive operation: a gate of [`Gate::builtin`] that is one [`Gate`], or `reset`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    pub name: String,
    pub v: Vec<f64>,
    pub qs: Vec<u32>,
    pub line: usize,
}

impl Part {
    fn op(&self) -> Result<Op, RunError> {
        if self.name == "reset" {
            return Ok(Op::Reset { qubit: self.qs[0] });
        }
        match Gate::builtin(&self.name, &self.v, &self.qs) {
            Some(Ok(mut g)) if g.len() == 1 => Ok(Op::Gate(g.remove(0))),
            Some(Err(message)) => rerr(self.line, message),
            _ => rerr(self.line, format!("no gate {}", self.name)),
        }
    }
}

/// The primitive parts of gate `name` (`rxx`, `ryy` by a change of basis around `rzz`:
/// `RXX(t) = (H x H) RZZ(t) (H x H)`, `RYY(t) = (RX(pi/2) x RX(pi/2)) RZZ(t) (RX(-pi/2) x
/// RX(-pi/2))`), in the order they apply.
pub fn parts(name: &str, v: &[f64], qs: &[u32], line: usize) -> Vec<Part> {
    let p = |n: &str, v: &[f64], qs: &[u32]| Part {
        name: n.into(),
        v: v.to_vec(),
        qs: qs.to_vec(),
        line,
    };
    let h = std::f64::consts::FRAC_PI_2;
    match name {
        "rxx" => vec![
            p("h", &[], &qs[..1]),
            p("h", &[], &qs[1..2]),
            p("rzz", v, qs),
            p("h", &[], &qs[..1]),
            p("h", &[], &qs[1..2]),
        ],
        "ryy" => vec![
            p("rx", &[-h], &qs[..1]),
            p("rx", &[-h], &qs[1..2]),
            p("rzz", v, qs),
            p("rx", &[h], &qs[..1]),
            p("rx", &[h], &qs[1..2]),
        ],
        _ => vec![p(name, v, qs)],
    }
}

/// The interpreter's whole position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Machine {
    pub block: usize,
    pub pc: usize,
    pub prev: Option<usize>,
    pub vars: BTreeMap<String, Value>,
    pub outputs: Vec<Record>,
    /// Operations queued by one intrinsic (the reset after `mresetz`, the parts of `rxx`
    /// and `ryy`), last first.
    pub pending: Vec<Part>,
    pub steps: u64,
    pub done: bool,
}

impl Machine {
    /// The machine at the start of the entry point.
    pub fn new() -> Self {
        Machine::default()
    }

    fn value(&self, o: &Operand, line: usize) -> Result<Value, RunError> {
        match o {
            Operand::Int(v) => Ok(Value::Int(*v)),
            Operand::Double(v) => Ok(Value::Double(*v)),
            Operand::Ptr(p) => Ok(Value::Ptr(*p)),
            Operand::Str(_) => rerr(line, "a string is used as a value"),
            Operand::Local(n) => self.vars.get(n).copied().ok_or(RunError {
                line,
                message: format!("%{n} is used before it has a value"),
            }),
        }
    }

    fn int(&self, o: &Operand, line: usize) -> Result<i64, RunError> {
        match self.value(o, line)? {
            Value::Int(v) => Ok(v),
            v => rerr(line, format!("expected an integer, found {v:?}")),
        }
    }

    fn double(&self, o: &Operand, line: usize) -> Result<f64, RunError> {
        match self.value(o, line)? {
            Value::Double(v) => Ok(v),
            Value::Int(v) => Ok(v as f64),
            v => rerr(line, format!("expected a double, found {v:?}")),
        }
    }

    fn ptr(&self, o: &Operand, line: usize) -> Result<u64, RunError> {
        match self.value(o, line)? {
            Value::Ptr(p) => Ok(p),
            v => rerr(line, format!("expected a qubit or result, found {v:?}")),
        }
    }

    /// Enter block `to` from the current one: its leading `phi`s take their values together.
    fn enter(&mut self, m: &Module, to: usize) -> Result<(), RunError> {
        let from = self.block;
        let block = &m.blocks[to];
        let mut vals = Vec::new();
        let mut k = 0;
        while let Some((Inst::Phi { dest, ty, incoming }, l)) = block.insts.get(k) {
            let Some((v, _)) = incoming.iter().find(|(_, b)| *b == from) else {
                return rerr(
                    *l,
                    format!("phi has no value for block %{}", m.blocks[from].name),
                );
            };
            vals.push((dest.clone(), trunc(self.value(v, *l)?, *ty)));
            k += 1;
        }
        for (d, v) in vals {
            self.vars.insert(d, v);
        }
        self.prev = Some(from);
        self.block = to;
        self.pc = k;
        Ok(())
    }

    /// Run classical instructions up to the next quantum operation, checkpoint request or
    /// the end. `clbits` holds the measurement results so far (result r = bit r).
    pub fn step(&mut self, m: &Module, qubits: u64, clbits: &[bool]) -> Result<Step, RunError> {
        if let Some(p) = self.pending.pop() {
            return Ok(Step::Op(p.op()?, p.line));
        }
        loop {
            if self.done {
                return Ok(Step::End);
            }
            let Some((inst, line)) = m.blocks.get(self.block).and_then(|b| b.insts.get(self.pc))
            else {
                return rerr(m.line, "ran past the end of a block");
            };
            let line = *line;
            self.steps += 1;
            if self.steps > MAX_STEPS {
                return rerr(
                    line,
                    format!("more than {MAX_STEPS} instructions executed (an endless loop?)"),
                );
            }
            self.pc += 1;
            match inst {
                Inst::Br(to) => self.enter(m, *to)?,
                Inst::CondBr { cond, then, els } => {
                    let c = self.int(cond, line)? & 1 == 1;
                    self.enter(m, if c { *then } else { *els })?;
                }
                Inst::Ret => {
                    self.done = true;
                    return Ok(Step::End);
                }
                Inst::Unreachable => return rerr(line, "reached 'unreachable'"),
                Inst::Phi { .. } => return rerr(line, "a phi after the start of its block"),
                Inst::Select {
                    dest,
                    cond,
                    ty,
                    a,
                    b,
                } => {
                    let c = self.int(cond, line)? & 1 == 1;
                    let v = self.value(if c { a } else { b }, line)?;
                    self.vars.insert(dest.clone(), trunc(v, *ty));
                }
                Inst::Cmp {
                    dest,
                    float,
                    pred,
                    ty,
                    a,
                    b,
                } => {
                    let r = if *float {
                        let (x, y) = (self.double(a, line)?, self.double(b, line)?);
                        fcmp(pred, x, y)
                    } else {
                        let (x, y) = (self.int(a, line)?, self.int(b, line)?);
                        icmp(pred, x, y, bits_of(*ty))
                    };
                    self.vars.insert(dest.clone(), Value::Int(r as i64));
                }
                Inst::Bin { dest, op, ty, a, b } => {
                    let v = if *ty == Ty::Double {
                        let (x, y) = (self.double(a, line)?, self.double(b, line)?);
                        Value::Double(match op {
                            BinOp::FAdd => x + y,
                            BinOp::FSub => x - y,
                            BinOp::FMul => x * y,
                            _ => x / y,
                        })
                    } else {
                        let (x, y) = (self.int(a, line)?, self.int(b, line)?);
                        let w = bits_of(*ty);
                        let (ux, uy) = (unsigned(x, w), unsigned(y, w));
                        let div0 = || rerr(line, "integer division by zero");
                        Value::Int(match op {
                            BinOp::Add => x.wrapping_add(y),
                            BinOp::Sub => x.wrapping_sub(y),
                            BinOp::Mul => x.wrapping_mul(y),
                            BinOp::SDiv if y == 0 => return div0(),
                            BinOp::SDiv => x.wrapping_div(y),
                            BinOp::UDiv if uy == 0 => return div0(),
                            BinOp::UDiv => (ux / uy) as i64,
                            BinOp::SRem if y == 0 => return div0(),
                            BinOp::SRem => x.wrapping_rem(y),
                            BinOp::URem if uy == 0 => return div0(),
                            BinOp::URem => (ux % uy) as i64,
                            BinOp::And => x & y,
                            BinOp::Or => x | y,
                            BinOp::Xor => x ^ y,
                            BinOp::Shl => x.wrapping_shl(y as u32),
                            BinOp::LShr => (ux >> (uy.min(63))) as i64,
                            BinOp::AShr => x >> (y.clamp(0, 63)),
                            _ => return rerr(line, "double arithmetic on integers"),
                        })
                    };
                    self.vars.insert(dest.clone(), trunc(v, *ty));
                }
                Inst::Cast {
                    dest,
                    op,
                    from,
                    v,
                    to,
                } => {
                    let x = self.value(v, line)?;
                    let out = match (op, x) {
                        (CastOp::ZExt, Value::Int(i)) => {
                            Value::Int(unsigned(i, bits_of(*from)) as i64)
                        }
                        (CastOp::SExt, Value::Int(i)) => Value::Int(i),
                        (CastOp::Trunc, Value::Int(i)) => Value::Int(i),
                        (CastOp::SiToFp, Value::Int(i)) => Value::Double(i as f64),
                        (CastOp::UiToFp, Value::Int(i)) => {
                            Value::Double(unsigned(i, bits_of(*from)) as f64)
                        }
                        (CastOp::FpToSi | CastOp::FpToUi, Value::Double(d)) => Value::Int(d as i64),
                        _ => return rerr(line, format!("cannot apply {op:?} to {x:?}")),
                    };
                    self.vars.insert(dest.clone(), trunc(out, *to));
                }
                Inst::Call {
                    dest, callee, args, ..
                } => {
                    if let Some(s) = self.call(m, qubits, clbits, callee, args, dest, line)? {
                        return Ok(s);
                    }
                }
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn call(
        &mut self,
        _m: &Module,
        qubits: u64,
        clbits: &[bool],
        callee: &str,
        args: &[(Ty, Operand)],
        dest: &Option<String>,
        line: usize,
    ) -> Result<Option<Step>, RunError> {
        let label = |k: usize| -> String {
            match args.get(k) {
                Some((_, Operand::Str(s))) => s.clone(),
                _ => String::new(),
            }
        };
        let qubit = |me: &Self, k: usize| -> Result<u32, RunError> {
            let (_, o) = args.get(k).ok_or(RunError {
                line,
                message: format!("@{callee} needs more arguments"),
            })?;
            let q = me.ptr(o, line)?;
            if q >= qubits {
                return rerr(
                    line,
                    format!("qubit {q} is outside the program's {qubits} qubits"),
                );
            }
            Ok(q as u32)
        };
        let result = |me: &Self, k: usize| -> Result<usize, RunError> {
            let (_, o) = args.get(k).ok_or(RunError {
                line,
                message: format!("@{callee} needs more arguments"),
            })?;
            let r = me.ptr(o, line)?;
            if r >= clbits.len() as u64 {
                return rerr(
                    line,
                    format!(
                        "result {r} is outside the program's {} results",
                        clbits.len()
                    ),
                );
            }
            Ok(r as usize)
        };
        match callee {
            "__quantum__rt__initialize" | "__quantum__qis__barrier__body" => Ok(None),
            "__quantum__rt__qstore_checkpoint" => Ok(Some(Step::Checkpoint(label(0), line))),
            "__quantum__qis__mz__body"
            | "__quantum__qis__m__body"
            | "__quantum__qis__mresetz__body" => {
                let (q, r) = (qubit(self, 0)?, result(self, 1)?);
                if callee == "__quantum__qis__mresetz__body" {
                    self.pending.push(Part {
                        name: "reset".into(),
                        v: vec![],
                        qs: vec![q],
                        line,
                    });
                }
                Ok(Some(Step::Op(
                    Op::Measure {
                        qubit: q,
                        clbit: r as u32,
                    },
                    line,
                )))
            }
            "__quantum__qis__reset__body" => Ok(Some(Step::Op(
                Op::Reset {
                    qubit: qubit(self, 0)?,
                },
                line,
            ))),
            "__quantum__qis__read_result__body" | "__quantum__rt__read_result" => {
                let r = result(self, 0)?;
                let Some(d) = dest else {
                    return Ok(None);
                };
                self.vars.insert(d.clone(), Value::Int(clbits[r] as i64));
                Ok(None)
            }
            "__quantum__rt__result_record_output" => {
                let r = result(self, 0)?;
                self.outputs.push(Record::Result(clbits[r], label(1)));
                Ok(None)
            }
            "__quantum__rt__tuple_record_output" | "__quantum__rt__array_record_output" => {
                let n = match args.first() {
                    Some((_, o)) => self.int(o, line)?,
                    None => return rerr(line, format!("@{callee} needs a length")),
                };
                self.outputs.push(if callee.contains("tuple") {
                    Record::Tuple(n, label(1))
                } else {
                    Record::Array(n, label(1))
                });
                Ok(None)
            }
            "__quantum__rt__bool_record_output" | "__quantum__rt__int_record_output" => {
                let v = match args.first() {
                    Some((_, o)) => self.int(o, line)?,
                    None => return rerr(line, format!("@{callee} needs a value")),
                };
                self.outputs.push(if callee.contains("bool") {
                    Record::Bool(v & 1 == 1, label(1))
                } else {
                    Record::Int(v, label(1))
                });
                Ok(None)
            }
            "__quantum__rt__double_record_output" => {
                let v = match args.first() {
                    Some((_, o)) => self.double(o, line)?,
                    None => return rerr(line, format!("@{callee} needs a value")),
                };
                self.outputs.push(Record::Double(v, label(1)));
                Ok(None)
            }
            _ => {
                let Some(g) = callee
                    .strip_prefix("__quantum__qis__")
                    .and_then(|n| n.strip_suffix("__body"))
                    .and_then(|g| GATES.iter().find(|x| x.0 == g))
                else {
                    return rerr(line, format!("unknown intrinsic @{callee}"));
                };
                let (_, name, nd, nq) = *g;
                if args.len() != nd + nq {
                    return rerr(
                        line,
                        format!(
                            "@{callee} takes {} arguments, given {}",
                            nd + nq,
                            args.len()
                        ),
                    );
                }
                let mut v = Vec::with_capacity(nd);
                for (_, o) in &args[..nd] {
                    v.push(self.double(o, line)?);
                }
                let mut qs = Vec::with_capacity(nq);
                for k in nd..nd + nq {
                    qs.push(qubit(self, k)?);
                }
                for a in 0..qs.len() {
                    if qs[a + 1..].contains(&qs[a]) {
                        return rerr(line, format!("@{callee} names qubit {} twice", qs[a]));
                    }
                }
                // A gate of several parts (rxx, ryy): the rest wait their turn.
                let mut ps = parts(name, &v, &qs, line);
                let first = ps.remove(0).op()?;
                self.pending.extend(ps.into_iter().rev());
                Ok(Some(Step::Op(first, line)))
            }
        }
    }

    /// The output of the run in the QIR output schema (one shot), as `qir-runner` prints it.
    pub fn output_text(&self, m: &Module) -> String {
        let mut s = String::from("START\n");
        for (k, v) in &m.attributes {
            match v {
                Some(v) => s.push_str(&format!("METADATA\t{k}\t{v}\n")),
                None => s.push_str(&format!("METADATA\t{k}\n")),
            }
        }
        for r in &self.outputs {
            s.push_str(&record_line(r));
            s.push('\n');
        }
        s.push_str("END\t0\n");
        s
    }

    /// The recorded results and booleans of this run, in record order (outcome bit k is the
    /// k-th), for counts; a program that records none counts its results (`clbits`, result r
    /// = bit r).
    pub fn outcome_bits(&self, clbits: &[bool]) -> Vec<bool> {
        let v: Vec<bool> = self
            .outputs
            .iter()
            .filter_map(|r| match r {
                Record::Result(b, _) | Record::Bool(b, _) => Some(*b),
                _ => None,
            })
            .collect();
        if v.is_empty() { clbits.to_vec() } else { v }
    }
}

fn record_line(r: &Record) -> String {
    let tail = |l: &str| {
        if l.is_empty() {
            String::new()
        } else {
            format!("\t{l}")
        }
    };
    match r {
        Record::Result(b, l) => format!("OUTPUT\tRESULT\t{}{}", *b as u8, tail(l)),
        Record::Bool(b, l) => format!("OUTPUT\tBOOL\t{b}{}", tail(l)),
        Record::Int(v, l) => format!("OUTPUT\tINT\t{v}{}", tail(l)),
        Record::Double(v, l) => format!("OUTPUT\tDOUBLE\t{}{}", fmt_double(*v), tail(l)),
        Record::Tuple(n, l) => format!("OUTPUT\tTUPLE\t{n}{}", tail(l)),
        Record::Array(n, l) => format!("OUTPUT\tARRAY\t{n}{}", tail(l)),
    }
}

fn fmt_double(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn bits_of(t: Ty) -> u32 {
    match t {
        Ty::Int(b) => b,
        _ => 64,
    }
}

fn unsigned(x: i64, bits: u32) -> u64 {
    if bits >= 64 {
        x as u64
    } else {
        (x as u64) & ((1u64 << bits) - 1)
    }
}

/// A value of integer type `t` wrapped to its width (sign-extended; i1 as 0 or 1).
fn trunc(v: Value, t: Ty) -> Value {
    match (v, t) {
        (Value::Int(i), Ty::Int(1)) => Value::Int(i & 1),
        (Value::Int(i), Ty::Int(b)) if b < 64 => {
            let shift = 64 - b;
            Value::Int((i << shift) >> shift)
        }
        (Value::Int(i), Ty::Double) => Value::Double(i as f64),
        _ => v,
    }
}

fn icmp(pred: &str, x: i64, y: i64, bits: u32) -> bool {
    let (ux, uy) = (unsigned(x, bits), unsigned(y, bits));
    match pred {
        "eq" => x == y,
        "ne" => x != y,
        "slt" => x < y,
        "sle" => x <= y,
        "sgt" => x > y,
        "sge" => x >= y,
        "ult" => ux < uy,
        "ule" => ux <= uy,
        "ugt" => ux > uy,
        _ => ux >= uy,
    }
}

fn fcmp(pred: &str, x: f64, y: f64) -> bool {
    let uno = x.is_nan() || y.is_nan();
    match pred {
        "oeq" => !uno && x == y,
        "one" => !uno && x != y,
        "olt" => !uno && x < y,
        "ole" => !uno && x <= y,
        "ogt" => !uno && x > y,
        "oge" => !uno && x >= y,
        "ord" => !uno,
        "ueq" => uno || x == y,
        "une" => uno || x != y,
        "ult" => uno || x < y,
        "ule" => uno || x <= y,
        "ugt" => uno || x > y,
        "uge" => uno || x >= y,
        "uno" => uno,
        "true" => true,
        _ => false,
    }
}
