//! Parsing a mount's `options` into what the kernel takes: per-mount
//! attributes (`mount_setattr`), recursive attributes (`rro`, `rnosuid`...),
//! propagation, bind-ness, and the file system's own parameters (`fsconfig`).

use anyhow::{bail, Result};

use crate::sys::mount_api::*;

/// A mount's options, sorted by where they go.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MountOptions {
    pub bind: bool,
    pub recursive_bind: bool,
    /// Attributes of this mount only.
    pub attr: MountAttr,
    /// Attributes applied to the whole tree (`rro`, `rnosuid`, ...).
    pub rattr: MountAttr,
    /// Propagation flag (`MS_SHARED`...) and whether it is recursive.
    pub propagation: Option<(u64, bool)>,
    /// Superblock flags for fsconfig (`sync`, `dirsync`, `mand`, `lazytime`).
    pub sb_flags: Vec<String>,
    /// The file system's own parameters: `key=value` or bare flags.
    pub data: Vec<(String, Option<String>)>,
    /// `idmap` / `ridmap`: an idmapped bind mount.
    pub idmap: bool,
    /// Options rrun accepts but does not act on (logged).
    pub ignored: Vec<String>,
}

/// Propagation flags by option name.
pub fn propagation_flag(name: &str) -> Option<(u64, bool)> {
    let f = match name {
        "shared" => (libc::MS_SHARED, false),
        "rshared" => (libc::MS_SHARED, true),
        "slave" => (libc::MS_SLAVE, false),
        "rslave" => (libc::MS_SLAVE, true),
        "private" => (libc::MS_PRIVATE, false),
        "rprivate" => (libc::MS_PRIVATE, true),
        "unbindable" => (libc::MS_UNBINDABLE, false),
        "runbindable" => (libc::MS_UNBINDABLE, true),
        _ => return None,
    };
    Some(f)
}

fn set(a: &mut MountAttr, flag: u64) {
    a.attr_set |= flag;
    a.attr_clr &= !flag;
}

fn clr(a: &mut MountAttr, flag: u64) {
    a.attr_clr |= flag;
    a.attr_set &= !flag;
}

/// The access-time options as the legacy mount flags they are for runc and
/// mount(8): three independent flags, each set by its option and cleared by
/// its `no`/`a` form (`atime` clears only `noatime`, `norelatime` only
/// `relatime`, `nostrictatime` only `strictatime`). The mode they leave is
/// decided as the kernel decides it for `mount(2)`: `strictatime` wins over
/// `noatime`, which wins over `relatime`; none at all leaves the mount's
/// mode alone (relatime for a new file system, the source's for a bind).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Atime {
    noatime: bool,
    relatime: bool,
    strictatime: bool,
}

impl Atime {
    /// The `MOUNT_ATTR_*` access-time mode, if any option asked for one.
    fn mode(self) -> Option<u64> {
        if self.strictatime {
            Some(MOUNT_ATTR_STRICTATIME)
        } else if self.noatime {
            Some(MOUNT_ATTR_NOATIME)
        } else if self.relatime {
            Some(MOUNT_ATTR_RELATIME)
        } else {
            None
        }
    }

    /// Writes the mode into `a` (mount_setattr takes a mode only with the
    /// whole `MOUNT_ATTR__ATIME` mask in `attr_clr`).
    fn apply(self, a: &mut MountAttr) {
        if let Some(mode) = self.mode() {
            a.attr_clr |= MOUNT_ATTR__ATIME;
            a.attr_set = (a.attr_set & !MOUNT_ATTR__ATIME) | mode;
        }
    }
}

/// Options mount(8) keeps to itself (fstab's and systemd's): it never
/// passes them to the kernel, so neither does rrun (config.md: an option
/// mount(8) knows SHOULD behave as in mount(8)). `user=NAME` and the like,
/// with a value, are file system parameters (cifs) and are not in this list.
fn mount8_only(opt: &str) -> bool {
    matches!(
        opt,
        "nofail" | "auto" | "noauto" | "user" | "nouser" | "users" | "owner" | "group" | "_netdev"
    ) || opt.starts_with("x-")
        || opt.starts_with("comment=")
}

/// Applies one attribute option to `a` (access-time options to `at`);
/// false when `opt` is not one.
fn apply_attr(a: &mut MountAttr, at: &mut Atime, opt: &str) -> bool {
    match opt {
        "ro" => set(a, MOUNT_ATTR_RDONLY),
        "rw" => clr(a, MOUNT_ATTR_RDONLY),
        "nosuid" => set(a, MOUNT_ATTR_NOSUID),
        "suid" => clr(a, MOUNT_ATTR_NOSUID),
        "nodev" => set(a, MOUNT_ATTR_NODEV),
        "dev" => clr(a, MOUNT_ATTR_NODEV),
        "noexec" => set(a, MOUNT_ATTR_NOEXEC),
        "exec" => clr(a, MOUNT_ATTR_NOEXEC),
        "nosymfollow" => set(a, MOUNT_ATTR_NOSYMFOLLOW),
        "symfollow" => clr(a, MOUNT_ATTR_NOSYMFOLLOW),
        "nodiratime" => set(a, MOUNT_ATTR_NODIRATIME),
        "diratime" => clr(a, MOUNT_ATTR_NODIRATIME),
        "noatime" => at.noatime = true,
        "atime" => at.noatime = false,
        "relatime" => at.relatime = true,
        "norelatime" => at.relatime = false,
        "strictatime" => at.strictatime = true,
        "nostrictatime" => at.strictatime = false,
        _ => return false,
    }
    true
}

impl MountOptions {
    /// Whether an SELinux context option was given (then `linux.mountLabel`
    /// adds none).
    pub fn has_context(&self) -> bool {
        self.data.iter().any(|(k, _)| {
            matches!(
                k.as_str(),
                "context" | "fscontext" | "defcontext" | "rootcontext"
            )
        })
    }

    /// Sorts `options`; `fstype` decides whether unknown words are file
    /// system parameters (for real file systems) or errors (for binds).
    pub fn parse(options: &[String], fstype: &str) -> Result<MountOptions> {
        let mut o = MountOptions::default();
        let (mut at, mut rat) = (Atime::default(), Atime::default());
        let is_bind_type = fstype == "bind" || fstype == "none" || fstype.is_empty();
        for opt in options {
            let opt = opt.as_str();
            if opt == "bind" {
                o.bind = true;
            } else if opt == "rbind" {
                o.bind = true;
                o.recursive_bind = true;
            } else if let Some(p) = propagation_flag(opt) {
                o.propagation = Some(p);
            } else if opt == "idmap" || opt == "ridmap" {
                o.idmap = true;
            } else if apply_attr(&mut o.attr, &mut at, opt)
                || (opt.len() > 1
                    && opt.starts_with('r')
                    && apply_attr(&mut o.rattr, &mut rat, &opt[1..]))
            {
                // A per-mount or recursive attribute: recorded by apply_attr.
            } else if matches!(opt, "sync" | "dirsync" | "mand" | "lazytime") {
                o.sb_flags.push(opt.to_string());
            } else if matches!(
                opt,
                "async"
                    | "nomand"
                    | "nolazytime"
                    | "defaults"
                    | "remount"
                    | "loud"
                    | "silent"
                    | "tmpcopyup"
                    // MS_I_VERSION for runc's mount(2): a superblock flag
                    // that fsopen/fsconfig has no key for (only the file
                    // system's own parameters reach it). ext4 (since Linux
                    // 6.2), xfs and btrfs count i_version whatever the
                    // option says.
                    | "iversion"
                    | "noiversion"
            ) || mount8_only(opt)
            {
                o.ignored.push(opt.to_string());
            } else if let Some((k, v)) = opt.split_once('=') {
                if k.is_empty() {
                    bail!("mount option {opt:?}: empty key");
                }
                // SELinux contexts are quoted when they hold a comma
                // (`context="u:r:t:s0:c1,c2"`); mount(8) and the kernel's
                // legacy parser strip the quotes, fsconfig does not.
                let v = match k {
                    "context" | "fscontext" | "defcontext" | "rootcontext" => v
                        .strip_prefix('"')
                        .and_then(|v| v.strip_suffix('"'))
                        .unwrap_or(v),
                    _ => v,
                };
                o.data.push((k.to_string(), Some(v.to_string())));
            } else if !opt.is_empty() {
                o.data.push((opt.to_string(), None));
            }
        }
        at.apply(&mut o.attr);
        rat.apply(&mut o.rattr);
        if fstype == "bind" {
            o.bind = true;
        }
        if o.bind || is_bind_type {
            // A bind mount has no file system of its own to take parameters
            // (`mode=755`, `size=`...): the kernel drops them from a bind
            // mount(2), and runc passes them on to be dropped, so configs
            // written for runc carry them. Ignore them too (logged at debug).
            for (k, v) in o.data.drain(..) {
                o.ignored.push(match v {
                    Some(v) => format!("{k}={v}"),
                    None => k,
                });
            }
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(v: &[&str], t: &str) -> MountOptions {
        MountOptions::parse(&v.iter().map(|s| s.to_string()).collect::<Vec<_>>(), t).unwrap()
    }

    #[test]
    fn flags_and_data_are_separated() {
        let o = opts(
            &["nosuid", "noexec", "mode=755", "size=65536k", "strictatime"],
            "tmpfs",
        );
        assert_eq!(
            o.attr.attr_set,
            MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC | MOUNT_ATTR_STRICTATIME
        );
        assert_eq!(
            o.data,
            vec![
                ("mode".into(), Some("755".into())),
                ("size".into(), Some("65536k".into()))
            ]
        );
        assert!(!o.bind);
    }

    #[test]
    fn rbind_with_recursive_readonly_and_propagation() {
        let o = opts(&["rbind", "rro", "rnosuid", "rprivate"], "none");
        assert!(o.bind && o.recursive_bind);
        assert_eq!(o.rattr.attr_set, MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID);
        assert_eq!(o.propagation, Some((libc::MS_PRIVATE, true)));
        assert_eq!(o.attr.attr_set, 0);
    }

    #[test]
    fn relatime_is_not_a_recursive_elatime() {
        let o = opts(&["relatime"], "proc");
        assert_eq!(o.attr.attr_clr & MOUNT_ATTR__ATIME, MOUNT_ATTR__ATIME);
        assert_eq!(o.rattr, MountAttr::default());
    }

    #[test]
    fn later_options_override_earlier() {
        let o = opts(&["ro", "rw"], "tmpfs");
        assert_eq!(o.attr.attr_set & MOUNT_ATTR_RDONLY, 0);
        assert_eq!(o.attr.attr_clr & MOUNT_ATTR_RDONLY, MOUNT_ATTR_RDONLY);
    }

    #[test]
    fn file_system_options_on_a_bind_are_ignored_as_runc_does() {
        let o = opts(&["bind", "ro", "mode=755", "size=1m", "x-foo"], "bind");
        assert!(o.bind);
        assert!(o.data.is_empty());
        assert_eq!(
            o.ignored,
            vec!["x-foo".to_string(), "mode=755".into(), "size=1m".into()]
        );
        assert_eq!(o.attr.attr_set, MOUNT_ATTR_RDONLY);
        let o = opts(&["rbind", "gid=5", "newinstance"], "none");
        assert!(o.data.is_empty() && o.recursive_bind);
    }

    #[test]
    fn mount8_only_options_never_reach_the_file_system() {
        let all = [
            "nofail",
            "auto",
            "noauto",
            "user",
            "nouser",
            "users",
            "owner",
            "group",
            "_netdev",
            "comment=x-gvfs-show",
            "x-systemd.automount",
        ];
        for t in ["tmpfs", "bind"] {
            let mut v = all.to_vec();
            v.push("size=1m");
            let o = opts(&v, t);
            assert_eq!(&o.ignored[..all.len()], &all[..], "{t}");
            assert_eq!(o.attr, MountAttr::default(), "{t}");
        }
        assert_eq!(
            opts(&["nofail", "size=1m"], "tmpfs").data,
            vec![("size".into(), Some("1m".into()))]
        );
        // With a value, `user=` is a file system parameter (cifs).
        assert_eq!(
            opts(&["user=alice"], "cifs").data,
            vec![("user".into(), Some("alice".into()))]
        );
    }

    #[test]
    fn iversion_and_noiversion_are_accepted_and_never_reach_fsconfig() {
        for opt in ["iversion", "noiversion"] {
            let o = opts(&[opt], "tmpfs");
            assert!(o.data.is_empty() && o.sb_flags.is_empty(), "{opt}");
            assert_eq!(o.ignored, vec![opt.to_string()]);
        }
    }

    fn atime_of(a: MountAttr) -> Option<u64> {
        (a.attr_clr & MOUNT_ATTR__ATIME == MOUNT_ATTR__ATIME)
            .then_some(a.attr_set & MOUNT_ATTR__ATIME)
    }

    #[test]
    fn atime_and_norelatime_clear_only_their_own_flag() {
        // Alone they ask for no mode at all (today's bug: strictatime).
        for o in ["atime", "norelatime", "nostrictatime"] {
            assert_eq!(atime_of(opts(&[o], "tmpfs").attr), None, "{o}");
        }
        assert_eq!(atime_of(opts(&["noatime", "atime"], "tmpfs").attr), None);
        assert_eq!(
            atime_of(opts(&["noatime", "norelatime"], "tmpfs").attr),
            Some(MOUNT_ATTR_NOATIME)
        );
        assert_eq!(
            atime_of(opts(&["relatime", "atime"], "tmpfs").attr),
            Some(MOUNT_ATTR_RELATIME)
        );
        assert_eq!(
            atime_of(opts(&["strictatime", "norelatime"], "tmpfs").attr),
            Some(MOUNT_ATTR_STRICTATIME)
        );
        assert_eq!(
            atime_of(opts(&["strictatime", "nostrictatime", "noatime"], "tmpfs").attr),
            Some(MOUNT_ATTR_NOATIME)
        );
    }

    #[test]
    fn atime_modes_combine_as_the_kernel_combines_mount_flags() {
        // mount(2): strictatime beats noatime, which beats relatime,
        // whatever the order (runc passes the flags together).
        assert_eq!(
            atime_of(opts(&["strictatime", "noatime"], "tmpfs").attr),
            Some(MOUNT_ATTR_STRICTATIME)
        );
        assert_eq!(
            atime_of(opts(&["relatime", "noatime"], "tmpfs").attr),
            Some(MOUNT_ATTR_NOATIME)
        );
        assert_eq!(
            atime_of(opts(&["noatime", "relatime"], "tmpfs").attr),
            Some(MOUNT_ATTR_NOATIME)
        );
    }

    #[test]
    fn recursive_atime_clearing_forms_clear_only_their_own_flag() {
        for o in ["ratime", "rnorelatime", "rnostrictatime"] {
            let p = opts(&["rbind", o], "bind");
            assert_eq!(p.rattr, MountAttr::default(), "{o}");
            assert_eq!(p.attr, MountAttr::default(), "{o}");
        }
        let p = opts(&["rbind", "rnoatime", "ratime"], "bind");
        assert_eq!(atime_of(p.rattr), None);
        let p = opts(&["rbind", "rstrictatime", "rnorelatime"], "bind");
        assert_eq!(atime_of(p.rattr), Some(MOUNT_ATTR_STRICTATIME));
        assert_eq!(atime_of(p.attr), None);
    }

    #[test]
    fn selinux_context_options_lose_their_quotes() {
        let o = opts(
            &["context=\"system_u:object_r:t:s0:c1,c2\"", "mode=755"],
            "tmpfs",
        );
        assert_eq!(
            o.data[0],
            (
                "context".into(),
                Some("system_u:object_r:t:s0:c1,c2".into())
            )
        );
        assert!(o.has_context());
        assert!(!opts(&["mode=755"], "tmpfs").has_context());
    }

    #[test]
    fn devpts_flags_become_parameters() {
        let o = opts(&["newinstance", "ptmxmode=0666", "gid=5"], "devpts");
        assert_eq!(o.data[0], ("newinstance".into(), None));
    }
}
