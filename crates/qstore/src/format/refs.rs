//! [`PackedRefs`]: the bytes of `refs/packed`, every ref of a local repository in one file
//! (as git's packed-refs), so many branches and tags do not mean many files.
//!
//! ```text
//! # qstore packed-refs 1
//! <64 hex commit id> branches/main
//! <64 hex commit id> tags/v1
//! ```
//! One line per ref, sorted by key, each ending in `\n`.

use crate::id::ObjectId;
use crate::path::RefName;
use std::collections::BTreeMap;

/// The first line of a packed-refs file.
pub const PACKED_REFS_HEADER: &str = "# qstore packed-refs 1";

/// Refs and the commits they name.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PackedRefs {
    pub refs: BTreeMap<RefName, ObjectId>,
}

impl PackedRefs {
    /// The file's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let mut lines: Vec<(String, &ObjectId)> =
            self.refs.iter().map(|(k, v)| (k.key(), v)).collect();
        lines.sort();
        let mut out = String::with_capacity(32 + lines.len() * 90);
        out.push_str(PACKED_REFS_HEADER);
        out.push('\n');
        for (k, v) in lines {
            out.push_str(&v.to_hex());
            out.push(' ');
            out.push_str(&k);
            out.push('\n');
        }
        out.into_bytes()
    }

    /// Parse a file; the error says which line is wrong.
    pub fn decode(b: &[u8]) -> Result<Self, String> {
        let s = std::str::from_utf8(b).map_err(|_| "not UTF-8".to_string())?;
        let body = s
            .strip_prefix(PACKED_REFS_HEADER)
            .and_then(|r| r.strip_prefix('\n'))
            .ok_or("missing or unknown header line")?;
        let mut refs = BTreeMap::new();
        let mut prev: Option<&str> = None;
        for (n, line) in body.split_terminator('\n').enumerate() {
            let bad = |why: &str| format!("line {}: {why}", n + 2);
            let (hex, key) = line.split_once(' ').ok_or_else(|| bad("no space"))?;
            let id = ObjectId::from_hex(hex).ok_or_else(|| bad("not a commit id"))?;
            if prev.is_some_and(|p| p >= key) {
                return Err(bad("refs not strictly sorted"));
            }
            prev = Some(key);
            let name = RefName::from_key(key).map_err(|e| bad(&e.to_string()))?;
            refs.insert(name, id);
        }
        if !body.is_empty() && !body.ends_with('\n') {
            return Err("the last line is not terminated".into());
        }
        Ok(PackedRefs { refs })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn decoder_never_panics(b in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = PackedRefs::decode(&b);
        }

        #[test]
        fn round_trips(names in proptest::collection::btree_set("[a-z][a-z0-9._-]{0,8}", 0..20)) {
            let mut p = PackedRefs::default();
            for (i, n) in names.iter().enumerate() {
                let r = if i % 3 == 0 { RefName::tag(n) } else { RefName::branch(n) };
                p.refs.insert(r.unwrap(), ObjectId([i as u8; 32]));
            }
            prop_assert_eq!(PackedRefs::decode(&p.encode()).unwrap(), p);
        }
    }

    #[test]
    fn damage_is_named() {
        let mut p = PackedRefs::default();
        p.refs
            .insert(RefName::branch("main").unwrap(), ObjectId([1; 32]));
        let mut b = p.encode();
        let n = b.len();
        b[n - 3] = b'/';
        assert!(PackedRefs::decode(&b).unwrap_err().contains("line 2"));
        assert!(PackedRefs::decode(b"junk\n").is_err());
    }
}
