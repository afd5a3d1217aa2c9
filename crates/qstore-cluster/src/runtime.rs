//! The one tokio runtime the cluster backends run their network I/O on, and [`block_on`],
//! which runs a future there and waits for it from any thread (the engine's traits are
//! synchronous; a caller may itself be a thread of another runtime, where tokio's own
//! `block_on` would panic).

use qstore::Error;
use std::future::Future;
use std::sync::OnceLock;

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .thread_name("qstore-net")
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("cannot start the network runtime: {e}"))
    })
}

/// The runtime's handle (to enter its context).
pub fn handle() -> &'static tokio::runtime::Handle {
    runtime().handle()
}

/// Run `f` on the network runtime and wait for its output.
pub fn block_on<F>(f: F) -> qstore::Result<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime().spawn(async move {
        let _ = tx.send(f.await);
    });
    rx.recv().map_err(|_| Error::Unavailable {
        service: "network runtime".into(),
        reason: "a request task ended without an answer".into(),
    })
}
