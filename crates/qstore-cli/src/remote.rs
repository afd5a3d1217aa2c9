//! `qstore clone`, `push`, `pull` and `remote`: arguments, progress and output. The copying
//! itself is the engine's `transfer`.

use crate::output::{Out, human_bytes, progress_bar};
use anyhow::Result;
use indicatif::ProgressBar;
use qstore::Repository;
use qstore::repo::{RefChange, TransferOptions, TransferProgress, TransferReport};
use std::sync::OnceLock;

/// Run `f` with transfer options that draw a progress bar on a terminal.
fn with_progress<T>(force: bool, f: impl FnOnce(&TransferOptions<'_>) -> T) -> T {
    let bar: OnceLock<Option<ProgressBar>> = OnceLock::new();
    let cb = |p: &TransferProgress| {
        if let Some(b) = bar.get_or_init(|| progress_bar(p.bytes_total, "sending")) {
            b.set_position(p.bytes_done);
        }
    };
    let r = f(&TransferOptions {
        force,
        progress: Some(&cb),
    });
    if let Some(Some(b)) = bar.get() {
        b.finish_and_clear();
    }
    r
}

/// The text of a transfer report.
fn describe(r: &TransferReport) -> String {
    let mut s = String::new();
    for u in &r.refs {
        let short = |h: &str| h[..12.min(h.len())].to_string();
        let how = match u.change {
            RefChange::UpToDate => "up to date".to_string(),
            RefChange::Created => format!("new {} at {}", u.kind, short(&u.new)),
            RefChange::FastForward => format!(
                "{}..{} (fast-forward)",
                short(u.old.as_deref().unwrap_or("")),
                short(&u.new)
            ),
            RefChange::Forced => format!(
                "{}...{} (forced)",
                short(u.old.as_deref().unwrap_or("")),
                short(&u.new)
            ),
        };
        s += &format!("  {} {}: {how}\n", u.kind, u.name);
    }
    s += &format!(
        "{} -> {}: {} objects sent ({} chunks, {} commits, {}) in {} packs; {} already there",
        r.source,
        r.destination,
        r.objects_sent,
        r.chunks_sent,
        r.commits_sent,
        human_bytes(r.bytes_sent as u128),
        r.packs_written,
        r.objects_present
    );
    s
}

pub fn clone(src: &str, dst: &str, out: &Out) -> Result<()> {
    let source = Repository::open(src)?;
    let (_, r) = with_progress(false, |o| source.clone_to(dst, o))?;
    out.emit(serde_json::to_value(&r)?, || {
        format!(
            "cloned {src} into {dst} (remote origin = {src})\n{}",
            describe(&r)
        )
    });
    Ok(())
}

/// Which way `qstore push` / `qstore pull` moves history.
#[derive(Clone, Copy)]
pub enum Direction {
    Push,
    Pull,
}

/// `qstore push` or `qstore pull`: REMOTE defaults to `origin`, REFS to every branch and tag.
pub fn exchange(
    repo: &Repository,
    direction: Direction,
    remote: Option<String>,
    refs: &[String],
    force: bool,
    out: &Out,
) -> Result<()> {
    let remote = remote.unwrap_or_else(|| qstore::repo::remotes::ORIGIN.into());
    let r = with_progress(force, |o| match direction {
        Direction::Push => repo.push(&remote, refs, o),
        Direction::Pull => repo.pull(&remote, refs, o),
    })?;
    out.emit(serde_json::to_value(&r)?, || describe(&r));
    Ok(())
}
