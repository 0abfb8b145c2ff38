//! `cargo xtask bench runtime`: how long a principal takes to start as an operator sees it,
//! from publishing the `m.bureau.machine_config` event that assigns it to the first output of
//! its sandboxed command, beside the homeserver's own send → `/sync` delivery latency measured
//! in the same run (the floor any Matrix-driven start pays). Target: ≤ 150 ms above delivery.
//!
//! One [`LocalStack`] (a local Synapse, launcher and daemon rootless under
//! `target/bench-runtime/`, replaced by every run and kept for its logs). The principals'
//! accounts and sealed credentials are made up front with `bureau agent create`, and their
//! assignments taken out again, so a trial measures only: the assignment published → the daemon
//! wakes from `/sync` and reconciles → the launcher starts the proxy and the sandbox → the
//! command writes `first output` to its log. After each trial the assignment is removed and the
//! next trial waits until the sandbox is gone and the daemon has reported the stop in the config
//! room, so a trial never overlaps the previous one's teardown.

use std::path::Path;
use std::time::{Duration, Instant};

use bureau::devstack::{LocalStack, MACHINE, StackOptions, is_outcome, wait_until};
use bureau::matrix::SyncStream;
use bureau::naming::Localpart;
use serde_json::{Value, json};

use crate::bench_matrix::percentile;
use crate::process::{self, cargo, workspace_root};

const TRIALS: usize = 20;

/// The benchmark's template: an `agent-base` sandbox whose command answers at once, then idles.
const TEMPLATE: &str = "bench-echo";

/// What the command writes first; a trial ends when it is in the principal's output log.
const FIRST_OUTPUT: &str = "first output";

/// The longest any single step may take before the run is abandoned.
const STEP_TIMEOUT: Duration = Duration::from_secs(60);

/// The daemon's own default heartbeat (`--heartbeat-seconds`), not the tests' 2 s.
const HEARTBEAT_SECONDS: u64 = 60;

const TARGET_MS: f64 = 150.0;

const USAGE: &str = "usage: cargo xtask bench runtime [--debug] [--log-level LEVEL]";

struct Options {
    /// Run a debug build of `bureau` instead of the release build.
    debug_build: bool,
    /// `--log-level` of the launcher and daemon (`debug` to see where a start spends its time).
    log_level: String,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        debug_build: false,
        log_level: "info".to_owned(),
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--debug" => options.debug_build = true,
            "--log-level" => {
                options.log_level = args
                    .next()
                    .ok_or_else(|| format!("--log-level takes a level\n{USAGE}"))?
                    .clone();
            }
            other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
        }
    }
    Ok(options)
}

/// One benchmark principal: its localpart and the assignment `bureau agent create` wrote.
struct Principal {
    localpart: Localpart,
    assignment: Value,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let options = parse(args)?;
    let profile = if options.debug_build {
        "debug"
    } else {
        "release"
    };
    let root = workspace_root();
    let mut build = cargo();
    build
        .current_dir(&root)
        .args(["build", "--locked", "-p", "bureau", "--bin", "bureau"]);
    if !options.debug_build {
        build.arg("--release");
    }
    process::run(&mut build)?;
    let bureau = root.join("target").join(profile).join("bureau");

    let dir = root.join("target/bench-runtime");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|error| format!("clearing {}: {error}", dir.display()))?;
    }
    println!(
        "starting a local Bureau under {} (Synapse, launcher, daemon; {profile} build, log \
         level {}) …",
        dir.display(),
        options.log_level
    );
    let mut stack_options = StackOptions::new(&bureau, &dir);
    stack_options.log_level = options.log_level;
    stack_options.heartbeat_seconds = HEARTBEAT_SECONDS;
    let stack = LocalStack::start(stack_options)?;
    let measured = measure(&stack);
    stack.stop();
    let (mut starts, mut deliveries) = measured.map_err(|error| {
        format!(
            "{error}\nHint: the launcher's and daemon's logs are in {}",
            dir.display()
        )
    })?;
    starts.sort_by(f64::total_cmp);
    deliveries.sort_by(f64::total_cmp);
    report(profile, &starts, &deliveries, &dir);
    Ok(())
}

/// Trial start-up latencies and delivery latencies, in milliseconds.
fn measure(stack: &LocalStack) -> Result<(Vec<f64>, Vec<f64>), String> {
    let principals = prepare(stack)?;
    println!("measuring send → /sync delivery on the same homeserver …");
    let deliveries = stack
        .runtime
        .block_on(async {
            tokio::time::timeout(STEP_TIMEOUT, crate::bench_matrix::ours(&stack.server)).await
        })
        .map_err(|_| "measuring delivery timed out".to_owned())??;
    println!("{TRIALS} trials: assignment published → first output …");
    let filter = json!({"room": {"rooms": [stack.config_room.to_string()],
                                 "timeline": {"limit": 50}}});
    let mut outcomes = SyncStream::new(stack.operator.clone(), None, Some(filter))
        .with_poll_timeout(Duration::from_secs(1));
    stack
        .runtime
        .block_on(outcomes.next_batch())
        .map_err(|error| format!("syncing the config room: {error}"))?;
    let starts = principals
        .iter()
        .map(|principal| trial(stack, &mut outcomes, principal))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((starts, deliveries))
}

/// Pushes the template, creates every principal (account, sealed credentials, assignment),
/// waits for their sandboxes, then takes the assignments out again and waits until the
/// sandboxes are gone. Returns each principal with its assignment.
fn prepare(stack: &LocalStack) -> Result<Vec<Principal>, String> {
    let template_file = stack.options.dir.join(format!("{TEMPLATE}.json"));
    let template = json!({
        "description": "cargo xtask bench runtime: answers at once, then idles",
        "inherits": "agent-base",
        "command": ["/bin/sh", "-c", format!("echo {FIRST_OUTPUT}; exec sleep 600")],
    });
    std::fs::write(&template_file, template.to_string())
        .map_err(|error| format!("writing {}: {error}", template_file.display()))?;
    let template_path = template_file
        .to_str()
        .ok_or_else(|| format!("{} is not UTF-8", template_file.display()))?;
    stack.cli(&[
        "template",
        "push",
        TEMPLATE,
        template_path,
        "--namespace",
        "acme",
    ])?;

    println!("creating {TRIALS} principals (accounts, sealed credentials) …");
    let names: Vec<String> = (0..TRIALS)
        .map(|index| format!("acme/agent/bench-{index:02}"))
        .collect();
    for name in &names {
        let _config = stack
            .config_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stack.cli(&[
            "agent",
            "create",
            name,
            "--template",
            TEMPLATE,
            "--machine",
            MACHINE,
            "--restart-policy",
            "never",
        ])?;
    }
    let running = || {
        let sandboxes = stack.sandboxes();
        names
            .iter()
            .filter(|name| {
                sandboxes
                    .iter()
                    .any(|sandbox| sandbox.principal.as_str() == name.as_str())
            })
            .count()
    };
    // Every sandbox up first: the daemon has then acted on every assignment, so no stale
    // reconcile can start one again after they are taken out.
    wait_for("the principals' first sandboxes to start", || {
        running() == TRIALS
    })?;

    let mut taken = Vec::new();
    stack.edit_assignments(|assignments| {
        let (ours, others): (Vec<Value>, Vec<Value>) =
            assignments.drain(..).partition(|assignment| {
                assignment["principal"]
                    .as_str()
                    .is_some_and(|principal| names.iter().any(|name| name == principal))
            });
        *assignments = others;
        taken = ours;
    })?;
    wait_for("the principals' first sandboxes to stop", || running() == 0)?;

    names
        .iter()
        .map(|name| {
            let assignment = taken
                .iter()
                .find(|assignment| assignment["principal"] == name.as_str())
                .cloned()
                .ok_or_else(|| format!("machine_config held no assignment for {name}"))?;
            let localpart = Localpart::parse(name).map_err(|error| error.to_string())?;
            Ok(Principal {
                localpart,
                assignment,
            })
        })
        .collect()
}

/// One trial: publish the principal's assignment, poll (every 1 ms) its output log until the
/// command's first output is in it; then remove the assignment and wait for the sandbox to go
/// and for the daemon's `principal_stopped` outcome (read through `outcomes`).
fn trial(
    stack: &LocalStack,
    outcomes: &mut SyncStream,
    principal: &Principal,
) -> Result<f64, String> {
    let name = principal.localpart.as_str();
    let log = stack
        .paths()
        .principal_dir(&principal.localpart)
        .join("output.log");
    // The log of the start in `prepare` must not count: only this trial's sandbox writes it.
    match std::fs::remove_file(&log) {
        Ok(()) => {}
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {}
        Err(error) => return Err(format!("removing {}: {error}", log.display())),
    }
    if stack.sandbox(name).is_some() {
        return Err(format!("{name} still has a sandbox before its trial"));
    }
    let published = stack.edit_assignments(|assignments| {
        assignments.push(principal.assignment.clone());
    })?;
    let elapsed = loop {
        let output = std::fs::read_to_string(&log).unwrap_or_default();
        if output.contains(FIRST_OUTPUT) {
            break published.elapsed();
        }
        if published.elapsed() > STEP_TIMEOUT {
            return Err(format!(
                "{name} wrote no {FIRST_OUTPUT:?} within {STEP_TIMEOUT:?}; its log {} holds: \
                 {output:?}",
                log.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(1));
    };
    stack.edit_assignments(|assignments| {
        assignments.retain(|assignment| assignment["principal"] != name);
    })?;
    wait_for(&format!("{name}'s sandbox to stop after its trial"), || {
        stack.sandbox(name).is_none()
    })?;
    let deadline = Instant::now() + STEP_TIMEOUT;
    stack.runtime.block_on(async {
        while Instant::now() < deadline {
            let batch = outcomes
                .next_batch()
                .await
                .map_err(|error| format!("syncing the config room: {error}"))?;
            if batch
                .timeline_of(&stack.config_room)
                .any(|event| is_outcome(event, "principal_stopped", name))
            {
                return Ok(());
            }
        }
        Err(format!(
            "the daemon reported no principal_stopped for {name}"
        ))
    })?;
    Ok(elapsed.as_secs_f64() * 1000.0)
}

/// Polls `condition` every 10 ms until it holds; an error after [`STEP_TIMEOUT`] names `what`.
fn wait_for(what: &str, condition: impl Fn() -> bool) -> Result<(), String> {
    if wait_until(STEP_TIMEOUT, Duration::from_millis(10), condition) {
        Ok(())
    } else {
        Err(format!("timed out after {STEP_TIMEOUT:?}: {what}"))
    }
}

fn report(profile: &str, starts: &[f64], deliveries: &[f64], logs: &Path) {
    println!(
        "\nstate event published → principal's first output ({profile} build of bureau), \
         {TRIALS} trials"
    );
    println!("{:36} {:>9} {:>9}", "", "p50 ms", "p95 ms");
    let start = (percentile(starts, 0.5), percentile(starts, 0.95));
    let delivery = (percentile(deliveries, 0.5), percentile(deliveries, 0.95));
    let difference = (start.0 - delivery.0, start.1 - delivery.1);
    let delivery_name = format!("send → /sync delivery ({} messages)", deliveries.len());
    for (name, (p50, p95)) in [
        ("assignment → first output", start),
        (delivery_name.as_str(), delivery),
        ("difference", difference),
    ] {
        println!("{name:36} {p50:>9.1} {p95:>9.1}");
    }
    let verdict = if difference.0 <= TARGET_MS {
        "met"
    } else {
        "not met"
    };
    println!("target: ≤ {TARGET_MS:.0} ms above delivery (p50) — {verdict}");
    println!("(launcher and daemon logs: {})", logs.display());
}
