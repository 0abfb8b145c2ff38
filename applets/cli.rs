//! `bureau`: the operator's and agent's command line.
//!
//! Applets (`bureau sandbox …`) are dispatched before this parser runs (see `main.rs`); this
//! module holds the CLI's own subcommands. Each subcommand parses, calls the library, and prints
//! (human text, or JSON with `--json`); the work itself lives in the library.

mod agent;
mod credential;
mod install;
mod list;
mod machine;
mod matrix;
mod naming;
mod session;
mod template;

use std::process::ExitCode;

use argh::FromArgs;

use crate::args;

/// Bureau: run organizations that include AI agents. Sandboxes, per-principal credential
/// proxies, live observation and Matrix messaging, in one static binary.
#[derive(FromArgs)]
#[argh(
    note = "Applets run as `bureau-NAME ...` (symlinks written by `bureau install`) or as \
`bureau NAME ...`: launcher, daemon, proxy, sandbox, bridge, doctor, proxy-call. \
`bureau NAME --help` describes each."
)]
struct Cli {
    /// print the version, git commit and target, then exit
    #[argh(switch, short = 'V')]
    version: bool,

    /// log filter: error, warn, info, debug, trace, or RUST_LOG syntax (overrides RUST_LOG)
    #[argh(option)]
    log_level: Option<String>,

    #[argh(subcommand)]
    command: Option<Command>,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum Command {
    Agent(agent::AgentArgs),
    Credential(credential::CredentialArgs),
    Install(install::InstallArgs),
    List(list::ListArgs),
    Login(session::LoginArgs),
    Machine(machine::MachineArgs),
    Matrix(matrix::MatrixArgs),
    Naming(naming::NamingArgs),
    Template(template::TemplateArgs),
    Whoami(session::WhoamiArgs),
}

/// `bureau 0.1.0 (commit 1a2b3c4d5e6f, target x86_64-unknown-linux-musl)`
pub fn version_line() -> String {
    format!(
        "bureau {} (commit {}, target {})",
        env!("CARGO_PKG_VERSION"),
        env!("BUREAU_GIT_COMMIT"),
        env!("BUREAU_TARGET")
    )
}

pub fn run(arguments: &[String]) -> ExitCode {
    let cli: Cli = match args::parse("bureau", arguments) {
        Ok(cli) => cli,
        Err(status) => return status,
    };
    if cli.version {
        println!("{}", version_line());
        return ExitCode::SUCCESS;
    }
    if let Err(status) = args::init_logging("bureau", cli.log_level.as_deref(), "warn") {
        return status;
    }
    match cli.command {
        Some(Command::Agent(command)) => agent::run(command),
        Some(Command::Credential(command)) => credential::run(command),
        Some(Command::Install(command)) => install::run(command),
        Some(Command::List(command)) => list::run(command),
        Some(Command::Login(command)) => session::run_login(command),
        Some(Command::Machine(command)) => machine::run(command),
        Some(Command::Matrix(command)) => matrix::run(command),
        Some(Command::Naming(command)) => naming::run(command),
        Some(Command::Template(command)) => template::run(command),
        Some(Command::Whoami(command)) => session::run_whoami(command),
        None => {
            eprintln!("bureau: no command given.\n");
            eprint!("{}", args::help_text::<Cli>("bureau"));
            ExitCode::from(2)
        }
    }
}

/// Runs an async command body on a single-threaded runtime (the CLI does one thing at a time).
fn block_on<F: std::future::Future>(future: F) -> F::Output {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime.block_on(future),
        Err(error) => {
            eprintln!("bureau: cannot start the async runtime: {error}");
            std::process::exit(1);
        }
    }
}

/// Reports a refusal of `bureau COMMAND`; exit status 1. See [`fail_with`].
fn fail(command: &str, json: bool, message: &str) -> ExitCode {
    fail_with(command, json, message, serde_json::Map::new())
}

/// Reports a refusal of `bureau COMMAND`; exit status 1. Without `--json`: `bureau COMMAND:
/// message` on stderr. With it: `fields` plus `"error": message` as JSON on stdout (where a
/// script reading `--json` output looks), and nothing on stderr.
///
/// Example: `template validate --json` of an invalid file → `{"file": "bad.json", "valid":
/// false, "error": "bad.json: …"}`; `list --json` → `{"error": "…"}`.
fn fail_with(
    command: &str,
    json: bool,
    message: &str,
    mut fields: serde_json::Map<String, serde_json::Value>,
) -> ExitCode {
    if !json {
        eprintln!("bureau {command}: {message}");
        return ExitCode::FAILURE;
    }
    fields.insert("error".to_owned(), message.into());
    match serde_json::to_string_pretty(&fields) {
        Ok(text) => println!("{text}"),
        // A map of strings and plain values always encodes; say so in text if it ever does not.
        Err(error) => eprintln!("bureau {command}: {message} (and its JSON: {error})"),
    }
    ExitCode::FAILURE
}

/// Prints `json` (with `--json`) or `human`; exit status 0.
fn print_result(json: bool, value: &serde_json::Value, human: &str) -> ExitCode {
    if json {
        match serde_json::to_string_pretty(value) {
            Ok(text) => println!("{text}"),
            Err(error) => return fail("", false, &format!("cannot encode the result: {error}")),
        }
    } else {
        println!("{human}");
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::APPLETS;

    #[test]
    fn help_names_every_applet() {
        let help = args::help_text::<Cli>("bureau");
        for applet in APPLETS {
            assert!(
                help.contains(applet.short_name),
                "`bureau --help` does not mention {}",
                applet.short_name
            );
        }
    }
}
