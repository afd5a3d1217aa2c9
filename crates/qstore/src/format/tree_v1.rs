//! The version-1 tree object ([`LegacyTree`]): one directory level, names to subtrees or
//! inline state entries. Repositories of format version 1 store one per directory and
//! commit; version 2 replaced it by [`super::tree::TreeNode`]. It is kept so that old
//! commits (and repositories not yet upgraded) still read: a legacy tree converts to the
//! current [`StateEntry`] list with [`LegacyStateEntry::into_current`].

use super::tree::StateEntry;
use super::{MetadataObject, ObjectKind};
use crate::id::ObjectId;
use crate::path::check_entry_name;
use crate::state::dtype::{DType, Encoding, StateKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A state entry as format version 1 stored it (no explicit qubit count).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct LegacyStateEntry {
    pub kind: StateKind,
    pub dtype: DType,
    pub shape: Vec<u64>,
    pub encoding: Encoding,
    pub manifest: ObjectId,
    pub stream_len: u64,
    pub nnz: u64,
    pub norm: f64,
    pub tags: BTreeMap<String, String>,
}

impl LegacyStateEntry {
    /// The same entry in the current layout; checked like any current entry.
    pub fn into_current(self) -> Result<StateEntry, String> {
        let qubits = match self.kind {
            StateKind::StateVector | StateKind::DensityMatrix => {
                self.shape.first().copied().unwrap_or(1).trailing_zeros()
            }
            StateKind::Array => 0,
        };
        let e = StateEntry {
            kind: self.kind,
            dtype: self.dtype,
            qubits,
            shape: self.shape,
            encoding: self.encoding,
            manifest: self.manifest,
            stream_len: self.stream_len,
            nnz: self.nnz,
            norm: self.norm,
            tags: self.tags,
            lossy: None,
        };
        e.validate()?;
        Ok(e)
    }
}

/// A node of a legacy tree.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub enum LegacyNode {
    /// A subdirectory.
    Tree(ObjectId),
    /// A state.
    State(Box<LegacyStateEntry>),
}

/// One named entry of a legacy tree.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct LegacyEntry {
    pub name: String,
    pub node: LegacyNode,
}

/// One directory level of format version 1; entries sorted by name, names unique.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct LegacyTree {
    pub entries: Vec<LegacyEntry>,
}

impl MetadataObject for LegacyTree {
    const KIND: ObjectKind = ObjectKind::Tree;
    const VERSION: u8 = 1;

    fn validate(&self) -> Result<(), String> {
        for w in self.entries.windows(2) {
            if w[0].name >= w[1].name {
                return Err(format!("entries not strictly sorted at {:?}", w[1].name));
            }
        }
        for e in &self.entries {
            check_entry_name(&e.name).map_err(|r| format!("entry {:?}: {r}", e.name))?;
            if let LegacyNode::State(s) = &e.node {
                s.clone()
                    .into_current()
                    .map_err(|r| format!("entry {:?}: {r}", e.name))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::decode_body;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn legacy_tree_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body::<LegacyTree>(&b);
        }
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
        assert!(decode_body::<LegacyTree>(&b).is_err());
    }
}
