//! Process security settings: capabilities, seccomp and no_new_privs.

pub mod caps;
pub mod seccomp;
mod syscalls_x86_64;
