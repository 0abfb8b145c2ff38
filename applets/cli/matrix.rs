//! `bureau matrix …`: the control plane's rooms and events, from the saved session.

use std::path::PathBuf;
use std::process::ExitCode;

use argh::FromArgs;
use bureau::matrix::setup::setup_namespace;
use bureau::matrix::{
    Client, ConnectOptions, MatrixError, Session, SessionError, SyncStream, default_session_path,
    parse_room_id,
};
use bureau::naming::Localpart;
use ruma::OwnedRoomId;
use serde_json::{Value, json};

use super::{fail, print_result};

/// Matrix rooms and events: set up a namespace, send, read and write state, watch a room.
#[derive(FromArgs)]
#[argh(subcommand, name = "matrix")]
pub struct MatrixArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    #[argh(subcommand)]
    command: MatrixCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum MatrixCommand {
    Setup(SetupArgs),
    Send(SendArgs),
    State(StateArgs),
    Watch(WatchArgs),
    Doctor(DoctorArgs),
}

/// Create (or repair) a namespace's space and rooms, and a fleet's rooms; safe to run again.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "setup",
    example = "bureau matrix setup acme --fleet prod"
)]
struct SetupArgs {
    /// the namespace, e.g. `acme` (rooms #acme/system, #acme/template, …)
    #[argh(positional)]
    namespace: String,

    /// also the fleet's rooms: #NAMESPACE/fleet/NAME, …/machine, …/service
    #[argh(option)]
    fleet: Option<String>,

    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Send a text message to a room (an alias `#…` or an ID `!…`).
#[derive(FromArgs)]
#[argh(subcommand, name = "send")]
struct SendArgs {
    #[argh(positional)]
    room: String,
    #[argh(positional)]
    text: String,
    /// send as m.notice (for bots) instead of m.text
    #[argh(switch)]
    notice: bool,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Read or write room state.
#[derive(FromArgs)]
#[argh(subcommand, name = "state")]
struct StateArgs {
    #[argh(subcommand)]
    command: StateCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum StateCommand {
    Get(StateGetArgs),
    Set(StateSetArgs),
}

/// Print a state event's content as JSON (exit 1 if there is none).
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "get",
    example = "bureau matrix state get '#acme/template:bureau.local' m.bureau.template base"
)]
struct StateGetArgs {
    #[argh(positional)]
    room: String,
    #[argh(positional)]
    event_type: String,
    /// the state key (default: empty)
    #[argh(positional, default = "String::new()")]
    state_key: String,
}

/// Set a state event's content.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "set",
    example = "bureau matrix state set '#acme/system:bureau.local' m.bureau.note '' --content @note.json"
)]
struct StateSetArgs {
    #[argh(positional)]
    room: String,
    #[argh(positional)]
    event_type: String,
    /// the state key (default: empty)
    #[argh(positional, default = "String::new()")]
    state_key: String,
    /// the content: JSON, or @FILE to read it from a file (@- for stdin)
    #[argh(option)]
    content: String,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Print a room's new events as JSON lines until interrupted (Ctrl-C).
#[derive(FromArgs)]
#[argh(subcommand, name = "watch")]
struct WatchArgs {
    #[argh(positional)]
    room: String,
}

/// Check the homeserver, the session, and (with a namespace) its rooms and power levels.
#[derive(FromArgs)]
#[argh(subcommand, name = "doctor")]
struct DoctorArgs {
    /// the namespace whose rooms to check
    #[argh(positional)]
    namespace: Option<String>,
    /// the fleet whose rooms to check too
    #[argh(option)]
    fleet: Option<String>,
    /// print the checks as JSON
    #[argh(switch)]
    json: bool,
}

async fn connect(session_file: &Option<PathBuf>) -> Result<Client, SessionError> {
    let path = session_file.clone().unwrap_or_else(default_session_path);
    let session = Session::load(&path)?;
    Ok(session.connect(&ConnectOptions::default()).await?)
}

/// A room given as `#alias:server` or `!id`.
async fn resolve_room(client: &Client, room: &str) -> Result<OwnedRoomId, MatrixError> {
    if room.starts_with('#') {
        client.resolve_alias(room).await?.ok_or_else(|| {
            MatrixError::Invalid(format!(
                "room alias {room} does not exist (create the namespace's rooms with `bureau \
                 matrix setup`)"
            ))
        })
    } else {
        parse_room_id(room)
    }
}

fn localpart(what: &str, value: &str) -> Result<Localpart, String> {
    Localpart::parse(value).map_err(|error| format!("{what}: {error}"))
}

pub fn run(args: MatrixArgs) -> ExitCode {
    let session_file = args.session_file;
    match args.command {
        MatrixCommand::Setup(setup) => run_setup(&session_file, setup),
        MatrixCommand::Send(send) => run_send(&session_file, send),
        MatrixCommand::State(state) => match state.command {
            StateCommand::Get(get) => run_state_get(&session_file, get),
            StateCommand::Set(set) => run_state_set(&session_file, set),
        },
        MatrixCommand::Watch(watch) => run_watch(&session_file, watch),
        MatrixCommand::Doctor(doctor) => run_doctor(&session_file, doctor),
    }
}

fn run_setup(session_file: &Option<PathBuf>, args: SetupArgs) -> ExitCode {
    let namespace = match localpart("namespace", &args.namespace) {
        Ok(namespace) => namespace,
        Err(message) => return fail("matrix setup", args.json, &message),
    };
    let fleet = match args
        .fleet
        .as_deref()
        .map(|fleet| localpart("--fleet", fleet))
        .transpose()
    {
        Ok(fleet) => fleet,
        Err(message) => return fail("matrix setup", args.json, &message),
    };
    let result = super::block_on(async {
        let client = connect(session_file).await?;
        Ok::<_, SessionError>(setup_namespace(&client, &namespace, fleet.as_ref()).await?)
    });
    match result {
        Ok(reports) => {
            let mut human = String::new();
            for report in &reports {
                let what = if report.created {
                    "created"
                } else if report.power_levels_repaired || report.added_to_space {
                    "repaired"
                } else {
                    "ok"
                };
                human.push_str(&format!("{what:8} {} {}\n", report.alias, report.room_id));
            }
            print_result(args.json, &json!(reports), human.trim_end())
        }
        Err(error) => fail("matrix setup", args.json, &error.to_string()),
    }
}

fn run_send(session_file: &Option<PathBuf>, args: SendArgs) -> ExitCode {
    let result = super::block_on(async {
        let client = connect(session_file).await?;
        let room_id = resolve_room(&client, &args.room).await?;
        let event_id = client.send_text(&room_id, &args.text, args.notice).await?;
        Ok::<_, SessionError>((room_id, event_id))
    });
    match result {
        Ok((room_id, event_id)) => print_result(
            args.json,
            &json!({"room_id": room_id.to_string(), "event_id": event_id.to_string()}),
            &format!("sent {event_id} to {room_id}"),
        ),
        Err(error) => fail("matrix send", args.json, &error.to_string()),
    }
}

fn run_state_get(session_file: &Option<PathBuf>, args: StateGetArgs) -> ExitCode {
    let result = super::block_on(async {
        let client = connect(session_file).await?;
        let room_id = resolve_room(&client, &args.room).await?;
        Ok::<_, SessionError>(
            client
                .state_get(&room_id, &args.event_type, &args.state_key)
                .await?,
        )
    });
    match result {
        Ok(Some(content)) => {
            println!(
                "{}",
                serde_json::to_string_pretty(&content).unwrap_or_default()
            );
            ExitCode::SUCCESS
        }
        Ok(None) => fail(
            "matrix state get",
            false,
            &format!(
                "{} has no {} state event with key {:?}",
                args.room, args.event_type, args.state_key
            ),
        ),
        Err(error) => fail("matrix state get", false, &error.to_string()),
    }
}

/// `--content`: inline JSON, `@FILE`, or `@-` for stdin.
fn read_content(content: &str) -> Result<Value, String> {
    let text = match content.strip_prefix('@') {
        Some("-") => {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text)
                .map_err(|error| format!("reading --content from stdin: {error}"))?;
            text
        }
        Some(path) => std::fs::read_to_string(path)
            .map_err(|error| format!("reading --content file {path}: {error}"))?,
        None => content.to_owned(),
    };
    let value: Value =
        serde_json::from_str(&text).map_err(|error| format!("--content is not JSON: {error}"))?;
    if !value.is_object() {
        return Err("--content must be a JSON object (state event contents are objects)".into());
    }
    Ok(value)
}

fn run_state_set(session_file: &Option<PathBuf>, args: StateSetArgs) -> ExitCode {
    let content = match read_content(&args.content) {
        Ok(content) => content,
        Err(message) => return fail("matrix state set", args.json, &message),
    };
    let result = super::block_on(async {
        let client = connect(session_file).await?;
        let room_id = resolve_room(&client, &args.room).await?;
        let event_id = client
            .state_put(&room_id, &args.event_type, &args.state_key, &content)
            .await?;
        Ok::<_, SessionError>((room_id, event_id))
    });
    match result {
        Ok((room_id, event_id)) => print_result(
            args.json,
            &json!({"room_id": room_id.to_string(), "event_id": event_id.to_string()}),
            &format!("set {} in {room_id} ({event_id})", args.event_type),
        ),
        Err(error) => fail("matrix state set", args.json, &error.to_string()),
    }
}

fn run_watch(session_file: &Option<PathBuf>, args: WatchArgs) -> ExitCode {
    let result = super::block_on(async {
        let client = connect(session_file).await?;
        let room_id = resolve_room(&client, &args.room).await?;
        let filter = json!({"room": {"rooms": [room_id.to_string()], "timeline": {"limit": 50}}});
        let mut stream = SyncStream::new(client, None, Some(filter));
        // The first batch is the room as it is; only what happens from now on is printed.
        stream.next_batch().await?;
        loop {
            tokio::select! {
                batch = stream.next_batch() => {
                    let batch = batch?;
                    for event in batch.timeline_of(&room_id) {
                        println!("{}", serde_json::to_string(event).unwrap_or_default());
                    }
                }
                _ = tokio::signal::ctrl_c() => return Ok::<_, SessionError>(()),
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => fail("matrix watch", false, &error.to_string()),
    }
}

#[derive(serde::Serialize)]
struct Check {
    name: String,
    ok: bool,
    detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn run_doctor(session_file: &Option<PathBuf>, args: DoctorArgs) -> ExitCode {
    let checks = super::block_on(doctor_checks(session_file, &args));
    let all_ok = checks.iter().all(|check| check.ok);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&checks).unwrap_or_default()
        );
    } else {
        for check in &checks {
            let mark = if check.ok { "ok  " } else { "FAIL" };
            println!("{mark} {:24} {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("     {:24} fix: {fix}", "");
            }
        }
    }
    if all_ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

async fn doctor_checks(session_file: &Option<PathBuf>, args: &DoctorArgs) -> Vec<Check> {
    let mut checks = Vec::new();
    let path = session_file.clone().unwrap_or_else(default_session_path);
    let session = match Session::load(&path) {
        Ok(session) => session,
        Err(error) => {
            checks.push(Check {
                name: "session".into(),
                ok: false,
                detail: error.to_string(),
                fix: Some("bureau login --homeserver URL --user NAME --password-stdin".into()),
            });
            return checks;
        }
    };
    let client = match session.connect(&ConnectOptions::default()).await {
        Ok(client) => {
            checks.push(Check {
                name: "homeserver".into(),
                ok: true,
                detail: format!("{} answers", session.homeserver_url),
                fix: None,
            });
            client
        }
        Err(error) => {
            checks.push(Check {
                name: "homeserver".into(),
                ok: false,
                detail: error.to_string(),
                fix: Some(format!(
                    "start the homeserver at {}, or log in to another",
                    session.homeserver_url
                )),
            });
            return checks;
        }
    };
    match client.whoami().await {
        Ok(user_id) => checks.push(Check {
            name: "session".into(),
            ok: true,
            detail: format!("logged in as {user_id}"),
            fix: None,
        }),
        Err(error) => {
            checks.push(Check {
                name: "session".into(),
                ok: false,
                detail: error.to_string(),
                fix: Some("bureau login --homeserver URL --user NAME --password-stdin".into()),
            });
            return checks;
        }
    }
    let Some(namespace) = &args.namespace else {
        return checks;
    };
    let server = session.user_id.server_name().to_string();
    let mut aliases = vec![
        namespace.clone(),
        format!("{namespace}/system"),
        format!("{namespace}/template"),
    ];
    if let Some(fleet) = &args.fleet {
        let fleet_room = format!("{namespace}/fleet/{fleet}");
        aliases.push(format!("{fleet_room}/machine"));
        aliases.push(format!("{fleet_room}/service"));
        aliases.push(fleet_room);
    }
    let setup_fix = match &args.fleet {
        Some(fleet) => format!("bureau matrix setup {namespace} --fleet {fleet}"),
        None => format!("bureau matrix setup {namespace}"),
    };
    for alias_localpart in aliases {
        let alias = format!("#{alias_localpart}:{server}");
        let check = match client.resolve_alias(&alias).await {
            Ok(Some(room_id)) => {
                match client.state_get(&room_id, "m.room.power_levels", "").await {
                    Ok(Some(levels)) => {
                        let admin_only = levels["state_default"].as_i64().unwrap_or(0) >= 100
                            && levels["events"]["m.bureau.template"].as_i64().unwrap_or(0) >= 100;
                        Check {
                            name: alias.clone(),
                            ok: admin_only,
                            detail: if admin_only {
                                format!(
                                    "{room_id}: only admins change templates, credentials, configs"
                                )
                            } else {
                                format!(
                                    "{room_id}: power levels let non-admins change Bureau state"
                                )
                            },
                            fix: (!admin_only).then(|| setup_fix.clone()),
                        }
                    }
                    Ok(None) | Err(_) => Check {
                        name: alias.clone(),
                        ok: false,
                        detail: format!("{room_id}: cannot read its power levels (not joined?)"),
                        fix: Some(setup_fix.clone()),
                    },
                }
            }
            Ok(None) => Check {
                name: alias.clone(),
                ok: false,
                detail: "missing".into(),
                fix: Some(setup_fix.clone()),
            },
            Err(error) => Check {
                name: alias.clone(),
                ok: false,
                detail: error.to_string(),
                fix: None,
            },
        };
        checks.push(check);
    }
    checks
}
