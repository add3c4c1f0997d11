//! The command lines engines send on every container start, parsed
//! without clap.
//!
//! Building clap's command tree and matching against it was the largest
//! piece of user-space work in a `create` or `delete` (a quarter of the
//! parent's instructions in `run`, measured with callgrind; ~0.15 ms per
//! invocation on the development VM), paid three times per container by
//! create+start+delete. [`parse`] understands the shapes engines use for
//! `create`, `run`, `start`, `state`, `kill`, `delete` and `exec` (long and
//! short options, `--opt=value`, global options before or after the
//! command) and returns exactly what clap would return for them; anything
//! else (help, version, an unknown or repeated option, a value that looks
//! like an option, `--`, non-UTF-8, a missing or extra argument) returns
//! `None`, and clap parses it, reporting errors as always. A test checks the
//! two parsers agree on every command line this one accepts.

use std::ffi::OsString;
use std::path::PathBuf;

use super::{Cli, Command, Create, Exec, Global, LogFormat, Run};

/// The tokens after the program name, taken one by one; `--opt=value`
/// split in two.
struct Tokens {
    args: Vec<String>,
    next: usize,
    /// The value of the `--opt=value` just taken.
    attached: Option<String>,
}

impl Tokens {
    fn next(&mut self) -> Option<String> {
        let t = self.args.get(self.next)?.clone();
        self.next += 1;
        if let Some(rest) = t.strip_prefix("--") {
            if let Some((name, value)) = rest.split_once('=') {
                self.attached = Some(value.to_string());
                return Some(format!("--{name}"));
            }
        }
        self.attached = None;
        Some(t)
    }

    /// The value of the option just taken: attached (`--opt=v`) or the
    /// next token. None when clap could read it otherwise (empty, or
    /// looking like an option).
    fn value(&mut self) -> Option<String> {
        let v = match self.attached.take() {
            Some(v) => v,
            None => {
                let v = self.args.get(self.next)?.clone();
                self.next += 1;
                v
            }
        };
        (!v.is_empty() && !v.starts_with('-')).then_some(v)
    }

    /// A flag takes no value: `--flag=x` is clap's to refuse.
    fn flag(&mut self) -> Option<bool> {
        self.attached.is_none().then_some(true)
    }

    fn rest(&mut self) -> Vec<String> {
        let rest = self.args[self.next..].to_vec();
        self.next = self.args.len();
        rest
    }
}

/// Sets a single-valued option once; a repeat is clap's to judge.
fn once<T>(slot: &mut Option<T>, v: Option<T>) -> Option<()> {
    if slot.is_some() {
        return None;
    }
    *slot = Some(v?);
    Some(())
}

fn number(v: Option<String>) -> Option<u32> {
    let v = v?;
    if v.is_empty() || v.len() > 9 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    v.parse().ok()
}

#[derive(Default)]
struct GlobalOpts {
    root: Option<PathBuf>,
    log: Option<PathBuf>,
    log_format: Option<LogFormat>,
    debug: Option<bool>,
    systemd_cgroup: Option<bool>,
}

impl GlobalOpts {
    /// Takes `opt` if it is a global option; `Some(false)` if it is not one,
    /// `None` if it is one clap must see.
    fn take(&mut self, opt: &str, t: &mut Tokens) -> Option<bool> {
        match opt {
            "--root" => once(&mut self.root, t.value().map(PathBuf::from))?,
            "--log" => once(&mut self.log, t.value().map(PathBuf::from))?,
            "--log-format" => once(
                &mut self.log_format,
                match t.value()?.as_str() {
                    "text" => Some(LogFormat::Text),
                    "json" => Some(LogFormat::Json),
                    _ => None,
                },
            )?,
            "--debug" => once(&mut self.debug, t.flag())?,
            "--systemd-cgroup" => once(&mut self.systemd_cgroup, t.flag())?,
            _ => return Some(false),
        }
        Some(true)
    }

    fn into_global(self) -> Global {
        Global {
            root: self.root.unwrap_or_else(crate::state::default_root),
            log: self.log,
            log_format: self.log_format.unwrap_or(LogFormat::Text),
            debug: self.debug.unwrap_or(false),
            systemd_cgroup: self.systemd_cgroup.unwrap_or(false),
            criu: None,
            rootless_mode: None,
        }
    }
}

/// Parses `args` (with the program name first) as clap would, or returns
/// `None` to leave it to clap.
pub fn parse(args: &[OsString]) -> Option<Cli> {
    let args: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| a.to_str().map(str::to_string))
        .collect::<Option<_>>()?;
    if args.iter().any(|a| a == "--") {
        return None;
    }
    let mut t = Tokens {
        args,
        next: 0,
        attached: None,
    };
    let mut g = GlobalOpts::default();
    let name = loop {
        let tok = t.next()?;
        if !tok.starts_with('-') {
            break tok;
        }
        if !g.take(&tok, &mut t)? {
            return None;
        }
    };
    let command = match name.as_str() {
        "create" => Command::Create(create_args(&mut t, &mut g, None)?),
        "run" => {
            let mut run = (None, None);
            let create = create_args(&mut t, &mut g, Some(&mut run))?;
            Command::Run(Run {
                create,
                detach: run.0.unwrap_or(false),
                keep: run.1.unwrap_or(false),
            })
        }
        "start" | "state" => {
            let id = only_positionals(&mut t, &mut g, &mut [])?.pop()?;
            if name == "start" {
                Command::Start { id }
            } else {
                Command::State { id }
            }
        }
        "kill" => {
            let mut all = None;
            let mut pos = only_positionals(&mut t, &mut g, &mut [("-a", "--all", &mut all)])?;
            if pos.is_empty() || pos.len() > 2 {
                return None;
            }
            let signal = (pos.len() == 2).then(|| pos.remove(1));
            Command::Kill {
                all: all.unwrap_or(false),
                id: pos.remove(0),
                signal,
            }
        }
        "delete" => {
            let mut force = None;
            let ids = only_positionals(&mut t, &mut g, &mut [("-f", "--force", &mut force)])?;
            if ids.is_empty() {
                return None;
            }
            Command::Delete {
                force: force.unwrap_or(false),
                ids,
            }
        }
        "exec" => Command::Exec(Box::new(exec_args(&mut t, &mut g)?)),
        _ => return None,
    };
    Some(Cli {
        global: g.into_global(),
        version: false,
        command: Some(command),
    })
}

/// Positionals and the given flags (short, long, slot), global options
/// anywhere. Without flags (`start`, `state`): exactly one positional.
fn only_positionals(
    t: &mut Tokens,
    g: &mut GlobalOpts,
    flags: &mut [(&str, &str, &mut Option<bool>)],
) -> Option<Vec<String>> {
    let mut pos = Vec::new();
    while let Some(tok) = t.next() {
        if !tok.starts_with('-') {
            pos.push(tok);
            continue;
        }
        if g.take(&tok, t)? {
            continue;
        }
        let (_, _, slot) = flags.iter_mut().find(|(s, l, _)| tok == *s || tok == *l)?;
        once(&mut **slot, t.flag())?;
    }
    // `start`/`state` take exactly one.
    if flags.is_empty() && pos.len() != 1 {
        return None;
    }
    Some(pos)
}

/// `create`'s (and `run`'s) options and its one id; `run` also takes
/// `-d/--detach` and `--keep` (into `run`).
fn create_args(
    t: &mut Tokens,
    g: &mut GlobalOpts,
    mut run: Option<&mut (Option<bool>, Option<bool>)>,
) -> Option<Create> {
    let (mut bundle, mut console_socket, mut pid_file, mut upper) = (None, None, None, None);
    let (mut no_pivot, mut no_new_keyring, mut preserve_fds) = (None, None, None);
    let mut layers = Vec::new();
    let mut id = None;
    while let Some(tok) = t.next() {
        if !tok.starts_with('-') {
            once(&mut id, Some(tok))?;
            continue;
        }
        if g.take(&tok, t)? {
            continue;
        }
        match (tok.as_str(), &mut run) {
            ("-b" | "--bundle", _) => once(&mut bundle, t.value().map(PathBuf::from))?,
            ("--console-socket", _) => once(&mut console_socket, t.value().map(PathBuf::from))?,
            ("--pid-file", _) => once(&mut pid_file, t.value().map(PathBuf::from))?,
            ("--no-pivot", _) => once(&mut no_pivot, t.flag())?,
            ("--no-new-keyring", _) => once(&mut no_new_keyring, t.flag())?,
            ("--preserve-fds", _) => once(&mut preserve_fds, number(t.value()))?,
            ("--layer", _) => layers.push(PathBuf::from(t.value()?)),
            ("--upper", _) => once(&mut upper, t.value().map(PathBuf::from))?,
            ("-d" | "--detach", Some(r)) => once(&mut r.0, t.flag())?,
            ("--keep", Some(r)) => once(&mut r.1, t.flag())?,
            _ => return None,
        }
    }
    Some(Create {
        bundle,
        console_socket,
        pid_file,
        no_pivot: no_pivot.unwrap_or(false),
        no_new_keyring: no_new_keyring.unwrap_or(false),
        preserve_fds: preserve_fds.unwrap_or(0),
        layers,
        upper,
        id: id?,
    })
}

/// `exec`'s options, its id, then the command: everything after the id,
/// as it is (clap's trailing arguments), provided it does not start with
/// an option.
fn exec_args(t: &mut Tokens, g: &mut GlobalOpts) -> Option<Exec> {
    let mut e = Exec::default();
    let (mut process, mut console_socket, mut pid_file, mut cwd, mut user) =
        (None, None, None, None, None);
    let (mut apparmor, mut process_label, mut preserve_fds) = (None, None, None);
    let (mut tty, mut detach, mut no_new_privs, mut ignore_paused) = (None, None, None, None);
    let id = loop {
        let tok = t.next()?;
        if !tok.starts_with('-') {
            break tok;
        }
        if g.take(&tok, t)? {
            continue;
        }
        match tok.as_str() {
            "-p" | "--process" => once(&mut process, t.value().map(PathBuf::from))?,
            "-t" | "--tty" => once(&mut tty, t.flag())?,
            "--console-socket" => once(&mut console_socket, t.value().map(PathBuf::from))?,
            "-d" | "--detach" => once(&mut detach, t.flag())?,
            "--pid-file" => once(&mut pid_file, t.value().map(PathBuf::from))?,
            "-e" | "--env" => e.env.push(t.value()?),
            "--cwd" => once(&mut cwd, t.value())?,
            "-u" | "--user" => once(&mut user, t.value())?,
            "-g" | "--additional-gids" => e.additional_gids.push(number(t.value())?),
            "-c" | "--cap" => e.cap.push(t.value()?),
            "--no-new-privs" => once(&mut no_new_privs, t.flag())?,
            "--apparmor" => once(&mut apparmor, t.value())?,
            "--process-label" => once(&mut process_label, t.value())?,
            "--preserve-fds" => once(&mut preserve_fds, number(t.value()))?,
            "--ignore-paused" => once(&mut ignore_paused, t.flag())?,
            "--cgroup" => e.cgroup.push(t.value()?),
            _ => return None,
        }
    };
    let command = t.rest();
    if command.first().is_some_and(|c| c.starts_with('-')) {
        return None;
    }
    e.process = process;
    e.console_socket = console_socket;
    e.pid_file = pid_file;
    e.cwd = cwd;
    e.user = user;
    e.apparmor = apparmor;
    e.process_label = process_label;
    e.preserve_fds = preserve_fds.unwrap_or(0);
    e.tty = tty.unwrap_or(false);
    e.detach = detach.unwrap_or(false);
    e.no_new_privs = no_new_privs.unwrap_or(false);
    e.ignore_paused = ignore_paused.unwrap_or(false);
    e.id = id;
    e.command = command;
    Some(e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn argv(s: &[&str]) -> Vec<OsString> {
        std::iter::once("rrun")
            .chain(s.iter().copied())
            .map(OsString::from)
            .collect()
    }

    /// What clap makes of `args`: the parse, or its error (kind).
    fn clap(args: &[OsString]) -> String {
        match Cli::try_parse_from(args) {
            Ok(c) => format!("{c:?}"),
            Err(e) => format!("error {:?}", e.kind()),
        }
    }

    /// The fast parser's answer agrees with clap's whenever it gives one.
    fn agrees(s: &[&str]) -> bool {
        let a = argv(s);
        match parse(&a) {
            Some(c) => {
                assert_eq!(format!("{c:?}"), clap(&a), "{s:?}");
                true
            }
            None => false,
        }
    }

    #[test]
    fn engine_command_lines_parse_without_clap_and_as_clap_does() {
        // containerd's runc shim (go-runc), Podman (conmon), Docker, CRI-O.
        for s in [
            &[
                "--root",
                "/run/containerd/runc/k8s.io",
                "--log",
                "/run/x/log.json",
                "--log-format",
                "json",
                "create",
                "--bundle",
                "/run/x",
                "--pid-file",
                "/run/x/init.pid",
                "--console-socket",
                "/tmp/pty.sock",
                "c1",
            ][..],
            &[
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "start",
                "c1",
            ],
            &[
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "delete",
                "--force",
                "c1",
            ],
            &[
                "--root",
                "/r",
                "--log",
                "/l",
                "--log-format",
                "json",
                "kill",
                "c1",
                "9",
            ],
            &["--root", "/r", "kill", "--all", "c1", "KILL"],
            &["--root", "/r", "state", "c1"],
            &[
                "--systemd-cgroup",
                "--root",
                "/r",
                "create",
                "--bundle",
                "/b",
                "--pid-file",
                "/p",
                "--no-new-keyring",
                "c1",
            ],
            &[
                "--root=/r",
                "--log-format=text",
                "--debug",
                "run",
                "-b",
                "/b",
                "-d",
                "c1",
            ],
            &["run", "--bundle=/b", "--keep", "--preserve-fds", "3", "c1"],
            &[
                "create", "c1", "--bundle", "/b", "--layer", "/l1", "--layer", "/l2", "--upper",
                "/u",
            ],
            &["create", "--root", "/r", "--no-pivot", "c1"],
            &["delete", "-f", "a", "b", "c"],
            &["delete", "a", "--force", "b"],
            &[
                "--root",
                "/r",
                "exec",
                "--process",
                "/p.json",
                "--detach",
                "--pid-file",
                "/p",
                "--console-socket",
                "/s",
                "-t",
                "c1",
            ],
            &[
                "exec",
                "-e",
                "A=1",
                "--env",
                "B=2",
                "-u",
                "1000:1000",
                "-g",
                "5",
                "-g",
                "6",
                "--cwd",
                "/tmp",
                "--cap",
                "CAP_KILL",
                "--no-new-privs",
                "--cgroup",
                "sub",
                "c1",
                "ls",
                "-la",
                "--color",
                "x",
            ],
            &[
                "exec",
                "--preserve-fds=2",
                "--ignore-paused",
                "--apparmor",
                "p",
                "--process-label",
                "l",
                "c1",
                "true",
            ],
            &["exec", "c1"],
            &["kill", "-a", "c1"],
            &["start", "--debug", "c1"],
        ] {
            assert!(agrees(s), "left to clap: {s:?}");
        }
    }

    #[test]
    fn anything_unusual_is_left_to_clap() {
        for s in [
            &["--help"][..],
            &["-v"],
            &["create", "--help"],
            &["list"],
            &["spec"],
            &["create"],
            &["create", "a", "b"],
            &["start"],
            &["start", "a", "b"],
            &["delete"],
            &["kill", "c1", "-9"],
            &["kill", "c1", "9", "x"],
            &["create", "--bundle", "--pid-file", "x", "c1"],
            &["create", "--bundle", "", "c1"],
            &["create", "--bundle=", "c1"],
            &["create", "--bundle", "a", "--bundle", "b", "c1"],
            &["create", "-bX", "c1"],
            &["create", "--pid-file", "-", "c1"],
            &["--root", "/a", "--root", "/b", "state", "c1"],
            &["--log-format", "yaml", "state", "c1"],
            &["--criu", "x", "state", "c1"],
            &["--debug=1", "state", "c1"],
            &["run", "--keep", "--keep", "c1"],
            &["create", "--detach", "c1"],
            &["create", "--preserve-fds", "+3", "c1"],
            &["create", "--preserve-fds", "99999999999", "c1"],
            &["exec", "c1", "--", "ls"],
            &["exec", "-e", "A", "c1", "-x"],
            &["exec", "-g", "x", "c1", "ls"],
            &["delete", "-fd", "c1"],
            &["state", "-", "c1"],
        ] {
            let a = argv(s);
            assert!(parse(&a).is_none(), "parsed without clap: {s:?}");
        }
        let bad = vec![OsString::from("rrun"), OsString::from("state"), {
            use std::os::unix::ffi::OsStringExt;
            OsString::from_vec(vec![0xff, b'x'])
        }];
        assert!(parse(&bad).is_none());
    }

    #[test]
    fn random_command_lines_agree_with_clap() {
        // Every mix of these words that the fast parser takes must mean
        // the same to clap.
        let words = [
            "create",
            "run",
            "start",
            "state",
            "kill",
            "delete",
            "exec",
            "c1",
            "c2",
            "/p",
            "--root",
            "--root=/x",
            "--log",
            "--log-format",
            "json",
            "text",
            "--debug",
            "--systemd-cgroup",
            "-b",
            "--bundle",
            "--bundle=/b",
            "--pid-file",
            "--console-socket",
            "--no-pivot",
            "--no-new-keyring",
            "--preserve-fds",
            "2",
            "--layer",
            "--upper",
            "-d",
            "--detach",
            "--keep",
            "-f",
            "--force",
            "-a",
            "--all",
            "9",
            "-e",
            "A=1",
            "-u",
            "-g",
            "--cwd",
            "--cap",
            "-t",
            "--tty",
            "--process",
            "--cgroup",
            "--no-new-privs",
            "ls",
            "-la",
            "",
        ];
        let mut x: u64 = 7;
        let mut taken = 0;
        for _ in 0..200_000 {
            let mut s = Vec::new();
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let n = 1 + (x >> 60) as usize % 9;
            for _ in 0..n {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                s.push(words[(x >> 33) as usize % words.len()]);
            }
            if agrees(&s) {
                taken += 1;
            }
        }
        assert!(taken > 1000, "only {taken} random command lines taken");
    }

    #[test]
    fn generated_command_lines_agree_with_clap() {
        // Well-formed lines with the options of each command in any order,
        // any form (`--opt v`, `--opt=v`, short), some repeated.
        let values = [
            "v", "/a/b", "a=b", "x y", "-", "-x", "3", "json", "text", "01", "é",
        ];
        let globals: &[(&str, bool)] = &[
            ("--root", true),
            ("--log", true),
            ("--log-format", true),
            ("--debug", false),
            ("--systemd-cgroup", false),
        ];
        let commands: &[(&str, &[(&str, bool)])] = &[
            (
                "create",
                &[
                    ("-b", true),
                    ("--bundle", true),
                    ("--console-socket", true),
                    ("--pid-file", true),
                    ("--no-pivot", false),
                    ("--no-new-keyring", false),
                    ("--preserve-fds", true),
                    ("--layer", true),
                    ("--upper", true),
                ],
            ),
            (
                "run",
                &[
                    ("-b", true),
                    ("--pid-file", true),
                    ("-d", false),
                    ("--detach", false),
                    ("--keep", false),
                    ("--layer", true),
                    ("--preserve-fds", true),
                ],
            ),
            ("start", &[]),
            ("state", &[]),
            ("kill", &[("-a", false), ("--all", false)]),
            ("delete", &[("-f", false), ("--force", false)]),
            (
                "exec",
                &[
                    ("-p", true),
                    ("--process", true),
                    ("-t", false),
                    ("--tty", false),
                    ("-d", false),
                    ("--pid-file", true),
                    ("-e", true),
                    ("--env", true),
                    ("--cwd", true),
                    ("-u", true),
                    ("-g", true),
                    ("--cap", true),
                    ("--no-new-privs", false),
                    ("--apparmor", true),
                    ("--preserve-fds", true),
                    ("--ignore-paused", false),
                    ("--cgroup", true),
                ],
            ),
        ];
        let mut x: u64 = 11;
        let mut rnd = |n: usize| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (x >> 33) as usize % n
        };
        let mut taken = 0;
        for _ in 0..20_000 {
            let (name, opts) = commands[rnd(commands.len())];
            let mut s: Vec<String> = Vec::new();
            let add = |s: &mut Vec<String>,
                       (o, takes): (&str, bool),
                       rnd: &mut dyn FnMut(usize) -> usize| {
                if !takes {
                    s.push(o.into());
                    return;
                }
                let v = values[rnd(values.len())];
                if o.starts_with("--") && rnd(2) == 0 {
                    s.push(format!("{o}={v}"));
                } else {
                    s.push(o.into());
                    s.push(v.into());
                }
            };
            for _ in 0..rnd(3) {
                add(&mut s, globals[rnd(globals.len())], &mut rnd);
            }
            s.push(name.into());
            let mut rest: Vec<Vec<String>> = Vec::new();
            for _ in 0..rnd(5) {
                let mut o = Vec::new();
                let pick = if opts.is_empty() || rnd(4) == 0 {
                    globals[rnd(globals.len())]
                } else {
                    opts[rnd(opts.len())]
                };
                add(&mut o, pick, &mut rnd);
                rest.push(o);
            }
            let ids = 1 + rnd(2);
            for i in 0..ids {
                rest.insert(
                    if name == "exec" {
                        rest.len()
                    } else {
                        rnd(rest.len() + 1)
                    },
                    vec![format!("c{i}")],
                );
            }
            if name == "exec" {
                for _ in 0..rnd(3) {
                    rest.push(vec![["ls", "-l", "--root", "a b"][rnd(4)].into()]);
                }
            }
            s.extend(rest.into_iter().flatten());
            let refs: Vec<&str> = s.iter().map(String::as_str).collect();
            if agrees(&refs) {
                taken += 1;
            }
        }
        assert!(taken > 3000, "only {taken} generated command lines taken");
    }
}
