//! `bureau-sandbox`: run a command in a sandbox, or probe what this host offers.
//!
//! No async runtime and no threads: the clone → exec path must stay single-threaded.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use bureau::sandbox::probe;
use bureau::sandbox::spec::{Mount, SandboxSpec};

use crate::{Invocation, args};

/// Run a command in namespaces (user, mount, pid, net, ipc, uts, cgroup) with landlock, seccomp,
/// no capabilities and optional cgroup limits. No bubblewrap.
#[derive(FromArgs)]
struct SandboxArgs {
    /// log filter: error, warn, info, debug, trace (overrides RUST_LOG)
    #[argh(option)]
    log_level: Option<String>,

    #[argh(subcommand)]
    command: SandboxCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum SandboxCommand {
    Run(Box<RunArgs>),
    Probe(ProbeArgs),
}

/// Run CMD in a new sandbox; exit with its status (128+n if killed by signal n; 125 if the
/// sandbox could not be built, 126 if CMD cannot be executed, 127 if it is not found inside).
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "run",
    example = "bureau-sandbox run --rw \"$PWD\" -- /usr/bin/env",
    example = "bureau-sandbox run --spec agent.json",
    note = "Defaults: every namespace, landlock, seccomp, no capabilities, an environment of only \
PATH, /usr read-only (with /bin, /lib, ... as on the host), /proc, a minimal /dev, a /tmp tmpfs, \
no network. --ro/--rw/--tmpfs mount PATH at the same path inside. Bind sources that are or pass \
through a symlink are refused."
)]
struct RunArgs {
    /// bind PATH read-only at the same path inside (repeatable)
    #[argh(option)]
    ro: Vec<PathBuf>,

    /// bind PATH writable at the same path inside (repeatable)
    #[argh(option)]
    rw: Vec<PathBuf>,

    /// mount an empty tmpfs at PATH (repeatable)
    #[argh(option)]
    tmpfs: Vec<PathBuf>,

    /// network: none (default: an empty network namespace) or host
    #[argh(option, default = "NetMode::None")]
    net: NetMode,

    /// memory limit in bytes (suffixes K, M, G allowed)
    #[argh(option, from_str_fn(parse_bytes))]
    memory_max: Option<u64>,

    /// maximum number of processes and threads
    #[argh(option)]
    pids_max: Option<u64>,

    /// hostname inside the sandbox (default: sandbox)
    #[argh(option)]
    hostname: Option<String>,

    /// set an environment variable K=V (repeatable; the environment starts empty but PATH)
    #[argh(option)]
    env: Vec<String>,

    /// working directory inside the sandbox (default: /)
    #[argh(option)]
    cwd: Option<PathBuf>,

    /// a JSON sandbox spec to start from; the other options add to it
    #[argh(option)]
    spec: Option<PathBuf>,

    /// read a CBOR sandbox spec from this inherited file descriptor (the launcher's way: no
    /// file, nothing in argv); the other options add to it
    #[argh(option)]
    spec_fd: Option<i32>,

    /// print the resulting spec as JSON instead of running it
    #[argh(switch)]
    print_spec: bool,

    /// when the sandbox ends, write its exit status to this file (atomically): how a launcher
    /// that restarted, and so is no longer this process's parent, learns the status
    #[argh(option)]
    status_file: Option<PathBuf>,

    /// the command and its arguments (after --)
    #[argh(positional, greedy)]
    command: Vec<String>,
}

/// Check what this host offers the sandbox: user namespaces, landlock, seccomp, cgroups, /proc.
#[derive(FromArgs)]
#[argh(subcommand, name = "probe")]
struct ProbeArgs {
    /// print the checks as JSON
    #[argh(switch)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum NetMode {
    None,
    Host,
}

impl std::str::FromStr for NetMode {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "none" => Ok(Self::None),
            "host" => Ok(Self::Host),
            other => Err(format!("--net must be none or host, not {other:?}")),
        }
    }
}

/// `1048576`, `64K`, `512M`, `2G` (binary multiples).
fn parse_bytes(value: &str) -> Result<u64, String> {
    let (digits, multiplier) = match value.char_indices().last() {
        Some((index, 'K' | 'k')) => (&value[..index], 1u64 << 10),
        Some((index, 'M' | 'm')) => (&value[..index], 1 << 20),
        Some((index, 'G' | 'g')) => (&value[..index], 1 << 30),
        _ => (value, 1),
    };
    digits
        .parse::<u64>()
        .ok()
        .and_then(|number| number.checked_mul(multiplier))
        .ok_or_else(|| format!("{value:?} is not a byte count (e.g. 1048576, 512M, 2G)"))
}

pub fn run(invocation: &Invocation) -> ExitCode {
    let parsed: SandboxArgs = match args::parse(&invocation.command_name, &invocation.args) {
        Ok(parsed) => parsed,
        Err(status) => return status,
    };
    if let Err(status) = args::init_logging(
        &invocation.command_name,
        parsed.log_level.as_deref(),
        "warn",
    ) {
        return status;
    }
    match parsed.command {
        SandboxCommand::Run(run_args) => run_sandbox(&invocation.command_name, *run_args),
        SandboxCommand::Probe(probe_args) => run_probe(probe_args),
    }
}

/// Reads a CBOR spec from an inherited descriptor, which is consumed (closed).
fn read_spec_fd(fd: i32) -> Result<SandboxSpec, String> {
    use std::io::Read;
    use std::os::fd::{FromRawFd, OwnedFd};
    let is_open = std::path::Path::new(&format!("/proc/self/fd/{fd}")).exists();
    if fd < 3 || !is_open {
        return Err(format!(
            "--spec-fd {fd} is not an open descriptor above stderr; pass the read end of a pipe"
        ));
    }
    // SAFETY: the descriptor is open (checked above) and was handed to us to consume.
    let mut file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|error| format!("reading --spec-fd {fd}: {error}"))?;
    SandboxSpec::from_cbor(&bytes).map_err(|error| format!("--spec-fd {fd}: {error}"))
}

fn build_spec(run_args: RunArgs) -> Result<(SandboxSpec, bool), String> {
    let from_fd = run_args.spec_fd.map(read_spec_fd).transpose()?;
    let mut spec = match (&run_args.spec, from_fd) {
        (Some(_), Some(_)) => return Err("give --spec or --spec-fd, not both".to_owned()),
        (None, Some(mut spec)) => {
            if !run_args.command.is_empty() {
                spec.command = run_args.command;
            }
            spec
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read --spec {}: {error}", path.display()))?;
            let mut spec: SandboxSpec = serde_json::from_str(&text)
                .map_err(|error| format!("--spec {}: {error}", path.display()))?;
            if !run_args.command.is_empty() {
                spec.command = run_args.command;
            }
            spec
        }
        (None, None) => {
            if run_args.command.is_empty() {
                return Err("give the command to run after `--` (or a --spec file)".to_owned());
            }
            SandboxSpec::with_defaults(run_args.command)
        }
    };
    for path in run_args.ro {
        spec.filesystem.push(Mount::RoBind {
            source: path.clone(),
            destination: path,
        });
    }
    for path in run_args.rw {
        spec.filesystem.push(Mount::RwBind {
            source: path.clone(),
            destination: path,
        });
    }
    for path in run_args.tmpfs {
        spec.filesystem.push(Mount::Tmpfs {
            destination: path,
            size: None,
        });
    }
    if run_args.net == NetMode::Host {
        spec.namespaces.net = false;
    }
    if let Some(memory) = run_args.memory_max {
        spec.resources.memory_max = Some(memory);
    }
    if let Some(pids) = run_args.pids_max {
        spec.resources.pids_max = Some(pids);
    }
    if let Some(hostname) = run_args.hostname {
        spec.hostname = hostname;
    }
    if let Some(cwd) = run_args.cwd {
        spec.cwd = cwd;
    }
    for assignment in run_args.env {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(format!("--env {assignment:?} must be NAME=VALUE"));
        };
        spec.environment.insert(name.to_owned(), value.to_owned());
    }
    spec.validate().map_err(|error| error.to_string())?;
    Ok((spec, run_args.print_spec))
}

fn run_sandbox(command_name: &str, mut run_args: RunArgs) -> ExitCode {
    let status_file = run_args.status_file.take();
    let (spec, print_only) = match build_spec(run_args) {
        Ok(built) => built,
        Err(message) => {
            eprintln!("{command_name}: {message}");
            return ExitCode::from(2);
        }
    };
    if print_only {
        return match serde_json::to_string_pretty(&spec) {
            Ok(json) => {
                println!("{json}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("{command_name}: cannot encode the spec: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let status = match bureau::sandbox::run(&spec) {
        Ok(status) => status,
        Err(error) => {
            eprintln!("{command_name}: {error}");
            error.exit_code()
        }
    };
    if let Some(path) = status_file
        && let Err(error) = write_status_file(&path, status)
    {
        eprintln!(
            "{command_name}: writing --status-file {}: {error}",
            path.display()
        );
    }
    ExitCode::from(status)
}

/// Writes `status` and a newline to `path` through a temporary file and a rename.
fn write_status_file(path: &std::path::Path, status: u8) -> std::io::Result<()> {
    let temporary = path.with_extension("tmp");
    std::fs::write(&temporary, format!("{status}\n"))?;
    std::fs::rename(&temporary, path)
}

fn run_probe(probe_args: ProbeArgs) -> ExitCode {
    let checks = probe::run_checks();
    if probe_args.json {
        match serde_json::to_string_pretty(&checks) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("bureau-sandbox probe: cannot encode: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for check in &checks {
            let mark = if check.ok { "ok  " } else { "MISSING" };
            println!("{mark:7} {:28} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("        {:28} fix: {fix}", "");
            }
        }
    }
    // Exit 0 when the essentials (user namespaces, landlock, seccomp, /proc) are present.
    let essentials_ok = checks
        .iter()
        .filter(|check| {
            matches!(
                check.name,
                "user_namespaces" | "landlock" | "seccomp" | "proc_mount"
            )
        })
        .all(|check| check.ok);
    if essentials_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_accept_binary_suffixes() {
        assert_eq!(parse_bytes("1048576"), Ok(1_048_576));
        assert_eq!(parse_bytes("64K"), Ok(65_536));
        assert_eq!(parse_bytes("512M"), Ok(512 << 20));
        assert_eq!(parse_bytes("2g"), Ok(2 << 30));
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("99999999999G").is_err());
    }
}
