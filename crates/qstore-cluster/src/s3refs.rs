//! [`S3Coordination`]: refs, the gc generation, documents and leases kept in the bucket
//! itself with conditional writes, for S3 servers that provably honour them. [`probe`] runs
//! at every connect: it creates one object twice with `If-None-Match: *` and overwrites it
//! with a stale `If-Match`; a server that accepts either (Garage 2.5 accepts both and
//! ignores the headers) is refused with a message pointing to etcd.
//!
//! Refs, generation, documents and the repository id are one object, `coord/state.json`,
//! changed by read-modify-write with `If-Match` on its ETag, so a ref swap and the generation
//! check are one atomic step. Locks are lease objects (`coord/locks/NAME/exclusive`,
//! `coord/locks/NAME/shared/ID`) holding an expiry time, renewed by a background task and
//! taken over once expired: they rest on the clocks of the nodes being roughly right (the
//! generation fence keeps gc safe whatever the clocks do).

use crate::address::S3Address;
use crate::runtime::block_on;
use crate::s3::{S3Storage, map_err};
use bytes::Bytes;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, UpdateVersion};
use qstore::coord::{Coordination, Lock, LockGuard, LockMode};
use qstore::refs::{CasOutcome, RefStore};
use qstore::{Error, ObjectId, RefName};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Time to live of a lease object.
const LEASE_MS: i64 = 10_000;

/// The shared state object.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct State {
    repository_id: String,
    generation: u64,
    refs: BTreeMap<String, String>,
    docs: BTreeMap<String, String>,
}

/// Check that the server refuses a second `If-None-Match: *` create and a stale `If-Match`.
pub fn probe(s: &S3Storage) -> qstore::Result<()> {
    let store = s.object_store();
    let path = s.path(&format!("coord/probe-{}", uuid::Uuid::new_v4()));
    let name = s.name().to_string();
    let refuse = |what: &str| {
        Error::InvalidArgument(format!(
            "the object store {name} {what}: it does not honour conditional writes (Garage 2.5 \
         ignores them), so it cannot keep refs safely; keep refs in etcd instead: \
         refs=etcd://HOST:PORT/PREFIX"
        ))
    };
    let (st, p) = (store.clone(), path.clone());
    let r = block_on(async move {
        let create = || PutOptions {
            mode: PutMode::Create,
            ..Default::default()
        };
        let first = st
            .put_opts(&p, PutPayload::from_static(b"1"), create())
            .await?;
        let second = st
            .put_opts(&p, PutPayload::from_static(b"2"), create())
            .await;
        let stale = st
            .put_opts(
                &p,
                PutPayload::from_static(b"3"),
                PutOptions {
                    mode: PutMode::Update(UpdateVersion {
                        e_tag: Some("\"0000000000000000\"".into()),
                        version: None,
                    }),
                    ..Default::default()
                },
            )
            .await;
        let _ = st.delete(&p).await;
        Ok::<_, object_store::Error>((first, second, stale))
    })?
    .map_err(|e| map_err(s.name(), "coord/probe", e))?;
    match r.1 {
        Err(object_store::Error::AlreadyExists { .. }) => {}
        Ok(_) => {
            return Err(refuse(
                "accepted a second If-None-Match: * create of one key",
            ));
        }
        Err(e) => return Err(map_err(s.name(), "coord/probe", e)),
    }
    match r.2 {
        Err(object_store::Error::Precondition { .. }) => Ok(()),
        Ok(_) => Err(refuse("accepted a PUT with a stale If-Match")),
        Err(e) => Err(map_err(s.name(), "coord/probe", e)),
    }
}

/// Refs and leases in the bucket.
#[derive(Debug)]
pub struct S3Coordination {
    store: Arc<S3Storage>,
    name: String,
}

struct LeaseObject {
    stop: Arc<AtomicBool>,
    store: Arc<S3Storage>,
    key: String,
}
impl LockGuard for LeaseObject {}
impl Drop for LeaseObject {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = qstore::storage::Storage::delete(self.store.as_ref(), &self.key);
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

impl S3Coordination {
    /// Probe the server, then use it (with conditional writes) for refs.
    pub fn connect(a: &S3Address) -> qstore::Result<Self> {
        let store = Arc::new(S3Storage::connect_with(a, true)?);
        probe(&store)?;
        Ok(S3Coordination {
            name: format!("s3 refs in {}", store.name()),
            store,
        })
    }

    fn os(&self) -> Arc<object_store::aws::AmazonS3> {
        self.store.object_store()
    }

    /// The state and its ETag (None when absent).
    fn read(&self) -> qstore::Result<(State, Option<String>)> {
        let (st, p) = (self.os(), self.store.path("coord/state.json"));
        let r = block_on(async move {
            match st.get(&p).await {
                Ok(g) => {
                    let etag = g.meta.e_tag.clone();
                    Ok(Some((g.bytes().await?, etag)))
                }
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        })?
        .map_err(|e| map_err(self.store.name(), "coord/state.json", e))?;
        match r {
            None => Ok((State::default(), None)),
            Some((b, etag)) => Ok((
                serde_json::from_slice(&b)
                    .map_err(|e| Error::corrupt("coord/state.json", e.to_string()))?,
                etag,
            )),
        }
    }

    /// Write `s` if the state is still at `etag`; false when it moved.
    fn write(&self, s: &State, etag: Option<String>) -> qstore::Result<bool> {
        let body = serde_json::to_vec(s).map_err(|e| Error::InvalidArgument(e.to_string()))?;
        let (st, p) = (self.os(), self.store.path("coord/state.json"));
        let mode = match etag {
            None => PutMode::Create,
            Some(e) => PutMode::Update(UpdateVersion {
                e_tag: Some(e),
                version: None,
            }),
        };
        let r = block_on(async move {
            st.put_opts(
                &p,
                PutPayload::from(Bytes::from(body)),
                PutOptions {
                    mode,
                    ..Default::default()
                },
            )
            .await
        })?;
        match r {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. })
            | Err(object_store::Error::Precondition { .. }) => Ok(false),
            Err(e) => Err(map_err(self.store.name(), "coord/state.json", e)),
        }
    }

    /// Apply `f` to the state atomically (retrying while others change it); `f` returns
    /// whether it changed the state (false: nothing is written) and the result.
    fn update<T>(
        &self,
        mut f: impl FnMut(&mut State) -> qstore::Result<(bool, T)>,
    ) -> qstore::Result<T> {
        loop {
            let (mut s, etag) = self.read()?;
            let (change, out) = f(&mut s)?;
            if !change || self.write(&s, etag)? {
                return Ok(out);
            }
            std::thread::sleep(Duration::from_millis(5 + rand::random::<u64>() % 20));
        }
    }

    /// A ref swap, also conditional on the gc generation when one is given: both live in
    /// the state object, so one conditional write checks them together.
    fn cas(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: Option<u64>,
    ) -> qstore::Result<CasOutcome> {
        self.update(|s| {
            let actual = s
                .refs
                .get(&name.key())
                .map(|h| self.parse_id(h))
                .transpose()?;
            if actual != expected {
                return Ok((false, CasOutcome::Mismatch { actual }));
            }
            if let Some(g) = generation
                && s.generation != g
            {
                return Err(Error::LeaseLost {
                    store: self.describe(),
                    detail: format!(
                        "garbage collection generation moved from {g} to {}",
                        s.generation
                    ),
                });
            }
            match new {
                Some(id) => s.refs.insert(name.key(), id.to_hex()),
                None => s.refs.remove(&name.key()),
            };
            Ok((true, CasOutcome::Swapped))
        })
    }

    fn parse_id(&self, hex: &str) -> qstore::Result<ObjectId> {
        ObjectId::from_hex(hex).ok_or_else(|| Error::corrupt("coord/state.json", "not a commit id"))
    }

    fn lease_body() -> Bytes {
        Bytes::from((now_ms() + LEASE_MS).to_string())
    }

    /// Create `key` as a live lease object: taking over an expired one. False when live.
    fn claim(&self, key: &str) -> qstore::Result<bool> {
        let (st, p) = (self.os(), self.store.path(key));
        let name = self.store.name().to_string();
        block_on(async move {
            let create = st
                .put_opts(
                    &p,
                    PutPayload::from(Self::lease_body()),
                    PutOptions {
                        mode: PutMode::Create,
                        ..Default::default()
                    },
                )
                .await;
            match create {
                Ok(_) => return Ok(true),
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Err(e) => return Err(e),
            }
            let g = match st.get(&p).await {
                Ok(g) => g,
                Err(object_store::Error::NotFound { .. }) => return Ok(false),
                Err(e) => return Err(e),
            };
            let etag = g.meta.e_tag.clone();
            let b = g.bytes().await?;
            let expires: i64 = String::from_utf8_lossy(&b).parse().unwrap_or(0);
            if expires > now_ms() {
                return Ok(false);
            }
            match st
                .put_opts(
                    &p,
                    PutPayload::from(Self::lease_body()),
                    PutOptions {
                        mode: PutMode::Update(UpdateVersion {
                            e_tag: etag,
                            version: None,
                        }),
                        ..Default::default()
                    },
                )
                .await
            {
                Ok(_) => Ok(true),
                Err(object_store::Error::Precondition { .. }) => Ok(false),
                Err(e) => Err(e),
            }
        })?
        .map_err(|e| map_err(&name, key, e))
    }

    /// Live shared holders of lock `dir`.
    fn live_shared(&self, dir: &str) -> qstore::Result<usize> {
        let mut n = 0;
        for b in qstore::storage::Storage::list(self.store.as_ref(), dir)? {
            match qstore::storage::Storage::get(self.store.as_ref(), &b.key) {
                Ok(v) => {
                    let exp: i64 = String::from_utf8_lossy(&v).parse().unwrap_or(0);
                    if exp > now_ms() {
                        n += 1;
                    } else {
                        let _ = qstore::storage::Storage::delete(self.store.as_ref(), &b.key);
                    }
                }
                Err(Error::BlobNotFound(_)) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    fn hold(&self, key: String) -> Lock {
        let stop = Arc::new(AtomicBool::new(false));
        let (s, st, p) = (stop.clone(), self.os(), self.store.path(&key));
        crate::runtime::handle().spawn(async move {
            while !s.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(LEASE_MS as u64 / 3)).await;
                if !s.load(Ordering::Relaxed) {
                    let _ = st.put(&p, PutPayload::from(Self::lease_body())).await;
                }
            }
        });
        Box::new(LeaseObject {
            stop,
            store: self.store.clone(),
            key,
        })
    }

    fn take(&self, name: &str, mode: LockMode, wait: bool) -> qstore::Result<Option<Lock>> {
        let ex = format!("coord/locks/{name}/exclusive");
        let dir = format!("coord/locks/{name}/shared/");
        loop {
            match mode {
                LockMode::Exclusive => {
                    if self.claim(&ex)? {
                        let guard = self.hold(ex.clone());
                        while self.live_shared(&dir)? > 0 {
                            if !wait {
                                return Ok(None);
                            }
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        return Ok(Some(guard));
                    }
                }
                LockMode::Shared => {
                    let key = format!("{dir}{}", uuid::Uuid::new_v4());
                    qstore::storage::Storage::put(
                        self.store.as_ref(),
                        &key,
                        &Self::lease_body(),
                        qstore::storage::PutMode::Overwrite,
                    )?;
                    let guard = self.hold(key);
                    let exclusive_live =
                        match qstore::storage::Storage::get(self.store.as_ref(), &ex) {
                            Ok(v) => {
                                String::from_utf8_lossy(&v).parse::<i64>().unwrap_or(0) > now_ms()
                            }
                            Err(Error::BlobNotFound(_)) => false,
                            Err(e) => return Err(e),
                        };
                    if !exclusive_live {
                        return Ok(Some(guard));
                    }
                }
            }
            if !wait {
                return Ok(None);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl RefStore for S3Coordination {
    fn get(&self, name: &RefName) -> qstore::Result<Option<ObjectId>> {
        let (s, _) = self.read()?;
        s.refs
            .get(&name.key())
            .map(|h| self.parse_id(h))
            .transpose()
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
        let (s, _) = self.read()?;
        let mut out = Vec::new();
        for (k, v) in &s.refs {
            if let Ok(n) = RefName::from_key(k) {
                out.push((n, self.parse_id(v)?));
            }
        }
        Ok(out)
    }
}

impl Coordination for S3Coordination {
    fn kind(&self) -> &'static str {
        "s3"
    }
    fn describe(&self) -> String {
        self.name.clone()
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
        Ok(self.read()?.0.generation)
    }
    fn bump_generation(&self) -> qstore::Result<u64> {
        self.update(|s| {
            s.generation += 1;
            Ok((true, s.generation))
        })
    }
    fn document(&self, name: &str) -> qstore::Result<Option<Vec<u8>>> {
        Ok(self.read()?.0.docs.get(name).map(|d| d.as_bytes().to_vec()))
    }
    fn put_document(&self, name: &str, body: &[u8]) -> qstore::Result<()> {
        let text = String::from_utf8(body.to_vec())
            .map_err(|_| Error::InvalidArgument("documents are UTF-8 text".into()))?;
        self.update(|s| {
            s.docs.insert(name.to_string(), text.clone());
            Ok((true, ()))
        })
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
        let store = self.describe();
        self.update(|s| {
            if s.repository_id.is_empty() && create {
                s.repository_id = id.to_string();
                return Ok((true, ()));
            }
            if s.repository_id == id {
                return Ok((false, ()));
            }
            Err(Error::RefStoreMismatch {
                store: store.clone(),
                detail: if s.repository_id.is_empty() {
                    format!("it holds no repository (expected repository {id})")
                } else {
                    format!(
                        "it holds the refs of repository {}, not {id}",
                        s.repository_id
                    )
                },
            })
        })
    }
}
