//! Profile-guided optimisation of the shipped binary (used by `cargo xtask dist`).
//!
//! `bureau` is compiled twice. The first build is instrumented (`-Cprofile-generate`) and run
//! through the work Bureau's speed targets are about: requests through `bureau proxy` injecting
//! a credential (64 connections, one, then one request on its own connection), proxies starting
//! and idling, and sandboxes starting with full isolation (`bench_proxy::train`,
//! `bench::train_sandbox`). The second build uses the profile (`-Cprofile-use`): LLVM keeps the
//! code those paths run together (`.text.hot`), moves the code they never run out of the way
//! (`.text.unlikely`, optimised for size), and lays out branches the way they are taken.
//!
//! Why: the binary holds every applet, so without a profile the few hundred functions a request
//! runs are scattered across 8 MiB of code. Each first touch of a page maps 64 KiB of the file
//! around it, and the CPU's caches hold little of what the next request needs. Measured with
//! `cargo xtask bench proxy`, same source, before → after: req/s 0.91–1.00× → 1.10–1.11×
//! nginx's; CPU per request 1.06–1.17× → 0.95–0.96× nginx's; added p50 latency at one
//! connection 62–66 → 42–48 µs (nginx: 40–48); an idle proxy's VmRSS 7.6 → 4.7–4.8 MiB.
//! Tried and not kept: fat LTO with one codegen unit (idle VmRSS 4.5 MiB, no faster, build
//! twice as long); `-profile-summary-cutoff-hot=999999` (VmRSS 5.7 MiB). The same profile
//! also orders the functions at link time (`layout.rs`).
//!
//! What a profile costs: code no training run reaches (the daemon's and launcher's Matrix
//! work, the CLI) is optimised for size rather than speed. Those paths wait on the network and
//! the homeserver, not on the CPU.
//!
//! The profile is rebuilt only when the instrumented binary or xtask (which holds the training)
//! changed since it was written.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::process::{self, cargo};
use crate::toolchain;

/// Builds the instrumented binary, trains it and returns the merged profile
/// (`target/pgo/bureau.profdata`), ready for `-Cprofile-use`.
pub fn profile(root: &Path, target: &str) -> Result<PathBuf, String> {
    let profdata_tool = toolchain::llvm_tool("llvm-profdata")?;
    let pgo = root.join("target/pgo");
    let raw = pgo.join("raw");
    let merged = pgo.join("bureau.profdata");
    let instrumented_target = pgo.join("instrumented");

    let started = Instant::now();
    process::run(
        release_build(
            root,
            target,
            &format!("-Cprofile-generate={}", raw.display()),
        )
        .env("CARGO_TARGET_DIR", &instrumented_target),
    )?;
    let instrumented = instrumented_target.join(target).join("release/bureau");
    // The training lives in this program, so a changed xtask trains again too.
    let trainer = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
    if is_newer(&merged, &instrumented) && is_newer(&merged, &trainer) {
        println!(
            "pgo: the profile is newer than the instrumented build and its training; reusing it"
        );
        return Ok(merged);
    }

    if raw.exists() {
        fs::remove_dir_all(&raw)
            .map_err(|error| format!("cannot clear {}: {error}", raw.display()))?;
    }
    println!("pgo: training the instrumented build (proxy requests, sandbox starts) …");
    crate::bench_proxy::train(&instrumented)?;
    if let Err(error) = crate::bench::train_sandbox(&instrumented) {
        // A build machine without user namespaces can still build; the profile then has no
        // sandbox start in it, and the binary is only slower there.
        eprintln!("pgo: warning: sandbox training skipped, {error}");
    }
    process::run(
        Command::new(&profdata_tool)
            .args(["merge", "--output"])
            .arg(&merged)
            .arg(&raw),
    )?;
    println!(
        "pgo: profile {} ({:.0} s for the instrumented build and its training)",
        merged.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(merged)
}

/// `cargo build --release` of the `bureau` binary for `target`, with `rustflags` appended to
/// the caller's `$RUSTFLAGS`.
pub fn release_build(root: &Path, target: &str, rustflags: &str) -> Command {
    let flags = match std::env::var("RUSTFLAGS") {
        Ok(existing) if !existing.trim().is_empty() => format!("{existing} {rustflags}"),
        _ => rustflags.to_owned(),
    };
    let mut command = cargo();
    command.current_dir(root).env("RUSTFLAGS", flags).args([
        "build",
        "--release",
        "--locked",
        "--bin",
        "bureau",
        "--target",
        target,
    ]);
    command
}

/// `path` exists and was modified after `than` (which exists).
pub fn is_newer(path: &Path, than: &Path) -> bool {
    let modified = |path: &Path| fs::metadata(path).and_then(|metadata| metadata.modified());
    matches!((modified(path), modified(than)), (Ok(path), Ok(than)) if path > than)
}
