//! `cargo xtask quickstart [--once]`: a whole Bureau on this machine in one command — build,
//! a local Synapse, a namespace and fleet, this machine provisioned with its launcher and
//! daemon (rootless, under `target/quickstart/`), and a demo principal that (a) greets its
//! room through its proxy and (b) calls a local HTTP service with a credential it never sees.
//!
//! Prints what happened, the room to open in a Matrix client and the login for it, and
//! `bureau list`; runs until Ctrl-C (then stops everything), or with `--once` stops after the
//! demo and exits 0 only if both (a) and (b) happened.

use std::time::{Duration, Instant};

use bureau::demo::DEMO_SERVICE;
use bureau::devstack::{LocalStack, MACHINE, OPERATOR, StackOptions, is_outcome, wait_until};
use serde_json::json;

use crate::process;

/// The demo principal.
const DEMO_PRINCIPAL: &str = "acme/agent/demo";

/// How long the demo may take once everything runs.
const DEMO_TIMEOUT: Duration = Duration::from_secs(60);

pub fn run(args: &[String]) -> Result<(), String> {
    let once = match args {
        [] => false,
        [flag] if flag == "--once" => true,
        _ => return Err("usage: cargo xtask quickstart [--once]".to_owned()),
    };
    let started = Instant::now();
    let step = |text: &str| println!("[{:5.1} s] {text}", started.elapsed().as_secs_f64());

    step("building bureau (cargo build --bin bureau)");
    process::run(process::cargo().args(["build", "--locked", "-p", "bureau", "--bin", "bureau"]))?;
    let root = process::workspace_root();
    let bureau = root.join("target/debug/bureau");
    let dir = root.join("target/quickstart");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)
            .map_err(|error| format!("clearing {}: {error}", dir.display()))?;
    }

    step(
        "starting a local Synapse, setting up namespace acme and fleet acme/fleet/prod, provisioning this machine, starting bureau-launcher and bureau-daemon",
    );
    let mut options = StackOptions::new(&bureau, &dir);
    options.operator_password = random_text()?;
    options.heartbeat_seconds = 30;
    options.backoff_max_seconds = 30;
    options.grace_seconds = 5;
    options.log_level = "info".to_owned();
    let stack = LocalStack::start(options)?;
    let result = demo(&stack, &step, &dir);
    if result.is_ok() && !once {
        println!("\nBureau runs. Press Ctrl-C to stop everything.");
        let waited = stack.runtime.block_on(tokio::signal::ctrl_c());
        if let Err(error) = waited {
            eprintln!("waiting for Ctrl-C: {error}");
        }
    }
    step("stopping the demo principal, bureau-daemon, bureau-launcher and Synapse");
    stack.stop();
    drop(stack);
    result
}

/// Creates the demo principal and reports what it did; `Err` unless it both greeted its room
/// and called the demo service with the injected credential.
fn demo(stack: &LocalStack, step: &dyn Fn(&str), dir: &std::path::Path) -> Result<(), String> {
    let secret = format!("demo-{}", random_text()?);
    step(&format!(
        "creating principal {DEMO_PRINCIPAL} (template demo-greeter, credential DEMO_TOKEN sealed to this machine's key)"
    ));
    stack.create_agent(
        DEMO_PRINCIPAL,
        &json!({"room": stack.config_room.to_string()}),
        "on-failure",
        &secret,
    )?;
    let server_name = stack.server.server_name().to_owned();
    let principal_user = format!("@{DEMO_PRINCIPAL}:{server_name}");
    let greeting = format!("hello from {DEMO_PRINCIPAL}");

    let started = stack.wait_for_events(DEMO_TIMEOUT, 1, |event| {
        is_outcome(event, "principal_started", DEMO_PRINCIPAL)
    });
    match &started {
        Ok(events) => step(&format!(
            "the daemon reports: {}",
            events[0]["content"]["body"].as_str().unwrap_or_default()
        )),
        Err(_) => step("the daemon did not report the principal started"),
    }
    let greeted = stack
        .wait_for_events(DEMO_TIMEOUT, 1, |event| {
            event["sender"] == principal_user.as_str()
                && event["content"]["body"] == greeting.as_str()
        })
        .is_ok();
    step(&format!(
        "(a) {} in the machine's config room, sent by {principal_user} through its proxy: {}",
        format_args!("\"{greeting}\""),
        if greeted { "ARRIVED" } else { "MISSING" }
    ));
    let bearer = format!("Bearer {secret}");
    let called = wait_until(DEMO_TIMEOUT, Duration::from_millis(20), || {
        stack.demo.authorizations().contains(&bearer)
    });
    step(&format!(
        "(b) the demo service at {} received the principal's call to /http/{DEMO_SERVICE}/hello with DEMO_TOKEN injected by the proxy: {}",
        stack.demo.url(),
        if called { "YES" } else { "NO" }
    ));
    let output_log = stack.paths().principal_dir(
        &bureau::naming::Localpart::parse(DEMO_PRINCIPAL).map_err(|error| error.to_string())?,
    );
    let output_log = output_log.join("output.log");
    let output = std::fs::read_to_string(&output_log).unwrap_or_default();
    println!("\nThe principal's own output ({}):", output_log.display());
    for line in output.lines() {
        println!("    {line}");
    }
    if output.contains(&secret) {
        return Err("the principal saw its secret: that must never happen".to_owned());
    }
    println!("\n`bureau list --machine {MACHINE}`:");
    match stack.cli(&["list", "--machine", MACHINE]) {
        Ok(listing) => print!("{listing}"),
        Err(error) => println!("    {error}"),
    }
    println!(
        "\nOpen the room #{MACHINE}:{server_name} in any Matrix client (Element: Sign in → \
         homeserver {}):\n    user     {OPERATOR}\n    password {}\nOutcomes (principal started, \
         exited, credentials rotated) appear there as notices.\nFiles: {} (logs: launcher.log, \
         daemon.log; the machine under machine/)",
        stack.server.base_url(),
        stack.options.operator_password,
        dir.display()
    );
    if greeted && called {
        println!("\nquickstart: OK — (a) and (b) both happened");
        Ok(())
    } else {
        Err(format!(
            "the demo did not complete (greeting {}, service call {}); see {}/daemon.log and {}",
            if greeted { "ok" } else { "missing" },
            if called { "ok" } else { "missing" },
            dir.display(),
            output_log.display()
        ))
    }
}

/// 16 random bytes as hex, from the kernel.
fn random_text() -> Result<String, String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .map_err(|error| format!("reading /dev/urandom: {error}"))?;
    Ok(bytes.iter().map(|byte| format!("{byte:02x}")).collect())
}
