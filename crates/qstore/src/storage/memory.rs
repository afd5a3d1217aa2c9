//! [`MemoryStorage`]: blobs in a process-local map, for `memory://` repositories and tests.

use super::{BlobMeta, BlobWriter, MappedBlob, PutMode, PutOutcome, Storage};
use crate::error::{Error, Result};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

type Blob = (Arc<Vec<u8>>, SystemTime);

/// Blob storage held in memory.
#[derive(Debug, Default)]
pub struct MemoryStorage {
    blobs: Arc<Mutex<BTreeMap<String, Blob>>>,
}

impl MemoryStorage {
    fn blob(&self, key: &str) -> Result<Arc<Vec<u8>>> {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .map(|b| b.0.clone())
            .ok_or_else(|| Error::BlobNotFound(key.to_string()))
    }
}

struct MemoryWriter {
    key: String,
    buf: Vec<u8>,
    blobs: Arc<Mutex<BTreeMap<String, Blob>>>,
}

impl BlobWriter for MemoryWriter {
    fn write_all(&mut self, data: &[u8]) -> Result<()> {
        self.buf.extend_from_slice(data);
        Ok(())
    }

    fn finish(self: Box<Self>) -> Result<()> {
        let me = *self;
        me.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(me.key, (Arc::new(me.buf), SystemTime::now()));
        Ok(())
    }
}

impl Storage for MemoryStorage {
    fn put(&self, key: &str, data: &[u8], mode: PutMode) -> Result<PutOutcome> {
        let mut m = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        if mode == PutMode::Create && m.contains_key(key) {
            return Ok(PutOutcome::AlreadyExists);
        }
        m.insert(
            key.to_string(),
            (Arc::new(data.to_vec()), SystemTime::now()),
        );
        Ok(PutOutcome::Written)
    }

    fn writer(&self, key: &str) -> Result<Box<dyn BlobWriter>> {
        Ok(Box::new(MemoryWriter {
            key: key.to_string(),
            buf: Vec::new(),
            blobs: self.blobs.clone(),
        }))
    }

    fn get(&self, key: &str) -> Result<Vec<u8>> {
        Ok(self.blob(key)?.as_ref().clone())
    }

    fn read_at(&self, key: &str, offset: u64, buf: &mut [u8]) -> Result<()> {
        let b = self.blob(key)?;
        let end = offset.checked_add(buf.len() as u64);
        match end {
            Some(end) if end <= b.len() as u64 => {
                buf.copy_from_slice(&b[offset as usize..end as usize]);
                Ok(())
            }
            _ => Err(Error::io(
                key,
                std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "read past the end"),
            )),
        }
    }

    fn size(&self, key: &str) -> Result<u64> {
        Ok(self.blob(key)?.len() as u64)
    }

    fn list(&self, prefix: &str) -> Result<Vec<BlobMeta>> {
        let m = self.blobs.lock().unwrap_or_else(|e| e.into_inner());
        Ok(m.range(prefix.to_string()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(k, _)| !k[prefix.len()..].contains('/'))
            .map(|(k, v)| BlobMeta {
                key: k.clone(),
                size: v.0.len() as u64,
                modified: Some(v.1),
            })
            .collect())
    }

    fn map(&self, key: &str) -> Result<Option<MappedBlob>> {
        Ok(Some(self.blob(key)? as MappedBlob))
    }

    fn delete(&self, key: &str) -> Result<()> {
        self.blobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }
}
