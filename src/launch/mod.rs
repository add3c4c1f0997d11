//! The parent side of `create`, `start` and `run`.
//!
//! `create` prepares a [`Plan`] (everything parsed, resolved and opened),
//! clones the container's first process into its namespaces and cgroup,
//! answers it over the sync channel (id maps, cgroup placement), and returns
//! once the init process reports it is ready and waiting for `start`. Any
//! failure undoes everything: the process is killed, the cgroups and the
//! state directory removed.

pub mod exec;
mod netns;
pub mod notify;

use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use oci_spec::runtime::Spec;

use crate::cgroups::{self, CgroupPaths, Layout};
use crate::cli::{self, Global};
use crate::hooks;
use crate::plan::namespaces::{self, NsPlan};
use crate::plan::process;
use crate::plan::sync::{self, Msg};
use crate::plan::Plan;
use crate::rootfs;
use crate::state::{self, Container, Locked, Status, Store};
use crate::sys::{self, CloneArgs, Forked};

/// Undoes a half-made container unless disarmed.
pub(crate) struct Cleanup<'a> {
    pub(crate) store_dir: Option<&'a Locked>,
    pub(crate) cgroups: Option<CgroupPaths>,
    /// Set (to the container's id) while `cgroups` is only the plan: what
    /// it names was not yet checked to be the container's, so a unit is
    /// stopped only if rrun made it, and a busy directory stays
    /// (`cgroups::remove_unstarted`).
    pub(crate) unstarted: Option<String>,
    pub(crate) pids: Vec<i32>,
    /// The poststop hooks and their state (`stopped`): a failed create ends
    /// at lifecycle steps 12 and 13, as `delete` does (runtime-spec
    /// Lifecycle 3-5; runc's destroy runs them too).
    pub(crate) poststop: Option<(oci_spec::runtime::Hooks, Vec<u8>)>,
}

impl Drop for Cleanup<'_> {
    fn drop(&mut self) {
        for &pid in &self.pids {
            sys::kill_positive(pid, libc::SIGKILL);
        }
        for &pid in &self.pids {
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        if let Some(cg) = &self.cgroups {
            // Once made (and found empty), what the cgroups hold is the
            // container's; before that, it is someone else's.
            if self.unstarted.is_none() {
                let _ = cgroups::signal_all(cg, libc::SIGKILL);
            }
            let removed = match &self.unstarted {
                Some(id) => cgroups::remove_unstarted(cg, id),
                None => cgroups::remove(cg),
            };
            if let Err(e) = removed {
                crate::logging::warn(&format!("cleanup: {e:#}"));
            }
        }
        if let Some(dir) = self.store_dir {
            let _ = std::fs::remove_dir_all(&dir.dir);
        }
        if let Some((h, state)) = &self.poststop {
            hooks::run_all_warn(Some(h), hooks::Kind::Poststop, state);
        }
    }
}

/// A created container, still locked by this process.
pub struct Created {
    pub locked: Locked,
    pub container: Container,
    /// The pty master of a foreground `run` with a terminal.
    pub master: Option<OwnedFd>,
}

pub fn create(global: &Global, opts: &cli::Create) -> Result<Created> {
    create_with(global, opts, false)
}

/// `foreground`: a `run` that stays attached, so a terminal is proxied
/// through rrun when no console socket is given.
/// `clone3`, straight into the container's cgroup2 directory when there is
/// one. The kernel refuses `CLONE_INTO_CGROUP` for some cgroups (EOPNOTSUPP
/// under a populated cgroup): then `without` adjusts the flags, the clone is
/// made without it, and the caller must place the child (`false`).
pub(crate) fn clone_entering(
    args: &mut CloneArgs,
    cgroup: Option<&OwnedFd>,
    without: impl FnOnce(&mut CloneArgs),
) -> std::io::Result<(Forked, bool)> {
    let Some(fd) = cgroup else {
        return sys::clone3(args).map(|f| (f, false));
    };
    args.flags |= sys::CLONE_INTO_CGROUP;
    args.cgroup = fd.as_raw_fd() as u64;
    match sys::clone3(args) {
        Err(e) if e.raw_os_error() != Some(libc::EPERM) => {
            args.flags &= !sys::CLONE_INTO_CGROUP;
            args.cgroup = 0;
            without(args);
            sys::clone3(args).map(|f| (f, false))
        }
        r => r.map(|f| (f, true)),
    }
}

fn create_with(global: &Global, opts: &cli::Create, foreground: bool) -> Result<Created> {
    state::validate_id(&opts.id)?;
    // sd_booted()'s test: systemd creates this directory when it is pid 1.
    if global.systemd_cgroup && !Path::new("/run/systemd/system").is_dir() {
        bail!("--systemd-cgroup: systemd is not running on this host: run without --systemd-cgroup, so rrun manages cgroupfs itself (containerd: SystemdCgroup = false)");
    }
    let bundle_dir = opts.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let (dir, text) = crate::spec::read_config(&bundle_dir)?;
    // The network namespace is made while the rest is parsed and planned
    // (netns.rs): its helper starts as soon as the config is seen to want
    // one; the namespace plan below keeps it or stops it. (`Some(None)`: it
    // could not start, and the clone will make the namespace.)
    let early_net = crate::spec::asks_new_net_without_user(&text).then(netns::start);
    let mut bundle = crate::spec::load_config(dir, &text)?;
    drop(text);
    crate::timing::mark("config loaded");
    let listen_fds = socket_activation(&mut bundle.spec);
    let proc = bundle.spec.process().as_ref().context("process: missing")?;
    let terminal = proc.terminal().unwrap_or(false);
    // The console: (the child's end, rrun's own end for a proxied terminal).
    let console = match (&opts.console_socket, terminal) {
        (Some(_), false) => bail!("--console-socket given but process.terminal is false"),
        (Some(path), true) => (Some(crate::console::connect(path)?), None),
        (None, true) if foreground => {
            let (a, b) = std::os::unix::net::UnixStream::pair()?;
            (Some(OwnedFd::from(a)), Some(OwnedFd::from(b)))
        }
        (None, true) => bail!("process.terminal is true but no --console-socket was given: cannot allocate a tty for a detached container"),
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

    let rootless = rootless_mode(global)?;
    if rootless {
        refuse_privileged(&bundle.spec)?;
    }
    let ns = namespaces::plan(&bundle.spec)?;
    // A helper the plan has no use for (a user namespace must own the
    // network namespace, or the clone has two stages) is stopped here.
    let net_helper = if ns.can_make_net_aside() {
        early_net.unwrap_or_else(netns::start)
    } else {
        if let Some(Some(unwanted)) = early_net {
            drop(unwanted);
            crate::logging::log(
                crate::logging::Level::Debug,
                "create: network namespace helper stopped: the clone makes the namespace (user namespace or two stages)",
            );
        }
        None
    };
    let store = Store::new(&global.root);
    let locked = store.create_dir(&opts.id)?;
    crate::timing::mark("state dir made");
    let mut cleanup = Cleanup {
        store_dir: Some(&locked),
        cgroups: None,
        unstarted: None,
        pids: Vec::new(),
        poststop: None,
    };
    let notify_socket = notify::prepare(&mut bundle.spec, &locked.dir)?;
    let spec = &bundle.spec;

    let layout = Layout::detect()?;
    crate::timing::mark("layout detected");
    let (cgroup_plan, unit) = plan_cgroups(global, &layout, spec, &opts.id)?;
    crate::timing::mark("cgroups planned");
    // Record before acting: the state file names everything create is about
    // to make, and is rewritten as each thing is made, so `delete --force`
    // finds and removes all of it if this process is killed at any moment.
    let mut record = Container::creating(&opts.id, &bundle, locked.dir.clone(), cgroup_plan)?;
    record.notify_socket = notify_socket;
    cleanup.poststop = record
        .hooks
        .clone()
        .map(|h| (h, record.hook_state(Status::Stopped)));
    locked.save(&record)?;
    step("state recorded");
    let mut made = make_cgroups(
        &layout,
        unit.as_ref(),
        spec,
        &opts.id,
        rootless,
        &locked,
        &mut record,
        &mut cleanup,
    )?;
    let cg = record.cgroups.clone();
    step("resources applied");
    let cg_names: Vec<rootfs::CgroupView> = layout
        .hierarchies
        .iter()
        .zip(&cg.dirs)
        .map(|(h, d)| rootfs::CgroupView {
            name: h
                .mount
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
            dir: d.clone(),
            mount: h.mount.clone(),
            v2: h.v2,
        })
        .collect();

    let mut plan = build_plan(
        spec,
        ns,
        &bundle.dir,
        &bundle.rootfs,
        &cg_names,
        opts,
        &locked,
        rootless,
    )?;
    plan.rootfs.layers = rootfs::overlay::plan(
        &bundle.dir,
        spec.annotations().as_ref(),
        &opts.layers,
        opts.upper.as_deref(),
        &locked.dir,
        spec.root()
            .as_ref()
            .and_then(|r| r.readonly())
            .unwrap_or(false),
    )?;
    crate::timing::mark("plan built");
    plan.preserve_fds += listen_fds;
    plan.console = console.0;
    plan.console_size = console_size;
    let sock = sync::pair().context("cannot create sync socket")?;
    let entry = cgroups::prepare_entry(&cg)?;
    crate::timing::mark("cgroup entry opened");
    plan.cgroup_tasks = entry.tasks;
    // The seccomp profile is compiled after the clone, beside the child's
    // setup; the child reads it from this pipe before its last steps.
    let seccomp_pipe = if plan.process.seccomp_later {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
            .context("cannot create the seccomp pipe")?;
        plan.seccomp_pipe = Some(r);
        Some(w)
    } else {
        None
    };
    if net_helper.is_some() {
        plan.ns.net_aside();
    }
    // The child enters its v1 cgroups itself after the clone, so a new
    // cgroup namespace must wait until then (it is rooted where it starts).
    if entry.clone_into.is_none() || !plan.cgroup_tasks.is_empty() {
        plan.ns.defer_cgroup_namespace();
    }
    let mut args = CloneArgs {
        flags: plan.ns.clone_flags,
        exit_signal: libc::SIGCHLD as u64,
        ..Default::default()
    };
    // Id maps are written before `Go`; a two-stage launch asks for them
    // (and reports init's pid) over the same exchange.
    plan.wait_go = plan.ns.new_user || plan.ns.two_stage;
    let (first, into_cgroup) = clone_entering(&mut args, entry.clone_into.as_ref(), |a| {
        plan.ns.defer_cgroup_namespace();
        a.flags = plan.ns.clone_flags;
        // The parent places the child in its cgroup2 directory first.
        plan.wait_go = true;
    })
    .context("clone3 failed")?;
    let first = match first {
        Forked::Child => {
            drop(sock.0);
            // Only the parent writes the seccomp pipe: without this copy
            // of its write end, a parent that fails before writing leaves
            // the child an end of file rather than a wait.
            drop(seccomp_pipe);
            crate::init::child_main(&plan, sock.1)
        }
        Forked::Parent { pid } => pid,
    };
    crate::timing::mark("clone3 returned");
    drop(sock.1);
    drop(plan.seccomp_pipe.take());
    plan.cgroup_tasks.clear();
    cleanup.pids.push(first);
    record_pid(&locked, &mut record, first)?;
    step("cloned");
    if entry.clone_into.is_some() && !into_cgroup {
        cgroups::add_pid_v2(&cg, first)?;
    }
    // While the child is still dumpable (rootless: its /proc files are
    // the caller's only until it sets up); the forked init inherits it.
    let early_oom = plan.ns.dumpable_until_maps;
    if let Some(adj) = plan.process.oom_score_adj.filter(|_| early_oom) {
        write_oom_score_adj(first, adj)?;
    }
    if plan.ns.new_user && !plan.ns.two_stage {
        write_id_maps(first, &plan.ns)?;
    }
    // An init killed for memory while starting: the limit is the reason,
    // whichever way the broken channel shows it (EOF, EPIPE, ECONNRESET).
    let oom_check = || -> Result<()> {
        if cgroups::stats::oom_kills(&cg) > 0 {
            bail!("linux.resources.memory.limit: the container's init was killed for memory while starting (limit too low?)");
        }
        Ok(())
    };
    crate::timing::mark("pid recorded");
    if plan.wait_go {
        if let Err(e) = sync::send(&sock.0, &Msg::Go) {
            oom_check()?;
            return Err(e).context("container init died before setup");
        }
    }
    // The child mounts what needs no network namespace meanwhile, and
    // gets the namespace as soon as the helper has made it. The parent's
    // own remaining work (the v2 device program, the seccomp compile) goes
    // first while the helper is still busy (slow where namespaces are, as
    // in an emulator), after the namespace is sent when it is already
    // there (the child may soon need it).
    let mut net_helper = net_helper;
    if net_helper.as_ref().is_some_and(netns::Pending::is_done) {
        send_network_namespace(net_helper.take(), &sock.0)?;
    }
    made.apply_devices(&cg)?;
    crate::timing::mark("device rules applied");
    if let Some(pipe) = seccomp_pipe {
        let profile = spec.linux().as_ref().and_then(|l| l.seccomp().as_ref());
        let compiled = crate::security::seccomp::compile(profile.context("linux.seccomp")?)?;
        // A child that is gone already says why in the loop below.
        if let Err(e) = compiled.send(pipe.as_fd()) {
            if e.raw_os_error() != Some(libc::EPIPE) {
                return Err(e).context("cannot send the seccomp program to the container");
            }
        }
        crate::timing::mark("seccomp compiled and sent");
    }
    send_network_namespace(net_helper, &sock.0)?;
    let mut init_pid = if plan.ns.two_stage { 0 } else { first };
    let mut ready = false;
    let mut waiting = ChildWait::new(spec.hooks().as_ref());
    loop {
        waiting.until_readable(&sock.0, &cg)?;
        let msg = match sync::recv(&sock.0) {
            Ok(m) => m,
            Err(e) => {
                oom_check()?;
                return Err(e).context("sync with container init");
            }
        };
        match msg {
            Some(Msg::NeedMaps) => {
                write_id_maps(first, &plan.ns)?;
                sync::send(&sock.0, &Msg::Go)?;
            }
            Some(Msg::Pid(p)) => {
                init_pid = p;
                if p != first {
                    cleanup.pids.push(p);
                    record_pid(&locked, &mut record, p)?;
                    // The first child exits once it has forked init.
                    let _ = waitpid(Pid::from_raw(first), None);
                    cleanup.pids.retain(|&x| x != first);
                }
                step("init forked");
            }
            Some(Msg::Hooks) => {
                step("mounts made; running prestart and createRuntime hooks");
                let proto = Container {
                    pid: init_pid,
                    ..record.clone()
                };
                let state = proto.hook_state(Status::Creating);
                let h = spec.hooks().as_ref();
                hooks::run_all(h, hooks::Kind::Prestart, &state)?;
                hooks::run_all(h, hooks::Kind::CreateRuntime, &state)?;
                sync::send(
                    &sock.0,
                    &Msg::State(String::from_utf8_lossy(&state).into_owned()),
                )?;
            }
            // Pid (from the first child) and Ready (from init) come from two
            // processes and may arrive in either order.
            Some(Msg::Ready) => ready = true,
            Some(Msg::Error(m)) => bail!("{m}"),
            Some(_) => bail!("sync: unexpected message from container init"),
            None => {
                oom_check()?;
                bail!(
                    "container init exited before it was ready{}",
                    exit_reason(first)
                )
            }
        }
        if ready && init_pid != 0 {
            break;
        }
    }
    step("init ready");
    made.container_holds_them(&record.cgroups)?;
    move_net_devices(&plan.net_devices, init_pid)?;
    if let Some(adj) = plan.process.oom_score_adj.filter(|_| !early_oom) {
        write_oom_score_adj(init_pid, adj)?;
    }
    let mut container = record;
    container.pid = init_pid;
    container.pid_start = sys::process_start_time(init_pid).context("container init vanished")?;
    container.own_pid_ns = plan.ns.new_pid;
    container.layers = plan.rootfs.layers.clone();
    container.creating = false;
    locked.save(&container)?;
    step("created");
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, init_pid)?;
    }
    drop(plan);
    let master = match &console.1 {
        Some(ours) => Some(crate::console::recv_fd(ours.as_fd())?),
        None => None,
    };
    cleanup.store_dir = None;
    cleanup.cgroups = None;
    cleanup.pids.clear();
    cleanup.poststop = None;
    drop(cleanup);
    Ok(Created {
        locked,
        container,
        master,
    })
}

fn write_oom_score_adj(pid: i32, adj: i32) -> Result<()> {
    std::fs::write(format!("/proc/{pid}/oom_score_adj"), adj.to_string())
        .with_context(|| format!("process.oomScoreAdj {adj}: cannot set"))
}

/// A debug line (`--debug`) for each step of `create`, and its timing mark.
fn step(what: &'static str) {
    crate::timing::mark(what);
    crate::logging::log(crate::logging::Level::Debug, &format!("create: {what}"));
}

/// Where the container's cgroups go: cgroupfs directories, or a systemd
/// unit (`--systemd-cgroup`) and its directories.
pub(crate) fn plan_cgroups(
    global: &Global,
    layout: &Layout,
    spec: &Spec,
    id: &str,
) -> Result<(CgroupPaths, Option<cgroups::systemd::UnitPath>)> {
    let cgroups_path = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().as_deref());
    if global.systemd_cgroup {
        let (p, u) = cgroups::plan_systemd(layout, cgroups_path, id)?;
        Ok((p, Some(u)))
    } else {
        let dirs = layout.container_dirs(cgroups_path, id)?;
        Ok((cgroups::plan(layout, dirs)?, None))
    }
}

/// The container's cgroups, made: what remains to do once a process of the
/// container is in them ([`MadeCgroups::container_holds_them`]).
pub(crate) struct MadeCgroups {
    /// With systemd, the scope's first process is a holder until the
    /// container's own process is in it.
    holder: Option<cgroups::systemd_bus::Holder>,
    /// A pids limit is applied once the holder is gone (a limit of 1
    /// would refuse the container's process while both are there).
    deferred_pids: Option<oci_spec::runtime::LinuxResources>,
    /// A cgroup v2 container's device rules (its BPF program), applied by
    /// [`MadeCgroups::apply_devices`] once the container's first process
    /// is cloned; the v1 lists are written before (see there).
    devices: Option<oci_spec::runtime::LinuxResources>,
}

/// Makes the planned cgroups (`record.cgroups`) and applies the spec's
/// resources, recording each step in the state file first so a killed
/// `create` (or `restore`) can be cleaned up, and arming `cleanup`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn make_cgroups(
    layout: &Layout,
    unit: Option<&cgroups::systemd::UnitPath>,
    spec: &Spec,
    id: &str,
    rootless: bool,
    locked: &Locked,
    record: &mut Container,
    cleanup: &mut Cleanup<'_>,
) -> Result<MadeCgroups> {
    // With systemd, a unit whose start was asked for is stopped on failure
    // (systemd may make it after an error); without, `create` removes what
    // it made itself when it fails.
    if unit.is_some() {
        cleanup.cgroups = Some(record.cgroups.clone());
        cleanup.unstarted = Some(id.to_string());
    }
    let planned_created = record.cgroups.created.clone();
    let resources = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
    // Device rules need privilege (a v1 devices cgroup, a v2 BPF program);
    // a rootless container cannot mknod and opens only what its user may.
    let rootless_res;
    let resources = match resources {
        Some(r) if rootless && r.devices().is_some() => {
            let mut r = r.clone();
            r.set_devices(None);
            rootless_res = r;
            Some(&rootless_res)
        }
        r => r,
    };
    let mut made = MadeCgroups {
        holder: None,
        deferred_pids: None,
        devices: None,
    };
    let resources_now = match (unit, resources) {
        (Some(_), Some(r)) if r.pids().is_some() => {
            let mut pids_only = oci_spec::runtime::LinuxResources::default();
            pids_only.set_pids(*r.pids());
            made.deferred_pids = Some(pids_only);
            let mut r = r.clone();
            r.set_pids(None);
            Some(r)
        }
        (_, r) => r.cloned(),
    };
    match unit {
        Some(u) => {
            let h = cgroups::systemd_bus::Holder::spawn()?;
            let props = cgroups::systemd::unit_properties(
                u,
                id,
                h.pid(),
                resources_now.as_ref(),
                !record.cgroups.unified,
            );
            made.holder = Some(h);
            let user = record.cgroups.systemd.as_ref().is_some_and(|s| s.user);
            cgroups::systemd_bus::start(u, user, &props)?;
            cgroups::create_dirs(layout, &mut record.cgroups)?;
            // systemd made the unit (it refuses one that exists); what
            // rrun found in the hierarchies it does not manage must be
            // empty too. The holder is the unit's only process.
            let holder = made.holder.as_ref().map(|h| h.pid() as i32);
            cgroups::refuse_busy(&record.cgroups, holder)?;
            cgroups::refuse_frozen(&record.cgroups)?;
        }
        None if rootless => cgroups::create_rootless(layout, &mut record.cgroups, resources)?,
        None => cgroups::create(layout, &mut record.cgroups)?,
    }
    // The record lists every level that did not exist, and the container's
    // own directory; rewritten only if some existed after all (the config
    // named an existing cgroup, or another creator made a level meanwhile),
    // so that `delete` never removes a directory this create did not make.
    cleanup.cgroups = Some(record.cgroups.clone());
    cleanup.unstarted = None;
    if planned_created != record.cgroups.created {
        locked.save(record)?;
    }
    step("cgroups created");
    let cg = &record.cgroups;
    if let Some(mut res) = resources_now.filter(|_| !cg.dirs.is_empty()) {
        // Only a v2 program, which applies whole when it is attached. The
        // v1 lists change one rule at a time, starting with `deny a`: a
        // child making its device nodes meanwhile would be refused.
        let rules = res
            .devices()
            .clone()
            .filter(|r| !r.is_empty() && cg.unified);
        if let Some(rules) = rules {
            let mut devices = oci_spec::runtime::LinuxResources::default();
            devices.set_devices(Some(rules));
            made.devices = Some(devices);
            res.set_devices(None);
        }
        cgroups::resources::apply(cg, &res)?;
    }
    Ok(made)
}

impl MadeCgroups {
    /// Applies the device rules of a cgroup v2 container (a BPF program;
    /// the v1 lists were written with the other limits, see
    /// `make_cgroups`). `create` calls this right after the clone, so that
    /// the program's load (its verifier is most of a v2 create's cgroup
    /// work) runs beside the container's mounts instead of before them; as
    /// in runc, which applies them when its init reports ready, they are
    /// in place before any hook runs and before the container's process.
    /// Only rrun's own setup (mounts, device nodes) runs before them, and
    /// the program, attached whole, always allows what that setup needs
    /// (`mknod` and the standard devices are appended to every rule list).
    pub(crate) fn apply_devices(&mut self, cg: &CgroupPaths) -> Result<()> {
        match self.devices.take() {
            Some(res) => cgroups::resources::apply_devices_v2(cg, &res),
            None => Ok(()),
        }
    }

    /// The holder kept the unit from emptying (and systemd from removing
    /// it, and its memory.events with it) while the container's process
    /// was set up; that process holds it now. Then the deferred pids limit.
    pub(crate) fn container_holds_them(&mut self, cg: &CgroupPaths) -> Result<()> {
        if let Some(h) = self.holder.take() {
            drop(h);
            if let (Some(r), Some(u)) = (&self.deferred_pids, &cg.systemd) {
                cgroups::resources::apply(cg, r)?;
                cgroups::systemd_bus::set(
                    u,
                    &cgroups::systemd::resource_properties(r, !cg.unified),
                )?;
            }
        }
        Ok(())
    }
}

/// Sends the child the network namespace `helper` made (waiting for it
/// if it is not made yet); nothing without a helper.
fn send_network_namespace(helper: Option<netns::Pending>, sock: &OwnedFd) -> Result<()> {
    let Some(helper) = helper else {
        return Ok(());
    };
    let made = helper.take()?;
    crate::logging::log(
        crate::logging::Level::Debug,
        "create: network namespace made by the helper",
    );
    if let Err(e) = sync::send_net(sock, made.as_fd()) {
        // A child that is gone already says why (or not) in the parent's
        // wait for it; anything else would leave it waiting.
        if !matches!(e.raw_os_error(), Some(libc::EPIPE | libc::ECONNRESET)) {
            return Err(e).context("cannot send the network namespace to the container");
        }
    }
    crate::timing::mark("network namespace sent");
    Ok(())
}

/// Records a process of the container as soon as it exists (with its start
/// time, so a reused pid is never mistaken for it), for `delete --force`
/// after a `create` killed half-way.
pub(crate) fn record_pid(locked: &Locked, record: &mut Container, pid: i32) -> Result<()> {
    record.pid = pid;
    record.pid_start = sys::process_start_time(pid).unwrap_or(0);
    locked.save(record)
}

/// The parent's bounded wait for the container's first process: it never
/// blocks on a child that cannot answer. A frozen cgroup (the child can
/// never run) is reported at once, as runc does; otherwise the child gets
/// `STARTUP_LIMIT` plus the time its hooks may take, between messages.
struct ChildWait {
    limit: std::time::Duration,
    since: std::time::Instant,
}

/// How long a container's first process may go without a word to its
/// parent (mounts, devices and the like are milliseconds; a loaded host or
/// a slow `createContainer` hook may take much longer).
const STARTUP_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

impl ChildWait {
    fn new(hooks: Option<&oci_spec::runtime::Hooks>) -> ChildWait {
        let hook_secs: u64 = hooks
            .map(|h| {
                hooks::Kind::CreateContainer
                    .of(h)
                    .iter()
                    .map(|x| x.timeout().unwrap_or(0).max(0) as u64)
                    .sum()
            })
            .unwrap_or(0);
        ChildWait {
            limit: STARTUP_LIMIT + std::time::Duration::from_secs(hook_secs),
            since: std::time::Instant::now(),
        }
    }

    /// Waits until the child has something to say (or has gone).
    fn until_readable(&mut self, sock: &OwnedFd, cg: &CgroupPaths) -> Result<()> {
        loop {
            if sync::wait_readable(sock, std::time::Duration::from_millis(200))? {
                self.since = std::time::Instant::now();
                return Ok(());
            }
            if cgroups::is_frozen(cg) {
                bail!("container's cgroup unexpectedly frozen: thaw it (or its parent) first");
            }
            if self.since.elapsed() > self.limit {
                bail!(
                    "container init did not report for {} s: giving up",
                    self.limit.as_secs()
                );
            }
        }
    }
}

/// systemd socket activation: with `LISTEN_FDS=N` in rrun's environment,
/// fds 3..3+N-1 pass into the container, whose init is told they are for it
/// (`LISTEN_PID=1`). Returns N.
fn socket_activation(spec: &mut Spec) -> u32 {
    let n: u32 = match std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(n) if n > 0 => n,
        _ => return 0,
    };
    if let Some(p) = spec.process_mut() {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={n}"));
        env.push("LISTEN_PID=1".into());
        p.set_env(Some(env));
    }
    n
}

/// Moves `linux.netDevices` into the container's network namespace, brings
/// each up under its new name and puts its permanent global addresses back
/// (the kernel drops them on the move), as the runtime spec requires.
fn move_net_devices(devices: &[(i32, String, String)], pid: i32) -> Result<()> {
    use sys::netlink::Netlink;
    if devices.is_empty() {
        return Ok(());
    }
    let netns = std::fs::File::open(format!("/proc/{pid}/ns/net"))
        .context("linux.netDevices: cannot open the container's network namespace")?;
    let host = Netlink::open().context("linux.netDevices: netlink")?;
    let mut moved = Vec::new();
    for (index, name, new) in devices {
        let addrs = host
            .addresses(*index)
            .with_context(|| format!("linux.netDevices {name}: cannot read its addresses"))?;
        host.move_link(*index, netns.as_fd(), new)
            .with_context(|| {
                format!("linux.netDevices {name}: cannot move it into the container as {new}")
            })?;
        moved.push((name, new, addrs));
    }
    // Configure them from inside the container's namespace. rrun is
    // single-threaded, so entering it and coming back affects nothing else.
    let ours = std::fs::File::open("/proc/self/ns/net")?;
    sys::setns(netns.as_fd(), libc::CLONE_NEWNET)
        .context("linux.netDevices: cannot enter the container's network namespace")?;
    let result = (|| -> Result<()> {
        let nl = Netlink::open()?;
        for (name, new, addrs) in &moved {
            let index = nix::net::if_::if_nametoindex(new.as_str())
                .with_context(|| format!("linux.netDevices {name}: {new} vanished"))?
                as i32;
            for a in addrs {
                nl.add_address(index, a).with_context(|| {
                    format!("linux.netDevices {name}: cannot restore an address on {new}")
                })?;
            }
            nl.set_up(index)
                .with_context(|| format!("linux.netDevices {name}: cannot bring {new} up"))?;
        }
        Ok(())
    })();
    sys::setns(ours.as_fd(), libc::CLONE_NEWNET)
        .context("cannot return to rrun's network namespace")?;
    result
}

/// Finds each `linux.netDevices` interface on the host.
fn net_devices(spec: &Spec) -> Result<Vec<(i32, String, String)>> {
    let mut out = Vec::new();
    let Some(map) = spec.linux().as_ref().and_then(|l| l.net_devices().as_ref()) else {
        return Ok(out);
    };
    let mut names: Vec<_> = map.keys().collect();
    names.sort();
    for host in names {
        let new = map[host]
            .name()
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| host.clone());
        if new.len() > 15 || new.contains(['/', ' ', ':']) || new == "." || new == ".." {
            bail!("linux.netDevices {host}: {new:?} is not a valid interface name");
        }
        let index = nix::net::if_::if_nametoindex(host.as_str()).map_err(|_| {
            anyhow::anyhow!("linux.netDevices {host}: no such interface on the host")
        })?;
        out.push((index as i32, host.clone(), new));
    }
    Ok(out)
}

pub(crate) fn exit_reason(pid: i32) -> String {
    match waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)) {
        Ok(WaitStatus::Exited(_, c)) => format!(" (exit status {c})"),
        Ok(WaitStatus::Signaled(_, s, _)) => format!(" (killed by {s})"),
        _ => String::new(),
    }
}

pub(crate) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()?.join(path)
    };
    state::write_atomic(&path, pid.to_string().as_bytes(), 0o644)
        .with_context(|| format!("--pid-file {}", path.display()))
}

#[allow(clippy::too_many_arguments)]
fn build_plan(
    spec: &Spec,
    mut ns: NsPlan,
    bundle: &Path,
    rootfs: &Path,
    cgroup_dirs: &[rootfs::CgroupView],
    opts: &cli::Create,
    locked: &Locked,
    rootless: bool,
) -> Result<Plan> {
    // An unprivileged parent may write only the maps of a process whose
    // /proc files are its own (newuidmap/newgidmap check the same): the
    // child stays dumpable until its maps are written.
    ns.dumpable_until_maps = ns.new_user && rootless;
    if !ns.new_mount && !ns.join.iter().any(|j| j.flag == libc::CLONE_NEWNS as u64) {
        bail!("linux.namespaces: a mount namespace is required");
    }
    let root_fd: OwnedFd = std::fs::File::open(rootfs)
        .with_context(|| format!("root.path {}", rootfs.display()))?
        .into();
    let process = process::prepare_with(spec, root_fd.as_fd(), true)?;
    crate::timing::mark("plan: process");
    let needs_state = process.seccomp_listener.is_some();
    let host = rootfs::HostAccess {
        // open_tree(OPEN_TREE_CLONE) needs CAP_SYS_ADMIN over the caller's
        // mount namespace: an ordinary user's child clones bind sources
        // itself, as root of its new user and mount namespaces.
        defer_clones: rootless && ns.new_user && nix::unistd::geteuid().as_raw() != 0,
        unprivileged: rootless || ns.new_user,
    };
    let rootfs_plan = rootfs::prepare(spec, bundle, rootfs, cgroup_dirs, opts.no_pivot, host)?;
    crate::timing::mark("plan: rootfs");
    let mut sysctls = Vec::new();
    if let Some(map) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        let mut keys: Vec<_> = map.keys().collect();
        keys.sort();
        for k in keys {
            let path = format!("sys/{}", k.replace('.', "/"));
            sysctls.push((CString::new(path)?, map[k].clone()));
        }
    }
    let fifo_path = locked.fifo();
    nix::unistd::mkfifo(&fifo_path, nix::sys::stat::Mode::from_bits_truncate(0o600))
        .with_context(|| format!("{}: cannot create", fifo_path.display()))?;
    let fifo = nix::fcntl::open(
        &fifo_path,
        nix::fcntl::OFlag::O_RDWR | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )?;
    let name = |s: &Option<String>| {
        s.as_ref()
            .filter(|h| !h.is_empty())
            .map(|h| CString::new(h.as_str()))
            .transpose()
    };
    Ok(Plan {
        id: opts.id.clone(),
        ns,
        rootfs: rootfs_plan,
        process,
        hostname: name(spec.hostname()).context("hostname")?,
        domainname: name(spec.domainname()).context("domainname")?,
        sysctls,
        fifo,
        lock_fd: locked.lock_fd(),
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        parent_pid: std::process::id() as i32,
        net_devices: net_devices(spec)?,
        cgroup_tasks: Vec::new(),
        wait_go: true,
        seccomp_pipe: None,
        console: None,
        console_size: None,
        hooks: spec.hooks().clone(),
        hooks_before_pivot: needs_state
            || spec.hooks().as_ref().is_some_and(|h| {
                [
                    hooks::Kind::Prestart,
                    hooks::Kind::CreateRuntime,
                    hooks::Kind::CreateContainer,
                    hooks::Kind::StartContainer,
                ]
                .iter()
                .any(|k| !k.of(h).is_empty())
            }),
    })
}

/// `start`: lets a created container's init exec its process.
pub fn start(global: &Global, id: &str) -> Result<()> {
    let store = Store::new(&global.root);
    let locked = store.open(id)?;
    let c = locked.load()?;
    match c.status(&locked.dir) {
        Status::Created => {
            let ready = notify::listen(&c)?;
            let watch = watch_start_hooks(&locked, &c)?;
            release(&locked, id)?;
            drop(locked);
            start_hooks_outcome(watch, c.pid, id)?;
            if let Some(r) = ready {
                r.forward_when_ready(&c)?;
            }
            run_poststart(&c);
            Ok(())
        }
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Creating => bail!("cannot start a container that is still being created"),
        _ => bail!("cannot start an already running container"),
    }
}

/// Lifecycle 9: the poststart hooks, each failure a warning. config.md
/// wants them called after the user-specified process is executed, so
/// `start` (and `run`) first waits for the execve, which init makes once
/// the exec fifo released it (a startContainer hook's outcome has already
/// waited for it). Without poststart hooks nothing waits.
fn run_poststart(c: &Container) {
    let Some(h) = c
        .hooks
        .as_ref()
        .filter(|h| !hooks::Kind::Poststart.of(h).is_empty())
    else {
        return;
    };
    wait_for_exec(c.pid);
    hooks::run_all_warn(
        Some(h),
        hooks::Kind::Poststart,
        &c.hook_state(Status::Running),
    );
}

/// Waits until `pid` has exec'd the container's process (its binary is no
/// longer rrun's) or is gone, so `start` returns after startContainer hooks
/// as runc's does. False if it is still rrun's at the deadline.
fn wait_for_exec(pid: i32) -> bool {
    use std::os::unix::fs::MetadataExt;
    let ours = std::fs::metadata("/proc/self/exe")
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        match std::fs::metadata(format!("/proc/{pid}/exe")) {
            Ok(m) if Some((m.dev(), m.ino())) == ours => {}
            _ => return true,
        }
        if matches!(sys::process_state(pid), Ok('Z') | Err(_)) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    false
}

/// What init left in the exec fifo once it exec'd or exited: nothing (it
/// exec'd the process), `E` and the error of a failed startContainer hook,
/// or `start`'s own byte, never read (init died first). runtime-spec
/// Lifecycle 7: a failed hook fails `start`, and no poststart hook runs.
fn start_hooks_outcome(watch: Option<std::fs::File>, pid: i32, id: &str) -> Result<()> {
    use std::io::Read;
    let Some(mut watch) = watch else {
        return Ok(());
    };
    if !wait_for_exec(pid) {
        return Ok(());
    }
    let mut left = Vec::new();
    // Non-blocking: WouldBlock once the pipe is empty.
    let _ = watch.read_to_end(&mut left);
    match left.split_first() {
        None => Ok(()),
        Some((b'E', msg)) => bail!(
            "{}; the container's process did not run",
            String::from_utf8_lossy(msg).trim_end()
        ),
        Some(_) => bail!("cannot start container {id}: its init process is gone"),
    }
}

/// With startContainer hooks, a reader of our own on the exec fifo, opened
/// before `release` removes it: init leaves the hooks' error there if one
/// fails (see [`start_hooks_outcome`]).
fn watch_start_hooks(locked: &Locked, c: &Container) -> Result<Option<std::fs::File>> {
    use std::os::unix::fs::OpenOptionsExt;
    match &c.hooks {
        Some(h) if !hooks::Kind::StartContainer.of(h).is_empty() => {
            let fifo = locked.fifo();
            let f = std::fs::File::options()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(&fifo)
                .with_context(|| format!("{}: cannot open", fifo.display()))?;
            Ok(Some(f))
        }
        _ => Ok(None),
    }
}

/// Wakes the init process blocked on the exec fifo.
fn release(locked: &Locked, id: &str) -> Result<()> {
    let fifo = locked.fifo();
    // Non-blocking: without a reader (init gone) this fails at once.
    let fd = match nix::fcntl::open(
        &fifo,
        nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_NONBLOCK | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENXIO) => {
            bail!("cannot start container {id}: its init process is gone")
        }
        Err(e) => return Err(e).with_context(|| format!("{}: cannot open", fifo.display())),
    };
    std::fs::remove_file(&fifo).with_context(|| format!("{}: cannot remove", fifo.display()))?;
    nix::unistd::write(&fd, b"0").context("cannot signal container init")?;
    Ok(())
}

/// `run`: create and start; in the foreground, forward signals, wait, and
/// return the exit code (128+N for a signal), then delete the container.
pub fn run(global: &Global, opts: &cli::Run) -> Result<i32> {
    if !opts.detach {
        // The init may be a grandchild (two-stage launch): adopt it.
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)?;
    }
    // Signals are blocked before the container exists, so one that arrives
    // as it starts is forwarded, not lost or fatal to rrun (the child
    // unblocks them for itself).
    let sfd = if opts.detach {
        None
    } else {
        Some(block_signals()?)
    };
    let created = create_with(global, &opts.create, !opts.detach)?;
    let pid = created.container.pid;
    if opts.detach {
        let ready = notify::listen(&created.container)?;
        let watch = watch_start_hooks(&created.locked, &created.container)?;
        release(&created.locked, &opts.create.id)?;
        // A failed startContainer hook fails `run -d` as it fails `start`
        // (the container is left stopped, for `delete`).
        start_hooks_outcome(watch, pid, &opts.create.id)?;
        if let Some(r) = ready {
            r.forward_when_ready(&created.container)?;
        }
        run_poststart(&created.container);
        return Ok(0);
    }
    let sfd = sfd.expect("blocked above for a foreground run");
    let ready = notify::listen(&created.container)?;
    if let Some(r) = ready {
        let c = created.container.clone();
        std::thread::spawn(move || r.forward_when_ready(&c));
    }
    let watch = match watch_start_hooks(&created.locked, &created.container) {
        Ok(w) => w,
        Err(e) => {
            let _ = crate::commands::destroy(created.locked, &created.container);
            return Err(e);
        }
    };
    if let Err(e) = release(&created.locked, &opts.create.id) {
        let _ = crate::commands::destroy(created.locked, &created.container);
        return Err(e);
    }
    if let Err(e) = start_hooks_outcome(watch, pid, &opts.create.id) {
        // The init is gone: reap it, delete the container, report the hook.
        let _ = foreground(pid, &sfd, created.master);
        if !opts.keep {
            let _ = crate::commands::destroy(created.locked, &created.container);
        }
        return Err(e);
    }
    let Created {
        locked,
        container,
        master,
    } = created;
    drop(locked);
    run_poststart(&container);
    crate::timing::mark("released");
    let code = foreground(pid, &sfd, master)?;
    crate::timing::mark("container reaped");
    if !opts.keep {
        let store = Store::new(&global.root);
        let locked = store.open(&opts.create.id)?;
        crate::commands::destroy(locked, &container)?;
        crate::timing::mark("deleted");
    }
    Ok(code)
}

/// Blocks the signals a foreground `run`/`exec` forwards (everything that
/// can be caught), to be read from the returned signalfd instead.
pub(crate) fn block_signals() -> Result<nix::sys::signalfd::SignalFd> {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    set.thread_block()?;
    Ok(nix::sys::signalfd::SignalFd::with_flags(
        &set,
        nix::sys::signalfd::SfdFlags::SFD_CLOEXEC,
    )?)
}

/// Waits for `pid` in the foreground: forwards signals to it, proxies its
/// terminal (if `master`) to rrun's stdin/stdout in raw mode with window
/// size changes, and returns its exit code (128+N for signal N).
pub(crate) fn foreground(
    pid: i32,
    sfd: &nix::sys::signalfd::SignalFd,
    master: Option<OwnedFd>,
) -> Result<i32> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let raw = master
        .as_ref()
        .map(|m| crate::console::RawMode::enter(m.as_fd()));
    let stdin = std::io::stdin();
    let stdout = std::io::stdout();
    let mut stdin_open = raw.as_ref().is_some_and(|r| !r.stdin_ended());
    let mut master_open = master.is_some();
    let mut exit = reap(pid);
    loop {
        if let Some(code) = exit {
            // Drain what the process wrote before it exited.
            if let Some(m) = &master {
                while master_open {
                    let mut fds = [PollFd::new(m.as_fd(), PollFlags::POLLIN)];
                    match poll(&mut fds, PollTimeout::from(50u16)) {
                        Ok(n) if n > 0 => {
                            master_open = crate::console::pump(m.as_fd(), stdout.as_fd())
                        }
                        _ => break,
                    }
                }
            }
            return Ok(code);
        }
        let mut fds = vec![PollFd::new(sfd.as_fd(), PollFlags::POLLIN)];
        if let Some(m) = &master {
            if master_open {
                fds.push(PollFd::new(m.as_fd(), PollFlags::POLLIN));
            }
            if stdin_open {
                fds.push(PollFd::new(stdin.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(e.into()),
            Ok(_) => {}
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut i = 1;
        if let Some(m) = &master {
            if master_open {
                if ready[i] {
                    master_open = crate::console::pump(m.as_fd(), stdout.as_fd());
                }
                i += 1;
            }
            if stdin_open && ready[i] && !crate::console::pump(stdin.as_fd(), m.as_fd()) {
                stdin_open = false;
            }
        }
        if ready[0] {
            if let Some(info) = sfd.read_signal()? {
                match info.ssi_signo as i32 {
                    libc::SIGCHLD => exit = reap(pid),
                    libc::SIGWINCH => {
                        if let (Some(m), Some((r, c))) = (&master, crate::console::own_winsize()) {
                            crate::console::set_winsize(m.as_fd(), r, c);
                        }
                    }
                    signo => {
                        sys::kill_positive(pid, signo);
                    }
                }
            }
        }
    }
}

/// Reaps exited children; returns the exit code once `init` has exited.
pub(crate) fn reap(init: i32) -> Option<i32> {
    let mut result = None;
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
            Ok(WaitStatus::Exited(p, c)) if p.as_raw() == init => result = Some(c),
            Ok(WaitStatus::Signaled(p, s, _)) if p.as_raw() == init => {
                result = Some(128 + s as i32)
            }
            Ok(WaitStatus::StillAlive) | Err(_) => return result,
            Ok(_) => {}
        }
    }
}

/// Parent side: writes the id maps of a process that is in a new user
/// namespace. Root writes them itself. An ordinary user may write one
/// mapping of its own uid and gid (the gid map only once `setgroups` is
/// denied, so the container cannot drop a group the user has); anything
/// more goes through the setuid `newuidmap`/`newgidmap`, which allow the
/// ranges `/etc/subuid` and `/etc/subgid` give the user (as Podman and
/// runc do).
pub fn write_id_maps(pid: i32, ns: &NsPlan) -> Result<()> {
    write_id_map(pid, "uid", &ns.uid_map, "linux.uidMappings")?;
    write_id_map(pid, "gid", &ns.gid_map, "linux.gidMappings")
}

fn write_id_map(pid: i32, kind: &str, map: &str, field: &str) -> Result<()> {
    let path = format!("/proc/{pid}/{kind}_map");
    let err = match std::fs::write(&path, map) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EPERM) && sys::rootless() => e,
        Err(e) => return Err(e).with_context(|| format!("{field}: cannot write {:?}", map.trim())),
    };
    // SAFETY: getegid cannot fail.
    let egid = unsafe { libc::getegid() };
    if kind == "gid" && single_own_id(map, egid) {
        std::fs::write(format!("/proc/{pid}/setgroups"), "deny")
            .with_context(|| format!("{field}: cannot deny setgroups to write {:?}", map.trim()))?;
        return std::fs::write(&path, map)
            .with_context(|| format!("{field}: cannot write {:?}", map.trim()));
    }
    let tool = format!("new{kind}map");
    let mut args = vec![pid.to_string()];
    args.extend(map.split_whitespace().map(str::to_string));
    let run = |prog: &str| std::process::Command::new(prog).args(&args).output();
    let out = match run(&tool) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => run(&format!("/usr/bin/{tool}")),
        r => r,
    }
    .map_err(|e| {
        anyhow::anyhow!(
            "{field}: {:?} is more than the caller's own id ({err}), and {tool} cannot run: {e} (install uidmap)",
            map.trim()
        )
    })?;
    if !out.status.success() {
        bail!(
            "{field}: {tool} refused {:?}: {} (the ranges must be the caller's own id or listed for it in /etc/sub{kind})",
            map.trim().replace('\n', ", "),
            String::from_utf8_lossy(&out.stderr).trim().replace('\n', " ")
        );
    }
    Ok(())
}

/// True when `map` is one line mapping one id to `id` on the host.
fn single_own_id(map: &str, id: u32) -> bool {
    let lines: Vec<Vec<&str>> = map
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    matches!(lines.as_slice(), [l] if l.len() == 3 && l[1] == id.to_string() && l[2] == "1")
}

/// Whether this `create` runs rootless: `--rootless true|false`, or (auto,
/// runc's default) when rrun lacks the host root's privileges.
fn rootless_mode(global: &Global) -> Result<bool> {
    match global.rootless_mode.as_deref() {
        None | Some("auto") => Ok(sys::rootless()),
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(v) => bail!("--rootless {v}: must be auto, true or false"),
    }
}

/// Refuses, for a rootless caller, what needs the host root's privileges,
/// before anything is made: namespaces an ordinary user may only create
/// inside a user namespace of its own, and an `oomScoreAdj` below rrun's
/// own (the kernel lets only CAP_SYS_RESOURCE lower it).
fn refuse_privileged(spec: &Spec) -> Result<()> {
    // SAFETY: geteuid cannot fail.
    let uid = unsafe { libc::geteuid() };
    let listed = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .cloned()
        .unwrap_or_default();
    let user = listed
        .iter()
        .any(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::User);
    if uid != 0 && !user {
        bail!("linux.namespaces: rrun runs as an ordinary user (uid {uid}) and the config has no user namespace, which it needs to create the others: add {{\"type\": \"user\"}} with uidMappings and gidMappings (`rrun spec --rootless` writes such a config)");
    }
    if let Some(adj) = spec.process().as_ref().and_then(|p| p.oom_score_adj()) {
        let own: i32 = std::fs::read_to_string("/proc/self/oom_score_adj")
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(0);
        if adj < own {
            bail!("process.oomScoreAdj {adj}: below rrun's own ({own}); rootless, it can only be raised (lowering it needs CAP_SYS_RESOURCE)");
        }
    }
    Ok(())
}
