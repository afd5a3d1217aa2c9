//! The store protocol's routes (`/v1/repos/{repo}/store/...`, bodies in
//! [`qstore_cluster::wire`]): blobs and coordination of a served repository, for qstore's
//! own clients. Scopes: reading needs `read`; uploading packs, compare-and-swap of refs the
//! token may move, and shared locks need `write`; deleting blobs, bumping the generation,
//! exclusive locks, documents and the config need `admin`. Keys outside
//! `config.json`/`init.json`/`packs/<hex>.pack` are refused before they reach storage;
//! uploaded packs are verified whole (every record hashes to its id) before they are
//! stored, and a ref only moves to a commit the repository holds. After a ref moves, the
//! server merges small packs itself (clients never delete).

use crate::error::Query;
use crate::error::{ApiError, ApiResult};
use crate::tokens::{Grant, Scope};
use crate::{AppState, HeldLease, LEASE_TTL, Served, blocking, parse_json, require};
use axum::Extension;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use qstore::coord::LockMode;
use qstore::refs::CasOutcome;
use qstore::storage::{PutMode, PutOutcome};
use qstore::{ObjectId, RefName};
use qstore_cluster::wire;
use serde::Deserialize;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

type St = State<Arc<AppState>>;
type Srv = Extension<Arc<Served>>;
type Gr = Extension<Grant>;

/// The store routes, relative to `/v1/repos/{repo}`.
pub fn routes() -> axum::Router<Arc<AppState>> {
    use axum::routing::{get, post};
    axum::Router::new()
        .route("/store/coordination", get(coordination))
        .route(
            "/store/blob",
            get(get_blob).put(put_blob).delete(delete_blob),
        )
        .route("/store/size", get(size))
        .route("/store/list", get(list))
        .route("/store/ref", get(get_ref))
        .route("/store/refs", get(list_refs))
        .route("/store/cas", post(cas))
        .route("/store/lock", post(lock))
        .route("/store/lease/renew", post(renew))
        .route("/store/lease/release", post(release))
        .route("/store/generation", get(generation).post(bump_generation))
        .route("/store/document", get(get_document).put(put_document))
        .route("/store/bind", post(bind))
}

#[derive(Deserialize)]
pub struct KeyQuery {
    key: String,
    offset: Option<u64>,
    len: Option<u64>,
    mode: Option<String>,
}

fn check_key(key: &str) -> ApiResult<()> {
    if wire::blob_key_allowed(key) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "blob key {key:?} is not one a client may name (config.json, init.json, packs/<32 hex>.pack)"
        )))
    }
}

async fn coordination(
    Extension(s): Srv,
    Extension(g): Gr,
) -> ApiResult<axum::Json<wire::CoordinationInfo>> {
    require(&g, Scope::Read)?;
    let c = s.repo.coordination();
    Ok(axum::Json(wire::CoordinationInfo {
        kind: c.kind().into(),
        describe: format!("served repository {}", s.name),
        merged_by_server: true,
    }))
}

async fn get_blob(
    State(st): St,
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    require(&g, Scope::Read)?;
    check_key(&q.key)?;
    if let Some(len) = q.len
        && len > st.limits.max_body
    {
        return Err(ApiError::too_large(format!(
            "a range of {len} bytes is larger than the limit of {}",
            st.limits.max_body
        )));
    }
    let bytes = blocking(move || {
        let storage = s.repo.storage();
        match (q.offset, q.len) {
            (None, None) => Ok(storage.get(&q.key)?),
            (off, len) => {
                let off = off.unwrap_or(0);
                let len = match len {
                    Some(l) => l,
                    None => storage.size(&q.key)?.saturating_sub(off),
                };
                let mut buf = vec![0u8; len as usize];
                storage.read_at(&q.key, off, &mut buf)?;
                Ok(buf)
            }
        }
    })
    .await?;
    st.metrics
        .bytes_out
        .fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok((
        [("content-type", "application/octet-stream")],
        Bytes::from(bytes),
    )
        .into_response())
}

async fn put_blob(
    State(st): St,
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<KeyQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<wire::PutAnswer>> {
    // Records of states written in parts are a writer's own (qstore::repo::upload).
    let is_pack = q.key.starts_with("packs/");
    let is_upload = wire::upload_key_allowed(&q.key);
    let allowed = require(&g, Scope::Write)
        .and_then(|_| check_key(&q.key))
        .and_then(|_| {
            if !is_pack && !is_upload {
                require(&g, Scope::Admin)
            } else {
                Ok(())
            }
        });
    if let Err(e) = allowed {
        // Read (and drop) what the client is still sending, so that it gets this answer
        // instead of a connection closed under its upload.
        let _ = crate::read_body(&st, &headers, body, 0).await;
        return Err(e);
    }
    let mode = match q.mode.as_deref() {
        None | Some("create") => PutMode::Create,
        Some("overwrite") if !is_pack => PutMode::Overwrite,
        Some(m) => {
            return Err(ApiError::bad_request(format!(
                "mode {m:?}: packs are only created (mode=create)"
            )));
        }
    };
    if is_pack {
        return receive_pack(&st, s, q.key, &headers, body).await;
    }
    let limit = if is_upload {
        1 << 20
    } else {
        st.limits.max_body
    };
    let data = crate::read_body(&st, &headers, body, limit).await?;
    if is_upload && serde_json::from_slice::<serde_json::Value>(&data).is_err() {
        return Err(ApiError::bad_request(format!("{} must hold JSON", q.key)));
    }
    let written =
        blocking(move || Ok(s.repo.storage().put(&q.key, &data, mode)? == PutOutcome::Written))
            .await?;
    Ok(axum::Json(wire::PutAnswer { written }))
}

/// Receive a pack: its bytes go to storage as they arrive (overlapping the upload with the
/// disk writes) and are kept in memory; the pack becomes visible only when the whole of it
/// passed [`qstore::format::pack::verify_pack`] and the chunk limit. A pack that fails, or
/// a body that breaks off, is abandoned: nothing is stored.
async fn receive_pack(
    st: &Arc<AppState>,
    s: Arc<Served>,
    key: String,
    headers: &HeaderMap,
    body: Body,
) -> ApiResult<axum::Json<wire::PutAnswer>> {
    let s2 = s.clone();
    let k2 = key.clone();
    if blocking(move || match s2.repo.storage().size(&k2) {
        Ok(_) => Ok(true),
        Err(qstore::Error::BlobNotFound(_)) => Ok(false),
        Err(e) => Err(e.into()),
    })
    .await?
    {
        return Ok(axum::Json(wire::PutAnswer { written: false }));
    }
    let (tx, rx) = std::sync::mpsc::sync_channel::<Bytes>(16);
    let (s2, k2) = (s.clone(), key.clone());
    let writing = tokio::task::spawn_blocking(
        move || -> qstore::Result<Box<dyn qstore::storage::BlobWriter>> {
            let mut w = s2.repo.storage().writer(&k2)?;
            for piece in rx {
                w.write_all(&piece)?;
            }
            Ok(w)
        },
    );
    let mut tx = Some(tx);
    // Packs are at most the repository's pack target plus one object.
    let expect = s.repo.config().pack_target_bytes + st.limits.max_chunk;
    let received = crate::read_body_with(st, headers, body, st.limits.max_body, expect, |piece| {
        tx.as_ref().is_some_and(|t| t.send(piece.clone()).is_ok())
    })
    .await;
    drop(tx.take());
    let writer = writing
        .await
        .map_err(|e| ApiError::internal(format!("worker: {e}")))?;
    let data = received?;
    let writer = writer?;
    let max_chunk = st.limits.max_chunk;
    blocking(move || {
        let (_, largest) = qstore::format::pack::verify_pack(&data)
            .map_err(|why| ApiError::bad_request(format!("pack {key}: {why}")))?;
        if largest > max_chunk {
            return Err(ApiError::too_large(format!(
                "pack {key} holds an object of {largest} bytes, over the chunk limit of {max_chunk}"
            )));
        }
        writer.finish()?;
        Ok(())
    })
    .await?;
    Ok(axum::Json(wire::PutAnswer { written: true }))
}

async fn delete_blob(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<KeyQuery>,
) -> ApiResult<StatusCode> {
    // Admins delete; a write token may remove the records of an upload (abort, clean-up).
    require(
        &g,
        if wire::upload_key_allowed(&q.key) {
            Scope::Write
        } else {
            Scope::Admin
        },
    )?;
    check_key(&q.key)?;
    blocking(move || Ok(s.repo.storage().delete(&q.key)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn size(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<KeyQuery>,
) -> ApiResult<Response> {
    require(&g, Scope::Read)?;
    check_key(&q.key)?;
    let n = blocking(move || Ok(s.repo.storage().size(&q.key)?)).await?;
    Ok(axum::Json(serde_json::json!({ "size": n })).into_response())
}

#[derive(Deserialize)]
pub struct PrefixQuery {
    #[serde(default)]
    prefix: String,
}

async fn list(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<PrefixQuery>,
) -> ApiResult<axum::Json<Vec<wire::BlobEntry>>> {
    require(&g, Scope::Read)?;
    if !wire::list_prefix_allowed(&q.prefix) {
        return Err(ApiError::bad_request(format!(
            "prefix {:?} cannot be listed (packs/ or the root)",
            q.prefix
        )));
    }
    let v = blocking(move || Ok(s.repo.storage().list(&q.prefix)?)).await?;
    Ok(axum::Json(
        v.into_iter()
            .filter(|b| wire::blob_key_allowed(&b.key))
            .map(|b| wire::BlobEntry {
                key: b.key,
                size: b.size,
                modified: b
                    .modified
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64()),
            })
            .collect(),
    ))
}

#[derive(Deserialize)]
pub struct NameQuery {
    name: String,
}

fn ref_name(key: &str) -> ApiResult<RefName> {
    RefName::from_key(key).map_err(|e| ApiError::bad_request(e.to_string()))
}

fn object_id(h: &str) -> ApiResult<ObjectId> {
    ObjectId::from_hex(h).ok_or_else(|| ApiError::bad_request(format!("malformed commit id {h:?}")))
}

async fn get_ref(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<NameQuery>,
) -> ApiResult<axum::Json<wire::RefAnswer>> {
    require(&g, Scope::Read)?;
    let name = ref_name(&q.name)?;
    let id = blocking(move || Ok(s.repo.coordination().refs().get(&name)?)).await?;
    Ok(axum::Json(wire::RefAnswer {
        id: id.map(|i| i.to_hex()),
    }))
}

async fn list_refs(
    Extension(s): Srv,
    Extension(g): Gr,
) -> ApiResult<axum::Json<Vec<(String, String)>>> {
    require(&g, Scope::Read)?;
    let v = blocking(move || Ok(s.repo.coordination().refs().list()?)).await?;
    Ok(axum::Json(
        v.into_iter().map(|(n, i)| (n.key(), i.to_hex())).collect(),
    ))
}

async fn cas(
    Extension(s): Srv,
    Extension(g): Gr,
    body: Bytes,
) -> ApiResult<axum::Json<wire::CasAnswer>> {
    require(&g, Scope::Write)?;
    let r: wire::CasRequest = parse_json(&body)?;
    let name = ref_name(&r.name)?;
    if !g.may_move(&name) {
        return Err(ApiError::forbidden(format!(
            "this token may not move {} (it may move branches starting with {:?})",
            name.key(),
            g.branch_prefix.as_deref().unwrap_or("")
        )));
    }
    let expected = r.expected.as_deref().map(object_id).transpose()?;
    let new = r.new.as_deref().map(object_id).transpose()?;
    let s2 = s.clone();
    let out = blocking(move || {
        if let Some(n) = &new {
            // A ref only ever names a commit the repository holds.
            s2.repo.commit(n).map_err(|e| {
                ApiError::bad_request(format!(
                    "{}: the new commit is not stored here: {e}",
                    name.key()
                ))
            })?;
        }
        let c = s2.repo.coordination();
        Ok(match r.generation {
            Some(gen_) => c.compare_and_swap_at(&name, expected, new, gen_)?,
            None => c.refs().compare_and_swap(&name, expected, new)?,
        })
    })
    .await?;
    let answer = match out {
        CasOutcome::Swapped => {
            merge_soon(&s);
            wire::CasAnswer {
                swapped: true,
                actual: None,
            }
        }
        CasOutcome::Mismatch { actual } => wire::CasAnswer {
            swapped: false,
            actual: actual.map(|i| i.to_hex()),
        },
    };
    Ok(axum::Json(answer))
}

/// Merge small packs in the background, once at a time per repository.
pub(crate) fn merge_soon(s: &Arc<Served>) {
    if s.merging.swap(true, Ordering::SeqCst) {
        return;
    }
    let s = s.clone();
    tokio::task::spawn_blocking(move || {
        let r = s.repo.refresh_index().and_then(|_| s.repo.auto_merge());
        if let Err(e) = r {
            tracing::warn!(repository = %s.name, error = %e, "pack merge failed");
        }
        s.merging.store(false, Ordering::SeqCst);
    });
}

async fn lock(
    Extension(s): Srv,
    Extension(g): Gr,
    body: Bytes,
) -> ApiResult<axum::Json<wire::LockAnswer>> {
    require(&g, Scope::Write)?;
    let r: wire::LockRequest = parse_json(&body)?;
    let mode = match r.mode.as_str() {
        "shared" => LockMode::Shared,
        "exclusive" => {
            // The exclusive gc lock is for admins; a write token may complete an upload
            // (which holds `upload-<id>` exclusively so that it commits once).
            if !r.name.starts_with("upload-") {
                require(&g, Scope::Admin)?;
            }
            LockMode::Exclusive
        }
        m => return Err(ApiError::bad_request(format!("lock mode {m:?}"))),
    };
    if r.name.is_empty()
        || r.name.len() > 64
        || !r
            .name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(ApiError::bad_request(format!("lock name {:?}", r.name)));
    }
    let token_id = g.token_id.clone();
    let lease = blocking(move || {
        let Some(l) = s.repo.coordination().try_lock(&r.name, mode)? else {
            return Ok(None);
        };
        let id = hex::encode(rand::random::<[u8; 16]>());
        s.leases.lock().unwrap_or_else(|e| e.into_inner()).insert(
            id.clone(),
            HeldLease {
                _lock: l,
                deadline: Instant::now() + LEASE_TTL,
                token_id,
            },
        );
        Ok(Some(id))
    })
    .await?;
    Ok(axum::Json(wire::LockAnswer {
        lease,
        ttl_s: LEASE_TTL.as_secs(),
    }))
}

async fn renew(
    Extension(s): Srv,
    Extension(g): Gr,
    body: Bytes,
) -> ApiResult<axum::Json<wire::LeaseAnswer>> {
    require(&g, Scope::Write)?;
    let r: wire::LeaseRequest = parse_json(&body)?;
    let mut l = s.leases.lock().unwrap_or_else(|e| e.into_inner());
    let alive = match l.get_mut(&r.lease) {
        Some(h) if h.token_id == g.token_id => {
            h.deadline = Instant::now() + LEASE_TTL;
            true
        }
        _ => false,
    };
    Ok(axum::Json(wire::LeaseAnswer { alive }))
}

async fn release(Extension(s): Srv, Extension(g): Gr, body: Bytes) -> ApiResult<StatusCode> {
    require(&g, Scope::Write)?;
    let r: wire::LeaseRequest = parse_json(&body)?;
    let held = {
        let mut l = s.leases.lock().unwrap_or_else(|e| e.into_inner());
        match l.get(&r.lease) {
            Some(h) if h.token_id == g.token_id => l.remove(&r.lease),
            _ => None,
        }
    };
    blocking(move || {
        drop(held);
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn generation(
    Extension(s): Srv,
    Extension(g): Gr,
) -> ApiResult<axum::Json<wire::GenerationAnswer>> {
    require(&g, Scope::Read)?;
    let generation = blocking(move || Ok(s.repo.coordination().generation()?)).await?;
    Ok(axum::Json(wire::GenerationAnswer { generation }))
}

async fn bump_generation(
    Extension(s): Srv,
    Extension(g): Gr,
) -> ApiResult<axum::Json<wire::GenerationAnswer>> {
    require(&g, Scope::Admin)?;
    let generation = blocking(move || Ok(s.repo.coordination().bump_generation()?)).await?;
    Ok(axum::Json(wire::GenerationAnswer { generation }))
}

fn check_document(name: &str) -> ApiResult<()> {
    if wire::document_allowed(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "document {name:?} is not served"
        )))
    }
}

async fn get_document(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<NameQuery>,
) -> ApiResult<Response> {
    require(&g, Scope::Read)?;
    check_document(&q.name)?;
    let name = q.name.clone();
    match blocking(move || Ok(s.repo.coordination().document(&name)?)).await? {
        Some(b) => Ok(Bytes::from(b).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "blob_not_found",
            format!("document {}", q.name),
        )),
    }
}

async fn put_document(
    State(st): St,
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<NameQuery>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult<StatusCode> {
    require(&g, Scope::Admin)?;
    check_document(&q.name)?;
    let b = crate::read_body(&st, &headers, body, 16 << 20).await?;
    blocking(move || Ok(s.repo.coordination().put_document(&q.name, &b)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn bind(Extension(s): Srv, Extension(g): Gr, body: Bytes) -> ApiResult<StatusCode> {
    require(&g, Scope::Read)?;
    let r: wire::BindRequest = parse_json(&body)?;
    if r.create {
        require(&g, Scope::Admin)?;
    }
    blocking(move || Ok(s.repo.coordination().bind(&r.id, r.create)?)).await?;
    Ok(StatusCode::NO_CONTENT)
}
