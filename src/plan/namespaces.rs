//! Deciding how the container's namespaces come into being.
//!
//! Fast path (the common case): one `clone3` with every new-namespace flag;
//! joined namespaces (`path`) other than user and pid are entered by the
//! child with `setns` right after. A new network namespace without a user
//! namespace is the exception: a helper makes it while the parent plans,
//! and the child joins it before its first mount that needs it
//! ([`NsPlan::net_aside`], `launch::netns`).
//!
//! Two-stage path, when a single clone cannot do it: joining a user or pid
//! namespace, a new user namespace together with joined ones (they must be
//! joined before the new user namespace owns us), or a time namespace (its
//! offsets must be written before any process enters it). The first child
//! joins, unshares, and forks the init process if its pid or time namespace
//! changed.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

pub fn clone_flag(t: LinuxNamespaceType) -> u64 {
    (match t {
        LinuxNamespaceType::Mount => libc::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => libc::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => libc::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => libc::CLONE_NEWIPC,
        LinuxNamespaceType::User => libc::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => libc::CLONE_NEWPID,
        LinuxNamespaceType::Network => libc::CLONE_NEWNET,
        LinuxNamespaceType::Time => return crate::sys::CLONE_NEWTIME,
    }) as u64
}

pub struct Join {
    pub flag: u64,
    pub fd: OwnedFd,
    pub path: PathBuf,
}

pub struct NsPlan {
    /// New namespaces made by the clone itself (fast path).
    pub clone_flags: u64,
    /// New namespaces made by unshare in the first child (two-stage).
    pub unshare_flags: u64,
    /// New namespaces the child unshares only after the parent placed it in
    /// its cgroup (a cgroup namespace's root is the cgroup it is made in).
    pub late_unshare: u64,
    /// Namespaces to enter, user first.
    pub join: Vec<Join>,
    pub two_stage: bool,
    /// Two-stage: the init process must be forked (pid or time changed).
    pub fork_init: bool,
    pub new_user: bool,
    pub new_pid: bool,
    pub new_mount: bool,
    pub uid_map: String,
    pub gid_map: String,
    /// A rootless parent (or newuidmap/newgidmap for it) may write the maps
    /// only while the child's /proc files are the caller's: the child
    /// becomes non-dumpable once they are written (it is then in fresh
    /// namespaces where nothing of the container runs yet).
    pub dumpable_until_maps: bool,
    /// Contents for `/proc/self/timens_offsets`.
    pub time_offsets: String,
    /// The new network namespace comes from the parent after the clone
    /// ([`NsPlan::net_aside`]).
    pub net_from_parent: bool,
}

fn id_map(maps: Option<&Vec<oci_spec::runtime::LinuxIdMapping>>) -> String {
    maps.into_iter()
        .flatten()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// The name of a namespace type under `/proc/PID/ns/`.
fn proc_name(t: LinuxNamespaceType) -> &'static str {
    match t {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// The spec's name of a `CLONE_NEW*` flag, for errors.
fn type_name(flag: u64) -> String {
    [
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::User,
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Network,
        LinuxNamespaceType::Time,
    ]
    .into_iter()
    .find(|&t| clone_flag(t) == flag)
    .map(|t| t.to_string())
    .unwrap_or_else(|| format!("{flag:#x}"))
}

/// True when `fd` is the namespace rrun itself runs in (same device and
/// inode as `/proc/self/ns/NAME`).
fn is_own(fd: &std::fs::File, t: LinuxNamespaceType) -> Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let theirs = fd.metadata()?;
    let ours = std::fs::metadata(format!("/proc/self/ns/{}", proc_name(t)))?;
    Ok((theirs.dev(), theirs.ino()) == (ours.dev(), ours.ino()))
}

/// Opens a joined namespace and checks it is what the entry says: a
/// namespace file (`NS_GET_NSTYPE`) of the entry's type. A path of another
/// type would otherwise be joined as that other type (`ipc` →
/// `/proc/self/ns/mnt` puts the container in rrun's own mount namespace).
fn open_joined(i: usize, t: LinuxNamespaceType, p: &Path) -> Result<(std::fs::File, bool)> {
    let fd = std::fs::File::open(p)
        .with_context(|| format!("linux.namespaces[{i}].path {}: cannot open", p.display()))?;
    let want = clone_flag(t);
    match crate::sys::ns_type(fd.as_fd()) {
        Ok(got) if got == want => {}
        Ok(got) => bail!(
            "linux.namespaces[{i}].path {}: is a {} namespace, not {t}",
            p.display(),
            type_name(got)
        ),
        Err(e) => bail!(
            "linux.namespaces[{i}].path {}: not a namespace file ({e})",
            p.display()
        ),
    }
    let own = is_own(&fd, t).with_context(|| {
        format!(
            "linux.namespaces[{i}].path {}: cannot compare with rrun's own {t} namespace",
            p.display()
        )
    })?;
    Ok((fd, own))
}

/// Refuses configs that would make the container's setup act on the
/// namespaces rrun (and so its caller) runs in: mounts and pivot_root in
/// rrun's own mount namespace, the host's hostname, host sysctls, host
/// network interfaces renamed.
fn refuse_host_setup(spec: &Spec, shared: &[LinuxNamespaceType]) -> Result<()> {
    use LinuxNamespaceType::*;
    let shared_with_host = |t| shared.contains(&t);
    if shared_with_host(Mount) {
        bail!("linux.namespaces: the mount namespace is rrun's own (the caller's); the container's mounts and pivot_root would replace the host's root: refusing");
    }
    if shared_with_host(Uts) {
        for (field, v) in [
            ("hostname", spec.hostname()),
            ("domainname", spec.domainname()),
        ] {
            if v.as_ref().is_some_and(|h| !h.is_empty()) {
                bail!("{field}: the uts namespace is the host's; setting it would change the host's {field}: refusing");
            }
        }
    }
    let linux = spec.linux().as_ref();
    if let Some(map) = linux.and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = map.keys().collect();
        keys.sort();
        for key in keys {
            let t = if key.starts_with("net.") {
                Network
            } else if key.starts_with("kernel.hostname") || key.starts_with("kernel.domainname") {
                Uts
            } else {
                Ipc
            };
            if shared_with_host(t) {
                bail!("linux.sysctl {key}: the {t} namespace is the host's; setting it would change the host: refusing");
            }
        }
    }
    if shared_with_host(Network)
        && linux
            .and_then(|l| l.net_devices().as_ref())
            .is_some_and(|d| !d.is_empty())
    {
        bail!("linux.netDevices: the network namespace is the host's; the devices would be renamed on the host: refusing");
    }
    Ok(())
}

pub fn plan(spec: &Spec) -> Result<NsPlan> {
    let linux = spec.linux().as_ref();
    let mut new_flags = 0u64;
    let mut join = Vec::new();
    // Joined namespaces that are rrun's own. (Unlisted ones are shared
    // too; `spec::validate` refuses setting anything in those.)
    let mut shared = Vec::new();
    let listed: Vec<_> = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .collect();
    for (i, ns) in listed.iter().enumerate() {
        let flag = clone_flag(ns.typ());
        match ns.path() {
            None => new_flags |= flag,
            Some(p) => {
                let (fd, own) = open_joined(i, ns.typ(), p)?;
                if own {
                    shared.push(ns.typ());
                }
                join.push(Join {
                    flag,
                    fd: fd.into(),
                    path: p.clone(),
                });
            }
        }
    }
    refuse_host_setup(spec, &shared)?;
    // The user namespace is joined first: it decides what the rest may do.
    join.sort_by_key(|j| j.flag != libc::CLONE_NEWUSER as u64);
    let joins = |f: i32| join.iter().any(|j| j.flag == f as u64);
    let new_user = new_flags & libc::CLONE_NEWUSER as u64 != 0;
    let new_time = new_flags & crate::sys::CLONE_NEWTIME != 0;
    let two_stage = joins(libc::CLONE_NEWUSER)
        || joins(libc::CLONE_NEWPID)
        || (new_user && !join.is_empty())
        || new_time;
    let (clone_flags, unshare_flags) = if two_stage {
        (0, new_flags)
    } else {
        (new_flags, 0)
    };
    let fork_init = two_stage
        && (new_flags & (libc::CLONE_NEWPID as u64 | crate::sys::CLONE_NEWTIME) != 0
            || joins(libc::CLONE_NEWPID));
    let time_offsets = linux
        .and_then(|l| l.time_offsets().as_ref())
        .map(|offs| {
            let mut keys: Vec<_> = offs.keys().collect();
            keys.sort();
            keys.into_iter()
                .map(|k| {
                    let o = &offs[k];
                    format!(
                        "{k} {} {}\n",
                        o.secs().unwrap_or(0),
                        o.nanosecs().unwrap_or(0)
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(NsPlan {
        late_unshare: 0,
        clone_flags,
        unshare_flags,
        join,
        two_stage,
        fork_init,
        new_user,
        new_pid: new_flags & libc::CLONE_NEWPID as u64 != 0,
        new_mount: new_flags & libc::CLONE_NEWNS as u64 != 0,
        uid_map: id_map(linux.and_then(|l| l.uid_mappings().as_ref())),
        gid_map: id_map(linux.and_then(|l| l.gid_mappings().as_ref())),
        dumpable_until_maps: false,
        time_offsets,
        net_from_parent: false,
    })
}

impl NsPlan {
    /// Whether the new network namespace can be made by a helper while the
    /// parent plans (`launch::netns`), instead of by the clone: the clone
    /// would make it (one stage), and no user namespace, new or joined, is
    /// there to own it.
    pub fn can_make_net_aside(&self) -> bool {
        let user = libc::CLONE_NEWUSER as u64;
        self.clone_flags & libc::CLONE_NEWNET as u64 != 0
            && !self.two_stage
            && !self.new_user
            && !self.join.iter().any(|j| j.flag == user)
    }

    /// The clone makes no network namespace: the child gets one from the
    /// parent (the helper's) before the first mount that needs it
    /// (`sync::recv_net`).
    pub fn net_aside(&mut self) {
        self.clone_flags &= !(libc::CLONE_NEWNET as u64);
        self.net_from_parent = true;
    }

    /// Without CLONE_INTO_CGROUP the child joins its cgroup after the clone,
    /// so a new cgroup namespace must wait until then.
    pub fn defer_cgroup_namespace(&mut self) {
        let cg = libc::CLONE_NEWCGROUP as u64;
        if self.clone_flags & cg != 0 {
            self.clone_flags &= !cg;
            self.late_unshare |= cg;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(ns: serde_json::Value) -> Spec {
        let v = serde_json::json!({"ociVersion": "1.2.0", "linux": {"namespaces": ns,
            "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}],
            "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 10}]}});
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn new_namespaces_take_the_fast_path() {
        let p = plan(&spec(
            serde_json::json!([{"type": "pid"}, {"type": "mount"}, {"type": "user"}]),
        ))
        .unwrap();
        assert!(!p.two_stage);
        assert_eq!(
            p.clone_flags,
            (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUSER) as u64
        );
        assert_eq!(p.uid_map, "0 1000 10\n");
    }

    #[test]
    fn joining_a_pid_namespace_needs_two_stages_and_a_fork() {
        let p = plan(&spec(
            serde_json::json!([{"type": "pid", "path": "/proc/self/ns/pid"}, {"type": "mount"}]),
        ))
        .unwrap();
        assert!(p.two_stage && p.fork_init);
        assert_eq!(p.unshare_flags, libc::CLONE_NEWNS as u64);
    }

    #[test]
    fn joined_net_with_new_user_is_two_stage_and_user_goes_first() {
        let p = plan(&spec(serde_json::json!([
            {"type": "network", "path": "/proc/self/ns/net"},
            {"type": "user", "path": "/proc/self/ns/user"}
        ])))
        .unwrap();
        assert!(p.two_stage);
        assert_eq!(p.join[0].flag, libc::CLONE_NEWUSER as u64);
    }

    #[test]
    fn network_namespace_is_made_aside_only_without_a_user_namespace() {
        let aside = |ns: serde_json::Value| plan(&spec(ns)).unwrap().can_make_net_aside();
        assert!(aside(
            serde_json::json!([{"type": "network"}, {"type": "mount"}])
        ));
        // A user namespace must own it: the clone (or unshare) makes it.
        assert!(!aside(
            serde_json::json!([{"type": "network"}, {"type": "user"}, {"type": "mount"}])
        ));
        assert!(!aside(serde_json::json!([
            {"type": "network"},
            {"type": "user", "path": "/proc/self/ns/user"}
        ])));
        // Two stages (a time namespace): the first child unshares it.
        assert!(!aside(
            serde_json::json!([{"type": "network"}, {"type": "time"}])
        ));
        // No new one: nothing to make.
        assert!(!aside(serde_json::json!([{"type": "mount"}])));
        assert!(!aside(
            serde_json::json!([{"type": "network", "path": "/proc/self/ns/net"}])
        ));
        let mut p = plan(&spec(
            serde_json::json!([{"type": "network"}, {"type": "pid"}]),
        ))
        .unwrap();
        p.net_aside();
        assert!(p.net_from_parent);
        assert_eq!(p.clone_flags, libc::CLONE_NEWPID as u64);
    }

    #[test]
    fn missing_namespace_path_names_the_field() {
        let e = plan(&spec(
            serde_json::json!([{"type": "network", "path": "/nonexistent/ns"}]),
        ))
        .err()
        .unwrap();
        assert!(e.to_string().contains("linux.namespaces[0].path"));
    }
}
