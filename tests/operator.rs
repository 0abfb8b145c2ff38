//! The operator commands (`bureau machine provision`, `credential provision`, `template …`,
//! `agent create|destroy`, `list`) through the real binary against a real Synapse (one instance
//! for this test binary), checked by reading the rooms back.

use std::path::{Path, PathBuf};

use bureau::machine::BootstrapFile;
use bureau::matrix::{Client, ConnectOptions, parse_user_id};
use bureau::schema::{Credentials, MachineConfig, RestartPolicy};
use ruma::OwnedRoomId;
use serde_json::{Value, json};

mod cli_support;

use cli_support::{bureau, cli_login, homeserver, new_user, runtime, text, unique};

/// `template push NAME FILE --namespace NAMESPACE EXTRA…`.
fn template_push<'a>(
    name: &'a str,
    file: &'a str,
    namespace: &'a str,
    extra: &[&'a str],
) -> Vec<&'a str> {
    let mut args = vec!["template", "push", name, file, "--namespace", namespace];
    args.extend_from_slice(extra);
    args
}

/// Runs `bureau ARGS`, asserts success, and parses stdout as JSON.
fn bureau_json(session: &Path, args: &[&str], input: Option<&str>) -> Value {
    let output = bureau(session, args, input);
    assert!(
        output.status.success(),
        "bureau {args:?}: {}",
        text(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "bureau {args:?}: not JSON ({error}): {}",
            text(&output.stdout)
        )
    })
}

/// Runs `bureau ARGS --json`, asserts exit status 1 with nothing on stderr, and returns the JSON
/// object on stdout (its `error` says why).
fn bureau_fails_json(session: &Path, args: &[&str], input: Option<&str>) -> Value {
    let output = bureau(session, args, input);
    assert_eq!(
        output.status.code(),
        Some(1),
        "bureau {args:?} should fail: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    assert!(
        output.stderr.is_empty(),
        "bureau {args:?}: stderr with --json: {}",
        text(&output.stderr)
    );
    let value: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|error| {
        panic!(
            "bureau {args:?}: the refusal is not JSON ({error}): {}",
            text(&output.stdout)
        )
    });
    assert!(value["error"].is_string(), "bureau {args:?}: {value}");
    value
}

/// Runs `bureau ARGS`, asserts exit status 1, and returns the error: stderr, or with `--json`
/// the `error` of the JSON on stdout.
fn bureau_fails(session: &Path, args: &[&str], input: Option<&str>) -> String {
    if args.contains(&"--json") {
        let value = bureau_fails_json(session, args, input);
        return value["error"].as_str().unwrap_or_default().to_owned();
    }
    let output = bureau(session, args, input);
    assert_eq!(
        output.status.code(),
        Some(1),
        "bureau {args:?} should fail: {}{}",
        text(&output.stdout),
        text(&output.stderr)
    );
    text(&output.stderr)
}

/// An admin operator: a fresh homeserver admin, logged in through the CLI, and a client of it
/// for checking what the commands did.
struct Admin {
    _dir: tempfile::TempDir,
    name: String,
    session: PathBuf,
    client: Client,
    server_name: String,
}

impl Admin {
    fn new() -> Self {
        let server = homeserver();
        let (client, name) = runtime().block_on(new_user(server, "admin", true));
        let (dir, session) = cli_login(server, &name);
        Self {
            _dir: dir,
            name,
            session,
            client,
            server_name: server.server_name().to_owned(),
        }
    }

    /// `bureau matrix setup NS --fleet prod` for a fresh namespace; returns it.
    fn setup_namespace(&self) -> String {
        let namespace = unique("ns");
        bureau_json(
            &self.session,
            &["matrix", "setup", &namespace, "--fleet", "prod", "--json"],
            None,
        );
        namespace
    }

    fn room(&self, alias: &str) -> OwnedRoomId {
        runtime()
            .block_on(self.client.resolve_alias(alias))
            .expect("resolve alias")
            .unwrap_or_else(|| panic!("{alias} does not exist"))
    }

    fn state(&self, alias: &str, event_type: &str, state_key: &str) -> Option<Value> {
        let room = self.room(alias);
        runtime()
            .block_on(self.client.state_get(&room, event_type, state_key))
            .expect("state get")
    }

    fn put_state(&self, alias: &str, event_type: &str, state_key: &str, content: &Value) {
        let room = self.room(alias);
        runtime()
            .block_on(self.client.state_put(&room, event_type, state_key, content))
            .expect("state put");
    }

    fn membership(&self, alias: &str, user_id: &str) -> Option<String> {
        self.state(alias, "m.room.member", user_id)
            .and_then(|content| content["membership"].as_str().map(str::to_owned))
    }

    fn alias(&self, localpart: &str) -> String {
        format!("#{localpart}:{}", self.server_name)
    }

    fn user_id(&self, localpart: &str) -> String {
        format!("@{localpart}:{}", self.server_name)
    }

    /// Provisions `NS/fleet/prod/machine/box1`; returns its name and bootstrap file.
    fn provision(&self, namespace: &str) -> (String, PathBuf) {
        let machine = format!("{namespace}/fleet/prod/machine/box1");
        let bootstrap = self._dir.path().join(format!("{namespace}-bootstrap.json"));
        bureau_json(
            &self.session,
            &[
                "machine",
                "provision",
                &machine,
                "--bootstrap-file",
                bootstrap.to_str().expect("utf-8 path"),
                "--json",
            ],
            None,
        );
        (machine, bootstrap)
    }

    /// Publishes a fresh machine key for `machine`, as its launcher would.
    fn publish_machine_key(&self, namespace: &str, machine: &str) -> bureau::sealed::MachineKey {
        let key = bureau::sealed::MachineKey::generate();
        let content = serde_json::to_value(bureau::schema::MachineKey::age_x25519(key.recipient()))
            .expect("key json");
        self.put_state(
            &self.alias(&format!("{namespace}/fleet/prod/machine")),
            "m.bureau.machine_key",
            machine,
            &content,
        );
        key
    }

    fn write(&self, name: &str, content: &Value) -> String {
        let path = self._dir.path().join(name);
        std::fs::write(&path, content.to_string()).expect("write file");
        path.to_str().expect("utf-8 path").to_owned()
    }
}

#[test]
fn machine_provision_writes_a_private_bootstrap_file_and_runs_once() {
    use std::os::unix::fs::PermissionsExt;

    let admin = Admin::new();
    let namespace = admin.setup_namespace();
    let machine = format!("{namespace}/fleet/prod/machine/box1");
    let bootstrap = admin._dir.path().join("box1.json");
    let result = bureau_json(
        &admin.session,
        &[
            "machine",
            "provision",
            &machine,
            "--bootstrap-file",
            bootstrap.to_str().expect("utf-8"),
            "--json",
        ],
        None,
    );
    let config_alias = admin.alias(&machine);
    assert_eq!(result["config_room"], config_alias);
    assert_eq!(result["user_id"], admin.user_id(&machine));

    let mode = std::fs::metadata(&bootstrap)
        .expect("bootstrap file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let file: BootstrapFile =
        serde_json::from_slice(&std::fs::read(&bootstrap).expect("read")).expect("bootstrap json");
    assert_eq!(file.identity.machine.as_str(), machine);
    assert_eq!(file.identity.server_name, admin.server_name);
    assert_eq!(file.identity.homeserver_url, homeserver().base_url());
    let output_text = result.to_string();
    assert!(
        !output_text.contains(&file.password),
        "the password was printed"
    );
    let (identity, password) = file.into_parts();

    // The password logs in as the machine; the machine is invited to its three rooms.
    let user_id = identity.user_id();
    runtime().block_on(async {
        let anonymous = Client::connect(&homeserver().base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        let (machine_client, _) = anonymous
            .login_password(&user_id, &password)
            .await
            .expect("the bootstrap password logs in");
        assert_eq!(
            machine_client.whoami().await.expect("whoami").as_str(),
            user_id
        );
    });
    for alias in [
        identity.config_room_alias(),
        identity.machine_room_alias(),
        identity.template_room_alias(),
    ] {
        assert_eq!(
            admin.membership(&alias, &user_id).as_deref(),
            Some("invite"),
            "{alias}"
        );
    }
    let power_levels = admin
        .state(&config_alias, "m.room.power_levels", "")
        .expect("power levels");
    assert_eq!(power_levels["events"]["m.bureau.machine_config"], 100);
    assert_eq!(power_levels["events"]["m.bureau.credentials"], 100);
    assert_eq!(power_levels["state_default"], 100);
    assert_eq!(power_levels["events_default"], 0);

    // A second run refuses, writes nothing, and leaves the password alone.
    let second = admin._dir.path().join("box1-again.json");
    let error = bureau_fails(
        &admin.session,
        &[
            "machine",
            "provision",
            &machine,
            "--bootstrap-file",
            second.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(error.contains("already exists"), "{error}");
    assert!(error.contains(&user_id), "{error}");
    assert!(!second.exists(), "a refused provision left a file");
    runtime().block_on(async {
        let anonymous = Client::connect(&homeserver().base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        anonymous
            .login_password(&user_id, &password)
            .await
            .expect("the password still works");
    });

    // The same bootstrap path is never overwritten.
    let before = std::fs::read(&bootstrap).expect("the bootstrap file");
    let error = bureau_fails(
        &admin.session,
        &[
            "machine",
            "provision",
            &format!("{namespace}/fleet/prod/machine/box2"),
            "--bootstrap-file",
            bootstrap.to_str().expect("utf-8"),
        ],
        None,
    );
    assert!(error.contains("already exists"), "{error}");
    assert_eq!(
        std::fs::read(&bootstrap).expect("the bootstrap file"),
        before,
        "the first machine's bootstrap file is unchanged"
    );

    // Without `bureau matrix setup`, the error says to run it.
    let unset = unique("nosetup");
    let error = bureau_fails(
        &admin.session,
        &[
            "machine",
            "provision",
            &format!("{unset}/fleet/prod/machine/box1"),
            "--bootstrap-file",
            admin
                ._dir
                .path()
                .join("unset.json")
                .to_str()
                .expect("utf-8"),
        ],
        None,
    );
    assert!(
        error.contains(&format!("bureau matrix setup {unset} --fleet prod")),
        "{error}"
    );
}

#[test]
fn templates_push_show_list_and_validate() {
    let admin = Admin::new();
    let namespace = admin.setup_namespace();
    let session = &admin.session;
    let worker = admin.write(
        "worker.json",
        &json!({"description": "a worker", "inherits": "agent-base",
                "command": ["/bin/sh", "-c", "echo hi"], "environment": {"MODE": "work"}}),
    );
    let pushed = bureau_json(
        session,
        &template_push("worker", &worker, &namespace, &["--json"]),
        None,
    );
    assert_eq!(
        pushed["room"],
        admin.alias(&format!("{namespace}/template"))
    );
    assert_eq!(pushed["inherits"], "agent-base");

    // show: as published, and resolved (base + agent-base + worker).
    let shown = bureau_json(
        session,
        &["template", "show", "worker", "--namespace", &namespace],
        None,
    );
    assert_eq!(shown["inherits"], "agent-base");
    assert!(shown["environment"].get("HOME").is_none());
    let wrapped = bureau_json(
        session,
        &[
            "template",
            "show",
            "worker",
            "--namespace",
            &namespace,
            "--json",
        ],
        None,
    );
    assert_eq!(wrapped["name"], "worker");
    assert_eq!(
        wrapped["room"],
        admin.alias(&format!("{namespace}/template"))
    );
    assert_eq!(wrapped["resolved"], false);
    assert_eq!(wrapped["template"], shown);
    let resolved = bureau_json(
        session,
        &[
            "template",
            "show",
            &format!("{namespace}/template:worker"),
            "--resolved",
        ],
        None,
    );
    assert!(resolved.get("inherits").is_none(), "{resolved}");
    assert_eq!(resolved["environment"]["MODE"], "work");
    assert_eq!(resolved["environment"]["HOME"], "/workspace");
    assert!(resolved["environment"]["PATH"].is_string());
    assert_eq!(resolved["command"], json!(["/bin/sh", "-c", "echo hi"]));
    assert_eq!(resolved["network"], "none");

    // list: name, parent, description.
    let listed = bureau_json(
        session,
        &["template", "list", "--namespace", &namespace, "--json"],
        None,
    );
    let names: Vec<&str> = listed
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|entry| entry["name"].as_str())
        .collect();
    assert_eq!(names, ["agent-base", "base", "worker"]);
    let worker_entry = listed
        .as_array()
        .expect("list")
        .iter()
        .find(|entry| entry["name"] == "worker")
        .expect("worker listed");
    assert_eq!(worker_entry["description"], "a worker");

    // An invalid template is refused with the reason, by push and by validate.
    let invalid = admin.write(
        "invalid.json",
        &json!({"filesystem": [{"type": "tmpfs", "destination": "tmp"}]}),
    );
    let error = bureau_fails(
        session,
        &template_push("bad", &invalid, &namespace, &[]),
        None,
    );
    assert!(error.contains("is not absolute"), "{error}");
    let error = bureau_fails(session, &["template", "validate", &invalid], None);
    assert!(error.contains("is not absolute"), "{error}");
    let refused = bureau_fails_json(session, &["template", "validate", &invalid, "--json"], None);
    assert_eq!(refused["valid"], false, "{refused}");
    assert_eq!(refused["file"], invalid.as_str());
    assert!(
        refused["error"]
            .as_str()
            .is_some_and(|error| error.contains("is not absolute")),
        "{refused}"
    );
    assert!(
        admin
            .state(
                &admin.alias(&format!("{namespace}/template")),
                "m.bureau.template",
                "bad"
            )
            .is_none()
    );

    // A missing parent, then a cycle, are refused naming them.
    let orphan = admin.write("orphan.json", &json!({"inherits": "nosuch"}));
    let error = bureau_fails(
        session,
        &template_push("orphan", &orphan, &namespace, &[]),
        None,
    );
    assert!(error.contains("\"nosuch\""), "{error}");
    assert!(error.contains("does not exist"), "{error}");
    let first = admin.write("first.json", &json!({"description": "first"}));
    bureau_json(
        session,
        &template_push("first", &first, &namespace, &["--json"]),
        None,
    );
    let second = admin.write("second.json", &json!({"inherits": "first"}));
    bureau_json(
        session,
        &template_push("second", &second, &namespace, &["--json"]),
        None,
    );
    let looping = admin.write("looping.json", &json!({"inherits": "second"}));
    let error = bureau_fails(
        session,
        &template_push("first", &looping, &namespace, &[]),
        None,
    );
    assert!(error.contains("inheritance cycle"), "{error}");
    assert!(error.contains("first -> second -> first"), "{error}");

    // validate: offline without a session; with one, the parent is checked.
    let nowhere = admin._dir.path().join("no-session.json");
    let offline = bureau_json(&nowhere, &["template", "validate", &orphan, "--json"], None);
    assert_eq!(offline["valid"], true);
    assert_eq!(offline["parent_checked"], false);
    let error = bureau_fails(
        session,
        &["template", "validate", &orphan, "--namespace", &namespace],
        None,
    );
    assert!(error.contains("\"nosuch\" does not exist"), "{error}");
    let checked = bureau_json(
        session,
        &[
            "template",
            "validate",
            &worker,
            "--namespace",
            &namespace,
            "--json",
        ],
        None,
    );
    assert_eq!(checked["parent_checked"], true);

    // A plain name without --namespace says how to name the room.
    let error = bureau_fails(session, &["template", "show", "worker"], None);
    assert!(error.contains("--namespace"), "{error}");
}

#[test]
fn credentials_are_sealed_to_the_machine_key() {
    let admin = Admin::new();
    let namespace = admin.setup_namespace();
    let (machine, _bootstrap) = admin.provision(&namespace);
    let principal = format!("{namespace}/agent/pm");
    let canary = "sk-canary-3f9a1c";
    let input = json!({"OPENAI_API_KEY": canary}).to_string();
    let args = [
        "credential",
        "provision",
        "--machine",
        &machine,
        "--principal",
        &principal,
        "--from-file",
        "-",
        "--json",
    ];

    // No key yet: the error says the launcher publishes it.
    let error = bureau_fails(&admin.session, &args, Some(&input));
    assert!(error.contains("has no key yet"), "{error}");
    assert!(error.contains("launcher"), "{error}");
    assert!(!error.contains(canary));

    let key = admin.publish_machine_key(&namespace, &machine);
    let output = bureau(&admin.session, &args, Some(&input));
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(!text(&output.stdout).contains(canary));
    assert!(!text(&output.stderr).contains(canary));
    let result: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(result["key_names"], json!(["OPENAI_API_KEY"]));
    assert_eq!(result["recipients"], json!([key.recipient()]));

    let content = admin
        .state(&admin.alias(&machine), "m.bureau.credentials", &principal)
        .expect("the bundle is published");
    assert!(
        !content.to_string().contains(canary),
        "plaintext in the event"
    );
    let bundle: Credentials = serde_json::from_value(content).expect("bundle");
    assert_eq!(bundle.key_names, ["OPENAI_API_KEY"]);
    let opened = bureau::sealed::open(&bundle, &key).expect("open");
    assert!(opened["OPENAI_API_KEY"].constant_time_eq(canary.as_bytes()));

    // A bad credential name is refused naming it, never echoing a value.
    let error = bureau_fails(
        &admin.session,
        &args,
        Some(&json!({"openai-key": canary}).to_string()),
    );
    assert!(error.contains("\"openai-key\""), "{error}");
    assert!(!error.contains(canary), "{error}");
}

#[test]
fn agents_are_created_listed_and_destroyed() {
    let admin = Admin::new();
    let namespace = admin.setup_namespace();
    let (machine, _bootstrap) = admin.provision(&namespace);
    let key = admin.publish_machine_key(&namespace, &machine);
    let worker = admin.write(
        "worker.json",
        &json!({"inherits": "agent-base", "command": ["/bin/true"],
                "required_credentials": ["API_KEY"]}),
    );
    bureau_json(
        &admin.session,
        &template_push("worker", &worker, &namespace, &["--json"]),
        None,
    );
    let credentials = admin.write("creds.json", &json!({"API_KEY": "api-canary-77"}));
    let principal = format!("{namespace}/agent/pm");
    let principal_user = admin.user_id(&principal);
    let config_alias = admin.alias(&machine);
    let observe = format!("observe={namespace}/agent/**");

    // A template's required credential missing: refused before anything is made.
    let other = format!("{namespace}/agent/other");
    let error = bureau_fails(
        &admin.session,
        &[
            "agent",
            "create",
            &other,
            "--template",
            "worker",
            "--machine",
            &machine,
        ],
        None,
    );
    assert!(
        error.contains("requires the credentials API_KEY"),
        "{error}"
    );
    assert!(
        admin
            .membership(&config_alias, &admin.user_id(&other))
            .is_none()
    );

    // Never a machine's account or an admin's: their passwords are not reset.
    for taken in [machine.as_str(), admin.name.as_str()] {
        let error = bureau_fails(
            &admin.session,
            &[
                "agent",
                "create",
                taken,
                "--template",
                "worker",
                "--machine",
                &machine,
                "--credentials",
                &credentials,
            ],
            None,
        );
        assert!(
            error.contains("machine's name") || error.contains("homeserver admin"),
            "{error}"
        );
    }
    bureau_json(&admin.session, &["whoami", "--json"], None);

    let created = bureau_json(
        &admin.session,
        &[
            "agent",
            "create",
            &principal,
            "--template",
            "worker",
            "--machine",
            &machine,
            "--credentials",
            &credentials,
            "--payload",
            r#"{"task": "triage"}"#,
            "--grant",
            &observe,
            "--restart-policy",
            "never",
            "--json",
        ],
        None,
    );
    assert_eq!(created["user_id"], principal_user);
    assert_eq!(created["config_room"], config_alias);
    assert_eq!(
        created["key_names"],
        json!(["API_KEY", "MATRIX_ACCESS_TOKEN"])
    );
    assert_eq!(created["replaced"], false);
    assert!(!created.to_string().contains("api-canary-77"));

    // The assignment, in machine_config (state key "", as the daemon reads it).
    let config: MachineConfig = serde_json::from_value(
        admin
            .state(&config_alias, "m.bureau.machine_config", "")
            .expect("machine_config written"),
    )
    .expect("machine_config parses");
    config.validate().expect("valid machine_config");
    assert_eq!(config.principals.len(), 1);
    let assignment = &config.principals[0];
    assert_eq!(assignment.principal.as_str(), principal);
    assert_eq!(assignment.template.to_string(), "worker");
    assert_eq!(assignment.payload, json!({"task": "triage"}));
    assert_eq!(assignment.restart_policy, RestartPolicy::Never);
    assert_eq!(assignment.authorization.grants[0].actions, ["observe"]);
    assert_eq!(
        assignment.authorization.grants[0].targets,
        [format!("{namespace}/agent/**")]
    );

    // The bundle opens with the machine's key; the token inside is the principal's.
    let bundle: Credentials = serde_json::from_value(
        admin
            .state(&config_alias, "m.bureau.credentials", &principal)
            .expect("credentials written"),
    )
    .expect("bundle");
    let opened = bureau::sealed::open(&bundle, &key).expect("open");
    assert!(opened["API_KEY"].constant_time_eq(b"api-canary-77"));
    let token = opened["MATRIX_ACCESS_TOKEN"].duplicate();
    runtime().block_on(async {
        let client = Client::connect(&homeserver().base_url(), &ConnectOptions::default())
            .await
            .expect("connect")
            .with_session(parse_user_id(&principal_user).expect("user id"), token);
        assert_eq!(
            client
                .whoami()
                .await
                .expect("the sealed token works")
                .as_str(),
            principal_user
        );
    });
    assert_eq!(
        admin.membership(&config_alias, &principal_user).as_deref(),
        Some("join")
    );

    // list: the principal, unknown until a heartbeat names it; then its state and pid.
    let listed = bureau_json(
        &admin.session,
        &["list", "--machine", &machine, "--json"],
        None,
    );
    let entry = &listed[0]["principals"][0];
    assert_eq!(listed[0]["machine"], machine);
    assert_eq!(listed[0]["has_key"], true);
    assert_eq!(entry["principal"], principal);
    assert_eq!(entry["template"], "worker");
    assert_eq!(entry["state"], "unknown");
    admin.put_state(
        &admin.alias(&format!("{namespace}/fleet/prod/machine")),
        "m.bureau.machine_status",
        &machine,
        &json!({"reported_at": 1, "principals": [
            {"localpart": principal, "state": "running", "pid": 4242}]}),
    );
    let listed = bureau_json(
        &admin.session,
        &[
            "list",
            "--fleet",
            &format!("{namespace}/fleet/prod"),
            "--json",
        ],
        None,
    );
    assert_eq!(listed.as_array().expect("machines").len(), 1);
    let entry = &listed[0]["principals"][0];
    assert_eq!(entry["state"], "running");
    assert_eq!(entry["pid"], 4242);

    // credential provision does not silently drop the Matrix token `agent create` sealed: it
    // refuses, saying how to change an agent's credentials; --drop-matrix-token replaces it.
    let provision = [
        "credential",
        "provision",
        "--machine",
        &machine,
        "--principal",
        &principal,
        "--from-file",
        &credentials,
        "--json",
    ];
    let error = bureau_fails(&admin.session, &provision, None);
    assert!(error.contains("carries its Matrix token"), "{error}");
    assert!(error.contains("MATRIX_ACCESS_TOKEN"), "{error}");
    assert!(
        error.contains(&format!(
            "bureau agent create {principal} --template worker --machine {machine} \
             --credentials FILE"
        )),
        "{error}"
    );
    assert!(error.contains("--drop-matrix-token"), "{error}");
    assert!(!error.contains("api-canary-77"), "{error}");
    let bundle: Credentials = serde_json::from_value(
        admin
            .state(&config_alias, "m.bureau.credentials", &principal)
            .expect("credentials"),
    )
    .expect("bundle");
    assert_eq!(bundle.key_names, ["API_KEY", "MATRIX_ACCESS_TOKEN"]);
    let dropped = bureau_json(
        &admin.session,
        &[&provision[..], &["--drop-matrix-token"]].concat(),
        None,
    );
    assert_eq!(dropped["key_names"], json!(["API_KEY"]));

    // Creating it again replaces the assignment and issues a fresh token.
    let again = bureau_json(
        &admin.session,
        &[
            "agent",
            "create",
            &principal,
            "--template",
            "worker",
            "--machine",
            &machine,
            "--credentials",
            &credentials,
            "--json",
        ],
        None,
    );
    assert_eq!(again["replaced"], true);
    assert_eq!(
        again["key_names"],
        json!(["API_KEY", "MATRIX_ACCESS_TOKEN"])
    );

    // destroy: assignment gone, bundle blanked, principal out of the room.
    let destroyed = bureau_json(
        &admin.session,
        &[
            "agent",
            "destroy",
            &principal,
            "--machine",
            &machine,
            "--json",
        ],
        None,
    );
    assert_eq!(destroyed["assignment_removed"], true);
    assert_eq!(destroyed["credentials_removed"], true);
    assert_eq!(destroyed["removed_from_room"], true);
    let config: MachineConfig = serde_json::from_value(
        admin
            .state(&config_alias, "m.bureau.machine_config", "")
            .expect("machine_config"),
    )
    .expect("parses");
    assert!(config.principals.is_empty());
    assert_eq!(
        admin.state(&config_alias, "m.bureau.credentials", &principal),
        Some(json!({}))
    );
    assert_eq!(
        admin.membership(&config_alias, &principal_user).as_deref(),
        Some("leave")
    );
    let again = bureau_json(
        &admin.session,
        &[
            "agent",
            "destroy",
            &principal,
            "--machine",
            &machine,
            "--json",
        ],
        None,
    );
    assert_eq!(again["assignment_removed"], false);
}

#[test]
fn malformed_machine_config_is_listed_and_never_overwritten() {
    let admin = Admin::new();
    let namespace = admin.setup_namespace();
    let (machine, _bootstrap) = admin.provision(&namespace);
    let config_alias = admin.alias(&machine);
    let good = format!("{namespace}/agent/good");
    let bad = format!("{namespace}/agent/bad");

    // One malformed assignment: listed `invalid` with the reason; the others still listed.
    admin.put_state(
        &config_alias,
        "m.bureau.machine_config",
        "",
        &json!({"principals": [
            {"principal": bad, "template": "worker", "restart_policy": "sometimes"},
            {"principal": good, "template": "worker"},
            {"template": "worker"}
        ]}),
    );
    let listed = bureau_json(
        &admin.session,
        &["list", "--machine", &machine, "--json"],
        None,
    );
    assert!(listed[0].get("error").is_none(), "{listed}");
    let principals = listed[0]["principals"].as_array().expect("principals");
    let summary: Vec<(&str, &str)> = principals
        .iter()
        .map(|entry| {
            (
                entry["principal"].as_str().unwrap_or_default(),
                entry["state"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (bad.as_str(), "invalid"),
            (good.as_str(), "unknown"),
            ("principals[2]", "invalid"),
        ]
    );
    let reason = principals[0]["error"].as_str().expect("a reason");
    assert!(reason.contains("sometimes"), "{reason}");
    assert!(principals[1].get("error").is_none());
    let output = bureau(&admin.session, &["list", "--machine", &machine], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    assert!(
        text(&output.stdout).contains("invalid"),
        "{}",
        text(&output.stdout)
    );

    // `principals` that is not an array: refused naming the room and the fix, and kept.
    let broken = json!({"principals": {"not": "an array"}});
    admin.put_state(&config_alias, "m.bureau.machine_config", "", &broken);
    let error = bureau_fails(
        &admin.session,
        &["agent", "destroy", &good, "--machine", &machine],
        None,
    );
    assert!(error.contains(&config_alias), "{error}");
    assert!(error.contains("not an array"), "{error}");
    assert!(error.contains("bureau matrix state set"), "{error}");
    assert_eq!(
        admin.state(&config_alias, "m.bureau.machine_config", ""),
        Some(broken)
    );
    let listed = bureau_json(
        &admin.session,
        &["list", "--machine", &machine, "--json"],
        None,
    );
    let error = listed[0]["error"].as_str().expect("the machine's error");
    assert!(error.contains("not an array"), "{error}");
}

#[test]
fn every_operator_command_reports_refusals_as_json() {
    let admin = Admin::new();
    let credentials = admin.write("creds.json", &json!({"API_KEY": "api-canary-91"}));
    let invalid = admin.write(
        "invalid.json",
        &json!({"filesystem": [{"type": "tmpfs", "destination": "tmp"}]}),
    );
    let no_fleet = "nofleet/box1";
    let commands: [&[&str]; 9] = [
        &["machine", "provision", no_fleet],
        &[
            "credential",
            "provision",
            "--machine",
            no_fleet,
            "--principal",
            "acme/agent/pm",
            "--from-file",
            &credentials,
        ],
        &template_push("bad", &invalid, "acme", &[]),
        &["template", "show", "worker"],
        &["template", "list", "--namespace", "acme/two"],
        &["template", "validate", &invalid],
        &[
            "agent",
            "create",
            "acme/agent/pm",
            "--template",
            "worker",
            "--machine",
            no_fleet,
        ],
        &["agent", "destroy", "acme/agent/pm", "--machine", no_fleet],
        &["list", "--machine", no_fleet],
    ];
    for command in commands {
        let args = [command, &["--json"]].concat();
        let refused = bureau_fails_json(&admin.session, &args, None);
        assert!(
            !refused.to_string().contains("api-canary-91"),
            "{args:?}: {refused}"
        );
    }
}
