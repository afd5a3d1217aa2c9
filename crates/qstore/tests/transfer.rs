//! Moving history between repositories: clone, push, pull (the engine's `transfer`).

mod common;

use common::{local_repo, plain_floats, put_one, snapshot, sv_info};
use qstore::repo::{PutOptions, RefChange, TransferOptions};
use qstore::{CommitOptions, Error, ErrorCategory, Repository};

fn bytes(vals: &[f64]) -> Vec<u8> {
    vals.iter().flat_map(|v| v.to_le_bytes()).collect()
}

fn push_all(src: &Repository, dst: &Repository) -> qstore::repo::TransferReport {
    src.push(dst.address(), &[], &TransferOptions::default())
        .unwrap()
}

#[test]
fn clone_copies_every_ref_and_state_bit_exactly() {
    let (_d, src) = local_repo(4096);
    let a = bytes(&plain_floats(2 * 4096, 1));
    put_one(&src, "run/a", &sv_info(12), &a, &PutOptions::default()).unwrap();
    put_one(&src, "run/b", &sv_info(12), &a, &PutOptions::default()).unwrap();
    src.create_tag("v1", "main").unwrap();
    src.create_branch("side", "main").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("copy");
    let (dst, r) = src
        .clone_to(to.to_str().unwrap(), &TransferOptions::default())
        .unwrap();
    assert_eq!(snapshot(&src), snapshot(&dst));
    assert_eq!(dst.reader("v1", "run/b").unwrap().read_all().unwrap(), a);
    assert_eq!(dst.config().chunk_size, 4096);
    assert_ne!(dst.config().repository_id, src.config().repository_id);
    assert_eq!(dst.remotes().unwrap()["origin"], src.address());
    // main moves on from the new repository's empty first commit; the rest are new.
    for u in &r.refs {
        let want = if u.name == "main" {
            RefChange::FastForward
        } else {
            RefChange::Created
        };
        assert_eq!(u.change, want, "{}", u.name);
    }
    // Deduplicated on the way: run/b repeats run/a.
    assert_eq!(r.chunks_sent, 16);
    assert!(dst.fsck(true).unwrap().healthy());
    // Nothing moves the second time.
    let again = push_all(&src, &dst);
    assert_eq!(again.objects_sent, 0);
    assert!(again.refs.iter().all(|u| u.change == RefChange::UpToDate));
}

#[test]
fn a_push_sends_only_what_changed_and_moves_forward() {
    let (_d, src) = local_repo(4096);
    let (_e, dst) = local_repo(4096);
    let mut v = plain_floats(2 * 4096, 2);
    put_one(&src, "s", &sv_info(12), &bytes(&v), &PutOptions::default()).unwrap();
    push_all(&src, &dst);
    v[5] = 0.25; // one chunk changes
    put_one(&src, "s", &sv_info(12), &bytes(&v), &PutOptions::default()).unwrap();
    let r = src
        .push(dst.address(), &["main".into()], &TransferOptions::default())
        .unwrap();
    assert_eq!(r.chunks_sent, 1);
    assert_eq!(r.commits_sent, 1);
    assert_eq!(r.refs[0].change, RefChange::FastForward);
    assert!(r.bytes_sent < 4096 + 4096, "{} bytes sent", r.bytes_sent);
    assert_eq!(
        dst.reader("main", "s").unwrap().read_all().unwrap(),
        bytes(&v)
    );
    assert_eq!(
        src.branch_head("main").unwrap(),
        dst.branch_head("main").unwrap()
    );
}

#[test]
fn a_push_that_would_drop_commits_is_refused_unless_forced() {
    let (_d, src) = local_repo(4096);
    let (_e, dst) = local_repo(4096);
    let v = bytes(&plain_floats(64, 3));
    put_one(&src, "a", &sv_info(5), &v, &PutOptions::default()).unwrap();
    push_all(&src, &dst);
    // Someone commits on the destination; the source moves on too.
    put_one(&dst, "theirs", &sv_info(5), &v, &PutOptions::default()).unwrap();
    put_one(&src, "mine", &sv_info(5), &v, &PutOptions::default()).unwrap();
    let theirs = dst.branch_head("main").unwrap();
    let e = src
        .push(dst.address(), &["main".into()], &TransferOptions::default())
        .unwrap_err();
    assert!(matches!(e, Error::NotFastForward { .. }), "{e}");
    assert_eq!(e.category(), ErrorCategory::Conflict);
    assert!(e.to_string().contains("not a fast-forward"), "{e}");
    assert_eq!(dst.branch_head("main").unwrap(), theirs, "nothing moved");
    // Pull theirs, merge by committing on top... here: force.
    let r = src
        .push(
            dst.address(),
            &["main".into()],
            &TransferOptions {
                force: true,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(r.refs[0].change, RefChange::Forced);
    assert_eq!(
        dst.branch_head("main").unwrap(),
        src.branch_head("main").unwrap()
    );
}

#[test]
fn pull_brings_a_branch_under_another_name_and_tags_do_not_move() {
    let (_d, a) = local_repo(4096);
    let (_e, b) = local_repo(4096);
    let v = bytes(&plain_floats(64, 4));
    put_one(&a, "x", &sv_info(5), &v, &PutOptions::default()).unwrap();
    a.create_tag("good", "main").unwrap();
    b.add_remote("alice", a.address(), false).unwrap();
    let r = b
        .pull(
            "alice",
            &["main:alice-main".into(), "good".into()],
            &TransferOptions::default(),
        )
        .unwrap();
    assert_eq!(r.refs.len(), 2);
    assert_eq!(
        b.resolve("alice-main").unwrap(),
        a.branch_head("main").unwrap()
    );
    assert_eq!(b.resolve("good").unwrap(), a.resolve("good").unwrap());
    // A different tag of the same name on the destination is not replaced.
    let mut tx = a.transaction("main").unwrap();
    tx.put("y", &sv_info(5), &v, &PutOptions::default())
        .unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    a.delete_ref(&qstore::RefName::tag("good").unwrap()).ok();
    a.create_tag("good", "main").unwrap();
    let e = b
        .pull("alice", &["good".into()], &TransferOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("tags do not move"), "{e}");
}

#[test]
fn an_unknown_remote_or_ref_is_a_clear_error() {
    let (_d, a) = local_repo(4096);
    let e = a
        .push("nowhere", &[], &TransferOptions::default())
        .unwrap_err();
    assert!(e.to_string().contains("no remote named \"nowhere\""), "{e}");
    let (_e, b) = local_repo(4096);
    let e = a
        .push(
            b.address(),
            &["no-such-branch".into()],
            &TransferOptions::default(),
        )
        .unwrap_err();
    assert!(matches!(e, Error::RefNotFound(_)), "{e}");
    assert!(a.add_remote("../bad", "x", false).is_err());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Whatever bytes `remotes.json` holds, reading the remotes gives them or a Corrupt error
    /// naming the file, never a panic; adding a remote then fails the same way, changing
    /// nothing.
    #[test]
    fn any_remotes_file_is_read_or_refused(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
        let (dir, repo) = local_repo(4096);
        let file = dir.path().join("repo").join("remotes.json");
        std::fs::write(&file, &bytes).unwrap();
        match repo.remotes() {
            Ok(_) => {}
            Err(e) => {
                proptest::prop_assert_eq!(e.category(), ErrorCategory::Corrupt);
                proptest::prop_assert!(e.to_string().contains("remotes.json"));
                proptest::prop_assert!(repo.add_remote("x", "/somewhere", false).is_err());
                proptest::prop_assert_eq!(std::fs::read(&file).unwrap(), bytes);
            }
        }
    }
}

#[test]
fn damage_in_the_source_is_not_spread_and_moves_nothing() {
    let (d, src) = local_repo(4096);
    let (_e, dst) = local_repo(4096);
    put_one(
        &src,
        "s",
        &sv_info(12),
        &bytes(&plain_floats(2 * 4096, 8)),
        &PutOptions::default(),
    )
    .unwrap();
    let before = dst.branch_head("main").unwrap();
    // Flip a byte in the middle of the source's biggest pack (a chunk payload).
    let packs = d.path().join("repo").join("packs");
    let pack = std::fs::read_dir(&packs)
        .unwrap()
        .map(|e| e.unwrap().path())
        .max_by_key(|p| std::fs::metadata(p).unwrap().len())
        .unwrap();
    let mut b = std::fs::read(&pack).unwrap();
    let mid = b.len() / 2;
    b[mid] ^= 0x40;
    std::fs::write(&pack, b).unwrap();
    let e = src
        .push(dst.address(), &[], &TransferOptions::default())
        .unwrap_err();
    assert_eq!(e.category(), ErrorCategory::Corrupt, "{e}");
    assert_eq!(dst.branch_head("main").unwrap(), before);
    assert!(dst.fsck(true).unwrap().healthy());
}
