//! Chunk codecs: [`Codec`] (raw, byte-shuffle + lz4, byte-shuffle + zstd), the byte shuffle
//! itself, and [`encode_auto`], which picks a codec per chunk and stores raw whenever
//! compression would save less than [`MIN_SAVING`].

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
    dst.clear();
    dst.resize(src.len(), 0);
    let n = src.len() / elem.max(1);
    if elem <= 1 || n == 0 {
        dst.copy_from_slice(src);
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

/// Inverse of [`shuffle`]; `src` and `dst` have the same length.
pub fn unshuffle(src: &[u8], elem: usize, dst: &mut [u8]) {
    let n = src.len() / elem.max(1);
    if elem <= 1 || n == 0 {
        dst.copy_from_slice(src);
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

fn zstd1(shuffled: &[u8]) -> Option<Vec<u8>> {
    zstd::bulk::compress(shuffled, 1).ok()
}

/// Estimate whether a chunk compresses, from four spread samples of 8 KiB: cheap enough that
/// incompressible data (dense amplitudes) costs almost nothing beyond this probe.
fn probe_compressible(raw: &[u8], elem: usize) -> bool {
    const SLICE: usize = 8 << 10;
    if raw.len() <= 4 * SLICE {
        return true;
    }
    let align = elem.max(1);
    let mut sample = Vec::with_capacity(4 * SLICE);
    for q in 0..4 {
        let start = (raw.len() - SLICE) * q / 3 / align * align;
        sample.extend_from_slice(&raw[start..start + SLICE]);
    }
    let mut sh = Vec::new();
    shuffle(&sample, elem, &mut sh);
    match zstd1(&sh) {
        Some(c) => (c.len() as f64) < (sample.len() as f64) * (1.0 - MIN_SAVING),
        None => false,
    }
}

/// Choose and apply a codec for `raw`, whose scalar components are `elem` bytes wide.
/// Returns `(Codec::Raw, None)` when the raw bytes should be stored as they are.
pub fn encode_auto(raw: &[u8], elem: usize) -> (Codec, Option<Vec<u8>>) {
    if raw.is_empty() || !probe_compressible(raw, elem) {
        return (Codec::Raw, None);
    }
    let limit = (raw.len() as f64) * (1.0 - MIN_SAVING);
    let (l, z) = with_scratch(|sh| {
        shuffle(raw, elem, sh);
        (lz4(sh), zstd1(sh))
    });
    let best = match z {
        // zstd decodes slower than lz4: take it only when it is clearly smaller.
        Some(z) if (z.len() as f64) < (l.len() as f64) * 0.9 => (Codec::ShuffleZstd, z),
        _ => (Codec::ShuffleLz4, l),
    };
    if (best.1.len() as f64) < limit {
        (best.0, Some(best.1))
    } else {
        (Codec::Raw, None)
    }
}

/// Encode `raw` with the codec earlier chunks of the same state chose (`hint`), without
/// probing or trying the others; raw when that codec does not save [`MIN_SAVING`].
pub fn encode_hinted(raw: &[u8], elem: usize, hint: Codec) -> (Codec, Option<Vec<u8>>) {
    if hint == Codec::Raw || raw.is_empty() {
        return (Codec::Raw, None);
    }
    let enc = encode_with(hint, raw, elem);
    if (enc.len() as f64) < (raw.len() as f64) * (1.0 - MIN_SAVING) {
        (hint, Some(enc))
    } else {
        (Codec::Raw, None)
    }
}

/// Encode `raw` with a given codec (used by tests and by metadata objects).
pub fn encode_with(codec: Codec, raw: &[u8], elem: usize) -> Vec<u8> {
    match codec {
        Codec::Raw => raw.to_vec(),
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
            sh.clear();
            sh.resize(out.len(), 0);
            let n = if codec == Codec::ShuffleLz4 {
                lz4_flex::block::decompress_into(payload, sh).map_err(|e| format!("lz4: {e}"))?
            } else {
                zstd::bulk::decompress_to_buffer(payload, &mut sh[..])
                    .map_err(|e| format!("zstd: {e}"))?
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
        fn every_codec_round_trips(data in proptest::collection::vec(0u8..4, 0..5000), elem in prop::sample::select(vec![1usize, 2, 4, 8])) {
            for codec in [Codec::Raw, Codec::ShuffleLz4, Codec::ShuffleZstd] {
                let enc = encode_with(codec, &data, elem);
                let mut out = vec![0u8; data.len()];
                decode(codec, elem, &enc, &mut out).unwrap();
                prop_assert_eq!(&out, &data);
            }
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
        assert_eq!(encode_auto(&noise, 8).0, Codec::Raw);
        let mut half = vec![0u8; 1 << 20];
        half[..1 << 19].copy_from_slice(&noise[..1 << 19]);
        let (c, p) = encode_auto(&half, 8);
        assert_ne!(c, Codec::Raw);
        assert!(p.unwrap().len() < 600 << 10);
    }
}
