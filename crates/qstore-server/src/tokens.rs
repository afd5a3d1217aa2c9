//! Access tokens of a served repository: [`TokenStore`] creates, lists, revokes and checks
//! them; [`Grant`] is what a checked token allows. Tokens live hashed (BLAKE3 of the secret)
//! in the repository's coordination document `access-tokens.json`, beside its refs, so they
//! follow the repository (local, etcd) and are never served by the store protocol. A token
//! is `qst_<16 hex id>_<64 hex secret>`; it is printed once, at creation, and never logged
//! (logs name the id only). Checks compare hashes in constant time.

use qstore::coord::Coordination;
use qstore::{Error, RefName, Result};
use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// The coordination document holding the tokens.
pub const TOKENS_DOC: &str = "access-tokens.json";

/// What a token may do, each scope including the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read states, refs, history, stats.
    Read,
    /// Also upload packs and move refs (within the token's branch prefix, if any).
    Write,
    /// Also garbage collection, fsck, deleting blobs, documents and generations.
    Admin,
}

impl std::str::FromStr for Scope {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "read" => Ok(Scope::Read),
            "write" => Ok(Scope::Write),
            "admin" => Ok(Scope::Admin),
            _ => Err(format!("unknown scope {s:?} (read, write or admin)")),
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Scope::Read => "read",
            Scope::Write => "write",
            Scope::Admin => "admin",
        })
    }
}

/// One stored token (its secret only as a hash).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TokenRecord {
    pub id: String,
    /// BLAKE3 of the secret, hex.
    pub hash: String,
    pub scope: Scope,
    /// Branches the token may move: names starting with this prefix (`exp-`); `None` = all.
    pub branch_prefix: Option<String>,
    pub created_ms: i64,
    pub expires_ms: Option<i64>,
    pub revoked: bool,
    #[serde(default)]
    pub label: String,
}

/// What a checked token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub token_id: String,
    pub scope: Scope,
    pub branch_prefix: Option<String>,
}

impl Grant {
    /// Whether the grant covers `need`.
    pub fn allows(&self, need: Scope) -> bool {
        self.scope >= need
    }

    /// Whether the grant may create, move or delete `name`: write scope, and for a
    /// branch-scoped token a branch starting with its prefix (tags are refused to it).
    pub fn may_move(&self, name: &RefName) -> bool {
        if !self.allows(Scope::Write) {
            return false;
        }
        match (&self.branch_prefix, name) {
            (None, _) => true,
            (Some(p), RefName::Branch(b)) => b.starts_with(p.as_str()),
            (Some(_), RefName::Tag(_)) => false,
        }
    }
}

/// Why a token was refused (the message a client sees; never the token itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refusal::Missing => "no token: send Authorization: Bearer qst_...",
            Refusal::Malformed => "malformed token",
            Refusal::Unknown => "unknown token",
            Refusal::Revoked => "the token was revoked",
            Refusal::Expired => "the token has expired",
        })
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Split `qst_<id>_<secret>`.
pub fn parse_token(t: &str) -> Option<(&str, &str)> {
    let rest = t.strip_prefix("qst_")?;
    let (id, secret) = rest.split_once('_')?;
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit());
    (hex(id, 16) && hex(secret, 64)).then_some((id, secret))
}

fn hash_secret(secret: &str) -> blake3::Hash {
    blake3::hash(secret.as_bytes())
}

/// The tokens of one repository, in its coordination.
pub struct TokenStore<'a> {
    coord: &'a dyn Coordination,
}

impl<'a> TokenStore<'a> {
    pub fn new(coord: &'a dyn Coordination) -> Self {
        TokenStore { coord }
    }

    /// Every token record.
    pub fn list(&self) -> Result<Vec<TokenRecord>> {
        match self.coord.document(TOKENS_DOC)? {
            None => Ok(Vec::new()),
            Some(b) => serde_json::from_slice(&b).map_err(|e| Error::Corrupt {
                object: TOKENS_DOC.into(),
                path: None,
                detail: e.to_string(),
            }),
        }
    }

    fn save(&self, v: &[TokenRecord]) -> Result<()> {
        let body = serde_json::to_vec_pretty(v)
            .map_err(|e| Error::InvalidArgument(format!("tokens: {e}")))?;
        self.coord.put_document(TOKENS_DOC, &body)
    }

    /// Create a token; returns its record and the token text (shown once).
    pub fn create(
        &self,
        scope: Scope,
        branch_prefix: Option<String>,
        expires_in: Option<std::time::Duration>,
        label: &str,
    ) -> Result<(TokenRecord, String)> {
        // `exp-*` and `exp-` mean the same prefix.
        let branch_prefix = branch_prefix.map(|p| p.trim_end_matches('*').to_string());
        if let Some(p) = &branch_prefix {
            // The prefix must itself be the start of a valid branch name (no `/`).
            RefName::branch(&format!("{p}x"))?;
        }
        let id: [u8; 8] = rand::random();
        let secret: [u8; 32] = rand::random();
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        let now = now_ms();
        let rec = TokenRecord {
            id: id.clone(),
            hash: hash_secret(&secret).to_hex().to_string(),
            scope,
            branch_prefix,
            created_ms: now,
            expires_ms: expires_in.map(|d| now.saturating_add(d.as_millis() as i64)),
            revoked: false,
            label: label.into(),
        };
        let mut all = self.list()?;
        all.push(rec.clone());
        self.save(&all)?;
        Ok((rec, format!("qst_{id}_{secret}")))
    }

    /// Revoke the token with this id (or the id of this token text).
    pub fn revoke(&self, id_or_token: &str) -> Result<TokenRecord> {
        let id = parse_token(id_or_token)
            .map(|(i, _)| i)
            .unwrap_or(id_or_token)
            .to_string();
        let mut all = self.list()?;
        let rec = all
            .iter_mut()
            .find(|r| r.id == id)
            .ok_or_else(|| Error::InvalidArgument(format!("no token with id {id:?}")))?;
        rec.revoked = true;
        let out = rec.clone();
        self.save(&all)?;
        Ok(out)
    }

    /// Check a presented token.
    pub fn check(&self, presented: Option<&str>) -> Result<std::result::Result<Grant, Refusal>> {
        let Some(t) = presented else {
            return Ok(Err(Refusal::Missing));
        };
        let Some((id, secret)) = parse_token(t) else {
            return Ok(Err(Refusal::Malformed));
        };
        let all = self.list()?;
        let given = hash_secret(secret);
        let Some(rec) = all.iter().find(|r| r.id == id) else {
            return Ok(Err(Refusal::Unknown));
        };
        // blake3::Hash compares in constant time.
        let stored = blake3::Hash::from_hex(&rec.hash).map_err(|e| Error::Corrupt {
            object: TOKENS_DOC.into(),
            path: None,
            detail: format!("token {}: {e}", rec.id),
        })?;
        if stored != given {
            return Ok(Err(Refusal::Unknown));
        }
        if rec.revoked {
            return Ok(Err(Refusal::Revoked));
        }
        if rec.expires_ms.is_some_and(|e| e <= now_ms()) {
            return Ok(Err(Refusal::Expired));
        }
        Ok(Ok(Grant {
            token_id: rec.id.clone(),
            scope: rec.scope,
            branch_prefix: rec.branch_prefix.clone(),
        }))
    }
}

/// Tokens held only in the server's memory, for `qstore ui`: a one-time login code (printed
/// in the URL the user opens, after `#`, so it never reaches a server log) and the session
/// tokens it is exchanged for, once. They are never written anywhere and die with the
/// process; every session token has the scope the server was started with.
pub struct SessionTokens {
    scope: Scope,
    code: std::sync::Mutex<Option<blake3::Hash>>,
    sessions: std::sync::Mutex<Vec<(String, blake3::Hash)>>,
}

impl std::fmt::Debug for SessionTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionTokens")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// The prefix of a one-time login code.
pub const LOGIN_CODE_PREFIX: &str = "qsc_";

impl SessionTokens {
    /// A new set with its one-time code (`qsc_<64 hex>`), returned once.
    pub fn new(scope: Scope) -> (Self, String) {
        let secret: [u8; 32] = rand::random();
        let code = format!("{LOGIN_CODE_PREFIX}{}", hex::encode(secret));
        let me = SessionTokens {
            scope,
            code: std::sync::Mutex::new(Some(hash_secret(&code))),
            sessions: std::sync::Mutex::new(Vec::new()),
        };
        (me, code)
    }

    /// The scope of every session.
    pub fn scope(&self) -> Scope {
        self.scope
    }

    /// Exchange the one-time code for a session token; the code works once.
    pub fn exchange(&self, presented: &str) -> Option<String> {
        let mut code = self.code.lock().unwrap_or_else(|e| e.into_inner());
        if code.is_none_or(|c| c != hash_secret(presented)) {
            return None;
        }
        *code = None;
        let id: [u8; 8] = rand::random();
        let secret: [u8; 32] = rand::random();
        let (id, secret) = (hex::encode(id), hex::encode(secret));
        self.sessions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((id.clone(), hash_secret(&secret)));
        Some(format!("qst_{id}_{secret}"))
    }

    /// The grant of a session token, if `presented` is one.
    pub fn check(&self, presented: &str) -> Option<Grant> {
        let (id, secret) = parse_token(presented)?;
        let given = hash_secret(secret);
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .iter()
            .find(|(i, h)| i == id && *h == given)
            .map(|(i, _)| Grant {
                token_id: format!("session-{i}"),
                scope: self.scope,
                branch_prefix: None,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use qstore::coord::memory::MemoryCoordination;

    #[test]
    fn create_check_revoke_expire() {
        let c = MemoryCoordination::default();
        let s = TokenStore::new(&c);
        let (_, t) = s
            .create(Scope::Write, Some("exp-*".into()), None, "ci")
            .unwrap();
        let g = s.check(Some(&t)).unwrap().unwrap();
        assert!(g.may_move(&RefName::branch("exp-a").unwrap()));
        assert!(!g.may_move(&RefName::branch("main").unwrap()));
        assert!(!g.may_move(&RefName::tag("v1").unwrap()));
        assert!(!g.may_move(&RefName::branch("exp").unwrap()));
        assert!(
            s.create(Scope::Write, Some("exp/".into()), None, "")
                .is_err()
        );
        assert!(!g.allows(Scope::Admin));
        let mut wrong = t.clone();
        wrong.pop();
        wrong.push(if t.ends_with('0') { '1' } else { '0' });
        assert_eq!(s.check(Some(&wrong)).unwrap(), Err(Refusal::Unknown));
        assert_eq!(s.check(None).unwrap(), Err(Refusal::Missing));
        s.revoke(&t).unwrap();
        assert_eq!(s.check(Some(&t)).unwrap(), Err(Refusal::Revoked));
        let (_, e) = s
            .create(Scope::Read, None, Some(std::time::Duration::ZERO), "")
            .unwrap();
        assert_eq!(s.check(Some(&e)).unwrap(), Err(Refusal::Expired));
        // Nothing secret is stored.
        let doc = String::from_utf8(c.document(TOKENS_DOC).unwrap().unwrap()).unwrap();
        assert!(!doc.contains(parse_token(&t).unwrap().1));
    }

    #[test]
    fn login_code_works_once_and_sessions_keep_their_scope() {
        let (s, code) = SessionTokens::new(Scope::Read);
        assert!(s.exchange("qsc_wrong").is_none());
        let t = s.exchange(&code).unwrap();
        assert!(s.exchange(&code).is_none(), "the code works once");
        let g = s.check(&t).unwrap();
        assert_eq!(g.scope, Scope::Read);
        assert!(!g.may_move(&RefName::branch("main").unwrap()));
        let (id, _) = parse_token(&t).unwrap();
        assert!(s.check(&format!("qst_{id}_{}", "0".repeat(64))).is_none());
        assert!(s.check(&code).is_none());
    }

    proptest! {
        #[test]
        fn token_parser_never_panics(s in ".{0,120}") {
            if let Some((id, secret)) = parse_token(&s) {
                prop_assert_eq!(id.len(), 16);
                prop_assert_eq!(secret.len(), 64);
            }
        }
    }
}
