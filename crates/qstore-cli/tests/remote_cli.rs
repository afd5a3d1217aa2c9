//! `qstore clone`, `push`, `pull`, `remote` and `run --drain-to` between local repositories:
//! identical refs and bit-identical states afterwards, only changed chunks sent, a push
//! killed with SIGKILL at random moments converges and leaves both sides valid, and a
//! branch that moved on the destination refuses a plain push.

use qstore::repo::PutOptions;
use qstore::{ArrayInfo, CommitOptions, DType, Repository};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn qstore(repo: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .args(args)
        .output()
        .expect("runs qstore")
}

fn ok(repo: &Path, args: &[&str]) -> String {
    let o = qstore(repo, args);
    assert!(
        o.status.success(),
        "qstore {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(repo: &Path, args: &[&str]) -> serde_json::Value {
    let mut a = vec!["--json"];
    a.extend_from_slice(args);
    serde_json::from_str(&ok(repo, &a)).unwrap()
}

/// Incompressible amplitudes (finite doubles), state `seed`.
fn amps(n_amps: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..2 * n_amps)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5).to_le_bytes()
        })
        .collect()
}

fn put(repo: &Repository, branch: &str, path: &str, data: &[u8]) {
    let mut tx = repo.transaction(branch).unwrap();
    tx.put(
        path,
        &ArrayInfo {
            dtype: DType::Complex128,
            shape: vec![data.len() as u64 / 16],
        },
        data,
        &PutOptions::default(),
    )
    .unwrap();
    tx.commit(CommitOptions {
        message: format!("put {path}"),
        ..Default::default()
    })
    .unwrap();
}

/// A ref, its commit, and (path, bytes) of every state there.
type RefContents = (String, String, Vec<(String, Vec<u8>)>);

/// Every ref with its commit, and the bytes of every state at each ref.
fn everything(repo: &Repository) -> Vec<RefContents> {
    repo.refs()
        .unwrap()
        .into_iter()
        .map(|(r, id)| {
            let states = repo
                .list_states(&id, None)
                .unwrap()
                .into_iter()
                .map(|(p, _)| {
                    let b = repo.reader(&id.to_hex(), &p).unwrap().read_all().unwrap();
                    (p, b)
                })
                .collect();
            (r.key(), id.to_hex(), states)
        })
        .collect()
}

fn init(path: &Path, extra: &[&str]) -> Repository {
    let mut a = vec!["init", path.to_str().unwrap(), "--chunk-size", "65536"];
    a.extend_from_slice(extra);
    ok(path, &a);
    Repository::open(path.to_str().unwrap()).unwrap()
}

fn healthy(path: &Path) {
    let o = qstore(path, &["fsck", "--full"]);
    assert!(
        o.status.success(),
        "fsck {}: {}{}",
        path.display(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[test]
fn clone_push_and_pull_keep_two_repositories_identical_sending_only_changes() {
    let d = tempfile::tempdir().unwrap();
    let (pa, pb, pc) = (d.path().join("a"), d.path().join("b"), d.path().join("c"));
    let a = init(&pa, &[]);
    let mut s = amps(1 << 16, 1); // 1 MiB: 16 chunks
    put(&a, "main", "run/s", &s);
    put(&a, "main", "run/t", &amps(1 << 14, 2));
    ok(&pa, &["tag", "v1"]);
    ok(&pa, &["branch", "side"]);
    put(&a, "side", "side/x", &amps(1 << 12, 3));

    let r = json(&pa, &["clone", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    assert_eq!(r["chunks_sent"], 16 + 4 + 1, "{r}");
    let b = Repository::open(pb.to_str().unwrap()).unwrap();
    assert_eq!(everything(&a), everything(&b));
    assert!(ok(&pb, &["remote", "ls"]).contains(pa.to_str().unwrap()));

    // One amplitude changes: one chunk (64 KiB raw, a little less stored) and a few hundred
    // bytes of metadata go over.
    s[16 * 1000] ^= 1;
    put(&a, "main", "run/s", &s);
    let r = json(&pa, &["push", pb.to_str().unwrap(), "main"]);
    assert_eq!(r["chunks_sent"], 1, "{r}");
    assert_eq!(r["commits_sent"], 1, "{r}");
    let sent = r["bytes_sent"].as_u64().unwrap();
    assert!(sent > 32768 && sent < 65536 + 8192, "{sent} bytes sent");
    assert_eq!(r["refs"][0]["change"], "fast_forward");
    assert_eq!(everything(&a), everything(&b));

    // A third repository pulls from b by remote name, one branch under another name.
    let c = init(&pc, &[]);
    ok(&pc, &["remote", "add", "team", pb.to_str().unwrap()]);
    let r = json(&pc, &["pull", "team", "side:from-team", "v1"]);
    assert_eq!(r["refs"].as_array().unwrap().len(), 2);
    assert_eq!(c.resolve("from-team").unwrap(), a.resolve("side").unwrap());
    assert_eq!(c.resolve("v1").unwrap(), a.resolve("v1").unwrap());
    // b pulls from its origin: nothing new.
    let r = json(&pb, &["pull"]);
    assert_eq!(r["objects_sent"], 0, "{r}");
    for p in [&pa, &pb, &pc] {
        healthy(p);
    }
}

#[test]
fn a_branch_that_moved_on_the_destination_refuses_a_plain_push() {
    let d = tempfile::tempdir().unwrap();
    let (pa, pb) = (d.path().join("a"), d.path().join("b"));
    let a = init(&pa, &[]);
    put(&a, "main", "x", &amps(64, 1));
    ok(&pa, &["clone", pa.to_str().unwrap(), pb.to_str().unwrap()]);
    let b = Repository::open(pb.to_str().unwrap()).unwrap();
    put(&b, "main", "theirs", &amps(64, 2)); // a concurrent commit on the destination
    put(&a, "main", "mine", &amps(64, 3));
    let theirs = b.branch_head("main").unwrap();
    let o = qstore(&pa, &["push", pb.to_str().unwrap(), "main"]);
    assert_eq!(o.status.code(), Some(4));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("not a fast-forward"), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(b.branch_head("main").unwrap(), theirs, "nothing moved");
    // The way out: bring theirs in under another name, or force.
    ok(&pa, &["pull", pb.to_str().unwrap(), "main:theirs"]);
    assert_eq!(a.resolve("theirs").unwrap(), theirs);
    let r = json(&pa, &["push", pb.to_str().unwrap(), "main", "--force"]);
    assert_eq!(r["refs"][0]["change"], "forced");
    assert_eq!(
        b.branch_head("main").unwrap(),
        a.branch_head("main").unwrap()
    );
    // An unknown remote names what to do.
    let o = qstore(&pa, &["push", "nowhere"]);
    assert_eq!(o.status.code(), Some(6));
    assert!(String::from_utf8_lossy(&o.stderr).contains("remote add"));
}

#[test]
fn a_push_killed_at_random_moments_converges_without_resending() {
    let d = tempfile::tempdir().unwrap();
    let (pa, pb) = (d.path().join("a"), d.path().join("b"));
    let a = init(&pa, &[]);
    // 64 MiB of incompressible state in 1024 chunks; the destination writes 4 MiB packs.
    let s = amps(1 << 22, 9);
    put(&a, "main", "big", &s);
    let b = init(&pb, &["--pack-size", "4M"]);
    let packs = || std::fs::read_dir(pb.join("packs")).unwrap().count();
    let before = b.branch_head("main").unwrap();
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut interrupted = 0;
    for round in 0..3 {
        let start_packs = packs();
        let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
            .env("QSTORE_REPO", &pa)
            .args(["push", pb.to_str().unwrap(), "main"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Wait until at least one pack arrived, then a random moment more.
        let t = Instant::now();
        while packs() == start_packs && t.elapsed() < Duration::from_secs(60) {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(seed % 20));
        let _ = child.kill();
        let _ = child.wait();
        healthy(&pb);
        let head = Repository::open(pb.to_str().unwrap())
            .unwrap()
            .branch_head("main")
            .unwrap();
        if head != before {
            // The push finished before the kill: nothing left to test this round.
            assert_eq!(head, a.branch_head("main").unwrap(), "round {round}");
            break;
        }
        interrupted += 1;
    }
    assert!(interrupted > 0, "no kill landed before the push ended");
    let r = json(&pa, &["push", pb.to_str().unwrap(), "main"]);
    let b = Repository::open(pb.to_str().unwrap()).unwrap();
    assert_eq!(
        b.branch_head("main").unwrap(),
        a.branch_head("main").unwrap()
    );
    let resent = r["chunks_sent"].as_u64().unwrap();
    assert!(resent < 1024, "the rerun sent everything again: {r}");
    eprintln!("{interrupted} pushes killed midway; the rerun sent {resent} of 1024 chunks");
    assert_eq!(b.reader("main", "big").unwrap().read_all().unwrap(), s);
    healthy(&pa);
    healthy(&pb);
}

fn circuit(n: usize, layers: usize) -> String {
    let mut s = format!("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[{n}];\n");
    for l in 0..layers {
        for q in 0..n {
            s += &format!(
                "rx({}) q[{q}];\nrz({}) q[{q}];\n",
                0.3 + 0.01 * q as f64,
                0.1 * l as f64
            );
        }
        for q in 0..n - 1 {
            s += &format!("cx q[{q}], q[{}];\n", q + 1);
        }
    }
    s
}

#[test]
fn a_drained_run_killed_and_resumed_leaves_every_checkpoint_on_the_remote() {
    let d = tempfile::tempdir().unwrap();
    let (local, shared) = (d.path().join("local"), d.path().join("shared"));
    let file = d.path().join("c.qasm");
    std::fs::write(&file, circuit(14, 12)).unwrap();
    let f = file.to_str().unwrap();
    let s = shared.to_str().unwrap();
    // Killed (abort, like kill -9) partway: the local repository has what it acknowledged.
    let o = qstore(
        &local,
        &[
            "run",
            f,
            "--branch",
            "job",
            "--checkpoint-every",
            "20",
            "--abort-after",
            "300",
            "--drain-to",
            s,
        ],
    );
    assert!(!o.status.success(), "the run was meant to crash");
    let o = qstore(
        &local,
        &[
            "--json",
            "run",
            f,
            "--branch",
            "job",
            "--resume",
            "--checkpoint-every",
            "20",
            "--drain-to",
            s,
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(r["drain"]["behind"], 0, "{r}");
    assert!(r["drain"]["last_error"].is_null(), "{r}");
    let l = Repository::open(local.to_str().unwrap()).unwrap();
    let sh = Repository::open(s).unwrap();
    assert_eq!(
        l.branch_head("job").unwrap(),
        sh.branch_head("job").unwrap()
    );
    // Every checkpoint commit the local branch has is on the remote.
    let local_log: Vec<_> = l
        .log("job", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let remote_log: Vec<_> = sh
        .log("job", usize::MAX)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(local_log, remote_log);
    assert!(local_log.len() > 10, "{} commits", local_log.len());
    assert_eq!(
        l.reader("job", "final").unwrap().read_all().unwrap(),
        sh.reader("job", "final").unwrap().read_all().unwrap()
    );
    // Text output says how far behind the remote is.
    let o = qstore(
        &local,
        &[
            "run",
            f,
            "--branch",
            "job2",
            "--checkpoint-every",
            "50",
            "--drain-to",
            s,
        ],
    );
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(
        text.contains("drain to") && text.contains("caught up"),
        "{text}"
    );
    healthy(&shared);
    // A remote that cannot be reached does not stop the job: the run succeeds and says so.
    let o = qstore(
        &local,
        &[
            "--json",
            "run",
            f,
            "--branch",
            "job3",
            "--checkpoint-every",
            "50",
            "--drain-to",
            "/proc/qstore-nowhere",
        ],
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(r["drain"]["behind"].is_null(), "{r}");
    assert!(
        r["drain"]["last_error"]
            .as_str()
            .unwrap()
            .contains("qstore-nowhere"),
        "{r}"
    );
}
