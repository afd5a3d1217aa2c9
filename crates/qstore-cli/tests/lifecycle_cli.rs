//! Lifecycle end to end with real processes: a scratch space whose process is killed is
//! reclaimed by `gc` after its lease expires and not before; `gc` running in a loop while four
//! writer processes commit for a minute never breaks a reachable state.

use qstore::Repository;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn qstore(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .args(args)
        .output()
        .unwrap()
}

fn spawn_holder(repo: &Path, ttl: &str) -> (std::process::Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .args(["scratch-hold", "--ttl", ttl])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let id = line
        .trim()
        .strip_prefix("ready ")
        .expect("holder is ready")
        .to_string();
    (child, id)
}

#[test]
fn a_killed_scratch_holder_is_reclaimed_after_its_lease_expires_and_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    assert!(
        qstore(&repo, &["init", repo.to_str().unwrap()])
            .status
            .success()
    );
    let (mut dead, dead_id) = spawn_holder(&repo, "3");
    let (mut live, live_id) = spawn_holder(&repo, "3");
    let spill = |id: &str| repo.join("scratch").join(id);
    assert!(
        spill(&dead_id).join("seg-000000.spill").is_file(),
        "the holder spilled to disk"
    );
    dead.kill().unwrap(); // SIGKILL: no cleanup runs
    dead.wait().unwrap();
    let gc = qstore(&repo, &["gc", "--grace", "0s", "--json"]);
    assert!(gc.status.success());
    let r: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(
        r["scratch_reclaimed"].as_array().unwrap().len(),
        0,
        "lease not expired yet"
    );
    assert!(
        spill(&dead_id).exists(),
        "not reclaimed before the lease expires"
    );
    let ls = String::from_utf8(qstore(&repo, &["scratch", "ls"]).stdout).unwrap();
    assert!(ls.contains(&dead_id) && ls.contains(&live_id), "{ls}");
    std::thread::sleep(Duration::from_millis(3500));
    let gc = qstore(&repo, &["gc", "--grace", "0s", "--json"]);
    let r: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert_eq!(r["scratch_reclaimed"], serde_json::json!([dead_id]), "{r}");
    assert!(!spill(&dead_id).exists(), "reclaimed after expiry");
    assert!(
        spill(&live_id).exists(),
        "the live holder renews its lease and is never touched"
    );
    let rm = qstore(&repo, &["scratch", "rm", &live_id]);
    assert_eq!(rm.status.code(), Some(6), "a live space needs --force");
    live.kill().unwrap();
    live.wait().unwrap();
    assert!(
        qstore(&repo, &["scratch", "rm", &live_id, "--force"])
            .status
            .success()
    );
    assert!(!spill(&live_id).exists());
}

#[test]
fn gc_in_a_loop_while_four_writers_commit_for_a_minute() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("states");
    assert!(
        qstore(
            &repo,
            &["init", repo.to_str().unwrap(), "--chunk-size", "1024"]
        )
        .status
        .success()
    );
    let writers: Vec<_> = (0..4)
        .map(|w| {
            Command::new(env!("CARGO_BIN_EXE_qstore"))
                .env("QSTORE_REPO", &repo)
                .args([
                    "commit-loop",
                    &format!("w{w}"),
                    "--cycle",
                    "5",
                    "--seconds",
                    "60",
                ])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let started = Instant::now();
    let mut runs = 0;
    let mut freed = 0u64;
    while started.elapsed() < Duration::from_secs(61) {
        let o = qstore(
            &repo,
            &["gc", "--grace", "0s", "--threshold", "0.2", "--json"],
        );
        assert!(
            o.status.success(),
            "gc failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        freed += r["bytes_freed"].as_u64().unwrap();
        runs += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut commits = 0;
    for w in writers {
        let o = w.wait_with_output().unwrap();
        assert!(
            o.status.success(),
            "writer failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        commits += String::from_utf8_lossy(&o.stdout).lines().count();
    }
    assert!(
        runs >= 10 && commits >= 40,
        "{runs} gc runs, {commits} commits"
    );
    assert!(freed > 0, "gc reclaimed garbage while writers ran");
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    let head = r.branch_head("main").unwrap();
    let states = r.list_states(&head, None).unwrap();
    assert_eq!(states.len(), 20, "4 writers x 5 cycling paths");
    for (p, _) in &states {
        assert_eq!(r.reader("main", p).unwrap().read_all().unwrap().len(), 4096);
    }
    let fsck = qstore(&repo, &["fsck", "--full"]);
    assert!(
        fsck.status.success(),
        "fsck: {}",
        String::from_utf8_lossy(&fsck.stdout)
    );
    // Expired history goes too.
    assert!(
        qstore(&repo, &["expire", "main", "--older-than", "0s"])
            .status
            .success()
    );
    assert!(qstore(&repo, &["gc", "--grace", "0s"]).status.success());
    assert!(qstore(&repo, &["fsck", "--full"]).status.success());
    assert_eq!(r.log("main", 1_000_000).unwrap().len(), 1);
}
