//! `rrun commit`: a container's writable layer turned into a new layer: an
//! OCI layer tarball (overlay whiteouts become `.wh.NAME` files, opaque
//! directories get `.wh..wh..opq`), a layer directory that can be stacked
//! under another container, or a new image in an OCI layout.
//!
//! The writable layer was written by the container, so it is walked by fd
//! without following any symlink: a link planted in it is stored as a link,
//! never read through.

use std::collections::HashMap;
use std::ffi::CString;
use std::io::Write;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::layout::{self, HashingWriter, Layout};
use super::unpack::{OPAQUE_MARKER, OPAQUE_XATTR, WHITEOUT_PREFIX};
use crate::cli::Global;
use crate::rootfs::resolve;
use crate::state::{Status, Store};
use crate::sys;

/// Annotations `rrun bundle` leaves in config.json so a commit can extend
/// the image the container came from.
pub const IMAGE_LAYOUT_ANNOTATION: &str = "rrun.image.layout";
pub const IMAGE_MANIFEST_ANNOTATION: &str = "rrun.image.manifest";

/// What the walk finds in the writable layer.
enum Item<'a> {
    Dir {
        path: &'a Path,
        st: &'a libc::stat,
        opaque: bool,
    },
    File {
        path: &'a Path,
        st: &'a libc::stat,
        fd: OwnedFd,
    },
    HardLink {
        path: &'a Path,
        target: &'a Path,
    },
    Symlink {
        path: &'a Path,
        st: &'a libc::stat,
        target: PathBuf,
    },
    Whiteout {
        path: &'a Path,
    },
    Fifo {
        path: &'a Path,
        st: &'a libc::stat,
    },
}

const NOFOLLOW: u64 = sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS;

fn opaque(dir: BorrowedFd<'_>) -> bool {
    let mut buf = [0u8; 4];
    // SAFETY: reading an xattr of a directory fd we hold into `buf`.
    let n = unsafe {
        libc::fgetxattr(
            dir.as_raw_fd(),
            OPAQUE_XATTR.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    n == 1 && buf[0] == b'y'
}

/// Walks `dir` (an fd of directory `rel` inside the layer), children sorted
/// by name, calling `f` for each item.
fn walk(
    dir: BorrowedFd<'_>,
    rel: &Path,
    links: &mut HashMap<(u64, u64), PathBuf>,
    f: &mut dyn FnMut(Item<'_>) -> Result<()>,
) -> Result<()> {
    let listing = sys::openat2(dir, c".", libc::O_DIRECTORY | libc::O_RDONLY, 0, 0)?;
    let mut d = nix::dir::Dir::from_fd(listing)?;
    let mut names: Vec<CString> = d
        .iter()
        .flatten()
        .map(|e| e.file_name().to_owned())
        .filter(|n| n.as_bytes() != b"." && n.as_bytes() != b"..")
        .collect();
    names.sort();
    for name in names {
        let path = rel.join(std::ffi::OsStr::from_bytes(name.as_bytes()));
        let fd = sys::openat2(dir, &name, libc::O_PATH | libc::O_NOFOLLOW, 0, NOFOLLOW)
            .with_context(|| format!("{}: cannot open", path.display()))?;
        let st = resolve::fstat(fd.as_fd())?;
        match st.st_mode & libc::S_IFMT {
            libc::S_IFDIR => {
                let sub = sys::openat2(
                    dir,
                    &name,
                    libc::O_DIRECTORY | libc::O_RDONLY | libc::O_NOFOLLOW,
                    0,
                    NOFOLLOW,
                )?;
                f(Item::Dir {
                    path: &path,
                    st: &st,
                    opaque: opaque(sub.as_fd()),
                })?;
                walk(sub.as_fd(), &path, links, f)?;
            }
            libc::S_IFREG => {
                let key = (st.st_dev, st.st_ino);
                if st.st_nlink > 1 {
                    if let Some(first) = links.get(&key) {
                        let first = first.clone();
                        f(Item::HardLink {
                            path: &path,
                            target: &first,
                        })?;
                        continue;
                    }
                    links.insert(key, path.clone());
                }
                let file =
                    sys::openat2(dir, &name, libc::O_RDONLY | libc::O_NOFOLLOW, 0, NOFOLLOW)?;
                f(Item::File {
                    path: &path,
                    st: &st,
                    fd: file,
                })?;
            }
            libc::S_IFLNK => {
                let target = nix::fcntl::readlinkat(dir, name.as_c_str())?;
                f(Item::Symlink {
                    path: &path,
                    st: &st,
                    target: PathBuf::from(target),
                })?;
            }
            libc::S_IFCHR if st.st_rdev == 0 => f(Item::Whiteout { path: &path })?,
            libc::S_IFIFO => f(Item::Fifo {
                path: &path,
                st: &st,
            })?,
            _ => crate::logging::warn(&format!(
                "commit: {} is a device node; left out of the layer",
                path.display()
            )),
        }
    }
    Ok(())
}

fn header(kind: tar::EntryType, st: &libc::stat, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(st.st_mode & 0o7777);
    h.set_uid(st.st_uid as u64);
    h.set_gid(st.st_gid as u64);
    h.set_mtime(st.st_mtime.max(0) as u64);
    h.set_size(size);
    h
}

fn empty_file_header() -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_size(0);
    h
}

/// Writes the layer at `upper` as a tar stream into `out`.
pub fn write_tar(upper: &Path, out: impl Write) -> Result<()> {
    let root: OwnedFd = std::fs::File::open(upper)
        .with_context(|| format!("{}: cannot open", upper.display()))?
        .into();
    let mut b = tar::Builder::new(out);
    let mut links = HashMap::new();
    walk(root.as_fd(), Path::new(""), &mut links, &mut |item| {
        match item {
            Item::Dir { path, st, opaque } => {
                let mut h = header(tar::EntryType::Directory, st, 0);
                b.append_data(&mut h, path, std::io::empty())?;
                if opaque {
                    b.append_data(
                        &mut empty_file_header(),
                        path.join(OPAQUE_MARKER),
                        std::io::empty(),
                    )?;
                }
            }
            Item::File { path, st, fd } => {
                let mut h = header(tar::EntryType::Regular, st, st.st_size as u64);
                b.append_data(&mut h, path, std::fs::File::from(fd))?;
            }
            Item::HardLink { path, target } => {
                let mut h = tar::Header::new_ustar();
                h.set_entry_type(tar::EntryType::Link);
                h.set_size(0);
                b.append_link(&mut h, path, target)?;
            }
            Item::Symlink { path, st, target } => {
                let mut h = header(tar::EntryType::Symlink, st, 0);
                b.append_link(&mut h, path, &target)?;
            }
            Item::Whiteout { path } => {
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let wh = path.with_file_name(format!("{WHITEOUT_PREFIX}{name}"));
                b.append_data(&mut empty_file_header(), wh, std::io::empty())?;
            }
            Item::Fifo { path, st } => {
                let mut h = header(tar::EntryType::Fifo, st, 0);
                b.append_data(&mut h, path, std::io::empty())?;
            }
        }
        Ok(())
    })?;
    b.finish()?;
    Ok(())
}

fn cname(p: &Path) -> Result<CString> {
    Ok(CString::new(
        p.file_name().context("empty name")?.as_bytes(),
    )?)
}

/// Copies the layer at `upper` into the new directory `dest`, keeping
/// overlay whiteouts and opaque markers, so it stacks as a lower layer.
pub fn copy_dir(upper: &Path, dest: &Path) -> Result<()> {
    std::fs::create_dir(dest)
        .with_context(|| format!("{}: cannot create (it must not exist)", dest.display()))?;
    let src: OwnedFd = std::fs::File::open(upper)?.into();
    let dst: OwnedFd = std::fs::File::open(dest)?.into();
    let mut links = HashMap::new();
    walk(src.as_fd(), Path::new(""), &mut links, &mut |item| {
        let path = match &item {
            Item::Dir { path, .. }
            | Item::File { path, .. }
            | Item::HardLink { path, .. }
            | Item::Symlink { path, .. }
            | Item::Whiteout { path }
            | Item::Fifo { path, .. } => path.to_path_buf(),
        };
        let parent = resolve::mkdir_all(dst.as_fd(), path.parent().unwrap_or(Path::new("")))?;
        let parent = sys::openat2(
            parent.as_fd(),
            c".",
            libc::O_DIRECTORY | libc::O_RDONLY,
            0,
            0,
        )?;
        let name = cname(&path)?;
        let p = parent.as_raw_fd();
        let set_meta = |st: &libc::stat| {
            // SAFETY: NUL-terminated name in a directory fd we hold; no symlink follow.
            unsafe {
                libc::fchownat(
                    p,
                    name.as_ptr(),
                    st.st_uid,
                    st.st_gid,
                    libc::AT_SYMLINK_NOFOLLOW,
                );
                if st.st_mode & libc::S_IFMT != libc::S_IFLNK {
                    libc::fchmodat(p, name.as_ptr(), st.st_mode & 0o7777, 0);
                }
            }
        };
        // SAFETY (all calls below): NUL-terminated names relative to a
        // directory fd we hold, creating new entries only.
        match item {
            Item::Dir { st, opaque, .. } => {
                unsafe { libc::mkdirat(p, name.as_ptr(), 0o755) };
                set_meta(st);
                if opaque {
                    let d = sys::openat2(
                        parent.as_fd(),
                        &name,
                        libc::O_DIRECTORY | libc::O_RDONLY,
                        0,
                        NOFOLLOW,
                    )?;
                    unsafe {
                        libc::fsetxattr(
                            d.as_raw_fd(),
                            OPAQUE_XATTR.as_ptr(),
                            b"y".as_ptr().cast(),
                            1,
                            0,
                        )
                    };
                }
            }
            Item::File { st, fd, .. } => {
                let out = sys::openat2(
                    parent.as_fd(),
                    &name,
                    libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY,
                    0o600,
                    NOFOLLOW,
                )?;
                std::io::copy(&mut std::fs::File::from(fd), &mut std::fs::File::from(out))?;
                set_meta(st);
            }
            Item::HardLink { target, .. } => {
                let t = resolve::open_in_root_nofollow(dst.as_fd(), target, libc::O_PATH)?;
                if unsafe {
                    libc::linkat(
                        t.as_raw_fd(),
                        c"".as_ptr(),
                        p,
                        name.as_ptr(),
                        libc::AT_EMPTY_PATH,
                    )
                } != 0
                {
                    return Err(std::io::Error::last_os_error().into());
                }
            }
            Item::Symlink { st, target, .. } => {
                let t = CString::new(target.as_os_str().as_bytes())?;
                if unsafe { libc::symlinkat(t.as_ptr(), p, name.as_ptr()) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
                set_meta(st);
            }
            Item::Whiteout { .. } => {
                if unsafe { libc::mknodat(p, name.as_ptr(), libc::S_IFCHR, 0) } != 0 {
                    return Err(std::io::Error::last_os_error().into());
                }
            }
            Item::Fifo { st, .. } => {
                unsafe { libc::mknodat(p, name.as_ptr(), libc::S_IFIFO | 0o644, 0) };
                set_meta(st);
            }
        }
        Ok(())
    })
}

/// Freezes a running container for the duration of a commit.
struct Frozen<'a>(Option<&'a crate::cgroups::CgroupPaths>);

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        if let Some(cg) = self.0 {
            let _ = crate::cgroups::set_frozen(cg, false);
        }
    }
}

/// `rrun commit [--image DIR:TAG] ID [OUTPUT]`.
pub fn commit(global: &Global, id: &str, output: Option<&Path>, image: Option<&str>) -> Result<()> {
    if output.is_none() && image.is_none() {
        bail!("commit: give an OUTPUT (a .tar, .tar.gz or new directory) or --image DIR:TAG");
    }
    let store = Store::new(&global.root);
    let locked = store.open(id)?;
    let c = locked.load()?;
    let upper = c
        .layers
        .as_ref()
        .and_then(|l| l.upper.clone())
        .with_context(|| {
            format!(
                "container {id} has no writable layer: its root is not stacked from image layers"
            )
        })?;
    let _frozen = match c.status(&locked.dir) {
        Status::Running => {
            crate::cgroups::set_frozen(&c.cgroups, true)
                .context("commit: cannot pause the container")?;
            Frozen(Some(&c.cgroups))
        }
        _ => Frozen(None),
    };
    if let Some(out) = output {
        let name = out.to_string_lossy();
        if name.ends_with(".tar.gz") || name.ends_with(".tgz") {
            let f = std::fs::File::create(out)
                .with_context(|| format!("{}: cannot create", out.display()))?;
            let gz = flate2::write::GzEncoder::new(f, flate2::Compression::fast());
            write_tar(&upper, gz).with_context(|| format!("commit to {}", out.display()))?;
        } else if name.ends_with(".tar") {
            let f = std::fs::File::create(out)
                .with_context(|| format!("{}: cannot create", out.display()))?;
            write_tar(&upper, f).with_context(|| format!("commit to {}", out.display()))?;
        } else {
            copy_dir(&upper, out).with_context(|| format!("commit to {}", out.display()))?;
        }
    }
    if let Some(image) = image {
        commit_image(&c.annotations, &upper, image)?;
    }
    Ok(())
}

/// Adds the writable layer to an OCI layout as a new image tagged `TAG`, on
/// top of the image the container's bundle came from (or alone).
fn commit_image(annotations: &HashMap<String, String>, upper: &Path, image: &str) -> Result<()> {
    let (dir, tag) = layout::split_ref(image);
    let tag = tag.context("--image: name the new tag as DIR:TAG")?;
    let lay = Layout::open(&dir)?;
    // The layer: compressed blob digest and uncompressed diff id at once.
    let tmp = dir.join(format!(".rrun-layer-{}", std::process::id()));
    let file = std::fs::File::create(&tmp)?;
    let outer = HashingWriter::new(file);
    let gz = flate2::write::GzEncoder::new(outer, flate2::Compression::fast());
    let mut inner = HashingWriter::new(gz);
    let written = write_tar(upper, &mut inner);
    let (gz, diff_id, _) = inner.finish();
    let (_, blob_digest, blob_size) = gz.finish()?.finish();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(e);
    }
    lay.adopt_blob(&tmp, &blob_digest)?;
    // The base image, when the bundle came from this layout.
    let same_layout = annotations
        .get(IMAGE_LAYOUT_ANNOTATION)
        .is_some_and(|d| std::fs::canonicalize(d).ok() == std::fs::canonicalize(&dir).ok());
    let (mut manifest, mut config) = match annotations
        .get(IMAGE_MANIFEST_ANNOTATION)
        .filter(|_| same_layout)
    {
        Some(d) => {
            let m: Value = serde_json::from_slice(&lay.read_blob(d)?)?;
            let cd = m["config"]["digest"]
                .as_str()
                .context("base manifest has no config")?
                .to_string();
            let cfg: Value = serde_json::from_slice(&lay.read_blob(&cd)?)?;
            (m, cfg)
        }
        None => (
            json!({"schemaVersion": 2, "mediaType": layout::MANIFEST, "layers": []}),
            json!({"architecture": "amd64", "os": "linux", "config": {}, "rootfs": {"type": "layers", "diff_ids": []}}),
        ),
    };
    let mut diff_ids = config["rootfs"]["diff_ids"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    diff_ids.push(json!(diff_id));
    config["rootfs"] = json!({"type": "layers", "diff_ids": diff_ids});
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    history.push(json!({"created": crate::logging::rfc3339_now(), "created_by": "rrun commit"}));
    config["history"] = Value::Array(history);
    let config_bytes = serde_json::to_vec(&config)?;
    let config_digest = lay.write_blob(&config_bytes)?;
    let mut layers = manifest["layers"].as_array().cloned().unwrap_or_default();
    layers.push(json!({"mediaType": layout::LAYER_GZIP, "digest": blob_digest, "size": blob_size}));
    manifest["layers"] = Value::Array(layers);
    manifest["config"] =
        json!({"mediaType": layout::CONFIG, "digest": config_digest, "size": config_bytes.len()});
    manifest["mediaType"] = json!(layout::MANIFEST);
    let manifest_bytes = serde_json::to_vec(&manifest)?;
    let manifest_digest = lay.write_blob(&manifest_bytes)?;
    lay.add_manifest(&manifest_digest, manifest_bytes.len(), &tag)
}
