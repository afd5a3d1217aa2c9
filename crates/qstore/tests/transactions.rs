//! Transactions and refs: atomic multi-path commits, automatic rebase over disjoint
//! concurrent commits, typed conflicts over overlapping ones, branches, tags, log, diff, and a
//! model-based check that the engine agrees with a plain map after any sequence of operations.

mod common;

use common::*;
use proptest::prelude::*;
use qstore::{CommitOptions, DType, DiffEntry, Error, PutOptions, StateReader};
use std::collections::BTreeMap;

fn state(n: u32, seed: u64) -> Vec<u8> {
    encode(&plain_floats(2 << n, seed), DType::Complex128)
}

#[test]
fn a_transaction_puts_and_deletes_many_paths_at_once() {
    let repo = memory_repo(1024);
    let mut tx = repo.transaction("main").unwrap();
    for i in 0..5 {
        tx.put(
            &format!("run/a/s{i}"),
            &sv_info(6),
            &state(6, i),
            &PutOptions::default(),
        )
        .unwrap();
    }
    tx.put("run/b/x", &sv_info(6), &state(6, 9), &PutOptions::default())
        .unwrap();
    let before = repo.branch_head("main").unwrap();
    assert_eq!(
        repo.list_states(&before, None).unwrap().len(),
        0,
        "nothing visible before commit"
    );
    let c1 = tx
        .commit(CommitOptions {
            message: "six states".into(),
            author: "tester".into(),
            metadata: [("step".to_string(), "1".to_string())].into(),
        })
        .unwrap();
    assert_eq!(repo.list_states(&c1, None).unwrap().len(), 6);
    let mut tx = repo.transaction("main").unwrap();
    tx.delete("run/a").unwrap();
    let c2 = tx.commit(CommitOptions::default()).unwrap();
    let left: Vec<String> = repo
        .list_states(&c2, None)
        .unwrap()
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert_eq!(left, vec!["run/b/x"]);
    let log = repo.log("main", 10).unwrap();
    assert_eq!(log.len(), 3);
    assert_eq!(log[1].1.metadata["step"], "1");
    assert_eq!(log[1].1.author, "tester");
}

#[test]
fn disjoint_concurrent_commits_are_rebased_and_overlapping_ones_conflict() {
    let repo = memory_repo(1024);
    let mut a = repo.transaction("main").unwrap();
    let mut b = repo.transaction("main").unwrap();
    let mut c = repo.transaction("main").unwrap();
    a.put("x/a", &sv_info(4), &state(4, 1), &PutOptions::default())
        .unwrap();
    b.put("x/b", &sv_info(4), &state(4, 2), &PutOptions::default())
        .unwrap();
    c.put("x/a", &sv_info(4), &state(4, 3), &PutOptions::default())
        .unwrap();
    let ca = a.commit(CommitOptions::default()).unwrap();
    let cb = b.commit(CommitOptions::default()).unwrap();
    assert_eq!(
        repo.commit(&cb).unwrap().parents,
        vec![ca],
        "b was rebased onto a"
    );
    let head = repo.branch_head("main").unwrap();
    assert_eq!(repo.list_states(&head, None).unwrap().len(), 2);
    let err = c.commit(CommitOptions::default()).unwrap_err();
    match &err {
        Error::Conflict { paths, .. } => assert_eq!(paths, &vec!["x/a".to_string()]),
        e => panic!("expected a conflict, got {e}"),
    }
    assert_eq!(err.category(), qstore::ErrorCategory::Conflict);
    assert_eq!(
        repo.branch_head("main").unwrap(),
        head,
        "the failed commit changed nothing"
    );
    assert_eq!(
        repo.reader("main", "x/a").unwrap().read_all().unwrap(),
        state(4, 1)
    );
}

#[test]
fn branches_tags_log_and_diff() {
    let repo = memory_repo(1024);
    put_one(
        &repo,
        "s/keep",
        &sv_info(8),
        &state(8, 1),
        &PutOptions::default(),
    )
    .unwrap();
    put_one(
        &repo,
        "s/change",
        &sv_info(8),
        &state(8, 2),
        &PutOptions::default(),
    )
    .unwrap();
    put_one(
        &repo,
        "s/gone",
        &sv_info(8),
        &state(8, 3),
        &PutOptions::default(),
    )
    .unwrap();
    repo.create_tag("v1", "main").unwrap();
    repo.create_branch("exp1", "v1").unwrap();
    assert!(matches!(
        repo.create_tag("v1", "main"),
        Err(Error::RefExists(_))
    ));
    let mut changed = state(8, 2);
    changed[0..16].copy_from_slice(&[0u8; 16]); // one amplitude changes: one chunk
    let mut tx = repo.transaction("exp1").unwrap();
    tx.put("s/change", &sv_info(8), &changed, &PutOptions::default())
        .unwrap();
    tx.delete("s/gone").unwrap();
    tx.put("s/new", &sv_info(8), &state(8, 4), &PutOptions::default())
        .unwrap();
    tx.commit(CommitOptions {
        message: "exp".into(),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(
        repo.reader("v1", "s/change").unwrap().read_all().unwrap(),
        state(8, 2)
    );
    assert_eq!(
        repo.reader("exp1", "s/change").unwrap().read_all().unwrap(),
        changed
    );
    let d = repo.diff("v1", "exp1").unwrap();
    assert_eq!(d.len(), 3);
    match &d[0] {
        DiffEntry::Changed {
            path,
            chunks_changed,
            chunks_total,
            fidelity,
            ..
        } => {
            assert_eq!(path, "s/change");
            assert_eq!((*chunks_changed, *chunks_total), (1, 4));
            let f = fidelity.unwrap();
            assert!(f > 0.9 && f < 1.0, "{f}");
        }
        e => panic!("{e:?}"),
    }
    assert_eq!(
        d[1],
        DiffEntry::Removed {
            path: "s/gone".into()
        }
    );
    assert_eq!(
        d[2],
        DiffEntry::Added {
            path: "s/new".into()
        }
    );
    let id = repo.resolve("exp1").unwrap();
    assert_eq!(repo.resolve(&id.to_hex()[..10]).unwrap(), id);
    assert!(matches!(repo.resolve("nope"), Err(Error::RefNotFound(_))));
    assert_eq!(repo.log("exp1", 100).unwrap().len(), 5);
}

#[test]
fn fidelity_matches_a_direct_computation() {
    let repo = memory_repo(256);
    let a = plain_floats(2 << 6, 1);
    let b = plain_floats(2 << 6, 2);
    put_one(
        &repo,
        "a",
        &sv_info(6),
        &encode(&a, DType::Complex128),
        &PutOptions::default(),
    )
    .unwrap();
    put_one(
        &repo,
        "b",
        &sv_info(6),
        &encode(&b, DType::Complex128),
        &PutOptions::default(),
    )
    .unwrap();
    let (mut re, mut im, mut na, mut nb) = (0.0, 0.0, 0.0, 0.0);
    for k in 0..64 {
        let (x, y) = ((a[2 * k], a[2 * k + 1]), (b[2 * k], b[2 * k + 1]));
        re += x.0 * y.0 + x.1 * y.1;
        im += x.0 * y.1 - x.1 * y.0;
        na += x.0 * x.0 + x.1 * x.1;
        nb += y.0 * y.0 + y.1 * y.1;
    }
    let expect = (re * re + im * im) / (na * nb);
    let mut ra = repo.reader("main", "a").unwrap();
    let mut rb = repo.reader("main", "b").unwrap();
    let f = StateReader::fidelity(&mut ra, &mut rb).unwrap().unwrap();
    assert!((f - expect).abs() < 1e-12, "{f} vs {expect}");
    let top = ra.top_k(3).unwrap();
    let mut probs: Vec<(u64, f64)> = (0..64)
        .map(|k| (k as u64, a[2 * k] * a[2 * k] + a[2 * k + 1] * a[2 * k + 1]))
        .collect();
    probs.sort_by(|x, y| y.1.total_cmp(&x.1).then(x.0.cmp(&y.0)));
    assert_eq!(top, probs[..3].to_vec());
}

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u64),
    Delete(u8),
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..12, any::<u64>()).prop_map(|(p, s)| Op::Put(p, s)),
        2 => (0u8..12).prop_map(Op::Delete),
        2 => Just(Op::Commit),
    ]
}

fn path_of(p: u8) -> String {
    format!("d{}/s{}", p % 3, p)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// The engine and a plain map agree after any sequence of puts, deletes and commits.
    #[test]
    fn engine_matches_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let repo = memory_repo(256);
        let mut model: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut pending = model.clone();
        let mut tx = repo.transaction("main").unwrap();
        for o in ops {
            match o {
                Op::Put(p, s) => {
                    let data = state(3, s % 4);
                    tx.put(&path_of(p), &sv_info(3), &data, &PutOptions::default()).unwrap();
                    pending.insert(path_of(p), data);
                }
                Op::Delete(p) => {
                    if pending.remove(&path_of(p)).is_some() {
                        tx.delete(&path_of(p)).unwrap();
                    }
                }
                Op::Commit => {
                    tx.commit(CommitOptions::default()).unwrap();
                    model = pending.clone();
                    tx = repo.transaction("main").unwrap();
                }
            }
        }
        drop(tx);
        let head = repo.branch_head("main").unwrap();
        let listed = repo.list_states(&head, None).unwrap();
        prop_assert_eq!(listed.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>(), model.keys().cloned().collect::<Vec<_>>());
        for (p, data) in &model {
            prop_assert_eq!(&repo.reader("main", p).unwrap().read_all().unwrap(), data);
        }
    }
}
