//! `qstore serve`: network access to repositories, outside the engine. An axum router over
//! the engine with two faces on one listener:
//! - the store protocol ([`store`], `/v1/repos/{name}/store/...`): blobs and coordination,
//!   spoken by qstore's own clients (`https://` addresses in the CLI, Python and `qstore
//!   run`), which run the engine locally and so do everything the CLI does;
//! - the API ([`api`], `/v1/repos/{name}/...`): states, ranges, top-k, marginals, refs,
//!   log, diff, stats, gc, fsck as JSON and raw bytes, for curl and the web view.
//!
//! With `--ui` (and under `qstore ui`) the same listener serves the web view ([`ui`], `/ui/`)
//! over the API and the routes behind it ([`views`]).
//!
//! Every `/v1` request carries a bearer token ([`tokens`]) checked against the repository it
//! names; scopes are enforced per route and per ref. TLS ([`tls`]) prefers the hybrid
//! post-quantum group X25519MLKEM768. Limits ([`Limits`]): body and chunk sizes, per-token
//! concurrency, request and handshake timeouts. `/healthz` and `/metrics` need no token.

pub mod api;
pub mod error;
pub mod metrics;
pub mod store;
pub mod tls;
pub mod tokens;
pub mod ui;
pub mod views;

use crate::error::{ApiError, ApiResult};
use crate::metrics::Metrics;
use crate::tokens::{Grant, SessionTokens, TokenStore};
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use qstore::Repository;
use qstore::coord::Lock;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tracing::Instrument;

/// Limits of the server.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body (an uploaded pack or state), bytes.
    pub max_body: u64,
    /// Largest object in an uploaded pack, bytes.
    pub max_chunk: u64,
    /// Requests one token may have in flight; more wait (up to the request timeout).
    pub per_token_concurrency: usize,
    /// Longest a request may take, body included.
    pub request_timeout: Duration,
    /// Longest a client may pause between two pieces of a body.
    pub body_idle_timeout: Duration,
    /// Longest a TLS handshake, or the headers of a request, may take.
    pub handshake_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_body: 1 << 30,
            max_chunk: 64 << 20,
            per_token_concurrency: 16,
            request_timeout: Duration::from_secs(600),
            body_idle_timeout: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

/// A lock a client holds through a lease.
pub(crate) struct HeldLease {
    pub _lock: Lock,
    pub deadline: Instant,
    pub token_id: String,
}

/// One served repository.
pub struct Served {
    pub name: String,
    pub repo: Repository,
    pub(crate) leases: Mutex<HashMap<String, HeldLease>>,
    pub(crate) merging: AtomicBool,
}

impl Served {
    /// Whether a background pack merge of this repository is running now.
    pub fn merging(&self) -> bool {
        self.merging.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// Everything the handlers share.
pub struct AppState {
    pub repos: BTreeMap<String, Arc<Served>>,
    pub limits: Limits,
    pub metrics: Arc<Metrics>,
    /// The in-memory session tokens of `qstore ui`.
    pub sessions: Option<Arc<SessionTokens>>,
    permits: Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>,
}

/// The lease time to live.
pub const LEASE_TTL: Duration = Duration::from_secs(30);

/// What `qstore serve` is asked to do.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// (name, address) of each repository; the name is `default` when not given.
    pub repos: Vec<(String, String)>,
    pub listen: SocketAddr,
    /// PEM certificate chain and private key; without them the server speaks plain HTTP
    /// and only on a loopback address.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub pq_only: bool,
    pub limits: Limits,
    /// Serve the web view at `/ui/`.
    pub ui: bool,
    /// Accept these in-memory session tokens besides the repositories' own (`qstore ui`).
    pub sessions: Option<Arc<SessionTokens>>,
}

/// A running server (stops when dropped).
pub struct RunningServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: tokio::sync::watch::Sender<bool>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl RunningServer {
    /// Wait until the process is told to stop (Ctrl-C or SIGTERM).
    pub fn wait_for_signal(&self) {
        if let Some(rt) = &self.runtime {
            rt.block_on(async {
                let mut term =
                    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
                }
            });
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

/// Parse `NAME=ADDRESS` or a bare `ADDRESS` (named `default`).
pub fn parse_repo_arg(s: &str) -> Result<(String, String), String> {
    if let Some((n, a)) = s.split_once('=')
        && !n.contains("://")
        && !n.contains('/')
    {
        if !qstore_cluster::wire::repo_name_allowed(n) {
            return Err(format!(
                "repository name {n:?}: use [A-Za-z0-9._-], at most 64 characters"
            ));
        }
        return Ok((n.to_string(), a.to_string()));
    }
    Ok(("default".into(), s.to_string()))
}

/// Open the repositories and start serving; returns once the listener is bound.
pub fn start(cfg: ServeConfig) -> Result<RunningServer, String> {
    let mut repos = BTreeMap::new();
    for (name, addr) in &cfg.repos {
        if repos.contains_key(name) {
            return Err(format!("repository name {name:?} given twice"));
        }
        let repo = Repository::open(addr).map_err(|e| format!("{name}={addr}: {e}"))?;
        repos.insert(
            name.clone(),
            Arc::new(Served {
                name: name.clone(),
                repo,
                leases: Mutex::new(HashMap::new()),
                merging: AtomicBool::new(false),
            }),
        );
    }
    if repos.is_empty() {
        return Err("no repository to serve: pass --repo [NAME=]ADDRESS".into());
    }
    if cfg.tls.is_none() && !cfg.listen.ip().is_loopback() {
        return Err(format!(
            "{} is not a loopback address: plain HTTP is only served on loopback; pass \
             --tls-cert and --tls-key",
            cfg.listen
        ));
    }
    if cfg.pq_only && cfg.tls.is_none() {
        return Err("--pq-only needs TLS (--tls-cert and --tls-key)".into());
    }
    let tls = match &cfg.tls {
        Some((c, k)) => Some(Arc::new(tls::server_tls_config(c, k, cfg.pq_only)?)),
        None => None,
    };
    let metrics = Arc::new(Metrics::default());
    let state = Arc::new(AppState {
        repos,
        limits: cfg.limits.clone(),
        metrics: metrics.clone(),
        sessions: cfg.sessions.clone(),
        permits: Mutex::new(HashMap::new()),
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(8)
        .thread_name("qstore-serve")
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the server runtime: {e}"))?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(cfg.listen))
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("listener address: {e}"))?;
    let (stop, stop_rx) = tokio::sync::watch::channel(false);
    let app = router(state.clone(), cfg.ui);
    let limits = tls::ConnLimits {
        handshake: cfg.limits.handshake_timeout,
        header_read: cfg.limits.handshake_timeout,
    };
    runtime.spawn(tls::serve_connections(
        listener,
        tls,
        app,
        metrics,
        limits,
        stop_rx.clone(),
    ));
    runtime.spawn(reap_leases(state.clone(), stop_rx));
    Ok(RunningServer {
        addr,
        state,
        stop,
        runtime: Some(runtime),
    })
}

/// Drop leases whose holders stopped renewing them.
async fn reap_leases(state: Arc<AppState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => return,
        }
        let now = Instant::now();
        for s in state.repos.values() {
            let expired: Vec<HeldLease> = {
                let mut l = s.leases.lock().unwrap_or_else(|e| e.into_inner());
                let ids: Vec<String> = l
                    .iter()
                    .filter(|(_, h)| h.deadline < now)
                    .map(|(k, _)| k.clone())
                    .collect();
                ids.iter().filter_map(|k| l.remove(k)).collect()
            };
            if !expired.is_empty() {
                // Releasing a lock may touch the coordination's storage: off the runtime.
                let _ = tokio::task::spawn_blocking(move || drop(expired)).await;
            }
        }
    }
}

/// The routes, each with the scope it needs (checked by the handlers); `docs/server.md`
/// lists the same table and a test holds them equal.
pub const ROUTES: &[(&str, &str, &str)] = &[
    ("GET", "/healthz", "none"),
    ("GET", "/metrics", "none"),
    ("GET", "/ui/", "none (--ui)"),
    ("GET", "/ui/app.js", "none (--ui)"),
    ("GET", "/ui/style.css", "none (--ui)"),
    ("POST", "/ui/session", "login code (qstore ui)"),
    ("GET", "/v1/repos", "any token"),
    ("GET", "/v1/repos/{repo}/whoami", "read"),
    ("GET", "/v1/repos/{repo}/refs", "read"),
    ("POST", "/v1/repos/{repo}/refs", "write"),
    ("DELETE", "/v1/repos/{repo}/refs", "write"),
    ("GET", "/v1/repos/{repo}/log", "read"),
    ("GET", "/v1/repos/{repo}/diff", "read"),
    ("GET", "/v1/repos/{repo}/states", "read"),
    ("GET", "/v1/repos/{repo}/states/{*path}", "read"),
    ("DELETE", "/v1/repos/{repo}/states/{*path}", "write"),
    ("GET", "/v1/repos/{repo}/data/{*path}", "read"),
    ("PUT", "/v1/repos/{repo}/data/{*path}", "write"),
    ("GET", "/v1/repos/{repo}/topk/{*path}", "read"),
    ("GET", "/v1/repos/{repo}/marginals/{*path}", "read"),
    ("GET", "/v1/repos/{repo}/stats", "read"),
    ("GET", "/v1/repos/{repo}/inspect/{*path}", "read"),
    ("GET", "/v1/repos/{repo}/series/{*path}", "read"),
    ("GET", "/v1/repos/{repo}/graph", "read"),
    ("GET", "/v1/repos/{repo}/storage", "read"),
    ("POST", "/v1/repos/{repo}/gc", "admin"),
    ("POST", "/v1/repos/{repo}/fsck", "admin"),
    ("GET", "/v1/repos/{repo}/store/coordination", "read"),
    ("GET", "/v1/repos/{repo}/store/blob", "read"),
    ("PUT", "/v1/repos/{repo}/store/blob", "write"),
    ("DELETE", "/v1/repos/{repo}/store/blob", "admin"),
    ("GET", "/v1/repos/{repo}/store/size", "read"),
    ("GET", "/v1/repos/{repo}/store/list", "read"),
    ("GET", "/v1/repos/{repo}/store/ref", "read"),
    ("GET", "/v1/repos/{repo}/store/refs", "read"),
    ("POST", "/v1/repos/{repo}/store/cas", "write"),
    ("POST", "/v1/repos/{repo}/store/lock", "write"),
    ("POST", "/v1/repos/{repo}/store/lease/renew", "write"),
    ("POST", "/v1/repos/{repo}/store/lease/release", "write"),
    ("GET", "/v1/repos/{repo}/store/generation", "read"),
    ("POST", "/v1/repos/{repo}/store/generation", "admin"),
    ("GET", "/v1/repos/{repo}/store/document", "read"),
    ("PUT", "/v1/repos/{repo}/store/document", "admin"),
    ("POST", "/v1/repos/{repo}/store/bind", "read"),
];

/// The router over `state`, with the web view's page when `ui`.
pub fn router(state: Arc<AppState>, ui: bool) -> axum::Router {
    use axum::routing::{get, post};
    let v1 = axum::Router::new()
        .route("/whoami", get(api::whoami))
        .route(
            "/refs",
            get(api::refs).post(api::set_ref).delete(api::delete_ref),
        )
        .route("/log", get(api::log))
        .route("/diff", get(api::diff))
        .route("/states", get(api::list_states))
        .route(
            "/states/{*path}",
            get(api::state_info).delete(api::delete_state),
        )
        .route("/data/{*path}", get(api::read_data).put(api::put_data))
        .route("/topk/{*path}", get(api::top_k))
        .route("/marginals/{*path}", get(api::marginals))
        .route("/stats", get(api::stats))
        .route("/inspect/{*path}", get(views::inspect))
        .route("/series/{*path}", get(views::series))
        .route("/graph", get(views::graph))
        .route("/storage", get(views::storage))
        .route("/gc", post(api::gc))
        .route("/fsck", post(api::fsck))
        .merge(store::routes())
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ));
    let mut app = axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics_text))
        .route("/v1/repos", get(ui::repositories))
        .nest("/v1/repos/{repo}", v1);
    if ui {
        app = app
            .route("/", get(ui::root))
            .route("/ui", get(ui::root))
            .route("/ui/", get(ui::index))
            .route("/ui/app.js", get(ui::script))
            .route("/ui/style.css", get(ui::style))
            .route("/ui/session", post(ui::session));
    }
    app.fallback(|| async {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no_route",
            "no such route (see docs/server.md)",
        )
    })
    .layer(axum::middleware::from_fn_with_state(state.clone(), observe))
    .with_state(state)
}

async fn metrics_text(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [("content-type", "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}

/// Counts every answer, logs it in a span (method, path, token id, status), and turns
/// an overrun of the request timeout into 503.
async fn observe(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let span = tracing::info_span!("request", %method, %path);
    let started = Instant::now();
    let limit = state.limits.request_timeout;
    let resp = match tokio::time::timeout(limit, next.run(req).instrument(span.clone())).await {
        Ok(r) => r,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "timeout",
            format!("the request took longer than {}s", limit.as_secs()),
        )
        .into_response(),
    };
    let status = resp.status().as_u16();
    state.metrics.request(status);
    if status >= 400 {
        let kind = match status {
            401 => "unauthorised",
            403 => "forbidden",
            413 => "too_large",
            400 => "bad_request",
            _ => "other",
        };
        state.metrics.refusal(kind);
    }
    let token = resp
        .extensions()
        .get::<TokenId>()
        .map(|t| t.0.clone())
        .unwrap_or_default();
    span.in_scope(|| {
        tracing::info!(
            status,
            token = %token,
            ms = started.elapsed().as_millis() as u64,
            "answered"
        )
    });
    resp
}

/// The id of the token a request used (for logs; never the secret).
#[derive(Clone, Debug)]
struct TokenId(String);

/// The repository a request names, and its grant: checks the bearer token against that
/// repository's tokens and takes one of the token's concurrency permits.
async fn authenticate(
    State(state): State<Arc<AppState>>,
    axum::extract::Path(params): axum::extract::Path<HashMap<String, String>>,
    mut req: Request,
    next: Next,
) -> Response {
    let name = params.get("repo").cloned().unwrap_or_default();
    if !qstore_cluster::wire::repo_name_allowed(&name) {
        return ApiError::bad_request(format!(
            "malformed repository name {name:?} ([A-Za-z0-9._-], one path segment)"
        ))
        .into_response();
    }
    let Some(served) = state.repos.get(&name).cloned() else {
        return ApiError::new(
            StatusCode::NOT_FOUND,
            "repository_not_found",
            format!("no repository named {name:?} is served here"),
        )
        .into_response();
    };
    let presented = req
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|s| s.trim().to_string());
    let grant = match grant_for(&state, served.clone(), presented).await {
        Ok(g) => g,
        Err(e) => return e.into_response(),
    };
    let sem = {
        let mut p = state.permits.lock().unwrap_or_else(|e| e.into_inner());
        p.entry(grant.token_id.clone())
            .or_insert_with(|| {
                Arc::new(tokio::sync::Semaphore::new(
                    state.limits.per_token_concurrency.max(1),
                ))
            })
            .clone()
    };
    let Ok(_permit) = sem.acquire_owned().await else {
        return ApiError::internal("permits closed").into_response();
    };
    let token_id = grant.token_id.clone();
    req.extensions_mut().insert(grant);
    req.extensions_mut().insert(served);
    let mut resp = next.run(req).await;
    resp.extensions_mut().insert(TokenId(token_id));
    resp
}

/// The grant of the `presented` bearer token in `served`: a session token of `qstore ui`,
/// else one of the repository's own tokens.
pub(crate) async fn grant_for(
    state: &AppState,
    served: Arc<Served>,
    presented: Option<String>,
) -> ApiResult<Grant> {
    if let (Some(sessions), Some(t)) = (&state.sessions, &presented)
        && let Some(g) = sessions.check(t)
    {
        return Ok(g);
    }
    let checked = tokio::task::spawn_blocking(move || {
        TokenStore::new(served.repo.coordination()).check(presented.as_deref())
    })
    .await;
    match checked {
        Ok(Ok(Ok(g))) => Ok(g),
        Ok(Ok(Err(refusal))) => Err(ApiError::unauthorised(refusal.to_string())),
        Ok(Err(e)) => Err(ApiError::from(e)),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// Refuse unless `grant` covers `need`.
pub(crate) fn require(grant: &Grant, need: tokens::Scope) -> ApiResult<()> {
    if grant.allows(need) {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "this token has scope {}; the request needs {need}",
            grant.scope
        )))
    }
}

/// Run blocking engine work off the runtime.
pub(crate) async fn blocking<T, F>(f: F) -> ApiResult<T>
where
    F: FnOnce() -> ApiResult<T> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("worker: {e}")))?
}

/// How much of an oversized body the server reads (and drops) before answering 413, so
/// that the client, still sending, gets the answer instead of a broken connection.
const DRAIN_BYTES: u64 = 64 << 20;

/// Read a request body of at most `limit` bytes, with the idle limit between pieces. A
/// larger body is refused with 413 (read and dropped up to [`DRAIN_BYTES`] more, then the
/// connection is closed); a declared length over the limit plus that is refused at once.
pub(crate) async fn read_body(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: u64,
) -> ApiResult<Vec<u8>> {
    read_body_with(state, headers, body, limit, 0, |_| true).await
}

/// [`read_body`], handing each piece within the limit to `on_piece` as it arrives (false:
/// stop handing them). The buffer starts with room for the declared length, else for
/// `expect` bytes (address space only until written), so a streamed body of unknown length
/// is not copied again and again as it grows.
pub(crate) async fn read_body_with(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    body: axum::body::Body,
    limit: u64,
    expect: u64,
    mut on_piece: impl FnMut(&axum::body::Bytes) -> bool,
) -> ApiResult<Vec<u8>> {
    use http_body_util::BodyExt;
    let mut handing = true;
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = |n: Option<u64>| {
        ApiError::too_large(match n {
            Some(n) => format!("the body ({n} bytes) is larger than the limit of {limit} bytes"),
            None => format!("the body is larger than the limit of {limit} bytes"),
        })
    };
    if declared.is_some_and(|n| n > limit.saturating_add(DRAIN_BYTES)) {
        return Err(too_large(declared));
    }
    let mut body = body;
    let mut out = Vec::with_capacity(declared.unwrap_or(expect).min(limit) as usize);
    let mut seen = 0u64;
    loop {
        let frame = tokio::time::timeout(state.limits.body_idle_timeout, body.frame())
            .await
            .map_err(|_| {
                ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "timeout",
                    "the request body stalled",
                )
            })?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| ApiError::bad_request(format!("request body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen > limit {
                out = Vec::new();
                if seen > limit.saturating_add(DRAIN_BYTES) {
                    return Err(too_large(declared));
                }
                continue;
            }
            if handing {
                handing = on_piece(&data);
            }
            out.extend_from_slice(&data);
        }
    }
    state
        .metrics
        .bytes_in
        .fetch_add(seen, std::sync::atomic::Ordering::Relaxed);
    if seen > limit {
        return Err(too_large(declared.or(Some(seen))));
    }
    Ok(out)
}

/// Parse a JSON body, refusing malformed ones with 400.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(b: &[u8]) -> ApiResult<T> {
    serde_json::from_slice(b).map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))
}
