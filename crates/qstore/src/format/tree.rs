//! The path tree of a commit (format version 2): [`StateEntry`] (everything known about one
//! stored state) and [`TreeNode`], one node of a sorted, content-addressed search tree that
//! maps full state paths (`traj/t000123`) to entries.
//!
//! The tree is a *Merkle search tree*: its shape is a function of the set of paths alone,
//! never of the order of the edits that produced it, so equal contents have equal ids and a
//! diff skips every equal subtree by id. Each path has a rank, the number of trailing zero
//! nibbles of the BLAKE3 hash of the path ([`rank`]). Level 0 (the leaves) holds the entries
//! sorted by path; a new node starts at every entry whose rank is at least 1. Level `j + 1`
//! holds one item per level-`j` node (its first path and its id), and a new level-`j + 1`
//! node starts at every item whose rank is at least `j + 2`. The root is the lowest level
//! with a single node. Nodes therefore hold 16 items on average; a run of more than
//! [`MAX_ITEMS`] items without a boundary (rare, or crafted) is cut every [`MAX_ITEMS`]
//! items from its start, so no node ever holds more. A commit that changes k paths in a tree
//! of n rewrites about k log16(n) nodes, and reading one path reads about log16(n) nodes.
//! The algorithms live in `repo::tree`; the bytes are in `docs/format.md`.

use super::{MetadataObject, ObjectKind};
use crate::id::ObjectId;
use crate::path::StatePath;
use crate::state::dtype::{DType, Encoding, StateKind};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Largest qubit count of a state with a dense form (keeps every byte count inside u64).
pub const MAX_QUBITS: u32 = 58;
/// Largest qubit count of a sparse state vector (wide basis indices beyond 64 qubits).
pub const MAX_SPARSE_QUBITS: u32 = 1024;
/// Bits of the path hash per tree level: a node holds 2^4 = 16 items on average.
pub const FANOUT_BITS: u32 = 4;
/// Most items a tree node holds.
pub const MAX_ITEMS: usize = 64;
/// Highest level a tree node may have.
pub const MAX_LEVEL: u8 = 40;

/// Everything known about one stored state, kept in the leaves of the path tree.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct StateEntry {
    pub kind: StateKind,
    pub dtype: DType,
    /// Qubits of a state vector or density matrix (0 for an array).
    pub qubits: u32,
    /// Array shape (C order). `[2^n]` for a state vector, `[2^n, 2^n]` for a density matrix;
    /// empty for a state vector of more than [`MAX_QUBITS`] qubits, which has no dense form.
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
    /// Set when the stored amplitudes are a lossy approximation of what was put (format
    /// version 4; tree nodes holding such an entry are version 3).
    pub lossy: Option<LossyInfo>,
}

/// How a lossy state was approximated and how close the stored state is to the input.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub struct LossyInfo {
    /// The mode as given, normalised (`max-infidelity=1e-6`, `f32`, `mantissa-bits=10`,
    /// `zero-below=1e-12`, or several joined by commas).
    pub mode: String,
    /// The normalised fidelity |<input|stored>|^2 / (<input|input> <stored|stored>),
    /// computed over every amplitude when the state was written.
    pub fidelity: f64,
}

/// A state entry as tree nodes of version 2 hold it (no lossy information).
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
struct StateEntryV2 {
    kind: StateKind,
    dtype: DType,
    qubits: u32,
    shape: Vec<u64>,
    encoding: Encoding,
    manifest: ObjectId,
    stream_len: u64,
    nnz: u64,
    norm: f64,
    tags: BTreeMap<String, String>,
}

impl StateEntryV2 {
    fn of(e: &StateEntry) -> Self {
        StateEntryV2 {
            kind: e.kind,
            dtype: e.dtype,
            qubits: e.qubits,
            shape: e.shape.clone(),
            encoding: e.encoding,
            manifest: e.manifest,
            stream_len: e.stream_len,
            nnz: e.nnz,
            norm: e.norm,
            tags: e.tags.clone(),
        }
    }

    fn into_current(self) -> StateEntry {
        StateEntry {
            kind: self.kind,
            dtype: self.dtype,
            qubits: self.qubits,
            shape: self.shape,
            encoding: self.encoding,
            manifest: self.manifest,
            stream_len: self.stream_len,
            nnz: self.nnz,
            norm: self.norm,
            tags: self.tags,
            lossy: None,
        }
    }
}

/// Bytes of one basis index in the sparse stream of an `n`-qubit state vector: 8 up to 64
/// qubits, then 8 per started 64 qubits (little-endian words, least significant first).
pub fn index_bytes(qubits: u32) -> usize {
    8 * (qubits.max(1) as usize).div_ceil(64)
}

impl StateEntry {
    /// True when the entry needs format version 4 (tree node version 3) to be stored: a
    /// lossy state or a near-Hermitian encoding.
    pub fn needs_format_4(&self) -> bool {
        self.lossy.is_some() || self.encoding == Encoding::NearHermitian
    }

    /// Number of elements of the dense form (saturating: `u64::MAX` for a wide state).
    pub fn elements(&self) -> u64 {
        if self.is_wide() {
            return u64::MAX;
        }
        self.shape
            .iter()
            .copied()
            .fold(1u64, |a, b| a.saturating_mul(b))
    }

    /// Bytes of the dense form (saturating: `u128::MAX` for a wide state).
    pub fn dense_bytes(&self) -> u128 {
        if self.is_wide() {
            return u128::MAX;
        }
        self.elements() as u128 * self.dtype.item_size() as u128
    }

    /// Qubit count of a state vector or density matrix.
    pub fn qubits(&self) -> Option<u32> {
        match self.kind {
            StateKind::StateVector | StateKind::DensityMatrix => Some(self.qubits),
            StateKind::Array => None,
        }
    }

    /// True for a state vector of more than [`MAX_QUBITS`] qubits: sparse only, with basis
    /// indices wider than 64 bits when it has more than 64 qubits.
    pub fn is_wide(&self) -> bool {
        self.kind == StateKind::StateVector && self.qubits > MAX_QUBITS
    }

    /// Bytes of one basis index in this state's sparse stream.
    pub fn index_bytes(&self) -> usize {
        index_bytes(self.qubits)
    }

    /// Check the entry is self-consistent (shape against kind and qubits, stream length
    /// against encoding).
    pub fn validate(&self) -> Result<(), String> {
        let item = self.dtype.item_size() as u128;
        if self.shape.len() > 32 {
            return Err("more than 32 dimensions".into());
        }
        if self.kind != StateKind::Array && !self.dtype.is_complex() {
            return Err("states are complex".into());
        }
        if self.is_wide() {
            if self.qubits > MAX_SPARSE_QUBITS {
                return Err(format!(
                    "a state vector has at most {MAX_SPARSE_QUBITS} qubits, got {}",
                    self.qubits
                ));
            }
            if !self.shape.is_empty() || self.encoding != Encoding::Sparse {
                return Err(format!(
                    "a state vector of more than {MAX_QUBITS} qubits is sparse and has no shape"
                ));
            }
            let expected = self.nnz as u128 * (self.index_bytes() as u128 + item);
            if self.stream_len as u128 != expected {
                return Err(format!(
                    "stream length {} does not match {} sparse entries (expected {expected})",
                    self.stream_len, self.nnz
                ));
            }
            return Ok(());
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
            StateKind::Array => {
                if self.qubits != 0 {
                    return Err("an array has no qubit count".into());
                }
            }
        }
        if self.kind != StateKind::Array && self.shape[0].trailing_zeros() != self.qubits {
            return Err(format!(
                "qubit count {} does not match shape {:?}",
                self.qubits, self.shape
            ));
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
                self.nnz as u128 * (self.index_bytes() as u128 + item)
            }
            Encoding::Hermitian => {
                if self.kind != StateKind::DensityMatrix {
                    return Err("hermitian encoding is for density matrices".into());
                }
                let n = self.shape[0] as u128;
                n * (n + 1) / 2 * item
            }
            Encoding::NearHermitian => {
                if self.kind != StateKind::DensityMatrix {
                    return Err("near-hermitian encoding is for density matrices".into());
                }
                elems * item
            }
        };
        if let Some(l) = &self.lossy {
            if self.kind != StateKind::StateVector {
                return Err("only state vectors are stored lossy".into());
            }
            if !(0.0..=1.0).contains(&l.fidelity) || l.mode.is_empty() || l.mode.len() > 256 {
                return Err(format!(
                    "lossy entry with mode {:?} and fidelity {}",
                    l.mode, l.fidelity
                ));
            }
        }
        if self.stream_len as u128 != expected {
            return Err(format!(
                "stream length {} does not match the {} encoding (expected {expected})",
                self.stream_len, self.encoding
            ));
        }
        Ok(())
    }
}

/// The rank of a path in the tree: trailing zero nibbles of the first 8 bytes of its BLAKE3
/// hash, read little-endian. A path of rank r starts a new node at levels 0..r.
pub fn rank(key: &str) -> u32 {
    let h = blake3::hash(key.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    u64::from_le_bytes(b).trailing_zeros() / FANOUT_BITS
}

/// What an item of a tree node holds.
#[derive(Clone, PartialEq, Debug, Serialize, Deserialize)]
pub enum ItemValue {
    /// A state (in a leaf, level 0).
    State(Box<StateEntry>),
    /// A child node one level down (in an inner node), with the number of states below it.
    Child { id: ObjectId, states: u64 },
}

/// [`ItemValue`] as tree nodes of version 2 hold it.
#[derive(Serialize, Deserialize)]
enum ItemValueV2 {
    State(Box<StateEntryV2>),
    Child { id: ObjectId, states: u64 },
}

/// One item of a tree node: a path (a leaf's state path, or an inner node's child's first
/// path) and what it holds.
#[derive(Clone, PartialEq, Debug)]
pub struct Item {
    pub key: String,
    pub value: ItemValue,
}

/// One node of the path tree; items sorted by key, keys unique.
#[derive(Clone, PartialEq, Debug, Default)]
pub struct TreeNode {
    /// 0 for a leaf.
    pub level: u8,
    pub items: Vec<Item>,
}

impl TreeNode {
    /// The number of states in this subtree.
    pub fn states(&self) -> u64 {
        if self.level == 0 {
            return self.items.len() as u64;
        }
        self.items
            .iter()
            .map(|i| match i.value {
                ItemValue::Child { states, .. } => states,
                ItemValue::State(_) => 1,
            })
            .sum()
    }

    /// The first key of this subtree.
    pub fn first_key(&self) -> Option<&str> {
        self.items.first().map(|i| i.key.as_str())
    }
}

/// The stored form of an item: keys share their prefix with the previous key.
#[derive(Serialize, Deserialize)]
struct WireItem<K, V> {
    /// Bytes shared with the previous key.
    shared: u32,
    /// The rest of the key.
    suffix: K,
    value: V,
}

#[derive(Serialize, Deserialize)]
struct WireNode<K, V> {
    level: u8,
    items: Vec<WireItem<K, V>>,
}

impl TreeNode {
    /// True when an entry of this node needs node version 3 (see
    /// [`StateEntry::needs_format_4`]); other nodes are stored as version 2, which builds
    /// before format 4 read, so equal contents keep equal ids.
    fn needs_v3(&self) -> bool {
        self.items
            .iter()
            .any(|i| matches!(&i.value, ItemValue::State(e) if e.needs_format_4()))
    }

    fn wire<V>(&self, value: impl Fn(&ItemValue) -> V) -> WireNode<&str, V> {
        let mut prev = "";
        let items = self
            .items
            .iter()
            .map(|i| {
                let shared = prev
                    .bytes()
                    .zip(i.key.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                prev = &i.key;
                WireItem {
                    shared: shared as u32,
                    suffix: &i.key[shared..],
                    value: value(&i.value),
                }
            })
            .collect();
        WireNode {
            level: self.level,
            items,
        }
    }

    fn from_wire<V>(
        w: WireNode<String, V>,
        value: impl Fn(V) -> Result<ItemValue, String>,
    ) -> Result<Self, String> {
        let mut items: Vec<Item> = Vec::with_capacity(w.items.len().min(MAX_ITEMS));
        for wi in w.items {
            let prev = items.last().map(|i| i.key.as_str()).unwrap_or("");
            let shared = wi.shared as usize;
            if shared > prev.len() || !prev.is_char_boundary(shared) {
                return Err(format!(
                    "key prefix of {shared} bytes is longer than the previous key"
                ));
            }
            let mut key = String::with_capacity(shared + wi.suffix.len());
            key.push_str(&prev[..shared]);
            key.push_str(&wi.suffix);
            items.push(Item {
                key,
                value: value(wi.value)?,
            });
        }
        Ok(TreeNode {
            level: w.level,
            items,
        })
    }
}

impl Serialize for TreeNode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if self.needs_v3() {
            self.wire(|v| v.clone()).serialize(s)
        } else {
            self.wire(|v| match v {
                ItemValue::State(e) => ItemValueV2::State(Box::new(StateEntryV2::of(e))),
                ItemValue::Child { id, states } => ItemValueV2::Child {
                    id: *id,
                    states: *states,
                },
            })
            .serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for TreeNode {
    /// Reads the version-3 layout; [`MetadataObject::decode_versioned`] reads both.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let w = WireNode::<String, ItemValue>::deserialize(d)?;
        TreeNode::from_wire(w, Ok).map_err(D::Error::custom)
    }
}

impl MetadataObject for TreeNode {
    const KIND: ObjectKind = ObjectKind::Tree;
    const VERSION: u8 = 3;

    fn version(&self) -> u8 {
        if self.needs_v3() { 3 } else { 2 }
    }

    fn reads(version: u8) -> bool {
        matches!(version, 2 | 3)
    }

    fn decode_versioned(body: &[u8], version: u8) -> Result<Self, String> {
        let node = if version == 2 {
            let (w, rest): (WireNode<String, ItemValueV2>, &[u8]) =
                postcard::take_from_bytes(body).map_err(|e| format!("undecodable body: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{} trailing bytes after the body", rest.len()));
            }
            TreeNode::from_wire(w, |v| match v {
                ItemValueV2::State(e) if e.encoding == Encoding::NearHermitian => {
                    Err("a near-hermitian entry in a version-2 node".into())
                }
                ItemValueV2::State(e) => Ok(ItemValue::State(Box::new(e.into_current()))),
                ItemValueV2::Child { id, states } => Ok(ItemValue::Child { id, states }),
            })?
        } else {
            let (n, rest): (TreeNode, &[u8]) =
                postcard::take_from_bytes(body).map_err(|e| format!("undecodable body: {e}"))?;
            if !rest.is_empty() {
                return Err(format!("{} trailing bytes after the body", rest.len()));
            }
            if !n.needs_v3() {
                return Err("a version-3 node without a format-4 entry".into());
            }
            n
        };
        Ok(node)
    }

    fn validate(&self) -> Result<(), String> {
        if self.level > MAX_LEVEL {
            return Err(format!("level {} is above {MAX_LEVEL}", self.level));
        }
        if self.items.len() > MAX_ITEMS {
            return Err(format!("{} items, more than {MAX_ITEMS}", self.items.len()));
        }
        if self.level > 0 && self.items.is_empty() {
            return Err("an inner node without children".into());
        }
        for w in self.items.windows(2) {
            if w[0].key >= w[1].key {
                return Err(format!("keys not strictly sorted at {:?}", w[1].key));
            }
        }
        for i in &self.items {
            StatePath::new(&i.key).map_err(|e| e.to_string())?;
            match (&i.value, self.level) {
                (ItemValue::State(s), 0) => s
                    .validate()
                    .map_err(|r| format!("entry {:?}: {r}", i.key))?,
                (ItemValue::Child { states, .. }, l) if l > 0 => {
                    if *states == 0 {
                        return Err(format!("child at {:?} holds no state", i.key));
                    }
                }
                _ => {
                    return Err(format!(
                        "item {:?} does not belong in a level-{} node",
                        i.key, self.level
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{decode_body, decode_body_versioned, encode_object};
    use proptest::prelude::*;

    fn entry(n: u64) -> StateEntry {
        StateEntry {
            kind: StateKind::StateVector,
            dtype: DType::Complex128,
            qubits: 4,
            shape: vec![16],
            encoding: Encoding::Dense,
            manifest: ObjectId([n as u8; 32]),
            stream_len: 256,
            nnz: 0,
            norm: 1.0,
            tags: BTreeMap::new(),
            lossy: None,
        }
    }

    proptest! {
        #[test]
        fn node_decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode_body::<TreeNode>(&b);
            let _ = decode_body_versioned::<TreeNode>(&b, 2);
        }

        #[test]
        fn nodes_round_trip(keys in proptest::collection::btree_set("[a-c]{1,3}(/[a-c0-9_-][a-c0-9._-]{0,3}){0,2}", 0..40)) {
            let node = TreeNode {
                level: 0,
                items: keys.iter().enumerate().map(|(i, k)| Item { key: k.clone(), value: ItemValue::State(Box::new(entry(i as u64))) }).take(MAX_ITEMS).collect(),
            };
            let (_, body) = encode_object(&node);
            prop_assert_eq!(decode_body_versioned::<TreeNode>(&body, node.version()).unwrap(), node);
        }
    }

    #[test]
    fn prefix_longer_than_previous_key_is_refused() {
        let node = TreeNode {
            level: 0,
            items: vec![Item {
                key: "ab".into(),
                value: ItemValue::State(Box::new(entry(1))),
            }],
        };
        let (_, mut body) = encode_object(&node);
        // level, item count, then the first item's shared-prefix varint.
        assert_eq!(body[2], 0);
        body[2] = 5;
        assert!(decode_body_versioned::<TreeNode>(&body, 2).is_err());
    }

    #[test]
    fn wide_entries_are_checked() {
        let mut e = StateEntry {
            kind: StateKind::StateVector,
            dtype: DType::Complex128,
            qubits: 100,
            shape: vec![],
            encoding: Encoding::Sparse,
            manifest: ObjectId([0; 32]),
            stream_len: 2 * (16 + 16),
            nnz: 2,
            norm: 1.0,
            tags: BTreeMap::new(),
            lossy: None,
        };
        assert_eq!(e.index_bytes(), 16);
        e.validate().unwrap();
        e.qubits = 2000;
        assert!(e.validate().is_err());
        e.qubits = 100;
        e.encoding = Encoding::Dense;
        assert!(e.validate().is_err());
        assert_eq!(index_bytes(64), 8);
        assert_eq!(index_bytes(65), 16);
        assert_eq!(index_bytes(1024), 128);
    }

    #[test]
    fn nodes_with_format_4_entries_are_version_3_and_others_version_2() {
        let plain = TreeNode {
            level: 0,
            items: vec![Item {
                key: "a".into(),
                value: ItemValue::State(Box::new(entry(1))),
            }],
        };
        assert_eq!(plain.version(), 2);
        let mut lossy = plain.clone();
        let ItemValue::State(e) = &mut lossy.items[0].value else {
            unreachable!()
        };
        e.lossy = Some(LossyInfo {
            mode: "f32".into(),
            fidelity: 0.999,
        });
        assert_eq!(lossy.version(), 3);
        let (id2, b2) = encode_object(&plain);
        let (id3, b3) = encode_object(&lossy);
        assert_ne!(id2, id3);
        assert_eq!(decode_body_versioned::<TreeNode>(&b2, 2).unwrap(), plain);
        assert_eq!(decode_body_versioned::<TreeNode>(&b3, 3).unwrap(), lossy);
        // Each layout is refused under the other version number.
        assert!(decode_body_versioned::<TreeNode>(&b3, 2).is_err());
        assert!(decode_body_versioned::<TreeNode>(&b2, 3).is_err());
    }

    #[test]
    fn ranks_are_about_one_in_sixteen() {
        let n = 20_000;
        let boundaries = (0..n).filter(|i| rank(&format!("t/{i}")) >= 1).count();
        assert!((n / 32..n / 8).contains(&boundaries), "{boundaries}");
    }
}
