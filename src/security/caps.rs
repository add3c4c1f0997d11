//! Capabilities: the spec's five sets turned into kernel bit masks in the
//! parent, applied in the child with `prctl` and `capset` only.
//!
//! Inheritable and ambient sets are filled only from the spec's own lists,
//! never implied by the others (CVE-2022-29162).

use std::collections::HashSet;
use std::io;

use oci_spec::runtime::{Capability, LinuxCapabilities};

use crate::sys::{self, CapSets};

/// The five capability sets as masks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CapPlan {
    pub bounding: u64,
    pub effective: u64,
    pub permitted: u64,
    pub inheritable: u64,
    pub ambient: u64,
    /// Highest capability number the running kernel knows.
    pub last_cap: u32,
}

/// The kernel's number for a capability (`CAP_KILL` → 5).
fn kernel_index(cap: Capability) -> Option<u32> {
    let name = serde_json::to_value(cap).ok()?;
    let cap: caps::Capability = name.as_str()?.parse().ok()?;
    Some(cap.index() as u32)
}

fn mask(set: &Option<HashSet<Capability>>, last_cap: u32) -> u64 {
    let mut m = 0u64;
    for cap in set.iter().flatten() {
        let Some(idx) = kernel_index(*cap) else {
            continue;
        };
        if idx <= last_cap {
            m |= 1 << idx;
        } else {
            crate::logging::warn(&format!(
                "capability {cap} is not known to the running kernel; ignored"
            ));
        }
    }
    m
}

/// Highest capability number of the running kernel.
pub fn last_cap() -> u32 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

impl CapPlan {
    pub fn from_spec(c: &LinuxCapabilities, last_cap: u32) -> CapPlan {
        CapPlan {
            bounding: mask(c.bounding(), last_cap),
            effective: mask(c.effective(), last_cap),
            permitted: mask(c.permitted(), last_cap),
            inheritable: mask(c.inheritable(), last_cap),
            ambient: mask(c.ambient(), last_cap),
            last_cap,
        }
    }

    /// The ambient capabilities the process will not get, which config.md
    /// wants logged as warnings. The kernel raises an ambient capability
    /// only if it is permitted and inheritable (the child skips the others,
    /// as runc does); that matters to a process of another user than root:
    /// root's execve grants it every capability of the bounding set anyway
    /// (runc's default config lists ambient capabilities but no inheritable
    /// ones), so for root only the ones outside the bounding set count.
    pub fn ambient_not_granted(&self, uid: u32) -> u64 {
        let not_raised = self.ambient_not_raised();
        if uid == 0 {
            not_raised & !self.bounding
        } else {
            not_raised
        }
    }

    /// Warns about each of [`CapPlan::ambient_not_granted`].
    pub fn warn_ambient_not_granted(&self, uid: u32) {
        let missing = self.ambient_not_granted(uid);
        if missing == 0 {
            return;
        }
        for cap in caps::all() {
            if missing & (1 << cap.index()) != 0 {
                crate::logging::warn(&format!(
                    "process.capabilities.ambient: {cap} is not both permitted and inheritable; not raised"
                ));
            }
        }
    }

    /// The ambient capabilities the kernel will refuse to raise.
    pub fn ambient_not_raised(&self) -> u64 {
        self.ambient & !(self.permitted & self.inheritable)
    }

    /// Drops everything outside the bounding set. Needs CAP_SETPCAP, so it
    /// runs before the uid change.
    pub fn apply_bounding(&self) -> io::Result<()> {
        for cap in 0..=self.last_cap {
            if self.bounding & (1 << cap) == 0 {
                match sys::prctl(libc::PR_CAPBSET_DROP, cap as u64) {
                    Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                    r => r?,
                }
            }
        }
        Ok(())
    }

    /// Sets effective, permitted and inheritable, then raises the ambient
    /// set (which must be a subset of permitted and inheritable).
    pub fn apply_sets(&self) -> io::Result<()> {
        sys::capset(&CapSets {
            effective: self.effective,
            permitted: self.permitted,
            inheritable: self.inheritable,
        })?;
        sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as u64)?;
        for cap in 0..=self.last_cap {
            if self.ambient & (1 << cap) != 0 {
                // SAFETY: integer arguments only.
                let r = unsafe {
                    libc::prctl(
                        libc::PR_CAP_AMBIENT,
                        libc::PR_CAP_AMBIENT_RAISE as u64,
                        cap as u64,
                        0u64,
                        0u64,
                    )
                };
                if r != 0 {
                    let e = io::Error::last_os_error();
                    // Like runc: an ambient cap outside permitted/inheritable is skipped.
                    if e.raw_os_error() != Some(libc::EPERM) {
                        return Err(e);
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_follow_kernel_numbers_and_sets_stay_separate() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_CHOWN","CAP_KILL"],"effective":["CAP_KILL"],"permitted":["CAP_KILL"]}"#,
        )
        .unwrap();
        let p = CapPlan::from_spec(&c, 40);
        assert_eq!(p.bounding, (1 << 0) | (1 << 5));
        assert_eq!(p.effective, 1 << 5);
        assert_eq!(p.inheritable, 0, "inheritable must not be implied");
        assert_eq!(p.ambient, 0, "ambient must not be implied");
    }

    #[test]
    fn ambient_caps_not_both_permitted_and_inheritable_are_the_ones_not_raised() {
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"permitted":["CAP_KILL","CAP_CHOWN"],"inheritable":["CAP_CHOWN","CAP_SETUID"],
                "ambient":["CAP_KILL","CAP_CHOWN","CAP_SETUID"]}"#,
        )
        .unwrap();
        let p = CapPlan::from_spec(&c, 40);
        // KILL is not inheritable, SETUID not permitted; CHOWN (0) is both.
        assert_eq!(p.ambient_not_raised(), (1 << 5) | (1 << 7));
        assert_eq!(p.ambient_not_granted(1000), (1 << 5) | (1 << 7));
        // Root gets the bounding set at execve: none listed here, so
        // every one not raised is missing; with KILL bounding, only SETUID.
        assert_eq!(p.ambient_not_granted(0), (1 << 5) | (1 << 7));
        let c: LinuxCapabilities = serde_json::from_str(
            r#"{"bounding":["CAP_KILL"],"permitted":["CAP_KILL"],"ambient":["CAP_KILL","CAP_SETUID"]}"#,
        )
        .unwrap();
        let p = CapPlan::from_spec(&c, 40);
        assert_eq!(p.ambient_not_granted(0), 1 << 7);
        assert_eq!(p.ambient_not_granted(1000), (1 << 5) | (1 << 7));
    }

    #[test]
    fn caps_beyond_the_kernel_are_dropped() {
        let c: LinuxCapabilities =
            serde_json::from_str(r#"{"bounding":["CAP_CHECKPOINT_RESTORE"]}"#).unwrap();
        assert_eq!(CapPlan::from_spec(&c, 39).bounding, 0);
        assert_eq!(CapPlan::from_spec(&c, 40).bounding, 1 << 40);
    }
}
