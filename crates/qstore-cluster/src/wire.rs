//! The store protocol between `qstore serve` and its clients: the JSON bodies of the
//! `/v1/repos/{name}/store/...` routes (blobs and coordination of one repository), the
//! error body every route answers with, and the rules for blob keys and repository names
//! both sides apply. The server is `qstore-server`; the client is [`crate::served`].

use serde::{Deserialize, Serialize};

/// The error body of every refusal: a message for people and a kind for programs.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    pub error: String,
    /// `unauthorised`, `forbidden`, `bad_request`, `too_large`, `not_found`,
    /// `blob_not_found`, `repository_not_found`, `conflict`, `lease_lost`,
    /// `ref_store_mismatch`, `corrupt`, `invalid`, `quota`, `unavailable`, `internal`.
    pub kind: String,
}

/// One listed blob.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BlobEntry {
    pub key: String,
    pub size: u64,
    /// Seconds since the Unix epoch, where the backend knows.
    pub modified: Option<f64>,
}

/// Answer of `PUT store/blob`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct PutAnswer {
    /// False when the key existed and the mode was `create`.
    pub written: bool,
}

/// Answer of `GET store/coordination`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CoordinationInfo {
    pub kind: String,
    pub describe: String,
    /// The repository's pack-merge policy: clients leave merges to the server.
    pub merged_by_server: bool,
}

/// Body of `POST store/cas`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CasRequest {
    /// A ref key (`branches/NAME`, `tags/NAME`).
    pub name: String,
    pub expected: Option<String>,
    pub new: Option<String>,
    /// Conditional on this garbage-collection generation, when given.
    pub generation: Option<u64>,
}

/// Answer of `POST store/cas`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CasAnswer {
    pub swapped: bool,
    /// What the ref held, when not swapped.
    pub actual: Option<String>,
}

/// Body of `POST store/lock`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockRequest {
    pub name: String,
    /// `shared` or `exclusive`.
    pub mode: String,
}

/// Answer of `POST store/lock`: the lease that holds it, `None` when it is taken.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LockAnswer {
    pub lease: Option<String>,
    /// The lease lapses this many seconds after its last renewal.
    pub ttl_s: u64,
}

/// Body of `POST store/lease/renew` and `POST store/lease/release`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseRequest {
    pub lease: String,
}

/// Answer of `POST store/lease/renew`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaseAnswer {
    pub alive: bool,
}

/// Body of `POST store/bind`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BindRequest {
    pub id: String,
    pub create: bool,
}

/// Answer of `GET store/generation` and `POST store/generation`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct GenerationAnswer {
    pub generation: u64,
}

/// Answer of `GET store/ref`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RefAnswer {
    pub id: Option<String>,
}

/// Whether `key` is a blob key a client may name: `config.json`, `init.json` or
/// `packs/<32 hex>.pack`. Everything else (`..`, absolute paths, other directories) is
/// refused before it reaches storage.
pub fn blob_key_allowed(key: &str) -> bool {
    if key == "config.json" || key == "init.json" || upload_key_allowed(key) {
        return true;
    }
    match key
        .strip_prefix("packs/")
        .and_then(|k| k.strip_suffix(".pack"))
    {
        Some(hex) => {
            hex.len() == 32
                && hex
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        }
        None => false,
    }
}

/// Whether `key` is a record of a state written in parts: `uploads/<32 hex>.upload.json`,
/// `.done.json` or `.part-<n>.json` (see `qstore::repo::upload`).
pub fn upload_key_allowed(key: &str) -> bool {
    let Some((id, name)) = key.strip_prefix("uploads/").and_then(|k| k.split_once('.')) else {
        return false;
    };
    let hex = id.len() == 32
        && id
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    let part = name
        .strip_prefix("part-")
        .and_then(|n| n.strip_suffix(".json"))
        .is_some_and(|n| !n.is_empty() && n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit()));
    hex && (name == "upload.json" || name == "done.json" || part)
}

/// Whether `prefix` may be listed (`packs/`, the root, or the uploads).
pub fn list_prefix_allowed(prefix: &str) -> bool {
    prefix.is_empty()
        || prefix == "packs/"
        || prefix.strip_prefix("uploads/").is_some_and(|p| {
            p.len() <= 40
                && p.bytes().all(|b| {
                    b.is_ascii_digit()
                        || (b'a'..=b'f').contains(&b)
                        || b == b'.'
                        || b == b'-'
                        || b == b'p'
                        || b == b'r'
                        || b == b't'
                })
        })
}

/// The coordination documents a client may read (and an admin write): the shallow list
/// and the remotes. Access tokens are never served.
pub fn document_allowed(name: &str) -> bool {
    name == qstore::coord::SHALLOW_DOC || name == "remotes.json"
}

/// Whether `name` is a valid served repository name (`[A-Za-z0-9._-]{1,64}`, not `.` or
/// `..`).
pub fn repo_name_allowed(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys() {
        assert!(blob_key_allowed("config.json"));
        assert!(blob_key_allowed(
            "packs/0123456789abcdef0123456789abcdef.pack"
        ));
        for bad in [
            "",
            "packs/../config.json",
            "/etc/passwd",
            "packs/0123456789ABCDEF0123456789abcdef.pack",
            "packs/x.pack",
            "refs/main",
            "access-tokens.json",
        ] {
            assert!(!blob_key_allowed(bad), "{bad}");
        }
        assert!(!repo_name_allowed(".."));
        assert!(!repo_name_allowed("a/b"));
        assert!(repo_name_allowed("default"));
        assert!(!document_allowed("access-tokens.json"));
        let id = "0123456789abcdef0123456789abcdef";
        for ok in ["upload.json", "done.json", "part-0.json", "part-65535.json"] {
            assert!(upload_key_allowed(&format!("uploads/{id}.{ok}")), "{ok}");
        }
        for bad in [
            format!("uploads/{id}.part-.json"),
            format!("uploads/{id}.part-123456.json"),
            format!("uploads/{id}.other.json"),
            format!("uploads/{}.upload.json", &id[1..]),
            format!("uploads/{}.upload.json", id.to_uppercase()),
            format!("uploads/../{id}.upload.json"),
            "uploads/x".into(),
        ] {
            assert!(!upload_key_allowed(&bad), "{bad}");
            assert!(
                !blob_key_allowed(&bad) || bad.starts_with("packs/"),
                "{bad}"
            );
        }
        assert!(
            list_prefix_allowed("uploads/") && list_prefix_allowed(&format!("uploads/{id}.part-"))
        );
        assert!(!list_prefix_allowed("uploads/../") && !list_prefix_allowed("refs/"));
    }

    proptest! {
        #[test]
        fn allowed_keys_never_escape(s in ".{0,80}") {
            if blob_key_allowed(&s) {
                prop_assert!(!s.contains(".."));
                prop_assert!(!s.starts_with('/'));
            }
            if repo_name_allowed(&s) {
                prop_assert!(!s.contains('/'));
            }
        }

        #[test]
        fn bodies_never_panic(b in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = serde_json::from_slice::<CasRequest>(&b);
            let _ = serde_json::from_slice::<LockRequest>(&b);
            let _ = serde_json::from_slice::<BindRequest>(&b);
            let _ = serde_json::from_slice::<ErrorBody>(&b);
        }
    }
}
