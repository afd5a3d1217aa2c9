//! Lifecycle of intermediate states: scratch spaces (quota, memory then disk, reference
//! counted handles, pins, commit without rewriting), garbage collection, expire and fsck.

mod common;

use common::*;
use qstore::{
    CommitOptions, DType, Error, GcOptions, PutOptions, RepoConfig, Repository, ScratchOptions,
};
use std::path::Path;
use std::time::Duration;

fn noise(salt: u64, buf: &mut [u8]) {
    noise_at(salt, 0, buf)
}

fn files_and_bytes(dir: &Path) -> (Vec<String>, u64) {
    let mut names = Vec::new();
    let mut bytes = 0;
    fn walk(d: &Path, base: &Path, names: &mut Vec<String>, bytes: &mut u64) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, base, names, bytes);
            } else {
                names.push(p.strip_prefix(base).unwrap().display().to_string());
                *bytes += e.metadata().unwrap().len();
            }
        }
    }
    walk(dir, dir, &mut names, &mut bytes);
    names.sort();
    (names, bytes)
}

#[test]
fn two_thousand_trajectories_go_through_a_bounded_scratch_space() {
    let (dir, repo) = local_repo(1 << 20);
    let root = dir.path().join("repo");
    let before = files_and_bytes(&root);
    let n = 18; // 4 MiB state vectors, 4 chunks each
    let len = 16usize << n;
    let mut base = vec![0u8; len];
    noise(1, &mut base);
    let quota = 32u64 << 20;
    let s = repo
        .scratch(ScratchOptions {
            quota,
            memory_budget: 8 << 20,
            segment_bytes: 8 << 20,
            ..Default::default()
        })
        .unwrap();
    let mut window = std::collections::VecDeque::new();
    let mut logical = 0u64;
    let mut max_files = 0;
    let mut traj = base.clone();
    for t in 0..2000u64 {
        traj.copy_from_slice(&base);
        if t % 4 != 0 {
            let c = (t % 4) as usize;
            noise(1000 + t, &mut traj[c << 20..(c + 1) << 20]);
        }
        let h = s.put(&sv_info(n), &traj, &PutOptions::default()).unwrap();
        logical += len as u64;
        if t % 250 == 7 {
            h.pin().unwrap();
        }
        window.push_back(h);
        if window.len() > 6 {
            window.pop_front();
        }
        let u = s.usage();
        assert!(u.total() <= quota, "quota exceeded at {t}: {u:?}");
        let files = files_and_bytes(&root).0.len();
        max_files = max_files.max(files);
    }
    assert!(
        logical > 100 * quota,
        "the workload is far larger than the quota"
    );
    assert!(
        max_files <= before.0.len() + 6,
        "repository files stayed bounded ({max_files})"
    );
    // Pinned states survive their handles; the last window is still readable.
    drop(window);
    let pinned = s.pinned();
    assert_eq!(pinned.len(), 8);
    for h in &pinned {
        assert_eq!(h.read_all().unwrap().len(), len);
    }
    drop(pinned);
    drop(s);
    let after = files_and_bytes(&root);
    assert_eq!(
        after, before,
        "no file left behind, disk usage back to where it was"
    );
}

#[test]
fn handles_pins_and_commits_from_scratch() {
    let (_d, repo) = local_repo(64 << 10);
    let s = repo
        .scratch(ScratchOptions {
            quota: 16 << 20,
            memory_budget: 256 << 10,
            ..Default::default()
        })
        .unwrap();
    let mk = |salt| {
        let mut v = vec![0u8; 16 << 15];
        noise(salt, &mut v);
        v
    };
    let (a, b, c) = (mk(1), mk(2), mk(3));
    let ha = s.put(&sv_info(15), &a, &PutOptions::default()).unwrap();
    let hb = s.put(&sv_info(15), &b, &PutOptions::default()).unwrap();
    let hc = s.put(&sv_info(15), &c, &PutOptions::default()).unwrap();
    assert!(
        s.usage().disk_bytes > 0,
        "beyond the memory budget, states spill to disk"
    );
    ha.pin().unwrap();
    let live = |s: &qstore::Scratch| {
        let u = s.usage();
        u.memory_bytes + u.disk_live_bytes
    };
    let used = live(&s);
    let hb2 = hb.clone();
    drop(hb);
    assert_eq!(live(&s), used, "a second handle keeps the state");
    drop(hb2);
    assert_eq!(live(&s), used - (16 << 15), "the last handle frees it");
    drop(ha);
    assert_eq!(
        s.pinned()[0].read_all().unwrap(),
        a,
        "pinned survives its scope"
    );
    let mut tx = repo.transaction("main").unwrap();
    let e = tx.put_from_scratch("kept/c", &hc).unwrap();
    let st = tx.stats();
    assert_eq!(st.new_chunks, 8);
    tx.commit(CommitOptions::default()).unwrap();
    assert_eq!(e.dense_bytes(), c.len() as u128);
    for h in s.pinned() {
        h.unpin().unwrap();
    }
    assert!(s.pinned().is_empty());
    drop(hc);
    assert_eq!(s.usage().states, 0);
    drop(s);
    assert_eq!(
        repo.reader("main", "kept/c").unwrap().read_all().unwrap(),
        c,
        "committed state outlives the scratch space"
    );
    assert!(repo.fsck(true).unwrap().healthy());
}

#[test]
fn a_put_past_the_quota_fails_and_changes_nothing() {
    let repo = memory_repo(64 << 10);
    let s = repo
        .scratch(ScratchOptions {
            quota: 1 << 20,
            memory_budget: 1 << 20,
            ..Default::default()
        })
        .unwrap();
    let mut small = vec![0u8; 16 << 14];
    noise(5, &mut small);
    let h = s.put(&sv_info(14), &small, &PutOptions::default()).unwrap();
    let before = s.usage();
    let mut big = vec![0u8; 16 << 16];
    noise(6, &mut big);
    let err = s
        .put(&sv_info(16), &big, &PutOptions::default())
        .err()
        .unwrap();
    assert!(
        matches!(err, Error::QuotaExceeded { quota, .. } if quota == 1 << 20),
        "{err}"
    );
    assert_eq!(err.category(), qstore::ErrorCategory::QuotaExceeded);
    assert_eq!(s.usage(), before, "nothing of the failed put remains");
    assert_eq!(h.read_all().unwrap(), small);
}

#[test]
fn gc_reclaims_overwritten_states_and_keeps_everything_reachable() {
    let (_d, repo) = local_repo(4096);
    let mut v = vec![0u8; 16 << 12];
    put_one(&repo, "main/psi", &sv_info(12), &v, &PutOptions::default()).unwrap();
    repo.create_branch("work", "main").unwrap();
    for round in 0..5u64 {
        noise(round, &mut v);
        let mut tx = repo.transaction("work").unwrap();
        tx.put("run/psi", &sv_info(12), &v, &PutOptions::default())
            .unwrap();
        tx.commit(CommitOptions::default()).unwrap();
        if round == 1 {
            repo.create_tag("keep", "work").unwrap();
        }
    }
    // Versions 2..4 become unreachable when the branch goes; the tag keeps 0 and 1.
    repo.delete_ref(&qstore::RefName::branch("work").unwrap())
        .unwrap();
    let total = |r: &Repository| {
        r.storage()
            .list("packs/")
            .unwrap()
            .iter()
            .map(|b| b.size)
            .sum::<u64>()
    };
    let before = total(&repo);
    let dry = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            dry_run: true,
            ..Default::default()
        })
        .unwrap();
    assert!(dry.bytes_freed > 0);
    assert_eq!(total(&repo), before, "dry run changes nothing");
    let young = repo.gc(&GcOptions::default()).unwrap();
    assert_eq!(
        young.bytes_freed, 0,
        "within the grace period nothing is touched"
    );
    let r = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert!(
        r.bytes_freed > 0 && r.packs_deleted + r.packs_rewritten > 0,
        "{r:?}"
    );
    assert!(
        total(&repo) < before / 2,
        "three of five versions reclaimed"
    );
    noise(1, &mut v);
    assert_eq!(
        repo.reader("keep", "run/psi").unwrap().read_all().unwrap(),
        v,
        "the tag keeps its version"
    );
    let f = repo.fsck(true).unwrap();
    assert!(f.healthy(), "{:?}", f.problems);
    // Another process with an old index still reads (locations are hints, ids the truth).
    let again = Repository::open(repo.address()).unwrap();
    assert_eq!(again.log("keep", 100).unwrap().len(), 4);
    assert_eq!(
        again
            .reader("main", "main/psi")
            .unwrap()
            .read_all()
            .unwrap()
            .len(),
        16 << 12
    );
}

#[test]
fn expire_cuts_history_and_gc_reclaims_it_while_tags_keep_theirs() {
    let (_d, repo) = local_repo(4096);
    let mut v = vec![0u8; 16 << 12];
    for round in 0..4u64 {
        noise(round, &mut v);
        put_one(&repo, "run/psi", &sv_info(12), &v, &PutOptions::default()).unwrap();
        if round == 0 {
            repo.create_tag("first", "main").unwrap();
        }
    }
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(
        repo.expire("main", Duration::from_secs(3600)).unwrap(),
        0,
        "nothing is that old"
    );
    let cut = repo.expire("main", Duration::ZERO).unwrap();
    assert_eq!(cut, 4);
    assert_eq!(repo.log("main", 100).unwrap().len(), 1);
    let r = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert!(r.objects_deleted > 0);
    assert_eq!(
        repo.reader("main", "run/psi").unwrap().read_all().unwrap(),
        v
    );
    noise(0, &mut v);
    assert_eq!(
        repo.reader("first", "run/psi").unwrap().read_all().unwrap(),
        v
    );
    assert!(repo.fsck(true).unwrap().healthy());
}

fn one_object_per_pack_repo() -> (tempfile::TempDir, Repository) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("repo");
    let repo = Repository::init(
        p.to_str().unwrap(),
        RepoConfig {
            chunk_size: 1024,
            pack_target_bytes: 1024,
            // Keep one object per pack: no automatic merges.
            merge_threshold: 0,
            ..Default::default()
        },
    )
    .unwrap();
    (dir, repo)
}

fn chunk_pack(repo: &Repository, path: &str) -> (String, u64) {
    let (_, e) = repo.state("main", path).unwrap();
    match repo.manifest(&e.manifest).unwrap().chunks[0] {
        qstore::format::manifest::ChunkRef::Stored { location, .. } => {
            (location.pack.key(), location.offset)
        }
        _ => panic!("zero chunk"),
    }
}

#[test]
fn fsck_names_missing_and_corrupt_chunks_dangling_refs_and_truncated_packs() {
    let (dir, repo) = one_object_per_pack_repo();
    let root = dir.path().join("repo");
    let data = |s| encode(&plain_floats(2 << 8, s), DType::Complex128);
    for (i, p) in ["a/missing", "a/corrupt", "a/truncated", "a/fine"]
        .iter()
        .enumerate()
    {
        put_one(
            &repo,
            p,
            &sv_info(8),
            &data(i as u64),
            &PutOptions::default(),
        )
        .unwrap();
    }
    assert!(repo.fsck(true).unwrap().healthy());
    let (missing_pack, _) = chunk_pack(&repo, "a/missing");
    let (corrupt_pack, off) = chunk_pack(&repo, "a/corrupt");
    let (trunc_pack, _) = chunk_pack(&repo, "a/truncated");
    std::fs::remove_file(root.join(&missing_pack)).unwrap();
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(root.join(&corrupt_pack))
        .unwrap();
    use std::os::unix::fs::FileExt;
    let mut b = [0u8; 1];
    f.read_exact_at(&mut b, off + 56 + 7).unwrap();
    f.write_all_at(&[b[0] ^ 1], off + 56 + 7).unwrap();
    let tf = std::fs::OpenOptions::new()
        .write(true)
        .open(root.join(&trunc_pack))
        .unwrap();
    tf.set_len(200).unwrap();
    std::fs::write(
        root.join("refs/branches/dangling"),
        format!("{}\n", "ab".repeat(32)),
    )
    .unwrap();
    let repo = Repository::open(repo.address()).unwrap();
    let r = repo.fsck(true).unwrap();
    let has = |kind: &str, path: Option<&str>| {
        r.problems.iter().any(|p| {
            p.kind == kind
                && (path.is_none() || p.path.as_deref() == path)
                && (path.is_none() || p.commit.is_some())
        })
    };
    assert!(has("missing", Some("a/missing")), "{:#?}", r.problems);
    assert!(has("corrupt", Some("a/corrupt")), "{:#?}", r.problems);
    assert!(has("damaged-pack", None), "{:#?}", r.problems);
    assert!(
        r.problems
            .iter()
            .any(|p| p.path.as_deref() == Some("a/truncated")),
        "{:#?}",
        r.problems
    );
    assert!(has("dangling-ref", None), "{:#?}", r.problems);
    assert!(
        !r.problems
            .iter()
            .any(|p| p.path.as_deref() == Some("a/fine"))
    );
    // Without --full the corrupt payload is not read, but the rest is still found.
    let quick = repo.fsck(false).unwrap();
    assert!(
        quick
            .problems
            .iter()
            .any(|p| p.kind == "missing" && p.path.as_deref() == Some("a/missing"))
    );
}

#[test]
fn a_reader_with_a_stale_index_follows_chunks_into_rewritten_packs() {
    let (_d, repo) = local_repo(4096);
    let (mut x, mut y) = (vec![0u8; 16 << 10], vec![0u8; 16 << 10]);
    noise(1, &mut x);
    noise(2, &mut y);
    let mut a = repo.transaction("main").unwrap();
    let mut b = repo.transaction("main").unwrap();
    a.put("x", &sv_info(10), &x, &PutOptions::default())
        .unwrap();
    b.put("y", &sv_info(10), &y, &PutOptions::default())
        .unwrap();
    a.commit(CommitOptions::default()).unwrap();
    // b is rebased: its first tree and commit, in the same pack as y's chunks, become garbage.
    b.commit(CommitOptions::default()).unwrap();
    let stale = Repository::open(repo.address()).unwrap();
    let r = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            repack_threshold: 0.0,
            ..Default::default()
        })
        .unwrap();
    assert!(r.packs_rewritten >= 1, "{r:?}");
    assert_eq!(stale.reader("main", "y").unwrap().read_all().unwrap(), y);
    assert_eq!(stale.reader("main", "x").unwrap().read_all().unwrap(), x);
    assert!(repo.fsck(true).unwrap().healthy());
}

/// An init killed after it claimed its ref store but before its config landed is completed
/// by the next init of the same location, with the same id; a ref store claimed by another
/// repository is still refused.
#[test]
fn an_interrupted_init_is_completed_by_the_next_one() {
    use qstore::coord::Coordination;
    use qstore::coord::memory::MemoryCoordination;
    use qstore::storage::Storage;
    use qstore::storage::memory::MemoryStorage;
    use std::sync::Arc;
    let storage: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let coord: Arc<dyn Coordination> = Arc::new(MemoryCoordination::default());
    let first = Repository::init_parts(
        "memory://halfway",
        storage.clone(),
        coord.clone(),
        RepoConfig::default(),
    )
    .unwrap();
    let id = first.config().repository_id.clone();
    let main = first.branch_head("main").unwrap();
    assert!(
        storage.get("init.json").is_err(),
        "the marker goes once the config lands"
    );
    // The crash: everything but the config (and the marker still there).
    storage.delete("config.json").unwrap();
    storage
        .put(
            "init.json",
            format!("{{\"repository_id\":\"{id}\"}}").as_bytes(),
            qstore::storage::PutMode::Overwrite,
        )
        .unwrap();
    assert!(matches!(
        Repository::open_parts("memory://halfway", storage.clone(), coord.clone()),
        Err(qstore::Error::RepositoryNotFound(_))
    ));
    let again = Repository::init_parts(
        "memory://halfway",
        storage.clone(),
        coord.clone(),
        RepoConfig::default(),
    )
    .unwrap();
    assert_eq!(again.config().repository_id, id);
    assert_eq!(again.branch_head("main").unwrap(), main);
    assert!(again.fsck(true).unwrap().healthy());
    // Without a marker of its own, another location cannot take a claimed ref store.
    let elsewhere: Arc<dyn Storage> = Arc::new(MemoryStorage::default());
    let e = Repository::init_parts("memory://other", elsewhere, coord, RepoConfig::default())
        .unwrap_err();
    assert!(
        matches!(
            e,
            qstore::Error::RefStoreMismatch { .. } | qstore::Error::RepositoryExists(_)
        ),
        "{e}"
    );
}
