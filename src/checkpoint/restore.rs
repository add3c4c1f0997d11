//! `restore`: a new container, with the given id and bundle, whose process
//! tree is CRIU's restore of a checkpoint.
//!
//! Made the way `create` makes a container, up to the clone: the state
//! directory and record first (status `creating`, so `delete --force`
//! cleans up after a killed restore), the cgroups (cgroupfs or a systemd
//! unit) with the config's resources. Then CRIU, moved into those cgroups
//! before it is asked, restores the tree into them (`cg_root`): its new
//! namespaces, mounts (the external ones from this bundle's sources), the
//! processes. The prestart and createRuntime hooks run when CRIU has made
//! the namespaces (its `setup-namespaces` notification), as runc runs them.
//! A failed restore leaves nothing: the tree CRIU made is killed, the
//! cgroups and the state directory removed. A restored container is
//! `running`, with the new pid in its state and `--pid-file`; without
//! `--detach`, rrun waits for it as `run` does and deletes it at the end.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use super::{
    dirs, external_mounts, joined_namespaces, ns_key, ns_name, open_dir, shared_opts, Dirs,
    DESCRIPTORS,
};
use crate::cgroups::{CgroupPaths, Layout};
use crate::cli::{self, Global};
use crate::criu::{Criu, Notice, Opts, ReqType};
use crate::hooks;
use crate::launch::{self, Cleanup};
use crate::rootfs::resolve::{self, Kind};
use crate::state::{self, Container, Status, Store};
use crate::sys;

pub fn restore(global: &Global, o: &cli::Restore) -> Result<i32> {
    if o.criu.lazy_pages || o.lsm_mount_context.is_some() {
        bail!("restore: --lazy-pages and --lsm-mount-context are not supported by rrun");
    }
    state::validate_id(&o.id)?;
    if sys::rootless() {
        bail!("restore: CRIU needs root; rrun runs as an ordinary user here");
    }
    let shared = shared_opts(&o.criu)?;
    // The restored init is rrun's child (CRIU's rst_sibling); in the
    // foreground rrun waits for it and forwards signals, as `run` does.
    if !o.detach && !o.no_subreaper {
        sys::prctl(libc::PR_SET_CHILD_SUBREAPER, 1)?;
    }
    let sfd = if o.detach {
        None
    } else {
        Some(launch::block_signals()?)
    };
    let criu = Criu::new(global.criu.as_deref());
    criu.require_version()?;
    // CRIU needs the root it restores into to be a mount point: rrun (and
    // CRIU after it) works in a mount namespace of its own, a slave of the
    // host's, where that bind is made; nothing is mounted on the host, and
    // nothing can stay mounted there if rrun is killed. Before any
    // directory is opened: CRIU mounts in the ones rrun names by fd.
    sys::unshare(libc::CLONE_NEWNS as u64).context("restore: cannot make a mount namespace")?;
    nix::mount::mount(
        None::<&str>,
        "/",
        None::<&str>,
        nix::mount::MsFlags::MS_REC | nix::mount::MsFlags::MS_SLAVE,
        None::<&str>,
    )
    .context("restore: cannot make its mount namespace a slave")?;
    let Dirs {
        image_path,
        images,
        work,
        log,
    } = dirs(&o.criu, false, "restore.log")?;
    let descriptors: Vec<String> = {
        let p = image_path.join(DESCRIPTORS);
        let text = std::fs::read(&p).with_context(|| {
            format!(
                "--image-path {}: no {DESCRIPTORS}: not a checkpoint of a container",
                image_path.display()
            )
        })?;
        serde_json::from_slice(&text).with_context(|| format!("{}: corrupt", p.display()))?
    };

    let bundle_dir = o.bundle.clone().unwrap_or_else(|| PathBuf::from("."));
    let bundle = crate::spec::load_bundle(&bundle_dir)?;
    let spec = &bundle.spec;
    if spec
        .annotations()
        .as_ref()
        .is_some_and(|a| a.contains_key("rrun.rootfs.layers"))
    {
        bail!("restore: the bundle's root is stacked from image layers (rrun.rootfs.layers): CRIU cannot restore an overlay root");
    }
    let terminal = spec
        .process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false);
    let console = match (&o.console_socket, terminal) {
        (Some(_), false) => bail!("--console-socket given but process.terminal is false"),
        (Some(p), true) => Some(crate::console::connect(p)?),
        (None, true) => bail!("process.terminal is true but no --console-socket was given: the restored container's new pty master would have nowhere to go"),
        (None, false) => None,
    };
    let (join_ns, ns_files) = namespaces_to_join(spec)?;

    let store = Store::new(&global.root);
    let locked = store.create_dir(&o.id)?;
    let mut cleanup = Cleanup {
        store_dir: Some(&locked),
        cgroups: None,
        unstarted: None,
        pids: Vec::new(),
        poststop: None,
    };
    let layout = Layout::detect()?;
    let (cgroup_plan, unit) = launch::plan_cgroups(global, &layout, spec, &o.id)?;
    let own_pid_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| {
            n.iter()
                .any(|ns| ns.typ() == LinuxNamespaceType::Pid && ns.path().is_none())
        });
    let mut record = Container::creating(&o.id, &bundle, locked.dir.clone(), cgroup_plan)?;
    record.own_pid_ns = own_pid_ns;
    cleanup.poststop = record
        .hooks
        .clone()
        .map(|h| (h, record.hook_state(Status::Stopped)));
    locked.save(&record)?;
    let mut made = launch::make_cgroups(
        &layout,
        unit.as_ref(),
        spec,
        &o.id,
        false,
        &locked,
        &mut record,
        &mut cleanup,
    )?;
    made.apply_devices(&record.cgroups)?;

    let rootfs = open_dir(&bundle.rootfs, "root.path")?;
    let ext = external_mounts(
        spec,
        &bundle.dir,
        &bundle.rootfs,
        rootfs.as_fd(),
        &record.cgroups,
        &layout,
    )?;
    make_mount_points(spec, rootfs.as_fd(), &ext)?;
    let criu_root = locked.dir.join("criu-root");
    std::fs::DirBuilder::new()
        .mode(0o755)
        .create(&criu_root)
        .with_context(|| format!("{}: cannot create", criu_root.display()))?;
    let criu_root = std::fs::canonicalize(&criu_root)?;
    // Dropped before `cleanup` (declared after it): the state directory is
    // never removed with the rootfs mounted inside it.
    let root_mount = RootMount::bind(&bundle.rootfs, &criu_root)?;

    // The image and work directories are named by rrun's own fd numbers
    // (CRIU opens them through /proc/<the RPC peer's pid>/fd); what CRIU
    // inherits is named by its fd numbers: fds[k] is its fd 4 + k. First
    // rrun's stdin, stdout and stderr (the engine's pipes for the restored
    // container), then the namespaces to restore into.
    let (stdin, stdout, stderr) = (std::io::stdin(), std::io::stdout(), std::io::stderr());
    let mut fds: Vec<BorrowedFd<'_>> = vec![stdin.as_fd(), stdout.as_fd(), stderr.as_fd()];
    let mut opts = Opts {
        images_dir_fd: images.as_raw_fd(),
        work_dir_fd: work.as_ref().map(|w| w.as_raw_fd()),
        log_file: Some("restore.log".into()),
        root: Some(criu_root.to_string_lossy().into_owned()),
        rst_sibling: true,
        evasive_devices: true,
        notify_scripts: true,
        lsm_profile: o.lsm_profile.clone(),
        join_ns,
        mntns_compat_mode: true,
        ..shared
    };
    for (key, file) in &ns_files {
        opts.inherit_fd
            .push((key.to_string(), 4 + fds.len() as i32));
        fds.push(file.as_fd());
    }
    for m in ext {
        opts.ext_mnt
            .push((m.key, m.source.to_string_lossy().into_owned()));
    }
    for p in spec
        .linux()
        .as_ref()
        .and_then(|l| l.masked_paths().clone())
        .unwrap_or_default()
    {
        opts.ext_mnt.push((p, "/dev/null".into()));
    }
    // The init's stdio pipes at checkpoint time become rrun's own stdio
    // (runc's descriptors.json handling).
    for (i, d) in descriptors.iter().enumerate().take(3) {
        if d.starts_with("pipe:") {
            opts.inherit_fd.push((d.clone(), 4 + i as i32));
        }
    }

    let session = criu.spawn(&fds)?;
    // CRIU restores the tree into its own cgroups, rebased on cg_root:
    // those of the container, where it is moved before the request.
    enter_cgroups(&record.cgroups, session.pid())?;
    opts.cg_root = cgroup_roots(session.pid(), record.cgroups.unified)?;
    let mut restored = 0;
    let result = session.run(ReqType::Restore, Some(&opts), |n: Notice| {
        match n.script.as_str() {
            "setup-namespaces" => {
                restored = n.pid;
                cleanup.pids.push(n.pid);
                launch::record_pid(&locked, &mut record, n.pid)?;
                let state = record.hook_state(Status::Creating);
                let h = record.hooks.as_ref();
                hooks::run_all(h, hooks::Kind::Prestart, &state)?;
                hooks::run_all(h, hooks::Kind::CreateRuntime, &state)?;
            }
            "post-restore" if restored != n.pid => {
                restored = n.pid;
                cleanup.pids.push(n.pid);
                launch::record_pid(&locked, &mut record, n.pid)?;
            }
            "orphan-pts-master" => {
                let master: OwnedFd =
                    n.fd.context("criu: orphan-pts-master came without the pty master")?;
                let sock = console
                    .as_ref()
                    .context("the checkpoint has a terminal: --console-socket is needed")?;
                crate::console::send_fd(sock.as_fd(), "/dev/ptmx", master.as_fd())?;
            }
            _ => {}
        }
        Ok(())
    });
    let resp = result?;
    drop(root_mount);
    if !resp.success {
        bail!("{}", criu.explain("restore", resp.cr_errmsg, &log));
    }
    let pid = resp.restore_pid.filter(|&p| p > 0).unwrap_or(restored);
    if pid <= 0 {
        bail!("criu restore: it reported no pid for the restored container");
    }
    if pid != restored {
        cleanup.pids.push(pid);
    }
    made.container_holds_them(&record.cgroups)?;
    record.pid = pid;
    record.pid_start =
        sys::process_start_time(pid).context("the restored container's init vanished")?;
    record.created = crate::logging::rfc3339_now();
    record.creating = false;
    locked.save(&record)?;
    if let Some(p) = &o.pid_file {
        launch::write_pid_file(p, pid)?;
    }
    cleanup.store_dir = None;
    cleanup.cgroups = None;
    cleanup.pids.clear();
    cleanup.poststop = None;
    drop(cleanup);
    let Some(sfd) = sfd else {
        return Ok(0);
    };
    drop(locked);
    let code = launch::foreground(pid, &sfd, None)?;
    let store = Store::new(&global.root);
    crate::commands::destroy(store.open(&o.id)?, &record)?;
    Ok(code)
}

/// What restore does with the namespaces the config joins by path: ipc,
/// uts and time ones are joined by CRIU (`join_ns`); network and pid ones
/// are handed over as fds under runc's keys (CRIU left them out of the
/// checkpoint); user, mount and cgroup ones cannot be restored into.
#[allow(clippy::type_complexity)]
fn namespaces_to_join(
    spec: &Spec,
) -> Result<(Vec<(String, String)>, Vec<(&'static str, std::fs::File)>)> {
    let mut join = Vec::new();
    let mut files = Vec::new();
    for (t, path) in joined_namespaces(spec) {
        let name = ns_name(t);
        if let Some(key) = ns_key(t) {
            let f = std::fs::File::open(&path).with_context(|| {
                format!("linux.namespaces {name}: {}: cannot open", path.display())
            })?;
            files.push((key, f));
            continue;
        }
        match t {
            LinuxNamespaceType::Ipc | LinuxNamespaceType::Uts | LinuxNamespaceType::Time => {
                join.push((name.to_string(), path.to_string_lossy().into_owned()))
            }
            _ => bail!(
                "linux.namespaces {name}: {}: CRIU cannot restore into a joined {name} namespace",
                path.display()
            ),
        }
    }
    Ok((join, files))
}

/// Creates the mount points `create` would have made in the root and that
/// are missing from it (a new bundle, a fresh image): CRIU mounts on them
/// but does not make them. Those under a tmpfs are CRIU's to restore, the
/// cgroup view too. Resolved inside the root by fd, as `create` does.
fn make_mount_points(spec: &Spec, root: BorrowedFd<'_>, ext: &[super::ExtMount]) -> Result<()> {
    let mounts: Vec<_> = spec.mounts().iter().flatten().collect();
    let tmpfs: Vec<&Path> = mounts
        .iter()
        .filter(|m| m.typ().as_deref() == Some("tmpfs"))
        .map(|m| m.destination().as_path())
        .collect();
    for (i, m) in mounts.iter().enumerate() {
        let dest = m.destination();
        let fstype = m.typ().as_deref().unwrap_or("");
        if fstype == "cgroup" || fstype == "cgroup2" {
            continue;
        }
        if tmpfs.iter().any(|t| dest != *t && dest.starts_with(t)) {
            continue;
        }
        let file = ext.iter().any(|e| !e.dir && Path::new(&e.key) == dest);
        let kind = if file { Kind::File } else { Kind::Dir };
        resolve::ensure_in_root(root, dest, kind).with_context(|| {
            format!(
                "mounts[{i}] ({}): cannot make its mount point for the restore",
                dest.display()
            )
        })?;
    }
    Ok(())
}

/// Moves CRIU into each of the container's cgroup directories.
fn enter_cgroups(cg: &CgroupPaths, pid: i32) -> Result<()> {
    for dir in &cg.dirs {
        std::fs::write(dir.join("cgroup.procs"), pid.to_string())
            .with_context(|| format!("cgroup {}: cannot move criu into it", dir.display()))?;
    }
    Ok(())
}

/// CRIU's `cg_root`s: where it now is, per hierarchy (`/proc/PID/cgroup`),
/// one root for all on a cgroup2-only host.
fn cgroup_roots(pid: i32, unified: bool) -> Result<Vec<(Option<String>, String)>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))
        .with_context(|| format!("/proc/{pid}/cgroup: cannot read"))?;
    let mut out = Vec::new();
    for line in text.lines() {
        let mut f = line.splitn(3, ':');
        let (_, ctrls, path) = (f.next(), f.next().unwrap_or(""), f.next().unwrap_or(""));
        if ctrls.is_empty() {
            if unified {
                out.push((None, path.to_string()));
            }
        } else {
            out.push((Some(ctrls.to_string()), path.to_string()));
        }
    }
    Ok(out)
}

/// The rootfs bound on `criu-root` in rrun's own mount namespace, for CRIU;
/// unmounted (and its directory removed) when dropped.
struct RootMount {
    at: PathBuf,
}

impl RootMount {
    fn bind(rootfs: &Path, at: &Path) -> Result<RootMount> {
        nix::mount::mount(
            Some(rootfs),
            at,
            None::<&str>,
            nix::mount::MsFlags::MS_BIND | nix::mount::MsFlags::MS_REC,
            None::<&str>,
        )
        .with_context(|| format!("root.path {}: cannot bind it for CRIU", rootfs.display()))?;
        Ok(RootMount {
            at: at.to_path_buf(),
        })
    }
}

impl Drop for RootMount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(&self.at, nix::mount::MntFlags::MNT_DETACH);
        let _ = std::fs::remove_dir(&self.at);
    }
}
