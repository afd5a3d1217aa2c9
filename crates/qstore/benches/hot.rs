//! Criterion benchmarks of the hot functions of the write and read paths, on one 1 MiB chunk
//! of dense amplitudes and one of a QFT-like state: byte shuffle, codec choice, decoding,
//! hashing and the input check. Run with `cargo bench -p qstore`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use qstore::codec::{Codec, Effort, decode, encode_auto, encode_with, shuffle, unshuffle};
use qstore::state::input::scan_chunk;
use qstore::{ArrayInfo, DType, StateKind};
use std::hint::black_box;

fn dense_chunk() -> Vec<u8> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..1 << 17)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5) / 2048.0).to_le_bytes()
        })
        .collect()
}

fn qft_chunk() -> Vec<u8> {
    let n = 1u64 << 16;
    (0..n)
        .flat_map(|k| {
            let ph = 2.0 * std::f64::consts::PI * ((5 * k) % n) as f64 / n as f64;
            [
                (ph.cos() / 256.0).to_le_bytes(),
                (ph.sin() / 256.0).to_le_bytes(),
            ]
            .concat()
        })
        .collect()
}

fn hot(c: &mut Criterion) {
    let mut g = c.benchmark_group("chunk_1MiB");
    g.throughput(Throughput::Bytes(1 << 20));
    for (name, data) in [("dense", dense_chunk()), ("qft", qft_chunk())] {
        let mut sh = Vec::new();
        g.bench_function(format!("{name}/shuffle"), |b| {
            b.iter(|| shuffle(black_box(&data), 8, &mut sh))
        });
        shuffle(&data, 8, &mut sh);
        let mut out = vec![0u8; data.len()];
        g.bench_function(format!("{name}/unshuffle"), |b| {
            b.iter(|| unshuffle(black_box(&sh), 8, &mut out))
        });
        g.bench_function(format!("{name}/encode_auto"), |b| {
            b.iter(|| encode_auto(black_box(&data), 8, Effort::Best))
        });
        for codec in [Codec::ShuffleLz4, Codec::ShuffleZstd] {
            let enc = encode_with(codec, &data, 8);
            g.bench_function(format!("{name}/decode_{}", codec.name()), |b| {
                b.iter(|| decode(codec, 8, black_box(&enc), &mut out))
            });
        }
        g.bench_function(format!("{name}/blake3"), |b| {
            b.iter(|| blake3::hash(black_box(&data)))
        });
        let info = ArrayInfo {
            dtype: DType::Complex128,
            shape: vec![1 << 30],
        };
        g.bench_function(format!("{name}/scan_chunk"), |b| {
            b.iter(|| scan_chunk(black_box(&data), 0, &info, StateKind::StateVector))
        });
    }
    g.finish();
}

criterion_group!(benches, hot);
criterion_main!(benches);
