//! Repositories of format version 1 (a fixture written by the version-1 writer): this build
//! reads them as they are, refuses to change them, and `Repository::upgrade` rewrites them as
//! version 4 (the current one) in place, keeping every commit id, after which they take new commits, gc and
//! fsck like any other; older builds refuse the upgraded repository.

use qstore::{ArrayInfo, CommitOptions, DType, Encoding, Error, GcOptions, PutOptions, Repository};
use std::path::Path;
use std::time::Duration;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), &dest).unwrap();
        }
    }
}

fn fixture() -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/v1/repo");
    let dest = dir.path().join("repo");
    copy_dir(&src, &dest);
    let addr = dest.to_str().unwrap().to_string();
    (dir, addr)
}

struct Expected {
    reference: String,
    commit: String,
    path: String,
    encoding: String,
    digest: String,
}

fn expected() -> Vec<Expected> {
    let text = include_str!("fixtures/v1/expected.tsv");
    text.lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            Expected {
                reference: f[0].to_string(),
                commit: f[1].to_string(),
                path: f[2].to_string(),
                encoding: f[3].to_string(),
                digest: f[4].to_string(),
            }
        })
        .collect()
}

/// Every state of the fixture reads back as the version-1 reader read it.
fn check_contents(repo: &Repository) {
    let rows = expected();
    assert_eq!(rows.len(), 29);
    for r in &rows {
        let name = r.reference.split('/').nth(1).unwrap();
        assert_eq!(
            repo.resolve(name).unwrap().to_hex(),
            r.commit,
            "{}",
            r.reference
        );
        let mut rd = repo.reader(&r.commit, &r.path).unwrap();
        assert_eq!(rd.entry().encoding.to_string(), r.encoding);
        let digest = if rd.entry().encoding == Encoding::Sparse {
            let (i, v) = rd.read_sparse().unwrap();
            let mut h = blake3::Hasher::new();
            for x in i {
                h.update(&x.to_le_bytes());
            }
            h.update(&v);
            h.finalize().to_hex().to_string()
        } else {
            blake3::hash(&rd.read_all().unwrap()).to_hex().to_string()
        };
        assert_eq!(digest, r.digest, "{} {}", r.reference, r.path);
    }
    let listed: Vec<String> = repo
        .list_states(&repo.resolve("exp").unwrap(), Some("traj"))
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(listed.len(), 20);
    assert_eq!(listed[0], "traj/t000");
    let log: Vec<String> = repo
        .log("main", 10)
        .unwrap()
        .into_iter()
        .map(|(_, c)| c.message)
        .collect();
    assert_eq!(
        log,
        ["drop ghz", "second", "first", "initialize repository"]
    );
    let d = repo.diff("v1", "main").unwrap();
    assert_eq!(d.len(), 3, "{d:?}");
}

#[test]
fn version_one_reads_as_it_is_and_refuses_changes() {
    let (_d, addr) = fixture();
    let repo = Repository::open(&addr).unwrap();
    assert!(repo.config().read_only());
    check_contents(&repo);
    assert!(repo.fsck(true).unwrap().healthy());
    let refused = [
        repo.transaction("main").err(),
        repo.create_branch("x", "main").err(),
        repo.gc(&GcOptions::default()).err(),
        repo.repack(false).err(),
    ];
    for e in refused {
        let e = e.expect("a change to a version-1 repository is refused");
        assert!(matches!(e, Error::ReadOnlyFormat { version: 1, .. }), "{e}");
        assert!(e.to_string().contains("qstore upgrade"), "{e}");
    }
    // Nothing changed on disk.
    let again = Repository::open(&addr).unwrap();
    assert!(again.config().read_only());
}

#[test]
fn upgrade_keeps_every_commit_and_the_repository_works_afterwards() {
    let (_d, addr) = fixture();
    let before: Vec<_> = Repository::open(&addr).unwrap().refs().unwrap();
    let report = Repository::upgrade(&addr).unwrap();
    assert_eq!((report.from_version, report.to_version), (1, 4));
    assert!(report.changed);
    assert_eq!(report.packs_converted, 5, "{report:?}");
    assert!(uuid_like(&report.repository_id), "{report:?}");

    let repo = Repository::open(&addr).unwrap();
    assert!(!repo.config().read_only());
    assert_eq!(repo.config().repository_id, report.repository_id);
    assert_eq!(repo.refs().unwrap(), before, "commit ids are kept");
    check_contents(&repo);
    assert!(repo.fsck(true).unwrap().healthy());
    for p in repo.storage().list("packs/").unwrap() {
        let mut h = [0u8; 16];
        repo.storage().read_at(&p.key, 0, &mut h).unwrap();
        assert_eq!(h[8], 2, "every pack is version 2");
    }
    // A version-1 build refuses it: its config now says version 4.
    let cfg = std::fs::read_to_string(Path::new(&addr).join("config.json")).unwrap();
    assert!(cfg.contains("\"format_version\": 4"), "{cfg}");

    // New commits build on the old trees.
    let mut tx = repo.transaction("exp").unwrap();
    tx.delete("traj/t003").unwrap();
    tx.put(
        "traj/t100",
        &ArrayInfo {
            dtype: DType::Complex128,
            shape: vec![4],
        },
        &[0u8; 64],
        &PutOptions::default(),
    )
    .unwrap();
    let c = tx.commit(CommitOptions::default()).unwrap();
    let states = repo.list_states(&c, None).unwrap();
    assert_eq!(states.len(), 23);
    assert!(states.iter().any(|(p, _)| p == "traj/t100"));
    assert!(!states.iter().any(|(p, _)| p == "traj/t003"));
    let d = repo.diff("main", "exp").unwrap();
    assert!(d.len() > 20, "{d:?}");
    repo.create_tag("after", "exp").unwrap();

    // gc keeps everything reachable, old trees included.
    let r = repo
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    // Merged into packs of the fixture's 4 KiB pack target.
    assert!(r.packs_after <= 5, "{r:?}");
    let fresh = Repository::open(&addr).unwrap();
    check_contents_after(&fresh);
    assert!(fresh.fsck(true).unwrap().healthy());
    // Upgrading again changes nothing.
    let again = Repository::upgrade(&addr).unwrap();
    assert!(!again.changed, "{again:?}");
}

fn check_contents_after(repo: &Repository) {
    for r in expected() {
        if r.reference == "branches/exp" {
            continue;
        }
        let rd = repo.reader(&r.commit, &r.path);
        assert!(rd.is_ok(), "{} {}", r.reference, r.path);
    }
    assert_eq!(
        repo.list_states(&repo.resolve("after").unwrap(), None)
            .unwrap()
            .len(),
        23
    );
}

fn uuid_like(s: &str) -> bool {
    s.len() == 36 && s.chars().filter(|c| *c == '-').count() == 4
}
