//! `cargo xtask test`: the project's whole test suite, the command README.md names.
//!
//! 1. `cargo test --workspace --locked` as the invoking user.
//! 2. When run as root, the sandbox battery (`tests/sandbox_*.rs`) again with the sandbox started
//!    as an unprivileged user (`bureau-test`, created if missing), because rootless operation is a
//!    promise, not an accident of the machine CI runs on.

use std::process::Command;

use crate::process::{self, cargo, find_on_path, workspace_root};

/// The unprivileged account the second pass runs sandboxes as.
const TEST_USER: &str = "bureau-test";

/// Test targets that start sandboxes.
const SANDBOX_TESTS: [&str; 2] = ["sandbox_escape", "sandbox_process"];

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.first() {
        return Err(format!("test takes no arguments (got {unknown:?})"));
    }
    let root = workspace_root();
    process::run(
        cargo()
            .current_dir(&root)
            .args(["test", "--workspace", "--locked"]),
    )?;

    let is_root = process::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    if !is_root {
        println!("xtask test: not root, so the unprivileged sandbox pass is the pass above");
        return Ok(());
    }
    let (uid, gid) = ensure_test_user()?;
    println!("\nxtask test: sandbox battery again, sandboxes started as {TEST_USER} (uid {uid})");
    let mut command = cargo();
    command
        .current_dir(&root)
        .args(["test", "--locked"])
        .env("BUREAU_TEST_SANDBOX_UID", uid.to_string())
        .env("BUREAU_TEST_SANDBOX_GID", gid.to_string());
    for test in SANDBOX_TESTS {
        command.args(["--test", test]);
    }
    process::run(&mut command)
}

/// Creates the unprivileged test account if it does not exist; returns its uid and gid.
fn ensure_test_user() -> Result<(u32, u32), String> {
    let lookup = || -> Option<(u32, u32)> {
        let uid = process::output(Command::new("id").args(["-u", TEST_USER])).ok()?;
        let gid = process::output(Command::new("id").args(["-g", TEST_USER])).ok()?;
        Some((uid.trim().parse().ok()?, gid.trim().parse().ok()?))
    };
    if let Some(ids) = lookup() {
        return Ok(ids);
    }
    if find_on_path("useradd").is_none() {
        return Err(format!(
            "cannot create the unprivileged test user {TEST_USER}: useradd is missing"
        ));
    }
    process::run(Command::new("useradd").args([
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        TEST_USER,
    ]))?;
    lookup().ok_or_else(|| format!("created {TEST_USER} but cannot look it up"))
}
