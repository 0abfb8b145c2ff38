//! The operator's side of the control plane: what `bureau machine`, `bureau credential`,
//! `bureau template`, `bureau agent` and `bureau list` do, as library calls on an [`Operator`]
//! (a logged-in homeserver admin).
//!
//! Invariants:
//! - Every room alias comes from [`MachineIdentity`] (config room, fleet machine room, template
//!   room), so the operator and the machine can never disagree about names.
//! - Event contents are the `schema` types the daemon and launcher read: `m.bureau.machine_config`
//!   (state key [`MACHINE_CONFIG_STATE_KEY`](crate::schema::MACHINE_CONFIG_STATE_KEY)), `m.bureau.credentials`
//!   (state key: the principal), `m.bureau.template` (state key: the template's name).
//! - A secret (password, access token, credential value) never reaches an error, a log line or a
//!   return value that is printed: passwords and tokens live in [`Secret`](crate::secret::Secret)s
//!   and credential bundles are sealed before they leave the process; only key *names* are shown.
//! - Everything is checked before anything is created, so a refused command leaves nothing
//!   half-made (a machine account is created only after its rooms and bootstrap path are known
//!   to be usable).
//!
//! One concern per file: `error`, `accounts` (Synapse admin API accounts and random passwords),
//! `rooms` (aliases, required rooms, room state), `machines` (`machine provision`),
//! `credentials` (`credential provision`), `templates` (`template push|show|list|validate`),
//! `agents` (`agent create|destroy`), `listing` (`list`).

mod accounts;
mod agents;
mod credentials;
mod error;
mod listing;
mod machines;
mod rooms;
mod templates;

pub use accounts::{ExistingAccount, create_account, random_password};
pub use agents::{
    AgentSpec, CreatedAgent, DestroyedAgent, create_agent, destroy_agent, parse_grant,
};
pub use credentials::{
    ExistingMatrixToken, ProvisionedCredentials, fetch_machine_key, parse_credential_values,
    provision_credentials, seal_and_publish,
};
pub use error::OperatorError;
pub use listing::{MachineListing, PrincipalListing, fleet_machines, list_machines};
pub use machines::{ProvisionedMachine, default_bootstrap_path, provision_machine};
pub use rooms::{fleet_machine_room_alias, namespace_template_room_alias};
pub use templates::{
    PushedTemplate, TemplateLocation, TemplateSummary, fetch_template, list_templates,
    parse_template, push_template, resolve_template, resolve_unpublished, template_location,
};

use crate::machine::MachineIdentity;
use crate::matrix::Client;

/// A logged-in operator: the Matrix client of `bureau login`'s session and the server name of
/// its user (the server every Bureau name of this operator lives on).
///
/// Example: the session of `@admin:bureau.local` → server name `bureau.local`;
/// `operator.machine("acme/fleet/prod/machine/box1")` → that machine's identity on it.
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use bureau::matrix::{ConnectOptions, Session, default_session_path};
/// use bureau::operator::Operator;
///
/// let session = Session::load(&default_session_path())?;
/// let operator = Operator::new(session.connect(&ConnectOptions::default()).await?)?;
/// let box1 = operator.machine("acme/fleet/prod/machine/box1")?;
/// assert_eq!(box1.config_room_alias(), format!("#acme/fleet/prod/machine/box1:{}", operator.server_name()));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Operator {
    client: Client,
    server_name: String,
}

impl Operator {
    /// An operator acting through `client`, which must be logged in.
    ///
    /// Example: a client without a session → `Err(OperatorError::NotLoggedIn)`.
    pub fn new(client: Client) -> Result<Self, OperatorError> {
        let server_name = client
            .user_id()
            .map(|user_id| user_id.server_name().to_string())
            .ok_or(OperatorError::NotLoggedIn)?;
        Ok(Self {
            client,
            server_name,
        })
    }

    /// The operator's Matrix client.
    ///
    /// Example: `operator.client().whoami()` → `@admin:bureau.local`.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// The server name of the operator's user ID.
    ///
    /// Example: `@admin:bureau.local` → `bureau.local`.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// The identity of machine `name` on this operator's homeserver.
    ///
    /// Example: `acme/fleet/prod/machine/box1` → config room
    /// `#acme/fleet/prod/machine/box1:bureau.local`; `acme/box1` → `Err(… has no fleet …)`.
    pub fn machine(&self, name: &str) -> Result<MachineIdentity, OperatorError> {
        MachineIdentity::new(self.client.base_url(), &self.server_name, name)
            .map_err(|error| OperatorError::Invalid(error.to_string()))
    }

    /// A Matrix user ID on this operator's server.
    ///
    /// Example: `acme/agent/pm` → `@acme/agent/pm:bureau.local`.
    pub fn user_id(&self, localpart: &crate::naming::Localpart) -> String {
        format!("@{localpart}:{}", self.server_name)
    }
}
