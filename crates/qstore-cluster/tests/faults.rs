//! Fault injection that the real services cannot produce on demand: the reply of a
//! successful ref swap is lost (the swap happened in etcd, the writer sees a transport
//! error), and a writer's lease lapses while gc runs elsewhere. A lost reply is one commit,
//! reported as success, with no duplicate; a lapsed writer's commit is refused.

mod common;

use qstore::coord::{Coordination, Lock, LockMode};
use qstore::refs::{CasOutcome, RefStore};
use qstore::{ArrayInfo, CommitOptions, DType, Error, ObjectId, PutOptions, RefName, Repository};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// Real etcd coordination with injected faults: the next `drop_replies` successful swaps lose
/// their reply, and with `lapse_leases` every lock is given up as soon as it is taken (the
/// holder behaves as a writer paused past its lease, which the real service only does after a
/// pause the test cannot schedule precisely).
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn Coordination>,
    drop_replies: AtomicU32,
    swaps: AtomicU32,
    lapse_leases: bool,
}

struct Lapsed;
impl qstore::coord::LockGuard for Lapsed {}

impl Faulty {
    fn new(inner: Arc<dyn Coordination>, drop_replies: u32, lapse_leases: bool) -> Arc<Self> {
        Arc::new(Faulty {
            inner,
            drop_replies: AtomicU32::new(drop_replies),
            swaps: AtomicU32::new(0),
            lapse_leases,
        })
    }
}

impl Coordination for Faulty {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn refs(&self) -> &dyn RefStore {
        self.inner.refs()
    }
    fn lock(&self, name: &str, mode: LockMode) -> qstore::Result<Lock> {
        let held = self.inner.lock(name, mode)?;
        if self.lapse_leases {
            drop(held); // the lease lapses right away
            return Ok(Box::new(Lapsed));
        }
        Ok(held)
    }
    fn try_lock(&self, name: &str, mode: LockMode) -> qstore::Result<Option<Lock>> {
        self.inner.try_lock(name, mode)
    }
    fn generation(&self) -> qstore::Result<u64> {
        self.inner.generation()
    }
    fn bump_generation(&self) -> qstore::Result<u64> {
        self.inner.bump_generation()
    }
    fn document(&self, name: &str) -> qstore::Result<Option<Vec<u8>>> {
        self.inner.document(name)
    }
    fn put_document(&self, name: &str, body: &[u8]) -> qstore::Result<()> {
        self.inner.put_document(name, body)
    }
    fn compare_and_swap_at(
        &self,
        name: &RefName,
        expected: Option<ObjectId>,
        new: Option<ObjectId>,
        generation: u64,
    ) -> qstore::Result<CasOutcome> {
        let r = self
            .inner
            .compare_and_swap_at(name, expected, new, generation)?;
        self.swaps.fetch_add(1, Ordering::Relaxed);
        if r == CasOutcome::Swapped
            && self
                .drop_replies
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                .is_ok()
        {
            return Err(Error::Unavailable {
                service: "etcd (fault injector)".into(),
                reason: "connection reset before the reply".into(),
            });
        }
        Ok(r)
    }
    fn bind(&self, id: &str, create: bool) -> qstore::Result<()> {
        self.inner.bind(id, create)
    }
}

#[test]
fn a_lost_swap_reply_is_one_commit_reported_as_success() {
    let Some(c) = common::cluster() else { return };
    qstore_cluster::register();
    let address = c.repo("lost-reply");
    Repository::init(&address, Default::default()).unwrap();
    let b = qstore_cluster::S3Connector;
    let backends = qstore::backend::Connector::connect(&b, &address, false).unwrap();
    let faulty = Faulty::new(backends.coordination.unwrap(), 1, false);
    let repo = Repository::open_parts(&address, backends.storage, faulty.clone()).unwrap();
    let before = repo.log("main", 100).unwrap().len();
    let psi: Vec<f64> = vec![0.6, 0.0, 0.0, 0.8];
    let mut tx = repo.transaction("main").unwrap();
    tx.put(
        "psi",
        &ArrayInfo {
            dtype: DType::Complex128,
            shape: vec![2],
        },
        bytemuck::cast_slice(&psi),
        &PutOptions::default(),
    )
    .unwrap();
    let id = tx
        .commit(CommitOptions::default())
        .expect("reported as success");
    assert_eq!(
        faulty.swaps.load(Ordering::Relaxed),
        2,
        "the swap was sent again"
    );
    assert_eq!(
        faulty.drop_replies.load(Ordering::Relaxed),
        0,
        "the fault fired"
    );
    assert_eq!(repo.branch_head("main").unwrap(), id);
    let log = repo.log("main", 100).unwrap();
    assert_eq!(log.len(), before + 1, "one commit, no duplicate");
    assert_eq!(log[0].0, id);
    let fresh = Repository::open(&address).unwrap();
    assert_eq!(
        fresh.reader("main", "psi").unwrap().read_all().unwrap(),
        bytemuck::cast_slice::<f64, u8>(&psi)
    );
}

#[test]
fn a_writer_paused_past_its_lease_cannot_commit_what_gc_deleted() {
    let Some(c) = common::cluster() else { return };
    qstore_cluster::register();
    let address = c.repo("lapsed");
    Repository::init(&address, Default::default()).unwrap();
    let b = qstore_cluster::S3Connector;
    let backends = qstore::backend::Connector::connect(&b, &address, false).unwrap();
    let paused = Repository::open_parts(
        &address,
        backends.storage,
        Faulty::new(backends.coordination.unwrap(), 0, true),
    )
    .unwrap();
    let head = paused.branch_head("main").unwrap();
    let psi: Vec<f64> = (0..1 << 12).map(|i| i as f64).collect();
    let mut tx = paused.transaction("main").unwrap();
    tx.put(
        "orphan",
        &ArrayInfo {
            dtype: DType::Complex128,
            shape: vec![1 << 11],
        },
        bytemuck::cast_slice(&psi),
        &PutOptions::default(),
    )
    .unwrap();
    // While it is "paused", gc runs on another node with no grace: it finds no shared holder,
    // and the state's chunks are referenced by nothing.
    let gc_node = Repository::open(&address).unwrap();
    gc_node
        .gc(&qstore::GcOptions {
            grace: std::time::Duration::ZERO,
            ..Default::default()
        })
        .unwrap();
    // The writer wakes up: its commit is refused, the branch has not moved.
    let e = tx.commit(CommitOptions::default()).unwrap_err();
    assert!(matches!(e, Error::LeaseLost { .. }), "{e}");
    assert!(e.to_string().contains("nothing was committed"), "{e}");
    assert_eq!(gc_node.branch_head("main").unwrap(), head);
    assert!(gc_node.fsck(true).unwrap().problems.is_empty());
}
