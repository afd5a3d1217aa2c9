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
