//! `bureau naming`: check names and globs the way every Bureau component will.

use std::path::PathBuf;
use std::process::ExitCode;
use std::str::FromStr;

use argh::FromArgs;
use bureau::naming::{
    self, Glob, Localpart, RoomAlias, ServerName, UserId, UserIdPattern, admin_socket_path,
    max_localpart_len, proxy_socket_path,
};
use serde::Serialize;

/// Validate principal names, Matrix IDs and permission globs.
#[derive(FromArgs)]
#[argh(subcommand, name = "naming")]
pub struct NamingArgs {
    #[argh(subcommand)]
    command: NamingCommand,
}

#[derive(FromArgs)]
#[argh(subcommand)]
enum NamingCommand {
    Check(CheckArgs),
    Match(MatchArgs),
}

/// Check that names are valid; exit 0 if all are, 1 if any is not (each error says why).
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "check",
    example = "bureau naming check acme/fleet/prod/agent/pm --server bureau.local",
    example = "bureau naming check --kind user-id @acme/agent/pm:bureau.local"
)]
struct CheckArgs {
    /// the names to check
    #[argh(positional)]
    names: Vec<String>,

    /// what the names are: localpart (default), user-id, room-alias, server-name, glob,
    /// user-id-pattern
    #[argh(option, default = "NameKind::Localpart")]
    kind: NameKind,

    /// run directory the socket path length limit derives from (default /run/bureau)
    #[argh(option)]
    run_dir: Option<PathBuf>,

    /// server name: also show each localpart's user ID, room alias and socket paths
    #[argh(option)]
    server: Option<String>,

    /// print the results as JSON
    #[argh(switch)]
    json: bool,
}

/// Test whether NAME matches PATTERN: exit 0 if it does, 1 if not, 2 if the pattern is
/// malformed. A pattern with `:` is a user-ID pattern (localpart_glob:server_glob).
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "match",
    example = "bureau naming match 'acme/fleet/*/agent/**' acme/fleet/prod/agent/pm"
)]
struct MatchArgs {
    /// the glob: `*` and `?` stay within a segment, `**` spans segments
    #[argh(positional)]
    pattern: String,

    /// the localpart (or, for a user-ID pattern, the user ID) to test
    #[argh(positional)]
    name: String,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
enum NameKind {
    #[default]
    Localpart,
    UserId,
    RoomAlias,
    ServerName,
    Glob,
    UserIdPattern,
}

impl NameKind {
    const ALL: [NameKind; 6] = [
        Self::Localpart,
        Self::UserId,
        Self::RoomAlias,
        Self::ServerName,
        Self::Glob,
        Self::UserIdPattern,
    ];

    fn label(self) -> &'static str {
        match self {
            Self::Localpart => "localpart",
            Self::UserId => "user-id",
            Self::RoomAlias => "room-alias",
            Self::ServerName => "server-name",
            Self::Glob => "glob",
            Self::UserIdPattern => "user-id-pattern",
        }
    }
}

impl FromStr for NameKind {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.label() == value)
            .ok_or_else(|| {
                let labels: Vec<&str> = Self::ALL.into_iter().map(NameKind::label).collect();
                format!("unknown kind {value:?}: use one of {}", labels.join(", "))
            })
    }
}

/// One checked name, as printed with `--json`.
#[derive(Serialize, Default)]
struct Report {
    name: String,
    kind: NameKind,
    valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_length: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    room_alias: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    proxy_socket: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    admin_socket: Option<PathBuf>,
}

pub fn run(command: NamingArgs) -> ExitCode {
    match command.command {
        NamingCommand::Check(check) => run_check(check),
        NamingCommand::Match(matching) => run_match(matching),
    }
}

fn run_check(check: CheckArgs) -> ExitCode {
    if check.names.is_empty() {
        eprintln!("bureau naming check: give at least one name to check");
        return ExitCode::from(2);
    }
    let run_dir = check
        .run_dir
        .unwrap_or_else(|| PathBuf::from(naming::DEFAULT_RUN_DIR));
    let server = match check.server.as_deref().map(ServerName::parse).transpose() {
        Ok(server) => server,
        Err(error) => {
            eprintln!("bureau naming check: --server: {error}");
            return ExitCode::from(2);
        }
    };

    let reports: Vec<Report> = check
        .names
        .iter()
        .map(|name| check_one(name, check.kind, &run_dir, server.as_ref()))
        .collect();
    let all_valid = reports.iter().all(|report| report.valid);

    if check.json {
        match serde_json::to_string_pretty(&reports) {
            Ok(json) => println!("{json}"),
            Err(error) => {
                eprintln!("bureau naming check: cannot encode the result: {error}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        for report in &reports {
            print_report(report);
        }
    }
    if all_valid {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn check_one(
    name: &str,
    kind: NameKind,
    run_dir: &std::path::Path,
    server: Option<&ServerName>,
) -> Report {
    let mut report = Report {
        name: name.to_owned(),
        kind,
        ..Report::default()
    };
    let outcome: Result<(), String> = match kind {
        NameKind::Localpart => match Localpart::parse_for_run_dir(name, run_dir) {
            Ok(localpart) => {
                report.length = Some(localpart.as_str().len());
                report.max_length = Some(max_localpart_len(run_dir));
                if let Some(server) = server {
                    let user_id = UserId::new(localpart.clone(), server.clone());
                    report.room_alias = Some(user_id.room_alias().to_string());
                    report.user_id = Some(user_id.to_string());
                    report.proxy_socket = Some(proxy_socket_path(run_dir, &localpart));
                    report.admin_socket = Some(admin_socket_path(run_dir, &localpart));
                }
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        },
        NameKind::UserId => UserId::parse(name)
            .map(drop)
            .map_err(|error| error.to_string()),
        NameKind::RoomAlias => RoomAlias::parse(name)
            .map(drop)
            .map_err(|error| error.to_string()),
        NameKind::ServerName => ServerName::parse(name)
            .map(drop)
            .map_err(|error| error.to_string()),
        NameKind::Glob => Glob::parse(name)
            .map(drop)
            .map_err(|error| error.to_string()),
        NameKind::UserIdPattern => UserIdPattern::parse(name)
            .map(drop)
            .map_err(|error| error.to_string()),
    };
    match outcome {
        Ok(()) => report.valid = true,
        Err(error) => report.error = Some(error),
    }
    report
}

fn print_report(report: &Report) {
    let kind = report.kind.label();
    if let Some(error) = &report.error {
        eprintln!("invalid {kind}: {error}");
        return;
    }
    match (report.length, report.max_length) {
        (Some(length), Some(max)) => {
            println!("valid {kind}: {} ({length} of {max} bytes)", report.name)
        }
        _ => println!("valid {kind}: {}", report.name),
    }
    let derived = [
        ("user ID", report.user_id.clone()),
        ("room alias", report.room_alias.clone()),
        (
            "proxy socket",
            report
                .proxy_socket
                .as_ref()
                .map(|path| path.display().to_string()),
        ),
        (
            "admin socket",
            report
                .admin_socket
                .as_ref()
                .map(|path| path.display().to_string()),
        ),
    ];
    for (label, value) in derived {
        if let Some(value) = value {
            println!("  {label:12}  {value}");
        }
    }
}

fn run_match(matching: MatchArgs) -> ExitCode {
    let matched = if matching.pattern.contains(':') {
        let pattern = match UserIdPattern::parse(&matching.pattern) {
            Ok(pattern) => pattern,
            Err(error) => {
                eprintln!("bureau naming match: {error}");
                return ExitCode::from(2);
            }
        };
        match UserId::parse(&matching.name) {
            Ok(user_id) => pattern.matches(&user_id),
            Err(error) => {
                eprintln!("bureau naming match: {error}");
                return ExitCode::from(2);
            }
        }
    } else {
        match Glob::parse(&matching.pattern) {
            Ok(glob) => glob.matches(&matching.name),
            Err(error) => {
                eprintln!("bureau naming match: {error}");
                return ExitCode::from(2);
            }
        }
    };
    if matched {
        println!("{} matches {}", matching.name, matching.pattern);
        ExitCode::SUCCESS
    } else {
        println!("{} does not match {}", matching.name, matching.pattern);
        ExitCode::FAILURE
    }
}
