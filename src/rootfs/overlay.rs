//! A root file system stacked from read-only image layers with overlayfs,
//! under a writable layer of the container's own.
//!
//! Configured by annotations (OCI's extension point) or the equivalent
//! `create`/`run` flags:
//! - `rrun.rootfs.layers`: the layer directories, top first, separated by
//!   `:`; relative paths are relative to the bundle (`--layer DIR`,
//!   repeatable, top first).
//! - `rrun.rootfs.upper`: a directory that keeps the writable layer across
//!   containers (`--upper DIR`); rrun uses `DIR/diff` as the layer and
//!   `DIR/work` as overlayfs's work directory. Without it the writable layer
//!   lives in the container's state directory and goes with `delete`.
//!
//! The overlay is mounted in the container's own mount namespace, onto
//! `root.path`, so the host never sees it and nothing is left to unmount.

use std::ffi::CString;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::sys::mount_api as mapi;

pub const LAYERS_ANNOTATION: &str = "rrun.rootfs.layers";
pub const UPPER_ANNOTATION: &str = "rrun.rootfs.upper";

/// The overlay root of a container.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct Layers {
    /// Read-only layers, top first (absolute).
    pub lower: Vec<PathBuf>,
    /// The writable layer and overlayfs's work dir; None for a read-only root.
    pub upper: Option<PathBuf>,
    pub work: Option<PathBuf>,
    /// Whether the writable layer outlives the container.
    pub persistent: bool,
}

/// Works out the layers from flags (which win) or annotations. Creates the
/// writable layer's directories. `None` when the bundle is a plain rootfs.
pub fn plan(
    bundle: &Path,
    annotations: Option<&std::collections::HashMap<String, String>>,
    flag_layers: &[PathBuf],
    flag_upper: Option<&Path>,
    state_dir: &Path,
    readonly: bool,
) -> Result<Option<Layers>> {
    let from_annotation: Vec<PathBuf> = annotations
        .and_then(|a| a.get(LAYERS_ANNOTATION))
        .map(|v| {
            v.split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect()
        })
        .unwrap_or_default();
    let lower = if flag_layers.is_empty() {
        from_annotation
    } else {
        flag_layers.to_vec()
    };
    if lower.is_empty() {
        if flag_upper.is_some() {
            bail!("--upper needs image layers (--layer or the {LAYERS_ANNOTATION} annotation)");
        }
        return Ok(None);
    }
    let mut abs = Vec::new();
    for l in lower {
        let p = if l.is_absolute() { l } else { bundle.join(l) };
        let p = std::fs::canonicalize(&p)
            .with_context(|| format!("layer {}: cannot open", p.display()))?;
        if !p.is_dir() {
            bail!("layer {}: not a directory", p.display());
        }
        let s = p.as_os_str().as_bytes();
        if s.contains(&b':') || s.contains(&b',') || s.contains(&b'\\') {
            bail!(
                "layer {}: overlayfs cannot take paths with ':', ',' or '\\'",
                p.display()
            );
        }
        abs.push(p);
    }
    let upper_dir = flag_upper
        .map(Path::to_path_buf)
        .or_else(|| {
            annotations
                .and_then(|a| a.get(UPPER_ANNOTATION))
                .map(PathBuf::from)
        })
        .map(|u| if u.is_absolute() { u } else { bundle.join(u) });
    if readonly {
        return Ok(Some(Layers {
            lower: abs,
            upper: None,
            work: None,
            persistent: upper_dir.is_some(),
        }));
    }
    let (base, persistent) = match upper_dir {
        Some(d) => (d, true),
        None => (state_dir.join("layer"), false),
    };
    let upper = base.join("diff");
    let work = base.join("work");
    for d in [&upper, &work] {
        std::fs::create_dir_all(d)
            .with_context(|| format!("writable layer {}: cannot create", d.display()))?;
    }
    Ok(Some(Layers {
        lower: abs,
        upper: Some(upper),
        work: Some(work),
        persistent,
    }))
}

fn cpath(p: &Path) -> Result<CString> {
    Ok(CString::new(p.as_os_str().as_bytes())?)
}

/// Child side: mounts the overlay onto the rootfs directory `target`.
pub fn mount(layers: &Layers, target: &std::ffi::CStr) -> Result<()> {
    let fs = mapi::fsopen(c"overlay")
        .context("overlayfs is not available (is the overlay module loaded?)")?;
    let fail = |what: &str, e: std::io::Error| {
        let log = mapi::fs_context_log(fs.as_fd());
        anyhow::anyhow!(
            "overlay {what}: {}",
            if log.is_empty() { e.to_string() } else { log }
        )
    };
    let lower: Vec<String> = layers
        .lower
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let lower = CString::new(lower.join(":"))?;
    mapi::fsconfig_set(fs.as_fd(), c"lowerdir", Some(&lower)).map_err(|e| fail("lowerdir", e))?;
    if let (Some(u), Some(w)) = (&layers.upper, &layers.work) {
        mapi::fsconfig_set(fs.as_fd(), c"upperdir", Some(&cpath(u)?))
            .map_err(|e| fail("upperdir", e))?;
        mapi::fsconfig_set(fs.as_fd(), c"workdir", Some(&cpath(w)?))
            .map_err(|e| fail("workdir", e))?;
    }
    mapi::fsconfig_create(fs.as_fd()).map_err(|e| fail("create", e))?;
    let attrs = if layers.upper.is_none() {
        mapi::MOUNT_ATTR_RDONLY
    } else {
        0
    };
    let m: OwnedFd = mapi::fsmount(fs.as_fd(), attrs).map_err(|e| fail("mount", e))?;
    let t = nix::fcntl::open(
        target,
        nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
        nix::sys::stat::Mode::empty(),
    )
    .context("root.path: cannot open")?;
    mapi::move_mount_fd(m.as_fd(), t.as_fd()).context("overlay: cannot attach onto root.path")?;
    Ok(())
}
