//! Chunk codecs: [`Codec`] (raw, byte-shuffle + lz4, byte-shuffle + zstd), the byte shuffle
//! itself, and [`encode_auto`], which picks a codec and a shuffle width ([`Choice`]) per
//! chunk and stores raw whenever compression would save less than [`MIN_SAVING`].
//!
//! The shuffle width is recorded in each record header (`elem`); width 1 is no shuffle, so
//! plain lz4 and plain zstd are the same two codec ids applied with width 1. Byte shuffle
//! wins on amplitudes whose exponents repeat; plain zstd wins on states from structured
//! circuits (QFT, QAOA, shallow random circuits), whose 16-byte amplitudes repeat exactly.

use serde::{Deserialize, Serialize};

/// Fraction of the raw size a codec must save to be used instead of raw.
pub const MIN_SAVING: f64 = 0.05;

/// How a payload is encoded. The numeric values are part of the on-disk format.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug, Serialize, Deserialize)]
#[repr(u8)]
pub enum Codec {
    /// The raw bytes.
    Raw = 0,
    /// Byte-shuffled (see [`shuffle`]) then lz4 block-compressed.
    ShuffleLz4 = 1,
    /// Byte-shuffled then zstd-compressed (one frame).
    ShuffleZstd = 2,
}

impl Codec {
    /// Parse the on-disk byte.
    pub fn from_u8(b: u8) -> Option<Self> {
        match b {
            0 => Some(Codec::Raw),
            1 => Some(Codec::ShuffleLz4),
            2 => Some(Codec::ShuffleZstd),
            _ => None,
        }
    }

    /// `raw`, `shuffle+lz4` or `shuffle+zstd`.
    pub fn name(self) -> &'static str {
        match self {
            Codec::Raw => "raw",
            Codec::ShuffleLz4 => "shuffle+lz4",
            Codec::ShuffleZstd => "shuffle+zstd",
        }
    }
}

/// Byte-shuffle (blosc style): byte `b` of element `i` goes to position `b * n + i`, where `n`
/// is the number of whole `elem`-byte elements; trailing bytes are copied as they are.
/// Grouping the exponent bytes of floats together lets lz4/zstd find their redundancy.
pub fn shuffle(src: &[u8], elem: usize, dst: &mut Vec<u8>) {
    // Every byte of `dst` is written below: only its length needs setting.
    if dst.len() != src.len() {
        dst.resize(src.len(), 0);
    }
    let n = src.len() / elem.max(1);
    if elem <= 1 || n == 0 {
        dst.copy_from_slice(src);
        return;
    }
    if elem == 8 {
        // Blocks of 8 elements: eight u64 loads, an 8x8 byte transpose in registers, one
        // u64 store into each byte plane.
        let (planes, tail) = dst.split_at_mut(n * 8);
        let blocks = n / 8;
        for k in 0..blocks {
            let mut a = [0u64; 8];
            for (i, x) in a.iter_mut().enumerate() {
                let o = (8 * k + i) * 8;
                *x = u64::from_le_bytes(src[o..o + 8].try_into().expect("8 bytes"));
            }
            transpose8(&mut a);
            for (b, x) in a.iter().enumerate() {
                let o = b * n + 8 * k;
                planes[o..o + 8].copy_from_slice(&x.to_le_bytes());
            }
        }
        for i in blocks * 8..n {
            for b in 0..8 {
                planes[b * n + i] = src[i * 8 + b];
            }
        }
        tail.copy_from_slice(&src[n * 8..]);
        return;
    }
    // One pass per byte plane: sequential writes, a strided read the prefetcher follows.
    for (b, plane) in dst[..n * elem].chunks_exact_mut(n).enumerate() {
        for (d, e) in plane.iter_mut().zip(src.chunks_exact(elem)) {
            *d = e[b];
        }
    }
    dst[n * elem..].copy_from_slice(&src[n * elem..]);
}

/// Transpose the 8x8 byte matrix whose row `i` is `a[i]` (byte `j` little-endian = column
/// `j`): swap the off-diagonal 4x4 blocks, then 2x2 blocks, then single bytes.
fn transpose8(a: &mut [u64; 8]) {
    for i in 0..4 {
        let t = ((a[i] >> 32) ^ a[i + 4]) & 0x0000_0000_FFFF_FFFF;
        a[i] ^= t << 32;
        a[i + 4] ^= t;
    }
    for i in [0, 1, 4, 5] {
        let t = ((a[i] >> 16) ^ a[i + 2]) & 0x0000_FFFF_0000_FFFF;
        a[i] ^= t << 16;
        a[i + 2] ^= t;
    }
    for i in [0, 2, 4, 6] {
        let t = ((a[i] >> 8) ^ a[i + 1]) & 0x00FF_00FF_00FF_00FF;
        a[i] ^= t << 8;
        a[i + 1] ^= t;
    }
}

/// Inverse of [`shuffle`]; `src` and `dst` have the same length.
pub fn unshuffle(src: &[u8], elem: usize, dst: &mut [u8]) {
    let n = src.len() / elem.max(1);
    if elem <= 1 || n == 0 {
        dst.copy_from_slice(src);
        return;
    }
    if elem == 8 {
        let blocks = n / 8;
        for k in 0..blocks {
            let mut a = [0u64; 8];
            for (b, x) in a.iter_mut().enumerate() {
                let o = b * n + 8 * k;
                *x = u64::from_le_bytes(src[o..o + 8].try_into().expect("8 bytes"));
            }
            transpose8(&mut a);
            for (i, x) in a.iter().enumerate() {
                let o = (8 * k + i) * 8;
                dst[o..o + 8].copy_from_slice(&x.to_le_bytes());
            }
        }
        for i in blocks * 8..n {
            for b in 0..8 {
                dst[i * 8 + b] = src[b * n + i];
            }
        }
        dst[n * 8..].copy_from_slice(&src[n * 8..]);
        return;
    }
    for (b, plane) in src[..n * elem].chunks_exact(n).enumerate() {
        for (e, &v) in dst.chunks_exact_mut(elem).zip(plane) {
            e[b] = v;
        }
    }
    dst[n * elem..].copy_from_slice(&src[n * elem..]);
}

fn lz4(shuffled: &[u8]) -> Vec<u8> {
    lz4_flex::block::compress(shuffled)
}

/// Compress with zstd at `level`, reusing this thread's compression context for that level
/// (creating a context costs more than compressing a small object).
fn zstd_level(data: &[u8], level: i32) -> Option<Vec<u8>> {
    thread_local! {
        static CONTEXTS: std::cell::RefCell<Vec<(i32, zstd::bulk::Compressor<'static>)>> =
            const { std::cell::RefCell::new(Vec::new()) };
    }
    CONTEXTS.with(|c| {
        let mut c = c.borrow_mut();
        if !c.iter().any(|(l, _)| *l == level) {
            c.push((level, zstd::bulk::Compressor::new(level).ok()?));
        }
        let (_, z) = c.iter_mut().find(|(l, _)| *l == level)?;
        z.compress(data).ok()
    })
}

/// Decompress a zstd frame into `out`, reusing this thread's decompression context.
fn zstd_decompress(payload: &[u8], out: &mut [u8]) -> Result<usize, String> {
    thread_local! {
        static CONTEXT: std::cell::RefCell<Option<zstd::bulk::Decompressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        if c.is_none() {
            *c = Some(zstd::bulk::Decompressor::new().map_err(|e| format!("zstd: {e}"))?);
        }
        c.as_mut()
            .expect("just set")
            .decompress_to_buffer(payload, out)
            .map_err(|e| format!("zstd: {e}"))
    })
}

fn zstd1(shuffled: &[u8]) -> Option<Vec<u8>> {
    zstd_level(shuffled, 1)
}

/// Plain (unshuffled) zstd runs at level 3: its larger window finds amplitudes repeated far
/// apart, which is what it is chosen for.
fn zstd3(raw: &[u8]) -> Option<Vec<u8>> {
    zstd_level(raw, 3)
}

/// Which codecs [`encode_auto`] tries.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Effort {
    /// lz4, with and without byte shuffle: what a put uses, so that a compressible state is
    /// written at several GiB/s per core; pack merges and `repack --recompress` later
    /// recompress such chunks with [`Effort::Best`].
    Fast,
    /// lz4 and zstd, with and without byte shuffle.
    Best,
}

/// A codec and the byte-shuffle width it is applied with (1: no shuffle).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct Choice {
    pub codec: Codec,
    pub elem: usize,
}

impl Choice {
    pub const RAW: Choice = Choice {
        codec: Codec::Raw,
        elem: 1,
    };
}

/// Four spread slices of 8 KiB of `raw` (all of it when it is small).
fn sample(raw: &[u8], elem: usize) -> std::borrow::Cow<'_, [u8]> {
    const SLICE: usize = 8 << 10;
    if raw.len() <= 4 * SLICE {
        return std::borrow::Cow::Borrowed(raw);
    }
    let align = elem.max(1);
    let mut sample = Vec::with_capacity(4 * SLICE);
    for q in 0..4 {
        let start = (raw.len() - SLICE) * q / 3 / align * align;
        sample.extend_from_slice(&raw[start..start + SLICE]);
    }
    std::borrow::Cow::Owned(sample)
}

/// Rank the candidates (lz4 and zstd, each with and without byte shuffle) on a sample of
/// `raw`: the best, and the best of the other compressor as a fallback, or `None` when none
/// saves [`MIN_SAVING`] there. zstd is taken first only when clearly smaller than lz4, which
/// decodes faster. Ranking on a 32 KiB sample costs a few percent of encoding the chunk once;
/// only the winner then runs on the whole chunk (and the fallback when the winner does not
/// save enough there).
fn rank(raw: &[u8], elem: usize, effort: Effort) -> Option<(Choice, Option<Choice>)> {
    let s = sample(raw, elem);
    let widths: &[usize] = if elem > 1 { &[elem, 1] } else { &[1] };
    let mut lz: Option<(Choice, usize)> = None;
    let mut zs: Option<(Choice, usize)> = None;
    let keep = |best: &mut Option<(Choice, usize)>, c: Choice, len: Option<usize>| {
        if let Some(len) = len
            && best.is_none_or(|(_, b)| len < b)
        {
            *best = Some((c, len));
        }
    };
    for &w in widths {
        let best = effort == Effort::Best;
        let (l, z) = if w > 1 {
            with_scratch(|sh| {
                shuffle(&s, w, sh);
                (
                    lz4(sh).len(),
                    best.then(|| zstd1(sh).map(|z| z.len())).flatten(),
                )
            })
        } else {
            (
                lz4(&s).len(),
                best.then(|| zstd3(&s).map(|z| z.len())).flatten(),
            )
        };
        keep(
            &mut lz,
            Choice {
                codec: Codec::ShuffleLz4,
                elem: w,
            },
            Some(l),
        );
        keep(
            &mut zs,
            Choice {
                codec: Codec::ShuffleZstd,
                elem: w,
            },
            z,
        );
    }
    let saves = |len: usize| (len as f64) < (s.len() as f64) * (1.0 - MIN_SAVING);
    let (best, other) = match (lz, zs) {
        (Some(l), Some(z)) if (z.1 as f64) < (l.1 as f64) * 0.9 => (z, Some(l)),
        (Some(l), z) => (l, z),
        (None, Some(z)) => (z, None),
        (None, None) => return None,
    };
    let other = other.filter(|o| saves(o.1)).map(|o| o.0);
    if saves(best.1) {
        Some((best.0, other))
    } else {
        other.map(|o| (o, None))
    }
}

/// Choose and apply a codec for `raw`, whose scalar components are `elem` bytes wide (see
/// [`rank`]). Returns `(Choice::RAW, None)` when the raw bytes should be stored as they are.
pub fn encode_auto(raw: &[u8], elem: usize, effort: Effort) -> (Choice, Option<Vec<u8>>) {
    if raw.is_empty() {
        return (Choice::RAW, None);
    }
    match rank(raw, elem, effort) {
        Some((first, fallback)) => match (encode_hinted(raw, first), fallback) {
            ((Choice::RAW, _), Some(f)) => encode_hinted(raw, f),
            (done, _) => done,
        },
        None => (Choice::RAW, None),
    }
}

/// Encode `raw` with the choice earlier chunks of the same state made (`hint`), without
/// probing or trying the others; raw when it does not save [`MIN_SAVING`].
pub fn encode_hinted(raw: &[u8], hint: Choice) -> (Choice, Option<Vec<u8>>) {
    if hint.codec == Codec::Raw || raw.is_empty() {
        return (Choice::RAW, None);
    }
    let enc = encode_with(hint.codec, raw, hint.elem);
    if (enc.len() as f64) < (raw.len() as f64) * (1.0 - MIN_SAVING) {
        (hint, Some(enc))
    } else {
        (Choice::RAW, None)
    }
}

/// Encode `raw` with a given codec and shuffle width (used by tests and by metadata objects).
pub fn encode_with(codec: Codec, raw: &[u8], elem: usize) -> Vec<u8> {
    match codec {
        Codec::Raw => raw.to_vec(),
        Codec::ShuffleLz4 if elem <= 1 => lz4(raw),
        Codec::ShuffleZstd if elem <= 1 => zstd3(raw).unwrap_or_default(),
        Codec::ShuffleLz4 => with_scratch(|sh| {
            shuffle(raw, elem, sh);
            lz4(sh)
        }),
        Codec::ShuffleZstd => with_scratch(|sh| {
            shuffle(raw, elem, sh);
            zstd1(sh).unwrap_or_default()
        }),
    }
}

thread_local! {
    /// Each worker's buffer for shuffled bytes, reused across chunks so encoding and
    /// decoding do not fault in fresh memory for every chunk.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

fn with_scratch<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    SCRATCH.with(|s| match s.try_borrow_mut() {
        Ok(mut b) => f(&mut b),
        Err(_) => f(&mut Vec::new()),
    })
}

/// Decode `payload` into `out`, whose length is the raw length. Never allocates more than
/// `out.len()` bytes, whatever the payload says. The error says what was wrong.
pub fn decode(codec: Codec, elem: usize, payload: &[u8], out: &mut [u8]) -> Result<(), String> {
    match codec {
        Codec::Raw => {
            if payload.len() != out.len() {
                return Err(format!(
                    "raw payload is {} bytes, expected {}",
                    payload.len(),
                    out.len()
                ));
            }
            out.copy_from_slice(payload);
            Ok(())
        }
        Codec::ShuffleLz4 | Codec::ShuffleZstd => with_scratch(|sh| {
            // Decoding overwrites what it reports; a short result is refused below.
            if sh.len() != out.len() {
                sh.resize(out.len(), 0);
            }
            let n = if codec == Codec::ShuffleLz4 {
                lz4_flex::block::decompress_into(payload, sh).map_err(|e| format!("lz4: {e}"))?
            } else {
                zstd_decompress(payload, &mut sh[..])?
            };
            if n != out.len() {
                return Err(format!("decoded {n} bytes, expected {}", out.len()));
            }
            unshuffle(sh, elem, out);
            Ok(())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn shuffle_round_trips(data in proptest::collection::vec(any::<u8>(), 0..2000), elem in 1usize..17) {
            let mut sh = Vec::new();
            shuffle(&data, elem, &mut sh);
            let mut back = vec![0u8; data.len()];
            unshuffle(&sh, elem, &mut back);
            prop_assert_eq!(back, data);
        }

        #[test]
        fn shuffle_matches_the_definition(data in proptest::collection::vec(any::<u8>(), 0..3000), elem in prop::sample::select(vec![2usize, 4, 8, 16])) {
            let mut sh = Vec::new();
            shuffle(&data, elem, &mut sh);
            let n = data.len() / elem;
            for i in 0..n {
                for b in 0..elem {
                    prop_assert_eq!(sh[b * n + i], data[i * elem + b]);
                }
            }
            prop_assert_eq!(&sh[n * elem..], &data[n * elem..]);
        }

        #[test]
        fn every_codec_round_trips(data in proptest::collection::vec(0u8..4, 0..5000), elem in prop::sample::select(vec![1usize, 2, 4, 8])) {
            for codec in [Codec::Raw, Codec::ShuffleLz4, Codec::ShuffleZstd] {
                for w in [elem, 1] {
                    let enc = encode_with(codec, &data, w);
                    let mut out = vec![0u8; data.len()];
                    decode(codec, w, &enc, &mut out).unwrap();
                    prop_assert_eq!(&out, &data);
                }
            }
            let (c, p) = encode_auto(&data, elem, Effort::Best);
            let mut out = vec![0u8; data.len()];
            match p {
                Some(p) => decode(c.codec, c.elem, &p, &mut out).unwrap(),
                None => out.copy_from_slice(&data),
            }
            prop_assert_eq!(&out, &data);
        }

        #[test]
        fn decode_of_garbage_never_panics(payload in proptest::collection::vec(any::<u8>(), 0..600), len in 0usize..4096, c in 0u8..3) {
            let mut out = vec![0u8; len];
            let _ = decode(Codec::from_u8(c).unwrap(), 8, &payload, &mut out);
        }
    }

    #[test]
    fn incompressible_data_is_stored_raw_and_zeros_compress() {
        let noise: Vec<u8> = (0..1 << 20).map(|_| rand::random::<u8>()).collect();
        assert_eq!(encode_auto(&noise, 8, Effort::Best).0, Choice::RAW);
        assert_eq!(encode_auto(&noise, 8, Effort::Fast).0, Choice::RAW);
        let mut half = vec![0u8; 1 << 20];
        half[..1 << 19].copy_from_slice(&noise[..1 << 19]);
        let (c, p) = encode_auto(&half, 8, Effort::Best);
        assert_ne!(c.codec, Codec::Raw);
        assert!(p.unwrap().len() < 600 << 10);
    }

    #[test]
    fn repeated_amplitudes_choose_plain_zstd_and_round_trip() {
        // 16-byte amplitudes drawn from a small random set (as in QFT or QAOA states): the
        // byte planes look random after shuffling, the repeated values do not.
        let set: Vec<[u8; 16]> = (0..64).map(|_| rand::random::<[u8; 16]>()).collect();
        let raw: Vec<u8> = (0..1 << 16)
            .flat_map(|_| set[rand::random::<u32>() as usize % set.len()])
            .collect();
        let (c, p) = encode_auto(&raw, 8, Effort::Best);
        assert_eq!(c.elem, 1, "{c:?}");
        let p = p.unwrap();
        assert!(p.len() < raw.len() / 2);
        let mut out = vec![0u8; raw.len()];
        decode(c.codec, c.elem, &p, &mut out).unwrap();
        assert_eq!(out, raw);
    }
}
