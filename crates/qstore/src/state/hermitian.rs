//! The Hermitian layout of a density matrix: the rows of its upper triangle, diagonal
//! included (N(N+1)/2 elements). The strict lower triangle is rebuilt as
//! `(re, 0.0 - im)` of its mirror; [`is_hermitian`] checks bit for bit that this rebuild
//! gives back exactly the stored matrix, so the encoding is lossless.
//!
//! Density matrices computed in floating point are rarely Hermitian bit for bit (Aer's differ
//! by a few ulps in every pair). The near-Hermitian layout stores the same upper triangle,
//! then a *residual* for every element below the diagonal, row by row: per real component,
//! the wrapping difference of its bit pattern from the mirror's, zigzag-coded
//! ([`residual`]). A few ulps become small integers whose high bytes are zero, which the
//! chunk codecs squeeze to almost nothing, and adding the residual back to the mirror's bits
//! ([`apply_residual`]) restores every bit, -0.0 and NaN payloads included. The stream is as
//! long as the dense one. [`near_hermitian_saves`] decides, by compressed size on a sample of
//! rows, whether that layout is smaller than the dense one.

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

/// Offset (in elements) of the residual of element (i, j), j < i, in the near-Hermitian
/// stream of an N x N matrix: after the upper triangle, rows in order, row i holding i.
pub fn residual_offset(n: u64, i: u64, j: u64) -> u64 {
    upper_len(n) + i * i.saturating_sub(1) / 2 + j
}

fn zigzag(d: u64, bits: u32) -> u64 {
    // Sign-extend the `bits`-bit difference, then zigzag: small positive and negative
    // differences both become small numbers.
    let s = 64 - bits;
    let v = ((d << s) as i64) >> s;
    (((v << 1) ^ (v >> 63)) as u64) & (u64::MAX >> s)
}

fn unzigzag(z: u64) -> u64 {
    (z >> 1) ^ (z & 1).wrapping_neg()
}

/// The residual of lower-triangle elements `lower` against their mirrored partners
/// `mirrored` (the same number of elements), into `out`.
pub fn residual(dtype: DType, lower: &[u8], mirrored: &[u8], out: &mut [u8]) {
    let c = dtype.component_size();
    for ((l, m), o) in lower
        .chunks_exact(c)
        .zip(mirrored.chunks_exact(c))
        .zip(out.chunks_exact_mut(c))
    {
        if c == 8 {
            let d = u64::from_le_bytes(l.try_into().expect("8 bytes"))
                .wrapping_sub(u64::from_le_bytes(m.try_into().expect("8 bytes")));
            o.copy_from_slice(&zigzag(d, 64).to_le_bytes());
        } else {
            let d = u32::from_le_bytes(l.try_into().expect("4 bytes"))
                .wrapping_sub(u32::from_le_bytes(m.try_into().expect("4 bytes")));
            o.copy_from_slice(&(zigzag(d as u64, 32) as u32).to_le_bytes());
        }
    }
}

/// Turn mirrored partners (`elems`, in place) into the lower-triangle elements, given their
/// residual: the inverse of [`residual`].
pub fn apply_residual(dtype: DType, elems: &mut [u8], residual: &[u8]) {
    let c = dtype.component_size();
    for (e, r) in elems.chunks_exact_mut(c).zip(residual.chunks_exact(c)) {
        if c == 8 {
            let z = u64::from_le_bytes(r.try_into().expect("8 bytes"));
            let m = u64::from_le_bytes((&*e).try_into().expect("8 bytes"));
            e.copy_from_slice(&m.wrapping_add(unzigzag(z)).to_le_bytes());
        } else {
            let z = u32::from_le_bytes(r.try_into().expect("4 bytes")) as u64;
            let d = (z >> 1) as u32 ^ ((z & 1) as u32).wrapping_neg();
            let m = u32::from_le_bytes((&*e).try_into().expect("4 bytes"));
            e.copy_from_slice(&m.wrapping_add(d).to_le_bytes());
        }
    }
}

/// The lower-triangle elements of rows `r0..r1` (row i: columns `0..i`, rows in order) and
/// their residuals against the mirrored upper triangle: `(lower, residual)`.
pub fn lower_rows(
    src: &dyn DenseSource,
    n: u64,
    dtype: DType,
    r0: u64,
    r1: u64,
) -> Result<(Vec<u8>, Vec<u8>)> {
    let item = dtype.item_size();
    let count = |i: u64| i as usize * item;
    let total: usize = (r0..r1).map(count).sum();
    let mut lower = vec![0u8; total];
    let mut mirrored = vec![0u8; total];
    let mut at = Vec::with_capacity((r1 - r0) as usize);
    let mut o = 0;
    for i in r0..r1 {
        at.push(o);
        src.read_at(i * n * item as u64, &mut lower[o..o + count(i)])?;
        o += count(i);
    }
    // Partners of (i, j), j < i, are (j, i): row j, columns max(r0, j + 1)..r1.
    let mut piece = vec![0u8; (r1 - r0) as usize * item];
    let mut m = vec![0u8; item];
    for j in 0..r1.saturating_sub(1) {
        let c0 = r0.max(j + 1);
        if c0 >= r1 {
            continue;
        }
        let len = (r1 - c0) as usize * item;
        src.read_at((j * n + c0) * item as u64, &mut piece[..len])?;
        for (k, e) in piece[..len].chunks_exact(item).enumerate() {
            let i = c0 + k as u64;
            mirror(dtype, e, &mut m);
            let dst = at[(i - r0) as usize] + j as usize * item;
            mirrored[dst..dst + item].copy_from_slice(&m);
        }
    }
    let mut res = vec![0u8; total];
    residual(dtype, &lower, &mirrored, &mut res);
    Ok((lower, res))
}

/// True when the near-Hermitian layout compresses smaller than the dense one: the residuals
/// of up to 32 rows spread over the matrix, compressed, against the same rows' lower
/// triangle compressed (the upper triangle is stored by both).
pub fn near_hermitian_saves(src: &dyn DenseSource, n: u64, dtype: DType) -> Result<bool> {
    let rows: std::collections::BTreeSet<u64> = (0..32u64).map(|k| 1 + k * (n - 1) / 32).collect();
    let (mut dense, mut near) = (0usize, 0usize);
    let c = dtype.component_size();
    let size = |b: &[u8]| match crate::codec::encode_auto(b, c, crate::codec::Effort::Best) {
        (_, Some(p)) => p.len(),
        (_, None) => b.len(),
    };
    for &i in rows.iter().filter(|&&i| i < n) {
        let (lower, res) = lower_rows(src, n, dtype, i, i + 1)?;
        dense += size(&lower);
        near += if crate::state::input::all_zero(&res) {
            0
        } else {
            size(&res)
        };
    }
    Ok(near < dense)
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

    use proptest::prelude::*;

    proptest! {
        #[test]
        fn residuals_restore_every_bit(pairs in proptest::collection::vec((any::<u64>(), any::<u64>()), 1..64), f32s in proptest::collection::vec((any::<u32>(), any::<u32>()), 1..64)) {
            for (dtype, l, m) in [
                (DType::Complex128,
                 pairs.iter().flat_map(|p| p.0.to_le_bytes()).collect::<Vec<u8>>(),
                 pairs.iter().flat_map(|p| p.1.to_le_bytes()).collect::<Vec<u8>>()),
                (DType::Complex64,
                 f32s.iter().flat_map(|p| p.0.to_le_bytes()).collect(),
                 f32s.iter().flat_map(|p| p.1.to_le_bytes()).collect()),
            ] {
                let n = l.len() / dtype.item_size() * dtype.item_size();
                let (l, m) = (&l[..n], &m[..n]);
                let mut r = vec![0u8; n];
                residual(dtype, l, m, &mut r);
                let mut back = m.to_vec();
                apply_residual(dtype, &mut back, &r);
                prop_assert_eq!(&back[..], l);
            }
        }

        #[test]
        fn near_hermitian_matrices_round_trip_bit_for_bit(n in 1u64..12, seed in any::<u64>()) {
            // Hermitian up to a few ulps, with -0.0 and asymmetric rounding in places.
            let mut x = seed | 1;
            let mut next = || { x ^= x << 13; x ^= x >> 7; x ^= x << 17; x };
            let mut a = vec![0f64; (n * n * 2) as usize];
            for i in 0..n {
                for j in i..n {
                    let (re, im) = ((next() % 1000) as f64 / 997.0, if i == j { 0.0 } else { (next() % 1000) as f64 / 991.0 - 0.5 });
                    let u = ((i * n + j) * 2) as usize;
                    let l = ((j * n + i) * 2) as usize;
                    a[u] = re; a[u + 1] = im;
                    let jitter = |v: f64, k: u64| f64::from_bits(v.to_bits().wrapping_add(k % 5).wrapping_sub(2));
                    a[l] = if next() % 7 == 0 { -0.0 } else { jitter(re, next()) };
                    a[l + 1] = jitter(-im, next());
                }
            }
            let bytes: Vec<u8> = a.iter().flat_map(|v| v.to_le_bytes()).collect();
            let src = SliceSource(&bytes);
            let (lower, res) = lower_rows(&src, n, DType::Complex128, 0, n).unwrap();
            // Rebuild the lower triangle from the upper one and the residuals.
            let item = 16usize;
            let mut o = 0;
            for i in 0..n {
                for j in 0..i {
                    let up = ((j * n + i) as usize) * item;
                    let mut e = vec![0u8; item];
                    mirror(DType::Complex128, &bytes[up..up + item], &mut e);
                    apply_residual(DType::Complex128, &mut e, &res[o..o + item]);
                    prop_assert_eq!(&e[..], &bytes[((i * n + j) as usize) * item..][..item]);
                    prop_assert_eq!(&e[..], &lower[o..o + item]);
                    o += item;
                }
            }
        }
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
