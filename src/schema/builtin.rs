//! The built-in templates `bureau matrix setup` publishes: [`Template::base`] and
//! [`Template::agent_base`].
//!
//! Invariant: `base` is the strictest useful profile (every namespace, no network, the system
//! read-only, seccomp, landlock, no_new_privs) and everything else inherits from it, so a
//! template loosens isolation only by saying so explicitly. The root skeleton that every
//! sandbox gets regardless of template — the host's merged-`/usr` links (`/bin`, `/lib`, …),
//! `/proc`, a minimal `/dev`, and `/run/bureau` — is added when a resolved template is turned
//! into a sandbox spec, as `bureau-sandbox run` does for its defaults.

use std::collections::BTreeMap;

use super::template::{
    NetworkMode, SeccompMode, Template, TemplateMount, TemplateNamespaces, TemplateSecurity,
};
use super::template_ref::TemplateRef;
use crate::naming::Localpart;
use crate::sandbox::spec::DEFAULT_PATH;

/// The name (state key) of [`Template::base`].
///
/// Example: `TemplateRef::parse(BASE_TEMPLATE)` → the reference `base`.
pub const BASE_TEMPLATE: &str = "base";

/// The name (state key) of [`Template::agent_base`].
///
/// Example: an assignment with `"template": "agent-base"`.
pub const AGENT_BASE_TEMPLATE: &str = "agent-base";

impl Template {
    /// The root of every template: every namespace, no network, `/usr` read-only, a private
    /// `/tmp` tmpfs, `PATH` only, seccomp `default`, landlock and no_new_privs on. No command.
    ///
    /// Example (as published):
    /// ```json
    /// {"description": "Bureau base sandbox: …",
    ///  "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
    ///  "filesystem": [{"type": "ro", "source": "/usr", "destination": "/usr"},
    ///                 {"type": "tmpfs", "destination": "/tmp"}],
    ///  "namespaces": {"pid": true, "ipc": true, "uts": true, "cgroup": true},
    ///  "network": "none",
    ///  "security": {"seccomp": "default", "landlock": true, "no_new_privs": true, "new_session": false}}
    /// ```
    ///
    /// ```
    /// use bureau::schema::{NetworkMode, Template};
    ///
    /// let base = Template::base();
    /// base.validate()?;
    /// assert_eq!(base.network, Some(NetworkMode::Isolated));
    /// assert!(base.inherits.is_none() && base.command.is_empty());
    /// # Ok::<(), bureau::schema::TemplateError>(())
    /// ```
    pub fn base() -> Self {
        Self {
            description: Some(
                "Bureau base sandbox: every namespace, no network, /usr read-only, a private \
                 /tmp, seccomp and landlock"
                    .to_owned(),
            ),
            environment: BTreeMap::from([("PATH".to_owned(), DEFAULT_PATH.to_owned())]),
            filesystem: vec![
                TemplateMount::Ro {
                    source: "/usr".to_owned(),
                    destination: "/usr".to_owned(),
                    optional: false,
                },
                TemplateMount::Tmpfs {
                    destination: "/tmp".to_owned(),
                    size: None,
                },
            ],
            namespaces: TemplateNamespaces {
                pid: Some(true),
                ipc: Some(true),
                uts: Some(true),
                cgroup: Some(true),
            },
            network: Some(NetworkMode::Isolated),
            security: TemplateSecurity {
                seccomp: Some(SeccompMode::Default),
                landlock: Some(true),
                no_new_privs: Some(true),
                new_session: Some(false),
            },
            ..Self::default()
        }
    }

    /// The base of agent templates: inherits [`base`](Self::base) and adds the principal's
    /// workspace, writable at `/workspace` (`${WORKSPACE}`), as its home and working directory.
    /// No command and no credentials: a concrete agent template inherits this and sets them.
    ///
    /// Example (as published):
    /// ```json
    /// {"description": "Bureau agent base: …",
    ///  "inherits": "base",
    ///  "working_directory": "/workspace",
    ///  "environment": {"HOME": "/workspace"},
    ///  "filesystem": [{"type": "rw", "source": "${WORKSPACE}", "destination": "/workspace"}]}
    /// ```
    ///
    /// ```
    /// use bureau::schema::Template;
    ///
    /// let agent_base = Template::agent_base();
    /// agent_base.validate()?;
    /// assert_eq!(agent_base.inherits.map(|parent| parent.to_string()).as_deref(), Some("base"));
    /// assert!(agent_base.required_credentials.is_empty());
    /// # Ok::<(), bureau::schema::TemplateError>(())
    /// ```
    pub fn agent_base() -> Self {
        Self {
            description: Some(
                "Bureau agent base: the base sandbox plus the principal's workspace at \
                 /workspace, its home and working directory"
                    .to_owned(),
            ),
            inherits: Localpart::parse(BASE_TEMPLATE).ok().map(TemplateRef::named),
            working_directory: Some("/workspace".to_owned()),
            environment: BTreeMap::from([("HOME".to_owned(), "/workspace".to_owned())]),
            filesystem: vec![TemplateMount::Rw {
                source: "${WORKSPACE}".to_owned(),
                destination: "/workspace".to_owned(),
                optional: false,
            }],
            ..Self::default()
        }
    }

    /// The built-in templates with their names, in publishing order (parents first).
    ///
    /// Example: `[("base", Template::base()), ("agent-base", Template::agent_base())]`.
    ///
    /// ```
    /// use bureau::schema::Template;
    ///
    /// let names: Vec<&str> = Template::builtins().iter().map(|(name, _)| *name).collect();
    /// assert_eq!(names, ["base", "agent-base"]);
    /// ```
    pub fn builtins() -> Vec<(&'static str, Self)> {
        vec![
            (BASE_TEMPLATE, Self::base()),
            (AGENT_BASE_TEMPLATE, Self::agent_base()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::inherit::resolve;
    use super::super::test_support::round_trip;
    use super::*;

    fn builtin_lookup(reference: &TemplateRef) -> Option<Template> {
        Template::builtins()
            .into_iter()
            .find(|(name, _)| *name == reference.name().as_str())
            .map(|(_, template)| template)
    }

    #[test]
    fn base_is_published_as_documented() {
        let json = serde_json::to_value(Template::base()).unwrap();
        assert_eq!(
            json,
            json!({
                "description": "Bureau base sandbox: every namespace, no network, /usr read-only, \
                                a private /tmp, seccomp and landlock",
                "environment": {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
                "filesystem": [{"type": "ro", "source": "/usr", "destination": "/usr"},
                               {"type": "tmpfs", "destination": "/tmp"}],
                "namespaces": {"pid": true, "ipc": true, "uts": true, "cgroup": true},
                "network": "none",
                "security": {"seccomp": "default", "landlock": true, "no_new_privs": true,
                             "new_session": false}
            })
        );
        let parsed: Template = round_trip(json);
        assert_eq!(parsed, Template::base());
    }

    #[test]
    fn agent_base_is_published_as_documented() {
        let json = serde_json::to_value(Template::agent_base()).unwrap();
        assert_eq!(
            json,
            json!({
                "description": "Bureau agent base: the base sandbox plus the principal's \
                                workspace at /workspace, its home and working directory",
                "inherits": "base",
                "working_directory": "/workspace",
                "environment": {"HOME": "/workspace"},
                "filesystem": [{"type": "rw", "source": "${WORKSPACE}", "destination": "/workspace"}]
            })
        );
        let parsed: Template = round_trip(json);
        assert_eq!(parsed, Template::agent_base());
    }

    #[test]
    fn builtins_validate() {
        for (name, template) in Template::builtins() {
            template
                .validate()
                .unwrap_or_else(|error| panic!("{name}: {error}"));
        }
    }

    #[test]
    fn an_agent_template_on_agent_base_resolves_to_a_runnable_profile() {
        let claude: Template = serde_json::from_value(json!({
            "inherits": "agent-base",
            "command": ["/usr/bin/claude"],
            "required_credentials": ["ANTHROPIC_API_KEY"],
            "proxy_services": {"anthropic": {"upstream_url": "https://api.anthropic.com",
                                             "inject_headers": {"x-api-key": "ANTHROPIC_API_KEY"}}}
        }))
        .unwrap();
        let lookup = |reference: &TemplateRef| {
            if reference.name().as_str() == "claude" {
                Some(claude.clone())
            } else {
                builtin_lookup(reference)
            }
        };
        let resolved = resolve(&TemplateRef::parse("claude").unwrap(), lookup).unwrap();
        resolved.validate_resolved().unwrap();
        let destinations: Vec<&str> = resolved
            .filesystem
            .iter()
            .map(TemplateMount::destination)
            .collect();
        assert_eq!(destinations, ["/usr", "/tmp", "/workspace"]);
        assert_eq!(resolved.environment["HOME"], "/workspace");
        assert_eq!(resolved.environment["PATH"], DEFAULT_PATH);
        assert_eq!(resolved.working_directory.as_deref(), Some("/workspace"));
        assert_eq!(resolved.network, Some(NetworkMode::Isolated));
        assert_eq!(resolved.security.seccomp, Some(SeccompMode::Default));
        assert_eq!(resolved.command, ["/usr/bin/claude"]);
    }
}
