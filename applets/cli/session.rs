//! `bureau login` and `bureau whoami`, and the saved session the other commands act through
//! ([`connect_operator`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use argh::FromArgs;
use bureau::matrix::{Client, ConnectOptions, Session, default_session_path};
use bureau::operator::Operator;
use bureau::secret::Secret;

use super::{fail, print_result};

/// Log in to a Matrix homeserver and save the session (mode 0600) for later commands.
#[derive(FromArgs)]
#[argh(
    subcommand,
    name = "login",
    example = "printf %s \"$PASSWORD\" | bureau login --homeserver http://127.0.0.1:6167 --user ben --password-stdin"
)]
pub struct LoginArgs {
    /// the homeserver's URL, e.g. https://matrix.example.org
    #[argh(option)]
    homeserver: String,

    /// the user: a localpart (`ben`) or a full user ID (`@ben:example.org`)
    #[argh(option)]
    user: String,

    /// read the password from standard input (it never goes in argv)
    #[argh(switch)]
    password_stdin: bool,

    /// a PEM file of extra CA certificates (private homeservers)
    #[argh(option)]
    ca_file: Option<PathBuf>,

    /// where to save the session (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// Show who the saved session is logged in as (and check that the homeserver accepts it).
#[derive(FromArgs)]
#[argh(subcommand, name = "whoami")]
pub struct WhoamiArgs {
    /// the session file (default: $BUREAU_SESSION_FILE or ~/.config/bureau/session.json)
    #[argh(option)]
    session_file: Option<PathBuf>,

    /// print the result as JSON
    #[argh(switch)]
    json: bool,
}

/// The operator of the saved session at `session_file` (default: `$BUREAU_SESSION_FILE` or
/// `~/.config/bureau/session.json`), for `machine`, `credential`, `template`, `agent` and
/// `list`.
pub(super) async fn connect_operator(session_file: Option<&Path>) -> Result<Operator, String> {
    let path = session_file.map_or_else(default_session_path, Path::to_owned);
    let session = Session::load(&path).map_err(|error| error.to_string())?;
    let client = session
        .connect(&ConnectOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    Operator::new(client).map_err(|error| error.to_string())
}

pub fn run_login(args: LoginArgs) -> ExitCode {
    if !args.password_stdin {
        return fail(
            "login",
            args.json,
            "give --password-stdin and the password on standard input (passwords never go in argv)",
        );
    }
    let mut password = Vec::new();
    if let Err(error) = std::io::stdin().read_to_end(&mut password) {
        return fail(
            "login",
            args.json,
            &format!("reading the password from stdin: {error}"),
        );
    }
    while password
        .last()
        .is_some_and(|byte| *byte == b'\n' || *byte == b'\r')
    {
        password.pop();
    }
    let password = Secret::new(password);
    let session_path = args.session_file.unwrap_or_else(default_session_path);
    let options = ConnectOptions {
        ca_file: args.ca_file,
    };
    let result = super::block_on(async {
        let client = Client::connect(&args.homeserver, &options).await?;
        let (client, device_id) = client.login_password(&args.user, &password).await?;
        let user_id = client
            .user_id()
            .cloned()
            .ok_or_else(|| bureau::matrix::MatrixError::Invalid("login returned no user".into()))?;
        let token = client
            .access_token()
            .map(Secret::duplicate)
            .ok_or_else(|| {
                bureau::matrix::MatrixError::Invalid("login returned no token".into())
            })?;
        Ok::<_, bureau::matrix::MatrixError>(Session {
            homeserver_url: client.base_url().to_owned(),
            user_id,
            access_token: token,
            device_id: Some(device_id),
        })
    });
    let session = match result {
        Ok(session) => session,
        Err(error) => return fail("login", args.json, &error.to_string()),
    };
    if let Err(error) = session.save(&session_path) {
        return fail("login", args.json, &error.to_string());
    }
    print_result(
        args.json,
        &serde_json::json!({
            "user_id": session.user_id.to_string(),
            "homeserver_url": session.homeserver_url,
            "device_id": session.device_id,
            "session_file": session_path,
        }),
        &format!(
            "logged in as {} on {}; session saved to {}",
            session.user_id,
            session.homeserver_url,
            session_path.display()
        ),
    )
}

pub fn run_whoami(args: WhoamiArgs) -> ExitCode {
    let session_path = args.session_file.unwrap_or_else(default_session_path);
    let result = super::block_on(async {
        let session = Session::load(&session_path)?;
        let client = session.connect(&ConnectOptions::default()).await?;
        let user_id = client.whoami().await?;
        Ok::<_, bureau::matrix::SessionError>((user_id, session.homeserver_url))
    });
    match result {
        Ok((user_id, homeserver)) => print_result(
            args.json,
            &serde_json::json!({"user_id": user_id.to_string(), "homeserver_url": homeserver}),
            &format!("{user_id} on {homeserver}"),
        ),
        Err(error) => fail("whoami", args.json, &error.to_string()),
    }
}
