//! Command-line definitions: runc's flags and subcommands, parsed with clap.
//! Nothing here acts; `main` dispatches the parsed command.

pub mod fast;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rrun: a fast, hardened OCI container runtime, drop-in for runc.
#[derive(Parser, Debug)]
#[command(
    name = "rrun",
    about,
    disable_version_flag = true,
    subcommand_required = false
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// Print the version (and the runtime-spec version), like runc
    #[arg(short = 'v', long)]
    pub version: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags accepted before the command, as runc accepts them.
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Root directory for container state (`$XDG_RUNTIME_DIR/rrun` for an
    /// ordinary user)
    #[arg(long, global = true, default_value_os_t = crate::state::default_root())]
    pub root: PathBuf,
    /// Also write log messages to this file
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug messages
    #[arg(long, global = true)]
    pub debug: bool,
    /// Use systemd to manage cgroups: a transient unit per container
    #[arg(long, global = true)]
    pub systemd_cgroup: bool,
    /// Path to the criu binary (checkpoint, restore; default: criu in PATH)
    #[arg(long, global = true)]
    pub criu: Option<String>,
    /// Accepted for runc compatibility (auto|true|false); ignored
    #[arg(long = "rootless", hide = true)]
    pub rootless_mode: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

// (Plain comments on the Args structs below: with `defer`, a doc comment
// there would replace the variant's help text.)
// `defer`: only the subcommand being run gets its arguments built. clap
// otherwise builds all of them on every invocation, and that was the peak
// of rrun's heap during `run` (measured with perf on brk).
#[derive(Subcommand, Debug)]
#[command(defer = true)]
pub enum Command {
    /// Create a container: set it up and leave its process waiting for `start`
    Create(Create),
    /// Start the process of a created container
    Start { id: String },
    /// Create and start a container; in the foreground, wait for it and exit with its status
    Run(Run),
    /// Print the state of a container as JSON
    State { id: String },
    /// Send a signal to the container's init process (default TERM)
    Kill {
        /// Send the signal to every process of the container
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Delete a stopped container and everything it owned
    Delete {
        /// Kill the container first if it is still running
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        ids: Vec<String>,
    },
    /// List containers
    #[command(alias = "ls")]
    List {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Print only the container ids
        #[arg(short, long)]
        quiet: bool,
    },
    /// Run a new process inside a running container
    Exec(Box<Exec>),
    /// Suspend every process of the container (cgroup freezer)
    Pause { id: String },
    /// Resume a paused container
    Resume { id: String },
    /// List the processes of a container
    Ps {
        #[arg(short, long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
        /// Options passed to ps(1) (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Print container events: resource stats and OOM notifications
    Events {
        /// Print one stats event and exit
        #[arg(long)]
        stats: bool,
        /// Interval between stats events (e.g. 5s, 500ms)
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Change a running container's resource limits
    Update(Box<Update>),
    /// Print the features this runtime supports, as JSON
    Features,
    /// Save a container's writable layer as a layer tarball, a layer directory, or a new image
    Commit {
        /// Also add the layer to this OCI image layout as a new image (DIR:TAG)
        #[arg(long)]
        image: Option<String>,
        id: String,
        /// A .tar or .tar.gz layer, or a new directory (a layer to stack)
        output: Option<PathBuf>,
    },
    /// Make a bundle from an OCI image layout
    Bundle {
        /// The image: an OCI layout directory, optionally with :TAG
        #[arg(long)]
        image: String,
        /// The bundle directory to create
        bundle: PathBuf,
    },
    /// Checkpoint a running container with CRIU
    Checkpoint(Box<Checkpoint>),
    /// Restore a container from a CRIU checkpoint
    Restore(Box<Restore>),
    /// Write a default config.json
    Spec {
        /// Directory to write config.json into
        #[arg(short, long)]
        bundle: Option<PathBuf>,
        /// A configuration for a container run by an unprivileged user
        #[arg(long)]
        rootless: bool,
    },
}

// `exec`: runc's flags.
#[derive(Args, Debug, Clone, Default)]
pub struct Exec {
    /// A process.json (the OCI `process` object) to run
    #[arg(short, long)]
    pub process: Option<PathBuf>,
    /// Allocate a pseudo-terminal
    #[arg(short, long)]
    pub tty: bool,
    /// Unix socket that receives the pty master
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Do not wait for the process
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the process's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Environment variable KEY=VALUE (repeatable)
    #[arg(short, long)]
    pub env: Vec<String>,
    /// Working directory in the container
    #[arg(long)]
    pub cwd: Option<String>,
    /// uid[:gid] to run as
    #[arg(short, long)]
    pub user: Option<String>,
    /// Additional group ids (repeatable)
    #[arg(short = 'g', long)]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective and permitted sets (repeatable)
    #[arg(short, long)]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// AppArmor profile for the process
    #[arg(long)]
    pub apparmor: Option<String>,
    /// SELinux label for the process
    #[arg(long)]
    pub process_label: Option<String>,
    /// Pass N extra fds (3..3+N-1) to the process
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// Allow exec in a paused container
    #[arg(long)]
    pub ignore_paused: bool,
    /// Run the process in an existing sub-cgroup of the container's:
    /// PATH (every hierarchy) or CONTROLLER[,CONTROLLER..]:PATH (repeatable)
    #[arg(long = "cgroup")]
    pub cgroup: Vec<String>,
    pub id: String,
    /// The command and its arguments (when --process is not given)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

// `update`: runc's flags, or a LinuxResources JSON with `-r`.
#[derive(Args, Debug, Clone, Default)]
pub struct Update {
    /// LinuxResources JSON file to apply ("-" for stdin)
    #[arg(short, long)]
    pub resources: Option<String>,
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU quota in microseconds per period (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// Realtime runtime in microseconds per period (-1 for no limit)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    #[arg(long = "cpu-share", alias = "cpu-shares")]
    pub cpu_shares: Option<u64>,
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Memory limit (bytes, or with a k/m/g suffix; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit (-1 for unlimited swap)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    pub id: String,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListFormat {
    Table,
    Json,
}

// Flags shared by `create` and `run`.
#[derive(Args, Debug, Clone)]
pub struct Create {
    /// Path to the bundle directory (default: the current directory)
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// File to write the container's init pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Use MS_MOVE and chroot instead of pivot_root (for ramdisk roots)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass N extra fds (3..3+N-1) into the container
    #[arg(long, default_value_t = 0)]
    pub preserve_fds: u32,
    /// A read-only image layer directory for an overlay root (repeatable, top first)
    #[arg(long = "layer")]
    pub layers: Vec<PathBuf>,
    /// Keep the writable layer in DIR (DIR/diff) instead of discarding it on delete
    #[arg(long)]
    pub upper: Option<PathBuf>,
    pub id: String,
}

#[derive(Args, Debug, Clone)]
pub struct Run {
    #[command(flatten)]
    pub create: Create,
    /// Do not wait for the container: leave it running in the background
    #[arg(short, long)]
    pub detach: bool,
    /// Keep the container's state after it exits
    #[arg(long)]
    pub keep: bool,
}

// The CRIU flags `checkpoint` and `restore` share (runc's names).
#[derive(Args, Debug, Clone, Default)]
pub struct CriuOpts {
    /// Directory of CRIU's image files (default: ./checkpoint)
    #[arg(long)]
    pub image_path: Option<PathBuf>,
    /// Directory for CRIU's work files and log (default: the image directory)
    #[arg(long)]
    pub work_path: Option<PathBuf>,
    /// Allow established TCP connections
    #[arg(long)]
    pub tcp_established: bool,
    /// Allow external unix sockets
    #[arg(long)]
    pub ext_unix_sk: bool,
    /// Allow shell jobs
    #[arg(long)]
    pub shell_job: bool,
    /// Checkpoint and restore file locks
    #[arg(long)]
    pub file_locks: bool,
    /// cgroups mode: soft (default), full, strict or ignore
    #[arg(long)]
    pub manage_cgroups_mode: Option<String>,
    /// Namespace to create empty on restore, without its contents (repeatable; network)
    #[arg(long)]
    pub empty_ns: Vec<String>,
    /// Deduplicate memory images (against the parent's; as they are restored)
    #[arg(long)]
    pub auto_dedup: bool,
    /// Not supported by rrun (refused)
    #[arg(long, hide = true)]
    pub lazy_pages: bool,
}

// `checkpoint`: runc's flags. A flag given twice is accepted (Podman
// passes --leave-running twice).
#[derive(Args, Debug, Clone, Default)]
#[command(args_override_self = true)]
pub struct Checkpoint {
    #[command(flatten)]
    pub criu: CriuOpts,
    /// The previous (pre-dump) images, relative to the image directory
    #[arg(long)]
    pub parent_path: Option<PathBuf>,
    /// Leave the container running after the checkpoint
    #[arg(long)]
    pub leave_running: bool,
    /// Dump memory only and leave the container running (iterative migration)
    #[arg(long)]
    pub pre_dump: bool,
    /// Not supported by rrun (refused)
    #[arg(long, hide = true)]
    pub page_server: Option<String>,
    /// Not supported by rrun (refused)
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub status_fd: Option<i32>,
    pub id: String,
}

// `restore`: runc's flags.
#[derive(Args, Debug, Clone, Default)]
#[command(args_override_self = true)]
pub struct Restore {
    #[command(flatten)]
    pub criu: CriuOpts,
    /// Path to the bundle directory (default: the current directory)
    #[arg(short, long)]
    pub bundle: Option<PathBuf>,
    /// Do not wait for the restored container
    #[arg(short, long)]
    pub detach: bool,
    /// File to write the restored init's pid to
    #[arg(long)]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the new pty master of a container with a terminal
    #[arg(long)]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (CRIU restores the root as it was)
    #[arg(long)]
    pub no_pivot: bool,
    /// Accepted for runc compatibility: rrun does not become a subreaper
    #[arg(long)]
    pub no_subreaper: bool,
    /// LSM profile (TYPE:NAME) for the restored processes
    #[arg(long)]
    pub lsm_profile: Option<String>,
    /// Not supported by rrun (refused)
    #[arg(long, hide = true)]
    pub lsm_mount_context: Option<String>,
    pub id: String,
}
