//! `cargo xtask …`: the project's own build and test tooling.
//!
//! - `dist`: the static release binary in `dist/`, with the applet symlinks.
//! - `test`: the whole test suite (README's test command), with an unprivileged sandbox pass.
//! - `bench`: speed as ratios against named peers measured in the same run.
//!
//! xtask has no dependencies so that it builds in seconds on a fresh machine.

mod bench;
mod dist;
mod process;
mod test;

use std::process::ExitCode;

const USAGE: &str = "Usage: cargo xtask <command>

Commands:
  dist     build the static binary (x86_64-unknown-linux-musl, mimalloc) into dist/,
           write the applet symlinks, check that it is statically linked, print its size
  test     the whole test suite; as root, the sandbox battery again as an unprivileged user
  bench sandbox [--runs N]
           sandbox start-up against bwrap, unshare and bare fork+exec (ratios)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("dist") => dist::run(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("test") => test::run(&args[1..]),
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
