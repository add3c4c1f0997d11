//! `rrun bundle --image DIR[:TAG] BUNDLE`: an OCI image layout turned into a
//! bundle that `rrun run` starts the way Docker would start the image: each
//! layer unpacked into its own directory (stacked with overlayfs at run
//! time), and a config.json from the image's config.

use std::path::Path;

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};

use super::commit::{IMAGE_LAYOUT_ANNOTATION, IMAGE_MANIFEST_ANNOTATION};
use super::layout::{self, Layout};
use super::unpack;
use crate::rootfs::overlay::LAYERS_ANNOTATION;

/// Looks a user or group name up in the image's layers (top first).
fn lookup(layers: &[std::path::PathBuf], file: &str, name: &str) -> Option<(u32, Option<u32>)> {
    for l in layers.iter().rev() {
        let Ok(text) = std::fs::read_to_string(l.join(file)) else {
            continue;
        };
        for line in text.lines() {
            let f: Vec<&str> = line.split(':').collect();
            if f.len() >= 3 && f[0] == name {
                return Some((f[2].parse().ok()?, f.get(3).and_then(|g| g.parse().ok())));
            }
        }
        // The top-most layer that has the file decides: lower copies are hidden.
        return None;
    }
    None
}

/// The image's `User` (`uid`, `uid:gid`, `name`, `name:group`) as numbers.
fn resolve_user(user: &str, layers: &[std::path::PathBuf]) -> Result<(u32, u32)> {
    if user.is_empty() {
        return Ok((0, 0));
    }
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let (uid, primary) = match u.parse::<u32>() {
        Ok(n) => (n, None),
        Err(_) => lookup(layers, "etc/passwd", u)
            .with_context(|| format!("image User {user:?}: no user {u:?} in /etc/passwd"))?,
    };
    let gid = match g {
        Some(g) => match g.parse::<u32>() {
            Ok(n) => n,
            Err(_) => lookup(layers, "etc/group", g)
                .map(|x| x.0)
                .with_context(|| format!("image User {user:?}: no group {g:?}"))?,
        },
        None => primary.unwrap_or(0),
    };
    Ok((uid, gid))
}

pub fn create(image: &str, bundle: &Path) -> Result<()> {
    let (dir, tag) = layout::split_ref(image);
    let lay = Layout::open(&dir)?;
    let (manifest_digest, manifest) = lay.manifest(tag.as_deref())?;
    let config_digest = manifest["config"]["digest"]
        .as_str()
        .context("manifest has no config")?;
    let config: Value =
        serde_json::from_slice(&lay.read_blob(config_digest)?).context("image config")?;
    if bundle.join("config.json").exists() {
        bail!("{}: already has a config.json", bundle.display());
    }
    std::fs::create_dir_all(bundle)
        .with_context(|| format!("{}: cannot create", bundle.display()))?;
    let layers_dir = bundle.join("layers");
    std::fs::create_dir(&layers_dir).with_context(|| {
        format!(
            "{}: cannot create (it must not exist)",
            layers_dir.display()
        )
    })?;
    let result = unpack_all(&lay, &manifest, &layers_dir)
        .and_then(|dirs| write_config(&dir, &manifest_digest, &config, bundle, &dirs));
    if result.is_err() {
        // Nothing half-made stays behind.
        let _ = std::fs::remove_dir_all(&layers_dir);
        let _ = std::fs::remove_dir(bundle.join("rootfs"));
    }
    result
}

fn unpack_all(
    lay: &Layout,
    manifest: &Value,
    layers_dir: &Path,
) -> Result<Vec<std::path::PathBuf>> {
    let mut dirs = Vec::new();
    for (i, l) in manifest["layers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let digest = l["digest"].as_str().context("layer without digest")?;
        let media = l["mediaType"].as_str().unwrap_or("");
        if media.contains("zstd") {
            bail!("layer {digest}: zstd layers are not supported");
        }
        let dest = layers_dir.join(format!("{i}"));
        std::fs::create_dir(&dest)?;
        let blob = lay.open_verified(digest)?;
        unpack::unpack(blob, &dest).with_context(|| format!("layer {digest}"))?;
        dirs.push(dest);
    }
    if dirs.is_empty() {
        bail!("image has no layers");
    }
    Ok(dirs)
}

fn write_config(
    layout_dir: &Path,
    manifest_digest: &str,
    image: &Value,
    bundle: &Path,
    layers: &[std::path::PathBuf],
) -> Result<()> {
    let cfg = &image["config"];
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|s| s.as_str().map(str::to_string))
            .collect()
    };
    let mut args = strings(&cfg["Entrypoint"]);
    args.extend(strings(&cfg["Cmd"]));
    if args.is_empty() {
        args.push("sh".into());
    }
    let mut env = strings(&cfg["Env"]);
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.push("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".into());
    }
    let (uid, gid) = resolve_user(cfg["User"].as_str().unwrap_or(""), layers)?;
    let mut spec = crate::spec::default_spec(false);
    spec["process"]["terminal"] = json!(false);
    spec["process"]["args"] = json!(args);
    spec["process"]["env"] = json!(env);
    spec["process"]["cwd"] = json!(cfg["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .unwrap_or("/"));
    spec["process"]["user"] = json!({"uid": uid, "gid": gid});
    spec["root"] = json!({"path": "rootfs", "readonly": false});
    let top_first: Vec<String> = layers
        .iter()
        .rev()
        .map(|p| {
            p.strip_prefix(bundle)
                .unwrap_or(p)
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let mut annotations = serde_json::Map::new();
    if let Some(a) = cfg["Labels"].as_object() {
        // An image must not steer rrun itself (e.g. where the writable layer goes).
        annotations.extend(
            a.iter()
                .filter(|(k, _)| !k.starts_with("rrun."))
                .map(|(k, v)| (k.clone(), v.clone())),
        );
    }
    annotations.insert(LAYERS_ANNOTATION.into(), json!(top_first.join(":")));
    annotations.insert(
        IMAGE_LAYOUT_ANNOTATION.into(),
        json!(std::fs::canonicalize(layout_dir)?.to_string_lossy()),
    );
    annotations.insert(IMAGE_MANIFEST_ANNOTATION.into(), json!(manifest_digest));
    spec["annotations"] = Value::Object(annotations);
    std::fs::create_dir_all(bundle.join("rootfs"))?;
    let text = serde_json::to_string_pretty(&spec)? + "\n";
    std::fs::write(bundle.join("config.json"), text).context("config.json: cannot write")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_users_need_no_passwd() {
        assert_eq!(resolve_user("1000:1000", &[]).unwrap(), (1000, 1000));
        assert_eq!(resolve_user("", &[]).unwrap(), (0, 0));
        assert!(resolve_user("nobody", &[]).is_err());
    }
}
