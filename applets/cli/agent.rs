//! `bureau agent create|destroy`: a principal on a machine — its account, sealed credentials
//! (with its own Matrix token) and assignment in the machine's `machine_config`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use bureau::naming::Localpart;
use bureau::operator::{AgentSpec, create_agent, destroy_agent, parse_grant};
use bureau::schema::{RestartPolicy, TemplateRef};
use serde_json::{Value, json};

use super::credential::read_credentials;
use super::session::connect_operator;
use super::{fail, print_result};

/// Agents: create or destroy a principal on a machine.
#[derive(FromArgs)]
#[argh(subcommand, name = "agent")]
pub struct AgentArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    #[argh(subcommand)]
    command: AgentCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum AgentCommand {
    Create(CreateArgs),
    Destroy(DestroyArgs),
}

/// Create a principal on a machine: its Matrix account (random password, not kept), its
/// membership of the machine's config room, its credential bundle (its Matrix token plus
/// --credentials) sealed to the machine, and its assignment in machine_config. Run again to
/// replace the assignment and bundle.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "create",
    example = "bureau agent create acme/agent/pm --template claude --machine acme/fleet/prod/machine/box1 --credentials creds.json --payload '{{\"task\": \"triage\"}}' --grant observe=acme/agent/**",
    note = "A plain template name is looked up in the machine's namespace template room. The \
template must resolve, have a command, and get every credential it requires."
)]
struct CreateArgs {
    /// the principal's localpart, e.g. acme/agent/pm
    #[argh(positional)]
    localpart: String,
    /// the template (a name in the machine's namespace, or ROOM:NAME)
    #[argh(option)]
    template: String,
    /// the machine, e.g. acme/fleet/prod/machine/box1
    #[argh(option)]
    machine: String,
    /// a credentials file, a JSON object {"NAME": "value"} (`-` reads standard input)
    #[argh(option)]
    credentials: Option<String>,
    /// the payload, a JSON object (or @FILE)
    #[argh(option)]
    payload: Option<String>,
    /// a grant ACTION[,ACTION…][=TARGET,…], e.g. observe=acme/agent/** (repeatable)
    #[argh(option)]
    grant: Vec<String>,
    /// always, on-failure (default) or never
    #[argh(option, default = "String::from(\"on-failure\")")]
    restart_policy: String,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Remove a principal from a machine: its assignment (the daemon stops it), its credential
/// bundle, and its membership of the config room. Its account stays.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "destroy",
    example = "bureau agent destroy acme/agent/pm --machine acme/fleet/prod/machine/box1"
)]
struct DestroyArgs {
    /// the principal's localpart
    #[argh(positional)]
    localpart: String,
    /// the machine it runs on
    #[argh(option)]
    machine: String,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

pub fn run(args: AgentArgs) -> ExitCode {
    let session_file = args.session_file.as_deref();
    match args.command {
        AgentCommand::Create(create) => run_create(session_file, create),
        AgentCommand::Destroy(destroy) => run_destroy(session_file, destroy),
    }
}

/// `--payload`: inline JSON or `@FILE`; must be an object.
fn read_payload(payload: Option<&str>) -> Result<Value, String> {
    let Some(payload) = payload else {
        return Ok(json!({}));
    };
    let text = match payload.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("reading the --payload file {path}: {error}"))?,
        None => payload.to_owned(),
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|error| format!("--payload is not JSON: {error}"))?;
    if !value.is_object() {
        return Err("--payload must be a JSON object, like {\"task\": \"triage\"}".to_owned());
    }
    Ok(value)
}

fn build_spec(args: &CreateArgs) -> Result<AgentSpec, String> {
    let principal = Localpart::parse(&args.localpart).map_err(|error| error.to_string())?;
    let template = TemplateRef::parse(&args.template).map_err(|error| error.to_string())?;
    let restart_policy: RestartPolicy =
        serde_json::from_value(Value::String(args.restart_policy.clone())).map_err(|_| {
            format!(
                "--restart-policy {:?} is not a restart policy; use always, on-failure or never",
                args.restart_policy
            )
        })?;
    let grants = args
        .grant
        .iter()
        .map(|grant| parse_grant(grant).map_err(|error| error.to_string()))
        .collect::<Result<Vec<_>, _>>()?;
    let payload = read_payload(args.payload.as_deref())?;
    let credentials = match &args.credentials {
        Some(source) => read_credentials(source)?,
        None => Default::default(),
    };
    Ok(AgentSpec {
        principal,
        template,
        payload,
        restart_policy,
        grants,
        credentials,
    })
}

fn run_create(session_file: Option<&Path>, args: CreateArgs) -> ExitCode {
    let spec = match build_spec(&args) {
        Ok(spec) => spec,
        Err(message) => return fail("agent create", args.json, &message),
    };
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let machine = operator
            .machine(&args.machine)
            .map_err(|error| error.to_string())?;
        create_agent(&operator, &machine, spec)
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(created) => {
            let verb = if created.replaced {
                "replaced"
            } else {
                "created"
            };
            let human = format!(
                "{verb} {} on {}\n  account      {}\n  config room  {}\n  template     {} \
                 (restart {})\n  credentials  {}",
                created.principal,
                created.machine,
                created.user_id,
                created.config_room,
                created.template,
                json!(created.restart_policy).as_str().unwrap_or_default(),
                created.key_names.join(", ")
            );
            print_result(args.json, &json!(created), &human)
        }
        Err(message) => fail("agent create", args.json, &message),
    }
}

fn run_destroy(session_file: Option<&Path>, args: DestroyArgs) -> ExitCode {
    let principal = match Localpart::parse(&args.localpart) {
        Ok(principal) => principal,
        Err(error) => return fail("agent destroy", args.json, &error.to_string()),
    };
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let machine = operator
            .machine(&args.machine)
            .map_err(|error| error.to_string())?;
        destroy_agent(&operator, &machine, &principal)
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(destroyed) => {
            let human = if destroyed.assignment_removed
                || destroyed.credentials_removed
                || destroyed.removed_from_room
            {
                format!(
                    "destroyed {} on {} (assignment removed: {}, credentials removed: {}, left \
                     the config room: {})",
                    destroyed.principal,
                    destroyed.machine,
                    destroyed.assignment_removed,
                    destroyed.credentials_removed,
                    destroyed.removed_from_room
                )
            } else {
                format!(
                    "{} was not on {}; nothing to do",
                    destroyed.principal, destroyed.machine
                )
            };
            print_result(args.json, &json!(destroyed), &human)
        }
        Err(message) => fail("agent destroy", args.json, &message),
    }
}
