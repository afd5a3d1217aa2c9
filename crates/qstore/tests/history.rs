//! History at scale, by counts (never times): a commit that touches one path writes and reads
//! O(log n) objects whatever the size of the tree, reading one path reads O(log n) objects,
//! thousands of commits leave a handful of files once small packs are merged, and many
//! branches and tags stay in one packed file.

mod common;

use common::*;
use qstore::{
    ArrayInfo, CommitOptions, DType, GcOptions, IoCounters, PutOptions, RepoConfig, Repository,
};
use std::time::Duration;

fn amp_info() -> ArrayInfo {
    sv_info(4)
}

/// A distinct 16-amplitude state for each `i`.
fn amps(i: u64) -> Vec<u8> {
    let mut v = vec![0f64; 32];
    v[0] = 1.0;
    v[1 + (i % 31) as usize] = (i as f64 + 1.0) * 1e-9;
    v[31] = (i / 31) as f64 * 1e-12;
    encode(&v, DType::Complex128)
}

/// A repository in `dir` with 4 KiB chunks and `merge_threshold`.
fn repo_at(dir: &tempfile::TempDir, merge_threshold: u32) -> Repository {
    let cfg = RepoConfig {
        chunk_size: 4096,
        merge_threshold,
        ..Default::default()
    };
    Repository::init(dir.path().join("repo").to_str().unwrap(), cfg).unwrap()
}

/// Fill `traj/` up to `n` entries in bulk commits of at most `batch`.
fn fill(repo: &Repository, from: u64, n: u64, batch: u64) {
    let mut i = from;
    while i < n {
        let mut tx = repo.transaction("main").unwrap();
        let end = (i + batch).min(n);
        for k in i..end {
            tx.put(
                &format!("traj/t{k:07}"),
                &amp_info(),
                &amps(k),
                &PutOptions::default(),
            )
            .unwrap();
        }
        tx.commit(CommitOptions {
            message: format!("bulk {i}..{end}"),
            ..Default::default()
        })
        .unwrap();
        i = end;
    }
}

/// Open the repository afresh (nothing cached) and commit one new path; returns what the
/// open and the commit read and wrote.
fn one_path_commit(address: &str, k: u64) -> IoCounters {
    let repo = Repository::open(address).unwrap();
    let mut tx = repo.transaction("main").unwrap();
    tx.put(
        &format!("traj/t{k:07}x"),
        &amp_info(),
        &amps(k + 1_000_000),
        &PutOptions::default(),
    )
    .unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    repo.io_counters()
}

fn depth(repo: &Repository) -> u64 {
    let head = repo.branch_head("main").unwrap();
    let root = repo.root_of(&head).unwrap();
    repo.tree_node(&root).unwrap().level as u64 + 1
}

#[test]
fn a_one_path_commit_reads_and_writes_log_n_objects_at_every_size() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_at(&dir, 16);
    let mut rows = Vec::new();
    let mut filled = 0;
    for n in [1_000u64, 10_000, 100_000] {
        fill(&repo, filled, n, 25_000);
        filled = n;
        let d = depth(&repo);
        let mut worst = IoCounters::default();
        for k in 0..12 {
            let c = one_path_commit(repo.address(), n * 10 + k * 7919);
            worst.tree_nodes_written = worst.tree_nodes_written.max(c.tree_nodes_written);
            worst.objects_written = worst.objects_written.max(c.objects_written);
            worst.objects_read = worst.objects_read.max(c.objects_read);
            worst.tree_nodes_read = worst.tree_nodes_read.max(c.tree_nodes_read);
            worst.pack_bytes_written = worst.pack_bytes_written.max(c.metadata_bytes_written());
        }
        rows.push((n, d, worst));
        // Nodes on the path, one more at a level where the new path splits a node.
        assert!(
            worst.tree_nodes_written <= 2 * d,
            "{n} entries, depth {d}: {worst:?}"
        );
        // Plus one chunk, one manifest and the commit.
        assert!(worst.objects_written <= 2 * d + 3, "{n}: {worst:?}");
        // The ref's commit, the nodes on a few root-to-leaf paths (the path rules and the
        // edit), nothing proportional to n.
        assert!(worst.objects_read <= 4 * d + 4, "{n}: {worst:?}");
        // Metadata bytes (pack_bytes_written holds the metadata here): at most 8 KiB.
        assert!(worst.pack_bytes_written <= 8 << 10, "{n}: {worst:?}");
    }
    // A hundred times more entries cost a level or two more, nothing else.
    let (small, big) = (&rows[0].2, &rows[2].2);
    assert!(
        big.tree_nodes_written <= small.tree_nodes_written + 4,
        "{rows:?}"
    );
    assert!(big.objects_read <= small.objects_read + 8, "{rows:?}");
}

#[test]
fn reading_one_path_reads_one_node_per_level() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_at(&dir, 16);
    fill(&repo, 0, 20_000, 20_000);
    let old = repo.branch_head("main").unwrap();
    fill(&repo, 20_000, 30_000, 5_000);
    let d = depth(&repo);
    for (spec, k) in [
        ("main", 25_123u64),
        (old.to_hex().as_str(), 17),
        ("main", 3),
    ] {
        let fresh = Repository::open(repo.address()).unwrap();
        let r = fresh.reader(spec, &format!("traj/t{k:07}")).unwrap();
        let c = fresh.io_counters();
        // The commit and one node per level (the reader also loads the manifest).
        assert!(c.objects_read <= d + 2, "depth {d}: {c:?}");
        assert!(c.tree_nodes_read <= d, "depth {d}: {c:?}");
        let mut r = r;
        assert_eq!(r.read_all().unwrap(), amps(k));
    }
}

#[test]
fn ls_and_diff_skip_unchanged_subtrees() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_at(&dir, 16);
    fill(&repo, 0, 20_000, 20_000);
    let mut tx = repo.transaction("main").unwrap();
    tx.put("other/a", &amp_info(), &amps(1), &PutOptions::default())
        .unwrap();
    tx.put("other/b", &amp_info(), &amps(2), &PutOptions::default())
        .unwrap();
    let before = repo.branch_head("main").unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    let fresh = Repository::open(repo.address()).unwrap();
    let head = fresh.branch_head("main").unwrap();
    let listed = fresh.list_states(&head, Some("other")).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(
        fresh.io_counters().tree_nodes_read <= 2 * depth(&fresh) + 2,
        "{:?}",
        fresh.io_counters()
    );
    let fresh = Repository::open(repo.address()).unwrap();
    let d = fresh.diff(&before.to_hex(), "main").unwrap();
    assert_eq!(d.len(), 2);
    // Two root-to-leaf paths per side at most, not 20,000 entries' worth of nodes.
    assert!(
        fresh.io_counters().tree_nodes_read <= 4 * depth(&fresh) + 4,
        "{:?}",
        fresh.io_counters()
    );
    // And a directory delete removes every state below it.
    let mut tx = repo.transaction("main").unwrap();
    tx.delete("traj").unwrap();
    let c = tx.commit(CommitOptions::default()).unwrap();
    assert_eq!(repo.state_count(&c).unwrap(), 2);
    assert_eq!(repo.state_count(&before).unwrap(), 20_000);
}

#[test]
fn thousands_of_commits_stay_a_handful_of_files_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_at(&dir, 8);
    let n = 5_000u64;
    for k in 0..n {
        let mut tx = repo.transaction("main").unwrap();
        tx.put(
            &format!("traj/t{k:05}"),
            &amp_info(),
            &amps(k),
            &PutOptions::default(),
        )
        .unwrap();
        tx.commit(CommitOptions::default()).unwrap();
        if k % 50 == 0 {
            let name = format!("b{k}");
            if k % 100 == 0 {
                repo.create_tag(&name, "main").unwrap();
            } else {
                repo.create_branch(&name, "main").unwrap();
            }
        }
    }
    let files = repo.storage().file_count().unwrap();
    assert!(files <= 64, "{files} files after {n} commits");
    let packs = repo.storage().list("packs/").unwrap().len();
    assert!(packs <= 24, "{packs} packs");
    assert_eq!(repo.refs().unwrap().len(), 101);
    let bytes: u64 = repo
        .storage()
        .list("packs/")
        .unwrap()
        .iter()
        .map(|b| b.size)
        .sum();
    // ~1 KiB of metadata per commit at this size, not the whole directory again.
    assert!(bytes < 40 << 20, "{bytes} bytes of packs");
    let fresh = Repository::open(repo.address()).unwrap();
    let head = fresh.branch_head("main").unwrap();
    let all = fresh.list_states(&head, None).unwrap();
    assert_eq!(all.len(), n as usize);
    for (k, (p, _)) in all.iter().enumerate() {
        assert_eq!(p, &format!("traj/t{k:05}"));
    }
    for k in 0..n {
        assert_eq!(
            fresh
                .reader("main", &format!("traj/t{k:05}"))
                .unwrap()
                .read_all()
                .unwrap(),
            amps(k)
        );
    }
    // Every commit of the history is whole.
    let log = fresh.log("main", usize::MAX).unwrap();
    assert_eq!(log.len(), n as usize + 1);
    assert_eq!(
        fresh.state_count(&log[2_000].0).unwrap(),
        n - 2_000,
        "an old commit still lists what it had"
    );
    assert!(fresh.fsck(true).unwrap().healthy());
    // gc with everything reachable deletes nothing and merges what is left.
    let r = fresh
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(r.objects_deleted, 0, "{r:?}");
    assert!(r.packs_after <= 2, "{r:?}");
    assert!(fresh.fsck(true).unwrap().healthy());
}

#[test]
fn repack_merges_small_packs_and_readers_with_old_locations_follow() {
    let dir = tempfile::tempdir().unwrap();
    let repo = repo_at(&dir, 0);
    let mut states = Vec::new();
    for k in 0..40u64 {
        let mut v = vec![0u8; 8 << 10];
        noise_at(k, 0, &mut v);
        put_one(
            &repo,
            &format!("s/{k}"),
            &sv_info(9),
            &v,
            &PutOptions::default(),
        )
        .unwrap();
        states.push(v);
    }
    assert!(repo.storage().list("packs/").unwrap().len() >= 40);
    let stale = Repository::open(repo.address()).unwrap();
    let r = repo.repack(false).unwrap();
    assert!(r.packs_merged >= 40, "{r:?}");
    assert_eq!(r.packs_after, 1, "{r:?}");
    assert_eq!(r.duplicates_dropped, 0, "{r:?}");
    // A handle opened before the merge reads every state through the moved chunks.
    for (k, v) in states.iter().enumerate() {
        assert_eq!(
            &stale
                .reader("main", &format!("s/{k}"))
                .unwrap()
                .read_all()
                .unwrap(),
            v
        );
    }
    assert!(repo.fsck(true).unwrap().healthy());
    // Nothing to do the second time.
    assert_eq!(repo.repack(false).unwrap().packs_merged, 0);
}
