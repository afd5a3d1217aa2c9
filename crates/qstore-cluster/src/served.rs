//! Repositories served by `qstore serve`, opened as `https://HOST:PORT/NAME` (or
//! `http://` on loopback only): [`ServedStorage`] and [`ServedCoordination`] speak the store
//! protocol of [`crate::wire`] to the server, so every front end (CLI, Python, `qstore run`)
//! works on a served repository as on a local one, with the server enforcing the token's
//! scope. Writers upload new packs only: the engine's writer skips every chunk the
//! repository's index already has, so a state that changed in one chunk sends about one
//! chunk. The server merges packs itself ([`qstore::storage::Storage::merged_by_server`]).
//!
//! TLS is rustls with the aws-lc-rs provider, offering the hybrid post-quantum group
//! X25519MLKEM768 first and X25519 second; roots are the system's plus a private CA from
//! [`ClientOptions::ca_cert`] (`--ca-cert`, `QSTORE_CA_CERT`). The token comes from
//! [`ClientOptions::token`] (`QSTORE_TOKEN`, or the file named by `QSTORE_TOKEN_FILE`).

use crate::runtime::block_on;
use crate::wire::{self, ErrorBody};
use qstore::coord::{Coordination, Lock, LockGuard, LockMode};
use qstore::id::ObjectId;
use qstore::path::RefName;
use qstore::refs::{CasOutcome, RefStore};
use qstore::storage::{BlobMeta, BlobWriter, PutMode, PutOutcome, Storage};
use qstore::{Error, Result};
use rustls::crypto::CryptoProvider;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// Credentials and trust for connections to servers.
#[derive(Clone, Debug, Default)]
pub struct ClientOptions {
    /// The bearer token sent with every request.
    pub token: Option<String>,
    /// A PEM file of CA certificates trusted besides the system roots.
    pub ca_cert: Option<PathBuf>,
}

static OPTIONS: RwLock<Option<ClientOptions>> = RwLock::new(None);

/// Set the options used by connections opened from now on (the CLI's `--token-file` and
/// `--ca-cert`); unset fields fall back to the environment.
pub fn set_client_options(o: ClientOptions) {
    *OPTIONS.write().unwrap_or_else(|e| e.into_inner()) = Some(o);
}

fn options() -> Result<ClientOptions> {
    let set = OPTIONS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default();
    with_fallbacks(set)
}

/// `set`, with each unset field taken from the environment.
fn with_fallbacks(set: ClientOptions) -> Result<ClientOptions> {
    let token = match set.token {
        Some(t) => Some(t),
        None => match std::env::var("QSTORE_TOKEN") {
            Ok(t) if !t.trim().is_empty() => Some(t.trim().to_string()),
            _ => match std::env::var_os("QSTORE_TOKEN_FILE") {
                Some(f) => Some(read_token_file(&PathBuf::from(f))?),
                None => None,
            },
        },
    };
    let ca_cert = set
        .ca_cert
        .or_else(|| std::env::var_os("QSTORE_CA_CERT").map(PathBuf::from));
    Ok(ClientOptions { token, ca_cert })
}

/// The token in a file (its first non-empty line).
pub fn read_token_file(path: &std::path::Path) -> Result<String> {
    let s = std::fs::read_to_string(path).map_err(|e| Error::Io {
        path: path.display().to_string(),
        source: e,
    })?;
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_string)
        .ok_or_else(|| Error::InvalidArgument(format!("{} holds no token", path.display())))
}

/// The crypto provider of both sides: aws-lc-rs with X25519MLKEM768 preferred, X25519 as
/// the fallback.
pub fn pq_provider() -> CryptoProvider {
    use rustls::crypto::aws_lc_rs::{default_provider, kx_group};
    CryptoProvider {
        kx_groups: vec![kx_group::X25519MLKEM768, kx_group::X25519],
        ..default_provider()
    }
}

/// A rustls client configuration trusting the system roots and the PEM certificates of
/// `ca_cert`, on `provider`.
pub fn tls_client_config(
    ca_cert: Option<&std::path::Path>,
    provider: CryptoProvider,
) -> Result<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(c);
    }
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|e| bad_ca(path, e))?
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| bad_ca(path, e))?;
        if certs.is_empty() {
            return Err(bad_ca(path, "no certificate in it"));
        }
        for c in certs {
            roots.add(c).map_err(|e| bad_ca(path, e))?;
        }
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::InvalidArgument(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

fn bad_ca(path: &std::path::Path, e: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("CA certificate file {}: {e}", path.display()))
}

/// A parsed `https://HOST:PORT/NAME` address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedAddress {
    /// `https` or `http`.
    pub scheme: String,
    /// `HOST:PORT` as given.
    pub authority: String,
    /// The served repository's name (`default` when the path is empty).
    pub name: String,
}

impl ServedAddress {
    /// Parse an address; `http://` only for loopback hosts.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: &str| Error::BadAddress(format!("{s}: {why}"));
        let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
        // The URL parser folds `.` and `..` away; such a path names no repository.
        let raw_path = s
            .split_once("://")
            .and_then(|(_, r)| r.find('/').map(|i| &r[i..]))
            .unwrap_or("");
        if raw_path.split(['/', '?', '#']).any(|seg| {
            let seg = seg.to_ascii_lowercase();
            seg == "." || seg == ".." || seg.contains("%2e") || seg.contains("%2f")
        }) {
            return Err(bad(
                "the repository name is [A-Za-z0-9._-], one path segment",
            ));
        }
        let scheme = url.scheme().to_string();
        if scheme != "https" && scheme != "http" {
            return Err(bad("not an https:// address"));
        }
        let host = url.host_str().ok_or_else(|| bad("no host"))?.to_string();
        if scheme == "http" && !is_loopback(&host) {
            return Err(bad(
                "http:// is only for loopback (127.0.0.1, ::1, localhost); use https://",
            ));
        }
        if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
            return Err(bad(
                "a served address has no query or credentials (the token comes from QSTORE_TOKEN)",
            ));
        }
        let path = url.path().trim_matches('/');
        let name = if path.is_empty() { "default" } else { path };
        if !wire::repo_name_allowed(name) {
            return Err(bad(
                "the repository name is [A-Za-z0-9._-], one path segment",
            ));
        }
        let port = url.port_or_known_default().ok_or_else(|| bad("no port"))?;
        let host = if host.contains(':') {
            format!("[{host}]")
        } else {
            host
        };
        Ok(ServedAddress {
            scheme,
            authority: format!("{host}:{port}"),
            name: name.to_string(),
        })
    }

    /// The server's root URL (`https://HOST:PORT`).
    pub fn root(&self) -> String {
        format!("{}://{}", self.scheme, self.authority)
    }

    /// The store protocol's base URL of this repository.
    pub fn store_base(&self) -> String {
        format!("{}/v1/repos/{}/store", self.root(), self.name)
    }
}

fn is_loopback(host: &str) -> bool {
    let h = host.trim_start_matches('[').trim_end_matches(']');
    h == "localhost"
        || h.parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

/// An HTTP client for one server, with the token and error mapping of every request.
#[derive(Clone, Debug)]
pub struct Conn {
    client: reqwest::Client,
    base: String,
    token: Option<String>,
    service: String,
}

impl Conn {
    /// A client for `addr`, with the current [`ClientOptions`].
    pub fn new(addr: &ServedAddress) -> Result<Self> {
        Self::with_options(addr, options()?)
    }

    /// A client for `addr` with explicit options.
    pub fn with_options(addr: &ServedAddress, o: ClientOptions) -> Result<Self> {
        let mut b = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(300))
            .pool_idle_timeout(Duration::from_secs(30))
            .no_proxy();
        if addr.scheme == "https" {
            b = b
                .tls_backend_preconfigured(tls_client_config(o.ca_cert.as_deref(), pq_provider())?);
        }
        let client = b.build().map_err(|e| Error::Unavailable {
            service: format!("qstore server {}", addr.root()),
            reason: format!("cannot build an HTTP client: {e}"),
        })?;
        Ok(Conn {
            client,
            base: addr.store_base(),
            token: o.token,
            service: format!("qstore server {}", addr.root()),
        })
    }

    fn request(&self, method: reqwest::Method, route: &str) -> reqwest::RequestBuilder {
        let rb = self
            .client
            .request(method, format!("{}/{route}", self.base));
        match &self.token {
            Some(t) => rb.bearer_auth(t),
            None => rb,
        }
    }

    /// Send and map a refusal to an engine error.
    async fn send(service: String, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let resp = rb.send().await.map_err(|e| Error::Unavailable {
            service: service.clone(),
            reason: error_chain(&e),
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        let parsed: ErrorBody = serde_json::from_slice(&body).unwrap_or_else(|_| ErrorBody {
            error: String::from_utf8_lossy(&body).chars().take(300).collect(),
            kind: String::new(),
        });
        Err(map_refusal(&service, status.as_u16(), parsed))
    }

    fn call(&self, rb: reqwest::RequestBuilder) -> Result<reqwest::Response> {
        let service = self.service.clone();
        block_on(Self::send(service, rb))?
    }

    fn json<T: serde::de::DeserializeOwned + Send + 'static>(
        &self,
        rb: reqwest::RequestBuilder,
    ) -> Result<T> {
        let service = self.service.clone();
        block_on(async move {
            let resp = Self::send(service.clone(), rb).await?;
            let body = resp.bytes().await.map_err(|e| Error::Unavailable {
                service: service.clone(),
                reason: error_chain(&e),
            })?;
            serde_json::from_slice(&body).map_err(|e| Error::Unavailable {
                service,
                reason: format!("unreadable answer: {e}"),
            })
        })?
    }

    fn bytes(&self, rb: reqwest::RequestBuilder) -> Result<bytes::Bytes> {
        let service = self.service.clone();
        block_on(async move {
            let resp = Self::send(service.clone(), rb).await?;
            resp.bytes().await.map_err(|e| Error::Unavailable {
                service,
                reason: error_chain(&e),
            })
        })?
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

/// The engine error for a refusal with `status` and body `b`.
pub fn map_refusal(service: &str, status: u16, b: ErrorBody) -> Error {
    let msg = b.error;
    match (status, b.kind.as_str()) {
        (401 | 403, _) => Error::Unauthorised {
            service: service.into(),
            reason: msg,
        },
        (_, "blob_not_found") => Error::BlobNotFound(msg),
        (_, "repository_not_found") => Error::RepositoryNotFound(msg),
        (_, "lease_lost") => Error::LeaseLost {
            store: service.into(),
            detail: msg,
        },
        (_, "ref_store_mismatch") => Error::RefStoreMismatch {
            store: service.into(),
            detail: msg,
        },
        (_, "corrupt") => Error::Corrupt {
            object: service.into(),
            detail: msg,
            path: None,
        },
        (_, "not_found") => Error::RefNotFound(msg),
        (400 | 413 | 422, _) | (_, "invalid" | "bad_request" | "too_large") => {
            Error::InvalidArgument(format!("{service}: {msg}"))
        }
        _ => Error::Unavailable {
            service: service.into(),
            reason: format!("HTTP {status}: {msg}"),
        },
    }
}

/// The blobs of a served repository.
#[derive(Debug)]
pub struct ServedStorage {
    conn: Conn,
}

const UPLOAD_PIECE: usize = 4 << 20;

struct ServedWriter {
    tx: Option<tokio::sync::mpsc::Sender<std::io::Result<bytes::Bytes>>>,
    buf: Vec<u8>,
    done: std::sync::mpsc::Receiver<Result<()>>,
    finished: bool,
}

impl ServedWriter {
    fn push(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = bytes::Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(UPLOAD_PIECE),
        ));
        let sent = self
            .tx
            .as_ref()
            .map(|tx| tx.blocking_send(Ok(piece)).is_ok())
            .unwrap_or(false);
        if !sent {
            // The request ended early: its answer says why.
            self.tx = None;
            return Err(match self.done.recv() {
                Ok(Err(e)) => e,
                _ => Error::Unavailable {
                    service: "qstore server".into(),
                    reason: "the upload ended before its last bytes".into(),
                },
            });
        }
        Ok(())
    }
}

impl BlobWriter for ServedWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= UPLOAD_PIECE {
            self.push()?;
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> Result<()> {
        self.push()?;
        self.tx = None; // the body ends here
        self.finished = true;
        self.done.recv().unwrap_or_else(|_| {
            Err(Error::Unavailable {
                service: "qstore server".into(),
                reason: "the upload ended without an answer".into(),
            })
        })
    }
}

impl Drop for ServedWriter {
    fn drop(&mut self) {
        if !self.finished
            && let Some(tx) = self.tx.take()
        {
            // Abandoned: end the body with an error so the server stores nothing.
            let _ = tx.blocking_send(Err(std::io::Error::other("upload abandoned")));
        }
    }
}

impl Storage for ServedStorage {
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome> {
        let rb = self
            .conn
            .request(reqwest::Method::PUT, "blob")
            .query(&[("key", key), ("mode", mode_name(mode))])
            .body(data.to_vec());
        let a: wire::PutAnswer = self.conn.json(rb)?;
        Ok(if a.written {
            PutOutcome::Written
        } else {
            PutOutcome::AlreadyExists
        })
    }

    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter>> {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<bytes::Bytes>>(2);
        let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let rb = self
            .conn
            .request(reqwest::Method::PUT, "blob")
            .query(&[("key", key), ("mode", "create")])
            .body(reqwest::Body::wrap_stream(stream));
        let (done_tx, done) = std::sync::mpsc::sync_channel(1);
        let service = self.conn.service.clone();
        crate::runtime::handle().spawn(async move {
            let r = async {
                let resp = Conn::send(service.clone(), rb).await?;
                let body = resp.bytes().await.map_err(|e| Error::Unavailable {
                    service: service.clone(),
                    reason: error_chain(&e),
                })?;
                let a: wire::PutAnswer =
                    serde_json::from_slice(&body).map_err(|e| Error::Unavailable {
                        service: service.clone(),
                        reason: format!("unreadable answer: {e}"),
                    })?;
                if a.written {
                    Ok(())
                } else {
                    Err(Error::InvalidArgument(format!(
                        "{service}: the blob already exists"
                    )))
                }
            }
            .await;
            let _ = done_tx.send(r);
        });
        Ok(Box::new(ServedWriter {
            tx: Some(tx),
            buf: Vec::with_capacity(UPLOAD_PIECE),
            done,
            finished: false,
        }))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        let rb = self
            .conn
            .request(reqwest::Method::GET, "blob")
            .query(&[("key", key)]);
        Ok(self.conn.bytes(rb)?.to_vec())
    }

    fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let rb = self.conn.request(reqwest::Method::GET, "blob").query(&[
            ("key", key.to_string()),
            ("offset", offset.to_string()),
            ("len", buf.len().to_string()),
        ]);
        let b = self.conn.bytes(rb)?;
        if b.len() != buf.len() {
            return Err(Error::Unavailable {
                service: self.conn.service.clone(),
                reason: format!(
                    "asked for {} bytes of {key} at {offset}, got {}",
                    buf.len(),
                    b.len()
                ),
            });
        }
        buf.copy_from_slice(&b);
        Ok(())
    }

    fn size(&self, key: &str) -> Result<u64> {
        #[derive(serde::Deserialize)]
        struct Size {
            size: u64,
        }
        let rb = self
            .conn
            .request(reqwest::Method::GET, "size")
            .query(&[("key", key)]);
        Ok(self.conn.json::<Size>(rb)?.size)
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        let rb = self
            .conn
            .request(reqwest::Method::GET, "list")
            .query(&[("prefix", prefix)]);
        let v: Vec<wire::BlobEntry> = self.conn.json(rb)?;
        Ok(v.into_iter()
            .map(|b| BlobMeta {
                key: b.key,
                size: b.size,
                modified: b
                    .modified
                    .and_then(|s| Duration::try_from_secs_f64(s).ok())
                    .map(|d| std::time::UNIX_EPOCH + d),
            })
            .collect())
    }

    fn delete(&self, key: &str) -> Result<()> {
        let rb = self
            .conn
            .request(reqwest::Method::DELETE, "blob")
            .query(&[("key", key)]);
        self.conn.call(rb).map(|_| ())
    }

    fn prefers_few_requests(&self) -> bool {
        true
    }

    fn merged_by_server(&self) -> bool {
        true
    }
}

fn mode_name(m: PutMode) -> &'static str {
    match m {
        PutMode::Create => "create",
        PutMode::Overwrite => "overwrite",
    }
}

/// Refs, locks and counters of a served repository.
#[derive(Debug)]
pub struct ServedCoordination {
    conn: Conn,
    kind: &'static str,
    describe: String,
}

/// A lock held through a server lease, renewed by a thread until dropped.
struct ServedLock {
    stop: Arc<AtomicBool>,
    conn: Conn,
    lease: String,
}

impl LockGuard for ServedLock {}

impl Drop for ServedLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let rb = self
            .conn
            .request(reqwest::Method::POST, "lease/release")
            .json(&wire::LeaseRequest {
                lease: self.lease.clone(),
            });
        // A release that fails leaves the lease to lapse on the server.
        let _ = self.conn.call(rb);
    }
}

fn hex_id(s: Option<String>) -> Result<Option<ObjectId>> {
    s.map(|h| {
        ObjectId::from_hex(&h).ok_or_else(|| Error::Unavailable {
            service: "qstore server".into(),
            reason: format!("answered a malformed commit id {h:?}"),
        })
    })
    .transpose()
}

impl ServedCoordination {
    fn cas(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: Option<u64>,
    ) -> Result<CasOutcome> {
        let rb = self
            .conn
            .request(reqwest::Method::POST, "cas")
            .json(&wire::CasRequest {
                name: name.key(),
                expected: expected.map(|i| i.to_hex()),
                new: new.map(|i| i.to_hex()),
                generation,
            });
        let a: wire::CasAnswer = self.conn.json(rb)?;
        Ok(if a.swapped {
            CasOutcome::Swapped
        } else {
            CasOutcome::Mismatch {
                actual: hex_id(a.actual)?,
            }
        })
    }
}

impl RefStore for ServedCoordination {
    fn get(&self, name: &RefName) -> Result<Option<ObjectId>> {
        let rb = self
            .conn
            .request(reqwest::Method::GET, "ref")
            .query(&[("name", name.key())]);
        let a: wire::RefAnswer = self.conn.json(rb)?;
        hex_id(a.id)
    }

    fn compare_and_swap(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
    ) -> Result<CasOutcome> {
        self.cas(name, expected, new, None)
    }

    fn list(&self) -> Result<Vec<(RefName, ObjectId)>> {
        let rb = self.conn.request(reqwest::Method::GET, "refs");
        let v: Vec<(String, String)> = self.conn.json(rb)?;
        v.into_iter()
            .map(|(k, id)| {
                Ok((
                    RefName::from_key(&k)?,
                    hex_id(Some(id))?.ok_or_else(|| Error::InvalidArgument("no id".into()))?,
                ))
            })
            .collect()
    }
}

impl Coordination for ServedCoordination {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn refs(&self) -> &dyn RefStore {
        self
    }

    fn lock(&self, name: &str, mode: LockMode) -> Result<Lock> {
        let mut wait = Duration::from_millis(20);
        loop {
            if let Some(l) = self.try_lock(name, mode)? {
                return Ok(l);
            }
            std::thread::sleep(wait);
            wait = (wait * 2).min(Duration::from_millis(500));
        }
    }

    fn try_lock(&self, name: &str, mode: LockMode) -> Result<Option<Lock>> {
        let rb = self
            .conn
            .request(reqwest::Method::POST, "lock")
            .json(&wire::LockRequest {
                name: name.into(),
                mode: match mode {
                    LockMode::Shared => "shared",
                    LockMode::Exclusive => "exclusive",
                }
                .into(),
            });
        let a: wire::LockAnswer = self.conn.json(rb)?;
        let Some(lease) = a.lease else {
            return Ok(None);
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (s, conn, l) = (stop.clone(), self.conn.clone(), lease.clone());
        let every = Duration::from_secs((a.ttl_s / 3).max(1));
        std::thread::Builder::new()
            .name("qstore-lease".into())
            .spawn(move || {
                let tick = Duration::from_millis(100);
                let mut waited = Duration::ZERO;
                while !s.load(Ordering::SeqCst) {
                    std::thread::sleep(tick);
                    waited += tick;
                    if waited < every {
                        continue;
                    }
                    waited = Duration::ZERO;
                    let rb = conn
                        .request(reqwest::Method::POST, "lease/renew")
                        .json(&wire::LeaseRequest { lease: l.clone() });
                    match conn.json::<wire::LeaseAnswer>(rb) {
                        // Gone: commits of the holder are fenced by the generation.
                        Ok(a) if !a.alive => break,
                        _ => {}
                    }
                }
            })
            .map_err(|e| Error::Io {
                path: "lease renewal thread".into(),
                source: e,
            })?;
        Ok(Some(Box::new(ServedLock {
            stop,
            conn: self.conn.clone(),
            lease,
        })))
    }

    fn generation(&self) -> Result<u64> {
        let rb = self.conn.request(reqwest::Method::GET, "generation");
        Ok(self.conn.json::<wire::GenerationAnswer>(rb)?.generation)
    }

    fn bump_generation(&self) -> Result<u64> {
        let rb = self.conn.request(reqwest::Method::POST, "generation");
        Ok(self.conn.json::<wire::GenerationAnswer>(rb)?.generation)
    }

    fn document(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let rb = self
            .conn
            .request(reqwest::Method::GET, "document")
            .query(&[("name", name)]);
        match self.conn.bytes(rb) {
            Ok(b) => Ok(Some(b.to_vec())),
            Err(Error::BlobNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn put_document(&self, name: &str, body: &[u8]) -> Result<()> {
        let rb = self
            .conn
            .request(reqwest::Method::PUT, "document")
            .query(&[("name", name)])
            .body(body.to_vec());
        self.conn.call(rb).map(|_| ())
    }

    fn compare_and_swap_at(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: u64,
    ) -> Result<CasOutcome> {
        self.cas(name, expected, new, Some(generation))
    }

    fn bind(&self, id: &str, create: bool) -> Result<()> {
        let rb = self
            .conn
            .request(reqwest::Method::POST, "bind")
            .json(&wire::BindRequest {
                id: id.into(),
                create,
            });
        self.conn.call(rb).map(|_| ())
    }
}

fn static_kind(k: &str) -> &'static str {
    match k {
        "local" => "local",
        "memory" => "memory",
        "etcd" => "etcd",
        "s3" => "s3",
        _ => "served",
    }
}

/// Opens `https://` and loopback `http://` addresses of `qstore serve`.
#[derive(Debug, Default)]
pub struct ServedConnector;

impl qstore::backend::Connector for ServedConnector {
    fn connect(&self, address: &str, create: bool) -> Result<qstore::backend::Backends> {
        connect(address, create, None)
    }
}

/// The backends of a served repository at `address`, with explicit options (unset fields
/// from the environment), or the current ones: for programs that talk to several servers
/// with different tokens.
pub fn connect(
    address: &str,
    create: bool,
    opts: Option<ClientOptions>,
) -> Result<qstore::backend::Backends> {
    {
        let a = ServedAddress::parse(address)?;
        if create {
            return Err(Error::InvalidArgument(format!(
                "{address}: a served repository is created on the server (qstore init, then \
                 qstore serve --repo NAME=PATH)"
            )));
        }
        let conn = match opts {
            Some(o) => Conn::with_options(&a, with_fallbacks(o)?)?,
            None => Conn::new(&a)?,
        };
        let info: wire::CoordinationInfo =
            conn.json(conn.request(reqwest::Method::GET, "coordination"))?;
        let coordination = ServedCoordination {
            conn: conn.clone(),
            kind: static_kind(&info.kind),
            describe: format!("{} ({})", a.root(), info.describe),
        };
        Ok(qstore::backend::Backends {
            storage: Arc::new(ServedStorage { conn }),
            coordination: Some(Arc::new(coordination)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        let a = ServedAddress::parse("https://example.org:8443/states").unwrap();
        assert_eq!(a.name, "states");
        assert_eq!(
            a.store_base(),
            "https://example.org:8443/v1/repos/states/store"
        );
        assert_eq!(
            ServedAddress::parse("https://h:1/").unwrap().name,
            "default"
        );
        assert!(ServedAddress::parse("http://127.0.0.1:8080/x").is_ok());
        assert!(ServedAddress::parse("http://[::1]:8080/x").is_ok());
        assert!(ServedAddress::parse("http://example.org:8080/x").is_err());
        assert!(ServedAddress::parse("https://h:1/a/b").is_err());
        assert!(ServedAddress::parse("https://h:1/..").is_err());
        assert!(ServedAddress::parse("https://u:p@h:1/a").is_err());
    }
}
