//! `bureau credential provision`: seal a principal's credentials to its machine's key and
//! publish them. Values are read from a file or stdin, never argv, and never printed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use bureau::naming::Localpart;
use bureau::operator::{ExistingMatrixToken, parse_credential_values, provision_credentials};
use serde_json::json;

use super::session::connect_operator;
use super::{fail, print_result};

/// Credentials: seal a principal's credential bundle to its machine.
#[derive(FromArgs)]
#[argh(subcommand, name = "credential")]
pub struct CredentialArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    #[argh(subcommand)]
    command: CredentialCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum CredentialCommand {
    Provision(ProvisionArgs),
}

/// Seal credentials (a flat JSON object NAME -> string) to the machine's key and publish them
/// as the principal's bundle (m.bureau.credentials) in the machine's config room, replacing its
/// previous bundle. Prints the key names only.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "provision",
    example = "bureau credential provision --machine acme/fleet/prod/machine/box1 --principal acme/service/mail --from-file creds.json",
    note = "The bundle replaces the principal's whole bundle: include every credential it needs. \
A principal made by `bureau agent create` has its Matrix token (MATRIX_ACCESS_TOKEN) in its \
bundle, so this refuses to replace it; change an agent's credentials with `bureau agent create \
P --template T --machine M --credentials FILE` (or pass --drop-matrix-token to replace the \
bundle anyway: the principal loses its Matrix identity at its next restart)."
)]
struct ProvisionArgs {
    /// the machine, e.g. acme/fleet/prod/machine/box1
    #[argh(option)]
    machine: String,

    /// the principal whose bundle this is, e.g. acme/service/mail
    #[argh(option)]
    principal: String,

    /// the credentials file, a JSON object {"NAME": "value"}; `-` reads standard input
    #[argh(option)]
    from_file: String,

    /// replace a bundle that carries the principal's Matrix token (MATRIX_ACCESS_TOKEN) with one
    /// that does not
    #[argh(switch)]
    drop_matrix_token: bool,

    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

pub fn run(args: CredentialArgs) -> ExitCode {
    match args.command {
        CredentialCommand::Provision(provision) => {
            run_provision(args.session_file.as_deref(), provision)
        }
    }
}

/// Reads a credentials file (`-` for stdin) and parses it; the raw bytes are zeroed.
pub(super) fn read_credentials(
    source: &str,
) -> Result<std::collections::BTreeMap<String, bureau::secret::Secret>, String> {
    let mut bytes = Vec::new();
    let read = if source == "-" {
        std::io::stdin().read_to_end(&mut bytes)
    } else {
        std::fs::File::open(source).and_then(|mut file| file.read_to_end(&mut bytes))
    };
    if let Err(error) = read {
        bureau::secret::zeroize(&mut bytes);
        let name = if source == "-" {
            "standard input"
        } else {
            source
        };
        return Err(format!("reading the credentials from {name}: {error}"));
    }
    parse_credential_values(bytes).map_err(|error| format!("{source}: {error}"))
}

fn run_provision(session_file: Option<&Path>, args: ProvisionArgs) -> ExitCode {
    let principal = match Localpart::parse(&args.principal) {
        Ok(principal) => principal,
        Err(error) => {
            return fail(
                "credential provision",
                args.json,
                &format!("--principal: {error}"),
            );
        }
    };
    let values = match read_credentials(&args.from_file) {
        Ok(values) => values,
        Err(message) => return fail("credential provision", args.json, &message),
    };
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let machine = operator
            .machine(&args.machine)
            .map_err(|error| error.to_string())?;
        let existing_token = if args.drop_matrix_token {
            ExistingMatrixToken::Drop
        } else {
            ExistingMatrixToken::Refuse
        };
        provision_credentials(&operator, &machine, &principal, &values, existing_token)
            .await
            .map_err(|error| error.to_string())
    });
    drop(values);
    match result {
        Ok(published) => {
            let human = format!(
                "sealed {} for {} to {} and published it in {}",
                published.key_names.join(", "),
                published.principal,
                published.machine,
                published.config_room
            );
            print_result(args.json, &json!(published), &human)
        }
        Err(message) => fail("credential provision", args.json, &message),
    }
}
