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
//! Only for x86_64 Linux with glibc, whose default linker since Rust 1.90
//! is rust-lld (`--symbol-ordering-file` is lld's), and only for the `rrun`
//! binary, not the test binaries. `RRUN_SYMBOL_ORDER=0` leaves it out, for
//! a build that links with another linker.

fn main() {
    let list = "link/hot-functions.txt";
    println!("cargo:rerun-if-changed={list}");
    println!("cargo:rerun-if-env-changed=RRUN_SYMBOL_ORDER");
    let var = |k: &str| std::env::var(k).unwrap_or_default();
    if var("RRUN_SYMBOL_ORDER") != "0"
        && var("CARGO_CFG_TARGET_ARCH") == "x86_64"
        && var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
    {
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
