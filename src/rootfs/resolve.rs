//! Path work inside a container's root, always from a directory fd.
//!
//! Lookups use `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`, so a
//! symlink planted in the rootfs (even `../../..` or an absolute link) is
//! resolved as if the rootfs were `/` and can never reach the host. Missing
//! components are created one at a time from the fd of their parent, and the
//! new component is reopened with `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH`,
//! so a symlink swapped in between create and open is refused, not followed
//! (CVE-2021-30465, CVE-2024-45310).

use std::ffi::{CString, OsStr};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path};

use crate::sys::{
    self, RESOLVE_BENEATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS, RESOLVE_NO_SYMLINKS,
};

const IN_ROOT: u64 = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
const BENEATH_NOFOLLOW: u64 = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

/// Converts a path inside the container to the relative form openat2
/// takes (`/dev/pts` → `dev/pts`, `/` → `.`).
pub fn relative(path: &Path) -> CString {
    let mut out = Vec::new();
    for c in path.components() {
        if let Component::Normal(n) = c {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(n.as_bytes());
        } else if let Component::ParentDir = c {
            if !out.is_empty() {
                out.push(b'/');
            }
            out.extend_from_slice(b"..");
        }
    }
    if out.is_empty() {
        out.push(b'.');
    }
    CString::new(out).unwrap_or_else(|_| CString::from(c"."))
}

/// Opens `path` (relative to `root`, `..` and symlinks confined to it).
pub fn open_in_root(root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    sys::openat2(root, &relative(path), flags, 0, IN_ROOT)
}

/// Like `open_in_root`, but the final path must contain no symlink at all.
pub fn open_in_root_nofollow(root: BorrowedFd<'_>, path: &Path, flags: i32) -> io::Result<OwnedFd> {
    sys::openat2(
        root,
        &relative(path),
        flags,
        0,
        IN_ROOT | RESOLVE_NO_SYMLINKS,
    )
}

/// What to create at a missing mount target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

/// Returns an `O_PATH` fd for `path` inside `root`, creating it (and any
/// missing parent directories) if it does not exist.
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &Path, kind: Kind) -> io::Result<OwnedFd> {
    match open_in_root(root, path, libc::O_PATH) {
        Ok(fd) => return Ok(fd),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {}
        Err(e) => return Err(e),
    }
    let (parent, name) = match (path.parent(), path.file_name()) {
        (Some(p), Some(n)) => (p, n),
        _ => return open_in_root(root, path, libc::O_PATH),
    };
    let dir = mkdir_all(root, parent)?;
    create_at(dir.as_fd(), name, kind)
}

/// Creates every missing directory of `path` inside `root`; returns an fd of
/// the last one.
pub fn mkdir_all(root: BorrowedFd<'_>, path: &Path) -> io::Result<OwnedFd> {
    mkdir_all_depth(root, path, 0)
}

/// `mkdir_all`, following dangling symlinks met on the way inside the root
/// (as runc does: `/var/run -> /run` with no `/run` creates `/run`), never
/// outside it: their targets are resolved again from the root fd.
fn mkdir_all_depth(root: BorrowedFd<'_>, path: &Path, depth: u32) -> io::Result<OwnedFd> {
    if depth > 40 {
        return Err(io::Error::from_raw_os_error(libc::ELOOP));
    }
    // Find the deepest existing prefix, resolved inside the root.
    // Lexically normalised; `..` never climbs above the root.
    let mut comps: Vec<&OsStr> = Vec::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => comps.push(n),
            Component::ParentDir => {
                comps.pop();
            }
            _ => {}
        }
    }
    let mut existing = comps.len();
    let mut dir = loop {
        let prefix: std::path::PathBuf = comps[..existing].iter().collect();
        match open_in_root(root, &prefix, libc::O_PATH | libc::O_DIRECTORY) {
            Ok(fd) => break fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) && existing > 0 => existing -= 1,
            Err(e) => return Err(e),
        }
    };
    for (i, name) in comps.iter().enumerate().skip(existing) {
        match create_at(dir.as_fd(), name, Kind::Dir) {
            Ok(d) => dir = d,
            Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
                // A dangling symlink: create its target (inside the root)
                // and carry on from there.
                let cname = CString::new(name.as_bytes())
                    .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
                let target = nix::fcntl::readlinkat(dir.as_fd(), cname.as_c_str())
                    .map_err(io::Error::from)?;
                let target = std::path::PathBuf::from(target);
                let base: std::path::PathBuf = if target.is_absolute() {
                    target
                } else {
                    comps[..i]
                        .iter()
                        .collect::<std::path::PathBuf>()
                        .join(target)
                };
                let rest: std::path::PathBuf = comps[i + 1..].iter().collect();
                return mkdir_all_depth(root, &base.join(rest), depth + 1);
            }
            Err(e) => return Err(e),
        }
    }
    Ok(dir)
}

/// Creates one entry in `dir` (tolerating a racing creator) and reopens it
/// without following symlinks.
fn create_at(dir: BorrowedFd<'_>, name: &OsStr, kind: Kind) -> io::Result<OwnedFd> {
    let cname =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    match kind {
        Kind::Dir => {
            // SAFETY: NUL-terminated name relative to a directory fd we hold.
            let r = unsafe { libc::mkdirat(dir.as_raw_fd(), cname.as_ptr(), 0o755) };
            if r != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EEXIST) {
                    return Err(e);
                }
            }
            sys::openat2(
                dir,
                &cname,
                libc::O_PATH | libc::O_DIRECTORY,
                0,
                BENEATH_NOFOLLOW,
            )
        }
        Kind::File => {
            let fd = sys::openat2(
                dir,
                &cname,
                libc::O_CREAT | libc::O_WRONLY | libc::O_NOFOLLOW,
                0o644,
                BENEATH_NOFOLLOW,
            );
            match fd {
                Ok(fd) => Ok(fd),
                // Exists but is not writable as a regular file (a device,
                // a directory...): just get a handle on it, still no symlinks.
                Err(_) => sys::openat2(dir, &cname, libc::O_PATH, 0, BENEATH_NOFOLLOW),
            }
        }
    }
}

/// `fstat` of an fd.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<libc::stat> {
    // SAFETY: an all-zero stat is a valid out-parameter.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st)
}

/// True when the fd is a directory.
pub fn is_dir(fd: BorrowedFd<'_>) -> io::Result<bool> {
    Ok(fstat(fd)?.st_mode & libc::S_IFMT == libc::S_IFDIR)
}

/// A C string for an OS string (paths from the spec cannot contain NUL
/// because JSON strings decoded by serde may; those are rejected here).
pub fn cstring(s: impl AsRef<OsStr>) -> io::Result<CString> {
    CString::new(s.as_ref().as_bytes()).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_strips_root_and_keeps_dotdot_for_openat2() {
        assert_eq!(relative(Path::new("/dev/pts")).as_bytes(), b"dev/pts");
        assert_eq!(relative(Path::new("/")).as_bytes(), b".");
        assert_eq!(relative(Path::new("/a/../b")).as_bytes(), b"a/../b");
    }
}
