//! Links rrun with the functions a launch runs first in its text segment,
//! in the order they are first called (`link/hot-functions.txt`, made by
//! `tests/bench/hot-functions.sh`).
//!
//! The kernel maps a program's text 64 KiB around each page fault; with the
//! code of a launch scattered over the whole text, nearly all of it was
//! mapped by every invocation (peak RSS of `run` 2.5 MiB), packed together
//! it takes fewer faults and less memory (docs/PERFORMANCE.md). Names the
//! list no longer matches (a renamed function) only cost locality: the
//! linker skips them without a warning.
//!
//! Only for x86_64 Linux, and only for the `rrun` binary, not the test
//! binaries. `--symbol-ordering-file` is lld's: with glibc, Rust links with
//! rust-lld by default since 1.90; with musl (rrun's target, see
//! .cargo/config.toml) it would use the system's `ld`, so this script points
//! the C compiler driver at the rust-lld that ships with the toolchain
//! (`-B <sysroot>/lib/rustlib/<host>/bin/gcc-ld -fuse-ld=lld`, what rustc
//! itself passes for its self-contained linker). `RRUN_SYMBOL_ORDER=0`
//! leaves the ordering out, for a build that links with another linker.

fn main() {
    let list = "link/hot-functions.txt";
    println!("cargo:rerun-if-changed={list}");
    println!("cargo:rerun-if-env-changed=RRUN_SYMBOL_ORDER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    let linux_x86_64 =
        var("CARGO_CFG_TARGET_ARCH") == "x86_64" && var("CARGO_CFG_TARGET_OS") == "linux";
    let mut lld = linux_x86_64 && var("CARGO_CFG_TARGET_ENV") == "gnu";
    if linux_x86_64 && var("CARGO_CFG_TARGET_ENV") == "musl" {
        lld = use_rust_lld(&var("RUSTC"), &var("HOST"));
    }
    if var("RRUN_SYMBOL_ORDER") != "0" && lld {
        let path = std::path::Path::new(&var("CARGO_MANIFEST_DIR")).join(list);
        println!(
            "cargo:rustc-link-arg-bin=rrun=-Wl,--symbol-ordering-file={}",
            path.display()
        );
        println!("cargo:rustc-link-arg-bin=rrun=-Wl,--no-warn-symbol-ordering");
    }
    // The linker's map of the binary (every symbol's address), for
    // hot-functions.sh: the release build strips its symbols, and a build
    // that keeps them is another profile, whose symbol names differ.
    println!("cargo:rerun-if-env-changed=RRUN_LINK_MAP");
    if let Ok(map) = std::env::var("RRUN_LINK_MAP") {
        println!("cargo:rustc-link-arg-bin=rrun=-Wl,-Map={map}");
        // Names as the symbol table has them, which the ordering matches.
        println!("cargo:rustc-link-arg-bin=rrun=-Wl,--no-demangle");
    }
}

/// Links every binary of the package (rrun and the tests) with the rust-lld
/// of the toolchain that builds it. False (with a warning) when the
/// toolchain has none: the system's linker is used and rrun is built
/// without the ordering.
fn use_rust_lld(rustc: &str, host: &str) -> bool {
    let sysroot = std::process::Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    let Some(sysroot) = sysroot else {
        println!("cargo:warning=cannot ask {rustc} for its sysroot; linking with the system's ld");
        return false;
    };
    let gcc_ld = std::path::Path::new(&sysroot).join(format!("lib/rustlib/{host}/bin/gcc-ld"));
    if !gcc_ld.join("ld.lld").exists() {
        println!(
            "cargo:warning=no rust-lld in {}; linking with the system's ld",
            gcc_ld.display()
        );
        return false;
    }
    println!("cargo:rustc-link-arg=-B{}", gcc_ld.display());
    println!("cargo:rustc-link-arg=-fuse-ld=lld");
    true
}
