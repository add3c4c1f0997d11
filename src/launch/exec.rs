//! `exec`: a new process in a running container. It joins every namespace
//! the container has of its own (user first; pid and time need one more
//! fork, except that a pid namespace alone is joined by rrun for its child,
//! which then starts in it), joins its cgroup, and gets the container's
//! process settings (or those of `--process`), then runs the same final
//! steps as init.

use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::fs::MetadataExt;

use anyhow::{bail, Context, Result};
use nix::sys::signal::Signal;
use oci_spec::runtime::{Process, Spec};
use serde_json::{json, Value};

use crate::cgroups;
use crate::cli::{Exec, Global};
use crate::plan::process::{self, ProcessPlan};
use crate::plan::sync::{self, Msg};
use crate::state::{Status, Store};
use crate::sys::{self, CloneArgs, Forked};

/// Namespace kinds in the order they are joined (user first: it decides
/// what the others allow).
const KINDS: [(&str, i32); 8] = [
    ("user", libc::CLONE_NEWUSER),
    ("ipc", libc::CLONE_NEWIPC),
    ("uts", libc::CLONE_NEWUTS),
    ("net", libc::CLONE_NEWNET),
    ("pid", libc::CLONE_NEWPID),
    ("cgroup", libc::CLONE_NEWCGROUP),
    ("time", 0x80),
    ("mnt", libc::CLONE_NEWNS),
];

/// The container's namespaces that differ from ours, opened.
fn namespaces(pid: i32) -> Result<Vec<(&'static str, i32, OwnedFd)>> {
    let mut out = Vec::new();
    for (name, flag) in KINDS {
        let theirs = format!("/proc/{pid}/ns/{name}");
        let Ok(meta) = std::fs::metadata(&theirs) else {
            continue;
        };
        let ours = std::fs::metadata(format!("/proc/self/ns/{name}")).ok();
        if ours.is_some_and(|o| o.ino() == meta.ino() && o.dev() == meta.dev()) {
            continue;
        }
        let fd = std::fs::File::open(&theirs).with_context(|| format!("{theirs}: cannot open"))?;
        out.push((name, flag, fd.into()));
    }
    Ok(out)
}

/// The process to run: `--process`, or the container's own with the flags
/// applied (as runc does).
fn process_value(e: &Exec, base: &Value) -> Result<Value> {
    if let Some(path) = &e.process {
        let text = std::fs::read(path).with_context(|| format!("--process {}", path.display()))?;
        let mut p: Value = serde_json::from_slice(&text)
            .with_context(|| format!("--process {}", path.display()))?;
        // Without `user` the process runs as root (uid 0, gid 0), as runc's.
        if p.is_object() && p.get("user").is_none() {
            p["user"] = json!({"uid": 0, "gid": 0});
        }
        return Ok(p);
    }
    if e.command.is_empty() {
        bail!("exec: no command given (use --process or give the command after the id)");
    }
    let mut p = if base.is_object() {
        base.clone()
    } else {
        json!({"cwd": "/", "user": {"uid": 0, "gid": 0}})
    };
    p["args"] = json!(e.command);
    p["terminal"] = json!(e.tty);
    if !e.env.is_empty() {
        let mut env: Vec<Value> = p["env"].as_array().cloned().unwrap_or_default();
        env.extend(e.env.iter().map(|s| json!(s)));
        p["env"] = Value::Array(env);
    }
    if let Some(cwd) = &e.cwd {
        p["cwd"] = json!(cwd);
    }
    if let Some(user) = &e.user {
        let (uid, gid) = match user.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (user.as_str(), None),
        };
        p["user"]["uid"] = json!(uid
            .parse::<u32>()
            .with_context(|| format!("--user {user}: uid must be a number"))?);
        if let Some(g) = gid {
            p["user"]["gid"] = json!(g
                .parse::<u32>()
                .with_context(|| format!("--user {user}: gid must be a number"))?);
        }
    }
    if !e.additional_gids.is_empty() {
        p["user"]["additionalGids"] = json!(e.additional_gids);
    }
    if !e.cap.is_empty() {
        // Added to bounding, effective and permitted only: never inheritable
        // or ambient (CVE-2022-29162).
        for set in ["bounding", "effective", "permitted"] {
            let mut caps: Vec<Value> = p["capabilities"][set]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for c in &e.cap {
                let name = if c.to_ascii_uppercase().starts_with("CAP_") {
                    c.to_ascii_uppercase()
                } else {
                    format!("CAP_{}", c.to_ascii_uppercase())
                };
                if !caps.iter().any(|x| x == &json!(name)) {
                    caps.push(json!(name));
                }
            }
            p["capabilities"][set] = Value::Array(caps);
        }
    }
    if e.no_new_privs {
        p["noNewPrivileges"] = json!(true);
    }
    if let Some(a) = &e.apparmor {
        p["apparmorProfile"] = json!(a);
    }
    if let Some(l) = &e.process_label {
        p["selinuxLabel"] = json!(l);
    }
    Ok(p)
}

/// The cgroups an exec'd process enters: the container's, or with
/// `--cgroup` existing sub-cgroups of them (runc 1.2's flag): `PATH` for
/// every hierarchy, or `CONTROLLER[,CONTROLLER..]:PATH` for the v1
/// hierarchies of those controllers. A path is relative to the container's
/// cgroup (a leading `/` too) and may not contain `..`.
fn sub_cgroups(paths: &cgroups::CgroupPaths, args: &[String]) -> Result<cgroups::CgroupPaths> {
    let mut out = paths.clone();
    // For each hierarchy (index into `dirs`): the sub-path and its flag.
    let mut chosen: Vec<Option<(std::path::PathBuf, &str)>> = vec![None; paths.dirs.len()];
    for arg in args {
        let (ctrls, path) = match arg.split_once(':') {
            Some((c, p)) => (Some(c), p),
            None if args.len() == 1 => (None, arg.as_str()),
            None => bail!("--cgroup {arg}: give CONTROLLER:PATH when there are several --cgroup"),
        };
        let mut sub = std::path::PathBuf::new();
        for c in std::path::Path::new(path).components() {
            match c {
                std::path::Component::Normal(n) => sub.push(n),
                std::path::Component::RootDir | std::path::Component::CurDir => {}
                _ => bail!("--cgroup {arg}: '..' would leave the container's cgroup"),
            }
        }
        let hierarchies: Vec<usize> = match ctrls {
            None => (0..paths.dirs.len()).collect(),
            Some(list) => {
                let mut v = Vec::new();
                for ctrl in list.split(',') {
                    if ctrl.is_empty() {
                        bail!("--cgroup {arg}: empty controller name");
                    }
                    let i = paths
                        .controllers
                        .iter()
                        .position(|cs| cs.iter().any(|c| c == ctrl))
                        .with_context(|| {
                            format!("--cgroup {arg}: unknown controller {ctrl} (not a v1 hierarchy of this container)")
                        })?;
                    v.push(i);
                }
                v
            }
        };
        for i in hierarchies {
            match &chosen[i] {
                Some((other, flag)) if *other != sub => bail!(
                    "--cgroup {arg}: {} already gets {} from --cgroup {flag}",
                    paths.dirs[i].display(),
                    other.display()
                ),
                _ => chosen[i] = Some((sub.clone(), arg.as_str())),
            }
        }
    }
    for (i, c) in chosen.into_iter().enumerate() {
        let Some((sub, arg)) = c else { continue };
        let dir = paths.dirs[i].join(&sub);
        if !dir.is_dir() {
            bail!(
                "--cgroup {arg}: cgroup {} does not exist (create it first)",
                dir.display()
            );
        }
        out.dirs[i] = dir;
    }
    Ok(out)
}

struct ExecPlan {
    /// State JSON (for a seccomp notify listener).
    state: String,
    console: Option<OwnedFd>,
    console_size: Option<(u16, u16)>,
    joins: Vec<(&'static str, i32, OwnedFd)>,
    fork: bool,
    process: ProcessPlan,
    preserve_fds: u32,
    id: String,
    /// The container's v1 cgroups' `tasks` files (see `cgroups::Entry`).
    cgroup_tasks: Vec<(std::fs::File, std::path::PathBuf)>,
    /// Wait for the parent's `Go`: it moves the process into its cgroup2
    /// directory first (when the kernel refused `CLONE_INTO_CGROUP`).
    wait_go: bool,
}

pub fn exec(global: &Global, e: &Exec) -> Result<i32> {
    let store = Store::new(&global.root);
    let locked = store.open(&e.id)?;
    let c = locked.load()?;
    match c.status(&locked.dir) {
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Creating => bail!("cannot exec in a container that is still being created"),
        Status::Paused if !e.ignore_paused => bail!("cannot exec in a paused container"),
        _ => {}
    }
    drop(locked);
    crate::timing::mark("exec: state loaded");
    let mut pv = process_value(e, &c.process)?;
    crate::spec::drop_unknown_capabilities(&mut pv, "process");
    let proc: Process = serde_path_to_error::deserialize(pv)
        .map_err(|err| anyhow::anyhow!("process {}: {}", err.path(), err.inner()))?;
    let terminal = proc.terminal().unwrap_or(false);
    let console = match (&e.console_socket, terminal) {
        (Some(_), false) => {
            bail!("--console-socket given but the process has no terminal (use -t)")
        }
        (Some(path), true) => (Some(crate::console::connect(path)?), None),
        (None, true) if !e.detach => {
            let (a, b) = std::os::unix::net::UnixStream::pair()?;
            (Some(OwnedFd::from(a)), Some(OwnedFd::from(b)))
        }
        (None, true) => bail!("cannot allocate a tty for a detached exec without --console-socket"),
        (None, false) => (None, None),
    };
    let console_size = proc
        .console_size()
        .map(|b| (b.height() as u16, b.width() as u16))
        .or_else(|| {
            if console.1.is_some() {
                crate::console::own_winsize()
            } else {
                None
            }
        });
    if proc.args().as_ref().is_none_or(|a| a.is_empty()) {
        bail!("process.args: must name the program to run");
    }
    let mut spec = Spec::default();
    spec.set_process(Some(proc));
    // The container's seccomp profile and personality apply to exec'd
    // processes too.
    let mut linux = oci_spec::runtime::Linux::default();
    linux.set_seccomp(c.seccomp.clone());
    linux.set_personality(c.personality.clone());
    linux.set_namespaces(None);
    spec.set_linux(Some(linux));
    let root: OwnedFd = std::fs::File::open(format!("/proc/{}/root", c.pid))
        .context("cannot open the container's root")?
        .into();
    let process = process::prepare(&spec, root.as_fd())?;
    drop(root);
    let mut joins = namespaces(c.pid)?;
    crate::timing::mark("exec: process planned, namespaces opened");
    // Joining a pid namespace puts only the joiner's children in it: the
    // process must be a child of a joiner. rrun itself joins it "for
    // children" (`pid_for_children`; its own pid namespace does not
    // change) just around the clone, so the child starts in it and need
    // not fork again. Not with a user namespace to join (rrun's rights
    // there are the child's business) or a time namespace (which needs
    // the fork anyway), and only where rrun may return to its own pid
    // namespace afterwards: setns needs CAP_SYS_ADMIN in the user namespace
    // that owns it, which a rootless rrun (in Podman's user namespace, say)
    // does not have.
    let pid_ns_here = match joins.iter().position(|(n, _, _)| *n == "pid") {
        Some(i)
            if !joins.iter().any(|(n, _, _)| *n == "user" || *n == "time")
                && owns_own_pid_namespace() =>
        {
            Some(joins.remove(i).2)
        }
        _ => None,
    };
    let fork = joins.iter().any(|(n, _, _)| *n == "pid" || *n == "time");
    let mut plan = ExecPlan {
        state: String::from_utf8_lossy(&c.hook_state(Status::Running)).into_owned(),
        console: console.0,
        console_size,
        joins,
        fork,
        process,
        preserve_fds: e.preserve_fds,
        id: c.id.clone(),
        cgroup_tasks: Vec::new(),
        wait_go: false,
    };
    if !e.detach {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)?;
    }
    // Block forwarded signals before the process exists (see run).
    let sfd = if e.detach {
        None
    } else {
        Some(super::block_signals()?)
    };
    let cgroup_paths = sub_cgroups(&c.cgroups, &e.cgroup)?;
    let entry = cgroups::prepare_entry(&cgroup_paths)?;
    plan.cgroup_tasks = entry.tasks;
    let mut args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    let sock = sync::pair()?;
    let ours = match &pid_ns_here {
        Some(theirs) => {
            let ours = std::fs::File::open("/proc/self/ns/pid_for_children")
                .context("cannot open rrun's pid namespace")?;
            sys::setns(theirs.as_fd(), libc::CLONE_NEWPID)
                .context("cannot join the container's pid namespace")?;
            Some(ours)
        }
        None => None,
    };
    let cloned = super::clone_entering(&mut args, entry.clone_into.as_ref(), |_| {
        plan.wait_go = true
    });
    if let Some(ours) = ours {
        // In the child nothing is to be undone: it is where it must be.
        if !matches!(cloned, Ok((Forked::Child, _))) {
            sys::setns(ours.as_fd(), libc::CLONE_NEWPID)
                .context("cannot return to rrun's pid namespace")?;
        }
    }
    let (first, into_cgroup) = cloned.context("clone3 failed")?;
    let first = match first {
        Forked::Child => {
            drop(sock.0);
            child(&plan, sock.1)
        }
        Forked::Parent { pid } => pid,
    };
    crate::timing::mark("exec: clone3 returned");
    drop(sock.1);
    plan.cgroup_tasks.clear();
    let kill_first = || {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(first), Signal::SIGKILL);
        let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
    };
    if entry.clone_into.is_some() && !into_cgroup {
        if let Err(err) = cgroups::add_pid_v2(&cgroup_paths, first) {
            kill_first();
            return Err(err);
        }
    }
    if plan.wait_go {
        sync::send(&sock.0, &Msg::Go)?;
    }
    let mut pid = first;
    // Only a forked process is told apart from the first child.
    let mut got_pid = !plan.fork;
    let mut ready = false;
    loop {
        if ready && got_pid {
            break;
        }
        match sync::recv(&sock.0)? {
            Some(Msg::Pid(p)) => {
                pid = p;
                got_pid = true;
                if p != first {
                    let _ = nix::sys::wait::waitpid(nix::unistd::Pid::from_raw(first), None);
                }
            }
            // Pid comes from the intermediate process, Ready from the exec'd
            // one: either may arrive first.
            Some(Msg::Ready) => ready = true,
            Some(Msg::Error(m)) => {
                if pid != first {
                    let _ =
                        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
                }
                kill_first();
                bail!("{m}");
            }
            Some(_) => bail!("exec: unexpected message from the process"),
            None => bail!(
                "exec: the process exited before it was ready{}",
                super::exit_reason(first)
            ),
        }
    }
    crate::timing::mark("exec: ready");
    if let Some(f) = &e.pid_file {
        super::write_pid_file(f, pid)?;
    }
    if e.detach {
        return Ok(0);
    }
    let master = match &console.1 {
        Some(ours) => Some(crate::console::recv_fd(ours.as_fd())?),
        None => None,
    };
    let sfd = sfd.expect("blocked above for a foreground exec");
    let code = super::foreground(pid, &sfd, master);
    crate::timing::mark("exec: reaped");
    code
}

fn child(plan: &ExecPlan, sock: OwnedFd) -> ! {
    let err = match child_steps(plan, &sock) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    let _ = sync::send(&sock, &Msg::Error(format!("{err:#}")));
    // SAFETY: leave without running the parent's destructors.
    unsafe { libc::_exit(1) }
}

fn child_steps(plan: &ExecPlan, sock: &OwnedFd) -> Result<std::convert::Infallible> {
    nix::sys::signal::SigSet::all().thread_unblock()?;
    sys::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as u64)?;
    sys::prctl(libc::PR_SET_DUMPABLE, 0)?;
    if plan.wait_go {
        match sync::recv(sock)? {
            Some(Msg::Go) => {}
            // SAFETY: the parent is gone; nothing to report to.
            _ => unsafe { libc::_exit(1) },
        }
    }
    crate::timing::mark("exec child: started");
    cgroups::join_self(&plan.cgroup_tasks)?;
    for (name, flag, fd) in &plan.joins {
        sys::setns(fd.as_fd(), *flag)
            .with_context(|| format!("cannot join the container's {name} namespace"))?;
    }
    crate::timing::mark("exec child: cgroups and namespaces joined");
    if plan.joins.iter().any(|(n, _, _)| *n == "user") {
        nix::unistd::setresgid(0.into(), 0.into(), 0.into())
            .context("cannot become root in the user namespace")?;
        nix::unistd::setresuid(0.into(), 0.into(), 0.into())
            .context("cannot become root in the user namespace")?;
    }
    if plan.fork {
        match sys::fork()? {
            Forked::Parent { pid } => {
                let _ = sync::send(sock, &Msg::Pid(pid));
                // SAFETY: the intermediate process leaves at once.
                unsafe { libc::_exit(0) }
            }
            Forked::Child => {}
        }
    }
    // Its own session, with or without a terminal, as runc does: the
    // process must not share the caller's session or process group (conmon's,
    // the shim's), whose job-control and group signals are not its own.
    nix::unistd::setsid().context("setsid failed")?;
    if let Some(console) = &plan.console {
        crate::console::setup_pty(
            console.as_fd(),
            plan.console_size,
            false,
            (plan.process.uid, plan.process.gid),
        )?;
    }
    let exe = crate::init::process::prepare(
        &plan.process,
        &plan.id,
        true,
        Some(plan.state.as_str()),
        plan.preserve_fds,
    )?;
    crate::timing::mark("exec child: process prepared");
    // The death signal survives execve: clear it, or a detached exec would
    // die with rrun.
    sys::prctl(libc::PR_SET_PDEATHSIG, 0)?;
    sync::send(sock, &Msg::Ready)?;
    crate::init::process::exec(&plan.process, &exe)
}

/// Whether rrun's own pid namespace is owned by rrun's own user namespace
/// and rrun is root there: then it may setns back into it.
fn owns_own_pid_namespace() -> bool {
    use std::os::unix::fs::MetadataExt;
    let same = || -> std::io::Result<bool> {
        let pid = std::fs::File::open("/proc/self/ns/pid_for_children")?;
        let owner = std::fs::File::from(sys::ns_owner(pid.as_fd())?).metadata()?;
        let user = std::fs::metadata("/proc/self/ns/user")?;
        Ok(owner.dev() == user.dev() && owner.ino() == user.ino())
    };
    nix::unistd::geteuid().is_root() && same().unwrap_or(false)
}
