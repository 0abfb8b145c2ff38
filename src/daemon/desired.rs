//! What should run: the machine's config room state (assignments, credential bundles) and the
//! templates they name, turned into one launcher request per principal — or, per principal,
//! the reason it cannot start.
//!
//! Invariant: a malformed assignment, unknown template, template cycle or unreadable bundle
//! affects only its own principal; the others are still computed. Pure: the Matrix reads happen
//! before, so this is tested against plain JSON.

use std::cell::RefCell;
use std::collections::BTreeMap;

use serde_json::Value;
use sha1::{Digest, Sha1};

use crate::launcher::ipc::CreateSandbox;
use crate::machine::MachineIdentity;
use crate::naming::Localpart;
use crate::proxy::payload::Grant;
use crate::schema::{
    Credentials, PrincipalAssignment, RestartPolicy, Template, TemplateRef, TemplateRoom, resolve,
};

/// One principal the config asks for, ready to hand to the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// The launcher request (with [`CreateSandbox::config_hash`] filled in).
    pub create: CreateSandbox,
    /// What to do when it exits.
    pub restart_policy: RestartPolicy,
}

/// A principal the config asks for: ready, or why not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DesiredEntry {
    /// Can be started.
    Ready(Box<Desired>),
    /// Cannot: `principal` as written (it may be the malformed part), and the reason.
    Invalid {
        /// The principal's name as written in the assignment.
        principal: String,
        /// Why it cannot start, naming the problem.
        reason: String,
    },
}

impl DesiredEntry {
    /// The principal's name as written.
    pub fn principal_name(&self) -> &str {
        match self {
            Self::Ready(desired) => desired.create.principal.as_str(),
            Self::Invalid { principal, .. } => principal,
        }
    }
}

/// Templates by (room alias, template name), as read from the template rooms.
pub type TemplateRooms = BTreeMap<(String, String), Value>;

/// The alias of the room a template reference points into.
///
/// Example: `agent-base` → the machine's namespace template room `#acme/template:bureau.local`;
/// `ops/template:x` → `#ops/template:bureau.local`; `#t:other.org:x` → `#t:other.org`.
pub fn template_room_alias(reference: &TemplateRef, identity: &MachineIdentity) -> String {
    match reference.room() {
        TemplateRoom::Default => identity.template_room_alias(),
        TemplateRoom::Local(room) => format!("#{room}:{}", identity.server_name),
        TemplateRoom::Alias(alias) => alias.to_string(),
    }
}

/// The assignments of a `m.bureau.machine_config` content, each parsed and validated on its
/// own ([`PrincipalAssignment::from_raw`], as `bureau list` judges them).
fn assignments(config: Option<&Value>) -> Vec<Result<PrincipalAssignment, (String, String)>> {
    let principals = config
        .and_then(|content| content.get("principals"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    principals
        .into_iter()
        .enumerate()
        .map(
            |(index, raw)| match PrincipalAssignment::from_raw(index, &raw) {
                (_, Ok(assignment)) => Ok(assignment),
                (name, Err(reason)) => Err((name, reason)),
            },
        )
        .collect()
}

/// Computes every principal's desired state.
///
/// `credentials` maps state keys of `m.bureau.credentials` events to their contents (an empty
/// content means "no bundle").
pub fn desired_state(
    config: Option<&Value>,
    credentials: &BTreeMap<String, Value>,
    templates: &TemplateRooms,
    identity: &MachineIdentity,
) -> Vec<DesiredEntry> {
    // Parsed once; a template that does not parse is named with its error when a principal
    // needs it (rather than being reported as missing).
    let mut usable: BTreeMap<&(String, String), Template> = BTreeMap::new();
    let mut malformed: BTreeMap<&(String, String), String> = BTreeMap::new();
    for (key, content) in templates {
        match serde_json::from_value::<Template>(content.clone()) {
            Ok(template) => {
                usable.insert(key, template);
            }
            Err(error) => {
                malformed.insert(key, error.to_string());
            }
        }
    }
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    assignments(config)
        .into_iter()
        .map(|parsed| {
            let assignment = match parsed {
                Ok(assignment) => assignment,
                Err((principal, reason)) => return DesiredEntry::Invalid { principal, reason },
            };
            let name = assignment.principal.to_string();
            *seen.entry(name.clone()).or_default() += 1;
            if seen[&name] > 1 {
                return DesiredEntry::Invalid {
                    principal: name,
                    reason: "assigned twice in machine_config; keep one assignment".to_owned(),
                };
            }
            // The first malformed template this principal's resolution asked for: resolution
            // then stopped there (as if it did not exist), and the reason says why.
            let asked_malformed: RefCell<Option<String>> = RefCell::new(None);
            let lookup = |reference: &TemplateRef| {
                let key = (
                    template_room_alias(reference, identity),
                    reference.name().to_string(),
                );
                if let Some(error) = malformed.get(&key) {
                    asked_malformed.borrow_mut().get_or_insert_with(|| {
                        format!("template {}:{} is malformed: {error}", key.0, key.1)
                    });
                }
                usable.get(&key).cloned()
            };
            match desired(&assignment, credentials.get(&name), &lookup) {
                Ok(desired) => DesiredEntry::Ready(Box::new(desired)),
                Err(reason) => DesiredEntry::Invalid {
                    principal: name,
                    reason: match asked_malformed.into_inner() {
                        Some(malformed) => format!("{reason} ({malformed})"),
                        None => reason,
                    },
                },
            }
        })
        .collect()
}

fn desired(
    assignment: &PrincipalAssignment,
    credentials: Option<&Value>,
    lookup: &impl Fn(&TemplateRef) -> Option<Template>,
) -> Result<Desired, String> {
    let template = resolve(&assignment.template, lookup).map_err(|error| error.to_string())?;
    template
        .validate_resolved()
        .map_err(|error| error.to_string())?;
    let credentials = match credentials {
        Some(content) if content.as_object().is_some_and(|map| !map.is_empty()) => {
            let bundle: Credentials = serde_json::from_value(content.clone())
                .map_err(|error| format!("its m.bureau.credentials event is malformed: {error}"))?;
            bundle.validate().map_err(|error| error.to_string())?;
            Some(bundle)
        }
        _ => None,
    };
    let names: Vec<&str> = credentials
        .as_ref()
        .map(|bundle| bundle.key_names.iter().map(String::as_str).collect())
        .unwrap_or_default();
    if let Some(missing) = template
        .required_credentials
        .iter()
        .find(|name| !names.contains(&name.as_str()))
    {
        return Err(format!(
            "template {} requires credential {missing}, which its bundle lacks; add it with \
             `bureau credential provision`",
            assignment.template
        ));
    }
    // The grants in force now, each with its expiry: the proxy stops honouring one the moment
    // it expires, and the daemon pushes the changed list live at its next pass (grants are
    // not part of the fingerprint: a change of grants never restarts the principal).
    let now_ms = crate::schema::now_ms();
    let grants: Vec<Grant> = assignment
        .authorization
        .grants
        .iter()
        .filter(|grant| grant.is_active_at(now_ms))
        .cloned()
        .collect();
    let payload_json = assignment.payload.to_string();
    let config_hash = fingerprint(
        &assignment.principal,
        &template,
        &payload_json,
        credentials.is_some(),
    );
    Ok(Desired {
        create: CreateSandbox {
            principal: assignment.principal.clone(),
            template,
            payload_json,
            credentials,
            grants,
            config_hash,
        },
        restart_policy: assignment.restart_policy,
    })
}

/// A fingerprint of everything that needs a restart when it changes. A changed bundle rotates
/// live, so only whether there is one counts (removing it restarts the principal with none);
/// grants are pushed live, so they do not count at all.
fn fingerprint(
    principal: &Localpart,
    template: &Template,
    payload_json: &str,
    has_credentials: bool,
) -> String {
    let mut hasher = Sha1::new();
    for part in [
        principal.to_string(),
        serde_json::to_string(template).unwrap_or_default(),
        payload_json.to_owned(),
        // Where the grants were hashed before they went live: an empty list, so a principal
        // without grants keeps the fingerprint it ran with (a daemon upgrade adopts it).
        "[]".to_owned(),
        has_credentials.to_string(),
    ] {
        hasher.update(part.as_bytes());
        hasher.update([0]);
    }
    hasher
        .finalize()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn identity() -> MachineIdentity {
        MachineIdentity::new("http://h", "bureau.local", "acme/fleet/prod/machine/box1").unwrap()
    }

    fn templates() -> TemplateRooms {
        let room = "#acme/template:bureau.local".to_owned();
        let mut templates = TemplateRooms::new();
        for (name, template) in Template::builtins() {
            templates.insert(
                (room.clone(), name.to_owned()),
                serde_json::to_value(template).unwrap(),
            );
        }
        templates.insert(
            (room.clone(), "worker".into()),
            json!({"inherits": "agent-base", "command": ["/bin/true"]}),
        );
        templates.insert(
            (room.clone(), "loop-a".into()),
            json!({"inherits": "loop-b"}),
        );
        templates.insert((room, "loop-b".into()), json!({"inherits": "loop-a"}));
        templates
    }

    fn reasons(config: Value) -> Vec<(String, Option<String>)> {
        desired_state(Some(&config), &BTreeMap::new(), &templates(), &identity())
            .into_iter()
            .map(|entry| match entry {
                DesiredEntry::Ready(desired) => (desired.create.principal.to_string(), None),
                DesiredEntry::Invalid { principal, reason } => (principal, Some(reason)),
            })
            .collect()
    }

    #[test]
    fn a_bad_assignment_does_not_affect_the_others() {
        let results = reasons(json!({"principals": [
            {"principal": "acme/agent/ok", "template": "worker"},
            {"principal": "acme/../evil", "template": "worker"},
            {"principal": "acme/agent/ghost", "template": "nope"},
            {"principal": "acme/agent/loop", "template": "loop-a"},
            {"principal": "acme/agent/bare", "template": "agent-base"},
            {"principal": "acme/agent/grant", "template": "worker",
             "authorization": {"grants": [{"actions": []}]}},
            {"principal": "acme/agent/list", "template": "worker", "payload": [1]},
        ]}));
        assert_eq!(results[0], ("acme/agent/ok".into(), None));
        let reason = |index: usize| results[index].1.clone().unwrap();
        assert_eq!(results[1].0, "acme/../evil");
        assert!(reason(1).contains(".."), "{}", reason(1));
        assert!(reason(2).contains("nope"), "{}", reason(2));
        assert!(reason(3).contains("cycle"), "{}", reason(3));
        assert!(reason(4).contains("command is empty"), "{}", reason(4));
        // What `bureau list` calls invalid the daemon does not run either.
        assert!(
            reason(5).contains("authorization.grants[0]"),
            "{}",
            reason(5)
        );
        assert!(reason(6).contains("not a JSON object"), "{}", reason(6));
    }

    #[test]
    fn duplicates_and_missing_credentials_are_named() {
        let results = reasons(json!({"principals": [
            {"principal": "acme/agent/a", "template": "worker"},
            {"principal": "acme/agent/a", "template": "worker"},
        ]}));
        assert!(results[1].1.as_deref().unwrap().contains("twice"));

        let mut rooms = templates();
        rooms.insert(
            ("#acme/template:bureau.local".into(), "keyed".into()),
            json!({"inherits": "worker", "required_credentials": ["OPENAI_API_KEY"]}),
        );
        let config = json!({"principals": [{"principal": "acme/agent/k", "template": "keyed"}]});
        let entries = desired_state(Some(&config), &BTreeMap::new(), &rooms, &identity());
        let DesiredEntry::Invalid { reason, .. } = &entries[0] else {
            panic!("expected invalid: {entries:?}");
        };
        assert!(reason.contains("OPENAI_API_KEY"), "{reason}");
    }

    #[test]
    fn the_fingerprint_follows_payload_and_template_but_not_order_of_principals() {
        let hash = |config: Value| -> Vec<String> {
            desired_state(Some(&config), &BTreeMap::new(), &templates(), &identity())
                .into_iter()
                .map(|entry| match entry {
                    DesiredEntry::Ready(desired) => desired.create.config_hash,
                    DesiredEntry::Invalid { reason, .. } => panic!("{reason}"),
                })
                .collect()
        };
        let a = json!({"principal": "acme/agent/a", "template": "worker"});
        let b = json!({"principal": "acme/agent/b", "template": "worker", "payload": {"x": 1}});
        let b2 = json!({"principal": "acme/agent/b", "template": "worker", "payload": {"x": 2}});
        let first = hash(json!({"principals": [a.clone(), b.clone()]}));
        let swapped = hash(json!({"principals": [b, a.clone()]}));
        assert_eq!(first[0], swapped[1]);
        let changed = hash(json!({"principals": [a, b2]}));
        assert_eq!(first[0], changed[0]);
        assert_ne!(first[1], changed[1]);
    }

    /// `acme/agent/g` on the `worker` template, no payload, no bundle, no grants.
    const PINNED_FINGERPRINT: &str = "63d206cc34bb05873ae948e9dbf5b66f16d44de3";

    #[test]
    fn grants_in_force_reach_the_proxy_with_their_expiry_and_never_change_the_fingerprint() {
        let ready = |grants: Value| match desired_state(
            Some(&json!({"principals": [{
                "principal": "acme/agent/g", "template": "worker",
                "authorization": {"grants": grants}}]})),
            &BTreeMap::new(),
            &templates(),
            &identity(),
        )
        .remove(0)
        {
            DesiredEntry::Ready(desired) => desired.create,
            DesiredEntry::Invalid { reason, .. } => panic!("{reason}"),
        };
        let far = 9_999_999_999_999_u64;
        let renewed = ready(json!([
            {"actions": ["matrix/join"], "expires_at": far},
            {"actions": ["matrix/send"], "expires_at": 1},
        ]));
        // The expired one is left out; the other keeps its expiry for the proxy to enforce.
        assert_eq!(renewed.grants.len(), 1);
        assert_eq!(renewed.grants[0].actions, ["matrix/join"]);
        assert_eq!(renewed.grants[0].expires_at, Some(far));
        // Renewed, expired, added or removed: grants go live, the fingerprint stays.
        let none = ready(json!([]));
        let other = ready(json!([{"actions": ["matrix/join"], "expires_at": far + 1}]));
        assert_eq!(renewed.config_hash, none.config_hash);
        assert_eq!(renewed.config_hash, other.config_hash);
        // Pinned: the fingerprint a principal without grants had before grants went live, so
        // running principals are adopted, not restarted, across the upgrade.
        assert_eq!(none.config_hash, PINNED_FINGERPRINT);
    }

    #[test]
    fn a_malformed_template_is_named_with_its_error() {
        let mut rooms = templates();
        rooms.insert(
            ("#acme/template:bureau.local".into(), "broken".into()),
            json!({"command": "not a list"}),
        );
        let config = json!({"principals": [{"principal": "acme/agent/b", "template": "broken"}]});
        let entries = desired_state(Some(&config), &BTreeMap::new(), &rooms, &identity());
        let DesiredEntry::Invalid { reason, .. } = &entries[0] else {
            panic!("expected invalid: {entries:?}");
        };
        assert!(
            reason.contains("template #acme/template:bureau.local:broken is malformed"),
            "{reason}"
        );
    }

    #[test]
    fn a_malformed_parent_is_named_and_an_unrelated_one_is_not() {
        let room = "#acme/template:bureau.local".to_owned();
        let mut rooms = templates();
        rooms.insert(
            (room.clone(), "child".into()),
            json!({"inherits": "broken-base", "command": ["/bin/true"]}),
        );
        rooms.insert((room.clone(), "broken-base".into()), json!({"command": 7}));
        // Malformed and of the same name as the missing template below, but in another room:
        // never looked up, so not blamed.
        rooms.insert(
            ("#other/template:bureau.local".into(), "worker-typo".into()),
            json!({"command": 7}),
        );
        let config = json!({"principals": [
            {"principal": "acme/agent/a", "template": "child"},
            {"principal": "acme/agent/b", "template": "worker-typo"},
        ]});
        let entries = desired_state(Some(&config), &BTreeMap::new(), &rooms, &identity());
        let reason = |index: usize| match &entries[index] {
            DesiredEntry::Invalid { reason, .. } => reason.clone(),
            other => panic!("expected invalid: {other:?}"),
        };
        assert!(
            reason(0).contains("template #acme/template:bureau.local:broken-base is malformed"),
            "{}",
            reason(0)
        );
        assert!(!reason(1).contains("malformed"), "{}", reason(1));
    }

    #[test]
    fn no_config_means_nothing_runs() {
        assert!(desired_state(None, &BTreeMap::new(), &templates(), &identity()).is_empty());
        assert!(
            desired_state(
                Some(&json!({})),
                &BTreeMap::new(),
                &templates(),
                &identity()
            )
            .is_empty()
        );
    }
}
