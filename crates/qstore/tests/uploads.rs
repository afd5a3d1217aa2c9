//! States written in parts (`repo/upload.rs`): any part count and any part boundaries (not
//! chunk-aligned, parts smaller than a chunk, a part inside one chunk) give the state bit for
//! bit, whose chunks deduplicate against the same state put whole; parts written from
//! several threads and handles at once; completing twice gives one commit; bad parts are
//! refused with nothing committed; an unfinished upload commits nothing, its parts survive gc
//! while it is open and are reclaimed after an abort.

mod common;

use common::{local_repo, memory_repo, sv_info};
use qstore::repo::gc::GcOptions;
use qstore::repo::upload::block_range;
use qstore::{ArrayInfo, CommitOptions, DType, KindRequest, PutOptions, Repository};
use std::time::Duration;

fn state(n: usize, seed: u64) -> Vec<u8> {
    let mut v = common::noise_c128(n, seed);
    // Some zero stretches (zero chunks).
    v[16 * n / 4..16 * n / 4 + 16 * n / 8].fill(0);
    v
}

fn put_in_parts(
    repo: &Repository,
    path: &str,
    data: &[u8],
    n: u64,
    parts: u32,
) -> qstore::ObjectId {
    let id = repo
        .begin_upload(path, &sv_info(n.trailing_zeros()), KindRequest::Auto, parts)
        .unwrap();
    // Store the parts in a scrambled order.
    let mut order: Vec<u32> = (0..parts).collect();
    order.reverse();
    order.rotate_left((parts / 2) as usize);
    for k in order {
        let (s, e) = block_range(n, parts, k);
        repo.put_part(&id, k, &data[(s * 16) as usize..(e * 16) as usize])
            .unwrap();
    }
    repo.complete_upload(&id, "main", CommitOptions::default())
        .unwrap()
}

#[test]
fn any_part_count_gives_the_state_bit_for_bit_and_dedups_against_a_whole_put() {
    // Chunks of 1 KiB = 64 amplitudes; 2^12 amplitudes = 64 chunks.
    let repo = memory_repo(1024);
    let n = 1u64 << 12;
    let data = state(n as usize, 1);
    for parts in [1u32, 2, 3, 4, 7, 64, 100, 1000] {
        let path = format!("p{parts}");
        put_in_parts(&repo, &path, &data, n, parts);
        let mut r = repo.reader("main", &path).unwrap();
        assert_eq!(r.read_all().unwrap(), data, "{parts} parts");
        let e = r.entry().clone();
        assert_eq!(e.encoding.name(), "dense");
        let mut tx = repo.transaction("main").unwrap();
        tx.put(
            "whole",
            &sv_info(12),
            &data,
            &PutOptions {
                encoding: qstore::EncodingChoice::Dense,
                ..Default::default()
            },
        )
        .unwrap();
        // Every chunk of the whole put is already stored by the parts.
        assert_eq!(tx.stats().new_chunks, 0, "{parts} parts");
        drop(tx);
        let whole_norm: f64 = bytemuck::cast_slice::<u8, f64>(&data)
            .iter()
            .map(|x| x * x)
            .sum();
        assert!((e.norm - whole_norm).abs() < 1e-9);
    }
    assert!(repo.fsck(true).unwrap().healthy());
}

#[test]
fn parts_from_many_handles_at_once_and_completing_twice_is_one_commit() {
    let (_d, repo) = local_repo(4096);
    let n = 1u64 << 14;
    let data = state(n as usize, 2);
    let id = repo
        .begin_upload("sv", &sv_info(14), KindRequest::Auto, 6)
        .unwrap();
    let addr = repo.address().to_string();
    std::thread::scope(|s| {
        for k in 0..6u32 {
            let (addr, id, data) = (addr.clone(), id.clone(), &data);
            s.spawn(move || {
                let r = Repository::open(&addr).unwrap();
                let (a, b) = block_range(n, 6, k);
                r.put_part(&id, k, &data[(a * 16) as usize..(b * 16) as usize])
                    .unwrap();
            });
        }
    });
    let st = repo.uploads().unwrap();
    assert_eq!(st[0].parts_stored, vec![0, 1, 2, 3, 4, 5]);
    let c1 = repo
        .complete_upload(&id, "main", CommitOptions::default())
        .unwrap();
    let c2 = repo
        .complete_upload(&id, "main", CommitOptions::default())
        .unwrap();
    assert_eq!(c1, c2);
    assert_eq!(repo.log("main", 10).unwrap().len(), 2, "init + one commit");
    assert_eq!(repo.reader("main", "sv").unwrap().read_all().unwrap(), data);
    // A completed upload takes no more parts; gc removes its keys.
    assert!(repo.put_part(&id, 0, &data[..16]).is_err());
    let g = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert!(g.upload_keys_removed >= 8, "{g:?}");
    assert!(repo.uploads().unwrap().is_empty());
    assert_eq!(repo.reader("main", "sv").unwrap().read_all().unwrap(), data);
    assert!(repo.fsck(true).unwrap().healthy());
}

#[test]
fn bad_parts_are_refused_and_an_unfinished_upload_commits_nothing() {
    let (_d, repo) = local_repo(4096);
    let n = 1u64 << 12;
    let data = state(n as usize, 3);
    let id = repo
        .begin_upload("sv", &sv_info(12), KindRequest::Auto, 3)
        .unwrap();
    let (a, b) = block_range(n, 3, 1);
    let part = &data[(a * 16) as usize..(b * 16) as usize];
    assert!(
        repo.put_part(&id, 1, &part[16..])
            .unwrap_err()
            .to_string()
            .contains("holds elements")
    );
    assert!(repo.put_part(&id, 3, part).is_err());
    let mut nan = part.to_vec();
    nan[8..16].copy_from_slice(&f64::NAN.to_le_bytes());
    assert!(
        repo.put_part(&id, 1, &nan)
            .unwrap_err()
            .to_string()
            .contains("not finite")
    );
    assert!(repo.put_part("0123", 1, part).is_err());
    assert!(
        repo.begin_upload("x", &sv_info(2), KindRequest::Auto, 5)
            .is_err()
    );
    assert!(
        repo.begin_upload("x", &sv_info(2), KindRequest::Auto, 0)
            .is_err()
    );
    // Two of three parts: completing names the missing one; nothing is committed.
    repo.put_part(&id, 1, part).unwrap();
    let (a0, b0) = block_range(n, 3, 0);
    repo.put_part(&id, 0, &data[(a0 * 16) as usize..(b0 * 16) as usize])
        .unwrap();
    let e = repo
        .complete_upload(&id, "main", CommitOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("part 2 of 3 is not stored"), "{e}");
    assert_eq!(repo.log("main", 10).unwrap().len(), 1);
    // gc keeps the parts of the open upload (however old its packs are)...
    let packs = repo.storage().list_keys("packs/").unwrap().len();
    let g = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(g.packs_deleted, 0, "{g:?}");
    let (a2, b2) = block_range(n, 3, 2);
    repo.put_part(&id, 2, &data[(a2 * 16) as usize..(b2 * 16) as usize])
        .unwrap();
    // ...and after an abort, reclaims them.
    repo.abort_upload(&id).unwrap();
    assert!(
        repo.complete_upload(&id, "main", CommitOptions::default())
            .is_err()
    );
    let g = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert!(g.packs_deleted >= 1, "{g:?}");
    assert!(repo.storage().list_keys("packs/").unwrap().len() < packs + 1);
    assert_eq!(repo.stats().unwrap().chunk_objects, 0);
    assert!(repo.fsck(true).unwrap().healthy());
    // An abandoned upload (older than the time to live) is reclaimed too.
    let id = repo
        .begin_upload("sv", &sv_info(12), KindRequest::Auto, 1)
        .unwrap();
    repo.put_part(&id, 0, &data).unwrap();
    let g = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            upload_ttl: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert!(g.packs_deleted >= 1 && g.upload_keys_removed >= 2, "{g:?}");
}

#[test]
fn density_matrices_and_complex64_in_parts() {
    let repo = memory_repo(2048);
    let d = 32u64;
    let m = state((d * d) as usize, 4);
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![d, d],
    };
    // A Hermitian-looking trace: the diagonal's real parts.
    let id = repo
        .begin_upload("rho", &info, KindRequest::Array, 5)
        .unwrap();
    for k in 0..5 {
        let (a, b) = block_range(d * d, 5, k);
        repo.put_part(&id, k, &m[(a * 16) as usize..(b * 16) as usize])
            .unwrap();
    }
    repo.complete_upload(&id, "main", CommitOptions::default())
        .unwrap();
    assert_eq!(repo.reader("main", "rho").unwrap().read_all().unwrap(), m);
    let c: Vec<u8> = state(1 << 10, 5)
        .chunks(8)
        .flat_map(|b| (f64::from_le_bytes(b.try_into().unwrap()) as f32).to_le_bytes())
        .collect();
    let info = ArrayInfo {
        dtype: DType::Complex64,
        shape: vec![1 << 10],
    };
    let id = repo
        .begin_upload("c64", &info, KindRequest::Auto, 3)
        .unwrap();
    for k in 0..3 {
        let (a, b) = block_range(1 << 10, 3, k);
        repo.put_part(&id, k, &c[(a * 8) as usize..(b * 8) as usize])
            .unwrap();
    }
    repo.complete_upload(&id, "main", CommitOptions::default())
        .unwrap();
    assert_eq!(repo.reader("main", "c64").unwrap().read_all().unwrap(), c);
}
