//! `qstore upload`: begin, put parts from .npy files in any order, complete (twice: one
//! commit), ls, abort, and gc reclaiming an aborted upload's parts.

use qstore::Repository;
use std::path::Path;
use std::process::{Command, Output};

fn qstore(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .args(args)
        .output()
        .expect("runs qstore")
}

fn ok(o: Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

/// A complex128 .npy file of `vals` (pairs of doubles).
fn npy(path: &Path, vals: &[f64]) {
    let mut h = format!(
        "{{'descr': '<c16', 'fortran_order': False, 'shape': ({},), }}",
        vals.len() / 2
    );
    while (10 + h.len() + 1) % 64 != 0 {
        h.push(' ');
    }
    h.push('\n');
    let mut b = b"\x93NUMPY\x01\x00".to_vec();
    b.extend_from_slice(&(h.len() as u16).to_le_bytes());
    b.extend_from_slice(h.as_bytes());
    for v in vals {
        b.extend_from_slice(&v.to_le_bytes());
    }
    std::fs::write(path, b).unwrap();
}

#[test]
fn upload_commands_store_a_state_in_parts() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    ok(qstore(&repo, &["init"]));
    let n = 1usize << 17; // 2 MiB: two chunks of the default size
    let vals: Vec<f64> = (0..2 * n)
        .map(|i| ((i * 7919) % 1000) as f64 / 1000.0 - 0.5)
        .collect();
    let out = ok(qstore(
        &repo,
        &[
            "upload",
            "begin",
            "run/psi",
            "--shape",
            &n.to_string(),
            "--parts",
            "3",
        ],
    ));
    let id = out.split_whitespace().last().unwrap().to_string();
    for k in [2usize, 0, 1] {
        let (a, b) = (k * n / 3, (k + 1) * n / 3);
        let f = dir.path().join(format!("p{k}.npy"));
        npy(&f, &vals[2 * a..2 * b]);
        ok(qstore(
            &repo,
            &["upload", "put", &id, &k.to_string(), f.to_str().unwrap()],
        ));
    }
    let ls = ok(qstore(&repo, &["upload", "ls"]));
    assert!(ls.contains("parts 3/3 stored"), "{ls}");
    let c1 = ok(qstore(
        &repo,
        &["--json", "upload", "complete", &id, "-m", "from parts"],
    ));
    let c2 = ok(qstore(&repo, &["--json", "upload", "complete", &id]));
    let v1: serde_json::Value = serde_json::from_str(&c1).unwrap();
    let v2: serde_json::Value = serde_json::from_str(&c2).unwrap();
    assert_eq!(v1["commit"], v2["commit"]);
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let got = r.reader("main", "run/psi").unwrap().read_all().unwrap();
    let want: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    assert_eq!(got, want);
    // A wrong-sized part is refused; an aborted upload's parts go with gc.
    let out = ok(qstore(
        &repo,
        &[
            "upload",
            "begin",
            "run/phi",
            "--shape",
            &n.to_string(),
            "--parts",
            "2",
        ],
    ));
    let id = out.split_whitespace().last().unwrap().to_string();
    let f = dir.path().join("bad.npy");
    npy(&f, &vals[..n / 2]);
    let o = qstore(&repo, &["upload", "put", &id, "0", f.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("holds elements"));
    let good = dir.path().join("good.npy");
    npy(&good, &vals[..2 * (n / 2)]);
    ok(qstore(
        &repo,
        &["upload", "put", &id, "0", good.to_str().unwrap()],
    ));
    ok(qstore(&repo, &["upload", "abort", &id]));
    let o = qstore(&repo, &["upload", "complete", &id]);
    assert!(!o.status.success());
    let g = ok(qstore(&repo, &["--json", "gc", "--grace", "0s"]));
    let g: serde_json::Value = serde_json::from_str(&g).unwrap();
    assert!(g["packs_deleted"].as_u64().unwrap() >= 1, "{g}");
    assert_eq!(ok(qstore(&repo, &["upload", "ls"])).trim(), "");
    assert!(
        Repository::open(repo.to_str().unwrap())
            .unwrap()
            .fsck(true)
            .unwrap()
            .healthy()
    );
}
