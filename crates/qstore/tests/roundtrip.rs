//! Bit-exact round trips for every kind, dtype and encoding, across chunk boundaries,
//! including 1-qubit states and sizes that are not a multiple of the chunk size.

mod common;

use common::*;
use proptest::prelude::*;
use qstore::{
    ArrayInfo, DType, Encoding, EncodingChoice, KindRequest, PutOptions, SparseInput, StateKind,
};

const DTYPES: [DType; 13] = [
    DType::Complex64,
    DType::Complex128,
    DType::Float32,
    DType::Float64,
    DType::Int8,
    DType::Int16,
    DType::Int32,
    DType::Int64,
    DType::UInt8,
    DType::UInt16,
    DType::UInt32,
    DType::UInt64,
    DType::Bool,
];

fn check_ranges(repo: &qstore::Repository, path: &str, data: &[u8], item: usize, seed: u64) {
    let mut r = repo.reader("main", path).unwrap();
    let elems = (data.len() / item) as u64;
    assert_eq!(r.read_all().unwrap(), data, "{path}: whole read");
    let mut rng = <rand::rngs::StdRng as rand::SeedableRng>::seed_from_u64(seed);
    for _ in 0..4 {
        let a = rand::Rng::random_range(&mut rng, 0..=elems);
        let b = rand::Rng::random_range(&mut rng, a..=elems);
        let mut buf = vec![0u8; ((b - a) as usize) * item];
        r.read_elements(a, b, &mut buf).unwrap();
        assert_eq!(
            &buf[..],
            &data[a as usize * item..b as usize * item],
            "{path}: range {a}..{b}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    #[test]
    fn state_vectors_round_trip(n in 1u32..11, c64 in any::<bool>(), zero_frac in prop::sample::select(vec![0.0, 0.5, 0.99, 1.0]), seed in any::<u64>(), chunk in prop::sample::select(vec![256u64, 1024, 4096])) {
        let repo = memory_repo(chunk);
        let dtype = if c64 { DType::Complex64 } else { DType::Complex128 };
        let data = encode(&floats(2 << n, zero_frac, seed), dtype);
        let info = ArrayInfo { dtype, shape: vec![1 << n] };
        for (path, enc) in [("auto/psi", EncodingChoice::Auto), ("dense/psi", EncodingChoice::Dense)] {
            put_one(&repo, path, &info, &data, &PutOptions { encoding: enc, ..Default::default() }).unwrap();
            let (_, e) = repo.state("main", path).unwrap();
            prop_assert_eq!(e.kind, StateKind::StateVector);
            if enc == EncodingChoice::Dense { prop_assert_eq!(e.encoding, Encoding::Dense); }
            check_ranges(&repo, path, &data, dtype.item_size(), seed);
            let (idx, vals) = repo.reader("main", path).unwrap().read_sparse().unwrap();
            let item = dtype.item_size();
            let nz: Vec<u64> = (0..1u64 << n).filter(|&i| data[i as usize * item..(i as usize + 1) * item].iter().any(|&b| b != 0)).collect();
            prop_assert_eq!(&idx, &nz);
            prop_assert_eq!(vals.len(), nz.len() * item);
        }
        if zero_frac == 0.99 && n >= 8 && data.iter().any(|&b| b != 0) {
            prop_assert_eq!(repo.state("main", "auto/psi").unwrap().1.encoding, Encoding::Sparse);
        }
    }

    #[test]
    fn density_matrices_round_trip(n in 1u32..6, c64 in any::<bool>(), hermitian in any::<bool>(), seed in any::<u64>()) {
        let repo = memory_repo(256);
        let dtype = if c64 { DType::Complex64 } else { DType::Complex128 };
        let dim = 1usize << n;
        let mut v = floats(2 * dim * dim, 0.1, seed);
        if c64 { for x in &mut v { *x = x.clamp(f32::MIN as f64, f32::MAX as f64) as f32 as f64; } }
        if hermitian {
            for i in 0..dim {
                v[2 * (i * dim + i) + 1] = 0.0;
                for j in 0..i {
                    let (re, im) = (v[2 * (j * dim + i)], v[2 * (j * dim + i) + 1]);
                    v[2 * (i * dim + j)] = re;
                    v[2 * (i * dim + j) + 1] = 0.0 - im;
                }
            }
        }
        let data = encode(&v, dtype);
        let info = ArrayInfo { dtype, shape: vec![dim as u64, dim as u64] };
        put_one(&repo, "rho", &info, &data, &PutOptions::default()).unwrap();
        let (_, e) = repo.state("main", "rho").unwrap();
        prop_assert_eq!(e.kind, StateKind::DensityMatrix);
        if hermitian { prop_assert_eq!(e.encoding, Encoding::Hermitian); }
        check_ranges(&repo, "rho", &data, dtype.item_size(), seed);
    }

    #[test]
    fn arrays_of_every_dtype_round_trip(d in 0usize..13, shape in proptest::collection::vec(0u64..9, 0..4), seed in any::<u64>()) {
        let repo = memory_repo(256);
        let dtype = DTYPES[d];
        let info = ArrayInfo { dtype, shape };
        let elems = info.elements().unwrap() as usize;
        let per = if dtype.is_complex() { 2 } else { 1 };
        let mut data = encode(&floats(elems * per, 0.2, seed), dtype);
        if dtype == DType::Bool { for b in &mut data { *b &= 1; } }
        put_one(&repo, "params/theta", &info, &data, &PutOptions { kind: KindRequest::Array, ..Default::default() }).unwrap();
        let (_, e) = repo.state("main", "params/theta").unwrap();
        prop_assert_eq!(e.kind, StateKind::Array);
        prop_assert_eq!(&e.shape, &info.shape);
        check_ranges(&repo, "params/theta", &data, dtype.item_size(), seed);
    }

    #[test]
    fn sparse_inputs_round_trip(n in 1u32..=58, picks in proptest::collection::btree_set(any::<u64>(), 0..40), seed in any::<u64>()) {
        let repo = memory_repo(256);
        let idx: Vec<u64> = picks.into_iter().map(|p| if n == 64 { p } else { p % (1u64 << n) }).collect::<std::collections::BTreeSet<_>>().into_iter().rev().collect();
        let vals = encode(&floats(idx.len() * 2, 0.0, seed), DType::Complex128);
        let mut tx = repo.transaction("main").unwrap();
        tx.put_sparse("s", &SparseInput { n_qubits: n, dtype: DType::Complex128, indices: &idx, values: &vals }, &PutOptions::default()).unwrap();
        tx.commit(Default::default()).unwrap();
        let mut r = repo.reader("main", "s").unwrap();
        prop_assert_eq!(r.entry().encoding, Encoding::Sparse);
        let (ri, rv) = r.read_sparse().unwrap();
        let mut order: Vec<usize> = (0..idx.len()).collect();
        order.sort_by_key(|&k| idx[k]);
        prop_assert_eq!(ri, order.iter().map(|&k| idx[k]).collect::<Vec<_>>());
        prop_assert_eq!(rv, order.iter().flat_map(|&k| vals[k * 16..(k + 1) * 16].to_vec()).collect::<Vec<_>>());
        if let Some(&i) = idx.first() {
            let mut one = [0u8; 16];
            r.read_elements(i, i + 1, &mut one).unwrap();
            prop_assert_eq!(&one[..], &vals[..16]);
        }
    }
}

#[test]
fn one_qubit_and_odd_sizes_on_local_disk() {
    let (_d, repo) = local_repo(256);
    for n in [1u32, 3, 5, 9] {
        let data = encode(&floats(2 << n, 0.0, n as u64), DType::Complex128);
        put_one(
            &repo,
            &format!("q/n{n}"),
            &sv_info(n),
            &data,
            &PutOptions::default(),
        )
        .unwrap();
        let back = qstore::Repository::open(repo.address())
            .unwrap()
            .reader("main", &format!("q/n{n}"))
            .unwrap()
            .read_all()
            .unwrap();
        assert_eq!(back, data);
    }
}

#[test]
fn a_dense_state_smaller_than_one_chunk_stays_dense() {
    // 1,024 non-zero amplitudes in a 16 KiB state (one short chunk): a sparse stream would be
    // 24 KiB, larger than the state, so the dense layout must be chosen.
    let (_d, repo) = local_repo(1 << 20);
    let data = encode(&floats(2 << 10, 0.0, 7), DType::Complex128);
    put_one(&repo, "small", &sv_info(10), &data, &PutOptions::default()).unwrap();
    let e = repo.state("main", "small").unwrap().1;
    assert_eq!(e.encoding, Encoding::Dense);
    assert_eq!(e.stream_len, data.len() as u64);
    // A mostly-zero state of the same size is still stored sparse.
    let mut few = vec![0.0f64; 2 << 10];
    few[6] = 1.0;
    put_one(
        &repo,
        "few",
        &sv_info(10),
        &encode(&few, DType::Complex128),
        &PutOptions::default(),
    )
    .unwrap();
    let e = repo.state("main", "few").unwrap().1;
    assert_eq!(e.encoding, Encoding::Sparse);
    assert_eq!(e.nnz, 1);
}

#[test]
fn ghz_50_is_stored_sparse_and_refuses_to_materialise() {
    let (_d, repo) = local_repo(1 << 20);
    let a = std::f64::consts::FRAC_1_SQRT_2;
    let vals = encode(&[a, 0.0, a, 0.0], DType::Complex128);
    let idx = [0u64, (1 << 50) - 1];
    let mut tx = repo.transaction("main").unwrap();
    tx.put_sparse(
        "ghz50",
        &SparseInput {
            n_qubits: 50,
            dtype: DType::Complex128,
            indices: &idx,
            values: &vals,
        },
        &PutOptions::default(),
    )
    .unwrap();
    tx.commit(Default::default()).unwrap();
    let mut r = repo.reader("main", "ghz50").unwrap();
    assert_eq!(r.entry().encoding, Encoding::Sparse);
    assert_eq!(r.entry().qubits(), Some(50));
    assert_eq!(r.read_sparse().unwrap(), (idx.to_vec(), vals.clone()));
    let err = r.read_all().unwrap_err();
    assert!(
        matches!(err, qstore::Error::TooLargeToMaterialise { bytes, .. } if bytes == 16u128 << 50),
        "{err}"
    );
    assert!(err.to_string().contains("too large to materialise"));
    assert_eq!(
        r.top_k(2).unwrap(),
        vec![(0, a * a), ((1 << 50) - 1, a * a)]
    );
    let m = r.marginals(&[49]).unwrap();
    assert!((m[0] - 0.5).abs() < 1e-15 && (m[1] - 0.5).abs() < 1e-15);
}

/// A GHZ state of `n` qubits with multi-word indices: |0...0> and |1...1>.
fn ghz_wide(n: u32) -> (Vec<u64>, Vec<u8>) {
    let words = n.div_ceil(64) as usize;
    let mut ones = vec![u64::MAX; words];
    if !n.is_multiple_of(64) {
        ones[words - 1] = (1u64 << (n % 64)) - 1;
    }
    // Given in reverse order: the engine sorts.
    let mut idx = ones;
    idx.extend(std::iter::repeat_n(0u64, words));
    let a = std::f64::consts::FRAC_1_SQRT_2;
    (idx, encode(&[a, 0.0, a, 0.0], DType::Complex128))
}

#[test]
fn wide_sparse_states_up_to_1024_qubits_round_trip() {
    let repo = memory_repo(256);
    let mut tx = repo.transaction("main").unwrap();
    for n in [59u32, 64, 65, 127, 1024] {
        let (idx, vals) = ghz_wide(n);
        tx.put_sparse_wide(
            &format!("ghz/n{n}"),
            &qstore::WideSparseInput {
                n_qubits: n,
                dtype: DType::Complex128,
                indices: &idx,
                values: &vals,
            },
            &PutOptions::default(),
        )
        .unwrap();
    }
    // A narrow one through the wide API is stored as the narrow API stores it.
    tx.put_sparse_wide(
        "ghz/n3",
        &qstore::WideSparseInput {
            n_qubits: 3,
            dtype: DType::Complex128,
            indices: &[7, 0],
            values: &encode(&[0.6, 0.0, 0.8, 0.0], DType::Complex128),
        },
        &PutOptions::default(),
    )
    .unwrap();
    tx.commit(Default::default()).unwrap();
    for n in [59u32, 64, 65, 127, 1024] {
        let path = format!("ghz/n{n}");
        let mut r = repo.reader("main", &path).unwrap();
        let e = r.entry().clone();
        assert_eq!(e.qubits(), Some(n));
        assert!(e.shape.is_empty() && e.is_wide());
        assert_eq!(e.nnz, 2);
        let w = r.read_sparse_wide().unwrap();
        let (idx, vals) = ghz_wide(n);
        let words = idx.len() / 2;
        assert_eq!(w.words, words);
        assert_eq!(w.basis_index(0), &idx[words..], "sorted: |0...0> first");
        assert_eq!(w.basis_index(1), &idx[..words]);
        assert_eq!(w.values, vals);
        // Stored sparse: bytes, not 2^n of anything.
        assert_eq!(e.stream_len, 2 * (8 * words as u64 + 16));
        // Anything that needs a dense form or 64-bit indices says so.
        assert!(matches!(
            r.read_all().unwrap_err(),
            qstore::Error::TooLargeToMaterialise { .. }
        ));
        let err = r.top_k(1).unwrap_err();
        assert!(err.to_string().contains("read_sparse_wide"), "{err}");
        assert!(r.read_sparse().is_err());
        let mut other = repo.reader("main", &path).unwrap();
        let f = qstore::StateReader::fidelity(&mut r, &mut other).unwrap();
        assert!((f.unwrap() - 1.0).abs() < 1e-12);
    }
    let mut r = repo.reader("main", "ghz/n3").unwrap();
    assert_eq!(r.entry().shape, vec![8]);
    assert_eq!(r.read_sparse().unwrap().0, vec![0, 7]);
    assert_eq!(r.read_sparse_wide().unwrap().indices, vec![0, 7]);
    // A second version of a wide state: diff reports the fidelity between them.
    let mut tx = repo.transaction("main").unwrap();
    let (mut idx, _) = ghz_wide(127);
    idx.truncate(2); // |1...1> only
    tx.put_sparse_wide(
        "ghz/n127",
        &qstore::WideSparseInput {
            n_qubits: 127,
            dtype: DType::Complex128,
            indices: &idx,
            values: &encode(&[1.0, 0.0], DType::Complex128),
        },
        &PutOptions::default(),
    )
    .unwrap();
    let c = tx.commit(Default::default()).unwrap();
    let d = repo.diff(&repo.log("main", 2).unwrap()[1].0.to_hex(), &c.to_hex());
    match &d.unwrap()[0] {
        qstore::DiffEntry::Changed { fidelity, .. } => {
            assert!((fidelity.unwrap() - 0.5).abs() < 1e-12)
        }
        other => panic!("{other:?}"),
    }
    let stats = repo.stats().unwrap();
    assert_eq!(
        stats.logical_bytes,
        u128::MAX,
        "saturates: 2^1024 amplitudes"
    );
    assert!(repo.fsck(true).unwrap().healthy());
}
