//! Fuzz regressions, run by plain `cargo test`.
//!
//! Every seed of the fuzz corpora (`tests/fuzz/seeds/`) and every input the
//! fuzzers crashed on goes through the same checks the fuzz targets run
//! (`tests/fuzz/src/lib.rs`, included here): no panic, no broken invariant
//! of the compiled seccomp program, and either acceptance (seeds) or one
//! clean error message (crash inputs).

#[path = "fuzz/src/lib.rs"]
mod harness;

use std::collections::BTreeSet;
use std::path::Path;

/// The input is refused with a message (not accepted, not a panic).
fn assert_clean_error(r: Result<(), String>) -> String {
    let msg = r.expect_err("input was accepted");
    assert!(!msg.trim().is_empty(), "empty error message");
    msg
}

/// One test per seed, and a list to check that no seed file goes untested.
macro_rules! seeds {
    ($list:ident, $check:path, $dir:literal, $($name:ident => $file:literal,)*) => {
        const $list: &[&str] = &[$($file),*];
        $(
            #[test]
            fn $name() {
                let data = include_bytes!(concat!("fuzz/seeds/", $dir, "/", $file));
                if let Err(e) = $check(data) {
                    panic!("seed {}/{} refused: {e}", $dir, $file);
                }
            }
        )*
    };
}

seeds! {
    CONFIG_SEEDS, harness::check_config, "config",
    config_seed_example => "example.json",
    config_seed_rrun_spec => "rrun-spec.json",
    config_seed_rrun_spec_rootless => "rrun-spec-rootless.json",
    config_seed_runc_spec => "runc-spec.json",
    config_seed_runc_spec_rootless => "runc-spec-rootless.json",
    config_seed_resources_seccomp => "resources-seccomp.json",
}

seeds! {
    SECCOMP_SEEDS, harness::check_seccomp, "seccomp",
    seccomp_seed_small => "small.json",
    seccomp_seed_all_ops => "all-ops.json",
    seccomp_seed_notify => "notify.json",
    seccomp_seed_podman_default => "podman-default-amd64.json",
}

#[test]
fn every_seed_has_a_test() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/seeds");
    for (dir, listed) in [("config", CONFIG_SEEDS), ("seccomp", SECCOMP_SEEDS)] {
        let on_disk: BTreeSet<String> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        let listed: BTreeSet<String> = listed.iter().map(|s| s.to_string()).collect();
        assert_eq!(
            on_disk, listed,
            "tests/fuzz/seeds/{dir}: add the new seed to seeds!"
        );
    }
}

/// The Podman profile is big enough to make a real program; check the
/// compiler keeps it well under the kernel's limit and runs the arch check
/// first.
#[test]
fn podman_profile_compiles_to_a_valid_program() {
    let data = include_bytes!("fuzz/seeds/seccomp/podman-default-amd64.json");
    let s: oci_spec::runtime::LinuxSeccomp = serde_json::from_slice(data).unwrap();
    let c = rrun::security::seccomp::compile(&s).unwrap();
    harness::check_program(&c.program);
    assert!(c.program.len() < harness::MAX_INSNS);
    // x86_64 read() is allowed, an unnamed call gets ENOSYS (38), and an
    // unlisted architecture is killed.
    let args = [0u64; 6];
    assert_eq!(harness::run(&c.program, 0xc000_003e, 0, &args), 0x7fff_0000);
    assert_eq!(
        harness::run(&c.program, 0xc000_003e, 0x3fff_fff0, &args),
        0x0005_0000 | 38
    );
    assert_eq!(harness::run(&c.program, 0xc000_00b7, 0, &args), 0x8000_0000);
}

#[test]
fn truncated_config_is_a_clean_error() {
    let msg = assert_clean_error(harness::check_config(br#"{"ociVersion": "1.0"#));
    assert!(msg.contains("EOF"), "{msg}");
}

#[test]
fn bad_seccomp_arg_index_is_a_clean_error() {
    let msg = assert_clean_error(harness::check_seccomp(
        br#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["read"],"action":"SCMP_ACT_ERRNO","args":[{"index":6,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
    ));
    assert!(msg.contains("index 6"), "{msg}");
}

/// Found by the config target's cgroup-file invariant (`cargo fuzz tmin`
/// output): a hugepage size with a `/` made plan_v1 and plan_v2 plan a
/// write to `hugetlb..//x.limit_in_bytes` / `hugetlb..//x.max`, a path
/// below (or, with `..`, outside) the cgroup directory. It must be refused.
#[test]
fn hugepage_size_with_slash_is_refused() {
    let msg = assert_clean_error(harness::check_config(
        br#"{"linux":{"resources":{"hugepageLimits":[{"pageSize":".//x","":1}]}}}"#,
    ));
    assert!(msg.contains("hugepageLimits"), "{msg}");
}
