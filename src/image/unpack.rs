//! Unpacking an OCI layer tarball into a layer directory that overlayfs can
//! stack: `.wh.NAME` whiteouts become overlay whiteouts (character device
//! 0:0) and `.wh..wh..opq` marks its directory opaque
//! (`trusted.overlay.opaque=y`).
//!
//! The tarball is untrusted. Every path is created by walking from the
//! layer's directory fd with `openat2(RESOLVE_IN_ROOT)`: a `..` entry is
//! refused, and a symlink in the layer (absolute or relative) is resolved
//! as if the layer were `/`, so no later entry can write through it to the
//! host. Hard links must point inside the layer; device nodes are refused.

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::rootfs::resolve;
use crate::sys;

pub const WHITEOUT_PREFIX: &str = ".wh.";
pub const OPAQUE_MARKER: &str = ".wh..wh..opq";
pub const OPAQUE_XATTR: &CStr_ = c"trusted.overlay.opaque";
type CStr_ = std::ffi::CStr;

/// A cleaned in-layer path: relative components only; `..` is an error.
pub fn clean(path: &Path) -> Result<PathBuf> {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => bail!(
                "entry {:?} escapes the layer with '..'",
                path.display().to_string()
            ),
            Component::Prefix(_) => {
                bail!("entry {:?} is not a unix path", path.display().to_string())
            }
        }
    }
    Ok(out)
}

fn cstr(p: &Path) -> Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

/// Removes whatever is at `name` in `dir` (file, link or tree).
fn remove_at(dir: BorrowedFd<'_>, name: &CString) {
    // SAFETY: NUL-terminated name relative to a directory fd we hold.
    if unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), 0) } == 0 {
        return;
    }
    if let Ok(sub) = sys::openat2(
        dir,
        name,
        libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
    ) {
        if let Ok(mut d) = nix::dir::Dir::from_fd(sub) {
            let names: Vec<CString> = d
                .iter()
                .flatten()
                .map(|e| e.file_name().to_owned())
                .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
                .collect();
            // SAFETY: the Dir keeps its fd open for the borrow.
            let fd = unsafe { BorrowedFd::borrow_raw(d.as_raw_fd()) };
            for n in names {
                remove_at(fd, &n);
            }
        }
        // SAFETY: as above.
        unsafe { libc::unlinkat(dir.as_raw_fd(), name.as_ptr(), libc::AT_REMOVEDIR) };
    }
}

/// Parent directory fd (created as needed, inside the layer) and the name.
fn parent_of(root: BorrowedFd<'_>, rel: &Path) -> Result<(OwnedFd, CString)> {
    let name = rel.file_name().context("empty entry name")?;
    let parent = rel.parent().unwrap_or(Path::new(""));
    let dir = resolve::mkdir_all(root, parent)
        .with_context(|| format!("cannot create directory {}", parent.display()))?;
    let dir = sys::openat2(dir.as_fd(), c".", libc::O_DIRECTORY | libc::O_RDONLY, 0, 0)?;
    Ok((dir, CString::new(name.as_bytes())?))
}

fn set_owner_mode_time(
    dir: BorrowedFd<'_>,
    name: &CString,
    h: &tar::Header,
    symlink: bool,
) -> Result<()> {
    let uid = h.uid().unwrap_or(0) as u32;
    let gid = h.gid().unwrap_or(0) as u32;
    // SAFETY: NUL-terminated name relative to a directory fd we hold;
    // AT_SYMLINK_NOFOLLOW so a link is changed itself, never its target.
    unsafe {
        libc::fchownat(
            dir.as_raw_fd(),
            name.as_ptr(),
            uid,
            gid,
            libc::AT_SYMLINK_NOFOLLOW,
        );
    }
    if !symlink {
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        // SAFETY: as above (fchmodat never follows a final symlink here: it is not one).
        unsafe { libc::fchmodat(dir.as_raw_fd(), name.as_ptr(), mode, 0) };
    }
    let mtime = h.mtime().unwrap_or(0) as i64;
    let ts = [
        libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: mtime,
            tv_nsec: 0,
        },
    ];
    // SAFETY: two valid timespecs; AT_SYMLINK_NOFOLLOW.
    unsafe {
        libc::utimensat(
            dir.as_raw_fd(),
            name.as_ptr(),
            ts.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
    Ok(())
}

/// Unpacks `tarball` (plain or gzip, detected by its magic) into the empty
/// directory `dest`.
pub fn unpack(tarball: impl Read, dest: &Path) -> Result<()> {
    let mut reader = std::io::BufReader::new(tarball);
    let gz = {
        use std::io::BufRead;
        let head = reader.fill_buf()?;
        head.len() >= 2 && head[0] == 0x1f && head[1] == 0x8b
    };
    let input: Box<dyn Read> = if gz {
        Box::new(flate2::read::GzDecoder::new(reader))
    } else {
        Box::new(reader)
    };
    let mut archive = tar::Archive::new(input);
    let root: OwnedFd = std::fs::File::open(dest)
        .with_context(|| format!("{}: cannot open", dest.display()))?
        .into();
    let mut dirs: Vec<(PathBuf, tar::Header)> = Vec::new();
    for entry in archive.entries().context("not a tar archive")? {
        let mut entry = entry.context("corrupt layer archive")?;
        let raw = entry.path().context("bad entry path")?.into_owned();
        let rel = clean(&raw)?;
        if rel.as_os_str().is_empty() {
            continue;
        }
        let header = entry.header().clone();
        let fname = rel
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ctx = || format!("entry {}", rel.display());
        if fname == OPAQUE_MARKER {
            let parent = rel.parent().unwrap_or(Path::new(""));
            let dir = resolve::mkdir_all(root.as_fd(), parent).with_context(ctx)?;
            let dir = sys::openat2(dir.as_fd(), c".", libc::O_DIRECTORY | libc::O_RDONLY, 0, 0)?;
            // SAFETY: setting an xattr on a directory fd we hold.
            let r = unsafe {
                libc::fsetxattr(
                    dir.as_raw_fd(),
                    OPAQUE_XATTR.as_ptr(),
                    b"y".as_ptr().cast(),
                    1,
                    0,
                )
            };
            if r != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("{}: cannot mark opaque", parent.display()));
            }
            continue;
        }
        if let Some(hidden) = fname.strip_prefix(WHITEOUT_PREFIX) {
            let (dir, _) = parent_of(root.as_fd(), &rel).with_context(ctx)?;
            let name = CString::new(hidden)?;
            remove_at(dir.as_fd(), &name);
            // SAFETY: creating the overlay whiteout device 0:0.
            if unsafe { libc::mknodat(dir.as_raw_fd(), name.as_ptr(), libc::S_IFCHR, 0) } != 0 {
                return Err(std::io::Error::last_os_error())
                    .with_context(|| format!("{}: cannot create whiteout", rel.display()));
            }
            continue;
        }
        let (dir, name) = parent_of(root.as_fd(), &rel).with_context(ctx)?;
        match header.entry_type() {
            tar::EntryType::Directory => {
                // SAFETY: NUL-terminated name, directory fd we hold.
                if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
                    let e = std::io::Error::last_os_error();
                    if e.raw_os_error() != Some(libc::EEXIST) {
                        return Err(e).with_context(ctx);
                    }
                    // Something else is there: a directory replaces a non-directory.
                    let existing = sys::openat2(
                        dir.as_fd(),
                        &name,
                        libc::O_PATH | libc::O_NOFOLLOW,
                        0,
                        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
                    );
                    if !existing.is_ok_and(|f| resolve::is_dir(f.as_fd()).unwrap_or(false)) {
                        remove_at(dir.as_fd(), &name);
                        // SAFETY: as above.
                        if unsafe { libc::mkdirat(dir.as_raw_fd(), name.as_ptr(), 0o755) } != 0 {
                            return Err(std::io::Error::last_os_error()).with_context(ctx);
                        }
                    }
                }
                dirs.push((rel.clone(), header.clone()));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                remove_at(dir.as_fd(), &name);
                let f = sys::openat2(
                    dir.as_fd(),
                    &name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW,
                    0o600,
                    sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
                )
                .with_context(ctx)?;
                let mut file = std::fs::File::from(f);
                std::io::copy(&mut entry, &mut file).with_context(ctx)?;
                drop(file);
                set_owner_mode_time(dir.as_fd(), &name, &header, false)?;
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .context("symlink without target")?
                    .context("symlink without target")?;
                remove_at(dir.as_fd(), &name);
                let t = cstr(&target)?;
                // SAFETY: NUL-terminated strings, directory fd we hold. The
                // target is stored, never followed while unpacking.
                if unsafe { libc::symlinkat(t.as_ptr(), dir.as_raw_fd(), name.as_ptr()) } != 0 {
                    return Err(std::io::Error::last_os_error()).with_context(ctx);
                }
                set_owner_mode_time(dir.as_fd(), &name, &header, true)?;
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name()
                    .context("hard link without target")?
                    .context("hard link without target")?;
                let target_rel = clean(&target)?;
                let src = resolve::open_in_root_nofollow(root.as_fd(), &target_rel, libc::O_PATH)
                    .map_err(|_| {
                    anyhow::anyhow!(
                        "entry {}: hard link to {} outside the layer or missing",
                        rel.display(),
                        target.display()
                    )
                })?;
                remove_at(dir.as_fd(), &name);
                // SAFETY: linkat with AT_EMPTY_PATH from an O_PATH fd inside the layer.
                if unsafe {
                    libc::linkat(
                        src.as_raw_fd(),
                        c"".as_ptr(),
                        dir.as_raw_fd(),
                        name.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                } != 0
                {
                    return Err(std::io::Error::last_os_error()).with_context(ctx);
                }
            }
            tar::EntryType::Fifo => {
                remove_at(dir.as_fd(), &name);
                // SAFETY: creating a fifo by name in a directory fd we hold.
                if unsafe {
                    libc::mknodat(dir.as_raw_fd(), name.as_ptr(), libc::S_IFIFO | 0o644, 0)
                } != 0
                {
                    return Err(std::io::Error::last_os_error()).with_context(ctx);
                }
                set_owner_mode_time(dir.as_fd(), &name, &header, false)?;
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                bail!(
                    "entry {}: device nodes are not allowed in layers",
                    rel.display()
                );
            }
            // PAX and GNU extension headers are consumed by the tar reader.
            _ => {}
        }
    }
    // Directory modes and times last, so creating their contents did not
    // change them.
    // Only entries that are still directories (a later entry may have
    // replaced one with a symlink, which must never be followed).
    for (rel, header) in dirs.iter().rev() {
        if let Ok((dir, name)) = parent_of(root.as_fd(), rel) {
            let still_dir = sys::openat2(
                dir.as_fd(),
                &name,
                libc::O_PATH | libc::O_NOFOLLOW,
                0,
                sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS,
            )
            .is_ok_and(|f| resolve::is_dir(f.as_fd()).unwrap_or(false));
            if still_dir {
                set_owner_mode_time(dir.as_fd(), &name, header, false)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_is_refused_and_roots_are_stripped() {
        assert!(clean(Path::new("../etc/passwd")).is_err());
        assert!(clean(Path::new("a/../../b")).is_err());
        assert_eq!(
            clean(Path::new("/bin/sh")).unwrap(),
            PathBuf::from("bin/sh")
        );
        assert_eq!(clean(Path::new("./etc/")).unwrap(), PathBuf::from("etc"));
    }
}
