//! The new mount API (Linux 5.2+, `mount_setattr` 5.12+): mounts are made
//! detached, configured while nobody can see them, then attached onto a
//! target held as an fd. No path string is resolved at attach time.

use std::ffi::CStr;
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};

use super::{check, owned_fd};

pub const OPEN_TREE_CLONE: u32 = 1;
pub const OPEN_TREE_CLOEXEC: u32 = libc::O_CLOEXEC as u32;
pub const AT_RECURSIVE: u32 = 0x8000;
pub const AT_EMPTY_PATH: u32 = libc::AT_EMPTY_PATH as u32;

pub const MOVE_MOUNT_F_EMPTY_PATH: u32 = 0x04;
pub const MOVE_MOUNT_T_EMPTY_PATH: u32 = 0x40;

pub const FSOPEN_CLOEXEC: u32 = 1;
pub const FSMOUNT_CLOEXEC: u32 = 1;

pub const FSCONFIG_SET_FLAG: u32 = 0;
pub const FSCONFIG_SET_STRING: u32 = 1;
pub const FSCONFIG_CMD_CREATE: u32 = 6;

pub const MOUNT_ATTR_RDONLY: u64 = 0x01;
pub const MOUNT_ATTR_NOSUID: u64 = 0x02;
pub const MOUNT_ATTR_NODEV: u64 = 0x04;
pub const MOUNT_ATTR_NOEXEC: u64 = 0x08;
pub const MOUNT_ATTR__ATIME: u64 = 0x70;
pub const MOUNT_ATTR_RELATIME: u64 = 0x00;
pub const MOUNT_ATTR_NOATIME: u64 = 0x10;
pub const MOUNT_ATTR_STRICTATIME: u64 = 0x20;
pub const MOUNT_ATTR_NODIRATIME: u64 = 0x80;
pub const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;
pub const MOUNT_ATTR_NOSYMFOLLOW: u64 = 0x0020_0000;

/// `struct mount_attr`.
#[repr(C)]
#[derive(Default, Debug, Clone, Copy, PartialEq, Eq)]
pub struct MountAttr {
    pub attr_set: u64,
    pub attr_clr: u64,
    pub propagation: u64,
    pub userns_fd: u64,
}

/// `open_tree(2)`: with `OPEN_TREE_CLONE` a detached copy of a mount (tree).
pub fn open_tree(dir: BorrowedFd<'_>, path: &CStr, flags: u32) -> io::Result<OwnedFd> {
    // SAFETY: `path` is NUL-terminated; flags are plain integers.
    owned_fd(unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            dir.as_raw_fd(),
            path.as_ptr(),
            flags | OPEN_TREE_CLOEXEC,
        )
    })
}

/// `move_mount(2)` from a detached mount fd onto a target directory or file fd.
pub fn move_mount_fd(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: empty NUL-terminated paths with the *_EMPTY_PATH flags.
    check(unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            from.as_raw_fd(),
            c"".as_ptr(),
            to.as_raw_fd(),
            c"".as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH | MOVE_MOUNT_T_EMPTY_PATH,
        )
    })?;
    Ok(())
}

/// `fsopen(2)`: a new file system context of the given type.
pub fn fsopen(fstype: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: NUL-terminated fs type name.
    owned_fd(unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) })
}

/// `fsconfig(FSCONFIG_SET_STRING)` or `FSCONFIG_SET_FLAG` when `value` is None.
pub fn fsconfig_set(fs: BorrowedFd<'_>, key: &CStr, value: Option<&CStr>) -> io::Result<()> {
    let (cmd, val) = match value {
        Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
        None => (FSCONFIG_SET_FLAG, std::ptr::null()),
    };
    // SAFETY: NUL-terminated key and value (or null for a flag).
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            cmd,
            key.as_ptr(),
            val,
            0,
        )
    })?;
    Ok(())
}

/// `fsconfig(FSCONFIG_CMD_CREATE)`: creates the superblock.
pub fn fsconfig_create(fs: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: no pointers are passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_fsconfig,
            fs.as_raw_fd(),
            FSCONFIG_CMD_CREATE,
            std::ptr::null::<u8>(),
            std::ptr::null::<u8>(),
            0,
        )
    })?;
    Ok(())
}

/// `fsmount(2)`: a detached mount of the created superblock.
pub fn fsmount(fs: BorrowedFd<'_>, attr_flags: u64) -> io::Result<OwnedFd> {
    // SAFETY: plain integer arguments.
    owned_fd(unsafe {
        libc::syscall(
            libc::SYS_fsmount,
            fs.as_raw_fd(),
            FSMOUNT_CLOEXEC,
            attr_flags as libc::c_uint,
        )
    })
}

/// `mount_setattr(2)` on the mount an fd refers to (`AT_EMPTY_PATH`).
pub fn mount_setattr(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> io::Result<()> {
    let flags = AT_EMPTY_PATH | if recursive { AT_RECURSIVE } else { 0 };
    // SAFETY: `attr` is a valid mount_attr of the size passed.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })?;
    Ok(())
}

/// Reads the error log of a file system context (what `fsconfig` rejected
/// and why), for error messages. Returns an empty string when there is none.
pub fn fs_context_log(fs: BorrowedFd<'_>) -> String {
    let mut out = String::new();
    let mut buf = [0u8; 512];
    for _ in 0..8 {
        match nix::unistd::read(fs, &mut buf) {
            Ok(n) if n > 0 => {
                if !out.is_empty() {
                    out.push_str("; ");
                }
                let line = String::from_utf8_lossy(&buf[..n]);
                // Lines look like "e proc: Unknown parameter 'x'".
                out.push_str(line.trim_start_matches(['e', 'w', 'i', ' ']).trim());
            }
            _ => break,
        }
    }
    out
}
