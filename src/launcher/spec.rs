//! A principal's resolved template, plus what the launcher knows about the principal, turned
//! into the [`SandboxSpec`] that `bureau-sandbox` runs.
//!
//! Invariant: the Bureau contract inside every sandbox (ARCHITECTURE §4) is added here and only
//! here, after the template's mounts, so no template can displace it: `/run/bureau/proxy.sock`,
//! `/run/bureau/payload.json` (read-only), `/run/bureau/bin/bureau` (read-only, with the
//! `bureau-proxy-call` link), and the `BUREAU_*` environment, which wins over the template's.
//! The function is pure except for checking that the template's bind sources exist.
//!
//! Example: template `{"command": ["/usr/bin/python3", "agent.py"], "filesystem": [{"type":
//! "rw", "source": "${WORKSPACE}", "destination": "/workspace"}]}` for `acme/agent/pm` →
//! the default root (`/usr`, `/proc`, `/dev`, `/tmp`), `rw-bind
//! /var/bureau/workspace/acme/agent/pm → /workspace`, the contract mounts, hostname `pm`, every
//! namespace, seccomp and landlock.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use crate::machine::MachineIdentity;
use crate::naming::Localpart;
use crate::proxy_call::{DEFAULT_PROXY_SOCKET, PROXY_SOCKET_ENV};
use crate::sandbox::spec::{
    DEFAULT_PATH, Mount, Resources, SandboxSpec, SeccompProfile, SpecError,
};
use crate::schema::{NetworkMode, SeccompMode, Template, TemplateMount};

/// The directory inside every sandbox that the launcher fills.
///
/// Example: the proxy socket is `/run/bureau/proxy.sock`.
pub const SANDBOX_CONTRACT_DIR: &str = "/run/bureau";

/// The principal's payload inside its sandbox (read-only).
///
/// Example: `cat /run/bureau/payload.json` inside a sandbox.
pub const SANDBOX_PAYLOAD_PATH: &str = "/run/bureau/payload.json";

/// The directory of Bureau's own tools inside every sandbox, first on `PATH`.
///
/// Example: `/run/bureau/bin/bureau-proxy-call GET /v1/identity`.
pub const SANDBOX_BIN_DIR: &str = "/run/bureau/bin";

/// The `bureau` binary inside every sandbox (read-only).
///
/// Example: `/run/bureau/bin/bureau proxy-call GET /v1/grants`.
pub const SANDBOX_BUREAU_BINARY: &str = "/run/bureau/bin/bureau";

/// The applet links next to [`SANDBOX_BUREAU_BINARY`], each pointing at `bureau`.
///
/// Example: `/run/bureau/bin/bureau-proxy-call` → `bureau`.
pub const SANDBOX_APPLET_LINKS: [&str; 1] = ["bureau-proxy-call"];

/// The environment variable naming the principal inside its sandbox.
///
/// Example: `BUREAU_PRINCIPAL_NAME=acme/fleet/prod/agent/pm`.
pub const PRINCIPAL_NAME_ENV: &str = "BUREAU_PRINCIPAL_NAME";

/// The environment variable naming the machine inside a sandbox.
///
/// Example: `BUREAU_MACHINE_NAME=acme/fleet/prod/machine/box1`.
pub const MACHINE_NAME_ENV: &str = "BUREAU_MACHINE_NAME";

/// The environment variable naming the Matrix server inside a sandbox.
///
/// Example: `BUREAU_SERVER_NAME=bureau.local`.
pub const SERVER_NAME_ENV: &str = "BUREAU_SERVER_NAME";

/// The environment variable naming the machine's fleet inside a sandbox.
///
/// Example: `BUREAU_FLEET=acme/fleet/prod`.
pub const FLEET_ENV: &str = "BUREAU_FLEET";

/// The longest hostname a sandbox gets (a DNS label).
const MAX_HOSTNAME_LEN: usize = 63;

/// Everything [`build_spec`] needs: the principal, its resolved template, and the host paths
/// the launcher prepared for it.
///
/// Example: for `acme/fleet/prod/agent/pm` on `box1`, `workspace` =
/// `/var/bureau/workspace/acme/fleet/prod/agent/pm`, `proxy_socket` =
/// `/run/bureau/acme/fleet/prod/agent/pm.proxy.sock`, `payload_file` =
/// `/var/lib/bureau/principals/acme/fleet/prod/agent/pm/payload.json`, `bureau_binary` =
/// `/usr/bin/bureau`, `host_ids` = `Some((2001, 2001))`.
#[derive(Debug, Clone, Copy)]
pub struct SpecInputs<'a> {
    /// The principal the sandbox is for.
    pub principal: &'a Localpart,
    /// Its template, resolved (no `inherits`) and validated.
    pub template: &'a Template,
    /// The machine the sandbox runs on.
    pub identity: &'a MachineIdentity,
    /// The host directory `${WORKSPACE}` stands for.
    pub workspace: &'a Path,
    /// The host path of the principal's proxy (agent) socket.
    pub proxy_socket: &'a Path,
    /// The host path of the principal's `payload.json`.
    pub payload_file: &'a Path,
    /// The host path of the `bureau` executable.
    pub bureau_binary: &'a Path,
    /// The host uid and gid the sandbox's user maps to (`None`: the caller's own).
    pub host_ids: Option<(u32, u32)>,
    /// Host directories no template may mount: the launcher's state (keys, session) and run
    /// directory (its socket, every principal's admin socket).
    pub protected: &'a [&'a Path],
}

/// Why a template cannot become a sandbox spec. Every message names the principal.
#[derive(Debug, thiserror::Error)]
pub enum SpecBuildError {
    /// The template has no command.
    ///
    /// Example: → `principal acme/agent/pm: its template has no command; set the template's
    /// command to the program to run, like ["/usr/bin/claude"]`.
    #[error(
        "principal {principal}: its template has no command; set the template's command to the \
         program to run, like [\"/usr/bin/claude\"]"
    )]
    EmptyCommand {
        /// The principal.
        principal: Localpart,
    },

    /// A mount source names a placeholder the launcher does not expand.
    ///
    /// Example: `"${HOME}/x"` → `principal acme/agent/pm: filesystem[0].source "${HOME}/x":
    /// placeholder "${HOME}" cannot be expanded; the launcher expands ${WORKSPACE} and
    /// ${PRINCIPAL}`.
    #[error(
        "principal {principal}: {field} {source_text:?}: placeholder {placeholder:?} cannot be \
         expanded; the launcher expands ${{WORKSPACE}} and ${{PRINCIPAL}}"
    )]
    UnknownPlaceholder {
        /// The principal.
        principal: Localpart,
        /// The field, e.g. `filesystem[0].source`.
        field: String,
        /// The source as written.
        source_text: String,
        /// The placeholder, e.g. `${HOME}`.
        placeholder: String,
    },

    /// A mount source with `${` and no closing `}`.
    ///
    /// Example: `"${WORKSPACE"` → `principal acme/agent/pm: filesystem[0].source "${WORKSPACE":
    /// "${" is not closed; write placeholders like ${WORKSPACE}`.
    #[error(
        "principal {principal}: {field} {source_text:?}: \"${{\" is not closed; write \
         placeholders like ${{WORKSPACE}}"
    )]
    UnclosedPlaceholder {
        /// The principal.
        principal: Localpart,
        /// The field.
        field: String,
        /// The source as written.
        source_text: String,
    },

    /// A mount source that does not exist, on a mount that is not `optional`.
    ///
    /// Example: → `principal acme/agent/pm: filesystem[1].source /opt/claude does not exist on
    /// this machine; install it, or mark the mount "optional": true in the template`.
    #[error(
        "principal {principal}: {field} {} does not exist on this machine; install it, or mark \
         the mount \"optional\": true in the template",
        path.display()
    )]
    MissingSource {
        /// The principal.
        principal: Localpart,
        /// The field.
        field: String,
        /// The source after expansion.
        path: PathBuf,
    },

    /// A mount source at or under a directory only the launcher may use.
    ///
    /// Example: → `principal acme/agent/pm: filesystem[2].source /var/lib/bureau/machine.key is
    /// inside /var/lib/bureau, which holds the machine's keys and sockets; no template may mount
    /// it`.
    #[error(
        "principal {principal}: {field} {} is inside {}, which holds the machine's keys and \
         sockets; no template may mount it",
        path.display(),
        protected.display()
    )]
    ProtectedSource {
        /// The principal.
        principal: Localpart,
        /// The field.
        field: String,
        /// The source after expansion.
        path: PathBuf,
        /// The protected directory it is in.
        protected: PathBuf,
    },

    /// A mount source whose existence cannot be checked.
    ///
    /// Example: → `principal acme/agent/pm: filesystem[1].source /srv/private/x cannot be
    /// checked: Permission denied (os error 13); let the launcher read it`.
    #[error(
        "principal {principal}: {field} {} cannot be checked: {error}; let the launcher read it",
        path.display()
    )]
    InaccessibleSource {
        /// The principal.
        principal: Localpart,
        /// The field.
        field: String,
        /// The source after expansion.
        path: PathBuf,
        /// The I/O error.
        error: io::Error,
    },

    /// The spec built from the template is not valid.
    ///
    /// Example: → `principal acme/agent/pm: the sandbox spec from its template is invalid:
    /// cpu_weight 0 is outside 1-10000`.
    #[error("principal {principal}: the sandbox spec from its template is invalid: {reason}")]
    InvalidSpec {
        /// The principal.
        principal: Localpart,
        /// What is wrong.
        reason: SpecError,
    },
}

/// Builds the sandbox spec for one principal: the default root, the template's mounts (with
/// placeholders expanded, missing optional sources skipped, a mount at a root destination such
/// as `/tmp` replacing the default one), then the Bureau contract, environment, namespaces,
/// limits and hardening. The result is validated.
///
/// Example: a template with `"network": "host"` → `namespaces.net == false`; a source
/// `"${CACHE}/pip"` → `Err(… placeholder "${CACHE}" cannot be expanded …)`.
///
/// ```
/// use std::path::Path;
/// use bureau::launcher::spec::{SpecInputs, build_spec};
/// use bureau::machine::MachineIdentity;
/// use bureau::naming::Localpart;
/// use bureau::schema::Template;
///
/// let principal = Localpart::parse("acme/fleet/prod/agent/pm")?;
/// let identity = MachineIdentity::new("http://127.0.0.1:8008", "bureau.local",
///     "acme/fleet/prod/machine/box1")?;
/// let template = Template { command: vec!["/usr/bin/env".into()], ..Template::default() };
/// let spec = build_spec(&SpecInputs {
///     principal: &principal,
///     template: &template,
///     identity: &identity,
///     workspace: Path::new("/var/bureau/workspace/acme/fleet/prod/agent/pm"),
///     proxy_socket: Path::new("/run/bureau/acme/fleet/prod/agent/pm.proxy.sock"),
///     payload_file: Path::new("/var/lib/bureau/principals/acme/fleet/prod/agent/pm/payload.json"),
///     bureau_binary: Path::new("/usr/bin/bureau"),
///     host_ids: None,
///     protected: &[Path::new("/var/lib/bureau"), Path::new("/run/bureau")],
/// })?;
/// assert_eq!(spec.hostname, "pm");
/// assert_eq!(spec.environment["BUREAU_FLEET"], "acme/fleet/prod");
/// assert!(spec.environment["PATH"].starts_with("/run/bureau/bin:"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn build_spec(inputs: &SpecInputs) -> Result<SandboxSpec, SpecBuildError> {
    let principal = inputs.principal;
    let template = inputs.template;
    if template.command.first().is_none_or(String::is_empty) {
        return Err(SpecBuildError::EmptyCommand {
            principal: principal.clone(),
        });
    }
    let mut spec = SandboxSpec::with_defaults(template.command.clone());

    for (index, mount) in template.filesystem.iter().enumerate() {
        let Some(mount) = sandbox_mount(inputs, index, mount)? else {
            continue;
        };
        let same_destination = spec
            .filesystem
            .iter()
            .position(|existing| existing.destination() == mount.destination());
        match same_destination {
            Some(position) => spec.filesystem[position] = mount,
            None => spec.filesystem.push(mount),
        }
    }
    spec.filesystem.extend(contract_mounts(inputs));

    spec.environment = template.environment.clone();
    let template_path = template
        .environment
        .get("PATH")
        .map_or(DEFAULT_PATH, String::as_str);
    let path = if template_path.is_empty() {
        SANDBOX_BIN_DIR.to_owned()
    } else {
        format!("{SANDBOX_BIN_DIR}:{template_path}")
    };
    spec.environment.insert("PATH".to_owned(), path);
    let identity = inputs.identity;
    for (name, value) in [
        (PROXY_SOCKET_ENV, DEFAULT_PROXY_SOCKET),
        (PRINCIPAL_NAME_ENV, principal.as_str()),
        (MACHINE_NAME_ENV, identity.machine.as_str()),
        (SERVER_NAME_ENV, identity.server_name.as_str()),
        (FLEET_ENV, identity.fleet()),
    ] {
        spec.environment.insert(name.to_owned(), value.to_owned());
    }

    spec.cwd = PathBuf::from(template.working_directory.as_deref().unwrap_or("/"));

    let namespaces = &template.namespaces;
    spec.namespaces.user = true;
    spec.namespaces.mount = true;
    spec.namespaces.pid = namespaces.pid.unwrap_or(true);
    spec.namespaces.ipc = namespaces.ipc.unwrap_or(true);
    spec.namespaces.uts = namespaces.uts.unwrap_or(true);
    spec.namespaces.cgroup = namespaces.cgroup.unwrap_or(true);
    spec.namespaces.net = template.network != Some(NetworkMode::Host);

    spec.resources = Resources {
        memory_max: template.resources.memory_max,
        pids_max: template.resources.pids_max,
        cpu_weight: template.resources.cpu_weight,
    };

    let security = &template.security;
    spec.seccomp = match security.seccomp {
        Some(SeccompMode::Disabled) => SeccompProfile::Disabled,
        Some(SeccompMode::Default) | None => SeccompProfile::Default,
    };
    spec.landlock.enabled = security.landlock.unwrap_or(true);
    spec.security.no_new_privs = security.no_new_privs.unwrap_or(true);
    spec.security.new_session = security.new_session.unwrap_or(false);
    // Principals outlive a launcher restart (the new launcher adopts them); each still dies
    // with its own `bureau-sandbox`.
    spec.security.outlive_caller = true;
    // Writable mounts are writable under landlock too (the /dev nodes and /dev/shm are added by
    // the sandbox itself from its Dev mount).
    spec.landlock.read_write = spec
        .filesystem
        .iter()
        .filter(|mount| mount.is_writable())
        .map(|mount| mount.destination().to_owned())
        .collect();

    spec.hostname = hostname_for(principal);
    if let Some((uid, gid)) = inputs.host_ids {
        spec.identity.host_uid = Some(uid);
        spec.identity.host_gid = Some(gid);
    }

    spec.validate()
        .map_err(|reason| SpecBuildError::InvalidSpec {
            principal: principal.clone(),
            reason,
        })?;
    Ok(spec)
}

/// One template mount as a sandbox mount: `None` when it is optional and its source is missing.
fn sandbox_mount(
    inputs: &SpecInputs,
    index: usize,
    mount: &TemplateMount,
) -> Result<Option<Mount>, SpecBuildError> {
    let destination: PathBuf = Path::new(mount.destination()).components().collect();
    let (source, optional, writable) = match mount {
        TemplateMount::Tmpfs { size, .. } => {
            return Ok(Some(Mount::Tmpfs {
                destination,
                size: *size,
            }));
        }
        TemplateMount::Ro {
            source, optional, ..
        } => (source, *optional, false),
        TemplateMount::Rw {
            source, optional, ..
        } => (source, *optional, true),
    };
    let field = format!("filesystem[{index}].source");
    let source = expand_source(inputs, &field, source)?;
    // Compared after resolving symlinks (a link into the state directory is refused too), and
    // also as written (a source that does not exist yet cannot be resolved).
    let resolved = std::fs::canonicalize(&source).unwrap_or_else(|_| source.clone());
    for protected in inputs.protected {
        let protected_resolved =
            std::fs::canonicalize(protected).unwrap_or_else(|_| protected.to_path_buf());
        let inside =
            |path: &Path| path.starts_with(protected) || path.starts_with(&protected_resolved);
        // A source that contains a protected directory (such as `/`) exposes it as well.
        let contains =
            |path: &Path| protected.starts_with(path) || protected_resolved.starts_with(path);
        if inside(&source) || inside(&resolved) || contains(&source) || contains(&resolved) {
            return Err(SpecBuildError::ProtectedSource {
                principal: inputs.principal.clone(),
                field,
                path: source,
                protected: protected.to_path_buf(),
            });
        }
    }
    match std::fs::metadata(&source) {
        Ok(_) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {
            if optional {
                return Ok(None);
            }
            return Err(SpecBuildError::MissingSource {
                principal: inputs.principal.clone(),
                field,
                path: source,
            });
        }
        Err(error) => {
            return Err(SpecBuildError::InaccessibleSource {
                principal: inputs.principal.clone(),
                field,
                path: source,
                error,
            });
        }
    }
    Ok(Some(if writable {
        Mount::RwBind {
            source,
            destination,
        }
    } else {
        Mount::RoBind {
            source,
            destination,
        }
    }))
}

/// Expands `${WORKSPACE}` and `${PRINCIPAL}` in a mount source.
///
/// Example: `${WORKSPACE}/src` → `/var/bureau/workspace/acme/agent/pm/src`.
fn expand_source(
    inputs: &SpecInputs,
    field: &str,
    source: &str,
) -> Result<PathBuf, SpecBuildError> {
    let mut expanded = OsString::with_capacity(source.len());
    let mut rest = source;
    while let Some(start) = rest.find("${") {
        expanded.push(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            return Err(SpecBuildError::UnclosedPlaceholder {
                principal: inputs.principal.clone(),
                field: field.to_owned(),
                source_text: source.to_owned(),
            });
        };
        match &after[..end] {
            "WORKSPACE" => expanded.push(inputs.workspace),
            "PRINCIPAL" => expanded.push(inputs.principal.as_str()),
            name => {
                return Err(SpecBuildError::UnknownPlaceholder {
                    principal: inputs.principal.clone(),
                    field: field.to_owned(),
                    source_text: source.to_owned(),
                    placeholder: format!("${{{name}}}"),
                });
            }
        }
        rest = &after[end + 1..];
    }
    expanded.push(rest);
    Ok(PathBuf::from(expanded))
}

/// The Bureau contract mounts (ARCHITECTURE §4), in order.
fn contract_mounts(inputs: &SpecInputs) -> Vec<Mount> {
    let mut mounts = vec![
        Mount::Dir {
            destination: PathBuf::from(SANDBOX_CONTRACT_DIR),
        },
        Mount::RwBind {
            source: inputs.proxy_socket.to_owned(),
            destination: PathBuf::from(DEFAULT_PROXY_SOCKET),
        },
        Mount::RoBind {
            source: inputs.payload_file.to_owned(),
            destination: PathBuf::from(SANDBOX_PAYLOAD_PATH),
        },
        Mount::Dir {
            destination: PathBuf::from(SANDBOX_BIN_DIR),
        },
        Mount::RoBind {
            source: inputs.bureau_binary.to_owned(),
            destination: PathBuf::from(SANDBOX_BUREAU_BINARY),
        },
    ];
    mounts.extend(SANDBOX_APPLET_LINKS.iter().map(|link| Mount::Symlink {
        target: PathBuf::from("bureau"),
        destination: Path::new(SANDBOX_BIN_DIR).join(link),
    }));
    mounts
}

/// The sandbox's hostname: the principal's last segment, lowercased, characters outside
/// `[a-z0-9-]` replaced by `-`, at most 63 bytes.
///
/// Example: `acme/fleet/prod/agent/code_review.v2` → `code-review-v2`.
fn hostname_for(principal: &Localpart) -> String {
    let last = principal.segments().next_back().unwrap_or("sandbox");
    let hostname: String = last
        .chars()
        .map(|character| {
            let lower = character.to_ascii_lowercase();
            if lower.is_ascii_lowercase() || lower.is_ascii_digit() || lower == '-' {
                lower
            } else {
                '-'
            }
        })
        .take(MAX_HOSTNAME_LEN)
        .collect();
    if hostname.is_empty() {
        "sandbox".to_owned()
    } else {
        hostname
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::schema::{TemplateResources, TemplateSecurity, merge};

    struct Fixture {
        _directory: tempfile::TempDir,
        root: PathBuf,
        principal: Localpart,
        identity: MachineIdentity,
        workspace: PathBuf,
        proxy_socket: PathBuf,
        payload_file: PathBuf,
        bureau_binary: PathBuf,
        protected: PathBuf,
    }

    fn fixture() -> Fixture {
        let directory = tempfile::tempdir().unwrap();
        let root = directory.path().to_owned();
        let workspace = root.join("workspace/acme/fleet/prod/agent/pm");
        std::fs::create_dir_all(&workspace).unwrap();
        Fixture {
            principal: Localpart::parse("acme/fleet/prod/agent/pm").unwrap(),
            identity: MachineIdentity::new(
                "http://127.0.0.1:8008",
                "bureau.local",
                "acme/fleet/prod/machine/box1",
            )
            .unwrap(),
            workspace,
            proxy_socket: root.join("run/acme/fleet/prod/agent/pm.proxy.sock"),
            payload_file: root.join("state/principals/acme/fleet/prod/agent/pm/payload.json"),
            bureau_binary: root.join("bin/bureau"),
            protected: root.join("state"),
            root,
            _directory: directory,
        }
    }

    #[test]
    fn the_launchers_own_directories_cannot_be_mounted() {
        let fixture = fixture();
        std::fs::create_dir_all(fixture.root.join("state/keys")).unwrap();
        std::fs::create_dir_all(fixture.root.join("elsewhere")).unwrap();
        std::os::unix::fs::symlink(
            fixture.root.join("state"),
            fixture.root.join("elsewhere/link"),
        )
        .unwrap();
        for source in [
            fixture.root.join("state/keys"),
            fixture.root.join("elsewhere/link"),
            fixture.root.clone(),
        ] {
            let mounts = vec![TemplateMount::Ro {
                source: source.display().to_string(),
                destination: "/data".to_owned(),
                optional: false,
            }];
            let error = fixture.build(&template(mounts)).unwrap_err();
            assert!(
                matches!(error, SpecBuildError::ProtectedSource { .. }),
                "{source:?}: {error}"
            );
        }
    }

    impl Fixture {
        fn build(&self, template: &Template) -> Result<SandboxSpec, SpecBuildError> {
            self.build_with(template, None)
        }

        fn build_with(
            &self,
            template: &Template,
            host_ids: Option<(u32, u32)>,
        ) -> Result<SandboxSpec, SpecBuildError> {
            build_spec(&SpecInputs {
                principal: &self.principal,
                template,
                identity: &self.identity,
                workspace: &self.workspace,
                proxy_socket: &self.proxy_socket,
                payload_file: &self.payload_file,
                bureau_binary: &self.bureau_binary,
                host_ids,
                protected: &[self.protected.as_path()],
            })
        }
    }

    /// `base` with a command and `mounts`, as `resolve` would produce it: `base`'s `/usr` and
    /// `/tmp` come first, so `mounts[i]` is `filesystem[i + 2]`.
    fn template(mounts: Vec<TemplateMount>) -> Template {
        merge(
            Template::base(),
            Template {
                command: vec!["/usr/bin/python3".to_owned(), "agent.py".to_owned()],
                filesystem: mounts,
                ..Template::default()
            },
        )
    }

    fn rw(source: &str, destination: &str, optional: bool) -> TemplateMount {
        TemplateMount::Rw {
            source: source.to_owned(),
            destination: destination.to_owned(),
            optional,
        }
    }

    fn ro(source: &str, destination: &str, optional: bool) -> TemplateMount {
        TemplateMount::Ro {
            source: source.to_owned(),
            destination: destination.to_owned(),
            optional,
        }
    }

    fn mounts_at<'a>(spec: &'a SandboxSpec, destination: &str) -> Vec<&'a Mount> {
        spec.filesystem
            .iter()
            .filter(|mount| mount.destination() == Path::new(destination))
            .collect()
    }

    #[test]
    fn adds_the_bureau_contract_after_the_template() {
        let fixture = fixture();
        let spec = fixture
            .build(&template(vec![rw("${WORKSPACE}", "/workspace", false)]))
            .unwrap();
        let contract: Vec<&Mount> = spec.filesystem.iter().rev().take(6).rev().collect();
        assert_eq!(
            contract,
            [
                &Mount::Dir {
                    destination: PathBuf::from("/run/bureau")
                },
                &Mount::RwBind {
                    source: fixture.proxy_socket.clone(),
                    destination: PathBuf::from("/run/bureau/proxy.sock"),
                },
                &Mount::RoBind {
                    source: fixture.payload_file.clone(),
                    destination: PathBuf::from("/run/bureau/payload.json"),
                },
                &Mount::Dir {
                    destination: PathBuf::from("/run/bureau/bin")
                },
                &Mount::RoBind {
                    source: fixture.bureau_binary.clone(),
                    destination: PathBuf::from("/run/bureau/bin/bureau"),
                },
                &Mount::Symlink {
                    target: PathBuf::from("bureau"),
                    destination: PathBuf::from("/run/bureau/bin/bureau-proxy-call"),
                },
            ]
        );
        for skeleton in ["/usr", "/proc", "/dev", "/tmp"] {
            assert_eq!(mounts_at(&spec, skeleton).len(), 1, "{skeleton}");
        }
        assert_eq!(spec.command, ["/usr/bin/python3", "agent.py"]);
        assert_eq!(spec.cwd, Path::new("/"));
        assert_eq!(spec.hostname, "pm");
        assert!(spec.landlock.enabled);
        assert_eq!(spec.seccomp, SeccompProfile::Default);
        assert!(spec.security.no_new_privs && !spec.security.new_session);
        assert!(spec.security.die_with_parent && spec.security.outlive_caller);
        assert_eq!(spec.identity, crate::sandbox::spec::Identity::default());
        let writable: Vec<&Path> = spec
            .landlock
            .read_write
            .iter()
            .map(PathBuf::as_path)
            .collect();
        assert_eq!(
            writable,
            [
                Path::new("/tmp"),
                Path::new("/workspace"),
                Path::new("/run/bureau/proxy.sock")
            ]
        );
    }

    #[test]
    fn expands_workspace_and_principal_placeholders() {
        let fixture = fixture();
        let shared = fixture.root.join("srv/acme/fleet/prod/agent/pm");
        std::fs::create_dir_all(&shared).unwrap();
        std::fs::create_dir_all(fixture.workspace.join("src")).unwrap();
        let source = format!("{}/srv/${{PRINCIPAL}}", fixture.root.display());
        let spec = fixture
            .build(&template(vec![
                rw("${WORKSPACE}", "/workspace", false),
                ro("${WORKSPACE}/src", "/src", false),
                ro(&source, "/shared/", false),
            ]))
            .unwrap();
        assert_eq!(
            mounts_at(&spec, "/workspace"),
            [&Mount::RwBind {
                source: fixture.workspace.clone(),
                destination: PathBuf::from("/workspace"),
            }]
        );
        assert_eq!(
            mounts_at(&spec, "/src"),
            [&Mount::RoBind {
                source: fixture.workspace.join("src"),
                destination: PathBuf::from("/src"),
            }]
        );
        assert_eq!(
            mounts_at(&spec, "/shared"),
            [&Mount::RoBind {
                source: shared,
                destination: PathBuf::from("/shared"),
            }]
        );
    }

    #[test]
    fn refuses_placeholders_it_cannot_expand_naming_them() {
        let fixture = fixture();
        let error = fixture
            .build(&template(vec![ro("${HOME}/x", "/x", true)]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "principal acme/fleet/prod/agent/pm: filesystem[2].source \"${HOME}/x\": placeholder \
             \"${HOME}\" cannot be expanded; the launcher expands ${WORKSPACE} and ${PRINCIPAL}"
        );
        let error = fixture
            .build(&template(vec![ro("${CACHE}/pip", "/cache", true)]))
            .unwrap_err();
        assert!(
            error.to_string().contains("placeholder \"${CACHE}\""),
            "{error}"
        );
        let error = fixture
            .build(&template(vec![ro("${WORKSPACE", "/x", false)]))
            .unwrap_err();
        assert!(
            matches!(error, SpecBuildError::UnclosedPlaceholder { .. }),
            "{error}"
        );
    }

    #[test]
    fn skips_an_optional_mount_whose_source_is_missing() {
        let fixture = fixture();
        let missing = fixture.root.join("nowhere");
        let spec = fixture
            .build(&template(vec![ro(
                &missing.to_string_lossy(),
                "/opt/tool",
                true,
            )]))
            .unwrap();
        assert!(mounts_at(&spec, "/opt/tool").is_empty());
    }

    #[test]
    fn refuses_a_required_mount_whose_source_is_missing_naming_the_path() {
        let fixture = fixture();
        let missing = fixture.root.join("nowhere");
        let error = fixture
            .build(&template(vec![
                rw("${WORKSPACE}", "/workspace", false),
                ro(&missing.to_string_lossy(), "/opt/tool", false),
            ]))
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "principal acme/fleet/prod/agent/pm: filesystem[3].source {} does not exist on \
                 this machine; install it, or mark the mount \"optional\": true in the template",
                missing.display()
            )
        );
    }

    #[test]
    fn a_template_mount_replaces_the_default_one_in_place() {
        let fixture = fixture();
        let default = fixture.build(&template(vec![])).unwrap();
        let position = |spec: &SandboxSpec| {
            spec.filesystem
                .iter()
                .position(|mount| mount.destination() == Path::new("/tmp"))
                .unwrap()
        };
        let spec = fixture
            .build(&template(vec![TemplateMount::Tmpfs {
                destination: "/tmp".to_owned(),
                size: Some(1 << 20),
            }]))
            .unwrap();
        assert_eq!(
            mounts_at(&spec, "/tmp"),
            [&Mount::Tmpfs {
                destination: PathBuf::from("/tmp"),
                size: Some(1 << 20),
            }]
        );
        assert_eq!(position(&spec), position(&default));
        assert_eq!(spec.filesystem.len(), default.filesystem.len());
    }

    #[test]
    fn the_bureau_environment_wins_over_the_template() {
        let fixture = fixture();
        let mut template = template(vec![]);
        template.environment = BTreeMap::from([
            ("PATH".to_owned(), "/opt/bin:/usr/bin".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
            ("BUREAU_FLEET".to_owned(), "evil/fleet".to_owned()),
            (
                "BUREAU_PROXY_SOCKET".to_owned(),
                "/tmp/fake.sock".to_owned(),
            ),
        ]);
        let spec = fixture.build(&template).unwrap();
        let expected: BTreeMap<String, String> = [
            ("PATH", "/run/bureau/bin:/opt/bin:/usr/bin"),
            ("LANG", "C.UTF-8"),
            ("BUREAU_PROXY_SOCKET", "/run/bureau/proxy.sock"),
            ("BUREAU_PRINCIPAL_NAME", "acme/fleet/prod/agent/pm"),
            ("BUREAU_MACHINE_NAME", "acme/fleet/prod/machine/box1"),
            ("BUREAU_SERVER_NAME", "bureau.local"),
            ("BUREAU_FLEET", "acme/fleet/prod"),
        ]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect();
        assert_eq!(spec.environment, expected);

        template.environment.clear();
        let spec = fixture.build(&template).unwrap();
        assert_eq!(
            spec.environment["PATH"],
            format!("/run/bureau/bin:{DEFAULT_PATH}")
        );
        assert!(!spec.environment.contains_key("LANG"));
    }

    #[test]
    fn host_network_shares_the_host_namespace_and_none_isolates() {
        let fixture = fixture();
        let mut template = template(vec![]);
        for (network, isolated) in [
            (Some(NetworkMode::Host), false),
            (Some(NetworkMode::Isolated), true),
            (None, true),
        ] {
            template.network = network;
            let spec = fixture.build(&template).unwrap();
            assert_eq!(spec.namespaces.net, isolated, "{network:?}");
        }
    }

    #[test]
    fn maps_namespaces_resources_security_and_identity() {
        let fixture = fixture();
        let mut template = template(vec![]);
        template.working_directory = Some("/workspace".to_owned());
        template.namespaces.ipc = Some(false);
        template.namespaces.pid = None;
        template.resources = TemplateResources {
            memory_max: Some(1 << 30),
            pids_max: Some(256),
            cpu_weight: Some(100),
        };
        template.security = TemplateSecurity {
            seccomp: Some(SeccompMode::Disabled),
            landlock: Some(false),
            no_new_privs: Some(false),
            new_session: Some(true),
        };
        let spec = fixture.build_with(&template, Some((2001, 2002))).unwrap();
        assert_eq!(spec.cwd, Path::new("/workspace"));
        assert!(!spec.namespaces.ipc);
        assert!(spec.namespaces.pid && spec.namespaces.user && spec.namespaces.mount);
        assert_eq!(
            spec.resources,
            Resources {
                memory_max: Some(1 << 30),
                pids_max: Some(256),
                cpu_weight: Some(100),
            }
        );
        assert_eq!(spec.seccomp, SeccompProfile::Disabled);
        assert!(!spec.landlock.enabled);
        assert!(!spec.security.no_new_privs && spec.security.new_session);
        assert_eq!(
            (spec.identity.host_uid, spec.identity.host_gid),
            (Some(2001), Some(2002))
        );
    }

    #[test]
    fn refuses_a_template_without_a_command() {
        let fixture = fixture();
        let error = fixture.build(&Template::base()).unwrap_err();
        assert_eq!(
            error.to_string(),
            "principal acme/fleet/prod/agent/pm: its template has no command; set the template's \
             command to the program to run, like [\"/usr/bin/claude\"]"
        );
    }

    #[test]
    fn an_invalid_result_names_the_principal() {
        let fixture = fixture();
        let mut template = template(vec![]);
        template.resources.cpu_weight = Some(0);
        let error = fixture.build(&template).unwrap_err();
        assert_eq!(
            error.to_string(),
            "principal acme/fleet/prod/agent/pm: the sandbox spec from its template is invalid: \
             cpu_weight 0 is outside 1-10000"
        );
    }

    #[test]
    fn hostnames_are_the_last_segment_as_a_dns_label() {
        let name = |localpart: &str| hostname_for(&Localpart::parse(localpart).unwrap());
        assert_eq!(name("acme/fleet/prod/agent/pm"), "pm");
        assert_eq!(name("acme/agent/code_review.v2=x"), "code-review-v2-x");
        assert_eq!(name(&format!("acme/{}", "a".repeat(70))), "a".repeat(63));
    }
}
