//! cgroup limits for one sandbox: cgroup v2 first (a leaf under a delegated directory with
//! `memory.max`, `memory.swap.max`, `pids.max`, `cpu.weight`), v1 as the fallback (a leaf in each
//! of the memory, pids and cpu hierarchies). The sandbox's init joins the leaf before anything in
//! it runs; the leaf is removed when the sandbox ends.
//!
//! Fail closed: a limit that was asked for and cannot be set stops the sandbox, naming the limit
//! and what the host lacks.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::spec::Resources;

/// Which cgroup hierarchy the limits go to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hierarchy {
    /// A v2 directory under which leaves are created (must have the controllers available).
    V2 { parent: PathBuf },
    /// v1: the directory under which to create the leaf, per controller.
    V1 {
        memory: Option<PathBuf>,
        pids: Option<PathBuf>,
        cpu: Option<PathBuf>,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error(
        "cgroup limit {limit} was requested but this host offers no {controller} controller \
         (cgroup v2 at {v2}, v1 hierarchies: {v1})\nHint: run as root or under a systemd unit \
         with Delegate=yes, or set BUREAU_CGROUP_PARENT to a delegated cgroup v2 directory; \
         `bureau-sandbox probe` shows what is available"
    )]
    Unavailable {
        limit: &'static str,
        controller: &'static str,
        v2: String,
        v1: String,
    },
    #[error("cgroup {path}: {source}\nHint: {hint}")]
    Io {
        path: PathBuf,
        source: io::Error,
        hint: &'static str,
    },
    /// A requested limit could not be set up: names the limit(s), then why.
    #[error("cgroup limit {limits} could not be applied: {source}")]
    Limit {
        limits: String,
        source: Box<CgroupError>,
    },
}

/// Wraps a failure with the names of the limits it stops (fail closed, naming the limit).
fn for_limits(limits: &[&str]) -> impl FnOnce(CgroupError) -> CgroupError + use<> {
    let limits = limits.join(", ");
    move |error| CgroupError::Limit {
        limits,
        source: Box::new(error),
    }
}

/// What this host offers, from `/proc/self/mountinfo` and `/proc/self/cgroup`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostCgroups {
    /// The v2 directory for leaves and the controllers it offers.
    pub v2: Option<(PathBuf, Vec<String>)>,
    /// v1 controller → directory of this process's cgroup in that hierarchy.
    pub v1: Vec<(String, PathBuf)>,
}

impl HostCgroups {
    /// Reads the running host. `BUREAU_CGROUP_PARENT` overrides the v2 parent directory.
    pub fn detect() -> Self {
        let mountinfo = fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let self_cgroup = fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
        let mut host = Self::parse(&mountinfo, &self_cgroup);
        if let Some(parent) = std::env::var_os("BUREAU_CGROUP_PARENT") {
            let parent = PathBuf::from(parent);
            let controllers = read_controllers(&parent);
            host.v2 = Some((parent, controllers));
        } else if let Some((parent, _)) = &host.v2 {
            let controllers = read_controllers(parent);
            host.v2 = Some((parent.clone(), controllers));
        }
        host
    }

    /// Pure parsing, for tests: finds the cgroup2 mount and the v1 controller mounts, joined
    /// with this process's own cgroup path in each.
    pub fn parse(mountinfo: &str, self_cgroup: &str) -> Self {
        let mut host = Self::default();
        let own_path = |hierarchy_matches: &dyn Fn(&str) -> bool| -> String {
            self_cgroup
                .lines()
                .filter_map(|line| {
                    let mut parts = line.splitn(3, ':');
                    let _id = parts.next()?;
                    let controllers = parts.next()?;
                    let path = parts.next()?;
                    hierarchy_matches(controllers).then(|| path.to_owned())
                })
                .next()
                .unwrap_or_else(|| "/".to_owned())
        };
        for line in mountinfo.lines() {
            let Some((before, after)) = line.split_once(" - ") else {
                continue;
            };
            let mount_point = before.split(' ').nth(4).unwrap_or_default();
            let mut after_fields = after.split(' ');
            let fstype = after_fields.next().unwrap_or_default();
            let super_options = after_fields.nth(1).unwrap_or_default();
            match fstype {
                "cgroup2" => {
                    let own = own_path(&|controllers| controllers.is_empty());
                    host.v2 = Some((join_cgroup(mount_point, &own), Vec::new()));
                }
                "cgroup" => {
                    for controller in super_options.split(',') {
                        if matches!(controller, "memory" | "pids" | "cpu") {
                            let own = own_path(&|controllers| {
                                controllers.split(',').any(|c| c == controller)
                            });
                            host.v1
                                .push((controller.to_owned(), join_cgroup(mount_point, &own)));
                        }
                    }
                }
                _ => {}
            }
        }
        host
    }

    /// Chooses v2 when it offers every controller the limits need, else v1 if it does.
    pub fn choose(&self, resources: &Resources) -> Result<Hierarchy, CgroupError> {
        let needed = needed_controllers(resources);
        if let Some((parent, controllers)) = &self.v2
            && needed
                .iter()
                .all(|(_, controller)| controllers.iter().any(|c| c == controller))
        {
            return Ok(Hierarchy::V2 {
                parent: parent.clone(),
            });
        }
        let v1_dir = |name: &str| {
            self.v1
                .iter()
                .find(|(controller, _)| controller == name)
                .map(|(_, dir)| dir.clone())
        };
        for (limit, controller) in &needed {
            if v1_dir(controller).is_none() {
                return Err(CgroupError::Unavailable {
                    limit,
                    controller,
                    v2: self
                        .v2
                        .as_ref()
                        .map(|(dir, controllers)| {
                            format!("{} [{}]", dir.display(), controllers.join(" "))
                        })
                        .unwrap_or_else(|| "none".to_owned()),
                    v1: if self.v1.is_empty() {
                        "none".to_owned()
                    } else {
                        self.v1
                            .iter()
                            .map(|(controller, _)| controller.as_str())
                            .collect::<Vec<_>>()
                            .join(" ")
                    },
                });
            }
        }
        Ok(Hierarchy::V1 {
            memory: v1_dir("memory"),
            pids: v1_dir("pids"),
            cpu: v1_dir("cpu"),
        })
    }
}

fn join_cgroup(mount_point: &str, own: &str) -> PathBuf {
    Path::new(mount_point).join(own.trim_start_matches('/'))
}

fn read_controllers(dir: &Path) -> Vec<String> {
    fs::read_to_string(dir.join("cgroup.controllers"))
        .unwrap_or_default()
        .split_whitespace()
        .map(str::to_owned)
        .collect()
}

/// (limit name, controller) for each requested limit.
fn needed_controllers(resources: &Resources) -> Vec<(&'static str, &'static str)> {
    let mut needed = Vec::new();
    if resources.memory_max.is_some() {
        needed.push(("memory_max", "memory"));
    }
    if resources.pids_max.is_some() {
        needed.push(("pids_max", "pids"));
    }
    if resources.cpu_weight.is_some() {
        needed.push(("cpu_weight", "cpu"));
    }
    needed
}

/// One sandbox's cgroup leaves (one for v2; one per controller for v1).
#[derive(Debug)]
pub struct Cgroup {
    leaves: Vec<PathBuf>,
}

fn io_error(path: &Path, hint: &'static str) -> impl FnOnce(io::Error) -> CgroupError + use<> {
    let path = path.to_owned();
    move |source| CgroupError::Io { path, source, hint }
}

fn write(path: &Path, value: &str) -> Result<(), CgroupError> {
    fs::write(path, value).map_err(io_error(
        path,
        "the cgroup is not writable by this user, or the value was refused",
    ))
}

impl Cgroup {
    /// Creates the leaf `name` and writes the limits. Nothing is left behind on failure.
    pub fn create(
        hierarchy: &Hierarchy,
        name: &str,
        resources: &Resources,
    ) -> Result<Self, CgroupError> {
        let mut cgroup = Self { leaves: Vec::new() };
        let result = cgroup.create_inner(hierarchy, name, resources);
        match result {
            Ok(()) => Ok(cgroup),
            Err(error) => {
                cgroup.remove();
                Err(error)
            }
        }
    }

    fn create_inner(
        &mut self,
        hierarchy: &Hierarchy,
        name: &str,
        resources: &Resources,
    ) -> Result<(), CgroupError> {
        let needed = needed_controllers(resources);
        let all_limits: Vec<&str> = needed.iter().map(|(limit, _)| *limit).collect();
        let named = |limit: &str| for_limits(&[limit]);
        match hierarchy {
            Hierarchy::V2 { parent } => {
                let enable: Vec<String> = needed
                    .iter()
                    .map(|(_, controller)| format!("+{controller}"))
                    .collect();
                let subtree = parent.join("cgroup.subtree_control");
                fs::write(&subtree, enable.join(" "))
                    .map_err(io_error(
                        &subtree,
                        "a cgroup v2 parent with processes of its own cannot enable controllers \
                         for children: set BUREAU_CGROUP_PARENT to an empty delegated cgroup",
                    ))
                    .map_err(for_limits(&all_limits))?;
                let leaf = self
                    .make_leaf(parent, name)
                    .map_err(for_limits(&all_limits))?;
                if let Some(memory) = resources.memory_max {
                    write(&leaf.join("memory.max"), &memory.to_string())
                        .map_err(named("memory_max"))?;
                    let swap = leaf.join("memory.swap.max");
                    if swap.exists() {
                        write(&swap, "0").map_err(named("memory_max"))?;
                    }
                }
                if let Some(pids) = resources.pids_max {
                    write(&leaf.join("pids.max"), &pids.to_string()).map_err(named("pids_max"))?;
                }
                if let Some(weight) = resources.cpu_weight {
                    write(&leaf.join("cpu.weight"), &weight.to_string())
                        .map_err(named("cpu_weight"))?;
                }
            }
            Hierarchy::V1 { memory, pids, cpu } => {
                if let (Some(limit), Some(dir)) = (resources.memory_max, memory) {
                    let set = |cgroup: &mut Self| {
                        let leaf = cgroup.make_leaf(dir, name)?;
                        write(&leaf.join("memory.limit_in_bytes"), &limit.to_string())?;
                        let with_swap = leaf.join("memory.memsw.limit_in_bytes");
                        if with_swap.exists() {
                            write(&with_swap, &limit.to_string())?;
                        }
                        Ok(())
                    };
                    set(self).map_err(named("memory_max"))?;
                }
                if let (Some(limit), Some(dir)) = (resources.pids_max, pids) {
                    let set = |cgroup: &mut Self| {
                        let leaf = cgroup.make_leaf(dir, name)?;
                        write(&leaf.join("pids.max"), &limit.to_string())
                    };
                    set(self).map_err(named("pids_max"))?;
                }
                if let (Some(weight), Some(dir)) = (resources.cpu_weight, cpu) {
                    let set = |cgroup: &mut Self| {
                        let leaf = cgroup.make_leaf(dir, name)?;
                        // v2 weight 100 is v1's default of 1024 shares.
                        let shares = (weight * 1024 / 100).max(2);
                        write(&leaf.join("cpu.shares"), &shares.to_string())
                    };
                    set(self).map_err(named("cpu_weight"))?;
                }
            }
        }
        Ok(())
    }

    fn make_leaf(&mut self, parent: &Path, name: &str) -> Result<PathBuf, CgroupError> {
        let leaf = parent.join(name);
        fs::create_dir(&leaf).map_err(io_error(
            &leaf,
            "cannot create a cgroup here: run as root, or under a delegated cgroup",
        ))?;
        self.leaves.push(leaf.clone());
        Ok(leaf)
    }

    /// Moves `pid` into every leaf.
    pub fn add_process(&self, pid: i32) -> Result<(), CgroupError> {
        for leaf in &self.leaves {
            write(&leaf.join("cgroup.procs"), &pid.to_string())?;
        }
        Ok(())
    }

    /// The leaf directories (for messages and tests).
    pub fn leaves(&self) -> &[PathBuf] {
        &self.leaves
    }

    /// Removes the leaves. Their processes are gone (the pid namespace died with its init), but
    /// the kernel may still be releasing them, so a busy leaf is retried briefly.
    pub fn remove(&mut self) {
        for leaf in self.leaves.drain(..).rev() {
            for attempt in 0..100 {
                match fs::remove_dir(&leaf) {
                    Err(error) if error.raw_os_error() == Some(libc::EBUSY) && attempt < 99 => {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                    _ => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
25 1 0:23 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
26 25 0:24 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw,nsdelegate
27 25 0:25 / /sys/fs/cgroup/memory rw,nosuid - cgroup cgroup rw,memory
28 25 0:26 / /sys/fs/cgroup/pids rw,nosuid - cgroup cgroup rw,pids
29 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid - cgroup cgroup rw,cpu,cpuacct
";
    const SELF_CGROUP: &str = "\
5:pids:/user.slice
4:memory:/user.slice
3:cpu,cpuacct:/
0::/user.slice/session-1.scope
";

    #[test]
    fn parses_hybrid_hosts_and_falls_back_to_v1_when_v2_lacks_controllers() {
        let mut host = HostCgroups::parse(MOUNTINFO, SELF_CGROUP);
        assert_eq!(
            host.v2,
            Some((
                PathBuf::from("/sys/fs/cgroup/unified/user.slice/session-1.scope"),
                Vec::new()
            ))
        );
        assert!(host.v1.contains(&(
            "memory".to_owned(),
            PathBuf::from("/sys/fs/cgroup/memory/user.slice")
        )));
        assert!(host.v1.contains(&(
            "cpu".to_owned(),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct")
        )));

        let limits = Resources {
            memory_max: Some(1 << 20),
            pids_max: Some(10),
            cpu_weight: None,
        };
        assert!(matches!(host.choose(&limits), Ok(Hierarchy::V1 { .. })));

        if let Some((_, controllers)) = host.v2.as_mut() {
            *controllers = vec!["memory".into(), "pids".into()];
        }
        assert!(matches!(host.choose(&limits), Ok(Hierarchy::V2 { .. })));
    }

    #[test]
    fn missing_controller_is_refused_naming_the_limit() {
        let host = HostCgroups::default();
        let error = host
            .choose(&Resources {
                pids_max: Some(5),
                ..Resources::default()
            })
            .expect_err("no cgroups at all");
        let message = error.to_string();
        assert!(message.contains("pids_max"), "{message}");
        assert!(message.contains("pids controller"), "{message}");
    }

    #[test]
    fn a_limit_that_cannot_be_set_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hierarchy = Hierarchy::V1 {
            memory: None,
            pids: Some(dir.path().join("missing")),
            cpu: None,
        };
        let limits = Resources {
            pids_max: Some(32),
            ..Resources::default()
        };
        let error = Cgroup::create(&hierarchy, "sandbox-1", &limits).expect_err("no parent");
        let message = error.to_string();
        assert!(message.contains("pids_max"), "{message}");
        assert!(message.contains("missing"), "{message}");
    }

    #[test]
    fn v2_leaf_gets_its_limits_in_a_fake_cgroupfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("cgroup.subtree_control"), "").expect("seed");
        let limits = Resources {
            memory_max: Some(64 << 20),
            pids_max: Some(32),
            cpu_weight: Some(50),
        };
        let hierarchy = Hierarchy::V2 {
            parent: dir.path().to_owned(),
        };
        let mut cgroup = Cgroup::create(&hierarchy, "sandbox-1", &limits).expect("create");
        let leaf = dir.path().join("sandbox-1");
        let read = |file: &str| fs::read_to_string(leaf.join(file)).expect(file);
        assert_eq!(read("memory.max"), (64u64 << 20).to_string());
        assert_eq!(read("pids.max"), "32");
        assert_eq!(read("cpu.weight"), "50");
        assert_eq!(
            fs::read_to_string(dir.path().join("cgroup.subtree_control")).expect("subtree"),
            "+memory +pids +cpu"
        );
        cgroup.add_process(4242).expect("add");
        assert_eq!(read("cgroup.procs"), "4242");
        assert_eq!(cgroup.leaves(), std::slice::from_ref(&leaf));
        // A real cgroupfs removes the files with the directory; a fake one refuses a non-empty
        // directory, which `remove` tolerates.
        cgroup.remove();
    }
}
