//! Bad input: every failure exits non-zero with one useful line on stderr
//! that names the offending thing, and leaves nothing behind (no state dir,
//! mount, cgroup or process).
//!
//! Validate against runc with:
//! `RRUN_TEST_RUNTIME=/usr/bin/runc cargo test --test errors -- --test-threads=2`
//!
//! Against runc 1.1.5 every test here passes; runc's wording is accepted
//! where rrun is meant to be more specific (see `assert_error_ref`), and the
//! tests of spec rules runc 1.1.5 does not keep (a hook timeout of 0, an
//! empty annotation key, errnoRet on SCMP_ACT_ALLOW...) skip against it
//! (`reference_accepts`):
//! - truncated config.json: runc says only "unexpected EOF"; rrun must name
//!   config.json.
//! - runc prints `time=... level=error msg="..."` (one line; the JSON line
//!   with `--log-format json`) without `--log`, and the bare message with
//!   `--log`; rrun does the same and must always print exactly one line.
//!
//! runc messages observed (for reference): "invalid container ID format",
//! "container id cannot be empty", "container with given ID already exists",
//! "chdir <bundle>: no such file or directory", "JSON specification file
//! config.json not found", "invalid rootfs: stat <bundle>/rootfs: no such
//! file or directory", "json: cannot unmarshal number into Go struct field
//! Process.process.args of type []string", "namespace {\"nosuchns\" \"\"} does
//! not exist", "error mounting \"none\" to rootfs at \"/mnt\": ... no such
//! device", "exec: \"/nonexistent\": stat /nonexistent: no such file or
//! directory", "exec: \"nosuchcmd\": executable file not found in $PATH",
//! "container does not exist". All exit with status 1.

mod common;

use common::*;
use serde_json::{json, Value};
use std::fs;
use std::path::Path;
use std::process::Output;

/// Nothing of `env`'s container survives, and the runtime root holds no
/// container state at all.
fn assert_clean(env: &TestEnv, id: &str) {
    assert_nothing_left(&env.rt, id, &env.bundle);
    assert_root_empty(env.rt.root());
}

fn assert_root_empty(root: &Path) {
    if let Ok(rd) = fs::read_dir(root) {
        let names: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            names.is_empty(),
            "runtime root {} not empty: {names:?}",
            root.display()
        );
    }
}

/// `create` this env's bundle under `id`.
fn create_as(env: &TestEnv, id: &str) -> Output {
    env.rt
        .cmd(&["create", "--bundle", env.bundle.path_str(), id])
}

/// Write a config with `f` applied, create, expect failure naming one of
/// `nouns`, and check nothing is left.
fn create_fails_with(name: &str, f: impl FnOnce(&mut Value), nouns: &[&str]) {
    create_fails_with_ref(name, f, nouns, &[]);
}

/// [`create_fails_with`], accepting `reference_nouns` from a reference
/// runtime (see `assert_error_ref`).
fn create_fails_with_ref(
    name: &str,
    f: impl FnOnce(&mut Value),
    nouns: &[&str],
    reference_nouns: &[&str],
) {
    bundle_fails_with(
        name,
        |env| {
            env.bundle.edit(f);
        },
        nouns,
        reference_nouns,
    );
}

/// Spoil the env's bundle with `spoil`, create, expect failure naming one
/// of `nouns` (or of `reference_nouns` from a reference runtime), and check
/// nothing is left.
fn bundle_fails_with(
    name: &str,
    spoil: impl FnOnce(&mut TestEnv),
    nouns: &[&str],
    reference_nouns: &[&str],
) {
    let mut env = TestEnv::new(name);
    spoil(&mut env);
    let out = env.try_create(&[]);
    assert_error_ref(&out, nouns, reference_nouns);
    assert_clean(&env, env.id());
}

/// For a rule runc 1.1.5 does not keep: true, saying so, when the suite
/// runs against a reference runtime.
fn reference_accepts(what: &str) -> bool {
    skip_on_reference_because(&format!("runc 1.1.5 accepts {what}"))
}

// ---------------------------------------------------------------------------
// ids
// ---------------------------------------------------------------------------

#[test]
fn invalid_ids_are_rejected() {
    let env = TestEnv::new("invalid_ids");
    for id in ["a/b", "..", ".", "x y", "../escape"] {
        let out = create_as(&env, id);
        assert_error_ref(&out, &["id", id], &["id"]);
        assert_clean(&env, id);
        assert!(
            !env.dir.join("escape").exists(),
            "id {id:?} escaped the root"
        );
    }
    let out = create_as(&env, "");
    assert_error(&out, &["id"]);
    assert_clean(&env, "");
}

#[test]
fn commands_reject_path_traversal_ids() {
    // A real container in root A; a second runtime with root B must not be
    // able to reach it through "../root/<id>".
    let mut env = TestEnv::new("traversal");
    env.bundle.set_script("sleep 30");
    env.create();
    let pid = env.rt.pid(env.id());
    let other = Runtime::new(&env.dir.join("other"));
    fs::create_dir_all(other.root()).unwrap();
    let sneaky = format!("../../root/{}", env.id());
    for args in [
        vec!["state", sneaky.as_str()],
        vec!["start", sneaky.as_str()],
        vec!["kill", sneaky.as_str(), "KILL"],
        vec!["delete", "--force", sneaky.as_str()],
        vec!["delete", "--force", ".."],
        vec!["delete", "--force", "."],
    ] {
        let out = other.cmd(&args);
        assert!(
            !out.status.success(),
            "{args:?} should fail: {}",
            describe(&out)
        );
        assert!(
            !stderr(&out).trim().is_empty(),
            "{args:?}: no error message"
        );
    }
    assert_eq!(env.rt.status(env.id()), "created");
    assert!(process_alive(pid));
    assert!(other.root().is_dir(), "root B was removed");
    assert!(
        env.rt.root().join(env.id()).is_dir(),
        "state of A was removed"
    );
}

#[test]
fn duplicate_id_fails_and_leaves_first_container_alone() {
    let mut env = TestEnv::new("dup_id");
    env.bundle.set_script("echo ran >> /out");
    env.create();
    let st = env.rt.state(env.id());
    let pid = st["pid"].as_i64().unwrap() as i32;

    let out = env.try_create(&[]);
    assert_error_ref(&out, &[env.id()], &["exists"]);
    let st2 = env.rt.state(env.id());
    assert_eq!(st2["status"], "created");
    assert_eq!(st2["pid"], json!(pid));
    assert_eq!(st2["created"], st["created"]);
    assert!(process_alive(pid));

    // And the first one still works.
    env.rt.start(env.id());
    env.rt
        .wait_status(env.id(), "stopped", std::time::Duration::from_secs(10));
    assert_eq!(env.bundle.read_rootfs_file("out").as_deref(), Some("ran\n"));
    env.rt.run_ok(&["delete", env.id()]);
    assert_clean(&env, env.id());
}

// ---------------------------------------------------------------------------
// bundle problems
// ---------------------------------------------------------------------------

#[test]
fn missing_bundle_dir_fails() {
    let env = TestEnv::new("missing_bundle");
    let missing = env.dir.join("no-such-bundle");
    let out = env
        .rt
        .cmd(&["create", "--bundle", missing.to_str().unwrap(), env.id()]);
    assert_error(&out, &[missing.to_str().unwrap(), "bundle"]);
    assert_clean(&env, env.id());
}

#[test]
fn missing_config_json_fails() {
    bundle_fails_with(
        "missing_config",
        |env| fs::remove_file(env.bundle.config_path()).unwrap(),
        &["config.json"],
        &[],
    );
}

#[test]
fn missing_rootfs_fails() {
    bundle_fails_with(
        "missing_rootfs",
        |env| fs::remove_dir_all(env.bundle.rootfs()).unwrap(),
        &["rootfs"],
        &[],
    );
}

#[test]
fn truncated_config_json_fails() {
    bundle_fails_with(
        "truncated_config",
        |env| {
            let full = serde_json::to_string_pretty(env.bundle.config()).unwrap();
            env.bundle.write_raw(&full[..full.len() / 2]);
        },
        &["config.json"],
        // runc only says "unexpected EOF".
        &["EOF"],
    );
}

#[test]
fn non_json_config_fails() {
    bundle_fails_with(
        "garbage_config",
        |env| env.bundle.write_raw("this is not json\n"),
        &["config.json"],
        // runc: "invalid character 'h' in literal true (expecting 'r')".
        &["character"],
    );
}

#[test]
fn wrong_type_in_field_names_the_field() {
    create_fails_with(
        "wrong_type_args",
        |c| c["process"]["args"] = json!(5),
        &["process.args", "args"],
    );
    create_fails_with(
        "wrong_type_uid",
        |c| c["process"]["user"]["uid"] = json!("x"),
        &["process.user.uid", "uid"],
    );
}

#[test]
fn missing_process_fails() {
    create_fails_with(
        "missing_process",
        |c| {
            c.as_object_mut().unwrap().remove("process");
        },
        &["process"],
    );
}

#[test]
fn empty_args_fails() {
    create_fails_with(
        "empty_args",
        |c| c["process"]["args"] = json!([]),
        &["args", "process.args"],
    );
}

#[test]
fn relative_cwd_fails() {
    create_fails_with(
        "relative_cwd",
        |c| c["process"]["cwd"] = json!("relative/dir"),
        &["cwd", "process.cwd", "relative/dir"],
    );
}

#[test]
fn unknown_namespace_type_fails() {
    create_fails_with(
        "unknown_ns",
        |c| push_namespace(c, "nosuchns"),
        &["nosuchns"],
    );
}

#[test]
fn unknown_filesystem_type_fails_at_create() {
    create_fails_with(
        "unknown_fstype",
        |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt",
                "type": "nosuchfs",
                "source": "none"
            }))
        },
        &["nosuchfs", "/mnt"],
    );
}

#[test]
fn missing_bind_mount_source_fails_at_create() {
    create_fails_with(
        "missing_bind_src",
        |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt",
                "type": "bind",
                "source": "/nonexistent-bind-source",
                "options": ["rbind"]
            }))
        },
        &["/nonexistent-bind-source", "/mnt"],
    );
}

// ---------------------------------------------------------------------------
// the container's executable
// ---------------------------------------------------------------------------

#[test]
fn missing_executable_fails_at_create() {
    create_fails_with(
        "missing_exe",
        |c| c["process"]["args"] = json!(["/nonexistent"]),
        &["/nonexistent"],
    );
}

#[test]
fn executable_not_in_path_fails_at_create() {
    create_fails_with(
        "exe_not_in_path",
        |c| c["process"]["args"] = json!(["nosuchcmd", "arg"]),
        &["nosuchcmd"],
    );
}

#[test]
fn non_executable_file_fails_at_create() {
    // /etc/passwd exists in the test rootfs but is not executable.
    create_fails_with(
        "non_executable",
        |c| c["process"]["args"] = json!(["/etc/passwd"]),
        &["/etc/passwd"],
    );
}

#[test]
fn run_with_missing_executable_fails_and_leaves_nothing() {
    let mut env = TestEnv::new("run_missing_exe");
    env.bundle.set_args(&["/nonexistent"]);
    let out = env.run(&[]);
    assert_error(&out, &["/nonexistent"]);
    assert_clean(&env, env.id());

    let out = env.run(&["-d"]);
    assert_error(&out, &["/nonexistent"]);
    assert_clean(&env, env.id());
}

/// `--systemd-cgroup` (containerd's `SystemdCgroup = true`, Docker's and
/// Podman's systemd cgroup driver) on a host where systemd is not running:
/// one clear line that says so, and no container, as runc ("systemd not
/// running on this host, cannot use systemd cgroups manager").
#[test]
fn systemd_cgroup_without_systemd_fails_clearly_and_leaves_nothing() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: systemd runs on this host (the systemd VM pass tests the driver)");
        return;
    }
    let env = TestEnv::new("systemd_cgroup");
    for cmd in ["create", "run"] {
        let out = env.rt.cmd(&[
            "--systemd-cgroup",
            cmd,
            "--bundle",
            env.bundle.path_str(),
            env.id(),
        ]);
        assert_error(&out, &["systemd"]);
        assert!(
            stderr(&out).contains("not running"),
            "{cmd}: the message should say systemd is not running: {}",
            describe(&out)
        );
        assert_clean(&env, env.id());
    }
}

// ---------------------------------------------------------------------------
// logging of errors
// ---------------------------------------------------------------------------

#[test]
fn log_file_gets_the_same_error_message() {
    let env = TestEnv::with_log("log_same_error");
    fs::remove_file(env.bundle.config_path()).unwrap();
    let out = env.try_create(&[]);
    assert_error(&out, &["config.json"]);
    let entries = parse_json_log(&env.rt.log_contents());
    let errors: Vec<&Value> = entries.iter().filter(|e| e["level"] == "error").collect();
    assert!(
        !errors.is_empty(),
        "no error entry in log: {}",
        env.rt.log_contents()
    );
    let msg = errors.last().unwrap()["msg"].as_str().unwrap_or("");
    assert!(mentions(msg, "config.json"), "log msg {msg:?}");
    let line = stderr(&out);
    let line = line.lines().rfind(|l| !l.trim().is_empty()).unwrap();
    assert!(
        line.contains(msg),
        "stderr {line:?} and log msg {msg:?} differ"
    );
    assert_clean(&env, env.id());
}

/// The one line of `out`'s stderr, checked to be logrus' text form with a
/// current time and level `error`; returns its message.
fn logrus_error_msg(out: &Output) -> String {
    let err = stderr(out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "one line expected: {}", describe(out));
    let fields = logrus_fields(lines[0]);
    let keys: Vec<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(keys, ["time", "level", "msg"], "{}", describe(out));
    let t = parse_rfc3339(&fields[0].1)
        .unwrap_or_else(|| panic!("time is not RFC 3339: {}", describe(out)));
    assert!(
        (t - now_unix()).abs() < 60,
        "time is not now: {}",
        describe(out)
    );
    assert_eq!(fields[1].1, "error", "{}", describe(out));
    assert!(
        lines[0].starts_with("time=\"") && lines[0].contains(" level=error msg="),
        "{}",
        describe(out)
    );
    fields[2].1.clone()
}

#[test]
fn errors_on_stderr_are_logrus_text_lines_like_runcs() {
    let env = TestEnv::new("err_logrus_text");
    let out = env.rt.cmd(&["state", "no-such-container"]);
    assert!(!out.status.success());
    let msg = logrus_error_msg(&out);
    assert!(mentions(&msg, "not exist"), "{}", describe(&out));
    // A failed create, and the same with the format named.
    fs::remove_file(env.bundle.config_path()).unwrap();
    let out = env.try_create(&[]);
    assert!(
        mentions(&logrus_error_msg(&out), "config.json"),
        "{}",
        describe(&out)
    );
    let mut c = env
        .rt
        .command(&["--log-format", "text", "state", "no-such-container"]);
    let out = c.output().unwrap();
    assert!(
        mentions(&logrus_error_msg(&out), "not exist"),
        "{}",
        describe(&out)
    );
    assert_clean(&env, env.id());
}

#[test]
fn json_log_format_without_a_log_file_prints_json_errors_on_stderr() {
    let env = TestEnv::new("err_json_stderr");
    let out = env
        .rt
        .command(&["--log-format", "json", "state", "no-such-container"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "{}", describe(&out));
    let v: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(&out)));
    assert_eq!(v["level"], "error", "{}", describe(&out));
    assert!(
        mentions(v["msg"].as_str().unwrap_or(""), "not exist"),
        "{v}"
    );
    let t = parse_rfc3339(v["time"].as_str().unwrap_or("")).expect("time");
    assert!((t - now_unix()).abs() < 60, "{v}");
}

#[test]
fn with_a_log_file_stderr_gets_the_bare_message_and_the_file_the_line() {
    let env = TestEnv::new("err_log_file_text");
    let log = env.dir.join("text.log");
    let out = env
        .rt
        .command(&["--log", log.to_str().unwrap(), "state", "no-such-container"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = fs::read_to_string(&log).unwrap();
    let line = text
        .lines()
        .rfind(|l| l.contains("level=error"))
        .unwrap_or_else(|| panic!("no error line in the log file: {text:?}"));
    let fields = logrus_fields(line);
    let msg = &fields.iter().find(|(k, _)| k == "msg").expect("msg").1;
    assert_eq!(stderr(&out).trim_end(), msg.as_str(), "{}", describe(&out));
}

// ---------------------------------------------------------------------------
// commands on a container that does not exist
// ---------------------------------------------------------------------------

#[test]
fn commands_on_nonexistent_container_fail() {
    let env = TestEnv::new("nonexistent");
    let id = env.id().to_string();
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
    ] {
        let out = env.rt.cmd(&args);
        assert_error(&out, &[&id, "not exist", "does not exist"]);
    }
    assert_clean(&env, &id);
}

#[test]
fn commands_on_deleted_container_fail() {
    let mut env = TestEnv::new("deleted");
    env.bundle.set_script("sleep 30");
    env.create();
    env.rt.run_ok(&["delete", env.id()]);
    let id = env.id().to_string();
    for args in [
        vec!["state", id.as_str()],
        vec!["start", id.as_str()],
        vec!["kill", id.as_str(), "KILL"],
        vec!["delete", id.as_str()],
    ] {
        let out = env.rt.cmd(&args);
        assert_error(&out, &[&id, "not exist", "does not exist"]);
    }
    assert_clean(&env, &id);
}

// ---------------------------------------------------------------------------
// values the runtime-spec forbids ("Valid values": the runtime MUST
// generate an error); each is refused at create, naming the field
// ---------------------------------------------------------------------------

#[test]
fn relative_hook_path_is_refused_at_create() {
    // config.md "POSIX-platform Hooks": path MUST be absolute.
    // runc 1.1.5 only fails to run it.
    create_fails_with_ref(
        "hook_relative_path",
        |c| c["hooks"] = json!({"prestart": [{"path": "bin/true"}]}),
        &["hooks.prestart[0].path"],
        &["hook"],
    );
}

#[test]
fn hook_timeout_of_zero_or_less_is_refused_at_create() {
    // config.md: timeout, if set, MUST be greater than zero.
    if reference_accepts("a hook timeout <= 0") {
        return;
    }
    for (name, t) in [("hook_timeout_zero", 0), ("hook_timeout_negative", -1)] {
        create_fails_with(
            name,
            |c| {
                c["hooks"] = json!({
                    "createRuntime": [{"path": "/bin/true"}],
                    "poststop": [{"path": "/bin/true"}, {"path": "/bin/true", "timeout": t}]
                })
            },
            &["hooks.poststop[1].timeout"],
        );
    }
}

#[test]
fn empty_annotation_key_is_refused_at_create() {
    // config.md "Annotations": keys MUST NOT be an empty string.
    if reference_accepts("an empty annotation key") {
        return;
    }
    create_fails_with(
        "annotation_empty_key",
        |c| c["annotations"] = json!({"org.example.ok": "1", "": "x"}),
        &["annotations"],
    );
}

#[test]
fn mount_uid_mappings_without_gid_mappings_are_refused_at_create() {
    // config.md "POSIX-platform Mounts": uidMappings MUST be specified
    // along with gidMappings, and the reverse. The container has a user
    // namespace, whose mappings must not stand in for the missing one.
    if reference_accepts("mount uidMappings (it has no idmapped mounts)") {
        return;
    }
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    for (name, given, missing) in [
        ("mount_uidmap_only", "uidMappings", "gidMappings"),
        ("mount_gidmap_only", "gidMappings", "uidMappings"),
    ] {
        let map = map.clone();
        create_fails_with(
            name,
            |c| {
                push_namespace(c, "user");
                c["linux"]["uidMappings"] = map.clone();
                c["linux"]["gidMappings"] = map.clone();
                c["mounts"].as_array_mut().unwrap().push(json!({
                    "destination": "/root",
                    "type": "bind",
                    "source": "/tmp",
                    "options": ["rbind", "idmap"],
                    given: map
                }))
            },
            &[&format!("mounts[7].{missing}")],
        );
    }
}

/// `create_fails_with` for a config whose `linux.seccomp` is `profile`.
fn seccomp_fails_with(name: &str, profile: Value, nouns: &[&str]) {
    create_fails_with(name, |c| c["linux"]["seccomp"] = profile, nouns);
}

#[test]
fn seccomp_errno_ret_on_an_action_without_errno_is_refused_at_create() {
    // config-linux.md "Seccomp": errnoRet / defaultErrnoRet with an action
    // that does not take an errno: "the runtime MUST print an error and
    // fail". crun refuses it too; runc 1.1.5 ignores the value.
    if reference_accepts("errnoRet on an action that takes none (and ignores it)") {
        return;
    }
    seccomp_fails_with(
        "seccomp_errno_ret_allow",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["getpid"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}
            ]
        }),
        &["linux.seccomp.syscalls[1].errnoRet"],
    );
    seccomp_fails_with(
        "seccomp_default_errno_ret_allow",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "defaultErrnoRet": 1}),
        &["linux.seccomp.defaultErrnoRet"],
    );
}

#[test]
fn seccomp_rule_with_no_names_is_refused_at_create() {
    // config-linux.md: names MUST contain at least one entry.
    if reference_accepts("a rule with no names") {
        return;
    }
    seccomp_fails_with(
        "seccomp_empty_names",
        json!({
            "defaultAction": "SCMP_ACT_ALLOW",
            "syscalls": [{"names": [], "action": "SCMP_ACT_ERRNO"}]
        }),
        &["linux.seccomp.syscalls[0].names"],
    );
}

#[test]
fn seccomp_listener_metadata_without_listener_path_is_refused_at_create() {
    // config-linux.md: listenerMetadata MUST NOT be set if listenerPath is
    // not set.
    if reference_accepts("listenerMetadata without listenerPath") {
        return;
    }
    seccomp_fails_with(
        "seccomp_metadata_no_path",
        json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerMetadata": "x"}),
        &["linux.seccomp.listenerMetadata"],
    );
}

#[test]
fn block_io_weight_device_without_weights_is_refused_at_create() {
    // config-linux.md "Block IO": weightDevice entries MUST set at least
    // one of weight and leafWeight.
    if reference_accepts("a weightDevice entry without weights") {
        return;
    }
    create_fails_with(
        "blkio_weight_device_empty",
        |c| {
            c["linux"]["resources"]["blockIO"] = json!({"weightDevice": [{"major": 8, "minor": 0}]})
        },
        &["linux.resources.blockIO.weightDevice[0]"],
    );
}

#[test]
fn rdma_entry_without_limits_is_refused_at_create() {
    // config-linux.md "RDMA": at least one of hcaHandles and hcaObjects
    // MUST be set.
    // runc 1.1.5 writes the bare name and fails on the kernel's answer.
    create_fails_with_ref(
        "rdma_empty",
        |c| c["linux"]["resources"]["rdma"] = json!({"mlx5_1": {}}),
        &["linux.resources.rdma.mlx5_1"],
        &["rdma"],
    );
}

#[test]
fn intel_rdt_is_refused_at_create() {
    // rrun has no resctrl support; config-linux.md "IntelRdt" asks for the
    // container to be placed in a resctrl group, and ignoring it would
    // leave the container unconfined (runtime.md "create": every property
    // MUST be applied or create MUST fail).
    if reference_accepts("intelRdt (it implements it)") {
        return;
    }
    create_fails_with(
        "intel_rdt",
        |c| c["linux"]["intelRdt"] = json!({"closID": "guaranteed_group"}),
        &["linux.intelRdt"],
    );
}

// ---------------------------------------------------------------------------
// required fields and values the runtime-spec says must error (rules rrun
// already kept; pinned here so SPEC.md can name a test)
// ---------------------------------------------------------------------------

#[test]
fn commands_without_an_id_fail() {
    // runtime.md "Operations": state, start, kill and delete MUST generate
    // an error when the ID is not provided.
    let env = TestEnv::new("no_id");
    for cmd in ["state", "start", "kill", "delete"] {
        let out = env.rt.cmd(&[cmd]);
        assert!(!out.status.success(), "{cmd}: {}", describe(&out));
        assert!(
            ["id", "ids", "container-id"]
                .iter()
                .any(|w| mentions(&stderr(&out), w))
                || (is_reference_runtime() && mentions(&stderr(&out), "argument")),
            "{cmd}: the error should say the id is missing: {}",
            describe(&out)
        );
    }
    assert_clean(&env, env.id());
}

#[test]
fn missing_root_or_root_path_fails() {
    // config.md: root is REQUIRED on Linux, and root.path is REQUIRED.
    create_fails_with(
        "missing_root",
        |c| {
            c.as_object_mut().unwrap().remove("root");
        },
        &["root"],
    );
    create_fails_with(
        "missing_root_path",
        |c| c["root"] = json!({"readonly": false}),
        &["root", "path"],
    );
}

#[test]
fn mount_without_destination_fails() {
    // config.md: mounts[].destination is REQUIRED.
    create_fails_with(
        "mount_no_destination",
        |c| {
            c["mounts"]
                .as_array_mut()
                .unwrap()
                .push(json!({"type": "tmpfs", "source": "tmpfs"}))
        },
        &["mounts[7]", "destination"],
    );
}

#[test]
fn rlimit_without_type_unknown_or_twice_fails() {
    // config.md: rlimits[].type is REQUIRED; a type with no kernel
    // interface and a type listed twice MUST generate an error.
    for (name, rlimits, nouns) in [
        (
            "rlimit_no_type",
            json!([{"soft": 1, "hard": 1}]),
            &["process.rlimits[0]", "type"][..],
        ),
        (
            "rlimit_unknown",
            json!([{"type": "RLIMIT_NOSUCH", "soft": 1, "hard": 1}]),
            &["RLIMIT_NOSUCH"][..],
        ),
        (
            "rlimit_twice",
            json!([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                   {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}]),
            &["process.rlimits[1]"][..],
        ),
    ] {
        create_fails_with_ref(
            name,
            |c| c["process"]["rlimits"] = rlimits,
            nouns,
            &["rlimit"],
        );
    }
}

#[test]
fn relative_paths_in_linux_fields_fail() {
    // config-linux.md: namespaces[].path, devices[].path, maskedPaths and
    // readonlyPaths MUST be absolute.
    create_fails_with_ref(
        "ns_relative_path",
        |c| c["linux"]["namespaces"][1] = json!({"type": "network", "path": "proc/1/ns/net"}),
        &["linux.namespaces[1].path"],
        &["namespace path"],
    );
    if reference_accepts("relative devices[].path, maskedPaths and readonlyPaths") {
        return;
    }
    create_fails_with(
        "device_relative_path",
        |c| {
            c["linux"]["devices"] =
                json!([{"type": "c", "path": "dev/null2", "major": 1, "minor": 3}])
        },
        &["linux.devices[0].path"],
    );
    for field in ["maskedPaths", "readonlyPaths"] {
        create_fails_with(
            &format!("relative_{field}"),
            |c| c["linux"][field] = json!(["proc/kcore"]),
            &[&format!("linux.{field}")],
        );
    }
}

#[test]
fn duplicate_namespace_type_fails() {
    // config-linux.md: a namespace type listed twice MUST generate an error.
    create_fails_with_ref(
        "ns_twice",
        |c| push_namespace(c, "pid"),
        &["linux.namespaces[5]"],
        &["duplicated ns"],
    );
}

#[test]
fn config_without_a_mount_namespace_is_refused() {
    // config-linux.md: an unlisted type is shared with the runtime. Without
    // a mount namespace the container would pivot_root the caller's own
    // mount namespace: rrun refuses (host safety; runc shares it).
    create_fails_with_ref(
        "no_mount_ns",
        |c| drop_namespace(c, "mount"),
        &["linux.namespaces", "mount namespace"],
        &["MNT namespace"],
    );
}

#[test]
fn annotation_value_that_is_not_a_string_fails() {
    // config.md: annotation keys and values MUST be strings.
    create_fails_with(
        "annotation_number",
        |c| c["annotations"] = json!({"org.example.n": 5}),
        &["annotations.org.example.n", "annotations"],
    );
}

#[test]
fn unknown_properties_and_a_console_size_without_terminal_are_no_error() {
    // config.md: unknown properties (and unknown annotations) MUST be
    // ignored; consoleSize MUST be ignored unless terminal is true.
    let mut env = TestEnv::new("unknown_props");
    env.bundle.edit(|c| {
        c["someFutureField"] = json!({"x": 1});
        c["process"]["someFutureField"] = json!(true);
        c["linux"]["someFutureField"] = json!([1, 2]);
        c["annotations"] = json!({"org.example.unknown": "kept"});
        c["process"]["consoleSize"] = json!({"height": 0, "width": 0});
    });
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_clean(&env, env.id());
}

#[test]
fn idmap_without_any_mappings_is_refused_at_create() {
    // config.md "idmap": no uidMappings/gidMappings on the mount and no
    // user namespace for the container: an error MUST be returned.
    if reference_accepts("the idmap option (it has no idmapped mounts)") {
        return;
    }
    create_fails_with(
        "idmap_no_mappings",
        |c| {
            c["mounts"].as_array_mut().unwrap().push(json!({
                "destination": "/mnt",
                "type": "bind",
                "source": "/tmp",
                "options": ["rbind", "idmap"]
            }))
        },
        &["mounts[7]"],
    );
}
