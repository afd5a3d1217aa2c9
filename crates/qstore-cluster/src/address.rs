//! Cluster repository addresses: [`S3Address`] (`s3://BUCKET/PREFIX?query`) and the ref
//! store inside it, [`RefsAddress`] (`refs=etcd://HOST:PORT[,HOST:PORT...]/PREFIX` or
//! `refs=s3`).
//!
//! S3 query keys: `endpoint` (URL of the S3 API; `http://` only on loopback or when you mean
//! it), `region`, `ca` (PEM file of a private CA for https), `refs`, `cache_dir` and
//! `cache_bytes` (the on-disk chunk cache; `cache_bytes=0` turns it off). Credentials come
//! from the standard AWS environment variables (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`, `AWS_REGION`, `AWS_ENDPOINT_URL`).
//!
//! etcd query keys: `ca`, `cert`, `key` (PEM files: TLS with a client certificate; the
//! scheme `etcds://` means TLS with the system roots), `user` (etcd's user/password auth; the
//! password from `QSTORE_ETCD_PASSWORD`, never from the address), `lease_ttl` (seconds).

use qstore::Error;
use std::path::PathBuf;

/// Default size of the on-disk chunk cache of a remote repository: 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;
/// Default time to live of an etcd lease (seconds).
pub const DEFAULT_LEASE_TTL: u64 = 10;

/// Where a remote repository keeps its refs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RefsAddress {
    /// An etcd cluster.
    Etcd(EtcdAddress),
    /// The bucket itself, with conditional writes (only where the server honours them).
    S3,
}

/// An etcd cluster and the key prefix of one repository in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EtcdAddress {
    /// Base URLs of the members (`http://127.0.0.1:2379`).
    pub endpoints: Vec<String>,
    /// Key prefix, ending in `/`.
    pub prefix: String,
    /// PEM file of the CA that signed the members' certificates.
    pub ca: Option<PathBuf>,
    /// PEM files of the client certificate and its key.
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// etcd user (password from `QSTORE_ETCD_PASSWORD`).
    pub user: Option<String>,
    /// Lease time to live, seconds.
    pub lease_ttl: u64,
}

/// An `s3://` repository address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Address {
    pub bucket: String,
    /// Key prefix without leading or trailing `/` (may be empty).
    pub prefix: String,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub ca: Option<PathBuf>,
    pub refs: Option<RefsAddress>,
    pub cache_dir: Option<PathBuf>,
    pub cache_bytes: u64,
}

fn bad(address: &str, reason: impl std::fmt::Display) -> Error {
    Error::InvalidArgument(format!("repository address {address:?}: {reason}"))
}

/// The parts of `scheme://authority/path?query`, the query percent-decoded into pairs.
type Parts<'a> = (&'a str, &'a str, &'a str, Vec<(String, String)>);

/// Split `scheme://authority/path?query`.
fn split(s: &str) -> Option<Parts<'_>> {
    let (scheme, rest) = s.split_once("://")?;
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = main.split_once('/').unwrap_or((main, ""));
    let pairs = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    Some((scheme, authority, path, pairs))
}

/// Parse a size: bytes, or with a K/M/G/T suffix (powers of 1024, optional `iB`).
pub fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (num, mult) = match t.chars().last()? {
        'K' | 'k' => (&t[..t.len() - 1], 1u64 << 10),
        'M' | 'm' => (&t[..t.len() - 1], 1 << 20),
        'G' | 'g' => (&t[..t.len() - 1], 1 << 30),
        'T' | 't' => (&t[..t.len() - 1], 1 << 40),
        _ => (t, 1),
    };
    num.trim().parse::<u64>().ok()?.checked_mul(mult)
}

fn default_cache_root() -> PathBuf {
    if let Some(d) = std::env::var_os("QSTORE_CACHE_DIR") {
        return PathBuf::from(d);
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("qstore").join("chunks")
}

impl RefsAddress {
    /// Parse `etcd://HOST:PORT[,HOST:PORT...]/PREFIX[?...]`, `etcds://...` or `s3`.
    pub fn parse(s: &str) -> qstore::Result<Self> {
        if s == "s3" || s == "s3://" {
            return Ok(RefsAddress::S3);
        }
        let (scheme, authority, path, pairs) =
            split(s).ok_or_else(|| bad(s, "a ref store is etcd://HOST:PORT/PREFIX or s3"))?;
        let tls = match scheme {
            "etcd" => false,
            "etcds" => true,
            _ => return Err(bad(s, "a ref store is etcd://HOST:PORT/PREFIX or s3")),
        };
        let prefix = path.trim_matches('/');
        if prefix.is_empty() {
            return Err(bad(
                s,
                "an etcd ref store needs a key prefix (etcd://HOST:PORT/PREFIX)",
            ));
        }
        let mut a = EtcdAddress {
            endpoints: Vec::new(),
            prefix: format!("{prefix}/"),
            ca: None,
            cert: None,
            key: None,
            user: None,
            lease_ttl: DEFAULT_LEASE_TTL,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "ca" => a.ca = Some(v.into()),
                "cert" => a.cert = Some(v.into()),
                "key" => a.key = Some(v.into()),
                "user" => a.user = Some(v),
                "lease_ttl" => {
                    a.lease_ttl = v
                        .parse()
                        .ok()
                        .filter(|t| *t >= 2)
                        .ok_or_else(|| bad(s, "lease_ttl is whole seconds, at least 2"))?
                }
                _ => return Err(bad(s, format!("unknown etcd option {k:?}"))),
            }
        }
        if a.cert.is_some() != a.key.is_some() {
            return Err(bad(s, "a client certificate needs both cert= and key="));
        }
        let https = tls || a.ca.is_some() || a.cert.is_some();
        for hp in authority.split(',') {
            let (h, p) = hp
                .rsplit_once(':')
                .ok_or_else(|| bad(s, format!("{hp:?} is not HOST:PORT")))?;
            if h.is_empty() || p.parse::<u16>().is_err() {
                return Err(bad(s, format!("{hp:?} is not HOST:PORT")));
            }
            let scheme = if https { "https" } else { "http" };
            a.endpoints.push(format!("{scheme}://{h}:{p}"));
        }
        Ok(RefsAddress::Etcd(a))
    }

    /// The address without credentials, for messages and the repository config.
    pub fn describe(&self) -> String {
        match self {
            RefsAddress::S3 => "s3 (conditional writes in the bucket)".into(),
            RefsAddress::Etcd(e) => {
                let hosts: Vec<&str> = e
                    .endpoints
                    .iter()
                    .map(|u| u.split_once("://").map(|x| x.1).unwrap_or(u))
                    .collect();
                let scheme = if e.endpoints.iter().any(|u| u.starts_with("https")) {
                    "etcds"
                } else {
                    "etcd"
                };
                format!(
                    "{scheme}://{}/{}",
                    hosts.join(","),
                    e.prefix.trim_end_matches('/')
                )
            }
        }
    }
}

impl S3Address {
    /// Parse `s3://BUCKET/PREFIX?endpoint=...&region=...&refs=...`.
    pub fn parse(s: &str) -> qstore::Result<Self> {
        let (scheme, bucket, path, pairs) =
            split(s).ok_or_else(|| bad(s, "expected s3://BUCKET/PREFIX"))?;
        if !scheme.eq_ignore_ascii_case("s3") {
            return Err(bad(s, "expected s3://BUCKET/PREFIX"));
        }
        if bucket.is_empty()
            || !bucket
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || b".-_".contains(&c))
        {
            return Err(bad(s, "the bucket name is missing or invalid"));
        }
        let prefix = path.trim_matches('/').to_string();
        if prefix.split('/').any(|seg| seg == "." || seg == "..") || prefix.contains("//") {
            return Err(bad(s, "the key prefix has an empty, . or .. segment"));
        }
        let mut a = S3Address {
            bucket: bucket.to_string(),
            prefix,
            endpoint: None,
            region: None,
            ca: None,
            refs: None,
            cache_dir: None,
            cache_bytes: DEFAULT_CACHE_BYTES,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "endpoint" => {
                    if !(v.starts_with("http://") || v.starts_with("https://")) {
                        return Err(bad(s, "endpoint must be an http:// or https:// URL"));
                    }
                    a.endpoint = Some(v.trim_end_matches('/').to_string())
                }
                "region" => a.region = Some(v),
                "ca" => a.ca = Some(v.into()),
                "refs" => a.refs = Some(RefsAddress::parse(&v)?),
                "cache_dir" => a.cache_dir = Some(v.into()),
                "cache_bytes" => {
                    a.cache_bytes = parse_size(&v)
                        .ok_or_else(|| bad(s, "cache_bytes is a size such as 2GiB or 0"))?
                }
                _ => return Err(bad(s, format!("unknown option {k:?}"))),
            }
        }
        if a.cache_dir.is_none() && a.cache_bytes > 0 {
            let key = format!(
                "{}|{}|{}",
                a.endpoint.as_deref().unwrap_or(""),
                a.bucket,
                a.prefix
            );
            let h = blake3::hash(key.as_bytes()).to_hex();
            a.cache_dir = Some(default_cache_root().join(&h[..16]));
        }
        Ok(a)
    }

    /// The object key of a repository blob.
    pub fn key(&self, blob: &str) -> String {
        if self.prefix.is_empty() {
            blob.to_string()
        } else {
            format!("{}/{blob}", self.prefix)
        }
    }
}

/// `address` with the ref store `refs` (from `--refs` or `QSTORE_REFS`) in its query,
/// replacing one already there; other addresses are returned as they are.
pub fn with_refs(address: &str, refs: Option<&str>) -> String {
    let Some(refs) = refs.filter(|r| !r.is_empty()) else {
        return address.to_string();
    };
    if !address
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("s3://"))
    {
        return address.to_string();
    }
    let (main, query) = address.split_once('?').unwrap_or((address, ""));
    let mut ser = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        if k != "refs" {
            ser.append_pair(&k, &v);
        }
    }
    ser.append_pair("refs", refs);
    format!("{main}?{}", ser.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_and_etcd_addresses() {
        let a = S3Address::parse(
            "s3://bkt/a/b?endpoint=http://127.0.0.1:3900&region=garage&refs=etcd%3A%2F%2F127.0.0.1%3A2379%2C127.0.0.1%3A2479%2Fqs%3Flease_ttl%3D4&cache_bytes=0",
        )
        .unwrap();
        assert_eq!(a.bucket, "bkt");
        assert_eq!(a.prefix, "a/b");
        assert_eq!(a.key("config.json"), "a/b/config.json");
        assert_eq!(a.cache_bytes, 0);
        let Some(RefsAddress::Etcd(e)) = &a.refs else {
            panic!("etcd refs expected")
        };
        assert_eq!(
            e.endpoints,
            ["http://127.0.0.1:2379", "http://127.0.0.1:2479"]
        );
        assert_eq!(e.prefix, "qs/");
        assert_eq!(e.lease_ttl, 4);
        assert_eq!(
            a.refs.as_ref().unwrap().describe(),
            "etcd://127.0.0.1:2379,127.0.0.1:2479/qs"
        );
    }

    #[test]
    fn refuses_bad_addresses_by_name() {
        for (s, what) in [
            ("s3://", "bucket"),
            ("s3://b/x?nope=1", "unknown option"),
            ("s3://b/x?endpoint=ftp://h", "endpoint"),
            ("s3://b/x?refs=etcd://h:1", "prefix"),
            ("s3://b/x?refs=etcd://h/p", "HOST:PORT"),
            ("s3://b/x?refs=zk://h:1/p", "etcd://"),
            ("s3://b/../x", ".."),
            ("s3://b/x?cache_bytes=lots", "cache_bytes"),
        ] {
            let e = S3Address::parse(s).unwrap_err().to_string();
            assert!(e.contains(what), "{s}: {e}");
        }
    }

    #[test]
    fn with_refs_adds_or_replaces() {
        assert_eq!(with_refs("/tmp/x", Some("etcd://h:1/p")), "/tmp/x");
        let a = with_refs("s3://b/p?region=r", Some("etcd://h:1/p"));
        let p = S3Address::parse(&a).unwrap();
        assert_eq!(p.region.as_deref(), Some("r"));
        assert!(matches!(p.refs, Some(RefsAddress::Etcd(_))));
        let b = with_refs(&a, Some("s3"));
        assert_eq!(S3Address::parse(&b).unwrap().refs, Some(RefsAddress::S3));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("512"), Some(512));
    }
}
