//! [`Metrics`]: the server's counters, rendered in the Prometheus text format by
//! `GET /metrics` (requests by status, TLS handshakes by negotiated key-exchange group,
//! handshake failures, bytes in and out, open connections, refusals by kind).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// Counters shared by every connection.
#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<u16, u64>>,
    groups: Mutex<BTreeMap<String, u64>>,
    refusals: Mutex<BTreeMap<String, u64>>,
    pub handshake_failures: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    pub connections: AtomicI64,
}

impl Metrics {
    pub fn request(&self, status: u16) {
        *self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(status)
            .or_default() += 1;
    }
    pub fn handshake(&self, group: &str) {
        *self
            .groups
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(group.to_string())
            .or_default() += 1;
    }
    pub fn refusal(&self, kind: &str) {
        *self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(kind.to_string())
            .or_default() += 1;
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut s = String::new();
        s.push_str("# HELP qstore_requests_total HTTP requests answered, by status.\n");
        s.push_str("# TYPE qstore_requests_total counter\n");
        for (k, v) in self
            .requests
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            s.push_str(&format!("qstore_requests_total{{status=\"{k}\"}} {v}\n"));
        }
        s.push_str(
            "# HELP qstore_tls_handshakes_total TLS connections, by negotiated key-exchange group.\n",
        );
        s.push_str("# TYPE qstore_tls_handshakes_total counter\n");
        for (k, v) in self.groups.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            s.push_str(&format!(
                "qstore_tls_handshakes_total{{group=\"{k}\"}} {v}\n"
            ));
        }
        s.push_str("# HELP qstore_refusals_total Requests refused, by kind.\n");
        s.push_str("# TYPE qstore_refusals_total counter\n");
        for (k, v) in self
            .refusals
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            s.push_str(&format!("qstore_refusals_total{{kind=\"{k}\"}} {v}\n"));
        }
        let scalar = |s: &mut String, name: &str, help: &str, kind: &str, v: String| {
            s.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {v}\n"
            ));
        };
        scalar(
            &mut s,
            "qstore_tls_handshake_failures_total",
            "TLS handshakes that failed or timed out.",
            "counter",
            self.handshake_failures.load(Ordering::Relaxed).to_string(),
        );
        scalar(
            &mut s,
            "qstore_received_bytes_total",
            "Request body bytes received.",
            "counter",
            self.bytes_in.load(Ordering::Relaxed).to_string(),
        );
        scalar(
            &mut s,
            "qstore_sent_bytes_total",
            "Blob and amplitude bytes sent.",
            "counter",
            self.bytes_out.load(Ordering::Relaxed).to_string(),
        );
        scalar(
            &mut s,
            "qstore_open_connections",
            "Connections open now.",
            "gauge",
            self.connections.load(Ordering::Relaxed).to_string(),
        );
        s
    }
}
