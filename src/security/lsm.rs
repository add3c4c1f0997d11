//! Linux security module labels: an AppArmor profile or an SELinux process
//! label for the container's process, the SELinux label of its session
//! keyring, and the SELinux label of the file systems rrun mounts for it.
//!
//! Process and keyring labels are written through a private procfs instance
//! (never the container's `/proc`, which it could have replaced:
//! CVE-2023-27561, CVE-2025-52881). The attr directory is opened at the start
//! of the final steps (`init::process::prepare`), while the child is still
//! privileged and before a seccomp filter that may forbid `fsopen` is loaded.
//! The exec labels are written there too, once the executable is found:
//! `attr/exec` and `attr/apparmor/exec` take effect only at the next
//! `execve`, so nothing rrun does before it runs confined, and a profile that
//! is not loaded fails `create` or `exec` with an error naming the field
//! while the error can still reach the caller, instead of a container that
//! runs unconfined. (startContainer hooks, forked later, run under the
//! label, as with runc.)
//!
//! Asking for a label on a host without that LSM is an error; a
//! `linux.mountLabel` without SELinux is ignored, so no `context=` option
//! ever reaches a mount on such a host (runc breaks tmpfs mounts that way).

use std::ffi::{CStr, CString};
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

use crate::sys;

/// What to write, and where, before exec.
#[derive(Debug, Clone)]
pub struct Label {
    /// File below `/proc/PID/attr/`: `apparmor/exec` or `exec`.
    pub attr: &'static str,
    pub value: String,
    pub field: &'static str,
}

/// Whether AppArmor is enabled on this host.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Whether SELinux is enabled on this host (a policy is loaded and
/// selinuxfs is mounted where userspace expects it).
pub fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

const SELINUX_FIELD: &str = "process.selinuxLabel";

/// Parent side: checks the host has the LSM asked for.
pub fn prepare(apparmor: Option<&str>, selinux: Option<&str>) -> Result<Vec<Label>> {
    let mut out = Vec::new();
    if let Some(p) = apparmor.filter(|p| !p.is_empty()) {
        if !apparmor_enabled() {
            bail!("process.apparmorProfile {p:?}: AppArmor is not enabled on this host");
        }
        if p.contains(['\0', '\n']) {
            bail!("process.apparmorProfile {p:?}: contains a NUL or newline");
        }
        out.push(Label {
            attr: "apparmor/exec",
            value: format!("exec {p}"),
            field: "process.apparmorProfile",
        });
    }
    if let Some(l) = selinux.filter(|l| !l.is_empty()) {
        if !selinux_enabled() {
            bail!("{SELINUX_FIELD} {l:?}: SELinux is not enabled on this host");
        }
        if l.contains(['\0', '\n']) {
            bail!("{SELINUX_FIELD} {l:?}: contains a NUL or newline");
        }
        out.push(Label {
            attr: "exec",
            value: l.to_string(),
            field: SELINUX_FIELD,
        });
    }
    Ok(out)
}

/// Parent side: `linux.mountLabel` if it is to be applied, that is if the
/// host has SELinux; otherwise `None`, and mounts get no `context=`.
pub fn mount_label(label: Option<&str>) -> Result<Option<String>> {
    let Some(l) = label.filter(|l| !l.is_empty()) else {
        return Ok(None);
    };
    if !selinux_enabled() {
        crate::logging::debug(&format!(
            "linux.mountLabel {l:?}: SELinux is not enabled; no context= option on mounts"
        ));
        return Ok(None);
    }
    if l.contains(['\0', '\n', '"']) {
        bail!("linux.mountLabel {l:?}: contains a NUL, newline or quote");
    }
    Ok(Some(l.to_string()))
}

/// Child side: this process's `attr` directory in a private procfs, opened
/// while the process may still mount and open files.
pub struct ProcAttrs {
    dir: OwnedFd,
}

fn open_beneath(dir: impl AsFd, path: &CStr, flags: i32) -> std::io::Result<OwnedFd> {
    sys::openat2(
        dir.as_fd(),
        path,
        flags | libc::O_CLOEXEC,
        0,
        sys::RESOLVE_BENEATH | sys::RESOLVE_NO_SYMLINKS | sys::RESOLVE_NO_MAGICLINKS,
    )
}

impl ProcAttrs {
    pub fn open() -> Result<ProcAttrs> {
        let proc = sys::private_procfs().context("LSM labels: cannot open a private procfs")?;
        let path = CString::new(format!("{}/attr", std::process::id()))?;
        let dir = open_beneath(&proc, &path, libc::O_PATH | libc::O_DIRECTORY)
            .with_context(|| format!("LSM labels: cannot open /proc/{}", path.to_string_lossy()))?;
        Ok(ProcAttrs { dir })
    }

    fn write(&self, attr: &str, value: &str) -> std::io::Result<()> {
        let path = CString::new(attr)?;
        let fd = open_beneath(&self.dir, &path, libc::O_WRONLY)?;
        let n = nix::unistd::write(&fd, value.as_bytes())?;
        if n != value.len() {
            return Err(std::io::Error::from_raw_os_error(libc::EIO));
        }
        Ok(())
    }

    /// Writes the labels that the next `execve` of this process takes on.
    pub fn set_exec(&self, labels: &[Label]) -> Result<()> {
        for l in labels {
            self.write(l.attr, &l.value)
                .map_err(|e| apply_error(l.field, label_name(l), e))?;
        }
        Ok(())
    }

    /// Sets (or with `None`, clears) the SELinux label that keys this
    /// process creates get, so the session keyring has the container's
    /// label and not the runtime's.
    pub fn set_keycreate(&self, label: Option<&str>) -> Result<()> {
        let value = label.unwrap_or("\n");
        self.write("keycreate", value).map_err(|e| {
            apply_error(SELINUX_FIELD, label.unwrap_or(""), e)
                .context("cannot label the session keyring")
        })
    }
}

/// The SELinux process label among `labels`, if any.
pub fn selinux_label(labels: &[Label]) -> Option<&str> {
    labels
        .iter()
        .find(|l| l.field == SELINUX_FIELD)
        .map(|l| l.value.as_str())
}

fn label_name(l: &Label) -> &str {
    l.value.strip_prefix("exec ").unwrap_or(&l.value)
}

fn apply_error(field: &str, value: &str, e: std::io::Error) -> anyhow::Error {
    let why = match (field, e.raw_os_error()) {
        ("process.apparmorProfile", Some(libc::ENOENT)) => {
            "the profile is not loaded in the kernel".to_string()
        }
        (SELINUX_FIELD, Some(libc::EINVAL)) => {
            "not a valid context in the loaded SELinux policy".to_string()
        }
        _ => format!("cannot apply: {e}"),
    };
    anyhow::anyhow!("{field} {value:?}: {why}")
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
            assert_eq!(mount_label(Some("system_u:object_r:x_t:s0")).unwrap(), None);
        }
        assert!(prepare(None, None).unwrap().is_empty());
        assert!(prepare(Some(""), Some("")).unwrap().is_empty());
        assert_eq!(mount_label(Some("")).unwrap(), None);
    }

    #[test]
    fn errors_name_the_field_and_say_what_is_wrong() {
        let e = apply_error(
            "process.apparmorProfile",
            "nope",
            std::io::Error::from_raw_os_error(libc::ENOENT),
        )
        .to_string();
        assert!(e.contains("process.apparmorProfile \"nope\""), "{e}");
        assert!(e.contains("not") && e.contains("loaded"), "{e}");
        let e = apply_error(
            SELINUX_FIELD,
            "a:b:c",
            std::io::Error::from_raw_os_error(libc::EINVAL),
        )
        .to_string();
        assert!(e.contains("process.selinuxLabel \"a:b:c\""), "{e}");
    }
}
