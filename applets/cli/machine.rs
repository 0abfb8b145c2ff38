//! `bureau machine provision`: a machine's account, config room and bootstrap file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use bureau::operator::{default_bootstrap_path, provision_machine};
use serde_json::json;

use super::session::connect_operator;
use super::{fail, print_result};

/// Machines: provision one (its Matrix account, config room and bootstrap file).
#[derive(FromArgs)]
#[argh(subcommand, name = "machine")]
pub struct MachineArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    #[argh(subcommand)]
    command: MachineCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum MachineCommand {
    Provision(ProvisionArgs),
}

/// Create a machine's account (random password), its config room, its invitations to the
/// fleet's machine room and the template room, and its bootstrap file (mode 0600) for
/// `bureau-launcher`. Refuses a machine that was provisioned before.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "provision",
    example = "bureau machine provision acme/fleet/prod/machine/box1 --bootstrap-file /tmp/box1.json",
    note = "Needs `bureau matrix setup NAMESPACE --fleet FLEET` first, and an operator session \
of a homeserver admin. Hand the bootstrap file to the machine securely; its launcher reads it \
on first boot."
)]
struct ProvisionArgs {
    /// the machine's name, <fleet>/machine/<name>, e.g. acme/fleet/prod/machine/box1
    #[argh(positional)]
    name: String,

    /// where to write the bootstrap file (default: ./bootstrap-<name>.json; must not exist)
    #[argh(option)]
    bootstrap_file: Option<PathBuf>,

    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

pub fn run(args: MachineArgs) -> ExitCode {
    match args.command {
        MachineCommand::Provision(provision) => {
            run_provision(args.session_file.as_deref(), provision)
        }
    }
}

fn run_provision(session_file: Option<&Path>, args: ProvisionArgs) -> ExitCode {
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let machine = operator
            .machine(&args.name)
            .map_err(|error| error.to_string())?;
        let bootstrap = args
            .bootstrap_file
            .clone()
            .unwrap_or_else(|| default_bootstrap_path(&machine));
        provision_machine(&operator, &machine, &bootstrap)
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(provisioned) => {
            let human = format!(
                "provisioned {}\n  account      {}\n  config room  {} ({})\n  invited to   \
                 {}\n  bootstrap    {} (0600; give it to the machine's launcher, then delete \
                 it)",
                provisioned.machine,
                provisioned.user_id,
                provisioned.config_room,
                provisioned.config_room_id,
                provisioned.invited_to.join(", "),
                provisioned.bootstrap_file.display()
            );
            print_result(args.json, &json!(provisioned), &human)
        }
        Err(message) => fail("machine provision", args.json, &message),
    }
}
