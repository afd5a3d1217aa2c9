//! [`EtcdCoordination`]: refs, leases, the gc generation and documents of a repository in an
//! etcd cluster, spoken over etcd's v3 JSON gateway (`/v3/kv/range`, `/v3/kv/txn`,
//! `/v3/lease/...`, `/v3/auth/authenticate`; present since etcd 3.4), so no code generation
//! (protoc) is needed to build qstore. Every read is linearizable (etcd's default).
//!
//! Keys under the repository's prefix `P/`:
//! - `P/repository-id`: the id of the repository these refs belong to (set once at init);
//! - `P/refs/branches/NAME`, `P/refs/tags/NAME`: a commit id in hex;
//! - `P/gc-generation`: the garbage-collection generation (decimal);
//! - `P/docs/NAME`: small documents (the shallow list);
//! - `P/locks/NAME/exclusive`, `P/locks/NAME/shared/LEASE`: lock holders, each attached to
//!   the holder's lease, so a holder that dies frees its lock when the lease's time to live
//!   runs out. A shared holder is added only while no exclusive key exists (one transaction:
//!   compare, then put); an exclusive holder first creates its key (so no new shared holder
//!   arrives), then waits until the shared holders are gone.
//!
//! A ref swap is one etcd transaction comparing the ref's value and the gc generation: a
//! writer whose lease lapsed cannot move a ref after gc started (gc bumps the generation
//! before it marks).
//!
//! Requests go to one member; on a connection error or timeout the next member is tried.

use crate::address::EtcdAddress;
use crate::runtime::block_on;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use qstore::coord::{Coordination, Lock, LockGuard, LockMode};
use qstore::refs::{CasOutcome, RefStore};
use qstore::{Error, ObjectId, RefName};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long one request may take before the next member is tried.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a call keeps trying while no member answers.
const UNAVAILABLE_FOR: Duration = Duration::from_secs(60);
/// How long opening a ref store waits for a member to answer.
const CONNECT_PATIENCE: Duration = Duration::from_secs(8);
/// How often a waiting lock taker looks again.
const LOCK_POLL: Duration = Duration::from_millis(100);

/// A client of one etcd cluster (cheap to clone).
#[derive(Clone)]
pub struct EtcdClient {
    http: reqwest::Client,
    endpoints: Arc<Vec<String>>,
    current: Arc<AtomicUsize>,
    user: Option<(String, String)>,
    token: Arc<Mutex<Option<String>>>,
    described: String,
    /// How long a call keeps trying while no member answers.
    patience: Duration,
}

impl std::fmt::Debug for EtcdClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EtcdClient({})", self.described)
    }
}

fn unavailable(who: &str, reason: impl std::fmt::Display) -> Error {
    Error::Unavailable {
        service: format!("etcd {who}"),
        reason: reason.to_string(),
    }
}

fn read_pem(p: &std::path::Path, what: &str) -> qstore::Result<Vec<u8>> {
    std::fs::read(p).map_err(|e| {
        Error::InvalidArgument(format!("cannot read the etcd {what} {}: {e}", p.display()))
    })
}

/// Base64 of a key or value.
fn b64(s: &[u8]) -> String {
    B64.encode(s)
}

/// The end of the key range of every key starting with `prefix`.
fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut e = prefix.to_vec();
    while let Some(last) = e.pop() {
        if last < 0xff {
            e.push(last + 1);
            return e;
        }
    }
    vec![0]
}

/// A decoded key-value pair of a range response.
#[derive(Debug, Clone)]
pub struct KeyValue {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    pub mod_revision: i64,
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

fn kvs(v: &Value) -> qstore::Result<Vec<KeyValue>> {
    let mut out = Vec::new();
    if let Some(arr) = v.get("kvs").and_then(Value::as_array) {
        for kv in arr {
            let dec = |f: &str| -> qstore::Result<Vec<u8>> {
                let s = kv.get(f).and_then(Value::as_str).unwrap_or("");
                B64.decode(s)
                    .map_err(|e| Error::corrupt("etcd response", format!("{f} not base64: {e}")))
            };
            out.push(KeyValue {
                key: dec("key")?,
                value: dec("value")?,
                mod_revision: int(kv.get("mod_revision").unwrap_or(&Value::Null)),
            });
        }
    }
    Ok(out)
}

impl EtcdClient {
    /// A client for the cluster `a` names (TLS and auth as given).
    pub fn new(a: &EtcdAddress) -> qstore::Result<Self> {
        let mut b = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(30));
        if let Some(ca) = &a.ca {
            let pem = read_pem(ca, "CA file")?;
            let c = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| Error::InvalidArgument(format!("etcd CA {}: {e}", ca.display())))?;
            b = b.tls_certs_only([c]);
        }
        if let (Some(cert), Some(key)) = (&a.cert, &a.key) {
            let mut pem = read_pem(cert, "client certificate")?;
            pem.extend_from_slice(b"\n");
            pem.extend(read_pem(key, "client key")?);
            let id = reqwest::Identity::from_pem(&pem).map_err(|e| {
                Error::InvalidArgument(format!("etcd client certificate {}: {e}", cert.display()))
            })?;
            b = b.identity(id);
        }
        let http = b
            .build()
            .map_err(|e| Error::InvalidArgument(format!("etcd client: {e}")))?;
        let user = match &a.user {
            Some(u) => Some((
                u.clone(),
                std::env::var("QSTORE_ETCD_PASSWORD").map_err(|_| {
                    Error::InvalidArgument(format!(
                        "etcd user {u:?} given but QSTORE_ETCD_PASSWORD is not set"
                    ))
                })?,
            )),
            None => None,
        };
        Ok(EtcdClient {
            http,
            endpoints: Arc::new(a.endpoints.clone()),
            current: Arc::new(AtomicUsize::new(0)),
            user,
            token: Arc::new(Mutex::new(None)),
            described: crate::address::RefsAddress::Etcd(a.clone()).describe(),
            patience: UNAVAILABLE_FOR,
        })
    }

    async fn authenticate(&self, base: &str) -> Result<Option<String>, String> {
        let Some((u, p)) = &self.user else {
            return Ok(None);
        };
        let r = self
            .http
            .post(format!("{base}/v3/auth/authenticate"))
            .header("content-type", "application/json")
            .body(json!({"name": u, "password": p}).to_string())
            .send()
            .await
            .map_err(|e| format!("transport: {e}"))?;
        let status = r.status();
        let body = r.bytes().await.map_err(|e| format!("transport: {e}"))?;
        let v: Value = match serde_json::from_slice(&body) {
            Ok(v) => v,
            Err(_) if status.is_client_error() => {
                return Err(format!(
                    "authentication failed: HTTP {status}: {}",
                    String::from_utf8_lossy(&body).trim()
                ));
            }
            Err(e) => return Err(format!("transport: {e}")),
        };
        match v.get("token").and_then(Value::as_str) {
            Some(t) => Ok(Some(t.to_string())),
            None => Err(format!("authentication failed: {v}")),
        }
    }

    /// POST `body` to `path` (`/v3/kv/range`...), trying members in turn while they are
    /// unreachable; etcd's own errors are returned as they are.
    pub async fn call(&self, path: &str, body: Value) -> qstore::Result<Value> {
        let start = std::time::Instant::now();
        let mut last = String::new();
        let mut attempt = 0usize;
        while start.elapsed() < self.patience {
            let i = self.current.load(Ordering::Relaxed) % self.endpoints.len();
            let base = &self.endpoints[i];
            let token = self.token.lock().unwrap_or_else(|e| e.into_inner()).clone();
            let token = match (token, &self.user) {
                (Some(t), _) => Some(t),
                (None, None) => None,
                (None, Some(_)) => match self.authenticate(base).await {
                    Ok(t) => {
                        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = t.clone();
                        t
                    }
                    Err(e) if e.starts_with("transport") => {
                        last = e;
                        self.rotate(i, &mut attempt).await;
                        continue;
                    }
                    Err(e) => return Err(Error::InvalidArgument(format!("etcd {e}"))),
                },
            };
            let mut req = self
                .http
                .post(format!("{base}{path}"))
                .header("content-type", "application/json")
                .body(body.to_string());
            if let Some(t) = &token {
                req = req.header("Authorization", t);
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    last = format!("{base}: {e}");
                    self.rotate(i, &mut attempt).await;
                    continue;
                }
            };
            let status = resp.status();
            let body = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last = format!("{base}: {status}: {e}");
                    self.rotate(i, &mut attempt).await;
                    continue;
                }
            };
            let v: Value = match serde_json::from_slice(&body) {
                Ok(v) => v,
                // A refusal in plain text (the gateway's own checks): not worth retrying.
                Err(_) if status.is_client_error() => {
                    return Err(Error::InvalidArgument(format!(
                        "etcd {} refused {path}: HTTP {status}: {}",
                        self.described,
                        String::from_utf8_lossy(&body).trim()
                    )));
                }
                Err(e) => {
                    last = format!("{base}: {status}: {e}");
                    self.rotate(i, &mut attempt).await;
                    continue;
                }
            };
            if let Some(code) = v.get("code").and_then(Value::as_i64) {
                let msg = v
                    .get("message")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                match code {
                    // Unavailable, deadline exceeded, aborted: another member may do.
                    14 | 4 | 10 => {
                        last = format!("{base}: {msg}");
                        self.rotate(i, &mut attempt).await;
                        continue;
                    }
                    // Unauthenticated (token expired): log in again.
                    16 if self.user.is_some() => {
                        *self.token.lock().unwrap_or_else(|e| e.into_inner()) = None;
                        last = msg;
                        continue;
                    }
                    _ => {
                        return Err(Error::InvalidArgument(format!(
                            "etcd {} refused {path}: {msg} (code {code})",
                            self.described
                        )));
                    }
                }
            }
            return Ok(v);
        }
        Err(unavailable(&self.described, last))
    }

    async fn rotate(&self, failed: usize, attempt: &mut usize) {
        let _ = self.current.compare_exchange(
            failed,
            (failed + 1) % self.endpoints.len(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        );
        *attempt += 1;
        if (*attempt).is_multiple_of(self.endpoints.len()) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// [`EtcdClient::call`] from synchronous code.
    pub fn call_blocking(&self, path: &'static str, body: Value) -> qstore::Result<Value> {
        let c = self.clone();
        block_on(async move { c.call(path, body).await })?
    }

    /// The value of `key`, with its mod revision.
    pub fn get(&self, key: &str) -> qstore::Result<Option<KeyValue>> {
        let v = self.call_blocking("/v3/kv/range", json!({"key": b64(key.as_bytes())}))?;
        Ok(kvs(&v)?.into_iter().next())
    }

    /// Every key-value pair under `prefix`.
    pub fn range_prefix(&self, prefix: &str) -> qstore::Result<Vec<KeyValue>> {
        let v = self.call_blocking(
            "/v3/kv/range",
            json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes()))}),
        )?;
        kvs(&v)
    }

    /// How many keys are under `prefix`.
    pub fn count_prefix(&self, prefix: &str) -> qstore::Result<i64> {
        let v = self.call_blocking(
            "/v3/kv/range",
            json!({"key": b64(prefix.as_bytes()), "range_end": b64(&prefix_end(prefix.as_bytes())), "count_only": true}),
        )?;
        Ok(int(v.get("count").unwrap_or(&Value::Null)))
    }

    /// Run a transaction; returns (succeeded, responses).
    pub fn txn(
        &self,
        compare: Vec<Value>,
        success: Vec<Value>,
        failure: Vec<Value>,
    ) -> qstore::Result<(bool, Value)> {
        let v = self.call_blocking(
            "/v3/kv/txn",
            json!({"compare": compare, "success": success, "failure": failure}),
        )?;
        let ok = v.get("succeeded").and_then(Value::as_bool).unwrap_or(false);
        Ok((ok, v))
    }

    /// Put `key` unconditionally.
    pub fn put(&self, key: &str, value: &[u8]) -> qstore::Result<()> {
        self.call_blocking(
            "/v3/kv/put",
            json!({"key": b64(key.as_bytes()), "value": b64(value)}),
        )?;
        Ok(())
    }

    /// Grant a lease of `ttl` seconds; returns its id (decimal string).
    pub fn grant(&self, ttl: u64) -> qstore::Result<String> {
        let v = self.call_blocking("/v3/lease/grant", json!({"TTL": ttl.to_string()}))?;
        match v.get("ID") {
            Some(Value::String(s)) => Ok(s.clone()),
            Some(Value::Number(n)) => Ok(n.to_string()),
            _ => Err(Error::corrupt("etcd lease grant", v.to_string())),
        }
    }

    /// Renew a lease; false when it no longer exists.
    pub async fn keep_alive(&self, id: &str) -> qstore::Result<bool> {
        let v = self.call("/v3/lease/keepalive", json!({"ID": id})).await?;
        Ok(int(v.pointer("/result/TTL").unwrap_or(&Value::Null)) > 0)
    }

    /// Revoke a lease (its keys go with it).
    pub async fn revoke(&self, id: &str) -> qstore::Result<()> {
        self.call("/v3/lease/revoke", json!({"ID": id}))
            .await
            .map(|_| ())
    }

    /// The address without credentials.
    pub fn describe(&self) -> &str {
        &self.described
    }
}

/// Compare clauses of a transaction.
fn cmp_absent(key: &str) -> Value {
    json!({"key": b64(key.as_bytes()), "target": "CREATE", "result": "EQUAL", "create_revision": "0"})
}
fn cmp_value(key: &str, value: &[u8]) -> Value {
    json!({"key": b64(key.as_bytes()), "target": "VALUE", "result": "EQUAL", "value": b64(value)})
}
fn cmp_mod(key: &str, rev: i64) -> Value {
    json!({"key": b64(key.as_bytes()), "target": "MOD", "result": "EQUAL", "mod_revision": rev.to_string()})
}
fn op_put(key: &str, value: &[u8], lease: Option<&str>) -> Value {
    let mut p = json!({"key": b64(key.as_bytes()), "value": b64(value)});
    if let Some(l) = lease {
        p["lease"] = Value::String(l.to_string());
    }
    json!({"request_put": p})
}
fn op_delete(key: &str) -> Value {
    json!({"request_delete_range": {"key": b64(key.as_bytes())}})
}
fn op_get(key: &str) -> Value {
    json!({"request_range": {"key": b64(key.as_bytes())}})
}

/// The kvs of the `i`-th response of a transaction.
fn txn_kvs(resp: &Value, i: usize) -> qstore::Result<Vec<KeyValue>> {
    match resp.pointer(&format!("/responses/{i}/response_range")) {
        Some(r) => kvs(r),
        None => Ok(Vec::new()),
    }
}

/// A lease kept alive by a background task until dropped (then revoked).
struct Lease {
    id: String,
    stop: Arc<AtomicBool>,
    client: EtcdClient,
}

impl Lease {
    fn new(client: &EtcdClient, ttl: u64) -> qstore::Result<Self> {
        let id = client.grant(ttl)?;
        let stop = Arc::new(AtomicBool::new(false));
        let (c, i, s) = (client.clone(), id.clone(), stop.clone());
        crate::runtime::handle().spawn(async move {
            let every = Duration::from_millis(ttl * 1000 / 3);
            while !s.load(Ordering::Relaxed) {
                tokio::time::sleep(every).await;
                if s.load(Ordering::Relaxed) {
                    break;
                }
                match c.keep_alive(&i).await {
                    Ok(true) => {}
                    // Gone: the holder lost its lock; commits it attempts are fenced.
                    Ok(false) => break,
                    Err(_) => {}
                }
            }
        });
        Ok(Lease {
            id,
            stop,
            client: client.clone(),
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let (c, id) = (self.client.clone(), self.id.clone());
        // Revoke and wait (briefly): the lock is free when the guard is gone.
        let _ = block_on(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), c.revoke(&id)).await;
        });
    }
}

struct EtcdLock(#[allow(dead_code)] Lease);
impl LockGuard for EtcdLock {}

/// Refs, locks and counters of one repository in etcd.
#[derive(Debug)]
pub struct EtcdCoordination {
    client: EtcdClient,
    prefix: String,
    lease_ttl: u64,
}

impl EtcdCoordination {
    /// Connect to the cluster `a` names (checked with one read).
    pub fn connect(a: &EtcdAddress) -> qstore::Result<Self> {
        let client = EtcdClient::new(a)?;
        let c = EtcdCoordination {
            client,
            prefix: a.prefix.clone(),
            lease_ttl: a.lease_ttl,
        };
        // One read proves the members, TLS and credentials; a wrong address fails in
        // seconds, not after the patience of a running repository.
        let mut probe = c.client.clone();
        probe.patience = CONNECT_PATIENCE;
        probe.get(&c.key("repository-id"))?;
        Ok(c)
    }

    /// The client (for tests and tools).
    pub fn client(&self) -> &EtcdClient {
        &self.client
    }

    fn key(&self, k: &str) -> String {
        format!("{}{k}", self.prefix)
    }

    fn ref_key(&self, name: &RefName) -> String {
        self.key(&format!("refs/{}", name.key()))
    }

    fn parse_ref(&self, kv: &KeyValue) -> qstore::Result<ObjectId> {
        std::str::from_utf8(&kv.value)
            .ok()
            .and_then(ObjectId::from_hex)
            .ok_or_else(|| {
                Error::corrupt(
                    format!("etcd ref {}", String::from_utf8_lossy(&kv.key)),
                    "not a commit id",
                )
            })
    }

    fn cas(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: Option<u64>,
    ) -> qstore::Result<CasOutcome> {
        let rk = self.ref_key(name);
        let gk = self.key("gc-generation");
        let mut compare = vec![match expected {
            None => cmp_absent(&rk),
            Some(id) => cmp_value(&rk, id.to_hex().as_bytes()),
        }];
        if let Some(g) = generation {
            compare.push(if g == 0 {
                cmp_absent(&gk)
            } else {
                cmp_value(&gk, g.to_string().as_bytes())
            });
        }
        let success = vec![match new {
            Some(id) => op_put(&rk, id.to_hex().as_bytes(), None),
            None => op_delete(&rk),
        }];
        let (ok, resp) = self
            .client
            .txn(compare, success, vec![op_get(&rk), op_get(&gk)])?;
        if ok {
            return Ok(CasOutcome::Swapped);
        }
        let actual = match txn_kvs(&resp, 0)?.first() {
            Some(kv) => Some(self.parse_ref(kv)?),
            None => None,
        };
        if let Some(g) = generation {
            let now = match txn_kvs(&resp, 1)?.first() {
                Some(kv) => String::from_utf8_lossy(&kv.value)
                    .parse()
                    .unwrap_or(u64::MAX),
                None => 0,
            };
            if now != g && actual == expected {
                return Err(Error::LeaseLost {
                    store: self.describe(),
                    detail: format!("garbage collection generation moved from {g} to {now}"),
                });
            }
        }
        Ok(CasOutcome::Mismatch { actual })
    }

    fn take(&self, name: &str, mode: LockMode, wait: bool) -> qstore::Result<Option<Lock>> {
        let ex = self.key(&format!("locks/{name}/exclusive"));
        let shared_dir = self.key(&format!("locks/{name}/shared/"));
        let lease = Lease::new(&self.client, self.lease_ttl)?;
        loop {
            let key = match mode {
                LockMode::Exclusive => ex.clone(),
                LockMode::Shared => format!("{shared_dir}{}", lease.id),
            };
            let (ok, _) = self.client.txn(
                vec![cmp_absent(&ex)],
                vec![op_put(&key, lease.id.as_bytes(), Some(&lease.id))],
                vec![],
            )?;
            if ok {
                break;
            }
            if !wait {
                return Ok(None);
            }
            std::thread::sleep(LOCK_POLL);
        }
        if mode == LockMode::Exclusive {
            // No new shared holder can arrive now; wait for the present ones to finish.
            while self.client.count_prefix(&shared_dir)? > 0 {
                if !wait {
                    return Ok(None); // dropping the lease frees the exclusive key
                }
                std::thread::sleep(LOCK_POLL);
            }
        }
        Ok(Some(Box::new(EtcdLock(lease))))
    }
}

impl RefStore for EtcdCoordination {
    fn get(&self, name: &RefName) -> qstore::Result<Option<ObjectId>> {
        match self.client.get(&self.ref_key(name))? {
            Some(kv) => Ok(Some(self.parse_ref(&kv)?)),
            None => Ok(None),
        }
    }

    fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> qstore::Result<CasOutcome> {
        self.cas(name, expected, new, None)
    }

    fn list(&self) -> qstore::Result<Vec<(RefName, ObjectId)>> {
        let base = self.key("refs/");
        let mut out = Vec::new();
        for kv in self.client.range_prefix(&base)? {
            let k = String::from_utf8_lossy(&kv.key);
            let rest = k.strip_prefix(&base).unwrap_or(&k);
            if let Ok(name) = RefName::from_key(rest) {
                out.push((name, self.parse_ref(&kv)?));
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

impl Coordination for EtcdCoordination {
    fn kind(&self) -> &'static str {
        "etcd"
    }

    fn describe(&self) -> String {
        self.client.describe().to_string()
    }

    fn refs(&self) -> &dyn RefStore {
        self
    }

    fn lock(&self, name: &str, mode: LockMode) -> qstore::Result<Lock> {
        self.take(name, mode, true)?
            .ok_or_else(|| Error::InvalidArgument("lock not taken".into()))
    }

    fn try_lock(&self, name: &str, mode: LockMode) -> qstore::Result<Option<Lock>> {
        self.take(name, mode, false)
    }

    fn generation(&self) -> qstore::Result<u64> {
        match self.client.get(&self.key("gc-generation"))? {
            None => Ok(0),
            Some(kv) => String::from_utf8_lossy(&kv.value)
                .parse()
                .map_err(|_| Error::corrupt("etcd gc-generation", "not a decimal counter")),
        }
    }

    fn bump_generation(&self) -> qstore::Result<u64> {
        let k = self.key("gc-generation");
        loop {
            let cur = self.client.get(&k)?;
            let (g, cmp) = match &cur {
                None => (0, cmp_absent(&k)),
                Some(kv) => (
                    String::from_utf8_lossy(&kv.value)
                        .parse::<u64>()
                        .map_err(|_| {
                            Error::corrupt("etcd gc-generation", "not a decimal counter")
                        })?,
                    cmp_mod(&k, kv.mod_revision),
                ),
            };
            let next = g + 1;
            let (ok, _) = self.client.txn(
                vec![cmp],
                vec![op_put(&k, next.to_string().as_bytes(), None)],
                vec![],
            )?;
            if ok {
                return Ok(next);
            }
        }
    }

    fn document(&self, name: &str) -> qstore::Result<Option<Vec<u8>>> {
        Ok(self
            .client
            .get(&self.key(&format!("docs/{name}")))?
            .map(|kv| kv.value))
    }

    fn put_document(&self, name: &str, body: &[u8]) -> qstore::Result<()> {
        self.client.put(&self.key(&format!("docs/{name}")), body)
    }

    fn compare_and_swap_at(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: u64,
    ) -> qstore::Result<CasOutcome> {
        self.cas(name, expected, new, Some(generation))
    }

    fn bind(&self, id: &str, create: bool) -> qstore::Result<()> {
        let k = self.key("repository-id");
        if create {
            let (ok, resp) = self.client.txn(
                vec![cmp_absent(&k)],
                vec![op_put(&k, id.as_bytes(), None)],
                vec![op_get(&k)],
            )?;
            if ok {
                return Ok(());
            }
            let have = txn_kvs(&resp, 0)?
                .first()
                .map(|kv| String::from_utf8_lossy(&kv.value).into_owned())
                .unwrap_or_default();
            if have == id {
                return Ok(());
            }
            return Err(Error::RefStoreMismatch {
                store: self.describe(),
                detail: format!(
                    "it already holds the refs of repository {have}; choose another prefix"
                ),
            });
        }
        match self.client.get(&k)? {
            Some(kv) if kv.value == id.as_bytes() => Ok(()),
            Some(kv) => Err(Error::RefStoreMismatch {
                store: self.describe(),
                detail: format!(
                    "it holds the refs of repository {}, not {id}",
                    String::from_utf8_lossy(&kv.value)
                ),
            }),
            None => Err(Error::RefStoreMismatch {
                store: self.describe(),
                detail: format!("it holds no repository (expected repository {id})"),
            }),
        }
    }
}
