//! [`ObjectIndex`]: where each object lives, found through the packs' own sorted indexes.
//!
//! Nothing is loaded whole: opening a repository lists `packs/` and opens each pack's index
//! for lookups ([`PackIndex`], a memory map of the pack where the storage allows, read whole
//! only for old version-1 packs). A lookup by id is a binary search in each pack, so open +
//! lookup costs O(packs x log objects) time and a few pages of memory, however many objects
//! the repository holds; automatic pack merges keep the number of packs small. The set of
//! packs is a cache of `packs/`: it is synchronised when an id is not found (another process
//! may have written or merged packs since).

use crate::error::Result;
use crate::format::pack::{IndexEntry, Location, PackIndex, open_index, read_index};
use crate::id::{ObjectId, PackId};
use crate::storage::Storage;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

/// An object found in the index.
#[derive(Clone, Copy, Debug)]
pub struct IndexedObject {
    pub pack: PackId,
    pub entry: IndexEntry,
}

impl IndexedObject {
    /// Where the object's record lives.
    pub fn location(&self) -> Location {
        self.entry.location(self.pack)
    }
}

/// A pack known to the index.
#[derive(Debug, Clone)]
pub struct KnownPack {
    pub index: Arc<PackIndex>,
    /// Size of the pack file in bytes.
    pub size: u64,
}

/// Object id to location, through the indexes of every pack seen so far.
#[derive(Default, Debug)]
pub struct ObjectIndex {
    packs: HashMap<PackId, KnownPack>,
    /// The known packs, smallest first: recent commits' packs are small and hold the objects
    /// read most (the upper tree nodes every commit rewrites), so lookups try them first.
    order: Vec<PackId>,
    /// Packs whose index could not be read, with the reason (their records were scanned).
    pub damaged: BTreeMap<PackId, String>,
}

impl ObjectIndex {
    /// Look an object up in every known pack.
    pub fn get(&self, id: &ObjectId) -> Option<IndexedObject> {
        self.order.iter().find_map(|pid| {
            let p = self.packs.get(pid)?;
            p.index.find(id).map(|entry| IndexedObject {
                pack: p.index.pack,
                entry,
            })
        })
    }

    fn reorder(&mut self) {
        let mut order: Vec<(u64, PackId)> =
            self.packs.iter().map(|(id, p)| (p.size, *id)).collect();
        order.sort_unstable();
        self.order = order.into_iter().map(|(_, id)| id).collect();
    }

    /// Record a pack this process just wrote.
    pub fn add_pack(&mut self, pack: PackId, entries: Vec<IndexEntry>, size: u64) {
        let index = PackIndex::from_entries(pack, crate::format::pack::PACK_VERSION, entries);
        self.packs.insert(
            pack,
            KnownPack {
                index: Arc::new(index),
                size,
            },
        );
        self.reorder();
    }

    /// Synchronise with the packs present now: open the new ones, forget the vanished ones.
    /// Returns how many packs were listed that it did not know (opened, or vanished first).
    pub fn refresh(&mut self, storage: &dyn Storage) -> Result<usize> {
        let listed = storage.list_keys("packs/")?;
        let present: HashSet<PackId> = listed.iter().filter_map(|k| pack_id_of_key(k)).collect();
        self.packs.retain(|id, _| present.contains(id));
        self.damaged.retain(|id, _| present.contains(id));
        let new: Vec<PackId> = present
            .iter()
            .filter(|id| !self.packs.contains_key(id) && !self.damaged.contains_key(id))
            .copied()
            .collect();
        let n = new.len();
        // Remote storage: open the new packs' indexes with many requests in flight (a
        // repository opened on S3 reads every pack's index).
        let opened: Vec<(PackId, _)> = if storage.prefers_few_requests() && new.len() > 1 {
            crate::par::on_remote_pool(|| crate::par::map(new, |id| (id, open_index(storage, id))))
        } else {
            new.into_iter()
                .map(|id| (id, open_index(storage, id)))
                .collect()
        };
        for (id, r) in opened {
            match r {
                Ok((index, damage, size)) => {
                    if let Some(why) = damage {
                        self.damaged.insert(id, why);
                    }
                    self.packs.insert(
                        id,
                        KnownPack {
                            index: Arc::new(index),
                            size,
                        },
                    );
                }
                // Vanished between the listing and the open (merged by another process).
                Err(crate::Error::BlobNotFound(_)) => {}
                // The store did not answer: not damage. Report it; the next refresh tries
                // this pack again (marking it damaged would hide its objects for good).
                Err(e @ crate::Error::Unavailable { .. }) => {
                    self.reorder();
                    return Err(e);
                }
                Err(e) => {
                    self.damaged.insert(id, e.to_string());
                }
            }
        }
        self.reorder();
        Ok(n)
    }

    /// Check every index mapped without its checksum; a damaged one is replaced by the
    /// records found by scanning its pack. Returns true when one was replaced. Called when a
    /// lookup misses, so damage cannot hide an object.
    pub fn verify_unverified(&mut self, storage: &dyn Storage) -> bool {
        let mut replaced = false;
        let ids: Vec<PackId> = self
            .packs
            .iter()
            .filter(|(_, p)| p.index.unverified())
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let Some(p) = self.packs.get(&id) else {
                continue;
            };
            match p.index.verify() {
                Ok(()) => {
                    let size = p.size;
                    let index = p.index.to_verified();
                    self.packs.insert(
                        id,
                        KnownPack {
                            index: Arc::new(index),
                            size,
                        },
                    );
                }
                Err(why) => {
                    if let Ok((entries, _)) = read_index(storage, id) {
                        let size = p.size;
                        let version = p.index.version;
                        self.packs.insert(
                            id,
                            KnownPack {
                                index: Arc::new(PackIndex::from_entries(id, version, entries)),
                                size,
                            },
                        );
                    }
                    self.damaged.insert(id, why);
                    replaced = true;
                }
            }
        }
        self.reorder();
        replaced
    }

    /// Every object whose id starts with the hex digits `prefix`.
    pub fn with_hex_prefix(&self, prefix: &str) -> Vec<IndexedObject> {
        let mut out: Vec<IndexedObject> = Vec::new();
        for p in self.packs.values() {
            for entry in p.index.with_hex_prefix(prefix) {
                if !out.iter().any(|o| o.entry.id == entry.id) {
                    out.push(IndexedObject {
                        pack: p.index.pack,
                        entry,
                    });
                }
            }
        }
        out
    }

    /// The packs known, with their sizes.
    pub fn packs(&self) -> impl Iterator<Item = &KnownPack> {
        self.packs.values()
    }

    /// Visit every index entry of every pack (duplicates across packs included).
    pub fn for_each_entry(&self, f: &mut dyn FnMut(PackId, &IndexEntry)) {
        for p in self.packs.values() {
            for e in p.index.entries() {
                f(p.index.pack, &e);
            }
        }
    }
}

/// The pack id of a storage key `packs/<hex>.pack`.
pub fn pack_id_of_key(key: &str) -> Option<PackId> {
    key.strip_prefix("packs/")
        .and_then(|n| n.strip_suffix(".pack"))
        .and_then(PackId::from_hex)
}
