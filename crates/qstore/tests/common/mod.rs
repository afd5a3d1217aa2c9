//! Helpers shared by the engine's integration tests.
#![allow(dead_code)]

use qstore::{ArrayInfo, CommitOptions, DType, PutOptions, RepoConfig, Repository};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// A fresh in-memory repository with a small chunk size, so tests cross chunk boundaries.
pub fn memory_repo(chunk_size: u64) -> Repository {
    let name = format!("memory://test-{:016x}", rand::random::<u64>());
    Repository::init(
        &name,
        RepoConfig {
            chunk_size,
            pack_target_bytes: 64 << 20,
            ..RepoConfig::default()
        },
    )
    .unwrap()
}

/// A fresh repository in a temporary directory.
pub fn local_repo(chunk_size: u64) -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo");
    let repo = Repository::init(
        path.to_str().unwrap(),
        RepoConfig {
            chunk_size,
            ..RepoConfig::default()
        },
    )
    .unwrap();
    (dir, repo)
}

/// `count` finite floats as f64 with awkward values mixed in (-0.0, subnormals, huge), a
/// `zero_frac` share of exact zeros.
pub fn floats(count: usize, zero_frac: f64, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| {
            if rng.random::<f64>() < zero_frac {
                return 0.0;
            }
            match rng.random_range(0..20) {
                0 => -0.0,
                1 => 5e-324,
                2 => -1e300,
                _ => rng.random::<f64>() * 2.0 - 1.0,
            }
        })
        .collect()
}

/// Little-endian bytes of `vals` in `dtype` (complex types take pairs of values).
pub fn encode(vals: &[f64], dtype: DType) -> Vec<u8> {
    match dtype {
        DType::Complex128 | DType::Float64 => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::Complex64 | DType::Float32 => vals
            .iter()
            .flat_map(|v| (v.clamp(f32::MIN as f64, f32::MAX as f64) as f32).to_le_bytes())
            .collect(),
        d => vals
            .iter()
            .flat_map(|v| {
                let x = (v * 1e6) as i64;
                x.to_le_bytes()[..d.item_size()].to_vec()
            })
            .collect(),
    }
}

/// Put one array on main and commit.
pub fn put_one(
    repo: &Repository,
    path: &str,
    info: &ArrayInfo,
    data: &[u8],
    opts: &PutOptions,
) -> qstore::Result<qstore::ObjectId> {
    let mut tx = repo.transaction("main")?;
    tx.put(path, info, data, opts)?;
    tx.commit(CommitOptions {
        message: format!("put {path}"),
        ..Default::default()
    })
}

/// A complex128 vector of 2^n amplitudes.
pub fn sv_info(n: u32) -> ArrayInfo {
    ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![1 << n],
    }
}

/// Everything visible in a repository: refs and, for each, the listing of its head.
pub fn snapshot(repo: &Repository) -> Vec<String> {
    let mut out = Vec::new();
    for (r, id) in repo.refs().unwrap() {
        out.push(format!("{} {}", r.key(), id));
        for (p, e) in repo.list_states(&id, None).unwrap() {
            out.push(format!("  {p} {}", e.manifest));
        }
    }
    out
}

/// `count` uniform floats in [-1, 1).
pub fn plain_floats(count: usize, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..count)
        .map(|_| rng.random::<f64>() * 2.0 - 1.0)
        .collect()
}

/// Deterministic incompressible bytes with finite doubles: splitmix64 of the word index
/// (`offset / 8` onwards), salted.
pub fn noise_at(salt: u64, offset: u64, buf: &mut [u8]) {
    for (k, w) in buf.chunks_mut(8).enumerate() {
        let word = offset / 8 + k as u64;
        let mut z = word
            .wrapping_add(salt.wrapping_mul(0x1000_0000_0000))
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        // Clear the top exponent bit so every double is finite.
        z &= !(1u64 << 62);
        w.copy_from_slice(&z.to_le_bytes()[..w.len()]);
    }
}

/// `n` complex128 amplitudes (little-endian bytes) with parts uniform in [-0.5, 0.5), from a
/// xorshift stream of `seed`: incompressible, reproducible, always finite.
pub fn noise_c128(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..2 * n)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5).to_le_bytes()
        })
        .collect()
}
