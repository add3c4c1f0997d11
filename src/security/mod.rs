//! Process security settings: capabilities and no_new_privs (seccomp and LSM
//! labels join here).

pub mod caps;
