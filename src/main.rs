//! rrun's command-line entry point: parse, dispatch, report errors the
//! way runc does. Everything else lives in the library (src/lib.rs).

// A C `main` instead of Rust's: see `sys::process_start` for what the
// runtime's start did that rrun keeps, and what it skips. (Tests get the
// test harness's main.)
#![cfg_attr(not(test), no_main)]

use clap::Parser;
use rrun::{cli, commands, launch, logging, timing, SPEC_VERSION};

/// The process's entry, called by the C library's start with the command
/// line. (`std::env::args_os` would be empty: with musl, std learns the
/// arguments only from its own `main`, which rrun does not use.)
#[cfg(not(test))]
#[no_mangle]
extern "C" fn main(argc: libc::c_int, argv: *const *const libc::c_char) -> libc::c_int {
    rrun::sys::process_start();
    // SAFETY: the C start hands `main` argc valid C strings in argv.
    let args = unsafe { rrun::sys::args_from_c(argc, argv) };
    run(&args)
}

#[cfg_attr(test, allow(dead_code))]
fn run(args: &[std::ffi::OsString]) -> ! {
    let start = timing::now_usec();
    // The common command lines without clap's cost; the rest (and every
    // error) through clap.
    let cli = cli::fast::parse(args).unwrap_or_else(|| cli::Cli::parse_from(args));
    let g = &cli.global;
    logging::init(g.log.as_deref(), g.log_format, g.debug);
    if g.debug {
        timing::enable();
        timing::mark_at("main", start);
        timing::mark("cli-parsed");
    }
    let result = dispatch(&cli);
    timing::mark("done");
    timing::report();
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // One line: the chain of contexts joined, as runc prints errors.
            let msg = format!("{e:#}").replace('\n', " ");
            logging::error(&msg);
            // runc's exec exits 255 on its own errors (1..254 are the
            // process's); every other command exits 1.
            let code = if matches!(cli.command, Some(cli::Command::Exec(_))) {
                255
            } else {
                1
            };
            std::process::exit(code);
        }
    }
}

fn dispatch(cli: &cli::Cli) -> anyhow::Result<i32> {
    use cli::Command::*;
    let g = &cli.global;
    let Some(command) = &cli.command else {
        if cli.version {
            println!("rrun version {}", env!("CARGO_PKG_VERSION"));
            println!("spec: {}", SPEC_VERSION);
            return Ok(0);
        }
        use clap::CommandFactory;
        cli::Cli::command().print_help()?;
        return Ok(0);
    };
    match command {
        Create(c) => launch::create(g, c).map(|_| 0),
        Start { id } => launch::start(g, id).map(|_| 0),
        Run(r) => launch::run(g, r),
        State { id } => commands::state(g, id).map(|_| 0),
        Kill { all, id, signal } => commands::kill(g, id, signal.as_deref(), *all).map(|_| 0),
        Delete { force, ids } => commands::delete(g, ids, *force).map(|_| 0),
        List { format, quiet } => commands::list(g, *format, *quiet).map(|_| 0),
        Exec(e) => launch::exec::exec(g, e),
        Pause { id } => commands::cgroup::pause(g, id).map(|_| 0),
        Resume { id } => commands::cgroup::resume(g, id).map(|_| 0),
        Ps {
            format,
            id,
            ps_args,
        } => commands::cgroup::ps(g, id, *format, ps_args).map(|_| 0),
        Events {
            stats,
            interval,
            id,
        } => commands::cgroup::events(g, id, *stats, interval).map(|_| 0),
        Update(u) => commands::cgroup::update(g, u).map(|_| 0),
        Features => commands::features().map(|_| 0),
        Commit { image, id, output } => {
            rrun::image::commit::commit(g, id, output.as_deref(), image.as_deref()).map(|_| 0)
        }
        Bundle { image, bundle } => rrun::image::bundle::create(image, bundle).map(|_| 0),
        Checkpoint(c) => rrun::checkpoint::checkpoint(g, c).map(|_| 0),
        Restore(r) => rrun::checkpoint::restore::restore(g, r),
        Spec { bundle, rootless } => commands::spec(bundle.as_deref(), *rootless).map(|_| 0),
    }
}

/// musl's own allocator (mallocng) maps and unmaps pages for small
/// allocations as they come and go (a `create` made ~40 `mmap`s and
/// `munmap`s with it); dlmalloc takes memory 64 KiB at a time and reuses it,
/// as glibc's malloc did.
#[cfg(target_env = "musl")]
#[global_allocator]
static ALLOC: dlmalloc::GlobalDlmalloc = dlmalloc::GlobalDlmalloc;
