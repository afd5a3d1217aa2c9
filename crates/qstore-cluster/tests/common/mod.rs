//! Shared helpers of the cluster tests: the services `scripts/cluster.sh` started (their
//! addresses in the environment) and unique repository addresses on them.
#![allow(dead_code)]

use std::sync::atomic::{AtomicU32, Ordering};

/// The environment of the running cluster, or None (the test is skipped unless
/// `QSTORE_REQUIRE_CLUSTER=1`, which the README's test command sets).
pub struct Cluster {
    pub s3_endpoint: String,
    pub bucket: String,
    pub etcd: String,
}

pub fn cluster() -> Option<Cluster> {
    match (
        std::env::var("QSTORE_TEST_S3_ENDPOINT"),
        std::env::var("QSTORE_TEST_BUCKET"),
        std::env::var("QSTORE_TEST_ETCD"),
    ) {
        (Ok(s3_endpoint), Ok(bucket), Ok(etcd)) => Some(Cluster {
            s3_endpoint,
            bucket,
            etcd,
        }),
        _ => {
            assert!(
                std::env::var("QSTORE_REQUIRE_CLUSTER").is_err(),
                "QSTORE_REQUIRE_CLUSTER is set but the cluster's addresses are not: run \
                 through scripts/test-all.sh"
            );
            eprintln!("skipped: no cluster (run scripts/test-all.sh, or scripts/cluster.sh start)");
            None
        }
    }
}

/// A name unique to this test process and call.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{tag}-{}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed),
        rand_suffix()
    )
}

fn rand_suffix() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    t % 100_000
}

pub fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

impl Cluster {
    /// The etcd ref store with key prefix `prefix`.
    pub fn refs(&self, prefix: &str) -> String {
        format!("etcd://{}/{prefix}?lease_ttl=3", self.etcd)
    }

    /// An S3 address without refs.
    pub fn s3(&self, prefix: &str) -> String {
        format!(
            "s3://{}/{prefix}?endpoint={}&region=garage&cache_bytes=0",
            self.bucket,
            enc(&self.s3_endpoint)
        )
    }

    /// A fresh repository address on S3 with refs in etcd.
    pub fn repo(&self, tag: &str) -> String {
        let p = unique(tag);
        format!("{}&refs={}", self.s3(&p), enc(&self.refs(&p)))
    }
}
