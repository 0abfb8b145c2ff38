//! Templates (`m.bureau.template`): the sandbox profiles principals are started from.
//!
//! Invariant: a template as published may be partial — it names a parent in `inherits` and sets
//! only what it changes. Every setting is therefore optional or a collection, so "unset" is
//! distinguishable from "set to the default", which the inheritance rules ([`merge`](super::merge),
//! [`resolve`](super::resolve)) depend on. [`Template::validate`] checks what can be checked on a
//! partial template; [`Template::validate_resolved`] adds the checks that need the whole chain
//! (a command exists, every credential used is required, seccomp keeps no_new_privs).
//!
//! Mount sources may start with a placeholder that the launcher expands per principal:
//! `${WORKSPACE}` (`/var/bureau/workspace/<principal>`), `${CACHE}` (`/var/bureau/cache`) and
//! `${PRINCIPAL}` (the principal's localpart). Destinations under `/run/bureau` are refused: that
//! directory is the sandbox contract (proxy socket, payload, services, secrets), filled by the
//! launcher alone.

use std::collections::{BTreeMap, HashMap};
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use super::credentials::{is_credential_name, suggest_credential_name};
use super::template_ref::TemplateRef;
use super::{is_default, is_false, is_lowercase_token};
use crate::naming::{Localpart, NameError};
use crate::proxy::upstream::{UpstreamUrlProblem, check_upstream_url};

/// The placeholders a mount source may contain, written `${NAME}`.
///
/// Example: `"${WORKSPACE}"` → `/var/bureau/workspace/acme/agent/pm` for `acme/agent/pm`;
/// `"${CACHE}/pip"` → `/var/bureau/cache/pip`; `"/srv/${PRINCIPAL}"` → `/srv/acme/agent/pm`.
pub const MOUNT_PLACEHOLDERS: [&str; 3] = ["WORKSPACE", "CACHE", "PRINCIPAL"];

/// The directory inside every sandbox that belongs to the launcher (ARCHITECTURE §4).
const CONTRACT_DIRECTORY: &str = "/run/bureau";

/// Environment variables with this prefix are set by the launcher (`BUREAU_PROXY_SOCKET`,
/// `BUREAU_PRINCIPAL_NAME`, …) and cannot be set by a template.
const RESERVED_ENVIRONMENT_PREFIX: &str = "BUREAU_";

/// A sandbox profile. Every field is optional; a template that `inherits` sets only what it
/// changes.
///
/// Example:
/// ```json
/// {"description": "Claude Code agent",
///  "inherits": "agent-base",
///  "command": ["/usr/bin/claude", "--dangerously-skip-permissions"],
///  "working_directory": "/workspace",
///  "environment": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:8642/http/anthropic"},
///  "filesystem": [{"type": "ro", "source": "/opt/claude", "destination": "/opt/claude"},
///                 {"type": "rw", "source": "${CACHE}/claude", "destination": "/cache", "optional": true},
///                 {"type": "tmpfs", "destination": "/scratch", "size": 1073741824}],
///  "namespaces": {"ipc": true},
///  "network": "none",
///  "resources": {"memory_max": 4294967296, "pids_max": 512, "cpu_weight": 100},
///  "security": {"seccomp": "default", "landlock": true, "no_new_privs": true},
///  "required_credentials": ["ANTHROPIC_API_KEY"],
///  "required_services": ["ticket"],
///  "proxy_services": {"anthropic": {"upstream_url": "https://api.anthropic.com",
///                                   "inject_headers": {"x-api-key": "ANTHROPIC_API_KEY"}}},
///  "health_check": {"endpoint": "/health"}}
/// ```
///
/// ```
/// use bureau::schema::{NetworkMode, Template};
///
/// let template: Template = serde_json::from_str(
///     r#"{"inherits": "agent-base", "command": ["/usr/bin/claude"], "network": "none"}"#,
/// )?;
/// template.validate()?;
/// assert_eq!(template.network, Some(NetworkMode::Isolated));
/// assert!(template.environment.is_empty());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Template {
    /// What the template is for, for humans.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The parent template whose settings this one extends.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inherits: Option<TemplateRef>,
    /// argv of the principal's command; one value (a child's command replaces its parent's).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// The command's working directory inside the sandbox (default `/`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub working_directory: Option<String>,
    /// Environment variables (the environment starts empty; `BUREAU_*` are the launcher's).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, String>,
    /// Mounts, in order, on top of the sandbox's minimal root.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filesystem: Vec<TemplateMount>,
    /// Namespace overrides; user and mount namespaces are always created.
    #[serde(skip_serializing_if = "is_default")]
    pub namespaces: TemplateNamespaces,
    /// Network access (default: none, an empty network namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkMode>,
    /// cgroup limits.
    #[serde(skip_serializing_if = "is_default")]
    pub resources: TemplateResources,
    /// Process hardening.
    #[serde(skip_serializing_if = "is_default")]
    pub security: TemplateSecurity,
    /// Credential names (`[A-Z0-9_]+`) the principal's bundle must provide to its proxy.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_credentials: Vec<String>,
    /// Required credentials also delivered as files, `/run/bureau/secrets/<NAME>`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_files: Vec<String>,
    /// Service roles the principal needs, bound at `/run/bureau/service/<role>.sock`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub required_services: Vec<String>,
    /// HTTP services the proxy serves at `/http/<name>/…`, keyed by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub proxy_services: BTreeMap<String, ProxyService>,
    /// How the daemon checks the principal is healthy; `None` means it is not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health_check: Option<HealthCheck>,
}

/// One filesystem entry, tagged by `type`: `ro` and `rw` bind a host path, `tmpfs` mounts an
/// empty writable tmpfs.
///
/// Example: `{"type": "rw", "source": "${WORKSPACE}", "destination": "/workspace"}`;
/// `{"type": "ro", "source": "/etc/ssl/certs", "destination": "/etc/ssl/certs", "optional":
/// true}` (skipped when the host has no such path); `{"type": "tmpfs", "destination": "/tmp"}`.
///
/// ```
/// use bureau::schema::TemplateMount;
///
/// let mount: TemplateMount = serde_json::from_str(r#"{"type": "tmpfs", "destination": "/tmp"}"#)?;
/// assert_eq!(mount.destination(), "/tmp");
/// assert!(mount.is_writable());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TemplateMount {
    /// A host path, read-only.
    Ro {
        /// The host path (may start with a placeholder).
        source: String,
        /// The path inside the sandbox.
        destination: String,
        /// Skip the mount when `source` does not exist, instead of refusing to start.
        #[serde(default, skip_serializing_if = "is_false")]
        optional: bool,
    },
    /// A host path, writable.
    Rw {
        /// The host path (may start with a placeholder).
        source: String,
        /// The path inside the sandbox.
        destination: String,
        /// Skip the mount when `source` does not exist, instead of refusing to start.
        #[serde(default, skip_serializing_if = "is_false")]
        optional: bool,
    },
    /// An empty writable tmpfs.
    Tmpfs {
        /// The path inside the sandbox.
        destination: String,
        /// Size limit in bytes (default: the kernel's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
    },
}

impl TemplateMount {
    /// The path inside the sandbox.
    ///
    /// Example: `{"type": "rw", "source": "${WORKSPACE}", "destination": "/workspace"}` →
    /// `/workspace`.
    ///
    /// ```
    /// # use bureau::schema::TemplateMount;
    /// let mount = TemplateMount::Ro { source: "/usr".into(), destination: "/usr".into(), optional: false };
    /// assert_eq!(mount.destination(), "/usr");
    /// ```
    pub fn destination(&self) -> &str {
        match self {
            Self::Ro { destination, .. }
            | Self::Rw { destination, .. }
            | Self::Tmpfs { destination, .. } => destination,
        }
    }

    /// The host path, for bind mounts.
    ///
    /// Example: `ro /usr → /usr` → `Some("/usr")`; a tmpfs → `None`.
    ///
    /// ```
    /// # use bureau::schema::TemplateMount;
    /// let mount = TemplateMount::Tmpfs { destination: "/tmp".into(), size: None };
    /// assert_eq!(mount.source(), None);
    /// ```
    pub fn source(&self) -> Option<&str> {
        match self {
            Self::Ro { source, .. } | Self::Rw { source, .. } => Some(source),
            Self::Tmpfs { .. } => None,
        }
    }

    /// Whether the sandbox may write below this mount.
    ///
    /// Example: `rw` and `tmpfs` → `true`; `ro` → `false`.
    ///
    /// ```
    /// # use bureau::schema::TemplateMount;
    /// let mount = TemplateMount::Ro { source: "/usr".into(), destination: "/usr".into(), optional: false };
    /// assert!(!mount.is_writable());
    /// ```
    pub fn is_writable(&self) -> bool {
        matches!(self, Self::Rw { .. } | Self::Tmpfs { .. })
    }
}

/// Namespace overrides. Each is created unless set to `false`; the user and mount namespaces
/// are always created and the network namespace follows [`NetworkMode`].
///
/// Example: `{"ipc": false}` shares the host's IPC namespace.
///
/// ```
/// use bureau::schema::TemplateNamespaces;
///
/// let namespaces: TemplateNamespaces = serde_json::from_str(r#"{"ipc": false}"#)?;
/// assert_eq!((namespaces.ipc, namespaces.pid), (Some(false), None));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateNamespaces {
    /// A private PID namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<bool>,
    /// A private IPC namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipc: Option<bool>,
    /// A private hostname (UTS namespace).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uts: Option<bool>,
    /// A private cgroup namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<bool>,
}

/// The sandbox's network.
///
/// Example: `"none"` → [`NetworkMode::Isolated`] (a network namespace with only loopback; the
/// proxy socket is the way out); `"host"` → [`NetworkMode::Host`].
///
/// ```
/// use bureau::schema::NetworkMode;
///
/// assert_eq!(serde_json::from_str::<NetworkMode>(r#""none""#)?, NetworkMode::Isolated);
/// assert_eq!(serde_json::to_string(&NetworkMode::Host)?, r#""host""#);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NetworkMode {
    /// Written `"none"`: an own, empty network namespace (the default).
    #[serde(rename = "none")]
    Isolated,
    /// Written `"host"`: the host's network (landlock then limits TCP ports).
    #[serde(rename = "host")]
    Host,
}

/// cgroup limits; each one set must be applied or the sandbox does not start.
///
/// Example: `{"memory_max": 4294967296, "pids_max": 512, "cpu_weight": 100}`.
///
/// ```
/// use bureau::schema::TemplateResources;
///
/// let resources: TemplateResources = serde_json::from_str(r#"{"pids_max": 512}"#)?;
/// assert_eq!((resources.pids_max, resources.memory_max), (Some(512), None));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateResources {
    /// Bytes of memory (`memory.max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_max: Option<u64>,
    /// Number of tasks (`pids.max`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pids_max: Option<u64>,
    /// Relative CPU weight, 1–10000 (`cpu.weight`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu_weight: Option<u64>,
}

/// Process hardening. Unset means the secure default: seccomp `default`, landlock on,
/// no_new_privs on, no new session.
///
/// Example: `{"seccomp": "default", "landlock": true, "no_new_privs": true}`.
///
/// ```
/// use bureau::schema::{SeccompMode, TemplateSecurity};
///
/// let security: TemplateSecurity = serde_json::from_str(r#"{"seccomp": "default"}"#)?;
/// assert_eq!(security.seccomp, Some(SeccompMode::Default));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TemplateSecurity {
    /// Which seccomp filter to install.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seccomp: Option<SeccompMode>,
    /// Whether to apply landlock.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub landlock: Option<bool>,
    /// `PR_SET_NO_NEW_PRIVS` (required by seccomp).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub no_new_privs: Option<bool>,
    /// Start the command in a new session (no controlling terminal).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_session: Option<bool>,
}

/// Which seccomp filter a sandbox gets.
///
/// Example: `"default"` → the default deny-list; `"disabled"` → none (debugging only).
///
/// ```
/// use bureau::schema::SeccompMode;
///
/// assert_eq!(serde_json::from_str::<SeccompMode>(r#""disabled""#)?, SeccompMode::Disabled);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeccompMode {
    /// The default deny-list.
    Default,
    /// No filter.
    Disabled,
}

/// An HTTP service the principal's proxy serves at `/http/<name>/…`, forwarding to
/// `upstream_url` with credentials injected as headers.
///
/// Example: `{"upstream_url": "https://api.openai.com", "inject_headers": {"Authorization":
/// "OPENAI_API_KEY"}, "auth_scheme": "Bearer", "strip_headers": ["Cookie"]}` — a request to
/// `/http/openai/v1/models` goes to `https://api.openai.com/v1/models` with `Authorization:
/// Bearer <OPENAI_API_KEY>` and without any `Cookie` header from the sandbox.
///
/// ```
/// use bureau::schema::ProxyService;
///
/// let service: ProxyService = serde_json::from_str(r#"{"upstream_url": "https://api.openai.com",
///     "inject_headers": {"Authorization": "OPENAI_API_KEY"}, "auth_scheme": "Bearer"}"#)?;
/// assert_eq!(service.inject_headers["Authorization"], "OPENAI_API_KEY");
/// assert!(service.strip_headers.is_empty());
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyService {
    /// Where requests go: an `http://` or `https://` URL.
    pub upstream_url: String,
    /// Header name → credential name whose value the proxy sets on every request.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub inject_headers: BTreeMap<String, String>,
    /// Prefix of the injected `Authorization` header's value, e.g. `Bearer`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_scheme: Option<String>,
    /// Headers removed from the sandbox's requests before forwarding.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub strip_headers: Vec<String>,
}

/// How the daemon checks a principal is healthy: an HTTP `GET` of `endpoint` on the principal's
/// service socket every `interval_seconds`; after `failure_threshold` failures in a row the
/// principal is restarted (per its restart policy). Checks begin `grace_period_seconds` after
/// start.
///
/// Example: `{"endpoint": "/health"}` → every 30 s, 5 s timeout, 3 failures, no grace period.
///
/// ```
/// use bureau::schema::HealthCheck;
///
/// let check: HealthCheck = serde_json::from_str(r#"{"endpoint": "/health"}"#)?;
/// assert_eq!((check.interval_seconds, check.timeout_seconds, check.failure_threshold), (30, 5, 3));
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthCheck {
    /// The HTTP path to request, starting with `/`.
    pub endpoint: String,
    /// Seconds between checks (default 30).
    #[serde(default = "default_interval_seconds")]
    pub interval_seconds: u32,
    /// Seconds before one check counts as failed (default 5).
    #[serde(default = "default_timeout_seconds")]
    pub timeout_seconds: u32,
    /// Failures in a row that make the principal unhealthy (default 3).
    #[serde(default = "default_failure_threshold")]
    pub failure_threshold: u32,
    /// Seconds after start before the first check (default 0).
    #[serde(default)]
    pub grace_period_seconds: u32,
}

fn default_interval_seconds() -> u32 {
    30
}

fn default_timeout_seconds() -> u32 {
    5
}

fn default_failure_threshold() -> u32 {
    3
}

/// Why a template cannot be resolved or used. Messages name the field, the bad value and what
/// to do; the caller adds which template it was (for resolution errors the message names the
/// templates itself).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// The template asked for does not exist.
    ///
    /// Example: → `template "agent-bas" does not exist; publish it (m.bureau.template, state key
    /// "agent-bas") or fix the reference`.
    #[error(
        "template {template:?} does not exist; publish it (m.bureau.template, state key \
         {name:?}) or fix the reference"
    )]
    UnknownTemplate {
        /// The reference as written.
        template: String,
        /// Its name (the state key looked for).
        name: String,
    },

    /// A template inherits one that does not exist.
    ///
    /// Example: → `template "claude" inherits "agent-bsae", which does not exist; publish it or
    /// fix claude's inherits`.
    #[error(
        "template {template:?} inherits {parent:?}, which does not exist; publish it or fix \
         {template}'s inherits"
    )]
    UnknownParent {
        /// The template whose `inherits` names the missing one.
        template: String,
        /// The missing parent, as written.
        parent: String,
    },

    /// The `inherits` chain loops.
    ///
    /// Example: → `template "claude": inheritance cycle a -> b -> a; remove inherits from one
    /// of these templates`.
    #[error(
        "template {template:?}: inheritance cycle {}; remove inherits from one of these templates",
        .cycle.join(" -> ")
    )]
    Cycle {
        /// The template being resolved.
        template: String,
        /// The templates of the cycle, the first repeated at the end.
        cycle: Vec<String>,
    },

    /// The `inherits` chain is longer than [`MAX_INHERITANCE_DEPTH`](super::MAX_INHERITANCE_DEPTH).
    ///
    /// Example: → `template "x": inherits through more than 16 templates; flatten the chain`.
    #[error(
        "template {template:?}: inherits through more than {limit} templates; flatten the chain"
    )]
    TooDeep {
        /// The template being resolved.
        template: String,
        /// The limit.
        limit: usize,
    },

    /// `validate_resolved` on a template that still inherits.
    ///
    /// Example: → `template still inherits "base"; resolve it first (schema::resolve)`.
    #[error("template still inherits {parent:?}; resolve it first (schema::resolve)")]
    NotResolved {
        /// The parent it names.
        parent: String,
    },

    /// A resolved template without a command.
    ///
    /// Example: → `template: command is empty in the template and every template it inherits;
    /// set the program to run, like ["/usr/bin/claude"]`.
    #[error(
        "template: command is empty in the template and every template it inherits; set the \
         program to run, like [\"/usr/bin/claude\"]"
    )]
    MissingCommand,

    /// `command[0]` is the empty string.
    ///
    /// Example: `["", "x"]` → `template: command[0] is empty; it names the program to run, like
    /// "/usr/bin/python3"`.
    #[error(
        "template: command[0] is empty; it names the program to run, like \"/usr/bin/python3\""
    )]
    EmptyProgram,

    /// A string the kernel cannot take contains a NUL byte.
    ///
    /// Example: → `template: command[1] contains a NUL byte; remove it`.
    #[error("template: {field} contains a NUL byte; remove it")]
    NulByte {
        /// The field, e.g. `environment.PATH`.
        field: String,
    },

    /// An environment variable name that is not `[A-Za-z_][A-Za-z0-9_]*`.
    ///
    /// Example: `"MY-VAR"` → `template: environment name "MY-VAR" is not a variable name; use
    /// letters, digits and '_', not starting with a digit`.
    #[error(
        "template: environment name {name:?} is not a variable name; use letters, digits and \
         '_', not starting with a digit"
    )]
    BadEnvironmentName {
        /// The name.
        name: String,
    },

    /// An environment variable the launcher sets.
    ///
    /// Example: `"BUREAU_PRINCIPAL_NAME"` → `template: environment name "BUREAU_PRINCIPAL_NAME"
    /// is reserved: the launcher sets every BUREAU_* variable; remove it from the template`.
    #[error(
        "template: environment name {name:?} is reserved: the launcher sets every BUREAU_* \
         variable; remove it from the template"
    )]
    ReservedEnvironmentName {
        /// The name.
        name: String,
    },

    /// A path that is not absolute and normalised (or is `/`).
    ///
    /// Example: `"tmp"` → `template: filesystem[1].destination "tmp" is not absolute; write it
    /// from the root, like "/data"`.
    #[error("template: {field} {path:?} {problem}")]
    BadPath {
        /// The field, e.g. `filesystem[1].destination`.
        field: String,
        /// The path as given.
        path: String,
        /// What is wrong and what to do.
        problem: &'static str,
    },

    /// A `${NAME}` that is not a known placeholder.
    ///
    /// Example: `"${HOME}/x"` → `template: filesystem[0].source "${HOME}/x": unknown placeholder
    /// "${HOME}"; the placeholders are ${WORKSPACE}, ${CACHE} and ${PRINCIPAL}`.
    #[error(
        "template: {field} {path:?}: unknown placeholder {placeholder:?}; the placeholders are \
         ${{WORKSPACE}}, ${{CACHE}} and ${{PRINCIPAL}}"
    )]
    UnknownPlaceholder {
        /// The field.
        field: String,
        /// The path as given.
        path: String,
        /// The unknown placeholder.
        placeholder: String,
    },

    /// A mount destination inside `/run/bureau`.
    ///
    /// Example: `"/run/bureau/proxy.sock"` → `template: filesystem[0].destination
    /// "/run/bureau/proxy.sock" is inside /run/bureau, which the launcher fills (proxy socket,
    /// payload, services, secrets); mount elsewhere`.
    #[error(
        "template: {field} {path:?} is inside /run/bureau, which the launcher fills (proxy \
         socket, payload, services, secrets); mount elsewhere"
    )]
    ReservedDestination {
        /// The field.
        field: String,
        /// The destination.
        path: String,
    },

    /// Two mounts at one destination in one template.
    ///
    /// Example: → `template: filesystem[0] and filesystem[2] both mount at "/workspace"; keep
    /// one`.
    #[error(
        "template: filesystem[{first}] and filesystem[{second}] both mount at {destination:?}; keep one"
    )]
    DuplicateDestination {
        /// The destination.
        destination: String,
        /// The first mount's index.
        first: usize,
        /// The second mount's index.
        second: usize,
    },

    /// A resource limit out of range.
    ///
    /// Example: → `template: resources.cpu_weight 0 is out of range; use 1 to 10000 (100 is the
    /// kernel's default)`.
    #[error("template: resources.{field} {value} is out of range; use {range}")]
    BadResource {
        /// The field, e.g. `cpu_weight`.
        field: &'static str,
        /// The value.
        value: u64,
        /// The valid range, and a hint.
        range: &'static str,
    },

    /// A credential name that is not `[A-Z0-9_]+`.
    ///
    /// Example: → `template: required_credentials[0] "openai-key" is not a credential name; use
    /// A-Z, 0-9 and '_' (write "OPENAI_KEY")`.
    #[error(
        "template: {field} {name:?} is not a credential name; use A-Z, 0-9 and '_' (write \
         {suggestion:?})"
    )]
    BadCredentialName {
        /// The field, e.g. `proxy_services.openai.inject_headers.Authorization`.
        field: String,
        /// The name.
        name: String,
        /// A valid name close to it.
        suggestion: String,
    },

    /// A credential used but not required (resolved templates only).
    ///
    /// Example: → `template: proxy_services.openai.inject_headers.Authorization uses credential
    /// "OPENAI_API_KEY", which is not in required_credentials; add it there so every bundle
    /// must provide it`.
    #[error(
        "template: {field} uses credential {name:?}, which is not in required_credentials; add it \
         there so every bundle must provide it"
    )]
    CredentialNotRequired {
        /// Where it is used.
        field: String,
        /// The credential.
        name: String,
    },

    /// A required service role that is not a valid name.
    ///
    /// Example: → `template: required_services[0]: localpart "Ticket": character 'T' at byte 0
    /// is not allowed; …`.
    #[error("template: {field}: {reason}")]
    BadServiceRole {
        /// The field.
        field: String,
        /// What is wrong with the role.
        reason: NameError,
    },

    /// A proxy service name that cannot be a URL path segment.
    ///
    /// Example: `"Open AI"` → `template: proxy_services name "Open AI" is not a service name;
    /// use lowercase a-z, 0-9, '.', '_' and '-' (it becomes the path /http/<name>/)`.
    #[error(
        "template: proxy_services name {name:?} is not a service name; use lowercase a-z, 0-9, \
         '.', '_' and '-' (it becomes the path /http/<name>/)"
    )]
    BadProxyServiceName {
        /// The name.
        name: String,
    },

    /// An upstream that is not an `http(s)://host…` URL.
    ///
    /// Example: `"api.openai.com"` → `template: proxy_services.openai.upstream_url
    /// "api.openai.com" is not an http:// or https:// URL with a host; write it like
    /// https://api.openai.com`.
    #[error(
        "template: proxy_services.{service}.upstream_url {url:?} is not an http:// or https:// \
         URL with a host; write it like https://api.openai.com"
    )]
    BadUpstreamUrl {
        /// The service.
        service: String,
        /// The URL.
        url: String,
    },

    /// An upstream URL with `user:password@`, a query or a fragment: every proxy refuses it
    /// (the credential would travel in the `Host` header). Not echoed: it may hold a secret.
    ///
    /// Example: → `template: proxy_services.openai.upstream_url has user:password@, a query or
    /// a fragment; give the proxy credentials through inject_headers (the URL is not shown: it
    /// may hold a secret)`.
    #[error(
        "template: proxy_services.{service}.upstream_url has user:password@, a query or a \
         fragment; give the proxy credentials through inject_headers (the URL is not shown: it \
         may hold a secret)"
    )]
    UpstreamUrlExtras {
        /// The service.
        service: String,
    },

    /// A header name that is not an HTTP token.
    ///
    /// Example: `"X Api Key"` → `template: proxy_services.x.inject_headers name "X Api Key" is
    /// not an HTTP header name; use letters, digits and '-', like "X-Api-Key"`.
    #[error(
        "template: proxy_services.{service}.{field} name {header:?} is not an HTTP header name; \
         use letters, digits and '-', like \"X-Api-Key\""
    )]
    BadHeaderName {
        /// The service.
        service: String,
        /// `inject_headers` or `strip_headers`.
        field: &'static str,
        /// The header name.
        header: String,
    },

    /// An `auth_scheme` that is empty or has whitespace.
    ///
    /// Example: `"Bearer token"` → `template: proxy_services.openai.auth_scheme "Bearer token"
    /// is not one word; write the scheme alone, like "Bearer"`.
    #[error(
        "template: proxy_services.{service}.auth_scheme {scheme:?} is not one word; write the \
         scheme alone, like \"Bearer\""
    )]
    BadAuthScheme {
        /// The service.
        service: String,
        /// The scheme.
        scheme: String,
    },

    /// An `auth_scheme` with no `Authorization` header to apply it to.
    ///
    /// Example: → `template: proxy_services.openai.auth_scheme is set but inject_headers has no
    /// Authorization header; add "Authorization": "<CREDENTIAL>" or remove auth_scheme`.
    #[error(
        "template: proxy_services.{service}.auth_scheme is set but inject_headers has no \
         Authorization header; add \"Authorization\": \"<CREDENTIAL>\" or remove auth_scheme"
    )]
    AuthSchemeWithoutAuthorization {
        /// The service.
        service: String,
    },

    /// A health check setting out of range.
    ///
    /// Example: `"endpoint": "health"` → `template: health_check.endpoint "health" must be an
    /// HTTP path starting with '/', like "/health"`.
    #[error("template: health_check.{field} {value:?} must be {expected}")]
    BadHealthCheck {
        /// The field.
        field: &'static str,
        /// The value as text.
        value: String,
        /// What it must be.
        expected: String,
    },

    /// Seccomp without no_new_privs (resolved templates only).
    ///
    /// Example: → `template: security.no_new_privs is false but seccomp is on; seccomp filters
    /// require no_new_privs (remove no_new_privs: false, or set seccomp: "disabled")`.
    #[error(
        "template: security.no_new_privs is false but seccomp is on; seccomp filters require \
         no_new_privs (remove no_new_privs: false, or set seccomp: \"disabled\")"
    )]
    SeccompNeedsNoNewPrivs,
}

/// What is wrong with `path` as an absolute, normalised path that is not `/`, if anything.
fn path_problem(path: &str) -> Option<&'static str> {
    if path.contains('\0') {
        return Some("contains a NUL byte; remove it");
    }
    if !path.starts_with('/') {
        return Some("is not absolute; write it from the root, like \"/data\"");
    }
    let normal = Path::new(path)
        .components()
        .all(|component| matches!(component, Component::RootDir | Component::Normal(_)));
    if !normal {
        return Some("has a '.' or '..' component; write the normalised path");
    }
    if Path::new(path) == Path::new("/") {
        return Some("is the root directory; name a directory below /");
    }
    None
}

fn check_path(field: impl Fn() -> String, path: &str) -> Result<(), TemplateError> {
    match path_problem(path) {
        Some(problem) => Err(TemplateError::BadPath {
            field: field(),
            path: path.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

/// Checks a mount source: known placeholders only, and absolute and normalised once expanded.
fn check_source(field: impl Fn() -> String, source: &str) -> Result<(), TemplateError> {
    let mut rest = source;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(TemplateError::UnknownPlaceholder {
                field: field(),
                path: source.to_owned(),
                placeholder: rest[start..].to_owned(),
            });
        };
        let name = &after[..end];
        if !MOUNT_PLACEHOLDERS.contains(&name) {
            return Err(TemplateError::UnknownPlaceholder {
                field: field(),
                path: source.to_owned(),
                placeholder: format!("${{{name}}}"),
            });
        }
        rest = &after[end + 1..];
    }
    // Stand-ins of the same shape as the expansions: absolute directories and a relative name.
    let expanded = source
        .replace("${WORKSPACE}", "/var/bureau/workspace/principal")
        .replace("${CACHE}", "/var/bureau/cache")
        .replace("${PRINCIPAL}", "principal");
    match path_problem(&expanded) {
        Some(problem) => Err(TemplateError::BadPath {
            field: field(),
            path: source.to_owned(),
            problem,
        }),
        None => Ok(()),
    }
}

fn check_no_nul(field: impl Fn() -> String, value: &str) -> Result<(), TemplateError> {
    if value.contains('\0') {
        Err(TemplateError::NulByte { field: field() })
    } else {
        Ok(())
    }
}

fn is_environment_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == b'_')
        && bytes.all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

fn check_credential_name(field: impl Fn() -> String, name: &str) -> Result<(), TemplateError> {
    if is_credential_name(name) {
        Ok(())
    } else {
        Err(TemplateError::BadCredentialName {
            field: field(),
            name: name.to_owned(),
            suggestion: suggest_credential_name(name),
        })
    }
}

fn check_header_name(
    service: &str,
    field: &'static str,
    header: &str,
) -> Result<(), TemplateError> {
    if http::HeaderName::from_bytes(header.as_bytes()).is_ok() {
        Ok(())
    } else {
        Err(TemplateError::BadHeaderName {
            service: service.to_owned(),
            field,
            header: header.to_owned(),
        })
    }
}

impl Template {
    /// Checks every field on its own — what can be checked on a partial template that still
    /// inherits: paths, placeholders, environment names, credential names, service names and
    /// URLs, header names, resource ranges, the health check. Reports the first problem.
    ///
    /// Example: `{"filesystem": [{"type": "tmpfs", "destination": "tmp"}]}` →
    /// `Err(template: filesystem[0].destination "tmp" is not absolute; …)`.
    ///
    /// ```
    /// use bureau::schema::Template;
    ///
    /// let template: Template = serde_json::from_str(
    ///     r#"{"filesystem": [{"type": "tmpfs", "destination": "tmp"}]}"#,
    /// )?;
    /// assert!(template.validate().unwrap_err().to_string().contains("is not absolute"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), TemplateError> {
        if self.command.first().is_some_and(String::is_empty) {
            return Err(TemplateError::EmptyProgram);
        }
        for (index, argument) in self.command.iter().enumerate() {
            check_no_nul(|| format!("command[{index}]"), argument)?;
        }
        if let Some(directory) = &self.working_directory {
            check_path(|| "working_directory".to_owned(), directory)?;
        }
        for (name, value) in &self.environment {
            if !is_environment_name(name) {
                return Err(TemplateError::BadEnvironmentName { name: name.clone() });
            }
            if name.starts_with(RESERVED_ENVIRONMENT_PREFIX) {
                return Err(TemplateError::ReservedEnvironmentName { name: name.clone() });
            }
            check_no_nul(|| format!("environment.{name}"), value)?;
        }
        self.validate_filesystem()?;
        self.validate_resources()?;
        for (index, name) in self.required_credentials.iter().enumerate() {
            check_credential_name(|| format!("required_credentials[{index}]"), name)?;
        }
        for (index, name) in self.secret_files.iter().enumerate() {
            check_credential_name(|| format!("secret_files[{index}]"), name)?;
        }
        for (index, role) in self.required_services.iter().enumerate() {
            Localpart::parse(role).map_err(|reason| TemplateError::BadServiceRole {
                field: format!("required_services[{index}]"),
                reason,
            })?;
        }
        for (name, service) in &self.proxy_services {
            validate_proxy_service(name, service)?;
        }
        if let Some(check) = &self.health_check {
            validate_health_check(check)?;
        }
        Ok(())
    }

    /// [`validate`](Self::validate), plus what only a resolved template (the result of
    /// [`resolve`](super::resolve)) can answer: it no longer inherits, it has a command, every
    /// credential it injects or delivers as a file is in `required_credentials`, and seccomp is
    /// not combined with `no_new_privs: false`.
    ///
    /// Example: a resolved template whose only command was in no template →
    /// `Err(template: command is empty in the template and every template it inherits; …)`.
    ///
    /// ```
    /// use bureau::schema::Template;
    ///
    /// assert!(Template::base().validate_resolved().unwrap_err().to_string().contains("command is empty"));
    /// let runnable = Template { command: vec!["/usr/bin/env".into()], ..Template::base() };
    /// runnable.validate_resolved()?;
    /// # Ok::<(), bureau::schema::TemplateError>(())
    /// ```
    pub fn validate_resolved(&self) -> Result<(), TemplateError> {
        if let Some(parent) = &self.inherits {
            return Err(TemplateError::NotResolved {
                parent: parent.to_string(),
            });
        }
        self.validate()?;
        if self.command.is_empty() {
            return Err(TemplateError::MissingCommand);
        }
        let required = |name: &String| self.required_credentials.contains(name);
        for (index, name) in self.secret_files.iter().enumerate() {
            if !required(name) {
                return Err(TemplateError::CredentialNotRequired {
                    field: format!("secret_files[{index}]"),
                    name: name.clone(),
                });
            }
        }
        for (service_name, service) in &self.proxy_services {
            for (header, credential) in &service.inject_headers {
                if !required(credential) {
                    return Err(TemplateError::CredentialNotRequired {
                        field: format!("proxy_services.{service_name}.inject_headers.{header}"),
                        name: credential.clone(),
                    });
                }
            }
        }
        if self.security.seccomp != Some(SeccompMode::Disabled)
            && self.security.no_new_privs == Some(false)
        {
            return Err(TemplateError::SeccompNeedsNoNewPrivs);
        }
        Ok(())
    }

    fn validate_filesystem(&self) -> Result<(), TemplateError> {
        let mut destinations: HashMap<&Path, usize> = HashMap::new();
        for (index, mount) in self.filesystem.iter().enumerate() {
            let destination = mount.destination();
            let destination_field = || format!("filesystem[{index}].destination");
            if destination.contains("${") {
                return Err(TemplateError::BadPath {
                    field: destination_field(),
                    path: destination.to_owned(),
                    problem: "contains a placeholder; placeholders are expanded in sources only",
                });
            }
            check_path(destination_field, destination)?;
            if Path::new(destination).starts_with(CONTRACT_DIRECTORY) {
                return Err(TemplateError::ReservedDestination {
                    field: destination_field(),
                    path: destination.to_owned(),
                });
            }
            if let Some(source) = mount.source() {
                check_source(|| format!("filesystem[{index}].source"), source)?;
            }
            if let Some(first) = destinations.insert(Path::new(destination), index) {
                return Err(TemplateError::DuplicateDestination {
                    destination: destination.to_owned(),
                    first,
                    second: index,
                });
            }
        }
        Ok(())
    }

    fn validate_resources(&self) -> Result<(), TemplateError> {
        let resources = &self.resources;
        if let Some(weight) = resources.cpu_weight
            && !(1..=10_000).contains(&weight)
        {
            return Err(TemplateError::BadResource {
                field: "cpu_weight",
                value: weight,
                range: "1 to 10000 (100 is the kernel's default)",
            });
        }
        if resources.memory_max == Some(0) {
            return Err(TemplateError::BadResource {
                field: "memory_max",
                value: 0,
                range: "a number of bytes above 0, like 4294967296 for 4 GiB",
            });
        }
        if resources.pids_max == Some(0) {
            return Err(TemplateError::BadResource {
                field: "pids_max",
                value: 0,
                range: "1 or more tasks, like 512",
            });
        }
        Ok(())
    }
}

fn validate_proxy_service(name: &str, service: &ProxyService) -> Result<(), TemplateError> {
    if !is_lowercase_token(name) {
        return Err(TemplateError::BadProxyServiceName {
            name: name.to_owned(),
        });
    }
    // The proxy's own judgement, so the operator learns at push what the proxy would refuse
    // at sandbox creation. Only a URL without user:password@, query or fragment is echoed.
    match check_upstream_url(&service.upstream_url) {
        Ok(()) => {}
        Err(UpstreamUrlProblem::Credentials | UpstreamUrlProblem::QueryOrFragment) => {
            return Err(TemplateError::UpstreamUrlExtras {
                service: name.to_owned(),
            });
        }
        Err(UpstreamUrlProblem::NotHttpWithHost) => {
            return Err(TemplateError::BadUpstreamUrl {
                service: name.to_owned(),
                url: service.upstream_url.clone(),
            });
        }
    }
    for (header, credential) in &service.inject_headers {
        check_header_name(name, "inject_headers", header)?;
        check_credential_name(
            || format!("proxy_services.{name}.inject_headers.{header}"),
            credential,
        )?;
    }
    for header in &service.strip_headers {
        check_header_name(name, "strip_headers", header)?;
    }
    if let Some(scheme) = &service.auth_scheme {
        if scheme.is_empty() || scheme.contains(|character: char| character.is_whitespace()) {
            return Err(TemplateError::BadAuthScheme {
                service: name.to_owned(),
                scheme: scheme.clone(),
            });
        }
        let has_authorization = service
            .inject_headers
            .keys()
            .any(|header| header.eq_ignore_ascii_case("authorization"));
        if !has_authorization {
            return Err(TemplateError::AuthSchemeWithoutAuthorization {
                service: name.to_owned(),
            });
        }
    }
    Ok(())
}

fn validate_health_check(check: &HealthCheck) -> Result<(), TemplateError> {
    let bad = |field: &'static str, value: String, expected: String| {
        Err(TemplateError::BadHealthCheck {
            field,
            value,
            expected,
        })
    };
    if !check.endpoint.starts_with('/') {
        return bad(
            "endpoint",
            check.endpoint.clone(),
            "an HTTP path starting with '/', like \"/health\"".to_owned(),
        );
    }
    if check.interval_seconds == 0 {
        return bad("interval_seconds", "0".to_owned(), "at least 1".to_owned());
    }
    if check.timeout_seconds == 0 || check.timeout_seconds > check.interval_seconds {
        return bad(
            "timeout_seconds",
            check.timeout_seconds.to_string(),
            format!("from 1 to interval_seconds ({})", check.interval_seconds),
        );
    }
    if check.failure_threshold == 0 {
        return bad("failure_threshold", "0".to_owned(), "at least 1".to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    fn full_json() -> serde_json::Value {
        json!({
            "description": "Claude Code agent",
            "inherits": "agent-base",
            "command": ["/usr/bin/claude", "--dangerously-skip-permissions"],
            "working_directory": "/workspace",
            "environment": {"ANTHROPIC_BASE_URL": "http://127.0.0.1:8642/http/anthropic"},
            "filesystem": [
                {"type": "ro", "source": "/opt/claude", "destination": "/opt/claude"},
                {"type": "rw", "source": "${CACHE}/claude", "destination": "/cache", "optional": true},
                {"type": "tmpfs", "destination": "/scratch", "size": 1_073_741_824_u64}
            ],
            "namespaces": {"pid": true, "ipc": false, "uts": true, "cgroup": true},
            "network": "none",
            "resources": {"memory_max": 4_294_967_296_u64, "pids_max": 512, "cpu_weight": 100},
            "security": {"seccomp": "default", "landlock": true, "no_new_privs": true, "new_session": false},
            "required_credentials": ["ANTHROPIC_API_KEY", "GITHUB_TOKEN"],
            "secret_files": ["GITHUB_TOKEN"],
            "required_services": ["ticket", "stt/whisper"],
            "proxy_services": {
                "anthropic": {
                    "upstream_url": "https://api.anthropic.com",
                    "inject_headers": {"x-api-key": "ANTHROPIC_API_KEY"},
                    "strip_headers": ["Cookie"]
                },
                "github": {
                    "upstream_url": "https://api.github.com",
                    "inject_headers": {"Authorization": "GITHUB_TOKEN"},
                    "auth_scheme": "Bearer"
                }
            },
            "health_check": {
                "endpoint": "/health", "interval_seconds": 10, "timeout_seconds": 2,
                "failure_threshold": 5, "grace_period_seconds": 60
            }
        })
    }

    fn error_text(template: &Template) -> String {
        template.validate().unwrap_err().to_string()
    }

    fn with_mount(mount: TemplateMount) -> Template {
        Template {
            filesystem: vec![mount],
            ..Template::default()
        }
    }

    fn ro(source: &str, destination: &str) -> TemplateMount {
        TemplateMount::Ro {
            source: source.to_owned(),
            destination: destination.to_owned(),
            optional: false,
        }
    }

    fn with_service(name: &str, service: ProxyService) -> Template {
        Template {
            proxy_services: BTreeMap::from([(name.to_owned(), service)]),
            ..Template::default()
        }
    }

    fn openai() -> ProxyService {
        ProxyService {
            upstream_url: "https://api.openai.com".to_owned(),
            inject_headers: BTreeMap::from([(
                "Authorization".to_owned(),
                "OPENAI_API_KEY".to_owned(),
            )]),
            auth_scheme: Some("Bearer".to_owned()),
            strip_headers: Vec::new(),
        }
    }

    fn health(endpoint: &str, interval: u32, timeout: u32, threshold: u32) -> Template {
        Template {
            health_check: Some(HealthCheck {
                endpoint: endpoint.to_owned(),
                interval_seconds: interval,
                timeout_seconds: timeout,
                failure_threshold: threshold,
                grace_period_seconds: 0,
            }),
            ..Template::default()
        }
    }

    #[test]
    fn a_full_template_round_trips_and_validates() {
        let template: Template = round_trip(full_json());
        template.validate().unwrap();
        assert_eq!(template.inherits.unwrap().to_string(), "agent-base");
        assert_eq!(template.namespaces.ipc, Some(false));
        assert_eq!(template.filesystem[1].source(), Some("${CACHE}/claude"));
    }

    #[test]
    fn an_empty_template_round_trips_as_an_empty_object() {
        let template: Template = round_trip(json!({}));
        assert_eq!(template, Template::default());
        template.validate().unwrap();
    }

    #[test]
    fn unknown_fields_are_tolerated_at_every_level() {
        tolerates_unknown_fields::<Template>(full_json());
        let mut nested = full_json();
        nested["filesystem"][0]["propagation"] = json!("private");
        nested["proxy_services"]["github"]["rate_limit"] = json!(10);
        nested["health_check"]["method"] = json!("HEAD");
        nested["resources"]["io_weight"] = json!(5);
        let parsed: Template = serde_json::from_value(nested).unwrap();
        assert_eq!(serde_json::to_value(parsed).unwrap(), full_json());
    }

    #[test]
    fn health_check_defaults() {
        let check: HealthCheck = serde_json::from_value(json!({"endpoint": "/health"})).unwrap();
        assert_eq!(
            serde_json::to_value(check).unwrap(),
            json!({"endpoint": "/health", "interval_seconds": 30, "timeout_seconds": 5,
                   "failure_threshold": 3, "grace_period_seconds": 0})
        );
    }

    #[test]
    fn refuses_an_unknown_mount_type() {
        let error = parse_error::<TemplateMount>(json!({"type": "overlay", "destination": "/x"}));
        assert!(error.contains("unknown variant `overlay`"), "{error}");
    }

    #[test]
    fn refuses_an_empty_program() {
        let template = Template {
            command: vec![String::new(), "x".to_owned()],
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: command[0] is empty; it names the program to run, like \"/usr/bin/python3\""
        );
    }

    #[test]
    fn refuses_nul_bytes() {
        let template = Template {
            command: vec!["/bin/sh".to_owned(), "a\0b".to_owned()],
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: command[1] contains a NUL byte; remove it"
        );
        let template = Template {
            environment: BTreeMap::from([("PATH".to_owned(), "/bin\0".to_owned())]),
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: environment.PATH contains a NUL byte; remove it"
        );
    }

    #[test]
    fn refuses_bad_environment_names() {
        for name in ["MY-VAR", "1X", ""] {
            let template = Template {
                environment: BTreeMap::from([(name.to_owned(), "v".to_owned())]),
                ..Template::default()
            };
            assert_eq!(
                error_text(&template),
                format!(
                    "template: environment name {name:?} is not a variable name; use letters, \
                     digits and '_', not starting with a digit"
                )
            );
        }
    }

    #[test]
    fn refuses_launcher_environment_names() {
        let template = Template {
            environment: BTreeMap::from([(
                "BUREAU_PRINCIPAL_NAME".to_owned(),
                "acme/admin".to_owned(),
            )]),
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: environment name \"BUREAU_PRINCIPAL_NAME\" is reserved: the launcher sets \
             every BUREAU_* variable; remove it from the template"
        );
    }

    #[test]
    fn refuses_paths_that_are_not_absolute_and_normal() {
        assert_eq!(
            error_text(&with_mount(TemplateMount::Tmpfs {
                destination: "tmp".to_owned(),
                size: None
            })),
            "template: filesystem[0].destination \"tmp\" is not absolute; write it from the root, \
             like \"/data\""
        );
        assert_eq!(
            error_text(&with_mount(ro("/usr/../etc", "/etc"))),
            "template: filesystem[0].source \"/usr/../etc\" has a '.' or '..' component; write \
             the normalised path"
        );
        assert_eq!(
            error_text(&with_mount(ro("/", "/host"))),
            "template: filesystem[0].source \"/\" is the root directory; name a directory below /"
        );
        let template = Template {
            working_directory: Some("./work".to_owned()),
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: working_directory \"./work\" is not absolute; write it from the root, like \
             \"/data\""
        );
    }

    #[test]
    fn accepts_known_placeholders_in_sources() {
        for source in [
            "${WORKSPACE}",
            "${WORKSPACE}/sub",
            "${CACHE}/pip",
            "/srv/${PRINCIPAL}/x",
        ] {
            with_mount(ro(source, "/data")).validate().unwrap();
        }
    }

    #[test]
    fn refuses_unknown_placeholders() {
        assert_eq!(
            error_text(&with_mount(ro("${HOME}/x", "/x"))),
            "template: filesystem[0].source \"${HOME}/x\": unknown placeholder \"${HOME}\"; the \
             placeholders are ${WORKSPACE}, ${CACHE} and ${PRINCIPAL}"
        );
        assert!(
            error_text(&with_mount(ro("${WORKSPACE", "/x")))
                .contains("unknown placeholder \"${WORKSPACE\"")
        );
        assert_eq!(
            error_text(&with_mount(ro("${PRINCIPAL}", "/x"))),
            "template: filesystem[0].source \"${PRINCIPAL}\" is not absolute; write it from the \
             root, like \"/data\""
        );
    }

    #[test]
    fn refuses_placeholders_in_destinations() {
        assert_eq!(
            error_text(&with_mount(ro("/srv", "/srv/${PRINCIPAL}"))),
            "template: filesystem[0].destination \"/srv/${PRINCIPAL}\" contains a placeholder; \
             placeholders are expanded in sources only"
        );
    }

    #[test]
    fn refuses_destinations_in_the_launchers_directory() {
        for destination in ["/run/bureau", "/run/bureau/proxy.sock"] {
            assert_eq!(
                error_text(&with_mount(ro("/srv", destination))),
                format!(
                    "template: filesystem[0].destination {destination:?} is inside /run/bureau, \
                     which the launcher fills (proxy socket, payload, services, secrets); mount \
                     elsewhere"
                )
            );
        }
        with_mount(ro("/srv", "/run/bureau2")).validate().unwrap();
    }

    #[test]
    fn refuses_two_mounts_at_one_destination() {
        let template = Template {
            filesystem: vec![
                ro("/a", "/workspace"),
                ro("/b", "/b"),
                TemplateMount::Tmpfs {
                    destination: "/workspace/".to_owned(),
                    size: None,
                },
            ],
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: filesystem[0] and filesystem[2] both mount at \"/workspace/\"; keep one"
        );
    }

    #[test]
    fn refuses_resources_out_of_range() {
        let cases = [
            (
                TemplateResources {
                    cpu_weight: Some(0),
                    ..TemplateResources::default()
                },
                "template: resources.cpu_weight 0 is out of range; use 1 to 10000 (100 is the \
                 kernel's default)",
            ),
            (
                TemplateResources {
                    cpu_weight: Some(10_001),
                    ..TemplateResources::default()
                },
                "template: resources.cpu_weight 10001 is out of range; use 1 to 10000 (100 is the \
                 kernel's default)",
            ),
            (
                TemplateResources {
                    memory_max: Some(0),
                    ..TemplateResources::default()
                },
                "template: resources.memory_max 0 is out of range; use a number of bytes above 0, \
                 like 4294967296 for 4 GiB",
            ),
            (
                TemplateResources {
                    pids_max: Some(0),
                    ..TemplateResources::default()
                },
                "template: resources.pids_max 0 is out of range; use 1 or more tasks, like 512",
            ),
        ];
        for (resources, expected) in cases {
            let template = Template {
                resources,
                ..Template::default()
            };
            assert_eq!(error_text(&template), expected);
        }
    }

    #[test]
    fn refuses_bad_credential_names() {
        let template = Template {
            required_credentials: vec!["openai-key".to_owned()],
            ..Template::default()
        };
        assert_eq!(
            error_text(&template),
            "template: required_credentials[0] \"openai-key\" is not a credential name; use A-Z, \
             0-9 and '_' (write \"OPENAI_KEY\")"
        );
        let template = Template {
            secret_files: vec!["ssh key".to_owned()],
            ..Template::default()
        };
        assert!(error_text(&template).starts_with("template: secret_files[0] \"ssh key\""));
        let mut service = openai();
        service.inject_headers =
            BTreeMap::from([("Authorization".to_owned(), "sk-live".to_owned())]);
        assert_eq!(
            error_text(&with_service("openai", service)),
            "template: proxy_services.openai.inject_headers.Authorization \"sk-live\" is not a \
             credential name; use A-Z, 0-9 and '_' (write \"SK_LIVE\")"
        );
    }

    #[test]
    fn refuses_bad_service_roles() {
        let template = Template {
            required_services: vec!["Ticket".to_owned()],
            ..Template::default()
        };
        let reason = Localpart::parse("Ticket").unwrap_err();
        assert_eq!(
            error_text(&template),
            format!("template: required_services[0]: {reason}")
        );
    }

    #[test]
    fn refuses_bad_proxy_service_names() {
        for name in ["Open AI", "a/b", ""] {
            assert_eq!(
                error_text(&with_service(name, openai())),
                format!(
                    "template: proxy_services name {name:?} is not a service name; use lowercase \
                     a-z, 0-9, '.', '_' and '-' (it becomes the path /http/<name>/)"
                )
            );
        }
    }

    #[test]
    fn refuses_bad_upstream_urls() {
        for url in ["api.openai.com", "ftp://example.com", "https://", ""] {
            let service = ProxyService {
                upstream_url: url.to_owned(),
                ..openai()
            };
            assert_eq!(
                error_text(&with_service("openai", service)),
                format!(
                    "template: proxy_services.openai.upstream_url {url:?} is not an http:// or \
                     https:// URL with a host; write it like https://api.openai.com"
                )
            );
        }
        for url in [
            "https://user:sk-secret@api.openai.com/v1",
            // Not a valid URI otherwise (the space): still refused without being echoed.
            "https://user:sk-secret@api openai.com/v1",
            "https://api.openai.com/v1?key=sk-secret",
            "https://api.openai.com/v1#sk-secret",
        ] {
            let service = ProxyService {
                upstream_url: url.to_owned(),
                ..openai()
            };
            let error = error_text(&with_service("openai", service));
            assert!(
                error.starts_with(
                    "template: proxy_services.openai.upstream_url has user:password@, a query"
                ),
                "{error}"
            );
            assert!(!error.contains("sk-secret"), "{error}");
        }
        let service = ProxyService {
            upstream_url: "http://127.0.0.1:8080/v1".to_owned(),
            ..openai()
        };
        with_service("local", service).validate().unwrap();
    }

    #[test]
    fn refuses_bad_header_names() {
        let mut service = openai();
        service
            .inject_headers
            .insert("X Api Key".to_owned(), "KEY".to_owned());
        assert_eq!(
            error_text(&with_service("x", service)),
            "template: proxy_services.x.inject_headers name \"X Api Key\" is not an HTTP header \
             name; use letters, digits and '-', like \"X-Api-Key\""
        );
        let service = ProxyService {
            strip_headers: vec!["Cookie:".to_owned()],
            ..openai()
        };
        assert!(
            error_text(&with_service("x", service))
                .starts_with("template: proxy_services.x.strip_headers name \"Cookie:\"")
        );
    }

    #[test]
    fn refuses_bad_auth_schemes() {
        let service = ProxyService {
            auth_scheme: Some("Bearer token".to_owned()),
            ..openai()
        };
        assert_eq!(
            error_text(&with_service("openai", service)),
            "template: proxy_services.openai.auth_scheme \"Bearer token\" is not one word; write \
             the scheme alone, like \"Bearer\""
        );
        let service = ProxyService {
            inject_headers: BTreeMap::from([("x-api-key".to_owned(), "KEY".to_owned())]),
            ..openai()
        };
        assert_eq!(
            error_text(&with_service("openai", service)),
            "template: proxy_services.openai.auth_scheme is set but inject_headers has no \
             Authorization header; add \"Authorization\": \"<CREDENTIAL>\" or remove auth_scheme"
        );
    }

    #[test]
    fn refuses_bad_health_checks() {
        assert_eq!(
            error_text(&health("health", 30, 5, 3)),
            "template: health_check.endpoint \"health\" must be an HTTP path starting with '/', \
             like \"/health\""
        );
        assert_eq!(
            error_text(&health("/health", 0, 5, 3)),
            "template: health_check.interval_seconds \"0\" must be at least 1"
        );
        assert_eq!(
            error_text(&health("/health", 10, 20, 3)),
            "template: health_check.timeout_seconds \"20\" must be from 1 to interval_seconds (10)"
        );
        assert_eq!(
            error_text(&health("/health", 10, 0, 3)),
            "template: health_check.timeout_seconds \"0\" must be from 1 to interval_seconds (10)"
        );
        assert_eq!(
            error_text(&health("/health", 10, 5, 0)),
            "template: health_check.failure_threshold \"0\" must be at least 1"
        );
    }

    #[test]
    fn resolved_templates_must_not_inherit_and_must_have_a_command() {
        let template: Template = serde_json::from_value(json!({
            "inherits": "base", "command": ["/bin/true"]
        }))
        .unwrap();
        assert_eq!(
            template.validate_resolved().unwrap_err().to_string(),
            "template still inherits \"base\"; resolve it first (schema::resolve)"
        );
        assert_eq!(
            Template::default()
                .validate_resolved()
                .unwrap_err()
                .to_string(),
            "template: command is empty in the template and every template it inherits; set the \
             program to run, like [\"/usr/bin/claude\"]"
        );
        let mut full: Template = serde_json::from_value(full_json()).unwrap();
        full.inherits = None;
        full.validate_resolved().unwrap();
    }

    #[test]
    fn resolved_templates_must_require_the_credentials_they_use() {
        let runnable = |template: Template| Template {
            command: vec!["/bin/true".to_owned()],
            ..template
        };
        let template = runnable(with_service("openai", openai()));
        assert_eq!(
            template.validate_resolved().unwrap_err().to_string(),
            "template: proxy_services.openai.inject_headers.Authorization uses credential \
             \"OPENAI_API_KEY\", which is not in required_credentials; add it there so every \
             bundle must provide it"
        );
        let template = runnable(Template {
            secret_files: vec!["SSH_KEY".to_owned()],
            ..Template::default()
        });
        assert_eq!(
            template.validate_resolved().unwrap_err().to_string(),
            "template: secret_files[0] uses credential \"SSH_KEY\", which is not in \
             required_credentials; add it there so every bundle must provide it"
        );
        // The partial check alone accepts both: a parent may require them.
        with_service("openai", openai()).validate().unwrap();
    }

    #[test]
    fn resolved_templates_keep_no_new_privs_under_seccomp() {
        let mut template = Template {
            command: vec!["/bin/true".to_owned()],
            security: TemplateSecurity {
                no_new_privs: Some(false),
                ..TemplateSecurity::default()
            },
            ..Template::default()
        };
        assert_eq!(
            template.validate_resolved().unwrap_err().to_string(),
            "template: security.no_new_privs is false but seccomp is on; seccomp filters require \
             no_new_privs (remove no_new_privs: false, or set seccomp: \"disabled\")"
        );
        template.security.seccomp = Some(SeccompMode::Disabled);
        template.validate_resolved().unwrap();
    }
}
