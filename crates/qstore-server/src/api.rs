//! The API routes (`/v1/repos/{repo}/...`): states, ranges of amplitudes, top-k, marginals,
//! refs, log, diff, stats, gc and fsck, as JSON (metadata) and raw little-endian bytes
//! (amplitudes), for curl, scripts and the web view. A `PUT` of a state is one commit on
//! the branch named; multi-state transactions go through the store protocol (qstore's own
//! clients). Refs move only within the token's scope.

use crate::error::Query;
use crate::error::{ApiError, ApiResult};
use crate::tls::ConnInfo;
use crate::tokens::{Grant, Scope};
use crate::{AppState, Served, blocking, parse_json, require};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qstore::repo::gc::GcOptions;
use qstore::repo::ingest::PutOptions;
use qstore::{ArrayInfo, CommitOptions, DType, RefName};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

type St = State<Arc<AppState>>;
type Srv = Extension<Arc<Served>>;
type Gr = Extension<Grant>;
type Params = Path<HashMap<String, String>>;

/// An engine report as a JSON answer.
pub(crate) fn json_of<T: serde::Serialize>(v: T) -> ApiResult<axum::Json<Value>> {
    serde_json::to_value(v)
        .map(axum::Json)
        .map_err(|e| ApiError::internal(e.to_string()))
}

pub(crate) fn state_path(p: &HashMap<String, String>) -> ApiResult<String> {
    let path = p.get("path").cloned().unwrap_or_default();
    qstore::StatePath::new(&path).map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(path)
}

#[derive(Deserialize, Default)]
pub struct RefQuery {
    #[serde(rename = "ref")]
    spec: Option<String>,
    limit: Option<usize>,
    prefix: Option<String>,
    start: Option<u64>,
    count: Option<u64>,
    pub(crate) k: Option<usize>,
    qubits: Option<String>,
    branch: Option<String>,
    message: Option<String>,
    dtype: Option<String>,
    shape: Option<String>,
    lossy: Option<String>,
    name: Option<String>,
    from: Option<String>,
    to: Option<String>,
    full: Option<bool>,
}

impl RefQuery {
    pub(crate) fn spec(&self) -> String {
        self.spec.clone().unwrap_or_else(|| "main".into())
    }
}

pub async fn whoami(
    Extension(s): Srv,
    Extension(g): Gr,
    conn: Option<Extension<ConnInfo>>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    Ok(axum::Json(json!({
        "repository": s.name,
        "token": g.token_id,
        "scope": g.scope.to_string(),
        "branch_prefix": g.branch_prefix,
        "tls_group": conn.and_then(|c| c.0.tls_group.clone()),
    })))
}

pub async fn refs(Extension(s): Srv, Extension(g): Gr) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let v = blocking(move || Ok(s.repo.refs()?)).await?;
    let (mut branches, mut tags) = (serde_json::Map::new(), serde_json::Map::new());
    for (n, id) in v {
        match n {
            RefName::Branch(b) => branches.insert(b, json!(id.to_hex())),
            RefName::Tag(t) => tags.insert(t, json!(id.to_hex())),
        };
    }
    Ok(axum::Json(json!({"branches": branches, "tags": tags})))
}

#[derive(Deserialize)]
struct SetRef {
    /// `branches/NAME` or `tags/NAME`.
    name: String,
    /// A commit id, branch, tag or `REF~N`.
    target: String,
    /// The commit the ref must hold now (move); absent: the ref must not exist (create).
    expected: Option<String>,
}

pub async fn set_ref(
    Extension(s): Srv,
    Extension(g): Gr,
    body: Bytes,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Write)?;
    let r: SetRef = parse_json(&body)?;
    let name = RefName::from_key(&r.name).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !g.may_move(&name) {
        return Err(ApiError::forbidden(format!(
            "this token may not move {}",
            r.name
        )));
    }
    let expected = match &r.expected {
        Some(h) => Some(
            qstore::ObjectId::from_hex(h)
                .ok_or_else(|| ApiError::bad_request(format!("malformed commit id {h:?}")))?,
        ),
        None => None,
    };
    let out = blocking(move || {
        let target = s.repo.resolve(&r.target)?;
        match s
            .repo
            .coordination()
            .refs()
            .compare_and_swap(&name, expected, Some(target))?
        {
            qstore::refs::CasOutcome::Swapped => {
                Ok(json!({"name": r.name, "commit": target.to_hex()}))
            }
            qstore::refs::CasOutcome::Mismatch { actual } => Err(ApiError::new(
                StatusCode::CONFLICT,
                "conflict",
                format!(
                    "{} holds {}, not the expected {}",
                    r.name,
                    actual
                        .map(|a| a.to_hex())
                        .unwrap_or_else(|| "nothing".into()),
                    expected
                        .map(|a| a.to_hex())
                        .unwrap_or_else(|| "nothing".into())
                ),
            )),
        }
    })
    .await?;
    Ok(axum::Json(out))
}

pub async fn delete_ref(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<RefQuery>,
) -> ApiResult<StatusCode> {
    require(&g, Scope::Write)?;
    let key = q
        .name
        .clone()
        .ok_or_else(|| ApiError::bad_request("name=branches/NAME or tags/NAME is required"))?;
    let name = RefName::from_key(&key).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !g.may_move(&name) {
        return Err(ApiError::forbidden(format!(
            "this token may not delete {key}"
        )));
    }
    blocking(move || Ok(s.repo.delete_ref(&name)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn log(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let limit = q.limit.unwrap_or(100).min(10_000);
    let spec = q.spec();
    let v = blocking(move || Ok(s.repo.log(&spec, limit)?)).await?;
    Ok(axum::Json(Value::Array(
        v.into_iter()
            .map(|(id, c)| {
                json!({
                    "id": id.to_hex(),
                    "parents": c.parents.iter().map(|p| p.to_hex()).collect::<Vec<_>>(),
                    "message": c.message,
                    "author": c.author,
                    "time_ms": c.time_ms,
                    "metadata": c.metadata,
                })
            })
            .collect(),
    )))
}

pub async fn diff(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let (Some(a), Some(b)) = (q.from.clone(), q.to.clone()) else {
        return Err(ApiError::bad_request("from= and to= are required"));
    };
    let v = blocking(move || Ok(s.repo.diff(&a, &b)?)).await?;
    json_of(v)
}

pub async fn list_states(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let spec = q.spec();
    let prefix = q.prefix.clone();
    let v = blocking(move || {
        let c = s.repo.resolve(&spec)?;
        Ok(s.repo.list_states(&c, prefix.as_deref())?)
    })
    .await?;
    Ok(axum::Json(Value::Array(
        v.into_iter()
            .map(|(p, e)| json!({"path": p, "entry": e}))
            .collect(),
    )))
}

pub async fn state_info(
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let path = state_path(&p)?;
    let spec = q.spec();
    let (commit, entry) = blocking(move || Ok(s.repo.state(&spec, &path)?)).await?;
    Ok(axum::Json(
        json!({"commit": commit.to_hex(), "entry": entry}),
    ))
}

/// Amplitudes come in pieces of this many bytes.
const PIECE: u64 = 8 << 20;

pub async fn read_data(
    State(st): St,
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
) -> ApiResult<Response> {
    require(&g, Scope::Read)?;
    let path = state_path(&p)?;
    let spec = q.spec();
    let (start, count) = (q.start, q.count);
    let (mut reader, start, stop, item) = blocking(move || {
        let r = s.repo.reader(&spec, &path)?;
        let e = r.entry().clone();
        if e.is_wide() {
            return Err(ApiError::bad_request(format!(
                "{path} is a sparse state of {} qubits with no dense form; read it with qstore get",
                e.qubits
            )));
        }
        let n = e.elements();
        let start = start.unwrap_or(0);
        let stop = match count {
            Some(c) => start.saturating_add(c),
            None => n,
        };
        if start > stop || stop > n {
            return Err(ApiError::bad_request(format!(
                "element range {start}..{stop} is outside 0..{n}"
            )));
        }
        Ok((r, start, stop, e.dtype.item_size() as u64))
    })
    .await?;
    let total = (stop - start) * item;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(2);
    let metrics = st.metrics.clone();
    tokio::task::spawn_blocking(move || {
        let per = (PIECE / item).max(1);
        let mut at = start;
        while at < stop {
            let end = (at + per).min(stop);
            let mut buf = vec![0u8; ((end - at) * item) as usize];
            let r = reader
                .read_elements(at, end, &mut buf)
                .map(|_| Bytes::from(buf))
                .map_err(|e| std::io::Error::other(e.to_string()));
            let failed = r.is_err();
            if let Ok(b) = &r {
                metrics
                    .bytes_out
                    .fetch_add(b.len() as u64, Ordering::Relaxed);
            }
            if tx.blocking_send(r).is_err() || failed {
                return;
            }
            at = end;
        }
    });
    let stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
    Ok((
        [
            ("content-type", "application/octet-stream".to_string()),
            ("content-length", total.to_string()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

pub async fn put_data(
    State(st): St,
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Write)?;
    let path = state_path(&p)?;
    let branch = q.branch.clone().unwrap_or_else(|| "main".into());
    let name = RefName::branch(&branch).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !g.may_move(&name) {
        return Err(ApiError::forbidden(format!(
            "this token may not commit to branch {branch:?}"
        )));
    }
    let dtype_name = q.dtype.clone().unwrap_or_else(|| "complex128".into());
    let dtype = DType::from_name(&dtype_name)
        .ok_or_else(|| ApiError::bad_request(format!("unknown dtype {dtype_name:?}")))?;
    let data = crate::read_body(&st, &headers, body, st.limits.max_body).await?;
    let item = dtype.item_size() as u64;
    let shape: Vec<u64> = match &q.shape {
        Some(sh) => sh
            .split(',')
            .map(|x| x.trim().parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::bad_request(format!("malformed shape {sh:?} (N or N,M)")))?,
        None => vec![data.len() as u64 / item],
    };
    let lossy = match &q.lossy {
        Some(l) => Some(
            l.parse()
                .map_err(|e: qstore::Error| ApiError::bad_request(e.to_string()))?,
        ),
        None => None,
    };
    let message = q
        .message
        .clone()
        .unwrap_or_else(|| format!("put {path} (via qstore serve)"));
    let author = format!("token {}", g.token_id);
    let out = blocking(move || {
        let info = ArrayInfo { dtype, shape };
        match info.elements() {
            Some(n) if n.checked_mul(item) == Some(data.len() as u64) => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "the body has {} bytes; shape {:?} of {} needs {}",
                    data.len(),
                    info.shape,
                    dtype.name(),
                    info.elements()
                        .map(|n| (n * item).to_string())
                        .unwrap_or_else(|| "too many".into())
                )));
            }
        }
        let mut tx = s.repo.transaction(&branch)?;
        let opts = PutOptions {
            lossy,
            ..Default::default()
        };
        let entry = tx.put(&path, &info, &data, &opts)?;
        let commit = tx.commit(CommitOptions {
            message,
            author,
            metadata: Default::default(),
        })?;
        Ok(json!({"commit": commit.to_hex(), "path": path, "entry": entry}))
    })
    .await?;
    Ok(axum::Json(out))
}

pub async fn delete_state(
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Write)?;
    let path = state_path(&p)?;
    let branch = q.branch.clone().unwrap_or_else(|| "main".into());
    let name = RefName::branch(&branch).map_err(|e| ApiError::bad_request(e.to_string()))?;
    if !g.may_move(&name) {
        return Err(ApiError::forbidden(format!(
            "this token may not commit to branch {branch:?}"
        )));
    }
    let author = format!("token {}", g.token_id);
    let out = blocking(move || {
        s.repo.state(&branch, &path)?;
        let mut tx = s.repo.transaction(&branch)?;
        tx.delete(&path)?;
        let commit = tx.commit(CommitOptions {
            message: format!("rm {path} (via qstore serve)"),
            author,
            metadata: Default::default(),
        })?;
        Ok(json!({"commit": commit.to_hex()}))
    })
    .await?;
    Ok(axum::Json(out))
}

/// The bit string of basis index `i` of `n` qubits, qubit n-1 first.
pub(crate) fn bits(i: u64, n: u32) -> String {
    if n == 0 || n > 64 {
        return i.to_string();
    }
    format!("{:0width$b}", i, width = n as usize)
}

pub async fn top_k(
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let path = state_path(&p)?;
    let spec = q.spec();
    let k = q.k.unwrap_or(10).min(100_000);
    let (v, n) = blocking(move || {
        let mut r = s.repo.reader(&spec, &path)?;
        let n = r.entry().qubits;
        Ok((r.top_k(k)?, n))
    })
    .await?;
    Ok(axum::Json(json!({
        "qubit_order": "bit q of the index is qubit q; bit strings print qubit n-1 first (as Qiskit)",
        "top": v.into_iter().map(|(i, p)| json!({"index": i, "bits": bits(i, n), "probability": p})).collect::<Vec<_>>(),
    })))
}

pub async fn marginals(
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let path = state_path(&p)?;
    let spec = q.spec();
    let qubits: Vec<u32> = match &q.qubits {
        Some(s) => s
            .split(',')
            .map(|x| x.trim().parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| ApiError::bad_request(format!("malformed qubits {s:?} (e.g. 0,3)")))?,
        None => return Err(ApiError::bad_request("qubits= is required (e.g. 0,3)")),
    };
    let qs = qubits.clone();
    let v = blocking(move || Ok(s.repo.reader(&spec, &path)?.marginals(&qs)?)).await?;
    Ok(axum::Json(json!({"qubits": qubits, "probabilities": v})))
}

pub async fn stats(Extension(s): Srv, Extension(g): Gr) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let v = blocking(move || Ok(s.repo.stats()?)).await?;
    json_of(v)
}

#[derive(Deserialize, Default)]
struct GcBody {
    #[serde(default)]
    dry_run: bool,
    grace_s: Option<f64>,
}

pub async fn gc(Extension(s): Srv, Extension(g): Gr, body: Bytes) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Admin)?;
    let b: GcBody = if body.is_empty() {
        GcBody::default()
    } else {
        parse_json(&body)?
    };
    let mut opts = GcOptions {
        dry_run: b.dry_run,
        ..Default::default()
    };
    if let Some(gs) = b.grace_s {
        opts.grace = std::time::Duration::try_from_secs_f64(gs)
            .map_err(|_| ApiError::bad_request(format!("grace_s {gs}")))?;
    }
    let v = blocking(move || Ok(s.repo.gc(&opts)?)).await?;
    json_of(v)
}

pub async fn fsck(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Admin)?;
    let full = q.full.unwrap_or(false);
    let v = blocking(move || Ok(s.repo.fsck(full)?)).await?;
    json_of(v)
}
