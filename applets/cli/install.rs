//! `bureau install`: write the applet symlinks.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use bureau::install::{LinkAction, install_links};

use crate::APPLETS;

/// Install the applet symlinks (bureau-launcher, bureau-sandbox, ...) pointing at this binary.
/// Idempotent; refuses to replace anything bureau did not install, and then changes nothing.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "install",
    example = "bureau install --prefix /usr/local"
)]
pub struct InstallArgs {
    /// install into DIR/bin (for example /usr/local)
    #[argh(option)]
    prefix: Option<PathBuf>,

    /// install into exactly this directory (instead of --prefix)
    #[argh(option)]
    bin_dir: Option<PathBuf>,

    /// print what was done as JSON
    #[argh(switch)]
    json: bool,
}

pub fn run(command: InstallArgs) -> ExitCode {
    let bin_dir = match (command.prefix, command.bin_dir) {
        (Some(prefix), None) => prefix.join("bin"),
        (None, Some(bin_dir)) => bin_dir,
        _ => {
            eprintln!(
                "bureau install: give exactly one of --prefix DIR (links go to DIR/bin) or \
                 --bin-dir DIR"
            );
            return ExitCode::from(2);
        }
    };
    let binary = match std::env::current_exe() {
        Ok(binary) => binary,
        Err(error) => {
            eprintln!("bureau install: cannot find the running binary: {error}");
            return ExitCode::FAILURE;
        }
    };
    let names: Vec<&str> = APPLETS.iter().map(|applet| applet.short_name).collect();
    let outcomes = match install_links(&bin_dir, &binary, &names) {
        Ok(outcomes) => outcomes,
        Err(error) => {
            eprintln!("bureau install: {error}");
            return ExitCode::FAILURE;
        }
    };
    if command.json {
        match serde_json::to_string_pretty(&outcomes) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("bureau install: cannot encode the result: {error}");
                return ExitCode::FAILURE;
            }
        }
        return ExitCode::SUCCESS;
    }
    for outcome in &outcomes {
        let verb = match outcome.action {
            LinkAction::Created => "created",
            LinkAction::Replaced => "replaced",
            LinkAction::Unchanged => "unchanged",
            LinkAction::IsBinary => "binary",
        };
        println!(
            "{verb:9}  {} -> {}",
            outcome.path.display(),
            outcome.target.display()
        );
    }
    ExitCode::SUCCESS
}
