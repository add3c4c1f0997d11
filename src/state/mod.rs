//! The state store: one directory per container under `--root`, holding
//! `state.json` (written atomically) and, while the container is `created`,
//! the `exec.fifo` that `start` opens.
//!
//! A container's status is derived, never stored: its init process is alive
//! (same pid *and* same start time, so a reused pid is not mistaken for it)
//! and the fifo exists → `created`; alive without the fifo → `running`
//! (`paused` when its cgroup is frozen); otherwise `stopped`.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use crate::cgroups::CgroupPaths;

pub const STATE_FILE: &str = "state.json";
pub const EXEC_FIFO: &str = "exec.fifo";

/// What rrun remembers about a container between invocations. Small, so
/// `start`, `state`, `kill` and `delete` never re-read config.json.
#[derive(Serialize, Deserialize, Debug, Clone, Default)]
pub struct Container {
    pub id: String,
    /// Host pid of the container's init process.
    pub pid: i32,
    /// Start time of the init process (clock ticks since boot).
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    pub owner: String,
    #[serde(default)]
    pub oci_version: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    /// The cgroup directories rrun created for this container.
    #[serde(default)]
    pub cgroups: CgroupPaths,
    /// Whether the container has its own pid namespace (then killing init
    /// kills every process in it).
    #[serde(default)]
    pub own_pid_ns: bool,
    /// config.json's `hooks` (poststart and poststop run after create).
    #[serde(default)]
    pub hooks: Option<oci_spec::runtime::Hooks>,
    /// The overlay layers of the root, when it is stacked from image layers.
    #[serde(default)]
    pub layers: Option<crate::rootfs::overlay::Layers>,
    /// The container's state directory (not stored; set when loaded).
    #[serde(skip)]
    pub state_dir: PathBuf,
    /// The caller's NOTIFY_SOCKET, to forward the container's readiness to.
    #[serde(default)]
    pub notify_socket: Option<PathBuf>,
    /// config.json's `linux.seccomp`, applied to `exec` too.
    #[serde(default)]
    pub seccomp: Option<oci_spec::runtime::LinuxSeccomp>,
    /// config.json's `linux.personality`, applied to `exec` too.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub personality: Option<oci_spec::runtime::LinuxPersonality>,
    /// config.json's `process`, the defaults of `exec`.
    #[serde(default)]
    pub process: serde_json::Value,
    /// True while `create` is still making the container. The record is
    /// written before anything is made (and again as each thing is made),
    /// so a `create` killed half-way leaves a record that `delete` can
    /// clean up from.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub creating: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Checks a container id the way runc does: letters, digits, `_+-.`, and
/// not `.` or `..`, so it is always one safe path component.
pub fn validate_id(id: &str) -> Result<()> {
    let ok_chars = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.'));
    if id.is_empty() || !ok_chars || id == "." || id == ".." || id.len() > 1024 {
        bail!("invalid container id {id:?}: use letters, digits and _+-. only");
    }
    Ok(())
}

/// The default `--root`: `/run/rrun`, or `$XDG_RUNTIME_DIR/rrun` for an
/// ordinary user (and for root of a user namespace other than the host's
/// unless `USER=root`), as runc picks `$XDG_RUNTIME_DIR/runc`.
pub fn default_root() -> PathBuf {
    let xdg = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty());
    // SAFETY: geteuid cannot fail.
    let euid = unsafe { libc::geteuid() };
    let honour = euid != 0
        || (crate::sys::in_user_namespace() && std::env::var("USER").map_or(true, |u| u != "root"));
    match xdg {
        Some(d) if honour => Path::new(&d).join("rrun"),
        _ => PathBuf::from("/run/rrun"),
    }
}

/// The state root (`--root`).
pub struct Store {
    pub root: PathBuf,
}

/// A container's state directory, locked for the lifetime of this value.
pub struct Locked {
    pub dir: PathBuf,
    _lock: File,
}

impl Store {
    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.root.join(id)
    }

    /// Creates the state directory of a new container, failing if the id is
    /// taken.
    pub fn create_dir(&self, id: &str) -> Result<Locked> {
        validate_id(id)?;
        // An ordinary user's root is theirs alone (runc: 0700 too).
        let mode = if crate::sys::rootless() { 0o700 } else { 0o711 };
        fs::DirBuilder::new()
            .recursive(true)
            .mode(mode)
            .create(&self.root)
            .with_context(|| format!("--root {}: cannot create", self.root.display()))?;
        let dir = self.dir(id);
        match fs::DirBuilder::new().mode(0o711).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                bail!("container with id exists: {id}")
            }
            Err(e) => return Err(e).with_context(|| format!("{}: cannot create", dir.display())),
        }
        lock(&dir)
    }

    /// Locks an existing container's directory.
    pub fn open(&self, id: &str) -> Result<Locked> {
        let dir = self.existing(id)?;
        lock(&dir).map_err(|_| anyhow::anyhow!("container {id} does not exist"))
    }

    /// The state directory of an existing container the caller owns. An
    /// ordinary user sharing a `--root` with others never reads, signals or
    /// deletes a container another uid made (root may).
    pub fn existing(&self, id: &str) -> Result<PathBuf> {
        validate_id(id)?;
        let dir = self.dir(id);
        if !dir.join(STATE_FILE).exists() {
            bail!("container {id} does not exist");
        }
        if let Some(uid) = foreign_owner(&dir) {
            // SAFETY: geteuid cannot fail.
            let me = unsafe { libc::geteuid() };
            bail!("container {id} belongs to uid {uid}, not to the caller (uid {me}): refusing");
        }
        Ok(dir)
    }

    /// True when `id`'s state directory exists and belongs to another uid
    /// than the (non-root) caller's.
    pub fn foreign(&self, id: &str) -> bool {
        foreign_owner(&self.dir(id)).is_some()
    }

    /// Ids of all containers, sorted.
    pub fn list(&self) -> Result<Vec<String>> {
        let mut ids = Vec::new();
        let entries = match fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ids),
            Err(e) => return Err(e).with_context(|| format!("{}", self.root.display())),
        };
        for entry in entries.flatten() {
            if entry.path().join(STATE_FILE).exists() && foreign_owner(&entry.path()).is_none() {
                ids.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        ids.sort();
        Ok(ids)
    }
}

/// The owner of a state directory when it is not the (non-root) caller.
fn foreign_owner(dir: &Path) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid cannot fail.
    let me = unsafe { libc::geteuid() };
    if me == 0 {
        return None;
    }
    let owner = fs::metadata(dir).ok()?.uid();
    (owner != me).then_some(owner)
}

fn lock(dir: &Path) -> Result<Locked> {
    let f = File::open(dir).with_context(|| format!("{}: cannot open", dir.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
        return Err(std::io::Error::last_os_error())
            .with_context(|| format!("{}: cannot lock", dir.display()));
    }
    Ok(Locked {
        dir: dir.to_path_buf(),
        _lock: f,
    })
}

impl Locked {
    pub fn load(&self) -> Result<Container> {
        let path = self.dir.join(STATE_FILE);
        let text = fs::read(&path).with_context(|| format!("{}: cannot read", path.display()))?;
        let mut c: Container = serde_json::from_slice(&text)
            .with_context(|| format!("{}: corrupt", path.display()))?;
        c.state_dir = self.dir.clone();
        Ok(c)
    }

    pub fn save(&self, c: &Container) -> Result<()> {
        replace_atomic(&self.dir.join(STATE_FILE), &serde_json::to_vec(c)?, 0o600)
    }

    /// The lock's fd number (a cloned child must close its copy, or the
    /// lock would outlive this process).
    pub fn lock_fd(&self) -> std::os::fd::RawFd {
        self._lock.as_raw_fd()
    }

    pub fn fifo(&self) -> PathBuf {
        self.dir.join(EXEC_FIFO)
    }

    /// Removes the state directory and everything in it: usually only
    /// state.json is left (two calls); anything else (a notify socket, an
    /// overlay's upper layer) by walking the directory.
    pub fn remove(self) -> Result<()> {
        let _ = fs::remove_file(self.dir.join(STATE_FILE));
        if fs::remove_dir(&self.dir).is_ok() {
            return Ok(());
        }
        fs::remove_dir_all(&self.dir)
            .with_context(|| format!("{}: cannot remove", self.dir.display()))
    }
}

/// Writes a regular file of rrun's own atomically, as [`write_atomic`],
/// but replaces an existing one by exchanging the two
/// (`renameat2(RENAME_EXCHANGE)`) and unlinking the old one, not by
/// renaming over it: ext4 (`auto_da_alloc`) writes a file renamed over
/// another out to disk at once, 0.2-3 ms per state write measured on this
/// project's development VM, where an exchanged one stays in the page cache
/// (and is usually unlinked by `delete` before it is ever written). Readers
/// see the old or the new file, whole, either way. Falls back to `rename`
/// where the file system cannot exchange, and when there is nothing to
/// replace.
pub fn replace_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_then(path, data, mode, |tmp| {
        use std::os::unix::ffi::OsStrExt;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes()).map_err(std::io::Error::other)
        };
        let (from, to) = (c(tmp)?, c(path)?);
        // SAFETY: two NUL-terminated paths, relative to the cwd. (A raw
        // system call: musl has no `renameat2` wrapper.)
        let r = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if r == 0 {
            // `tmp` now holds the old version.
            return fs::remove_file(tmp);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENOENT | libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS) => {
                fs::rename(tmp, path)
            }
            _ => Err(e),
        }
    })
}

/// Writes a file atomically: a temp file in the same directory, then rename.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> Result<()> {
    write_then(path, data, mode, |tmp| fs::rename(tmp, path))
}

/// Writes `data` to a temp file beside `path` (mode `mode`) and hands it to
/// `put`, which moves it into place; on any error the temp file goes and
/// the error names `path`.
fn write_then(
    path: &Path,
    data: &[u8],
    mode: u32,
    put: impl FnOnce(&Path) -> std::io::Result<()>,
) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        drop(f);
        put(&tmp)
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        anyhow::anyhow!("{}: cannot write: {e}", path.display())
    })
}

impl Container {
    /// The record `create` and `restore` write before they make anything
    /// (status `creating`): what the bundle says, and the cgroups about to
    /// be made, so `delete --force` finds all of it after a kill.
    pub fn creating(
        id: &str,
        bundle: &crate::spec::Bundle,
        state_dir: PathBuf,
        cgroups: CgroupPaths,
    ) -> Result<Container> {
        let spec = &bundle.spec;
        let linux = spec.linux().as_ref();
        Ok(Container {
            id: id.to_string(),
            bundle: bundle.dir.clone(),
            rootfs: bundle.rootfs.clone(),
            created: crate::logging::rfc3339_now(),
            oci_version: spec.version().clone(),
            annotations: spec.annotations().clone().unwrap_or_default(),
            cgroups,
            process: serde_json::to_value(spec.process())?,
            hooks: spec.hooks().clone(),
            state_dir,
            seccomp: linux.and_then(|l| l.seccomp().clone()),
            personality: linux.and_then(|l| l.personality().clone()),
            creating: true,
            ..Default::default()
        })
    }
}

impl Container {
    /// True when the init process recorded here still runs (not a zombie,
    /// and not a new process that reused the pid).
    pub fn init_alive(&self) -> bool {
        if self.pid <= 0 {
            return false;
        }
        match crate::sys::process_start_time(self.pid) {
            Ok(start) if start == self.pid_start => !matches!(
                crate::sys::process_state(self.pid),
                Ok('Z') | Ok('X') | Err(_)
            ),
            _ => false,
        }
    }

    pub fn status(&self, dir: &Path) -> Status {
        if !self.init_alive() {
            return Status::Stopped;
        }
        if self.creating {
            // Still being made, or its `create` died half-way: `delete`
            // (which waits for the lock a live `create` holds) cleans up.
            return Status::Creating;
        }
        if dir.join(EXEC_FIFO).exists() {
            return Status::Created;
        }
        if crate::cgroups::is_frozen(&self.cgroups) {
            return Status::Paused;
        }
        Status::Running
    }

    /// The OCI state, with runc's extra fields, as `rrun state` prints it.
    pub fn oci_state(&self, status: Status) -> OciState<'_> {
        OciState {
            oci_version: &self.oci_version,
            id: &self.id,
            pid: if status == Status::Stopped {
                0
            } else {
                self.pid
            },
            status: status.as_str(),
            bundle: &self.bundle,
            rootfs: &self.rootfs,
            created: &self.created,
            annotations: &self.annotations,
            owner: String::new(),
        }
    }
}

impl Container {
    /// The state JSON hooks receive on stdin.
    pub fn hook_state(&self, status: Status) -> Vec<u8> {
        serde_json::to_vec(&self.oci_state(status)).unwrap_or_default()
    }
}

/// The state JSON, its fields in runc's order.
#[derive(Serialize, Debug)]
pub struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    pub oci_version: &'a str,
    pub id: &'a str,
    pub pid: i32,
    pub status: &'a str,
    pub bundle: &'a Path,
    pub rootfs: &'a Path,
    pub created: &'a str,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub annotations: &'a HashMap<String, String>,
    pub owner: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_runc_rules() {
        for ok in ["a", "A-b_c.d+e", "0123", "x..y"] {
            validate_id(ok).unwrap();
        }
        for bad in ["", ".", "..", "a/b", "a b", "ü", "a\0"] {
            assert!(validate_id(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn a_dead_pid_is_stopped() {
        let c = Container {
            pid: i32::MAX - 1,
            ..Default::default()
        };
        assert_eq!(c.status(Path::new("/nonexistent")), Status::Stopped);
    }

    #[test]
    fn stopped_state_reports_pid_zero() {
        let c = Container {
            id: "x".into(),
            pid: 42,
            ..Default::default()
        };
        assert_eq!(c.oci_state(Status::Stopped).pid, 0);
        assert_eq!(c.oci_state(Status::Running).pid, 42);
        let v = serde_json::to_value(c.oci_state(Status::Running)).unwrap();
        assert!(
            v.get("annotations").is_none(),
            "empty annotations are omitted"
        );
    }
}
