//! The routes behind the web view (`/v1/repos/{repo}/...`, read scope): a state's inspector
//! (`inspect`: entry, stored size, top-k with amplitudes and phases, per-qubit marginals,
//! Bloch vectors, entropy, a density matrix's heat map, the amplitudes of small states), a
//! checkpoint series (`series`), the commit graph of every ref a page at a time (`graph`)
//! and storage (`storage`: statistics, scratch spaces and their leases). Everything heavy is
//! computed here, streaming the state; the browser gets at most
//! [`BROWSER_MAX_AMPLITUDES`] amplitudes and a [`HEATMAP_SIDE`]-square heat map.

use crate::api::{RefQuery, bits};
use crate::error::Query;
use crate::error::{ApiError, ApiResult};
use crate::tokens::{Grant, Scope};
use crate::{Served, blocking, require};
use axum::Extension;
use axum::extract::Path;
use qstore::StateReader;
use qstore::state::dtype::{Encoding, StateKind};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;

type Srv = Extension<Arc<Served>>;
type Gr = Extension<Grant>;
type Params = Path<HashMap<String, String>>;

/// Most amplitudes a state may have for the inspector to send them all (a phase strip).
pub const BROWSER_MAX_AMPLITUDES: u64 = 1024;
/// Cells per side of a density matrix's heat map.
pub const HEATMAP_SIDE: usize = 64;
/// Most points of a checkpoint series.
pub const MAX_SERIES_POINTS: usize = 500;
/// Most commits of one page of the graph.
pub const MAX_GRAPH_PAGE: usize = 500;
/// Most qubits whose marginals the inspector sends.
const MAX_MARGINAL_QUBITS: u32 = 64;

/// The inspector: every view of one state that fits its kind and size; a view that does not
/// apply is left out with the reason under `unavailable`.
pub async fn inspect(
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<RefQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let path = crate::api::state_path(&p)?;
    let spec = q.spec();
    let k = q.k.unwrap_or(16).clamp(1, 1024);
    let out = blocking(move || {
        let (commit, entry) = s.repo.state(&spec, &path)?;
        let mut r = StateReader::new(s.repo.clone(), &path, entry.clone())?;
        let mut unavailable = serde_json::Map::new();
        let mut v = json!({
            "commit": commit.to_hex(),
            "path": path,
            "entry": entry,
            "kind": entry.kind.name(),
            "dtype": entry.dtype.name(),
            "encoding": entry.encoding.name(),
            "size": r.stored_size(),
            "qubit_order": "bit q of a basis index is qubit q; bit strings print qubit n-1 first (as Qiskit)",
        });
        let n = entry.qubits;
        if entry.kind == StateKind::Array {
            unavailable.insert("state views".into(), json!("a generic array is not a state"));
            v["unavailable"] = Value::Object(unavailable);
            return Ok(v);
        }
        if entry.is_wide() {
            unavailable.insert(
                "state views".into(),
                json!(format!("a {n}-qubit sparse state has no 64-bit basis indices")),
            );
            v["unavailable"] = Value::Object(unavailable);
            return Ok(v);
        }
        // Bloch vectors give P(1) = (1 - z) / 2 of every qubit; without them the one pass
        // below counts P(1) itself.
        let bloch = r.bloch_vectors(&path);
        let p1_qubits = if bloch.is_ok() { 0 } else { n.min(MAX_MARGINAL_QUBITS) };
        // One pass: top-k (above zero: a dense state lists zeros too), norm, entropy.
        let sum = r.summary(k, p1_qubits)?;
        let top = sum.top;
        let amps = if entry.kind == StateKind::StateVector {
            Some(r.elements_at(&top.iter().map(|t| t.0).collect::<Vec<_>>())?)
        } else {
            None
        };
        v["top"] = json!(
            top.iter()
                .enumerate()
                .map(|(j, (i, p))| {
                    let mut t = json!({"index": i, "bits": bits(*i, n), "probability": p});
                    if let Some(a) = &amps {
                        t["amplitude"] = json!(a[j]);
                        t["phase"] = json!(a[j][1].atan2(a[j][0]));
                    }
                    t
                })
                .collect::<Vec<_>>()
        );
        v["norm"] = json!(sum.norm);
        v["entropy_bits"] = json!(sum.entropy_bits);
        match bloch {
            Ok(b) => {
                v["marginals"] = json!(b.iter().map(|x| (1.0 - x[2]) / 2.0).collect::<Vec<_>>());
                v["bloch"] = json!(b);
            }
            Err(e) => {
                v["marginals"] = json!(sum.p1);
                unavailable.insert("bloch".into(), json!(e.to_string()));
            }
        }
        if entry.kind == StateKind::DensityMatrix {
            match r.density_heatmap(&path, HEATMAP_SIDE) {
                Ok(h) => v["heatmap"] = json!(h),
                Err(e) => {
                    unavailable.insert("heatmap".into(), json!(e.to_string()));
                }
            }
        }
        let elements = entry.elements();
        if entry.kind == StateKind::StateVector && elements <= BROWSER_MAX_AMPLITUDES {
            let all: Vec<u64> = (0..elements).collect();
            v["amplitudes"] = json!(r.elements_at(&all)?);
        } else if entry.kind == StateKind::StateVector {
            unavailable.insert(
                "amplitudes".into(),
                json!(format!(
                    "{elements} amplitudes is more than the {BROWSER_MAX_AMPLITUDES} sent to a browser; \
                     the top {k} are shown with their phases"
                )),
            );
        }
        v["sparse"] = json!(entry.encoding == Encoding::Sparse);
        v["unavailable"] = Value::Object(unavailable);
        Ok(v)
    })
    .await?;
    Ok(axum::Json(out))
}

#[derive(Deserialize, Default)]
pub struct SeriesQuery {
    #[serde(rename = "ref")]
    spec: Option<String>,
    #[serde(rename = "final")]
    final_path: Option<String>,
    limit: Option<usize>,
}

/// A checkpoint series: the versions of a path along a branch, oldest first, with fidelity
/// to the final state and entropy.
pub async fn series(
    Extension(s): Srv,
    Extension(g): Gr,
    Path(p): Params,
    Query(q): Query<SeriesQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let path = crate::api::state_path(&p)?;
    if let Some(f) = &q.final_path {
        qstore::StatePath::new(f).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let spec = q.spec.clone().unwrap_or_else(|| "main".into());
    let limit = q.limit.unwrap_or(200).clamp(1, MAX_SERIES_POINTS);
    let v = blocking(move || {
        let points = s
            .repo
            .series(&spec, &path, q.final_path.as_deref(), limit)?;
        Ok(json!({"ref": spec, "path": path, "final": q.final_path.unwrap_or(path.clone()), "points": points}))
    })
    .await?;
    Ok(axum::Json(v))
}

#[derive(Deserialize, Default)]
pub struct GraphQuery {
    offset: Option<usize>,
    limit: Option<usize>,
}

/// A page of the commit graph of every branch and tag, newest first.
pub async fn graph(
    Extension(s): Srv,
    Extension(g): Gr,
    Query(q): Query<GraphQuery>,
) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let offset = q.offset.unwrap_or(0);
    let limit = q.limit.unwrap_or(50).clamp(1, MAX_GRAPH_PAGE);
    let v = blocking(move || Ok(s.repo.graph(offset, limit)?)).await?;
    crate::api::json_of(v)
}

/// Storage: the repository's statistics (dedup and compression ratios, packs, files) and
/// its scratch spaces with their leases (local repositories).
pub async fn storage(Extension(s): Srv, Extension(g): Gr) -> ApiResult<axum::Json<Value>> {
    require(&g, Scope::Read)?;
    let v = blocking(move || {
        let stats = s.repo.stats()?;
        let leases = qstore::repo::scratch::list_leases(&s.repo)?;
        let scratch: Vec<Value> = leases
            .into_iter()
            .map(|(l, live)| {
                json!({"id": l.id, "pid": l.pid, "created_ms": l.created_ms,
                       "expires_ms": l.expires_ms, "live": live})
            })
            .collect();
        Ok(json!({"stats": stats, "scratch": scratch}))
    })
    .await?;
    Ok(axum::Json(v))
}
