//! Reading and validating `config.json`, and writing the default one.
//!
//! The bundle's config is parsed into oci-spec's types once; every error
//! names the JSON path of the offending field (`process.args`,
//! `linux.namespaces[2].type`, ...). Validation checks everything that can be
//! checked before any process or mount exists, so most bad input fails
//! before rrun changes anything.

mod default;
mod validate;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use oci_spec::runtime::Spec;

pub use default::default_spec;
pub use validate::validate;

/// A parsed config.json together with where it came from.
pub struct Bundle {
    /// Absolute path of the bundle directory.
    pub dir: PathBuf,
    pub spec: Spec,
    /// Absolute path of the root file system directory.
    pub rootfs: PathBuf,
}

/// Loads `<bundle>/config.json`, validates it and resolves the rootfs path.
pub fn load_bundle(bundle: &Path) -> Result<Bundle> {
    let (dir, text) = read_config(bundle)?;
    load_config(dir, &text)
}

/// The bundle directory (absolute) and the text of its config.json, for
/// [`load_config`].
pub fn read_config(bundle: &Path) -> Result<(PathBuf, Vec<u8>)> {
    let dir = std::fs::canonicalize(bundle)
        .with_context(|| format!("bundle {}: cannot open", bundle.display()))?;
    let config = dir.join("config.json");
    let text =
        std::fs::read(&config).with_context(|| format!("{}: cannot read", config.display()))?;
    Ok((dir, text))
}

/// Parses and validates the config.json text [`read_config`] read from
/// `dir`, and resolves the rootfs path.
pub fn load_config(dir: PathBuf, text: &[u8]) -> Result<Bundle> {
    let config = dir.join("config.json");
    let mut spec = parse(text).with_context(|| format!("{}", config.display()))?;
    absolute_destinations(&mut spec);
    let root = spec.root().as_ref().context("config.json: root: missing")?;
    let rootfs = dir.join(root.path());
    let rootfs = std::fs::canonicalize(&rootfs)
        .with_context(|| format!("root.path {}: cannot open", rootfs.display()))?;
    if !rootfs.is_dir() {
        anyhow::bail!("root.path {}: not a directory", rootfs.display());
    }
    validate(&spec)?;
    Ok(Bundle { dir, spec, rootfs })
}

/// Whether config.json text asks for a new network namespace and names no
/// user namespace, read from `linux.namespaces` alone before the full parse
/// (one pass over the text that keeps nothing else), so that `create` can
/// start making the network namespace (`launch::netns`) while it parses
/// and checks the rest. Only a hint: the namespace plan decides, and a
/// helper it does not want is stopped. False for text that is not such a
/// config.
pub fn asks_new_net_without_user(text: &[u8]) -> bool {
    #[derive(serde::Deserialize)]
    struct Config {
        linux: Option<Linux>,
    }
    #[derive(serde::Deserialize)]
    struct Linux {
        namespaces: Option<Vec<Namespace>>,
    }
    #[derive(serde::Deserialize)]
    struct Namespace {
        #[serde(rename = "type")]
        kind: String,
        path: Option<String>,
    }
    let Ok(Config {
        linux: Some(Linux {
            namespaces: Some(list),
        }),
    }) = serde_json::from_slice::<Config>(text)
    else {
        return false;
    };
    let new_net = list
        .iter()
        .any(|n| n.kind == "network" && n.path.as_deref().unwrap_or("").is_empty());
    new_net && !list.iter().any(|n| n.kind == "user")
}

/// config.md (1.2.0), Linux: a relative mount destination (deprecated,
/// kept for old tools) MUST be interpreted as relative to "/".
fn absolute_destinations(spec: &mut Spec) {
    for m in spec.mounts_mut().iter_mut().flatten() {
        if m.destination().is_relative() {
            let abs = Path::new("/").join(m.destination());
            m.set_destination(abs);
        }
    }
}

/// Parses config.json text; errors carry the JSON path of the bad field.
///
/// A capability name rrun does not know is not an error (config.md: a
/// capability that cannot be mapped MUST be logged as a warning, and the
/// runtime SHOULD NOT fail; runc warns and ignores it too): the first
/// parse fails on it, and only then is the config read again without the
/// unknown names, each named in a warning.
pub fn parse(text: &[u8]) -> Result<Spec> {
    match parse_slice(text) {
        Ok(spec) => Ok(spec),
        Err((path, e)) if path.starts_with("process.capabilities.") => {
            let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(text) else {
                return Err(e);
            };
            if drop_unknown_capabilities(&mut v["process"], "process").is_empty() {
                return Err(e);
            }
            // Parsed from bytes again, not from the Value: deserializing
            // every oci-spec type from a Value too would add ~200 KiB of
            // code for this rare path.
            let text = serde_json::to_vec(&v)?;
            parse_slice(&text).map_err(|(_, e)| e)
        }
        Err((_, e)) => Err(e),
    }
}

/// One parse; on error, the JSON path of the bad field and the error
/// naming it.
fn parse_slice(text: &[u8]) -> std::result::Result<Spec, (String, anyhow::Error)> {
    let de = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let err = if path == "." || path.is_empty() {
            anyhow::anyhow!("invalid JSON: {inner}")
        } else {
            anyhow::anyhow!("{path}: {inner}")
        };
        (path, err)
    })
}

/// Takes the capability names oci-spec does not know (`CAP_FOO`) out of
/// the five sets of a `process` object, warning for each as
/// `<what>.capabilities.<set>`; returns them. Anything that is not a
/// string is left for the parse to report.
pub fn drop_unknown_capabilities(process: &mut serde_json::Value, what: &str) -> Vec<String> {
    use oci_spec::runtime::Capability;
    let mut dropped = Vec::new();
    let Some(sets) = process
        .get_mut("capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return dropped;
    };
    for (set, names) in sets.iter_mut() {
        let Some(names) = names.as_array_mut() else {
            continue;
        };
        names.retain(|n| {
            let Some(name) = n.as_str() else {
                return true;
            };
            if serde_json::from_value::<Capability>(n.clone()).is_ok() {
                return true;
            }
            crate::logging::warn(&format!(
                "{what}.capabilities.{set}: unknown capability {name}; ignored"
            ));
            dropped.push(name.to_string());
            false
        });
    }
    dropped
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_new_network_namespace_without_a_user_namespace_is_seen_before_the_parse() {
        let ns =
            |list: &str| format!(r#"{{"ociVersion":"1.2.0","linux":{{"namespaces":[{list}]}}}}"#);
        let asks = |t: &str| super::asks_new_net_without_user(t.as_bytes());
        assert!(asks(&ns(r#"{"type":"pid"},{"type":"network"}"#)));
        assert!(asks(&ns(r#"{"type":"network","path":""}"#)));
        // Joined, not new; a user namespace would own it; none asked.
        assert!(!asks(&ns(r#"{"type":"network","path":"/proc/1/ns/net"}"#)));
        assert!(!asks(&ns(r#"{"type":"network"},{"type":"user"}"#)));
        assert!(!asks(&ns(
            r#"{"type":"network"},{"type":"user","path":"/x"}"#
        )));
        assert!(!asks(&ns(r#"{"type":"pid"}"#)));
        assert!(!asks(r#"{"ociVersion":"1.2.0"}"#));
        assert!(!asks("not json"));
    }

    use super::*;

    #[test]
    fn parse_error_names_the_field() {
        let err = parse(br#"{"ociVersion":"1.0.2","process":{"args":5,"cwd":"/"}}"#)
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("process.args:"), "{err}");
    }

    #[test]
    fn unknown_capability_names_are_left_out_and_known_ones_kept() {
        let spec = parse(
            br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
                "capabilities":{"bounding":["CAP_KILL","CAP_FOO"],"effective":["CAP_BAR"],
                "permitted":["CAP_KILL"]}}}"#,
        )
        .unwrap();
        let caps = spec
            .process()
            .as_ref()
            .unwrap()
            .capabilities()
            .clone()
            .unwrap();
        let names = |s: &Option<std::collections::HashSet<oci_spec::runtime::Capability>>| {
            let mut v: Vec<String> = s
                .iter()
                .flatten()
                .map(|c| {
                    serde_json::to_value(c)
                        .unwrap()
                        .as_str()
                        .unwrap()
                        .to_string()
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(caps.bounding()), ["CAP_KILL"]);
        assert!(names(caps.effective()).is_empty());
        assert_eq!(names(caps.permitted()), ["CAP_KILL"]);
    }

    #[test]
    fn a_capability_that_is_not_a_string_is_still_an_error_naming_it() {
        let err = parse(
            br#"{"ociVersion":"1.0.2","process":{"cwd":"/","user":{"uid":0,"gid":0},
                "capabilities":{"bounding":["CAP_FOO",5]}}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("process.capabilities.bounding"), "{err}");
    }

    #[test]
    fn parse_error_names_unknown_namespace() {
        let err = parse(
            br#"{"ociVersion":"1.0.2","linux":{"namespaces":[{"type":"pid"},{"type":"bogus"}]}}"#,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("linux.namespaces[1].type"), "{err}");
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn relative_mount_destinations_are_taken_from_the_root() {
        let mut spec = parse(
            br#"{"ociVersion":"1.2.0","mounts":[
                {"destination":"data/in","type":"bind","source":"/x"},
                {"destination":"/abs","type":"tmpfs"},
                {"destination":"","type":"tmpfs"}]}"#,
        )
        .unwrap();
        absolute_destinations(&mut spec);
        let d: Vec<_> = spec
            .mounts()
            .iter()
            .flatten()
            .map(|m| m.destination().clone())
            .collect();
        // An empty one becomes "/", which validation refuses.
        assert_eq!(d, ["/data/in", "/abs", "/"].map(PathBuf::from));
    }

    #[test]
    fn exec_cpu_affinity_lists_are_checked_when_parsed() {
        // oci-spec's check (a regex, through shims/regex over regex-lite).
        let cfg = |list: &str| {
            format!(
                r#"{{"ociVersion":"1.2.0","process":{{"cwd":"/","user":{{"uid":0,"gid":0}},"execCPUAffinity":{{"initial":"{list}"}}}}}}"#
            )
        };
        for ok in ["0", "0-3", "0-3,7", "1,2,3", "0-1,4-5"] {
            parse(cfg(ok).as_bytes()).unwrap_or_else(|e| panic!("{ok}: {e}"));
        }
        for bad in ["", "a", "0-", "-1", "0,,1", "1-2-3", "0 ,1"] {
            let err = parse(cfg(bad).as_bytes()).unwrap_err().to_string();
            assert!(
                err.starts_with("process.execCPUAffinity.initial:"),
                "{bad:?}: {err}"
            );
        }
    }

    #[test]
    fn truncated_json_is_reported_as_invalid() {
        let err = parse(br#"{"ociVersion": "1.0"#).unwrap_err().to_string();
        assert!(err.contains("EOF"), "{err}");
    }
}
