//! Process security settings: capabilities, seccomp, LSM labels and
//! no_new_privs.

pub mod caps;
pub mod lsm;
pub mod seccomp;
mod syscall_table;
mod syscalls_i386;
mod syscalls_x86_64;
