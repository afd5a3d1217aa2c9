//! [`Tree`]: one directory level, names to [`Node`]s (a subtree by id, or a [`StateEntry`]
//! inline). A commit that changes one state rewrites only the trees on its path; all other
//! subtrees are shared by id.

use super::{MetadataObject, ObjectKind};
use crate::id::ObjectId;
use crate::path::check_entry_name;
use crate::state::dtype::{DType, Encoding, StateKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest qubit count a state may declare (keeps every byte count inside u64).
pub const MAX_QUBITS: u32 = 58;

/// Everything known about one stored state, kept in its tree.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct StateEntry {
    pub kind: StateKind,
    pub dtype: DType,
    /// Array shape (C order). `[2^n]` for a state vector, `[2^n, 2^n]` for a density matrix.
    pub shape: Vec<u64>,
    pub encoding: Encoding,
    /// The manifest of the encoded byte stream.
    pub manifest: ObjectId,
    /// Length of the encoded byte stream.
    pub stream_len: u64,
    /// Stored non-zero elements (sparse encoding), otherwise 0.
    pub nnz: u64,
    /// Squared norm (state vector), trace (density matrix) or sum of squares (array).
    pub norm: f64,
    /// User tags.
    pub tags: BTreeMap<String, String>,
}

impl StateEntry {
    /// Number of elements of the dense form.
    pub fn elements(&self) -> u64 {
        self.shape
            .iter()
            .copied()
            .fold(1u64, |a, b| a.saturating_mul(b))
    }

    /// Bytes of the dense form.
    pub fn dense_bytes(&self) -> u128 {
        self.elements() as u128 * self.dtype.item_size() as u128
    }

    /// Qubit count of a state vector or density matrix.
    pub fn qubits(&self) -> Option<u32> {
        match self.kind {
            StateKind::StateVector | StateKind::DensityMatrix => {
                Some(self.shape.first().copied().unwrap_or(1).trailing_zeros())
            }
            StateKind::Array => None,
        }
    }

    /// Check the entry is self-consistent (shape against kind, stream length against
    /// encoding).
    pub fn validate(&self) -> Result<(), String> {
        let item = self.dtype.item_size() as u128;
        if self.shape.len() > 32 {
            return Err("more than 32 dimensions".into());
        }
        let mut elems: u128 = 1;
        for &d in &self.shape {
            elems = elems.saturating_mul(d as u128);
        }
        if elems.saturating_mul(item) > (1u128 << 63) {
            return Err("dense size overflows".into());
        }
        let pow2 = |d: u64| d.is_power_of_two() && d.trailing_zeros() <= MAX_QUBITS;
        match self.kind {
            StateKind::StateVector => {
                if self.shape.len() != 1 || !pow2(self.shape[0]) || self.shape[0] < 2 {
                    return Err("a state vector has shape [2^n], n >= 1".into());
                }
            }
            StateKind::DensityMatrix => {
                if self.shape.len() != 2
                    || self.shape[0] != self.shape[1]
                    || !pow2(self.shape[0])
                    || self.shape[0] < 2
                {
                    return Err("a density matrix has shape [2^n, 2^n], n >= 1".into());
                }
            }
            StateKind::Array => {}
        }
        if self.kind != StateKind::Array && !self.dtype.is_complex() {
            return Err("states are complex".into());
        }
        let expected: u128 = match self.encoding {
            Encoding::Dense => {
                if self.nnz != 0 {
                    return Err("nnz set on a dense state".into());
                }
                elems * item
            }
            Encoding::Sparse => {
                if self.kind != StateKind::StateVector || self.nnz as u128 > elems {
                    return Err("sparse encoding is for state vectors with nnz <= 2^n".into());
                }
                self.nnz as u128 * (8 + item)
            }
            Encoding::Hermitian => {
                if self.kind != StateKind::DensityMatrix {
                    return Err("hermitian encoding is for density matrices".into());
                }
                let n = self.shape[0] as u128;
                n * (n + 1) / 2 * item
            }
        };
        if self.stream_len as u128 != expected {
            return Err(format!(
                "stream length {} does not match the {} encoding (expected {expected})",
                self.stream_len, self.encoding
            ));
        }
        Ok(())
    }
}

/// A node of a tree.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub enum Node {
    /// A subdirectory.
    Tree(ObjectId),
    /// A state.
    State(Box<StateEntry>),
}

/// One named entry of a tree.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct TreeEntry {
    pub name: String,
    pub node: Node,
}

/// One directory level; entries sorted by name, names unique.
#[derive(Clone, PartialEq, Debug, Default, Serialize, Deserialize)]
pub struct Tree {
    pub entries: Vec<TreeEntry>,
}

impl Tree {
    /// The entry called `name`.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()
            .map(|i| &self.entries[i].node)
    }

    /// Insert or replace an entry (keeps the order).
    pub fn set(&mut self, name: &str, node: Node) {
        match self.entries.binary_search_by(|e| e.name.as_str().cmp(name)) {
            Ok(i) => self.entries[i].node = node,
            Err(i) => self.entries.insert(
                i,
                TreeEntry {
                    name: name.to_string(),
                    node,
                },
            ),
        }
    }

    /// Remove an entry; returns whether it existed.
    pub fn remove(&mut self, name: &str) -> bool {
        match self.entries.binary_search_by(|e| e.name.as_str().cmp(name)) {
            Ok(i) => {
                self.entries.remove(i);
                true
            }
            Err(_) => false,
        }
    }
}

impl MetadataObject for Tree {
    const KIND: ObjectKind = ObjectKind::Tree;

    fn validate(&self) -> Result<(), String> {
        for w in self.entries.windows(2) {
            if w[0].name >= w[1].name {
                return Err(format!("entries not strictly sorted at {:?}", w[1].name));
            }
        }
        for e in &self.entries {
            check_entry_name(&e.name).map_err(|r| format!("entry {:?}: {r}", e.name))?;
            if let Node::State(s) = &e.node {
                s.validate()
                    .map_err(|r| format!("entry {:?}: {r}", e.name))?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::commit::Commit;
    use crate::format::decode_body;
    use crate::format::manifest::Manifest;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn metadata_decoders_never_panic(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body::<Tree>(&b);
            let _ = decode_body::<Commit>(&b);
            let _ = decode_body::<Manifest>(&b);
        }
    }

    #[test]
    fn huge_declared_lengths_do_not_allocate() {
        // A varint length of ~2^62 entries followed by nothing.
        let b = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
        assert!(decode_body::<Tree>(&b).is_err());
        let mut m = vec![0x80, 0x08, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01];
        m.extend_from_slice(&b);
        assert!(decode_body::<Manifest>(&m).is_err());
    }
}
