//! What a stored array is: [`DType`] (element type), [`StateKind`] (state vector, density
//! matrix or generic array) and [`Encoding`] (dense, sparse or Hermitian upper triangle).

use serde::{Deserialize, Serialize};
use std::fmt;

/// Element type of a stored array. All multi-byte types are little-endian on storage.
///
/// The discriminants are part of the on-disk format: append, never reorder.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum DType {
    Complex64,
    Complex128,
    Float32,
    Float64,
    Int8,
    Int16,
    Int32,
    Int64,
    UInt8,
    UInt16,
    UInt32,
    UInt64,
    Bool,
}

impl DType {
    /// Bytes per element.
    pub fn item_size(self) -> usize {
        use DType::*;
        match self {
            Int8 | UInt8 | Bool => 1,
            Int16 | UInt16 => 2,
            Float32 | Int32 | UInt32 => 4,
            Complex64 | Float64 | Int64 | UInt64 => 8,
            Complex128 => 16,
        }
    }

    /// Bytes of one scalar component (a complex number has two): the byte-shuffle width.
    pub fn component_size(self) -> usize {
        match self {
            DType::Complex64 => 4,
            DType::Complex128 => 8,
            d => d.item_size(),
        }
    }

    /// True for complex dtypes.
    pub fn is_complex(self) -> bool {
        matches!(self, DType::Complex64 | DType::Complex128)
    }

    /// True for floating-point dtypes (real or complex), whose values may be NaN or Inf.
    pub fn is_float(self) -> bool {
        matches!(
            self,
            DType::Complex64 | DType::Complex128 | DType::Float32 | DType::Float64
        )
    }

    /// NumPy's little-endian `descr` string, e.g. `<c16`.
    pub fn numpy_descr(self) -> &'static str {
        use DType::*;
        match self {
            Complex64 => "<c8",
            Complex128 => "<c16",
            Float32 => "<f4",
            Float64 => "<f8",
            Int8 => "|i1",
            Int16 => "<i2",
            Int32 => "<i4",
            Int64 => "<i8",
            UInt8 => "|u1",
            UInt16 => "<u2",
            UInt32 => "<u4",
            UInt64 => "<u8",
            Bool => "|b1",
        }
    }

    /// The conventional lower-case name (`complex128`, `float64`, ...).
    pub fn name(self) -> &'static str {
        use DType::*;
        match self {
            Complex64 => "complex64",
            Complex128 => "complex128",
            Float32 => "float32",
            Float64 => "float64",
            Int8 => "int8",
            Int16 => "int16",
            Int32 => "int32",
            Int64 => "int64",
            UInt8 => "uint8",
            UInt16 => "uint16",
            UInt32 => "uint32",
            UInt64 => "uint64",
            Bool => "bool",
        }
    }

    /// Parse a name written by [`DType::name`].
    pub fn from_name(s: &str) -> Option<Self> {
        use DType::*;
        [
            Complex64, Complex128, Float32, Float64, Int8, Int16, Int32, Int64, UInt8, UInt16,
            UInt32, UInt64, Bool,
        ]
        .into_iter()
        .find(|d| d.name() == s)
    }

    /// Read element `i` of `bytes` as a complex number in f64 (real types get a zero imaginary
    /// part). `bytes` must hold at least `(i + 1) * item_size` bytes.
    pub fn amplitude(self, bytes: &[u8], i: usize) -> [f64; 2] {
        let s = self.item_size();
        let b = &bytes[i * s..(i + 1) * s];
        let f32_at = |o: usize| f32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]]) as f64;
        let f64_at = |o: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[o..o + 8]);
            f64::from_le_bytes(a)
        };
        match self {
            DType::Complex128 => [f64_at(0), f64_at(8)],
            DType::Complex64 => [f32_at(0), f32_at(4)],
            DType::Float64 => [f64_at(0), 0.0],
            DType::Float32 => [f32_at(0), 0.0],
            _ => [0.0, 0.0],
        }
    }
}

impl fmt::Display for DType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a stored array represents.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum StateKind {
    /// 2^n complex amplitudes.
    StateVector,
    /// A 2^n x 2^n complex matrix.
    DensityMatrix,
    /// Any other array (parameters, counts, ...).
    Array,
}

impl StateKind {
    /// `statevector`, `density_matrix` or `array`.
    pub fn name(self) -> &'static str {
        match self {
            StateKind::StateVector => "statevector",
            StateKind::DensityMatrix => "density_matrix",
            StateKind::Array => "array",
        }
    }
}

impl fmt::Display for StateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the elements of a state are laid out in its byte stream.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
pub enum Encoding {
    /// All elements in C order.
    Dense,
    /// `nnz` little-endian u64 basis indices (strictly increasing), then `nnz` values.
    Sparse,
    /// Rows of the upper triangle of a Hermitian matrix, diagonal included.
    Hermitian,
    /// A density matrix that is Hermitian up to rounding: the [`Encoding::Hermitian`] stream,
    /// then for every element below the diagonal (row by row) the exact difference of its
    /// bit pattern from the mirror of its partner (`state::hermitian`). Format version 4.
    NearHermitian,
}

impl Encoding {
    /// `dense`, `sparse`, `hermitian` or `near-hermitian`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::Dense => "dense",
            Encoding::Sparse => "sparse",
            Encoding::Hermitian => "hermitian",
            Encoding::NearHermitian => "near-hermitian",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
