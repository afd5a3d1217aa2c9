//! The cache layer and the pipelines: repeated reads hit the shared chunk cache; a state
//! vector too dense to hold back is stored dense in one pass; asynchronous checkpoints return
//! before they are written and are durable when awaited.

mod common;

use common::*;
use qstore::{CommitOptions, DType, Encoding, FnSource, PutOptions, Repository};

#[test]
fn repeated_reads_hit_the_chunk_cache() {
    let (_d, repo) = local_repo(64 << 10);
    let mut v = vec![0u8; 16 << 16]; // 1 MiB: 16 chunks, fits the 64 MiB cache
    noise_at(1, 0, &mut v);
    put_one(&repo, "s", &sv_info(16), &v, &PutOptions::default()).unwrap();
    let repo = Repository::open(repo.address()).unwrap();
    assert_eq!(repo.reader("main", "s").unwrap().read_all().unwrap(), v);
    let first = repo.cache_stats();
    assert_eq!((first.hits, first.misses), (0, 16));
    for _ in 0..3 {
        assert_eq!(repo.reader("main", "s").unwrap().top_k(1).unwrap().len(), 1);
    }
    let after = repo.cache_stats();
    assert_eq!(after.misses, 16, "no further misses");
    assert_eq!(after.hits, 48);
    assert!(repo.stats().unwrap().cache.hits >= 48);
    repo.set_cache_bytes(0);
    repo.reader("main", "s").unwrap().read_all().unwrap();
    assert_eq!(
        repo.cache_stats().hits,
        48,
        "a disabled cache serves nothing"
    );
}

#[test]
fn a_state_vector_too_dense_to_hold_back_is_stored_dense() {
    // 128 MiB with one non-zero amplitude per 64 KiB chunk: every chunk is non-zero, the
    // sparse form would be tiny, but holding back 128 MiB of chunks is over the limit.
    let (_d, repo) = local_repo(64 << 10);
    let n = 23;
    let src = FnSource::new(16 << n, |off, buf| {
        buf.fill(0);
        if off % (64 << 10) == 0 {
            buf[..8].copy_from_slice(&1.0f64.to_le_bytes());
        }
    });
    let mut tx = repo.transaction("main").unwrap();
    let e = tx
        .put_source("s", &sv_info(n), &src, &PutOptions::default())
        .unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    assert_eq!(e.encoding, Encoding::Dense);
    assert_eq!(e.norm, 2048.0);
    let mut r = repo.reader("main", "s").unwrap();
    let (idx, _) = r.read_sparse().unwrap();
    assert_eq!(idx.len(), 2048);
    assert!(idx.iter().enumerate().all(|(k, &i)| i == k as u64 * 4096));
    // The same state at 32 MiB is held back whole and stored sparse.
    let small = FnSource::new(16 << 21, |off, buf| {
        buf.fill(0);
        if off % (64 << 10) == 0 {
            buf[..8].copy_from_slice(&1.0f64.to_le_bytes());
        }
    });
    let mut tx = repo.transaction("main").unwrap();
    let e = tx
        .put_source("small", &sv_info(21), &small, &PutOptions::default())
        .unwrap();
    assert_eq!(e.encoding, Encoding::Sparse);
    assert_eq!(
        tx.stats().new_chunks,
        1,
        "only the sparse stream was stored"
    );
}

#[test]
fn an_async_checkpoint_returns_at_once_and_is_durable_when_waited_for() {
    let (_d, repo) = local_repo(1 << 20);
    let mut v = vec![0u8; 16 << 20];
    noise_at(3, 0, &mut v);
    let pending = repo
        .put_async(
            "main",
            "ckpt/0",
            &sv_info(20),
            &v,
            PutOptions::default(),
            CommitOptions::default(),
        )
        .unwrap();
    v.fill(0); // the caller may reuse its buffer at once: the state was staged
    let id = pending.wait().unwrap();
    assert_eq!(repo.branch_head("main").unwrap(), id);
    let mut expect = vec![0u8; 16 << 20];
    noise_at(3, 0, &mut expect);
    let again = Repository::open(repo.address()).unwrap();
    assert_eq!(
        again.reader("main", "ckpt/0").unwrap().read_all().unwrap(),
        expect
    );
    // Errors in the arguments come back at once, errors of the write when waited for.
    assert!(
        repo.put_async(
            "main",
            "../x",
            &sv_info(20),
            &expect,
            PutOptions::default(),
            CommitOptions::default()
        )
        .is_err()
    );
    let bad = repo
        .put_async(
            "nope",
            "x",
            &sv_info(20),
            &expect,
            PutOptions::default(),
            CommitOptions::default(),
        )
        .unwrap();
    assert!(matches!(bad.wait(), Err(qstore::Error::RefNotFound(_))));
}

#[tokio::test]
async fn async_checkpoints_can_be_awaited_in_tokio() {
    let repo = memory_repo(1 << 16);
    let mut handles = Vec::new();
    for i in 0..4u64 {
        let data = encode(&plain_floats(2 << 12, i), DType::Complex128);
        handles.push(
            repo.put_async(
                "main",
                &format!("ckpt/{i}"),
                &sv_info(12),
                &data,
                PutOptions::default(),
                CommitOptions::default(),
            )
            .unwrap(),
        );
    }
    for h in handles {
        h.await.unwrap();
    }
    let head = repo.branch_head("main").unwrap();
    assert_eq!(repo.list_states(&head, None).unwrap().len(), 4);
    assert_eq!(repo.log("main", 100).unwrap().len(), 5);
}
