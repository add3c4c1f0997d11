//! `linux.seccomp`: every action a profile can take as the container's
//! process sees it (exit status, error messages, `/proc/self/status`),
//! argument comparisons, profile errors, the full Podman default profile,
//! 32-bit (`int 0x80`) system calls, `exec`'d processes, and the
//! SCMP_ACT_NOTIFY listener protocol (the test is the listener).
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/sbin/runc cargo test --release --test seccomp -- --test-threads=2`
//!
//! runc 1.1.5 (libseccomp 2.5.4) passes every test here. The Podman profile
//! comes from Debian's `golang-github-containers-common`
//! (`/usr/share/containers/seccomp.json`, installed by `.ci/run`); the tests
//! that need it print why and return when it is missing.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// 128 + SIGSYS: what a container killed by a seccomp KILL or TRAP exits with.
const EXIT_SIGSYS: i32 = 128 + libc::SIGSYS;

/// Where Debian's `golang-github-containers-common` puts Podman's profile.
const PODMAN_PROFILE: &str = "/usr/share/containers/seccomp.json";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A test env whose config has `seccomp` and runs `sh -c script`.
fn env_with(name: &str, seccomp: Value, script: &str) -> TestEnv {
    let mut env = TestEnv::new(name);
    env.bundle.edit(|c| {
        c["linux"]["seccomp"] = seccomp;
        c["process"]["args"] = json!(["sh", "-c", script]);
    });
    env
}

/// `run` in the foreground; returns (exit code, stdout, stderr) and checks
/// nothing of the container is left afterwards.
fn run(env: &TestEnv) -> (i32, String, String) {
    let out = env.run(&[]);
    env.assert_nothing_left();
    (exit_code(&out), stdout(&out), stderr(&out))
}

/// Like [`run`], asserting exit 0.
fn run_ok(env: &TestEnv) -> (String, String) {
    let out = env.run(&[]);
    assert!(
        out.status.success(),
        "container run failed: {}",
        describe(&out)
    );
    env.assert_nothing_left();
    (stdout(&out), stderr(&out))
}

/// A profile allowing everything but `rules`.
fn allow_all_but(rules: Value) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })
}

/// System calls a busybox shell and its applets (echo, cat, ls, sleep, rm,
/// touch), and both rrun's and runc's last steps before `execve`, need.
/// Deliberately absent: `mkdir`, `mkdirat` and the `chmod` family, so a
/// default-deny profile built from this list refuses exactly those.
const SHELL_SYSCALLS: &str = "
    accept accept4 access alarm arch_prctl bind brk capget capset chdir
    clock_getres clock_gettime clock_nanosleep clone clone3 close close_range
    connect copy_file_range dup dup2 dup3 epoll_create epoll_create1 epoll_ctl
    epoll_pwait epoll_pwait2 epoll_wait eventfd eventfd2 execve execveat exit
    exit_group faccessat faccessat2 fadvise64 fallocate fchdir fchown fchownat
    fcntl fdatasync flock fork fstat fstatfs fsync ftruncate futex getcwd
    getdents getdents64 getegid geteuid getgid getgroups getitimer getpeername
    getpgid getpgrp getpid getppid getpriority getrandom getresgid getresuid
    getrlimit get_robust_list getrusage getsid getsockname getsockopt gettid
    gettimeofday getuid getxattr ioctl kill lgetxattr link linkat listen lseek
    lstat madvise membarrier mmap mprotect mremap munmap nanosleep newfstatat
    open openat openat2 pause pipe pipe2 poll ppoll prctl pread64 preadv
    prlimit64 pselect6 pwrite64 pwritev read readlink readlinkat readv
    recvfrom recvmmsg recvmsg rename renameat renameat2 restart_syscall rmdir
    rseq rt_sigaction rt_sigpending rt_sigprocmask rt_sigqueueinfo
    rt_sigreturn rt_sigsuspend rt_sigtimedwait rt_tgsigqueueinfo
    sched_getaffinity sched_setaffinity sched_getparam sched_getscheduler
    sched_yield select sendfile sendmmsg sendmsg sendto set_robust_list
    set_tid_address setgid setgroups setitimer setpgid setpriority setresgid
    setresuid setsid setsockopt setuid shutdown sigaltstack socket socketpair
    splice stat statfs statx symlink symlinkat sysinfo tee tgkill time
    timer_create timer_delete timer_settime timerfd_create timerfd_settime
    times tkill truncate umask uname unlink unlinkat utime utimensat utimes
    vfork wait4 waitid write writev
";

/// A default-deny profile: `SCMP_ACT_ERRNO` with `default_errno` for
/// everything not in [`SHELL_SYSCALLS`], plus `extra` rules.
fn deny_all_but_the_shell(default_errno: u32, extra: Value) -> Value {
    let names: Vec<&str> = SHELL_SYSCALLS.split_whitespace().collect();
    let mut rules = vec![json!({"names": names, "action": "SCMP_ACT_ALLOW"})];
    rules.extend(extra.as_array().cloned().unwrap_or_default());
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": default_errno,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": rules
    })
}

/// `linux.seccomp` for `SCMP_ACT_KILL*`/`TRAP` on the sleep system calls.
fn sleep_rule(action: &str) -> Value {
    allow_all_but(json!([
        {"names": ["clock_nanosleep", "nanosleep"], "action": action}
    ]))
}

/// The seccomp lines of `/proc/self/status` in a container's output.
fn seccomp_mode(out: &str) -> Option<&str> {
    out.lines()
        .find_map(|l| l.strip_prefix("Seccomp:"))
        .map(str::trim)
}

/// Version `(major, minor)` of the running kernel.
fn kernel_version() -> (u32, u32) {
    let rel = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut it = rel
        .trim()
        .split(|c: char| !c.is_ascii_digit())
        .map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

fn parse_version(s: &str) -> (u32, u32) {
    let mut it = s.split('.').map(|p| p.parse().unwrap_or(0));
    (it.next().unwrap_or(0), it.next().unwrap_or(0))
}

/// Podman's default profile (containers-common format) converted to OCI
/// `linux.seccomp` for amd64 and the given bounding capabilities, the way
/// containers/common's `setupSeccomp` does it: an entry is kept when its
/// `excludes.arches` does not name amd64, its `includes.arches` is empty or
/// names amd64, none of its `excludes.caps` is held, all of its
/// `includes.caps` are held, and the kernel satisfies its `minKernel`s.
/// `None` when the file is missing.
fn podman_profile(caps: &[&str]) -> Option<Value> {
    let text = match fs::read_to_string(PODMAN_PROFILE) {
        Ok(t) => t,
        Err(e) => {
            eprintln!(
                "skipped: {PODMAN_PROFILE}: {e} (install golang-github-containers-common, as .ci/run does)"
            );
            return None;
        }
    };
    let src: Value = serde_json::from_str(&text).expect("Podman's seccomp.json is JSON");
    let native = ["amd64", "x86_64"];
    let strs = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|x| x.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let kernel = kernel_version();
    let mut syscalls = Vec::new();
    for s in src["syscalls"].as_array().expect("syscalls array") {
        let (inc, exc) = (&s["includes"], &s["excludes"]);
        let inc_arches = strs(&inc["arches"]);
        if strs(&exc["arches"])
            .iter()
            .any(|a| native.contains(&a.as_str()))
        {
            continue;
        }
        if !inc_arches.is_empty() && !inc_arches.iter().any(|a| native.contains(&a.as_str())) {
            continue;
        }
        if strs(&exc["caps"])
            .iter()
            .any(|c| caps.contains(&c.as_str()))
        {
            continue;
        }
        if !strs(&inc["caps"])
            .iter()
            .all(|c| caps.contains(&c.as_str()))
        {
            continue;
        }
        if let Some(k) = exc["minKernel"].as_str().filter(|k| !k.is_empty()) {
            if kernel >= parse_version(k) {
                continue;
            }
        }
        if let Some(k) = inc["minKernel"].as_str().filter(|k| !k.is_empty()) {
            if kernel < parse_version(k) {
                continue;
            }
        }
        let mut rule = json!({"names": s["names"], "action": s["action"]});
        if let Some(args) = s["args"].as_array().filter(|a| !a.is_empty()) {
            let args: Vec<Value> = args
                .iter()
                .map(|a| {
                    json!({"index": a["index"], "value": a["value"],
                           "valueTwo": a["valueTwo"], "op": a["op"]})
                })
                .collect();
            rule["args"] = json!(args);
        }
        if let Some(e) = s["errnoRet"].as_u64() {
            rule["errnoRet"] = json!(e);
        }
        syscalls.push(rule);
    }
    let mut arches = Vec::new();
    for m in src["archMap"].as_array().into_iter().flatten() {
        if m["architecture"] == "SCMP_ARCH_X86_64" {
            arches.push(m["architecture"].clone());
            arches.extend(
                m["subArchitectures"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default(),
            );
        }
    }
    assert!(!arches.is_empty(), "{PODMAN_PROFILE} has no x86_64 archMap");
    let mut out = json!({
        "defaultAction": src["defaultAction"],
        "architectures": arches,
        "syscalls": syscalls
    });
    if let Some(e) = src["defaultErrnoRet"].as_u64() {
        out["defaultErrnoRet"] = json!(e);
    }
    Some(out)
}

/// The base config's bounding set (what Podman's conversion keys on).
fn base_bounding_caps() -> Vec<String> {
    base_config()["process"]["capabilities"]["bounding"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// A minimal static x86-64 ELF that makes one 32-bit system call through
/// `int 0x80` — `mkdir("/tmp/x32dir", 0755)`, i386 number 39 — and exits
/// with the call's errno (0 on success). Seccomp sees it as AUDIT_ARCH_I386.
fn i386_mkdir_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const HDRS: u64 = 64 + 56;
    let mut code: Vec<u8> = Vec::new();
    code.extend([0xb8, 39, 0, 0, 0]); // mov eax, 39 (i386 mkdir)
    let path_at = (BASE + HDRS + 28) as u32;
    code.push(0xbb); // mov ebx, path
    code.extend(path_at.to_le_bytes());
    code.extend([0xb9, 0xed, 0x01, 0, 0]); // mov ecx, 0755
    code.extend([0xcd, 0x80]); // int 0x80
    code.extend([0xf7, 0xd8]); // neg eax
    code.extend([0x89, 0xc7]); // mov edi, eax
    code.extend([0xb8, 60, 0, 0, 0]); // mov eax, 60 (x86-64 exit)
    code.extend([0x0f, 0x05]); // syscall
    assert_eq!(code.len(), 28);
    let path = b"/tmp/x32dir\0";
    let total = HDRS + code.len() as u64 + path.len() as u64;
    let mut elf: Vec<u8> = b"\x7fELF\x02\x01\x01\x00".to_vec();
    elf.extend([0u8; 8]);
    elf.extend(2u16.to_le_bytes()); // ET_EXEC
    elf.extend(0x3eu16.to_le_bytes()); // EM_X86_64
    elf.extend(1u32.to_le_bytes());
    elf.extend((BASE + HDRS).to_le_bytes()); // e_entry
    elf.extend(64u64.to_le_bytes()); // e_phoff
    elf.extend(0u64.to_le_bytes()); // e_shoff
    elf.extend(0u32.to_le_bytes()); // e_flags
    for v in [64u16, 56, 1, 0, 0, 0] {
        elf.extend(v.to_le_bytes()); // ehsize phentsize phnum shentsize shnum shstrndx
    }
    elf.extend(1u32.to_le_bytes()); // PT_LOAD
    elf.extend(5u32.to_le_bytes()); // R+X
    elf.extend(0u64.to_le_bytes()); // p_offset
    elf.extend(BASE.to_le_bytes()); // p_vaddr
    elf.extend(BASE.to_le_bytes()); // p_paddr
    elf.extend(total.to_le_bytes()); // p_filesz
    elf.extend(total.to_le_bytes()); // p_memsz
    elf.extend(0x1000u64.to_le_bytes()); // p_align
    elf.extend(code);
    elf.extend(path);
    assert_eq!(elf.len() as u64, total);
    elf
}

/// Puts [`i386_mkdir_elf`] at `/bin/i386-mkdir` in the env's rootfs.
fn install_i386_mkdir(env: &TestEnv) {
    let p = env.bundle.rootfs().join("bin/i386-mkdir");
    fs::write(&p, i386_mkdir_elf()).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
}

// ---------------------------------------------------------------------------
// Actions
// ---------------------------------------------------------------------------

#[test]
fn errno_rule_denies_that_call_with_its_errno_and_nothing_else() {
    let env = env_with(
        "sc-errno-rule",
        allow_all_but(json!([
            {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ])),
        "mkdir /tmp/denied; echo mkdir=$?; touch /tmp/file && echo touch=ok; \
         ls /tmp; rmdir /tmp 2>/dev/null; echo id=$(id -u)",
    );
    let (code, out, err) = run(&env);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("mkdir=1") && err.contains("Permission denied"),
        "mkdir must fail with EACCES (errnoRet 13):\nstdout:\n{out}\nstderr:\n{err}"
    );
    assert!(out.contains("touch=ok") && out.contains("file"), "{out}");
    assert!(out.contains("id=0"), "{out}");
    assert!(!env.bundle.rootfs().join("tmp/denied").exists());
    assert!(env.bundle.rootfs().join("tmp/file").exists());
}

#[test]
fn default_errno_ret_is_what_unlisted_calls_return() {
    // EXDEV has an error text nothing else here produces.
    let env = env_with(
        "sc-default-errno",
        deny_all_but_the_shell(libc::EXDEV as u32, json!([])),
        "echo hello; touch /tmp/f; chmod 600 /tmp/f; echo chmod=$?",
    );
    let (code, out, err) = run(&env);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("hello"), "{out}");
    assert!(
        out.contains("chmod=1") && err.contains("Invalid cross-device link"),
        "chmod is not allowed: it must fail with defaultErrnoRet (EXDEV):\nstdout:\n{out}\nstderr:\n{err}"
    );
    let mode = fs::metadata(env.bundle.rootfs().join("tmp/f"))
        .unwrap()
        .permissions()
        .mode();
    assert_ne!(mode & 0o777, 0o600, "chmod went through");
}

#[test]
fn errno_rule_without_errno_ret_returns_eperm_not_the_default_errno() {
    // runtime-spec: a rule's errnoRet defaults to EPERM; defaultErrnoRet is
    // only for the defaultAction.
    let env = env_with(
        "sc-errno-eperm",
        deny_all_but_the_shell(
            libc::EXDEV as u32,
            json!([{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]),
        ),
        "mkdir /tmp/d; echo mkdir=$?",
    );
    let (code, out, err) = run(&env);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("mkdir=1") && err.contains("Operation not permitted"),
        "a rule without errnoRet must return EPERM:\nstdout:\n{out}\nstderr:\n{err}"
    );
}

#[test]
fn kill_process_action_kills_the_container_with_sigsys() {
    let env = env_with(
        "sc-kill-process",
        sleep_rule("SCMP_ACT_KILL_PROCESS"),
        "echo before; exec sleep 1",
    );
    let (code, out, err) = run(&env);
    assert_eq!(code, EXIT_SIGSYS, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.trim(), "before", "write must still work: {out}");
}

#[test]
fn kill_thread_action_kills_a_single_threaded_process_with_sigsys() {
    let env = env_with(
        "sc-kill-thread",
        sleep_rule("SCMP_ACT_KILL"),
        "echo before; exec sleep 1",
    );
    let (code, out, err) = run(&env);
    assert_eq!(code, EXIT_SIGSYS, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.trim(), "before", "{out}");
}

#[test]
fn trap_action_delivers_sigsys() {
    let env = env_with(
        "sc-trap",
        sleep_rule("SCMP_ACT_TRAP"),
        "echo before; exec sleep 1",
    );
    let (code, out, err) = run(&env);
    assert_eq!(code, EXIT_SIGSYS, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(out.trim(), "before", "{out}");
}

#[test]
fn a_killed_child_does_not_kill_the_shell() {
    // KILL_PROCESS kills the process that made the call, not its parent.
    let env = env_with(
        "sc-kill-child",
        sleep_rule("SCMP_ACT_KILL_PROCESS"),
        "busybox sleep 1; echo child=$?",
    );
    let (out, _) = run_ok(&env);
    assert!(out.contains(&format!("child={EXIT_SIGSYS}")), "{out}");
}

#[test]
fn log_action_lets_the_call_through() {
    let env = env_with(
        "sc-log",
        allow_all_but(json!([
            {"names": ["clock_nanosleep", "nanosleep", "mkdir"], "action": "SCMP_ACT_LOG"}
        ])),
        "sleep 0.01 && mkdir /tmp/logged && echo ok",
    );
    let (out, _) = run_ok(&env);
    assert_eq!(out.trim(), "ok");
    assert!(env.bundle.rootfs().join("tmp/logged").is_dir());
}

// ---------------------------------------------------------------------------
// Argument comparisons
// ---------------------------------------------------------------------------

/// busybox `linux32` calls personality(PER_LINUX32 = 8), `linux32 -R`
/// personality(8 | ADDR_NO_RANDOMIZE = 0x40008), `linux64` personality(0)
/// and `linux64 -R` personality(0x40000). Prints `name=status` for each.
const PERSONALITY_SCRIPT: &str = "linux32 true; echo l32=$?; linux32 -R true; echo l32R=$?; \
     linux64 true; echo l64=$?; linux64 -R true; echo l64R=$?";

#[test]
fn argument_eq_denies_only_the_matching_value() {
    let env = env_with(
        "sc-arg-eq",
        allow_all_but(json!([{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]
        }])),
        PERSONALITY_SCRIPT,
    );
    let (out, err) = run_ok(&env);
    assert!(
        out.contains("l32=1"),
        "personality(8) must be denied: {out}"
    );
    assert!(err.contains("Operation not permitted"), "{err}");
    for ok in ["l32R=0", "l64=0", "l64R=0"] {
        assert!(out.contains(ok), "{ok} expected:\n{out}\n{err}");
    }
}

#[test]
fn argument_masked_eq_compares_the_masked_bits() {
    // (arg & 0xff) == 8: PER_LINUX32 with or without flags.
    let env = env_with(
        "sc-arg-masked",
        allow_all_but(json!([{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 255, "valueTwo": 8, "op": "SCMP_CMP_MASKED_EQ"}]
        }])),
        PERSONALITY_SCRIPT,
    );
    let (out, err) = run_ok(&env);
    for denied in ["l32=1", "l32R=1"] {
        assert!(out.contains(denied), "{denied} expected:\n{out}\n{err}");
    }
    for ok in ["l64=0", "l64R=0"] {
        assert!(out.contains(ok), "{ok} expected:\n{out}\n{err}");
    }
}

#[test]
fn argument_ne_allows_only_the_listed_value() {
    // The Podman idiom: ERRNO unless arg0 != ... here: deny every
    // personality except PER_LINUX (0).
    let env = env_with(
        "sc-arg-ne",
        allow_all_but(json!([{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
            "args": [{"index": 0, "value": 0, "op": "SCMP_CMP_NE"}]
        }])),
        PERSONALITY_SCRIPT,
    );
    let (out, err) = run_ok(&env);
    for denied in ["l32=1", "l32R=1", "l64R=1"] {
        assert!(out.contains(denied), "{denied} expected:\n{out}\n{err}");
    }
    assert!(out.contains("l64=0"), "{out}\n{err}");
}

// ---------------------------------------------------------------------------
// Profile contents and errors
// ---------------------------------------------------------------------------

#[test]
fn unknown_syscall_name_is_skipped_and_the_rest_applies() {
    let env = env_with(
        "sc-unknown-name",
        allow_all_but(json!([{
            "names": ["no_such_syscall_rrun", "mkdir"],
            "action": "SCMP_ACT_ERRNO", "errnoRet": 13
        }])),
        "mkdir /tmp/x; echo mkdir=$?",
    );
    let (out, err) = run_ok(&env);
    assert!(
        out.contains("mkdir=1") && err.contains("Permission denied"),
        "the profile must still load and deny mkdir:\n{out}\n{err}"
    );
}

fn assert_profile_refused(name: &str, seccomp: Value) {
    let env = env_with(name, seccomp, "true");
    let out = env.try_create(&[]);
    assert_error(&out, &["linux.seccomp", "seccomp"]);
    if !is_reference_runtime() {
        assert!(
            mentions(&stderr(&out), "linux.seccomp"),
            "the error must name the field linux.seccomp: {}",
            describe(&out)
        );
    }
    env.assert_nothing_left();
}

#[test]
fn profile_with_unknown_action_fails_create() {
    assert_profile_refused(
        "sc-bad-action",
        allow_all_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_BOGUS"}])),
    );
}

#[test]
fn profile_with_argument_index_7_fails_create() {
    assert_profile_refused(
        "sc-bad-index",
        allow_all_but(json!([{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 7, "value": 8, "op": "SCMP_CMP_EQ"}]
        }])),
    );
}

#[test]
fn profile_with_misspelt_operator_fails_create() {
    assert_profile_refused(
        "sc-bad-op",
        allow_all_but(json!([{
            "names": ["personality"], "action": "SCMP_ACT_ERRNO",
            "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQQ"}]
        }])),
    );
}

#[test]
fn profile_with_unknown_default_action_fails_create() {
    assert_profile_refused(
        "sc-bad-default",
        json!({"defaultAction": "SCMP_ACT_ALLOW_ALL", "syscalls": []}),
    );
}

#[test]
fn any_profile_puts_the_process_in_filter_mode() {
    let script = "grep -E '^Seccomp(_filters)?:' /proc/self/status";
    // Without a profile: mode 0 (so the check below can tell).
    let mut env = env_with("sc-status-none", Value::Null, script);
    env.bundle.edit(|c| {
        c["linux"].as_object_mut().unwrap().remove("seccomp");
    });
    let (out, _) = run_ok(&env);
    assert_eq!(seccomp_mode(&out), Some("0"), "{out}");
    for (name, profile) in [
        ("sc-status-allow", allow_all_but(json!([]))),
        (
            "sc-status-rule",
            allow_all_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}])),
        ),
        ("sc-status-deny", deny_all_but_the_shell(1, json!([]))),
    ] {
        let env = env_with(name, profile, script);
        let (out, _) = run_ok(&env);
        assert_eq!(seccomp_mode(&out), Some("2"), "{name}: {out}");
    }
}

// ---------------------------------------------------------------------------
// 32-bit system calls
// ---------------------------------------------------------------------------

#[test]
fn int80_calls_are_filtered_by_the_rules_when_x86_is_listed() {
    // A deny-list profile that lists SCMP_ARCH_X86 (as Docker's and
    // Podman's do): the i386 mkdir must be denied like the x86-64 one, or
    // any 64-bit program can bypass the profile with `int 0x80`.
    let env = env_with(
        "sc-int80-deny",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
        "mkdir /tmp/x64dir; echo mkdir64=$?; /bin/i386-mkdir; echo mkdir32=$?",
    );
    install_i386_mkdir(&env);
    let (out, err) = run_ok(&env);
    assert!(out.contains("mkdir64=1"), "{out}\n{err}");
    assert!(
        !env.bundle.rootfs().join("tmp/x32dir").exists(),
        "the 32-bit mkdir bypassed the profile:\n{out}\n{err}"
    );
    assert!(
        out.contains("mkdir32=13"),
        "the 32-bit mkdir must fail with EACCES like the 64-bit one:\n{out}\n{err}"
    );
}

#[test]
fn int80_calls_never_succeed_when_x86_is_not_listed() {
    let env = env_with(
        "sc-int80-unlisted",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
        }),
        "/bin/i386-mkdir; echo mkdir32=$?",
    );
    install_i386_mkdir(&env);
    let (out, err) = run_ok(&env);
    assert!(
        !env.bundle.rootfs().join("tmp/x32dir").exists() && !out.contains("mkdir32=0"),
        "a 32-bit call of an unlisted architecture went through:\n{out}\n{err}"
    );
}

#[test]
fn podman_profile_lets_32bit_programs_make_allowed_calls() {
    let caps = base_bounding_caps();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let Some(profile) = podman_profile(&caps) else {
        return;
    };
    // mkdir is allowed by Podman's profile on every architecture it lists
    // (x86_64, x86, x32), so the i386 mkdir must work as it does with
    // runc/crun/libseccomp: 32-bit programs run under the default profile.
    let env = env_with(
        "sc-int80-podman",
        profile,
        "/bin/i386-mkdir; echo mkdir32=$?",
    );
    install_i386_mkdir(&env);
    let (out, err) = run_ok(&env);
    assert!(
        out.contains("mkdir32=0") && env.bundle.rootfs().join("tmp/x32dir").is_dir(),
        "an allowed 32-bit call must succeed under the Podman profile:\n{out}\n{err}"
    );
}

// ---------------------------------------------------------------------------
// The Podman default profile
// ---------------------------------------------------------------------------

#[test]
fn podman_default_profile_loads_and_runs_ordinary_commands() {
    let caps = base_bounding_caps();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let Some(profile) = podman_profile(&caps) else {
        return;
    };
    let n_rules = profile["syscalls"].as_array().unwrap().len();
    let n_names: usize = profile["syscalls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["names"].as_array().map_or(0, Vec::len))
        .sum();
    assert!(n_names > 300, "conversion lost the allow list: {n_names}");
    let script = "ls / >/dev/null && echo ls=ok; id; mkdir /tmp/p && echo mkdir=ok; \
                  sleep 0.1 && echo sleep=ok; unshare -m true; echo unshare=$?; \
                  grep '^Seccomp:' /proc/self/status";
    let env = env_with("sc-podman", profile.clone(), script);
    let (out, err) = run_ok(&env);
    for want in ["ls=ok", "uid=0(root)", "mkdir=ok", "sleep=ok", "unshare=1"] {
        assert!(out.contains(want), "{want} expected:\n{out}\n{err}");
    }
    assert!(
        err.contains("Operation not permitted"),
        "unshare must fail with EPERM:\n{err}"
    );
    assert_eq!(seccomp_mode(&out), Some("2"), "{out}");
    assert!(env.bundle.rootfs().join("tmp/p").is_dir());

    // Informational: what compiling and loading the profile costs `create`.
    let time_create = |name: &str, seccomp: Option<&Value>| -> Duration {
        let mut env = TestEnv::new(name);
        env.bundle.edit(|c| match seccomp {
            Some(s) => c["linux"]["seccomp"] = s.clone(),
            None => {
                c["linux"].as_object_mut().unwrap().remove("seccomp");
            }
        });
        let mut best = Duration::MAX;
        for _ in 0..3 {
            let t = Instant::now();
            env.create();
            best = best.min(t.elapsed());
            env.rt.run_ok(&["delete", "--force", env.id()]);
        }
        env.assert_nothing_left();
        best
    };
    let with = time_create("sc-podman-time-with", Some(&profile));
    let without = time_create("sc-podman-time-without", None);
    println!(
        "create with the Podman profile ({n_rules} rules, {n_names} names): {with:?}; without: {without:?} (best of 3)"
    );
}

// ---------------------------------------------------------------------------
// exec
// ---------------------------------------------------------------------------

#[test]
fn exec_processes_get_the_containers_profile() {
    let mut env = env_with(
        "sc-exec",
        allow_all_but(json!([
            {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}
        ])),
        "sleep 30",
    );
    env.bundle
        .edit(|c| c["process"]["args"] = json!(["sleep", "30"]));
    env.create();
    env.rt.start(env.id());
    let out = env.rt.cmd(&[
        "exec",
        env.id(),
        "sh",
        "-c",
        "mkdir /x; echo mkdir=$?; grep '^Seccomp:' /proc/self/status",
    ]);
    assert!(out.status.success(), "{}", describe(&out));
    let (o, e) = (stdout(&out), stderr(&out));
    assert!(
        o.contains("mkdir=1") && e.contains("Permission denied"),
        "exec'd process must be under the profile:\n{o}\n{e}"
    );
    assert_eq!(seccomp_mode(&o), Some("2"), "{o}");
    assert!(!env.bundle.rootfs().join("x").exists());
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// SCMP_ACT_NOTIFY
// ---------------------------------------------------------------------------

/// `struct seccomp_data`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompData {
    nr: i32,
    arch: u32,
    instruction_pointer: u64,
    args: [u64; 6],
}

/// `struct seccomp_notif`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompNotif {
    id: u64,
    pid: u32,
    flags: u32,
    data: SeccompData,
}

/// `struct seccomp_notif_resp`.
#[repr(C)]
#[derive(Default, Clone, Copy)]
struct SeccompNotifResp {
    id: u64,
    val: i64,
    error: i32,
    flags: u32,
}

/// `_IOWR('!', 0, struct seccomp_notif)`.
const SECCOMP_IOCTL_NOTIF_RECV: u64 = 0xc050_2100;
/// `_IOWR('!', 1, struct seccomp_notif_resp)`.
const SECCOMP_IOCTL_NOTIF_SEND: u64 = 0xc018_2101;
const SECCOMP_USER_NOTIF_FLAG_CONTINUE: u32 = 1;

/// `_IOWR(type, nr, size)` as the kernel computes it.
const fn iowr(ty: u8, nr: u8, size: usize) -> u64 {
    (3u64 << 30) | ((size as u64) << 16) | ((ty as u64) << 8) | nr as u64
}

#[test]
fn notify_ioctl_numbers_match_the_struct_sizes() {
    assert_eq!(std::mem::size_of::<SeccompData>(), 64);
    assert_eq!(std::mem::size_of::<SeccompNotif>(), 80);
    assert_eq!(std::mem::size_of::<SeccompNotifResp>(), 24);
    assert_eq!(
        iowr(b'!', 0, std::mem::size_of::<SeccompNotif>()),
        SECCOMP_IOCTL_NOTIF_RECV
    );
    assert_eq!(
        iowr(b'!', 1, std::mem::size_of::<SeccompNotifResp>()),
        SECCOMP_IOCTL_NOTIF_SEND
    );
}

/// What the listener saw.
#[derive(Debug)]
struct NotifyReport {
    /// The JSON payload of the message.
    payload: Value,
    /// `readlink /proc/self/fd/N` of the received fd.
    fd_link: String,
    /// The system call number of the notification answered.
    nr: i32,
    /// The pid the notification came from (in our pid namespace).
    pid: u32,
}

/// How the listener answers the one notification it takes.
#[derive(Clone, Copy)]
enum Answer {
    Errno(i32),
    Continue,
}

fn poll_in(fd: i32, timeout: Duration) -> Result<(), String> {
    let mut p = libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let r = unsafe { libc::poll(&mut p, 1, timeout.as_millis() as i32) };
    match r {
        1 => Ok(()),
        0 => Err(format!("nothing to read within {timeout:?}")),
        _ => Err(format!("poll: {}", std::io::Error::last_os_error())),
    }
}

/// The seccomp agent: accepts one connection on `listener`, receives the
/// notify fd with its JSON state, answers one notification, then returns
/// (dropping the fd, which fails any later notification with ENOSYS, so a
/// broken test cannot leave the container blocked).
fn seccomp_agent(listener: UnixListener, answer: Answer) -> Result<NotifyReport, String> {
    let got = receive_notify_fd(listener)?;
    answer_one(got, answer)
}

/// What the agent received: the connection (still open on our side), the
/// message's JSON, the notify fd and what it links to.
struct Received {
    stream: std::os::unix::net::UnixStream,
    payload: Value,
    fd: OwnedFd,
    fd_link: String,
}

/// Accepts one connection on `listener` and receives the notify fd with its
/// JSON state.
fn receive_notify_fd(listener: UnixListener) -> Result<Received, String> {
    let AgentMessage { stream, bytes, fds } =
        accept_one_message(&listener, 64 * 1024, Duration::from_secs(20))?;
    let fd = fds.into_iter().next().ok_or("the message carried no fd")?;
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let payload: Value =
        serde_json::from_str(&text).map_err(|e| format!("payload is not JSON ({e}): {text:?}"))?;
    let fd_link = fs::read_link(format!("/proc/self/fd/{}", fd.as_raw_fd()))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Received {
        stream,
        payload,
        fd,
        fd_link,
    })
}

/// Answers the one notification the container's call makes.
fn answer_one(got: Received, answer: Answer) -> Result<NotifyReport, String> {
    let Received {
        payload,
        fd,
        fd_link,
        ..
    } = got;
    // Wait for the container's call.
    poll_in(fd.as_raw_fd(), Duration::from_secs(20))?;
    let mut notif = SeccompNotif::default();
    // SAFETY: a zeroed seccomp_notif of the size the ioctl number encodes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_RECV as _, &mut notif) } != 0 {
        return Err(format!(
            "SECCOMP_IOCTL_NOTIF_RECV: {}",
            std::io::Error::last_os_error()
        ));
    }
    let resp = match answer {
        Answer::Errno(e) => SeccompNotifResp {
            id: notif.id,
            val: 0,
            error: -e,
            flags: 0,
        },
        Answer::Continue => SeccompNotifResp {
            id: notif.id,
            val: 0,
            error: 0,
            flags: SECCOMP_USER_NOTIF_FLAG_CONTINUE,
        },
    };
    // SAFETY: a seccomp_notif_resp of the size the ioctl number encodes.
    if unsafe { libc::ioctl(fd.as_raw_fd(), SECCOMP_IOCTL_NOTIF_SEND as _, &resp) } != 0 {
        return Err(format!(
            "SECCOMP_IOCTL_NOTIF_SEND: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok(NotifyReport {
        payload,
        fd_link,
        nr: notif.data.nr,
        pid: notif.pid,
    })
}

/// An env whose container runs `mkdir /tmp/n` under an SCMP_ACT_NOTIFY
/// rule for mkdir, with a listener socket bound in its dir.
fn env_with_notify_agent(name: &str) -> (TestEnv, UnixListener) {
    let mut env = TestEnv::new(name);
    let sock: PathBuf = env.dir.join("agent.sock");
    let listener = UnixListener::bind(&sock).expect("bind the listener socket");
    let sock_s = sock.to_str().unwrap().to_string();
    env.bundle.edit(|c| {
        c["linux"]["seccomp"] = json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "architectures": ["SCMP_ARCH_X86_64"],
            "listenerPath": sock_s,
            "listenerMetadata": "rrun-test-metadata",
            "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_NOTIFY"}]
        });
        c["process"]["args"] = json!(["sh", "-c", "mkdir /tmp/n && echo made || echo failed"]);
    });
    (env, listener)
}

/// Runs `mkdir /tmp/n` under an SCMP_ACT_NOTIFY rule for mkdir, with this
/// test as the listener answering `answer`. Returns the report, the
/// container's stdout+stderr, and the env (for rootfs checks).
fn run_with_agent(name: &str, answer: Answer) -> (NotifyReport, String, TestEnv) {
    let (env, listener) = env_with_notify_agent(name);
    let agent = std::thread::spawn(move || seccomp_agent(listener, answer));
    let out = env.run(&[]);
    let report = agent
        .join()
        .expect("agent thread")
        .unwrap_or_else(|e| panic!("seccomp agent: {e}\nruntime: {}", describe(&out)));
    assert!(out.status.success(), "{}", describe(&out));
    env.assert_nothing_left();
    let text = format!("{}{}", stdout(&out), stderr(&out));
    (report, text, env)
}

fn check_notify_message(report: &NotifyReport, env: &TestEnv) {
    assert!(
        report.fd_link.contains("seccomp"),
        "the fd must be a seccomp notify fd, not {:?}",
        report.fd_link
    );
    let p = &report.payload;
    assert_eq!(p["fds"], json!(["seccompFd"]), "{p:#}");
    assert!(p["pid"].as_i64().is_some_and(|x| x > 0), "pid > 0: {p:#}");
    assert_eq!(p["metadata"], json!("rrun-test-metadata"), "{p:#}");
    assert_eq!(p["state"]["id"], json!(env.id()), "{p:#}");
    assert!(p["ociVersion"].is_string(), "{p:#}");
    assert_eq!(
        report.nr,
        libc::SYS_mkdir as i32,
        "the notified call is mkdir"
    );
    assert!(report.pid > 0);
}

#[test]
fn notify_listener_gets_the_fd_and_state_and_can_refuse_the_call() {
    let (report, text, env) = run_with_agent("sc-notify-eperm", Answer::Errno(libc::EPERM));
    check_notify_message(&report, &env);
    assert!(
        text.contains("failed") && text.contains("Operation not permitted"),
        "the agent answered EPERM: {text}"
    );
    assert!(!env.bundle.rootfs().join("tmp/n").exists());
}

#[test]
fn notify_listener_can_let_the_call_continue() {
    let (report, text, env) = run_with_agent("sc-notify-continue", Answer::Continue);
    check_notify_message(&report, &env);
    assert!(text.contains("made"), "the agent answered CONTINUE: {text}");
    assert!(env.bundle.rootfs().join("tmp/n").is_dir());
}

/// config-linux.md: the connection to `listenerPath` MUST be closed after
/// sending. The agent sees its end while the container is still `created`
/// (not only when `start` execs the process), after reading the message.
#[test]
fn notify_connection_is_closed_right_after_the_message_is_sent() {
    let (env, listener) = env_with_notify_agent("sc-notify-eof");
    let receiver = std::thread::spawn(move || receive_notify_fd(listener));
    env.create();
    let got = receiver
        .join()
        .expect("agent thread")
        .unwrap_or_else(|e| panic!("seccomp agent: {e}"));
    assert_eq!(env.rt.status(env.id()), "created");
    poll_in(got.stream.as_raw_fd(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("the connection is still open after the message: {e}"));
    let mut rest = [0u8; 16];
    let n = (&got.stream)
        .read(&mut rest)
        .expect("read after the message");
    assert_eq!(n, 0, "more than one message: {:?}", &rest[..n]);
    // The fd still works: the container's call is answered.
    let agent = std::thread::spawn(move || answer_one(got, Answer::Continue));
    env.rt.start(env.id());
    let report = agent
        .join()
        .expect("agent thread")
        .unwrap_or_else(|e| panic!("seccomp agent: {e}"));
    assert_eq!(report.nr, libc::SYS_mkdir as i32);
    env.rt
        .wait_status(env.id(), "stopped", Duration::from_secs(10));
    assert!(env.bundle.rootfs().join("tmp/n").is_dir());
}

#[test]
fn notify_without_listener_path_fails_create() {
    let env = env_with(
        "sc-notify-nopath",
        allow_all_but(json!([{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}])),
        "true",
    );
    let out = env.try_create(&[]);
    assert_error(&out, &["linux.seccomp", "listenerPath", "seccomp"]);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// The runtime's own system calls (issue 13, item 6)
// ---------------------------------------------------------------------------

/// What busybox's `echo` and `sleep` make (by strace), and `execve`: not
/// `close_range`, `close`, `read`, `sendmsg`, `umask` or `prctl`, which a
/// runtime would need if it made its last steps after loading the filter.
const ECHO_AND_SLEEP_SYSCALLS: &[&str] = &[
    "execve",
    "write",
    "mprotect",
    "brk",
    "readlink",
    "getuid",
    "arch_prctl",
    "set_tid_address",
    "set_robust_list",
    "prlimit64",
    "getrandom",
    "rseq",
    "clock_nanosleep",
    "exit",
    "exit_group",
];

fn only(names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{"names": names, "action": "SCMP_ACT_ALLOW"}]
    })
}

#[test]
fn a_profile_allowing_little_but_execve_runs_the_container_and_exec() {
    let mut env = env_with("sc-minimal", only(ECHO_AND_SLEEP_SYSCALLS), "");
    env.bundle.set_args(&["echo", "started"]);
    let (out, _) = run_ok(&env);
    assert_eq!(out.trim(), "started");
    // exec'd processes get the same profile, and the same last steps.
    env.bundle.set_args(&["sleep", "30"]);
    env.create();
    env.rt.start(env.id());
    let out = env.rt.cmd(&["exec", env.id(), "echo", "exec'd"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out).trim(), "exec'd");
    env.rt.run_ok(&["delete", "--force", env.id()]);
    env.assert_nothing_left();
}

#[test]
fn podman_profile_without_close_range_still_runs_the_container() {
    let caps = base_bounding_caps();
    let caps: Vec<&str> = caps.iter().map(String::as_str).collect();
    let Some(mut profile) = podman_profile(&caps) else {
        return;
    };
    for rule in profile["syscalls"].as_array_mut().unwrap() {
        if let Some(names) = rule["names"].as_array_mut() {
            names.retain(|n| n != "close_range");
        }
    }
    let env = env_with("sc-podman-no-close-range", profile, "echo started");
    let (out, _) = run_ok(&env);
    assert_eq!(out.trim(), "started");
}
