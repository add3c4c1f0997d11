//! The commands that act on existing containers: `state`, `kill`, `delete`,
//! `list`, `spec` and `features`; `cgroup` has the cgroup-driven ones. They
//! read the small state file, never config.json.

pub mod cgroup;
mod features;
pub use features::features;

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::cgroups;
use crate::cli::{Global, ListFormat};
use crate::state::{Container, Locked, Status, Store};
use crate::sys;

pub fn state(global: &Global, id: &str) -> Result<()> {
    let store = Store::new(&global.root);
    let dir = store.existing(id)?;
    let text = std::fs::read(dir.join(crate::state::STATE_FILE))
        .map_err(|_| anyhow::anyhow!("container {id} does not exist"))?;
    let c: Container = serde_json::from_slice(&text)?;
    let status = c.status(&dir);
    println!("{}", serde_json::to_string_pretty(&c.oci_state(status))?);
    Ok(())
}

/// Parses a signal the way runc does: `KILL`, `SIGKILL`, `kill` or `9`;
/// `0` checks that the process exists without signalling it.
pub fn parse_signal(s: &str) -> Result<i32> {
    if let Ok(n) = s.parse::<i32>() {
        if (0..=64).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal {s:?}");
    }
    let upper = s.to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .map(|sig| sig as i32)
        .map_err(|_| anyhow::anyhow!("invalid signal {s:?}"))
}

/// Signals the init process through a pidfd checked against the recorded
/// start time, so a recycled pid is never signalled.
fn signal_init(c: &Container, sig: i32) -> Result<()> {
    let pidfd = sys::pidfd_open(c.pid).context("container process is gone")?;
    if sys::process_start_time(c.pid).ok() != Some(c.pid_start) {
        bail!("container not running");
    }
    sys::pidfd_send_signal(pidfd.as_ref_fd(), sig).context("cannot signal container process")
}

trait AsRefFd {
    fn as_ref_fd(&self) -> std::os::fd::BorrowedFd<'_>;
}
impl AsRefFd for std::os::fd::OwnedFd {
    fn as_ref_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        self.as_fd()
    }
}

pub fn kill(global: &Global, id: &str, signal: Option<&str>, all: bool) -> Result<()> {
    let sig = parse_signal(signal.unwrap_or("SIGTERM"))?;
    let store = Store::new(&global.root);
    let locked = store.open(id)?;
    let c = locked.load()?;
    if sig == 0 {
        // Only a check that the container runs, with or without --all.
        if c.status(&locked.dir) == Status::Stopped {
            bail!("container not running");
        }
        return signal_init(&c, 0);
    }
    if all {
        // Also after init exited: what is left in its cgroup (processes of a
        // container sharing another's pid namespace) still gets the signal,
        // as the containerd shim expects.
        for pid in container_pids(&c)? {
            sys::kill_positive(pid, sig);
        }
        return Ok(());
    }
    if c.status(&locked.dir) == Status::Stopped {
        bail!("container not running");
    }
    signal_init(&c, sig)
}

/// Every process of the container: its cgroup's, or, for a container
/// without cgroups (rootless, the tree not writable), its init and the
/// processes in init's pid namespace or below init (the processes `exec`
/// started are in the namespace; init's children are below it).
pub(crate) fn container_pids(c: &Container) -> Result<Vec<i32>> {
    // A create killed before its first process: none was ever the
    // container's, and its cgroups were not yet checked to be its own
    // (see `kill_everything`).
    if c.pid == 0 {
        return Ok(Vec::new());
    }
    if !c.cgroups.dirs.is_empty() {
        return cgroups::pids(&c.cgroups);
    }
    if !c.init_alive() {
        return Ok(Vec::new());
    }
    let ns_of = |pid: i32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
    let init_ns = ns_of(c.pid).filter(|_| c.own_pid_ns);
    let mut parents = Vec::new();
    for e in std::fs::read_dir("/proc")?.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // After the command name: state, then the parent's pid.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok())
            .unwrap_or(0);
        parents.push((pid, ppid));
    }
    let mut pids = vec![c.pid];
    loop {
        let before = pids.len();
        for &(pid, ppid) in &parents {
            if pids.contains(&pid) {
                continue;
            }
            let in_ns = init_ns.is_some() && ns_of(pid) == init_ns;
            if in_ns || pids.contains(&ppid) {
                pids.push(pid);
            }
        }
        if pids.len() == before {
            break;
        }
    }
    pids.sort();
    Ok(pids)
}

/// Waits until the init process is gone and the cgroup is empty.
fn wait_gone(c: &Container, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        let procs_left = cgroups::pids(&c.cgroups)
            .map(|p| !p.is_empty())
            .unwrap_or(false);
        if !c.init_alive() && !procs_left {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// Removes everything a stopped container owned: its cgroups and state.
pub fn destroy(locked: Locked, c: &Container) -> Result<()> {
    if c.pid == 0 {
        // A create killed before its first process: nothing ran, and what
        // its cgroups hold is someone else's (see `kill_everything`).
        cgroups::remove_unstarted(&c.cgroups, &c.id)?;
    } else {
        if !wait_gone(c, Duration::from_secs(5)) {
            cgroups::signal_all(&c.cgroups, libc::SIGKILL)?;
            if !wait_gone(c, Duration::from_secs(10)) {
                bail!("container {}: processes did not exit", c.id);
            }
        }
        cgroups::remove(&c.cgroups)?;
    }
    locked.remove()?;
    crate::hooks::run_all_warn(
        c.hooks.as_ref(),
        crate::hooks::Kind::Poststop,
        &c.hook_state(Status::Stopped),
    );
    Ok(())
}

pub fn delete(global: &Global, ids: &[String], force: bool) -> Result<()> {
    let store = Store::new(&global.root);
    let mut first_err = None;
    for id in ids {
        if let Err(e) = delete_one(&store, id, force) {
            if ids.len() > 1 {
                crate::logging::error(&format!("{e:#}"));
            }
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) if ids.len() == 1 => Err(e),
        Some(_) => bail!("some containers could not be deleted"),
        None => Ok(()),
    }
}

fn delete_one(store: &Store, id: &str, force: bool) -> Result<()> {
    let locked = match store.open(id) {
        Ok(l) => l,
        // runc: deleting a missing container with --force succeeds.
        Err(_) if force && crate::state::validate_id(id).is_ok() && !store.foreign(id) => {
            let dir = store.dir(id);
            if dir.exists() {
                let _ = std::fs::remove_dir_all(&dir);
            }
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let c = locked.load()?;
    match c.status(&locked.dir) {
        Status::Stopped => {}
        // Holding the lock, a container still `creating` is one whose
        // create was killed half-way: what it made goes, as for `created`.
        Status::Created | Status::Creating => kill_everything(&c),
        status if force => {
            if status == Status::Paused {
                thaw(&c);
            }
            kill_everything(&c)
        }
        status => bail!("cannot delete container {id} that is not stopped: {status}"),
    }
    destroy(locked, &c)
}

fn kill_everything(c: &Container) {
    // A create killed before its first process existed (no pid recorded)
    // has no process to kill: its cgroup may not yet have been checked for
    // holding someone else's (`cgroups::create`), so it is left alone.
    if c.pid == 0 {
        return;
    }
    let _ = signal_init(c, libc::SIGKILL);
    let _ = cgroups::signal_all(&c.cgroups, libc::SIGKILL);
}

fn thaw(c: &Container) {
    for dir in &c.cgroups.dirs {
        let _ = std::fs::write(dir.join("freezer.state"), "THAWED");
        if c.cgroups.unified {
            let _ = std::fs::write(dir.join("cgroup.freeze"), "0");
        }
    }
}

pub fn list(global: &Global, format: ListFormat, quiet: bool) -> Result<()> {
    let store = Store::new(&global.root);
    let mut rows = Vec::new();
    for id in store.list()? {
        let dir = store.dir(&id);
        let Ok(text) = std::fs::read(dir.join(crate::state::STATE_FILE)) else {
            continue;
        };
        let Ok(c) = serde_json::from_slice::<Container>(&text) else {
            continue;
        };
        let status = c.status(&dir);
        rows.push((c, status));
    }
    let mut out = std::io::stdout().lock();
    if quiet {
        for (c, _) in &rows {
            writeln!(out, "{}", c.id)?;
        }
        return Ok(());
    }
    match format {
        ListFormat::Json => {
            let owner = owner_name();
            let v: Vec<_> = rows
                .iter()
                .map(|(c, s)| {
                    let mut v = c.oci_state(*s);
                    v.owner = owner.clone();
                    v
                })
                .collect();
            writeln!(out, "{}", serde_json::to_string(&v)?)?;
        }
        ListFormat::Table => {
            let mut table = vec![[
                "ID".to_string(),
                "PID".into(),
                "STATUS".into(),
                "BUNDLE".into(),
                "CREATED".into(),
                "OWNER".into(),
            ]];
            for (c, s) in &rows {
                let pid = if *s == Status::Stopped { 0 } else { c.pid };
                table.push([
                    c.id.clone(),
                    pid.to_string(),
                    s.to_string(),
                    c.bundle.display().to_string(),
                    c.created.clone(),
                    owner_name(),
                ]);
            }
            write!(out, "{}", format_table(&table))?;
        }
    }
    Ok(())
}

fn owner_name() -> String {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    // Read /etc/passwd directly: rrun is linked statically (musl), without
    // the host's NSS modules.
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| {
                let f: Vec<&str> = l.split(':').collect();
                (f.len() > 2 && f[2].parse::<u32>().ok() == Some(uid)).then(|| f[0].to_string())
            })
        })
        .unwrap_or_else(|| format!("#{uid}"))
}

/// Columns padded like Go's tabwriter with minwidth 12, padding 3.
fn format_table(rows: &[[String; 6]]) -> String {
    let mut widths = [0usize; 6];
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            widths[i] = widths[i].max(cell.len() + 3).max(12);
        }
    }
    let mut s = String::new();
    for r in rows {
        for (i, cell) in r.iter().enumerate() {
            if i == 5 {
                s.push_str(cell);
            } else {
                s.push_str(&format!("{cell:<w$}", w = widths[i]));
            }
        }
        s.push('\n');
    }
    s
}

pub fn spec(bundle: Option<&Path>, rootless: bool) -> Result<()> {
    let dir = bundle.unwrap_or(Path::new("."));
    let path = dir.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let text = serde_json::to_string_pretty(&crate::spec::default_spec(rootless))?;
    std::fs::write(&path, text + "\n").with_context(|| format!("{}: cannot write", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signals_parse_like_runc() {
        assert_eq!(parse_signal("KILL").unwrap(), 9);
        assert_eq!(parse_signal("SIGKILL").unwrap(), 9);
        assert_eq!(parse_signal("kill").unwrap(), 9);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert_eq!(parse_signal("TERM").unwrap(), 15);
        assert!(parse_signal("NOPE").is_err());
        assert_eq!(parse_signal("0").unwrap(), 0);
        assert!(parse_signal("65").is_err());
    }

    #[test]
    fn table_pads_columns() {
        let rows = [
            ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from),
            ["c1", "42", "running", "/b", "t", "root"].map(String::from),
        ];
        let t = format_table(&rows);
        assert!(
            t.starts_with("ID          PID         STATUS      BUNDLE      CREATED     OWNER\n"),
            "{t}"
        );
    }
}
