//! Background drain: a [`Drain`] pushes one branch of a repository (typically on fast local
//! disk) to a remote repository whenever the branch moves, on its own thread, so a job
//! checkpoints at local speed while the shared store catches up. A push that fails (the
//! remote unreachable) is retried at the next move or tick; the local repository never waits
//! for the remote, nor for opening it: [`Drain::start_to`] opens (or creates) the remote on
//! the drain's thread and keeps trying while it is unreachable. [`Drain::finish`] makes a
//! last push and says how far behind the remote is.
//! A drain killed with its process loses nothing: every commit is durable locally, and the
//! next push (a resumed run's drain) sends whatever the remote lacks.

use super::Repository;
use super::transfer::{RefSpec, TransferOptions, transfer};
use crate::error::Result;
use crate::id::ObjectId;
use crate::path::RefName;
use serde::Serialize;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

/// What a drain did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DrainReport {
    pub remote: String,
    pub branch: String,
    /// Pushes that moved the remote branch.
    pub pushes: u64,
    pub commits_sent: u64,
    pub bytes_sent: u64,
    /// The branch's head here at the end.
    pub local_head: Option<String>,
    /// The branch's head on the remote at the end.
    pub remote_head: Option<String>,
    /// Commits of the local branch the remote lacks at the end (0: caught up; None when the
    /// remote could not be asked, with the reason in `last_error`).
    pub behind: Option<u64>,
    /// The last push error, if the last push failed.
    pub last_error: Option<String>,
}

struct Shared {
    /// (wake requested, stop requested)
    flags: Mutex<(bool, bool)>,
    cv: Condvar,
}

/// A branch pushed to a remote in the background (see the module docs).
pub struct Drain {
    shared: Arc<Shared>,
    thread: Option<std::thread::JoinHandle<DrainReport>>,
}

impl Drain {
    /// Start pushing `branch` of `local` to `remote`: at once, then whenever [`Drain::wake`]
    /// is called and at least every `every`.
    pub fn start(local: &Repository, remote: Repository, branch: &str, every: Duration) -> Drain {
        let address = remote.address().to_string();
        Self::spawn(local, Target::Open(remote), address, branch, every)
    }

    /// Like [`Drain::start`] with the remote named by `address` (a remote's name or an
    /// address), opened by the drain itself, and created like `local` when missing. A
    /// remote unreachable at first (a job starting while the shared store is down) is tried
    /// again at every move and tick; the job does not wait for it.
    pub fn start_to(
        local: &Repository,
        address: &str,
        branch: &str,
        every: Duration,
    ) -> Result<Drain> {
        let address = local.remote_address(address)?;
        Ok(Self::spawn(
            local,
            Target::Address(address.clone()),
            address,
            branch,
            every,
        ))
    }

    fn spawn(
        local: &Repository,
        target: Target,
        address: String,
        branch: &str,
        every: Duration,
    ) -> Drain {
        let shared = Arc::new(Shared {
            flags: Mutex::new((true, false)),
            cv: Condvar::new(),
        });
        let (sh, local, branch) = (shared.clone(), local.clone(), branch.to_string());
        let thread = std::thread::Builder::new()
            .name("qstore-drain".into())
            .spawn(move || drain_loop(&local, target, &address, &branch, &sh, every))
            .ok();
        Drain { shared, thread }
    }

    /// Push soon (the branch moved).
    pub fn wake(&self) {
        let mut f = self.shared.flags.lock().unwrap_or_else(|e| e.into_inner());
        f.0 = true;
        self.shared.cv.notify_all();
    }

    /// Make a last push and stop; what the drain did and how far behind the remote is.
    pub fn finish(mut self) -> DrainReport {
        self.stop()
    }

    fn stop(&mut self) -> DrainReport {
        {
            let mut f = self.shared.flags.lock().unwrap_or_else(|e| e.into_inner());
            f.1 = true;
            self.shared.cv.notify_all();
        }
        self.thread
            .take()
            .and_then(|t| t.join().ok())
            .unwrap_or_default()
    }
}

impl Drop for Drain {
    fn drop(&mut self) {
        if self.thread.is_some() {
            self.stop();
        }
    }
}

/// The remote: open, or to be opened (and created) by the drain.
enum Target {
    Open(Repository),
    Address(String),
}

impl Target {
    fn get(&mut self, local: &Repository) -> Result<&Repository> {
        if let Target::Address(a) = self {
            *self = Target::Open(local.open_or_create_like(a)?);
        }
        match self {
            Target::Open(r) => Ok(r),
            Target::Address(_) => unreachable!("opened just above"),
        }
    }
}

fn drain_loop(
    local: &Repository,
    mut target: Target,
    address: &str,
    branch: &str,
    sh: &Shared,
    every: Duration,
) -> DrainReport {
    let mut r = DrainReport {
        remote: address.to_string(),
        branch: branch.to_string(),
        ..Default::default()
    };
    let mut pushed: Option<ObjectId> = None;
    loop {
        let stopping = {
            let mut f = sh.flags.lock().unwrap_or_else(|e| e.into_inner());
            if !f.0 && !f.1 {
                f = sh
                    .cv
                    .wait_timeout(f, every)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            f.0 = false;
            f.1
        };
        let pushed_now = target
            .get(local)
            .and_then(|remote| push_once(local, remote, branch, &mut pushed, &mut r));
        if let Err(e) = pushed_now {
            r.last_error = Some(e.to_string());
        }
        if stopping {
            break;
        }
    }
    let measured = target
        .get(local)
        .and_then(|remote| measure(local, remote, branch, &mut r));
    if let Err(e) = measured {
        r.behind = None;
        r.last_error.get_or_insert_with(|| e.to_string());
    }
    r
}

/// Push `branch` if it moved since the last push.
fn push_once(
    local: &Repository,
    remote: &Repository,
    branch: &str,
    pushed: &mut Option<ObjectId>,
    r: &mut DrainReport,
) -> Result<()> {
    let name = RefName::branch(branch)?;
    let Some(head) = local.ref_store().get(&name)? else {
        return Ok(());
    };
    if *pushed == Some(head) {
        return Ok(());
    }
    let spec = RefSpec {
        src: name.clone(),
        dst: name,
    };
    let t = transfer(local, remote, &[spec], &TransferOptions::default())?;
    if t.refs
        .iter()
        .any(|u| u.change != super::RefChange::UpToDate)
    {
        r.pushes += 1;
    }
    r.commits_sent += t.commits_sent;
    r.bytes_sent += t.bytes_sent;
    r.last_error = None;
    *pushed = Some(head);
    Ok(())
}

/// Fill in the heads and how many local commits the remote lacks.
fn measure(
    local: &Repository,
    remote: &Repository,
    branch: &str,
    r: &mut DrainReport,
) -> Result<()> {
    let name = RefName::branch(branch)?;
    let lh = local.ref_store().get(&name)?;
    let rh = remote.ref_store().get(&name)?;
    r.local_head = lh.map(|h| h.to_hex());
    r.remote_head = rh.map(|h| h.to_hex());
    let Some(mut c) = lh else { return Ok(()) };
    let mut behind = 0u64;
    // First-parent history: checkpoint branches are linear.
    while Some(c) != rh {
        behind += 1;
        match local.commit(&c)?.parents.first() {
            Some(p) => c = *p,
            None => break,
        }
    }
    r.behind = Some(behind);
    Ok(())
}
