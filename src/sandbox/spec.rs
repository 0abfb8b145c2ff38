//! The sandbox specification: everything `bureau-sandbox` needs to build one sandbox.
//!
//! JSON for humans (`bureau-sandbox run --spec FILE`), the same serde model over CBOR from the
//! launcher. Unknown fields are **rejected** here, unlike Bureau's event contents: a misspelt
//! isolation setting that was silently ignored would leave a sandbox weaker than its author
//! asked for (fail closed).
//!
//! Example (JSON):
//! ```json
//! {"command": ["/usr/bin/python3", "agent.py"],
//!  "environment": {"PATH": "/usr/bin"},
//!  "filesystem": [{"type": "ro-bind", "source": "/usr", "destination": "/usr"},
//!                 {"type": "rw-bind", "source": "/var/bureau/workspace/pm", "destination": "/workspace"}],
//!  "resources": {"memory_max": 1073741824, "pids_max": 256}}
//! ```

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// One sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SandboxSpec {
    /// argv of the command; `command[0]` is looked up on the sandbox's `PATH` when it has no `/`.
    pub command: Vec<String>,
    /// The whole environment of the command: nothing is inherited from the caller.
    #[serde(default)]
    pub environment: BTreeMap<String, String>,
    /// Working directory inside the sandbox.
    #[serde(default = "default_cwd")]
    pub cwd: PathBuf,
    #[serde(default)]
    pub namespaces: Namespaces,
    #[serde(default)]
    pub identity: Identity,
    /// Mounts, in order; each destination's parents are created as needed.
    #[serde(default)]
    pub filesystem: Vec<Mount>,
    /// Host paths that bind sources must lie under; empty means any path the caller can read.
    #[serde(default)]
    pub allowed_bind_roots: Vec<PathBuf>,
    #[serde(default = "default_hostname")]
    pub hostname: String,
    #[serde(default)]
    pub landlock: LandlockPolicy,
    #[serde(default)]
    pub seccomp: SeccompProfile,
    #[serde(default)]
    pub resources: Resources,
    #[serde(default)]
    pub security: Security,
}

fn default_cwd() -> PathBuf {
    PathBuf::from("/")
}

fn default_hostname() -> String {
    "sandbox".to_owned()
}

fn yes() -> bool {
    true
}

/// Which namespaces to create. All default to `true`; `net: false` shares the host network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespaces {
    #[serde(default = "yes")]
    pub user: bool,
    #[serde(default = "yes")]
    pub mount: bool,
    #[serde(default = "yes")]
    pub pid: bool,
    #[serde(default = "yes")]
    pub net: bool,
    #[serde(default = "yes")]
    pub ipc: bool,
    #[serde(default = "yes")]
    pub uts: bool,
    #[serde(default = "yes")]
    pub cgroup: bool,
}

impl Default for Namespaces {
    fn default() -> Self {
        Self {
            user: true,
            mount: true,
            pid: true,
            net: true,
            ipc: true,
            uts: true,
            cgroup: true,
        }
    }
}

/// The user and group the command runs as, inside and on the host.
///
/// Unset fields default to the caller's own IDs, so a rootless sandbox maps the caller to
/// itself and files it writes through `rw-bind` belong to the caller. Only a privileged caller
/// may choose a different `host_uid`/`host_gid` (the launcher gives each principal its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub inner_uid: Option<u32>,
    pub inner_gid: Option<u32>,
    pub host_uid: Option<u32>,
    pub host_gid: Option<u32>,
}

/// One filesystem entry of the new root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Mount {
    /// A host path, read-only.
    RoBind {
        source: PathBuf,
        destination: PathBuf,
    },
    /// A host path, writable.
    RwBind {
        source: PathBuf,
        destination: PathBuf,
    },
    /// An empty writable tmpfs.
    Tmpfs {
        destination: PathBuf,
        /// Size limit in bytes (default: the kernel's, half of RAM).
        #[serde(default)]
        size: Option<u64>,
    },
    /// procfs of the sandbox's pid namespace.
    Proc { destination: PathBuf },
    /// A minimal /dev: null, zero, full, random, urandom, tty, plus fd/stdin/stdout/stderr links,
    /// a `shm` tmpfs and a `pts` directory. No other device node exists.
    Dev { destination: PathBuf },
    /// An empty directory (mode 0755) in the read-only root.
    Dir { destination: PathBuf },
    /// A symbolic link.
    Symlink {
        target: PathBuf,
        destination: PathBuf,
    },
    /// A read-only file with these contents (e.g. `/etc/passwd`, `/run/bureau/payload.json`).
    File {
        destination: PathBuf,
        contents: String,
    },
}

impl Mount {
    /// The path inside the sandbox.
    pub fn destination(&self) -> &Path {
        match self {
            Mount::RoBind { destination, .. }
            | Mount::RwBind { destination, .. }
            | Mount::Tmpfs { destination, .. }
            | Mount::Proc { destination }
            | Mount::Dev { destination }
            | Mount::Dir { destination }
            | Mount::Symlink { destination, .. }
            | Mount::File { destination, .. } => destination,
        }
    }

    /// Whether the sandbox may write below this entry (landlock grants write access there).
    pub fn is_writable(&self) -> bool {
        matches!(self, Mount::RwBind { .. } | Mount::Tmpfs { .. })
    }
}

/// Landlock: everything in the new root is readable and executable; only writable mounts
/// (`rw-bind`, `tmpfs`), the device nodes of `/dev`, and `read_write` here may be written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LandlockPolicy {
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Extra paths (inside the sandbox) that may be written.
    #[serde(default)]
    pub read_write: Vec<PathBuf>,
    /// TCP ports the sandbox may bind; all others are denied (ABI ≥ 4).
    #[serde(default)]
    pub tcp_bind: Vec<u16>,
    /// TCP ports the sandbox may connect to; all others are denied (ABI ≥ 4).
    #[serde(default)]
    pub tcp_connect: Vec<u16>,
    /// The lowest landlock ABI this sandbox accepts; below it the sandbox refuses to start.
    /// When the sandbox shares the host network, TCP rules need ABI 4, which is then the floor.
    #[serde(default = "default_minimum_abi")]
    pub minimum_abi: u8,
}

fn default_minimum_abi() -> u8 {
    1
}

impl Default for LandlockPolicy {
    fn default() -> Self {
        Self {
            enabled: true,
            read_write: Vec::new(),
            tcp_bind: Vec::new(),
            tcp_connect: Vec::new(),
            minimum_abi: default_minimum_abi(),
        }
    }
}

/// Which seccomp filter to install.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeccompProfile {
    /// The default deny-list (see `seccomp.rs`).
    #[default]
    Default,
    /// No filter. Only for debugging; the launcher never asks for it.
    Disabled,
}

/// cgroup limits. Each requested limit must be applied or the sandbox does not start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resources {
    /// Bytes of memory (`memory.max`; v1 `memory.limit_in_bytes`, swap included where possible).
    pub memory_max: Option<u64>,
    /// Number of tasks (`pids.max`).
    pub pids_max: Option<u64>,
    /// Relative CPU weight, 1–10000 (`cpu.weight`; v1 `cpu.shares` scaled).
    pub cpu_weight: Option<u64>,
}

impl Resources {
    pub fn any(&self) -> bool {
        self.memory_max.is_some() || self.pids_max.is_some() || self.cpu_weight.is_some()
    }
}

/// Process-level hardening.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Security {
    /// `PR_SET_NO_NEW_PRIVS`: setuid binaries and file capabilities grant nothing.
    #[serde(default = "yes")]
    pub no_new_privs: bool,
    /// Drop every capability, including the bounding and ambient sets.
    #[serde(default = "yes")]
    pub drop_capabilities: bool,
    /// The sandbox is killed when `bureau-sandbox` dies, and `bureau-sandbox` when the process
    /// that started it dies (unless `outlive_caller`).
    #[serde(default = "yes")]
    pub die_with_parent: bool,
    /// `bureau-sandbox` keeps running when the process that started it exits — how the
    /// launcher's sandboxes survive a launcher restart. The sandbox still dies with
    /// `bureau-sandbox` when `die_with_parent` is set.
    #[serde(default)]
    pub outlive_caller: bool,
    /// Start the command in a new session (no controlling terminal).
    #[serde(default)]
    pub new_session: bool,
}

impl Default for Security {
    fn default() -> Self {
        Self {
            no_new_privs: true,
            drop_capabilities: true,
            die_with_parent: true,
            outlive_caller: false,
            new_session: false,
        }
    }
}

/// A spec that cannot be run, with the field and the reason.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    #[error("the command is empty: give the program to run (e.g. `-- /usr/bin/env`)")]
    EmptyCommand,
    #[error("{field} {path:?} must be an absolute, normalised path (no `.` or `..` components)")]
    BadPath { field: &'static str, path: PathBuf },
    #[error("{field} {path:?} is the sandbox root: mount at a path below `/`")]
    RootDestination { field: &'static str, path: PathBuf },
    #[error(
        "environment variable name {name:?} is invalid: it must be non-empty without `=` or NUL"
    )]
    BadEnvironmentName { name: String },
    #[error("{what} contains a NUL byte: {value:?}")]
    Nul { what: &'static str, value: String },
    #[error("hostname {hostname:?} is invalid: 1-64 characters of a-z, 0-9, `-` and `.`")]
    BadHostname { hostname: String },
    #[error(
        "seccomp and no_new_privs cannot be separated: seccomp filters require no_new_privs \
         (set security.no_new_privs or disable seccomp)"
    )]
    SeccompNeedsNoNewPrivs,
    #[error(
        "the mount namespace is required: the sandbox root, landlock paths and binds are built in \
         it"
    )]
    MountNamespaceRequired,
    #[error("the user namespace is required: rootless sandboxes and capability confinement use it")]
    UserNamespaceRequired,
    #[error("landlock minimum_abi {0} is not a landlock ABI (1 or more)")]
    BadMinimumAbi(u8),
    #[error("cpu_weight {0} is outside 1-10000")]
    BadCpuWeight(u64),
}

impl SandboxSpec {
    /// Checks everything that can be checked without touching the host.
    pub fn validate(&self) -> Result<(), SpecError> {
        if self.command.is_empty() || self.command[0].is_empty() {
            return Err(SpecError::EmptyCommand);
        }
        for arg in &self.command {
            no_nul("a command argument", arg)?;
        }
        for (name, value) in &self.environment {
            if name.is_empty() || name.contains('=') || name.contains('\0') {
                return Err(SpecError::BadEnvironmentName { name: name.clone() });
            }
            no_nul("an environment value", value)?;
        }
        absolute_normal("cwd", &self.cwd)?;
        if !self.namespaces.mount {
            return Err(SpecError::MountNamespaceRequired);
        }
        if !self.namespaces.user {
            return Err(SpecError::UserNamespaceRequired);
        }
        for mount in &self.filesystem {
            let destination = mount.destination();
            absolute_normal("destination", destination)?;
            if destination == Path::new("/") {
                return Err(SpecError::RootDestination {
                    field: "destination",
                    path: destination.to_owned(),
                });
            }
            match mount {
                Mount::RoBind { source, .. } | Mount::RwBind { source, .. } => {
                    absolute_normal("source", source)?;
                }
                Mount::Symlink { target, .. } => {
                    no_nul("a symlink target", &target.to_string_lossy())?;
                }
                Mount::File { contents, .. } => no_nul("file contents", contents)?,
                _ => {}
            }
        }
        for path in &self.landlock.read_write {
            absolute_normal("landlock.read_write", path)?;
        }
        if self.landlock.minimum_abi == 0 {
            return Err(SpecError::BadMinimumAbi(0));
        }
        let hostname_ok = !self.hostname.is_empty()
            && self.hostname.len() <= 64
            && self
                .hostname
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
        if !hostname_ok {
            return Err(SpecError::BadHostname {
                hostname: self.hostname.clone(),
            });
        }
        if self.seccomp == SeccompProfile::Default && !self.security.no_new_privs {
            return Err(SpecError::SeccompNeedsNoNewPrivs);
        }
        if let Some(weight) = self.resources.cpu_weight
            && !(1..=10_000).contains(&weight)
        {
            return Err(SpecError::BadCpuWeight(weight));
        }
        Ok(())
    }

    /// The landlock ABI floor in force: the spec's, raised to 4 when the sandbox shares the host
    /// network (landlock is then the only guard on TCP).
    pub fn effective_landlock_floor(&self) -> u8 {
        if self.namespaces.net {
            self.landlock.minimum_abi
        } else {
            self.landlock.minimum_abi.max(4)
        }
    }
}

/// A CBOR spec that could not be decoded (or a spec that could not be encoded).
#[derive(Debug, thiserror::Error)]
#[error("sandbox spec (CBOR): {0}")]
pub struct CborError(String);

impl SandboxSpec {
    /// The spec as CBOR, the launcher's wire form (the same serde model as the JSON form).
    pub fn to_cbor(&self) -> Result<Vec<u8>, CborError> {
        minicbor_serde::to_vec(self).map_err(|error| CborError(error.to_string()))
    }

    /// Decodes a CBOR spec; unknown fields are refused, as in JSON.
    pub fn from_cbor(bytes: &[u8]) -> Result<Self, CborError> {
        minicbor_serde::from_slice(bytes).map_err(|error| CborError(error.to_string()))
    }
}

/// The default search path inside a sandbox.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

impl SandboxSpec {
    /// The defaults of `bureau-sandbox run`: every namespace, landlock, seccomp, no capabilities,
    /// an environment of only `PATH`, `/usr` read-only with the host's merged-/usr layout
    /// (`/bin`, `/lib`, … as symlinks, or read-only binds where they are real directories),
    /// `/proc`, a minimal `/dev` and a `/tmp` tmpfs. No network.
    pub fn with_defaults(command: Vec<String>) -> Self {
        let mut filesystem = vec![Mount::RoBind {
            source: PathBuf::from("/usr"),
            destination: PathBuf::from("/usr"),
        }];
        for top in ["bin", "sbin", "lib", "lib32", "lib64", "libx32"] {
            let host_path = Path::new("/").join(top);
            match std::fs::read_link(&host_path) {
                Ok(target) => filesystem.push(Mount::Symlink {
                    target,
                    destination: host_path,
                }),
                Err(_) if host_path.is_dir() => filesystem.push(Mount::RoBind {
                    source: host_path.clone(),
                    destination: host_path,
                }),
                Err(_) => {}
            }
        }
        filesystem.extend([
            Mount::Proc {
                destination: PathBuf::from("/proc"),
            },
            Mount::Dev {
                destination: PathBuf::from("/dev"),
            },
            Mount::Tmpfs {
                destination: PathBuf::from("/tmp"),
                size: None,
            },
        ]);
        Self {
            command,
            environment: BTreeMap::from([("PATH".to_owned(), DEFAULT_PATH.to_owned())]),
            cwd: default_cwd(),
            namespaces: Namespaces::default(),
            identity: Identity::default(),
            filesystem,
            allowed_bind_roots: Vec::new(),
            hostname: default_hostname(),
            landlock: LandlockPolicy::default(),
            seccomp: SeccompProfile::default(),
            resources: Resources::default(),
            security: Security::default(),
        }
    }
}

fn no_nul(what: &'static str, value: &str) -> Result<(), SpecError> {
    if value.contains('\0') {
        Err(SpecError::Nul {
            what,
            value: value.replace('\0', "\\0"),
        })
    } else {
        Ok(())
    }
}

fn absolute_normal(field: &'static str, path: &Path) -> Result<(), SpecError> {
    let normal = path.is_absolute()
        && path
            .components()
            .all(|component| matches!(component, Component::RootDir | Component::Normal(_)))
        && !path.to_string_lossy().contains('\0');
    if normal {
        Ok(())
    } else {
        Err(SpecError::BadPath {
            field,
            path: path.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minimal() -> SandboxSpec {
        serde_json::from_str(r#"{"command": ["/usr/bin/true"]}"#).expect("minimal spec")
    }

    #[test]
    fn defaults_are_the_strict_ones() {
        let spec = minimal();
        assert_eq!(spec.namespaces, Namespaces::default());
        assert!(spec.namespaces.net && spec.namespaces.pid && spec.namespaces.cgroup);
        assert!(spec.landlock.enabled);
        assert_eq!(spec.seccomp, SeccompProfile::Default);
        assert!(spec.security.no_new_privs && spec.security.drop_capabilities);
        assert!(spec.environment.is_empty());
        spec.validate().expect("valid");
    }

    #[test]
    fn unknown_fields_are_rejected_so_misspelt_isolation_is_not_ignored() {
        let error = serde_json::from_str::<SandboxSpec>(
            r#"{"command": ["/bin/true"], "landlok": {"enabled": false}}"#,
        )
        .expect_err("must reject");
        assert!(error.to_string().contains("landlok"), "{error}");
    }

    #[test]
    fn mounts_round_trip_through_json() {
        let json = r#"{"command": ["x"], "filesystem": [
            {"type": "ro-bind", "source": "/usr", "destination": "/usr"},
            {"type": "tmpfs", "destination": "/tmp", "size": 1048576},
            {"type": "symlink", "target": "usr/bin", "destination": "/bin"},
            {"type": "file", "destination": "/etc/hostname", "contents": "sandbox\n"}]}"#;
        let spec: SandboxSpec = serde_json::from_str(json).expect("parse");
        let again: SandboxSpec =
            serde_json::from_str(&serde_json::to_string(&spec).expect("encode")).expect("decode");
        assert_eq!(spec, again);
        assert_eq!(spec.filesystem.len(), 4);
    }

    #[test]
    fn relative_or_traversing_paths_are_refused_naming_the_field() {
        let mut spec = minimal();
        spec.filesystem.push(Mount::RoBind {
            source: PathBuf::from("/usr/../etc"),
            destination: PathBuf::from("/x"),
        });
        let error = spec.validate().expect_err("traversal");
        assert!(error.to_string().contains("source"), "{error}");

        let mut spec = minimal();
        spec.filesystem.push(Mount::Tmpfs {
            destination: PathBuf::from("tmp"),
            size: None,
        });
        assert!(matches!(spec.validate(), Err(SpecError::BadPath { .. })));
    }

    #[test]
    fn cbor_round_trips_the_whole_spec() {
        let mut spec = SandboxSpec::with_defaults(vec!["/usr/bin/env".to_owned()]);
        spec.resources.pids_max = Some(64);
        spec.landlock.tcp_connect = vec![443];
        spec.filesystem.push(Mount::File {
            destination: PathBuf::from("/run/bureau/payload.json"),
            contents: "{}".to_owned(),
        });
        let bytes = spec.to_cbor().expect("encode");
        assert_eq!(SandboxSpec::from_cbor(&bytes).expect("decode"), spec);
        assert!(SandboxSpec::from_cbor(&bytes[..bytes.len() / 2]).is_err());
    }

    #[test]
    fn seccomp_without_no_new_privs_is_refused() {
        let mut spec = minimal();
        spec.security.no_new_privs = false;
        assert_eq!(spec.validate(), Err(SpecError::SeccompNeedsNoNewPrivs));
    }

    #[test]
    fn host_network_raises_the_landlock_floor_to_tcp_rules() {
        let mut spec = minimal();
        assert_eq!(spec.effective_landlock_floor(), 1);
        spec.namespaces.net = false;
        assert_eq!(spec.effective_landlock_floor(), 4);
    }
}
