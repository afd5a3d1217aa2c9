//! `qstore serve` in-process: the security table (each refusal leaves the repository as it
//! was), request decoding against arbitrary bodies, TLS group negotiation (post-quantum
//! hybrid, `--pq-only`, the X25519 fallback curl uses), the engine as a client over TLS
//! (round trip, one-chunk change sends about one chunk), 16 concurrent committers, and the
//! route table of docs/server.md.

use qstore::backend::Backends;
use qstore::{ArrayInfo, CommitOptions, DType, ObjectId, RefName, Repository};
use qstore_cluster::served::{self, ClientOptions};
use qstore_server::tokens::{Scope, SessionTokens, TokenStore};
use qstore_server::{Limits, RunningServer, ServeConfig};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    path: String,
    server: RunningServer,
    base: String,
    ca: Option<PathBuf>,
    tokens: HashMap<&'static str, String>,
}

fn fixture_with(limits: Limits, tls: bool, pq_only: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("repo").to_str().unwrap().to_string();
    let repo = Repository::open_or_init(&path).unwrap();
    let store = TokenStore::new(repo.coordination());
    let mut tokens = HashMap::new();
    for (name, scope, prefix, expires) in [
        ("read", Scope::Read, None, None),
        ("write", Scope::Write, None, None),
        ("admin", Scope::Admin, None, None),
        ("exp", Scope::Write, Some("exp-".to_string()), None),
        (
            "expired",
            Scope::Admin,
            None,
            Some(std::time::Duration::ZERO),
        ),
        ("revoked", Scope::Admin, None, None),
    ] {
        let (_, t) = store.create(scope, prefix, expires, name).unwrap();
        tokens.insert(name, t);
    }
    store.revoke(&tokens["revoked"]).unwrap();
    drop(repo);
    let (ca, tls_files) = if tls {
        let (ca, cert, key) = qstore_server::tls::write_self_signed(
            &dir.path().join("tls"),
            &["localhost".into(), "127.0.0.1".into()],
        )
        .unwrap();
        (Some(ca), Some((cert, key)))
    } else {
        (None, None)
    };
    let server = qstore_server::start(ServeConfig {
        repos: vec![("default".into(), path.clone())],
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: tls_files,
        pq_only,
        limits,
        ui: true,
        sessions: None,
    })
    .unwrap();
    let base = format!(
        "{}://127.0.0.1:{}",
        if tls { "https" } else { "http" },
        server.addr.port()
    );
    Fixture {
        _dir: dir,
        path,
        server,
        base,
        ca,
        tokens,
    }
}

fn fixture() -> Fixture {
    fixture_with(
        Limits {
            max_body: 4 << 20,
            ..Default::default()
        },
        false,
        false,
    )
}

impl Fixture {
    fn url(&self, route: &str) -> String {
        format!("{}/v1/repos/default/{route}", self.base)
    }

    fn client(&self, token: &str) -> Repository {
        let addr = format!("{}/default", self.base);
        let Backends {
            storage,
            coordination,
        } = served::connect(
            &addr,
            false,
            Some(ClientOptions {
                token: Some(self.tokens[token].clone()),
                ca_cert: self.ca.clone(),
            }),
        )
        .unwrap();
        Repository::open_parts(&addr, storage, coordination.unwrap()).unwrap()
    }

    /// `fsck --full` finds the served repository healthy.
    fn assert_healthy(&self) {
        let r = Repository::open(&self.path).unwrap();
        assert!(
            r.fsck(true).unwrap().healthy(),
            "fsck --full found problems"
        );
    }

    /// Refs and packs as stored: what a refusal must leave alone.
    fn snapshot(&self) -> (Vec<(RefName, ObjectId)>, Vec<String>) {
        let r = Repository::open(&self.path).unwrap();
        let refs = r.refs().unwrap();
        let packs = r.storage().list_keys("packs/").unwrap();
        (refs, packs)
    }
}

/// One request with reqwest; returns (status, body).
fn http(
    method: &str,
    url: &str,
    token: Option<&str>,
    body: Vec<u8>,
    tls: Option<rustls::ClientConfig>,
) -> (u16, Vec<u8>) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let url = url.to_string();
    let token = token.map(str::to_string);
    qstore_cluster::runtime::block_on(async move {
        let mut b = reqwest::Client::builder().no_proxy();
        if let Some(t) = tls {
            b = b.tls_backend_preconfigured(t);
        }
        let c = b.build().unwrap();
        let mut rb = c.request(method, url).body(body);
        if let Some(t) = token {
            rb = rb.bearer_auth(t);
        }
        match rb.send().await {
            Ok(r) => {
                let s = r.status().as_u16();
                (s, r.bytes().await.unwrap_or_default().to_vec())
            }
            Err(e) => (0, format!("{e:?}").into_bytes()),
        }
    })
    .unwrap()
}

fn json(b: &[u8]) -> serde_json::Value {
    serde_json::from_slice(b).unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(b)))
}

fn state(n: u32, seed: u64) -> Vec<u8> {
    let mut v = vec![0f64; 2 << n];
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for a in v.iter_mut() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *a = (x >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
    }
    let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
    v.iter_mut().for_each(|a| *a /= norm);
    bytemuck::cast_slice(&v).to_vec()
}

fn put(repo: &Repository, branch: &str, path: &str, data: &[u8]) -> ObjectId {
    let mut tx = repo.transaction(branch).unwrap();
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![data.len() as u64 / 16],
    };
    tx.put(path, &info, data, &Default::default()).unwrap();
    tx.commit(CommitOptions {
        message: format!("put {path}"),
        author: "test".into(),
        metadata: Default::default(),
    })
    .unwrap()
}

#[test]
fn security_table_refuses_and_changes_nothing() {
    let f = fixture();
    let admin = f.client("admin");
    let head = put(&admin, "main", "psi", &state(8, 1));
    let before = f.snapshot();
    let pack = before.1[0].clone();
    let pack_bytes = Repository::open(&f.path)
        .unwrap()
        .storage()
        .get(&pack)
        .unwrap();
    let t = |n: &str| Some(f.tokens[n].clone());
    let cas = |name: &str| {
        serde_json::to_vec(
            &serde_json::json!({"name": name, "expected": head.to_hex(), "new": null}),
        )
        .unwrap()
    };
    let new_pack = "packs/00112233445566778899aabbccddeeff.pack";
    #[allow(clippy::type_complexity)]
    let table: Vec<(&str, &str, String, Option<String>, Vec<u8>, u16)> = vec![
        ("no token", "GET", f.url("refs"), None, vec![], 401),
        ("malformed token", "GET", f.url("refs"), Some("qst_nope".into()), vec![], 401),
        ("unknown token", "GET", f.url("refs"), Some(format!("qst_{}_{}", "0".repeat(16), "0".repeat(64))), vec![], 401),
        ("expired token", "GET", f.url("refs"), t("expired"), vec![], 401),
        ("revoked token", "GET", f.url("refs"), t("revoked"), vec![], 401),
        ("read token uploads", "PUT", f.url(&format!("store/blob?key={new_pack}")), t("read"), pack_bytes.clone(), 403),
        ("read token moves a ref", "POST", f.url("store/cas"), t("read"), cas("branches/main"), 403),
        ("read token puts a state", "PUT", f.url("data/x?shape=2"), t("read"), vec![0; 32], 403),
        ("exp- token moves main", "POST", f.url("store/cas"), t("exp"), cas("branches/main"), 403),
        ("exp- token moves main (API)", "POST", f.url("refs"), t("exp"), serde_json::to_vec(&serde_json::json!({"name": "branches/main", "target": "main", "expected": head.to_hex()})).unwrap(), 403),
        ("exp- token commits to main", "PUT", f.url("data/x?shape=2&branch=main"), t("exp"), vec![0; 32], 403),
        ("write token deletes a blob", "DELETE", f.url(&format!("store/blob?key={pack}")), t("write"), vec![], 403),
        ("write token runs gc", "POST", f.url("gc"), t("write"), vec![], 403),
        ("write token overwrites the config", "PUT", f.url("store/blob?key=config.json&mode=overwrite"), t("write"), b"{}".to_vec(), 403),
        ("write token reads the tokens", "GET", f.url("store/document?name=access-tokens.json"), t("write"), vec![], 400),
        ("oversized body", "PUT", f.url(&format!("store/blob?key={new_pack}")), t("admin"), vec![0; 5 << 20], 413),
        ("oversized state", "PUT", f.url("data/big?shape=327680"), t("admin"), vec![0; 5 << 20], 413),
        ("key traversal", "GET", f.url("store/blob?key=packs/../config.json"), t("admin"), vec![], 400),
        ("absolute key", "GET", f.url("store/blob?key=/etc/passwd"), t("admin"), vec![], 400),
        ("key outside packs", "PUT", f.url("store/blob?key=refs/main"), t("admin"), vec![1], 400),
        ("state path traversal", "GET", f.url("states/a%2F..%2Fb"), t("admin"), vec![], 400),
        ("state path encoded traversal", "GET", f.url("data/..%2Fconfig.json"), t("admin"), vec![], 400),
        ("malformed ref name", "POST", f.url("store/cas"), t("admin"), cas("branches/../main"), 400),
        ("ref outside branches and tags", "GET", f.url("store/ref?name=refs/x"), t("admin"), vec![], 400),
        ("malformed repository name", "GET", format!("{}/v1/repos/a%2F..%2Fb/refs", f.base), t("admin"), vec![], 400),
        ("malformed JSON", "POST", f.url("store/cas"), t("admin"), b"{\"name\": ".to_vec(), 400),
        ("JSON of the wrong shape", "POST", f.url("store/lock"), t("admin"), b"[1,2]".to_vec(), 400),
        ("malformed commit id", "POST", f.url("store/cas"), t("admin"), br#"{"name":"branches/main","expected":"zz","new":null}"#.to_vec(), 400),
        ("ref to a commit not stored", "POST", f.url("store/cas"), t("admin"), serde_json::to_vec(&serde_json::json!({"name": "branches/main", "expected": head.to_hex(), "new": "11".repeat(32)})).unwrap(), 400),
        ("truncated pack", "PUT", f.url(&format!("store/blob?key={new_pack}")), t("admin"), pack_bytes[..pack_bytes.len() / 2].to_vec(), 400),
        ("damaged pack", "PUT", f.url(&format!("store/blob?key={new_pack}")), t("admin"), { let mut b = pack_bytes.clone(); b[40] ^= 1; b }, 400),
        ("garbage pack", "PUT", f.url(&format!("store/blob?key={new_pack}")), t("admin"), vec![7; 1000], 400),
        ("truncated state body", "PUT", f.url("data/x?shape=256"), t("admin"), vec![0; 1000], 400),
        ("malformed shape", "PUT", f.url("data/x?shape=1,,2"), t("admin"), vec![0; 16], 400),
        ("unknown dtype", "PUT", f.url("data/x?dtype=complex7"), t("admin"), vec![0; 16], 400),
        ("NaN state", "PUT", f.url("data/x?shape=2"), t("admin"), [f64::NAN.to_le_bytes(), [0; 8], [0; 8], [0; 8]].concat(), 400),
        // The routes behind the web view.
        ("no token: inspector", "GET", f.url("inspect/psi"), None, vec![], 401),
        ("no token: series", "GET", f.url("series/psi"), None, vec![], 401),
        ("no token: graph", "GET", f.url("graph"), None, vec![], 401),
        ("no token: storage", "GET", f.url("storage"), None, vec![], 401),
        ("no token: repositories", "GET", format!("{}/v1/repos", f.base), None, vec![], 401),
        ("revoked token: repositories", "GET", format!("{}/v1/repos", f.base), t("revoked"), vec![], 401),
        ("a login code where none was made", "POST", format!("{}/ui/session", f.base), Some(format!("qsc_{}", "0".repeat(64))), vec![], 404),
        ("inspector path traversal", "GET", f.url("inspect/..%2Fconfig.json"), t("read"), vec![], 400),
        ("series final path traversal", "GET", f.url("series/psi?final=..%2Fx"), t("read"), vec![], 400),
        ("graph page of a negative size", "GET", f.url("graph?limit=-1"), t("read"), vec![], 400),
        ("inspector with a malformed k", "GET", f.url("inspect/psi?k=lots"), t("read"), vec![], 400),
    ];
    let mut failures = Vec::new();
    for (what, method, url, token, body, want) in table {
        let (status, body) = http(method, &url, token.as_deref(), body, None);
        if status != want {
            failures.push(format!(
                "{what}: {status} (wanted {want}): {}",
                String::from_utf8_lossy(&body)
            ));
            continue;
        }
        // Every refusal is JSON with a kind.
        let j = json(&body);
        assert!(
            j["kind"].is_string() && j["error"].is_string(),
            "{what}: {j}"
        );
        // No secret in any answer.
        for tok in f.tokens.values() {
            assert!(
                !String::from_utf8_lossy(&body).contains(tok.as_str()),
                "{what}"
            );
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
    assert_eq!(f.snapshot(), before, "a refusal changed the repository");
    f.assert_healthy();

    // What the scopes do allow.
    let (s, b) = http(
        "POST",
        &f.url("store/cas"),
        t("exp").as_deref(),
        serde_json::to_vec(
            &serde_json::json!({"name": "branches/exp-a", "expected": null, "new": head.to_hex()}),
        )
        .unwrap(),
        None,
    );
    assert_eq!((s, json(&b)["swapped"].as_bool()), (200, Some(true)));
    let (s, b) = http("GET", &f.url("whoami"), t("read").as_deref(), vec![], None);
    assert_eq!(s, 200);
    assert_eq!(json(&b)["scope"], "read");
    assert_eq!(
        http("GET", &format!("{}/healthz", f.base), None, vec![], None).0,
        200
    );
    let (s, m) = http("GET", &format!("{}/metrics", f.base), None, vec![], None);
    assert_eq!(s, 200);
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("qstore_requests_total{status=\"401\"} 11"),
        "{m}"
    );
    assert!(
        m.contains("qstore_refusals_total{kind=\"too_large\"} 2"),
        "{m}"
    );
}

#[test]
fn arbitrary_request_bodies_are_refused_cleanly() {
    use proptest::prelude::*;
    let f = fixture();
    let admin = f.client("admin");
    put(&admin, "main", "psi", &state(6, 2));
    let before = f.snapshot();
    let token = f.tokens["admin"].clone();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 48,
        ..Default::default()
    });
    let routes = [
        ("POST", "store/cas"),
        ("POST", "store/lock"),
        ("POST", "store/lease/renew"),
        ("POST", "store/bind"),
        ("POST", "refs"),
        ("POST", "gc"),
        (
            "PUT",
            "store/blob?key=packs/00000000000000000000000000000001.pack",
        ),
    ];
    runner
        .run(
            &(
                0..routes.len(),
                proptest::collection::vec(any::<u8>(), 0..600),
            ),
            |(i, body)| {
                let (m, r) = routes[i];
                let (status, answer) = http(m, &f.url(r), Some(&token), body, None);
                // Either accepted (a body that happens to be valid) or refused as bad input;
                // never a server error and never a dropped connection.
                prop_assert!(
                    status == 200
                        || status == 204
                        || status == 400
                        || status == 404
                        || status == 409,
                    "{m} {r}: {status} {}",
                    String::from_utf8_lossy(&answer)
                );
                Ok(())
            },
        )
        .unwrap();
    let after = f.snapshot();
    assert_eq!(after.0, before.0, "an arbitrary body moved a ref");
    assert!(
        !after
            .1
            .iter()
            .any(|k| k.ends_with("00000000000000000000000000000001.pack")),
        "an arbitrary body stored a pack"
    );
    f.assert_healthy();
}

fn client_tls(
    ca: &Path,
    groups: Vec<&'static dyn rustls::crypto::SupportedKxGroup>,
) -> rustls::ClientConfig {
    let mut p = served::pq_provider();
    p.kx_groups = groups;
    served::tls_client_config(Some(ca), p).unwrap()
}

#[test]
fn tls_prefers_ml_kem_and_pq_only_refuses_classical_clients() {
    use rustls::crypto::aws_lc_rs::kx_group::{X25519, X25519MLKEM768};
    let f = fixture_with(Limits::default(), true, false);
    let ca = f.ca.clone().unwrap();
    let read = f.tokens["read"].clone();
    let who = |tls| {
        let (s, b) = http("GET", &f.url("whoami"), Some(&read), vec![], Some(tls));
        assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
        json(&b)["tls_group"].as_str().unwrap().to_string()
    };
    assert_eq!(who(client_tls(&ca, vec![X25519MLKEM768])), "X25519MLKEM768");
    assert_eq!(
        who(client_tls(&ca, vec![X25519MLKEM768, X25519])),
        "X25519MLKEM768"
    );
    assert_eq!(who(client_tls(&ca, vec![X25519])), "X25519");
    let (_, m) = http(
        "GET",
        &format!("{}/metrics", f.base),
        None,
        vec![],
        Some(client_tls(&ca, vec![X25519MLKEM768])),
    );
    let m = String::from_utf8(m).unwrap();
    assert!(
        m.contains("qstore_tls_handshakes_total{group=\"X25519MLKEM768\"} 3"),
        "{m}"
    );
    assert!(
        m.contains("qstore_tls_handshakes_total{group=\"X25519\"} 1"),
        "{m}"
    );

    // curl (OpenSSL without ML-KEM) connects through the X25519 fallback.
    let out = std::process::Command::new("curl")
        .args(["-sS", "--fail", "--cacert"])
        .arg(&ca)
        .arg("-H")
        .arg(format!("Authorization: Bearer {read}"))
        .arg(f.url("whoami"))
        .output()
        .expect("curl is installed by the test script");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(json(&out.stdout)["tls_group"], "X25519");
    // Without the CA, clients refuse the server.
    let plain = served::tls_client_config(None, served::pq_provider()).unwrap();
    assert_eq!(
        http("GET", &f.url("whoami"), Some(&read), vec![], Some(plain)).0,
        0
    );

    let pq = fixture_with(Limits::default(), true, true);
    let ca = pq.ca.clone().unwrap();
    let read = pq.tokens["read"].clone();
    let (s, b) = http(
        "GET",
        &pq.url("whoami"),
        Some(&read),
        vec![],
        Some(client_tls(&ca, vec![X25519MLKEM768])),
    );
    assert_eq!(
        (s, json(&b)["tls_group"].as_str().map(str::to_string)),
        (200, Some("X25519MLKEM768".into()))
    );
    let (s, b) = http(
        "GET",
        &pq.url("whoami"),
        Some(&read),
        vec![],
        Some(client_tls(&ca, vec![X25519])),
    );
    assert_eq!(s, 0, "an X25519-only client got through --pq-only");
    assert!(
        String::from_utf8_lossy(&b).contains("HandshakeFailure")
            || String::from_utf8_lossy(&b).contains("handshake"),
        "{}",
        String::from_utf8_lossy(&b)
    );
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(&ca)
        .arg(pq.url("whoami"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "curl got through --pq-only");
    let (_, m) = http(
        "GET",
        &format!("{}/metrics", pq.base),
        None,
        vec![],
        Some(client_tls(&ca, vec![X25519MLKEM768])),
    );
    assert!(
        String::from_utf8(m)
            .unwrap()
            .contains("qstore_tls_handshake_failures_total 2")
    );
}

#[test]
fn engine_over_tls_round_trips_and_sends_only_new_chunks() {
    let f = fixture_with(Limits::default(), true, false);
    let c = f.client("write");
    // 2^20 amplitudes = 16 MiB, 16 chunks of 1 MiB.
    let mut psi = state(20, 3);
    let first = put(&c, "main", "run/psi", &psi);
    let got = c.reader("main", "run/psi").unwrap().read_all().unwrap();
    assert_eq!(got, psi);
    // Change one amplitude: one chunk differs.
    psi[5 << 20] ^= 1;
    let received = |f: &Fixture| {
        f.server
            .state
            .metrics
            .bytes_in
            .load(std::sync::atomic::Ordering::Relaxed)
    };
    let before = received(&f);
    let second = put(&c, "main", "run/psi", &psi);
    let sent = received(&f) - before;
    let chunk = c.config().chunk_size;
    assert!(
        sent <= 2 * chunk,
        "a one-chunk change sent {sent} bytes (chunk {chunk})"
    );
    assert_ne!(first, second);
    // Another client (a reader) sees it; the log and diff work through the engine.
    let r = f.client("read");
    assert_eq!(
        r.reader("main", "run/psi").unwrap().read_all().unwrap(),
        psi
    );
    assert_eq!(r.log("main", 10).unwrap().len(), 3);
    assert_eq!(r.diff(&first.to_hex(), &second.to_hex()).unwrap().len(), 1);
    // A read token cannot commit through the engine either: not authorised, nothing moved.
    let e = (|| {
        let mut tx = r.transaction("main")?;
        tx.put(
            "x",
            &ArrayInfo {
                dtype: DType::Complex128,
                shape: vec![2],
            },
            &state(1, 1),
            &Default::default(),
        )?;
        tx.commit(CommitOptions {
            message: "x".into(),
            author: "t".into(),
            metadata: Default::default(),
        })
    })()
    .unwrap_err();
    assert!(matches!(e, qstore::Error::Unauthorised { .. }), "{e}");
    assert_eq!(r.branch_head("main").unwrap(), second);
    // The API reads the same amplitudes back, in ranges.
    let (s, b) = http(
        "GET",
        &f.url("data/run/psi?start=100&count=3"),
        Some(&f.tokens["read"]),
        vec![],
        Some(served::tls_client_config(f.ca.as_deref(), served::pq_provider()).unwrap()),
    );
    assert_eq!(s, 200);
    assert_eq!(b, psi[100 * 16..103 * 16]);
    f.assert_healthy();
}

#[test]
fn sixteen_clients_committing_to_one_branch_lose_nothing() {
    let f = fixture_with(Limits::default(), true, false);
    let per = 3;
    std::thread::scope(|s| {
        for i in 0..16 {
            let f = &f;
            s.spawn(move || {
                let c = f.client("write");
                for j in 0..per {
                    put(
                        &c,
                        "main",
                        &format!("c{i}/s{j}"),
                        &state(6, (i * 100 + j) as u64),
                    );
                }
            });
        }
    });
    let r = Repository::open(&f.path).unwrap();
    let head = r.resolve("main").unwrap();
    let states = r.list_states(&head, None).unwrap();
    assert_eq!(states.len(), 16 * per, "a commit was lost");
    assert_eq!(r.log("main", 1000).unwrap().len(), 16 * per + 1);
    for i in 0..16 {
        for j in 0..per {
            let got = r
                .reader("main", &format!("c{i}/s{j}"))
                .unwrap()
                .read_all()
                .unwrap();
            assert_eq!(got, state(6, (i * 100 + j) as u64));
        }
    }
    f.assert_healthy();
}

#[test]
fn docs_list_exactly_the_routes_the_server_has() {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/server.md"))
        .unwrap();
    let mut documented = Vec::new();
    for line in doc.lines() {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        if cells.len() >= 4 && ["GET", "PUT", "POST", "DELETE"].contains(&cells[1]) {
            documented.push((
                cells[1].to_string(),
                cells[2].trim_matches('`').to_string(),
                cells[3].to_string(),
            ));
        }
    }
    let routes: Vec<(String, String, String)> = qstore_server::ROUTES
        .iter()
        .map(|(m, p, s)| (m.to_string(), p.to_string(), s.to_string()))
        .collect();
    assert_eq!(documented, routes, "docs/server.md and ROUTES differ");
    // Every listed route exists: with an admin token no route answers "no such route" or 405.
    let f = fixture();
    for (m, p, _) in &routes {
        let url = format!(
            "{}{}",
            f.base,
            p.replace("{repo}", "default").replace("{*path}", "psi")
        );
        let (s, b) = http(m, &url, Some(&f.tokens["admin"]), vec![], None);
        assert_ne!(s, 405, "{m} {p}");
        if s == 404 {
            assert_ne!(json(&b)["kind"], "no_route", "{m} {p}");
        }
    }
}

/// One request, returning the status, a header and the body.
fn http_header(url: &str, header: &str) -> (u16, Option<String>, Vec<u8>) {
    let (url, header) = (url.to_string(), header.to_string());
    qstore_cluster::runtime::block_on(async move {
        let c = reqwest::Client::builder().no_proxy().build().unwrap();
        let r = c.get(url).send().await.unwrap();
        let h = r
            .headers()
            .get(header.as_str())
            .map(|v| v.to_str().unwrap().to_string());
        (r.status().as_u16(), h, r.bytes().await.unwrap().to_vec())
    })
    .unwrap()
}

#[test]
fn web_view_sessions_and_the_routes_behind_the_page() {
    let f = fixture();
    let admin = f.client("admin");
    // GHZ on 3 qubits and a random state on a second commit.
    let mut ghz = vec![0f64; 16];
    ghz[0] = std::f64::consts::FRAC_1_SQRT_2;
    ghz[14] = ghz[0];
    let first = put(&admin, "main", "ghz", bytemuck::cast_slice(&ghz));
    put(&admin, "main", "psi", &state(6, 2));
    let (sessions, code) = SessionTokens::new(Scope::Read);
    let server = qstore_server::start(ServeConfig {
        repos: vec![("default".into(), f.path.clone())],
        listen: "127.0.0.1:0".parse().unwrap(),
        tls: None,
        pq_only: false,
        limits: Limits::default(),
        ui: true,
        sessions: Some(std::sync::Arc::new(sessions)),
    })
    .unwrap();
    let base = format!("http://127.0.0.1:{}", server.addr.port());
    let url = |r: &str| format!("{base}/v1/repos/default/{r}");
    let before = f.snapshot();

    // The page: strict CSP, no data in it.
    for (asset, kind) in [
        ("/ui/", "text/html"),
        ("/ui/app.js", "text/javascript"),
        ("/ui/style.css", "text/css"),
    ] {
        let (s, csp, body) = http_header(&format!("{base}{asset}"), "content-security-policy");
        assert_eq!(s, 200, "{asset}");
        assert!(csp.unwrap().contains("script-src 'self'"), "{asset}");
        for tok in f.tokens.values() {
            assert!(
                !String::from_utf8_lossy(&body).contains(tok.as_str()),
                "{asset}"
            );
        }
        let (_, ct, _) = http_header(&format!("{base}{asset}"), "content-type");
        assert!(ct.unwrap().starts_with(kind), "{asset}");
    }

    // The login code works once.
    let login = |c: &str| http("POST", &format!("{base}/ui/session"), Some(c), vec![], None);
    assert_eq!(login(&format!("qsc_{}", "1".repeat(64))).0, 401);
    assert_eq!(login("").0, 401);
    let (s, b) = login(&code);
    assert_eq!(s, 200);
    let session = json(&b)["token"].as_str().unwrap().to_string();
    assert_eq!(json(&b)["scope"], "read");
    assert_eq!(login(&code).0, 401, "a login code works once");
    let t = Some(session.as_str());

    // The session reads, lists its repositories, and writes nothing.
    let (s, b) = http("GET", &format!("{base}/v1/repos"), t, vec![], None);
    assert_eq!(
        (s, json(&b)),
        (
            200,
            serde_json::json!({"repositories": [{"name": "default", "scope": "read"}]})
        )
    );
    let (s, b) = http(
        "GET",
        &format!("{base}/v1/repos"),
        Some(&f.tokens["write"]),
        vec![],
        None,
    );
    assert_eq!(
        (s, json(&b)["repositories"][0]["scope"].clone()),
        (200, "write".into())
    );
    assert_eq!(http("GET", &url("refs"), t, vec![], None).0, 200);
    let tag = serde_json::to_vec(&serde_json::json!({"name": "tags/t", "target": "main"})).unwrap();
    assert_eq!(http("POST", &url("refs"), t, tag, None).0, 403);
    assert_eq!(
        http("PUT", &url("data/x?shape=2"), t, vec![0; 32], None).0,
        403
    );
    // The session works only on this server: the repository's own tokens do not know it.
    assert_eq!(http("GET", &f.url("refs"), t, vec![], None).0, 401);

    // The inspector of the GHZ state.
    let (s, b) = http("GET", &url("inspect/ghz?k=8"), t, vec![], None);
    assert_eq!(s, 200, "{}", String::from_utf8_lossy(&b));
    let v = json(&b);
    let top: Vec<(String, f64)> = v["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| {
            (
                x["bits"].as_str().unwrap().to_string(),
                x["probability"].as_f64().unwrap(),
            )
        })
        .collect();
    assert_eq!(top.len(), 2, "only the non-zero basis states: {top:?}");
    assert!(top.iter().all(|(_, p)| (p - 0.5).abs() < 1e-12));
    let mut bits: Vec<&str> = top.iter().map(|(b, _)| b.as_str()).collect();
    bits.sort();
    assert_eq!(bits, ["000", "111"]);
    assert_eq!(v["kind"], "statevector");
    assert!((v["entropy_bits"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    assert_eq!(v["bloch"].as_array().unwrap().len(), 3);
    let m = v["marginals"].as_array().unwrap();
    assert_eq!(m.len(), 3);
    assert!(m.iter().all(|p| (p.as_f64().unwrap() - 0.5).abs() < 1e-12));
    assert_eq!(v["amplitudes"].as_array().unwrap().len(), 8);
    // A 6-qubit state: 64 amplitudes are sent; the heat map is for density matrices only.
    let v = json(&http("GET", &url("inspect/psi"), t, vec![], None).1);
    assert_eq!(v["amplitudes"].as_array().unwrap().len(), 64);
    assert!(v["heatmap"].is_null());
    assert_eq!(http("GET", &url("inspect/missing"), t, vec![], None).0, 404);

    // The graph, a page at a time; the series; storage.
    let g = json(&http("GET", &url("graph?limit=2"), t, vec![], None).1);
    assert_eq!(
        (g["commits"].as_array().unwrap().len(), g["more"].as_bool()),
        (2, Some(true))
    );
    assert_eq!(
        g["commits"][0]["refs"],
        serde_json::json!(["branches/main"])
    );
    let g2 = json(&http("GET", &url("graph?offset=1&limit=50"), t, vec![], None).1);
    assert_eq!(g2["commits"][0]["id"], first.to_hex());
    let sr = json(&http("GET", &url("series/ghz?ref=main"), t, vec![], None).1);
    assert_eq!(sr["points"].as_array().unwrap().len(), 1);
    assert!((sr["points"][0]["fidelity_to_final"].as_f64().unwrap() - 1.0).abs() < 1e-12);
    let st = json(&http("GET", &url("storage"), t, vec![], None).1);
    assert!(st["stats"]["dedup_ratio"].is_number() && st["scratch"].is_array());

    assert_eq!(f.snapshot(), before, "the session changed the repository");
    drop(server);
    f.assert_healthy();
}

#[test]
fn arbitrary_queries_of_the_web_view_routes_are_answered_cleanly() {
    use proptest::prelude::*;
    let f = fixture();
    let admin = f.client("admin");
    put(&admin, "main", "psi", &state(4, 3));
    let token = f.tokens["read"].clone();
    let mut runner = proptest::test_runner::TestRunner::new(proptest::test_runner::Config {
        cases: 64,
        ..Default::default()
    });
    let routes = ["inspect/psi", "series/psi", "graph", "storage", "inspect/"];
    runner
        .run(&(0..routes.len(), "[a-z=&%0-9./~-]{0,40}"), |(i, q)| {
            let url = format!("{}?{q}", f.url(routes[i]));
            let (status, answer) = http("GET", &url, Some(&token), vec![], None);
            prop_assert!(
                matches!(status, 200 | 400 | 404),
                "{url}: {status} {}",
                String::from_utf8_lossy(&answer)
            );
            if status != 200 {
                let j = json(&answer);
                prop_assert!(j["kind"].is_string() && j["error"].is_string());
            }
            Ok(())
        })
        .unwrap();
}

#[test]
fn states_written_in_parts_through_the_server() {
    let f = fixture();
    let w = f.client("write");
    let n = 1u64 << 16;
    let data = state(16, 9);
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![n],
    };
    let id = w
        .begin_upload("parts/psi", &info, qstore::KindRequest::Auto, 3)
        .unwrap();
    // Three writers, each its own client.
    std::thread::scope(|s| {
        for k in 0..3u32 {
            let (f, id, data) = (&f, id.clone(), &data);
            s.spawn(move || {
                let c = f.client("write");
                let (a, b) = qstore::repo::upload::block_range(n, 3, k);
                c.put_part(&id, k, &data[(a * 16) as usize..(b * 16) as usize])
                    .unwrap();
            });
        }
    });
    let commit = w
        .complete_upload(&id, "main", CommitOptions::default())
        .unwrap();
    assert_eq!(
        w.complete_upload(&id, "main", CommitOptions::default())
            .unwrap(),
        commit
    );
    let r = f.client("read");
    assert_eq!(
        r.reader("main", "parts/psi").unwrap().read_all().unwrap(),
        data
    );
    // A read token stores no part; a write token aborts its own upload.
    let id2 = w
        .begin_upload("parts/phi", &info, qstore::KindRequest::Auto, 2)
        .unwrap();
    let e = r
        .put_part(&id2, 0, &data[..(n / 2 * 16) as usize])
        .unwrap_err();
    assert_eq!(e.category(), qstore::ErrorCategory::Unauthorised, "{e}");
    w.put_part(&id2, 0, &data[..(n / 2 * 16) as usize]).unwrap();
    w.abort_upload(&id2).unwrap();
    assert!(w.uploads().unwrap().iter().all(|u| u.spec.id != id2));
    f.assert_healthy();
}
