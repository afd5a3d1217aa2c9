//! The Hermitian layout of a density matrix: the rows of its upper triangle, diagonal
//! included (N(N+1)/2 elements). The strict lower triangle is rebuilt as
//! `(re, 0.0 - im)` of its mirror; [`is_hermitian`] checks bit for bit that this rebuild
//! gives back exactly the stored matrix, so the encoding is lossless.

use super::dtype::DType;
use super::input::DenseSource;
use crate::error::Result;

/// Offset (in elements) of element (i, j), j >= i, in the upper-triangle stream of an N x N
/// matrix.
pub fn upper_offset(n: u64, i: u64, j: u64) -> u64 {
    i * (2 * n - i + 1) / 2 + (j - i)
}

/// Elements in the upper-triangle stream of an N x N matrix.
pub fn upper_len(n: u64) -> u64 {
    n * (n + 1) / 2
}

/// The mirror image used for the lower triangle: real part unchanged, imaginary part
/// `0.0 - im` (so +0.0 stays +0.0, as a product `a * conj(b)` computes it).
pub fn mirror(dtype: DType, src: &[u8], dst: &mut [u8]) {
    match dtype {
        DType::Complex128 => {
            dst[..8].copy_from_slice(&src[..8]);
            let im = f64::from_le_bytes(src[8..16].try_into().expect("8 bytes"));
            dst[8..16].copy_from_slice(&(0.0 - im).to_le_bytes());
        }
        DType::Complex64 => {
            dst[..4].copy_from_slice(&src[..4]);
            let im = f32::from_le_bytes(src[4..8].try_into().expect("4 bytes"));
            dst[4..8].copy_from_slice(&(0.0 - im).to_le_bytes());
        }
        _ => dst.copy_from_slice(src),
    }
}

/// True when every element below the diagonal is bit-for-bit the [`mirror`] of its partner
/// above the diagonal. Reads the matrix in row blocks and strided column pieces, holding at
/// most about 64 MiB.
pub fn is_hermitian(src: &dyn DenseSource, n: u64, dtype: DType) -> Result<bool> {
    let item = dtype.item_size();
    let row_bytes = n as usize * item;
    let block = ((64usize << 20) / row_bytes.max(1)).clamp(1, n as usize) as u64;
    let mut rows = vec![0u8; block as usize * row_bytes];
    let mut piece = vec![0u8; block as usize * item];
    let mut m = vec![0u8; item];
    let mut r0 = 0;
    while r0 < n {
        let r1 = (r0 + block).min(n);
        let rows = &mut rows[..(r1 - r0) as usize * row_bytes];
        src.read_at(r0 * row_bytes as u64, rows)?;
        // Lower-triangle elements (i, j), i in [r0, r1), j < i, against upper (j, i).
        for j in 0..r1.saturating_sub(1) {
            // Column j of rows max(r0, j+1)..r1 must mirror row j, columns in that range.
            let i_start = r0.max(j + 1);
            if i_start >= r1 {
                continue;
            }
            let count = (r1 - i_start) as usize;
            let piece = &mut piece[..count * item];
            src.read_at((j * n + i_start) * item as u64, piece)?;
            for k in 0..count {
                let i = i_start as usize + k;
                let lower = &rows[(i - r0 as usize) * row_bytes + j as usize * item..][..item];
                mirror(dtype, &piece[k * item..(k + 1) * item], &mut m);
                if lower != &m[..] {
                    return Ok(false);
                }
            }
        }
        r0 = r1;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::input::SliceSource;

    fn c(re: f64, im: f64) -> Vec<u8> {
        [re.to_le_bytes(), im.to_le_bytes()].concat()
    }

    #[test]
    fn offsets_cover_the_upper_triangle() {
        let n = 5;
        let mut k = 0;
        for i in 0..n {
            for j in i..n {
                assert_eq!(upper_offset(n, i, j), k);
                k += 1;
            }
        }
        assert_eq!(k, upper_len(n));
    }

    #[test]
    fn detects_hermitian_bit_for_bit() {
        // [[1, 2+3i], [2-3i, 4]] is Hermitian.
        let m: Vec<u8> = [c(1., 0.), c(2., 3.), c(2., -3.), c(4., 0.)].concat();
        assert!(is_hermitian(&SliceSource(&m), 2, DType::Complex128).unwrap());
        // Real matrix with +0.0 imaginary parts everywhere: still Hermitian under 0.0 - im.
        let r: Vec<u8> = [c(1., 0.), c(2., 0.), c(2., 0.), c(4., 0.)].concat();
        assert!(is_hermitian(&SliceSource(&r), 2, DType::Complex128).unwrap());
        // -0.0 below the diagonal would not round-trip bit for bit: refused.
        let z: Vec<u8> = [c(1., 0.), c(2., 0.), c(2., -0.0), c(4., 0.)].concat();
        assert!(!is_hermitian(&SliceSource(&z), 2, DType::Complex128).unwrap());
        let nh: Vec<u8> = [c(1., 0.), c(2., 3.), c(2., 3.), c(4., 0.)].concat();
        assert!(!is_hermitian(&SliceSource(&nh), 2, DType::Complex128).unwrap());
    }
}
