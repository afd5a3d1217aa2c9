//! Cluster backends of qstore, outside the engine: repositories on S3-compatible object
//! storage ([`s3::S3Storage`], on the `object_store` crate) with refs, leases and counters in
//! etcd ([`etcd::EtcdCoordination`], over etcd's v3 JSON gateway) or, where the server
//! provably honours conditional writes, in the bucket itself ([`s3refs::S3Coordination`]).
//!
//! [`register`] adds the `s3://` scheme to the engine, after which every front end opens
//! `s3://BUCKET/PREFIX?endpoint=URL&region=R&refs=etcd://HOST:PORT[,HOST:PORT]/PREFIX` with
//! `qstore::Repository::open` like any other address. [`address`] parses such addresses and
//! [`with_refs`] adds a ref store given separately (`--refs`, `QSTORE_REFS`).
//!
//! It also adds `https://HOST:PORT/NAME` (and `http://` on loopback): repositories served by
//! `qstore serve`, through the store protocol of [`wire`] ([`served`]).

pub mod address;
pub mod etcd;
pub mod runtime;
pub mod s3;
pub mod s3refs;
pub mod served;
pub mod wire;

pub use address::{RefsAddress, S3Address, with_refs};

use qstore::backend::{Backends, Connector};
use qstore::coord::Coordination;
use qstore::storage::Storage;
use qstore::storage::disk_cache::DiskCache;
use std::sync::Arc;

/// Opens `s3://` addresses.
#[derive(Debug, Default)]
pub struct S3Connector;

impl Connector for S3Connector {
    fn connect(&self, address: &str, _create: bool) -> qstore::Result<Backends> {
        let a = S3Address::parse(address)?;
        let remote = Arc::new(s3::S3Storage::connect(&a)?);
        let coordination: Option<Arc<dyn Coordination>> = match &a.refs {
            None => None,
            Some(RefsAddress::Etcd(e)) => Some(Arc::new(etcd::EtcdCoordination::connect(e)?)),
            Some(RefsAddress::S3) => Some(Arc::new(s3refs::S3Coordination::connect(&a)?)),
        };
        let storage: Arc<dyn Storage> = match (&a.cache_dir, a.cache_bytes) {
            (Some(dir), n) if n > 0 => Arc::new(DiskCache::new(remote, dir, n)?),
            _ => remote,
        };
        Ok(Backends {
            storage,
            coordination,
        })
    }
}

/// Make `s3://`, `https://` and (loopback) `http://` addresses open through this crate
/// (idempotent).
pub fn register() {
    qstore::backend::register("s3", Arc::new(S3Connector));
    qstore::backend::register("https", Arc::new(served::ServedConnector));
    qstore::backend::register("http", Arc::new(served::ServedConnector));
}
