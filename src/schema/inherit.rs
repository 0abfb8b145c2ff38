//! Template inheritance: [`resolve`] walks a template's `inherits` chain and [`merge`]s it from
//! the root ancestor down.
//!
//! The merge rules, parent → child:
//! - **lists append, parent first** (`filesystem`, `required_credentials`, `secret_files`,
//!   `required_services`); the name lists drop repeats, and a child mount at a destination the
//!   parent already mounts replaces that mount in place, so one path is never mounted twice;
//! - **maps merge, the child winning** per key (`environment`, `proxy_services` — a proxy
//!   service is replaced whole, not merged field by field);
//! - **scalars and options are replaced by the child when it sets them** (`description`,
//!   `working_directory`, `network`, `health_check`, and each field of `namespaces`,
//!   `resources` and `security`). `command` is an argv, one value: a non-empty child command
//!   replaces the parent's.
//!
//! Invariant: both functions are pure — the lookup is a parameter, so the daemon can resolve
//! against its synced state and tests against a map. Resolution refuses cycles, unknown
//! templates and chains deeper than [`MAX_INHERITANCE_DEPTH`], naming the templates involved.

use std::collections::BTreeMap;

use super::template::{
    Template, TemplateError, TemplateMount, TemplateNamespaces, TemplateResources, TemplateSecurity,
};
use super::template_ref::TemplateRef;

/// The most templates a chain may pass through (the template itself included).
///
/// Example: `a → b → … ` with 17 links → `Err(template "a": inherits through more than 16
/// templates; flatten the chain)`.
pub const MAX_INHERITANCE_DEPTH: usize = 16;

/// Resolves `name`: looks it up, follows `inherits` to the root ancestor, and merges the chain
/// parent → child (rules in the module documentation). The result has `inherits: None`.
///
/// Errors: `name` unknown → [`TemplateError::UnknownTemplate`]; a parent unknown →
/// [`TemplateError::UnknownParent`] naming both; a loop → [`TemplateError::Cycle`] listing it
/// (`a -> b -> a`); more than [`MAX_INHERITANCE_DEPTH`] templates → [`TemplateError::TooDeep`].
///
/// Example: `agent-base` inherits `base`; resolving `agent-base` gives base's mounts followed by
/// agent-base's, and both environments merged.
///
/// ```
/// use bureau::schema::{resolve, Template, TemplateRef, AGENT_BASE_TEMPLATE, BASE_TEMPLATE};
///
/// let lookup = |reference: &TemplateRef| match reference.name().as_str() {
///     BASE_TEMPLATE => Some(Template::base()),
///     AGENT_BASE_TEMPLATE => Some(Template::agent_base()),
///     _ => None,
/// };
/// let resolved = resolve(&TemplateRef::parse("agent-base")?, lookup)?;
/// assert!(resolved.inherits.is_none());
/// assert_eq!(resolved.environment["HOME"], "/workspace");
/// assert!(resolved.environment.contains_key("PATH"));
/// assert_eq!(resolved.filesystem.first().map(|mount| mount.destination()), Some("/usr"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn resolve(
    name: &TemplateRef,
    lookup: impl Fn(&TemplateRef) -> Option<Template>,
) -> Result<Template, TemplateError> {
    let Some(first) = lookup(name) else {
        return Err(TemplateError::UnknownTemplate {
            template: name.to_string(),
            name: name.name().to_string(),
        });
    };
    // The chain from `name` up to its root ancestor.
    let mut chain: Vec<(TemplateRef, Template)> = vec![(name.clone(), first)];
    while let Some((child_ref, child)) = chain.last() {
        let Some(parent_ref) = child.inherits.clone() else {
            break;
        };
        if let Some(start) = chain.iter().position(|(seen, _)| *seen == parent_ref) {
            let mut cycle: Vec<String> = chain[start..]
                .iter()
                .map(|(reference, _)| reference.to_string())
                .collect();
            cycle.push(parent_ref.to_string());
            return Err(TemplateError::Cycle {
                template: name.to_string(),
                cycle,
            });
        }
        if chain.len() >= MAX_INHERITANCE_DEPTH {
            return Err(TemplateError::TooDeep {
                template: name.to_string(),
                limit: MAX_INHERITANCE_DEPTH,
            });
        }
        let Some(parent) = lookup(&parent_ref) else {
            return Err(TemplateError::UnknownParent {
                template: child_ref.to_string(),
                parent: parent_ref.to_string(),
            });
        };
        chain.push((parent_ref, parent));
    }
    let mut resolved = Template::default();
    while let Some((_, template)) = chain.pop() {
        resolved = merge(resolved, template);
    }
    resolved.inherits = None;
    Ok(resolved)
}

/// Merges `child` onto `parent` (rules in the module documentation). The result inherits what
/// `parent` inherited, so merging a chain pairwise from the root down equals [`resolve`].
///
/// Example: parent `{"environment": {"A": "1", "B": "1"}, "required_credentials": ["X"]}`,
/// child `{"environment": {"B": "2"}, "required_credentials": ["Y"]}` → `{"environment": {"A":
/// "1", "B": "2"}, "required_credentials": ["X", "Y"]}`.
///
/// ```
/// use bureau::schema::{merge, Template};
///
/// let parent: Template = serde_json::from_str(
///     r#"{"environment": {"A": "1", "B": "1"}, "required_credentials": ["X"], "description": "parent"}"#,
/// )?;
/// let child: Template = serde_json::from_str(
///     r#"{"inherits": "parent", "environment": {"B": "2"}, "required_credentials": ["Y"]}"#,
/// )?;
/// let merged = merge(parent, child);
/// assert_eq!(merged.environment["A"], "1");
/// assert_eq!(merged.environment["B"], "2");
/// assert_eq!(merged.required_credentials, ["X", "Y"]);
/// assert_eq!(merged.description.as_deref(), Some("parent"));
/// assert!(merged.inherits.is_none());
/// # Ok::<(), serde_json::Error>(())
/// ```
pub fn merge(parent: Template, child: Template) -> Template {
    Template {
        description: child.description.or(parent.description),
        inherits: parent.inherits,
        command: if child.command.is_empty() {
            parent.command
        } else {
            child.command
        },
        working_directory: child.working_directory.or(parent.working_directory),
        environment: merge_maps(parent.environment, child.environment),
        filesystem: merge_mounts(parent.filesystem, child.filesystem),
        namespaces: TemplateNamespaces {
            pid: child.namespaces.pid.or(parent.namespaces.pid),
            ipc: child.namespaces.ipc.or(parent.namespaces.ipc),
            uts: child.namespaces.uts.or(parent.namespaces.uts),
            cgroup: child.namespaces.cgroup.or(parent.namespaces.cgroup),
        },
        network: child.network.or(parent.network),
        resources: TemplateResources {
            memory_max: child.resources.memory_max.or(parent.resources.memory_max),
            pids_max: child.resources.pids_max.or(parent.resources.pids_max),
            cpu_weight: child.resources.cpu_weight.or(parent.resources.cpu_weight),
        },
        security: TemplateSecurity {
            seccomp: child.security.seccomp.or(parent.security.seccomp),
            landlock: child.security.landlock.or(parent.security.landlock),
            no_new_privs: child.security.no_new_privs.or(parent.security.no_new_privs),
            new_session: child.security.new_session.or(parent.security.new_session),
        },
        required_credentials: append_unique(
            parent.required_credentials,
            child.required_credentials,
        ),
        secret_files: append_unique(parent.secret_files, child.secret_files),
        required_services: append_unique(parent.required_services, child.required_services),
        proxy_services: merge_maps(parent.proxy_services, child.proxy_services),
        health_check: child.health_check.or(parent.health_check),
    }
}

/// The parent's entries, overwritten and extended by the child's.
fn merge_maps<V>(
    mut parent: BTreeMap<String, V>,
    child: BTreeMap<String, V>,
) -> BTreeMap<String, V> {
    parent.extend(child);
    parent
}

/// The parent's names then the child's, each name once (first occurrence kept).
fn append_unique(parent: Vec<String>, child: Vec<String>) -> Vec<String> {
    let mut merged: Vec<String> = Vec::with_capacity(parent.len() + child.len());
    for name in parent.into_iter().chain(child) {
        if !merged.contains(&name) {
            merged.push(name);
        }
    }
    merged
}

/// The parent's mounts then the child's; a child mount at a destination the parent mounts
/// takes that mount's place.
fn merge_mounts(mut parent: Vec<TemplateMount>, child: Vec<TemplateMount>) -> Vec<TemplateMount> {
    for mount in child {
        let same_destination = parent.iter().position(|existing| {
            std::path::Path::new(existing.destination())
                == std::path::Path::new(mount.destination())
        });
        match same_destination {
            Some(index) => {
                if let Some(slot) = parent.get_mut(index) {
                    *slot = mount;
                }
            }
            None => parent.push(mount),
        }
    }
    parent
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use serde_json::json;

    use super::super::template::{HealthCheck, NetworkMode, ProxyService, SeccompMode};
    use super::*;

    /// A lookup over templates given as `(reference, JSON)`.
    fn library(
        templates: &[(&str, serde_json::Value)],
    ) -> impl Fn(&TemplateRef) -> Option<Template> + use<> {
        let map: HashMap<TemplateRef, Template> = templates
            .iter()
            .map(|(name, json)| {
                (
                    TemplateRef::parse(name).unwrap(),
                    serde_json::from_value(json.clone()).unwrap(),
                )
            })
            .collect();
        move |reference| map.get(reference).cloned()
    }

    fn resolve_text(
        name: &str,
        lookup: impl Fn(&TemplateRef) -> Option<Template>,
    ) -> Result<Template, String> {
        resolve(&TemplateRef::parse(name).unwrap(), lookup).map_err(|error| error.to_string())
    }

    fn template(json: serde_json::Value) -> Template {
        serde_json::from_value(json).unwrap()
    }

    fn tmpfs(destination: &str) -> TemplateMount {
        TemplateMount::Tmpfs {
            destination: destination.to_owned(),
            size: None,
        }
    }

    #[test]
    fn a_template_without_parent_resolves_to_itself() {
        let lookup = library(&[(
            "solo",
            json!({"command": ["/bin/true"], "description": "x"}),
        )]);
        let resolved = resolve_text("solo", lookup).unwrap();
        assert_eq!(
            resolved,
            template(json!({"command": ["/bin/true"], "description": "x"}))
        );
    }

    #[test]
    fn lists_append_parent_first() {
        let parent = template(json!({
            "filesystem": [{"type": "ro", "source": "/usr", "destination": "/usr"}],
            "required_credentials": ["A", "B"],
            "secret_files": ["A"],
            "required_services": ["ticket"]
        }));
        let child = template(json!({
            "filesystem": [{"type": "tmpfs", "destination": "/scratch"}],
            "required_credentials": ["C", "B"],
            "secret_files": ["C"],
            "required_services": ["stt"]
        }));
        let merged = merge(parent, child);
        let destinations: Vec<&str> = merged
            .filesystem
            .iter()
            .map(TemplateMount::destination)
            .collect();
        assert_eq!(destinations, ["/usr", "/scratch"]);
        assert_eq!(merged.required_credentials, ["A", "B", "C"]);
        assert_eq!(merged.secret_files, ["A", "C"]);
        assert_eq!(merged.required_services, ["ticket", "stt"]);
    }

    #[test]
    fn a_child_mount_replaces_the_parents_mount_at_the_same_destination_in_place() {
        let parent = Template {
            filesystem: vec![tmpfs("/tmp"), tmpfs("/tmp/x"), tmpfs("/var")],
            ..Template::default()
        };
        let replacement = TemplateMount::Rw {
            source: "${WORKSPACE}/tmp".to_owned(),
            destination: "/tmp/".to_owned(),
            optional: false,
        };
        let child = Template {
            filesystem: vec![replacement.clone(), tmpfs("/new")],
            ..Template::default()
        };
        let merged = merge(parent, child);
        assert_eq!(
            merged.filesystem,
            [replacement, tmpfs("/tmp/x"), tmpfs("/var"), tmpfs("/new")]
        );
    }

    #[test]
    fn maps_merge_with_the_child_winning() {
        let parent = template(json!({
            "environment": {"PATH": "/usr/bin", "LANG": "C.UTF-8"},
            "proxy_services": {
                "openai": {"upstream_url": "https://api.openai.com", "strip_headers": ["Cookie"]},
                "github": {"upstream_url": "https://api.github.com"}
            }
        }));
        let child = template(json!({
            "environment": {"PATH": "/opt/bin:/usr/bin", "HOME": "/workspace"},
            "proxy_services": {
                "openai": {"upstream_url": "https://proxy.internal/openai"}
            }
        }));
        let merged = merge(parent, child);
        assert_eq!(
            serde_json::to_value(&merged.environment).unwrap(),
            json!({"PATH": "/opt/bin:/usr/bin", "LANG": "C.UTF-8", "HOME": "/workspace"})
        );
        // A service is replaced whole: the parent's strip_headers do not survive.
        assert_eq!(
            merged.proxy_services["openai"],
            ProxyService {
                upstream_url: "https://proxy.internal/openai".to_owned(),
                inject_headers: BTreeMap::new(),
                auth_scheme: None,
                strip_headers: Vec::new(),
            }
        );
        assert_eq!(
            merged.proxy_services["github"].upstream_url,
            "https://api.github.com"
        );
    }

    #[test]
    fn scalars_are_replaced_when_the_child_sets_them() {
        let parent = template(json!({
            "description": "parent",
            "command": ["/bin/parent"],
            "working_directory": "/",
            "network": "none",
            "namespaces": {"pid": true, "ipc": true},
            "resources": {"memory_max": 100, "pids_max": 10},
            "security": {"seccomp": "default", "landlock": true},
            "health_check": {"endpoint": "/parent"}
        }));
        let child = template(json!({
            "command": ["/bin/child", "--flag"],
            "network": "host",
            "namespaces": {"ipc": false},
            "resources": {"pids_max": 20, "cpu_weight": 50},
            "security": {"landlock": false, "new_session": true},
            "health_check": {"endpoint": "/child", "interval_seconds": 5}
        }));
        let merged = merge(parent, child);
        assert_eq!(merged.description.as_deref(), Some("parent"));
        assert_eq!(merged.command, ["/bin/child", "--flag"]);
        assert_eq!(merged.working_directory.as_deref(), Some("/"));
        assert_eq!(merged.network, Some(NetworkMode::Host));
        assert_eq!(
            merged.namespaces,
            TemplateNamespaces {
                pid: Some(true),
                ipc: Some(false),
                uts: None,
                cgroup: None
            }
        );
        assert_eq!(
            merged.resources,
            TemplateResources {
                memory_max: Some(100),
                pids_max: Some(20),
                cpu_weight: Some(50)
            }
        );
        assert_eq!(
            merged.security,
            TemplateSecurity {
                seccomp: Some(SeccompMode::Default),
                landlock: Some(false),
                no_new_privs: None,
                new_session: Some(true)
            }
        );
        assert_eq!(
            merged.health_check,
            Some(HealthCheck {
                endpoint: "/child".to_owned(),
                interval_seconds: 5,
                timeout_seconds: 5,
                failure_threshold: 3,
                grace_period_seconds: 0
            })
        );
    }

    #[test]
    fn unset_child_fields_keep_the_parents_values() {
        let parent = template(json!({
            "description": "parent", "command": ["/bin/parent"], "working_directory": "/w",
            "network": "host", "health_check": {"endpoint": "/h"}
        }));
        let merged = merge(parent.clone(), Template::default());
        assert_eq!(merged, parent);
        let merged = merge(Template::default(), parent.clone());
        assert_eq!(merged, parent);
    }

    #[test]
    fn merge_keeps_the_parents_own_parent() {
        let parent = template(json!({"inherits": "grandparent"}));
        let child = template(json!({"inherits": "parent"}));
        assert_eq!(
            merge(parent, child).inherits.unwrap().to_string(),
            "grandparent"
        );
    }

    #[test]
    fn resolves_a_three_level_chain_from_the_root_down() {
        let lookup = library(&[
            (
                "root",
                json!({"environment": {"LEVEL": "root", "ROOT": "1"}, "required_credentials": ["R"],
                            "command": ["/bin/root"]}),
            ),
            (
                "middle",
                json!({"inherits": "root", "environment": {"LEVEL": "middle"},
                              "required_credentials": ["M"]}),
            ),
            (
                "leaf",
                json!({"inherits": "acme/template:middle-alias", "environment": {"LEVEL": "leaf"},
                            "required_credentials": ["L"], "command": ["/bin/leaf"]}),
            ),
            ("acme/template:middle-alias", json!({"inherits": "middle"})),
        ]);
        let resolved = resolve_text("leaf", lookup).unwrap();
        assert!(resolved.inherits.is_none());
        assert_eq!(resolved.environment["LEVEL"], "leaf");
        assert_eq!(resolved.environment["ROOT"], "1");
        assert_eq!(resolved.required_credentials, ["R", "M", "L"]);
        assert_eq!(resolved.command, ["/bin/leaf"]);
    }

    #[test]
    fn resolving_equals_merging_pairwise() {
        let grandparent = template(json!({"environment": {"A": "1"}, "required_services": ["x"]}));
        let parent =
            template(json!({"inherits": "grandparent", "environment": {"A": "2", "B": "2"}}));
        let child = template(json!({"inherits": "parent", "required_services": ["y"]}));
        let lookup = library(&[
            ("grandparent", serde_json::to_value(&grandparent).unwrap()),
            ("parent", serde_json::to_value(&parent).unwrap()),
            ("child", serde_json::to_value(&child).unwrap()),
        ]);
        let pairwise = merge(merge(grandparent, parent), child);
        assert_eq!(resolve_text("child", lookup).unwrap(), pairwise);
    }

    #[test]
    fn refuses_an_unknown_template() {
        let lookup = library(&[]);
        assert_eq!(
            resolve_text("#acme/template:bureau.local:agent-bas", lookup).unwrap_err(),
            "template \"#acme/template:bureau.local:agent-bas\" does not exist; publish it \
             (m.bureau.template, state key \"agent-bas\") or fix the reference"
        );
    }

    #[test]
    fn refuses_an_unknown_parent_naming_both() {
        let lookup = library(&[
            ("claude", json!({"inherits": "agent-base"})),
            ("agent-base", json!({"inherits": "bsae"})),
        ]);
        assert_eq!(
            resolve_text("claude", lookup).unwrap_err(),
            "template \"agent-base\" inherits \"bsae\", which does not exist; publish it or fix \
             agent-base's inherits"
        );
    }

    #[test]
    fn refuses_a_two_template_cycle_listing_it() {
        let lookup = library(&[
            ("a", json!({"inherits": "b"})),
            ("b", json!({"inherits": "a"})),
        ]);
        assert_eq!(
            resolve_text("a", lookup).unwrap_err(),
            "template \"a\": inheritance cycle a -> b -> a; remove inherits from one of these \
             templates"
        );
    }

    #[test]
    fn refuses_a_template_that_inherits_itself() {
        let lookup = library(&[("a", json!({"inherits": "a"}))]);
        assert_eq!(
            resolve_text("a", lookup).unwrap_err(),
            "template \"a\": inheritance cycle a -> a; remove inherits from one of these templates"
        );
    }

    #[test]
    fn a_cycle_further_up_the_chain_lists_only_the_cycle() {
        let lookup = library(&[
            ("x", json!({"inherits": "a"})),
            ("a", json!({"inherits": "b"})),
            ("b", json!({"inherits": "c"})),
            ("c", json!({"inherits": "a"})),
        ]);
        let error = resolve(&TemplateRef::parse("x").unwrap(), lookup).unwrap_err();
        assert_eq!(
            error,
            TemplateError::Cycle {
                template: "x".to_owned(),
                cycle: vec!["a".into(), "b".into(), "c".into(), "a".into()],
            }
        );
        assert_eq!(
            error.to_string(),
            "template \"x\": inheritance cycle a -> b -> c -> a; remove inherits from one of these \
             templates"
        );
    }

    #[test]
    fn refuses_a_chain_deeper_than_the_limit() {
        // t0 → t1 → … → t16: 17 templates.
        let templates: Vec<(String, serde_json::Value)> = (0..=MAX_INHERITANCE_DEPTH)
            .map(|level| {
                let json = if level == MAX_INHERITANCE_DEPTH {
                    json!({})
                } else {
                    json!({"inherits": format!("t{}", level + 1)})
                };
                (format!("t{level}"), json)
            })
            .collect();
        let borrowed: Vec<(&str, serde_json::Value)> = templates
            .iter()
            .map(|(name, json)| (name.as_str(), json.clone()))
            .collect();
        assert_eq!(
            resolve_text("t0", library(&borrowed)).unwrap_err(),
            "template \"t0\": inherits through more than 16 templates; flatten the chain"
        );
        // Exactly the limit resolves.
        assert!(resolve_text("t1", library(&borrowed)).is_ok());
    }

    #[test]
    fn an_endless_generated_chain_stops_at_the_limit() {
        // A lookup that invents a new parent for every name never repeats, so only the depth
        // limit ends it.
        let lookup = |reference: &TemplateRef| {
            let depth = reference.name().as_str().len();
            Some(template(json!({"inherits": "a".repeat(depth + 1)})))
        };
        assert!(matches!(
            resolve(&TemplateRef::parse("a").unwrap(), lookup),
            Err(TemplateError::TooDeep {
                limit: MAX_INHERITANCE_DEPTH,
                ..
            })
        ));
    }
}
