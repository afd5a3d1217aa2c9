//! Rendering for people and scripts: [`Out`] prints JSON or text, plus byte sizes, times,
//! progress bars (only on a terminal) and the `stats` table.

use indicatif::{ProgressBar, ProgressStyle};
use qstore::{RepoStats, StateEntry};
use serde_json::{Value, json};
use std::io::IsTerminal;

/// Where a command's result goes: JSON (`--json`) or text.
pub struct Out {
    pub json: bool,
}

impl Out {
    /// Print `value` as JSON, or the text `text` builds.
    pub fn emit(&self, value: Value, text: impl FnOnce() -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            println!("{}", text());
        }
    }
}

/// `1.50 GiB`, `12.0 MiB`, `512 B`.
pub fn human_bytes(b: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.2} {}", UNITS[u])
    }
}

/// A state's dense size for people: in binary units, or `2^k B` for a state vector too wide
/// to have a dense form (its size does not fit a u128).
pub fn dense_size(e: &qstore::StateEntry) -> String {
    match wide_dense_log2(e) {
        Some(k) => format!("2^{k} B"),
        None => human_bytes(e.dense_bytes()),
    }
}

/// log2 of the dense size of a state vector with no dense form.
fn wide_dense_log2(e: &qstore::StateEntry) -> Option<u32> {
    e.is_wide()
        .then(|| e.qubits + e.dtype.item_size().trailing_zeros())
}

/// A byte progress bar on stderr for long work (64 MiB or more), only on a terminal.
pub fn progress_bar(total: u64, label: &str) -> Option<ProgressBar> {
    if total < (64 << 20) || !std::io::stderr().is_terminal() {
        return None;
    }
    let b = ProgressBar::new(total);
    b.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    b.set_message(label.to_string());
    Some(b)
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn format_time(ms: i64) -> String {
    let [y, m, d, h, mi, se] = qstore::format::commit::utc_fields(ms);
    format!("{y:04}-{m:02}-{d:02} {h:02}:{mi:02}:{se:02} UTC")
}

/// A state entry as JSON.
pub fn entry_json(path: &str, e: &StateEntry) -> Value {
    json!({
        "path": path,
        "kind": e.kind.name(),
        "qubits": e.qubits(),
        "dtype": e.dtype.name(),
        "shape": e.shape,
        "encoding": e.encoding.name(),
        "nnz": e.nnz,
        "dense_bytes": wide_dense_log2(e).map_or_else(|| e.dense_bytes().to_string(), |k| format!("2^{k}")),
        "stream_bytes": e.stream_len,
        "norm": e.norm,
        "manifest": e.manifest.to_hex(),
        "tags": e.tags,
        "lossy": e.lossy.as_ref().map(|l| &l.mode),
        "fidelity": e.lossy.as_ref().map_or(1.0, |l| l.fidelity),
    })
}

/// `MODE, fidelity F (1 - F = X)` for a lossy state, `None` for a lossless one.
pub fn lossy_note(e: &StateEntry) -> Option<String> {
    e.lossy.as_ref().map(|l| {
        format!(
            "{}, fidelity {:.12} (1 - F = {:.3e})",
            l.mode,
            l.fidelity,
            1.0 - l.fidelity
        )
    })
}

/// The `stats` table.
pub fn print_stats(s: &RepoStats) {
    println!(
        "refs:               {} branches, {} tags",
        s.branches, s.tags
    );
    println!("commits:            {}", s.commits);
    println!("state versions:     {}", s.state_versions);
    println!("logical bytes:      {}", human_bytes(s.logical_bytes));
    println!(
        "encoded bytes:      {}  (zero chunks elided, sparse/hermitian applied)",
        human_bytes(s.encoded_bytes as u128)
    );
    println!(
        "unique chunk bytes: {}  (dedup ratio {:.2}x)",
        human_bytes(s.unique_chunk_bytes as u128),
        s.dedup_ratio
    );
    println!(
        "stored chunk bytes: {}  (compression ratio {:.2}x)",
        human_bytes(s.stored_chunk_bytes as u128),
        s.compression_ratio
    );
    println!(
        "pack bytes:         {}  in {} packs  (overall {:.2}x)",
        human_bytes(s.pack_bytes as u128),
        s.packs,
        s.overall_ratio
    );
    println!(
        "objects:            {} ({} chunks)",
        s.objects, s.chunk_objects
    );
    if let Some(f) = s.files {
        println!("files on disk:      {f}");
    }
    println!(
        "tree nodes:         {} (distinct, in all history)",
        s.tree_nodes
    );
    println!(
        "format:             version {}{}",
        s.format_version,
        if s.repository_id.is_empty() {
            " (read-only: run `qstore upgrade`)".to_string()
        } else {
            format!(", repository id {}", s.repository_id)
        }
    );
    println!(
        "chunk cache:        {} of {} used, {} hits, {} misses (this process)",
        human_bytes(s.cache.cached_bytes as u128),
        human_bytes(s.cache.capacity_bytes as u128),
        s.cache.hits,
        s.cache.misses
    );
    if s.damaged_packs > 0 {
        println!(
            "damaged packs:      {} (indexes rebuilt by scanning; run fsck)",
            s.damaged_packs
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_sizes() {
        assert_eq!(format_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_time(1_795_000_000_000), "2026-11-18 11:06:40 UTC");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(3 << 20), "3.00 MiB");
    }
}
