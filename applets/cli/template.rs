//! `bureau template push|show|list|validate`: sandbox templates (`m.bureau.template`) in a
//! namespace's template room.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use bureau::naming::Localpart;
use bureau::operator::{
    Operator, list_templates, namespace_template_room_alias, parse_template, push_template,
    resolve_template, resolve_unpublished, template_location,
};
use bureau::schema::{Template, TemplateRef};
use serde_json::json;

use super::session::connect_operator;
use super::{fail, fail_with, print_result};

/// Templates: publish, show, list and check sandbox templates.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "template",
    note = "NAME is a template name (`claude`, with --namespace acme: the room \
#acme/template:SERVER), or names its room: `acme/template:claude`, \
`#acme/template:bureau.local:claude`."
)]
pub struct TemplateArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    #[argh(subcommand)]
    command: TemplateCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum TemplateCommand {
    Push(PushArgs),
    Show(ShowArgs),
    List(ListArgs),
    Validate(ValidateArgs),
}

/// Check a template file and publish it (replacing a template of that name). Refuses an
/// invalid template, a missing parent, or an inheritance cycle, naming the problem.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "push",
    example = "bureau template push claude claude.json --namespace acme"
)]
struct PushArgs {
    /// the template's name (see `bureau template --help`)
    #[argh(positional)]
    name: String,
    /// the template file (JSON)
    #[argh(positional)]
    file: PathBuf,
    /// the namespace whose template room NAME and plain parent names are in
    #[argh(option)]
    namespace: Option<String>,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Print a template (its JSON, as published); with --resolved, with its inheritance applied.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "show",
    example = "bureau template show agent-base --namespace acme --resolved",
    note = "With --json, the template comes wrapped with its name and room: {{\"name\": …, \
\"room\": …, \"resolved\": …, \"template\": {{…}}}}."
)]
struct ShowArgs {
    /// the template's name (see `bureau template --help`)
    #[argh(positional)]
    name: String,
    /// the namespace whose template room NAME and plain parent names are in
    #[argh(option)]
    namespace: Option<String>,
    /// apply its inherits chain (as the daemon will)
    #[argh(switch)]
    resolved: bool,
    /// print {"name", "room", "resolved", "template"} as JSON
    #[argh(switch)]
    json: bool,
}

/// List a namespace's templates: name, parent and description.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "list",
    example = "bureau template list --namespace acme"
)]
struct ListArgs {
    /// the namespace (its room #NAMESPACE/template)
    #[argh(option)]
    namespace: String,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Check a template file (offline); with a session, also that its parent exists and the
/// chain resolves. Exit 1 when it is invalid.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "validate",
    example = "bureau template validate claude.json --namespace acme"
)]
struct ValidateArgs {
    /// the template file (JSON)
    #[argh(positional)]
    file: PathBuf,
    /// the namespace whose template room plain parent names are in
    #[argh(option)]
    namespace: Option<String>,
    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

pub fn run(args: TemplateArgs) -> ExitCode {
    let session_file = args.session_file.as_deref();
    match args.command {
        TemplateCommand::Push(push) => run_push(session_file, push),
        TemplateCommand::Show(show) => run_show(session_file, show),
        TemplateCommand::List(list) => run_list(session_file, list),
        TemplateCommand::Validate(validate) => run_validate(session_file, validate),
    }
}

fn parse_reference(name: &str) -> Result<TemplateRef, String> {
    TemplateRef::parse(name).map_err(|error| error.to_string())
}

fn read_template(file: &Path) -> Result<Template, String> {
    let bytes = std::fs::read(file)
        .map_err(|error| format!("reading the template file {}: {error}", file.display()))?;
    parse_template(&bytes).map_err(|error| format!("{}: {error}", file.display()))
}

/// The room plain template names are looked up in: the namespace's template room, else the
/// room `reference` names.
fn default_room(
    operator: &Operator,
    namespace: Option<&str>,
    reference: Option<&TemplateRef>,
) -> Result<Option<String>, String> {
    if let Some(namespace) = namespace {
        let namespace =
            Localpart::parse(namespace).map_err(|error| format!("--namespace: {error}"))?;
        return namespace_template_room_alias(operator.server_name(), &namespace)
            .map(Some)
            .map_err(|error| format!("--namespace: {error}"));
    }
    Ok(reference.and_then(|reference| {
        template_location(operator.server_name(), reference, None)
            .ok()
            .map(|location| location.room)
    }))
}

/// [`default_room`], required.
fn required_default_room(
    operator: &Operator,
    namespace: Option<&str>,
    reference: &TemplateRef,
) -> Result<String, String> {
    default_room(operator, namespace, Some(reference))?.ok_or_else(|| {
        format!(
            "template {reference:?} names no room; give --namespace NS (the room \
             #NS/template:{}), or write the room into the name, like NS/template:{}",
            operator.server_name(),
            reference.name()
        )
    })
}

fn run_push(session_file: Option<&Path>, args: PushArgs) -> ExitCode {
    let reference = match parse_reference(&args.name) {
        Ok(reference) => reference,
        Err(message) => return fail("template push", args.json, &message),
    };
    let template = match read_template(&args.file) {
        Ok(template) => template,
        Err(message) => return fail("template push", args.json, &message),
    };
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let room = required_default_room(&operator, args.namespace.as_deref(), &reference)?;
        push_template(&operator, &reference, &template, &room)
            .await
            .map_err(|error| error.to_string())
    });
    match result {
        Ok(pushed) => {
            let human = format!("pushed template {} to {}", pushed.name, pushed.room);
            print_result(args.json, &json!(pushed), &human)
        }
        Err(message) => fail("template push", args.json, &message),
    }
}

fn run_show(session_file: Option<&Path>, args: ShowArgs) -> ExitCode {
    let reference = match parse_reference(&args.name) {
        Ok(reference) => reference,
        Err(message) => return fail("template show", args.json, &message),
    };
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let room = required_default_room(&operator, args.namespace.as_deref(), &reference)?;
        let location = template_location(operator.server_name(), &reference, Some(&room))
            .map_err(|error| error.to_string())?;
        let template = if args.resolved {
            resolve_template(&operator, &reference, &room)
                .await
                .map_err(|error| error.to_string())?
        } else {
            bureau::operator::fetch_template(&operator, &location)
                .await
                .map_err(|error| error.to_string())?
                .ok_or_else(|| {
                    format!(
                        "template {:?} does not exist in {}; `bureau template list --namespace \
                         NS` lists what does",
                        reference.to_string(),
                        location.room
                    )
                })?
        };
        Ok::<_, String>((location, template))
    });
    match result {
        Ok((location, template)) => {
            let template = json!(template);
            if !args.json {
                // The human form of a template is its JSON.
                return print_result(true, &template, "");
            }
            print_result(
                true,
                &json!({
                    "name": location.name.to_string(),
                    "room": location.room,
                    "resolved": args.resolved,
                    "template": template,
                }),
                "",
            )
        }
        Err(message) => fail("template show", args.json, &message),
    }
}

fn run_list(session_file: Option<&Path>, args: ListArgs) -> ExitCode {
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let namespace =
            Localpart::parse(&args.namespace).map_err(|error| format!("--namespace: {error}"))?;
        let room = namespace_template_room_alias(operator.server_name(), &namespace)
            .map_err(|error| format!("--namespace: {error}"))?;
        list_templates(&operator, &room)
            .await
            .map(|templates| (room, templates))
            .map_err(|error| error.to_string())
    });
    match result {
        Ok((room, templates)) => {
            let mut human = format!("templates in {room}:");
            for template in &templates {
                human.push_str(&format!("\n  {:20}", template.name));
                if let Some(parent) = &template.inherits {
                    human.push_str(&format!(" (inherits {parent})"));
                }
                if let Some(description) = &template.description {
                    human.push_str(&format!(" {description}"));
                }
                if let Some(error) = &template.error {
                    human.push_str(&format!(" UNREADABLE: {error}"));
                }
            }
            print_result(args.json, &json!(templates), &human)
        }
        Err(message) => fail("template list", args.json, &message),
    }
}

fn run_validate(session_file: Option<&Path>, args: ValidateArgs) -> ExitCode {
    let file = args.file.display().to_string();
    let invalid = |message: &str| {
        let fields = serde_json::Map::from_iter([
            ("file".to_owned(), json!(file)),
            ("valid".to_owned(), json!(false)),
        ]);
        fail_with("template validate", args.json, message, fields)
    };
    let template = match read_template(&args.file) {
        Ok(template) => template,
        Err(message) => return invalid(&message),
    };
    let Some(parent) = template.inherits.clone() else {
        return print_result(
            args.json,
            &json!({"file": file, "valid": true, "parent_checked": false}),
            &format!("{file}: valid (inherits nothing)"),
        );
    };
    // The parent check needs the homeserver; without a session, say it was not done.
    let path = session_file.map_or_else(bureau::matrix::default_session_path, Path::to_owned);
    if !path.exists() {
        return print_result(
            args.json,
            &json!({"file": file, "valid": true, "parent_checked": false,
                    "note": "no session: the parent was not checked"}),
            &format!(
                "{file}: valid; its parent {parent} was not checked (no session; `bureau login` \
                 to check it too)"
            ),
        );
    }
    let result = super::block_on(async {
        let operator = connect_operator(session_file).await?;
        let Some(room) = default_room(&operator, args.namespace.as_deref(), Some(&parent))? else {
            return Ok(false);
        };
        resolve_unpublished(&operator, &template, &room)
            .await
            .map(|_| true)
            .map_err(|error| format!("{file}: {error}"))
    });
    match result {
        Ok(true) => print_result(
            args.json,
            &json!({"file": file, "valid": true, "parent_checked": true}),
            &format!("{file}: valid; its parent {parent} resolves"),
        ),
        Ok(false) => print_result(
            args.json,
            &json!({"file": file, "valid": true, "parent_checked": false,
                    "note": "give --namespace to check a plain parent name"}),
            &format!(
                "{file}: valid; its parent {parent} was not checked (give --namespace NS to \
                 look it up in #NS/template)"
            ),
        ),
        Err(message) => invalid(&message),
    }
}
