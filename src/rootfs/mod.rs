//! The container's file system view: mounts, devices, masked and read-only
//! paths, and the switch into the new root.
//!
//! Split in two halves. `prepare` runs in the parent before the clone: it
//! parses every mount, opens every bind source on the host as a detached
//! mount (`open_tree`) with its attributes already set, and verifies the
//! host's `/dev/null` that masks paths. `setup` runs in the child: it only
//! resolves targets inside the root by fd and attaches what was prepared.

mod devices;
pub mod late;
mod nopivot;
mod options;
pub mod overlay;
pub mod resolve;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub use devices::DevicePlan;
pub use options::{propagation_flag, MountOptions};

use crate::sys::mount_api::{self as mapi, MountAttr};
use resolve::Kind;

/// What one entry of `mounts` attaches.
pub enum Source {
    /// A detached copy of a host path, attributes already applied.
    Bind { tree: HostTree, is_dir: bool },
    /// A new instance of a file system, made in the child's namespaces.
    /// `root_label`: the SELinux label for its root directory (mqueue,
    /// whose superblock an ipc namespace shares, gets `linux.mountLabel`
    /// this way instead of as a `context=` option, as with runc).
    /// `fallback`: sysfs in a user namespace without a network namespace
    /// of its own, which the kernel refuses to mount: the host's `/sys`
    /// bound instead with the mount's flags, as runc does.
    Fs {
        fstype: CString,
        source: CString,
        root_label: Option<CString>,
        fallback: Option<HostTree>,
    },
    /// The v1/hybrid cgroup view: a tmpfs holding one bind per hierarchy,
    /// and a symlink per controller of a combined hierarchy (`cpu` ->
    /// `cpu,cpuacct`), as the host and runc show them.
    CgroupV1 {
        hierarchies: Vec<(CString, HostTree)>,
        links: Vec<(CString, CString)>,
    },
}

pub struct MountStep {
    /// Index in `mounts`, for error messages.
    pub index: usize,
    pub dest: PathBuf,
    pub source: Source,
    pub opts: MountOptions,
}

/// One of the container's cgroup directories, as `/sys/fs/cgroup` shows it.
pub struct CgroupView {
    /// Name under `/sys/fs/cgroup` on a v1/hybrid host (`memory`, `unified`).
    pub name: String,
    pub dir: PathBuf,
    /// Where the hierarchy is mounted on the host.
    pub mount: PathBuf,
    pub v2: bool,
}

/// Everything the child needs to build the root file system.
pub struct RootfsPlan {
    pub rootfs: CString,
    pub mounts: Vec<MountStep>,
    pub devices: DevicePlan,
    /// `linux.maskedPaths`, in order.
    pub masked: Vec<PathBuf>,
    /// One detached, verified `/dev/null` for all of them (`None` without
    /// masked paths): attached at the first masked file, and cloned from
    /// there for the others (see [`mask`]). A detached tree that is never
    /// attached is dissolved when its fd closes (at the container's
    /// `execve`), and each such dissolve waits for an expedited RCU grace
    /// period: one tree per path, most of them unused (paths the kernel
    /// lacks, and directories, which get a tmpfs), cost the container's
    /// start several.
    pub masked_null: Option<HostTree>,
    pub readonly: Vec<PathBuf>,
    pub readonly_root: bool,
    /// Propagation requested for the container's `/`.
    pub propagation: (u64, bool),
    pub no_pivot: bool,
    /// `--no-pivot`: the host's mounts, to detach in the child.
    pub host_mounts: nopivot::HostMounts,
    /// An overlay of image layers to mount as the root, if any.
    pub layers: Option<overlay::Layers>,
    /// `linux.mountLabel` on a host with SELinux: the `context=` of the
    /// tmpfs mounts rrun makes itself (masked directories, the v1 cgroup
    /// view); already added to the config's mounts.
    pub mount_label: Option<String>,
    /// Which steps wait for a network namespace that arrives late, and
    /// which run before the wait ([`late`]); `None`: none can move.
    pub late: Option<late::Plan>,
}

impl RootfsPlan {
    /// Child side: clones every deferred bind source ([`HostTree`]), each
    /// error naming its field.
    pub fn clone_deferred(&self) -> Result<()> {
        for step in &self.mounts {
            let ctx = || format!("mounts[{}] ({})", step.index, step.dest.display());
            match &step.source {
                Source::Bind { tree, .. } => {
                    tree.fd()
                        .with_context(|| format!("{}: cannot bind", ctx()))?;
                }
                Source::CgroupV1 { hierarchies, .. } => {
                    for (_, tree) in hierarchies {
                        tree.fd()
                            .with_context(|| format!("{}: cannot bind", ctx()))?;
                    }
                }
                Source::Fs { .. } => {}
            }
        }
        if let Some(tree) = &self.masked_null {
            tree.fd().context("linux.maskedPaths: /dev/null")?;
        }
        self.devices.clone_deferred()
    }
}

/// Opens a host path as a detached mount tree (a bind source), cut off
/// from the host's mount propagation (see [`clone_at`]).
pub fn clone_tree(path: &Path, recursive: bool, propagation: u64) -> std::io::Result<OwnedFd> {
    let c = resolve::cstring(path)?;
    // SAFETY: AT_FDCWD is a valid dirfd for any process.
    let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
    clone_at(cwd, &c, recursive, propagation)
}

/// `open_tree(OPEN_TREE_CLONE)` of `path` under `dir`, then every mount of
/// the copy made `propagation` (`MS_SLAVE` or `MS_PRIVATE`). A copy of a
/// shared mount is a peer of the original (the kernel's `clone_mnt`), and
/// stays one once attached in the container: a mount made below it later,
/// by rrun (a mount, masked or read-only path under a bind) or by the
/// container, would appear on the host too. A slave still receives the
/// host's mounts, as with runc, whose binds are made in a namespace whose
/// `/` is already a slave; a private copy receives nothing.
fn clone_at(
    dir: BorrowedFd<'_>,
    path: &std::ffi::CStr,
    recursive: bool,
    propagation: u64,
) -> std::io::Result<OwnedFd> {
    let mut flags = mapi::OPEN_TREE_CLONE;
    if recursive {
        flags |= mapi::AT_RECURSIVE;
    }
    let tree = mapi::open_tree(dir, path, flags)?;
    mapi::mount_setattr(
        tree.as_fd(),
        recursive,
        &MountAttr {
            propagation,
            ..Default::default()
        },
    )?;
    Ok(tree)
}

/// How the copies of host paths that a config asks for (binds, the cgroup
/// view, the host's `/sys`) propagate, from `linux.rootfsPropagation`:
/// private when it says private or unbindable, a slave otherwise. Never a
/// peer of the host's mounts, even with `shared`/`rshared`: then a mount
/// made in the container would change the caller's mount namespace
/// (runc's `rshared` does; see SECURITY.md). rrun's own copies (the
/// `/dev/null` of masked paths, host devices) are always private.
pub fn host_copy_propagation(rootfs_propagation: u64) -> u64 {
    if rootfs_propagation == libc::MS_PRIVATE || rootfs_propagation == libc::MS_UNBINDABLE {
        libc::MS_PRIVATE
    } else {
        libc::MS_SLAVE
    }
}

/// What the caller may do on the host side, for [`prepare`].
#[derive(Clone, Copy, Debug, Default)]
pub struct HostAccess {
    /// The parent may not clone mounts (an ordinary user: `open_tree`
    /// with `OPEN_TREE_CLONE` needs CAP_SYS_ADMIN over the caller's mount
    /// namespace): the child clones every bind source (see [`HostTree`]).
    pub defer_clones: bool,
    /// The container's setup runs in a user namespace (its own, or the
    /// rootless caller's): no `mknod`, so devices are bound from the host,
    /// and no sysfs without a network namespace of its own.
    pub unprivileged: bool,
}

/// A host path as a detached mount tree (`open_tree(OPEN_TREE_CLONE)`),
/// its attributes set. The parent clones it; or, for an ordinary user
/// ([`HostAccess::defer_clones`]), the child does, as root of the
/// container's new user namespace, from its new mount namespace (a copy of
/// the caller's), at the very start of the root's setup, before anything
/// is mounted there ([`RootfsPlan::clone_deferred`]). Either way the path
/// is the config's host path (trusted) and the parent has parsed
/// everything: the child only makes the syscalls.
pub struct HostTree {
    fd: std::cell::OnceCell<OwnedFd>,
    deferred: Option<TreeSpec>,
}

struct TreeSpec {
    path: CString,
    recursive: bool,
    /// See [`clone_at`].
    propagation: u64,
    attr: MountAttr,
    rattr: MountAttr,
    /// The file type and device number it must have (`/dev/null`, devices).
    expect: Option<(u32, u64)>,
}

impl TreeSpec {
    /// `in_parent`: a cgroupfs source is reached from the parent's open
    /// `/sys/fs/cgroup` (see `cgroups::cgfs`); the child (deferred clones)
    /// walks the path in its own mount namespace.
    fn clone_now(&self, in_parent: bool) -> std::io::Result<OwnedFd> {
        let tree = if in_parent {
            use std::os::unix::ffi::OsStrExt;
            let path = Path::new(std::ffi::OsStr::from_bytes(self.path.as_bytes()));
            let (dirfd, rel) = crate::cgroups::cgfs::at(path)?;
            // SAFETY: AT_FDCWD or the fd cgfs keeps open for the process.
            let dirfd = unsafe { BorrowedFd::borrow_raw(dirfd) };
            clone_at(dirfd, &rel, self.recursive, self.propagation)?
        } else {
            // SAFETY: AT_FDCWD is a valid dirfd for any process.
            let cwd = unsafe { BorrowedFd::borrow_raw(libc::AT_FDCWD) };
            clone_at(cwd, &self.path, self.recursive, self.propagation)?
        };
        setattr_if(tree.as_fd(), false, &self.attr)?;
        setattr_if(tree.as_fd(), true, &self.rattr)?;
        if let Some((fmt, rdev)) = self.expect {
            let st = resolve::fstat(tree.as_fd())?;
            if st.st_mode & libc::S_IFMT != fmt || st.st_rdev != rdev {
                return Err(std::io::Error::other(format!(
                    "the host's {} is not device {}:{}",
                    self.path.to_string_lossy(),
                    libc::major(rdev),
                    libc::minor(rdev)
                )));
            }
        }
        Ok(tree)
    }
}

impl HostTree {
    /// Clones `path` now, or (`defer`) records how the child will.
    fn new(
        path: &Path,
        recursive: bool,
        propagation: u64,
        attr: MountAttr,
        rattr: MountAttr,
        expect: Option<(u32, u64)>,
        defer: bool,
    ) -> std::io::Result<HostTree> {
        let spec = TreeSpec {
            path: resolve::cstring(path)?,
            recursive,
            propagation,
            attr,
            rattr,
            expect,
        };
        if defer {
            // What the parent can check without the clone: it exists.
            std::fs::metadata(path)?;
            return Ok(HostTree {
                fd: std::cell::OnceCell::new(),
                deferred: Some(spec),
            });
        }
        Ok(HostTree::ready(spec.clone_now(true)?))
    }

    /// A tree the parent has already cloned and checked.
    fn ready(fd: OwnedFd) -> HostTree {
        let cell = std::cell::OnceCell::new();
        let _ = cell.set(fd);
        HostTree {
            fd: cell,
            deferred: None,
        }
    }

    /// The tree's fd, cloned now if it was deferred (child side).
    pub fn fd(&self) -> std::io::Result<BorrowedFd<'_>> {
        if let Some(fd) = self.fd.get() {
            return Ok(fd.as_fd());
        }
        let spec = self
            .deferred
            .as_ref()
            .ok_or_else(|| std::io::Error::other("mount tree missing"))?;
        let fd = spec.clone_now(false)?;
        Ok(self.fd.get_or_init(|| fd).as_fd())
    }
}

fn setattr_if(fd: BorrowedFd<'_>, recursive: bool, attr: &MountAttr) -> std::io::Result<()> {
    if attr.attr_set != 0 || attr.attr_clr != 0 {
        mapi::mount_setattr(fd, recursive, attr)?;
    }
    Ok(())
}

/// Opens `/dev/null` and checks through the fd that it really is the null
/// device 1:3 (CVE-2025-31133: a swapped-in symlink must not be bound).
fn verified_dev_null() -> Result<OwnedFd> {
    let tree = clone_tree(Path::new("/dev/null"), false, libc::MS_PRIVATE)
        .context("/dev/null: cannot open")?;
    let st = resolve::fstat(tree.as_fd())?;
    if st.st_mode & libc::S_IFMT != libc::S_IFCHR || st.st_rdev != libc::makedev(1, 3) {
        bail!("/dev/null on the host is not the null device; refusing to use it for maskedPaths");
    }
    Ok(tree)
}

/// Parent side: turns the spec's mounts, devices and paths into a plan.
pub fn prepare(
    spec: &Spec,
    bundle: &Path,
    rootfs: &Path,
    cgroup_dirs: &[CgroupView],
    no_pivot: bool,
    host: HostAccess,
) -> Result<RootfsPlan> {
    let linux = spec.linux().as_ref();
    let has_ns = |t: LinuxNamespaceType| {
        linux
            .and_then(|l| l.namespaces().as_ref())
            .is_some_and(|n| n.iter().any(|ns| ns.typ() == t))
    };
    let userns = has_ns(LinuxNamespaceType::User);
    let defer = host.defer_clones;
    let own_netns = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Network && ns.path().is_none())
        });
    let mount_label =
        crate::security::lsm::mount_label(linux.and_then(|l| l.mount_label().as_deref()))?;
    // mqueue shows the ipc namespace's one file system: relabel it only
    // when the namespace is the container's own, never the host's or one
    // joined by path.
    let own_ipc = linux
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Ipc && ns.path().is_none())
        });
    let propagation = match linux.and_then(|l| l.rootfs_propagation().as_deref()) {
        Some(p) => {
            propagation_flag(p).with_context(|| format!("linux.rootfsPropagation {p}: unknown"))?
        }
        None => (libc::MS_SLAVE, true),
    };
    let copies = host_copy_propagation(propagation.0);
    let mut mounts = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        let fstype = m.typ().clone().unwrap_or_default();
        let mut opts = MountOptions::parse(m.options().as_deref().unwrap_or(&[]), &fstype)
            .with_context(|| format!("mounts[{i}] ({})", m.destination().display()))?;
        for ign in &opts.ignored {
            crate::logging::debug(&format!("mounts[{i}]: option {ign} ignored"));
        }
        let idmapped = opts.idmap || m.uid_mappings().is_some() || m.gid_mappings().is_some();
        if idmapped && !opts.bind {
            bail!(
                "mounts[{i}] ({}): uidMappings/gidMappings need a bind mount",
                m.destination().display()
            );
        }
        let source = if opts.bind {
            let src = m.source().clone().unwrap_or_default();
            let src = if src.is_absolute() {
                src
            } else {
                bundle.join(src)
            };
            if defer {
                if idmapped {
                    bail!(
                        "mounts[{i}] ({}): idmapped mounts need root (rrun runs as an ordinary user)",
                        m.destination().display()
                    );
                }
                let tree = HostTree::new(
                    &src,
                    opts.recursive_bind,
                    copies,
                    opts.attr,
                    opts.rattr,
                    None,
                    true,
                )
                .with_context(|| format!("mounts[{i}].source {}: cannot bind", src.display()))?;
                let is_dir = src.is_dir();
                Source::Bind { tree, is_dir }
            } else {
                let tree = clone_tree(&src, opts.recursive_bind, copies).with_context(|| {
                    format!("mounts[{i}].source {}: cannot bind", src.display())
                })?;
                setattr_if(tree.as_fd(), false, &opts.attr).with_context(|| {
                    format!("mounts[{i}] ({}): options", m.destination().display())
                })?;
                setattr_if(tree.as_fd(), true, &opts.rattr).with_context(|| {
                    format!(
                        "mounts[{i}] ({}): recursive options",
                        m.destination().display()
                    )
                })?;
                if idmapped {
                    idmap(tree.as_fd(), m, linux, opts.recursive_bind).with_context(|| {
                        format!(
                            "mounts[{i}] ({}): idmapped mount",
                            m.destination().display()
                        )
                    })?;
                }
                let is_dir = resolve::is_dir(tree.as_fd())?;
                Source::Bind {
                    tree: HostTree::ready(tree),
                    is_dir,
                }
            }
        } else if fstype == "cgroup" || fstype == "cgroup2" {
            cgroup_source(
                i,
                cgroup_dirs,
                fstype == "cgroup2",
                has_ns(LinuxNamespaceType::Cgroup),
                &opts,
                defer,
                copies,
            )?
        } else {
            if fstype.is_empty() || fstype == "none" {
                bail!(
                    "mounts[{i}] ({}): no type and no bind option",
                    m.destination().display()
                );
            }
            let src = m.source().clone().unwrap_or_else(|| PathBuf::from(&fstype));
            let mut root_label = None;
            if let Some(label) = mount_label.as_ref().filter(|_| !opts.has_context()) {
                match fstype.as_str() {
                    // procfs and sysfs take no context (the kernel refuses).
                    "proc" | "sysfs" => {}
                    "mqueue" if own_ipc => root_label = Some(resolve::cstring(label)?),
                    "mqueue" => {}
                    _ => opts.data.push(("context".into(), Some(label.clone()))),
                }
            }
            let fallback = if fstype == "sysfs" && host.unprivileged && !own_netns {
                let mut rattr = opts.rattr;
                rattr.attr_set |= opts.attr.attr_set;
                let tree = HostTree::new(
                    Path::new("/sys"),
                    true,
                    copies,
                    MountAttr::default(),
                    rattr,
                    None,
                    defer,
                )
                .with_context(|| format!("mounts[{i}] (sysfs): cannot bind the host's /sys"))?;
                Some(tree)
            } else {
                None
            };
            Source::Fs {
                fstype: resolve::cstring(&fstype)?,
                source: resolve::cstring(src)?,
                root_label,
                fallback,
            }
        };
        mounts.push(MountStep {
            index: i,
            dest: m.destination().clone(),
            source,
            opts,
        });
    }
    let paths = |list: Option<&Vec<String>>| -> Vec<PathBuf> {
        list.into_iter().flatten().map(PathBuf::from).collect()
    };
    let masked_paths = paths(linux.and_then(|l| l.masked_paths().as_ref()));
    let masked_null = if masked_paths.is_empty() {
        None
    } else if defer {
        let null = (libc::S_IFCHR, libc::makedev(1, 3));
        let tree = HostTree::new(
            Path::new("/dev/null"),
            false,
            libc::MS_PRIVATE,
            MountAttr::default(),
            MountAttr::default(),
            Some(null),
            true,
        )
        .context("/dev/null: cannot open")?;
        Some(tree)
    } else {
        Some(HostTree::ready(verified_dev_null()?))
    };
    let infos: Vec<late::MountInfo<'_>> = mounts
        .iter()
        .map(|m| {
            let needs_net = needs_network_namespace(m);
            let sysfs =
                matches!(&m.source, Source::Fs { fstype, .. } if fstype.as_bytes() == b"sysfs");
            late::MountInfo {
                dest: &m.dest,
                needs_net,
                sysfs,
                kernel_content: match &m.source {
                    Source::Bind { .. } => false,
                    Source::CgroupV1 { .. } => true,
                    Source::Fs { .. } => sysfs || !needs_net,
                },
            }
        })
        .collect();
    let readonly = paths(linux.and_then(|l| l.readonly_paths().as_ref()));
    let late = late::plan(
        &infos,
        &masked_paths
            .iter()
            .map(PathBuf::as_path)
            .collect::<Vec<_>>(),
        &readonly.iter().map(PathBuf::as_path).collect::<Vec<_>>(),
    );
    drop(infos);
    Ok(RootfsPlan {
        rootfs: resolve::cstring(rootfs)?,
        mounts,
        devices: devices::prepare(spec, userns || host.unprivileged, defer)?,
        masked: masked_paths,
        masked_null,
        readonly,
        readonly_root: spec
            .root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
        propagation,
        no_pivot,
        host_mounts: if no_pivot {
            nopivot::HostMounts::read()?
        } else {
            nopivot::HostMounts::default()
        },
        layers: None,
        mount_label,
        late,
    })
}

/// Makes a detached bind tree idmapped. The mount's mappings are written
/// verbatim into a fresh user namespace, as runc does: a file owned by
/// `containerID` on disk appears owned by `hostID`. Without mappings on the
/// mount (`idmap` option alone) the container's own mappings are used.
fn idmap(
    tree: BorrowedFd<'_>,
    m: &oci_spec::runtime::Mount,
    linux: Option<&oci_spec::runtime::Linux>,
    recursive: bool,
) -> Result<()> {
    let fmt = |maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        maps.into_iter()
            .flatten()
            .map(|x| format!("{} {} {}\n", x.container_id(), x.host_id(), x.size()))
            .collect()
    };
    let uid = m
        .uid_mappings()
        .as_ref()
        .or_else(|| linux.and_then(|l| l.uid_mappings().as_ref()));
    let gid = m
        .gid_mappings()
        .as_ref()
        .or_else(|| linux.and_then(|l| l.gid_mappings().as_ref()));
    let (uid, gid) = (fmt(uid), fmt(gid));
    if uid.is_empty() || gid.is_empty() {
        bail!("needs both uidMappings and gidMappings");
    }
    let userns =
        crate::sys::userns_with_maps(&uid, &gid).context("cannot create its user namespace")?;
    mapi::mount_setattr(
        tree,
        recursive,
        &MountAttr {
            attr_set: mapi::MOUNT_ATTR_IDMAP,
            userns_fd: userns.as_raw_fd() as u64,
            ..Default::default()
        },
    )
    .context("the kernel or file system refused it")?;
    Ok(())
}

/// The cgroup file system view: the container's own cgroup directories,
/// bound read-only unless asked otherwise (CVE-2023-25809: never the host's
/// whole hierarchy writable).
fn cgroup_source(
    i: usize,
    views: &[CgroupView],
    v2_only: bool,
    cgroupns: bool,
    opts: &MountOptions,
    defer: bool,
    propagation: u64,
) -> Result<Source> {
    // Read-only unless the spec explicitly asks for "rw" (CVE-2023-25809).
    let mut attr = opts.attr;
    if attr.attr_clr & mapi::MOUNT_ATTR_RDONLY == 0 {
        attr.attr_set |= mapi::MOUNT_ATTR_RDONLY;
    }
    let bind = |p: &Path| -> Result<HostTree> {
        HostTree::new(
            p,
            false,
            propagation,
            attr,
            MountAttr::default(),
            None,
            defer,
        )
        .with_context(|| format!("mounts[{i}]: cgroup {}: cannot bind", p.display()))
    };
    if views.is_empty() {
        // No cgroups (rootless, the tree not writable): an empty,
        // read-only tmpfs rather than anything of the host's.
        return Ok(Source::CgroupV1 {
            hierarchies: Vec::new(),
            links: Vec::new(),
        });
    }
    let all_v2 = !views.is_empty() && views.iter().all(|v| v.v2);
    if v2_only || all_v2 {
        // cgroup2 (or a pure v2 host): the container's v2 directory is the
        // whole view.
        let v = views
            .iter()
            .find(|v| v.v2)
            .with_context(|| format!("mounts[{i}]: cgroup2: the host has no cgroup2 hierarchy"))?;
        // The view is the container's own cgroup, with or without a cgroup
        // namespace: never the host's tree (CVE-2023-25809). (runc shows the
        // whole hierarchy read-only when there is no cgroup namespace.)
        let _ = cgroupns;
        let src = &v.dir;
        return Ok(Source::Bind {
            tree: bind(src)?,
            is_dir: true,
        });
    }
    let mut hierarchies = Vec::new();
    for v in views {
        hierarchies.push((resolve::cstring(&v.name)?, bind(&v.dir)?));
    }
    Ok(Source::CgroupV1 {
        hierarchies,
        links: combined_links(views)?,
    })
}

/// `controller -> hierarchy` links for the hierarchies mounted under a
/// combined name (`net_cls -> net_cls,net_prio`), unless a hierarchy has
/// that name itself.
fn combined_links(views: &[CgroupView]) -> Result<Vec<(CString, CString)>> {
    let mut links = Vec::new();
    for v in views.iter().filter(|v| !v.v2 && v.name.contains(',')) {
        for part in v.name.split(',').filter(|p| !p.is_empty()) {
            let taken = views.iter().any(|o| o.name == part)
                || links
                    .iter()
                    .any(|(n, _): &(CString, CString)| n.as_bytes() == part.as_bytes());
            if !taken && !part.contains('/') && part != "." && part != ".." {
                links.push((resolve::cstring(part)?, resolve::cstring(&v.name)?));
            }
        }
    }
    Ok(links)
}

/// The container's root as `setup` leaves it for `enter`: its fd, and the
/// mounts whose `ro` waits until everything under them is made.
pub struct Root {
    fd: OwnedFd,
    /// Read-only tmpfs mounts and a read-only `/dev`: made read-write so
    /// the mount targets, device nodes and `/dev/console` below them can be
    /// created, and read-only at the end of `enter`, as runc does.
    readonly_later: Vec<ReadonlyLater>,
}

struct ReadonlyLater {
    index: usize,
    dest: PathBuf,
    mount: OwnedFd,
}

impl AsFd for Root {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a mount's `ro` waits for the end of the setup (runc: every
/// tmpfs, and whatever is mounted at `/dev`).
fn readonly_waits(step: &MountStep) -> bool {
    use std::path::Component;
    let is_dev = step
        .dest
        .components()
        .filter(|c| !matches!(c, Component::RootDir | Component::CurDir))
        .eq([Component::Normal("dev".as_ref())]);
    let tmpfs = matches!(&step.source, Source::Fs { fstype, .. } if fstype.as_bytes() == b"tmpfs");
    step.opts.attr.attr_set & mapi::MOUNT_ATTR_RDONLY != 0
        && (tmpfs || (is_dev && matches!(step.source, Source::Fs { .. })))
}

fn io_ctx<'a>(what: &str, path: &'a Path) -> impl Fn(std::io::Error) -> anyhow::Error + 'a {
    let what = what.to_string();
    move |e| anyhow::anyhow!("{what} {}: {e}", path.display())
}

/// Whether a mount's result depends on the network namespace it is made
/// in. Only the file systems known not to are exempt: sysfs shows the
/// mounter's namespace, a network file system connects from it.
fn needs_network_namespace(step: &MountStep) -> bool {
    match &step.source {
        Source::Bind { .. } | Source::CgroupV1 { .. } => false,
        Source::Fs { fstype, .. } => !matches!(
            fstype.to_bytes(),
            b"proc" | b"tmpfs" | b"devpts" | b"mqueue" | b"cgroup" | b"cgroup2"
        ),
    }
}

/// Child side, before pivot_root: builds the whole tree under the rootfs.
/// Returns the new root for `enter`. `join_network` is called before the
/// first mount that depends on the network namespace, and at the end (a
/// namespace that arrives late is joined there: see `launch::netns`); it
/// must be idempotent. With `net_late` (the namespace comes from the
/// parent), the steps that need not wait for it run first ([`late`]).
pub fn setup(
    plan: &RootfsPlan,
    net_late: bool,
    join_network: &mut dyn FnMut() -> Result<()>,
) -> Result<Root> {
    // 1. Nothing we mount may propagate back to the host.
    let (flag, _) = plan.propagation;
    let pre = if flag == libc::MS_SLAVE {
        libc::MS_SLAVE
    } else {
        libc::MS_PRIVATE
    };
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::from_bits_retain(pre | libc::MS_REC),
        None::<&str>,
    )
    .context("cannot make / private in the container's mount namespace")?;
    // Bind sources the parent could not clone (an ordinary user's), now,
    // before anything is mounted.
    plan.clone_deferred()?;
    // 2. The rootfs becomes a mount point of its own (pivot_root needs one):
    //    the overlay of image layers, or the rootfs bound onto itself.
    let rootfs = plan.rootfs.as_c_str();
    if let Some(layers) = &plan.layers {
        overlay::mount(layers, rootfs)?;
    } else {
        nix::mount::mount(
            Some(rootfs),
            rootfs,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("root.path {}: cannot bind", rootfs.to_string_lossy()))?;
    }
    let root = nix::fcntl::open(
        rootfs,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("rootfs: cannot open")?;
    crate::timing::mark("child: rootfs bound");
    // 3. The mounts of config.json, in order; 4. devices and the standard
    //    /dev links; 5. masked and read-only paths. Steps that wait for a
    //    network namespace arriving late are kept in `waiting`.
    let mut b = Builder {
        plan,
        root,
        label: plan.mount_label.as_deref(),
        readonly_later: Vec::new(),
        empty_dir: None,
        null_attached: false,
    };
    let mut late = plan.late.as_ref().filter(|_| net_late);
    let mut waiting: Vec<Step> = Vec::new();
    let steps = (0..plan.mounts.len())
        .map(Step::Mount)
        .chain([Step::Devices])
        .chain((0..plan.masked.len()).map(Step::Mask))
        .chain((0..plan.readonly.len()).map(Step::Readonly));
    for step in steps {
        if let Some(l) = late {
            if l.waits(step) {
                // The first to wait is sysfs: its own path must resolve
                // with no symlink, or nothing moves.
                if waiting.is_empty() && b.plain(step).is_err() {
                    late = None;
                    join_network()?;
                    b.run(step, None)?;
                } else {
                    waiting.push(step);
                }
            } else if waiting.is_empty() {
                // Before sysfs: in the config's order.
                b.run(step, None)?;
            } else {
                match b.plain(step) {
                    Ok(target) => b.run(step, target)?,
                    Err(()) => {
                        // From here on, in the config's order.
                        late = None;
                        b.run_waiting(&mut waiting, join_network)?;
                        b.run(step, None)?;
                    }
                }
            }
        } else {
            if matches!(step, Step::Mount(i) if needs_network_namespace(&plan.mounts[i])) {
                join_network()?;
            }
            b.run(step, None)?;
        }
        b.mark_after(step);
    }
    b.run_waiting(&mut waiting, join_network)?;
    join_network()?;
    Ok(Root {
        fd: b.root,
        readonly_later: b.readonly_later,
    })
}

/// One step of the setup after the rootfs is bound, in the config's
/// order: a mount (index in `RootfsPlan::mounts`), the devices, a masked
/// or a read-only path (index in its list).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Mount(usize),
    Devices,
    Mask(usize),
    Readonly(usize),
}

/// The state of the setup's steps (see [`setup`]).
struct Builder<'a> {
    plan: &'a RootfsPlan,
    root: OwnedFd,
    label: Option<&'a str>,
    readonly_later: Vec<ReadonlyLater>,
    /// See [`mask`].
    empty_dir: Option<OwnedFd>,
    null_attached: bool,
}

impl Builder<'_> {
    /// Whether `step` can run before a step that waits ([`late`]): every
    /// path it resolves has no symlink (a missing component is made as a
    /// directory). `Ok` carries a masked or read-only path's target, so
    /// it is not looked up twice (`None` inside: it does not exist).
    fn plain(&self, step: Step) -> std::result::Result<Option<Option<OwnedFd>>, ()> {
        let root = self.root.as_fd();
        let target = |path: &Path| match resolve::open_in_root_nofollow(root, path, libc::O_PATH) {
            Ok(fd) => Ok(Some(fd)),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
            Err(_) => Err(()),
        };
        match step {
            Step::Mount(i) => target(&self.plan.mounts[i].dest).map(|_| None),
            Step::Devices => devices::resolve_plainly(root, &self.plan.devices)
                .then_some(None)
                .ok_or(()),
            Step::Mask(i) => target(&self.plan.masked[i]).map(Some),
            Step::Readonly(i) => target(&self.plan.readonly[i]).map(Some),
        }
    }

    /// Runs one step; `target`: a masked or read-only path already
    /// resolved by [`Builder::plain`].
    fn run(&mut self, step: Step, target: Option<Option<OwnedFd>>) -> Result<()> {
        let root = self.root.as_fd();
        let target_of = |path: &Path| -> Result<Option<OwnedFd>> {
            match target {
                Some(t) => Ok(t),
                None => match resolve::open_in_root(root, path, libc::O_PATH) {
                    Ok(fd) => Ok(Some(fd)),
                    Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(None),
                    Err(e) => Err(e.into()),
                },
            }
        };
        match step {
            Step::Mount(i) => {
                let step = &self.plan.mounts[i];
                let later = readonly_waits(step);
                let mount = mount_one(root, step, self.label, later)
                    .with_context(|| format!("mounts[{}] ({})", step.index, step.dest.display()))?;
                if later {
                    self.readonly_later.push(ReadonlyLater {
                        index: step.index,
                        dest: step.dest.clone(),
                        mount,
                    });
                }
            }
            Step::Devices => devices::setup(root, &self.plan.devices)?,
            Step::Mask(i) => {
                let path = &self.plan.masked[i];
                let ctx = || format!("linux.maskedPaths {}", path.display());
                let Some(target) = target_of(path).with_context(ctx)? else {
                    return Ok(());
                };
                let devnull = self
                    .plan
                    .masked_null
                    .as_ref()
                    .ok_or_else(|| anyhow::anyhow!("/dev/null missing"))
                    .and_then(|t| Ok(t.fd()?))
                    .with_context(ctx)?;
                mask(
                    target.as_fd(),
                    devnull,
                    &mut self.null_attached,
                    &mut self.empty_dir,
                    self.label,
                )
                .with_context(ctx)?;
            }
            Step::Readonly(i) => {
                let path = &self.plan.readonly[i];
                let ctx = || format!("linux.readonlyPaths {}", path.display());
                if let Some(target) = target_of(path).with_context(ctx)? {
                    make_readonly(target.as_fd()).with_context(ctx)?;
                }
            }
        }
        Ok(())
    }

    /// Joins the network namespace and runs the steps that waited for it,
    /// in the config's order.
    fn run_waiting(
        &mut self,
        waiting: &mut Vec<Step>,
        join_network: &mut dyn FnMut() -> Result<()>,
    ) -> Result<()> {
        if waiting.is_empty() {
            return Ok(());
        }
        join_network()?;
        for step in std::mem::take(waiting) {
            self.run(step, None)?;
        }
        crate::timing::mark("child: what waited for the network namespace");
        Ok(())
    }

    /// The timing marks at the end of each kind of step (every one, even
    /// for a kind the config has none of).
    fn mark_after(&self, step: Step) {
        let p = self.plan;
        let paths = "child: masked and read-only paths";
        let marks: &[&str] = match step {
            Step::Mount(i) if i + 1 == p.mounts.len() => &["child: mounts"],
            Step::Devices => match (
                p.mounts.is_empty(),
                p.masked.is_empty() && p.readonly.is_empty(),
            ) {
                (false, false) => &["child: devices"],
                (true, false) => &["child: mounts", "child: devices"],
                (false, true) => &["child: devices", paths],
                (true, true) => &["child: mounts", "child: devices", paths],
            },
            Step::Mask(i) if i + 1 == p.masked.len() && p.readonly.is_empty() => &[paths],
            Step::Readonly(i) if i + 1 == p.readonly.len() => &[paths],
            _ => &[],
        };
        for m in marks {
            crate::timing::mark(m);
        }
    }
}

/// The options of a tmpfs rrun makes itself, with `linux.mountLabel`.
fn own_tmpfs_options(
    data: Vec<(String, Option<String>)>,
    attr_set: u64,
    label: Option<&str>,
) -> MountOptions {
    let mut data = data;
    if let Some(l) = label {
        data.push(("context".into(), Some(l.to_string())));
    }
    MountOptions {
        data,
        attr: MountAttr {
            attr_set,
            ..Default::default()
        },
        ..Default::default()
    }
}

/// Labels the root directory of a detached mount (SELinux `security.selinux`).
fn label_root(mnt: BorrowedFd<'_>, label: &std::ffi::CStr) -> Result<()> {
    let dir = crate::sys::openat2(
        mnt,
        c".",
        libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        0,
        crate::sys::RESOLVE_BENEATH | crate::sys::RESOLVE_NO_SYMLINKS,
    )?;
    let value = label.to_bytes();
    // SAFETY: a valid fd, a NUL-terminated name and a buffer of `len` bytes.
    let r = unsafe {
        libc::fsetxattr(
            dir.as_raw_fd(),
            c"security.selinux".as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| {
            format!(
                "linux.mountLabel {:?}: cannot label the mount's root",
                label.to_string_lossy()
            )
        });
    }
    Ok(())
}

/// Attaches one mount; returns its mount fd. With `rw_for_now`, a new file
/// system is made without its `ro` (the caller applies it later).
fn mount_one(
    root: BorrowedFd<'_>,
    step: &MountStep,
    label: Option<&str>,
    rw_for_now: bool,
) -> Result<OwnedFd> {
    let kind = match &step.source {
        Source::Bind { is_dir: false, .. } => Kind::File,
        _ => Kind::Dir,
    };
    let target = resolve::ensure_in_root(root, &step.dest, kind)
        .map_err(io_ctx("cannot create mount target", &step.dest))?;
    if let Source::Bind { is_dir, .. } = &step.source {
        if *is_dir != resolve::is_dir(target.as_fd())? {
            bail!(
                "cannot bind a {} onto a {}: not a directory",
                if *is_dir { "directory" } else { "file" },
                if *is_dir { "file" } else { "directory" }
            );
        }
    }
    let fstype = match &step.source {
        Source::Fs { fstype, .. } => fstype.to_str().unwrap_or(""),
        _ => "",
    };
    if matches!(fstype, "proc" | "sysfs") {
        // CVE-2023-27561: procfs and sysfs only on a real directory.
        resolve::open_in_root_nofollow(root, &step.dest, libc::O_PATH | libc::O_DIRECTORY)
            .map_err(|_| {
                anyhow::anyhow!(
                    "destination is a symlink or not a directory; refusing to mount {fstype} there"
                )
            })?;
    }
    let attached: OwnedFd = match &step.source {
        Source::Bind { tree, .. } => {
            let tree = tree.fd()?;
            mapi::move_mount_fd(tree, target.as_fd()).context("cannot attach bind mount")?;
            tree.try_clone_to_owned()?
        }
        Source::Fs {
            fstype,
            source,
            root_label,
            fallback,
        } => {
            let made = if rw_for_now {
                let mut opts = step.opts.clone();
                opts.attr.attr_set &= !mapi::MOUNT_ATTR_RDONLY;
                new_fs(fstype, source, &opts)
            } else {
                new_fs(fstype, source, &step.opts)
            };
            let m = match (made, fallback) {
                (Ok(m), _) => m,
                (Err(_), Some(host)) => {
                    let tree = host.fd().context("cannot bind the host's /sys")?;
                    mapi::move_mount_fd(tree, target.as_fd())
                        .context("cannot attach the host's /sys")?;
                    return Ok(tree.try_clone_to_owned()?);
                }
                (Err(e), None) => return Err(e),
            };
            if let Some(l) = root_label {
                label_root(m.as_fd(), l)?;
            }
            mapi::move_mount_fd(m.as_fd(), target.as_fd()).context("cannot attach")?;
            m
        }
        Source::CgroupV1 { hierarchies, links } => {
            let tmpfs = new_fs(
                c"tmpfs",
                c"cgroup",
                &own_tmpfs_options(vec![("mode".into(), Some("755".into()))], 0, label),
            )?;
            mapi::move_mount_fd(tmpfs.as_fd(), target.as_fd()).context("cannot attach tmpfs")?;
            for (name, tree) in hierarchies {
                let dir =
                    resolve::ensure_in_root(tmpfs.as_fd(), Path::new(name.to_str()?), Kind::Dir)?;
                mapi::move_mount_fd(tree.fd()?, dir.as_fd())
                    .with_context(|| format!("cannot attach cgroup {}", name.to_string_lossy()))?;
            }
            for (name, target) in links {
                // SAFETY: NUL-terminated strings; the tmpfs mount fd is ours.
                let r =
                    unsafe { libc::symlinkat(target.as_ptr(), tmpfs.as_raw_fd(), name.as_ptr()) };
                if r != 0 {
                    return Err(std::io::Error::last_os_error())
                        .with_context(|| format!("cannot link cgroup {}", name.to_string_lossy()));
                }
            }
            let mut attr = step.opts.attr;
            if attr.attr_clr & mapi::MOUNT_ATTR_RDONLY == 0 {
                attr.attr_set |= mapi::MOUNT_ATTR_RDONLY;
            }
            setattr_if(tmpfs.as_fd(), false, &attr)?;
            tmpfs
        }
    };
    if let Some((flag, recursive)) = step.opts.propagation {
        mapi::mount_setattr(
            attached.as_fd(),
            recursive,
            &MountAttr {
                propagation: flag,
                ..Default::default()
            },
        )
        .context("cannot set propagation")?;
    }
    Ok(attached)
}

/// A new file system instance, configured and mounted detached.
fn new_fs(
    fstype: &std::ffi::CStr,
    source: &std::ffi::CStr,
    opts: &MountOptions,
) -> Result<OwnedFd> {
    let name = fstype.to_string_lossy();
    let fs = mapi::fsopen(fstype).map_err(|e| match e.raw_os_error() {
        Some(libc::ENODEV) => {
            anyhow::anyhow!("file system type {name:?} is not known to the kernel")
        }
        _ => anyhow::anyhow!("{name}: {e}"),
    })?;
    let fail = |what: String, e: std::io::Error| {
        let log = mapi::fs_context_log(fs.as_fd());
        if log.is_empty() {
            anyhow::anyhow!("{name}: {what}: {e}")
        } else {
            anyhow::anyhow!("{name}: {what}: {log}")
        }
    };
    if mapi::fsconfig_set(fs.as_fd(), c"source", Some(source)).is_err() {
        // Some file systems take no source; the name is cosmetic anyway.
    }
    for f in &opts.sb_flags {
        let k = resolve::cstring(f)?;
        mapi::fsconfig_set(fs.as_fd(), &k, None).map_err(|e| fail(format!("option {f}"), e))?;
    }
    for (k, v) in &opts.data {
        let ck = resolve::cstring(k)?;
        let cv = v.as_ref().map(resolve::cstring).transpose()?;
        mapi::fsconfig_set(fs.as_fd(), &ck, cv.as_deref()).map_err(|e| {
            let opt = match v {
                Some(v) => format!("option {k}={v}"),
                None => format!("option {k}"),
            };
            fail(opt, e)
        })?;
    }
    mapi::fsconfig_create(fs.as_fd()).map_err(|e| fail("cannot create".into(), e))?;
    let m = mapi::fsmount(fs.as_fd(), opts.attr.attr_set)
        .map_err(|e| fail("cannot mount".into(), e))?;
    setattr_if(m.as_fd(), true, &opts.rattr)?;
    Ok(m)
}

/// Masks `path`: a file with `/dev/null`, a directory with an empty
/// read-only tmpfs. The first masked file gets the detached `devnull`
/// itself (`null_attached` then set), the others a clone of that mount,
/// now attached: no tree is left to dissolve (see
/// [`RootfsPlan::masked_null`]). Likewise the first masked directory gets
/// a new tmpfs (kept in `empty_dir`); the others get a bind of that same
/// empty mount, which costs no new superblock (a tenth of a millisecond
/// each under emulation).
fn mask(
    target: BorrowedFd<'_>,
    devnull: BorrowedFd<'_>,
    null_attached: &mut bool,
    empty_dir: &mut Option<OwnedFd>,
    label: Option<&str>,
) -> Result<()> {
    if resolve::is_dir(target)? {
        let m = match empty_dir {
            Some(first) => mapi::open_tree(
                first.as_fd(),
                c"",
                mapi::OPEN_TREE_CLONE | mapi::AT_EMPTY_PATH,
            )?,
            None => {
                let ro = own_tmpfs_options(Vec::new(), mapi::MOUNT_ATTR_RDONLY, label);
                new_fs(c"tmpfs", c"tmpfs", &ro)?
            }
        };
        mapi::move_mount_fd(m.as_fd(), target)?;
        if empty_dir.is_none() {
            *empty_dir = Some(m);
        }
    } else if *null_attached {
        let m = mapi::open_tree(devnull, c"", mapi::OPEN_TREE_CLONE | mapi::AT_EMPTY_PATH)?;
        mapi::move_mount_fd(m.as_fd(), target)?;
    } else {
        mapi::move_mount_fd(devnull, target)?;
        *null_attached = true;
    }
    Ok(())
}

fn make_readonly(target: BorrowedFd<'_>) -> Result<()> {
    let tree = mapi::open_tree(
        target,
        c"",
        mapi::OPEN_TREE_CLONE | mapi::AT_RECURSIVE | mapi::AT_EMPTY_PATH,
    )?;
    mapi::mount_setattr(
        tree.as_fd(),
        true,
        &MountAttr {
            attr_set: mapi::MOUNT_ATTR_RDONLY
                | mapi::MOUNT_ATTR_NOSUID
                | mapi::MOUNT_ATTR_NODEV
                | mapi::MOUNT_ATTR_NOEXEC,
            ..Default::default()
        },
    )?;
    mapi::move_mount_fd(tree.as_fd(), target)?;
    Ok(())
}

/// Child side: makes `root` the process's `/` and detaches the host's tree,
/// then makes read-only what had to wait (`Root`) and, with
/// `root.readonly`, `/` itself.
pub fn enter(plan: &RootfsPlan, root: Root) -> Result<()> {
    let Root {
        fd: root,
        readonly_later,
    } = root;
    nix::unistd::fchdir(&root).context("cannot enter rootfs")?;
    if plan.no_pivot {
        let old_root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH
                | nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context("cannot open the old root")?;
        nix::mount::mount(
            Some("."),
            "/",
            None::<&str>,
            nix::mount::MsFlags::MS_MOVE,
            None::<&str>,
        )
        .context("--no-pivot: cannot move rootfs to /")?;
        // What pivot_root's detach of the old root does: nothing of the
        // host stays in the namespace (see nopivot.rs).
        nopivot::detach(
            old_root.as_fd(),
            &plan.host_mounts,
            plan.mount_label.as_deref(),
        )?;
        drop(old_root);
        nix::unistd::fchdir(&root).context("cannot enter rootfs")?;
        nix::unistd::chroot(".").context("--no-pivot: chroot failed")?;
    } else {
        // pivot_root(".", ".") stacks the old root on top of the new one;
        // detaching it then leaves only the container's tree. The old root
        // is reached through an fd taken before, so the propagation change
        // below applies to it and not to the container's mounts.
        let old_root = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_DIRECTORY
                | nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .context("cannot open the old root")?;
        crate::sys::pivot_root(c".", c".").context("pivot_root failed")?;
        crate::timing::mark("child: pivot_root");
        nix::unistd::fchdir(&old_root).context("cannot enter the old root")?;
        drop(old_root);
        nix::mount::mount(
            None::<&str>,
            ".",
            None::<&str>,
            nix::mount::MsFlags::MS_SLAVE | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .context("cannot make the old root a slave")?;
        nix::mount::umount2(".", nix::mount::MntFlags::MNT_DETACH)
            .context("cannot detach the old root")?;
    }
    nix::unistd::chdir("/").context("chdir / failed")?;
    drop(root);
    let (flag, recursive) = plan.propagation;
    if flag == libc::MS_SHARED || flag == libc::MS_UNBINDABLE {
        let mut f = flag;
        if recursive {
            f |= libc::MS_REC;
        }
        nix::mount::mount(
            None::<&str>,
            "/",
            None::<&str>,
            nix::mount::MsFlags::from_bits_retain(f),
            None::<&str>,
        )
        .context("linux.rootfsPropagation: cannot apply")?;
    }
    for m in readonly_later {
        mapi::mount_setattr(
            m.mount.as_fd(),
            false,
            &MountAttr {
                attr_set: mapi::MOUNT_ATTR_RDONLY,
                ..Default::default()
            },
        )
        .with_context(|| {
            format!(
                "mounts[{}] ({}): cannot make read-only",
                m.index,
                m.dest.display()
            )
        })?;
    }
    if plan.readonly_root {
        let slash = nix::fcntl::open(
            "/",
            nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )?;
        mapi::mount_setattr(
            slash.as_fd(),
            false,
            &MountAttr {
                attr_set: mapi::MOUNT_ATTR_RDONLY,
                ..Default::default()
            },
        )
        .context("root.readonly: cannot make / read-only")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(name: &str, v2: bool) -> CgroupView {
        CgroupView {
            name: name.into(),
            dir: PathBuf::from("/x"),
            mount: PathBuf::from("/x"),
            v2,
        }
    }

    #[test]
    fn combined_hierarchies_get_a_link_per_controller() {
        let views = [
            view("cpu,cpuacct", false),
            view("net_cls,net_prio", false),
            view("memory", false),
            view("unified", true),
        ];
        let links: Vec<(String, String)> = combined_links(&views)
            .unwrap()
            .into_iter()
            .map(|(a, b)| (a.into_string().unwrap(), b.into_string().unwrap()))
            .collect();
        let want = [
            ("cpu", "cpu,cpuacct"),
            ("cpuacct", "cpu,cpuacct"),
            ("net_cls", "net_cls,net_prio"),
            ("net_prio", "net_cls,net_prio"),
        ];
        assert_eq!(
            links,
            want.map(|(a, b)| (a.to_string(), b.to_string())).to_vec()
        );
    }

    #[test]
    fn no_link_shadows_a_hierarchy_of_that_name() {
        let views = [view("cpu", false), view("cpu,cpuacct", false)];
        let links = combined_links(&views).unwrap();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].0.as_bytes(), b"cpuacct");
    }
}
