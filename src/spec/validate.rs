//! Cross-field checks of a parsed spec. Each error names the field.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

/// The namespace a sysctl belongs to, as the kernel scopes them. Sysctls
/// outside any namespace would change the host and are refused.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

/// Checks what can be checked before anything is created.
pub fn validate(spec: &Spec) -> Result<()> {
    if let Some(res) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) {
        crate::cgroups::resources::check(res)?;
    }
    let process = match spec.process() {
        Some(p) => p,
        None => bail!("process: missing"),
    };
    match process.args() {
        Some(a) if !a.is_empty() && !a[0].is_empty() => {}
        _ => bail!("process.args: must name the program to run"),
    }
    if !process.cwd().is_absolute() {
        bail!(
            "process.cwd {}: must be an absolute path",
            process.cwd().display()
        );
    }
    if let Some(rlimits) = process.rlimits() {
        let mut seen = HashSet::new();
        for (i, r) in rlimits.iter().enumerate() {
            if !seen.insert(format!("{:?}", r.typ())) {
                bail!("process.rlimits[{i}]: {:?} is set twice", r.typ());
            }
            if r.soft() > r.hard() {
                bail!(
                    "process.rlimits[{i}]: soft limit {} is above hard limit {}",
                    r.soft(),
                    r.hard()
                );
            }
        }
    }

    let linux = spec.linux().as_ref();
    let namespaces = linux.and_then(|l| l.namespaces().as_ref());
    let mut have = HashSet::new();
    if let Some(nss) = namespaces {
        for (i, ns) in nss.iter().enumerate() {
            if !have.insert(ns.typ()) {
                bail!("linux.namespaces[{i}]: {} namespace listed twice", ns.typ());
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    bail!(
                        "linux.namespaces[{i}].path {}: must be absolute",
                        p.display()
                    );
                }
            }
        }
    }
    let has = |t: LinuxNamespaceType| have.contains(&t);
    let new_ns = |t: LinuxNamespaceType| {
        namespaces
            .map(|n| n.iter().any(|ns| ns.typ() == t && ns.path().is_none()))
            .unwrap_or(false)
    };

    if let Some(l) = linux {
        let maps = l.uid_mappings().as_ref().is_some_and(|m| !m.is_empty())
            || l.gid_mappings().as_ref().is_some_and(|m| !m.is_empty());
        if new_ns(LinuxNamespaceType::User) {
            if l.uid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
                bail!("linux.uidMappings: a new user namespace needs uid mappings");
            }
            if l.gid_mappings().as_ref().is_none_or(|m| m.is_empty()) {
                bail!("linux.gidMappings: a new user namespace needs gid mappings");
            }
        } else if maps && !has(LinuxNamespaceType::User) {
            bail!("linux.uidMappings: id mappings need a user namespace in linux.namespaces");
        }
        if let Some(sysctl) = l.sysctl() {
            let mut keys: Vec<_> = sysctl.keys().collect();
            keys.sort();
            for key in keys {
                match sysctl_namespace(key) {
                    Some(ns) if has(ns) => {}
                    Some(ns) => bail!(
                        "linux.sysctl {key}: needs its own {ns} namespace, which the container does not have"
                    ),
                    None => bail!(
                        "linux.sysctl {key}: not in a namespace the container owns; it would change the host"
                    ),
                }
                if key.contains("..") || key.starts_with('/') {
                    bail!("linux.sysctl {key}: not a valid sysctl name");
                }
            }
        }
        if l.net_devices().as_ref().is_some_and(|d| !d.is_empty())
            && !new_ns(LinuxNamespaceType::Network)
            && !namespaces
                .is_some_and(|n| n.iter().any(|ns| ns.typ() == LinuxNamespaceType::Network))
        {
            bail!("linux.netDevices: moving devices needs a network namespace in linux.namespaces");
        }
        if let Some(offsets) = l.time_offsets() {
            if !offsets.is_empty() && !new_ns(LinuxNamespaceType::Time) {
                bail!("linux.timeOffsets: needs a new time namespace in linux.namespaces");
            }
            for clock in offsets.keys() {
                if clock != "monotonic" && clock != "boottime" {
                    bail!("linux.timeOffsets {clock}: unknown clock (monotonic or boottime)");
                }
            }
        }
        if let Some(p) = l.rootfs_propagation() {
            if crate::rootfs::propagation_flag(p).is_none() {
                bail!("linux.rootfsPropagation {p}: unknown propagation");
            }
        }
        for (field, paths) in [
            ("linux.maskedPaths", l.masked_paths()),
            ("linux.readonlyPaths", l.readonly_paths()),
        ] {
            for p in paths.iter().flatten() {
                if !p.starts_with('/') {
                    bail!("{field} {p}: must be an absolute path");
                }
            }
        }
        for (i, d) in l.devices().iter().flatten().enumerate() {
            if !d.path().is_absolute() {
                bail!(
                    "linux.devices[{i}].path {}: must be absolute",
                    d.path().display()
                );
            }
        }
    }
    if spec.hostname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        bail!("hostname: setting it needs a uts namespace in linux.namespaces");
    }
    if spec.domainname().as_ref().is_some_and(|h| !h.is_empty()) && !has(LinuxNamespaceType::Uts) {
        bail!("domainname: setting it needs a uts namespace in linux.namespaces");
    }
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            bail!(
                "mounts[{i}].destination {}: must be an absolute path",
                m.destination().display()
            );
        }
        if m.destination() == Path::new("/") {
            bail!("mounts[{i}].destination: cannot mount over the container's root");
        }
        // config.md "POSIX-platform Mounts": each MUST come with the other;
        // the container's own mappings do not stand in for a missing one.
        match (m.uid_mappings().is_some(), m.gid_mappings().is_some()) {
            (true, false) => {
                bail!("mounts[{i}].gidMappings: missing; uidMappings must come with gidMappings")
            }
            (false, true) => {
                bail!("mounts[{i}].uidMappings: missing; gidMappings must come with uidMappings")
            }
            _ => {}
        }
    }
    if let Some(hooks) = spec.hooks() {
        for kind in crate::hooks::Kind::ALL {
            for (i, h) in kind.of(hooks).iter().enumerate() {
                let field = format!("hooks.{}[{i}]", kind.name());
                if !h.path().is_absolute() {
                    bail!(
                        "{field}.path {}: must be an absolute path",
                        h.path().display()
                    );
                }
                if let Some(t) = h.timeout().filter(|&t| t <= 0) {
                    bail!("{field}.timeout {t}: must be greater than zero");
                }
            }
        }
    }
    if spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key(""))
    {
        bail!("annotations: a key is empty");
    }
    if linux.is_some_and(|l| l.intel_rdt().is_some()) {
        // Ignoring it would run the container outside the resctrl group it
        // asks for (runtime.md "create": what cannot be applied MUST fail).
        bail!("linux.intelRdt: not supported: rrun has no Intel RDT (resctrl) support");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_with(linux: serde_json::Value) -> Spec {
        let v = serde_json::json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": linux,
        });
        crate::spec::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    #[test]
    fn net_sysctl_needs_network_namespace() {
        let s = spec_with(serde_json::json!({
            "namespaces": [{"type": "mount"}],
            "sysctl": {"net.ipv4.ip_forward": "1"}
        }));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.contains("net.ipv4.ip_forward"), "{e}");
        let s = spec_with(serde_json::json!({
            "namespaces": [{"type": "network"}],
            "sysctl": {"net.ipv4.ip_forward": "1"}
        }));
        validate(&s).unwrap();
    }

    #[test]
    fn host_sysctl_is_refused() {
        let s = spec_with(serde_json::json!({
            "namespaces": [{"type": "network"}, {"type": "ipc"}, {"type": "uts"}],
            "sysctl": {"vm.swappiness": "1"}
        }));
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("vm.swappiness"));
    }

    #[test]
    fn user_namespace_needs_mappings() {
        let s = spec_with(serde_json::json!({"namespaces": [{"type": "user"}]}));
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("uidMappings"));
    }

    /// A minimal valid spec with `extra`'s top-level fields added.
    fn spec_plus(extra: serde_json::Value) -> Spec {
        let mut v = serde_json::json!({
            "ociVersion": "1.2.0",
            "process": {"args": ["sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
            "root": {"path": "rootfs"},
            "linux": {"namespaces": [{"type": "mount"}, {"type": "user"}],
                      "uidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}],
                      "gidMappings": [{"containerID": 0, "hostID": 1000, "size": 1}]},
        });
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        crate::spec::parse(&serde_json::to_vec(&v).unwrap()).unwrap()
    }

    fn refusal(extra: serde_json::Value) -> String {
        validate(&spec_plus(extra)).unwrap_err().to_string()
    }

    #[test]
    fn hook_path_must_be_absolute_and_timeout_above_zero() {
        let e = refusal(serde_json::json!({"hooks": {"prestart": [{"path": "true"}]}}));
        assert!(e.starts_with("hooks.prestart[0].path true:"), "{e}");
        for t in [0, -5] {
            let e = refusal(serde_json::json!({"hooks": {
                "poststop": [{"path": "/bin/true", "timeout": 1}, {"path": "/bin/true", "timeout": t}]
            }}));
            assert!(
                e.starts_with(&format!("hooks.poststop[1].timeout {t}:")),
                "{e}"
            );
        }
        validate(&spec_plus(serde_json::json!({"hooks": {
            "createContainer": [{"path": "/bin/true", "timeout": 1}]
        }})))
        .unwrap();
    }

    #[test]
    fn empty_annotation_key_is_refused() {
        let e = refusal(serde_json::json!({"annotations": {"": "x"}}));
        assert!(e.starts_with("annotations:"), "{e}");
        validate(&spec_plus(serde_json::json!({"annotations": {"a": ""}}))).unwrap();
    }

    #[test]
    fn mount_id_mappings_come_in_pairs() {
        let map = serde_json::json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
        let mount = |k: &str| {
            let mut m = serde_json::json!({"destination": "/m", "type": "bind", "source": "/tmp", "options": ["bind", "idmap"]});
            m[k] = map.clone();
            serde_json::json!({"mounts": [{"destination": "/x", "type": "tmpfs"}, m]})
        };
        let e = refusal(mount("uidMappings"));
        assert!(e.starts_with("mounts[1].gidMappings: missing"), "{e}");
        let e = refusal(mount("gidMappings"));
        assert!(e.starts_with("mounts[1].uidMappings: missing"), "{e}");
        let mut both = mount("uidMappings");
        both["mounts"][1]["gidMappings"] = map.clone();
        validate(&spec_plus(both)).unwrap();
    }

    #[test]
    fn intel_rdt_is_refused() {
        let s = spec_with(serde_json::json!({"intelRdt": {"closID": "g"}}));
        let e = validate(&s).unwrap_err().to_string();
        assert!(e.starts_with("linux.intelRdt:"), "{e}");
    }

    #[test]
    fn duplicate_namespace_is_refused() {
        let s = spec_with(serde_json::json!({"namespaces": [{"type": "pid"}, {"type": "pid"}]}));
        assert!(validate(&s)
            .unwrap_err()
            .to_string()
            .contains("linux.namespaces[1]"));
    }
}
