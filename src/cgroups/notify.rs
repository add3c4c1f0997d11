//! OOM notifications for `rrun events`: the kernel tells us when the
//! container's memory cgroup runs out of memory, so nothing is polled.
//!
//! - cgroup v1: an eventfd registered for `memory.oom_control` through
//!   `cgroup.event_control`. The kernel signals it while the cgroup is under
//!   OOM (before a victim is killed) and once more when the cgroup is removed.
//! - cgroup v2: inotify on `memory.events`, whose `oom` and `oom_kill`
//!   counters the kernel bumps (the file notification follows shortly after,
//!   from a work queue, so the counters are the truth and the notification
//!   only says when to look).

use std::ffi::CString;
use std::fs;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::CgroupPaths;
use crate::sys;

enum Source {
    /// The eventfd, and `memory.oom_control` held open while registered.
    V1 { _control: fs::File },
    /// The inotify instance watching `memory.events`.
    V2,
}

/// A registration for the OOM notifications of one container's cgroup.
pub struct OomWatch {
    fd: OwnedFd,
    source: Source,
    dir: PathBuf,
    /// v2: the last `oom`/`oom_kill` counters seen.
    seen: (u64, u64),
}

/// `oom` and `oom_kill` from a v2 `memory.events`.
fn v2_counters(dir: &Path) -> (u64, u64) {
    let text = fs::read_to_string(dir.join("memory.events")).unwrap_or_default();
    let get = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0)
    };
    (get("oom"), get("oom_kill"))
}

impl OomWatch {
    /// Registers for the container's OOM notifications; `None` when it has
    /// no memory cgroup.
    pub fn new(paths: &CgroupPaths) -> Result<Option<OomWatch>> {
        if paths.unified {
            let Some(dir) = paths.v2() else {
                return Ok(None);
            };
            let file = dir.join("memory.events");
            if !file.exists() {
                return Ok(None);
            }
            let c = CString::new(file.as_os_str().as_bytes())?;
            let fd = sys::inotify_modify_watch(&c)
                .with_context(|| format!("cgroup {}: cannot watch", file.display()))?;
            return Ok(Some(OomWatch {
                fd,
                source: Source::V2,
                dir: dir.to_path_buf(),
                seen: v2_counters(dir),
            }));
        }
        let Some(dir) = paths.v1("memory") else {
            return Ok(None);
        };
        let control = fs::File::open(dir.join("memory.oom_control"))
            .with_context(|| format!("cgroup {}: cannot open memory.oom_control", dir.display()))?;
        let fd = sys::eventfd().context("eventfd")?;
        let line = format!("{} {}", fd.as_raw_fd(), control.as_raw_fd());
        fs::write(dir.join("cgroup.event_control"), line).with_context(|| {
            format!(
                "cgroup {}: cannot register for OOM notifications",
                dir.display()
            )
        })?;
        Ok(Some(OomWatch {
            fd,
            source: Source::V1 { _control: control },
            dir: dir.to_path_buf(),
            seen: (0, 0),
        }))
    }

    /// The fd that becomes readable when there may be news.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// True when an OOM happened since the last call (never blocks). Call it
    /// when [`OomWatch::fd`] is readable, and once more when the container
    /// has stopped: on v2 the notification may lag the counters.
    pub fn take(&mut self) -> Result<bool> {
        match self.source {
            Source::V1 { .. } => {
                let n = sys::eventfd_take(self.fd()).context("eventfd")?;
                // The eventfd also fires when the cgroup goes away.
                Ok(n > 0 && self.dir.join("cgroup.event_control").exists())
            }
            Source::V2 => {
                sys::drain(self.fd()).context("inotify")?;
                let now = v2_counters(&self.dir);
                let new = now.0 > self.seen.0 || now.1 > self.seen.1;
                self.seen = (now.0.max(self.seen.0), now.1.max(self.seen.1));
                Ok(new)
            }
        }
    }
}
