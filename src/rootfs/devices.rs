//! `/dev` inside the container: the standard devices every container gets,
//! the devices of `linux.devices`, and the standard links (`/dev/fd`,
//! `/dev/stdin`, `/dev/ptmx`, ...).
//!
//! Devices are created with `mknodat` under a `/dev` directory fd that was
//! opened inside the root without following symlinks (crun's CVE-2019-18837:
//! a `/dev` symlink must not send device nodes to the host). In a user
//! namespace, where mknod is not allowed, the host's device is bound instead;
//! the parent clones it as a detached mount and checks its device number.

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceType, Spec};

use super::resolve::{self, Kind};
use crate::sys::mount_api as mapi;

pub struct DeviceStep {
    /// Path inside the container, e.g. `/dev/null`.
    pub path: PathBuf,
    /// `S_IFCHR`, `S_IFBLK` or `S_IFIFO` with permission bits.
    pub mode: u32,
    pub rdev: u64,
    pub uid: u32,
    pub gid: u32,
    /// In a user namespace: the host device, as a detached mount to bind.
    pub host: Option<super::HostTree>,
}

pub struct DevicePlan {
    pub devices: Vec<DeviceStep>,
    /// `process.terminal`: `/dev/console` is made with the devices, so the
    /// pty can be bound there after a read-only `/dev` became read-only.
    pub console: bool,
}

const DEFAULT_DEVICES: [(&str, u64, u64); 6] = [
    ("/dev/null", 1, 3),
    ("/dev/zero", 1, 5),
    ("/dev/full", 1, 7),
    ("/dev/random", 1, 8),
    ("/dev/urandom", 1, 9),
    ("/dev/tty", 5, 0),
];

const LINKS: [(&str, &str); 5] = [
    ("fd", "/proc/self/fd"),
    ("stdin", "/proc/self/fd/0"),
    ("stdout", "/proc/self/fd/1"),
    ("stderr", "/proc/self/fd/2"),
    ("ptmx", "pts/ptmx"),
];

/// Parent side: the device list, with host devices cloned for binding when
/// the container has a user namespace.
pub fn prepare(spec: &Spec, userns: bool, defer: bool) -> Result<DevicePlan> {
    let mut devices = Vec::new();
    let configured = spec
        .linux()
        .as_ref()
        .and_then(|l| l.devices().clone())
        .unwrap_or_default();
    for (path, major, minor) in DEFAULT_DEVICES {
        if configured.iter().any(|d| d.path() == Path::new(path)) {
            continue;
        }
        devices.push(step(
            path.into(),
            libc::S_IFCHR | 0o666,
            major,
            minor,
            0,
            0,
            userns,
            defer,
            "",
        )?);
    }
    for (i, d) in configured.iter().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => libc::S_IFCHR,
            LinuxDeviceType::B => libc::S_IFBLK,
            LinuxDeviceType::P => libc::S_IFIFO,
            LinuxDeviceType::A => bail!("{field}.type: 'a' is only valid in device cgroup rules"),
        };
        if d.major() < 0 || d.minor() < 0 {
            bail!("{field}: major and minor must not be negative");
        }
        let perm = d.file_mode().unwrap_or(0o666) & 0o7777;
        devices.push(step(
            d.path().clone(),
            kind | perm,
            d.major() as u64,
            d.minor() as u64,
            d.uid().unwrap_or(0),
            d.gid().unwrap_or(0),
            userns && kind != libc::S_IFIFO,
            defer,
            &field,
        )?);
    }
    let console = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    Ok(DevicePlan { devices, console })
}

#[allow(clippy::too_many_arguments)]
fn step(
    path: PathBuf,
    mode: u32,
    major: u64,
    minor: u64,
    uid: u32,
    gid: u32,
    bind_host: bool,
    defer: bool,
    field: &str,
) -> Result<DeviceStep> {
    let rdev = libc::makedev(major as u32, minor as u32);
    let host = if bind_host && defer {
        // Checked by the child as it clones it.
        let tree = super::HostTree::new(
            &path,
            false,
            libc::MS_PRIVATE,
            Default::default(),
            Default::default(),
            Some((mode & libc::S_IFMT, rdev)),
            true,
        )
        .with_context(|| {
            format!("{field} {}: in a user namespace devices are bound from the host, and the host has none there", path.display())
        })?;
        Some(tree)
    } else if bind_host {
        let tree = super::clone_tree(&path, false, libc::MS_PRIVATE).with_context(|| {
            format!("{field} {}: in a user namespace devices are bound from the host, and the host has none there", path.display())
        })?;
        let st = resolve::fstat(tree.as_fd())?;
        if st.st_rdev != rdev || st.st_mode & libc::S_IFMT != mode & libc::S_IFMT {
            bail!(
                "{field} {}: the host's device there is not {major}:{minor}",
                path.display()
            );
        }
        Some(super::HostTree::ready(tree))
    } else {
        None
    };
    Ok(DeviceStep {
        path,
        mode,
        rdev,
        uid,
        gid,
        host,
    })
}

impl DevicePlan {
    /// Child side: clones the host devices the parent could not.
    pub fn clone_deferred(&self) -> Result<()> {
        for d in &self.devices {
            if let Some(h) = &d.host {
                h.fd()
                    .with_context(|| format!("device {}: cannot bind", d.path.display()))?;
            }
        }
        Ok(())
    }
}

/// Whether every path the devices are made through resolves with no
/// symlink: `/dev`, the directory of each device deeper in it, and
/// `/dev/pts/ptmx` (the `ptmx` link is made only if it exists). A missing
/// one is fine: it is made as a directory. See `rootfs::late`.
pub fn resolve_plainly(root: BorrowedFd<'_>, plan: &DevicePlan) -> bool {
    let plain = |p: &Path| match resolve::open_in_root_nofollow(root, p, libc::O_PATH) {
        Ok(_) => true,
        Err(e) => e.raw_os_error() == Some(libc::ENOENT),
    };
    let deeper = plan
        .devices
        .iter()
        .filter_map(|d| d.path.parent())
        .filter(|p| *p != Path::new("/dev"));
    plain(Path::new("/dev")) && plain(Path::new("/dev/pts/ptmx")) && deeper.into_iter().all(plain)
}

/// Child side: creates the devices and links under the container's `/dev`.
pub fn setup(root: BorrowedFd<'_>, plan: &DevicePlan) -> Result<()> {
    // /dev must be a real directory inside the root, never a symlink.
    let dev = match resolve::open_in_root_nofollow(root, Path::new("/dev"), libc::O_PATH | libc::O_DIRECTORY) {
        Ok(fd) => fd,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
            resolve::mkdir_all(root, Path::new("/dev")).context("/dev: cannot create")?
        }
        Err(_) => bail!("/dev in the rootfs is a symlink or not a directory; refusing to create devices through it"),
    };
    for d in &plan.devices {
        create(root, dev.as_fd(), d).with_context(|| format!("device {}", d.path.display()))?;
    }
    if plan.console {
        // The mount target only; the pty is bound onto it later (as in
        // console::setup_pty, which finds it here).
        resolve::ensure_in_root(dev.as_fd(), Path::new("console"), Kind::File)
            .context("/dev/console: cannot create (process.terminal)")?;
    }
    for (name, target) in LINKS {
        let cname = CString::new(name).unwrap();
        let ctarget = CString::new(target).unwrap();
        if name == "ptmx"
            && resolve::open_in_root(root, Path::new("/dev/pts/ptmx"), libc::O_PATH).is_err()
        {
            continue;
        }
        // SAFETY: NUL-terminated strings, directory fd we hold.
        let r = unsafe { libc::symlinkat(ctarget.as_ptr(), dev.as_raw_fd(), cname.as_ptr()) };
        if r != 0 {
            let e = std::io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(e).with_context(|| format!("/dev/{name}: cannot create link"));
            }
        }
    }
    Ok(())
}

fn create(root: BorrowedFd<'_>, dev: BorrowedFd<'_>, d: &DeviceStep) -> Result<()> {
    // Devices directly in /dev use the verified /dev fd; deeper ones
    // (/dev/net/tun, /dev/dri/card0) walk from the root like any path.
    let (parent, name) = match (d.path.parent(), d.path.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => bail!("not a file path"),
    };
    let dir = if parent == Path::new("/dev") {
        dev.try_clone_to_owned()?
    } else {
        resolve::mkdir_all(root, parent)?
    };
    let cname = resolve::cstring(name)?;
    if let Some(host) = &d.host {
        let target = resolve::ensure_in_root(dir.as_fd(), Path::new(name), Kind::File)?;
        if already_there(target.as_fd(), d) {
            return Ok(());
        }
        mapi::move_mount_fd(host.fd()?, target.as_fd()).context("cannot bind host device")?;
        return Ok(());
    }
    // SAFETY: NUL-terminated name relative to a directory fd we hold.
    let r = unsafe { libc::mknodat(dir.as_raw_fd(), cname.as_ptr(), d.mode, d.rdev) };
    if r != 0 {
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() == Some(libc::EEXIST) {
            let fd = crate::sys::openat2(
                dir.as_fd(),
                &cname,
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                crate::sys::RESOLVE_BENEATH | crate::sys::RESOLVE_NO_SYMLINKS,
            )?;
            if already_there(fd.as_fd(), d) {
                return Ok(());
            }
            bail!(
                "exists and is not device {}:{}",
                libc::major(d.rdev),
                libc::minor(d.rdev)
            );
        }
        return Err(e).context("mknod failed");
    }
    // SAFETY: NUL-terminated name; AT_SYMLINK_NOFOLLOW so a racing symlink is not followed.
    let r = unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            cname.as_ptr(),
            d.uid,
            d.gid,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).context("chown failed");
    }
    Ok(())
}

fn already_there(fd: BorrowedFd<'_>, d: &DeviceStep) -> bool {
    resolve::fstat(fd)
        .is_ok_and(|st| st.st_rdev == d.rdev && st.st_mode & libc::S_IFMT == d.mode & libc::S_IFMT)
}
