//! Making and removing the file system behind a volume: a tmpfs with `size=` (tier memory), or
//! an ext4 image file of the given size, loop-mounted (tier disk). Both give a hard limit: a
//! write past it fails with ENOSPC inside the container.

use crate::table::{Tier, VolumeSpec};
use std::path::Path;
use std::process::Command;

fn run(cmd: &mut Command) -> Result<(), String> {
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{:?} failed: {}",
            cmd.get_program(),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// True when `dir` is a mount point (listed in /proc/self/mountinfo).
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    let want = dir.to_string_lossy();
    info.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .any(|m| m == want)
}

/// Create and mount the file system of a volume at `dir`; `image` is the disk tier's file.
pub fn provision(spec: &VolumeSpec, dir: &Path, image: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    if is_mounted(dir) {
        return Ok(());
    }
    match spec.tier {
        Tier::Memory => run(Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={},mode=0777", spec.size))
            .arg("tmpfs")
            .arg(dir)),
        Tier::Disk => {
            if !image.exists() {
                let f = std::fs::File::create(image)
                    .map_err(|e| format!("{}: {e}", image.display()))?;
                f.set_len(spec.size)
                    .map_err(|e| format!("{}: {e}", image.display()))?;
                run(Command::new("mkfs.ext4")
                    .args(["-q", "-F", "-m", "0", "-E", "root_owner=0:0"])
                    .arg(image))?;
            }
            run(Command::new("mount")
                .args(["-o", "loop"])
                .arg(image)
                .arg(dir))?;
            // Anyone in the container may write, as with Docker's own volumes.
            std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777))
                .map_err(|e| format!("{}: {e}", dir.display()))
        }
    }
}

/// Unmount a volume's file system (if mounted) and delete its image.
pub fn unprovision(dir: &Path, image: &Path) -> Result<(), String> {
    if is_mounted(dir) {
        run(Command::new("umount").arg(dir))?;
    }
    if image.exists() {
        std::fs::remove_file(image).map_err(|e| format!("{}: {e}", image.display()))?;
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    Ok(())
}
