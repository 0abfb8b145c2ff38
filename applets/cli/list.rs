//! `bureau list`: the principals of machines and their state.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use bureau::naming::Localpart;
use bureau::operator::{fleet_machines, list_machines};
use serde_json::json;

use super::session::connect_operator;
use super::{fail, print_result};

/// List machines' principals: template, restart policy, and state from the machine's latest
/// heartbeat (`unknown` before one names it; `invalid`, with the reason, for an assignment the
/// daemon cannot use).
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "list",
    example = "bureau list --machine acme/fleet/prod/machine/box1",
    example = "bureau list --fleet acme/fleet/prod --json"
)]
pub struct ListArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,
    /// a machine to list (repeatable)
    #[argh(option)]
    machine: Vec<String>,
    /// list every machine of this fleet that has published its key, e.g. acme/fleet/prod
    #[argh(option)]
    fleet: Option<String>,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

pub fn run(args: ListArgs) -> ExitCode {
    if args.machine.is_empty() && args.fleet.is_none() {
        eprintln!(
            "bureau list: name what to list: --machine M (repeatable) or --fleet F (e.g. \
             acme/fleet/prod)"
        );
        return ExitCode::from(2);
    }
    let fleet = match args.fleet.as_deref().map(Localpart::parse).transpose() {
        Ok(fleet) => fleet,
        Err(error) => return fail("list", args.json, &format!("--fleet: {error}")),
    };
    let session_file: Option<&Path> = args.session_file.as_deref();
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let mut machines = Vec::new();
        for name in &args.machine {
            machines.push(operator.machine(name).map_err(|error| error.to_string())?);
        }
        if let Some(fleet) = &fleet {
            for machine in fleet_machines(&operator, fleet)
                .await
                .map_err(|error| error.to_string())?
            {
                if !machines.contains(&machine) {
                    machines.push(machine);
                }
            }
        }
        list_machines(&operator, &machines)
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(listings) => {
            let mut human = String::new();
            for listing in &listings {
                let key = if listing.has_key {
                    "booted"
                } else {
                    "never booted"
                };
                human.push_str(&format!("{} ({key})\n", listing.machine));
                if let Some(error) = &listing.error {
                    human.push_str(&format!("  cannot read it: {error}\n"));
                }
                if listing.principals.is_empty() && listing.error.is_none() {
                    human.push_str("  no principals\n");
                }
                for principal in &listing.principals {
                    let template = principal.template.as_deref().unwrap_or("(unassigned)");
                    let pid = principal
                        .pid
                        .map(|pid| format!(" pid {pid}"))
                        .unwrap_or_default();
                    let reason = principal
                        .error
                        .as_deref()
                        .map(|error| format!(": {error}"))
                        .unwrap_or_default();
                    human.push_str(&format!(
                        "  {:32} {:16} {}{pid}{reason}\n",
                        principal.principal, template, principal.state
                    ));
                }
            }
            if listings.is_empty() {
                human.push_str("no machines (none in the fleet has published its key yet)");
            }
            print_result(args.json, &json!(listings), human.trim_end())
        }
        Err(message) => fail("list", args.json, &message),
    }
}
