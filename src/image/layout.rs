//! Reading and writing an OCI image layout directory (`oci-layout`,
//! `index.json`, `blobs/sha256/...`), every blob checked against its digest
//! before it is used.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

pub const MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const REF_NAME: &str = "org.opencontainers.image.ref.name";

pub struct Layout {
    pub dir: PathBuf,
}

/// Splits `DIR[:TAG]` (a `:` after the last `/`).
pub fn split_ref(s: &str) -> (PathBuf, Option<String>) {
    match s.rfind(':') {
        Some(i) if !s[i + 1..].contains('/') && i > 0 => {
            (PathBuf::from(&s[..i]), Some(s[i + 1..].to_string()))
        }
        _ => (PathBuf::from(s), None),
    }
}

/// `sha256:<hex>` → the hex, checked (so it is safe as a file name).
pub fn hex_of(digest: &str) -> Result<&str> {
    let hex = digest
        .strip_prefix("sha256:")
        .with_context(|| format!("digest {digest:?}: only sha256 is supported"))?;
    if hex.len() != 64
        || !hex
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    {
        bail!("digest {digest:?}: not a sha256 digest");
    }
    Ok(hex)
}

pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Layout {
    pub fn open(dir: &Path) -> Result<Layout> {
        let marker = dir.join("oci-layout");
        let text = std::fs::read(&marker)
            .with_context(|| format!("{}: not an OCI image layout", marker.display()))?;
        let v: Value =
            serde_json::from_slice(&text).with_context(|| format!("{}", marker.display()))?;
        if v["imageLayoutVersion"].as_str().is_none() {
            bail!("{}: no imageLayoutVersion", marker.display());
        }
        Ok(Layout {
            dir: dir.to_path_buf(),
        })
    }

    pub fn blob_path(&self, digest: &str) -> Result<PathBuf> {
        Ok(self.dir.join("blobs/sha256").join(hex_of(digest)?))
    }

    /// Reads a small blob (manifest, config) and checks its digest.
    pub fn read_blob(&self, digest: &str) -> Result<Vec<u8>> {
        let p = self.blob_path(digest)?;
        let data = std::fs::read(&p).with_context(|| format!("blob {digest}: cannot read"))?;
        if sha256_hex(&data) != hex_of(digest)? {
            bail!("blob {digest}: content does not match its digest");
        }
        Ok(data)
    }

    /// Opens a (large) blob after streaming it once through sha256.
    pub fn open_verified(&self, digest: &str) -> Result<File> {
        let p = self.blob_path(digest)?;
        let mut f = File::open(&p).with_context(|| format!("blob {digest}: cannot open"))?;
        let mut h = Sha256::new();
        let mut buf = vec![0u8; 1 << 16];
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
        if hex(&h.finalize()) != hex_of(digest)? {
            bail!("blob {digest}: content does not match its digest");
        }
        File::open(&p).with_context(|| format!("blob {digest}: cannot open"))
    }

    pub fn index(&self) -> Result<Value> {
        let p = self.dir.join("index.json");
        serde_json::from_slice(
            &std::fs::read(&p).with_context(|| format!("{}: cannot read", p.display()))?,
        )
        .with_context(|| format!("{}: invalid JSON", p.display()))
    }

    /// The manifest for `tag` (or the only one), following nested indexes to
    /// linux/amd64.
    pub fn manifest(&self, tag: Option<&str>) -> Result<(String, Value)> {
        let index = self.index()?;
        let list = index["manifests"].as_array().cloned().unwrap_or_default();
        let desc = match tag {
            Some(t) => list
                .iter()
                .find(|m| m["annotations"][REF_NAME].as_str() == Some(t))
                .cloned()
                .with_context(|| {
                    format!("image {}: no tag {t:?} in index.json", self.dir.display())
                })?,
            None if list.len() == 1 => list[0].clone(),
            None => bail!(
                "image {}: {} manifests; name one with DIR:TAG",
                self.dir.display(),
                list.len()
            ),
        };
        self.follow(desc)
    }

    fn follow(&self, desc: Value) -> Result<(String, Value)> {
        let digest = desc["digest"]
            .as_str()
            .context("manifest descriptor without digest")?
            .to_string();
        let v: Value = serde_json::from_slice(&self.read_blob(&digest)?)
            .with_context(|| format!("manifest {digest}"))?;
        let is_index =
            desc["mediaType"].as_str() == Some(INDEX) || v["mediaType"].as_str() == Some(INDEX);
        if is_index {
            let pick = v["manifests"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|m| {
                    m["platform"]["os"] == "linux" && m["platform"]["architecture"] == "amd64"
                })
                .cloned()
                .with_context(|| format!("image index {digest}: no linux/amd64 manifest"))?;
            return self.follow(pick);
        }
        Ok((digest, v))
    }

    /// Writes a blob, returning its digest.
    pub fn write_blob(&self, data: &[u8]) -> Result<String> {
        let hex = sha256_hex(data);
        let dir = self.dir.join("blobs/sha256");
        std::fs::create_dir_all(&dir)?;
        let p = dir.join(&hex);
        if !p.exists() {
            crate::state::write_atomic(&p, data, 0o644)?;
        }
        Ok(format!("sha256:{hex}"))
    }

    /// Moves an already written file into the blob store under its digest.
    pub fn adopt_blob(&self, path: &Path, digest: &str) -> Result<()> {
        let dir = self.dir.join("blobs/sha256");
        std::fs::create_dir_all(&dir)?;
        let dest = dir.join(hex_of(digest)?);
        if std::fs::rename(path, &dest).is_err() {
            std::fs::copy(path, &dest)?;
            std::fs::remove_file(path)?;
        }
        Ok(())
    }

    /// Adds (or retags) a manifest in index.json.
    pub fn add_manifest(&self, digest: &str, size: usize, tag: &str) -> Result<()> {
        let mut index = self.index()?;
        let mut list: Vec<Value> = index["manifests"].as_array().cloned().unwrap_or_default();
        list.retain(|m| m["annotations"][REF_NAME].as_str() != Some(tag));
        list.push(json!({
            "mediaType": MANIFEST,
            "digest": digest,
            "size": size,
            "annotations": {REF_NAME: tag},
        }));
        index["manifests"] = Value::Array(list);
        let text = serde_json::to_vec(&index)?;
        crate::state::write_atomic(&self.dir.join("index.json"), &text, 0o644)
    }
}

/// A writer that hashes what passes through it.
pub struct HashingWriter<W: Write> {
    pub inner: W,
    pub hash: Sha256,
    pub len: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hash: Sha256::new(),
            len: 0,
        }
    }
    pub fn finish(self) -> (W, String, u64) {
        (
            self.inner,
            format!("sha256:{}", hex(&self.hash.finalize())),
            self.len,
        )
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.len += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refs_split_at_the_last_colon_after_the_last_slash() {
        assert_eq!(
            split_ref("/img:latest"),
            (PathBuf::from("/img"), Some("latest".into()))
        );
        assert_eq!(split_ref("/a:b/img"), (PathBuf::from("/a:b/img"), None));
        assert_eq!(split_ref("img"), (PathBuf::from("img"), None));
    }

    #[test]
    fn digests_must_be_sha256_hex() {
        assert!(hex_of("sha256:../../etc").is_err());
        assert!(hex_of("md5:abc").is_err());
        let d = format!("sha256:{}", sha256_hex(b"x"));
        assert_eq!(hex_of(&d).unwrap().len(), 64);
    }
}
