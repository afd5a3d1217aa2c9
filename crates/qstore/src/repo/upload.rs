//! States written in parts by several writers at once (MPI ranks, processes on many hosts),
//! then committed once: [`Repository::begin_upload`] declares the state and the number of
//! parts P; [`Repository::put_part`] stores part k, the elements `[floor(k*N/P),
//! floor((k+1)*N/P))` (any length: parts need not be chunk-aligned); then
//! [`Repository::complete_upload`] commits the state from the parts without copying their
//! chunks (it only joins the pieces of the chunks that straddle two parts), and
//! [`Repository::abort_upload`] gives up.
//!
//! Everything lives in the repository's storage as `uploads/<id>.<name>`, one key per
//! writer, so writers never contend: `upload.json` (the spec), `part-<k>.json` (written after the
//! part's chunks are durable: the whole chunks inside the part's range, laid on the
//! state's own chunk grid, and the one or two pieces of chunks it shares with its neighbours,
//! each a small manifest), `done.json` (the commit, once completed: completing again returns
//! it). A part is invisible until the upload completes; the chunks of an open upload are
//! kept by gc (see [`live_manifests`]), those of an aborted one or one older than
//! [`UPLOAD_TTL`] are reclaimed, and gc removes their keys. The resulting state is dense;
//! its chunks are the same bytes as a whole put's, so they deduplicate against it.

use super::Repository;
use super::ingest::PutOptions;
use super::transaction::CommitOptions;
use super::writer::{ChunkSink, ObjectWriter, PutStats};
use crate::error::{Error, Result};
use crate::format::manifest::{ChunkRef, Manifest};
use crate::format::tree::StateEntry;
use crate::id::ObjectId;
use crate::state::dtype::{DType, Encoding, StateKind};
use crate::state::input::{ArrayInfo, KindRequest, ScanSummary, infer_kind, scan_chunk};
use crate::storage::PutMode;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Where uploads live in storage.
pub const UPLOADS_PREFIX: &str = "uploads/";
/// An upload not completed after this long is abandoned: gc reclaims its parts.
pub const UPLOAD_TTL: Duration = Duration::from_secs(7 * 24 * 3600);
/// Most parts one upload may have.
pub const MAX_PARTS: u32 = 1 << 16;

/// An upload as declared by [`Repository::begin_upload`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UploadSpec {
    pub id: String,
    pub path: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub kind: String,
    pub parts: u32,
    pub chunk_size: u64,
    pub created_ms: i64,
}

impl UploadSpec {
    fn info(&self) -> Result<ArrayInfo> {
        let dtype = DType::from_name(&self.dtype).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "upload {}: unknown dtype {:?}",
                self.id, self.dtype
            ))
        })?;
        Ok(ArrayInfo {
            dtype,
            shape: self.shape.clone(),
        })
    }

    fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// The element range of part `k`: `[floor(k*N/P), floor((k+1)*N/P))`.
    pub fn range(&self, k: u32) -> (u64, u64) {
        let (n, p) = (self.elements() as u128, self.parts as u128);
        ((k as u128 * n / p) as u64, ((k as u128 + 1) * n / p) as u64)
    }
}

/// The block layout for any part count: part `k` of `p` over `n` elements.
pub fn block_range(n: u64, p: u32, k: u32) -> (u64, u64) {
    let (n, p) = (n as u128, p.max(1) as u128);
    ((k as u128 * n / p) as u64, ((k as u128 + 1) * n / p) as u64)
}

/// One stored part.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct PartRecord {
    k: u32,
    start: u64,
    stop: u64,
    /// The whole chunks inside the part: the first chunk's index and their manifest.
    full: Option<(u64, ObjectId)>,
    /// Pieces of chunks shared with a neighbour: (chunk index, byte offset in it, manifest).
    pieces: Vec<(u64, u64, ObjectId)>,
    scan: (u64, u64, f64),
}

/// What `done.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Done {
    commit: String,
    branch: String,
}

/// An upload and how far it got.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UploadStatus {
    pub spec: UploadSpec,
    pub parts_stored: Vec<u32>,
    pub completed: Option<String>,
}

/// The request that gives back a resolved kind.
fn kind_request(name: &str) -> KindRequest {
    match name {
        "statevector" => KindRequest::StateVector,
        "density_matrix" => KindRequest::DensityMatrix,
        _ => KindRequest::Array,
    }
}

/// The key of `name` of upload `id`: flat (`uploads/<id>.<name>`), so that one listing of
/// `uploads/` finds everything on every backend.
fn key(id: &str, name: &str) -> String {
    format!("{UPLOADS_PREFIX}{id}.{name}")
}

/// The prefix of every key of upload `id`.
pub(crate) fn keys_of(id: &str) -> String {
    format!("{UPLOADS_PREFIX}{id}.")
}

/// The keys under `uploads/` starting with `prefix`: the whole directory is listed and
/// filtered here, since object stores list by directory, not by any string prefix.
pub(crate) fn keys_starting(repo: &Repository, prefix: &str) -> Result<Vec<String>> {
    Ok(repo
        .storage()
        .list_keys(UPLOADS_PREFIX)?
        .into_iter()
        .filter(|k| k.starts_with(prefix))
        .collect())
}

fn check_id(id: &str) -> Result<()> {
    if id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "malformed upload id {id:?} (32 lowercase hex digits)"
        )))
    }
}

fn json<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(|e| Error::InvalidArgument(format!("upload record: {e}")))
}

impl Repository {
    fn read_json<T: for<'a> Deserialize<'a>>(&self, key: &str) -> Result<Option<T>> {
        match self.storage().get(key) {
            Ok(b) => serde_json::from_slice(&b)
                .map(Some)
                .map_err(|e| Error::Corrupt {
                    object: key.into(),
                    path: None,
                    detail: e.to_string(),
                }),
            Err(Error::BlobNotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// The spec of upload `id`.
    pub fn upload_spec(&self, id: &str) -> Result<UploadSpec> {
        check_id(id)?;
        self.read_json(&key(id, "upload.json"))?.ok_or_else(|| {
            Error::InvalidArgument(format!(
                "no upload {id} here (never begun, aborted, or reclaimed)"
            ))
        })
    }

    /// Declare a state of `info` to be written in `parts` parts and committed at `path`;
    /// returns the upload's id (hand it to every writer).
    pub fn begin_upload(
        &self,
        path: &str,
        info: &ArrayInfo,
        kind: KindRequest,
        parts: u32,
    ) -> Result<String> {
        self.check_writable()?;
        crate::path::StatePath::new(path)?;
        if parts == 0 || parts > MAX_PARTS {
            return Err(Error::InvalidArgument(format!(
                "{parts} parts: an upload has 1 to {MAX_PARTS}"
            )));
        }
        let kind = infer_kind(info, kind)?;
        if info.byte_len().is_none() || info.elements().is_none_or(|n| n < parts as u64) {
            return Err(Error::InvalidArgument(format!(
                "{parts} parts of {:?} elements: every part needs at least one",
                info.elements()
            )));
        }
        let id = hex::encode(rand::random::<[u8; 16]>());
        let spec = UploadSpec {
            id: id.clone(),
            path: path.into(),
            dtype: info.dtype.name().into(),
            shape: info.shape.clone(),
            kind: kind.name().into(),
            parts,
            chunk_size: self.config().chunk_size,
            created_ms: super::now_ms(),
        };
        self.storage()
            .put(&key(&id, "upload.json"), &json(&spec)?, PutMode::Create)?;
        Ok(id)
    }

    /// Store part `k` of upload `id`: `data` holds exactly the part's elements
    /// ([`UploadSpec::range`]), little-endian. Storing a part again replaces it.
    pub fn put_part(&self, id: &str, k: u32, data: &[u8]) -> Result<PutStats> {
        self.check_writable()?;
        let spec = self.upload_spec(id)?;
        if self.read_json::<Done>(&key(id, "done.json"))?.is_some() {
            return Err(Error::InvalidArgument(format!(
                "upload {id} is completed already"
            )));
        }
        if k >= spec.parts {
            return Err(Error::InvalidArgument(format!(
                "part {k} of an upload of {} parts",
                spec.parts
            )));
        }
        let info = spec.info()?;
        let kind = infer_kind(&info, kind_request(&spec.kind))?;
        let item = info.dtype.item_size() as u64;
        let (start, stop) = spec.range(k);
        if data.len() as u64 != (stop - start) * item {
            return Err(Error::invalid_state(format!(
                "part {k} of {} holds elements {start}..{stop}: {} bytes, given {}",
                spec.parts,
                (stop - start) * item,
                data.len()
            )));
        }
        // Check and measure (non-finite amplitudes are refused as in a whole put).
        let mut scan = ScanSummary::default();
        for (j, piece) in data.chunks(spec.chunk_size as usize).enumerate() {
            let at = start * item + (j as u64) * spec.chunk_size;
            scan.add(&scan_chunk(piece, at, &info, kind)?);
        }
        let (c, total) = (spec.chunk_size, spec.elements() * item);
        let (b0, b1) = (start * item, stop * item);
        let mut w = ObjectWriter::new(self.clone());
        let mut stats = PutStats::default();
        let mut pieces = Vec::new();
        let mut full = None;
        // Pieces of the first and last chunks when they are shared; whole chunks between.
        let first_full = b0.div_ceil(c);
        let end_full = if b1 == total {
            total.div_ceil(c)
        } else {
            b1 / c
        };
        let mut store = |w: &mut ObjectWriter, bytes: &[u8]| -> Result<ObjectId> {
            let mut sink = ChunkSink::new(w, info.dtype.component_size(), None);
            sink.write(bytes)?;
            let (m, st) = sink.finish()?;
            stats.add(&st);
            w.put_metadata(&m)
        };
        if first_full >= end_full {
            // The part lies inside one or two chunks without covering any whole.
            let mut at = b0;
            while at < b1 {
                let g = at / c;
                let e = ((g + 1) * c).min(b1);
                let id = store(&mut w, &data[(at - b0) as usize..(e - b0) as usize])?;
                pieces.push((g, at - g * c, id));
                at = e;
            }
        } else {
            if b0 < first_full * c {
                let e = first_full * c;
                let id = store(&mut w, &data[..(e - b0) as usize])?;
                pieces.push((b0 / c, b0 % c, id));
            }
            let (m0, m1) = (first_full * c, (end_full * c).min(total));
            let id = store(&mut w, &data[(m0 - b0) as usize..(m1 - b0) as usize])?;
            full = Some((first_full, id));
            if m1 < b1 {
                let id = store(&mut w, &data[(m1 - b0) as usize..])?;
                pieces.push((m1 / c, 0, id));
            }
        }
        w.flush()?;
        let rec = PartRecord {
            k,
            start,
            stop,
            full,
            pieces,
            scan: (scan.nnz, scan.nonzero_chunks, scan.norm),
        };
        self.storage().put(
            &key(id, &format!("part-{k}.json")),
            &json(&rec)?,
            PutMode::Overwrite,
        )?;
        Ok(stats)
    }

    /// Commit upload `id` on `branch` from its parts; every part must be stored. Completing
    /// an upload again returns the commit it made.
    pub fn complete_upload(&self, id: &str, branch: &str, opts: CommitOptions) -> Result<ObjectId> {
        self.check_writable()?;
        let spec = self.upload_spec(id)?;
        let _lock = self
            .coordination()
            .lock(&format!("upload-{id}"), crate::coord::LockMode::Exclusive)?;
        if let Some(d) = self.read_json::<Done>(&key(id, "done.json"))? {
            return ObjectId::from_hex(&d.commit).ok_or_else(|| Error::Corrupt {
                object: key(id, "done.json"),
                path: None,
                detail: "malformed commit id".into(),
            });
        }
        let info = spec.info()?;
        let kind = infer_kind(&info, kind_request(&spec.kind))?;
        let item = info.dtype.item_size() as u64;
        let (c, total) = (spec.chunk_size, spec.elements() * item);
        let n_chunks = total.div_ceil(c) as usize;
        let mut chunks: Vec<Option<ChunkRef>> = vec![None; n_chunks];
        let mut pieces: Vec<Vec<(u64, ObjectId)>> = vec![Vec::new(); n_chunks];
        let mut scan = ScanSummary::default();
        for k in 0..spec.parts {
            let rec: PartRecord = self
                .read_json(&key(id, &format!("part-{k}.json")))?
                .ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        "upload {id}: part {k} of {} is not stored (a writer did not finish)",
                        spec.parts
                    ))
                })?;
            if (rec.start, rec.stop) != spec.range(k) || rec.k != k {
                return Err(Error::Corrupt {
                    object: key(id, &format!("part-{k}.json")),
                    path: None,
                    detail: "its range is not the part's".into(),
                });
            }
            scan.add(&ScanSummary {
                nnz: rec.scan.0,
                nonzero_chunks: rec.scan.1,
                norm: rec.scan.2,
            });
            if let Some((g0, m)) = rec.full {
                for (i, r) in self.manifest(&m)?.chunks.into_iter().enumerate() {
                    if let Some(slot) = chunks.get_mut(g0 as usize + i) {
                        *slot = Some(r);
                    }
                }
            }
            for (g, off, m) in rec.pieces {
                if let Some(p) = pieces.get_mut(g as usize) {
                    p.push((off, m));
                }
            }
        }
        let mut tx = self.transaction(branch)?;
        let mut stats = PutStats::default();
        for g in 0..n_chunks {
            if chunks[g].is_some() || pieces[g].is_empty() {
                continue;
            }
            // Join the pieces of a chunk two or more parts share.
            let len = c.min(total - g as u64 * c);
            pieces[g].sort_by_key(|p| p.0);
            let mut bytes = Vec::with_capacity(len as usize);
            for (off, m) in &pieces[g] {
                if *off != bytes.len() as u64 {
                    return Err(Error::Corrupt {
                        object: format!("upload {id}"),
                        path: None,
                        detail: format!("the pieces of chunk {g} do not join up"),
                    });
                }
                let man = self.manifest(m)?;
                let mut buf = vec![0u8; man.stream_len as usize];
                if let Some(r) = man.chunks.first() {
                    self.read_chunk_uncached(r, &mut buf)?;
                }
                bytes.extend_from_slice(&buf);
            }
            if bytes.len() as u64 != len {
                return Err(Error::Corrupt {
                    object: format!("upload {id}"),
                    path: None,
                    detail: format!("chunk {g} has {} of its {len} bytes", bytes.len()),
                });
            }
            let mut sink = ChunkSink::new(tx.writer(), info.dtype.component_size(), None);
            sink.push_chunk(bytes)?;
            let (m, st) = sink.finish()?;
            stats.add(&st);
            chunks[g] = m.chunks.first().copied();
        }
        let chunks: Vec<ChunkRef> = chunks
            .into_iter()
            .enumerate()
            .map(|(g, r)| {
                r.ok_or_else(|| Error::Corrupt {
                    object: format!("upload {id}"),
                    path: None,
                    detail: format!("no part holds chunk {g}"),
                })
            })
            .collect::<Result<_>>()?;
        stats.chunks = chunks.len() as u64;
        let m = Manifest {
            chunk_size: c,
            stream_len: total,
            chunks,
        };
        let manifest = tx.writer().put_metadata(&m)?;
        let entry = StateEntry {
            kind,
            dtype: info.dtype,
            qubits: match kind {
                StateKind::Array => 0,
                _ => info.shape.first().copied().unwrap_or(1).trailing_zeros(),
            },
            shape: info.shape.clone(),
            encoding: Encoding::Dense,
            manifest,
            stream_len: total,
            nnz: 0,
            norm: scan.norm,
            tags: PutOptions::default().tags,
            lossy: None,
        };
        entry
            .validate()
            .map_err(|r| Error::corrupt("assembled state entry", r))?;
        tx.record_prepared(&spec.path, entry, stats)?;
        let commit = tx.commit(opts)?;
        self.storage().put(
            &key(id, "done.json"),
            &json(&Done {
                commit: commit.to_hex(),
                branch: branch.into(),
            })?,
            PutMode::Overwrite,
        )?;
        Ok(commit)
    }

    /// Give up upload `id`: its keys go, and gc reclaims its parts' chunks.
    pub fn abort_upload(&self, id: &str) -> Result<()> {
        self.check_writable()?;
        check_id(id)?;
        let keys = keys_starting(self, &keys_of(id))?;
        if keys.is_empty() {
            return Err(Error::InvalidArgument(format!("no upload {id} here")));
        }
        // The spec last: while it is there, the upload is open.
        for k in keys.iter().filter(|k| !k.ends_with(".upload.json")) {
            self.storage().delete(k)?;
        }
        for k in keys.iter().filter(|k| k.ends_with(".upload.json")) {
            self.storage().delete(k)?;
        }
        Ok(())
    }

    /// Every upload in the repository and how far it got.
    pub fn uploads(&self) -> Result<Vec<UploadStatus>> {
        let mut out: Vec<UploadStatus> = Vec::new();
        for k in self.storage().list_keys(UPLOADS_PREFIX)? {
            let Some(rest) = k.strip_prefix(UPLOADS_PREFIX) else {
                continue;
            };
            let Some((id, name)) = rest.split_once('.') else {
                continue;
            };
            if name != "upload.json" || check_id(id).is_err() {
                continue;
            }
            let spec = self.upload_spec(id)?;
            let mut parts_stored = Vec::new();
            for p in keys_starting(self, &format!("{}part-", keys_of(id)))? {
                if let Some(n) = p
                    .strip_prefix(&keys_of(id))
                    .and_then(|f| f.strip_prefix("part-"))
                    .and_then(|f| f.strip_suffix(".json"))
                    .and_then(|f| f.parse().ok())
                {
                    parts_stored.push(n);
                }
            }
            parts_stored.sort();
            let completed = self
                .read_json::<Done>(&key(id, "done.json"))?
                .map(|d| d.commit);
            out.push(UploadStatus {
                spec,
                parts_stored,
                completed,
            });
        }
        Ok(out)
    }
}

/// The manifests gc must keep: those of the parts of every open upload (not completed, not
/// older than `ttl`); also the ids of the uploads that are over (completed, expired, or
/// broken), whose keys gc may remove.
pub(crate) fn live_manifests(
    repo: &Repository,
    ttl: Duration,
) -> Result<(Vec<ObjectId>, Vec<String>)> {
    let now = super::now_ms();
    let (mut live, mut over) = (Vec::new(), Vec::new());
    let mut ids: Vec<String> = repo
        .storage()
        .list_keys(UPLOADS_PREFIX)?
        .iter()
        .filter_map(|k| {
            k.strip_prefix(UPLOADS_PREFIX)?
                .split_once('.')
                .map(|x| x.0.to_string())
        })
        .collect();
    ids.sort();
    ids.dedup();
    for id in ids {
        let spec: Option<UploadSpec> = if check_id(&id).is_ok() {
            repo.read_json(&key(&id, "upload.json")).ok().flatten()
        } else {
            None
        };
        let done = repo
            .read_json::<Done>(&key(&id, "done.json"))
            .ok()
            .flatten()
            .is_some();
        let expired = spec
            .as_ref()
            .is_none_or(|s| now.saturating_sub(s.created_ms) > ttl.as_millis() as i64);
        if done || expired {
            over.push(id);
            continue;
        }
        for p in keys_starting(repo, &format!("{}part-", keys_of(&id)))? {
            if let Ok(Some(rec)) = repo.read_json::<PartRecord>(&p) {
                live.extend(rec.full.map(|f| f.1));
                live.extend(rec.pieces.iter().map(|p| p.2));
            }
        }
    }
    Ok((live, over))
}
