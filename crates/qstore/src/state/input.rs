//! What goes into a `put`: [`ArrayInfo`] (dtype and shape), a [`DenseSource`] of its bytes
//! (a slice, a file region or a generator), the [`KindRequest`], and [`scan`], the first pass
//! that refuses bad input (NaN/Inf amplitudes, wrong lengths) before anything is written and
//! measures what the encoder needs (non-zero count, non-zero chunks, norm).

use super::dtype::{DType, StateKind};
use crate::error::{Error, Result};
use crate::format::tree::MAX_QUBITS;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

/// Element type and shape of an array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayInfo {
    pub dtype: DType,
    pub shape: Vec<u64>,
}

impl ArrayInfo {
    /// Number of elements.
    pub fn elements(&self) -> Option<u64> {
        self.shape.iter().try_fold(1u64, |a, &b| a.checked_mul(b))
    }

    /// Number of bytes.
    pub fn byte_len(&self) -> Option<u64> {
        self.elements()?.checked_mul(self.dtype.item_size() as u64)
    }
}

/// Which kind the caller wants a put to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum KindRequest {
    /// Infer from dtype and shape; refuse anything that is neither a state vector nor a
    /// density matrix.
    #[default]
    Auto,
    StateVector,
    DensityMatrix,
    /// Any dtype and shape.
    Array,
}

fn describe(info: &ArrayInfo) -> String {
    format!("{} array of shape {:?}", info.dtype, info.shape)
}

fn pow2_qubits(d: u64) -> Option<u32> {
    (d >= 2 && d.is_power_of_two() && d.trailing_zeros() <= MAX_QUBITS).then(|| d.trailing_zeros())
}

/// Decide the kind of a state, or say exactly why it is refused.
pub fn infer_kind(info: &ArrayInfo, req: KindRequest) -> Result<StateKind> {
    if info.shape.len() > 32 {
        return Err(Error::invalid_state("more than 32 dimensions"));
    }
    if info.byte_len().is_none() {
        return Err(Error::invalid_state(format!(
            "{}: size overflows",
            describe(info)
        )));
    }
    let sv =
        || -> std::result::Result<StateKind, String> {
            if !info.dtype.is_complex() {
                return Err(format!(
                    "a state vector must be complex64 or complex128, got {}",
                    info.dtype
                ));
            }
            if info.shape.len() != 1 {
                return Err(format!("a state vector is 1-D, got shape {:?}", info.shape));
            }
            pow2_qubits(info.shape[0]).map(|_| StateKind::StateVector).ok_or_else(|| {
            format!(
                "a state vector has length 2^n (n = 1..{MAX_QUBITS}); {} is not a power of two",
                info.shape[0]
            )
        })
        };
    let dm = || -> std::result::Result<StateKind, String> {
        if !info.dtype.is_complex() {
            return Err(format!(
                "a density matrix must be complex64 or complex128, got {}",
                info.dtype
            ));
        }
        if info.shape.len() != 2 || info.shape[0] != info.shape[1] {
            return Err(format!(
                "a density matrix is square 2^n x 2^n, got shape {:?}",
                info.shape
            ));
        }
        pow2_qubits(info.shape[0])
            .map(|_| StateKind::DensityMatrix)
            .ok_or_else(|| {
                format!(
                    "a density matrix is 2^n x 2^n; {} is not a power of two",
                    info.shape[0]
                )
            })
    };
    match req {
        KindRequest::Array => Ok(StateKind::Array),
        KindRequest::StateVector => sv().map_err(Error::invalid_state),
        KindRequest::DensityMatrix => dm().map_err(Error::invalid_state),
        KindRequest::Auto => match info.shape.len() {
            1 => sv(),
            2 => dm(),
            _ => Err(format!(
                "a state is 1-D (state vector) or 2-D (density matrix), got shape {:?}",
                info.shape
            )),
        }
        .map_err(|r| {
            Error::invalid_state(format!(
                "cannot store {} as a state: {r}; store it as a generic array with kind `array` \
                 (--kind array) if that is what it is",
                describe(info)
            ))
        }),
    }
}

/// Random-access bytes of a dense array: a slice, a file region or a generator.
pub trait DenseSource: Sync {
    /// Total bytes.
    fn len(&self) -> u64;
    /// True when empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Fill `buf` with the bytes at `offset`.
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()>;
}

/// Bytes held in memory.
pub struct SliceSource<'a>(pub &'a [u8]);

impl DenseSource for SliceSource<'_> {
    fn len(&self) -> u64 {
        self.0.len() as u64
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        let o = offset as usize;
        buf.copy_from_slice(&self.0[o..o + buf.len()]);
        Ok(())
    }
}

/// A region of a file (such as the data of a `.npy`), read with `pread`.
pub struct FileSource {
    file: File,
    path: PathBuf,
    offset: u64,
    len: u64,
}

impl FileSource {
    /// `len` bytes of `file` starting at `offset`.
    pub fn new(file: File, path: PathBuf, offset: u64, len: u64) -> Self {
        FileSource {
            file,
            path,
            offset,
            len,
        }
    }
}

impl DenseSource for FileSource {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.file
            .read_exact_at(buf, self.offset + offset)
            .map_err(|e| Error::io(self.path.display(), e))
    }
}

/// Bytes produced on demand by a function (synthetic workloads, tests, benchmarks).
pub struct FnSource<F: Fn(u64, &mut [u8]) + Sync> {
    len: u64,
    f: F,
}

impl<F: Fn(u64, &mut [u8]) + Sync> FnSource<F> {
    /// `len` bytes; `f(offset, buf)` fills `buf` with the bytes at `offset`.
    pub fn new(len: u64, f: F) -> Self {
        FnSource { len, f }
    }
}

impl<F: Fn(u64, &mut [u8]) + Sync> DenseSource for FnSource<F> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        (self.f)(offset, buf);
        Ok(())
    }
}

/// What the first pass over a dense source found.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ScanSummary {
    /// Elements whose bytes are not all zero.
    pub nnz: u64,
    /// Chunks (of the repository's chunk size) that are not all zero.
    pub nonzero_chunks: u64,
    /// Squared norm (state vector), trace (density matrix), sum of squares (float array).
    pub norm: f64,
}

/// True when every byte is zero.
pub fn all_zero(b: &[u8]) -> bool {
    let (words, rest) = b.as_chunks::<16>();
    words.iter().all(|w| u128::from_ne_bytes(*w) == 0) && rest.iter().all(|&x| x == 0)
}

impl ScanSummary {
    /// Add another part's counts.
    pub fn add(&mut self, o: &ScanSummary) {
        self.nnz += o.nnz;
        self.nonzero_chunks += o.nonzero_chunks;
        self.norm += o.norm;
    }
}

/// Check that `src` holds exactly the bytes `info` describes; returns that length.
pub fn check_len(src: &dyn DenseSource, info: &ArrayInfo) -> Result<u64> {
    let expected = info
        .byte_len()
        .ok_or_else(|| Error::invalid_state("size overflows"))?;
    if src.len() != expected {
        return Err(Error::invalid_state(format!(
            "{} needs {expected} bytes of data, the input has {}",
            describe(info),
            src.len()
        )));
    }
    Ok(expected)
}

/// Check and measure one chunk of a dense array that starts at byte `start`: refuse
/// non-finite amplitudes of states, count non-zero elements, add up the norm or trace.
pub fn scan_chunk(
    buf: &[u8],
    start: u64,
    info: &ArrayInfo,
    kind: StateKind,
) -> Result<ScanSummary> {
    let item = info.dtype.item_size() as u64;
    let check_finite = kind != StateKind::Array && info.dtype.is_float();
    let dim = info.shape.first().copied().unwrap_or(1);
    let mut s = ScanSummary::default();
    if all_zero(buf) {
        return Ok(s);
    }
    s.nonzero_chunks = 1;
    if kind == StateKind::StateVector
        && let Some(fast) = scan_state_vector(buf, info.dtype)
    {
        s.nnz = fast.nnz;
        s.norm = fast.norm;
        return Ok(s);
    }
    // The general path (and the one that names the first non-finite element).
    let first = start / item;
    for (k, e) in buf.chunks_exact(item as usize).enumerate() {
        if all_zero(e) {
            continue;
        }
        s.nnz += 1;
        if !info.dtype.is_float() {
            continue;
        }
        let idx = first + k as u64;
        let [re, im] = info.dtype.amplitude(e, 0);
        if check_finite && !(re.is_finite() && im.is_finite()) {
            return Err(Error::invalid_state(format!(
                "element {idx} is not finite ({re} + {im}i); states may not hold NaN or Inf"
            )));
        }
        s.norm += match kind {
            StateKind::DensityMatrix => {
                if idx.is_multiple_of(dim + 1) {
                    re
                } else {
                    0.0
                }
            }
            _ => re * re + im * im,
        };
    }
    Ok(s)
}

/// Fast path of [`scan_chunk`] for complex state vectors: word-wise, no per-element slicing.
/// `None` when the dtype is not complex or a non-finite value is present (the general path
/// then reports it).
fn scan_state_vector(buf: &[u8], dtype: DType) -> Option<ScanSummary> {
    let mut s = ScanSummary::default();
    let mut bad = false;
    match dtype {
        DType::Complex128 => {
            const EXP: u64 = 0x7ff0_0000_0000_0000;
            let (pairs, _) = buf.as_chunks::<16>();
            for p in pairs {
                let re = u64::from_le_bytes(p[..8].try_into().ok()?);
                let im = u64::from_le_bytes(p[8..].try_into().ok()?);
                s.nnz += u64::from((re | im) != 0);
                bad |= (re & EXP) == EXP || (im & EXP) == EXP;
                let (r, i) = (f64::from_bits(re), f64::from_bits(im));
                s.norm += r * r + i * i;
            }
        }
        DType::Complex64 => {
            const EXP: u32 = 0x7f80_0000;
            let (pairs, _) = buf.as_chunks::<8>();
            for p in pairs {
                let re = u32::from_le_bytes(p[..4].try_into().ok()?);
                let im = u32::from_le_bytes(p[4..].try_into().ok()?);
                s.nnz += u64::from((re | im) != 0);
                bad |= (re & EXP) == EXP || (im & EXP) == EXP;
                let (r, i) = (f32::from_bits(re) as f64, f32::from_bits(im) as f64);
                s.norm += r * r + i * i;
            }
        }
        _ => return None,
    }
    (!bad).then_some(s)
}

/// A whole pass over a dense source with [`scan_chunk`], reading chunk-sized blocks in
/// parallel and holding a bounded number of them.
pub fn scan(
    src: &dyn DenseSource,
    info: &ArrayInfo,
    kind: StateKind,
    chunk_size: u64,
) -> Result<ScanSummary> {
    let expected = check_len(src, info)?;
    let n_chunks = expected.div_ceil(chunk_size);
    let batch = (crate::par::workers() * 2).max(4) as u64;
    let mut total = ScanSummary::default();
    let mut c0 = 0;
    while c0 < n_chunks {
        let c1 = (c0 + batch).min(n_chunks);
        let parts: Vec<Result<ScanSummary>> = crate::par::map((c0..c1).collect(), |c| {
            let start = c * chunk_size;
            let mut buf = vec![0u8; chunk_size.min(expected - start) as usize];
            src.read_at(start, &mut buf)?;
            scan_chunk(&buf, start, info, kind)
        });
        for p in parts {
            total.add(&p?);
        }
        c0 = c1;
    }
    Ok(total)
}
