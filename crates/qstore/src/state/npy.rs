//! NumPy's `.npy` format: [`read_header`] parses and checks a header (versions 1.0, 2.0,
//! 3.0; little-endian, C order, plain numeric dtypes only; everything else is refused with a
//! reason rather than misread), [`encode_header`] writes one, and [`open`] gives a checked
//! [`FileSource`] over a file's data for streaming import.

use super::dtype::DType;
use super::input::{ArrayInfo, FileSource};
use crate::error::{Error, Result};
use std::fs::File;
use std::io::Read;
use std::path::Path;

/// The magic string of a `.npy` file.
pub const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// Largest header this reader accepts.
pub const MAX_HEADER_LEN: usize = 64 << 10;

/// A parsed header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NpyHeader {
    pub info: ArrayInfo,
    /// Where the data starts.
    pub data_offset: u64,
}

fn parse_descr(d: &str) -> std::result::Result<DType, String> {
    let (order, code) = d.split_at(d.len().min(1));
    let dtype = match code {
        "c8" => DType::Complex64,
        "c16" => DType::Complex128,
        "f4" => DType::Float32,
        "f8" => DType::Float64,
        "i1" => DType::Int8,
        "i2" => DType::Int16,
        "i4" => DType::Int32,
        "i8" => DType::Int64,
        "u1" => DType::UInt8,
        "u2" => DType::UInt16,
        "u4" => DType::UInt32,
        "u8" => DType::UInt64,
        "b1" => DType::Bool,
        _ => {
            return Err(format!(
                "dtype {d:?} is not supported (use complex64/128, float32/64, integers or bool)"
            ));
        }
    };
    match order {
        "<" | "|" => Ok(dtype),
        "=" if cfg!(target_endian = "little") => Ok(dtype),
        ">" if dtype.item_size() == 1 => Ok(dtype),
        ">" => Err(format!(
            "big-endian dtype {d:?} is not supported; convert with a.astype(a.dtype.newbyteorder('<'))"
        )),
        _ => Err(format!("dtype {d:?} has no byte-order mark")),
    }
}

/// A tiny parser for the Python dict literal of a `.npy` header.
struct Lit<'a> {
    s: &'a [u8],
    i: usize,
}

enum Value {
    Str(String),
    Bool(bool),
    Tuple(Vec<u64>),
    Other,
}

impl<'a> Lit<'a> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        if self.s.get(self.i) == Some(&c) {
            self.i += 1;
            true
        } else {
            false
        }
    }

    fn string(&mut self) -> std::result::Result<String, String> {
        self.ws();
        let q = *self.s.get(self.i).ok_or("unexpected end of header")?;
        if q != b'\'' && q != b'"' {
            return Err("expected a quoted string".into());
        }
        let start = self.i + 1;
        let end = self.s[start..]
            .iter()
            .position(|&c| c == q)
            .ok_or("unterminated string")?;
        self.i = start + end + 1;
        String::from_utf8(self.s[start..start + end].to_vec())
            .map_err(|_| "string is not UTF-8".into())
    }

    fn value(&mut self) -> std::result::Result<Value, String> {
        self.ws();
        match self.s.get(self.i) {
            Some(b'\'') | Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b'(') => {
                self.i += 1;
                let mut dims = Vec::new();
                loop {
                    if self.eat(b')') {
                        return Ok(Value::Tuple(dims));
                    }
                    self.ws();
                    let start = self.i;
                    while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
                        self.i += 1;
                    }
                    let n = std::str::from_utf8(&self.s[start..self.i])
                        .ok()
                        .and_then(|t| t.parse::<u64>().ok())
                        .ok_or("shape holds something that is not a non-negative integer")?;
                    if dims.len() >= 32 {
                        return Err("more than 32 dimensions".into());
                    }
                    dims.push(n);
                    if !self.eat(b',') {
                        if self.eat(b')') {
                            return Ok(Value::Tuple(dims));
                        }
                        return Err("malformed shape tuple".into());
                    }
                }
            }
            Some(b'T') if self.s[self.i..].starts_with(b"True") => {
                self.i += 4;
                Ok(Value::Bool(true))
            }
            Some(b'F') if self.s[self.i..].starts_with(b"False") => {
                self.i += 5;
                Ok(Value::Bool(false))
            }
            Some(b'[') | Some(b'{') => Ok(Value::Other),
            _ => Err("unexpected value in header".into()),
        }
    }
}

/// Parse the dict literal of a header.
pub fn parse_dict(text: &[u8]) -> std::result::Result<ArrayInfo, String> {
    let mut p = Lit { s: text, i: 0 };
    if !p.eat(b'{') {
        return Err("header is not a dict".into());
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        if !p.eat(b':') {
            return Err(format!("expected ':' after {key:?}"));
        }
        let v = p.value()?;
        match (key.as_str(), v) {
            ("descr", Value::Str(s)) => descr = Some(s),
            ("descr", _) => return Err("structured dtypes are not supported".into()),
            ("fortran_order", Value::Bool(b)) => fortran = Some(b),
            ("shape", Value::Tuple(t)) => shape = Some(t),
            (k, _) => return Err(format!("unexpected header key {k:?}")),
        }
        if !p.eat(b',') {
            if p.eat(b'}') {
                break;
            }
            return Err("expected ',' or '}' in header".into());
        }
    }
    let descr = descr.ok_or("header has no 'descr'")?;
    let dtype = parse_descr(&descr)?;
    if fortran.ok_or("header has no 'fortran_order'")? {
        return Err(
            "Fortran-order arrays are not supported; save np.ascontiguousarray(a) instead".into(),
        );
    }
    let shape = shape.ok_or("header has no 'shape'")?;
    let info = ArrayInfo { dtype, shape };
    if info.byte_len().is_none() {
        return Err("shape is too large".into());
    }
    Ok(info)
}

/// Read and check a header from the start of `r`.
pub fn read_header(r: &mut impl Read) -> std::result::Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|_| "file too short for a .npy header")?;
    if &pre[..6] != MAGIC {
        return Err("not a .npy file (bad magic)".into());
    }
    let (len, pre_len) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b).map_err(|_| "truncated header")?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b).map_err(|_| "truncated header")?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => {
            return Err(format!(
                ".npy format version {v}.{} is not supported",
                pre[7]
            ));
        }
    };
    if len > MAX_HEADER_LEN {
        return Err(format!(
            "header of {len} bytes is larger than {MAX_HEADER_LEN}"
        ));
    }
    let mut text = vec![0u8; len];
    r.read_exact(&mut text).map_err(|_| "truncated header")?;
    let info = parse_dict(&text)?;
    Ok(NpyHeader {
        info,
        data_offset: (pre_len + len) as u64,
    })
}

/// A header (version 1.0, or 2.0 when it does not fit) for an array, padded to 64 bytes.
pub fn encode_header(info: &ArrayInfo) -> Vec<u8> {
    let shape = match info.shape.len() {
        1 => format!("({},)", info.shape[0]),
        _ => format!(
            "({})",
            info.shape
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape}, }}",
        info.dtype.numpy_descr()
    );
    let build = |pre_len: usize| {
        let total = (pre_len + dict.len() + 1).div_ceil(64) * 64;
        let mut h = dict.clone().into_bytes();
        h.resize(total - pre_len - 1, b' ');
        h.push(b'\n');
        h
    };
    let h = build(10);
    let mut out = MAGIC.to_vec();
    if h.len() <= u16::MAX as usize {
        out.extend_from_slice(&[1, 0]);
        out.extend_from_slice(&(h.len() as u16).to_le_bytes());
        out.extend_from_slice(&h);
    } else {
        let h = build(12);
        out.extend_from_slice(&[2, 0]);
        out.extend_from_slice(&(h.len() as u32).to_le_bytes());
        out.extend_from_slice(&h);
    }
    out
}

/// Open a `.npy` file for streaming import: its header and a source over its data, whose
/// length is checked against the shape.
pub fn open(path: &Path) -> Result<(ArrayInfo, FileSource)> {
    let npy_err = |reason: String| Error::Npy {
        file: Some(path.to_path_buf()),
        reason,
    };
    let mut f = File::open(path).map_err(|e| Error::io(path.display(), e))?;
    let h = read_header(&mut f).map_err(npy_err)?;
    let file_len = f
        .metadata()
        .map_err(|e| Error::io(path.display(), e))?
        .len();
    let need = h.info.byte_len().unwrap_or(u64::MAX);
    let have = file_len.saturating_sub(h.data_offset);
    if have != need {
        return Err(npy_err(format!(
            "the header describes {need} bytes of data but the file holds {have} (truncated or not a .npy)"
        )));
    }
    let src = FileSource::new(f, path.to_path_buf(), h.data_offset, need);
    Ok((h.info, src))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn header_parser_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = read_header(&mut &b[..]);
            let _ = parse_dict(&b);
        }

        #[test]
        fn header_parser_never_panics_on_near_valid_text(s in "\\{'descr': '[<>|=]?[cfiub][0-9]{1,2}', 'fortran_order': (True|False), 'shape': \\([0-9, ]{0,12}\\), ?\\}") {
            let _ = parse_dict(s.as_bytes());
        }

        #[test]
        fn headers_round_trip(shape in proptest::collection::vec(0u64..1000, 0..5)) {
            let info = ArrayInfo { dtype: DType::Complex128, shape };
            let h = encode_header(&info);
            prop_assert_eq!(h.len() % 64, 0);
            let parsed = read_header(&mut &h[..]).unwrap();
            prop_assert_eq!(parsed.info, info);
            prop_assert_eq!(parsed.data_offset, h.len() as u64);
        }
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        let f = b"{'descr': '<c16', 'fortran_order': True, 'shape': (2, 2), }";
        assert!(parse_dict(f).unwrap_err().contains("Fortran"));
        let b = b"{'descr': '>c16', 'fortran_order': False, 'shape': (4,), }";
        assert!(parse_dict(b).unwrap_err().contains("big-endian"));
        let s = b"{'descr': [('a', '<f8')], 'fortran_order': False, 'shape': (4,), }";
        assert!(parse_dict(s).unwrap_err().contains("structured"));
        let o = b"{'descr': '|O', 'fortran_order': False, 'shape': (4,), }";
        assert!(parse_dict(o).is_err());
        let ok = b"{'descr': '<c8', 'fortran_order': False, 'shape': (8,), }";
        assert_eq!(parse_dict(ok).unwrap().shape, vec![8]);
    }
}
