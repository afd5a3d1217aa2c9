//! The textual LLVM IR subset that QIR programs use, parsed without LLVM: global string
//! constants, one entry-point function (found by its `entry_point` attribute) made of basic
//! blocks of `call`, `br`, `ret`, `phi`, `select`, `icmp`, `fcmp`, integer and double
//! arithmetic and casts, and the attribute groups that carry `required_num_qubits` and
//! `required_num_results`. Both pointer styles are read: typed (`%Qubit* inttoptr (i64 1 to
//! %Qubit*)`, `i8* getelementptr inbounds (...)`, as qsharp emits) and opaque (`ptr null`,
//! `ptr inttoptr (i64 1 to ptr)`, `ptr @0`, as the spec and pyqir write). Anything else is
//! refused with its line.

use std::collections::HashMap;

/// A parse error: what was wrong and on which line (1-based; 0 = the file as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line == 0 {
            write!(f, "{}", self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

fn err<T>(line: usize, message: impl Into<String>) -> Result<T, ParseError> {
    Err(ParseError {
        line,
        message: message.into(),
    })
}

/// A first-class type of the subset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    Void,
    /// An integer of this many bits (1 for booleans).
    Int(u32),
    Double,
    Ptr,
}

/// A constant or a reference to a value.
#[derive(Debug, Clone, PartialEq)]
pub enum Operand {
    Int(i64),
    Double(f64),
    /// A pointer constant: `null` is 0, `inttoptr (i64 N to ptr)` is N (a qubit or result).
    Ptr(u64),
    /// A global string constant (its text, without the terminating NUL).
    Str(String),
    /// A local value `%name`.
    Local(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    SDiv,
    UDiv,
    SRem,
    URem,
    And,
    Or,
    Xor,
    Shl,
    LShr,
    AShr,
    FAdd,
    FSub,
    FMul,
    FDiv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CastOp {
    ZExt,
    SExt,
    Trunc,
    SiToFp,
    UiToFp,
    FpToSi,
    FpToUi,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq)]
pub enum Inst {
    Call {
        dest: Option<String>,
        ret: Ty,
        callee: String,
        args: Vec<(Ty, Operand)>,
    },
    Br(usize),
    CondBr {
        cond: Operand,
        then: usize,
        els: usize,
    },
    Ret,
    Unreachable,
    Phi {
        dest: String,
        ty: Ty,
        incoming: Vec<(Operand, usize)>,
    },
    Select {
        dest: String,
        cond: Operand,
        ty: Ty,
        a: Operand,
        b: Operand,
    },
    /// `icmp` (integer) or `fcmp` (double) with its predicate.
    Cmp {
        dest: String,
        float: bool,
        pred: String,
        ty: Ty,
        a: Operand,
        b: Operand,
    },
    Bin {
        dest: String,
        op: BinOp,
        ty: Ty,
        a: Operand,
        b: Operand,
    },
    Cast {
        dest: String,
        op: CastOp,
        from: Ty,
        v: Operand,
        to: Ty,
    },
}

/// A basic block: its label and instructions with their lines.
#[derive(Debug, Clone, PartialEq)]
pub struct Block {
    pub name: String,
    pub insts: Vec<(Inst, usize)>,
}

/// A parsed QIR program: its entry point and what its attributes say.
#[derive(Debug, Clone, PartialEq)]
pub struct Module {
    pub entry: String,
    pub blocks: Vec<Block>,
    /// The entry point's attributes in order, as `qir-runner` prints them (`METADATA` lines).
    pub attributes: Vec<(String, Option<String>)>,
    pub required_qubits: Option<u64>,
    pub required_results: Option<u64>,
    /// The line of the entry point's `define`.
    pub line: usize,
}

// ---- tokens -----------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// A bare word: keywords, types, numbers.
    Word(String),
    Local(String),
    Global(String),
    /// An attribute group reference `#N`.
    Hash(String),
    Str(Vec<u8>),
    /// `c"..."`.
    CStr(Vec<u8>),
    Punct(char),
}

fn decode_string(s: &[u8], line: usize) -> Result<Vec<u8>, ParseError> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'\\' {
            if s.get(i + 1) == Some(&b'\\') {
                out.push(b'\\');
                i += 2;
                continue;
            }
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                Some(b) => out.push(b),
                None => return err(line, "malformed escape in a string"),
            }
            i += 3;
        } else {
            out.push(s[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'$')
}

fn tokens(text: &str, line: usize) -> Result<Vec<Tok>, ParseError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let quoted = |i: usize| -> Result<(Vec<u8>, usize), ParseError> {
        let start = i + 1;
        let mut j = start;
        while j < b.len() && b[j] != b'"' {
            j += 1;
        }
        if j >= b.len() {
            return err(line, "unterminated string");
        }
        Ok((decode_string(&b[start..j], line)?, j + 1))
    };
    let name = |i: usize| -> Result<(String, usize), ParseError> {
        if b.get(i) == Some(&b'"') {
            let (s, j) = quoted(i)?;
            return Ok((String::from_utf8_lossy(&s).into_owned(), j));
        }
        let mut j = i;
        while j < b.len() && is_word(b[j]) {
            j += 1;
        }
        if j == i {
            return err(line, "a name is missing after % or @");
        }
        Ok((text[i..j].to_string(), j))
    };
    while i < b.len() {
        let ch = b[i];
        match ch {
            b' ' | b'\t' | b'\r' => i += 1,
            b';' => break,
            b'%' => {
                let (n, j) = name(i + 1)?;
                out.push(Tok::Local(n));
                i = j;
            }
            b'@' => {
                let (n, j) = name(i + 1)?;
                out.push(Tok::Global(n));
                i = j;
            }
            b'#' => {
                let (n, j) = name(i + 1)?;
                out.push(Tok::Hash(n));
                i = j;
            }
            b'"' => {
                let (s, j) = quoted(i)?;
                out.push(Tok::Str(s));
                i = j;
            }
            b'c' if b.get(i + 1) == Some(&b'"') => {
                let (s, j) = quoted(i + 1)?;
                out.push(Tok::CStr(s));
                i = j;
            }
            b'(' | b')' | b',' | b'[' | b']' | b'{' | b'}' | b'*' | b'=' | b':' | b'!' | b'<'
            | b'>' => {
                out.push(Tok::Punct(ch as char));
                i += 1;
            }
            _ if is_word(ch) || ch == b'+' => {
                let mut j = i + 1;
                while j < b.len()
                    && (is_word(b[j]) || (b[j] == b'+' && matches!(b[j - 1], b'e' | b'E')))
                {
                    j += 1;
                }
                out.push(Tok::Word(text[i..j].to_string()));
                i = j;
            }
            _ => return err(line, format!("unexpected character {:?}", ch as char)),
        }
    }
    Ok(out)
}

/// A cursor over one line's tokens.
struct Cur<'a> {
    t: &'a [Tok],
    i: usize,
    line: usize,
    globals: &'a HashMap<String, String>,
}

impl<'a> Cur<'a> {
    fn peek(&self) -> Option<&'a Tok> {
        self.t.get(self.i)
    }

    fn next(&mut self) -> Result<&'a Tok, ParseError> {
        let t = self.t.get(self.i).ok_or(ParseError {
            line: self.line,
            message: "the instruction ends too early".into(),
        })?;
        self.i += 1;
        Ok(t)
    }

    fn word(&mut self) -> Result<&'a str, ParseError> {
        match self.next()? {
            Tok::Word(w) => Ok(w),
            t => err(self.line, format!("expected a word, found {t:?}")),
        }
    }

    fn is_word(&self, w: &str) -> bool {
        matches!(self.peek(), Some(Tok::Word(x)) if x == w)
    }

    fn eat_word(&mut self, w: &str) -> bool {
        if self.is_word(w) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn punct(&mut self, c: char) -> Result<(), ParseError> {
        match self.next()? {
            Tok::Punct(p) if *p == c => Ok(()),
            t => err(self.line, format!("expected '{c}', found {t:?}")),
        }
    }

    fn eat_punct(&mut self, c: char) -> bool {
        if matches!(self.peek(), Some(Tok::Punct(p)) if *p == c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn local(&mut self) -> Result<String, ParseError> {
        match self.next()? {
            Tok::Local(n) => Ok(n.clone()),
            t => err(self.line, format!("expected a %value, found {t:?}")),
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        // Trailing attribute groups and metadata (`#0`, `!dbg !3`) are ignored.
        match self.peek() {
            None | Some(Tok::Hash(_)) | Some(Tok::Punct('!')) => Ok(()),
            Some(Tok::Punct(',')) if matches!(self.t.get(self.i + 1), Some(Tok::Punct('!'))) => {
                Ok(())
            }
            Some(t) => err(
                self.line,
                format!("unexpected {t:?} at the end of the instruction"),
            ),
        }
    }

    /// A type: `void`, `iN`, `double`, `ptr`, or any type followed by `*` (a pointer).
    fn ty(&mut self) -> Result<Ty, ParseError> {
        let base = match self.next()? {
            Tok::Word(w) if w == "void" => Ty::Void,
            Tok::Word(w) if w == "double" => Ty::Double,
            Tok::Word(w) if w == "ptr" => Ty::Ptr,
            Tok::Word(w) if w.starts_with('i') && w[1..].parse::<u32>().is_ok() => {
                let bits = w[1..].parse::<u32>().unwrap_or(64);
                if bits == 0 || bits > 64 {
                    return err(
                        self.line,
                        format!("integer type {w} is not supported (i1 to i64)"),
                    );
                }
                Ty::Int(bits)
            }
            Tok::Local(_) => {
                // %Qubit, %Result, %String, ...: opaque named types, used behind pointers.
                if !matches!(self.peek(), Some(Tok::Punct('*'))) {
                    return err(self.line, "named types are supported only as pointers");
                }
                Ty::Ptr
            }
            Tok::Punct('[') => {
                // [N x T]: only inside getelementptr, as the pointee of a string.
                self.word()?;
                self.word()?;
                self.ty()?;
                self.punct(']')?;
                if !matches!(self.peek(), Some(Tok::Punct('*'))) {
                    return Ok(Ty::Ptr);
                }
                Ty::Ptr
            }
            t => return err(self.line, format!("expected a type, found {t:?}")),
        };
        let mut t = base;
        while self.eat_punct('*') {
            t = Ty::Ptr;
        }
        Ok(t)
    }

    fn int_literal(&self, w: &str) -> Result<i64, ParseError> {
        w.parse::<i64>()
            .or_else(|_| w.parse::<u64>().map(|u| u as i64))
            .or_else(|_| err(self.line, format!("malformed integer {w:?}")))
    }

    /// An operand of type `ty`.
    fn operand(&mut self, ty: Ty) -> Result<Operand, ParseError> {
        match self.next()? {
            Tok::Local(n) => Ok(Operand::Local(n.clone())),
            Tok::Global(g) => match self.globals.get(g) {
                Some(s) => Ok(Operand::Str(s.clone())),
                None => err(self.line, format!("unknown global @{g}")),
            },
            Tok::Word(w) if w == "null" => Ok(Operand::Ptr(0)),
            Tok::Word(w) if w == "true" => Ok(Operand::Int(1)),
            Tok::Word(w) if w == "false" => Ok(Operand::Int(0)),
            Tok::Word(w) if w == "inttoptr" => {
                self.punct('(')?;
                let from = self.ty()?;
                if !matches!(from, Ty::Int(_)) {
                    return err(self.line, "inttoptr of a non-integer");
                }
                let v = match self.operand(from)? {
                    Operand::Int(v) if v >= 0 => v as u64,
                    _ => return err(self.line, "inttoptr takes a non-negative constant here"),
                };
                if !self.eat_word("to") {
                    return err(self.line, "expected 'to' in inttoptr");
                }
                self.ty()?;
                self.punct(')')?;
                Ok(Operand::Ptr(v))
            }
            Tok::Word(w) if w == "getelementptr" => {
                self.eat_word("inbounds");
                self.punct('(')?;
                self.ty()?;
                self.punct(',')?;
                let ptr_ty = self.ty()?;
                let base = self.operand(ptr_ty)?;
                while self.eat_punct(',') {
                    let t = self.ty()?;
                    match self.operand(t)? {
                        Operand::Int(0) => {}
                        _ => {
                            return err(
                                self.line,
                                "getelementptr is supported only as the start of a string",
                            );
                        }
                    }
                }
                self.punct(')')?;
                match base {
                    Operand::Str(s) => Ok(Operand::Str(s)),
                    _ => err(
                        self.line,
                        "getelementptr of something that is not a string constant",
                    ),
                }
            }
            Tok::Word(w) if matches!(w.as_str(), "undef" | "poison" | "zeroinitializer") => {
                err(self.line, format!("{w} values are not supported"))
            }
            Tok::Word(w) => match ty {
                Ty::Double => parse_double(w)
                    .ok_or(ParseError {
                        line: self.line,
                        message: format!("malformed double {w:?}"),
                    })
                    .map(Operand::Double),
                Ty::Int(_) => self.int_literal(w).map(Operand::Int),
                Ty::Ptr => err(self.line, format!("malformed pointer {w:?}")),
                Ty::Void => err(self.line, "a void operand"),
            },
            t => err(self.line, format!("expected an operand, found {t:?}")),
        }
    }

    /// A label operand: `label %name`.
    fn label(&mut self, blocks: &HashMap<String, usize>) -> Result<usize, ParseError> {
        if !self.eat_word("label") {
            return err(self.line, "expected 'label'");
        }
        let n = self.local()?;
        blocks.get(&n).copied().ok_or(ParseError {
            line: self.line,
            message: format!("branch to an unknown block %{n}"),
        })
    }
}

/// A double literal: decimal or LLVM's `0x` + 16 hex digits (the IEEE bits).
fn parse_double(w: &str) -> Option<f64> {
    if let Some(h) = w.strip_prefix("0x") {
        if h.len() != 16 {
            return None;
        }
        return u64::from_str_radix(h, 16).ok().map(f64::from_bits);
    }
    let v: f64 = w.parse().ok()?;
    v.is_finite().then_some(v)
}

/// Parameter and call attributes skipped where they may appear.
const SKIPPED: &[&str] = &[
    "noundef",
    "writeonly",
    "readonly",
    "nonnull",
    "signext",
    "zeroext",
    "nocapture",
    "immarg",
    "noalias",
    "inreg",
    "returned",
];

const FLAGS: &[&str] = &[
    "nsw", "nuw", "exact", "fast", "nnan", "ninf", "nsz", "arcp", "contract", "afn", "reassoc",
    "disjoint",
];

fn parse_inst(c: &mut Cur<'_>, blocks: &HashMap<String, usize>) -> Result<Inst, ParseError> {
    let dest = if let Some(Tok::Local(n)) = c.peek() {
        let n = n.clone();
        c.i += 1;
        c.punct('=')?;
        Some(n)
    } else {
        None
    };
    let op = c.word()?.to_string();
    let need_dest = |c: &Cur<'_>| -> Result<String, ParseError> {
        dest.clone().ok_or(ParseError {
            line: c.line,
            message: format!("{op} needs a result %name"),
        })
    };
    let inst = match op.as_str() {
        "tail" | "musttail" | "notail" | "call" => {
            if op != "call" && !c.eat_word("call") {
                return err(c.line, "expected 'call'");
            }
            while FLAGS.contains(&c.peek_word()) {
                c.i += 1;
            }
            let ret = c.ty()?;
            let callee = match c.next()? {
                Tok::Global(g) => g.clone(),
                t => return err(c.line, format!("calls through {t:?} are not supported")),
            };
            c.punct('(')?;
            let mut args = Vec::new();
            if !c.eat_punct(')') {
                loop {
                    let t = c.ty()?;
                    while SKIPPED.contains(&c.peek_word()) {
                        c.i += 1;
                    }
                    args.push((t, c.operand(t)?));
                    if c.eat_punct(')') {
                        break;
                    }
                    c.punct(',')?;
                }
            }
            Inst::Call {
                dest: dest.clone(),
                ret,
                callee,
                args,
            }
        }
        "br" => {
            if c.is_word("label") {
                Inst::Br(c.label(blocks)?)
            } else {
                let t = c.ty()?;
                if t != Ty::Int(1) {
                    return err(c.line, "a conditional branch needs an i1");
                }
                let cond = c.operand(t)?;
                c.punct(',')?;
                let then = c.label(blocks)?;
                c.punct(',')?;
                let els = c.label(blocks)?;
                Inst::CondBr { cond, then, els }
            }
        }
        "ret" => {
            let t = c.ty()?;
            if t != Ty::Void {
                c.operand(t)?;
            }
            Inst::Ret
        }
        "unreachable" => Inst::Unreachable,
        "phi" => {
            let ty = c.ty()?;
            let mut incoming = Vec::new();
            loop {
                c.punct('[')?;
                let v = c.operand(ty)?;
                c.punct(',')?;
                let b = c.local()?;
                let b = *blocks.get(&b).ok_or(ParseError {
                    line: c.line,
                    message: format!("phi names an unknown block %{b}"),
                })?;
                c.punct(']')?;
                incoming.push((v, b));
                if !c.eat_punct(',') {
                    break;
                }
            }
            Inst::Phi {
                dest: need_dest(c)?,
                ty,
                incoming,
            }
        }
        "select" => {
            let ct = c.ty()?;
            if ct != Ty::Int(1) {
                return err(c.line, "select needs an i1 condition");
            }
            let cond = c.operand(ct)?;
            c.punct(',')?;
            let ty = c.ty()?;
            let a = c.operand(ty)?;
            c.punct(',')?;
            let tb = c.ty()?;
            let b = c.operand(tb)?;
            Inst::Select {
                dest: need_dest(c)?,
                cond,
                ty,
                a,
                b,
            }
        }
        "icmp" | "fcmp" => {
            while FLAGS.contains(&c.peek_word()) {
                c.i += 1;
            }
            let pred = c.word()?.to_string();
            let ty = c.ty()?;
            let a = c.operand(ty)?;
            c.punct(',')?;
            let b = c.operand(ty)?;
            let float = op == "fcmp";
            let known: &[&str] = if float {
                &[
                    "oeq", "one", "olt", "ole", "ogt", "oge", "ueq", "une", "ult", "ule", "ugt",
                    "uge", "ord", "uno", "true", "false",
                ]
            } else {
                &[
                    "eq", "ne", "slt", "sle", "sgt", "sge", "ult", "ule", "ugt", "uge",
                ]
            };
            if !known.contains(&pred.as_str()) {
                return err(c.line, format!("unknown {op} predicate {pred:?}"));
            }
            Inst::Cmp {
                dest: need_dest(c)?,
                float,
                pred,
                ty,
                a,
                b,
            }
        }
        "add" | "sub" | "mul" | "sdiv" | "udiv" | "srem" | "urem" | "and" | "or" | "xor"
        | "shl" | "lshr" | "ashr" | "fadd" | "fsub" | "fmul" | "fdiv" => {
            while FLAGS.contains(&c.peek_word()) {
                c.i += 1;
            }
            let bop = match op.as_str() {
                "add" => BinOp::Add,
                "sub" => BinOp::Sub,
                "mul" => BinOp::Mul,
                "sdiv" => BinOp::SDiv,
                "udiv" => BinOp::UDiv,
                "srem" => BinOp::SRem,
                "urem" => BinOp::URem,
                "and" => BinOp::And,
                "or" => BinOp::Or,
                "xor" => BinOp::Xor,
                "shl" => BinOp::Shl,
                "lshr" => BinOp::LShr,
                "ashr" => BinOp::AShr,
                "fadd" => BinOp::FAdd,
                "fsub" => BinOp::FSub,
                "fmul" => BinOp::FMul,
                _ => BinOp::FDiv,
            };
            let ty = c.ty()?;
            let float = matches!(bop, BinOp::FAdd | BinOp::FSub | BinOp::FMul | BinOp::FDiv);
            if float != (ty == Ty::Double) || ty == Ty::Ptr || ty == Ty::Void {
                return err(c.line, format!("{op} on {ty:?} is not supported"));
            }
            let a = c.operand(ty)?;
            c.punct(',')?;
            let b = c.operand(ty)?;
            Inst::Bin {
                dest: need_dest(c)?,
                op: bop,
                ty,
                a,
                b,
            }
        }
        "zext" | "sext" | "trunc" | "sitofp" | "uitofp" | "fptosi" | "fptoui" => {
            let cop = match op.as_str() {
                "zext" => CastOp::ZExt,
                "sext" => CastOp::SExt,
                "trunc" => CastOp::Trunc,
                "sitofp" => CastOp::SiToFp,
                "uitofp" => CastOp::UiToFp,
                "fptosi" => CastOp::FpToSi,
                _ => CastOp::FpToUi,
            };
            let from = c.ty()?;
            let v = c.operand(from)?;
            if !c.eat_word("to") {
                return err(c.line, format!("expected 'to' in {op}"));
            }
            let to = c.ty()?;
            if from == Ty::Ptr || to == Ty::Ptr || from == Ty::Void || to == Ty::Void {
                return err(
                    c.line,
                    format!("{op} between {from:?} and {to:?} is not supported"),
                );
            }
            Inst::Cast {
                dest: need_dest(c)?,
                op: cop,
                from,
                v,
                to,
            }
        }
        other => {
            return err(
                c.line,
                format!("the instruction {other:?} is not in the supported QIR subset"),
            );
        }
    };
    c.end()?;
    Ok(inst)
}

impl Cur<'_> {
    fn peek_word(&self) -> &str {
        match self.peek() {
            Some(Tok::Word(w)) => w,
            _ => "",
        }
    }
}

/// Most lines a program may have.
pub const MAX_LINES: usize = 1_000_000;

/// Parse a QIR program from textual LLVM IR.
pub fn parse(src: &str) -> Result<Module, ParseError> {
    let lines: Vec<&str> = src.lines().collect();
    if lines.len() > MAX_LINES {
        return err(0, format!("the program has more than {MAX_LINES} lines"));
    }
    // Pass 1: global strings and attribute groups.
    let mut globals = HashMap::new();
    let mut attr_groups: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
    for (k, raw) in lines.iter().enumerate() {
        let line = k + 1;
        let t = raw.trim_start();
        if t.starts_with('@') {
            let toks = tokens(t, line)?;
            if let (Some(Tok::Global(name)), Some(Tok::CStr(s))) = (
                toks.first(),
                toks.iter().find(|x| matches!(x, Tok::CStr(_))),
            ) {
                let s = s.strip_suffix(&[0]).unwrap_or(s);
                globals.insert(name.clone(), String::from_utf8_lossy(s).into_owned());
            }
        } else if t.starts_with("attributes") {
            let toks = tokens(t, line)?;
            let Some(Tok::Hash(id)) = toks.get(1) else {
                return err(line, "malformed attribute group");
            };
            let mut attrs = Vec::new();
            let mut i = 0;
            while i < toks.len() {
                if let Tok::Str(key) = &toks[i] {
                    let key = String::from_utf8_lossy(key).into_owned();
                    if matches!(toks.get(i + 1), Some(Tok::Punct('=')))
                        && let Some(Tok::Str(v)) = toks.get(i + 2)
                    {
                        attrs.push((key, Some(String::from_utf8_lossy(v).into_owned())));
                        i += 3;
                        continue;
                    }
                    attrs.push((key, None));
                }
                i += 1;
            }
            attr_groups.insert(id.clone(), attrs);
        }
    }
    // Pass 2: functions.
    let mut entries = Vec::new();
    let mut k = 0;
    let mut defined = Vec::new();
    while k < lines.len() {
        let line = k + 1;
        let t = lines[k].trim_start();
        if !t.starts_with("define") {
            k += 1;
            continue;
        }
        let toks = tokens(t, line)?;
        let name = toks
            .iter()
            .find_map(|x| match x {
                Tok::Global(g) => Some(g.clone()),
                _ => None,
            })
            .ok_or(ParseError {
                line,
                message: "a define without a name".into(),
            })?;
        // The function's own attributes: `#N` after the parameter list, or inline strings.
        let close = toks
            .iter()
            .rposition(|x| *x == Tok::Punct(')'))
            .unwrap_or(0);
        let mut attrs = Vec::new();
        for x in &toks[close..] {
            if let Tok::Hash(id) = x
                && let Some(a) = attr_groups.get(id)
            {
                attrs.extend(a.iter().cloned());
            }
        }
        let params = toks
            .iter()
            .position(|x| *x == Tok::Punct('('))
            .map(|o| close > o + 1)
            .unwrap_or(false);
        // The body: up to the closing brace.
        let start = k;
        let mut end = k + 1;
        while end < lines.len() && lines[end].trim() != "}" {
            end += 1;
        }
        if end >= lines.len() {
            return err(line, format!("the body of @{name} has no closing brace"));
        }
        defined.push(name.clone());
        if attrs.iter().any(|(a, _)| a == "entry_point") {
            if params {
                return err(line, format!("the entry point @{name} takes parameters"));
            }
            entries.push((name, attrs, start, end));
        }
        k = end + 1;
    }
    let (entry, attributes, start, end) = match entries.len() {
        0 => {
            return err(
                0,
                "no entry point: no function has the \"entry_point\" attribute",
            );
        }
        1 => entries.remove(0),
        _ => {
            return err(
                entries[1].2 + 1,
                "more than one entry point (\"entry_point\" attribute)",
            );
        }
    };
    // Block labels first (branches may go forward).
    let mut names = HashMap::new();
    let mut spans: Vec<(String, usize, usize)> = Vec::new();
    for (j, raw) in lines.iter().enumerate().take(end).skip(start + 1) {
        let t = raw.split(';').next().unwrap_or("").trim();
        if t.is_empty() {
            continue;
        }
        if let Some(label) = t.strip_suffix(':')
            && !label.contains(' ')
        {
            let label = label.trim_matches('"').to_string();
            if names.insert(label.clone(), spans.len()).is_some() {
                return err(j + 1, format!("block %{label} is defined twice"));
            }
            spans.push((label, j + 1, j + 1));
        } else if spans.is_empty() {
            // An unlabelled first block is %0 (the entry point has no parameters).
            names.insert("0".into(), 0);
            spans.push(("0".into(), j, j));
        }
    }
    let mut blocks = Vec::new();
    for (b, (name, first, _)) in spans.iter().enumerate() {
        let stop = spans.get(b + 1).map(|s| s.1 - 1).unwrap_or(end);
        let mut insts = Vec::new();
        for (j, raw) in lines.iter().enumerate().take(stop).skip(*first) {
            let t = raw.trim();
            if t.is_empty() || t.starts_with(';') || (t.ends_with(':') && !t.contains(' ')) {
                continue;
            }
            let toks = tokens(t, j + 1)?;
            if toks.is_empty() {
                continue;
            }
            let mut c = Cur {
                t: &toks,
                i: 0,
                line: j + 1,
                globals: &globals,
            };
            insts.push((parse_inst(&mut c, &names)?, j + 1));
        }
        match insts.last() {
            Some((Inst::Br(_) | Inst::CondBr { .. } | Inst::Ret | Inst::Unreachable, _)) => {}
            _ => {
                return err(
                    *first,
                    format!("block %{name} does not end with br, ret or unreachable"),
                );
            }
        }
        blocks.push(Block {
            name: name.clone(),
            insts,
        });
    }
    if blocks.is_empty() {
        return err(start + 1, format!("the entry point @{entry} has no body"));
    }
    // Calls to functions the program defines itself (recursion among them) are refused.
    for b in &blocks {
        for (inst, line) in &b.insts {
            if let Inst::Call { callee, .. } = inst
                && defined.contains(callee)
            {
                return err(
                    *line,
                    format!(
                        "calls to functions defined in the program (@{callee}) are not supported"
                    ),
                );
            }
        }
    }
    let num = |key: &str| -> Result<Option<u64>, ParseError> {
        match attributes.iter().find(|(k, _)| k == key) {
            None => Ok(None),
            Some((_, Some(v))) => v
                .parse::<u64>()
                .map(Some)
                .or_else(|_| err(start + 1, format!("{key}={v:?} is not a number"))),
            Some((_, None)) => err(start + 1, format!("{key} has no value")),
        }
    };
    Ok(Module {
        required_qubits: num("required_num_qubits")?,
        required_results: num("required_num_results")?,
        entry,
        blocks,
        attributes,
        line: start + 1,
    })
}
