//! `qstore serve` as a process and the CLI as its client: the tour against an https://
//! repository (put/get/log/branch/diff/run/gc/fsck), the exit codes for "not authorised"
//! (8) and "server unavailable" (9), and kill -9 of the server during uploads (the
//! repository opens clean, clients get errors, their retries succeed).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(repo: &Path, extra: &[&str]) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .args(["serve", "--listen", "127.0.0.1:0", "--repo"])
        .arg(repo)
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts qstore serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .trim()
        .strip_prefix("listening ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    Server {
        child,
        url: format!("{url}/default"),
    }
}

struct Client<'a> {
    url: &'a str,
    token: Option<&'a str>,
    ca: Option<&'a Path>,
}

impl Client<'_> {
    fn run(&self, args: &[&str]) -> Output {
        let mut c = Command::new(env!("CARGO_BIN_EXE_qstore"));
        c.env("QSTORE_REPO", self.url)
            .env_remove("QSTORE_TOKEN")
            .env_remove("QSTORE_CA_CERT")
            .args(args);
        if let Some(t) = self.token {
            c.env("QSTORE_TOKEN", t);
        }
        if let Some(ca) = self.ca {
            c.env("QSTORE_CA_CERT", ca);
        }
        c.output().expect("runs qstore")
    }

    fn ok(&self, args: &[&str]) -> String {
        let o = self.run(args);
        assert!(
            o.status.success(),
            "qstore {args:?} failed: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8(o.stdout).unwrap()
    }

    fn code(&self, args: &[&str]) -> i32 {
        self.run(args).status.code().unwrap_or(-1)
    }
}

fn local(repo: &Path, args: &[&str]) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .arg("--repo")
        .arg(repo)
        .args(args)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "qstore {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

/// A token of `scope` (the last word of `token create`).
fn token(repo: &Path, scope: &str, extra: &[&str]) -> String {
    let mut args = vec!["token", "create", "--scope", scope];
    args.extend_from_slice(extra);
    let out = local(repo, &args);
    out.split_whitespace().last().unwrap().to_string()
}

fn write_state(path: &Path, n: u32, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let data: Vec<u8> = (0..2usize << n)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x >> 11) as f64 / (1u64 << 53) as f64 - 0.5).to_le_bytes()
        })
        .collect();
    let mut bytes = qstore::state::npy::encode_header(&qstore::ArrayInfo {
        dtype: qstore::DType::Complex128,
        shape: vec![1 << n],
    });
    bytes.extend_from_slice(&data);
    std::fs::write(path, &bytes).unwrap();
    bytes
}

fn circuit() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/circuits/ghz_8.qasm")
}

#[test]
fn the_cli_works_against_a_served_repository_over_tls() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    local(&repo, &["init"]);
    let write = token(&repo, "write", &[]);
    let read = token(&repo, "read", &[]);
    let admin = token(&repo, "admin", &[]);
    let exp = token(&repo, "write", &["--branch", "exp-", "--expires", "30d"]);
    let listed = local(&repo, &["token", "list"]);
    assert_eq!(listed.lines().count(), 4);
    for t in [&write, &read, &admin, &exp] {
        assert!(!listed.contains(t.as_str()), "token list shows a secret");
    }
    let tls = dir.path().join("tls");
    let server = serve(&repo, &["--self-signed", tls.to_str().unwrap()]);
    assert!(server.url.starts_with("https://"));
    let ca = tls.join("ca.pem");
    let c = |t: &'static str| -> Client<'_> {
        let tok: Option<&str> = match t {
            "write" => Some(&write),
            "read" => Some(&read),
            "admin" => Some(&admin),
            "exp" => Some(&exp),
            _ => None,
        };
        Client {
            url: &server.url,
            token: tok,
            ca: Some(&ca),
        }
    };

    let psi = dir.path().join("psi.npy");
    let bytes = write_state(&psi, 12, 1);
    c("write").ok(&["put", "states/psi", psi.to_str().unwrap(), "-m", "first"]);
    let back = dir.path().join("back.npy");
    c("read").ok(&["get", "states/psi", "-o", back.to_str().unwrap()]);
    assert_eq!(std::fs::read(&back).unwrap(), bytes);
    c("write").ok(&["branch", "exp-1", "main"]);
    write_state(&psi, 12, 2);
    c("exp").ok(&[
        "put",
        "states/psi",
        psi.to_str().unwrap(),
        "--branch",
        "exp-1",
    ]);
    let log = c("read").ok(&["log", "--ref", "exp-1"]);
    assert_eq!(log.matches("commit ").count(), 3, "{log}");
    let diff = c("read").ok(&["diff", "main", "exp-1"]);
    assert!(diff.contains("states/psi"), "{diff}");
    assert!(c("read").ok(&["ls"]).contains("states/psi"));
    // qstore run with checkpoints on a branch the exp- token may move.
    c("exp").ok(&[
        "run",
        circuit().to_str().unwrap(),
        "--branch",
        "exp-ghz",
        "--checkpoint-every",
        "1",
    ]);
    let top = c("read").ok(&["show", "final", "--ref", "exp-ghz", "--top", "2"]);
    assert!(top.contains("0.5"), "{top}");
    // Admin work through the server.
    c("admin").ok(&["gc", "--grace", "0s"]);
    assert!(c("admin").ok(&["fsck", "--full"]).contains("healthy"));

    // Not authorised: exit code 8, nothing changed.
    let head = local(&repo, &["log", "-n", "1", "--json"]);
    assert_eq!(c("none").code(&["log"]), 8);
    assert_eq!(c("read").code(&["put", "x", psi.to_str().unwrap()]), 8);
    assert_eq!(c("exp").code(&["put", "x", psi.to_str().unwrap()]), 8);
    assert_eq!(c("exp").code(&["tag", "v1", "main"]), 8);
    assert_eq!(c("write").code(&["gc"]), 8);
    local(&repo, &["token", "revoke", exp.split('_').nth(1).unwrap()]);
    assert_eq!(c("exp").code(&["log"]), 8);
    assert_eq!(local(&repo, &["log", "-n", "1", "--json"]), head);
    // The same errors as a local repository: a missing path is "not found" (3).
    assert_eq!(c("read").code(&["get", "nope", "-o", "/dev/null"]), 3);
    // Without the CA the server is not trusted; a server that is down is unavailable (9).
    let untrusted = Client {
        url: &server.url,
        token: Some(&read),
        ca: None,
    };
    assert_eq!(untrusted.code(&["log"]), 9);
    // Plain http:// is for loopback only.
    let far = Client {
        url: "http://example.org:8080/x",
        token: Some(&read),
        ca: None,
    };
    assert_eq!(far.code(&["log"]), 6);
    let url = server.url.clone();
    drop(server);
    let gone = Client {
        url: &url,
        token: Some(&read),
        ca: Some(&ca),
    };
    assert_eq!(gone.code(&["log"]), 9);
    assert!(local(&repo, &["fsck", "--full"]).contains("healthy"));
}

#[test]
fn kill_9_of_the_server_during_uploads_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    local(&repo, &["init"]);
    let write = token(&repo, "write", &[]);
    let files: Vec<PathBuf> = (0..4)
        .map(|i| {
            let p = dir.path().join(format!("s{i}.npy"));
            write_state(&p, 18, 10 + i);
            p
        })
        .collect();
    let mut server = serve(&repo, &[]);
    let url = server.url.clone();
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Each writer puts its state under new paths until a put fails; it remembers the paths
    // the server acknowledged.
    // Per writer: the paths acknowledged, and the put that failed with its exit code.
    type Outcome = (Vec<String>, Option<(String, i32)>);
    let results: Vec<Outcome> = std::thread::scope(|s| {
        let handles: Vec<_> = files
            .iter()
            .enumerate()
            .map(|(i, f)| {
                let (url, write, stop) = (&url, &write, &stop);
                s.spawn(move || {
                    let c = Client {
                        url,
                        token: Some(write),
                        ca: None,
                    };
                    let mut acked = Vec::new();
                    for j in 0.. {
                        let path = format!("w{i}/p{j}");
                        let o = c.run(&["put", &path, f.to_str().unwrap()]);
                        if !o.status.success() {
                            return (acked, Some((path, o.status.code().unwrap_or(-1))));
                        }
                        acked.push(path);
                        if stop.load(std::sync::atomic::Ordering::SeqCst) && j > 50 {
                            break;
                        }
                    }
                    (acked, None)
                })
            })
            .collect();
        // Let every writer get some puts acknowledged, then kill the server mid-upload.
        loop {
            std::thread::sleep(std::time::Duration::from_millis(200));
            let r = qstore::Repository::open(repo.to_str().unwrap()).unwrap();
            let head = r.resolve("main").unwrap();
            if r.list_states(&head, None).unwrap().len() >= 8 {
                break;
            }
        }
        server.child.kill().unwrap(); // SIGKILL
        server.child.wait().unwrap();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    // Every writer saw the server go: "unavailable" (9).
    for (acked, failed) in &results {
        let (path, code) = failed.as_ref().expect("a writer outlived the server");
        assert_eq!(*code, 9, "put {path} after kill -9");
        assert!(!acked.is_empty());
    }
    // The repository opens clean with every acknowledged state.
    assert!(local(&repo, &["fsck", "--full"]).contains("healthy"));
    let r = qstore::Repository::open(repo.to_str().unwrap()).unwrap();
    for (i, (acked, _)) in results.iter().enumerate() {
        for p in acked {
            let (_, e) = r.state("main", p).unwrap();
            assert_eq!(e.qubits, 18, "{p} of writer {i}");
        }
    }
    // Restarted, the failed puts succeed when retried.
    let server = serve(&repo, &[]);
    let c = Client {
        url: &server.url,
        token: Some(&write),
        ca: None,
    };
    for (i, (_, failed)) in results.iter().enumerate() {
        let (path, _) = failed.as_ref().unwrap();
        c.ok(&["put", path, files[i].to_str().unwrap()]);
    }
    drop(server);
    let r = qstore::Repository::open(repo.to_str().unwrap()).unwrap();
    for (path, _) in results.iter().filter_map(|(_, f)| f.as_ref()) {
        r.state("main", path).unwrap();
    }
    assert!(local(&repo, &["fsck", "--full"]).contains("healthy"));
}

#[test]
fn qstore_ui_serves_loopback_only_and_prints_a_one_time_url() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("repo");
    local(&repo, &["init"]);
    // Not on a non-loopback address: usage error (exit 2), nothing served.
    let out = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .arg("--repo")
        .arg(&repo)
        .args(["ui", "--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
    // On loopback: the address, then the URL with the login code after '#'.
    let mut child = Command::new(env!("CARGO_BIN_EXE_qstore"))
        .arg("--repo")
        .arg(&repo)
        .arg("ui")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let base = first.strip_prefix("listening ").unwrap();
    assert!(base.starts_with("http://127.0.0.1:"), "{first}");
    let url = second.strip_prefix("open ").unwrap();
    let code = url
        .strip_prefix(&format!("{base}/ui/#code=qsc_"))
        .unwrap_or_else(|| panic!("{second}"));
    assert_eq!(code.len(), 64);
    assert!(code.bytes().all(|b| b.is_ascii_hexdigit()));
}
