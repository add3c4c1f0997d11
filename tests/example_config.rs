//! config.json.example is the documented, complete example bundle config:
//! it must parse and run as shipped (the README walks through it).

mod common;

use common::*;

fn example() -> serde_json::Value {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.json.example"))
        .expect("config.json.example is in the repository");
    serde_json::from_str(&text).expect("config.json.example is valid JSON")
}

#[test]
fn example_config_runs_as_shipped() {
    if is_reference_runtime() {
        // runc 1.1 lacks parts of the 1.2 spec the example uses.
        return;
    }
    let mut env = TestEnv::new("example");
    let cfg = example();
    env.bundle.edit(|v| *v = cfg.clone());
    env.bundle.write();
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 0, "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.contains("hello from example"), "{text}");
    assert!(text.contains("groups=10"), "additionalGids: {text}");
    // The user namespace maps container root to host uid 100000. (In a
    // user namespace devices are bound from the host, keeping its mode.)
    assert!(
        text.split_whitespace()
            .collect::<Vec<_>>()
            .windows(3)
            .any(|w| w == ["0", "100000", "65536"]),
        "uid_map: {text}"
    );
    assert!(text.lines().any(|l| l == "/tmp"), "cwd: {text}");
    env.assert_nothing_left();
}

#[test]
fn example_config_applies_what_it_documents() {
    if is_reference_runtime() {
        return;
    }
    let mut env = TestEnv::new("example-attrs");
    let mut cfg = example();
    cfg["process"]["args"] = serde_json::json!([
        "sh",
        "-c",
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmni /proc/sys/kernel/domainname; \
         ulimit -n; ulimit -u; cat /proc/self/oom_score_adj; stat -c '%t:%T' /dev/fuse; \
         grep NoNewPrivs /proc/self/status; touch /rootfs-is-ro 2>/dev/null || echo ro-root; umask"
    ]);
    env.bundle.edit(|v| *v = cfg.clone());
    env.bundle.write();
    let out = env.run(&[]);
    assert_eq!(exit_code(&out), 0, "{}", describe(&out));
    let lines: Vec<String> = stdout(&out).lines().map(|l| l.trim().to_string()).collect();
    let expect = [
        "1",
        "2048",
        "example.test",
        "1024",
        "512",
        "100",
        "a:e5",
        "NoNewPrivs:\t1",
        "ro-root",
        "0022",
    ];
    assert_eq!(lines.len(), expect.len(), "{lines:?}");
    for (got, want) in lines.iter().zip(expect) {
        assert_eq!(got.replace([' ', '\t'], ""), want.replace([' ', '\t'], ""));
    }
    env.assert_nothing_left();
}
