//! Bad input is refused with a typed error and leaves the repository unchanged; damaged or
//! unknown stored bytes are reported as such (naming the object and the path), never returned
//! as data, and do not stop reads of other states.

mod common;

use common::*;
use qstore::format::manifest::ChunkRef;
use qstore::{
    ArrayInfo, DType, Error, ErrorCategory, KindRequest, PutOptions, Repository, SparseInput,
};
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::Path;

fn c128(shape: &[u64]) -> ArrayInfo {
    ArrayInfo {
        dtype: DType::Complex128,
        shape: shape.to_vec(),
    }
}

fn zeros(elems: usize) -> Vec<u8> {
    let mut v = vec![0u8; elems * 16];
    v[0] = 1;
    v
}

fn assert_refused(
    repo: &Repository,
    f: impl FnOnce(&mut qstore::Transaction) -> qstore::Result<()>,
    category: ErrorCategory,
    needle: &str,
) {
    let before = snapshot(repo);
    let packs_before = repo.storage().list("packs/").unwrap().len();
    let mut tx = repo.transaction("main").unwrap();
    let err = f(&mut tx).expect_err("must be refused");
    assert_eq!(err.category(), category, "{err}");
    assert!(
        err.to_string().contains(needle),
        "{err:?} should mention {needle:?}"
    );
    drop(tx);
    assert_eq!(snapshot(repo), before, "refs and states unchanged");
    assert_eq!(
        repo.storage().list("packs/").unwrap().len(),
        packs_before,
        "nothing written"
    );
}

#[test]
fn invalid_states_and_paths_are_refused_and_change_nothing() {
    let (_d, repo) = local_repo(1024);
    put_one(
        &repo,
        "ok/psi",
        &sv_info(4),
        &zeros(16),
        &PutOptions::default(),
    )
    .unwrap();
    let put = |path: &'static str, info: ArrayInfo, data: Vec<u8>, kind: KindRequest| {
        move |tx: &mut qstore::Transaction| {
            tx.put(
                path,
                &info,
                &data,
                &PutOptions {
                    kind,
                    ..Default::default()
                },
            )
            .map(|_| ())
        }
    };
    let inv = ErrorCategory::InvalidInput;
    assert_refused(
        &repo,
        put("a", c128(&[3]), zeros(3), KindRequest::Auto),
        inv,
        "not a power of two",
    );
    assert_refused(
        &repo,
        put("a", c128(&[6]), zeros(6), KindRequest::StateVector),
        inv,
        "not a power of two",
    );
    assert_refused(
        &repo,
        put("a", c128(&[1]), zeros(1), KindRequest::Auto),
        inv,
        "n = 1..",
    );
    assert_refused(
        &repo,
        put("a", c128(&[2, 4]), zeros(8), KindRequest::Auto),
        inv,
        "square",
    );
    assert_refused(
        &repo,
        put("a", c128(&[3, 3]), zeros(9), KindRequest::DensityMatrix),
        inv,
        "not a power of two",
    );
    assert_refused(
        &repo,
        put("a", c128(&[2, 2, 2]), zeros(8), KindRequest::Auto),
        inv,
        "--kind array",
    );
    let real = ArrayInfo {
        dtype: DType::Float64,
        shape: vec![4],
    };
    assert_refused(
        &repo,
        put("a", real, vec![0u8; 32], KindRequest::Auto),
        inv,
        "complex",
    );
    assert_refused(
        &repo,
        put("a", c128(&[4]), zeros(3), KindRequest::Auto),
        inv,
        "needs 64 bytes",
    );
    let mut nan = zeros(4);
    nan[16..24].copy_from_slice(&f64::NAN.to_le_bytes());
    assert_refused(
        &repo,
        put("a", c128(&[4]), nan, KindRequest::Auto),
        inv,
        "not finite",
    );
    let mut inf = zeros(4);
    inf[56..64].copy_from_slice(&f64::INFINITY.to_le_bytes());
    assert_refused(
        &repo,
        put("a", c128(&[2, 2]), inf, KindRequest::Auto),
        inv,
        "not finite",
    );
    for bad in ["../x", "a/../b", "a//b", "/abs", "", "a/", "a b", "./a"] {
        let data = zeros(4);
        assert_refused(
            &repo,
            move |tx| {
                tx.put(bad, &c128(&[4]), &data, &PutOptions::default())
                    .map(|_| ())
            },
            inv,
            "invalid path",
        );
    }
    assert_refused(
        &repo,
        |tx| {
            tx.put_sparse(
                "s",
                &SparseInput {
                    n_qubits: 3,
                    dtype: DType::Complex128,
                    indices: &[8],
                    values: &[0u8; 16],
                },
                &PutOptions::default(),
            )
            .map(|_| ())
        },
        inv,
        "out of range",
    );
    // A put under a path whose parent is a state fails at commit, and changes nothing.
    let before = snapshot(&repo);
    let mut tx = repo.transaction("main").unwrap();
    tx.put(
        "ok/psi/inner",
        &sv_info(1),
        &zeros(2),
        &PutOptions::default(),
    )
    .unwrap();
    let err = tx.commit(Default::default()).unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err}");
    assert_eq!(snapshot(&repo), before);
}

#[test]
fn unknown_refs_are_typed_errors() {
    let repo = memory_repo(1024);
    for r in [
        repo.transaction("nope").err(),
        repo.reader("nope", "x").err(),
        repo.create_branch("b", "nope").err(),
    ] {
        let e = r.expect("must fail");
        assert!(matches!(e, Error::RefNotFound(_)), "{e}");
        assert_eq!(e.category(), ErrorCategory::NotFound);
    }
    assert!(matches!(
        repo.reader("main", "missing/path").err(),
        Some(Error::PathNotFound { .. })
    ));
    assert!(matches!(
        repo.create_branch("a/b", "main"),
        Err(Error::InvalidRefName { .. })
    ));
    assert!(matches!(
        Repository::open("memory://never-created"),
        Err(Error::RepositoryNotFound(_))
    ));
    assert!(matches!(
        Repository::open("s3://bucket/x"),
        Err(Error::BadAddress(_))
    ));
}

fn chunk_location(repo: &Repository, path: &str) -> (String, u64) {
    let (_, e) = repo.state("main", path).unwrap();
    let m = repo.manifest(&e.manifest).unwrap();
    match m
        .chunks
        .iter()
        .find(|c| matches!(c, ChunkRef::Stored { .. }))
        .unwrap()
    {
        ChunkRef::Stored { location, .. } => (location.pack.key(), location.offset),
        ChunkRef::Zero => unreachable!(),
    }
}

fn flip(file: &Path, offset: u64) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, offset).unwrap();
    b[0] ^= 0x40;
    f.write_all_at(&b, offset).unwrap();
}

#[test]
fn a_flipped_byte_is_reported_and_other_states_still_read() {
    let (dir, repo) = local_repo(1024);
    let root = dir.path().join("repo");
    let a = encode(&plain_floats(2 << 8, 1), DType::Complex128);
    let b = encode(&plain_floats(2 << 8, 2), DType::Complex128);
    let c = encode(&plain_floats(2 << 8, 3), DType::Complex128);
    let mut tx = repo.transaction("main").unwrap();
    tx.put("same_pack/a", &sv_info(8), &a, &PutOptions::default())
        .unwrap();
    tx.put("same_pack/b", &sv_info(8), &b, &PutOptions::default())
        .unwrap();
    tx.commit(Default::default()).unwrap();
    put_one(
        &repo,
        "other_pack/c",
        &sv_info(8),
        &c,
        &PutOptions::default(),
    )
    .unwrap();
    let (pack, offset) = chunk_location(&repo, "same_pack/a");
    flip(&root.join(&pack), offset + 56 + 100);
    let repo = Repository::open(repo.address()).unwrap();
    let err = repo
        .reader("main", "same_pack/a")
        .unwrap()
        .read_all()
        .unwrap_err();
    assert_eq!(err.category(), ErrorCategory::Corrupt, "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains("chunk") && msg.contains("same_pack/a") && msg.contains("hash mismatch"),
        "{msg}"
    );
    assert_eq!(
        repo.reader("main", "same_pack/b")
            .unwrap()
            .read_all()
            .unwrap(),
        b
    );
    assert_eq!(
        repo.reader("main", "other_pack/c")
            .unwrap()
            .read_all()
            .unwrap(),
        c
    );
}

#[test]
fn a_damaged_pack_index_or_a_truncated_pack_is_recovered_or_reported() {
    let (dir, repo) = local_repo(1024);
    let root = dir.path().join("repo");
    let a = encode(&plain_floats(2 << 8, 1), DType::Complex128);
    let b = encode(&plain_floats(2 << 8, 2), DType::Complex128);
    put_one(&repo, "first/a", &sv_info(8), &a, &PutOptions::default()).unwrap();
    repo.create_tag("v1", "main").unwrap();
    put_one(&repo, "second/b", &sv_info(8), &b, &PutOptions::default()).unwrap();
    let (pack, _) = chunk_location(&repo, "second/b");
    let file = root.join(&pack);
    let len = std::fs::metadata(&file).unwrap().len();
    // Damage the index (last 64 bytes are the footer; the index is just before it).
    flip(&file, len - 64 - 10);
    let repo2 = Repository::open(repo.address()).unwrap();
    assert_eq!(
        repo2.damaged_packs().len(),
        1,
        "the damaged index is noticed"
    );
    assert_eq!(
        repo2
            .reader("main", "second/b")
            .unwrap()
            .read_all()
            .unwrap(),
        b,
        "records recovered by scanning"
    );
    // Cut the pack in half: the newest commit is gone, the tagged one still reads.
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let repo3 = Repository::open(repo.address()).unwrap();
    let err = repo3
        .reader("main", "second/b")
        .err()
        .expect("head is damaged");
    assert_eq!(err.category(), ErrorCategory::Corrupt, "{err}");
    assert_eq!(
        repo3.reader("v1", "first/a").unwrap().read_all().unwrap(),
        a
    );
}

#[test]
fn unknown_format_versions_are_refused() {
    let (dir, repo) = local_repo(1024);
    let root = dir.path().join("repo");
    put_one(&repo, "s", &sv_info(4), &zeros(16), &PutOptions::default()).unwrap();
    // An object written by a future version.
    let head = repo.branch_head("main").unwrap();
    let (pack, off) = {
        // Find the commit record by scanning the pack index.
        let packs = repo.storage().list("packs/").unwrap();
        let mut found = None;
        for p in packs {
            let id = qstore::id::PackId::from_hex(
                p.key.trim_start_matches("packs/").trim_end_matches(".pack"),
            )
            .unwrap();
            let (entries, _) = qstore::format::pack::read_index(repo.storage(), id).unwrap();
            if let Some(e) = entries.iter().find(|e| e.id == head) {
                found = Some((p.key.clone(), e.offset));
            }
        }
        found.unwrap()
    };
    let f = OpenOptions::new()
        .write(true)
        .open(root.join(&pack))
        .unwrap();
    f.write_all_at(&[9], off + 5).unwrap();
    let repo2 = Repository::open(repo.address()).unwrap();
    let err = repo2.log("main", 1).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { version: 9, .. }),
        "{err}"
    );
    // A repository written by a future version.
    let cfg = root.join("config.json");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("\"format_version\": 4", "\"format_version\": 7");
    std::fs::write(&cfg, text).unwrap();
    let err = Repository::open(repo.address()).unwrap_err();
    assert!(
        matches!(err, Error::UnsupportedVersion { version: 7, .. }),
        "{err}"
    );
}
