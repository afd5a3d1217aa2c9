//! [`ObjectIndex`]: the in-memory map from object id to where the object lives, built from the
//! pack indexes. It is a cache: it can always be rebuilt from the packs, and it is refreshed
//! when an id is not found (another process may have written a pack since).

use crate::error::Result;
use crate::format::ObjectKind;
use crate::format::pack::{IndexEntry, Location, read_index};
use crate::id::{ObjectId, PackId};
use crate::storage::Storage;
use rayon::prelude::*;
use std::collections::{BTreeMap, HashMap, HashSet};

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

/// Object id to location, for every pack seen so far.
#[derive(Default, Debug)]
pub struct ObjectIndex {
    objects: HashMap<ObjectId, IndexedObject>,
    packs: HashSet<PackId>,
    /// Packs whose index could not be read, with the reason (their records were scanned).
    pub damaged: BTreeMap<PackId, String>,
}

impl ObjectIndex {
    /// Look an object up.
    pub fn get(&self, id: &ObjectId) -> Option<IndexedObject> {
        self.objects.get(id).copied()
    }

    /// Record the index of a pack.
    pub fn add_pack(&mut self, pack: PackId, entries: &[IndexEntry]) {
        self.packs.insert(pack);
        for e in entries {
            self.objects
                .entry(e.id)
                .or_insert(IndexedObject { pack, entry: *e });
        }
    }

    /// Load the indexes of packs not seen yet. Returns how many were added.
    pub fn refresh(&mut self, storage: &dyn Storage) -> Result<usize> {
        let listed = storage.list("packs/")?;
        let new: Vec<PackId> = listed
            .iter()
            .filter_map(|b| {
                b.key
                    .strip_prefix("packs/")
                    .and_then(|n| n.strip_suffix(".pack"))
                    .and_then(PackId::from_hex)
            })
            .filter(|id| !self.packs.contains(id) && !self.damaged.contains_key(id))
            .collect();
        type Loaded = Result<(Vec<IndexEntry>, Option<String>)>;
        let loaded: Vec<(PackId, Loaded)> = new
            .par_iter()
            .map(|id| (*id, read_index(storage, *id)))
            .collect();
        let n = loaded.len();
        for (id, res) in loaded {
            match res {
                Ok((entries, damage)) => {
                    if let Some(why) = damage {
                        self.damaged.insert(id, why);
                    }
                    self.add_pack(id, &entries);
                }
                Err(e) => {
                    self.damaged.insert(id, e.to_string());
                }
            }
        }
        Ok(n)
    }

    /// Every object of a kind.
    pub fn ids_of_kind(
        &self,
        kind: ObjectKind,
    ) -> impl Iterator<Item = (&ObjectId, &IndexedObject)> {
        self.objects
            .iter()
            .filter(move |(_, o)| o.entry.kind == kind)
    }

    /// Number of objects known.
    pub fn len(&self) -> usize {
        self.objects.len()
    }

    /// True when no object is known.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }
}
