//! The binary as an operator meets it: applets chosen by argv[0] through real symlinks written by
//! `bureau install`, the same behaviour through `bureau <applet>`, and `bureau naming check`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BINARY: &str = env!("CARGO_BIN_EXE_bureau");

/// A directory holding `bureau` (a copy of the test binary) and its applet symlinks.
struct Installed {
    _dir: tempfile::TempDir,
    bin_dir: PathBuf,
}

fn install() -> Installed {
    let dir = tempfile::tempdir().expect("tempdir");
    let bin_dir = dir.path().join("bin");
    std::fs::create_dir(&bin_dir).expect("mkdir bin");
    std::fs::copy(BINARY, bin_dir.join("bureau")).expect("copy binary");
    let output = run(
        &bin_dir.join("bureau"),
        &["install", "--bin-dir", path_str(&bin_dir)],
    );
    assert!(
        output.status.success(),
        "install failed: {}",
        stderr(&output)
    );
    Installed { _dir: dir, bin_dir }
}

fn run(program: &Path, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run bureau")
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("utf-8 temp path")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn applet_help_is_identical_through_symlink_and_subcommand() {
    let installed = install();
    for applet in [
        "sandbox",
        "launcher",
        "daemon",
        "proxy",
        "bridge",
        "doctor",
        "proxy-call",
    ] {
        let via_link = run(
            &installed.bin_dir.join(format!("bureau-{applet}")),
            &["--help"],
        );
        let via_cli = run(&installed.bin_dir.join("bureau"), &[applet, "--help"]);
        assert!(via_link.status.success(), "bureau-{applet} --help failed");
        assert_eq!(via_link.status.code(), via_cli.status.code(), "{applet}");
        assert_eq!(stdout(&via_link), stdout(&via_cli), "{applet}");
        assert!(
            stdout(&via_link).contains(&format!("bureau-{applet}")),
            "help names the command: {}",
            stdout(&via_link)
        );
    }
}

#[test]
fn unknown_applet_name_exits_2_and_lists_the_applets() {
    let installed = install();
    let nonsense = installed.bin_dir.join("bureau-nonsense");
    std::os::unix::fs::symlink("bureau", &nonsense).expect("symlink");
    let output = run(&nonsense, &[]);
    assert_eq!(output.status.code(), Some(2));
    let message = stderr(&output);
    assert!(message.contains("bureau-nonsense"), "{message}");
    for applet in [
        "bureau-launcher",
        "bureau-daemon",
        "bureau-sandbox",
        "bureau-proxy-call",
    ] {
        assert!(message.contains(applet), "missing {applet} in: {message}");
    }
}

#[test]
fn version_names_commit_and_target() {
    let output = run(Path::new(BINARY), &["--version"]);
    assert!(output.status.success());
    let line = stdout(&output);
    assert!(line.starts_with("bureau 0."), "{line}");
    assert!(line.contains("commit "), "{line}");
    assert!(line.contains("-linux-"), "target triple missing: {line}");
}

#[test]
fn naming_check_accepts_a_good_name_and_shows_its_forms() {
    let output = run(
        Path::new(BINARY),
        &[
            "naming",
            "check",
            "acme/fleet/prod/agent/pm",
            "--server",
            "bureau.local",
        ],
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.contains("@acme/fleet/prod/agent/pm:bureau.local"),
        "{text}"
    );
    assert!(
        text.contains("#acme/fleet/prod/agent/pm:bureau.local"),
        "{text}"
    );
    assert!(
        text.contains("/run/bureau/acme/fleet/prod/agent/pm.proxy.sock"),
        "{text}"
    );
}

#[test]
fn naming_check_rejects_each_bad_name_with_its_problem() {
    let too_long = "a".repeat(85);
    let cases: [(&str, &str); 6] = [
        ("acme/../x", "\"..\""),
        ("Acme/x", "'A'"),
        ("/a", "starts with '/'"),
        ("a//b", "empty segment"),
        (".hidden/x", "\".hidden\""),
        (&too_long, "85"),
    ];
    for (name, expected) in cases {
        let output = run(Path::new(BINARY), &["naming", "check", name]);
        assert_eq!(output.status.code(), Some(1), "{name} should be rejected");
        let message = stderr(&output);
        assert!(
            message.contains(expected),
            "error for {name:?} should mention {expected}: {message}"
        );
    }
}

#[test]
fn naming_check_json_reports_every_name() {
    let output = run(
        Path::new(BINARY),
        &["naming", "check", "--json", "acme/agent/pm", "acme/../x"],
    );
    assert_eq!(output.status.code(), Some(1));
    let reports: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(reports[0]["valid"], true);
    assert_eq!(reports[0]["max_length"], 84);
    assert_eq!(reports[1]["valid"], false);
    assert!(
        reports[1]["error"]
            .as_str()
            .expect("error text")
            .contains("..")
    );
}

#[test]
fn naming_match_follows_segment_rules() {
    let matches = |pattern: &str, name: &str| {
        run(Path::new(BINARY), &["naming", "match", pattern, name])
            .status
            .code()
    };
    assert_eq!(
        matches("acme/fleet/*/agent/**", "acme/fleet/prod/agent/pm"),
        Some(0)
    );
    assert_eq!(matches("acme/*", "acme/fleet/prod"), Some(1));
    assert_eq!(matches("acme/a**b", "acme/ab"), Some(2));
    assert_eq!(
        matches("acme/**:bureau.*", "@acme/agent/pm:bureau.local"),
        Some(0)
    );
}

#[test]
fn planned_applet_says_not_implemented_and_exits_2() {
    let output = run(Path::new(BINARY), &["doctor"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("not implemented yet"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn no_command_prints_usage_and_exits_2() {
    let output = run(Path::new(BINARY), &[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("Usage: bureau"),
        "{}",
        stderr(&output)
    );
}
