//! The cache layer: [`ChunkCache`], a byte-bounded least-recently-used cache of decoded,
//! verified chunks, shared by every reader of one open repository, with hit and miss
//! counters. Repeated reads of the same states (sampling measurements again and again, a
//! diff after a show) are served from memory without reading, decoding or hashing again.

use crate::id::ObjectId;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Default capacity: 64 MiB.
pub const DEFAULT_CACHE_BYTES: u64 = 64 << 20;

/// Counters of a [`ChunkCache`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub capacity_bytes: u64,
    pub cached_bytes: u64,
    pub cached_chunks: u64,
    pub hits: u64,
    pub misses: u64,
}

#[derive(Default)]
struct Lru {
    map: HashMap<ObjectId, (Box<[u8]>, u64)>,
    order: BTreeMap<u64, ObjectId>,
    tick: u64,
    bytes: u64,
}

/// A byte-bounded LRU cache of decoded chunks.
pub struct ChunkCache {
    capacity: AtomicU64,
    lru: Mutex<Lru>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl ChunkCache {
    /// A cache holding at most `capacity` bytes (0 disables it).
    pub fn new(capacity: u64) -> Self {
        ChunkCache {
            capacity: AtomicU64::new(capacity),
            lru: Mutex::new(Lru::default()),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Lru> {
        self.lru.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Copy chunk `id` into `out` if cached (and of that length); counts a hit or a miss.
    pub fn get_into(&self, id: &ObjectId, out: &mut [u8]) -> bool {
        let mut l = self.lock();
        l.tick += 1;
        let tick = l.tick;
        let found = match l.map.get_mut(id) {
            Some((data, t)) if data.len() == out.len() => {
                out.copy_from_slice(data);
                let old = std::mem::replace(t, tick);
                Some(old)
            }
            _ => None,
        };
        match found {
            Some(old) => {
                l.order.remove(&old);
                l.order.insert(tick, *id);
                self.hits.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => {
                self.misses.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }

    /// Keep a verified chunk, evicting the least recently used ones to stay within capacity.
    /// Chunks larger than an eighth of the capacity are not kept.
    pub fn insert(&self, id: ObjectId, data: &[u8]) {
        let cap = self.capacity.load(Ordering::Relaxed);
        let len = data.len() as u64;
        if len == 0 || len > cap / 8 {
            return;
        }
        let mut l = self.lock();
        if l.map.contains_key(&id) {
            return;
        }
        while l.bytes + len > cap {
            let Some((&t, &victim)) = l.order.iter().next() else {
                break;
            };
            l.order.remove(&t);
            if let Some((d, _)) = l.map.remove(&victim) {
                l.bytes -= d.len() as u64;
            }
        }
        l.tick += 1;
        let tick = l.tick;
        l.order.insert(tick, id);
        l.map.insert(id, (data.into(), tick));
        l.bytes += len;
    }

    /// Change the capacity (shrinking drops everything).
    pub fn set_capacity(&self, capacity: u64) {
        self.capacity.store(capacity, Ordering::Relaxed);
        let mut l = self.lock();
        if l.bytes > capacity {
            *l = Lru::default();
        }
    }

    /// Drop every cached chunk (counters stay).
    pub fn clear(&self) {
        *self.lock() = Lru::default();
    }

    /// The counters.
    pub fn stats(&self) -> CacheStats {
        let l = self.lock();
        CacheStats {
            capacity_bytes: self.capacity.load(Ordering::Relaxed),
            cached_bytes: l.bytes,
            cached_chunks: l.map.len() as u64,
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_within_capacity() {
        let c = ChunkCache::new(64);
        let id = |n: u8| ObjectId([n; 32]);
        c.insert(id(1), &[1; 8]);
        c.insert(id(2), &[2; 8]);
        let mut out = [0u8; 8];
        assert!(c.get_into(&id(1), &mut out));
        for n in 3..10 {
            c.insert(id(n), &[n; 8]);
        }
        assert!(c.get_into(&id(1), &mut out), "recently used survives");
        assert!(!c.get_into(&id(2), &mut out), "least recently used went");
        let s = c.stats();
        assert!(
            s.cached_bytes <= 64 && s.hits == 2 && s.misses == 1,
            "{s:?}"
        );
        c.insert(id(20), &[0; 9]);
        assert!(
            !c.get_into(&id(20), &mut [0u8; 9]),
            "over an eighth of capacity: not kept"
        );
    }
}
