//! `cargo xtask homeserver up|down|status`: a local Synapse for humans, kept running between
//! commands.
//!
//! Built on `bureau::homeserver` (the same code the integration tests use): `up` starts a
//! detached instance (its own session; it outlives xtask) with its data in
//! `<cache>/dev-instance/` and its description (pid, port, URL, server name, shared secret) in
//! `<cache>/dev-instance.json`, and makes the admin account `admin` / `admin-password`. Users and
//! rooms survive `down` + `up`; the port is reused when it is still free.

use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::time::Instant;

use bureau::homeserver::{
    self, HomeserverConfig, HomeserverError, InstanceInfo, LocalHomeserver, SYNAPSE_VERSION,
};

const USAGE: &str = "Usage: cargo xtask homeserver <up|down|status> [--port N] [--json]

  up      start a local Synapse on 127.0.0.1 (installs it on first use, ~30-40 s), create the
          admin account, print KEY=VALUE lines (or JSON) to use it; does nothing if it runs
  status  whether it runs and answers (exit 0) or not (exit 1)
  down    stop it (its users and rooms are kept for the next `up`)

  --port N  the port for `up` (default: the previous one if free, else any free port)
  --json    print one JSON object instead of KEY=VALUE lines

Cache (venv, data, state): $BUREAU_HOMESERVER_CACHE, else $XDG_CACHE_HOME/bureau/homeserver,
else ~/.cache/bureau/homeserver. Remove <cache>/dev-instance after `down` to start afresh.
";

const ADMIN_USER: &str = "admin";
const ADMIN_PASSWORD: &str = "admin-password";

struct Options {
    port: Option<u16>,
    json: bool,
}

pub fn run(args: &[String]) -> Result<(), String> {
    let Some((command, rest)) = args.split_first() else {
        return Err(format!("homeserver needs a command\n\n{USAGE}"));
    };
    if matches!(command.as_str(), "--help" | "-h" | "help") {
        print!("{USAGE}");
        return Ok(());
    }
    let options = parse_options(rest)?;
    let cache = homeserver::cache_dir();
    let state = cache.join("dev-instance.json");
    match command.as_str() {
        "up" => up(&cache, &state, &options),
        "down" | "stop" if options.port.is_none() => down(&state, &options),
        "status" if options.port.is_none() => status(&state, &options),
        "down" | "stop" | "status" => Err(format!("--port is only for `up`\n\n{USAGE}")),
        other => Err(format!("unknown homeserver command {other:?}\n\n{USAGE}")),
    }
}

fn parse_options(args: &[String]) -> Result<Options, String> {
    let mut options = Options {
        port: None,
        json: false,
    };
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let port = match arg.as_str() {
            "--json" => {
                options.json = true;
                continue;
            }
            "--port" => args
                .next()
                .ok_or_else(|| format!("--port needs a value\n\n{USAGE}"))?
                .as_str(),
            other => match other.strip_prefix("--port=") {
                Some(port) => port,
                None => return Err(format!("unknown option {other:?}\n\n{USAGE}")),
            },
        };
        options.port = Some(
            port.parse()
                .ok()
                .filter(|&port: &u16| port != 0)
                .ok_or_else(|| format!("--port {port:?} is not a port (1-65535)"))?,
        );
    }
    Ok(options)
}

fn up(cache: &Path, state: &Path, options: &Options) -> Result<(), String> {
    let previous = InstanceInfo::load(state).map_err(|error| error.to_string())?;
    if let Some(info) = &previous {
        if info.is_ready() {
            if options.port.is_some_and(|port| port != info.port) {
                return Err(format!(
                    "a homeserver already runs on port {} (pid {}); stop it first with \
                     `cargo xtask homeserver down`",
                    info.port, info.pid
                ));
            }
            eprintln!("xtask homeserver: already running (pid {})", info.pid);
            ensure_admin(info)?;
            print_instance(info, state, options.json);
            return Ok(());
        }
        if info.is_running() {
            eprintln!(
                "xtask homeserver: pid {} runs but does not answer; restarting it",
                info.pid
            );
            info.stop().map_err(|error| error.to_string())?;
        }
    }
    // A stable URL is friendlier: reuse the previous port while nothing else took it.
    let port = options.port.or_else(|| {
        previous
            .as_ref()
            .map(|info| info.port)
            .filter(|&port| TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok())
    });
    if previous.is_none() && !homeserver::venv_dir(cache).exists() {
        eprintln!(
            "xtask homeserver: installing Synapse {SYNAPSE_VERSION} into {} (first use, ~30-40 s)",
            cache.display()
        );
    }
    let started = Instant::now();
    let info = LocalHomeserver::start_detached(HomeserverConfig {
        port,
        data_dir: Some(cache.join("dev-instance")),
        cache_dir: Some(cache.to_path_buf()),
        ..HomeserverConfig::default()
    })
    .map_err(|error| error.to_string())?;
    if let Err(error) = info.save(state) {
        let _ = info.stop();
        return Err(error.to_string());
    }
    ensure_admin(&info)?;
    eprintln!(
        "xtask homeserver: Synapse {SYNAPSE_VERSION} (pid {}) ready in {:.1} s; logs in {}",
        info.pid,
        started.elapsed().as_secs_f64(),
        info.data_dir.display()
    );
    print_instance(&info, state, options.json);
    Ok(())
}

/// Creates the admin account unless it exists (it survives `down` + `up`).
fn ensure_admin(info: &InstanceInfo) -> Result<(), String> {
    match info.register(ADMIN_USER, ADMIN_PASSWORD, true) {
        Ok(()) | Err(HomeserverError::UserExists { .. }) => Ok(()),
        Err(error) => Err(error.to_string()),
    }
}

fn status(state: &Path, options: &Options) -> Result<(), String> {
    let info = InstanceInfo::load(state).map_err(|error| error.to_string())?;
    let Some(info) = info.filter(InstanceInfo::is_running) else {
        print_stopped(options.json);
        return Err("no homeserver is running (start one with `cargo xtask homeserver up`)".into());
    };
    if !info.is_ready() {
        return Err(format!(
            "Synapse (pid {}) runs but {}/_matrix/client/versions does not answer; see {}",
            info.pid,
            info.base_url,
            info.log_path().display()
        ));
    }
    print_instance(&info, state, options.json);
    Ok(())
}

fn down(state: &Path, options: &Options) -> Result<(), String> {
    let info = InstanceInfo::load(state).map_err(|error| error.to_string())?;
    match info.filter(InstanceInfo::is_running) {
        Some(info) => {
            let started = Instant::now();
            info.stop().map_err(|error| error.to_string())?;
            eprintln!(
                "xtask homeserver: stopped pid {} in {:.1} s (data kept in {})",
                info.pid,
                started.elapsed().as_secs_f64(),
                info.data_dir.display()
            );
        }
        None => eprintln!("xtask homeserver: not running"),
    }
    print_stopped(options.json);
    Ok(())
}

fn print_instance(info: &InstanceInfo, state: &Path, json: bool) {
    let admin = format!("@{ADMIN_USER}:{}", info.server_name);
    if json {
        let value = serde_json::json!({
            "running": true,
            "url": info.base_url,
            "server_name": info.server_name,
            "admin_user": admin,
            "admin_password": ADMIN_PASSWORD,
            "pid": info.pid,
            "port": info.port,
            "data_dir": info.data_dir,
            "state_file": state,
            "synapse_version": info.synapse_version,
        });
        println!("{value:#}");
        return;
    }
    let lines: [(&str, String); 8] = [
        ("HOMESERVER_URL", info.base_url.clone()),
        ("HOMESERVER_SERVER_NAME", info.server_name.clone()),
        ("HOMESERVER_ADMIN_USER", admin),
        ("HOMESERVER_ADMIN_PASSWORD", ADMIN_PASSWORD.to_owned()),
        ("HOMESERVER_PID", info.pid.to_string()),
        ("HOMESERVER_DATA_DIR", info.data_dir.display().to_string()),
        // The shared secret is not printed: it is in the state file (mode 0600).
        ("HOMESERVER_STATE_FILE", state.display().to_string()),
        ("HOMESERVER_SYNAPSE_VERSION", info.synapse_version.clone()),
    ];
    for (key, value) in lines {
        println!("{key}={value}");
    }
}

fn print_stopped(json: bool) {
    if json {
        println!("{}", serde_json::json!({ "running": false }));
    }
}
