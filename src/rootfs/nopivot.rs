//! `--no-pivot`: the rootfs is moved onto `/` and the process chroots into
//! it, so the host's mounts stay in the container's mount namespace under
//! the moved root. Unreachable by path, they still count for the kernel:
//! a procfs or sysfs with nothing masked anywhere in the namespace lets a
//! process that makes a user namespace of its own mount a fresh, unmasked
//! one (`mount_too_revealing`), and write `/proc/sysrq-trigger`. pivot_root
//! detaches the old root; here every mount of the host is detached instead
//! (runc detaches the host's procfs and sysfs mounts).
//!
//! The parent reads its own mount table, which the child's new mount
//! namespace copies, and plans by path; the child resolves each path from
//! an fd of the old root with no symlinks and detaches what is mounted
//! there. In a user namespace the host's mounts are locked to their parent
//! and cannot be detached: then every full procfs and sysfs is covered by
//! an empty read-only tmpfs (as runc does), which hides it from
//! `mount_too_revealing` in any namespace made inside the container.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::resolve;
use crate::sys::{self, mount_api as mapi};

const RESOLVE_NO_XDEV: u64 = 0x01;

/// The host's mounts, as paths relative to `/`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct HostMounts {
    /// The mounts directly on the root mount (detaching one detaches
    /// everything mounted below it).
    pub top: Vec<PathBuf>,
    /// Every full procfs and sysfs mount (the root of the file system):
    /// covered when the mounts cannot be detached.
    pub pseudo: Vec<PathBuf>,
}

impl HostMounts {
    /// Parent side: this process's mount table.
    pub fn read() -> Result<HostMounts> {
        let info = std::fs::read_to_string("/proc/self/mountinfo")
            .context("--no-pivot: cannot read /proc/self/mountinfo")?;
        let root = std::fs::File::open("/").context("--no-pivot: cannot open /")?;
        let root_id = mount_id(root.as_fd()).context("--no-pivot: mount id of /")?;
        Ok(Self::parse(&info, root_id))
    }

    fn parse(mountinfo: &str, root_id: u64) -> HostMounts {
        let mut hm = HostMounts::default();
        for line in mountinfo.lines() {
            let f: Vec<&str> = line.split(' ').collect();
            let Some(sep) = f.iter().position(|x| *x == "-") else {
                continue;
            };
            if f.len() < 5 || f.len() < sep + 2 {
                continue;
            }
            let (Ok(id), Ok(parent)) = (f[0].parse::<u64>(), f[1].parse::<u64>()) else {
                continue;
            };
            let rel = PathBuf::from(crate::sys::unescape_mountinfo(f[4]).trim_start_matches('/'));
            if rel.as_os_str().is_empty() {
                // On `/` itself: the root mount, or stacked on it; what
                // the rootfs is moved onto.
                continue;
            }
            if parent == root_id && id != root_id {
                hm.top.push(rel.clone());
            }
            if f[3] == "/" && matches!(f[sep + 1], "proc" | "sysfs") {
                hm.pseudo.push(rel);
            }
        }
        hm
    }
}

/// The id of the mount `fd` is on (`statx` `STATX_MNT_ID`).
fn mount_id(fd: BorrowedFd<'_>) -> std::io::Result<u64> {
    // SAFETY: an all-zero statx is a valid out-parameter.
    let mut stx: libc::statx = unsafe { std::mem::zeroed() };
    // SAFETY: an empty NUL-terminated path with AT_EMPTY_PATH on a valid fd.
    let r = unsafe {
        libc::statx(
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH,
            libc::STATX_MNT_ID,
            &mut stx,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if stx.stx_mask & libc::STATX_MNT_ID == 0 {
        return Err(std::io::Error::from_raw_os_error(libc::ENOSYS));
    }
    Ok(stx.stx_mnt_id)
}

enum Detached {
    /// Nothing (more) is mounted there.
    Done,
    /// The path crosses a mount made over it later: try after that one.
    Hidden,
    /// The mount is locked to its parent (a user namespace).
    Locked,
}

/// Child side, after the rootfs was moved onto `/`: detaches every host
/// mount below `old_root` (an fd of the old root taken before the move),
/// or covers the host's procfs and sysfs mounts where that is not allowed.
/// Changes the working directory.
pub fn detach(old_root: BorrowedFd<'_>, hm: &HostMounts, label: Option<&str>) -> Result<()> {
    let old_id = mount_id(old_root).context("--no-pivot: mount id of the old root")?;
    let mut locked = false;
    let mut pending: Vec<&Path> = hm.top.iter().map(PathBuf::as_path).collect();
    while !pending.is_empty() {
        let mut hidden = Vec::new();
        for rel in &pending {
            match detach_at(old_root, old_id, rel).with_context(|| {
                format!("--no-pivot: cannot detach the host's /{}", rel.display())
            })? {
                Detached::Done => {}
                Detached::Hidden => hidden.push(*rel),
                Detached::Locked => locked = true,
            }
        }
        if hidden.len() == pending.len() {
            // No progress: what is left is out of reach; cover below.
            locked |= !hidden.is_empty();
            break;
        }
        pending = hidden;
    }
    if locked {
        for rel in &hm.pseudo {
            cover(old_root, rel, label).with_context(|| {
                format!("--no-pivot: cannot cover the host's /{}", rel.display())
            })?;
        }
    }
    Ok(())
}

/// Detaches whatever is mounted at `rel` under `old_root`, stacked mounts
/// included.
fn detach_at(old_root: BorrowedFd<'_>, old_id: u64, rel: &Path) -> std::io::Result<Detached> {
    let (Some(parent), Some(name)) = (rel.parent(), rel.file_name()) else {
        return Ok(Detached::Done);
    };
    // The parent directory, on the old root's own mount.
    let dir = match sys::openat2(
        old_root,
        &resolve::relative(parent),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_BENEATH
            | sys::RESOLVE_NO_SYMLINKS
            | sys::RESOLVE_NO_MAGICLINKS
            | RESOLVE_NO_XDEV,
    ) {
        Ok(d) => d,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Detached::Done),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => return Ok(Detached::Hidden),
        Err(e) => return Err(e),
    };
    let cname = resolve::cstring(name)?;
    nix::unistd::fchdir(&dir)?;
    // Each round detaches the top-most mount at `name`.
    for _ in 0..256 {
        let at = match sys::openat2(
            dir.as_fd(),
            &cname,
            libc::O_PATH | libc::O_NOFOLLOW,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
        ) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(Detached::Done),
            Err(e) => return Err(e),
        };
        if mount_id(at.as_fd())? == old_id {
            return Ok(Detached::Done);
        }
        // SAFETY: a NUL-terminated name relative to our working directory
        // (`dir`); UMOUNT_NOFOLLOW so a symlink swapped in is not followed.
        let r = unsafe { libc::umount2(cname.as_ptr(), libc::MNT_DETACH | libc::UMOUNT_NOFOLLOW) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINVAL | libc::EPERM) => Ok(Detached::Locked),
                _ => Err(e),
            };
        }
    }
    Err(std::io::Error::other("too many mounts stacked there"))
}

/// Covers a full procfs or sysfs at `rel` with an empty read-only tmpfs.
fn cover(old_root: BorrowedFd<'_>, rel: &Path, label: Option<&str>) -> Result<()> {
    let target = match sys::openat2(
        old_root,
        &resolve::relative(rel),
        libc::O_PATH | libc::O_DIRECTORY,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
    ) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    use nix::sys::statfs::{fstatfs, PROC_SUPER_MAGIC, SYSFS_MAGIC};
    let fstype = fstatfs(&target)?.filesystem_type();
    if fstype != PROC_SUPER_MAGIC && fstype != SYSFS_MAGIC {
        // Detached or already covered.
        return Ok(());
    }
    let opts = super::own_tmpfs_options(
        vec![("size".into(), Some("4k".into()))],
        mapi::MOUNT_ATTR_RDONLY
            | mapi::MOUNT_ATTR_NOSUID
            | mapi::MOUNT_ATTR_NODEV
            | mapi::MOUNT_ATTR_NOEXEC,
        label,
    );
    let tmpfs = super::new_fs(c"tmpfs", c"tmpfs", &opts)?;
    mapi::move_mount_fd(tmpfs.as_fd(), target.as_fd())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const INFO: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
28 27 0:25 / /mnt/with\\040space ro - tmpfs t ro
40 22 0:21 /sys/fs/binfmt_misc /proc/sys/fs/binfmt_misc rw - proc proc rw
41 27 0:50 / /var/lib/x/proc rw - proc proc rw
";

    #[test]
    fn plans_the_root_mounts_children_and_every_full_pseudo_fs() {
        let hm = HostMounts::parse(INFO, 27);
        let p = |v: &[&str]| v.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(
            hm.top,
            p(&["proc", "sys", "dev", "mnt/with space", "var/lib/x/proc"])
        );
        assert_eq!(hm.pseudo, p(&["proc", "sys", "var/lib/x/proc"]));
    }
}
