//! The views behind the web view (`repo/inspect.rs`): Bloch vectors against the reduced
//! density matrix computed directly, equal for every block size and for the dense, sparse
//! and density-matrix forms of one state; entropy; the heat map against direct averages;
//! stored sizes; checkpoint series; the commit graph and its pages.

mod common;

use common::{memory_repo, put_one, sv_info};
use qstore::repo::inspect::MAX_BLOCH_QUBITS;
use qstore::{ArrayInfo, CommitOptions, DType, PutOptions, StateReader};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

type C = [f64; 2];

fn random_state(n: u32, seed: u64) -> Vec<C> {
    let mut rng = StdRng::seed_from_u64(seed);
    let v: Vec<C> = (0..1usize << n)
        .map(|_| [rng.random::<f64>() - 0.5, rng.random::<f64>() - 0.5])
        .collect();
    let norm: f64 = v
        .iter()
        .map(|a| a[0] * a[0] + a[1] * a[1])
        .sum::<f64>()
        .sqrt();
    v.iter().map(|a| [a[0] / norm, a[1] / norm]).collect()
}

fn bytes(v: &[C]) -> Vec<u8> {
    v.iter()
        .flat_map(|a| [a[0].to_le_bytes(), a[1].to_le_bytes()].concat())
        .collect()
}

/// |psi><psi| as row-major complex128 bytes.
fn outer(v: &[C]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * v.len() * 16);
    for a in v {
        for b in v {
            // a * conj(b)
            let re = a[0] * b[0] + a[1] * b[1];
            let im = a[1] * b[0] - a[0] * b[1];
            out.extend_from_slice(&re.to_le_bytes());
            out.extend_from_slice(&im.to_le_bytes());
        }
    }
    out
}

/// Bloch vectors from the reduced density matrix, by definition.
fn reference_bloch(v: &[C], n: u32) -> Vec<[f64; 3]> {
    (0..n)
        .map(|q| {
            let bit = 1usize << q;
            let (mut r00, mut r11, mut re, mut im) = (0.0, 0.0, 0.0, 0.0);
            for (i, a) in v.iter().enumerate() {
                let p = a[0] * a[0] + a[1] * a[1];
                if i & bit == 0 {
                    r00 += p;
                    let b = v[i | bit];
                    re += a[0] * b[0] + a[1] * b[1];
                    im += a[1] * b[0] - a[0] * b[1];
                } else {
                    r11 += p;
                }
            }
            [2.0 * re, -2.0 * im, r00 - r11]
        })
        .collect()
}

fn close(a: &[[f64; 3]], b: &[[f64; 3]]) {
    assert_eq!(a.len(), b.len());
    for (x, y) in a.iter().zip(b) {
        for k in 0..3 {
            assert!((x[k] - y[k]).abs() < 1e-12, "{x:?} vs {y:?}");
        }
    }
}

#[test]
fn bloch_vectors_agree_with_the_reduced_density_matrix_in_every_form() {
    let repo = memory_repo(256);
    let n = 6;
    let v = random_state(n, 7);
    put_one(&repo, "sv", &sv_info(n), &bytes(&v), &PutOptions::default()).unwrap();
    let dm = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![1 << n, 1 << n],
    };
    put_one(&repo, "dm", &dm, &outer(&v), &PutOptions::default()).unwrap();
    let want = reference_bloch(&v, n);
    let mut r = repo.reader("main", "sv").unwrap();
    close(&r.bloch_vectors("sv").unwrap(), &want);
    for b in 1..=n {
        close(&r.bloch_dense(n, b).unwrap(), &want);
    }
    let mut d = repo.reader("main", "dm").unwrap();
    assert_eq!(d.entry().kind.name(), "density_matrix");
    close(&d.bloch_vectors("dm").unwrap(), &want);

    // Known states: |+i> on qubit 0, |1> on qubit 1, |-> on qubit 2, as a sparse state.
    let h = std::f64::consts::FRAC_1_SQRT_2;
    let mut s = [[0.0; 2]; 8];
    // qubit2 in |-> = (|0> - |1>)/sqrt2, qubit1 = |1>, qubit0 = (|0> + i|1>)/sqrt2
    for (q2, s2) in [(0, 1.0), (1, -1.0)] {
        let base = (q2 << 2) | 0b010;
        s[base] = [h * h * s2, 0.0];
        s[base | 1] = [0.0, h * h * s2];
    }
    let padded: Vec<C> = (0..1 << 12)
        .map(|i| if i < 8 { s[i] } else { [0.0; 2] })
        .collect();
    put_one(
        &repo,
        "known",
        &sv_info(12),
        &bytes(&padded),
        &PutOptions::default(),
    )
    .unwrap();
    let mut k = repo.reader("main", "known").unwrap();
    assert_eq!(k.entry().encoding.name(), "sparse");
    let b = k.bloch_vectors("known").unwrap();
    close(
        &b[..3],
        &[[0.0, 1.0, 0.0], [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0]],
    );
    close(&b[3..], &vec![[0.0, 0.0, 1.0]; 9]);
    close(&b, &reference_bloch(&padded, 12));
}

#[test]
fn entropy_heatmap_and_refusals() {
    let repo = memory_repo(512);
    // GHZ on 5 qubits: one bit of entropy.
    let mut g = vec![[0.0; 2]; 32];
    g[0] = [std::f64::consts::FRAC_1_SQRT_2, 0.0];
    g[31] = g[0];
    put_one(
        &repo,
        "ghz",
        &sv_info(5),
        &bytes(&g),
        &PutOptions::default(),
    )
    .unwrap();
    let mut r = repo.reader("main", "ghz").unwrap();
    assert!((r.entropy_bits().unwrap() - 1.0).abs() < 1e-12);
    let sum = r.summary(8, 5).unwrap();
    assert_eq!(sum.top.iter().map(|t| t.0).collect::<Vec<_>>().len(), 2);
    assert!(sum.top.iter().all(|t| (t.1 - 0.5).abs() < 1e-12));
    assert!(sum.p1.iter().all(|p| (p - 0.5).abs() < 1e-12));
    assert!((sum.norm - 1.0).abs() < 1e-12);
    // A random state: the one-pass entropy equals the definition.
    let v = random_state(7, 9);
    put_one(
        &repo,
        "rand",
        &sv_info(7),
        &bytes(&v),
        &PutOptions::default(),
    )
    .unwrap();
    let want: f64 = v
        .iter()
        .map(|a| a[0] * a[0] + a[1] * a[1])
        .filter(|p| *p > 0.0)
        .map(|p| -p * p.log2())
        .sum();
    let mut rr = repo.reader("main", "rand").unwrap();
    assert!((rr.entropy_bits().unwrap() - want).abs() < 1e-9);
    let amps = r.elements_at(&[0, 31, 5]).unwrap();
    assert_eq!(amps[2], [0.0, 0.0]);
    assert!((amps[1][0] - std::f64::consts::FRAC_1_SQRT_2).abs() < 1e-15);
    assert!(r.elements_at(&[32]).is_err());
    assert!(r.density_heatmap("ghz", 8).is_err());

    let v = random_state(3, 3);
    let m = outer(&v);
    let dm = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![8, 8],
    };
    put_one(&repo, "dm", &dm, &m, &PutOptions::default()).unwrap();
    let mut d = repo.reader("main", "dm").unwrap();
    let full = d.density_heatmap("dm", 64).unwrap();
    assert_eq!((full.side, full.block), (8, 1));
    let h = d.density_heatmap("dm", 4).unwrap();
    assert_eq!((h.side, h.block), (4, 2));
    for ci in 0..4 {
        for cj in 0..4 {
            let mut mag = 0.0;
            for i in 2 * ci..2 * ci + 2 {
                for j in 2 * cj..2 * cj + 2 {
                    mag += full.magnitude[i * 8 + j];
                }
            }
            assert!((h.magnitude[ci * 4 + cj] - mag / 4.0).abs() < 1e-12);
        }
    }
    // A uniform distribution over 3 qubits on the diagonal of a mixed state: 3 bits.
    let mut mixed = vec![0u8; 64 * 16];
    for i in 0..8 {
        mixed[(i * 8 + i) * 16..(i * 8 + i) * 16 + 8].copy_from_slice(&0.125f64.to_le_bytes());
    }
    put_one(&repo, "mixed", &dm, &mixed, &PutOptions::default()).unwrap();
    let mut x = repo.reader("main", "mixed").unwrap();
    assert!((x.entropy_bits().unwrap() - 3.0).abs() < 1e-12);
    close(&x.bloch_vectors("mixed").unwrap(), &[[0.0; 3]; 3]);
    const { assert!(MAX_BLOCH_QUBITS >= 30) };
}

#[test]
fn stored_size_counts_zero_and_repeated_chunks() {
    let repo = memory_repo(1024);
    // 8 chunks of 64 amplitudes: two equal random chunks, the rest zero.
    let piece = random_state(6, 1);
    let mut v = vec![[0.0; 2]; 512];
    v[..64].copy_from_slice(&piece);
    v[64..128].copy_from_slice(&piece);
    let opts = PutOptions {
        encoding: qstore::EncodingChoice::Dense,
        ..Default::default()
    };
    put_one(&repo, "s", &sv_info(9), &bytes(&v), &opts).unwrap();
    let r = repo.reader("main", "s").unwrap();
    let s = r.stored_size();
    assert_eq!(s.logical_bytes, 512 * 16);
    assert_eq!((s.chunks, s.zero_chunks, s.repeated_chunks), (8, 6, 1));
    assert!(s.stored_bytes > 0 && s.stored_bytes <= 1024 + 64);
}

#[test]
fn series_follows_versions_of_a_path_oldest_first() {
    let repo = memory_repo(512);
    let n = 4;
    let states: Vec<Vec<C>> = (0..3).map(|s| random_state(n, 10 + s)).collect();
    for (i, v) in states.iter().enumerate() {
        let mut tx = repo.transaction("main").unwrap();
        tx.put(
            "checkpoints/state",
            &sv_info(n),
            &bytes(v),
            &PutOptions::default(),
        )
        .unwrap();
        tx.commit(CommitOptions {
            message: format!("step {i}"),
            ..Default::default()
        })
        .unwrap();
        // A commit that leaves the path unchanged adds no point.
        let mut tx = repo.transaction("main").unwrap();
        tx.put(
            &format!("other/{i}"),
            &sv_info(1),
            &bytes(&[[1.0, 0.0], [0.0, 0.0]]),
            &PutOptions::default(),
        )
        .unwrap();
        tx.commit(CommitOptions::default()).unwrap();
    }
    let s = repo.series("main", "checkpoints/state", None, 100).unwrap();
    assert_eq!(
        s.iter().map(|p| p.message.as_str()).collect::<Vec<_>>(),
        ["step 0", "step 1", "step 2"]
    );
    assert!((s[2].fidelity_to_final.unwrap() - 1.0).abs() < 1e-12);
    let mut a = repo.reader(&s[0].commit, "checkpoints/state").unwrap();
    let mut b = repo.reader("main", "checkpoints/state").unwrap();
    let f = StateReader::fidelity(&mut a, &mut b).unwrap().unwrap();
    assert!((s[0].fidelity_to_final.unwrap() - f).abs() < 1e-12);
    assert!(
        s.iter()
            .all(|p| p.entropy_bits > 0.0 && p.entropy_bits <= 4.0)
    );
    // Against another final path: other/2 has one qubit, so the fidelity is undefined.
    let o = repo
        .series("main", "checkpoints/state", Some("other/2"), 100)
        .unwrap();
    assert!(o.iter().all(|p| p.fidelity_to_final.is_none()));
    assert!(
        repo.series("main", "checkpoints/state", Some("nope"), 100)
            .is_err()
    );
    assert!(
        repo.series("main", "missing", None, 100)
            .unwrap()
            .is_empty()
    );
}

#[test]
fn graph_pages_cover_every_commit_once_newest_first() {
    let repo = memory_repo(512);
    let one = |branch: &str, path: &str| {
        let mut tx = repo.transaction(branch).unwrap();
        tx.put(
            path,
            &sv_info(1),
            &bytes(&[[1.0, 0.0], [0.0, 0.0]]),
            &PutOptions::default(),
        )
        .unwrap();
        tx.commit(CommitOptions {
            message: format!("{branch} {path}"),
            ..Default::default()
        })
        .unwrap()
    };
    let mut ids = vec![one("main", "a"), one("main", "b")];
    repo.create_branch("exp", "main").unwrap();
    for i in 0..3 {
        ids.push(one("exp", &format!("e{i}")));
        ids.push(one("main", &format!("m{i}")));
    }
    repo.create_tag("v1", &ids[4].to_hex()).unwrap();
    // The repository's first commit (made by init) comes last.
    ids.extend(repo.commit(&ids[0]).unwrap().parents);
    let all = repo.graph(0, 100).unwrap();
    assert!(!all.more);
    assert_eq!(all.commits.len(), ids.len());
    let mut seen: Vec<String> = all.commits.iter().map(|c| c.id.clone()).collect();
    seen.sort();
    let mut want: Vec<String> = ids.iter().map(|i| i.to_hex()).collect();
    want.sort();
    assert_eq!(seen, want);
    assert!(all.commits.windows(2).all(|w| w[0].time_ms >= w[1].time_ms));
    let head = |name: &str| repo.resolve(name).unwrap().to_hex();
    let refs_of = |id: &str| {
        all.commits
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.refs.clone())
            .unwrap()
    };
    assert_eq!(refs_of(&head("main")), ["branches/main"]);
    assert_eq!(refs_of(&head("exp")), ["branches/exp"]);
    assert_eq!(refs_of(&ids[4].to_hex()), ["tags/v1"]);
    let mut paged = Vec::new();
    let mut off = 0;
    loop {
        let p = repo.graph(off, 3).unwrap();
        off += p.commits.len();
        paged.extend(p.commits.into_iter().map(|c| c.id));
        if !p.more {
            break;
        }
    }
    assert_eq!(
        paged,
        all.commits.iter().map(|c| c.id.clone()).collect::<Vec<_>>()
    );
}
