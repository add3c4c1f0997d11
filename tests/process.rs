//! The container process's attributes: args/env/cwd, user and groups,
//! umask, capabilities, no_new_privs, rlimits, oom_score_adj, I/O priority,
//! scheduler, CPU affinity, personality, memory policy, hostname and
//! domainname, sysctls, masked and read-only paths, `--preserve-fds`, and
//! `linux.netDevices`. Every check reads what the process itself sees
//! (`id`, `/proc/self/status`, `/proc/self/stat`, `ulimit`, `uname`, ...).
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test process -- --test-threads=2`
//!
//! runc 1.1.5 lacks `process.ioPriority`, `process.scheduler`,
//! `process.execCPUAffinity`, `linux.personality`, `linux.memoryPolicy`,
//! `domainname` and `linux.netDevices`: those tests are validated against rrun only and are
//! skipped for reference runtimes.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const T: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// Kernel capability numbers by name (only the ones used here).
fn cap_number(name: &str) -> u32 {
    match name {
        "CAP_CHOWN" => 0,
        "CAP_DAC_OVERRIDE" => 1,
        "CAP_KILL" => 5,
        "CAP_SETGID" => 6,
        "CAP_SETUID" => 7,
        "CAP_NET_BIND_SERVICE" => 10,
        "CAP_NET_RAW" => 13,
        "CAP_SYS_CHROOT" => 18,
        "CAP_AUDIT_WRITE" => 29,
        _ => panic!("unknown capability {name}"),
    }
}

/// The `/proc/self/status` rendering of a capability set.
fn cap_mask(names: &[&str]) -> String {
    let m = names.iter().fold(0u64, |m, n| m | 1 << cap_number(n));
    format!("{m:016x}")
}

fn caps_config(c: &mut Value, sets: &[(&str, &[&str])]) {
    let mut caps = serde_json::Map::new();
    for (set, names) in sets {
        caps.insert(set.to_string(), json!(names));
    }
    c["process"]["capabilities"] = Value::Object(caps);
}

fn read_trim(p: &str) -> String {
    fs::read_to_string(p).unwrap().trim().to_string()
}

// ---------------------------------------------------------------------------
// args, env, cwd, user
// ---------------------------------------------------------------------------

#[test]
fn args_env_and_cwd_reach_the_process() {
    let mut env = TestEnv::new("proc_args_env_cwd");
    env.bundle.edit(|c| {
        c["process"]["args"] = json!([
            "sh",
            "-c",
            "echo arg0=$0; echo arg1=$1; echo foo=$FOO; echo spaced=$SPACED; echo cwd=$(pwd); echo home=$HOME",
            "zero",
            "one two"
        ]);
        c["process"]["env"]
            .as_array_mut()
            .unwrap()
            .extend([json!("FOO=bar"), json!("SPACED=a b  c")]);
        c["process"]["cwd"] = json!("/work/sub/dir");
    });
    let out = run_ok(&env);
    assert_eq!(field(&out, "arg0"), "zero");
    assert_eq!(field(&out, "arg1"), "one two");
    assert_eq!(field(&out, "foo"), "bar");
    assert_eq!(field(&out, "spaced"), "a b c");
    assert_eq!(field(&out, "cwd"), "/work/sub/dir");
    // HOME comes from the container's /etc/passwd for uid 0.
    assert_eq!(field(&out, "home"), "/root");
    assert!(
        env.bundle.rootfs().join("work/sub/dir").is_dir(),
        "the missing cwd was not created inside the rootfs"
    );
    env.assert_nothing_left();
}

#[test]
fn user_uid_gid_and_additional_gids_apply() {
    let mut env = TestEnv::new("proc_user");
    env.bundle.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1001, "additionalGids": [10, 20, 65534]});
    });
    env.bundle.set_script(
        "echo uid=$(id -u); echo gid=$(id -g); echo groups=$(id -G); \
         grep -E '^(Uid|Gid|Groups):' /proc/self/status",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "uid"), "1000");
    assert_eq!(field(&out, "gid"), "1001");
    let mut groups: Vec<u32> = field(&out, "groups")
        .split_whitespace()
        .map(|g| g.parse().unwrap())
        .collect();
    groups.sort();
    groups.dedup();
    assert_eq!(groups, vec![10, 20, 1001, 65534], "{out}");
    // Real, effective, saved and fs ids all changed.
    assert_eq!(
        status_value(&out, "Uid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["1000"; 4]
    );
    assert_eq!(
        status_value(&out, "Gid")
            .split_whitespace()
            .collect::<Vec<_>>(),
        vec!["1001"; 4]
    );
    let mut supp: Vec<&str> = status_value(&out, "Groups").split_whitespace().collect();
    supp.sort();
    assert_eq!(supp, vec!["10", "20", "65534"]);
    env.assert_nothing_left();
}

#[test]
fn umask_applies_to_created_files() {
    let mut env = TestEnv::new("proc_umask");
    env.bundle.set_script(
        "touch /tmp/f; mkdir /tmp/d; echo file=$(stat -c %a /tmp/f); echo dir=$(stat -c %a /tmp/d); \
         echo umask=$(umask)",
    );
    // Default: 0022.
    let out = run_ok(&env);
    assert_eq!(field(&out, "file"), "644");
    assert_eq!(field(&out, "dir"), "755");
    assert_eq!(field(&out, "umask"), "0022");
    fs::remove_file(env.bundle.rootfs().join("tmp/f")).unwrap();
    fs::remove_dir(env.bundle.rootfs().join("tmp/d")).unwrap();
    env.bundle
        .edit(|c| c["process"]["user"]["umask"] = json!(0o077));
    let out = run_ok(&env);
    assert_eq!(field(&out, "file"), "600");
    assert_eq!(field(&out, "dir"), "700");
    assert_eq!(field(&out, "umask"), "0077");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Capabilities and no_new_privs
// ---------------------------------------------------------------------------

const PRINT_CAPS: &str = "grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status";

#[test]
fn root_process_capabilities_match_the_configured_sets() {
    let mut env = TestEnv::new("proc_caps_root");
    let set: &[&str] = &[
        "CAP_CHOWN",
        "CAP_KILL",
        "CAP_NET_BIND_SERVICE",
        "CAP_AUDIT_WRITE",
    ];
    env.bundle.edit(|c| {
        caps_config(
            c,
            &[("bounding", set), ("effective", set), ("permitted", set)],
        )
    });
    env.bundle.set_script(PRINT_CAPS);
    let out = run_ok(&env);
    assert_eq!(status_value(&out, "CapBnd"), cap_mask(set), "{out}");
    assert_eq!(status_value(&out, "CapEff"), cap_mask(set), "{out}");
    assert_eq!(status_value(&out, "CapPrm"), cap_mask(set), "{out}");
    // Not listed: never implied by the other sets (CVE-2022-29162).
    assert_eq!(status_value(&out, "CapInh"), cap_mask(&[]), "{out}");
    assert_eq!(status_value(&out, "CapAmb"), cap_mask(&[]), "{out}");
    env.assert_nothing_left();
}

/// For a non-root process the kernel keeps, across execve, exactly the
/// ambient set in permitted and effective; bounding and inheritable stay as
/// configured.
#[test]
fn non_root_process_keeps_bounding_inheritable_and_ambient_sets() {
    let mut env = TestEnv::new("proc_caps_user");
    env.bundle.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        caps_config(
            c,
            &[
                (
                    "bounding",
                    &[
                        "CAP_CHOWN",
                        "CAP_KILL",
                        "CAP_NET_BIND_SERVICE",
                        "CAP_SETUID",
                    ],
                ),
                ("effective", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                ("permitted", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                ("inheritable", &["CAP_NET_BIND_SERVICE"]),
                ("ambient", &["CAP_NET_BIND_SERVICE"]),
            ],
        );
    });
    env.bundle.set_script(PRINT_CAPS);
    let out = run_ok(&env);
    assert_eq!(
        status_value(&out, "CapBnd"),
        cap_mask(&[
            "CAP_CHOWN",
            "CAP_KILL",
            "CAP_NET_BIND_SERVICE",
            "CAP_SETUID"
        ]),
        "{out}"
    );
    let nbs = cap_mask(&["CAP_NET_BIND_SERVICE"]);
    assert_eq!(status_value(&out, "CapInh"), nbs, "{out}");
    assert_eq!(status_value(&out, "CapAmb"), nbs, "{out}");
    assert_eq!(status_value(&out, "CapPrm"), nbs, "{out}");
    assert_eq!(status_value(&out, "CapEff"), nbs, "{out}");
    env.assert_nothing_left();
}

/// An ambient capability can only be raised when it is both permitted and
/// inheritable; the others are left out and the container still runs. (runc
/// 1.1.5 only reports a failed raise when it is the highest-numbered one, so
/// NET_BIND_SERVICE, which can be raised, is the highest here.)
#[test]
fn ambient_capabilities_not_permitted_and_inheritable_are_not_raised() {
    let mut env = TestEnv::new("proc_caps_ambient");
    env.bundle.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        caps_config(
            c,
            &[
                (
                    "bounding",
                    &["CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"],
                ),
                ("effective", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                ("permitted", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                ("inheritable", &["CAP_SETUID", "CAP_NET_BIND_SERVICE"]),
                // KILL is not inheritable, SETUID not permitted.
                (
                    "ambient",
                    &["CAP_KILL", "CAP_SETUID", "CAP_NET_BIND_SERVICE"],
                ),
            ],
        );
    });
    env.bundle.set_script(PRINT_CAPS);
    let out = run_ok(&env);
    let nbs = cap_mask(&["CAP_NET_BIND_SERVICE"]);
    assert_eq!(status_value(&out, "CapAmb"), nbs, "{out}");
    assert_eq!(status_value(&out, "CapPrm"), nbs, "{out}");
    assert_eq!(status_value(&out, "CapEff"), nbs, "{out}");
    assert_eq!(
        status_value(&out, "CapInh"),
        cap_mask(&["CAP_SETUID", "CAP_NET_BIND_SERVICE"]),
        "{out}"
    );
    env.assert_nothing_left();
}

/// config.md: a capability that cannot be mapped MUST be logged as a
/// warning, and the runtime SHOULD NOT fail (runc warns and ignores it):
/// an engine newer than rrun may list a name rrun does not know.
#[test]
fn unknown_capability_names_are_ignored_with_a_warning_naming_them() {
    if skip_on_reference_because("the warning's wording is rrun's") {
        return;
    }
    let mut env = TestEnv::new("proc_caps_unknown");
    let set: &[&str] = &["CAP_KILL", "CAP_NO_SUCH_THING"];
    env.bundle.edit(|c| {
        caps_config(
            c,
            &[("bounding", set), ("effective", set), ("permitted", set)],
        )
    });
    env.bundle.set_script(PRINT_CAPS);
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    let kill = cap_mask(&["CAP_KILL"]);
    for field in ["CapBnd", "CapEff", "CapPrm"] {
        assert_eq!(status_value(&text, field), kill, "{text}");
    }
    let err = stderr(&out);
    for set in ["bounding", "effective", "permitted"] {
        assert!(
            err.contains(&format!(
                "process.capabilities.{set}: unknown capability CAP_NO_SUCH_THING; ignored"
            )),
            "{err}"
        );
    }
    env.assert_nothing_left();
}

/// The ambient capabilities the kernel cannot raise are skipped, and each
/// is named in a warning (a capability that cannot be granted MUST be
/// logged).
#[test]
fn ambient_capabilities_that_cannot_be_raised_are_named_in_a_warning() {
    if skip_on_reference_because("the warning's wording is rrun's") {
        return;
    }
    let mut env = TestEnv::with_log("proc_caps_ambient_warn");
    env.bundle.edit(|c| {
        c["process"]["user"] = json!({"uid": 1000, "gid": 1000});
        caps_config(
            c,
            &[
                ("bounding", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                ("permitted", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
                ("inheritable", &["CAP_NET_BIND_SERVICE"]),
                ("ambient", &["CAP_KILL", "CAP_NET_BIND_SERVICE"]),
            ],
        );
    });
    env.bundle.set_script(PRINT_CAPS);
    let out = run_ok(&env);
    assert_eq!(
        status_value(&out, "CapAmb"),
        cap_mask(&["CAP_NET_BIND_SERVICE"]),
        "{out}"
    );
    let log = env.rt.log_contents();
    assert!(
        log.contains("process.capabilities.ambient: CAP_KILL is not both permitted and inheritable; not raised"),
        "{log}"
    );
    assert!(!log.contains("CAP_NET_BIND_SERVICE is not"), "{log}");
    env.assert_nothing_left();
}

#[test]
fn no_new_privileges_sets_the_process_flag() {
    let mut env = TestEnv::new("proc_nnp");
    env.bundle.set_script(PRINT_CAPS);
    env.bundle
        .edit(|c| c["process"]["noNewPrivileges"] = json!(true));
    let out = run_ok(&env);
    assert_eq!(status_value(&out, "NoNewPrivs"), "1");
    env.bundle
        .edit(|c| c["process"]["noNewPrivileges"] = json!(false));
    let out = run_ok(&env);
    assert_eq!(status_value(&out, "NoNewPrivs"), "0");
    env.assert_nothing_left();
}

/// The container's ignored-signals mask (`SigIgn` of `/proc/self/status`)
/// from a `run` by a caller that ignores SIGPIPE or leaves it at its
/// default (Rust's `Command` resets it to the default for the runtime).
fn container_sig_ign(env: &TestEnv, caller_ignores_sigpipe: bool) -> u64 {
    let mut cmd = env
        .rt
        .command(&["run", "--bundle", env.bundle.path_str(), env.id()]);
    if caller_ignores_sigpipe {
        use std::os::unix::process::CommandExt;
        // SAFETY: between fork and exec, one async-signal-safe call.
        unsafe {
            cmd.pre_exec(|| {
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
    }
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("spawn the runtime");
    assert!(out.status.success(), "run failed: {}", describe(&out));
    u64::from_str_radix(status_value(&stdout(&out), "SigIgn"), 16).expect("SigIgn is hex")
}

#[test]
fn signal_dispositions_are_the_callers() {
    // rrun ignores SIGPIPE for itself (a closed pipe is an error it
    // reports, not its death); "ignore" survives execve, so the container
    // must get the caller's disposition back, as with runc and crun.
    let mut env = TestEnv::new("proc_sigign");
    env.bundle.set_script("grep SigIgn /proc/self/status");
    let sigpipe = 1u64 << (libc::SIGPIPE - 1);
    let mask = container_sig_ign(&env, false);
    assert_eq!(
        mask & sigpipe,
        0,
        "SIGPIPE ignored in the container: SigIgn {mask:x}"
    );
    let mask = container_sig_ign(&env, true);
    assert_ne!(
        mask & sigpipe,
        0,
        "the caller's ignored SIGPIPE was not passed on: SigIgn {mask:x}"
    );
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// rlimits, oom_score_adj
// ---------------------------------------------------------------------------

#[test]
fn rlimits_apply_soft_and_hard() {
    let mut env = TestEnv::new("proc_rlimits");
    env.bundle.edit(|c| {
        c["process"]["rlimits"] = json!([
            {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 4096},
            {"type": "RLIMIT_NPROC", "soft": 300, "hard": 400}
        ]);
    });
    env.bundle.set_script(
        "echo nofile=$(ulimit -Sn)/$(ulimit -Hn); echo nproc=$(ulimit -Su)/$(ulimit -Hu); \
         grep -E '^Max (core file size|open files)' /proc/self/limits | tr -s ' ' | sed 's/^/limit=/'",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "nofile"), "1000/2000");
    assert_eq!(field(&out, "nproc"), "300/400");
    let limits: Vec<&str> = out
        .lines()
        .filter_map(|l| l.strip_prefix("limit="))
        .map(str::trim)
        .collect();
    assert!(
        limits.contains(&"Max core file size 0 4096 bytes"),
        "{limits:?}"
    );
    assert!(
        limits.contains(&"Max open files 1000 2000 files"),
        "{limits:?}"
    );
    env.assert_nothing_left();
}

#[test]
fn rlimit_hard_limit_above_the_runtimes_own_fails_at_create() {
    let mut env = TestEnv::new("proc_rlimit_too_high");
    let mut cur = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut cur) };
    let hard = cur.rlim_max + 10000;
    env.bundle.edit(|c| {
        c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": hard}]);
    });
    let out = env.try_create(&[]);
    // runc: "error setting rlimit type 7: operation not permitted".
    assert_error_ref(&out, &["RLIMIT_NOFILE"], &["rlimit"]);
    env.assert_nothing_left();
}

#[test]
fn oom_score_adj_applies() {
    let mut env = TestEnv::new("proc_oom");
    env.bundle
        .edit(|c| c["process"]["oomScoreAdj"] = json!(123));
    env.bundle
        .set_script("echo adj=$(cat /proc/self/oom_score_adj)");
    let out = run_ok(&env);
    assert_eq!(field(&out, "adj"), "123");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Newer spec features runc 1.1.5 lacks
// ---------------------------------------------------------------------------

#[test]
fn io_priority_applies() {
    if skip_on_reference("process.ioPriority") {
        return;
    }
    let mut env = TestEnv::new("proc_ioprio");
    env.bundle
        .edit(|c| c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_BE", "priority": 6}));
    env.bundle.set_script("echo io=$(ionice -p $$)");
    let out = run_ok(&env);
    assert_eq!(field(&out, "io"), "best-effort: prio 6");
    env.bundle.edit(|c| {
        c["process"]["ioPriority"] = json!({"class": "IOPRIO_CLASS_IDLE", "priority": 0})
    });
    let out = run_ok(&env);
    // busybox prints no level for the idle class.
    assert_eq!(field(&out, "io"), "idle");
    env.assert_nothing_left();
}

#[test]
fn scheduler_policy_and_nice_apply() {
    if skip_on_reference("process.scheduler") {
        return;
    }
    let mut env = TestEnv::new("proc_sched");
    env.bundle
        .edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_BATCH", "nice": 7}));
    // /proc/self/stat: field 19 is nice, field 41 the policy (3 = BATCH).
    env.bundle
        .set_script("echo sched=$(awk '{print $19, $41}' /proc/self/stat)");
    let out = run_ok(&env);
    assert_eq!(field(&out, "sched"), "7 3");
    env.bundle
        .edit(|c| c["process"]["scheduler"] = json!({"policy": "SCHED_IDLE"}));
    let out = run_ok(&env);
    assert_eq!(field(&out, "sched").split(' ').nth(1), Some("5"));
    env.assert_nothing_left();
}

#[test]
fn exec_cpu_affinity_final_applies() {
    if skip_on_reference("process.execCPUAffinity") {
        return;
    }
    let host = fs::read_to_string("/proc/self/status").unwrap();
    let host_list = status_value(&host, "Cpus_allowed_list").to_string();
    let mut env = TestEnv::new("proc_affinity");
    env.bundle
        .set_script("grep Cpus_allowed_list /proc/self/status");
    // Control: without it, the process may run on every CPU the host allows.
    let out = run_ok(&env);
    assert_eq!(status_value(&out, "Cpus_allowed_list"), host_list);
    env.bundle
        .edit(|c| c["process"]["execCPUAffinity"] = json!({"initial": host_list, "final": "0"}));
    let out = run_ok(&env);
    assert_eq!(status_value(&out, "Cpus_allowed_list"), "0");
    env.assert_nothing_left();
}

#[test]
fn personality_linux32_makes_uname_report_i686() {
    if skip_on_reference("linux.personality") {
        return;
    }
    let mut env = TestEnv::new("proc_personality");
    env.bundle.set_script("echo arch=$(uname -m)");
    let out = run_ok(&env);
    assert_eq!(field(&out, "arch"), std::env::consts::ARCH);
    env.bundle
        .edit(|c| c["linux"]["personality"] = json!({"domain": "LINUX32"}));
    let out = run_ok(&env);
    assert!(
        matches!(field(&out, "arch"), "i686" | "i386" | "armv7l" | "armv8l"),
        "{out}"
    );
    env.assert_nothing_left();
}

#[test]
fn memory_policy_bind_applies() {
    if skip_on_reference("linux.memoryPolicy") {
        return;
    }
    let mut env = TestEnv::new("proc_mempolicy");
    env.bundle
        .edit(|c| c["linux"]["memoryPolicy"] = json!({"mode": "MPOL_BIND", "nodes": "0"}));
    // numa_maps shows each mapping's policy: the process policy for
    // anonymous memory (heap, stack).
    env.bundle
        .set_script("grep -E '(heap|stack)' /proc/self/numa_maps | sed 's/^/map=/'");
    let out = run_ok(&env);
    let maps: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("map=")).collect();
    assert!(!maps.is_empty(), "{out}");
    for m in &maps {
        assert!(
            m.split_whitespace().nth(1) == Some("bind:0"),
            "mapping without bind:0 policy: {m}"
        );
    }
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// hostname, domainname, sysctl
// ---------------------------------------------------------------------------

#[test]
fn hostname_applies_inside_only() {
    let host_name = read_trim("/proc/sys/kernel/hostname");
    let mut env = TestEnv::new("proc_hostname");
    env.bundle.edit(|c| c["hostname"] = json!("box-one"));
    env.bundle
        .set_script("echo host=$(hostname); echo proc=$(cat /proc/sys/kernel/hostname)");
    let out = run_ok(&env);
    assert_eq!(field(&out, "host"), "box-one");
    assert_eq!(field(&out, "proc"), "box-one");
    assert_eq!(read_trim("/proc/sys/kernel/hostname"), host_name);
    env.assert_nothing_left();
}

/// runc 1.1.5 lacks `domainname` (added in runc 1.2): rrun only.
#[test]
fn domainname_applies_inside_only() {
    if skip_on_reference("domainname") {
        return;
    }
    let host_domain = read_trim("/proc/sys/kernel/domainname");
    let mut env = TestEnv::new("proc_domainname");
    env.bundle.edit(|c| {
        c["hostname"] = json!("box-two");
        c["domainname"] = json!("example.org");
    });
    env.bundle
        .set_script("echo host=$(hostname); echo domain=$(cat /proc/sys/kernel/domainname)");
    let out = run_ok(&env);
    assert_eq!(field(&out, "host"), "box-two");
    assert_eq!(field(&out, "domain"), "example.org");
    assert_eq!(read_trim("/proc/sys/kernel/domainname"), host_domain);
    env.assert_nothing_left();
}

#[test]
fn namespaced_sysctls_apply_inside_only() {
    let host_shmmax = read_trim("/proc/sys/kernel/shmmax");
    let host_fwd = read_trim("/proc/sys/net/ipv4/ip_forward");
    let mut env = TestEnv::new("proc_sysctl");
    env.bundle.edit(|c| {
        c["linux"]["sysctl"] = json!({
            "net.ipv4.ip_forward": "1",
            "kernel.shmmax": "12345678",
            "net.ipv4.ip_local_port_range": "20000 30000"
        });
    });
    env.bundle.set_script(
        "echo fwd=$(cat /proc/sys/net/ipv4/ip_forward); echo shmmax=$(cat /proc/sys/kernel/shmmax); \
         echo range=$(cat /proc/sys/net/ipv4/ip_local_port_range)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "fwd"), "1");
    assert_eq!(field(&out, "shmmax"), "12345678");
    assert_eq!(
        field(&out, "range").split_whitespace().collect::<Vec<_>>(),
        vec!["20000", "30000"]
    );
    assert_eq!(read_trim("/proc/sys/kernel/shmmax"), host_shmmax);
    assert_eq!(read_trim("/proc/sys/net/ipv4/ip_forward"), host_fwd);
    env.assert_nothing_left();
}

#[test]
fn host_wide_sysctl_is_refused_at_create() {
    let before = read_trim("/proc/sys/vm/swappiness");
    let other = if before == "13" { "14" } else { "13" };
    let mut env = TestEnv::new("proc_sysctl_host");
    env.bundle.edit(|c| {
        c["linux"]["sysctl"] = json!({"vm.swappiness": other});
    });
    let out = env.try_create(&[]);
    assert_error(&out, &["vm.swappiness"]);
    assert_eq!(read_trim("/proc/sys/vm/swappiness"), before);
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// maskedPaths, readonlyPaths
// ---------------------------------------------------------------------------

#[test]
fn masked_paths_read_empty() {
    // Preconditions: the default masked paths used here have content on the
    // host (this kernel has no /proc/kcore).
    assert!(!fs::read_to_string("/proc/timer_list").unwrap().is_empty());
    assert!(fs::read_dir("/sys/firmware").unwrap().next().is_some());
    let mut env = TestEnv::new("proc_masked");
    let r = env.bundle.rootfs();
    fs::create_dir_all(r.join("secret")).unwrap();
    fs::write(r.join("secret/file"), "s3cret").unwrap();
    fs::write(r.join("secret/other"), "visible").unwrap();
    fs::create_dir_all(r.join("secretdir")).unwrap();
    fs::write(r.join("secretdir/a"), "a").unwrap();
    env.bundle.edit(|c| {
        let m = c["linux"]["maskedPaths"].as_array_mut().unwrap();
        m.push(json!("/secret/file"));
        m.push(json!("/secretdir"));
        m.push(json!("/does/not/exist"));
    });
    env.bundle.set_script(
        "echo timer_list=$(wc -c < /proc/timer_list); echo firmware=[$(ls -A /sys/firmware)]; echo file=[$(cat /secret/file)]; \
         echo other=$(cat /secret/other); echo dir=[$(ls -A /secretdir)]; \
         if touch /secretdir/x 2>/dev/null; then echo dir_write=ok; else echo dir_write=refused; fi; \
         if echo x > /secret/file; then echo file_write=ok; else echo file_write=refused; fi; \
         echo file_after=[$(cat /secret/file)]",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "timer_list"), "0");
    assert_eq!(field(&out, "firmware"), "[]");
    assert_eq!(field(&out, "file"), "[]");
    assert_eq!(field(&out, "other"), "visible");
    assert_eq!(field(&out, "dir"), "[]");
    assert_eq!(field(&out, "dir_write"), "refused");
    // Writes to a masked file vanish (it is /dev/null).
    assert_eq!(field(&out, "file_after"), "[]");
    assert_eq!(fs::read_to_string(r.join("secret/file")).unwrap(), "s3cret");
    assert!(
        !r.join("does").exists(),
        "a missing masked path was created"
    );
    env.assert_nothing_left();
}

#[test]
fn readonly_paths_refuse_writes() {
    let mut env = TestEnv::new("proc_readonly");
    let r = env.bundle.rootfs();
    fs::create_dir_all(r.join("rodir")).unwrap();
    fs::create_dir_all(r.join("rwdir")).unwrap();
    env.bundle.edit(|c| {
        c["linux"]["readonlyPaths"]
            .as_array_mut()
            .unwrap()
            .push(json!("/rodir"));
    });
    env.bundle.set_script(
        "for f in /rodir/x /rwdir/x; do \
           if touch $f 2>/dev/null; then echo $f=ok; else echo $f=refused; fi; done; \
         if echo 1 2>/dev/null > /proc/sys/net/ipv4/ip_forward; then echo sys=ok; else echo sys=refused; fi; \
         echo sysval=$(cat /proc/sys/net/ipv4/ip_forward)",
    );
    let out = run_ok(&env);
    assert_eq!(field(&out, "/rodir/x"), "refused");
    assert_eq!(field(&out, "/rwdir/x"), "ok");
    assert_eq!(field(&out, "sys"), "refused");
    assert_eq!(field(&out, "sysval"), "0");
    assert!(!r.join("rodir/x").exists());
    assert!(r.join("rwdir/x").exists());
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// --preserve-fds
// ---------------------------------------------------------------------------

/// `run [extra] <id>` through `sh -c 'exec 3<file; exec rrun ...'`, so the
/// runtime starts with `file` open on fd 3. Returns (exit code, stdout,
/// stderr).
/// The shell's (pid 1's) open fds below 10 from a `fds=` line. The scripts
/// list them with a plain redirect (inside `$(...)` the shell would hold the
/// substitution's pipe); busybox ash keeps its own saved fds at 10 and up.
fn low_fds(out: &str) -> Vec<u32> {
    field(out, "fds")
        .split_whitespace()
        .map(|f| f.parse().unwrap())
        .filter(|&f| f < 10)
        .collect()
}

fn run_with_fd3(env: &TestEnv, extra: &[&str], file: &Path) -> (i32, String, String) {
    let mut args = vec!["run", "--bundle", env.bundle.path_str()];
    args.extend_from_slice(extra);
    args.push(env.id());
    // Builds the runtime's command line (and tracks the id for cleanup).
    let rt_cmd = env.rt.command(&args);
    let out_path = env.dir.join("fd3.out");
    let err_path = env.dir.join("fd3.err");
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("exec 3<\"$0\"; exec \"$@\"")
        .arg(file)
        .arg(rt_cmd.get_program())
        .args(rt_cmd.get_args())
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(fs::File::create(&err_path).unwrap())
        .spawn()
        .expect("spawn sh");
    let mut status = None;
    wait_for(T, || {
        status = child.try_wait().unwrap();
        status.is_some()
    });
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("runtime with fd 3 did not exit within {T:?}");
    };
    (
        status.code().unwrap_or(-1),
        fs::read_to_string(&out_path).unwrap_or_default(),
        fs::read_to_string(&err_path).unwrap_or_default(),
    )
}

#[test]
fn preserve_fds_passes_an_extra_fd_to_the_process() {
    let mut env = TestEnv::new("proc_preserve_fds");
    let file: PathBuf = env.dir.join("payload");
    fs::write(&file, "from-fd-3\n").unwrap();
    env.bundle
        .set_script("echo got=$(cat <&3); ls /proc/$$/fd > /tmp/fds; echo fds=$(sort -n /tmp/fds | tr '\\n' ' ')");
    let (code, out, err) = run_with_fd3(&env, &["--preserve-fds", "1"], &file);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(field(&out, "got"), "from-fd-3");
    assert_eq!(low_fds(&out), vec![0, 1, 2, 3], "{out}");
    env.assert_nothing_left();
}

#[test]
fn extra_fds_are_closed_without_preserve_fds() {
    let mut env = TestEnv::new("proc_no_preserve_fds");
    let file: PathBuf = env.dir.join("payload");
    fs::write(&file, "from-fd-3\n").unwrap();
    env.bundle.set_script(
        "if [ -e /proc/$$/fd/3 ]; then echo fd3=open; else echo fd3=closed; fi; \
         ls /proc/$$/fd > /tmp/fds; echo fds=$(sort -n /tmp/fds | tr '\\n' ' ')",
    );
    let (code, out, err) = run_with_fd3(&env, &[], &file);
    assert_eq!(code, 0, "stdout:\n{out}\nstderr:\n{err}");
    assert_eq!(field(&out, "fd3"), "closed");
    assert_eq!(low_fds(&out), vec![0, 1, 2], "{out}");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// linux.netDevices (runc 1.1.5 lacks it)
// ---------------------------------------------------------------------------

/// A veth pair on the host, deleted on drop (even when the test fails).
struct Veth {
    host: String,
    peer: String,
}

fn ip(args: &[&str]) -> std::process::Output {
    Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip")
}

/// Whether the interface exists in the test's network namespace (from
/// `/proc/self/net/dev`, which follows the reader's namespace; `/sys`
/// shows the namespace that mounted it).
fn link_exists(name: &str) -> bool {
    fs::read_to_string("/proc/self/net/dev")
        .unwrap_or_default()
        .lines()
        .skip(2)
        .any(|l| l.split(':').next().map(str::trim) == Some(name))
}

impl Veth {
    fn new(tag: &str) -> Veth {
        let n = std::process::id();
        let v = Veth {
            host: format!("rrt{tag}{n}a"),
            peer: format!("rrt{tag}{n}b"),
        };
        assert!(v.host.len() <= 15, "interface name too long: {}", v.host);
        let out = ip(&[
            "link", "add", &v.host, "type", "veth", "peer", "name", &v.peer,
        ]);
        assert!(
            out.status.success(),
            "ip link add: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        v
    }
}

impl Drop for Veth {
    fn drop(&mut self) {
        for name in [&self.host, &self.peer] {
            if link_exists(name) {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
}

/// Creates a veth pair (tag `tag`), gives its peer 10.213.7.9/24, moves the
/// peer into a container as `eth9`, runs `script` there and deletes the
/// container. Checks on the way that the peer left the host at create and
/// that the pair is destroyed with the container's namespace (the spec: the
/// runtime must not move it back; the kernel destroys virtual devices).
/// Returns the container's stdout.
fn run_with_moved_veth(name: &str, tag: &str, script: &str) -> String {
    let veth = Veth::new(tag);
    let out = ip(&["addr", "add", "10.213.7.9/24", "dev", &veth.peer]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut env = TestEnv::new(name);
    let peer = veth.peer.clone();
    env.bundle.edit(|c| {
        c["linux"]["netDevices"] = json!({ peer.as_str(): {"name": "eth9"} });
    });
    env.bundle.set_script(script);
    let (out_path, err_path) = (env.dir.join("ctr.out"), env.dir.join("ctr.err"));
    let st = env.rt.cmd_to_files(
        &["create", "--bundle", env.bundle.path_str(), env.id()],
        &out_path,
        &err_path,
    );
    assert!(
        st.success(),
        "create failed: {}",
        fs::read_to_string(&err_path).unwrap_or_default()
    );
    // Moved: gone from the host; its peer stays.
    assert!(
        !link_exists(&veth.peer),
        "{} is still on the host",
        veth.peer
    );
    assert!(link_exists(&veth.host));
    env.rt.start(env.id());
    env.rt.wait_status(env.id(), "stopped", T);
    let out = fs::read_to_string(&out_path).unwrap();
    env.rt.run_ok(&["delete", env.id()]);
    assert!(
        wait_for(Duration::from_secs(5), || !link_exists(&veth.host)
            && !link_exists(&veth.peer)),
        "veth pair still on the host after delete"
    );
    env.assert_nothing_left();
    out
}

#[test]
fn net_device_moves_into_the_container_under_its_new_name() {
    if skip_on_reference("linux.netDevices") {
        return;
    }
    let out = run_with_moved_veth(
        "proc_netdev_move",
        "m",
        "tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d ' ' | sed 's/^/dev=/'",
    );
    let mut devs: Vec<&str> = out.lines().filter_map(|l| l.strip_prefix("dev=")).collect();
    devs.sort();
    assert_eq!(devs, vec!["eth9", "lo"], "{out}");
}

#[test]
fn moved_net_device_is_up_inside() {
    if skip_on_reference("linux.netDevices") {
        return;
    }
    let out = run_with_moved_veth(
        "proc_netdev_up",
        "u",
        "echo flags=$(cat /sys/class/net/eth9/flags)",
    );
    let flags = u32::from_str_radix(field(&out, "flags").trim_start_matches("0x"), 16)
        .unwrap_or_else(|_| panic!("bad flags: {out}"));
    assert_eq!(flags & 1, 1, "eth9 is not up (no IFF_UP): {out}");
}

#[test]
fn moved_net_device_keeps_its_address() {
    if skip_on_reference("linux.netDevices") {
        return;
    }
    let out = run_with_moved_veth(
        "proc_netdev_addr",
        "k",
        "echo addr=$(ip -o -4 addr show dev eth9)",
    );
    assert!(
        field(&out, "addr").contains("inet 10.213.7.9/24"),
        "the permanent global address was not preserved: {out}"
    );
}

#[test]
fn net_device_missing_on_the_host_fails_at_create() {
    if skip_on_reference("linux.netDevices") {
        return;
    }
    let mut env = TestEnv::new("proc_netdev_missing");
    let name = format!("rrtx{}", std::process::id());
    assert!(!link_exists(&name));
    env.bundle.edit(|c| {
        c["linux"]["netDevices"] = json!({ name.as_str(): {"name": "eth9"} });
    });
    let out = env.try_create(&[]);
    assert_error(&out, &[name.as_str()]);
    env.assert_nothing_left();
}
