//! Images: overlay roots stacked from read-only layer directories with a
//! writable layer of the container's own (`--layer`, `--upper`, or the
//! `rrun.rootfs.layers` / `rrun.rootfs.upper` annotations), bundles made from
//! OCI image layouts (`rrun bundle --image DIR[:TAG] BUNDLE`), hostile layer
//! tarballs that must never write outside the bundle, and `rrun commit` of a
//! container's writable layer into a tarball, a layer directory or a new
//! image in the layout.
//!
//! The images are built here, in Rust: a busybox root packed into an OCI
//! layout (oci-layout, index.json with `org.opencontainers.image.ref.name`
//! tags, sha256 blobs: gzip layers, config, manifest), plus small layers that
//! add files, whiteouts (`.wh.NAME`) and opaque directories (`.wh..wh..opq`).
//! Hostile entries (`..`, device nodes) are written as raw tar headers,
//! since the `tar` crate refuses to build them.
//!
//! runc has none of this: every test is rrun-only and is skipped when the
//! suite runs against a reference runtime.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

use common::*;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

const T: Duration = Duration::from_secs(10);

const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";
const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const REF_NAME: &str = "org.opencontainers.image.ref.name";

fn skip() -> bool {
    skip_on_reference_because("image layers, `bundle` and `commit` are rrun-only features")
}

// ---------------------------------------------------------------------------
// Hashing, trees, mounts
// ---------------------------------------------------------------------------

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The value of an xattr of `p` itself (not following a symlink), if set.
fn xattr(p: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buf = [0u8; 256];
    // SAFETY: NUL-terminated strings and a buffer of the given length.
    let n = unsafe {
        libc::lgetxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    (n >= 0).then(|| buf[..n as usize].to_vec())
}

/// Every entry below `root` (and `root` itself as "."), recursively and
/// without following symlinks, mapped to a summary of its type, content
/// (sha256, link target or device number), mode, owner and opaque xattr.
fn tree_sums(root: &Path) -> BTreeMap<String, String> {
    fn summary(p: &Path) -> String {
        let md = fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
        let ft = md.file_type();
        let what = if ft.is_symlink() {
            format!("link->{}", fs::read_link(p).unwrap().display())
        } else if ft.is_file() {
            format!("file:{}", sha256_hex(&fs::read(p).unwrap()))
        } else if ft.is_dir() {
            let opaque = xattr(p, "trusted.overlay.opaque");
            format!("dir opaque={opaque:?}")
        } else {
            format!("special rdev={}", md.rdev())
        };
        format!(
            "{what} mode={:o} owner={}:{}",
            md.mode(),
            md.uid(),
            md.gid()
        )
    }
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let mut entries: Vec<_> = fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
            .flatten()
            .collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_string_lossy().into_owned();
            out.insert(rel, summary(&p));
            if e.file_type().unwrap().is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    out.insert(".".to_string(), summary(root));
    walk(root, root, &mut out);
    out
}

/// The entries that differ between two [`tree_sums`].
fn tree_diff(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<String> {
    let mut diffs = Vec::new();
    for (k, v) in before {
        match after.get(k) {
            None => diffs.push(format!("removed {k} ({v})")),
            Some(w) if w != v => diffs.push(format!("changed {k}: {v} -> {w}")),
            _ => {}
        }
    }
    for (k, v) in after {
        if !before.contains_key(k) {
            diffs.push(format!("added {k} ({v})"));
        }
    }
    diffs
}

/// Panics listing the entries that differ between two [`tree_sums`].
fn assert_same_tree(
    before: &BTreeMap<String, String>,
    after: &BTreeMap<String, String>,
    what: &str,
) {
    let diffs = tree_diff(before, after);
    assert!(diffs.is_empty(), "{what} changed:\n{}", diffs.join("\n"));
}

/// Mount lines of the harness's (the host's) mount namespace that are
/// overlay mounts mentioning `p`.
fn overlay_mounts_mentioning(p: &Path) -> Vec<String> {
    let p = p.to_str().unwrap();
    fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .map(unescape_mountinfo)
        .filter(|l| l.contains("overlay") && l.contains(p))
        .collect()
}

/// Files named `name` anywhere below `dir` (not following symlinks).
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(rd) = fs::read_dir(dir) else {
        return found;
    };
    for e in rd.flatten() {
        let p = e.path();
        if e.file_name().to_str() == Some(name) {
            found.push(p.clone());
        }
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            found.extend(find_named(&p, name));
        }
    }
    found
}

// ---------------------------------------------------------------------------
// Busybox trees and tarballs
// ---------------------------------------------------------------------------

fn applets() -> &'static [String] {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS.get_or_init(|| {
        let out = Command::new("/bin/busybox")
            .arg("--list")
            .output()
            .expect("run /bin/busybox --list");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.trim().to_string())
            .filter(|l| !l.is_empty() && !l.contains('/') && l != "busybox")
            .collect()
    })
}

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
                      nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                      user:x:1000:1000:user:/tmp:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nuser:x:1000:\n";

/// A busybox root file system at `root` (like the harness's bundle rootfs).
fn write_busybox_tree(root: &Path) {
    for d in ["bin", "etc", "proc", "sys", "dev", "tmp", "root"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).expect("copy /bin/busybox");
    for a in applets() {
        let _ = symlink("busybox", root.join("bin").join(a));
    }
    fs::write(root.join("etc/passwd"), PASSWD).unwrap();
    fs::write(root.join("etc/group"), GROUP).unwrap();
}

/// An uncompressed tar stream written entry by entry with raw headers, so
/// that hostile entries (`..`, device nodes) can be built too.
struct Tar(tar::Builder<Vec<u8>>);

impl Tar {
    fn new() -> Tar {
        Tar(tar::Builder::new(Vec::new()))
    }

    fn header(kind: tar::EntryType, path: &str, link: &str, size: u64, mode: u32) -> tar::Header {
        assert!(
            path.len() < 100 && link.len() < 100,
            "tar names are limited to 99 bytes here: {path:?} -> {link:?}"
        );
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(size);
        let old = h.as_old_mut();
        old.name = [0; 100];
        old.name[..path.len()].copy_from_slice(path.as_bytes());
        old.linkname = [0; 100];
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        h
    }

    fn push(&mut self, mut h: tar::Header, data: &[u8]) -> &mut Self {
        h.set_cksum();
        self.0.append(&h, data).unwrap();
        self
    }

    fn dir(&mut self, path: &str) -> &mut Self {
        let h = Tar::header(tar::EntryType::Directory, path, "", 0, 0o755);
        self.push(h, b"")
    }

    fn file_mode(&mut self, path: &str, data: &[u8], mode: u32) -> &mut Self {
        let h = Tar::header(tar::EntryType::Regular, path, "", data.len() as u64, mode);
        self.push(h, data)
    }

    fn file(&mut self, path: &str, content: &str) -> &mut Self {
        self.file_mode(path, content.as_bytes(), 0o644)
    }

    fn symlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = Tar::header(tar::EntryType::Symlink, path, target, 0, 0o777);
        self.push(h, b"")
    }

    fn hardlink(&mut self, path: &str, target: &str) -> &mut Self {
        let h = Tar::header(tar::EntryType::Link, path, target, 0, 0o644);
        self.push(h, b"")
    }

    fn device(&mut self, kind: tar::EntryType, path: &str, major: u32, minor: u32) -> &mut Self {
        let mut h = Tar::header(kind, path, "", 0, 0o666);
        h.set_device_major(major).unwrap();
        h.set_device_minor(minor).unwrap();
        self.push(h, b"")
    }

    fn finish(self) -> Vec<u8> {
        self.0.into_inner().unwrap()
    }
}

/// The tar of a directory tree (entries relative to `root`, sorted).
fn tar_of_dir(root: &Path) -> Vec<u8> {
    fn walk(root: &Path, dir: &Path, t: &mut Tar) {
        let mut entries: Vec<_> = fs::read_dir(dir).unwrap().flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
            let md = fs::symlink_metadata(&p).unwrap();
            let mode = md.mode() & 0o7777;
            if md.file_type().is_symlink() {
                let target = fs::read_link(&p).unwrap();
                t.symlink(&rel, target.to_str().unwrap());
            } else if md.is_dir() {
                let h = Tar::header(tar::EntryType::Directory, &rel, "", 0, mode);
                t.push(h, b"");
                walk(root, &p, t);
            } else {
                t.file_mode(&rel, &fs::read(&p).unwrap(), mode);
            }
        }
    }
    let mut t = Tar::new();
    walk(root, root, &mut t);
    t.finish()
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .read_to_end(&mut out)
        .expect("gunzip");
    out
}

/// A layer blob: the gzip tarball and the sha256 of the uncompressed tar.
struct LayerBlob {
    gz: Vec<u8>,
    diff_id: String,
}

fn layer_blob(tar: &[u8]) -> LayerBlob {
    LayerBlob {
        gz: gzip(tar),
        diff_id: format!("sha256:{}", sha256_hex(tar)),
    }
}

/// The busybox root as a layer, built once per test process.
fn busybox_layer() -> &'static LayerBlob {
    static BASE: OnceLock<LayerBlob> = OnceLock::new();
    BASE.get_or_init(|| {
        let d = TestDir::new("busybox-layer");
        write_busybox_tree(d.path());
        layer_blob(&tar_of_dir(d.path()))
    })
}

/// One entry of a tar stream, as a reader sees it.
#[derive(Debug)]
struct Entry {
    path: String,
    kind: tar::EntryType,
    data: Vec<u8>,
    link: Option<String>,
}

fn tar_entries(bytes: &[u8]) -> Vec<Entry> {
    let mut a = tar::Archive::new(bytes);
    let mut out = Vec::new();
    for e in a.entries().expect("a tar stream") {
        let mut e = e.expect("a tar entry");
        let path = e.path().unwrap().to_string_lossy().into_owned();
        let path = path
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        let kind = e.header().entry_type();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.push(Entry {
            path,
            kind,
            data,
            link,
        });
    }
    out
}

fn entry<'a>(entries: &'a [Entry], path: &str) -> Option<&'a Entry> {
    entries.iter().find(|e| e.path == path)
}

fn entry_paths(entries: &[Entry]) -> Vec<&str> {
    entries.iter().map(|e| e.path.as_str()).collect()
}

// ---------------------------------------------------------------------------
// OCI image layouts
// ---------------------------------------------------------------------------

/// An OCI image layout being written by the test.
struct OciLayout {
    dir: PathBuf,
    manifests: Vec<Value>,
}

impl OciLayout {
    fn create(dir: &Path) -> OciLayout {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let l = OciLayout {
            dir: dir.to_path_buf(),
            manifests: Vec::new(),
        };
        l.write_index();
        l
    }

    /// `DIR:TAG`, as `bundle --image` and `commit --image` take it.
    fn at(&self, tag: &str) -> String {
        format!("{}:{tag}", self.dir.display())
    }

    fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").expect("a sha256 digest");
        self.dir.join("blobs/sha256").join(hex)
    }

    /// Stores a blob; returns its descriptor (without mediaType).
    fn put(&self, data: &[u8]) -> Value {
        let digest = format!("sha256:{}", sha256_hex(data));
        fs::write(self.blob_path(&digest), data).unwrap();
        json!({ "digest": digest, "size": data.len() })
    }

    fn read_json(&self, digest: &str) -> Value {
        serde_json::from_slice(&fs::read(self.blob_path(digest)).unwrap()).unwrap()
    }

    fn write_index(&self) {
        let index = json!({
            "schemaVersion": 2,
            "mediaType": INDEX,
            "manifests": self.manifests,
        });
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
    }

    /// Adds a descriptor to index.json as it is (for hostile descriptors).
    fn push_descriptor(&mut self, desc: Value) {
        self.manifests.push(desc);
        self.write_index();
    }

    /// Stores `manifest` and lists it in index.json; returns its digest.
    fn add_manifest(&mut self, tag: Option<&str>, manifest: &Value) -> String {
        let mut d = self.put(&serde_json::to_vec(manifest).unwrap());
        d["mediaType"] = json!(MANIFEST);
        if let Some(t) = tag {
            d["annotations"] = json!({ REF_NAME: t });
        }
        let digest = d["digest"].as_str().unwrap().to_string();
        self.push_descriptor(d);
        digest
    }

    /// A manifest (not yet stored) for `layers` (bottom first) and the
    /// image config section `cfg`; the config blob is stored.
    fn manifest_for(&self, layers: &[&LayerBlob], cfg: Value) -> Value {
        let config = json!({
            "created": "2024-01-01T00:00:00Z",
            "architecture": "amd64",
            "os": "linux",
            "config": cfg,
            "rootfs": {
                "type": "layers",
                "diff_ids": layers.iter().map(|l| l.diff_id.clone()).collect::<Vec<_>>(),
            },
            "history": layers.iter().map(|_| json!({"created_by": "rrun tests"})).collect::<Vec<_>>(),
        });
        let mut c = self.put(&serde_json::to_vec(&config).unwrap());
        c["mediaType"] = json!(CONFIG);
        let ls: Vec<Value> = layers
            .iter()
            .map(|l| {
                let mut d = self.put(&l.gz);
                d["mediaType"] = json!(LAYER_GZIP);
                d
            })
            .collect();
        json!({
            "schemaVersion": 2,
            "mediaType": MANIFEST,
            "config": c,
            "layers": ls,
        })
    }

    /// Adds an image of `layers` (bottom first) with config section `cfg`.
    fn add_image(&mut self, tag: Option<&str>, layers: &[&LayerBlob], cfg: Value) -> String {
        let m = self.manifest_for(layers, cfg);
        self.add_manifest(tag, &m)
    }

    /// The manifest and config of `tag`, read back from disk.
    fn image(&self, tag: &str) -> (Value, Value) {
        let index: Value =
            serde_json::from_slice(&fs::read(self.dir.join("index.json")).unwrap()).unwrap();
        let desc = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["annotations"][REF_NAME] == tag)
            .unwrap_or_else(|| panic!("no tag {tag} in index.json: {index}"))
            .clone();
        let manifest = self.read_json(desc["digest"].as_str().unwrap());
        let config = self.read_json(manifest["config"]["digest"].as_str().unwrap());
        (manifest, config)
    }
}

/// The image config section of a busybox image running `cmd`.
fn cmd_config(cmd: &[&str]) -> Value {
    json!({ "Cmd": cmd })
}

/// A layout at `<dir>/layout` with one image tagged `tag`: the busybox
/// layer, then `extra` (uncompressed tars, bottom first), config `cfg`.
fn busybox_image(dir: &Path, tag: &str, extra: &[Vec<u8>], cfg: Value) -> OciLayout {
    let mut l = OciLayout::create(&dir.join("layout"));
    let blobs: Vec<LayerBlob> = extra.iter().map(|t| layer_blob(t)).collect();
    let mut layers = vec![busybox_layer()];
    layers.extend(blobs.iter());
    l.add_image(Some(tag), &layers, cfg);
    l
}

// ---------------------------------------------------------------------------
// Environments
// ---------------------------------------------------------------------------

/// A test env whose bundle dir is empty, for `rrun bundle` to fill.
fn image_env(name: &str) -> TestEnv {
    let env = TestEnv::new(name);
    fs::remove_file(env.bundle.config_path()).unwrap();
    fs::remove_dir_all(env.bundle.rootfs()).unwrap();
    env
}

fn bundle_cmd(env: &TestEnv, image: &str) -> Output {
    env.rt
        .cmd(&["bundle", "--image", image, env.bundle.path_str()])
}

fn bundle_ok(env: &TestEnv, image: &str) {
    let out = bundle_cmd(env, image);
    assert!(
        out.status.success(),
        "rrun bundle --image {image} failed: {}",
        describe(&out)
    );
}

fn read_config(env: &TestEnv) -> Value {
    serde_json::from_slice(&fs::read(env.bundle.config_path()).unwrap()).unwrap()
}

fn write_config(env: &TestEnv, c: &Value) {
    fs::write(env.bundle.config_path(), c.to_string()).unwrap();
}

/// A test env whose bundle rootfs is an empty mount point, with two layer
/// dirs: `base` (busybox, /data/{base,both,gone}.txt, /etc/motd, /d/{a,b})
/// and `top` (/data/{top,both}.txt). With `in_bundle` the layers are
/// `<bundle>/l/{base,top}`, else `<dir>/layers/{base,top}`.
struct Layered {
    env: TestEnv,
    base: PathBuf,
    top: PathBuf,
}

fn layered(name: &str, in_bundle: bool) -> Layered {
    let env = TestEnv::new(name);
    // Everything the container sees must come from the layers.
    fs::remove_dir_all(env.bundle.rootfs()).unwrap();
    fs::create_dir(env.bundle.rootfs()).unwrap();
    let parent = if in_bundle {
        env.bundle.path().join("l")
    } else {
        env.dir.join("layers")
    };
    let base = parent.join("base");
    let top = parent.join("top");
    write_busybox_tree(&base);
    fs::create_dir_all(base.join("data")).unwrap();
    fs::write(base.join("data/base.txt"), "base\n").unwrap();
    fs::write(base.join("data/both.txt"), "from base\n").unwrap();
    fs::write(base.join("data/gone.txt"), "gone\n").unwrap();
    fs::write(base.join("etc/motd"), "old motd\n").unwrap();
    fs::create_dir_all(base.join("d")).unwrap();
    fs::write(base.join("d/a"), "a\n").unwrap();
    fs::write(base.join("d/b"), "b\n").unwrap();
    fs::create_dir_all(top.join("data")).unwrap();
    fs::write(top.join("data/top.txt"), "top\n").unwrap();
    fs::write(top.join("data/both.txt"), "from top\n").unwrap();
    Layered { env, base, top }
}

fn layer_args(layers: &[&Path]) -> Vec<String> {
    layers
        .iter()
        .flat_map(|l| ["--layer".to_string(), l.to_str().unwrap().to_string()])
        .collect()
}

/// `<cmd> --bundle <bundle> <extra..> <id>` (cmd: create or run).
fn lifecycle(env: &TestEnv, cmd: &str, id: &str, extra: &[String]) -> Output {
    let mut args = vec![cmd, "--bundle", env.bundle.path_str()];
    args.extend(extra.iter().map(String::as_str));
    args.push(id);
    env.rt.cmd(&args)
}

/// Creates and starts container `id` running `sleep 1000` (the bundle's
/// args must be that) with `extra` create flags.
fn start_sleeper(env: &TestEnv, id: &str, extra: &[String]) {
    let out = lifecycle(env, "create", id, extra);
    assert!(out.status.success(), "create {id}: {}", describe(&out));
    env.rt.start(id);
    env.rt.wait_status(id, "running", T);
}

/// `exec <id> sh -c <script>`, asserting exit 0; returns stdout.
fn sh(env: &TestEnv, id: &str, script: &str) -> String {
    let out = env.rt.cmd(&["exec", id, "sh", "-c", script]);
    assert!(
        out.status.success(),
        "exec in {id} failed: {}",
        describe(&out)
    );
    stdout(&out)
}

fn kill_and_wait_stopped(env: &TestEnv, id: &str) {
    env.rt.run_ok(&["kill", id, "KILL"]);
    env.rt.wait_status(id, "stopped", T);
}

// ---------------------------------------------------------------------------
// Overlay roots from layer directories
// ---------------------------------------------------------------------------

#[test]
fn layers_show_their_union_top_first_and_writes_go_to_the_containers_own_layer() {
    if skip() {
        return;
    }
    let mut l = layered("layers-union", false);
    let (base0, top0) = (tree_sums(&l.base), tree_sums(&l.top));
    l.env.bundle.set_args(&["sleep", "1000"]);
    let id = l.env.id.clone();
    start_sleeper(&l.env, &id, &layer_args(&[&l.top, &l.base]));
    let out = sh(
        &l.env,
        &id,
        "cat /data/base.txt /data/top.txt /data/both.txt; \
         echo written > /data/new.txt; echo changed > /data/base.txt; \
         echo also > /data/top.txt; rm /data/gone.txt; \
         cat /data/new.txt /data/base.txt /data/top.txt; \
         test -e /data/gone.txt || echo gone-is-gone",
    );
    assert_eq!(
        out,
        "base\ntop\nfrom top\nwritten\nchanged\nalso\ngone-is-gone\n"
    );
    // The writes are in the container's own writable layer (in its state
    // directory), not in the layers.
    let state_dir = l.env.rt.root().join(&id);
    let new = find_named(&state_dir, "new.txt");
    assert!(
        new.iter()
            .any(|p| fs::read_to_string(p).ok().as_deref() == Some("written\n")),
        "new.txt is not in the container's state dir {}: {new:?}",
        state_dir.display()
    );
    assert_same_tree(&base0, &tree_sums(&l.base), "the base layer");
    assert_same_tree(&top0, &tree_sums(&l.top), "the top layer");
    assert!(
        !l.env.bundle.rootfs().join("data").exists(),
        "writes leaked into the bundle's rootfs mount point"
    );
}

#[test]
fn two_containers_on_the_same_layers_each_see_only_their_own_writes() {
    if skip() {
        return;
    }
    let mut l = layered("layers-two", false);
    let (base0, top0) = (tree_sums(&l.base), tree_sums(&l.top));
    l.env.bundle.set_args(&["sleep", "1000"]);
    let (a, b) = (format!("{}-a", l.env.id), format!("{}-b", l.env.id));
    let flags = layer_args(&[&l.top, &l.base]);
    start_sleeper(&l.env, &a, &flags);
    start_sleeper(&l.env, &b, &flags);
    sh(
        &l.env,
        &a,
        "echo from-a > /data/mine; echo a > /data/both.txt",
    );
    sh(&l.env, &b, "echo from-b > /data/mine; rm /data/base.txt");
    let script = "cat /data/mine /data/both.txt; cat /data/base.txt 2>/dev/null || echo no-base";
    assert_eq!(sh(&l.env, &a, script), "from-a\na\nbase\n");
    assert_eq!(sh(&l.env, &b, script), "from-b\nfrom top\nno-base\n");
    assert_same_tree(&base0, &tree_sums(&l.base), "the base layer");
    assert_same_tree(&top0, &tree_sums(&l.top), "the top layer");
}

#[test]
fn delete_removes_the_writable_layer_and_the_host_never_sees_an_overlay_mount() {
    if skip() {
        return;
    }
    let mut l = layered("layers-delete", false);
    let (base0, top0) = (tree_sums(&l.base), tree_sums(&l.top));
    l.env.bundle.set_args(&["sleep", "1000"]);
    let id = l.env.id.clone();
    start_sleeper(&l.env, &id, &layer_args(&[&l.top, &l.base]));
    sh(&l.env, &id, "echo x > /data/new.txt; mkdir -p /var/lib/x");
    // The overlay lives in the container's mount namespace only.
    assert_eq!(
        overlay_mounts_mentioning(l.env.dir.path()),
        Vec::<String>::new(),
        "an overlay mount is visible on the host while the container runs"
    );
    let state_dir = l.env.rt.root().join(&id);
    assert!(!find_named(&state_dir, "new.txt").is_empty());
    kill_and_wait_stopped(&l.env, &id);
    l.env.rt.run_ok(&["delete", &id]);
    assert!(
        !state_dir.exists(),
        "the state dir (and its writable layer) survived delete"
    );
    assert!(find_named(l.env.dir.path(), "new.txt").is_empty());
    assert_eq!(
        overlay_mounts_mentioning(l.env.dir.path()),
        Vec::<String>::new()
    );
    l.env.assert_nothing_left();
    assert_same_tree(&base0, &tree_sums(&l.base), "the base layer");
    assert_same_tree(&top0, &tree_sums(&l.top), "the top layer");
}

#[test]
fn upper_dir_keeps_the_writable_layer_for_the_next_container() {
    if skip() {
        return;
    }
    let mut l = layered("layers-upper", false);
    let upper = l.env.dir.join("upper");
    let mut flags = layer_args(&[&l.top, &l.base]);
    flags.extend(["--upper".to_string(), upper.to_str().unwrap().to_string()]);
    l.env
        .bundle
        .set_script("echo kept > /data/kept.txt; rm /data/base.txt; echo first");
    let id = l.env.id.clone();
    let out = lifecycle(&l.env, "run", &id, &flags);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "first\n");
    l.env.assert_nothing_left();
    assert_eq!(
        fs::read_to_string(upper.join("diff/data/kept.txt")).ok(),
        Some("kept\n".to_string()),
        "--upper DIR must keep the writable layer at DIR/diff after delete"
    );
    assert!(upper.join("work").is_dir());

    l.env
        .bundle
        .set_script("cat /data/kept.txt; test -e /data/base.txt || echo base-removed");
    let second = format!("{id}-2");
    let out = lifecycle(&l.env, "run", &second, &flags);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "kept\nbase-removed\n");
    assert_nothing_left(&l.env.rt, &second, &l.env.bundle);
}

#[test]
fn readonly_root_on_layers_refuses_writes() {
    if skip() {
        return;
    }
    let mut l = layered("layers-ro", false);
    let (base0, top0) = (tree_sums(&l.base), tree_sums(&l.top));
    l.env.bundle.edit(|c| c["root"]["readonly"] = json!(true));
    l.env.bundle.set_script(
        "cat /data/both.txt; (echo x > /data/new.txt) 2>&1; echo rc=$?; \
         mkdir /newdir 2>&1; echo rc=$?",
    );
    let id = l.env.id.clone();
    let out = lifecycle(&l.env, "run", &id, &layer_args(&[&l.top, &l.base]));
    assert!(out.status.success(), "{}", describe(&out));
    let text = stdout(&out);
    assert!(text.starts_with("from top\n"), "{text}");
    assert!(text.contains("Read-only file system"), "{text}");
    assert!(!text.contains("rc=0"), "a write succeeded: {text}");
    l.env.assert_nothing_left();
    assert_same_tree(&base0, &tree_sums(&l.base), "the base layer");
    assert_same_tree(&top0, &tree_sums(&l.top), "the top layer");
}

#[test]
fn a_plain_rootfs_bundle_still_writes_straight_into_its_rootfs() {
    if skip() {
        return;
    }
    let mut env = TestEnv::new("layers-plain");
    env.bundle
        .set_script("echo plain > /plain.txt; cat /plain.txt; head -1 /etc/passwd");
    assert_eq!(run_ok(&env), "plain\nroot:x:0:0:root:/root:/bin/sh\n");
    assert_eq!(
        env.bundle.read_rootfs_file("plain.txt").as_deref(),
        Some("plain\n")
    );
    env.assert_nothing_left();
}

#[test]
fn layer_annotations_work_like_the_flags_relative_to_the_bundle() {
    if skip() {
        return;
    }
    let mut l = layered("layers-annotation", true);
    let (base0, top0) = (tree_sums(&l.base), tree_sums(&l.top));
    l.env.bundle.edit(|c| {
        c["annotations"] = json!({
            "rrun.rootfs.layers": "l/top:l/base",
            "rrun.rootfs.upper": "upper",
        })
    });
    l.env
        .bundle
        .set_script("cat /data/both.txt /data/base.txt; echo note > /data/note.txt");
    assert_eq!(run_ok(&l.env), "from top\nbase\n");
    l.env.assert_nothing_left();
    assert_eq!(
        fs::read_to_string(l.env.bundle.path().join("upper/diff/data/note.txt")).ok(),
        Some("note\n".to_string())
    );
    // Flags win over the annotation.
    l.env.bundle.set_script("cat /data/both.txt /data/note.txt");
    let id = format!("{}-flags", l.env.id);
    let out = lifecycle(&l.env, "run", &id, &layer_args(&[&l.base]));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "from base\nnote\n");
    assert_nothing_left(&l.env.rt, &id, &l.env.bundle);
    assert_same_tree(&base0, &tree_sums(&l.base), "the base layer");
    assert_same_tree(&top0, &tree_sums(&l.top), "the top layer");
}

#[test]
fn a_missing_layer_dir_fails_create_naming_it() {
    if skip() {
        return;
    }
    let l = layered("layers-missing", false);
    let missing = l.env.dir.join("layers/not-there");
    let out = lifecycle(
        &l.env,
        "create",
        &l.env.id,
        &layer_args(&[&missing, &l.base]),
    );
    assert_error(&out, &[missing.to_str().unwrap()]);
    assert!(!missing.exists());
    l.env.assert_nothing_left();
}

#[test]
fn a_layer_dir_whose_path_has_a_colon_is_refused() {
    if skip() {
        return;
    }
    let l = layered("layers-colon", false);
    let colon = l.env.dir.join("layers/a:b");
    fs::create_dir_all(&colon).unwrap();
    let out = lifecycle(&l.env, "create", &l.env.id, &layer_args(&[&colon, &l.base]));
    assert_error(&out, &["overlayfs", "layer"]);
    l.env.assert_nothing_left();
}

#[test]
fn upper_without_layers_is_refused() {
    if skip() {
        return;
    }
    let env = TestEnv::new("layers-upper-alone");
    let upper = env.dir.join("upper");
    let out = lifecycle(
        &env,
        "create",
        &env.id,
        &["--upper".to_string(), upper.to_str().unwrap().to_string()],
    );
    assert_error(&out, &["layers", "layer"]);
    assert!(!upper.exists());
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Bundles from OCI image layouts
// ---------------------------------------------------------------------------

#[test]
fn image_cmd_runs_with_its_env_and_working_dir() {
    if skip() {
        return;
    }
    let env = image_env("image-cmd");
    let mut extra = Tar::new();
    extra.dir("work").dir("work/dir");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[extra.finish()],
        json!({
            "Cmd": ["sh", "-c", "pwd; echo \"$FOO\"; echo $BAR; id -u"],
            "Env": ["PATH=/usr/bin:/bin", "FOO=foo value", "BAR=bar"],
            "WorkingDir": "/work/dir",
        }),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "/work/dir\nfoo value\nbar\n0\n");
    env.assert_nothing_left();
}

#[test]
fn image_numeric_user_sets_uid_and_gid() {
    if skip() {
        return;
    }
    let env = image_env("image-user-num");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[],
        json!({ "Cmd": ["sh", "-c", "id -u; id -g"], "User": "1000:1000" }),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "1000\n1000\n");
    env.assert_nothing_left();
}

#[test]
fn image_user_name_is_resolved_from_the_images_passwd() {
    if skip() {
        return;
    }
    let env = image_env("image-user-name");
    // The image's own nobody (not the host's 65534), in a layer above the
    // busybox one, whose /etc/passwd it replaces.
    let mut extra = Tar::new();
    extra.file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:4242:4343:nobody:/:/bin/false\n",
    );
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[extra.finish()],
        json!({ "Cmd": ["sh", "-c", "id -u; id -g"], "User": "nobody" }),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "4242\n4343\n");
    env.assert_nothing_left();
    // user:group, both names.
    let env2 = image_env("image-user-group");
    let mut l = l;
    let mut extra = Tar::new();
    extra.file(
        "etc/passwd",
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:4242:4343:nobody:/:/bin/false\n",
    );
    let extra = layer_blob(&extra.finish());
    l.add_image(
        Some("group"),
        &[busybox_layer(), &extra],
        json!({ "Cmd": ["sh", "-c", "id -u; id -g"], "User": "nobody:user" }),
    );
    bundle_ok(&env2, &l.at("group"));
    assert_eq!(run_ok(&env2), "4242\n1000\n");
    env2.assert_nothing_left();
}

#[test]
fn image_user_missing_from_the_top_most_passwd_is_an_error() {
    if skip() {
        return;
    }
    let env = image_env("image-user-shadowed");
    // The busybox layer's /etc/passwd has `user` (1000); the layer above
    // replaces /etc/passwd with one that has no `user`: the image has no
    // such user any more.
    let mut extra = Tar::new();
    extra.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[extra.finish()],
        json!({ "Cmd": ["id", "-u"], "User": "user" }),
    );
    let out = bundle_cmd(&env, &l.at("v1"));
    assert_error(&out, &["user", "passwd"]);
    assert!(!env.bundle.config_path().exists());
    assert!(!env.bundle.path().join("layers").exists());
}

#[test]
fn image_entrypoint_and_cmd_are_combined() {
    if skip() {
        return;
    }
    let env = image_env("image-entrypoint");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[],
        json!({ "Entrypoint": ["echo", "entry"], "Cmd": ["cmd1", "cmd2"] }),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "entry cmd1 cmd2\n");
    env.assert_nothing_left();
}

#[test]
fn whiteouts_in_an_upper_layer_hide_files_of_a_lower_layer() {
    if skip() {
        return;
    }
    let env = image_env("image-whiteout");
    let mut lower = Tar::new();
    lower
        .dir("data")
        .file("data/keep", "keep\n")
        .file("data/gone", "gone\n")
        .dir("data/gonedir")
        .file("data/gonedir/x", "x\n")
        .file("etc/secret", "secret\n");
    let mut upper = Tar::new();
    upper
        .file("data/.wh.gone", "")
        .file("data/.wh.gonedir", "")
        .file("etc/.wh.secret", "")
        .file("data/new", "new\n");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[lower.finish(), upper.finish()],
        cmd_config(&[
            "sh",
            "-c",
            "ls -A /data; test -e /etc/secret && echo secret-visible || echo secret-hidden",
        ]),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "keep\nnew\nsecret-hidden\n");
    env.assert_nothing_left();
}

#[test]
fn an_opaque_dir_hides_everything_the_lower_layers_had_in_it() {
    if skip() {
        return;
    }
    let env = image_env("image-opaque");
    let mut lower = Tar::new();
    lower
        .dir("opt")
        .file("opt/a", "a\n")
        .file("opt/b", "b\n")
        .dir("opt/sub")
        .file("opt/sub/c", "c\n")
        .dir("keep")
        .file("keep/k", "k\n");
    // The marker comes after the layer's own entry: it applies to the lower
    // layers only, wherever it is in the tar.
    let mut upper = Tar::new();
    upper
        .dir("opt")
        .file("opt/new", "new\n")
        .file("opt/.wh..wh..opq", "");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[lower.finish(), upper.finish()],
        cmd_config(&["sh", "-c", "ls -A /opt; ls -A /keep"]),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "new\nk\n");
    env.assert_nothing_left();
}

#[test]
fn image_labels_cannot_point_the_writable_layer_at_the_host() {
    if skip() {
        return;
    }
    let env = image_env("image-label-upper");
    let sentinel = env.dir.join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("keep"), "precious\n").unwrap();
    let sentinel0 = tree_sums(&sentinel);
    // Labels come from the image (untrusted); they become annotations.
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[],
        json!({
            "Cmd": ["sh", "-c", "echo pwned > /pwned; echo ran"],
            "Labels": {
                "org.example.harmless": "yes",
                "rrun.rootfs.upper": sentinel.to_str().unwrap(),
            },
        }),
    );
    let out = bundle_cmd(&env, &l.at("v1"));
    if out.status.success() {
        let run = env.run(&[]);
        assert!(run.status.success(), "{}", describe(&run));
        assert_eq!(stdout(&run), "ran\n");
        env.assert_nothing_left();
    } else {
        assert_error(&out, &["label", "annotation", "rrun.rootfs.upper"]);
    }
    assert_same_tree(
        &sentinel0,
        &tree_sums(&sentinel),
        "a host dir named by an image label",
    );
}

#[test]
fn a_tag_that_does_not_exist_is_an_error_naming_it() {
    if skip() {
        return;
    }
    let env = image_env("image-no-tag");
    let l = busybox_image(env.dir.path(), "v1", &[], cmd_config(&["true"]));
    let out = bundle_cmd(&env, &l.at("nosuchtag"));
    assert_error(&out, &["nosuchtag"]);
    assert!(!env.bundle.config_path().exists());
    assert!(!env.bundle.path().join("layers").exists());
    assert!(!env.bundle.rootfs().exists());
}

#[test]
fn several_manifests_and_no_tag_is_an_error_asking_for_one() {
    if skip() {
        return;
    }
    let env = image_env("image-ambiguous");
    let mut l = busybox_image(env.dir.path(), "v1", &[], cmd_config(&["echo", "v1"]));
    l.add_image(Some("v2"), &[busybox_layer()], cmd_config(&["echo", "v2"]));
    let out = bundle_cmd(&env, l.dir.to_str().unwrap());
    assert_error(&out, &["tag"]);
    assert!(!env.bundle.config_path().exists());
    assert!(!env.bundle.path().join("layers").exists());
    // Naming one works.
    bundle_ok(&env, &l.at("v2"));
    assert_eq!(run_ok(&env), "v2\n");
    env.assert_nothing_left();
}

#[test]
fn the_only_manifest_of_a_layout_needs_no_tag() {
    if skip() {
        return;
    }
    let env = image_env("image-untagged");
    let mut l = OciLayout::create(&env.dir.join("layout"));
    l.add_image(None, &[busybox_layer()], cmd_config(&["echo", "only"]));
    bundle_ok(&env, l.dir.to_str().unwrap());
    assert_eq!(run_ok(&env), "only\n");
    env.assert_nothing_left();
}

// ---------------------------------------------------------------------------
// Hostile images
// ---------------------------------------------------------------------------

/// An image env with a sentinel host dir `<dir>/sentinel` (one file in it)
/// and a layout `<dir>/layout` to add hostile images to.
struct Hostile {
    env: TestEnv,
    sentinel: PathBuf,
    layout: OciLayout,
    small: LayerBlob,
}

fn hostile(name: &str) -> Hostile {
    let env = image_env(name);
    let sentinel = env.dir.join("sentinel");
    fs::create_dir(&sentinel).unwrap();
    fs::write(sentinel.join("keep"), "precious\n").unwrap();
    let layout = OciLayout::create(&env.dir.join("layout"));
    let mut t = Tar::new();
    t.dir("etc").file("etc/hello", "hello\n");
    Hostile {
        env,
        sentinel,
        layout,
        small: layer_blob(&t.finish()),
    }
}

impl Hostile {
    /// Adds an image tagged `tag`: a small harmless layer, then `evil`.
    fn add(&mut self, tag: &str, evil: Vec<u8>) -> String {
        let evil = layer_blob(&evil);
        let small = LayerBlob {
            gz: self.small.gz.clone(),
            diff_id: self.small.diff_id.clone(),
        };
        self.layout
            .add_image(Some(tag), &[&small, &evil], cmd_config(&["true"]));
        self.layout.at(tag)
    }

    /// Everything in the test dir but the bundle (and the harness's io).
    fn outside_bundle(&self) -> BTreeMap<String, String> {
        tree_sums(self.env.dir.path())
            .into_iter()
            .filter(|(k, _)| {
                !(k == "bundle" || k.starts_with("bundle/") || k == "io" || k.starts_with("io/"))
            })
            .collect()
    }

    fn assert_bundle_empty(&self) {
        let left: Vec<String> = fs::read_dir(self.env.bundle.path())
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert!(
            left.is_empty(),
            "a failed `rrun bundle` left {left:?} in the bundle"
        );
    }

    /// `rrun bundle` of `image` must fail with one error line mentioning
    /// one of `nouns`, write nothing outside the bundle, and leave the
    /// bundle empty (its layers dir removed).
    fn assert_refused(&self, image: &str, nouns: &[&str]) {
        let sentinel0 = tree_sums(&self.sentinel);
        let outside0 = self.outside_bundle();
        let out = bundle_cmd(&self.env, image);
        assert_error(&out, nouns);
        assert_same_tree(&sentinel0, &tree_sums(&self.sentinel), "the sentinel dir");
        assert_same_tree(
            &outside0,
            &self.outside_bundle(),
            "the test dir outside the bundle",
        );
        self.assert_bundle_empty();
    }

    /// Empties the bundle dir for the next attempt.
    fn reset_bundle(&self) {
        for e in fs::read_dir(self.env.bundle.path()).unwrap().flatten() {
            let p = e.path();
            if e.file_type().unwrap().is_dir() {
                fs::remove_dir_all(&p).unwrap();
            } else {
                fs::remove_file(&p).unwrap();
            }
        }
    }
}

#[test]
fn a_layer_entry_with_dotdot_is_refused_and_writes_nothing() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-dotdot");
    let mut t = Tar::new();
    t.file("ok.txt", "ok\n").file("../escape", "escaped\n");
    let img = h.add("dotdot", t.finish());
    h.assert_refused(&img, &["layer", "escape", "entry"]);
    // From bundle/layers/N, ../../../sentinel is the sentinel dir.
    let mut t = Tar::new();
    t.file("ok.txt", "ok\n")
        .file("../../../sentinel/escape", "escaped\n");
    let img = h.add("into-sentinel", t.finish());
    h.assert_refused(&img, &["layer", "escape", "entry"]);
    let mut t = Tar::new();
    t.dir("a")
        .file("a/../../../../sentinel/escape2", "escaped\n");
    let img = h.add("inner-dotdot", t.finish());
    h.assert_refused(&img, &["layer", "escape", "entry"]);
    assert!(find_named(h.env.dir.path(), "escape").is_empty());
}

#[test]
fn entries_written_through_a_layer_symlink_never_reach_the_host() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-symlink");
    let abs = h.sentinel.to_str().unwrap().to_string();
    let variants = [
        ("absolute", abs.clone()),
        ("relative", "../../../sentinel".to_string()),
        ("root", "/".to_string()),
    ];
    for (tag, target) in variants {
        let pwned = if tag == "root" {
            format!("evil{abs}/pwned")
        } else {
            "evil/pwned".to_string()
        };
        let mut t = Tar::new();
        t.symlink("evil", &target).file(&pwned, "pwned\n");
        let img = h.add(tag, t.finish());
        let sentinel0 = tree_sums(&h.sentinel);
        let outside0 = h.outside_bundle();
        let out = bundle_cmd(&h.env, &img);
        assert_same_tree(&sentinel0, &tree_sums(&h.sentinel), "the sentinel dir");
        assert_same_tree(
            &outside0,
            &h.outside_bundle(),
            "the test dir outside the bundle",
        );
        if out.status.success() {
            // Then the entry landed inside the layer.
            let found = find_named(h.env.bundle.path(), "pwned");
            assert!(
                !found.is_empty() && found.iter().all(|p| p.starts_with(h.env.bundle.path())),
                "{tag}: `evil/pwned` is nowhere in the bundle: {found:?}"
            );
        } else {
            assert_error(&out, &["layer", "entry", "evil", "symlink"]);
            h.assert_bundle_empty();
        }
        h.reset_bundle();
    }
}

#[test]
fn a_directory_entry_replaced_by_a_symlink_never_changes_the_host_target() {
    if skip() {
        return;
    }
    // A directory `d` (mode 4777), then a symlink `d` to a host path: the
    // directory's mode must never be applied through the link (that would
    // let an image chmod, even make setuid, any host file).
    let mut h = hostile("bad-dir-symlink");
    let dir = h.sentinel.to_str().unwrap().to_string();
    let file = h.sentinel.join("keep").to_str().unwrap().to_string();
    let mut problems = Vec::new();
    for (tag, target) in [
        ("absolute-dir", dir),
        ("absolute-file", file),
        ("relative-dir", "../../../sentinel".to_string()),
    ] {
        let mut t = Tar::new();
        t.push(
            Tar::header(tar::EntryType::Directory, "d", "", 0, 0o4777),
            b"",
        )
        .file("d/x", "x\n")
        .symlink("d", &target);
        let img = h.add(tag, t.finish());
        let sentinel0 = tree_sums(&h.sentinel);
        let outside0 = h.outside_bundle();
        let out = bundle_cmd(&h.env, &img);
        for d in tree_diff(&sentinel0, &tree_sums(&h.sentinel)) {
            problems.push(format!("{tag} -> {target}: sentinel {d}"));
        }
        for d in tree_diff(&outside0, &h.outside_bundle()) {
            problems.push(format!("{tag} -> {target}: outside the bundle {d}"));
        }
        // Put the sentinel back for the next variant.
        fs::set_permissions(&h.sentinel, fs::Permissions::from_mode(0o755)).unwrap();
        fs::set_permissions(h.sentinel.join("keep"), fs::Permissions::from_mode(0o644)).unwrap();
        if out.status.success() {
            let links = find_named(&h.env.bundle.path().join("layers"), "d");
            assert!(
                links
                    .iter()
                    .any(|p| fs::symlink_metadata(p).unwrap().file_type().is_symlink()),
                "{tag}: no symlink d in the layers: {links:?}"
            );
        } else {
            assert_error(&out, &["layer", "entry"]);
            h.assert_bundle_empty();
        }
        h.reset_bundle();
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn hard_links_to_files_outside_the_layer_are_refused() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-hardlink");
    let passwd0 = fs::metadata("/etc/passwd").unwrap();
    let keep = h.sentinel.join("keep");
    let keep0 = fs::metadata(&keep).unwrap();
    for (tag, target) in [
        ("dotdot", "../../etc/passwd".to_string()),
        ("absolute", "/etc/passwd".to_string()),
        ("sentinel", keep.to_str().unwrap().to_string()),
        ("sentinel-dotdot", "../../../sentinel/keep".to_string()),
    ] {
        let mut t = Tar::new();
        t.file("ok.txt", "ok\n").hardlink("link", &target);
        let img = h.add(tag, t.finish());
        h.assert_refused(&img, &["link", "layer", "entry"]);
    }
    // The same through a symlinked parent directory.
    let mut t = Tar::new();
    t.symlink("evil", "/etc").hardlink("h", "evil/passwd");
    let img = h.add("via-symlink", t.finish());
    h.assert_refused(&img, &["link", "layer", "entry"]);
    let mut t = Tar::new();
    t.symlink("evil", "../../../sentinel")
        .hardlink("h", "evil/keep");
    let img = h.add("via-relative-symlink", t.finish());
    h.assert_refused(&img, &["link", "layer", "entry"]);
    assert_eq!(
        fs::metadata("/etc/passwd").unwrap().nlink(),
        passwd0.nlink()
    );
    assert_eq!(fs::metadata(&keep).unwrap().nlink(), keep0.nlink());
}

#[test]
fn device_nodes_in_a_layer_are_refused() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-device");
    let mut t = Tar::new();
    t.dir("dev").device(tar::EntryType::Char, "dev/mem", 1, 1);
    let img = h.add("char", t.finish());
    h.assert_refused(&img, &["device", "devices"]);
    let mut t = Tar::new();
    t.device(tar::EntryType::Block, "disk", 8, 0);
    let img = h.add("block", t.finish());
    h.assert_refused(&img, &["device", "devices"]);
}

#[test]
fn a_corrupt_gzip_layer_is_refused() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-gzip");
    let mut t = Tar::new();
    let big: Vec<u8> = (0..200_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    t.file_mode("big", &big, 0o644);
    let good = gzip(&t.finish());
    // Truncated; and the deflate data overwritten with garbage. The blobs
    // are stored under their own (matching) digests: it is the gzip that
    // is bad, not the digest.
    let truncated = good[..good.len() / 2].to_vec();
    let mut garbage = good.clone();
    for b in &mut garbage[20..4000] {
        *b = 0xff;
    }
    for (tag, gz) in [("truncated", truncated), ("garbage", garbage)] {
        let small = LayerBlob {
            gz: h.small.gz.clone(),
            diff_id: h.small.diff_id.clone(),
        };
        let bad = LayerBlob {
            gz,
            diff_id: format!("sha256:{}", sha256_hex(b"whatever")),
        };
        h.layout
            .add_image(Some(tag), &[&small, &bad], cmd_config(&["true"]));
        let img = h.layout.at(tag);
        h.assert_refused(&img, &["layer", "gzip", "corrupt", "archive"]);
    }
}

#[test]
fn blobs_that_do_not_match_their_digest_are_refused() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-digest");
    // One image per blob kind, each with blobs of its own.
    for kind in ["layer", "config", "manifest"] {
        let mut t = Tar::new();
        t.file(&format!("{kind}.txt"), "x\n");
        let evil = layer_blob(&t.finish());
        let m = h.layout.manifest_for(
            &[&evil],
            json!({ "Cmd": ["true"], "Labels": { "kind": kind } }),
        );
        let md = h.layout.add_manifest(Some(kind), &m);
        let digest = match kind {
            "layer" => m["layers"][0]["digest"].as_str().unwrap().to_string(),
            "config" => m["config"]["digest"].as_str().unwrap().to_string(),
            _ => md,
        };
        let p = h.layout.blob_path(&digest);
        let mut data = fs::read(&p).unwrap();
        let mid = data.len() / 2;
        data[mid] ^= 0x01;
        fs::write(&p, data).unwrap();
        h.assert_refused(&h.layout.at(kind), &["digest"]);
    }
}

#[test]
fn digests_with_path_components_are_refused() {
    if skip() {
        return;
    }
    let mut h = hostile("bad-digest-path");
    // A valid layer outside the blob store, that a digest walks up to.
    let mut t = Tar::new();
    t.file("outside.txt", "outside\n");
    fs::write(h.env.dir.join("outside.tar.gz"), gzip(&t.finish())).unwrap();
    let small = LayerBlob {
        gz: h.small.gz.clone(),
        diff_id: h.small.diff_id.clone(),
    };
    let mut m = h.layout.manifest_for(&[&small], cmd_config(&["true"]));
    m["layers"][0]["digest"] = json!("sha256:../../../outside.tar.gz");
    h.layout.add_manifest(Some("layer"), &m);
    h.assert_refused(&h.layout.at("layer"), &["digest"]);
    // A manifest digest in index.json.
    let good = h.layout.manifest_for(&[&small], cmd_config(&["true"]));
    let bytes = serde_json::to_vec(&good).unwrap();
    fs::write(h.env.dir.join("manifest.json"), &bytes).unwrap();
    h.layout.push_descriptor(json!({
        "mediaType": MANIFEST,
        "digest": "sha256:../../../manifest.json",
        "size": bytes.len(),
        "annotations": { REF_NAME: "index" },
    }));
    h.assert_refused(&h.layout.at("index"), &["digest"]);
    // A config digest.
    let mut m = h.layout.manifest_for(&[&small], cmd_config(&["true"]));
    m["config"]["digest"] = json!("sha256:../../../manifest.json");
    h.layout.add_manifest(Some("config"), &m);
    h.assert_refused(&h.layout.at("config"), &["digest"]);
}

// ---------------------------------------------------------------------------
// Commit
// ---------------------------------------------------------------------------

/// The changes the commit tests make inside the container: /etc/motd
/// changed, /data/gone.txt deleted, /data/added.txt added, and /d (a, b in
/// the base layer) removed and recreated with only c.
const CHANGES: &str = "echo new motd > /etc/motd; rm /data/gone.txt; \
                       echo added > /data/added.txt; rm -rf /d; mkdir /d; echo c > /d/c";

/// A running sleeper on the base layer only, with [`CHANGES`] made; with
/// `upper`, its writable layer is `<dir>/upper`.
fn changed_sleeper(name: &str, upper: bool) -> Layered {
    let mut l = layered(name, false);
    l.env.bundle.set_args(&["sleep", "1000"]);
    let mut flags = layer_args(&[&l.base]);
    if upper {
        let u = l.env.dir.join("upper");
        flags.extend(["--upper".to_string(), u.to_str().unwrap().to_string()]);
    }
    let id = l.env.id.clone();
    start_sleeper(&l.env, &id, &flags);
    sh(&l.env, &id, CHANGES);
    l
}

fn commit(env: &TestEnv, id: &str, output: &Path) -> Output {
    env.rt.cmd(&["commit", id, output.to_str().unwrap()])
}

fn commit_ok(env: &TestEnv, id: &str, output: &Path) {
    let out = commit(env, id, output);
    assert!(
        out.status.success(),
        "commit {id} {} failed: {}",
        output.display(),
        describe(&out)
    );
}

/// The committed layer tar has the changes and only them.
fn assert_changes_in(entries: &[Entry]) {
    let paths = entry_paths(entries);
    let motd = entry(entries, "etc/motd").unwrap_or_else(|| panic!("no etc/motd: {paths:?}"));
    assert_eq!(motd.kind, tar::EntryType::Regular);
    assert_eq!(motd.data, b"new motd\n");
    assert!(
        entry(entries, "data/.wh.gone.txt").is_some(),
        "no whiteout for the deleted file: {paths:?}"
    );
    assert!(entry(entries, "data/gone.txt").is_none(), "{paths:?}");
    assert_eq!(
        entry(entries, "data/added.txt").map(|e| e.data.as_slice()),
        Some(&b"added\n"[..]),
        "{paths:?}"
    );
    assert!(
        entry(entries, "d/.wh..wh..opq").is_some(),
        "the recreated /d is not marked opaque: {paths:?}"
    );
    assert_eq!(
        entry(entries, "d/c").map(|e| e.data.as_slice()),
        Some(&b"c\n"[..])
    );
    assert!(
        entry(entries, "bin/busybox").is_none(),
        "the commit has unchanged base files: {paths:?}"
    );
}

#[test]
fn commit_to_tar_has_the_changed_file_and_whiteouts_of_deleted_ones() {
    if skip() {
        return;
    }
    let l = changed_sleeper("commit-tar", false);
    let out = l.env.dir.join("out.tar");
    commit_ok(&l.env, &l.env.id, &out);
    let bytes = fs::read(&out).unwrap();
    assert_ne!(&bytes[..2], &[0x1f, 0x8b], "a .tar must not be gzip");
    assert_changes_in(&tar_entries(&bytes));
}

#[test]
fn commit_to_tar_gz_writes_gzip() {
    if skip() {
        return;
    }
    let l = changed_sleeper("commit-targz", false);
    let out = l.env.dir.join("out.tar.gz");
    commit_ok(&l.env, &l.env.id, &out);
    let bytes = fs::read(&out).unwrap();
    assert_eq!(&bytes[..2], &[0x1f, 0x8b], "not gzip");
    assert_changes_in(&tar_entries(&gunzip(&bytes)));
}

#[test]
fn a_dir_removed_and_recreated_is_committed_as_opaque() {
    if skip() {
        return;
    }
    let l = changed_sleeper("commit-opaque", true);
    // What overlayfs did: the recreated dir is opaque in the writable layer.
    let upper_d = l.env.dir.join("upper/diff/d");
    assert_eq!(
        xattr(&upper_d, "trusted.overlay.opaque").as_deref(),
        Some(&b"y"[..]),
        "overlayfs did not mark {} opaque",
        upper_d.display()
    );
    let out = l.env.dir.join("out.tar");
    commit_ok(&l.env, &l.env.id, &out);
    let entries = tar_entries(&fs::read(&out).unwrap());
    let paths = entry_paths(&entries);
    assert_eq!(
        entry(&entries, "d").map(|e| e.kind),
        Some(tar::EntryType::Directory),
        "{paths:?}"
    );
    assert!(entry(&entries, "d/.wh..wh..opq").is_some(), "{paths:?}");
    assert!(entry(&entries, "d/a").is_none() && entry(&entries, "d/.wh.a").is_none());
    // Removed without being recreated: a plain whiteout.
    sh(&l.env, &l.env.id, "rm -rf /data");
    let out2 = l.env.dir.join("out2.tar");
    commit_ok(&l.env, &l.env.id, &out2);
    let entries = tar_entries(&fs::read(&out2).unwrap());
    assert!(
        entry(&entries, ".wh.data").is_some(),
        "{:?}",
        entry_paths(&entries)
    );
}

#[test]
fn commit_to_a_dir_makes_a_layer_that_stacks_over_the_base() {
    if skip() {
        return;
    }
    let mut l = changed_sleeper("commit-dir", false);
    let layer = l.env.dir.join("committed");
    commit_ok(&l.env, &l.env.id, &layer);
    assert!(layer.is_dir());
    let base0 = tree_sums(&l.base);
    l.env.bundle.set_script(
        "cat /etc/motd /data/added.txt /data/base.txt; \
         test -e /data/gone.txt || echo gone-is-gone; ls -A /d",
    );
    let id = format!("{}-2", l.env.id);
    let out = lifecycle(&l.env, "run", &id, &layer_args(&[&layer, &l.base]));
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "new motd\nadded\nbase\ngone-is-gone\nc\n");
    assert_nothing_left(&l.env.rt, &id, &l.env.bundle);
    assert_same_tree(&base0, &tree_sums(&l.base), "the base layer");
    // A committed dir is a new directory: an existing one is not reused.
    let out = commit(&l.env, &l.env.id, &layer);
    assert_error(&out, &[layer.to_str().unwrap(), "exist", "exists"]);
}

#[test]
fn commit_leaves_a_running_container_running_and_works_once_it_stopped() {
    if skip() {
        return;
    }
    let l = changed_sleeper("commit-states", false);
    let id = l.env.id.clone();
    let pid = l.env.rt.pid(&id);
    commit_ok(&l.env, &id, &l.env.dir.join("running.tar"));
    assert_eq!(l.env.rt.status(&id), "running");
    assert_eq!(l.env.rt.pid(&id), pid);
    // Not left frozen: it still runs processes.
    assert_eq!(sh(&l.env, &id, "echo alive"), "alive\n");
    kill_and_wait_stopped(&l.env, &id);
    let out = l.env.dir.join("stopped.tar");
    commit_ok(&l.env, &id, &out);
    assert_changes_in(&tar_entries(&fs::read(&out).unwrap()));
    assert_eq!(l.env.rt.status(&id), "stopped");
}

#[test]
fn commit_of_a_container_without_layers_fails_clearly() {
    if skip() {
        return;
    }
    let mut env = TestEnv::new("commit-plain");
    env.bundle.set_args(&["sleep", "1000"]);
    env.create();
    env.rt.start(&env.id);
    let out_path = env.dir.join("out.tar");
    let out = commit(&env, &env.id, &out_path);
    assert_error(&out, &["layer", "layers"]);
    assert!(!out_path.exists());
    assert_eq!(env.rt.status(&env.id), "running");
    // And without any OUTPUT or --image.
    let out = env.rt.cmd(&["commit", &env.id]);
    assert_error(&out, &["output", "image"]);
}

#[test]
fn a_symlink_planted_in_the_writable_layer_is_committed_as_a_symlink() {
    if skip() {
        return;
    }
    let l = changed_sleeper("commit-symlink", false);
    let id = l.env.id.clone();
    sh(
        &l.env,
        &id,
        "ln -s /etc/shadow /leak; ln -s / /rootlink; ln -s ../../../../etc/shadow /data/rel",
    );
    let shadow = fs::read("/etc/shadow").unwrap_or_default();
    let out = l.env.dir.join("out.tar");
    commit_ok(&l.env, &id, &out);
    let entries = tar_entries(&fs::read(&out).unwrap());
    let paths = entry_paths(&entries);
    for (p, target) in [
        ("leak", "/etc/shadow"),
        ("rootlink", "/"),
        ("data/rel", "../../../../etc/shadow"),
    ] {
        let e = entry(&entries, p).unwrap_or_else(|| panic!("no {p}: {paths:?}"));
        assert_eq!(e.kind, tar::EntryType::Symlink, "{p}");
        // Compared as paths: the tar writer may spell `/` as `//`.
        let link = e.link.as_deref().map(Path::new);
        assert_eq!(
            link.map(|l| l.components().collect::<Vec<_>>()),
            Some(Path::new(target).components().collect()),
            "{p}: {:?}",
            e.link
        );
        assert!(e.data.is_empty(), "{p} has content");
    }
    assert!(
        !paths.iter().any(|p| p.starts_with("rootlink/")),
        "the commit walked through a symlink: {paths:?}"
    );
    if !shadow.is_empty() {
        assert!(
            !entries.iter().any(|e| e.data == shadow),
            "the host's /etc/shadow is in the committed layer"
        );
    }
    // The same as a layer dir.
    let dir = l.env.dir.join("committed");
    commit_ok(&l.env, &id, &dir);
    let md = fs::symlink_metadata(dir.join("leak")).unwrap();
    assert!(md.file_type().is_symlink());
    assert_eq!(
        fs::read_link(dir.join("leak")).unwrap(),
        Path::new("/etc/shadow")
    );
    let md = fs::symlink_metadata(dir.join("rootlink")).unwrap();
    assert!(md.file_type().is_symlink());
}

// ---------------------------------------------------------------------------
// The full loop: image -> bundle -> run -> commit -> image -> bundle -> run
// ---------------------------------------------------------------------------

/// Checks every blob against its name and every layer of every manifest
/// against its config's diff_id; returns nothing, panics on a mismatch.
fn assert_layout_consistent(l: &OciLayout) {
    for e in fs::read_dir(l.dir.join("blobs/sha256")).unwrap().flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        assert_eq!(
            sha256_hex(&fs::read(e.path()).unwrap()),
            name,
            "blob {name} does not match its digest"
        );
    }
    let names: Vec<String> = fs::read_dir(&l.dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for n in &names {
        assert!(
            ["oci-layout", "index.json", "blobs"].contains(&n.as_str()),
            "stray file {n} in the layout"
        );
    }
    let index: Value =
        serde_json::from_slice(&fs::read(l.dir.join("index.json")).unwrap()).unwrap();
    for desc in index["manifests"].as_array().unwrap() {
        let digest = desc["digest"].as_str().unwrap();
        let bytes = fs::read(l.blob_path(digest)).unwrap();
        assert_eq!(desc["size"].as_u64(), Some(bytes.len() as u64), "{desc}");
        let m: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(m["schemaVersion"], 2);
        let c = &m["config"];
        let cbytes = fs::read(l.blob_path(c["digest"].as_str().unwrap())).unwrap();
        assert_eq!(c["size"].as_u64(), Some(cbytes.len() as u64));
        let config: Value = serde_json::from_slice(&cbytes).unwrap();
        let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
        let layers = m["layers"].as_array().unwrap();
        assert_eq!(diff_ids.len(), layers.len(), "{m}");
        for (layer, diff_id) in layers.iter().zip(diff_ids) {
            let gz = fs::read(l.blob_path(layer["digest"].as_str().unwrap())).unwrap();
            assert_eq!(layer["size"].as_u64(), Some(gz.len() as u64));
            assert_eq!(layer["mediaType"], LAYER_GZIP);
            assert_eq!(
                diff_id.as_str().unwrap(),
                format!("sha256:{}", sha256_hex(&gunzip(&gz))),
                "diff_id is not the sha256 of the uncompressed layer"
            );
        }
    }
}

#[test]
fn image_to_bundle_to_commit_to_image_round_trip_keeps_the_change() {
    if skip() {
        return;
    }
    let env = image_env("loop");
    let mut v1 = Tar::new();
    v1.file("etc/version", "v1\n");
    let l = busybox_image(
        env.dir.path(),
        "v1",
        &[v1.finish()],
        json!({ "Cmd": ["cat", "/etc/version"], "Env": ["GREETING=hi"] }),
    );
    bundle_ok(&env, &l.at("v1"));
    assert_eq!(run_ok(&env), "v1\n");
    // Change a file, keep the stopped container, and commit it.
    let mut c = read_config(&env);
    c["process"]["args"] = json!(["sh", "-c", "echo v2 > /etc/version; echo $GREETING"]);
    write_config(&env, &c);
    let out = env.run(&["--keep"]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(stdout(&out), "hi\n");
    env.rt.run_ok(&["commit", "--image", &l.at("v2"), &env.id]);
    env.rt.run_ok(&["delete", &env.id]);
    env.assert_nothing_left();

    let (m1, c1) = l.image("v1");
    let (m2, c2) = l.image("v2");
    let n1 = m1["layers"].as_array().unwrap().len();
    assert_eq!(m2["layers"].as_array().unwrap().len(), n1 + 1);
    assert_eq!(
        m2["layers"].as_array().unwrap()[..n1],
        m1["layers"].as_array().unwrap()[..],
        "v2 must extend v1"
    );
    let d1 = c1["rootfs"]["diff_ids"].as_array().unwrap();
    let d2 = c2["rootfs"]["diff_ids"].as_array().unwrap();
    assert_eq!(d2.len(), d1.len() + 1);
    assert_eq!(d2[..d1.len()], d1[..]);
    assert_eq!(c2["config"]["Cmd"], json!(["cat", "/etc/version"]));
    assert_layout_consistent(&l);

    // A new bundle from v2 sees the change; v1 is unchanged.
    let env2 = image_env("loop-2");
    bundle_ok(&env2, &l.at("v2"));
    assert_eq!(run_ok(&env2), "v2\n");
    env2.assert_nothing_left();
    let env3 = image_env("loop-3");
    bundle_ok(&env3, &l.at("v1"));
    assert_eq!(run_ok(&env3), "v1\n");
    env3.assert_nothing_left();

    match Command::new("skopeo")
        .args(["inspect", &format!("oci:{}", l.at("v2"))])
        .output()
    {
        Err(e) => eprintln!("skopeo check skipped: cannot run skopeo ({e})"),
        Ok(out) => {
            assert!(
                out.status.success(),
                "skopeo rejects the committed image: {}",
                describe(&out)
            );
            let v: Value = serde_json::from_slice(&out.stdout).unwrap();
            assert_eq!(v["Layers"].as_array().map(Vec::len), Some(n1 + 1), "{v}");
        }
    }
}
