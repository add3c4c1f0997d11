//! The systemd driver's conversation with systemd: transient units started,
//! updated and stopped through `org.freedesktop.systemd1.Manager` over the
//! system bus (the user's bus for a rootless caller), waiting for each job.
//!
//! A scope needs a process when it is made, but rrun clones the container's
//! first process straight into its cgroup (which must exist by then, and is
//! what the container's cgroup mount binds): so a [`Holder`], a forked
//! process that only waits, is the scope's first process, and is gone once
//! the container's init is ready.

use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use super::systemd::{Prop, UnitPath};
use crate::dbus::{Bus, DbusError, Value};

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
/// How long a job (start, stop) may take.
const JOB_TIMEOUT: Duration = Duration::from_secs(30);

/// The unit a container's cgroup belongs to, as recorded in its state.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub name: String,
    /// On the user's bus (rootless), not the system bus.
    #[serde(default)]
    pub user: bool,
}

/// A connection to systemd's manager.
pub struct Manager {
    bus: Bus,
}

impl Manager {
    pub fn connect(user: bool) -> Result<Manager> {
        let mut bus = if user { Bus::user() } else { Bus::system() }
            .context("--systemd-cgroup: cannot reach systemd")?;
        bus.add_match(&format!(
            "type='signal',sender='{SYSTEMD}',interface='{MANAGER}',member='JobRemoved'"
        ))?;
        // systemd only sends its signals to clients that subscribed.
        bus.call(SYSTEMD, MANAGER_PATH, MANAGER, "Subscribe", &[])
            .context("systemd: Subscribe")?;
        Ok(Manager { bus })
    }

    /// Starts a transient unit and waits until systemd has made it.
    pub fn start(&mut self, unit: &str, props: &[(&str, Prop)]) -> Result<()> {
        let args = [
            Value::str(unit),
            Value::str("replace"),
            properties(props),
            Value::array_of("(sa(sv))", Vec::new()),
        ];
        let reply = match self.manager_call("StartTransientUnit", &args) {
            Err(e) if error_name(&e) == Some("org.freedesktop.systemd1.UnitExists") => {
                // A unit of that name left failed by an earlier container:
                // clear it and try once more, as runc does.
                let _ = self.manager_call("ResetFailedUnit", &[Value::str(unit)]);
                self.manager_call("StartTransientUnit", &args)
                    .with_context(|| {
                        format!("linux.cgroupsPath: systemd unit {unit} already exists")
                    })?
            }
            r => r.with_context(|| format!("systemd: cannot start unit {unit}"))?,
        };
        self.wait_job(&reply, unit, "start")
    }

    /// Stops a unit and waits until it is gone; a unit that is not there
    /// is fine. A unit left failed is reset too, as runc does: a scope
    /// whose start failed (a `create` killed after asking for it, its
    /// process gone before systemd took it) stays listed as failed until
    /// then, and a later unit of that name would clash with it. A start
    /// job such a `create` left queued may still be ahead of us: while
    /// systemd knows the unit (for at most a second), stop it again.
    pub fn stop(&mut self, unit: &str) -> Result<()> {
        let stopped = self.stop_once(unit);
        for _ in 0..20 {
            if !self.knows(unit) {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
            let _ = self.stop_once(unit);
        }
        stopped
    }

    /// [`Manager::stop`], only while the unit (if systemd has it) has the
    /// description `desc`: a unit of that name that rrun did not make for
    /// this container is left running.
    pub fn stop_if_described(&mut self, unit: &str, desc: &str) -> Result<()> {
        for _ in 0..21 {
            match self.unit_property(unit, "Description") {
                None => return Ok(()),
                Some(d) if d != desc => {
                    crate::logging::debug(&format!(
                        "systemd unit {unit} is not this container's ({d:?}): left alone"
                    ));
                    return Ok(());
                }
                Some(_) => {}
            }
            self.stop_once(unit)?;
            if !self.knows(unit) {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        Ok(())
    }

    /// A string property of a unit systemd has (loaded), or None.
    fn unit_property(&mut self, unit: &str, name: &str) -> Option<String> {
        let reply = self.manager_call("GetUnit", &[Value::str(unit)]).ok()?;
        let Some(Value::Path(path)) = reply.first() else {
            return None;
        };
        let path = path.clone();
        let v = self
            .bus
            .call(
                SYSTEMD,
                &path,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[
                    Value::str("org.freedesktop.systemd1.Unit"),
                    Value::str(name),
                ],
            )
            .ok()?;
        v.first()
            .map(Value::unvariant)
            .and_then(Value::as_str)
            .map(str::to_string)
    }

    fn stop_once(&mut self, unit: &str) -> Result<()> {
        let stopped =
            match self.manager_call("StopUnit", &[Value::str(unit), Value::str("replace")]) {
                Err(e) if error_name(&e) == Some("org.freedesktop.systemd1.NoSuchUnit") => Ok(()),
                Err(e) => Err(e).with_context(|| format!("systemd: cannot stop unit {unit}")),
                Ok(reply) => self.wait_job(&reply, unit, "stop"),
            };
        // Not failed, or gone: systemd says so with an error, which is fine.
        let _ = self.manager_call("ResetFailedUnit", &[Value::str(unit)]);
        stopped
    }

    /// Whether systemd has the unit and it is not (or not yet) inactive:
    /// activating, active, deactivating or failed. An inactive transient
    /// unit is on its way out (systemd collects it).
    fn knows(&mut self, unit: &str) -> bool {
        let Ok(reply) = self.manager_call("GetUnit", &[Value::str(unit)]) else {
            return false;
        };
        let Some(Value::Path(path)) = reply.first() else {
            return false;
        };
        let path = path.clone();
        let state = self.bus.call(
            SYSTEMD,
            &path,
            "org.freedesktop.DBus.Properties",
            "Get",
            &[
                Value::str("org.freedesktop.systemd1.Unit"),
                Value::str("ActiveState"),
            ],
        );
        match state {
            Ok(v) => v.first().map(Value::unvariant).and_then(Value::as_str) != Some("inactive"),
            Err(_) => false,
        }
    }

    /// Sets properties of a running unit (runtime only, as runc does).
    pub fn set(&mut self, unit: &str, props: &[(&str, Prop)]) -> Result<()> {
        if props.is_empty() {
            return Ok(());
        }
        self.manager_call(
            "SetUnitProperties",
            &[Value::str(unit), Value::Bool(true), properties(props)],
        )
        .with_context(|| format!("systemd: cannot set the properties of {unit}"))?;
        Ok(())
    }

    /// The manager's own cgroup (`ControlGroup`): where a user manager's
    /// slices live (`/user.slice/user-1000.slice/user@1000.service`).
    pub fn control_group(&mut self) -> Result<String> {
        let reply = self
            .bus
            .call(
                SYSTEMD,
                MANAGER_PATH,
                "org.freedesktop.DBus.Properties",
                "Get",
                &[Value::str(MANAGER), Value::str("ControlGroup")],
            )
            .context("systemd: cannot read the manager's ControlGroup")?;
        reply
            .first()
            .map(Value::unvariant)
            .and_then(Value::as_str)
            .map(str::to_string)
            .context("systemd: the manager's ControlGroup is not a string")
    }

    fn manager_call(&mut self, member: &str, args: &[Value]) -> Result<Vec<Value>> {
        self.bus.call(SYSTEMD, MANAGER_PATH, MANAGER, member, args)
    }

    /// Waits for `JobRemoved` of the job a call returned; its result must
    /// be `done`.
    fn wait_job(&mut self, reply: &[Value], unit: &str, what: &str) -> Result<()> {
        let Some(job) = reply.first().and_then(Value::as_str).map(str::to_string) else {
            bail!("systemd: {what} {unit}: no job in the reply");
        };
        let sig = self
            .bus
            .wait_signal(JOB_TIMEOUT, |s| {
                s.member == "JobRemoved" && s.args.get(1).and_then(Value::as_str) == Some(&job)
            })
            .with_context(|| format!("systemd: {what} {unit}: the job did not finish"))?;
        match sig.args.get(3).and_then(Value::as_str) {
            Some("done") => Ok(()),
            Some(result) => bail!("systemd: {what} {unit}: job {result}"),
            None => bail!("systemd: {what} {unit}: malformed JobRemoved signal"),
        }
    }
}

fn error_name(e: &anyhow::Error) -> Option<&str> {
    e.downcast_ref::<DbusError>().map(|d| d.name.as_str())
}

/// `a(sv)` from unit properties.
fn properties(props: &[(&str, Prop)]) -> Value {
    let items = props
        .iter()
        .map(|(name, p)| Value::Struct(vec![Value::str(*name), Value::variant(to_value(p))]))
        .collect();
    Value::array_of("(sv)", items)
}

fn to_value(p: &Prop) -> Value {
    match p {
        Prop::Bool(b) => Value::Bool(*b),
        Prop::U64(n) => Value::U64(*n),
        Prop::Str(s) => Value::str(s.clone()),
        Prop::Strs(v) => Value::array_of("s", v.iter().map(|s| Value::str(s.clone())).collect()),
        Prop::Bytes(b) => Value::array_of("y", b.iter().map(|&x| Value::Byte(x)).collect()),
        Prop::Pids(v) => Value::array_of("u", v.iter().map(|&x| Value::U32(x)).collect()),
        Prop::Devices(v) => Value::array_of(
            "(ss)",
            v.iter()
                .map(|(d, a)| Value::Struct(vec![Value::str(d.clone()), Value::str(a.clone())]))
                .collect(),
        ),
    }
}

/// The first process of a new scope until the container's init is ready:
/// a fork of rrun that waits for its end (it dies with rrun, and is killed
/// and reaped when dropped).
pub struct Holder {
    pid: i32,
}

impl Holder {
    pub fn spawn() -> Result<Holder> {
        let parent = std::process::id() as i32;
        match crate::sys::fork().context("cannot fork the scope's first process")? {
            crate::sys::Forked::Child => {
                // Single-threaded fork: only async-signal-safe calls here.
                // SAFETY: prctl/getppid/pause/_exit with integer arguments.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                    if libc::getppid() != parent {
                        libc::_exit(0);
                    }
                    loop {
                        libc::pause();
                    }
                }
            }
            crate::sys::Forked::Parent { pid } => Ok(Holder { pid }),
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid as u32
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        crate::sys::kill_positive(self.pid, libc::SIGKILL);
        let _ = waitpid(Pid::from_raw(self.pid), None);
    }
}

/// Whether a `--systemd-cgroup` container's unit goes to the user's
/// manager (`systemctl --user`) rather than the system's: when rrun runs as
/// an ordinary user, or as root of a user namespace whose user bus belongs
/// to another user than root there. Rootless Podman runs its runtime so
/// (with the user's `XDG_RUNTIME_DIR` or `DBUS_SESSION_BUS_ADDRESS`); root
/// of a system container with systemd of its own has no such bus (or its
/// own root's), and gets the system's. runc decides the same way, from the
/// user bus's owner.
pub fn user_manager() -> bool {
    if !nix::unistd::geteuid().is_root() {
        return true;
    }
    if !crate::sys::in_user_namespace() {
        return false;
    }
    let owner = Bus::user().and_then(|mut bus| {
        bus.call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "GetConnectionUnixUser",
            &[Value::str(SYSTEMD)],
        )
    });
    match owner.as_deref() {
        Ok([Value::U32(uid)]) => *uid != 0,
        _ => false,
    }
}

/// Makes the container's unit with `props` (which name its first process).
pub fn start(path: &UnitPath, user: bool, props: &[(&str, Prop)]) -> Result<()> {
    Manager::connect(user)?.start(&path.unit, props)
}

/// Stops a container's unit (if systemd still has it).
pub fn stop(unit: &Unit) -> Result<()> {
    Manager::connect(unit.user)?.stop(&unit.name)
}

/// Stops a unit only if it is the one rrun made with description `desc`.
pub fn stop_if_described(unit: &Unit, desc: &str) -> Result<()> {
    Manager::connect(unit.user)?.stop_if_described(&unit.name, desc)
}

/// Gives a running container's unit new resource properties.
pub fn set(unit: &Unit, props: &[(&str, Prop)]) -> Result<()> {
    Manager::connect(unit.user)?.set(&unit.name, props)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_have_the_types_systemd_expects() {
        let v = properties(&[
            ("Delegate", Prop::Bool(true)),
            ("PIDs", Prop::Pids(vec![1])),
            ("AllowedCPUs", Prop::Bytes(vec![3])),
            (
                "DeviceAllow",
                Prop::Devices(vec![("/dev/null".into(), "rw".into())]),
            ),
            ("MemoryMax", Prop::U64(1)),
            ("Wants", Prop::Strs(vec!["a.slice".into()])),
        ]);
        assert_eq!(v.signature(), "a(sv)");
        let sigs: Vec<String> = v
            .as_slice()
            .unwrap()
            .iter()
            .map(|s| s.as_slice().unwrap()[1].unvariant().signature())
            .collect();
        assert_eq!(sigs, ["b", "au", "ay", "a(ss)", "t", "as"]);
    }
}
