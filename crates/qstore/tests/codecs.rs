//! The encodings of format version 4 end to end: lossy state vectors (every mode, its
//! stored fidelity, bounds, dedup, refusals), near-Hermitian density matrices (bit-exact,
//! chosen by size), fast put codecs recompressed by merges, and repositories of format 2
//! that keep the older encodings until `upgrade`.

mod common;

use common::*;
use proptest::prelude::*;
use qstore::state::lossy::LossySpec;
use qstore::{ArrayInfo, DType, Encoding, PutOptions, Repository};

/// A state of `n` qubits with every amplitude non-zero, magnitudes spread over a few orders
/// and phases from a small set (like QFT and QAOA states).
fn state(n: u32, seed: u64) -> Vec<f64> {
    let dim = 1usize << n;
    let mut x = seed | 1;
    let mut v = Vec::with_capacity(2 * dim);
    let mut norm = 0.0;
    for _ in 0..dim {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let mag = 10f64.powf(-((x % 1000) as f64) / 400.0);
        let phase = (x >> 20) % 64;
        let t = phase as f64 * std::f64::consts::TAU / 64.0;
        v.push(mag * t.cos());
        v.push(mag * t.sin());
        norm += mag * mag;
    }
    let s = norm.sqrt();
    v.iter().map(|a| a / s).collect()
}

fn fidelity(a: &[u8], b: &[u8], dtype: DType) -> f64 {
    let n = a.len() / dtype.item_size();
    let (mut pp, mut qq, mut re, mut im) = (0.0, 0.0, 0.0, 0.0);
    for k in 0..n {
        let [ar, ai] = dtype.amplitude(a, k);
        let [br, bi] = dtype.amplitude(b, k);
        pp += ar * ar + ai * ai;
        qq += br * br + bi * bi;
        re += ar * br + ai * bi;
        im += ar * bi - ai * br;
    }
    (re * re + im * im) / (pp * qq)
}

fn lossy(mode: &str) -> PutOptions {
    PutOptions {
        lossy: Some(mode.parse::<LossySpec>().unwrap()),
        ..Default::default()
    }
}

fn sv(n: u32, dtype: DType) -> ArrayInfo {
    ArrayInfo {
        dtype,
        shape: vec![1u64 << n],
    }
}

#[test]
fn every_lossy_mode_stores_an_approximation_with_its_fidelity() {
    let (_d, repo) = local_repo(1 << 14);
    for dtype in [DType::Complex128, DType::Complex64] {
        let data = encode(&state(14, 7), dtype);
        let info = sv(14, dtype);
        put_one(&repo, "exact", &info, &data, &PutOptions::default()).unwrap();
        for (k, mode) in [
            "max-infidelity=1e-6",
            "max-infidelity=1e-3",
            "max-infidelity=1e-12",
            "f32",
            "mantissa-bits=7",
            "zero-below=1e-4",
            "mantissa-bits=10,zero-below=1e-5",
        ]
        .iter()
        .enumerate()
        {
            let path = format!("{}/m{k}", dtype.name());
            put_one(&repo, &path, &info, &data, &lossy(mode)).unwrap();
            let (_, e) = repo.state("main", &path).unwrap();
            let l = e.lossy.clone().expect("a lossy entry");
            let back = repo.reader("main", &path).unwrap().read_all().unwrap();
            assert_eq!(back.len(), data.len(), "{mode}: same dtype and shape");
            assert_eq!(e.dtype, dtype);
            let f = fidelity(&data, &back, dtype);
            assert!(
                (f - l.fidelity).abs() < 1e-9,
                "{mode}: stored fidelity {} vs {f}",
                l.fidelity
            );
            if let Some(bound) = mode.strip_prefix("max-infidelity=") {
                let bound: f64 = bound.parse().unwrap();
                assert!(1.0 - l.fidelity <= bound, "{mode}: {}", 1.0 - l.fidelity);
            }
            assert!(
                l.mode
                    .starts_with(mode.split(',').next().unwrap().split('=').next().unwrap())
            );
        }
        // The lossless version is untouched beside its approximations.
        let back = repo.reader("main", "exact").unwrap().read_all().unwrap();
        assert_eq!(back, data);
        assert!(repo.state("main", "exact").unwrap().1.lossy.is_none());
    }
    let report = repo.fsck(true).unwrap();
    assert!(report.healthy(), "{report:?}");
}

#[test]
fn lossy_states_are_much_smaller_and_deduplicate() {
    let (_d, repo) = local_repo(1 << 16);
    let data = encode(&state(16, 3), DType::Complex128);
    let info = sv(16, DType::Complex128);
    let stored = |opts: &PutOptions, path: &str| {
        let mut tx = repo.transaction("main").unwrap();
        tx.put(path, &info, &data, opts).unwrap();
        let s = tx.stats();
        tx.commit(Default::default()).unwrap();
        s.new_stored_bytes.max(1)
    };
    let exact = stored(&PutOptions::default(), "a/exact");
    let e6 = stored(&lossy("max-infidelity=1e-6"), "a/e6");
    let e3 = stored(&lossy("max-infidelity=1e-3"), "a/e3");
    let raw = data.len() as u64;
    assert!(raw / e6 >= 4, "1e-6: {raw} -> {e6} (lossless {exact})");
    assert!(raw / e3 >= 8, "1e-3: {raw} -> {e3}");
    // The same lossy put again stores nothing new.
    assert_eq!(stored(&lossy("max-infidelity=1e-3"), "a/e3-again"), 1);
}

#[test]
fn lossy_puts_refuse_what_they_cannot_bound() {
    let (_d, repo) = local_repo(1 << 12);
    // Bounds below 1e-12 and unknown modes never parse.
    for bad in [
        "max-infidelity=1e-13",
        "max-infidelity=0",
        "lossless",
        "f16",
    ] {
        assert!(bad.parse::<LossySpec>().is_err(), "{bad}");
    }
    let before = repo.branch_head("main").unwrap();
    // A density matrix (no sound bound defined) is refused, nothing stored.
    let rho = encode(&vec![0.25; 2 * 16], DType::Complex128);
    let dm = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![4, 4],
    };
    let e = put_one(&repo, "rho", &dm, &rho, &lossy("f32")).unwrap_err();
    assert!(e.to_string().contains("state vectors"), "{e}");
    // A mode that leaves nothing.
    let tiny = encode(&state(6, 1), DType::Complex128);
    let e = put_one(
        &repo,
        "s",
        &sv(6, DType::Complex128),
        &tiny,
        &lossy("zero-below=10"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("leaves nothing"), "{e}");
    // mantissa bits past what complex64 holds.
    let c64 = encode(&state(6, 1), DType::Complex64);
    let e = put_one(
        &repo,
        "s",
        &sv(6, DType::Complex64),
        &c64,
        &lossy("mantissa-bits=30"),
    )
    .unwrap_err();
    assert!(e.to_string().contains("23"), "{e}");
    assert_eq!(
        repo.branch_head("main").unwrap(),
        before,
        "nothing committed"
    );
}

/// A density matrix that is Hermitian up to a few ulps (as Aer computes them), with -0.0
/// and asymmetric rounding in places.
fn near_hermitian(dim: usize, seed: u64) -> Vec<f64> {
    let mut v = floats(2 * dim * dim, 0.0, seed);
    let mut x = seed | 1;
    for i in 0..dim {
        v[2 * (i * dim + i) + 1] = if i % 3 == 0 { 1e-18 } else { 0.0 };
        for j in 0..i {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (re, im) = (v[2 * (j * dim + i)], v[2 * (j * dim + i) + 1]);
            let jitter = |f: f64, k: u64| {
                if !f.is_normal() {
                    f
                } else {
                    f64::from_bits(f.to_bits().wrapping_add(k % 7).wrapping_sub(3))
                }
            };
            v[2 * (i * dim + j)] = if x.is_multiple_of(11) {
                -0.0
            } else {
                jitter(re, x)
            };
            v[2 * (i * dim + j) + 1] = jitter(0.0 - im, x >> 8);
        }
    }
    v
}

#[test]
fn near_hermitian_density_matrices_are_stored_as_triangle_plus_residual() {
    let (_d, repo) = local_repo(1 << 14);
    for (dtype, dim) in [(DType::Complex128, 64usize), (DType::Complex64, 128)] {
        let v = near_hermitian(dim, 11);
        let v: Vec<f64> = if dtype == DType::Complex64 {
            v.iter()
                .map(|x| x.clamp(-1e30, 1e30) as f32 as f64)
                .collect()
        } else {
            v
        };
        let data = encode(&v, dtype);
        let info = ArrayInfo {
            dtype,
            shape: vec![dim as u64, dim as u64],
        };
        let path = format!("rho/{}", dtype.name());
        let mut tx = repo.transaction("main").unwrap();
        tx.put(&path, &info, &data, &PutOptions::default()).unwrap();
        let near = tx.stats().new_stored_bytes;
        tx.put(
            &format!("{path}-dense"),
            &info,
            &data,
            &PutOptions {
                encoding: qstore::EncodingChoice::Dense,
                ..Default::default()
            },
        )
        .unwrap();
        let dense = tx.stats().new_stored_bytes - near;
        tx.commit(Default::default()).unwrap();
        let (_, e) = repo.state("main", &path).unwrap();
        assert_eq!(e.encoding, Encoding::NearHermitian, "{dtype:?}");
        assert!(
            near < dense,
            "{dtype:?}: near-hermitian {near} vs dense {dense}"
        );
        // Bit-exact, whole and in pieces that start and end anywhere.
        let mut r = repo.reader("main", &path).unwrap();
        assert_eq!(r.read_all().unwrap(), data);
        let item = dtype.item_size();
        let elems = (dim * dim) as u64;
        for (a, b) in [
            (0, 1),
            (1, 2),
            (dim as u64 - 1, dim as u64 + 3),
            (elems / 3, elems / 2 + 7),
            (elems - 5, elems),
        ] {
            let mut buf = vec![0u8; (b - a) as usize * item];
            r.read_elements(a, b, &mut buf).unwrap();
            assert_eq!(
                &buf[..],
                &data[a as usize * item..b as usize * item],
                "{a}..{b}"
            );
        }
        // The trace is read from the stored diagonal.
        let probs = r.top_k(dim).unwrap();
        assert_eq!(probs.len(), dim);
    }
    assert!(repo.fsck(true).unwrap().healthy());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    #[test]
    fn density_matrices_round_trip_in_whatever_layout_is_chosen(n in 1u32..6, seed in any::<u64>(), jitter in any::<bool>()) {
        let repo = memory_repo(256);
        let dim = 1usize << n;
        let v = if jitter { near_hermitian(dim, seed) } else { floats(2 * dim * dim, 0.1, seed) };
        let data = encode(&v, DType::Complex128);
        let info = ArrayInfo { dtype: DType::Complex128, shape: vec![dim as u64, dim as u64] };
        put_one(&repo, "rho", &info, &data, &PutOptions::default()).unwrap();
        let mut r = repo.reader("main", "rho").unwrap();
        prop_assert_eq!(r.read_all().unwrap(), data);
    }
}

#[test]
fn merges_recompress_what_puts_stored_with_lz4() {
    let (_d, repo) = local_repo(1 << 16);
    // Amplitudes from a small set: compressible, and zstd finds far more than lz4.
    let v: Vec<f64> = (0..1usize << 18)
        .flat_map(|k| {
            let t = ((k * 7919) % 4096) as f64 * std::f64::consts::TAU / 4096.0;
            [t.cos() / 512.0, t.sin() / 512.0]
        })
        .collect();
    let data = encode(&v, DType::Complex128);
    let info = sv(18, DType::Complex128);
    let mut tx = repo.transaction("main").unwrap();
    tx.put("psi", &info, &data, &PutOptions::default()).unwrap();
    let s = tx.stats();
    tx.commit(Default::default()).unwrap();
    assert_eq!(s.codec_counts[2], 0, "a put uses the fast codecs: {s:?}");
    assert!(s.codec_counts[1] > 0, "{s:?}");
    let before = repo.stats().unwrap();
    let report = repo.repack_recompress().unwrap();
    assert!(report.chunks_recompressed > 0, "{report:?}");
    let after = repo.stats().unwrap();
    assert!(
        after.stored_chunk_bytes < before.stored_chunk_bytes,
        "{} -> {}",
        before.stored_chunk_bytes,
        after.stored_chunk_bytes
    );
    let fresh = Repository::open(repo.address()).unwrap();
    assert_eq!(
        fresh.reader("main", "psi").unwrap().read_all().unwrap(),
        data
    );
    assert!(fresh.fsck(true).unwrap().healthy());
}

/// An empty local repository as format-2 builds left it (its config says version 2; the
/// other bytes of an empty repository are the same in both formats).
fn format_2_repo() -> (tempfile::TempDir, String) {
    let (dir, repo) = local_repo(1 << 12);
    let addr = repo.address().to_string();
    drop(repo);
    let cfg = dir.path().join("repo/config.json");
    let text = std::fs::read_to_string(&cfg).unwrap();
    std::fs::write(
        &cfg,
        text.replace("\"format_version\": 4", "\"format_version\": 2"),
    )
    .unwrap();
    (dir, addr)
}

#[test]
fn format_2_repositories_keep_the_older_encodings_until_upgraded() {
    let (_dir, addr) = format_2_repo();
    let repo = Repository::open(&addr).unwrap();
    assert_eq!(repo.config().format_version, 2);
    let data = encode(&state(8, 5), DType::Complex128);
    let e = put_one(&repo, "s", &sv(8, DType::Complex128), &data, &lossy("f32")).unwrap_err();
    assert!(e.to_string().contains("qstore upgrade"), "{e}");
    // Near-Hermitian matrices are stored dense there (format-2 builds read those).
    let dim = 32;
    let rho = encode(&near_hermitian(dim, 3), DType::Complex128);
    let dm = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![dim as u64, dim as u64],
    };
    put_one(&repo, "rho", &dm, &rho, &PutOptions::default()).unwrap();
    assert_eq!(
        repo.state("main", "rho").unwrap().1.encoding,
        Encoding::Dense
    );
    // Upgrade: a config rewrite, same id; then both work, and the old states still read.
    let id = repo.config().repository_id.clone();
    let r = Repository::upgrade(&addr).unwrap();
    assert_eq!(
        (r.from_version, r.to_version, r.repository_id.as_str()),
        (2, 4, id.as_str())
    );
    let repo = Repository::open(&addr).unwrap();
    put_one(&repo, "s", &sv(8, DType::Complex128), &data, &lossy("f32")).unwrap();
    put_one(&repo, "rho2", &dm, &rho, &PutOptions::default()).unwrap();
    assert_eq!(
        repo.state("main", "rho2").unwrap().1.encoding,
        Encoding::NearHermitian
    );
    assert_eq!(repo.reader("main", "rho").unwrap().read_all().unwrap(), rho);
    assert_eq!(
        repo.reader("main", "rho2").unwrap().read_all().unwrap(),
        rho
    );
    assert!(repo.fsck(true).unwrap().healthy());
}

#[test]
fn a_format_2_destination_refuses_format_4_states_until_upgraded() {
    let (_s, src) = local_repo(1 << 12);
    let (_dir, addr) = format_2_repo();
    let data = encode(&state(8, 5), DType::Complex128);
    put_one(
        &src,
        "exact",
        &sv(8, DType::Complex128),
        &data,
        &PutOptions::default(),
    )
    .unwrap();
    // Lossless states move to a format-2 repository as before.
    src.push(&addr, &[], &Default::default()).unwrap();
    put_one(
        &src,
        "approx",
        &sv(8, DType::Complex128),
        &data,
        &lossy("f32"),
    )
    .unwrap();
    let e = src.push(&addr, &[], &Default::default()).unwrap_err();
    assert!(e.to_string().contains("qstore upgrade"), "{e}");
    let dst = Repository::open(&addr).unwrap();
    assert!(dst.state("main", "approx").is_err(), "no ref moved");
    Repository::upgrade(&addr).unwrap();
    src.push(&addr, &[], &Default::default()).unwrap();
    let dst = Repository::open(&addr).unwrap();
    assert!(dst.state("main", "approx").unwrap().1.lossy.is_some());
}
