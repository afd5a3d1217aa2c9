//! [`S3Storage`]: the engine's blob storage on an S3-compatible object store, through the
//! `object_store` crate. Blobs are objects under the repository's key prefix; a pack is
//! uploaded whole when it is written (one PUT, or a multipart upload in
//! [`PART_BYTES`] parts for large ones), so it appears complete or not at all; a record read
//! is one ranged GET; listing (gc, merges, index refresh) lists one "directory" at a time.
//!
//! Conditional PUT is turned off (`S3ConditionalPut::Disabled`): servers such as Garage accept
//! and ignore `If-None-Match`, so nothing here relies on it; blobs are immutable and
//! content- or randomly named, and exclusion comes from the ref store.

use crate::address::S3Address;
use crate::runtime::block_on;
use bytes::Bytes;
use object_store::aws::{AmazonS3, AmazonS3Builder, S3ConditionalPut};
use object_store::path::Path;
use object_store::{
    ClientOptions, MultipartUpload, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig,
    UploadPart,
};
use qstore::Error;
use qstore::storage::{BlobMeta, BlobWriter, PutMode, PutOutcome, Storage};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

/// Size of one part of a multipart upload (and the largest blob sent in one PUT).
pub const PART_BYTES: usize = 16 << 20;
/// Parts of one upload in flight at once.
const PARTS_IN_FLIGHT: usize = 4;

/// Blobs in an S3 bucket under a prefix.
pub struct S3Storage {
    store: Arc<AmazonS3>,
    address: S3Address,
    /// A short name for messages: `s3://bucket/prefix`.
    name: String,
}

impl std::fmt::Debug for S3Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "S3Storage({})", self.name)
    }
}

/// Map an object_store error on `key`: missing objects are [`Error::BlobNotFound`],
/// everything else the store being unavailable or refusing.
pub(crate) fn map_err(name: &str, key: &str, e: object_store::Error) -> Error {
    match e {
        object_store::Error::NotFound { .. } => Error::BlobNotFound(key.to_string()),
        e => Error::Unavailable {
            service: format!("object store {name}"),
            reason: format!("{key}: {e}"),
        },
    }
}

impl S3Storage {
    /// Connect to the bucket `a` names (credentials from the AWS environment variables).
    pub fn connect(a: &S3Address) -> qstore::Result<Self> {
        Self::connect_with(a, false)
    }

    /// [`S3Storage::connect`], with conditional PUT requests (`If-None-Match`, `If-Match`)
    /// sent when `conditional` (for ref stores in the bucket, after the probe).
    pub fn connect_with(a: &S3Address, conditional: bool) -> qstore::Result<Self> {
        let mut b = AmazonS3Builder::from_env()
            .with_bucket_name(&a.bucket)
            .with_conditional_put(if conditional {
                S3ConditionalPut::ETagMatch
            } else {
                S3ConditionalPut::Disabled
            })
            .with_retry(RetryConfig {
                max_retries: 6,
                retry_timeout: Duration::from_secs(60),
                ..Default::default()
            });
        let mut opts = ClientOptions::new()
            .with_timeout(Duration::from_secs(120))
            .with_connect_timeout(Duration::from_secs(5));
        if let Some(ep) = &a.endpoint {
            // Path-style requests: S3-compatible servers rarely have wildcard DNS.
            b = b.with_endpoint(ep).with_virtual_hosted_style_request(false);
            opts = opts.with_allow_http(ep.starts_with("http://"));
        }
        if let Some(r) = &a.region {
            b = b.with_region(r);
        }
        if let Some(ca) = &a.ca {
            let pem = std::fs::read(ca).map_err(|e| {
                Error::InvalidArgument(format!("cannot read the CA file {}: {e}", ca.display()))
            })?;
            let cert = object_store::Certificate::from_pem(&pem).map_err(|e| {
                Error::InvalidArgument(format!("the CA file {} is not PEM: {e}", ca.display()))
            })?;
            opts = opts.with_root_certificate(cert);
        }
        let store = b.with_client_options(opts).build().map_err(|e| {
            Error::InvalidArgument(format!("cannot use bucket {:?}: {e}", a.bucket))
        })?;
        Ok(S3Storage {
            store: Arc::new(store),
            address: a.clone(),
            name: format!("s3://{}/{}", a.bucket, a.prefix),
        })
    }

    /// The object_store client (for probes and benchmarks).
    pub fn object_store(&self) -> Arc<AmazonS3> {
        self.store.clone()
    }

    /// The object path of blob `key`.
    pub fn path(&self, key: &str) -> Path {
        Path::from(self.address.key(key))
    }

    fn err(&self, key: &str, e: object_store::Error) -> Error {
        map_err(&self.name, key, e)
    }

    /// The bucket and prefix, for messages.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Streams one blob: buffers up to a part, then uploads parts (a few in flight).
struct S3Writer {
    store: Arc<AmazonS3>,
    path: Path,
    key: String,
    name: String,
    buf: Vec<u8>,
    upload: Option<Box<dyn MultipartUpload>>,
    in_flight: VecDeque<tokio::task::JoinHandle<object_store::Result<()>>>,
}

impl S3Writer {
    fn ship_part(&mut self) -> qstore::Result<()> {
        if self.upload.is_none() {
            let store = self.store.clone();
            let path = self.path.clone();
            let up = block_on(async move { store.put_multipart(&path).await })?
                .map_err(|e| map_err(&self.name, &self.key, e))?;
            self.upload = Some(up);
        }
        let data = std::mem::take(&mut self.buf);
        let Some(up) = self.upload.as_mut() else {
            return Ok(());
        };
        let part: UploadPart = up.put_part(PutPayload::from(Bytes::from(data)));
        self.in_flight
            .push_back(crate::runtime::handle().spawn(part));
        while self.in_flight.len() >= PARTS_IN_FLIGHT {
            self.wait_one()?;
        }
        Ok(())
    }

    fn wait_one(&mut self) -> qstore::Result<()> {
        if let Some(h) = self.in_flight.pop_front() {
            block_on(h)?
                .map_err(|e| Error::Unavailable {
                    service: format!("object store {}", self.name),
                    reason: format!("{}: upload task: {e}", self.key),
                })?
                .map_err(|e| map_err(&self.name, &self.key, e))?;
        }
        Ok(())
    }
}

impl BlobWriter for S3Writer {
    fn write_all(&mut self, mut data: &[u8]) -> qstore::Result<()> {
        while !data.is_empty() {
            let room = PART_BYTES - self.buf.len();
            let n = room.min(data.len());
            self.buf.extend_from_slice(&data[..n]);
            data = &data[n..];
            if self.buf.len() == PART_BYTES {
                self.ship_part()?;
            }
        }
        Ok(())
    }

    fn finish(mut self: Box<Self>) -> qstore::Result<()> {
        if self.upload.is_none() {
            // Small blob: one PUT.
            let store = self.store.clone();
            let path = self.path.clone();
            let data = Bytes::from(std::mem::take(&mut self.buf));
            block_on(async move { store.put(&path, PutPayload::from(data)).await })?
                .map_err(|e| self.err(&self.key, e))?;
            return Ok(());
        }
        if !self.buf.is_empty() {
            self.ship_part()?;
        }
        while !self.in_flight.is_empty() {
            self.wait_one()?;
        }
        let Some(mut up) = self.upload.take() else {
            return Ok(());
        };
        block_on(async move { up.complete().await })?.map_err(|e| self.err(&self.key, e))?;
        Ok(())
    }
}

impl S3Writer {
    fn err(&self, key: &str, e: object_store::Error) -> Error {
        map_err(&self.name, key, e)
    }
}

impl Drop for S3Writer {
    fn drop(&mut self) {
        // An abandoned multipart upload is aborted so its parts do not linger.
        if let Some(mut up) = self.upload.take() {
            for h in self.in_flight.drain(..) {
                h.abort();
            }
            crate::runtime::handle().spawn(async move {
                let _ = up.abort().await;
            });
        }
    }
}

impl Storage for S3Storage {
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> qstore::Result<PutOutcome> {
        if mode == PutMode::Create && self.size(key).is_ok() {
            // Best effort only (no conditional PUT): exclusion comes from the ref store.
            return Ok(PutOutcome::AlreadyExists);
        }
        let mut w = self.writer(key)?;
        w.write_all(data)?;
        w.finish()?;
        Ok(PutOutcome::Written)
    }

    fn writer(&self, key: &str) -> qstore::Result<Box<dyn BlobWriter>> {
        Ok(Box::new(S3Writer {
            store: self.store.clone(),
            path: self.path(key),
            key: key.to_string(),
            name: self.name.clone(),
            buf: Vec::new(),
            upload: None,
            in_flight: VecDeque::new(),
        }))
    }

    fn get(&self, key: &str) -> qstore::Result<Vec<u8>> {
        let store = self.store.clone();
        let path = self.path(key);
        let r = block_on(async move {
            let g = store.get(&path).await?;
            g.bytes().await
        })?;
        Ok(r.map_err(|e| self.err(key, e))?.to_vec())
    }

    fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> qstore::Result<()> {
        if buf.is_empty() {
            return Ok(());
        }
        let store = self.store.clone();
        let path = self.path(key);
        let range = offset..offset + buf.len() as u64;
        let bytes = block_on(async move { store.get_range(&path, range).await })?
            .map_err(|e| self.err(key, e))?;
        if bytes.len() != buf.len() {
            return Err(Error::corrupt(
                format!("blob {key}"),
                format!(
                    "short read at {offset}: {} of {} bytes",
                    bytes.len(),
                    buf.len()
                ),
            ));
        }
        buf.copy_from_slice(&bytes);
        Ok(())
    }

    fn size(&self, key: &str) -> qstore::Result<u64> {
        let store = self.store.clone();
        let path = self.path(key);
        let m = block_on(async move { store.head(&path).await })?.map_err(|e| self.err(key, e))?;
        Ok(m.size)
    }

    fn list(&self, prefix: &str) -> qstore::Result<Vec<BlobMeta>> {
        let store = self.store.clone();
        let dir = self.address.key(prefix.trim_end_matches('/'));
        let r = block_on(async move { store.list_with_delimiter(Some(&Path::from(dir))).await })?
            .map_err(|e| self.err(prefix, e))?;
        let base = self.address.key("");
        let mut out: Vec<BlobMeta> = r
            .objects
            .into_iter()
            .map(|o| {
                let full = o.location.to_string();
                let key = full.strip_prefix(&base).unwrap_or(&full).to_string();
                let modified = std::time::SystemTime::UNIX_EPOCH.checked_add(
                    Duration::from_millis(o.last_modified.timestamp_millis().max(0) as u64),
                );
                BlobMeta {
                    key,
                    size: o.size,
                    modified,
                }
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn prefers_few_requests(&self) -> bool {
        true
    }

    fn delete(&self, key: &str) -> qstore::Result<()> {
        let store = self.store.clone();
        let path = self.path(key);
        match block_on(async move { store.delete(&path).await })? {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.err(key, e)),
        }
    }
}
