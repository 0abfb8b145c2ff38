//! `cargo xtask bench …`: speed targets as ratios against a named peer measured in the same run.
//! Never a pass/fail gate on absolute times: machines here are shared and noisy.
//!
//! - `matrix`: send → sync delivery through our Matrix client against a Python stdlib client
//!   (see `bench_matrix.rs`). Target: ours ≤ 1.1×.
//! - `sandbox [--runs N]`: spawn → exec done (the first byte the sandboxed `/usr/bin/echo` writes
//!   reaches us; teardown is not counted, but each run is waited for before the next), under
//!   full isolation with the shipped static binary, against `bwrap --unshare-all` with equivalent
//!   binds, `unshare -Urmpfniu --mount-proc`, and a bare fork+exec; then 100 sandboxes started at
//!   once (wall time until all exited). Target: ours ≤ 0.25× bwrap.
//! - `proxy [--seconds N]`: requests through `dist/bureau proxy` (credential injection, Unix
//!   socket) against nginx (`worker_processes 1`) and a direct connection to the same upstream,
//!   64 keep-alive connections (see `bench_proxy.rs`). Targets: ours/nginx ≥ 1.0× req/s, p50
//!   ours − direct ≤ 50 µs; idle RSS ≤ 4 MiB; and the summed PSS of 1,000 idle proxies.
//! - `runtime [--debug]`: 20 trials of "assignment published in `m.bureau.machine_config` →
//!   the principal's first output" on a whole local Bureau (see `bench_runtime.rs`), beside the
//!   homeserver's own send → /sync delivery in the same run. Target: ≤ 150 ms above delivery.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::process::{find_on_path, workspace_root};

pub fn run(args: &[String]) -> Result<(), String> {
    match args.first().map(String::as_str) {
        Some("sandbox") => sandbox(&args[1..]),
        Some("matrix") => crate::bench_matrix::run(&args[1..]),
        Some("proxy") => crate::bench_proxy::run(&args[1..]),
        Some("runtime") => crate::bench_runtime::run(&args[1..]),
        Some(other) => Err(format!(
            "unknown benchmark {other:?}; available: sandbox, matrix, proxy, runtime"
        )),
        None => Err("name a benchmark: cargo xtask bench sandbox|matrix|proxy".to_owned()),
    }
}

/// One contender: a name and the argv that runs the probe command its way.
struct Contender {
    name: &'static str,
    argv: Vec<String>,
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

/// The command every contender runs: it writes one line as soon as it is running.
const PROBE: [&str; 2] = ["/usr/bin/echo", "ready"];

/// The binary we ship: the static build from `cargo xtask dist`.
fn shipped_binary() -> Result<PathBuf, String> {
    crate::dist::run(&[])?;
    Ok(workspace_root().join("dist/bureau"))
}

/// `bureau sandbox run` (default: full isolation) of the probe command.
fn sandbox_argv(binary: &Path) -> Vec<String> {
    let run = [
        binary.display().to_string(),
        "sandbox".into(),
        "run".into(),
        "--".into(),
    ];
    [Vec::from(run), strings(&PROBE)].concat()
}

/// bwrap with the same filesystem our default sandbox gets.
fn bwrap_argv(bwrap: &Path) -> Vec<String> {
    let mut argv = vec![
        bwrap.display().to_string(),
        "--unshare-all".into(),
        "--die-with-parent".into(),
        "--ro-bind".into(),
        "/usr".into(),
        "/usr".into(),
    ];
    for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
        let host = Path::new("/").join(top);
        if let Ok(target) = std::fs::read_link(&host) {
            argv.extend([
                "--symlink".into(),
                target.display().to_string(),
                host.display().to_string(),
            ]);
        }
    }
    argv.extend(strings(&[
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--clearenv",
        "--",
    ]));
    argv.extend(strings(&PROBE));
    argv
}

fn spawn(argv: &[String], stdout: Stdio) -> Result<std::process::Child, String> {
    Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|error| format!("cannot run {}: {error}", argv[0]))
}

/// Spawn → first byte of the probe's output; then waits for the exit (not counted).
fn run_once(argv: &[String]) -> Result<Duration, String> {
    use std::io::Read;
    let started = Instant::now();
    let mut child = spawn(argv, Stdio::piped())?;
    let mut first = [0u8; 1];
    let read = child
        .stdout
        .take()
        .map(|mut stdout| stdout.read(&mut first))
        .transpose()
        .map_err(|error| format!("reading {}: {error}", argv[0]))?;
    let elapsed = started.elapsed();
    let output = child
        .wait_with_output()
        .map_err(|error| format!("waiting for {}: {error}", argv[0]))?;
    if read != Some(1) || !output.status.success() {
        return Err(format!(
            "{} failed ({}): {}",
            argv.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    Ok(elapsed)
}

/// The sandbox's share of the profile `cargo xtask dist` builds the shipped binary with (see
/// `pgo.rs`): sandboxes started with full isolation, as the benchmark starts them.
pub fn train_sandbox(binary: &Path) -> Result<(), String> {
    const RUNS: usize = 50;
    let argv = sandbox_argv(binary);
    for _ in 0..RUNS {
        run_once(&argv)?;
    }
    Ok(())
}

fn percentile(sorted: &[Duration], fraction: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn sandbox(args: &[String]) -> Result<(), String> {
    let runs: usize = match args {
        [] => 200,
        [flag, value] if flag == "--runs" => value
            .parse()
            .map_err(|_| format!("--runs takes a number, not {value:?}"))?,
        _ => return Err("usage: cargo xtask bench sandbox [--runs N]".to_owned()),
    };
    let binary = shipped_binary()?;
    let mut contenders = vec![Contender {
        name: "bureau-sandbox (full isolation)",
        argv: sandbox_argv(&binary),
    }];
    match find_on_path("bwrap") {
        Some(bwrap) => contenders.push(Contender {
            name: "bwrap --unshare-all",
            argv: bwrap_argv(&bwrap),
        }),
        None => {
            return Err(
                "bwrap is not installed: `apt-get install bubblewrap` (the bench's \
                        named peer)"
                    .to_owned(),
            );
        }
    }
    if let Some(unshare) = find_on_path("unshare") {
        contenders.push(Contender {
            name: "unshare -Urmpfniu --mount-proc",
            argv: [
                vec![
                    unshare.display().to_string(),
                    "-Urmpfniu".into(),
                    "--mount-proc".into(),
                ],
                strings(&PROBE),
            ]
            .concat(),
        });
    }
    contenders.push(Contender {
        name: "fork+exec (no isolation)",
        argv: strings(&PROBE),
    });

    println!(
        "spawn → exec done (first output byte of `/usr/bin/echo`), {runs} runs each, interleaved"
    );
    let mut samples: Vec<Vec<Duration>> = vec![Vec::with_capacity(runs); contenders.len()];
    // Warm up caches, then interleave so machine noise hits every contender alike.
    for contender in &contenders {
        run_once(&contender.argv)?;
    }
    for _ in 0..runs {
        for (index, contender) in contenders.iter().enumerate() {
            samples[index].push(run_once(&contender.argv)?);
        }
    }
    let mut medians = Vec::new();
    println!("{:34} {:>9} {:>9}", "", "p50 ms", "p99 ms");
    for (contender, times) in contenders.iter().zip(samples.iter_mut()) {
        times.sort();
        let p50 = percentile(times, 0.5);
        println!(
            "{:34} {:>9.2} {:>9.2}",
            contender.name,
            millis(p50),
            millis(percentile(times, 0.99))
        );
        medians.push(p50);
    }
    let ours = millis(medians[0]);
    let bwrap = millis(medians[1]);
    println!(
        "ratio ours/bwrap (p50): {:.2}×  (target ≤ 0.25×)",
        ours / bwrap
    );

    println!("\n100 sandboxes started concurrently (wall time until all exited)");
    for contender in &contenders[..2] {
        let started = Instant::now();
        let children = (0..100)
            .map(|_| spawn(&contender.argv, Stdio::null()))
            .collect::<Result<Vec<_>, _>>()?;
        for child in children {
            let output = child
                .wait_with_output()
                .map_err(|error| format!("wait: {error}"))?;
            if !output.status.success() {
                return Err(format!(
                    "{} failed under concurrency: {}",
                    contender.name,
                    String::from_utf8_lossy(&output.stderr).trim()
                ));
            }
        }
        println!(
            "{:34} {:>9.1} ms",
            contender.name,
            millis(started.elapsed())
        );
    }
    Ok(())
}
