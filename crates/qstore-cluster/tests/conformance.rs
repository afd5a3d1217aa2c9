//! One conformance suite for every backend, in the manner of `object_store`'s integration
//! tests: the same cases run against each blob storage (memory, local, S3 on Garage) and
//! each coordination (memory, local, etcd; S3 conditional writes where a server honours
//! them), and the same repository cases against a repository on each.

mod common;

use qstore::coord::local::LocalCoordination;
use qstore::coord::memory::MemoryCoordination;
use qstore::coord::{Coordination, LockMode};
use qstore::refs::CasOutcome;
use qstore::storage::local::LocalStorage;
use qstore::storage::memory::MemoryStorage;
use qstore::storage::{PutMode, PutOutcome, Storage};
use qstore::{
    ArrayInfo, CommitOptions, DType, Error, GcOptions, ObjectId, PutOptions, RefName, Repository,
};
use std::sync::Arc;
use std::time::Duration;

fn blob(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// Every storage case.
fn storage_suite(s: &dyn Storage, big: usize) {
    // put, get, size, read_at, Create over an existing blob
    let a = blob(1000, 1);
    assert_eq!(
        s.put("packs/a.pack", &a, PutMode::Create).unwrap(),
        PutOutcome::Written
    );
    assert_eq!(
        s.put("packs/a.pack", &blob(10, 2), PutMode::Create)
            .unwrap(),
        PutOutcome::AlreadyExists
    );
    assert_eq!(s.get("packs/a.pack").unwrap(), a);
    assert_eq!(s.size("packs/a.pack").unwrap(), 1000);
    let mut buf = vec![0u8; 100];
    s.read_at("packs/a.pack", 450, &mut buf).unwrap();
    assert_eq!(buf, a[450..550]);
    assert!(
        s.read_at("packs/a.pack", 950, &mut buf).is_err(),
        "read past the end"
    );
    // missing blobs are BlobNotFound
    assert!(matches!(
        s.get("packs/none.pack"),
        Err(Error::BlobNotFound(_))
    ));
    assert!(matches!(
        s.size("packs/none.pack"),
        Err(Error::BlobNotFound(_))
    ));
    // streamed writes: nothing visible before finish, all of it after
    let b = blob(big, 3);
    let mut w = s.writer("packs/b.pack").unwrap();
    for part in b.chunks(1 << 20) {
        w.write_all(part).unwrap();
    }
    assert!(matches!(
        s.size("packs/b.pack"),
        Err(Error::BlobNotFound(_))
    ));
    w.finish().unwrap();
    assert_eq!(s.size("packs/b.pack").unwrap(), big as u64);
    let mut tail = vec![0u8; 4096];
    s.read_at("packs/b.pack", big as u64 - 4096, &mut tail)
        .unwrap();
    assert_eq!(tail, b[big - 4096..]);
    assert_eq!(s.get("packs/b.pack").unwrap(), b);
    // an abandoned writer leaves nothing
    let mut w = s.writer("packs/c.pack").unwrap();
    w.write_all(&blob(5000, 4)).unwrap();
    drop(w);
    assert!(matches!(
        s.size("packs/c.pack"),
        Err(Error::BlobNotFound(_))
    ));
    // listing: direct children only, sorted, with sizes
    s.put("packs/sub/x", b"x", PutMode::Overwrite).unwrap();
    s.put("other/y", b"y", PutMode::Overwrite).unwrap();
    let l = s.list("packs/").unwrap();
    let keys: Vec<&str> = l.iter().map(|b| b.key.as_str()).collect();
    assert_eq!(keys, ["packs/a.pack", "packs/b.pack"]);
    assert_eq!(l[0].size, 1000);
    assert_eq!(
        s.list_keys("packs/").unwrap(),
        ["packs/a.pack", "packs/b.pack"]
    );
    // overwrite and delete (missing is fine)
    s.put("other/y", b"z", PutMode::Overwrite).unwrap();
    assert_eq!(s.get("other/y").unwrap(), b"z");
    s.delete("packs/a.pack").unwrap();
    s.delete("packs/a.pack").unwrap();
    assert!(matches!(s.get("packs/a.pack"), Err(Error::BlobNotFound(_))));
    assert_eq!(s.list_keys("packs/").unwrap(), ["packs/b.pack"]);
}

fn id(n: u8) -> ObjectId {
    ObjectId::from_hex(&format!("{n:02x}").repeat(32)).unwrap()
}

/// Every coordination case.
fn coordination_suite(c: &dyn Coordination, binds: bool) {
    let main = RefName::branch("main").unwrap();
    let tag = RefName::tag("v1").unwrap();
    let refs = c.refs();
    assert_eq!(refs.get(&main).unwrap(), None);
    assert_eq!(
        refs.compare_and_swap(&main, None, Some(id(1))).unwrap(),
        CasOutcome::Swapped
    );
    assert_eq!(
        refs.compare_and_swap(&main, None, Some(id(2))).unwrap(),
        CasOutcome::Mismatch {
            actual: Some(id(1))
        }
    );
    assert_eq!(
        refs.compare_and_swap(&main, Some(id(3)), Some(id(2)))
            .unwrap(),
        CasOutcome::Mismatch {
            actual: Some(id(1))
        }
    );
    assert_eq!(
        refs.compare_and_swap(&main, Some(id(1)), Some(id(2)))
            .unwrap(),
        CasOutcome::Swapped
    );
    assert_eq!(
        refs.compare_and_swap(&tag, None, Some(id(1))).unwrap(),
        CasOutcome::Swapped
    );
    assert_eq!(
        refs.list().unwrap(),
        vec![(main.clone(), id(2)), (tag.clone(), id(1))]
    );
    assert_eq!(
        refs.compare_and_swap(&tag, Some(id(1)), None).unwrap(),
        CasOutcome::Swapped
    );
    assert_eq!(refs.get(&tag).unwrap(), None);
    assert_eq!(
        refs.compare_and_swap(&tag, Some(id(1)), None).unwrap(),
        CasOutcome::Mismatch { actual: None }
    );

    // generation fence
    let g0 = c.generation().unwrap();
    assert_eq!(
        c.compare_and_swap_at(&main, Some(id(2)), Some(id(3)), g0)
            .unwrap(),
        CasOutcome::Swapped
    );
    let g1 = c.bump_generation().unwrap();
    assert_eq!(g1, g0 + 1);
    assert_eq!(c.generation().unwrap(), g1);
    assert!(matches!(
        c.compare_and_swap_at(&main, Some(id(3)), Some(id(4)), g0),
        Err(Error::LeaseLost { .. })
    ));
    assert_eq!(
        refs.get(&main).unwrap(),
        Some(id(3)),
        "a fenced swap changes nothing"
    );
    assert_eq!(
        c.compare_and_swap_at(&main, Some(id(3)), Some(id(4)), g1)
            .unwrap(),
        CasOutcome::Swapped
    );

    // documents
    assert_eq!(c.document("shallow.json").unwrap(), None);
    c.put_document("shallow.json", b"[\"a\"]").unwrap();
    c.put_document("shallow.json", b"[\"b\"]").unwrap();
    assert_eq!(
        c.document("shallow.json").unwrap().as_deref(),
        Some(&b"[\"b\"]"[..])
    );

    // locks: shared with shared, not with exclusive
    let s1 = c.lock("gc", LockMode::Shared).unwrap();
    let s2 = c
        .try_lock("gc", LockMode::Shared)
        .unwrap()
        .expect("two shared holders");
    assert!(c.try_lock("gc", LockMode::Exclusive).unwrap().is_none());
    drop(s1);
    assert!(c.try_lock("gc", LockMode::Exclusive).unwrap().is_none());
    drop(s2);
    let x = c
        .try_lock("gc", LockMode::Exclusive)
        .unwrap()
        .expect("free now");
    assert!(c.try_lock("gc", LockMode::Shared).unwrap().is_none());
    assert!(
        c.try_lock("merge", LockMode::Exclusive).unwrap().is_some(),
        "locks are by name"
    );
    // a waiting shared taker gets the lock once the exclusive holder lets go
    std::thread::scope(|sc| {
        let t = sc.spawn(|| c.lock("gc", LockMode::Shared).map(|_| ()));
        std::thread::sleep(Duration::from_millis(300));
        assert!(!t.is_finished(), "shared waits for the exclusive holder");
        drop(x);
        t.join().unwrap().unwrap();
    });

    // the repository id binding
    if binds {
        c.bind("11111111-1111-4111-8111-111111111111", true)
            .unwrap();
        c.bind("11111111-1111-4111-8111-111111111111", false)
            .unwrap();
        for create in [false, true] {
            let e = c
                .bind("22222222-2222-4222-8222-222222222222", create)
                .unwrap_err();
            assert!(matches!(e, Error::RefStoreMismatch { .. }), "{e}");
            assert!(e.to_string().contains("11111111"), "{e}");
        }
    }
}

/// Every repository case, on a fresh repository at `address`.
fn repository_suite(address: &str) {
    let repo = Repository::init(
        address,
        qstore::RepoConfig {
            chunk_size: 1 << 16,
            ..Default::default()
        },
    )
    .unwrap();
    let info = ArrayInfo {
        dtype: DType::Complex128,
        shape: vec![1 << 14],
    };
    let state = |seed: u8| blob(16 << 14, seed);
    let mut tx = repo.transaction("main").unwrap();
    tx.put("a/psi", &info, &state(1), &PutOptions::default())
        .unwrap();
    let c1 = tx.commit(CommitOptions::default()).unwrap();
    // four writers at once on disjoint paths: every commit lands
    std::thread::scope(|sc| {
        for t in 0..4u8 {
            let repo = Repository::open(address).unwrap();
            let info = info.clone();
            sc.spawn(move || {
                for k in 0..3u8 {
                    let mut tx = repo.transaction("main").unwrap();
                    tx.put(
                        &format!("w{t}/s{k}"),
                        &info,
                        &state(10 * t + k),
                        &PutOptions::default(),
                    )
                    .unwrap();
                    tx.commit(CommitOptions::default()).unwrap();
                }
            });
        }
    });
    let again = Repository::open(address).unwrap();
    assert_eq!(again.log("main", 100).unwrap().len(), 1 + 1 + 12);
    for t in 0..4u8 {
        for k in 0..3u8 {
            let back = again
                .reader("main", &format!("w{t}/s{k}"))
                .unwrap()
                .read_all()
                .unwrap();
            assert_eq!(back, state(10 * t + k));
        }
    }
    again.create_tag("first", &c1.to_hex()).unwrap();
    let before_delete = again.branch_head("main").unwrap();
    let mut tx = again.transaction("main").unwrap();
    tx.delete("w0").unwrap();
    tx.commit(CommitOptions::default()).unwrap();
    // gc with no grace: only garbage (objects of rebased attempts) goes; history stays.
    again
        .gc(&GcOptions {
            grace: Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    let old = before_delete.to_hex();
    assert_eq!(
        again.reader(&old, "w0/s2").unwrap().read_all().unwrap(),
        state(2)
    );
    let f = again.fsck(true).unwrap();
    assert!(f.problems.is_empty(), "{:?}", f.problems);
    assert_eq!(
        again.reader("first", "a/psi").unwrap().read_all().unwrap(),
        state(1)
    );
}

#[test]
fn memory_and_local_backends_conform() {
    storage_suite(&MemoryStorage::default(), 3 << 20);
    let d = tempfile::tempdir().unwrap();
    let ls: Arc<dyn Storage> = Arc::new(LocalStorage::new(d.path()).unwrap());
    storage_suite(ls.as_ref(), 3 << 20);
    coordination_suite(&MemoryCoordination::default(), true);
    let d2 = tempfile::tempdir().unwrap();
    let ls2: Arc<dyn Storage> = Arc::new(LocalStorage::new(d2.path()).unwrap());
    coordination_suite(&LocalCoordination::new(d2.path(), ls2).unwrap(), false);
    repository_suite(&format!("memory://{}", common::unique("conf")));
    let d3 = tempfile::tempdir().unwrap();
    repository_suite(d3.path().join("r").to_str().unwrap());
}

#[test]
fn s3_storage_on_garage_conforms() {
    let Some(c) = common::cluster() else { return };
    let a = qstore_cluster::S3Address::parse(&c.s3(&common::unique("storage"))).unwrap();
    let s = qstore_cluster::s3::S3Storage::connect(&a).unwrap();
    // 40 MiB: a multipart upload of three parts.
    storage_suite(&s, 40 << 20);
}

#[test]
fn etcd_coordination_conforms() {
    let Some(c) = common::cluster() else { return };
    let qstore_cluster::RefsAddress::Etcd(e) =
        qstore_cluster::RefsAddress::parse(&c.refs(&common::unique("coord"))).unwrap()
    else {
        unreachable!()
    };
    let coord = qstore_cluster::etcd::EtcdCoordination::connect(&e).unwrap();
    coordination_suite(&coord, true);
}

#[test]
fn repositories_on_garage_and_etcd_conform() {
    let Some(c) = common::cluster() else { return };
    qstore_cluster::register();
    let address = c.repo("repo");
    repository_suite(&address);
    // With the on-disk chunk cache: reads are served from it the second time.
    let cache = tempfile::tempdir().unwrap();
    let cached = address.replace(
        "cache_bytes=0",
        &format!(
            "cache_bytes=64MiB&cache_dir={}",
            common::enc(cache.path().to_str().unwrap())
        ),
    );
    let repo = Repository::open(&cached).unwrap();
    let a = repo.reader("main", "a/psi").unwrap().read_all().unwrap();
    let files = std::fs::read_dir(cache.path()).unwrap().count();
    assert!(files > 0, "remote reads filled the disk cache");
    let fresh = Repository::open(&cached).unwrap();
    assert_eq!(
        fresh.reader("main", "a/psi").unwrap().read_all().unwrap(),
        a
    );
}

#[test]
fn s3_refs_conform_on_a_server_that_honours_conditional_writes() {
    let Ok(ep) = std::env::var("QSTORE_TEST_MOTO_ENDPOINT") else {
        assert!(
            std::env::var("QSTORE_REQUIRE_CLUSTER").is_err(),
            "moto is not running"
        );
        return;
    };
    let addr = format!(
        "s3://qstore-moto/{}?endpoint={}&region=us-east-1&cache_bytes=0",
        common::unique("s3refs"),
        common::enc(&ep)
    );
    let a = qstore_cluster::S3Address::parse(&addr).unwrap();
    let coord =
        qstore_cluster::s3refs::S3Coordination::connect(&a).expect("the probe accepts moto");
    coordination_suite(&coord, true);
    qstore_cluster::register();
    let repo = format!(
        "s3://qstore-moto/{}?endpoint={}&region=us-east-1&cache_bytes=0&refs=s3",
        common::unique("s3refs-repo"),
        common::enc(&ep)
    );
    repository_suite(&repo);
}

#[test]
fn the_probe_refuses_s3_refs_on_garage() {
    let Some(c) = common::cluster() else { return };
    qstore_cluster::register();
    let address = format!("{}&refs=s3", c.s3(&common::unique("probe")));
    let e = Repository::init(&address, Default::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("does not honour conditional writes"), "{e}");
    assert!(e.contains("refs=etcd://"), "{e}");
}

/// A one-member etcd with TLS, client-certificate authentication and user/password auth,
/// started by this test (certificates made with openssl).
struct SecureEtcd {
    child: std::process::Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl Drop for SecureEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sh(cmd: &str, dir: &std::path::Path) {
    let o = std::process::Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "{cmd}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A CA (`ca.pem`) and server and client certificates signed by it (for 127.0.0.1, no
/// CommonName: etcd's gateway refuses client certificates with one when auth is on).
fn make_certs(d: &std::path::Path) {
    sh(
        "openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=qstore-test-ca \
           -keyout ca.key -out ca.pem 2>/dev/null && \
         printf 'subjectAltName=IP:127.0.0.1\\nextendedKeyUsage=serverAuth,clientAuth\\n' > ext && \
         for n in server client; do \
           openssl req -newkey rsa:2048 -nodes -subj /O=qstore-test -keyout $n.key -out $n.csr 2>/dev/null && \
           openssl x509 -req -in $n.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
             -extfile ext -out $n.pem 2>/dev/null; \
         done",
        d,
    );
}

fn secure_etcd() -> SecureEtcd {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let port = 39700 + (std::process::id() % 200) as u16;
    make_certs(d);
    let url = format!("https://127.0.0.1:{port}");
    let child = std::process::Command::new("etcd")
        .args([
            "--data-dir",
            d.join("data").to_str().unwrap(),
            "--listen-client-urls",
            &url,
            "--advertise-client-urls",
            &url,
            "--listen-peer-urls",
            &format!("http://127.0.0.1:{}", port + 1),
            "--initial-advertise-peer-urls",
            &format!("http://127.0.0.1:{}", port + 1),
            "--initial-cluster",
            &format!("default=http://127.0.0.1:{}", port + 1),
            "--cert-file",
            "server.pem",
            "--key-file",
            "server.key",
            "--trusted-ca-file",
            "ca.pem",
            "--client-cert-auth",
        ])
        .current_dir(d)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("etcd (Debian etcd-server) is installed");
    let ctl = format!(
        "ETCDCTL_API=3 etcdctl --endpoints {url} --cacert ca.pem --cert client.pem --key client.key"
    );
    let mut up = false;
    for _ in 0..100 {
        if std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{ctl} endpoint health"))
            .current_dir(d)
            .output()
            .is_ok_and(|o| o.status.success())
        {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(up, "secure etcd did not start");
    sh(
        &format!(
            "{ctl} user add root:rootpw && {ctl} user grant-role root root && \
             {ctl} user add qs:qspw && {ctl} role add qs && \
             {ctl} role grant-permission qs --prefix=true readwrite tls/ && \
             {ctl} user grant-role qs qs && {ctl} auth enable"
        ),
        d,
    );
    SecureEtcd { child, dir, port }
}

#[test]
fn etcd_over_tls_with_client_certificates_and_password_auth_conforms() {
    if common::cluster().is_none() {
        return; // etcd is installed by the cluster script
    }
    let e = secure_etcd();
    let d = e.dir.path().to_str().unwrap();
    let base = format!(
        "etcd://127.0.0.1:{}/tls/x?ca={d}/ca.pem&cert={d}/client.pem&key={d}/client.key&user=qs",
        e.port
    );
    let connect = |s: &str| {
        let qstore_cluster::RefsAddress::Etcd(a) = qstore_cluster::RefsAddress::parse(s).unwrap()
        else {
            unreachable!()
        };
        qstore_cluster::etcd::EtcdCoordination::connect(&a)
    };
    // SAFETY: no other test of this process reads or writes QSTORE_ETCD_PASSWORD.
    unsafe { std::env::set_var("QSTORE_ETCD_PASSWORD", "wrong") };
    let err = connect(&base).unwrap_err().to_string();
    assert!(err.contains("authentication failed"), "{err}");
    unsafe { std::env::set_var("QSTORE_ETCD_PASSWORD", "qspw") };
    // Outside the user's permitted prefix: refused by etcd.
    let err = connect(&base.replace("/tls/x", "/other"))
        .map(|c| c.generation().map(|_| ()))
        .and_then(|r| r)
        .unwrap_err()
        .to_string();
    assert!(err.contains("permission denied"), "{err}");
    // Without the client certificate the TLS handshake fails.
    let no_cert = format!(
        "etcd://127.0.0.1:{}/tls/y?ca={d}/ca.pem&user=qs&lease_ttl=3",
        e.port
    );
    assert!(connect(&no_cert).is_err());
    let coord = connect(&base).unwrap();
    coordination_suite(&coord, true);
    unsafe { std::env::remove_var("QSTORE_ETCD_PASSWORD") };
}

#[test]
fn s3_over_https_with_a_private_ca_conforms() {
    let Some(c) = common::cluster() else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    make_certs(d);
    // A TLS front for Garage (socat, from Debian), with the test CA's server certificate.
    let port = 39600 + (std::process::id() % 90) as u16;
    let backend = c.s3_endpoint.trim_start_matches("http://").to_string();
    let mut proxy = std::process::Command::new("socat")
        .args([
            &format!(
                "openssl-listen:{port},reuseaddr,fork,cert=server.pem,key=server.key,verify=0"
            ),
            &format!("tcp:{backend}"),
        ])
        .current_dir(d)
        .spawn()
        .expect("socat is installed (scripts/test-all.sh installs it)");
    std::thread::sleep(Duration::from_millis(500));
    let ep = format!("https://127.0.0.1:{port}");
    let addr = |ca: bool| {
        let mut a = format!(
            "s3://{}/{}?endpoint={}&region=garage&cache_bytes=0",
            c.bucket,
            common::unique("https"),
            common::enc(&ep)
        );
        if ca {
            a += &format!("&ca={}", common::enc(d.join("ca.pem").to_str().unwrap()));
        }
        qstore_cluster::S3Address::parse(&a).unwrap()
    };
    // Without the private CA the server is not trusted.
    let untrusted = qstore_cluster::s3::S3Storage::connect(&addr(false)).unwrap();
    assert!(matches!(
        untrusted.size("config.json"),
        Err(Error::Unavailable { .. })
    ));
    let s = qstore_cluster::s3::S3Storage::connect(&addr(true)).unwrap();
    storage_suite(&s, 20 << 20);
    let _ = proxy.kill();
    let _ = proxy.wait();
}
