//! `cargo xtask …`: the project's own build and test tooling.
//!
//! - `quickstart`: a whole local Bureau and its demo (README command 1).
//! - `dist`: the static release binary in `dist/`, with the applet symlinks.
//! - `test`: the whole test suite (README's test command), with an unprivileged sandbox pass.
//! - `bench`: speed as ratios against named peers measured in the same run.
//! - `homeserver`: a local Synapse for development, kept running between commands.
//! - `link`: not for people; the release build's linker, set up by `dist` (`layout.rs`).
//!
//! xtask depends on the `bureau` library (for `bureau::homeserver`, the same harness the
//! integration tests use), `serde_json`, and tokio/hyper for the proxy benchmark's load
//! generator and upstream; its first build compiles the library.

mod bench;
mod bench_matrix;
mod bench_proxy;
mod bench_runtime;
mod dist;
mod homeserver;
mod layout;
mod pgo;
mod process;
mod quickstart;
mod test;
mod toolchain;

use std::process::ExitCode;

const USAGE: &str = "Usage: cargo xtask <command>

Commands:
  quickstart [--once]
           a whole Bureau here: build, local Synapse, this machine's launcher and daemon,
           a demo principal greeting its room and calling a service with a secret it never
           sees; runs until Ctrl-C (--once: stop after the demo, exit 0 only if it worked)
  dist     build the static binary (x86_64-unknown-linux-musl, mimalloc) into dist/,
           write the applet symlinks, check that it is statically linked, print its size
  test     the whole test suite; as root, the sandbox battery again as an unprivileged user
  bench sandbox [--runs N]
           sandbox start-up against bwrap, unshare and bare fork+exec (ratios)
  bench matrix
           send → sync delivery through our client against a Python stdlib client
  bench proxy [--seconds N]
           proxy throughput/latency against nginx and a direct connection; idle memory
  bench runtime [--debug] [--log-level LEVEL]
           machine_config published → principal's first output, against send → sync delivery
  homeserver up|down|status [--port N] [--json]
           a local Synapse on 127.0.0.1 for development (kept running; admin/admin-password)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dist") => dist::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
        Some("quickstart") => quickstart::run(&args[1..]),
        Some("homeserver") => homeserver::run(&args[1..]),
        // Not for people: the release build's linker (`dist` sets it up; see layout.rs).
        Some("link") => layout::link(&args[1..]),
        Some("--help" | "-h" | "help") | None => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Some(other) => Err(format!("unknown command {other:?}\n\n{USAGE}")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}
