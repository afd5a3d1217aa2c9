//! Data parallelism for the chunk pipelines, on rayon's global pool, except where there is a
//! single item: a put of one chunk (a small state, a commit of a trajectory) in a fresh
//! process then never starts the pool's threads, which would cost more than the work.

use rayon::prelude::*;

/// The number of workers the pipelines size their batches for: `RAYON_NUM_THREADS` when set,
/// else the machine's available parallelism. Does not start rayon's pool.
pub fn workers() -> usize {
    std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// `items.map(f)` in order, in parallel when there is more than one item.
pub fn map<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync + Send) -> Vec<R> {
    if items.len() <= 1 {
        items.into_iter().map(f).collect()
    } else {
        items.into_par_iter().map(f).collect()
    }
}

/// Requests to remote storage in flight at once while reading a state (a pool of this many
/// threads; `QSTORE_REMOTE_READS` overrides). Remote reads wait on the network, not the CPU,
/// so they need more workers than there are cores.
pub fn remote_reads() -> usize {
    std::env::var("QSTORE_REMOTE_READS")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or(16)
}

/// Run `f` (which uses rayon) on the pool for remote reads, or on the global pool when that
/// pool cannot be made.
pub fn on_remote_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    static POOL: std::sync::OnceLock<Option<rayon::ThreadPool>> = std::sync::OnceLock::new();
    let pool = POOL.get_or_init(|| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(remote_reads())
            .thread_name(|i| format!("qstore-remote-read-{i}"))
            .build()
            .ok()
    });
    match pool {
        Some(p) => p.install(f),
        None => f(),
    }
}
