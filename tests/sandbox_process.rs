//! The sandbox as a process: exit statuses, signals, reaping, die-with-parent, setup errors,
//! and the options that shape the command's world (cwd, env, stdio, the printed spec).
//!
//! Run as root, then again unprivileged (see `support`).

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use support::*;

#[test]
fn exit_codes_propagate() {
    for status in [0, 3, 255] {
        let output = sandbox(&["--", "/usr/bin/bash", "-c", &format!("exit {status}")]);
        assert_eq!(code(&output), status, "{}", describe(&output));
    }
}

#[test]
fn death_by_signal_exits_128_plus_the_signal() {
    for (signal, status) in [("KILL", 137), ("TERM", 143), ("SEGV", 139)] {
        let output = sandbox(&["--", "/usr/bin/bash", "-c", &format!("kill -{signal} $$")]);
        assert_eq!(code(&output), status, "SIG{signal}\n{}", describe(&output));
    }
}

#[test]
fn a_pipe_closed_early_ends_the_writer_quietly_by_sigpipe() {
    // `yes` is killed by SIGPIPE when `head` exits, as in any shell; were SIGPIPE left ignored
    // (the supervisor's Rust runtime ignores it), `yes` would fail with EPIPE and say so.
    let output = sandbox(&[
        "--",
        "/usr/bin/bash",
        "-c",
        "yes | head -n 1; echo \"statuses ${PIPESTATUS[*]}\"",
    ]);
    assert_success(&output);
    assert_line(&output, "statuses 141 0");
    assert!(
        !stderr(&output).contains("Broken pipe"),
        "{}",
        describe(&output)
    );
}

/// Starts `script` in the sandbox with stdout piped and returns once it printed its first line
/// (so the sandbox is fully set up and the command is running).
fn start_ready(options: &[&str], script: &str) -> (Child, BufReader<std::process::ChildStdout>) {
    let mut args: Vec<&str> = options.to_vec();
    args.extend(["--", "/usr/bin/bash", "-c", script]);
    let mut command = sandbox_command(&args);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start bureau");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("read the ready line");
    assert_eq!(line, "ready\n", "the sandbox did not start");
    (child, stdout)
}

#[test]
fn sigterm_to_the_supervisor_is_forwarded() {
    let (child, _stdout) = start_ready(&[], "echo ready; exec sleep 30");
    let watchdog = Watchdog::arm(&child, Duration::from_secs(20));
    let started = Instant::now();
    let pidfd = pidfd_open(child.id());
    pidfd_kill(&pidfd, libc::SIGTERM);
    let output = child.wait_with_output().expect("wait");
    assert!(
        !watchdog.disarm(),
        "SIGTERM was not forwarded: still running"
    );
    // The supervisor handled it (exit status, not death by signal) with the command's status.
    assert_eq!(code(&output), 143, "{}", describe(&output));
    assert!(started.elapsed() < Duration::from_secs(10));
}

/// Host pids whose parent is `parent` (from /proc/*/stat).
fn children_of(parent: u32) -> Vec<u32> {
    let mut children = Vec::new();
    for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|name| name.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces, so split after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|ppid| ppid.parse::<u32>().ok());
        if ppid == Some(parent) {
            children.push(pid);
        }
    }
    children
}

fn cmdline(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|bytes| String::from_utf8_lossy(&bytes).replace('\0', " "))
        .unwrap_or_default()
}

#[test]
fn killing_the_supervisor_kills_the_sandbox() {
    let (child, _stdout) = start_ready(&[], "echo ready; exec sleep 31337");
    let supervisor = child.id();
    // supervisor → init (pid 1 inside) → the command (pid 2 inside), found from the host.
    let init = children_of(supervisor);
    assert_eq!(init.len(), 1, "the supervisor's children: {init:?}");
    let command = children_of(init[0]);
    assert_eq!(command.len(), 1, "the init's children: {command:?}");
    let command = command[0];
    // The pidfds are taken while both run, so they cannot refer to recycled pids.
    let init_fd = pidfd_open(init[0]);
    let command_fd = pidfd_open(command);
    assert!(cmdline(command).contains("31337"), "{}", cmdline(command));

    let mut child = child;
    pidfd_kill(&pidfd_open(supervisor), libc::SIGKILL);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), None, "the supervisor was killed");
    assert_exits(
        &command_fd,
        &format!("the sandboxed `sleep 31337` (host pid {command})"),
    );
    assert_exits(&init_fd, "the sandbox's init");
}

/// Asserts that the process behind `pidfd` exits within 10 s (kills it if not, then fails).
fn assert_exits(pidfd: &std::os::fd::OwnedFd, what: &str) {
    if !wait_for_exit(pidfd, Duration::from_secs(10)) {
        pidfd_kill(pidfd, libc::SIGKILL);
        panic!("{what} outlived its supervisor");
    }
}

#[test]
fn killing_the_supervisor_kills_a_sandbox_mapped_to_another_user() {
    // Mapping the sandbox to another host user changes the init's credentials after clone,
    // which makes the kernel forget the parent-death signal unless it is set again.
    let shared = SharedDir::new();
    let printed = sandbox(&[
        "--print-spec",
        "--",
        "/usr/bin/bash",
        "-c",
        "echo ready; exec sleep 31338",
    ]);
    assert_success(&printed);
    let mut spec: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("spec json");
    let other = if bureau_is_root() { 65534 } else { 0 };
    spec["identity"]["host_uid"] = serde_json::json!(other);
    spec["identity"]["host_gid"] = serde_json::json!(other);
    let spec_file = shared.file("spec.json", &spec.to_string());
    let spec_file = spec_file.to_str().expect("utf-8");

    if !bureau_is_root() {
        // Only root may choose the host user: refused before anything starts.
        let output = sandbox(&["--spec", spec_file]);
        assert_eq!(code(&output), 125, "{}", describe(&output));
        assert!(
            stderr(&output).contains("only root may map"),
            "{}",
            describe(&output)
        );
        return;
    }
    let mut command = sandbox_command(&["--spec", spec_file]);
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = command.spawn().expect("start bureau");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    stdout.read_line(&mut line).expect("ready line");
    assert_eq!(line, "ready\n");
    let init = children_of(child.id());
    assert_eq!(init.len(), 1, "{init:?}");
    let command_pid = children_of(init[0]);
    assert_eq!(command_pid.len(), 1, "{command_pid:?}");
    let status = std::fs::read_to_string(format!("/proc/{}/status", command_pid[0]))
        .expect("command status");
    assert!(
        status.contains(&format!("Uid:\t{other}\t")),
        "the command runs as host uid {other}: {status}"
    );
    let init_fd = pidfd_open(init[0]);
    let command_fd = pidfd_open(command_pid[0]);
    pidfd_kill(&pidfd_open(child.id()), libc::SIGKILL);
    child.wait().expect("wait");
    assert_exits(&command_fd, "the sandboxed command");
    assert_exits(&init_fd, "the sandbox's init");
}

#[test]
fn orphans_are_reaped_by_the_init() {
    let output = sandbox_py(
        &[],
        r#"
import time
r, w = os.pipe()
report_r, report_w = os.pipe()
middle = os.fork()
if middle == 0:
    orphan = os.fork()
    if orphan == 0:
        os.close(w)
        os.read(r, 1)  # EOF once the command closes its end: then exit, as an orphan
        os._exit(0)
    os.write(report_w, str(orphan).encode())
    os._exit(0)  # the orphan is now the init's child
os.close(report_w)
orphan = int(os.read(report_r, 32))
os.waitpid(middle, 0)
ppid = [l.split()[1] for l in open(f"/proc/{orphan}/status") if l.startswith("PPid:")][0]
print("orphan_parent", ppid, flush=True)
os.close(w)
# Reaping by another process has no event we can wait on: poll /proc, bounded (5 s).
deadline = time.monotonic() + 5
while os.path.exists(f"/proc/{orphan}") and time.monotonic() < deadline:
    time.sleep(0.01)
print("orphan_gone", not os.path.exists(f"/proc/{orphan}"))
zombies = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except OSError:
        continue
    if stat.rsplit(")", 1)[1].split()[0] == "Z":
        zombies.append(pid)
print("zombies", zombies)
"#,
    );
    assert_success(&output);
    assert_line(&output, "orphan_parent 1");
    assert_line(&output, "orphan_gone True");
    assert_line(&output, "zombies []");
}

#[test]
fn command_not_found_exits_127_naming_it() {
    let output = sandbox(&["--", "bureau-no-such-command"]);
    assert_eq!(code(&output), 127, "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("bureau-no-such-command"), "{message}");
    assert!(message.contains("Hint:"), "{message}");
    // An absolute path outside the sandbox (it exists on the host) is not found either.
    let output = sandbox(&["--", "/etc/hostname"]);
    assert_eq!(code(&output), 127, "{}", describe(&output));
    assert!(
        stderr(&output).contains("/etc/hostname"),
        "{}",
        describe(&output)
    );
}

#[test]
fn not_executable_exits_126() {
    let output = sandbox(&["--", "/usr/lib/os-release"]);
    assert_eq!(code(&output), 126, "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("/usr/lib/os-release"), "{message}");
    assert!(message.contains("not executable"), "{message}");
    // A directory cannot be executed either.
    let output = sandbox(&["--", "/usr/bin"]);
    assert_eq!(code(&output), 126, "{}", describe(&output));
    // Nor can a path through a file (ENOTDIR): a shell says 126 and "Not a directory" too.
    let output = sandbox(&["--", "/usr/lib/os-release/command"]);
    assert_eq!(code(&output), 126, "{}", describe(&output));
    assert!(
        stderr(&output).contains("Not a directory"),
        "{}",
        describe(&output)
    );
}

#[test]
fn setup_failure_names_the_step_and_the_path() {
    // Found by the supervisor before anything starts.
    let output = sandbox(&["--ro", "/nonexistent-bureau-source", "--", "true"]);
    assert_eq!(code(&output), 125, "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("bind source"), "{message}");
    assert!(message.contains("/nonexistent-bureau-source"), "{message}");
    assert!(message.contains("No such file or directory"), "{message}");
    // Found inside the new namespaces, reported through the setup pipe with the step's name.
    let output = sandbox(&["--cwd", "/nonexistent-bureau-cwd", "--", "true"]);
    assert_eq!(code(&output), 125, "{}", describe(&output));
    let message = stderr(&output);
    assert!(message.contains("step \"chdir\""), "{message}");
    assert!(message.contains("/nonexistent-bureau-cwd"), "{message}");
    // A usage error is not a setup failure.
    let output = sandbox(&["--env", "NO_EQUALS_SIGN", "--", "true"]);
    assert_eq!(code(&output), 2, "{}", describe(&output));
}

#[test]
fn cwd_option_sets_the_working_directory() {
    let output = sandbox(&["--", "pwd"]);
    assert_eq!(stdout(&output), "/\n", "{}", describe(&output));
    let output = sandbox(&["--cwd", "/usr/lib", "--", "pwd"]);
    assert_eq!(stdout(&output), "/usr/lib\n", "{}", describe(&output));
    let shared = SharedDir::new();
    let output = sandbox(&[
        "--rw",
        shared.str(),
        "--cwd",
        shared.str(),
        "--",
        "touch",
        "here",
    ]);
    assert_success(&output);
    assert!(
        shared.path().join("here").exists(),
        "relative paths use the cwd"
    );
}

#[test]
fn env_option_sets_variables() {
    let output = sandbox(&[
        "--env",
        "GREETING=hello world",
        "--env",
        "EMPTY=",
        "--env",
        "PATH=/usr/bin",
        "--",
        "/usr/bin/env",
    ]);
    assert_success(&output);
    let mut lines: Vec<String> = stdout(&output).lines().map(str::to_owned).collect();
    lines.sort();
    assert_eq!(
        lines,
        ["EMPTY=", "GREETING=hello world", "PATH=/usr/bin"],
        "{}",
        describe(&output)
    );
}

#[test]
fn stdin_stdout_and_stderr_pass_through() {
    let mut command = sandbox_command(&["--", "/usr/bin/bash", "-c", "cat; echo oops >&2"]);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("start bureau");
    let watchdog = Watchdog::arm(&child, DEADLINE);
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"hello\n").expect("write stdin");
    drop(stdin);
    let output = child.wait_with_output().expect("wait");
    assert!(!watchdog.disarm(), "cat did not see EOF");
    assert_success(&output);
    assert_eq!(stdout(&output), "hello\n");
    assert_eq!(stderr(&output), "oops\n");
}

#[test]
fn print_spec_shows_the_defaults() {
    let output = sandbox(&["--print-spec", "--", "/usr/bin/true"]);
    assert_success(&output);
    let spec: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(spec["command"], serde_json::json!(["/usr/bin/true"]));
    for namespace in ["user", "mount", "pid", "net", "ipc", "uts", "cgroup"] {
        assert_eq!(spec["namespaces"][namespace], true, "{namespace}");
    }
    let environment = spec["environment"].as_object().expect("environment");
    assert_eq!(
        environment.keys().collect::<Vec<_>>(),
        ["PATH"],
        "only PATH"
    );
    assert_eq!(spec["cwd"], "/");
    assert_eq!(spec["hostname"], "sandbox");
    assert_eq!(spec["seccomp"], "default");
    assert_eq!(spec["landlock"]["enabled"], true);
    for flag in ["no_new_privs", "drop_capabilities", "die_with_parent"] {
        assert_eq!(spec["security"][flag], true, "{flag}");
    }
    let mounts = spec["filesystem"].as_array().expect("filesystem");
    let has = |kind: &str, destination: &str| {
        mounts
            .iter()
            .any(|mount| mount["type"] == kind && mount["destination"] == destination)
    };
    assert!(has("ro-bind", "/usr"), "{mounts:?}");
    assert!(has("proc", "/proc"), "{mounts:?}");
    assert!(has("dev", "/dev"), "{mounts:?}");
    assert!(has("tmpfs", "/tmp"), "{mounts:?}");
    assert!(!mounts.iter().any(|mount| mount["type"] == "rw-bind"));
    // Options show up in the printed spec.
    let output = sandbox(&[
        "--print-spec",
        "--net",
        "host",
        "--pids-max",
        "7",
        "--",
        "true",
    ]);
    let spec: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
    assert_eq!(spec["namespaces"]["net"], false);
    assert_eq!(spec["resources"]["pids_max"], 7);
}

#[test]
fn spec_from_an_inherited_descriptor_as_cbor() {
    use std::os::fd::AsRawFd;
    use std::os::unix::process::CommandExt;

    let spec = bureau::sandbox::SandboxSpec::with_defaults(vec![
        "/usr/bin/echo".to_owned(),
        "spec came through fd 3".to_owned(),
    ]);
    let shared = SharedDir::new();
    let spec_path = shared.path().join("spec.cbor");
    std::fs::write(&spec_path, spec.to_cbor().expect("encode")).expect("write spec");
    let spec_file = std::fs::File::open(&spec_path).expect("open spec");
    let spec_fd = spec_file.as_raw_fd();

    let mut command = sandbox_command(&["--spec-fd", "3"]);
    // Between fork and exec: make the spec fd 3 without CLOEXEC (dup2 clears it on the copy; if
    // the file already is fd 3, clear the flag directly).
    let remap = move || -> std::io::Result<()> {
        let result = if spec_fd == 3 {
            // SAFETY: F_SETFD on a descriptor we own only changes its flags.
            unsafe { libc::fcntl(3, libc::F_SETFD, 0) }
        } else {
            // SAFETY: dup2 only duplicates a descriptor we own onto 3.
            unsafe { libc::dup2(spec_fd, 3) }
        };
        if result < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(())
    };
    // SAFETY: `remap` only makes async-signal-safe calls (fcntl, dup2).
    unsafe { command.pre_exec(remap) };
    let output = output_of(command);
    assert_success(&output);
    assert_line(&output, "spec came through fd 3");

    // A descriptor that is not open is refused with the fix.
    let output = sandbox(&["--spec-fd", "9", "--", "true"]);
    assert_eq!(code(&output), 2, "{}", describe(&output));
    assert!(
        stderr(&output).contains("--spec-fd 9"),
        "{}",
        describe(&output)
    );
}

#[test]
fn loopback_is_up_and_landlock_ports_open_it_for_the_bridge() {
    let shared = SharedDir::new();
    let printed = sandbox(&["--print-spec", "--", "true"]);
    assert_success(&printed);
    let mut spec: serde_json::Value = serde_json::from_slice(&printed.stdout).expect("spec json");
    spec["command"] = serde_json::json!([
        "/usr/bin/python3",
        "-c",
        "import socket\n\
         server = socket.socket(); server.bind(('127.0.0.1', 8642)); server.listen()\n\
         client = socket.create_connection(('127.0.0.1', 8642)); client.sendall(b'ping')\n\
         connection, _ = server.accept(); print('loopback', connection.recv(4).decode())"
    ]);
    spec["landlock"]["tcp_bind"] = serde_json::json!([8642]);
    spec["landlock"]["tcp_connect"] = serde_json::json!([8642]);
    let spec_file = shared.file("spec.json", &spec.to_string());
    let output = sandbox(&["--spec", spec_file.to_str().expect("utf-8")]);
    assert_success(&output);
    assert_line(&output, "loopback ping");

    // Without the port rules, landlock still refuses loopback TCP.
    let output = sandbox_py(
        &[],
        "import socket\ntry:\n    socket.socket().bind(('127.0.0.1', 8642)); print('bound')\nexcept OSError as e:\n    print('bind', e.errno)",
    );
    assert_line(&output, "bind 13");
}
