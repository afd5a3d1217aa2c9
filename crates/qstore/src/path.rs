//! Names users give things: [`StatePath`] (where a state lives in a tree) and [`RefName`]
//! (a branch or a tag). Both are validated once, here, when they are built.

use crate::error::{Error, Result};
use std::fmt;

fn check_segment(seg: &str) -> std::result::Result<(), String> {
    if seg.is_empty() {
        return Err("empty segment (leading, trailing or double '/')".into());
    }
    if seg == "." || seg == ".." {
        return Err(format!("segment {seg:?} is not allowed"));
    }
    if seg.len() > 255 {
        return Err("segment longer than 255 characters".into());
    }
    if let Some(c) = seg
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "character {c:?} is not allowed (use A-Z a-z 0-9 . _ -)"
        ));
    }
    Ok(())
}

/// A validated state path such as `qft24/step_0100`: segments of `[A-Za-z0-9._-]`
/// separated by `/`, no empty segment, no `.` or `..`, not absolute.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatePath(String);

impl StatePath {
    /// Validate and build a path.
    pub fn new(path: &str) -> Result<Self> {
        let bad = |reason: String| Error::InvalidPath {
            path: path.to_string(),
            reason,
        };
        if path.is_empty() {
            return Err(bad("the path is empty".into()));
        }
        if path.starts_with('/') {
            return Err(bad("absolute paths are not allowed".into()));
        }
        if path.len() > 4096 {
            return Err(bad("longer than 4096 characters".into()));
        }
        for seg in path.split('/') {
            check_segment(seg).map_err(bad)?;
        }
        Ok(StatePath(path.to_string()))
    }

    /// The path as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The segments of the path.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// True when `self` equals `other` or one is a directory prefix of the other.
    pub fn overlaps(&self, other: &StatePath) -> bool {
        let (a, b) = (self.as_str(), other.as_str());
        a == b
            || (b.starts_with(a) && b.as_bytes()[a.len()] == b'/')
            || (a.starts_with(b) && a.as_bytes()[b.len()] == b'/')
    }
}

/// Check one tree entry name (a single path segment).
pub(crate) fn check_entry_name(name: &str) -> std::result::Result<(), String> {
    check_segment(name)
}

impl fmt::Display for StatePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for StatePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// A branch (movable) or a tag (immutable).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub enum RefName {
    /// A branch, stored as `branches/NAME`.
    Branch(String),
    /// A tag, stored as `tags/NAME`.
    Tag(String),
}

impl RefName {
    /// A validated branch name.
    pub fn branch(name: &str) -> Result<Self> {
        check_ref_name(name)?;
        Ok(RefName::Branch(name.to_string()))
    }

    /// A validated tag name.
    pub fn tag(name: &str) -> Result<Self> {
        check_ref_name(name)?;
        Ok(RefName::Tag(name.to_string()))
    }

    /// The bare name.
    pub fn name(&self) -> &str {
        match self {
            RefName::Branch(n) | RefName::Tag(n) => n,
        }
    }

    /// The key under which a ref store keeps it: `branches/NAME` or `tags/NAME`.
    pub fn key(&self) -> String {
        match self {
            RefName::Branch(n) => format!("branches/{n}"),
            RefName::Tag(n) => format!("tags/{n}"),
        }
    }

    /// Parse a key written by [`RefName::key`].
    pub fn from_key(key: &str) -> Result<Self> {
        if let Some(n) = key.strip_prefix("branches/") {
            RefName::branch(n)
        } else if let Some(n) = key.strip_prefix("tags/") {
            RefName::tag(n)
        } else {
            Err(Error::InvalidRefName {
                name: key.to_string(),
                reason: "a ref key starts with branches/ or tags/".into(),
            })
        }
    }
}

impl fmt::Display for RefName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RefName::Branch(n) => write!(f, "branch {n}"),
            RefName::Tag(n) => write!(f, "tag {n}"),
        }
    }
}

fn check_ref_name(name: &str) -> Result<()> {
    let bad = |reason: String| Error::InvalidRefName {
        name: name.to_string(),
        reason,
    };
    if name.contains('/') {
        return Err(bad("'/' is not allowed in a ref name".into()));
    }
    check_segment(name).map_err(bad)?;
    if name.starts_with('-') {
        return Err(bad("a ref name may not start with '-'".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated() {
        assert!(StatePath::new("qft24/step_0100").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "a/./b", "a/", "a b", "x/é"] {
            assert!(
                matches!(StatePath::new(bad), Err(Error::InvalidPath { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn overlap_is_by_segment() {
        let p = |s| StatePath::new(s).unwrap();
        assert!(p("a/b").overlaps(&p("a/b")));
        assert!(p("a").overlaps(&p("a/b")));
        assert!(p("a/b/c").overlaps(&p("a/b")));
        assert!(!p("a/b").overlaps(&p("a/bc")));
        assert!(!p("x").overlaps(&p("y")));
    }

    #[test]
    fn ref_names_are_validated() {
        assert!(RefName::branch("exp-1.2_x").is_ok());
        for bad in ["", "a/b", "..", "-x", "a b"] {
            assert!(RefName::branch(bad).is_err(), "{bad:?}");
        }
    }
}
