//! An NFS-backed PersistentVolume for tests: an export of the test
//! machine itself (`nfs-kernel-server`), mounted over NFSv4 on 127.0.0.1.
//! This development host's kernel has no NFS (the tests skip, saying so);
//! the systemd VM has, and `RRUN_TEST_NFS=1` makes a missing NFS a failure
//! there instead of a skip.

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
pub struct NfsVolume {
    /// The server's directory.
    pub export: PathBuf,
    /// Where the export is mounted over NFSv4 (the PersistentVolume).
    pub mount: PathBuf,
    exports_file: PathBuf,
    /// One volume at a time in a test process: a second export coming or
    /// going (`exportfs -ra`) while a container reads the first gave
    /// "Stale file handle" and "Permission denied" on the first.
    _one: std::sync::MutexGuard<'static, ()>,
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
    pub fn new(dir: &Path) -> Option<NfsVolume> {
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

    fn try_new(dir: &Path) -> Result<NfsVolume, String> {
        static ONE: std::sync::Mutex<()> = std::sync::Mutex::new(());
        let one = ONE.lock().unwrap_or_else(|e| e.into_inner());
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
            _one: one,
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
