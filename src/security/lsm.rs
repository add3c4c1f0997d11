//! Linux security module labels: an AppArmor profile or an SELinux process
//! label for the container's process, written just before `execve` through a
//! private procfs instance (never the container's `/proc`, which it could
//! have replaced: CVE-2023-27561, CVE-2025-52881).
//!
//! Asking for a label on a host without that LSM is an error; a
//! `linux.mountLabel` without SELinux is ignored, so no `context=` option
//! ever reaches a mount on such a host (runc breaks tmpfs mounts that way).

use std::ffi::CString;
use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::sys;

/// What to write, and where, before exec.
#[derive(Debug, Clone)]
pub struct Label {
    /// Path below a procfs root, e.g. `1/attr/apparmor/exec` (pid filled in
    /// by the child).
    pub attr: &'static str,
    pub value: String,
    pub field: &'static str,
}

fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Parent side: checks the host has the LSM asked for.
pub fn prepare(apparmor: Option<&str>, selinux: Option<&str>) -> Result<Vec<Label>> {
    let mut out = Vec::new();
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        if !apparmor_enabled() {
            bail!("process.apparmorProfile {p:?}: AppArmor is not enabled on this host");
        }
        out.push(Label {
            attr: "attr/apparmor/exec",
            value: format!("exec {p}"),
            field: "process.apparmorProfile",
        });
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            bail!("process.selinuxLabel {l:?}: SELinux is not enabled on this host");
        }
        out.push(Label {
            attr: "attr/exec",
            value: l.to_string(),
            field: "process.selinuxLabel",
        });
    }
    Ok(out)
}

/// Child side: writes the labels for the next `execve` of this process.
pub fn apply(labels: &[Label]) -> Result<()> {
    if labels.is_empty() {
        return Ok(());
    }
    let proc = sys::private_procfs().context("LSM labels: cannot open a private procfs")?;
    let pid = std::process::id();
    for l in labels {
        let path = CString::new(format!("{pid}/{}", l.attr))?;
        let fd = sys::openat2(
            proc.as_fd(),
            &path,
            libc::O_WRONLY,
            0,
            sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
        )
        .with_context(|| format!("{}: cannot open {}", l.field, path.to_string_lossy()))?;
        nix::unistd::write(&fd, l.value.as_bytes())
            .with_context(|| format!("{} {:?}: cannot apply", l.field, l.value))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_on_a_host_without_the_lsm_are_errors() {
        if !apparmor_enabled() {
            let e = prepare(Some("docker-default"), None)
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("process.apparmorProfile") && e.contains("not enabled"),
                "{e}"
            );
        }
        if !selinux_enabled() {
            let e = prepare(None, Some("system_u:system_r:container_t:s0"))
                .unwrap_err()
                .to_string();
            assert!(e.contains("process.selinuxLabel"), "{e}");
        }
        assert!(prepare(None, None).unwrap().is_empty());
        assert!(prepare(Some(""), Some("")).unwrap().is_empty());
    }
}
