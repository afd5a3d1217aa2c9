//! The CLI on a cluster repository (S3 on a 3-node Garage cluster, refs in a 3-member etcd
//! cluster, both started by `scripts/cluster.sh` from the README's test command):
//! - stress: 8 writer processes on disjoint paths and 2 on overlapping ones, a gc loop with
//!   `--grace 0s` in another process, while one Garage node and one etcd member are killed
//!   with -9 and restarted and writers are killed with -9 at random; afterwards every
//!   acknowledged commit reads back bit-exact and is in the branch's history, no update is
//!   lost (counted), and `fsck --full` is clean;
//! - a missing or mismatched ref store is refused with what to pass;
//! - `qstore run` checkpoints, is killed with -9 and resumes, on the cluster;
//! - clone, push and pull between a local repository and the cluster: identical refs and
//!   states, one changed chunk sends one chunk, a concurrent commit refuses a plain push, a
//!   push killed with -9 twice converges, `fsck --full` clean on every side;
//! - `qstore run --drain-to` the cluster, killed and resumed: the remote ends with every
//!   checkpoint the local branch has.
//!
//! Skipped (with a message) when the cluster is not running, unless `QSTORE_REQUIRE_CLUSTER`
//! is set (the README's test command sets it).

use qstore::Repository;
use std::collections::{BTreeMap, HashSet};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

struct Cluster {
    dir: String,
    s3: String,
    bucket: String,
    etcd: String,
}

fn cluster() -> Option<Cluster> {
    let v = |k: &str| std::env::var(k).ok();
    match (
        v("QSTORE_TEST_CLUSTER_DIR"),
        v("QSTORE_TEST_S3_ENDPOINT"),
        v("QSTORE_TEST_BUCKET"),
        v("QSTORE_TEST_ETCD"),
    ) {
        (Some(dir), Some(s3), Some(bucket), Some(etcd)) => Some(Cluster {
            dir,
            s3,
            bucket,
            etcd,
        }),
        _ => {
            assert!(
                v("QSTORE_REQUIRE_CLUSTER").is_none(),
                "QSTORE_REQUIRE_CLUSTER is set but the cluster is not running"
            );
            eprintln!("skipped: no cluster (scripts/test-all.sh starts one)");
            None
        }
    }
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn unique(tag: &str) -> String {
    format!("{tag}-{}-{:x}", std::process::id(), rand::random::<u32>())
}

impl Cluster {
    fn s3_address(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region=garage&cache_bytes=0",
            self.bucket,
            enc(&self.s3)
        )
    }
    fn refs(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}?lease_ttl=3", self.etcd)
    }
    fn script(&self, verb: &str, n: u32) {
        let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/cluster.sh");
        let o = Command::new(root)
            .args([verb, &self.dir, &n.to_string()])
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{verb} {n}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

fn qstore(repo: &str, refs: Option<&str>, args: &[&str]) -> Output {
    let mut c = Command::new(env!("CARGO_BIN_EXE_qstore"));
    c.env("QSTORE_REPO", repo)
        .env_remove("QSTORE_REFS")
        .args(args);
    if let Some(r) = refs {
        c.env("QSTORE_REFS", r);
    }
    c.output().expect("runs qstore")
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}{}",
        o.status.code(),
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The amplitudes `commit-loop --amps 1024` writes for state number `i`.
fn loop_state(i: u64) -> Vec<u8> {
    let amp = |k: u64| {
        let mut z = (i << 32 | k).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0
    };
    (0..2048).flat_map(|k| amp(k).to_le_bytes()).collect()
}

/// An acknowledged commit: (commit id, path, state number).
type Ack = (String, String, u64);

struct Writer {
    child: Child,
    reader: std::thread::JoinHandle<()>,
}

fn spawn_writer(
    repo: &str,
    refs: &str,
    prefix: &str,
    start: u64,
    cycle: Option<u64>,
    acks: Arc<Mutex<Vec<Ack>>>,
    seconds: f64,
) -> Writer {
    let mut args = vec![
        "commit-loop".to_string(),
        prefix.to_string(),
        "--amps".into(),
        "1024".into(),
        "--retry".into(),
        "--start".into(),
        start.to_string(),
        "--seconds".into(),
        format!("{seconds}"),
    ];
    if let Some(c) = cycle {
        args.extend(["--cycle".into(), c.to_string()]);
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .env("QSTORE_REFS", refs)
        .args(&args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() == 4 && f[0] == "committed" {
                acks.lock()
                    .unwrap()
                    .push((f[1].into(), f[2].into(), f[3].parse().unwrap()));
            }
        }
    });
    Writer { child, reader }
}

#[test]
fn writers_gc_and_node_loss_lose_no_acknowledged_commit() {
    let Some(c) = cluster() else { return };
    let p = unique("stress");
    let repo = c.s3_address(&p);
    let refs = c.refs(&p);
    ok(&qstore(
        &repo,
        Some(&refs),
        &["init", "--chunk-size", "4096"],
    ));
    let acks: Arc<Mutex<Vec<Ack>>> = Default::default();
    let secs = 30.0;
    let started = Instant::now();
    // 8 writers on disjoint paths, 2 on overlapping ones (4 shared paths).
    let mut writers: Vec<(String, Option<u64>, Writer)> = Vec::new();
    for w in 0..10u64 {
        let (prefix, cycle) = if w < 8 {
            (format!("w{w}"), None)
        } else {
            ("shared".to_string(), Some(4))
        };
        let wr = spawn_writer(
            &repo,
            &refs,
            &prefix,
            w * 1_000_000,
            cycle,
            acks.clone(),
            secs,
        );
        writers.push((prefix, cycle, wr));
    }
    // gc on another "node": its own process, in a loop, no grace.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let gc_runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let gc = {
        let (repo, refs, stop, runs) = (repo.clone(), refs.clone(), stop.clone(), gc_runs.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let o = qstore(&repo, Some(&refs), &["gc", "--grace", "0s"]);
                if o.status.success() {
                    runs.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                } else {
                    eprintln!("gc: {}", String::from_utf8_lossy(&o.stderr));
                }
                std::thread::sleep(Duration::from_secs(4));
            }
        })
    };
    let at = |s: f64| {
        let t = Duration::from_secs_f64(s);
        if let Some(d) = t.checked_sub(started.elapsed()) {
            std::thread::sleep(d);
        }
    };
    let mut kills = 0u64;
    let restart = |writers: &mut Vec<(String, Option<u64>, Writer)>, k: usize, round: u64| {
        let (prefix, cycle, w) = &mut writers[k];
        let _ = w.child.kill(); // SIGKILL
        let _ = w.child.wait();
        let left = (secs - started.elapsed().as_secs_f64()).max(1.0);
        let nw = spawn_writer(
            &repo,
            &refs,
            prefix,
            (k as u64) * 1_000_000 + round * 100_000,
            *cycle,
            acks.clone(),
            left,
        );
        let old = std::mem::replace(w, nw);
        let _ = old.reader.join();
    };
    at(4.0);
    c.script("kill-garage", 2);
    at(6.0);
    restart(&mut writers, 3, 1);
    kills += 1;
    at(10.0);
    c.script("start-garage", 2);
    at(12.0);
    c.script("kill-etcd", 3);
    at(14.0);
    restart(&mut writers, 8, 1);
    kills += 1;
    at(19.0);
    c.script("start-etcd", 3);
    at(22.0);
    restart(&mut writers, 5, 2);
    kills += 1;
    // Writers stop by themselves after `secs`; one that hangs fails the test.
    let deadline = started + Duration::from_secs_f64(secs + 180.0);
    for (prefix, _, mut w) in writers {
        let status = loop {
            match w.child.try_wait().unwrap() {
                Some(s) => break Some(s),
                None if Instant::now() > deadline => {
                    let _ = w.child.kill();
                    break None;
                }
                None => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        let _ = w.reader.join();
        assert!(
            status.is_some_and(|s| s.success()),
            "writer {prefix} failed or hung"
        );
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    gc.join().unwrap();
    let acks = acks.lock().unwrap().clone();
    assert!(acks.len() >= 10, "only {} commits acknowledged", acks.len());
    assert!(
        gc_runs.load(std::sync::atomic::Ordering::Relaxed) > 0,
        "gc never ran"
    );

    // Every acknowledged commit reads back bit-exact and is in main's history.
    qstore_cluster::register();
    let r = Repository::open(&qstore_cluster::with_refs(&repo, Some(&refs))).unwrap();
    let log = r.log("main", usize::MAX).unwrap();
    let history: HashSet<String> = log.iter().map(|(id, _)| id.to_hex()).collect();
    for (id, path, i) in &acks {
        assert!(
            history.contains(id),
            "acknowledged commit {id} is not in main's history"
        );
        assert_eq!(
            r.reader(id, path).unwrap().read_all().unwrap(),
            loop_state(*i),
            "{path} at {id}"
        );
    }
    // No update lost: every commit in history (but init) is one acknowledged commit, or one
    // whose writer was killed before it printed the acknowledgement.
    let commits = log.len() as u64 - 1;
    let acked = acks.len() as u64;
    assert!(
        commits >= acked && commits <= acked + kills,
        "{commits} commits in history, {acked} acknowledged, {kills} writers killed"
    );
    // The newest acknowledged state of each disjoint path is what main holds.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, path, i) in &acks {
        if !path.starts_with("shared") {
            let e = last.entry(path).or_insert(*i);
            *e = (*e).max(*i);
        }
    }
    for (path, i) in last {
        assert_eq!(
            r.reader("main", path).unwrap().read_all().unwrap(),
            loop_state(i)
        );
    }
    let fsck = ok(&qstore(&repo, Some(&refs), &["fsck", "--full", "--json"]));
    let v: serde_json::Value = serde_json::from_str(&fsck).unwrap();
    assert_eq!(v["problems"].as_array().map(|a| a.len()), Some(0), "{fsck}");
    eprintln!(
        "stress: {acked} acknowledged commits, {commits} in history, {kills} writers killed, {} gc runs",
        gc_runs.load(std::sync::atomic::Ordering::Relaxed)
    );
}

#[test]
fn a_missing_or_wrong_ref_store_is_refused_with_what_to_pass() {
    let Some(c) = cluster() else { return };
    let p = unique("mismatch");
    let repo = c.s3_address(&p);
    let refs = c.refs(&p);
    let o = qstore(&repo, None, &["init"]);
    assert_eq!(
        o.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(String::from_utf8_lossy(&o.stderr).contains("refs=etcd://"));
    ok(&qstore(&repo, Some(&refs), &["init"]));
    let cfg = ok(&qstore(&repo, Some(&refs), &["log", "--json"]));
    assert!(cfg.contains("initialize repository"));
    // No ref store: the message says which one the repository was created with.
    let o = qstore(&repo, None, &["log"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(6), "{e}");
    assert!(
        e.contains("keeps its refs in etcd") && e.contains(&p),
        "{e}"
    );
    // A wrong (empty) prefix: refused, so gc can never see "no refs" and delete everything.
    let wrong = c.refs(&unique("empty"));
    for verb in [&["log"][..], &["gc", "--grace", "0s"]] {
        let o = qstore(&repo, Some(&wrong), verb);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(6), "{e}");
        assert!(e.contains("holds no repository"), "{e}");
    }
    // Another repository's ref store: refused by id.
    let p2 = unique("other");
    ok(&qstore(&c.s3_address(&p2), Some(&c.refs(&p2)), &["init"]));
    let o = qstore(&repo, Some(&c.refs(&p2)), &["ls"]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("holds the refs of repository"), "{e}");
    // Still all there with the right one.
    ok(&qstore(&repo, Some(&refs), &["fsck", "--full"]));
    // An older build refuses the repository by its format version.
    qstore_cluster::register();
    let r = Repository::open(&qstore_cluster::with_refs(&repo, Some(&refs))).unwrap();
    assert_eq!(r.config().format_version, 4);
    assert_eq!(r.config().ref_store.as_ref().unwrap().kind, "etcd");
}

#[test]
fn qstore_run_checkpoints_is_killed_and_resumes_on_the_cluster() {
    let Some(c) = cluster() else { return };
    let p = unique("run");
    let repo = qstore_cluster::with_refs(&c.s3_address(&p), Some(&c.refs(&p)));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.qasm");
    let mut s = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[16];\n");
    for l in 0..60 {
        for q in 0..16 {
            s += &format!(
                "rx({}) q[{q}];\nrz({}) q[{q}];\n",
                0.3 + 0.01 * q as f64,
                0.1 * l as f64
            );
        }
        for q in 0..15 {
            s += &format!("cx q[{q}], q[{}];\n", q + 1);
        }
    }
    std::fs::write(&file, s).unwrap();
    let f = file.to_str().unwrap();
    ok(&qstore(&repo, None, &["run", f, "--branch", "clean"]));
    let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", &repo)
        .args(["run", f, "--branch", "killed", "--checkpoint-every", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    let _ = child.kill();
    let _ = child.wait();
    let o = qstore(
        &repo,
        None,
        &["run", f, "--branch", "killed", "--resume", "--json"],
    );
    if o.status.code() == Some(3) {
        ok(&qstore(&repo, None, &["run", f, "--branch", "killed"]));
    } else {
        ok(&o);
    }
    qstore_cluster::register();
    let r = Repository::open(&repo).unwrap();
    assert_eq!(
        r.reader("killed", "final").unwrap().read_all().unwrap(),
        r.reader("clean", "final").unwrap().read_all().unwrap()
    );
}

#[test]
fn the_remote_benchmark_runs_and_shows_dedup() {
    let Some(c) = cluster() else { return };
    let p = unique("bench");
    let o = qstore(
        &c.s3_address(&p),
        Some(&c.refs(&p)),
        &["bench", "--sizes", "16M", "--json"],
    );
    let v: serde_json::Value = serde_json::from_str(&ok(&o)).unwrap();
    let rows = v.as_array().unwrap();
    let ops: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "raw multipart PUT",
            "raw ranged GET",
            "qstore put (commit)",
            "qstore get (cold)",
            "qstore put, one chunk changed",
            "qstore push (local -> S3)",
            "qstore push, one chunk changed"
        ]
    );
    // Behaviour, not time: the first put uploads the state, the second about one chunk.
    let first = rows[2]["uploaded_bytes"].as_u64().unwrap();
    let second = rows[4]["uploaded_bytes"].as_u64().unwrap();
    assert!(first >= 8 << 20, "the first put stored {first} bytes");
    assert!(
        second <= 2 << 20,
        "one changed chunk uploaded {second} bytes"
    );
    let pushed = rows[5]["uploaded_bytes"].as_u64().unwrap();
    let pushed_again = rows[6]["uploaded_bytes"].as_u64().unwrap();
    assert!(pushed >= 8 << 20, "the push sent {pushed} bytes");
    assert!(
        pushed_again <= 2 << 20,
        "one changed chunk pushed {pushed_again} bytes"
    );
}

/// Incompressible amplitudes (finite doubles) of state `seed`, `n` complex128 values.
fn noise_amps(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..2 * n)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5).to_le_bytes()
        })
        .collect()
}

fn put_state(repo: &Repository, path: &str, data: &[u8]) {
    let mut tx = repo.transaction("main").unwrap();
    tx.put(
        path,
        &qstore::ArrayInfo {
            dtype: qstore::DType::Complex128,
            shape: vec![data.len() as u64 / 16],
        },
        data,
        &qstore::repo::PutOptions::default(),
    )
    .unwrap();
    tx.commit(qstore::CommitOptions::default()).unwrap();
}

fn json_of(o: &Output) -> serde_json::Value {
    serde_json::from_str(&ok(o)).unwrap()
}

#[test]
fn clone_push_and_pull_between_a_local_repository_and_the_cluster() {
    let Some(c) = cluster() else { return };
    qstore_cluster::register();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let back = dir.path().join("back");
    let (l, b) = (local.to_str().unwrap(), back.to_str().unwrap());
    let p = unique("xfer");
    let remote = qstore_cluster::with_refs(&c.s3_address(&p), Some(&c.refs(&p)));
    ok(&qstore(l, None, &["init", l, "--chunk-size", "65536"]));
    let lr = Repository::open(l).unwrap();
    let mut s = noise_amps(1 << 17, 1); // 2 MiB in 32 chunks
    put_state(&lr, "run/s", &s);
    ok(&qstore(l, None, &["tag", "v1"]));

    // Local -> cluster (clone creates the repository there), then cluster -> local.
    let v = json_of(&qstore(l, None, &["--json", "clone", l, &remote]));
    assert_eq!(v["chunks_sent"], 32, "{v}");
    let v = json_of(&qstore(l, None, &["--json", "clone", &remote, b]));
    assert_eq!(v["chunks_sent"], 32, "{v}");
    let rr = Repository::open(&remote).unwrap();
    let br = Repository::open(b).unwrap();
    for r in [&rr, &br] {
        assert_eq!(r.refs().unwrap(), lr.refs().unwrap());
        assert_eq!(r.reader("v1", "run/s").unwrap().read_all().unwrap(), s);
    }

    // One changed chunk: about one chunk goes over the wire.
    s[16 * 5000] ^= 1;
    put_state(&lr, "run/s", &s);
    ok(&qstore(l, None, &["remote", "add", "cluster", &remote]));
    let v = json_of(&qstore(l, None, &["--json", "push", "cluster", "main"]));
    assert_eq!(v["chunks_sent"], 1, "{v}");
    assert!(v["bytes_sent"].as_u64().unwrap() < 65536 + 8192, "{v}");
    let v = json_of(&qstore(b, None, &["--json", "pull"]));
    assert_eq!(v["chunks_sent"], 1, "{v}");
    assert_eq!(br.reader("main", "run/s").unwrap().read_all().unwrap(), s);

    // A concurrent commit on the cluster: a plain push fails with a clear message.
    put_state(&rr, "theirs", &noise_amps(64, 2));
    put_state(&lr, "mine", &noise_amps(64, 3));
    let o = qstore(l, None, &["push", "cluster", "main"]);
    assert_eq!(o.status.code(), Some(4));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a fast-forward"));

    // A push of a big state killed with SIGKILL twice, then run again: converges.
    let big = noise_amps(1 << 20, 4); // 16 MiB, 256 chunks
    let mut tx = lr.transaction("main").unwrap();
    tx.put(
        "big",
        &qstore::ArrayInfo {
            dtype: qstore::DType::Complex128,
            shape: vec![1 << 20],
        },
        &big,
        &qstore::repo::PutOptions::default(),
    )
    .unwrap();
    tx.commit(qstore::CommitOptions::default()).unwrap();
    for wait_ms in [300u64, 900] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
            .env("QSTORE_REPO", l)
            .args(["push", "cluster", "main:big", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(wait_ms));
        let _ = child.kill();
        let _ = child.wait();
    }
    ok(&qstore(l, None, &["push", "cluster", "main:big"]));
    let rr = Repository::open(&remote).unwrap();
    assert_eq!(rr.resolve("big").unwrap(), lr.branch_head("main").unwrap());
    assert_eq!(rr.reader("big", "big").unwrap().read_all().unwrap(), big);
    for r in [l, &remote, b] {
        ok(&qstore(r, None, &["fsck", "--full"]));
    }
}

#[test]
fn a_run_drains_its_checkpoints_to_the_cluster_and_catches_up_after_a_kill() {
    let Some(c) = cluster() else { return };
    qstore_cluster::register();
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local");
    let l = local.to_str().unwrap();
    let p = unique("drain");
    let remote = qstore_cluster::with_refs(&c.s3_address(&p), Some(&c.refs(&p)));
    let file = dir.path().join("c.qasm");
    let mut s = String::from("OPENQASM 2.0;\ninclude \"qelib1.inc\";\nqreg q[14];\n");
    for l in 0..12 {
        for q in 0..14 {
            s += &format!(
                "rx({}) q[{q}];\nrz({}) q[{q}];\n",
                0.3 + 0.01 * q as f64,
                0.1 * l as f64
            );
        }
        for q in 0..13 {
            s += &format!("cx q[{q}], q[{}];\n", q + 1);
        }
    }
    std::fs::write(&file, s).unwrap();
    let f = file.to_str().unwrap();
    let o = qstore(
        l,
        None,
        &[
            "run",
            f,
            "--branch",
            "job",
            "--checkpoint-every",
            "20",
            "--abort-after",
            "250",
            "--drain-to",
            &remote,
        ],
    );
    assert!(!o.status.success(), "the run was meant to crash");
    let v = json_of(&qstore(
        l,
        None,
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
            &remote,
        ],
    ));
    assert_eq!(v["drain"]["behind"], 0, "{v}");
    let lr = Repository::open(l).unwrap();
    let rr = Repository::open(&remote).unwrap();
    let ids = |r: &Repository| -> Vec<String> {
        r.log("job", usize::MAX)
            .unwrap()
            .into_iter()
            .map(|(id, _)| id.to_hex())
            .collect()
    };
    assert_eq!(ids(&lr), ids(&rr));
    assert_eq!(
        rr.reader("job", "final").unwrap().read_all().unwrap(),
        lr.reader("job", "final").unwrap().read_all().unwrap()
    );
}

#[test]
fn a_state_written_in_parts_on_the_cluster() {
    let Some(c) = cluster() else { return };
    qstore_cluster::register();
    let p = unique("parts");
    let addr = qstore_cluster::with_refs(&c.s3_address(&p), Some(&c.refs(&p)));
    let repo = Repository::open_or_init(&addr).unwrap();
    let n = 1u64 << 17;
    let data = noise_amps(n as usize, 5);
    let info = qstore::ArrayInfo {
        dtype: qstore::DType::Complex128,
        shape: vec![n],
    };
    let id = repo
        .begin_upload("parts/psi", &info, qstore::KindRequest::Auto, 3)
        .unwrap();
    std::thread::scope(|s| {
        for k in 0..3u32 {
            let (addr, id, data) = (addr.clone(), id.clone(), &data);
            s.spawn(move || {
                let r = Repository::open(&addr).unwrap();
                let (a, b) = qstore::repo::upload::block_range(n, 3, k);
                r.put_part(&id, k, &data[(a * 16) as usize..(b * 16) as usize])
                    .unwrap();
            });
        }
    });
    assert_eq!(repo.uploads().unwrap()[0].parts_stored, vec![0, 1, 2]);
    let c1 = repo
        .complete_upload(&id, "main", qstore::CommitOptions::default())
        .unwrap();
    let c2 = repo
        .complete_upload(&id, "main", qstore::CommitOptions::default())
        .unwrap();
    assert_eq!(c1, c2);
    let fresh = Repository::open(&addr).unwrap();
    assert_eq!(
        fresh
            .reader("main", "parts/psi")
            .unwrap()
            .read_all()
            .unwrap(),
        data
    );
    // An aborted upload's parts go with gc.
    let id = repo
        .begin_upload("parts/phi", &info, qstore::KindRequest::Auto, 2)
        .unwrap();
    let (a, b) = qstore::repo::upload::block_range(n, 2, 0);
    repo.put_part(
        &id,
        0,
        &noise_amps(n as usize, 6)[(a * 16) as usize..(b * 16) as usize],
    )
    .unwrap();
    repo.abort_upload(&id).unwrap();
    let g = repo
        .gc(&qstore::GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    assert!(g.packs_deleted >= 1, "{g:?}");
    assert!(repo.fsck(true).unwrap().healthy());
}
