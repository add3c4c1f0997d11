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

use common::*;
use serde_json::json;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A file system id no other export of this test run has (each export of
/// a non-device file system needs its own).
fn fsid() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    1000 + (std::process::id() % 1000) * 16 + NEXT.fetch_add(1, Ordering::SeqCst)
}

/// An export of a fresh directory, mounted at another; unmounted and
/// unexported when dropped.
struct NfsVolume {
    export: PathBuf,
    mount: PathBuf,
    exports_file: PathBuf,
}

fn sh(cmd: &str) -> Result<String, String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{cmd}`: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

impl NfsVolume {
    /// None (with the reason printed) where this machine cannot serve NFS.
    fn new(dir: &TestDir) -> Option<NfsVolume> {
        let why = match Self::try_new(dir) {
            Ok(v) => return Some(v),
            Err(e) => e,
        };
        assert!(
            std::env::var_os("RRUN_TEST_NFS").is_none(),
            "RRUN_TEST_NFS is set but NFS could not be set up: {why}"
        );
        eprintln!("skipped: no NFS here ({why}); the systemd VM runs this");
        None
    }

    fn try_new(dir: &TestDir) -> Result<NfsVolume, String> {
        // One export change at a time: exportfs -ra of one test must not
        // race another's.
        static EXPORTS: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let _one = EXPORTS.lock().unwrap_or_else(|e| e.into_inner());
        if !fs::read_to_string("/proc/filesystems")
            .unwrap_or_default()
            .contains("nfs")
        {
            // The client module loads on first mount where it exists.
            let _ = sh("modprobe nfs; modprobe nfsd");
        }
        sh("command -v exportfs")?;
        let export = dir.join("export");
        let mount = dir.join("pv");
        fs::create_dir_all(&export).unwrap();
        fs::create_dir_all(&mount).unwrap();
        let exports_file = PathBuf::from(format!(
            "/etc/exports.d/rrun-test-{}.exports",
            std::process::id()
        ));
        fs::create_dir_all("/etc/exports.d").map_err(|e| e.to_string())?;
        // fsid: tmpfs and overlay exports need one; no_root_squash: the
        // container writes as root, as a PV's pod may.
        fs::write(
            &exports_file,
            format!(
                "{} 127.0.0.1(rw,sync,no_subtree_check,no_root_squash,fsid={})\n",
                export.display(),
                fsid()
            ),
        )
        .map_err(|e| e.to_string())?;
        let v = NfsVolume {
            export,
            mount,
            exports_file,
        };
        sh("systemctl start nfs-server 2>/dev/null || true; exportfs -ra")?;
        // A server that has just started may not answer for the export yet.
        let mount = format!(
            "mount -t nfs4 -o vers=4.2,proto=tcp 127.0.0.1:{} {}",
            v.export.display(),
            v.mount.display()
        );
        let mut last = Ok(String::new());
        for _ in 0..20 {
            last = sh(&mount);
            if last.is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(500));
        }
        last?;
        Ok(v)
    }
}

impl Drop for NfsVolume {
    fn drop(&mut self) {
        let _ = sh(&format!("umount -l {}", self.mount.display()));
        let _ = fs::remove_file(&self.exports_file);
        let _ = sh("exportfs -ra");
    }
}

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
    let Some(pv) = NfsVolume::new(&env.dir) else {
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
