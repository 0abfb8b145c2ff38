//! Landlock: the filesystem and TCP policy, applied after `pivot_root` (paths are the sandbox's).
//!
//! Policy: everything under `/` may be read and executed; writable mounts (`rw-bind`, `tmpfs`),
//! the device nodes of `/dev` and the spec's extra `read_write` paths may be written; TCP bind
//! and connect are denied except for listed ports (ABI ≥ 4); at ABI ≥ 6 abstract unix sockets
//! and signals are scoped to the sandbox. The ruleset handles every right the kernel's ABI
//! knows ("best ABI the kernel offers"), with hard compatibility: if the kernel's ABI is below
//! the spec's floor, or the kernel does not enforce the ruleset fully, the sandbox stops.

use std::path::PathBuf;

use landlock::{
    ABI, Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, Ruleset,
    RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, path_beneath_rules,
};

use super::spec::{Mount, SandboxSpec};

/// The paths and ports of one sandbox's landlock policy (paths inside the sandbox).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LandlockRules {
    pub read_only: Vec<PathBuf>,
    pub read_write: Vec<PathBuf>,
    /// Device nodes: read, write and device ioctls, nothing else.
    pub devices: Vec<PathBuf>,
    pub tcp_bind: Vec<u16>,
    pub tcp_connect: Vec<u16>,
    /// The lowest ABI accepted.
    pub floor: u8,
}

impl LandlockRules {
    /// Derives the rules from the spec's mounts (see the module doc).
    pub fn for_spec(spec: &SandboxSpec) -> Self {
        let mut read_write: Vec<PathBuf> = spec
            .filesystem
            .iter()
            .filter(|mount| mount.is_writable())
            .map(|mount| mount.destination().to_owned())
            .collect();
        let mut devices = Vec::new();
        for mount in &spec.filesystem {
            if let Mount::Dev { destination } = mount {
                read_write.push(destination.join("shm"));
                devices.extend(
                    super::plan::DEV_NODES
                        .iter()
                        .map(|node| destination.join(node)),
                );
            }
        }
        read_write.extend(spec.landlock.read_write.iter().cloned());
        Self {
            read_only: vec![PathBuf::from("/")],
            read_write,
            devices,
            tcp_bind: spec.landlock.tcp_bind.clone(),
            tcp_connect: spec.landlock.tcp_connect.clone(),
            floor: spec.effective_landlock_floor(),
        }
    }
}

/// Why landlock could not be applied.
#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error(
        "landlock is not available (kernel ABI {kernel_abi}) but this sandbox requires ABI \
         {floor}\nHint: use a kernel ≥ 5.13 with landlock in the `lsm=` boot list (ABI 4 needs \
         6.7, ABI 6 needs 6.12); `bureau-sandbox probe` shows what this host offers"
    )]
    BelowFloor { kernel_abi: i32, floor: u8 },
    #[error("landlock ruleset: {0}")]
    Ruleset(#[from] landlock::RulesetError),
    #[error("landlock was not fully enforced ({0:?}): refusing to run a weaker sandbox")]
    NotEnforced(RulesetStatus),
}

/// The kernel's landlock ABI version (0 when landlock is unavailable).
pub fn kernel_abi() -> i32 {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only returns the
    // ABI version (or an error); it reads no memory and creates no file descriptor.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            1u32, // LANDLOCK_CREATE_RULESET_VERSION
        )
    };
    i32::try_from(version).unwrap_or(0).max(0)
}

/// Restricts the calling process (and its future children). Call after `pivot_root`.
pub fn apply(rules: &LandlockRules) -> Result<(), LandlockError> {
    let kernel = kernel_abi();
    if kernel < i32::from(rules.floor) {
        return Err(LandlockError::BelowFloor {
            kernel_abi: kernel,
            floor: rules.floor,
        });
    }
    // The best the kernel offers: handle every right its ABI knows.
    let abi = ABI::from(kernel);
    let all_fs = AccessFs::from_all(abi);
    let read = AccessFs::from_read(abi) | (all_fs & BitFlags::from(AccessFs::ResolveUnix));
    let device = (AccessFs::from_read(abi) | AccessFs::WriteFile | AccessFs::IoctlDev) & all_fs;

    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(all_fs)?;
    let all_net = AccessNet::from_all(abi);
    if !all_net.is_empty() {
        ruleset = ruleset.handle_access(all_net & (AccessNet::BindTcp | AccessNet::ConnectTcp))?;
    }
    let scopes = Scope::from_all(abi);
    if !scopes.is_empty() {
        ruleset = ruleset.scope(scopes)?;
    }
    let mut created = ruleset
        .create()?
        .set_compatibility(CompatLevel::BestEffort)
        .add_rules(path_beneath_rules(&rules.read_only, read))?
        .add_rules(path_beneath_rules(&rules.read_write, all_fs))?
        .add_rules(path_beneath_rules(&rules.devices, device))?;
    if !all_net.is_empty() {
        for port in &rules.tcp_bind {
            created = created.add_rule(NetPort::new(*port, AccessNet::BindTcp))?;
        }
        for port in &rules.tcp_connect {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
    }
    let status = created.restrict_self()?;
    match status.ruleset {
        RulesetStatus::FullyEnforced => Ok(()),
        other => Err(LandlockError::NotEnforced(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writable_mounts_and_dev_nodes_become_write_rules() {
        let spec: SandboxSpec = serde_json::from_str(
            r#"{"command": ["x"], "filesystem": [
                {"type": "ro-bind", "source": "/usr", "destination": "/usr"},
                {"type": "rw-bind", "source": "/srv/w", "destination": "/workspace"},
                {"type": "tmpfs", "destination": "/tmp"},
                {"type": "dev", "destination": "/dev"}],
              "landlock": {"read_write": ["/run/extra"], "tcp_connect": [443]}}"#,
        )
        .expect("spec");
        let rules = LandlockRules::for_spec(&spec);
        assert_eq!(rules.read_only, [PathBuf::from("/")]);
        let writable: Vec<_> = rules
            .read_write
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        assert_eq!(writable, ["/workspace", "/tmp", "/dev/shm", "/run/extra"]);
        assert!(rules.devices.contains(&PathBuf::from("/dev/null")));
        assert!(!rules.devices.iter().any(|p| p.ends_with("sda")));
        assert_eq!(rules.tcp_connect, [443]);
        assert_eq!(rules.floor, 1);
    }
}
