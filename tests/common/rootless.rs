//! Running the runtime as a real unprivileged user: the rootless tests'
//! users (made once per host, idempotently) and an environment whose every
//! runtime command runs as one of them.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use super::{unique_id, Bundle, Runtime, TestDir};

/// Size of each test user's subordinate id range.
pub const SUBIDS: u32 = 65536;

/// An unprivileged user of this host with a subordinate id range.
#[derive(Clone, Debug)]
pub struct TestUser {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    /// First id of its range in /etc/subuid and /etc/subgid.
    pub subid: u32,
}

/// Test user `n` (1, 2, ...): `rrunrlN`, a system user without home or
/// login shell, with ids `1100000 + (n-1)*65536` onwards in /etc/subuid and
/// /etc/subgid (far from the 100000-165535 the root tests map). Made on
/// first use, under a lock, so concurrent test binaries agree.
pub fn test_user(n: u32) -> TestUser {
    let name = format!("rrunrl{n}");
    let subid = 1_100_000 + (n - 1) * SUBIDS;
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/tmp/rrun-rootless-users.lock")
        .expect("open the test users' lock");
    // SAFETY: flock on an fd we own; released when `lock` is dropped.
    assert_eq!(
        unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) },
        0
    );
    if id(&["-u", &name]).is_none() {
        let out = Command::new("useradd")
            .args([
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                &name,
            ])
            .output()
            .expect("run useradd");
        assert!(
            out.status.success(),
            "useradd {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for file in ["/etc/subuid", "/etc/subgid"] {
        let text = fs::read_to_string(file).unwrap_or_default();
        if !text.lines().any(|l| l.starts_with(&format!("{name}:"))) {
            super::append(Path::new(file), &format!("{name}:{subid}:{SUBIDS}\n"));
        }
    }
    drop(lock);
    TestUser {
        uid: id(&["-u", &name]).expect("id -u"),
        gid: id(&["-g", &name]).expect("id -g"),
        name,
        subid,
    }
}

fn id(args: &[&str]) -> Option<u32> {
    let out = Command::new("id").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

impl TestUser {
    /// The program and arguments that run a command as this user with
    /// `XDG_RUNTIME_DIR=xdg` (for [`Runtime::wrapped`]).
    pub fn wrapper(&self, xdg: &Path) -> Vec<String> {
        vec![
            "setpriv".into(),
            format!("--reuid={}", self.uid),
            format!("--regid={}", self.gid),
            "--init-groups".into(),
            "--reset-env".into(),
            "env".into(),
            format!("XDG_RUNTIME_DIR={}", xdg.display()),
            "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".into(),
        ]
    }

    /// A command that runs `prog` as this user (see [`TestUser::wrapper`]).
    pub fn command(&self, xdg: &Path, prog: &Path) -> Command {
        let w = self.wrapper(xdg);
        let mut c = Command::new(&w[0]);
        c.args(&w[1..]).arg(prog);
        c
    }

    /// Gives `path` (recursively) to this user.
    pub fn chown(&self, path: &Path) {
        let st = Command::new("chown")
            .arg("-R")
            .arg(format!("{}:{}", self.uid, self.gid))
            .arg(path)
            .status()
            .expect("run chown");
        assert!(st.success(), "chown -R {}", path.display());
    }
}

/// A test environment whose runtime commands all run as `user`: the test
/// dir (bundle, runtime root) is the user's, `XDG_RUNTIME_DIR` is a 0700
/// directory of its own in it, and config.json is what `spec --rootless`
/// writes as that user, made to run `true` without a terminal on a writable
/// root.
pub struct RootlessEnv {
    pub rt: Runtime,
    pub bundle: Bundle,
    pub user: TestUser,
    pub xdg: PathBuf,
    pub dir: TestDir,
    pub id: String,
}

impl RootlessEnv {
    pub fn new(name: &str, user: &TestUser) -> RootlessEnv {
        let dir = TestDir::new(name);
        let mut bundle = Bundle::new(dir.path());
        let xdg = dir.join("xdg");
        fs::create_dir(&xdg).unwrap();
        fs::set_permissions(&xdg, fs::Permissions::from_mode(0o700)).unwrap();
        // The runtime's root is under the dir: the user must be able to
        // reach it (TestDir makes it 0755 as root).
        user.chown(dir.path());
        let rt = Runtime::new(dir.path());
        user.chown(&dir.join("io"));
        let w = user.wrapper(&xdg);
        let w: Vec<&str> = w.iter().map(String::as_str).collect();
        let rt = rt.wrapped(&w);
        let spec_dir = dir.join("spec");
        fs::create_dir(&spec_dir).unwrap();
        user.chown(&spec_dir);
        let out = user
            .command(&xdg, &super::runtime_bin())
            .args(["spec", "--rootless", "--bundle"])
            .arg(&spec_dir)
            .output()
            .expect("run spec --rootless");
        assert!(
            out.status.success(),
            "spec --rootless as {}: {}",
            user.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut config: Value =
            serde_json::from_slice(&fs::read(spec_dir.join("config.json")).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(["sh", "-c", "true"]);
        config["root"]["readonly"] = json!(false);
        *bundle.config_mut() = config;
        bundle.write();
        user.chown(bundle.path());
        RootlessEnv {
            rt,
            bundle,
            user: user.clone(),
            xdg,
            id: unique_id(name),
            dir,
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// `run --bundle <bundle> [extra..] <id>` as the user.
    pub fn run(&self, extra: &[&str]) -> std::process::Output {
        let mut args = vec!["run", "--bundle", self.bundle.path_str()];
        args.extend_from_slice(extra);
        args.push(&self.id);
        self.rt.cmd(&args)
    }

    /// `create --bundle <bundle> <id>` as the user, asserting success.
    pub fn create(&self) -> std::process::Output {
        self.rt.create(&self.bundle, &self.id)
    }

    /// Maps container ids 0 → the user and 1..65536 → its subordinate
    /// range (newuidmap/newgidmap), and writes the config.
    pub fn map_subids(&mut self) {
        let (u, s) = (self.user.clone(), SUBIDS);
        self.bundle.edit(|c| {
            c["linux"]["uidMappings"] = json!([
                {"containerID": 0, "hostID": u.uid, "size": 1},
                {"containerID": 1, "hostID": u.subid, "size": s}
            ]);
            c["linux"]["gidMappings"] = json!([
                {"containerID": 0, "hostID": u.gid, "size": 1},
                {"containerID": 1, "hostID": u.subid, "size": s}
            ]);
        });
    }

    pub fn assert_nothing_left(&self) {
        super::assert_nothing_left(&self.rt, &self.id, &self.bundle);
    }
}

/// The user's own systemd (user@UID.service, started by lingering) on a
/// systemd host: the cgroup v2 subtree it delegates to the user, and its
/// bus. Lingering is turned off and the manager stopped when dropped, so
/// nothing of the user stays.
pub struct UserManager {
    pub user: TestUser,
    /// `/run/user/UID`.
    pub runtime_dir: PathBuf,
}

impl UserManager {
    /// Starts the user's manager; None (with the reason) where there is no
    /// systemd or loginctl.
    pub fn start(user: &TestUser) -> Result<UserManager, String> {
        if !Path::new("/run/systemd/system").is_dir() {
            return Err("systemd is not running here".into());
        }
        let out = Command::new("loginctl")
            .args(["enable-linger", &user.name])
            .output()
            .map_err(|e| format!("loginctl: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "loginctl enable-linger: {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        let m = UserManager {
            user: user.clone(),
            runtime_dir: PathBuf::from(format!("/run/user/{}", user.uid)),
        };
        let unit = format!("user@{}.service", user.uid);
        let _ = Command::new("systemctl").args(["start", &unit]).status();
        let up = super::wait_for(std::time::Duration::from_secs(30), || {
            m.runtime_dir.join("bus").exists()
                && Command::new("systemctl")
                    .args(["is-active", "--quiet", &unit])
                    .status()
                    .is_ok_and(|s| s.success())
        });
        if !up {
            return Err(format!(
                "{unit} or its bus {} did not come up (is dbus-user-session installed?)",
                m.runtime_dir.join("bus").display()
            ));
        }
        Ok(m)
    }

    /// The program and arguments that run a command as the user inside
    /// its manager's subtree (a transient service: `systemd-run --user
    /// --pipe --wait`), for [`Runtime::wrapped`].
    pub fn wrapper(&self) -> Vec<String> {
        let mut w = self.user.wrapper(&self.runtime_dir);
        w.extend(
            [
                "systemd-run",
                "--user",
                "--pipe",
                "--wait",
                "--quiet",
                "--collect",
                "--working-directory=/",
                "--",
            ]
            .map(String::from),
        );
        w
    }

    /// `systemctl --user ARGS` as the user; its stdout.
    pub fn systemctl(&self, args: &[&str]) -> String {
        let out = self
            .user
            .command(&self.runtime_dir, Path::new("systemctl"))
            .arg("--user")
            .args(args)
            .output()
            .expect("run systemctl --user");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for UserManager {
    fn drop(&mut self) {
        let _ = Command::new("loginctl")
            .args(["disable-linger", &self.user.name])
            .status();
        let _ = Command::new("systemctl")
            .args([
                "stop",
                &format!("user@{}.service", self.user.uid),
                &format!("user-runtime-dir@{}.service", self.user.uid),
                &format!("user-{}.slice", self.user.uid),
            ])
            .status();
    }
}
