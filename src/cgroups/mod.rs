//! Cgroup placement: where a container's cgroups live on this host's layout
//! (v1, v2 or hybrid), creating them, putting the init process in them,
//! signalling everything in them, and removing them.
//!
//! The layout is read once from `/proc/self/mountinfo` and `/proc/self/cgroup`.
//! Resource limits are applied by the controllers' own modules.

pub mod cgfs;
pub mod devices_bpf;
pub mod notify;
pub mod resources;
pub mod stats;
pub mod systemd;
pub mod systemd_bus;

use std::fs;
use std::io::ErrorKind;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// One mounted cgroup hierarchy.
#[derive(Debug, Clone)]
pub struct Hierarchy {
    /// Where it is mounted, e.g. `/sys/fs/cgroup/memory`.
    pub mount: PathBuf,
    /// The cgroup path of that mount's root (usually `/`).
    pub mount_root: PathBuf,
    /// v1 controllers (and `name=` hierarchies); empty for cgroup2.
    pub controllers: Vec<String>,
    pub v2: bool,
}

/// The directories created for one container, deepest-last per hierarchy.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct CgroupPaths {
    /// The container's cgroup directory in each hierarchy.
    pub dirs: Vec<PathBuf>,
    /// The v1 controllers of each directory (parallel to `dirs`); empty for
    /// the cgroup2 directory.
    #[serde(default)]
    pub controllers: Vec<Vec<String>>,
    /// Every directory rrun created (to remove on delete), in creation order.
    pub created: Vec<PathBuf>,
    /// True on a pure cgroup v2 host.
    #[serde(default)]
    pub unified: bool,
    /// With `--systemd-cgroup`: the systemd unit the cgroup belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd: Option<systemd_bus::Unit>,
}

/// The cgroup layout of this host.
pub struct Layout {
    pub hierarchies: Vec<Hierarchy>,
    /// The calling process's cgroup path in each hierarchy (same order).
    pub own: Vec<PathBuf>,
}

impl Layout {
    /// Reads the layout of the host from procfs.
    pub fn detect() -> Result<Layout> {
        let mountinfo = crate::sys::read_to_string("/proc/self/mountinfo")
            .context("/proc/self/mountinfo: cannot read")?;
        let own_cgroups = crate::sys::read_to_string("/proc/self/cgroup")
            .context("/proc/self/cgroup: cannot read")?;
        Ok(Self::parse(&mountinfo, &own_cgroups))
    }

    fn parse(mountinfo: &str, own_cgroups: &str) -> Layout {
        let mut hierarchies = Vec::new();
        for line in mountinfo.lines() {
            // "ID PARENT MAJ:MIN ROOT MOUNTPOINT ... - FSTYPE SOURCE SUPEROPTS":
            // the file system type first, so other mounts cost no more.
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut r = right.split(' ');
            let v2 = match r.next() {
                Some("cgroup2") => true,
                Some("cgroup") => false,
                _ => continue,
            };
            let Some(superopts) = r.nth(1) else { continue };
            let mut l = left.split(' ').skip(3);
            let (Some(root), Some(mount)) = (l.next(), l.next()) else {
                continue;
            };
            let controllers = if v2 {
                Vec::new()
            } else {
                superopts
                    .split(',')
                    .filter(|o| {
                        !matches!(*o, "rw" | "ro")
                            && !o.starts_with("release_agent")
                            && !matches!(*o, "noprefix" | "clone_children" | "xattr")
                    })
                    .map(str::to_string)
                    .collect()
            };
            hierarchies.push(Hierarchy {
                mount: PathBuf::from(crate::sys::unescape_mountinfo(mount)),
                mount_root: PathBuf::from(crate::sys::unescape_mountinfo(root)),
                controllers,
                v2,
            });
        }
        // Only the first mount of each hierarchy counts (bind mounts repeat it).
        let mut seen: Vec<(bool, Vec<String>)> = Vec::new();
        hierarchies.retain(|h| {
            let key = (h.v2, h.controllers.clone());
            if seen.contains(&key) {
                false
            } else {
                seen.push(key);
                true
            }
        });
        let own = hierarchies
            .iter()
            .map(|h| own_path(own_cgroups, h))
            .collect();
        Layout { hierarchies, own }
    }

    /// True when the host has only cgroup v2.
    pub fn is_unified(&self) -> bool {
        !self.hierarchies.is_empty() && self.hierarchies.iter().all(|h| h.v2)
    }

    /// The container's directory in each hierarchy for a `cgroupsPath`
    /// (absolute: from the hierarchy root; relative: under rrun's own cgroup;
    /// empty: `<own cgroup>/<id>`).
    pub fn container_dirs(&self, cgroups_path: Option<&Path>, id: &str) -> Result<Vec<PathBuf>> {
        let default = cgroups_path.is_none_or(|p| p.as_os_str().is_empty());
        let rel = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from(id),
        };
        if rel.to_string_lossy().contains(':') {
            bail!(
                "linux.cgroupsPath {}: looks like a systemd slice:prefix:name path; rrun manages cgroupfs directly (--systemd-cgroup is not supported)",
                rel.display()
            );
        }
        for c in rel.components() {
            if matches!(c, Component::ParentDir) {
                bail!("linux.cgroupsPath {}: must not contain '..'", rel.display());
            }
        }
        let mut dirs = Vec::new();
        for (h, own) in self.hierarchies.iter().zip(&self.own) {
            let cg = if rel.is_absolute() {
                rel.clone()
            } else if default
                && h.v2
                && own != Path::new("/")
                && has_processes(&h.mount, &h.mount_root, own)
            {
                // cgroup v2 gives no controllers to children of a cgroup
                // that holds processes (a login's session scope): put the
                // container beside rrun's cgroup instead of inside it.
                own.parent().unwrap_or(Path::new("/")).join(&rel)
            } else {
                own.join(&rel)
            };
            // rrun's own cgroup, or one above it: the container's limits
            // (and `kill --all`, `delete --force`) would land on rrun and
            // on whatever called it.
            if own.starts_with(&cg) {
                let what = if h.v2 {
                    "cgroup2".to_string()
                } else {
                    h.controllers.join(",")
                };
                bail!(
                    "linux.cgroupsPath {}: is rrun's own cgroup {} (or one above it) in the {what} hierarchy; the container's limits would apply to rrun and its caller: refusing",
                    rel.display(),
                    own.display()
                );
            }
            // The path below the mount's root.
            let below = cg.strip_prefix(&h.mount_root).unwrap_or(&cg);
            let below = below.strip_prefix("/").unwrap_or(below);
            dirs.push(h.mount.join(below));
        }
        Ok(dirs)
    }
}

/// True when the cgroup `cg` (a path in the hierarchy mounted at `mount`)
/// has processes of its own.
fn has_processes(mount: &Path, mount_root: &Path, cg: &Path) -> bool {
    let below = cg.strip_prefix(mount_root).unwrap_or(cg);
    let below = below.strip_prefix("/").unwrap_or(below);
    cgfs::read_to_string(&mount.join(below).join("cgroup.procs"))
        .is_ok_and(|s| !s.trim().is_empty())
}

/// Reads a process's cgroup path in one hierarchy from `/proc/PID/cgroup`.
fn own_path(own_cgroups: &str, h: &Hierarchy) -> PathBuf {
    for line in own_cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctrls, path) = match (parts.next(), parts.next(), parts.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => continue,
        };
        let matches = if h.v2 {
            ctrls.is_empty()
        } else {
            let mut a: Vec<&str> = ctrls.split(',').collect();
            let mut b: Vec<&str> = h.controllers.iter().map(String::as_str).collect();
            a.sort();
            b.sort();
            a == b
        };
        if matches {
            return PathBuf::from(path);
        }
    }
    PathBuf::from("/")
}

/// The container's cgroups before anything is made: every level of each
/// directory that does not exist yet is listed as `created`, so a record
/// written now lets `delete` remove whatever a `create` killed half-way
/// had made. [`create`] then narrows the list to what it really made.
pub fn plan(layout: &Layout, dirs: Vec<PathBuf>) -> Result<CgroupPaths> {
    let mut paths = CgroupPaths {
        dirs: dirs.clone(),
        controllers: layout
            .hierarchies
            .iter()
            .map(|h| h.controllers.clone())
            .collect(),
        created: Vec::new(),
        unified: layout.is_unified(),
        systemd: None,
    };
    for (dir, h) in dirs.iter().zip(&layout.hierarchies) {
        let levels = levels(dir, h)?;
        let leaf = levels.len().saturating_sub(1);
        // Below a missing level nothing exists, and the container's own
        // directory (the leaf) is listed without a look: it is new in all
        // but odd configs, and [`create`] narrows the list to what it made.
        // Looking a missing name up in a cgroup directory waits for the
        // directory's lock, which every other container's mkdir there holds
        // while it queues for the kernel's global cgroup mutex: with many
        // containers starting at once, that lookup waited as long as the
        // mkdir itself.
        let mut missing = false;
        for (i, level) in levels.into_iter().enumerate() {
            missing = missing || i == leaf || !cgfs::exists(&level);
            if missing {
                paths.created.push(level);
            }
        }
    }
    Ok(paths)
}

/// The container's cgroup under `--systemd-cgroup`: the unit a
/// `slice:prefix:name` cgroupsPath names, and its directory, which systemd
/// makes (and removes) itself. Pure cgroup v2 hosts only.
pub fn plan_systemd(
    layout: &Layout,
    cgroups_path: Option<&Path>,
    id: &str,
) -> Result<(CgroupPaths, systemd::UnitPath)> {
    let text = match cgroups_path {
        Some(p) => Some(
            p.to_str()
                .context("linux.cgroupsPath: not valid UTF-8")?
                .to_string(),
        ),
        None => None,
    };
    let user = systemd_bus::user_manager();
    let mut unit = systemd::parse(text.as_deref(), id, user)?;
    if user {
        // The user's manager runs in a subtree of its own (user@UID.service,
        // delegated to the user): its slices and scopes are below it.
        let base = systemd_bus::Manager::connect(true)?.control_group()?;
        unit.cgroup = format!("{}{}", base.trim_end_matches('/'), unit.cgroup);
    }
    if !layout.is_unified()
        && !layout
            .hierarchies
            .iter()
            .any(|h| h.controllers.iter().any(|c| c == "name=systemd"))
    {
        bail!("--systemd-cgroup: this cgroup v1 host has no name=systemd hierarchy (is systemd pid 1?)");
    }
    let cg = Path::new(&unit.cgroup);
    let mut dirs = Vec::new();
    for (h, own) in layout.hierarchies.iter().zip(&layout.own) {
        if own.starts_with(cg) {
            bail!(
                "linux.cgroupsPath {}: {} is rrun's own cgroup {} (or one above it); the container's limits would apply to rrun and its caller: refusing",
                text.as_deref().unwrap_or_default(),
                unit.unit,
                own.display()
            );
        }
        let below = cg.strip_prefix(&h.mount_root).unwrap_or(cg);
        let below = below.strip_prefix("/").unwrap_or(below);
        dirs.push(h.mount.join(below));
    }
    // systemd makes the unit's directory where it manages the hierarchy
    // (cgroup2, name=systemd and, on v1, the controllers it enables); rrun
    // makes it in the others at the same path, as runc does. Until then,
    // every missing level counts as rrun's to remove (`plan`).
    let mut paths = plan(layout, dirs)?;
    paths.systemd = Some(systemd_bus::Unit {
        name: unit.unit.clone(),
        user,
    });
    Ok((paths, unit))
}

/// Refuses a cgroup that is frozen: the container's process could never
/// run (runc refuses it too).
pub fn refuse_frozen(paths: &CgroupPaths) -> Result<()> {
    if is_frozen(paths) {
        bail!("container's cgroup unexpectedly frozen: thaw it (or its parent) first");
    }
    Ok(())
}

/// Creates the container's cgroup directories planned by [`plan`]. On
/// failure, removes whatever it made before returning the error.
///
/// A directory that existed must hold no process, nor any cgroup below it:
/// the container's limits would apply to processes that are not the
/// container's, `pause` would freeze them, and `kill --all` and `delete
/// --force` would signal those in it (runc only warns about the directory's
/// own; see its issue 3132). A frozen one is refused too.
pub fn create(layout: &Layout, paths: &mut CgroupPaths) -> Result<()> {
    create_dirs(layout, paths)?;
    for refused in [refuse_busy(paths, None), refuse_frozen(paths)] {
        if let Err(e) = refused {
            let _ = remove(paths);
            return Err(e);
        }
    }
    Ok(())
}

/// Refuses the container's cgroups when one that existed before (any not
/// in `created`, in any hierarchy: on a hybrid host the cgroup2 one is
/// often unused) holds a process at or below it, other than `ours` (the
/// systemd driver's holder, in the unit systemd just made).
pub fn refuse_busy(paths: &CgroupPaths, ours: Option<i32>) -> Result<()> {
    let ours = ours.map(|p| p.to_string());
    let busy = paths
        .dirs
        .iter()
        .filter(|d| !paths.created.contains(d))
        .find_map(|d| first_process_below(d, ours.as_deref(), 0).map(|f| (d, f)));
    let Some((dir, (at, n, first))) = busy else {
        return Ok(());
    };
    let below = match at.strip_prefix(dir) {
        Ok(rel) if !rel.as_os_str().is_empty() => format!(" in {}", rel.display()),
        _ => String::new(),
    };
    bail!(
        "linux.cgroupsPath: cgroup {} already holds {n} process(es) that are not the container's (pid {first}{below} among them); a container needs a cgroup of its own: refusing",
        dir.display()
    )
}

/// The first cgroup at or below `dir` (searched depth first, at most 32
/// levels) that holds processes other than `ours`: its path, how many it
/// holds, and the first one's pid as listed (a process of another pid
/// namespace reads as 0, so lines are counted, not pids).
fn first_process_below(
    dir: &Path,
    ours: Option<&str>,
    depth: usize,
) -> Option<(PathBuf, usize, String)> {
    if let Ok(text) = cgfs::read_to_string(&dir.join("cgroup.procs")) {
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && Some(*l) != ours);
        if let Some(first) = lines.next() {
            return Some((dir.to_path_buf(), 1 + lines.count(), first.to_string()));
        }
    }
    if depth >= 32 {
        return None;
    }
    fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .find_map(|e| first_process_below(&e.path(), ours, depth + 1))
}

/// [`create`] for a rootless caller (see `sys::rootless`). The container's
/// cgroups are made when the caller may make them (a cgroup v2 subtree
/// delegated to it: systemd's `user@UID.service`, or a directory chowned to
/// it); otherwise, as runc does, a config that asks for no limits runs
/// without cgroups (the debug log says why), and one that asks for limits
/// is refused with an error naming the first of them. Device rules are no
/// limit here: a rootless container has no `mknod` and only the host
/// devices its user may open.
pub fn create_rootless(
    layout: &Layout,
    paths: &mut CgroupPaths,
    resources: Option<&oci_spec::runtime::LinuxResources>,
) -> Result<()> {
    let err = match create(layout, paths) {
        Ok(()) => return Ok(()),
        Err(e) if is_permission(&e) => e,
        Err(e) => return Err(e),
    };
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    if let Some(field) = resources.and_then(resources::first_limit) {
        bail!("{field}: cannot apply limits without cgroups: {err:#} (rootless, uid {uid}: the cgroup tree is not writable; limits need a cgroup v2 subtree delegated to the user, e.g. systemd's user@{uid}.service)");
    }
    crate::logging::debug(&format!(
        "cgroups: running without cgroups (rootless, uid {uid}, and the config asks for no limits): {err:#}"
    ));
    *paths = CgroupPaths {
        unified: paths.unified,
        ..Default::default()
    };
    Ok(())
}

/// True when an error comes from the kernel refusing the caller access
/// (a cgroup tree an ordinary user may not write).
fn is_permission(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| {
            matches!(
                io.raw_os_error(),
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS)
            )
        })
}

/// Makes whatever levels of the container's directories do not exist yet
/// (with systemd, the hierarchies systemd does not manage) and records
/// exactly those in `created`. On failure, removes them again.
pub fn create_dirs(layout: &Layout, paths: &mut CgroupPaths) -> Result<()> {
    paths.created.clear();
    for (dir, h) in paths.dirs.clone().iter().zip(&layout.hierarchies) {
        if let Err(e) = create_one(dir, h, &mut paths.created) {
            let _ = remove(paths);
            return Err(e);
        }
    }
    Ok(())
}

/// Every level of `dir` below the hierarchy's mount, top first.
fn levels(dir: &Path, h: &Hierarchy) -> Result<Vec<PathBuf>> {
    let Ok(below) = dir.strip_prefix(&h.mount) else {
        bail!(
            "cgroup {}: not under the hierarchy mounted at {}",
            dir.display(),
            h.mount.display()
        );
    };
    let mut levels = Vec::new();
    let mut p = h.mount.clone();
    for c in below.components() {
        p.push(c);
        levels.push(p.clone());
    }
    Ok(levels)
}

fn create_one(dir: &Path, h: &Hierarchy, created: &mut Vec<PathBuf>) -> Result<()> {
    // Every level below the mount, top first. Each is made if missing (one
    // another creator made first is fine: EEXIST), and only the ones made
    // here are recorded, so delete removes exactly those. A level whose
    // parent another container's delete has just removed (an empty slice
    // mirror, see `remove_slice_mirrors`) starts the walk again.
    let levels = levels(dir, h)?;
    let cpuset = h.controllers.iter().any(|c| c == "cpuset");
    let mut restarts = 0;
    let mut i = 0;
    while let Some(d) = levels.get(i) {
        i += 1;
        let made = match cgfs::create_dir(d) {
            Ok(()) => {
                if !created.contains(d) {
                    created.push(d.clone());
                }
                true
            }
            Err(e) if e.kind() == ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == ErrorKind::NotFound && i > 1 && restarts < 10 => {
                restarts += 1;
                i = 0;
                continue;
            }
            Err(e) => {
                return Err(e).with_context(|| format!("cgroup {}: cannot create", d.display()))
            }
        };
        if cpuset {
            // The level itself can vanish between its mkdir and its filling
            // (an empty slice mirror a sibling's delete takes): walk again.
            match fill_cpuset(d, made) {
                Ok(()) => {}
                Err(e) if is_not_found(&e) && restarts < 10 => {
                    restarts += 1;
                    i = 0;
                }
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::NotFound)
}

/// A new v1 cpuset has no cpus and mems and refuses tasks (ENOSPC) until
/// it gets some: copy the parent's into a level that has none. Every level
/// is checked, not only the ones made here: a level another rrun has just
/// made may not have been filled yet, and a parent that was always empty
/// must be filled before a child can be. Levels are done top first, so the
/// parent's values are there to copy. A level made just now (`made`) gets
/// the parent's values without a look at its own: they are empty, or
/// already the parent's (`cgroup.clone_children`).
fn fill_cpuset(d: &Path, made: bool) -> Result<()> {
    let Some(parent) = d.parent() else {
        return Ok(());
    };
    for f in ["cpuset.cpus", "cpuset.mems"] {
        if !made {
            let cur = cgfs::read_to_string(&d.join(f))
                .with_context(|| format!("cgroup {}: cannot read {f}", d.display()))?;
            if !cur.trim().is_empty() {
                continue;
            }
        }
        let from = cgfs::read_to_string(&parent.join(f))
            .with_context(|| format!("cgroup {}: cannot read {f}", parent.display()))?;
        cgfs::write(&d.join(f), from.trim())
            .with_context(|| format!("cgroup {}: cannot set {f}", d.display()))?;
    }
    Ok(())
}

impl CgroupPaths {
    /// The container's directory in the v1 hierarchy holding `controller`.
    pub fn v1(&self, controller: &str) -> Option<&Path> {
        self.dirs
            .iter()
            .zip(&self.controllers)
            .find(|(_, c)| c.iter().any(|x| x == controller))
            .map(|(d, _)| d.as_path())
    }

    /// The container's cgroup2 directory, if the host has a v2 hierarchy.
    pub fn v2(&self) -> Option<&Path> {
        self.dirs
            .iter()
            .zip(&self.controllers)
            .find(|(_, c)| c.is_empty())
            .map(|(d, _)| d.as_path())
    }

    /// The directory whose `cgroup.procs` lists every process (any will do;
    /// prefer v2, then pids, for clarity).
    fn procs_dir(&self) -> Option<&Path> {
        self.v2()
            .or_else(|| self.v1("pids"))
            .or_else(|| self.dirs.first().map(|d| d.as_path()))
    }
}

/// How a new process enters the container's cgroups, prepared by the parent
/// before the clone so the child only has to write to fds.
///
/// Why not just write the child's pid to `cgroup.procs`: moving a whole
/// thread group takes the kernel's global threadgroup lock for writing, an
/// RCU synchronisation that costs several milliseconds per move (measured:
/// 5-12 ms on this 2-core VM, against 0.1 ms below). A single-threaded
/// process that writes `0` (itself) to a v1 `tasks` file moves only its own
/// thread, which skips that lock. On cgroup2 the child is cloned straight
/// into its cgroup with `CLONE_INTO_CGROUP`, which takes only the read side.
pub struct Entry {
    /// The container's cgroup2 directory, for `clone3(CLONE_INTO_CGROUP)`.
    pub clone_into: Option<OwnedFd>,
    /// Each v1 directory's `tasks` file, opened write-only by the parent
    /// (the kernel checks the opener's credentials), with the directory for
    /// error messages. The child writes `0` to each: see [`join_self`].
    pub tasks: Vec<(fs::File, PathBuf)>,
}

/// Opens what a new process needs to enter the container's cgroups.
pub fn prepare_entry(paths: &CgroupPaths) -> Result<Entry> {
    let mut entry = Entry {
        clone_into: None,
        tasks: Vec::new(),
    };
    for (dir, controllers) in paths.dirs.iter().zip(&paths.controllers) {
        if controllers.is_empty() {
            let f = cgfs::open(dir, libc::O_RDONLY)
                .with_context(|| format!("cgroup {}: cannot open", dir.display()))?;
            entry.clone_into = Some(f.into());
        } else {
            let f = cgfs::open(&dir.join("tasks"), libc::O_WRONLY)
                .with_context(|| format!("cgroup {}: cannot open tasks", dir.display()))?;
            entry.tasks.push((f, dir.clone()));
        }
    }
    Ok(entry)
}

/// Child side, before anything else happens in it: moves the calling
/// (single-threaded) process into each v1 cgroup of `tasks`.
pub fn join_self(tasks: &[(fs::File, PathBuf)]) -> Result<()> {
    use std::io::Write;
    for (f, dir) in tasks {
        let mut f: &fs::File = f;
        f.write_all(b"0").map_err(|e| {
            anyhow::anyhow!("cgroup {}: cannot add the process: {e}", dir.display())
        })?;
    }
    Ok(())
}

/// Moves a process into the container's cgroup2 directory (when the kernel
/// refused `CLONE_INTO_CGROUP`).
pub fn add_pid_v2(paths: &CgroupPaths, pid: i32) -> Result<()> {
    if let Some(dir) = paths.v2() {
        cgfs::write(&dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("cgroup {}: cannot add process {pid}", dir.display()))?;
    }
    Ok(())
}

/// Pids of every process in the container's cgroup; none once the cgroup
/// is gone (systemd removes a scope's cgroup when its last process exits,
/// and the containerd shim still runs `kill --all` then, as runc allows).
pub fn pids(paths: &CgroupPaths) -> Result<Vec<i32>> {
    let Some(dir) = paths.procs_dir() else {
        return Ok(Vec::new());
    };
    match cgfs::read_to_string(&dir.join("cgroup.procs")) {
        Ok(text) => Ok(parse_pids(&text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => {
            Err(e).with_context(|| format!("cgroup {}: cannot read processes", dir.display()))
        }
    }
}

/// The pids of a `cgroup.procs` file. A process outside the reader's pid
/// namespace is listed as `0`: it is left out, as is anything not a
/// positive pid, so no caller can ever `kill(0)` (its own process group)
/// or `kill(-1)` (everything).
fn parse_pids(text: &str) -> Vec<i32> {
    text.lines()
        .filter_map(|l| l.trim().parse().ok())
        .filter(|&p: &i32| p > 0)
        .collect()
}

/// Sends a signal to every process in the container's cgroup.
pub fn signal_all(paths: &CgroupPaths, sig: i32) -> Result<()> {
    for pid in pids(paths)? {
        crate::sys::kill_positive(pid, sig);
    }
    Ok(())
}

/// True when the container's freezer says it is frozen.
pub fn is_frozen(paths: &CgroupPaths) -> bool {
    if paths.unified {
        return paths.v2().is_some_and(|d| {
            cgfs::read_to_string(&d.join("cgroup.events"))
                .is_ok_and(|e| e.lines().any(|l| l.trim() == "frozen 1"))
        });
    }
    paths.v1("freezer").is_some_and(|d| {
        cgfs::read_to_string(&d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
    })
}

/// Freezes (`pause`) or thaws (`resume`) every process of the container and
/// waits until the kernel reports it done.
pub fn set_frozen(paths: &CgroupPaths, frozen: bool) -> Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    if paths.unified {
        let dir = paths.v2().context("no cgroup2 directory to freeze")?;
        fs::write(dir.join("cgroup.freeze"), if frozen { "1" } else { "0" })
            .with_context(|| format!("cgroup {}: cannot write cgroup.freeze", dir.display()))?;
        while is_frozen(paths) != frozen {
            if std::time::Instant::now() > deadline {
                bail!("cgroup {}: the freezer did not settle", dir.display());
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        return Ok(());
    }
    let dir = paths
        .v1("freezer")
        .context("the freezer controller is not mounted on this host")?;
    let want = if frozen { "FROZEN" } else { "THAWED" };
    loop {
        fs::write(dir.join("freezer.state"), want)
            .with_context(|| format!("cgroup {}: cannot write freezer.state", dir.display()))?;
        let now = crate::sys::read_to_string(dir.join("freezer.state")).unwrap_or_default();
        if now.trim() == want {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("cgroup {}: the freezer did not reach {want}", dir.display());
        }
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}

/// Removes the directories rrun created, deepest first. Processes must be
/// gone; a busy cgroup is retried briefly (exiting tasks linger a moment).
/// With systemd on cgroup v1, the hierarchies systemd does not manage
/// (hugetlb, net_cls...) get the unit's slice path mirrored by whoever
/// made a container there first; a sibling's `remove` could not take a
/// slice directory that still held this container. Once the container's
/// own directory is gone, its empty `*.slice` ancestors go too, up to the
/// first that is busy. Only where rrun made the unit's own directory
/// (systemd did not: it does not manage that hierarchy), and rmdir refuses
/// any cgroup that has children or processes.
fn remove_slice_mirrors(paths: &CgroupPaths) {
    for dir in paths.dirs.iter().filter(|d| paths.created.contains(d)) {
        let mut p = dir.parent();
        while let Some(d) = p {
            let is_slice = d
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".slice"));
            if !is_slice || cgfs::remove_dir(d).is_err() {
                break;
            }
            p = d.parent();
        }
    }
}

pub fn remove(paths: &CgroupPaths) -> Result<()> {
    remove_with(paths, None)
}

/// [`remove`] for a container whose create was killed before its first
/// process existed (`delete` of a `creating` one with no pid). Its record
/// was written before rrun looked at what the config names, so it may list
/// someone else's cgroup or unit: a unit is stopped only if rrun made it for
/// this container (its description says so), and a directory that holds
/// processes, which cannot be the container's, is left.
pub fn remove_unstarted(paths: &CgroupPaths, id: &str) -> Result<()> {
    remove_with(paths, Some(id))
}

fn remove_with(paths: &CgroupPaths, unstarted: Option<&str>) -> Result<()> {
    let mut first_err = None;
    // The unit first (systemd removes its directories as it stops it),
    // even with no directory there: a `create` killed just after asking
    // for the unit leaves a start job that makes it after we look.
    if let Some(unit) = &paths.systemd {
        let stopped = match unstarted {
            None => systemd_bus::stop(unit),
            Some(id) => systemd_bus::stop_if_described(unit, &systemd::description(id)),
        };
        if let Err(e) = stopped {
            first_err.get_or_insert(e);
        }
    }
    for dir in paths.created.iter().rev() {
        let mut tries = 0;
        loop {
            match cgfs::remove_dir(dir) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                // An unstarted create's own directory may still hold its
                // first process, cloned just before the create was killed
                // and not yet recorded: it dies with its parent (PDEATHSIG,
                // or at its next message to it), so wait for it a while;
                // what stays busy is someone else's and is left.
                Err(e)
                    if unstarted.is_some()
                        && paths.dirs.contains(dir)
                        && e.raw_os_error() == Some(libc::EBUSY)
                        && tries < 100 =>
                {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                // A parent rrun created may now hold a sibling container's
                // cgroup: it stays, and that is not an error.
                Err(e)
                    if (unstarted.is_some() || !paths.dirs.contains(dir))
                        && matches!(
                            e.raw_os_error(),
                            Some(libc::EBUSY) | Some(libc::ENOTEMPTY)
                        ) =>
                {
                    break
                }
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
                Err(e) => {
                    first_err.get_or_insert_with(|| {
                        anyhow::anyhow!("cgroup {}: cannot remove: {e}", dir.display())
                    });
                    break;
                }
            }
        }
    }
    if paths.systemd.is_some() {
        remove_slice_mirrors(paths);
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";
    const OWN: &str = "9:name=systemd:/\n4:memory:/outer/x\n1:cpu:/\n0::/\n";

    #[test]
    fn hybrid_layout_has_v1_and_v2() {
        let l = Layout::parse(HYBRID, OWN);
        assert_eq!(l.hierarchies.len(), 4);
        assert!(!l.is_unified());
        assert_eq!(l.own[1], PathBuf::from("/outer/x"));
    }

    #[test]
    fn relative_paths_nest_under_own_cgroup_and_absolute_do_not() {
        let l = Layout::parse(HYBRID, OWN);
        let d = l.container_dirs(None, "c1").unwrap();
        assert_eq!(d[1], PathBuf::from("/sys/fs/cgroup/memory/outer/x/c1"));
        assert_eq!(d[0], PathBuf::from("/sys/fs/cgroup/cpu/c1"));
        let d = l.container_dirs(Some(Path::new("/a/b")), "c1").unwrap();
        assert_eq!(d[1], PathBuf::from("/sys/fs/cgroup/memory/a/b"));
        assert_eq!(d[3], PathBuf::from("/sys/fs/cgroup/unified/a/b"));
    }

    #[test]
    fn dotdot_in_cgroups_path_is_refused() {
        let l = Layout::parse(HYBRID, OWN);
        let e = l
            .container_dirs(Some(Path::new("/a/../../etc")), "c1")
            .unwrap_err();
        assert!(e.to_string().contains("linux.cgroupsPath"));
    }

    #[test]
    fn own_cgroup_and_its_ancestors_are_refused() {
        let l = Layout::parse(HYBRID, OWN);
        for p in ["/outer/x", "/outer", "/"] {
            let e = l.container_dirs(Some(Path::new(p)), "c1").unwrap_err();
            let e = format!("{e:#}");
            assert!(e.contains("rrun's own cgroup"), "{p}: {e}");
        }
        // A sibling and a child are fine.
        l.container_dirs(Some(Path::new("/outer/y")), "c1").unwrap();
        l.container_dirs(Some(Path::new("/outer/x/c1")), "c1")
            .unwrap();
    }

    #[test]
    fn pids_outside_our_pid_namespace_are_never_listed() {
        assert_eq!(parse_pids("0\n12\n0\n-1\n\n7\n"), vec![12, 7]);
    }

    #[test]
    fn unescape_handles_spaces() {
        assert_eq!(crate::sys::unescape_mountinfo("/a\\040b"), "/a b");
        assert_eq!(crate::sys::unescape_mountinfo("/plain"), "/plain");
    }
}
