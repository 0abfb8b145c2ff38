//! The whole runtime, end to end: a real Synapse, `bureau matrix setup`, `bureau machine
//! provision`, a real `bureau-launcher` and `bureau-daemon` (rootless mode, under a temporary
//! directory), templates and principals made with the CLI, real proxies and sandboxes. Outcomes
//! are read from the config room through `/sync`, as an operator's client would.
//!
//! One machine for the whole file; each test uses its own principal(s) and stops them when it
//! ends (even on failure), so tests can run in parallel.

use std::path::{Path, PathBuf};
use std::sync::{OnceLock, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use bureau::demo::DEMO_TEMPLATE;
use bureau::devstack::{LocalStack, StackOptions, is_outcome, wait_until};
use bureau::launcher::ipc::SandboxInfo;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(90);

/// The shared machine, and the directory it lives in.
fn stack() -> &'static LocalStack {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    static STACK: OnceLock<LocalStack> = OnceLock::new();
    STACK.get_or_init(|| {
        let dir = DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"));
        let options = StackOptions::new(Path::new(env!("CARGO_BIN_EXE_bureau")), dir.path());
        LocalStack::start(options).unwrap_or_else(|error| panic!("starting the stack: {error}"))
    })
}

/// Tests that stop the launcher take the machine exclusively; the others share it.
static MACHINE_USE: RwLock<()> = RwLock::new(());

fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE_USE
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn exclusive() -> RwLockWriteGuard<'static, ()> {
    MACHINE_USE
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Waits for `count` config-room events matching `matches`; fails with what was seen and the
/// daemon's log.
fn wait_for(
    stack: &LocalStack,
    what: &str,
    count: usize,
    matches: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    stack
        .wait_for_events(WAIT, count, matches)
        .unwrap_or_else(|seen| {
            panic!(
                "timed out waiting for {what} (saw {seen:?}); daemon log:\n{}",
                stack.daemon_log()
            )
        })
}

fn wait(what: &str, condition: impl Fn() -> bool) {
    assert!(
        wait_until(WAIT, Duration::from_millis(20), condition),
        "timed out waiting for {what}"
    );
}

fn create(stack: &LocalStack, principal: &str, payload: Value, restart: &str, secret: &str) {
    stack
        .create_agent(principal, &payload, restart, secret)
        .unwrap_or_else(|error| panic!("{error}"));
}

/// Creates `principal` (no payload, a fresh secret), waits for its `principal_started` and
/// returns its sandbox as the launcher lists it.
fn start(stack: &LocalStack, principal: &str, restart: &str) -> SandboxInfo {
    create(stack, principal, json!({}), restart, &unique_secret());
    wait_for(stack, "principal_started", 1, |event| {
        is_outcome(event, "principal_started", principal)
    });
    stack.sandbox(principal).expect("running")
}

/// The principal's proxy socket on the host.
fn proxy_socket(stack: &LocalStack, principal: &str) -> PathBuf {
    stack
        .machine_dir()
        .join("run")
        .join(format!("{principal}.proxy.sock"))
}

/// `GET path` through the principal's proxy with `bureau proxy-call`; the response body.
fn proxy_get(stack: &LocalStack, principal: &str, path: &str) -> Vec<u8> {
    let call = std::process::Command::new(env!("CARGO_BIN_EXE_bureau"))
        .args(["proxy-call", "GET", path, "--socket"])
        .arg(proxy_socket(stack, principal))
        .output()
        .expect("proxy-call");
    assert!(call.status.success(), "{}", text(&call.stderr));
    call.stdout
}

/// Stops a test's principals when the test ends, whatever happened.
struct Cleanup(&'static LocalStack, Vec<&'static str>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for principal in &self.1 {
            let _ = self.0.destroy_agent(principal);
            self.0.force_destroy(principal);
        }
    }
}

fn unique_secret() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos();
    format!("canary-{}-{nanos:x}", std::process::id())
}

/// Every pid below `pid` (children, recursively).
fn descendants(pid: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let mut queue = vec![pid];
    while let Some(next) = queue.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{next}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children
                .split_whitespace()
                .filter_map(|pid| pid.parse().ok())
            {
                found.push(child);
                queue.push(child);
            }
        }
    }
    found
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return files;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            files.extend(files_under(&path));
        } else if kind.is_file() {
            files.push(path);
        }
    }
    files
}

#[test]
fn a_published_principal_greets_its_room_and_uses_a_secret_it_never_sees() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/greeter";
    let _cleanup = Cleanup(stack, vec![principal]);
    let secret = unique_secret();
    create(
        stack,
        principal,
        json!({"room": stack.config_room.to_string()}),
        "never",
        &secret,
    );

    let user = format!("@{principal}:{}", stack.server.server_name());
    let greeting = format!("hello from {principal}");
    wait_for(stack, "the principal's greeting", 1, |event| {
        event["sender"] == user.as_str() && event["content"]["body"] == greeting.as_str()
    });
    wait_for(stack, "principal_started", 1, |event| {
        is_outcome(event, "principal_started", principal)
    });
    wait("the demo service to see the injected token", || {
        stack
            .demo
            .authorizations()
            .contains(&format!("Bearer {secret}"))
    });

    // The secret is in no process's command line, in no environment of the principal's
    // processes, and in no file the launcher, daemon, proxy or sandbox wrote.
    let sandbox = stack.sandbox(principal).expect("the sandbox runs");
    let log = stack
        .machine_dir()
        .join("state/principals")
        .join(principal)
        .join("output.log");
    // The script's last report line: its environment's names, after the service call.
    wait("the script's report", || {
        std::fs::read_to_string(&log).is_ok_and(|output| output.contains("printenv:"))
    });
    for entry in std::fs::read_dir("/proc").expect("test harness").flatten() {
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        assert!(
            !text(&cmdline).contains(&secret),
            "secret in {:?} cmdline",
            entry.path()
        );
    }
    let principal_pids = descendants(sandbox.pid);
    assert!(!principal_pids.is_empty(), "the sandbox has processes");
    let supervisor = std::fs::read(format!("/proc/{}/environ", sandbox.pid))
        .expect("the sandbox supervisor's environment is readable");
    assert!(
        !text(&supervisor).contains(&secret),
        "secret in the supervisor's environment"
    );
    // The principal's processes may exit while we look; those we read must include one with
    // the sandbox's own environment, or nothing was checked.
    let mut principal_environments = 0;
    for pid in &principal_pids {
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        assert!(
            !text(&environ).contains(&secret),
            "secret in pid {pid}'s environment"
        );
        if text(&environ).contains("BUREAU_") {
            principal_environments += 1;
        }
    }
    assert!(
        principal_environments > 0,
        "no principal process's environment could be read"
    );
    let mut files = files_under(&stack.options.dir);
    let inputs = stack.options.dir.join("operator-input");
    files.retain(|file| !file.starts_with(&inputs));
    assert!(files.iter().any(|file| file.ends_with("proxy.log")));
    for file in files {
        let contents = std::fs::read(&file).unwrap_or_default();
        assert!(
            !text(&contents).contains(&secret),
            "secret in {}",
            file.display()
        );
    }
    let output = std::fs::read_to_string(&log).expect("test harness");
    assert!(output.contains("greeting: sent"), "{output}");
    let names = output
        .lines()
        .find_map(|line| line.strip_prefix("printenv: "))
        .expect("the printenv line");
    assert!(names.contains("BUREAU_"), "{names}");
    assert!(
        !names.contains("DEMO_TOKEN"),
        "the credential's name is not in the environment: {names}"
    );
}

#[test]
fn a_killed_daemon_leaves_principals_running_and_its_successor_adopts_them() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/steady";
    let _cleanup = Cleanup(stack, vec![principal]);
    let before = start(stack, principal, "on-failure");

    stack.kill_daemon().expect("kill -9 the daemon");
    let during = stack
        .sandbox(principal)
        .expect("still known to the launcher");
    assert_eq!(during.pid, before.pid);
    assert_eq!(
        during.exit_code, None,
        "the principal keeps running without its daemon"
    );

    let log_before = stack.daemon_log().len();
    stack.restart_daemon().expect("start a new daemon");
    wait("the new daemon to adopt the principal", || {
        stack.daemon_log()[log_before..]
            .lines()
            .any(|line| line.contains("adopting a running sandbox") && line.contains(principal))
    });
    let after = stack.sandbox(principal).expect("running");
    assert_eq!(after.pid, before.pid, "adopted, not restarted");
    assert_eq!(after.exit_code, None);
    let started = wait_for(stack, "principal_started", 1, |event| {
        is_outcome(event, "principal_started", principal)
    });
    assert_eq!(started.len(), 1, "started once only: {started:?}");
}

#[test]
fn exit_3_with_restart_never_reports_the_code_and_last_lines() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/quitter";
    let _cleanup = Cleanup(stack, vec![principal]);
    create(
        stack,
        principal,
        json!({"exit_code": 3}),
        "never",
        &unique_secret(),
    );
    let exited = wait_for(stack, "sandbox_exited", 1, |event| {
        is_outcome(event, "sandbox_exited", principal)
    });
    let outcome = &exited[0]["content"]["m.bureau.outcome"];
    assert_eq!(outcome["exit_code"], 3);
    let lines: Vec<&str> = outcome["last_lines"]
        .as_array()
        .expect("last lines")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        lines.contains(&"exiting with 3 as the payload asks"),
        "{lines:?}"
    );
    assert!(
        exited[0]["content"]["body"]
            .as_str()
            .expect("test harness")
            .contains("exited with code 3")
    );
    // Never restarted: the daemon reports it stopped (its decision after the exit), and its
    // sandbox is gone, with still only one start.
    wait("the daemon to report the principal stopped", || {
        stack.reported_state(principal).as_deref() == Some("stopped")
    });
    assert!(stack.sandbox(principal).is_none(), "no new sandbox");
    let started = wait_for(stack, "principal_started", 1, |event| {
        is_outcome(event, "principal_started", principal)
    });
    assert_eq!(started.len(), 1, "{started:?}");
}

#[test]
fn exit_3_with_restart_on_failure_restarts_with_growing_backoff() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/phoenix";
    let _cleanup = Cleanup(stack, vec![principal]);
    create(
        stack,
        principal,
        json!({"exit_code": 3}),
        "on-failure",
        &unique_secret(),
    );
    let starts = wait_for(stack, "three starts", 3, |event| {
        is_outcome(event, "principal_started", principal)
    });
    let exits = wait_for(stack, "the first two exits", 2, |event| {
        is_outcome(event, "sandbox_exited", principal)
    });
    let time = |event: &Value| event["origin_server_ts"].as_i64().expect("timestamp");
    // The back-off is the wait from an exit being reported to the next start, so the time the
    // sandbox itself ran is not counted in it. A little slack for the two notices' delivery.
    let gaps: Vec<i64> = (0..2)
        .map(|i| time(&starts[i + 1]) - time(&exits[i]))
        .collect();
    assert!(gaps[0] >= 900, "first back-off is about 1 s: {gaps:?}");
    assert!(gaps[1] >= 1800, "second back-off is about 2 s: {gaps:?}");
    assert!(gaps[1] >= gaps[0] + 500, "the back-off grows: {gaps:?}");
    stack.destroy_agent(principal).expect("agent destroy");
}

#[test]
fn malformed_assignments_fail_alone_with_a_reason() {
    let stack = stack();
    let _machine = shared();
    let good = "acme/agent/bystander";
    let _cleanup = Cleanup(stack, vec![good]);
    let before = start(stack, good, "on-failure");
    stack.runtime.block_on(async {
        let room = stack
            .operator
            .resolve_alias(&format!("#acme/template:{}", stack.server.server_name()))
            .await
            .expect("test harness")
            .expect("test harness");
        for (name, parent) in [("loop-a", "loop-b"), ("loop-b", "loop-a")] {
            stack
                .operator
                .state_put(
                    &room,
                    "m.bureau.template",
                    name,
                    &json!({"inherits": parent, "command": ["/bin/true"]}),
                )
                .await
                .expect("test harness");
        }
    });
    let bad = [
        json!({"principal": "acme/../escape", "template": DEMO_TEMPLATE}),
        json!({"principal": "acme/agent/ghost", "template": "no-such-template"}),
        json!({"principal": "acme/agent/cycle", "template": "loop-a"}),
    ];
    stack
        .edit_assignments(|principals| principals.extend(bad.iter().cloned()))
        .expect("add the malformed assignments");
    let failures = wait_for(stack, "three start failures", 3, |event| {
        let outcome = &event["content"]["m.bureau.outcome"];
        outcome["kind"] == "principal_start_failed"
            && ["acme/../escape", "acme/agent/ghost", "acme/agent/cycle"]
                .contains(&outcome["principal"].as_str().unwrap_or_default())
    });
    let reason = |principal: &str| -> String {
        failures
            .iter()
            .map(|event| &event["content"]["m.bureau.outcome"])
            .find(|outcome| outcome["principal"] == principal)
            .map(|outcome| outcome["reason"].as_str().unwrap_or_default().to_owned())
            .unwrap_or_default()
    };
    assert!(
        reason("acme/../escape").contains(".."),
        "{}",
        reason("acme/../escape")
    );
    assert!(
        reason("acme/agent/ghost").contains("no-such-template"),
        "{}",
        reason("acme/agent/ghost")
    );
    assert!(
        reason("acme/agent/cycle").contains("cycle"),
        "{}",
        reason("acme/agent/cycle")
    );
    let after = stack.sandbox(good).expect("still running");
    assert_eq!(after.pid, before.pid, "other principals are unaffected");
    stack
        .edit_assignments(|principals| principals.retain(|assignment| !bad.contains(assignment)))
        .expect("remove the malformed assignments");
}

#[test]
fn removing_a_principal_stops_its_sandbox_and_proxy_and_says_so() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/leaver";
    let _cleanup = Cleanup(stack, vec![principal]);
    let sandbox = start(stack, principal, "always");
    let socket = proxy_socket(stack, principal);
    assert!(socket.exists());

    stack.destroy_agent(principal).expect("agent destroy");
    let stopped = wait_for(stack, "principal_stopped", 1, |event| {
        is_outcome(event, "principal_stopped", principal)
    });
    assert!(
        stopped[0]["content"]["body"]
            .as_str()
            .expect("test harness")
            .contains("removed from machine_config"),
        "{stopped:?}"
    );
    assert!(stack.sandbox(principal).is_none());
    for pid in [sandbox.pid, sandbox.proxy_pid] {
        let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| !stat.contains(") Z"));
        assert!(!alive, "pid {pid} is gone");
    }
    assert!(!socket.exists(), "the proxy's socket is removed");
}

#[test]
fn a_changed_credential_bundle_rotates_live_in_the_running_proxy() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/rotator";
    let _cleanup = Cleanup(stack, vec![principal]);
    let before = start(stack, principal, "on-failure");

    let rotated = unique_secret();
    let file = stack.options.dir.join("operator-input/rotated.json");
    std::fs::write(&file, json!({"DEMO_TOKEN": rotated}).to_string()).expect("write");
    let output = stack
        .cli(&[
            "credential",
            "provision",
            "--machine",
            bureau::devstack::MACHINE,
            "--principal",
            principal,
            "--from-file",
            file.to_str().expect("UTF-8 path"),
            // The running proxy keeps its Matrix identity; only the injected values rotate.
            "--drop-matrix-token",
        ])
        .unwrap_or_else(|error| panic!("{error}"));
    assert!(
        !output.contains(&rotated),
        "values are never echoed: {output}"
    );
    let outcome = wait_for(stack, "credentials_rotated", 1, |event| {
        is_outcome(event, "credentials_rotated", principal)
    });
    assert_eq!(
        outcome[0]["content"]["m.bureau.outcome"]["key_names"],
        json!(["DEMO_TOKEN"])
    );
    // The same sandbox, its proxy now injecting the new value.
    assert_eq!(stack.sandbox(principal).expect("running").pid, before.pid);
    proxy_get(stack, principal, "/http/demo/after-rotation");
    assert!(
        stack
            .demo
            .authorizations()
            .contains(&format!("Bearer {rotated}"))
    );
}

#[test]
fn changed_grants_go_live_in_the_running_proxy_without_a_restart() {
    let stack = stack();
    let _machine = shared();
    let principal = "acme/agent/granted";
    let _cleanup = Cleanup(stack, vec![principal]);
    let before = start(stack, principal, "on-failure");
    let grants = || -> Value {
        serde_json::from_slice(&proxy_get(stack, principal, "/v1/grants")).unwrap_or(Value::Null)
    };

    // It was created with `matrix/send` for good. Now: one grant in force until the year
    // 2286, and `matrix/send` expired long ago: only the first is pushed.
    assert_eq!(grants(), json!([{"actions": ["matrix/send"]}]));
    let far = 9_999_999_999_999_u64;
    stack
        .edit_assignments(|principals| {
            for assignment in principals.iter_mut() {
                if assignment["principal"] == principal {
                    assignment["authorization"] = json!({"grants": [
                        {"actions": ["matrix/join"], "expires_at": far},
                        {"actions": ["matrix/send"], "expires_at": 1},
                    ]});
                }
            }
        })
        .unwrap_or_else(|error| panic!("{error}"));
    let expected = json!([{"actions": ["matrix/join"], "expires_at": far}]);
    assert!(
        wait_until(WAIT, Duration::from_millis(50), || grants() == expected),
        "the proxy holds {} instead of {expected}; daemon log:\n{}",
        grants(),
        stack.daemon_log()
    );
    // The same sandbox and proxy, never stopped: the daemon took the live path. (A stop
    // would be logged before any new proxy could serve the new grants.)
    let after = stack.sandbox(principal).expect("running");
    assert_eq!((after.pid, after.proxy_pid), (before.pid, before.proxy_pid));
    let updated = format!("grants updated principal={principal}");
    wait(&updated, || stack.daemon_log().contains(&updated));
    let log = stack.daemon_log();
    assert!(
        !log.contains(&format!("body={principal} stopped")),
        "it was stopped:\n{log}"
    );
}

#[test]
fn a_restarted_launcher_adopts_the_sandboxes_that_kept_running() {
    let stack = stack();
    let _machine = exclusive();
    let principal = "acme/agent/survivor";
    let _cleanup = Cleanup(stack, vec![principal]);
    let before = start(stack, principal, "on-failure");

    stack.restart_launcher().expect("restart the launcher");
    let after = stack.sandbox(principal).expect("the new launcher knows it");
    assert_eq!(after.pid, before.pid, "the sandbox kept running");
    assert_eq!(after.proxy_pid, before.proxy_pid, "and so did its proxy");
    assert_eq!(after.exit_code, None);
    // The adopted sandbox is still fully managed: its removal stops it.
    stack.destroy_agent(principal).expect("agent destroy");
    wait_for(stack, "principal_stopped", 1, |event| {
        is_outcome(event, "principal_stopped", principal)
    });
    wait("the adopted sandbox to be gone", || {
        !std::path::Path::new(&format!("/proc/{}", before.pid)).exists()
    });
}
