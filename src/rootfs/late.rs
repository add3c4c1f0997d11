//! The steps of the root's setup that wait for a network namespace made
//! beside the clone (`launch::netns`), and the others, which need not.
//!
//! sysfs shows the network namespace it is mounted in, so the child joins
//! that namespace before mounting it; the namespace can arrive after the
//! child has reached sysfs in the config's mounts (in the emulated VM it
//! takes ~35 ms to make). Everything after sysfs in the setup that cannot
//! tell the order apart (the device nodes, `/proc`'s masked and read-only
//! paths) runs before the wait, and sysfs with what lies under it after.
//!
//! Two steps can be swapped only if neither changes what the other's path
//! resolves to. [`plan`] decides from the config alone (parent side):
//! - the first mount that needs the namespace is sysfs, and every step
//!   that waits lies at or under its destination: the steps made to wait
//!   are the mounts that need the namespace and every later step whose
//!   destination is at, under or above one that waits (and one above sysfs
//!   refuses the plan);
//! - no step that waits lies under a mount whose content is not the
//!   kernel's (a bind, a network file system), whose symlinks could lead
//!   anywhere; sysfs's own links stay inside sysfs;
//! - no step that waits is related to `/dev` (the devices run as one);
//! - no path has a `..` component (lexical relations would not hold).
//!
//! What the config cannot say, the child checks as it goes (`setup`): the
//! path of sysfs and of every step run before the wait must resolve with
//! no symlink (`RESOLVE_NO_SYMLINKS`; a missing component is made as a
//! directory later, never a link). At the first one that does not, the
//! child joins the namespace, makes what waited, and goes on in the
//! config's order.

use std::ffi::OsStr;
use std::path::{Component, Path};

/// One mount of the config, as the plan sees it.
pub struct MountInfo<'a> {
    pub dest: &'a Path,
    /// Its result depends on the network namespace it is made in.
    pub needs_net: bool,
    /// sysfs.
    pub sysfs: bool,
    /// What it shows is the kernel's (a pseudo file system, an empty
    /// tmpfs, rrun's cgroup view), not a tree of someone's symlinks.
    pub kernel_content: bool,
}

/// Which steps wait: one flag per mount, masked path and read-only path,
/// in the config's order. The devices never wait.
#[derive(Debug, PartialEq, Eq)]
pub struct Plan {
    pub mounts: Vec<bool>,
    pub masked: Vec<bool>,
    pub readonly: Vec<bool>,
    /// The index of the first mount that waits (sysfs).
    pub first: usize,
}

impl Plan {
    /// Whether `step` waits for the network namespace.
    pub fn waits(&self, step: super::Step) -> bool {
        match step {
            super::Step::Mount(i) => self.mounts[i],
            super::Step::Devices => false,
            super::Step::Mask(i) => self.masked[i],
            super::Step::Readonly(i) => self.readonly[i],
        }
    }
}

/// A path's normal components; `None` with a `..`.
fn components(p: &Path) -> Option<Vec<&OsStr>> {
    let mut out = Vec::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => return None,
            _ => {}
        }
    }
    Some(out)
}

/// `a` is at or under `b`.
fn at_or_under(a: &[&OsStr], b: &[&OsStr]) -> bool {
    a.len() >= b.len() && a[..b.len()] == *b
}

fn related(a: &[&OsStr], b: &[&OsStr]) -> bool {
    at_or_under(a, b) || at_or_under(b, a)
}

/// A step that waits: its destination, and whether its content is the
/// kernel's.
struct Waiting<'a> {
    path: Vec<&'a OsStr>,
    kernel_content: bool,
}

/// Whether `path` waits, given what waits before it; `Err` when the plan
/// cannot hold (see the module's rules).
fn waits<'a>(
    path: &[&'a OsStr],
    needs_net: bool,
    sysfs: &[&OsStr],
    waiting: &[Waiting<'a>],
) -> Result<bool, ()> {
    if !needs_net && !waiting.iter().any(|w| related(path, &w.path)) {
        return Ok(false);
    }
    if !at_or_under(path, sysfs) {
        return Err(());
    }
    if waiting
        .iter()
        .any(|w| !w.kernel_content && at_or_under(path, &w.path) && path.len() > w.path.len())
    {
        return Err(());
    }
    Ok(true)
}

/// The plan for a config's mounts, masked and read-only paths; `None` when
/// nothing needs the namespace, or when the order cannot be changed safely:
/// then the child waits at the first mount that needs it, as before.
pub fn plan(mounts: &[MountInfo<'_>], masked: &[&Path], readonly: &[&Path]) -> Option<Plan> {
    let first = mounts.iter().position(|m| m.needs_net)?;
    if !mounts[first].sysfs {
        return None;
    }
    let sysfs = components(mounts[first].dest)?;
    let dev = [OsStr::new("dev")];
    let mut waiting: Vec<Waiting<'_>> = Vec::new();
    let mut out = Plan {
        mounts: vec![false; mounts.len()],
        masked: Vec::with_capacity(masked.len()),
        readonly: Vec::with_capacity(readonly.len()),
        first,
    };
    for (i, m) in mounts.iter().enumerate().skip(first) {
        let path = components(m.dest)?;
        if waits(&path, m.needs_net, &sysfs, &waiting).ok()? {
            if related(&path, &dev) {
                return None;
            }
            out.mounts[i] = true;
            waiting.push(Waiting {
                path,
                kernel_content: m.kernel_content,
            });
        }
    }
    for (list, flags) in [(masked, &mut out.masked), (readonly, &mut out.readonly)] {
        for p in list {
            let path = components(p)?;
            let w = waits(&path, false, &sysfs, &waiting).ok()?;
            if w {
                if related(&path, &dev) {
                    return None;
                }
                // A masked path shows /dev/null or an empty tmpfs; a
                // read-only one what was there (already the kernel's).
                waiting.push(Waiting {
                    path,
                    kernel_content: true,
                });
            }
            flags.push(w);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fs<'a>(dest: &'a str, fstype: &str) -> MountInfo<'a> {
        let needs_net = !matches!(
            fstype,
            "proc" | "tmpfs" | "devpts" | "mqueue" | "cgroup" | "cgroup2" | "bind"
        );
        MountInfo {
            dest: Path::new(dest),
            needs_net,
            sysfs: fstype == "sysfs",
            kernel_content: fstype != "bind" && (!needs_net || fstype == "sysfs"),
        }
    }

    fn default_mounts() -> Vec<MountInfo<'static>> {
        vec![
            fs("/proc", "proc"),
            fs("/dev", "tmpfs"),
            fs("/dev/pts", "devpts"),
            fs("/dev/shm", "tmpfs"),
            fs("/dev/mqueue", "mqueue"),
            fs("/sys", "sysfs"),
            fs("/sys/fs/cgroup", "cgroup"),
        ]
    }

    fn paths(p: &[&'static str]) -> Vec<&'static Path> {
        p.iter().map(|s| Path::new(*s)).collect()
    }

    #[test]
    fn the_default_config_waits_only_for_sys_and_what_is_under_it() {
        let masked = paths(&["/proc/acpi", "/proc/kcore", "/sys/firmware", "/proc/scsi"]);
        let readonly = paths(&["/proc/bus", "/proc/sys"]);
        let p = plan(&default_mounts(), &masked, &readonly).unwrap();
        assert_eq!(
            p.mounts,
            [false, false, false, false, false, true, true],
            "sysfs and the cgroup view under it"
        );
        assert_eq!(p.masked, [false, false, true, false]);
        assert_eq!(p.readonly, [false, false]);
        assert_eq!(p.first, 5);
    }

    #[test]
    fn nothing_waits_without_a_mount_that_needs_the_namespace() {
        let mounts = &default_mounts()[..5];
        assert_eq!(plan(mounts, &[], &[]), None);
    }

    #[test]
    fn a_later_step_related_to_one_that_waits_waits_too() {
        let mut mounts = default_mounts();
        // Unrelated to /sys: runs before the wait.
        mounts.push(fs("/tmp", "tmpfs"));
        // Under the cgroup view that waits.
        mounts.push(fs("/sys/fs/cgroup/x", "tmpfs"));
        let masked = paths(&["/sys/fs/cgroup/x/y", "/tmp/a"]);
        let p = plan(&mounts, &masked, &paths(&["/sys/kernel"])).unwrap();
        assert_eq!(&p.mounts[5..], [true, true, false, true]);
        assert_eq!(p.masked, [true, false]);
        assert_eq!(p.readonly, [true]);
    }

    #[test]
    fn a_step_above_sysfs_refuses_the_plan() {
        // A later mount over the parent of /sys: in the config's order it
        // covers sysfs; it cannot run before it or after it reordered.
        let mut mounts = default_mounts();
        mounts.push(fs("/", "tmpfs"));
        assert_eq!(plan(&mounts, &[], &[]), None);
        assert_eq!(plan(&default_mounts(), &[], &paths(&["/"])), None);
    }

    #[test]
    fn a_step_under_a_bind_that_waits_refuses_the_plan() {
        let mut mounts = default_mounts();
        mounts.push(fs("/sys/kernel/debug", "bind"));
        assert!(
            plan(&mounts, &[], &[]).is_some(),
            "the bind itself may wait"
        );
        mounts.push(fs("/sys/kernel/debug/x", "tmpfs"));
        assert_eq!(
            plan(&mounts, &[], &[]),
            None,
            "its symlinks could lead anywhere"
        );
        let mut mounts = default_mounts();
        mounts.push(fs("/sys/kernel/debug", "bind"));
        assert_eq!(plan(&mounts, &paths(&["/sys/kernel/debug/x"]), &[]), None);
    }

    #[test]
    fn a_network_file_system_first_or_outside_sysfs_refuses_the_plan() {
        let mut mounts = default_mounts();
        mounts.insert(1, fs("/data", "nfs"));
        assert_eq!(plan(&mounts, &[], &[]), None, "the first is not sysfs");
        let mut mounts = default_mounts();
        mounts.push(fs("/data", "nfs"));
        assert_eq!(plan(&mounts, &[], &[]), None, "a second outside sysfs");
    }

    #[test]
    fn dotdot_or_dev_under_sysfs_refuses_the_plan() {
        let mut mounts = default_mounts();
        mounts.push(fs("/tmp/../sys/x", "tmpfs"));
        assert_eq!(plan(&mounts, &[], &[]), None);
        let mounts = vec![fs("/", "sysfs"), fs("/dev", "tmpfs")];
        assert_eq!(plan(&mounts, &[], &[]), None);
    }
}
