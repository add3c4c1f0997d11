//! rrun: a fast, hardened OCI container runtime, drop-in for runc.
//!
//! The binary (`src/main.rs`) only parses the command line and dispatches;
//! the modules below are the runtime. They are a library so fuzz targets and
//! tests can reach the parsers and compilers directly.

pub mod cgroups;
pub mod checkpoint;
pub mod cli;
pub mod commands;
pub mod console;
pub mod criu;
pub mod dbus;
pub mod hooks;
pub mod image;
pub mod init;
pub mod launch;
pub mod logging;
pub mod plan;
pub mod rootfs;
pub mod security;
pub mod spec;
pub mod state;
pub mod sys;
pub mod timing;

/// The OCI runtime-spec version rrun implements.
pub const SPEC_VERSION: &str = "1.2.0";
