//! OpenQASM 2.0 front end: a lexer and recursive-descent parser producing a flat [`Program`]
//! (registers laid out on one qubit and one clbit index space, user gates inlined, register
//! arguments broadcast, parameters evaluated in f64).
//!
//! Written by hand because the one OpenQASM 2 crate (`openqasm` 0.1) evaluates parameters in
//! `f32`, which alone would cost ~1e-7 of fidelity against Qiskit Aer, and builds its grammar
//! with lalrpop at compile time. The language is small: `OPENQASM 2.0;`, `include
//! "qelib1.inc";` (its gates are built in, with Qiskit's matrices), `qreg`, `creg`, `gate`
//! definitions, `U`, `CX`, gate calls, `measure`, `reset`, `barrier` and `if (creg == n)`.
//! `opaque` gates and anything else are refused with the line they are on.

use crate::circuit::{Gate, Op, Program};
use std::collections::HashMap;
use std::f64::consts::PI;

/// Most qubits a program may declare (the sparse engine's limit; the dense one stops at
/// fewer).
pub const MAX_QUBITS: usize = crate::basis::MAX_SPARSE_QUBITS;
/// Most classical bits a program may declare.
pub const MAX_CLBITS: usize = 4096;
/// Deepest nesting of parentheses and unary operators in an expression.
const MAX_EXPR_DEPTH: usize = 256;

/// A parse or semantic error, with the 1-based line it is on.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("line {line}: {msg}")]
pub struct QasmError {
    pub line: usize,
    pub msg: String,
}

fn err<T>(line: usize, msg: impl Into<String>) -> Result<T, QasmError> {
    Err(QasmError {
        line,
        msg: msg.into(),
    })
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Num(f64),
    Int(u64),
    Str(String),
    Sym(&'static str),
}

fn lex(src: &str) -> Result<Vec<(Tok, usize)>, QasmError> {
    let b = src.as_bytes();
    let (mut i, mut line) = (0usize, 1usize);
    let mut out = Vec::new();
    const SYMS: [&str; 16] = [
        "->", "==", ";", ",", "(", ")", "[", "]", "{", "}", "+", "-", "*", "/", "^", ":",
    ];
    while i < b.len() {
        let c = b[i];
        if c == b'\n' {
            line += 1;
            i += 1;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            let end = src[i + 2..].find("*/").ok_or(QasmError {
                line,
                msg: "unterminated comment".into(),
            })?;
            line += src[i..i + 2 + end].matches('\n').count();
            i += end + 4;
        } else if c.is_ascii_alphabetic() || c == b'_' {
            let s = i;
            while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
                i += 1;
            }
            out.push((Tok::Ident(src[s..i].to_string()), line));
        } else if c.is_ascii_digit()
            || (c == b'.' && b.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let s = i;
            let mut real = false;
            while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                real |= b[i] == b'.';
                i += 1;
            }
            if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
                real = true;
                i += 1;
                if i < b.len() && (b[i] == b'+' || b[i] == b'-') {
                    i += 1;
                }
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
            let t = &src[s..i];
            let tok = if real {
                Tok::Num(t.parse().map_err(|_| QasmError {
                    line,
                    msg: format!("bad number {t}"),
                })?)
            } else {
                Tok::Int(t.parse().map_err(|_| QasmError {
                    line,
                    msg: format!("bad integer {t}"),
                })?)
            };
            out.push((tok, line));
        } else if c == b'"' {
            let end = src[i + 1..].find('"').ok_or(QasmError {
                line,
                msg: "unterminated string".into(),
            })?;
            out.push((Tok::Str(src[i + 1..i + 1 + end].to_string()), line));
            i += end + 2;
        } else if let Some(s) = SYMS.iter().find(|s| b[i..].starts_with(s.as_bytes())) {
            out.push((Tok::Sym(s), line));
            i += s.len();
        } else {
            return err(line, format!("unexpected character {:?}", c as char));
        }
    }
    Ok(out)
}

/// A parameter expression of a gate body, evaluated when the gate is applied.
#[derive(Debug, Clone)]
enum Expr {
    Num(f64),
    Var(String),
    Neg(Box<Expr>),
    Bin(char, Box<Expr>, Box<Expr>),
    Call(String, Box<Expr>),
}

impl Expr {
    fn eval(&self, env: &HashMap<String, f64>, line: usize) -> Result<f64, QasmError> {
        Ok(match self {
            Expr::Num(v) => *v,
            Expr::Var(v) if v == "pi" => PI,
            Expr::Var(v) => match env.get(v) {
                Some(x) => *x,
                None => return err(line, format!("unknown parameter {v}")),
            },
            Expr::Neg(a) => -a.eval(env, line)?,
            Expr::Bin(op, a, b) => {
                let (a, b) = (a.eval(env, line)?, b.eval(env, line)?);
                match op {
                    '+' => a + b,
                    '-' => a - b,
                    '*' => a * b,
                    '/' => a / b,
                    _ => a.powf(b),
                }
            }
            Expr::Call(f, a) => {
                let a = a.eval(env, line)?;
                match f.as_str() {
                    "sin" => a.sin(),
                    "cos" => a.cos(),
                    "tan" => a.tan(),
                    "exp" => a.exp(),
                    "ln" => a.ln(),
                    "sqrt" => a.sqrt(),
                    _ => return err(line, format!("unknown function {f}")),
                }
            }
        })
    }
}

/// One statement of a gate body.
#[derive(Debug, Clone)]
struct GateCall {
    name: String,
    params: Vec<Expr>,
    args: Vec<String>,
    line: usize,
}

#[derive(Debug, Clone)]
struct GateDef {
    params: Vec<String>,
    qargs: Vec<String>,
    body: Vec<GateCall>,
}

/// A register argument: a whole register or one element.
#[derive(Debug, Clone)]
struct Arg {
    reg: String,
    index: Option<u64>,
    line: usize,
}

struct Parser {
    toks: Vec<(Tok, usize)>,
    pos: usize,
    qregs: Vec<(String, usize, usize)>,
    cregs: Vec<(String, usize, usize)>,
    qelib: bool,
    gates: HashMap<String, GateDef>,
    prog: Program,
    depth: usize,
}

impl Parser {
    fn line(&self) -> usize {
        self.toks
            .get(self.pos)
            .or(self.toks.last())
            .map_or(1, |t| t.1)
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).map(|t| &t.0)
    }

    fn next(&mut self) -> Result<Tok, QasmError> {
        let line = self.line();
        let t = self.toks.get(self.pos).map(|t| t.0.clone());
        self.pos += 1;
        t.ok_or(QasmError {
            line,
            msg: "unexpected end of file".into(),
        })
    }

    fn sym(&mut self, s: &'static str) -> Result<(), QasmError> {
        let line = self.line();
        if self.peek().is_none() {
            return err(line, format!("expected `{s}`, found the end of the file"));
        }
        match self.next()? {
            Tok::Sym(x) if x == s => Ok(()),
            t => err(line, format!("expected `{s}`, found {}", show(&t))),
        }
    }

    fn is_sym(&self, s: &str) -> bool {
        matches!(self.peek(), Some(Tok::Sym(x)) if *x == s)
    }

    fn ident(&mut self) -> Result<String, QasmError> {
        let line = self.line();
        match self.next()? {
            Tok::Ident(s) => Ok(s),
            t => err(line, format!("expected a name, found {}", show(&t))),
        }
    }

    fn int(&mut self) -> Result<u64, QasmError> {
        let line = self.line();
        match self.next()? {
            Tok::Int(v) => Ok(v),
            t => err(line, format!("expected an integer, found {}", show(&t))),
        }
    }

    // expr := term (('+'|'-') term)*; term := unary (('*'|'/') unary)*;
    // unary := '-' unary | power; power := atom ('^' unary)?
    fn expr(&mut self) -> Result<Expr, QasmError> {
        let mut a = self.term()?;
        while self.is_sym("+") || self.is_sym("-") {
            let op = if self.is_sym("+") { '+' } else { '-' };
            self.pos += 1;
            a = Expr::Bin(op, Box::new(a), Box::new(self.term()?));
        }
        Ok(a)
    }

    fn term(&mut self) -> Result<Expr, QasmError> {
        let mut a = self.unary()?;
        while self.is_sym("*") || self.is_sym("/") {
            let op = if self.is_sym("*") { '*' } else { '/' };
            self.pos += 1;
            a = Expr::Bin(op, Box::new(a), Box::new(self.unary()?));
        }
        Ok(a)
    }

    fn unary(&mut self) -> Result<Expr, QasmError> {
        self.depth += 1;
        let r = if self.depth > MAX_EXPR_DEPTH {
            err(self.line(), "expression nested too deeply")
        } else {
            self.unary_inner()
        };
        self.depth -= 1;
        r
    }

    fn unary_inner(&mut self) -> Result<Expr, QasmError> {
        if self.is_sym("-") {
            self.pos += 1;
            return Ok(Expr::Neg(Box::new(self.unary()?)));
        }
        if self.is_sym("+") {
            self.pos += 1;
            return self.unary();
        }
        let a = self.atom()?;
        if self.is_sym("^") {
            self.pos += 1;
            return Ok(Expr::Bin('^', Box::new(a), Box::new(self.unary()?)));
        }
        Ok(a)
    }

    fn atom(&mut self) -> Result<Expr, QasmError> {
        let line = self.line();
        match self.next()? {
            Tok::Num(v) => Ok(Expr::Num(v)),
            Tok::Int(v) => Ok(Expr::Num(v as f64)),
            Tok::Ident(f) if self.is_sym("(") => {
                self.sym("(")?;
                let a = self.expr()?;
                self.sym(")")?;
                Ok(Expr::Call(f, Box::new(a)))
            }
            Tok::Ident(v) => Ok(Expr::Var(v)),
            Tok::Sym("(") => {
                let a = self.expr()?;
                self.sym(")")?;
                Ok(a)
            }
            t => err(line, format!("expected an expression, found {}", show(&t))),
        }
    }

    fn params(&mut self) -> Result<Vec<Expr>, QasmError> {
        let mut v = Vec::new();
        if self.is_sym("(") {
            self.sym("(")?;
            if !self.is_sym(")") {
                v.push(self.expr()?);
                while self.is_sym(",") {
                    self.pos += 1;
                    v.push(self.expr()?);
                }
            }
            self.sym(")")?;
        }
        Ok(v)
    }

    fn arg(&mut self) -> Result<Arg, QasmError> {
        let line = self.line();
        let reg = self.ident()?;
        let index = if self.is_sym("[") {
            self.sym("[")?;
            let i = self.int()?;
            self.sym("]")?;
            Some(i)
        } else {
            None
        };
        Ok(Arg { reg, index, line })
    }

    fn args(&mut self) -> Result<Vec<Arg>, QasmError> {
        let mut v = vec![self.arg()?];
        while self.is_sym(",") {
            self.pos += 1;
            v.push(self.arg()?);
        }
        Ok(v)
    }

    /// The qubits an argument names.
    fn qubits(&self, a: &Arg) -> Result<Vec<u32>, QasmError> {
        lookup(&self.qregs, a, "quantum")
    }

    fn clbits(&self, a: &Arg) -> Result<Vec<u32>, QasmError> {
        lookup(&self.cregs, a, "classical")
    }

    fn program(mut self) -> Result<Program, QasmError> {
        // The header may be left out, as Qiskit allows (QASMBench's sat_n11 does).
        if matches!(self.peek(), Some(Tok::Ident(h)) if h == "OPENQASM") {
            let line = self.line();
            self.pos += 1;
            match self.next()? {
                Tok::Num(v) if (2.0..3.0).contains(&v) => {}
                t => {
                    return err(
                        line,
                        format!("OpenQASM version {} is not supported (2.0 is)", show(&t)),
                    );
                }
            }
            self.sym(";")?;
        }
        while self.peek().is_some() {
            self.statement(None)?;
        }
        Ok(self.prog)
    }

    fn statement(&mut self, cond: Option<(usize, usize, u64)>) -> Result<(), QasmError> {
        let line = self.line();
        let word = self.ident()?;
        match word.as_str() {
            "include" if cond.is_none() => {
                let f = match self.next()? {
                    Tok::Str(s) => s,
                    t => return err(line, format!("expected a file name, found {}", show(&t))),
                };
                self.sym(";")?;
                if f != "qelib1.inc" {
                    return err(
                        line,
                        format!("include {f:?} is not supported (only qelib1.inc)"),
                    );
                }
                self.qelib = true;
            }
            "qreg" | "creg" if cond.is_none() => {
                let name = self.ident()?;
                self.sym("[")?;
                let n = self.int()? as usize;
                self.sym("]")?;
                self.sym(";")?;
                let regs = if word == "qreg" {
                    &mut self.qregs
                } else {
                    &mut self.cregs
                };
                if regs.iter().any(|r| r.0 == name) {
                    return err(line, format!("register {name} is declared twice"));
                }
                let start = regs.last().map_or(0, |r| r.1 + r.2);
                let limit = if word == "qreg" {
                    MAX_QUBITS
                } else {
                    MAX_CLBITS
                };
                if start + n > limit {
                    return err(
                        line,
                        format!(
                            "more than {limit} {}s in all",
                            if word == "qreg" {
                                "qubit"
                            } else {
                                "classical bit"
                            }
                        ),
                    );
                }
                regs.push((name, start, n));
                if word == "qreg" {
                    self.prog.qubits = start + n;
                } else {
                    self.prog.clbits = start + n;
                }
            }
            "gate" if cond.is_none() => self.gate_def()?,
            "opaque" => return err(line, "opaque gates cannot be simulated"),
            "barrier" => {
                let args = self.args()?;
                self.sym(";")?;
                for a in &args {
                    self.qubits(a)?;
                }
                self.push(Op::Barrier, line, cond);
            }
            "measure" => {
                let q = self.arg()?;
                self.sym("->")?;
                let c = self.arg()?;
                self.sym(";")?;
                let (qs, cs) = (self.qubits(&q)?, self.clbits(&c)?);
                if qs.len() != cs.len() {
                    return err(line, "measure needs registers of the same size");
                }
                for (q, c) in qs.into_iter().zip(cs) {
                    self.push(Op::Measure { qubit: q, clbit: c }, line, cond);
                }
            }
            "reset" => {
                let a = self.arg()?;
                self.sym(";")?;
                for q in self.qubits(&a)? {
                    self.push(Op::Reset { qubit: q }, line, cond);
                }
            }
            "if" if cond.is_none() => {
                self.sym("(")?;
                let reg = self.ident()?;
                self.sym("==")?;
                let v = self.int()?;
                self.sym(")")?;
                let (start, size) = match self.cregs.iter().find(|r| r.0 == reg) {
                    Some(r) => (r.1, r.2),
                    None => return err(line, format!("unknown classical register {reg}")),
                };
                self.statement(Some((start, size, v)))?;
            }
            _ => {
                let params = self.params()?;
                let args = self.args()?;
                self.sym(";")?;
                let env = HashMap::new();
                let vals = params
                    .iter()
                    .map(|p| p.eval(&env, line))
                    .collect::<Result<Vec<_>, _>>()?;
                let regs = args
                    .iter()
                    .map(|a| self.qubits(a))
                    .collect::<Result<Vec<_>, _>>()?;
                // Broadcast: whole registers of equal size apply element by element.
                let width = regs.iter().map(|r| r.len()).max().unwrap_or(1);
                for r in &regs {
                    if r.len() != 1 && r.len() != width {
                        return err(line, "registers of different sizes in one gate call");
                    }
                }
                for k in 0..width {
                    let qs: Vec<u32> = regs
                        .iter()
                        .map(|r| if r.len() == 1 { r[0] } else { r[k] })
                        .collect();
                    let mut seen = qs.clone();
                    seen.sort_unstable();
                    seen.dedup();
                    if seen.len() != qs.len() {
                        return err(line, format!("gate {word} is given the same qubit twice"));
                    }
                    self.apply(&word, &vals, &qs, line, cond, 0)?;
                }
            }
        }
        Ok(())
    }

    fn push(&mut self, op: Op, line: usize, cond: Option<(usize, usize, u64)>) {
        let op = match cond {
            Some((start, size, value)) => Op::If {
                start: start as u32,
                size: size as u32,
                value,
                op: Box::new(op),
            },
            None => op,
        };
        self.prog.ops.push((op, line));
    }

    /// Apply gate `name` to `qs`: a user definition (inlined), or a built-in gate.
    fn apply(
        &mut self,
        name: &str,
        vals: &[f64],
        qs: &[u32],
        line: usize,
        cond: Option<(usize, usize, u64)>,
        depth: usize,
    ) -> Result<(), QasmError> {
        if depth > 64 {
            return err(line, format!("gate {name} is defined recursively"));
        }
        if let Some(v) = vals.iter().find(|v| !v.is_finite()) {
            return err(line, format!("a parameter of gate {name} evaluates to {v}"));
        }
        if let Some(def) = self.gates.get(name).cloned() {
            if def.params.len() != vals.len() || def.qargs.len() != qs.len() {
                return err(
                    line,
                    format!(
                        "gate {name} takes {} parameters and {} qubits, given {} and {}",
                        def.params.len(),
                        def.qargs.len(),
                        vals.len(),
                        qs.len()
                    ),
                );
            }
            let env: HashMap<String, f64> = def
                .params
                .iter()
                .cloned()
                .zip(vals.iter().copied())
                .collect();
            let qenv: HashMap<&str, u32> = def
                .qargs
                .iter()
                .map(|s| s.as_str())
                .zip(qs.iter().copied())
                .collect();
            for call in &def.body {
                let v = call
                    .params
                    .iter()
                    .map(|p| p.eval(&env, call.line))
                    .collect::<Result<Vec<_>, _>>()?;
                let q = call
                    .args
                    .iter()
                    .map(|a| {
                        qenv.get(a.as_str()).copied().ok_or(QasmError {
                            line: call.line,
                            msg: format!("unknown qubit argument {a} in gate {name}"),
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                if call.name == "barrier" {
                    continue;
                }
                self.apply(&call.name, &v, &q, call.line, cond, depth + 1)?;
            }
            return Ok(());
        }
        let builtin = name == "U" || name == "CX" || self.qelib;
        match Gate::builtin(name, vals, qs).filter(|_| builtin) {
            Some(Ok(gates)) => {
                for g in gates {
                    self.push(Op::Gate(g), line, cond);
                }
                Ok(())
            }
            Some(Err(m)) => err(line, m),
            None => err(
                line,
                format!(
                    "unknown gate {name}{}",
                    if self.qelib {
                        ""
                    } else {
                        " (is qelib1.inc included?)"
                    }
                ),
            ),
        }
    }

    fn gate_def(&mut self) -> Result<(), QasmError> {
        let line = self.line();
        let name = self.ident()?;
        let mut params = Vec::new();
        if self.is_sym("(") {
            self.sym("(")?;
            if !self.is_sym(")") {
                params.push(self.ident()?);
                while self.is_sym(",") {
                    self.pos += 1;
                    params.push(self.ident()?);
                }
            }
            self.sym(")")?;
        }
        let mut qargs = vec![self.ident()?];
        while self.is_sym(",") {
            self.pos += 1;
            qargs.push(self.ident()?);
        }
        self.sym("{")?;
        let mut body = Vec::new();
        while !self.is_sym("}") {
            let cl = self.line();
            let g = self.ident()?;
            let ps = self.params()?;
            let mut args = vec![self.ident()?];
            while self.is_sym(",") {
                self.pos += 1;
                args.push(self.ident()?);
            }
            self.sym(";")?;
            for a in &args {
                if !qargs.contains(a) {
                    return err(
                        cl,
                        format!("gate {name} uses {a}, which is not one of its qubits"),
                    );
                }
            }
            body.push(GateCall {
                name: g,
                params: ps,
                args,
                line: cl,
            });
        }
        self.sym("}")?;
        if self.gates.contains_key(&name) {
            return err(line, format!("gate {name} is defined twice"));
        }
        self.gates.insert(
            name,
            GateDef {
                params,
                qargs,
                body,
            },
        );
        Ok(())
    }
}

fn lookup(regs: &[(String, usize, usize)], a: &Arg, what: &str) -> Result<Vec<u32>, QasmError> {
    let Some((_, start, size)) = regs.iter().find(|r| r.0 == a.reg) else {
        return err(a.line, format!("unknown {what} register {}", a.reg));
    };
    match a.index {
        Some(i) if i as usize >= *size => err(
            a.line,
            format!("{}[{i}] is out of range (size {size})", a.reg),
        ),
        Some(i) => Ok(vec![(start + i as usize) as u32]),
        None => Ok((*start..start + size).map(|q| q as u32).collect()),
    }
}

fn show(t: &Tok) -> String {
    match t {
        Tok::Ident(s) => format!("`{s}`"),
        Tok::Num(v) => format!("`{v}`"),
        Tok::Int(v) => format!("`{v}`"),
        Tok::Str(s) => format!("{s:?}"),
        Tok::Sym(s) => format!("`{s}`"),
    }
}

/// Parse an OpenQASM 2.0 program.
pub fn parse(src: &str) -> Result<Program, QasmError> {
    Parser {
        toks: lex(src)?,
        pos: 0,
        qregs: Vec::new(),
        cregs: Vec::new(),
        qelib: false,
        gates: HashMap::new(),
        prog: Program::default(),
        depth: 0,
    }
    .program()
}
