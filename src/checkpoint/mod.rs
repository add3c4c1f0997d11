//! `checkpoint` and `restore`: a container saved by CRIU and brought back,
//! as runc does it (same flags, same image directory contents, same state
//! transitions), for Podman's `container checkpoint/restore`, containerd's
//! `ctr task checkpoint`, Docker's `checkpoint` and Kubernetes' forensic
//! checkpoints.
//!
//! This module plans what CRIU is told; `crate::criu` speaks to it.
//! CRIU dumps and restores what is inside the container (processes,
//! memory, tmpfs contents, the container's own namespaces and mounts);
//! what comes from outside is named to it as *external*, by a key that the
//! dump records and the restore maps back to a host object:
//!
//! - bind mounts (`mounts[]` with `bind`), the container's cgroup view,
//!   the `/dev/null` binds of masked files and, in a user namespace, the
//!   host devices bound into `/dev`: keyed by their mount point in the
//!   container, restored from the (possibly new) bundle's sources;
//! - namespaces joined by path: network and pid ones as `extRootNetNS` /
//!   `extRootPidNS` (runc's keys), restored into the namespace the new
//!   config names; ipc, uts and time ones joined again by path;
//! - the init's stdio pipes (`descriptors.json` in the image directory,
//!   runc's file): restored onto the pipes `restore` itself was given;
//! - a terminal: its master was outside; on restore CRIU makes a new one
//!   and rrun sends it to `--console-socket`.
//!
//! A full checkpoint stops the container and deletes it, as runc does, so
//! the same id can be restored; `--leave-running` and `--pre-dump` leave it
//! running.

pub mod restore;

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::cgroups::{CgroupPaths, Layout};
use crate::cli::{self, Global};
use crate::criu::{self, CgMode, Criu, Opts, ReqType};
use crate::rootfs::resolve;
use crate::state::{Status, Store};

/// runc's name for the file listing the init's fds 0-2 at checkpoint.
pub const DESCRIPTORS: &str = "descriptors.json";

/// `checkpoint`: CRIU dumps the container's process tree into the image
/// directory; the container is then gone (deleted, as runc does) unless
/// `--leave-running` or `--pre-dump`.
pub fn checkpoint(global: &Global, o: &cli::Checkpoint) -> Result<()> {
    if o.criu.lazy_pages || o.page_server.is_some() || o.status_fd.is_some() {
        bail!("checkpoint: --lazy-pages, --page-server and --status-fd are not supported by rrun");
    }
    let shared = shared_opts(&o.criu)?;
    if crate::sys::rootless() {
        bail!("checkpoint: CRIU needs root; rrun runs as an ordinary user here");
    }
    let store = Store::new(&global.root);
    let locked = store.open(&o.id)?;
    let c = locked.load()?;
    match c.status(&locked.dir) {
        Status::Running | Status::Paused => {}
        s => bail!("container {} cannot be checkpointed in {s} state", o.id),
    }
    if c.layers.is_some() {
        bail!(
            "container {}: its root is stacked from image layers (--layer, rrun.rootfs.layers): CRIU cannot restore an overlay root; checkpoint is not supported for it",
            o.id
        );
    }
    let criu = Criu::new(global.criu.as_deref());
    criu.require_version()?;
    let bundle = crate::spec::load_bundle(&c.bundle)
        .with_context(|| format!("container {}: its bundle", o.id))?;
    let spec = &bundle.spec;

    let Dirs {
        image_path,
        images,
        work,
        log,
    } = dirs(&o.criu, true, "dump.log")?;
    if let Some(parent) = &o.parent_path {
        if parent.is_absolute() {
            bail!(
                "--parent-path {}: must be relative to the image directory",
                parent.display()
            );
        }
        let real = image_path.join(parent);
        if !real.is_dir() {
            bail!(
                "--parent-path {}: {} is not a directory",
                parent.display(),
                real.display()
            );
        }
    }

    // The image and work directories are named by rrun's own fd numbers:
    // CRIU opens them through /proc/<the RPC peer's pid>/fd.
    let mut opts = Opts {
        images_dir_fd: images.as_raw_fd(),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        log_file: Some("dump.log".into()),
        pid: Some(c.pid),
        root: Some(c.rootfs.to_string_lossy().into_owned()),
        leave_running: o.leave_running,
        freeze_cgroup: freezer(&c.cgroups),
        ..shared
    };
    if let Some(parent) = &o.parent_path {
        opts.parent_img = Some(parent.to_string_lossy().into_owned());
        opts.track_mem = true;
    }
    let kind = if o.pre_dump {
        opts.track_mem = true;
        ReqType::PreDump
    } else {
        // Pre-dumps hold memory only; the rest is for the final dump.
        opts.external = external_namespaces(spec, c.pid)?;
        let root = container_root(c.pid)?;
        let rootfs = File::open(&c.rootfs)
            .with_context(|| format!("root.path {}: cannot open", c.rootfs.display()))?;
        let layout = Layout::detect()?;
        for m in external_mounts(
            spec,
            &bundle.dir,
            &c.rootfs,
            rootfs.as_fd(),
            &c.cgroups,
            &layout,
        )? {
            opts.ext_mnt.push((m.key.clone(), m.key));
        }
        for path in masked_files(spec, root.as_fd()) {
            opts.ext_mnt.push((path.clone(), path));
        }
        let descriptors = serde_json::to_vec(&criu::stdio_of(c.pid))?;
        crate::state::write_atomic(&image_path.join(DESCRIPTORS), &descriptors, 0o600)?;
        ReqType::Dump
    };
    let resp = criu.spawn(&[])?.run(kind, Some(&opts), |_| Ok(()))?;
    if !resp.success {
        let what = if o.pre_dump {
            "checkpoint --pre-dump"
        } else {
            "checkpoint"
        };
        bail!("{}", criu.explain(what, resp.cr_errmsg, &log));
    }
    if o.pre_dump || o.leave_running {
        return Ok(());
    }
    // CRIU has killed the tree: the container goes, as with runc, so its
    // id is free for `restore`.
    crate::commands::destroy(locked, &c)
}

/// What `checkpoint` and `restore` ask of CRIU alike, from the flags they
/// share (checked before anything is done): the log level, cgroups
/// managed in `--manage-cgroups-mode`, `--empty-ns`, an orphaned pty
/// master allowed, and the five switches.
pub(crate) fn shared_opts(o: &cli::CriuOpts) -> Result<Opts> {
    Ok(Opts {
        log_level: Some(4),
        manage_cgroups: true,
        manage_cgroups_mode: cgroups_mode(o.manage_cgroups_mode.as_deref())?,
        empty_ns: empty_ns_mask(&o.empty_ns)?,
        orphan_pts_master: true,
        tcp_established: o.tcp_established,
        ext_unix_sk: o.ext_unix_sk,
        shell_job: o.shell_job,
        file_locks: o.file_locks,
        auto_dedup: o.auto_dedup,
        ..Default::default()
    })
}

/// The image and work directories of a checkpoint or restore, opened.
pub(crate) struct Dirs {
    /// `--image-path`, absolute.
    pub image_path: PathBuf,
    pub images: File,
    /// `--work-path`, made if missing.
    pub work: Option<File>,
    /// CRIU's log: `log_name` in the work directory, else the image one.
    pub log: PathBuf,
}

/// Opens (`make_images`: makes first) the image directory and makes and
/// opens the work directory.
pub(crate) fn dirs(o: &cli::CriuOpts, make_images: bool, log_name: &str) -> Result<Dirs> {
    let image_path = image_dir(o.image_path.as_deref())?;
    let images = if make_images {
        make_dir(&image_path, "--image-path")?
    } else {
        open_dir(&image_path, "--image-path")?
    };
    let work_path = o.work_path.as_deref().map(absolute).transpose()?;
    let work = work_path
        .as_deref()
        .map(|p| make_dir(p, "--work-path"))
        .transpose()?;
    let log = work_path.as_deref().unwrap_or(&image_path).join(log_name);
    Ok(Dirs {
        image_path,
        images,
        work,
        log,
    })
}

/// `--manage-cgroups-mode`.
pub(crate) fn cgroups_mode(mode: Option<&str>) -> Result<Option<CgMode>> {
    Ok(match mode {
        None => None,
        Some("soft") => Some(CgMode::Soft),
        Some("full") => Some(CgMode::Full),
        Some("strict") => Some(CgMode::Strict),
        Some("ignore") => Some(CgMode::Ignore),
        Some(m) => bail!("--manage-cgroups-mode {m:?}: must be soft, full, strict or ignore"),
    })
}

/// `--empty-ns`: CRIU empties only network namespaces.
pub(crate) fn empty_ns_mask(names: &[String]) -> Result<Option<u32>> {
    let mut mask = 0u32;
    for n in names {
        match n.as_str() {
            "network" | "net" => mask |= libc::CLONE_NEWNET as u32,
            _ => bail!("--empty-ns {n:?}: CRIU can only leave a network namespace empty"),
        }
    }
    Ok((mask != 0).then_some(mask))
}

/// `--image-path`, absolute; runc's default is `./checkpoint`.
pub(crate) fn image_dir(p: Option<&Path>) -> Result<PathBuf> {
    absolute(p.unwrap_or(Path::new("checkpoint")))
}

pub(crate) fn absolute(p: &Path) -> Result<PathBuf> {
    Ok(if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .context("cannot read the current directory")?
            .join(p)
    })
}

/// Creates a directory (mode 0700, its parent must exist; an existing one
/// is reused) and opens it.
pub(crate) fn make_dir(p: &Path, flag: &str) -> Result<File> {
    match std::fs::DirBuilder::new().mode(0o700).create(p) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e).with_context(|| format!("{flag} {}: cannot create", p.display())),
    }
    open_dir(p, flag)
}

pub(crate) fn open_dir(p: &Path, flag: &str) -> Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_DIRECTORY)
        .open(p)
        .with_context(|| format!("{flag} {}: cannot open", p.display()))
}

/// The cgroup CRIU freezes the tree with (cgroup2, or the v1 freezer).
fn freezer(cg: &CgroupPaths) -> Option<String> {
    let dir = if cg.unified {
        cg.v2()
    } else {
        cg.v1("freezer").or_else(|| cg.v2())
    };
    dir.map(|d| d.to_string_lossy().into_owned())
}

/// The live container's `/`, as a directory fd.
fn container_root(pid: i32) -> Result<File> {
    open_dir(
        Path::new(&format!("/proc/{pid}/root")),
        "the container's root",
    )
}

/// runc's keys for the namespaces CRIU leaves alone and expects back.
pub(crate) fn ns_key(t: LinuxNamespaceType) -> Option<&'static str> {
    match t {
        LinuxNamespaceType::Network => Some("extRootNetNS"),
        LinuxNamespaceType::Pid => Some("extRootPidNS"),
        _ => None,
    }
}

/// `net[INODE]:extRootNetNS` for a joined network namespace, and the same
/// for a pid namespace: CRIU does not dump them.
fn external_namespaces(spec: &Spec, pid: i32) -> Result<Vec<String>> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for (t, _) in joined_namespaces(spec) {
        let Some(key) = ns_key(t) else { continue };
        let kind = if t == LinuxNamespaceType::Network {
            "net"
        } else {
            "pid"
        };
        let file = format!("/proc/{pid}/ns/{kind}");
        let ino = std::fs::metadata(&file)
            .with_context(|| format!("{file}: cannot read"))?
            .ino();
        out.push(format!("{kind}[{ino}]:{key}"));
    }
    Ok(out)
}

/// The namespaces the config joins by path.
pub(crate) fn joined_namespaces(spec: &Spec) -> Vec<(LinuxNamespaceType, PathBuf)> {
    spec.linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .filter_map(|n| n.path().clone().map(|p| (n.typ(), p)))
        .collect()
}

pub(crate) fn ns_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Time => "time",
    }
}

/// A mount whose source is outside the container.
pub(crate) struct ExtMount {
    /// Its mount point in the container (CRIU's key for it).
    pub key: String,
    /// What is bound there, on the host.
    pub source: PathBuf,
    /// Whether the source is a directory (else a file is made to mount on).
    pub dir: bool,
}

/// The container's external mounts, as the config and the cgroup layout
/// make them: binds, the cgroup view, and host devices in a user namespace.
/// Mount points are resolved inside `root` (the rootfs, by fd) so that a
/// symlink on the way names the real mount point, as the mount was made.
pub(crate) fn external_mounts(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    root: BorrowedFd<'_>,
    cg: &CgroupPaths,
    layout: &Layout,
) -> Result<Vec<ExtMount>> {
    let mut out = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let fstype = m.typ().clone().unwrap_or_default();
        let options = m.options().clone().unwrap_or_default();
        let bind = fstype == "bind" || options.iter().any(|o| o == "bind" || o == "rbind");
        let key = mount_point(root, rootfs, m.destination());
        if fstype == "cgroup" || fstype == "cgroup2" {
            let views: Vec<(&crate::cgroups::Hierarchy, &PathBuf)> =
                layout.hierarchies.iter().zip(&cg.dirs).collect();
            if cg.unified || fstype == "cgroup2" || views.iter().all(|(h, _)| h.v2) {
                if let Some(dir) = cg.v2() {
                    out.push(ExtMount {
                        key,
                        source: dir.to_path_buf(),
                        dir: true,
                    });
                }
            } else {
                for (h, dir) in views {
                    let name = h.mount.file_name().unwrap_or_default();
                    out.push(ExtMount {
                        key: format!("{}/{}", key.trim_end_matches('/'), name.to_string_lossy()),
                        source: dir.to_path_buf(),
                        dir: true,
                    });
                }
            }
            continue;
        }
        if !bind {
            continue;
        }
        let src = m.source().clone().unwrap_or_default();
        let source = if src.is_absolute() {
            src
        } else {
            bundle.join(src)
        };
        let dir = std::fs::metadata(&source)
            .with_context(|| format!("mounts[{i}].source {}: cannot read", source.display()))?
            .is_dir();
        out.push(ExtMount { key, source, dir });
    }
    let linux = spec.linux().as_ref();
    let userns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::User));
    if userns {
        // In a user namespace /dev's devices are binds of the host's.
        let mut paths: Vec<PathBuf> = [
            "/dev/null",
            "/dev/zero",
            "/dev/full",
            "/dev/random",
            "/dev/urandom",
            "/dev/tty",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        for d in linux
            .and_then(|l| l.devices().as_ref())
            .into_iter()
            .flatten()
        {
            if !paths.contains(d.path()) {
                paths.push(d.path().clone());
            }
        }
        for p in paths {
            out.push(ExtMount {
                key: p.to_string_lossy().into_owned(),
                source: p,
                dir: false,
            });
        }
    }
    Ok(out)
}

/// A mount point in the container as it is on disk: `dest` resolved inside
/// the root (symlinks on the way followed inside it), or `dest` itself when
/// it does not exist yet.
fn mount_point(root: BorrowedFd<'_>, rootfs: &Path, dest: &Path) -> String {
    let lexical = || {
        let rel = resolve::relative(dest);
        let s = rel.to_string_lossy();
        if s == "." {
            "/".to_string()
        } else {
            format!("/{s}")
        }
    };
    let Ok(fd) = resolve::open_in_root(root, dest, libc::O_PATH) else {
        return lexical();
    };
    match std::fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd())) {
        Ok(real) => match real.strip_prefix(rootfs) {
            Ok(rel) => format!("/{}", rel.to_string_lossy()),
            Err(_) => lexical(),
        },
        Err(_) => lexical(),
    }
}

/// The masked paths that are files, masked with a bind of `/dev/null` (a
/// masked directory is a tmpfs, which CRIU dumps itself), as the live
/// container shows them.
fn masked_files(spec: &Spec, root: BorrowedFd<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let paths = spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default();
    for p in paths {
        let Ok(fd) = resolve::open_in_root(root, Path::new(&p), libc::O_PATH) else {
            continue;
        };
        let Ok(st) = resolve::fstat(fd.as_fd()) else {
            continue;
        };
        if st.st_mode & libc::S_IFMT == libc::S_IFCHR && st.st_rdev == libc::makedev(1, 3) {
            out.push(p);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroups_modes_are_runcs() {
        assert_eq!(cgroups_mode(Some("soft")).unwrap(), Some(CgMode::Soft));
        assert_eq!(cgroups_mode(Some("ignore")).unwrap(), Some(CgMode::Ignore));
        assert_eq!(cgroups_mode(None).unwrap(), None);
        let e = cgroups_mode(Some("props")).unwrap_err().to_string();
        assert!(e.contains("--manage-cgroups-mode"), "{e}");
    }

    #[test]
    fn only_a_network_namespace_can_be_left_empty() {
        assert_eq!(
            empty_ns_mask(&["network".into()]).unwrap(),
            Some(libc::CLONE_NEWNET as u32)
        );
        assert_eq!(empty_ns_mask(&[]).unwrap(), None);
        assert!(empty_ns_mask(&["pid".into()]).is_err());
    }
}
