//! The storage scenario of a Kubernetes node: a CSI driver (NetApp Trident,
//! say) mounts an NFS-backed PersistentVolume on the node, and the runtime
//! bind-mounts it into the pod's container. Here: an NFS export of the test
//! machine itself (`nfs-kernel-server`), mounted over NFSv4 on 127.0.0.1,
//! bound into an rrun container read-write and read-only; what the
//! container writes is read back on the server's own directory.
//!
//! This development host's kernel has no NFS: the tests run in the systemd
//! VM (`RRUN_VM_INIT=systemd tests/vm/run.sh`), where `RRUN_TEST_NFS=1`
//! makes a missing NFS a failure instead of a skip.

mod common;

use common::nfs::NfsVolume;
use common::*;
use serde_json::json;
use std::fs;
use std::path::Path;

/// Adds a bind mount of `src` at `dest` with `options`.
fn bind(env: &mut TestEnv, src: &Path, dest: &str, options: &[&str]) {
    let m = json!({"destination": dest, "type": "bind",
        "source": src.to_str().unwrap(), "options": options});
    env.bundle
        .edit(|c| c["mounts"].as_array_mut().unwrap().push(m));
}

/// One export, bound twice into one container: read-write at /data and
/// read-only at /data-ro (two exports set up by parallel tests raced in
/// the server's export table).
#[test]
fn nfs_volume_bound_read_write_and_read_only_behaves_as_each_bind_says() {
    let mut env = TestEnv::new("nfs_pv");
    let Some(pv) = NfsVolume::new(env.dir.path()) else {
        return;
    };
    fs::write(pv.export.join("from-server"), "hello from the server\n").unwrap();
    bind(&mut env, &pv.mount, "/data", &["rbind", "rw"]);
    bind(&mut env, &pv.mount, "/data-ro", &["rbind", "ro"]);
    env.bundle.set_script(
        "cat /data/from-server && echo written-in-the-container > /data/from-pod && \
         grep ' /data ' /proc/self/mountinfo && cat /data-ro/from-pod && \
         if echo x > /data-ro/new; then echo WROTE; else echo refused; fi",
    );
    let out = env.run(&[]);
    assert!(out.status.success(), "{}", describe(&out));
    let o = stdout(&out);
    assert!(o.contains("hello from the server"), "{}", describe(&out));
    assert!(
        o.contains(" nfs4 "),
        "the container's /data is the NFS mount: {o}"
    );
    assert!(
        o.matches("written-in-the-container").count() == 1 && o.contains("refused"),
        "the read-only bind reads the volume and refuses writes: {}",
        describe(&out)
    );
    assert_eq!(
        fs::read_to_string(pv.export.join("from-pod")).unwrap(),
        "written-in-the-container\n",
        "the server's directory has what the container wrote"
    );
    assert!(
        !pv.export.join("new").exists(),
        "nothing came through the ro bind"
    );
    env.assert_nothing_left();
}
