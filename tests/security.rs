//! Regression tests for the runtime escapes listed in SECURITY.md: one test
//! (or a few) per row. Each builds the hostile rootfs or bundle, runs the
//! attack the way a container (root inside, the default capabilities) or a
//! malicious image would, and checks both that the attack failed and that
//! the host is untouched (files, mounts, sysctls, the runtime binary).
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test security -- --test-threads=2`
//!
//! runc 1.1.5 predates several of these fixes, so against it some tests
//! fail *because runc is vulnerable or differs*; that is what shows these
//! tests can fail. See SECURITY.md ("Validating the tests") for the list.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{symlink, FileTypeExt, PermissionsExt};
use std::os::unix::net::UnixListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Waits for a child with a deadline, collecting its output files.
fn wait_output(mut child: std::process::Child, out: &Path, err: &Path) -> Output {
    let start = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > CMD_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {CMD_TIMEOUT:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Output {
        status,
        stdout: fs::read(out).unwrap_or_default(),
        stderr: fs::read(err).unwrap_or_default(),
    }
}

/// Runs the runtime under test with extra fds inherited on `fds`, each a
/// read-only, not close-on-exec handle of `dir` (what a careless engine
/// leaks into the runtime).
fn cmd_with_leaked_fds(env: &TestEnv, args: &[&str], dir: &Path, fds: &[i32]) -> Output {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, Ordering::SeqCst);
    let out = env.dir.join(format!("leak-{n}.out"));
    let err = env.dir.join(format!("leak-{n}.err"));
    let mut c = env.rt.command(args);
    c.stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap());
    let dirc = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
    let fds = fds.to_vec();
    // SAFETY: only async-signal-safe calls (open, dup2, close) in the child.
    unsafe {
        c.pre_exec(move || {
            let fd = libc::open(dirc.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            if fd < 0 {
                return Err(std::io::Error::last_os_error());
            }
            for &t in &fds {
                if libc::dup2(fd, t) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            if !fds.contains(&fd) {
                libc::close(fd);
            }
            Ok(())
        });
    }
    let child = c.spawn().expect("spawn runtime");
    wait_output(child, &out, &err)
}

/// Lines of host mountinfo whose mount point or root mentions `path`.
fn host_mounts_mentioning(path: &Path) -> Vec<String> {
    let p = path.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| unescape_mountinfo(l).contains(p))
        .map(str::to_string)
        .collect()
}

/// Entries of a host directory (sorted names).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Asserts `dir` on the host is still an empty directory with no mount.
fn assert_host_dir_untouched(dir: &Path) {
    assert!(
        fs::symlink_metadata(dir).is_ok_and(|m| m.is_dir()),
        "{} is gone",
        dir.display()
    );
    assert_eq!(
        entries(dir),
        Vec::<String>::new(),
        "something was created in the host directory {}",
        dir.display()
    );
    let m = host_mounts_mentioning(dir);
    assert!(m.is_empty(), "host mounts at {}: {m:#?}", dir.display());
}

/// Removes the mounts of the base config whose destination is `dest` or
/// below it.
fn drop_mounts_under(c: &mut Value, dest: &str) {
    c["mounts"].as_array_mut().unwrap().retain(|m| {
        let d = m["destination"].as_str().unwrap_or("");
        d != dest && !d.starts_with(&format!("{dest}/"))
    });
}

/// A relative symlink target that climbs out of `from_dir` (a directory in
/// the rootfs) to the absolute host path `to`.
fn climbing_target(to: &Path) -> String {
    format!(
        "{}{}",
        "../".repeat(16),
        to.to_str().unwrap().trim_start_matches('/')
    )
}

/// `/proc/self/status` field as a number (hex for Cap* fields).
fn status_hex(out: &str, key: &str) -> u64 {
    let prefix = format!("{key}:");
    let v = out
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("no {key}: in:\n{out}"));
    u64::from_str_radix(v.trim(), 16).unwrap()
}

fn cap_bit(name: &str) -> u64 {
    1 << match name {
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_KILL" => 5,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_AUDIT_WRITE" => 29,
        _ => panic!("unknown capability {name}"),
    }
}

/// The process capabilities with only bounding, effective and permitted.
fn three_sets(caps: &[&str]) -> Value {
    json!({"bounding": caps, "effective": caps, "permitted": caps})
}

/// Starts the env's container (whose args keep it running) and waits
/// until it runs.
fn start_running(env: &TestEnv) {
    env.create();
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "running", T);
}

/// A file's content, or a marker when missing.
fn content(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| format!("<unreadable: {e}>"))
}

// ---------------------------------------------------------------------------
// CVE-2019-5736: the runtime binary seen through /proc/<pid>/exe
// ---------------------------------------------------------------------------

#[test]
fn cve_2019_5736_created_init_is_not_reachable_through_proc() {
    let bin = runtime_bin();
    let before = fs::read(&bin).expect("read the runtime binary");
    let mut env = TestEnv::new("sec-5736-created");
    env.bundle.set_args(&["sleep", "30"]);
    // Created: init is still the runtime's own code, waiting for `start`.
    env.create();
    assert_eq!(env.rt.status(env.id()), "created");
    let script = "readlink /proc/1/exe; echo readlink=$?; \
                  cat /proc/1/exe > /dev/null; echo read=$?; \
                  (echo x >> /proc/1/exe) 2>/dev/null; echo write=$?; \
                  n=0; for f in /proc/1/fd/*; do readlink $f && n=$((n + 1)); done; \
                  [ $n != 0 ]; echo fds=$?; \
                  cat /proc/1/environ > /dev/null; echo environ=$?; \
                  readlink /proc/1/root; echo root=$?";
    let out = env.rt.cmd(&["exec", env.id(), "sh", "-c", script]);
    let o = stdout(&out);
    assert!(out.status.success(), "{}", describe(&out));
    for what in ["readlink", "read", "write", "fds", "environ", "root"] {
        assert!(
            o.contains(&format!("{what}=")) && !o.contains(&format!("{what}=0")),
            "the created init must be non-dumpable: {what} of /proc/1 succeeded:\n{}",
            describe(&out)
        );
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
    assert!(
        fs::read(&bin).unwrap() == before,
        "the runtime binary changed"
    );
}

#[test]
fn cve_2019_5736_nested_script_interpreters_cannot_reach_the_runtime_binary() {
    // A script whose interpreter is a script whose interpreter ... is
    // /proc/self/exe: the kernel would run the runtime's own binary inside
    // the container, however deep the chain (up to its limit of 4).
    if skip_on_reference_because(
        "runc and crun run a sealed copy of themselves instead of refusing",
    ) {
        return;
    }
    let mut env = TestEnv::new("sec-5736-nested");
    let root = env.bundle.rootfs();
    for (name, interp) in [("a", "/b"), ("b", "/c -x"), ("c", "/proc/self/exe")] {
        let f = root.join(name);
        fs::write(&f, format!("#!{interp}\necho RAN\n")).unwrap();
        fs::set_permissions(&f, fs::Permissions::from_mode(0o755)).unwrap();
    }
    // As the container's process: create fails, naming the interpreter.
    env.bundle.set_args(&["/a"]);
    let out = env.try_create(&[]);
    assert!(
        !out.status.success(),
        "create must fail: {}",
        describe(&out)
    );
    let err = error_message(&out);
    assert!(
        err.contains("\"/proc/self/exe\"") && err.contains("runtime's own binary"),
        "the error must name the interpreter: {err}"
    );
    env.assert_nothing_left();
    // As an exec'd process: refused too, and the container keeps running.
    env.bundle.set_args(&["sleep", "30"]);
    env.create();
    env.rt.run_ok(&["start", env.id()]);
    let out = env.rt.cmd(&["exec", env.id(), "/a"]);
    assert!(!out.status.success(), "exec must fail: {}", describe(&out));
    assert!(!stdout(&out).contains("RAN"), "{}", describe(&out));
    assert!(
        stderr(&out).contains("runtime's own binary"),
        "{}",
        describe(&out)
    );
    assert_eq!(env.rt.status(env.id()), "running");
    // An ordinary script still runs.
    fs::write(root.join("c"), "#!/bin/sh\necho RAN\n").unwrap();
    let out = env.rt.cmd(&["exec", env.id(), "/c"]);
    assert!(stdout(&out).contains("RAN"), "{}", describe(&out));
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

/// A private copy of the runtime under test, so that nothing else executes
/// it (writing a binary that some process runs fails with ETXTBSY, which
/// would hide the attack) and a successful attack cannot damage the real one.
struct RuntimeCopy {
    bin: PathBuf,
    root: String,
    io: PathBuf,
    n: std::cell::Cell<usize>,
}

impl RuntimeCopy {
    fn new(env: &TestEnv) -> RuntimeCopy {
        let dir = env.dir.join("runtime-copy");
        fs::create_dir_all(&dir).unwrap();
        let bin = dir.join(runtime_bin().file_name().unwrap());
        fs::copy(runtime_bin(), &bin).expect("copy the runtime binary");
        fs::set_permissions(&bin, fs::Permissions::from_mode(0o755)).unwrap();
        RuntimeCopy {
            bin,
            root: env.rt.root_str().to_string(),
            io: dir,
            n: std::cell::Cell::new(0),
        }
    }

    fn cmd(&self, args: &[&str]) -> Output {
        let n = self.n.get();
        self.n.set(n + 1);
        let (out, err) = (
            self.io.join(format!("{n}.out")),
            self.io.join(format!("{n}.err")),
        );
        let child = Command::new(&self.bin)
            .arg("--root")
            .arg(&self.root)
            .args(args)
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out).unwrap())
            .stderr(fs::File::create(&err).unwrap())
            .spawn()
            .expect("spawn the runtime copy");
        wait_output(child, &out, &err)
    }

    fn run_ok(&self, args: &[&str]) -> Output {
        let out = self.cmd(args);
        assert!(
            out.status.success(),
            "`{}` failed: {}",
            args.join(" "),
            describe(&out)
        );
        out
    }
}

/// Copies the shared libraries `ldd` lists for `bin` into the rootfs at the
/// same paths, so the runtime binary can run inside the container (a real
/// image has a libc; the busybox test rootfs does not).
fn install_libs_for(bin: &Path, rootfs: &Path) {
    let out = Command::new("ldd").arg(bin).output().expect("run ldd");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let path = line
            .split_whitespace()
            .find(|w| w.starts_with('/'))
            .map(PathBuf::from);
        if let Some(p) = path {
            let dest = rootfs.join(p.strip_prefix("/").unwrap());
            fs::create_dir_all(dest.parent().unwrap()).unwrap();
            fs::copy(&p, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", p.display()));
        }
    }
}

#[test]
fn cve_2019_5736_runtime_binary_exec_inside_cannot_be_overwritten() {
    // The original exploit: make the runtime execute itself inside the
    // container (here `exec /proc/self/exe`; a malicious image does the
    // same with a `#!/proc/self/exe` interpreter line), keep it there
    // (blocked opening a fifo given as its --log), grab /proc/PID/exe, and
    // write through that handle once the runtime has exited.
    let mut env = TestEnv::new("sec-5736-selfexe");
    env.bundle.set_args(&["sleep", "60"]);
    let copy = RuntimeCopy::new(&env);
    let before = fs::read(&copy.bin).unwrap();
    install_libs_for(&copy.bin, &env.bundle.rootfs());
    let fifo = std::ffi::CString::new(env.bundle.rootfs().join("fifo").to_str().unwrap()).unwrap();
    // SAFETY: NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o666) }, 0);
    env.rt.track(env.id());
    copy.run_ok(&["create", "--bundle", env.bundle.path_str(), env.id()]);
    copy.run_ok(&["start", env.id()]);
    // The runtime's own binary, started inside the container.
    let blocked = copy.cmd(&["exec", "-d", env.id(), "/proc/self/exe", "--log", "/fifo"]);
    let attack = r#"
        log=/tmp/attack.log
        pid=
        i=0
        while [ -z "$pid" ] && [ $i -lt 100 ]; do
            for p in /proc/[0-9]*; do
                case "$(tr '\0' ' ' < $p/cmdline 2>/dev/null)" in
                "/proc/self/exe "*) pid=${p#/proc/} ;;
                esac
            done
            i=$((i + 1))
            [ -z "$pid" ] && sleep 0.05
        done
        echo "pid=$pid exe=$(readlink /proc/$pid/exe)" >> $log
        if [ -n "$pid" ]; then
            exec 3< /proc/$pid/exe && echo opened >> $log
            cat /fifo > /dev/null
            for i in $(seq 1 25); do
                sleep 0.2
                if echo PWNED-BY-THE-CONTAINER >> /proc/self/fd/3; then
                    echo wrote >> $log
                    break
                fi
            done 2>> $log
        fi
        echo done >> $log
    "#;
    copy.run_ok(&["exec", "-d", env.id(), "sh", "-c", attack]);
    let log_path = env.bundle.rootfs().join("tmp/attack.log");
    let finished = wait_for(Duration::from_secs(15), || {
        fs::read_to_string(&log_path).is_ok_and(|l| l.contains("done"))
    });
    let log = content(&log_path);
    eprintln!("attack log:\n{log}");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
    let after = fs::read(&copy.bin).unwrap();
    assert!(
        after == before,
        "the container overwrote the runtime binary on the host ({} -> {} bytes)\n\
         attack log:\n{log}\nexec of /proc/self/exe: {}",
        before.len(),
        after.len(),
        describe(&blocked)
    );
    assert!(finished, "the attack script did not finish:\n{log}");
}

// ---------------------------------------------------------------------------
// CVE-2021-30465, CVE-2024-45310: symlinks at mount destinations
// ---------------------------------------------------------------------------

/// A rootfs whose `mnt` is a symlink to a host directory (absolute or
/// climbing with `..`), and a bind mount at /mnt/x and a tmpfs at /mnt/y.
/// With `exists_inside`, the link's target also exists inside the rootfs;
/// without, the link dangles there and the runtime must create the target
/// inside the root (as runc does), never on the host.
fn symlinked_mount_parent(name: &str, relative: bool, exists_inside: bool) {
    let mut env = TestEnv::new(name);
    let host_target = env.dir.join("host-target");
    fs::create_dir(&host_target).unwrap();
    let src = env.dir.join("bind-src");
    fs::create_dir(&src).unwrap();
    fs::write(src.join("marker"), "from-the-bind-source\n").unwrap();
    let link = if relative {
        climbing_target(&host_target)
    } else {
        host_target.to_str().unwrap().to_string()
    };
    symlink(&link, env.bundle.rootfs().join("mnt")).unwrap();
    let inside = env
        .bundle
        .rootfs()
        .join(host_target.strip_prefix("/").unwrap());
    if exists_inside {
        fs::create_dir_all(&inside).unwrap();
    }
    env.bundle.add_bind_mount(&src, "/mnt/x");
    env.bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/y", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }));
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /mnt/x/marker; touch /mnt/y/inside && echo touched; \
             stat -f -c 'ytype=%T' /mnt/y"
        ]);
    });
    let out = env.run(&[]);
    // Checked first: whatever the runtime did, the host stays untouched.
    assert_host_dir_untouched(&host_target);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    assert!(
        o.contains("from-the-bind-source"),
        "bind not at /mnt/x: {o}"
    );
    assert!(o.contains("touched") && o.contains("ytype=tmpfs"), "{o}");
    // The mounts landed inside the rootfs: the link resolved in the root.
    assert!(
        inside.join("x").is_dir() && inside.join("y").is_dir(),
        "the targets were not created inside the rootfs at {}",
        inside.display()
    );
    assert_eq!(content(&src.join("marker")), "from-the-bind-source\n");
    env.assert_nothing_left();
}

#[test]
fn cve_2021_30465_absolute_symlink_at_mount_parent_stays_in_the_root() {
    symlinked_mount_parent("sec-30465-abs", false, true);
}

#[test]
fn cve_2024_45310_climbing_symlink_at_mount_parent_stays_in_the_root() {
    symlinked_mount_parent("sec-45310-rel", true, true);
}

#[test]
fn cve_2021_30465_dangling_absolute_symlink_at_mount_parent_is_created_in_the_root() {
    symlinked_mount_parent("sec-30465-abs-dangling", false, false);
}

#[test]
fn cve_2024_45310_dangling_climbing_symlink_at_mount_parent_is_created_in_the_root() {
    symlinked_mount_parent("sec-45310-rel-dangling", true, false);
}

#[test]
fn cve_2021_30465_swapping_the_mount_parent_during_create_never_reaches_the_host() {
    // The race itself: `mnt` flips between a directory and a symlink to the
    // host while create resolves /mnt/x/y.
    let mut env = TestEnv::new("sec-30465-race");
    let host_target = env.dir.join("host-target");
    fs::create_dir(&host_target).unwrap();
    let rootfs = env.bundle.rootfs();
    fs::create_dir(rootfs.join("mnt")).unwrap();
    symlink(&host_target, rootfs.join("mnt-alt")).unwrap();
    env.bundle.edit(|c| {
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/x/y", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }));
        c["process"]["args"] = json!(["sleep", "10"]);
    });
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let stop = stop.clone();
        let a = std::ffi::CString::new(rootfs.join("mnt").to_str().unwrap()).unwrap();
        let b = std::ffi::CString::new(rootfs.join("mnt-alt").to_str().unwrap()).unwrap();
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                // SAFETY: two NUL-terminated paths. (A raw system call:
                // musl has no renameat2 wrapper.)
                unsafe {
                    libc::syscall(
                        libc::SYS_renameat2,
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
                n += 1;
            }
            n
        })
    };
    let mut created = 0;
    for _ in 0..20 {
        let out = env.try_create(&[]);
        if out.status.success() {
            created += 1;
        }
        let _ = env.rt.cmd(&["delete", "--force", env.id()]);
        if !entries(&host_target).is_empty() || !host_mounts_mentioning(&host_target).is_empty() {
            break;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    eprintln!("{created}/20 creates succeeded during {swaps} swaps");
    assert_host_dir_untouched(&host_target);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// CVE-2022-29162 and the inheritable/ambient sets
// ---------------------------------------------------------------------------

#[test]
fn cve_2022_29162_exec_cap_adds_nothing_to_inheritable_or_ambient() {
    let mut env = TestEnv::new("sec-29162");
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    env.bundle.edit(|c| {
        c["process"]["capabilities"] = three_sets(&caps);
        c["process"]["args"] = json!(["sleep", "30"]);
    });
    start_running(&env);
    for user in ["0", "1000"] {
        let out = env.rt.cmd(&[
            "exec",
            "--user",
            user,
            "--cap",
            "CAP_DAC_OVERRIDE",
            env.id(),
            "cat",
            "/proc/self/status",
        ]);
        assert!(out.status.success(), "{}", describe(&out));
        let o = stdout(&out);
        assert_eq!(status_hex(&o, "CapInh"), 0, "user {user}: CapInh:\n{o}");
        assert_eq!(status_hex(&o, "CapAmb"), 0, "user {user}: CapAmb:\n{o}");
        assert_ne!(
            status_hex(&o, "CapBnd") & cap_bit("CAP_DAC_OVERRIDE"),
            0,
            "--cap must reach the bounding set:\n{o}"
        );
        if user == "0" {
            assert_ne!(
                status_hex(&o, "CapEff") & cap_bit("CAP_DAC_OVERRIDE"),
                0,
                "--cap must reach the effective set:\n{o}"
            );
        }
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn inheritable_and_ambient_stay_empty_unless_the_spec_lists_them() {
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    let all: u64 = caps.iter().map(|c| cap_bit(c)).sum();
    for user in [0, 1000] {
        let mut env = TestEnv::new(&format!("sec-inh-{user}"));
        env.bundle.edit(|c| {
            c["process"]["capabilities"] = three_sets(&caps);
            c["process"]["user"] = json!({"uid": user, "gid": user});
            c["process"]["args"] = json!(["cat", "/proc/self/status"]);
        });
        let out = env.run(&[]);
        assert!(out.status.success(), "{}", describe(&out));
        let o = stdout(&out);
        assert_eq!(status_hex(&o, "CapInh"), 0, "uid {user}:\n{o}");
        assert_eq!(status_hex(&o, "CapAmb"), 0, "uid {user}:\n{o}");
        assert_eq!(status_hex(&o, "CapBnd"), all, "uid {user}:\n{o}");
        env.assert_nothing_left();
    }
    // Listed, they are there: the check above can tell.
    let mut env = TestEnv::new("sec-inh-listed");
    env.bundle.edit(|c| {
        let mut sets = three_sets(&caps);
        sets["inheritable"] = json!(["CAP_KILL"]);
        sets["ambient"] = json!(["CAP_KILL"]);
        c["process"]["capabilities"] = sets;
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        c["process"]["args"] = json!(["cat", "/proc/self/status"]);
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    assert_eq!(status_hex(&o, "CapInh"), cap_bit("CAP_KILL"), "{o}");
    assert_eq!(status_hex(&o, "CapAmb"), cap_bit("CAP_KILL"), "{o}");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// CVE-2023-25809: the cgroup file system inside
// ---------------------------------------------------------------------------

const CGROUP_PROBE: &str = r#"
for f in /sys/fs/cgroup/*/cgroup.procs /sys/fs/cgroup/cgroup.procs \
         /sys/fs/cgroup/pids/pids.max /sys/fs/cgroup/unified/pids.max /sys/fs/cgroup/pids.max \
         /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/memory.max; do
    [ -e "$f" ] || continue
    case "$f" in *cgroup.procs) v=$$ ;; *pids.max) v=1000 ;; *) v=123456789 ;; esac
    if echo "$v" 2>/tmp/err > "$f"; then echo "WROTE $f"; else echo "REFUSED $f: $(cat /tmp/err)"; fi
done
for f in $(find /sys/fs/cgroup -name release_agent -o -name cgroup.sane_behavior); do echo "ROOTFILE $f"; done
for d in $(find /sys/fs/cgroup -mindepth 2 -type d); do echo "SUBDIR $d"; done
echo probe-done
"#;

fn check_cgroup_probe(name: &str, options: Value) {
    let mut env = TestEnv::new(name);
    env.bundle.edit(|c| {
        for m in c["mounts"].as_array_mut().unwrap() {
            if m["destination"] == "/sys/fs/cgroup" {
                m["options"] = options.clone();
            }
        }
        c["process"]["args"] = json!(["sh", "-c", CGROUP_PROBE]);
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    assert!(o.contains("probe-done"), "{o}");
    assert!(
        !o.contains("WROTE"),
        "the cgroup file system must be read-only inside:\n{o}"
    );
    assert!(
        o.contains("REFUSED") && o.contains("Read-only file system"),
        "writes must fail with EROFS:\n{o}"
    );
    assert!(
        !o.contains("ROOTFILE"),
        "a hierarchy root (release_agent) is visible inside:\n{o}"
    );
    assert!(
        !o.contains("SUBDIR"),
        "cgroups other than the container's own are visible:\n{o}"
    );
    env.assert_nothing_left();
}

#[test]
fn cve_2023_25809_cgroup_mount_is_read_only_and_only_the_containers_own() {
    check_cgroup_probe(
        "sec-25809-ro",
        json!(["nosuid", "noexec", "nodev", "relatime", "ro"]),
    );
}

#[test]
fn cve_2023_25809_cgroup_mount_is_read_only_without_an_ro_option() {
    // rrun: read-only unless the spec explicitly says "rw".
    check_cgroup_probe(
        "sec-25809-default",
        json!(["nosuid", "noexec", "nodev", "relatime"]),
    );
}

// ---------------------------------------------------------------------------
// CVE-2023-27561, CVE-2023-28642: symlinked /proc and /sys
// ---------------------------------------------------------------------------

fn symlinked_pseudo_fs(name: &str, dest: &str, how: &str) {
    let env = TestEnv::new(name);
    let host_dir = env.dir.join("host-dir");
    fs::create_dir(&host_dir).unwrap();
    let rootfs = env.bundle.rootfs();
    let entry = rootfs.join(dest.trim_start_matches('/'));
    fs::remove_dir(&entry).unwrap();
    let inside_dir = rootfs.join("tmp/elsewhere");
    fs::create_dir(&inside_dir).unwrap();
    let target = match how {
        "inside" => "/tmp/elsewhere".to_string(),
        "host" => host_dir.to_str().unwrap().to_string(),
        "climbing" => climbing_target(&host_dir),
        _ => unreachable!(),
    };
    symlink(&target, &entry).unwrap();
    let out = env.try_create(&[]);
    assert_host_dir_untouched(&host_dir);
    assert_error_ref(&out, &[dest], &["proc", "sys", "symlink"]);
    env.assert_nothing_left();
    assert_eq!(entries(&inside_dir), Vec::<String>::new());
    assert_eq!(
        fs::read_link(&entry).unwrap(),
        PathBuf::from(&target),
        "the symlink was replaced"
    );
}

#[test]
fn cve_2023_27561_proc_symlink_inside_the_root_is_refused() {
    symlinked_pseudo_fs("sec-27561-in", "/proc", "inside");
}

#[test]
fn cve_2023_27561_proc_symlink_to_a_host_path_is_refused() {
    symlinked_pseudo_fs("sec-27561-host", "/proc", "host");
}

#[test]
fn cve_2023_28642_proc_symlink_climbing_out_is_refused() {
    symlinked_pseudo_fs("sec-28642-climb", "/proc", "climbing");
}

#[test]
fn cve_2023_27561_sys_symlink_inside_the_root_is_refused() {
    symlinked_pseudo_fs("sec-27561-sys-in", "/sys", "inside");
}

#[test]
fn cve_2023_27561_sys_symlink_to_a_host_path_is_refused() {
    symlinked_pseudo_fs("sec-27561-sys-host", "/sys", "host");
}

// ---------------------------------------------------------------------------
// CVE-2024-21626: leaked fds and cwd through /proc/self/fd
// ---------------------------------------------------------------------------

/// fd numbers `ls /proc/self/fd` printed (one per line).
fn fd_numbers(out: &str) -> Vec<u32> {
    out.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

#[test]
fn cve_2024_21626_no_fd_above_2_reaches_the_container() {
    let mut env = TestEnv::new("sec-21626-fds");
    let host_dir = env.dir.join("leaked-dir");
    fs::create_dir(&host_dir).unwrap();
    env.bundle.set_args(&["sleep", "30"]);
    // fds 5 and 9 leak into the runtime from its caller.
    let out = cmd_with_leaked_fds(
        &env,
        &["create", "--bundle", env.bundle.path_str(), env.id()],
        &host_dir,
        &[5, 9],
    );
    assert!(out.status.success(), "{}", describe(&out));
    env.rt.start(env.id());
    // Init's fds, as seen from the host.
    let pid = env.rt.pid(env.id());
    let init_fds = entries(Path::new(&format!("/proc/{pid}/fd")));
    assert_eq!(init_fds, ["0", "1", "2"], "container init's open fds");
    // An exec'd process, started by a runtime that leaked fds too.
    let out = cmd_with_leaked_fds(
        &env,
        &["exec", env.id(), "ls", "/proc/self/fd"],
        &host_dir,
        &[5, 9],
    );
    assert!(out.status.success(), "{}", describe(&out));
    let fds = fd_numbers(&stdout(&out));
    // 0-2, plus ls's own handle of /proc/self/fd.
    assert!(
        fds.iter().all(|&f| f <= 3) && fds.contains(&0),
        "fds leaked into the exec'd process: {fds:?}\n{}",
        describe(&out)
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

/// From the process's cwd, climb 16 levels and list `./tmp` there: the
/// container's /tmp is empty, the host's holds this test's directory.
const CLIMB: &str = "echo pwd=$(pwd -P); cd ../../../../../../../../../../../../../../../..; \
                     ls -a ./tmp; echo climbed";

#[test]
fn cve_2024_21626_cwd_through_proc_self_fd_never_is_a_host_directory() {
    let mut env = TestEnv::new("sec-21626-cwd");
    let marker = env
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    let host_dir = env.dir.join("host-dir");
    fs::create_dir(&host_dir).unwrap();
    let mut outcomes = Vec::new();
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        env.bundle.edit(|c| {
            c["process"]["cwd"] = json!(cwd);
            c["process"]["args"] = json!(["sh", "-c", CLIMB]);
        });
        // The caller leaks handles of a host directory on fds 5-9, too.
        let out = cmd_with_leaked_fds(
            &env,
            &["run", "--bundle", env.bundle.path_str(), env.id()],
            &host_dir,
            &[5, 6, 7, 8, 9],
        );
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !text.contains(&marker) && !text.contains("rrun-test-"),
            "process.cwd {cwd} gave the container a host directory:\n{}",
            describe(&out)
        );
        if out.status.success() {
            assert!(text.contains("climbed"), "{}", describe(&out));
        } else if !is_reference_runtime() {
            assert_error(&out, &["process.cwd"]);
        }
        outcomes.push(format!("{cwd}: exit {}", exit_code(&out)));
        env.assert_nothing_left();
    }
    eprintln!("{}", outcomes.join("; "));
}

#[test]
fn cve_2024_21626_exec_cwd_through_proc_self_fd_never_is_a_host_directory() {
    let mut env = TestEnv::new("sec-21626-exec");
    let marker = env
        .dir
        .path()
        .file_name()
        .unwrap()
        .to_str()
        .unwrap()
        .to_string();
    env.bundle.set_args(&["sleep", "30"]);
    start_running(&env);
    let host_dir = env.dir.join("host-dir");
    fs::create_dir(&host_dir).unwrap();
    for n in 3..=12 {
        let cwd = format!("/proc/self/fd/{n}");
        let out = cmd_with_leaked_fds(
            &env,
            &["exec", "--cwd", &cwd, env.id(), "sh", "-c", CLIMB],
            &host_dir,
            &[5, 6, 7, 8, 9],
        );
        let text = format!("{}{}", stdout(&out), stderr(&out));
        assert!(
            !text.contains(&marker) && !text.contains("rrun-test-"),
            "exec --cwd {cwd} gave the process a host directory:\n{}",
            describe(&out)
        );
    }
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// CVE-2025-31133: /dev/null planted as a symlink
// ---------------------------------------------------------------------------

/// Restores the host's core_pattern if a vulnerable runtime changed it.
struct CorePatternGuard(String);

impl Drop for CorePatternGuard {
    fn drop(&mut self) {
        let p = "/proc/sys/kernel/core_pattern";
        if fs::read_to_string(p).unwrap_or_default() != self.0 {
            let _ = fs::write(p, self.0.trim_end_matches('\n'));
        }
    }
}

#[test]
fn cve_2025_31133_planted_dev_null_cannot_redirect_masked_paths() {
    let core = "/proc/sys/kernel/core_pattern";
    let guard = CorePatternGuard(fs::read_to_string(core).unwrap());
    let mut env = TestEnv::new("sec-31133");
    symlink(core, env.bundle.rootfs().join("dev/null")).unwrap();
    env.bundle.edit(|c| {
        drop_mounts_under(c, "/dev");
        c["linux"]["maskedPaths"] = json!(["/proc/version", "/proc/kcore"]);
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "echo version=$(cat /proc/version | wc -c); \
             (echo core.rrun-test-31133 > /proc/version) 2>/dev/null; echo done"
        ]);
    });
    let out = env.run(&[]);
    eprintln!("planted dev/null: {}", describe(&out));
    let now = fs::read_to_string(core).unwrap();
    assert_eq!(now, guard.0, "the host's core_pattern changed");
    if out.status.success() {
        let o = stdout(&out);
        assert!(
            o.contains("version=0"),
            "the masked path must read empty (it shows another file):\n{o}"
        );
    } else {
        assert_error_ref(&out, &["/dev/null"], &["null"]);
    }
    env.assert_nothing_left();
    assert_eq!(
        fs::read_link(env.bundle.rootfs().join("dev/null")).unwrap(),
        PathBuf::from(core)
    );
}

#[test]
fn masked_paths_read_empty_with_the_hosts_dev_null() {
    // The same masking with an ordinary /dev tmpfs: proves the check above
    // would see a non-empty masked file.
    let mut env = TestEnv::new("sec-masked");
    env.bundle.edit(|c| {
        c["linux"]["maskedPaths"] = json!(["/proc/version"]);
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "echo version=$(cat /proc/version | wc -c); stat -c '%t:%T' /proc/version"
        ]);
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    assert!(o.contains("version=0") && o.contains("1:3"), "{o}");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// CVE-2025-52565: /dev/console
// ---------------------------------------------------------------------------

/// A console-socket receiver: takes the pty master and reads everything the
/// container writes until `marker` shows up, EOF, or 15 s.
fn console_agent(listener: UnixListener, marker: &'static str) -> Result<String, String> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let got = accept_one_message(&listener, 4096, Duration::from_secs(15))?;
    let master = got.fds.into_iter().next().ok_or("no pty master received")?;
    let mut text = Vec::new();
    while Instant::now() < deadline {
        let mut p = libc::pollfd {
            fd: master.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        if unsafe { libc::poll(&mut p, 1, 200) } <= 0 {
            continue;
        }
        let mut b = [0u8; 4096];
        // SAFETY: reading into a local buffer.
        let n = unsafe { libc::read(master.as_raw_fd(), b.as_mut_ptr().cast(), b.len()) };
        if n <= 0 {
            break;
        }
        text.extend_from_slice(&b[..n as usize]);
        if String::from_utf8_lossy(&text).contains(marker) {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&text).into_owned())
}

/// Runs a terminal container with `dev/console` as given, its /dev not a
/// tmpfs, and returns the pty output, or the create error.
fn console_run(name: &str, plant: Option<&str>) -> (TestEnv, Result<String, Output>) {
    let mut env = TestEnv::new(name);
    if let Some(target) = plant {
        symlink(target, env.bundle.rootfs().join("dev/console")).unwrap();
    }
    env.bundle.edit(|c| {
        c["mounts"]
            .as_array_mut()
            .unwrap()
            .retain(|m| m["destination"] != "/dev");
        c["process"]["terminal"] = json!(true);
        c["process"]["args"] =
            json!(["sh", "-c",
            "echo console=$(stat -L -c '%t:%T' /dev/console) tty=$(stat -L -c '%t:%T' $(tty)); \
             echo console-done"]);
    });
    let sock = env.dir.join("console.sock");
    let listener = UnixListener::bind(&sock).unwrap();
    let agent = std::thread::spawn(move || console_agent(listener, "console-done"));
    let out = env.try_create(&["--console-socket", sock.to_str().unwrap()]);
    if !out.status.success() {
        // Unblock the agent: connect once so accept returns, then drop.
        let _ = std::os::unix::net::UnixStream::connect(&sock);
        let _ = agent.join();
        return (env, Err(out));
    }
    let started = env.rt.cmd(&["start", env.id()]);
    if !started.status.success() {
        let _ = agent.join();
        return (env, Err(started));
    }
    let text = agent.join().unwrap().expect("console agent");
    env.rt.wait_status(env.id(), "stopped", T);
    env.rt.run_ok(&["delete", env.id()]);
    (env, Ok(text))
}

fn assert_console_is_the_pty(text: &str) {
    let field = |k: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .unwrap_or_else(|| panic!("no {k}= in {text:?}"))
            .to_string()
    };
    let (console, tty) = (field("console"), field("tty"));
    assert!(
        tty.starts_with("88:"),
        "the terminal is not a pty (136:N): {text:?}"
    );
    assert_eq!(
        console, tty,
        "/dev/console must be the container's pty: {text:?}"
    );
}

#[test]
fn cve_2025_52565_dev_console_is_the_containers_pty() {
    let (env, r) = console_run("sec-52565-plain", None);
    let text = r.unwrap_or_else(|out| panic!("{}", describe(&out)));
    assert_console_is_the_pty(&text);
    env.assert_nothing_left();
}

#[test]
fn cve_2025_52565_planted_dev_console_symlink_cannot_redirect_the_pty() {
    let env0 = TestDir::new("sec-52565-host");
    let host_file = env0.join("host-file");
    fs::write(&host_file, "host-original\n").unwrap();
    for (i, target) in [
        host_file.to_str().unwrap().to_string(),
        climbing_target(&host_file),
        "../etc/passwd".to_string(),
    ]
    .iter()
    .enumerate()
    {
        let (env, r) = console_run(&format!("sec-52565-link{i}"), Some(target));
        assert_eq!(content(&host_file), "host-original\n", "target {target}");
        assert!(host_mounts_mentioning(&host_file).is_empty());
        let passwd = content(&env.bundle.rootfs().join("etc/passwd"));
        assert!(
            passwd.starts_with("root:x:0:0"),
            "target {target}: the rootfs's /etc/passwd was changed: {passwd:?}"
        );
        eprintln!(
            "dev/console -> {target}: {}",
            match &r {
                Ok(_) => "ran".to_string(),
                Err(out) => stderr(out),
            }
        );
        match r {
            Ok(text) => assert_console_is_the_pty(&text),
            Err(out) => assert_error_ref(&out, &["/dev/console", "console"], &["console"]),
        }
        env.assert_nothing_left();
    }
}

// ---------------------------------------------------------------------------
// CVE-2025-52881: sysctls through a private procfs
// ---------------------------------------------------------------------------

#[test]
fn cve_2025_52881_sysctl_ignores_a_planted_proc_sys() {
    let host_shmmax = fs::read_to_string("/proc/sys/kernel/shmmax").unwrap();
    let mut env = TestEnv::new("sec-52881");
    // The fake tree, on the host and at the same path inside the rootfs
    // (where an absolute link resolves once the root is switched).
    let fake = env.dir.join("fake");
    let fake_inside = env.bundle.rootfs().join(fake.strip_prefix("/").unwrap());
    for base in [&fake, &fake_inside] {
        fs::create_dir_all(base.join("kernel")).unwrap();
        fs::write(base.join("kernel/shmmax"), "original\n").unwrap();
    }
    symlink(&fake, env.bundle.rootfs().join("proc/sys")).unwrap();
    env.bundle.edit(|c| {
        drop_mounts_under(c, "/proc");
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/proc2", "type": "proc", "source": "proc"
        }));
        c["linux"].as_object_mut().unwrap().remove("maskedPaths");
        c["linux"].as_object_mut().unwrap().remove("readonlyPaths");
        c["linux"]["sysctl"] = json!({"kernel.shmmax": "123456789"});
        c["process"]["args"] = json!(["sh", "-c", "echo shmmax=$(cat /proc2/sys/kernel/shmmax)"]);
    });
    let out = env.run(&[]);
    for base in [&fake, &fake_inside] {
        assert_eq!(
            content(&base.join("kernel/shmmax")),
            "original\n",
            "the sysctl write followed the planted /proc/sys to {}",
            base.display()
        );
    }
    assert_eq!(
        fs::read_to_string("/proc/sys/kernel/shmmax").unwrap(),
        host_shmmax,
        "the host's kernel.shmmax changed"
    );
    if out.status.success() {
        assert!(
            stdout(&out).contains("shmmax=123456789"),
            "the sysctl must still apply in the container: {}",
            describe(&out)
        );
    } else {
        assert_error(&out, &["linux.sysctl", "sysctl"]);
    }
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// crun CVE-2019-18837, CVE-2026-47766: /dev as a symlink
// ---------------------------------------------------------------------------

fn dev_symlink(name: &str, climbing: bool) {
    let mut env = TestEnv::new(name);
    let host_dev = env.dir.join("host-dev");
    fs::create_dir(&host_dev).unwrap();
    let dev = env.bundle.rootfs().join("dev");
    fs::remove_dir(&dev).unwrap();
    let target = if climbing {
        climbing_target(&host_dev)
    } else {
        host_dev.to_str().unwrap().to_string()
    };
    symlink(&target, &dev).unwrap();
    env.bundle.edit(|c| {
        drop_mounts_under(c, "/dev");
        c["linux"]["devices"] = json!([
            {"path": "/dev/rrun-zero", "type": "c", "major": 1, "minor": 5, "fileMode": 438}
        ]);
    });
    let out = env.try_create(&[]);
    assert_host_dir_untouched(&host_dev);
    assert_error_ref(&out, &["/dev"], &["dev"]);
    env.assert_nothing_left();
    // Nothing special appeared anywhere on the host path either.
    assert!(!host_dev.join("null").exists());
    assert!(fs::symlink_metadata(host_dev.join("rrun-zero"))
        .map(|m| !m.file_type().is_char_device())
        .unwrap_or(true));
}

#[test]
fn crun_cve_2019_18837_dev_symlink_to_a_host_dir_is_refused() {
    dev_symlink("sec-18837-abs", false);
}

#[test]
fn crun_cve_2026_47766_climbing_dev_symlink_is_refused() {
    dev_symlink("sec-47766-rel", true);
}

// ---------------------------------------------------------------------------
// LSM labels (every test name contains `lsm_`)
//
// On a host without AppArmor or SELinux, asking for a label is an error
// and `linux.mountLabel` adds no `context=`. On a host with them, the labels
// are applied: tests/vm/run.sh boots such hosts (RRUN_VM_LSM=apparmor or
// selinux) and sets RRUN_TEST_REQUIRE_LSM there, so that these tests fail
// instead of skipping when the LSM or its tools are missing.
// ---------------------------------------------------------------------------

fn apparmor_enabled() -> bool {
    fs::read_to_string("/sys/module/apparmor/parameters/enabled").is_ok_and(|s| s.trim() == "Y")
}

fn selinux_enabled() -> bool {
    Path::new("/sys/fs/selinux/enforce").exists()
}

/// Whether a test that needs `lsm` (and `what` of it) may run: false after
/// printing why not, or a panic when $RRUN_TEST_REQUIRE_LSM names `lsm`.
fn lsm_usable(lsm: &str, problem: Option<String>) -> bool {
    let Some(why) = problem else { return true };
    let required = std::env::var("RRUN_TEST_REQUIRE_LSM").unwrap_or_default();
    if required.split([' ', ',']).any(|r| r == lsm) {
        panic!("{lsm} is required here (RRUN_TEST_REQUIRE_LSM={required:?}) but {why}");
    }
    eprintln!("skipped: {why}");
    false
}

fn apparmor_parser() -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/sbin", "/usr/sbin"])
        .map(|d| Path::new(d).join("apparmor_parser"))
        .find(|p| p.is_file());
    found
}

/// AppArmor profiles loaded for one test and removed when dropped. Each
/// allows everything but reading or writing `/rrun-lsm-denied`.
struct AppArmorProfiles {
    parser: PathBuf,
    file: PathBuf,
    names: Vec<String>,
}

/// The file every test profile denies, and what it holds.
const APPARMOR_DENIED: &str = "rrun-lsm-denied";
const APPARMOR_SECRET: &str = "not-for-confined-eyes";

impl AppArmorProfiles {
    /// Loads the profiles, or returns None (skip) when AppArmor or
    /// apparmor_parser is missing.
    fn load(dir: &TestDir, tags: &[&str]) -> Option<AppArmorProfiles> {
        let problem = if !apparmor_enabled() {
            Some("AppArmor is not enabled on this host".to_string())
        } else if !Path::new("/sys/kernel/security/apparmor/profiles").exists() {
            Some("securityfs is not mounted at /sys/kernel/security".to_string())
        } else if apparmor_parser().is_none() {
            Some("apparmor_parser is not installed (Debian: apparmor)".to_string())
        } else {
            None
        };
        if !lsm_usable("apparmor", problem) {
            return None;
        }
        let names: Vec<String> = tags
            .iter()
            .map(|t| format!("rrun-test-lsm-{}-{t}", std::process::id()))
            .collect();
        let text: String = names
            .iter()
            .map(|n| {
                format!(
                    "profile {n} flags=(attach_disconnected,mediate_deleted) {{\n  \
                     file,\n  capability,\n  network,\n  signal,\n  ptrace,\n  unix,\n  \
                     mount,\n  umount,\n  pivot_root,\n  \
                     deny /{APPARMOR_DENIED} rwklx,\n}}\n"
                )
            })
            .collect();
        let file = dir.join("apparmor-profiles");
        fs::write(&file, text).unwrap();
        let profiles = AppArmorProfiles {
            parser: apparmor_parser().unwrap(),
            file,
            names,
        };
        let out = Command::new(&profiles.parser)
            .args(["--replace", "--skip-cache"])
            .arg(&profiles.file)
            .output()
            .expect("run apparmor_parser");
        assert!(
            out.status.success(),
            "apparmor_parser --replace: {}",
            describe(&out)
        );
        Some(profiles)
    }

    fn name(&self, i: usize) -> &str {
        &self.names[i]
    }
}

impl Drop for AppArmorProfiles {
    fn drop(&mut self) {
        let _ = Command::new(&self.parser)
            .args(["--remove", "--skip-cache"])
            .arg(&self.file)
            .output();
    }
}

/// A rootfs file that the test profiles deny and root could otherwise read.
fn plant_denied_file(env: &TestEnv) {
    fs::write(env.bundle.rootfs().join(APPARMOR_DENIED), APPARMOR_SECRET).unwrap();
}

/// What the shell script prints: its label, then DENIED or the secret.
const SHOW_LABEL_AND_TRY_DENIED: &str =
    "cat /proc/self/attr/current; echo; cat /rrun-lsm-denied || echo DENIED";

fn assert_confined(out: &Output, profile: &str) {
    assert!(out.status.success(), "{}", describe(out));
    let o = stdout(out);
    assert!(
        o.contains(&format!("{profile} (enforce)")),
        "not confined by {profile}: {}",
        describe(out)
    );
    assert!(
        o.contains("DENIED") && !o.contains(APPARMOR_SECRET),
        "{profile} did not deny /{APPARMOR_DENIED}: {}",
        describe(out)
    );
}

#[test]
fn lsm_apparmor_profile_confines_the_container() {
    let mut env = TestEnv::new("sec-lsm-aa");
    let Some(aa) = AppArmorProfiles::load(&env.dir, &["init"]) else {
        return;
    };
    plant_denied_file(&env);
    let profile = aa.name(0).to_string();
    env.bundle.edit(|c| {
        c["process"]["apparmorProfile"] = json!(profile);
        c["process"]["args"] = json!(["sh", "-c", SHOW_LABEL_AND_TRY_DENIED]);
    });
    let out = env.run(&[]);
    assert_confined(&out, &profile);
    env.assert_nothing_left();
}

#[test]
fn lsm_apparmor_exec_gets_the_containers_profile_or_the_one_asked_for() {
    let mut env = TestEnv::new("sec-lsm-aa-exec");
    let Some(aa) = AppArmorProfiles::load(&env.dir, &["ctr", "exec"]) else {
        return;
    };
    plant_denied_file(&env);
    let (ctr, other) = (aa.name(0).to_string(), aa.name(1).to_string());
    env.bundle.edit(|c| {
        c["process"]["apparmorProfile"] = json!(ctr);
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    start_running(&env);
    // The init, as the host sees it.
    let init = fs::read_to_string(format!("/proc/{}/attr/current", env.rt.pid(env.id())));
    assert_eq!(init.unwrap_or_default().trim(), format!("{ctr} (enforce)"));
    // Plain exec: the container's profile.
    let out = env
        .rt
        .cmd(&["exec", env.id(), "sh", "-c", SHOW_LABEL_AND_TRY_DENIED]);
    assert_confined(&out, &ctr);
    // --apparmor: that profile instead.
    let out = env.rt.cmd(&[
        "exec",
        "--apparmor",
        &other,
        env.id(),
        "sh",
        "-c",
        SHOW_LABEL_AND_TRY_DENIED,
    ]);
    assert_confined(&out, &other);
    // --process: its apparmorProfile.
    let process = env.dir.join("process.json");
    fs::write(
        &process,
        json!({
            "args": ["sh", "-c", SHOW_LABEL_AND_TRY_DENIED],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"],
            "apparmorProfile": other,
        })
        .to_string(),
    )
    .unwrap();
    let out = env
        .rt
        .cmd(&["exec", "--process", process.to_str().unwrap(), env.id()]);
    assert_confined(&out, &other);
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn lsm_apparmor_unknown_profile_fails_create_and_exec_naming_the_field() {
    let mut env = TestEnv::new("sec-lsm-aa-unknown");
    // Loads one so that the host is known to take profiles at all.
    let Some(_aa) = AppArmorProfiles::load(&env.dir, &["known"]) else {
        return;
    };
    let unknown = format!("rrun-test-lsm-{}-never-loaded", std::process::id());
    env.bundle.edit(|c| {
        c["process"]["apparmorProfile"] = json!(unknown);
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    let out = env.try_create(&[]);
    assert_error(&out, &["process.apparmorProfile", &unknown]);
    if !is_reference_runtime() {
        let e = stderr(&out);
        assert!(
            mentions(&e, "process.apparmorProfile") && e.contains("not loaded"),
            "{e}"
        );
    }
    env.assert_nothing_left();
    // exec --apparmor in a running, unconfined container.
    env.bundle.edit(|c| {
        c["process"]
            .as_object_mut()
            .unwrap()
            .remove("apparmorProfile");
    });
    start_running(&env);
    let out = env.rt.cmd(&[
        "exec",
        "--apparmor",
        &unknown,
        env.id(),
        "sh",
        "-c",
        "echo RAN",
    ]);
    assert_error(&out, &["process.apparmorProfile", &unknown]);
    assert!(!stdout(&out).contains("RAN"), "{}", describe(&out));
    // Nothing but the container's init is left in it.
    let ps = env.rt.run_ok(&["ps", "--format", "json", env.id()]);
    let pids: Vec<i32> = serde_json::from_slice(&ps.stdout).expect("ps json");
    assert_eq!(pids, vec![env.rt.pid(env.id())], "{}", describe(&ps));
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn lsm_apparmor_profile_without_apparmor_fails_create() {
    if apparmor_enabled() {
        eprintln!("skipped: AppArmor is enabled on this host");
        return;
    }
    let mut env = TestEnv::new("sec-apparmor");
    env.bundle
        .edit(|c| c["process"]["apparmorProfile"] = json!("rrun-test-profile"));
    let out = env.try_create(&[]);
    assert_error(&out, &["process.apparmorProfile", "apparmor"]);
    if !is_reference_runtime() {
        assert!(mentions(&stderr(&out), "process.apparmorProfile"));
    }
    env.assert_nothing_left();
    // `exec --apparmor` likewise.
    env.bundle.edit(|c| {
        c["process"]
            .as_object_mut()
            .unwrap()
            .remove("apparmorProfile");
        c["process"]["args"] = json!(["sleep", "30"]);
    });
    start_running(&env);
    let out = env
        .rt
        .cmd(&["exec", "--apparmor", "rrun-test-profile", env.id(), "true"]);
    assert_error(&out, &["process.apparmorProfile", "apparmor"]);
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

// SELinux: the labels below are container-selinux's (Fedora, RHEL), which
// the VM's policy (tests/vm/selinux.cil) defines too.
const SELINUX_LABEL: &str = "system_u:system_r:container_t:s0:c1,c2";
const SELINUX_EXEC_LABEL: &str = "system_u:system_r:container_t:s0:c3,c4";
const SELINUX_MOUNT_LABEL: &str = "system_u:object_r:container_file_t:s0:c1,c2";

fn selinux_usable() -> bool {
    let problem = (!selinux_enabled())
        .then(|| "SELinux is not enabled on this host (no /sys/fs/selinux/enforce)".to_string());
    lsm_usable("selinux", problem)
}

/// The `security.selinux` attribute of a path, as `ls -Z` shows it.
fn selinux_xattr(path: &Path) -> String {
    let c = std::ffi::CString::new(path.to_str().unwrap()).unwrap();
    let mut buf = vec![0u8; 512];
    // SAFETY: a NUL-terminated path and name, and a buffer of buf.len() bytes.
    let n = unsafe {
        libc::lgetxattr(
            c.as_ptr(),
            c"security.selinux".as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return format!("<{}>", std::io::Error::last_os_error());
    }
    buf.truncate(n as usize);
    String::from_utf8_lossy(&buf)
        .trim_end_matches('\0')
        .to_string()
}

/// The SELinux label of the session keyring named `_ses.ID`, read with
/// keyctl(KEYCTL_GET_SECURITY) after finding its serial in /proc/keys.
fn session_keyring_label(id: &str) -> String {
    let keys = fs::read_to_string("/proc/keys").unwrap_or_default();
    let desc = format!(" _ses.{id}:");
    let Some(line) = keys.lines().find(|l| l.contains(&desc)) else {
        return format!("<no keyring _ses.{id} in /proc/keys>");
    };
    let serial = i64::from_str_radix(line.split_whitespace().next().unwrap(), 16).unwrap();
    let mut buf = vec![0u8; 512];
    // SAFETY: KEYCTL_GET_SECURITY (17) writes at most buf.len() bytes.
    let n = unsafe { libc::syscall(libc::SYS_keyctl, 17, serial, buf.as_mut_ptr(), buf.len()) };
    if n < 0 {
        return format!("<keyctl: {}>", std::io::Error::last_os_error());
    }
    buf.truncate((n as usize).min(buf.len()));
    String::from_utf8_lossy(&buf)
        .trim_end_matches('\0')
        .to_string()
}

/// The mountinfo line of the mount at `dest`, from a container's output.
fn mount_line<'a>(mountinfo: &'a str, dest: &str) -> &'a str {
    mountinfo
        .lines()
        .find(|l| l.split(' ').nth(4) == Some(dest))
        .unwrap_or("")
}

#[test]
fn lsm_selinux_labels_the_process_and_its_mounts() {
    if !selinux_usable() {
        return;
    }
    let mut env = TestEnv::new("sec-lsm-se");
    env.bundle.edit(|c| {
        c["process"]["selinuxLabel"] = json!(SELINUX_LABEL);
        c["linux"]["mountLabel"] = json!(SELINUX_MOUNT_LABEL);
        c["linux"]["maskedPaths"] = json!(["/proc/acpi", "/proc/kcore", "/rrun-masked-dir"]);
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/lbl", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }));
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "cat /proc/self/attr/current; echo; echo ===; cat /proc/self/mountinfo"
        ]);
    });
    fs::create_dir(env.bundle.rootfs().join("rrun-masked-dir")).unwrap();
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    let (label, mountinfo) = o.split_once("===").unwrap_or((&o, ""));
    assert_eq!(
        label.trim_matches(['\0', '\n', ' ']),
        SELINUX_LABEL,
        "{}",
        describe(&out)
    );
    // A label with a comma is shown quoted.
    let context = format!("context=\"{SELINUX_MOUNT_LABEL}\"");
    for dest in [
        "/mnt/lbl",
        "/dev",
        "/dev/shm",
        "/dev/pts",
        "/rrun-masked-dir",
    ] {
        let line = mount_line(mountinfo, dest);
        assert!(
            line.contains(&context),
            "{dest}: no {context}: {line:?}\n{mountinfo}"
        );
    }
    // procfs, sysfs and mqueue never get the option.
    for dest in ["/proc", "/sys", "/dev/mqueue"] {
        let line = mount_line(mountinfo, dest);
        assert!(
            !line.is_empty() && !line.contains("context="),
            "{dest}: {line:?}"
        );
    }
    env.assert_nothing_left();
}

#[test]
fn lsm_selinux_exec_keyring_and_mqueue_get_the_containers_labels() {
    if !selinux_usable() {
        return;
    }
    let mut env = TestEnv::new("sec-lsm-se-exec");
    env.bundle.edit(|c| {
        c["process"]["selinuxLabel"] = json!(SELINUX_LABEL);
        c["linux"]["mountLabel"] = json!(SELINUX_MOUNT_LABEL);
        c["process"]["args"] = json!(["sleep", "60"]);
    });
    start_running(&env);
    // As the host sees them: the init's label; /dev/mqueue's (its
    // superblock belongs to the ipc namespace: labelled through its root
    // directory, not a mount option, as runc does); the session keyring's,
    // the container's and not the runtime's.
    let pid = env.rt.pid(env.id());
    let init = fs::read_to_string(format!("/proc/{pid}/attr/current")).unwrap_or_default();
    let seen = [
        (
            "init",
            init.trim_end_matches(['\0', '\n']).to_string(),
            SELINUX_LABEL,
        ),
        (
            "/dev/mqueue",
            selinux_xattr(&PathBuf::from(format!("/proc/{pid}/root/dev/mqueue"))),
            SELINUX_MOUNT_LABEL,
        ),
        (
            "session keyring",
            session_keyring_label(env.id()),
            SELINUX_LABEL,
        ),
    ];
    let wrong: Vec<String> = seen
        .iter()
        .filter(|(_, got, want)| got != want)
        .map(|(what, got, want)| format!("{what}: {got:?}, expected {want:?}"))
        .collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    let show = "cat /proc/self/attr/current";
    // Plain exec: the container's label.
    let out = env.rt.cmd(&["exec", env.id(), "sh", "-c", show]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).trim_end_matches(['\0', '\n']), SELINUX_LABEL);
    // --process-label, and --process with selinuxLabel: that label.
    let out = env.rt.cmd(&[
        "exec",
        "--process-label",
        SELINUX_EXEC_LABEL,
        env.id(),
        "sh",
        "-c",
        show,
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim_end_matches(['\0', '\n']),
        SELINUX_EXEC_LABEL
    );
    let process = env.dir.join("process.json");
    fs::write(
        &process,
        json!({
            "args": ["sh", "-c", show],
            "cwd": "/",
            "user": {"uid": 0, "gid": 0},
            "env": ["PATH=/bin"],
            "selinuxLabel": SELINUX_EXEC_LABEL,
        })
        .to_string(),
    )
    .unwrap();
    let out = env
        .rt
        .cmd(&["exec", "--process", process.to_str().unwrap(), env.id()]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(
        stdout(&out).trim_end_matches(['\0', '\n']),
        SELINUX_EXEC_LABEL
    );
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn lsm_selinux_mount_label_leaves_a_shared_mqueue_alone() {
    if !selinux_usable() {
        return;
    }
    // Without an ipc namespace of its own, the container's mqueue mount is
    // the host's file system: its label must not become the container's.
    let host_mq = Path::new("/dev/mqueue");
    let before = selinux_xattr(host_mq);
    if before.starts_with('<') {
        eprintln!("skipped: the host's /dev/mqueue has no label: {before}");
        return;
    }
    let mut env = TestEnv::new("sec-lsm-se-mq");
    env.bundle.edit(|c| {
        c["linux"]["mountLabel"] = json!(SELINUX_MOUNT_LABEL);
        c["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .retain(|ns| ns["type"] != "ipc");
        c["process"]["args"] = json!(["sh", "-c", "grep ' /dev/mqueue ' /proc/self/mountinfo"]);
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert!(stdout(&out).contains("mqueue"), "{}", describe(&out));
    assert_eq!(
        selinux_xattr(host_mq),
        before,
        "the host's /dev/mqueue was relabelled"
    );
    env.assert_nothing_left();
}

#[test]
fn lsm_selinux_invalid_label_fails_create_naming_the_field() {
    if !selinux_usable() {
        return;
    }
    let mut env = TestEnv::new("sec-lsm-se-bad");
    let bad = "system_u:system_r:rrun_no_such_type_t:s0";
    env.bundle
        .edit(|c| c["process"]["selinuxLabel"] = json!(bad));
    let out = env.try_create(&[]);
    assert_error(&out, &["process.selinuxLabel", bad]);
    env.assert_nothing_left();
}

#[test]
fn lsm_selinux_label_without_selinux_fails_create() {
    if selinux_enabled() {
        eprintln!("skipped: SELinux is enabled on this host");
        return;
    }
    let mut env = TestEnv::new("sec-selinux");
    env.bundle
        .edit(|c| c["process"]["selinuxLabel"] = json!("system_u:system_r:container_t:s0:c1,c2"));
    let out = env.try_create(&[]);
    assert_error(&out, &["process.selinuxLabel", "selinux"]);
    if !is_reference_runtime() {
        assert!(mentions(&stderr(&out), "process.selinuxLabel"));
    }
    env.assert_nothing_left();
}

#[test]
fn lsm_mount_label_without_selinux_puts_no_context_on_mounts() {
    if selinux_enabled() {
        eprintln!("skipped: SELinux is enabled on this host");
        return;
    }
    let mut env = TestEnv::new("sec-mountlabel");
    env.bundle.edit(|c| {
        c["linux"]["mountLabel"] = json!("system_u:object_r:container_file_t:s0:c1,c2");
        c["mounts"].as_array_mut().unwrap().push(json!({
            "destination": "/mnt/lbl", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
        }));
        c["process"]["args"] = json!(["sh", "-c", "grep ' /mnt/lbl ' /proc/self/mountinfo"]);
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    assert!(o.contains("tmpfs"), "{o}");
    assert!(!o.contains("context="), "{o}");
    env.assert_nothing_left();
}
