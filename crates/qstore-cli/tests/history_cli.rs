//! History at scale through the `qstore` binary: kill -9 during pack merges (explicit and
//! automatic) never loses an acknowledged commit and leaves a repository that passes
//! `fsck --full`; a version-1 repository reads, refuses changes, and upgrades; `bench
//! --history` reports every figure.

use qstore::Repository;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

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
        "qstore {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// Amplitudes per state written by the commit loops of these tests.
const AMPS: u64 = 8192;

/// The bytes `qstore commit-loop --amps 8192` stores at `.../sNNNNNN` (as its
/// `loop_amplitude`).
fn loop_state(path: &str) -> Vec<u8> {
    let i: u64 = path.rsplit_once("/s").unwrap().1.parse().unwrap();
    (0..2 * AMPS)
        .flat_map(|k| {
            let mut z = (i << 32 | k).wrapping_add(0x9E37_79B9_7F4A_7C15);
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            ((z >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0).to_le_bytes()
        })
        .collect()
}

/// Run `commit-loop`; returns the (commit, path) pairs it reported. With `kill_after`, the
/// process is killed with SIGKILL after that long.
fn commit_loop(
    repo: &Path,
    prefix: &str,
    count: u64,
    kill_after: Option<Duration>,
) -> Vec<(String, String)> {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .env("QSTORE_REPO", repo)
        .args(["commit-loop", prefix, "--count", &count.to_string()])
        .args(["--amps", &AMPS.to_string()])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    if let Some(d) = kill_after {
        std::thread::sleep(d);
        let _ = child.kill();
    }
    child.wait().unwrap();
    let out = BufReader::new(child.stdout.take().unwrap());
    out.lines()
        .map_while(Result::ok)
        .filter_map(|l| {
            let mut p = l.split_whitespace().skip(1);
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect()
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// The repository opens, passes fsck --full, and every acknowledged commit is there with
/// its state bit for bit.
fn check(repo_dir: &Path, acked: &[(String, String)], round: usize) {
    let repo = Repository::open(repo_dir.to_str().unwrap()).unwrap();
    let report = repo.fsck(true).unwrap();
    assert!(report.healthy(), "round {round}: {:#?}", report.problems);
    for (id, path) in acked {
        let c = repo.resolve(id).unwrap();
        let got = repo.reader(&c.to_hex(), path).unwrap().read_all().unwrap();
        assert_eq!(got, loop_state(path), "round {round}: {path} at {id}");
    }
    let head = repo.branch_head("main").unwrap();
    let listed = repo.list_states(&head, None).unwrap().len();
    assert!(listed >= acked.len(), "round {round}");
}

#[test]
fn kill_9_during_merges_loses_nothing_and_fsck_stays_clean() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    // A low threshold: commits merge packs automatically every few commits.
    ok(
        &repo,
        &["init", repo.to_str().unwrap(), "--merge-threshold", "4"],
    );
    // 128 KiB incompressible states: a merge copies megabytes, so kills land inside it.
    let mut acked = commit_loop(&repo, "base", 150, None);
    assert_eq!(acked.len(), 150);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let pack_bytes = || -> (u64, usize) {
        let l = std::fs::read_dir(repo.join("packs")).unwrap();
        let sizes: Vec<u64> = l.map(|e| e.unwrap().metadata().unwrap().len()).collect();
        (sizes.iter().sum(), sizes.len())
    };
    let tmp_files = || std::fs::read_dir(repo.join("tmp")).map_or(0, |d| d.count());
    let (mut during_copy, mut during_delete, mut finished) = (0, 0, 0);
    for round in 0..60 {
        if round % 2 == 0 {
            // An explicit merge of every pack, killed at a random moment.
            let (bytes_before, _) = pack_bytes();
            let tmp_before = tmp_files();
            let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
                .env("QSTORE_REPO", &repo)
                .args(["repack", "--all"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(Duration::from_micros(rng.next() % 150_000));
            let _ = child.kill();
            let status = child.wait().unwrap();
            let (bytes_after, _) = pack_bytes();
            if status.success() {
                finished += 1;
            } else if tmp_files() > tmp_before {
                // Killed while writing the merged pack.
                during_copy += 1;
            } else if bytes_after > bytes_before {
                // Killed after the merged pack was complete, before every source was deleted.
                during_delete += 1;
            }
        } else {
            // Writers whose commits trigger automatic merges, killed at a random moment.
            let d = Duration::from_micros(rng.next() % 60_000);
            acked.extend(commit_loop(
                &repo,
                &format!("r{round:02}"),
                1_000_000,
                Some(d),
            ));
        }
        check(&repo, &acked, round);
    }
    assert!(
        during_copy >= 3 && during_copy + during_delete >= 5,
        "kills inside merges: {during_copy} while copying, {during_delete} while deleting, \
         {finished} merges finished"
    );
    // Afterwards, one repack leaves one pack (and a couple of files besides).
    ok(&repo, &["repack", "--all"]);
    let r = Repository::open(repo.to_str().unwrap()).unwrap();
    assert_eq!(r.storage().list("packs/").unwrap().len(), 1);
    check(&repo, &acked, 99);
}

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

#[test]
fn a_version_1_repository_reads_refuses_changes_and_upgrades() {
    let dir = tempfile::tempdir().unwrap();
    let repo: PathBuf = dir.path().join("repo");
    copy_dir(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("../qstore/tests/fixtures/v1/repo"),
        &repo,
    );
    let listed = ok(&repo, &["ls"]);
    assert!(listed.contains("runs/a/psi"), "{listed}");
    let npy = dir.path().join("x.npy");
    ok(&repo, &["get", "runs/a/psi", "-o", npy.to_str().unwrap()]);
    let o = qstore(&repo, &["put", "new/x", npy.to_str().unwrap(), "-m", "x"]);
    assert_eq!(o.status.code(), Some(6), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("qstore upgrade"),
        "{o:?}"
    );
    let up = ok(&repo, &["upgrade"]);
    assert!(up.contains("from format version 1 to 4"), "{up}");
    ok(&repo, &["put", "new/x", npy.to_str().unwrap(), "-m", "x"]);
    let stats = ok(&repo, &["stats"]);
    assert!(stats.contains("version 4, repository id"), "{stats}");
    assert!(ok(&repo, &["log"]).contains("drop ghz"));
    assert!(ok(&repo, &["upgrade"]).contains("already format version 4"));
    let fsck = qstore(&repo, &["fsck", "--full"]);
    assert!(fsck.status.success(), "{fsck:?}");
}

#[test]
fn bench_history_reports_every_figure() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("history.json");
    let o = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .args([
            "bench",
            "--history",
            "--history-sizes",
            "200,2000",
            "--history-commits",
            "5",
            "--dir",
        ])
        .arg(dir.path().join("bench"))
        .arg("--json-out")
        .arg(&json)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(
        text.contains("single-path commits by fresh processes"),
        "{text}"
    );
    let r: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let sizes = r["sizes"].as_array().unwrap();
    assert_eq!(sizes.len(), 2);
    for s in sizes {
        assert!(s["latency_p50_s"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["ratio_to_baseline"].as_f64().unwrap() > 0.0, "{s}");
        assert!(s["metadata_bytes_p50"].as_u64().unwrap() > 0, "{s}");
        assert!(s["tree_nodes_written_max"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["files"].as_u64().unwrap() <= 64, "{s}");
    }
    let t = r["trajectories"].as_array().unwrap();
    assert_eq!(t.len(), 4);
    assert_eq!(t[3]["commits"], 2000);
    assert!(t[3]["repo_bytes"].as_u64().unwrap() < 16 << 20, "{t:?}");
    assert!(!dir.path().join("bench").exists(), "the bench cleans up");
}
