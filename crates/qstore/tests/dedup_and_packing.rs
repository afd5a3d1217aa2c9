//! Deduplication and packing: the same state under many paths costs (almost) nothing; a
//! family that differs in one chunk stores each shared chunk once; a 4 GiB state lives in a
//! handful of pack files.

mod common;

use common::*;
use qstore::{CommitOptions, FnSource, PutOptions, Repository};

/// Incompressible bytes as a function of their offset.
fn noise(salt: u64) -> impl Fn(u64, &mut [u8]) + Sync {
    move |offset, buf| noise_at(salt, offset, buf)
}

fn pack_bytes(repo: &Repository) -> u64 {
    repo.storage()
        .list("packs/")
        .unwrap()
        .iter()
        .map(|b| b.size)
        .sum()
}

#[test]
fn same_256_mib_state_under_ten_paths_grows_storage_by_under_one_percent() {
    let (_d, repo) = local_repo(1 << 20);
    let n = 24; // 2^24 complex128 = 256 MiB
    let src = FnSource::new(16 << n, noise(1));
    let mut tx = repo.transaction("main").unwrap();
    tx.put_source("copies/c0", &sv_info(n), &src, &PutOptions::default())
        .unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    let first = pack_bytes(&repo);
    assert!(
        first >= 256 << 20,
        "the first copy is stored ({first} bytes)"
    );
    for i in 1..10 {
        let mut tx = repo.transaction("main").unwrap();
        let e = tx
            .put_source(
                &format!("copies/c{i}"),
                &sv_info(n),
                &src,
                &PutOptions::default(),
            )
            .unwrap();
        let s = tx.stats();
        assert_eq!(s.new_chunks, 0, "copy {i} wrote no chunk");
        assert_eq!(s.dedup_chunks, 256);
        tx.commit(CommitOptions::default()).unwrap();
        assert_eq!(
            e.manifest,
            repo.state("main", "copies/c0").unwrap().1.manifest
        );
    }
    let after = pack_bytes(&repo);
    let growth = (after - first) as f64 / first as f64;
    assert!(
        growth < 0.01,
        "ten copies grew storage by {:.4}%",
        growth * 100.0
    );
    let back = repo
        .reader("main", "copies/c9")
        .unwrap()
        .read_all()
        .unwrap();
    let mut expect = vec![0u8; back.len()];
    noise(1)(0, &mut expect);
    assert!(back == expect, "copy 9 reads back bit-exact");
}

#[test]
fn a_family_that_differs_in_one_chunk_stores_each_shared_chunk_once() {
    let (_d, repo) = local_repo(64 << 10);
    let n = 16; // 1 MiB = 16 chunks of 64 KiB
    let mut base = vec![0u8; 16 << n];
    noise(7)(0, &mut base);
    let mut tx = repo.transaction("main").unwrap();
    let members = 12;
    for m in 0..members {
        let mut s = base.clone();
        // Member m changes chunk m (one chunk) and keeps the other 15.
        noise(100 + m as u64)(
            (m * (64 << 10)) as u64,
            &mut s[m * (64 << 10)..(m + 1) * (64 << 10)],
        );
        tx.put(
            &format!("family/m{m:02}"),
            &sv_info(n),
            &s,
            &PutOptions::default(),
        )
        .unwrap();
    }
    let s = tx.stats();
    tx.commit(CommitOptions::default()).unwrap();
    // 16 shared chunks stored once plus one changed chunk per member.
    assert_eq!(s.new_chunks, 16 + members as u64, "{s:?}");
    assert_eq!(s.dedup_chunks, (members * 16) as u64 - s.new_chunks);
    let st = repo.stats().unwrap();
    assert_eq!(st.chunk_objects, 16 + members as u64);
    assert!(st.dedup_ratio > 6.0, "{st:?}");
}

#[test]
fn a_4_gib_state_occupies_fewer_than_100_files() {
    let (_d, repo) = local_repo(1 << 20);
    let n = 28; // 2^28 complex128 = 4 GiB
    let src = FnSource::new(16 << n, noise(3));
    let mut tx = repo.transaction("main").unwrap();
    let e = tx
        .put_source("big/psi", &sv_info(n), &src, &PutOptions::default())
        .unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    assert_eq!(e.dense_bytes(), 4 << 30);
    let files = repo.storage().file_count().unwrap();
    assert!(files < 100, "{files} files for a 4 GiB state");
    // Spot-check a range far into the state.
    let mut r = repo.reader("main", "big/psi").unwrap();
    let mut got = vec![0u8; 16 * 1000];
    let start = (1u64 << 28) - 1000;
    r.read_elements(start, 1 << 28, &mut got).unwrap();
    let mut expect = vec![0u8; got.len()];
    noise(3)(start * 16, &mut expect);
    assert!(got == expect);
}
