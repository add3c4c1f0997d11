//! The plan: everything a container's processes need, parsed, checked,
//! resolved and opened by the parent before any clone.
//!
//! `launch` (the parent) builds a [`Plan`]; `init` (the child between clone
//! and execve) only reads it and makes syscalls. Both depend on this module
//! and neither on the other's internals: `launch` calls `init` to run the
//! child, `init` never reaches back into `launch`. The sync channel they
//! talk over lives here too.

pub mod namespaces;
pub mod process;
pub mod sync;

use std::ffi::CString;
use std::os::fd::{OwnedFd, RawFd};

use crate::rootfs::RootfsPlan;
use namespaces::NsPlan;
use process::ProcessPlan;

/// Everything the child needs, prepared before the clone.
pub struct Plan {
    pub id: String,
    pub ns: NsPlan,
    pub rootfs: RootfsPlan,
    pub process: ProcessPlan,
    pub hostname: Option<CString>,
    pub domainname: Option<CString>,
    /// `(path below /proc, value)`, e.g. `("sys/net/ipv4/ip_forward", "1")`.
    pub sysctls: Vec<(CString, String)>,
    /// The exec fifo, opened read-write: init blocks reading it until `start`.
    pub fifo: OwnedFd,
    /// The state-directory lock; the child closes its copy at once.
    pub lock_fd: RawFd,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
    /// rrun's own pid: the child dies with it until it is ready.
    pub parent_pid: i32,
    /// Where the pty master goes when process.terminal is set: the engine's
    /// console socket, or rrun's own end for a foreground `run`.
    pub console: Option<OwnedFd>,
    pub console_size: Option<(u16, u16)>,
    /// The spec's hooks (the child runs createContainer and startContainer).
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// Whether the child stops before pivot_root for the hooks.
    pub hooks_before_pivot: bool,
    /// Host interfaces to move into the container: (index, host name, new name).
    pub net_devices: Vec<(i32, String, String)>,
    /// The v1 cgroups' `tasks` files the child writes itself into.
    pub cgroup_tasks: Vec<(std::fs::File, std::path::PathBuf)>,
    /// Whether the child waits for the parent's `Go` before anything else:
    /// only when the parent has something to do to it first (write its id
    /// maps, or move it into its cgroup2 directory when the kernel refused
    /// `CLONE_INTO_CGROUP`). Otherwise the child starts its setup at once,
    /// while the parent records its pid.
    pub wait_go: bool,
    /// With `process.seccomp_later`: the read end of the pipe the parent
    /// writes the compiled profile into after the clone.
    pub seccomp_pipe: Option<OwnedFd>,
}
