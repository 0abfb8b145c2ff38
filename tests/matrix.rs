//! The Matrix client and `bureau matrix` commands against a real Synapse (started by the
//! project's own harness, one instance for this test binary; a dedicated one for the restart).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use bureau::homeserver::{HomeserverConfig, LocalHomeserver};
use bureau::matrix::{Client, ConnectOptions, MatrixError, SyncStream};
use bureau::secret::Secret;
use serde_json::{Value, json};

mod cli_support;

use cli_support::{BUREAU, bureau, cli_login, homeserver, new_user, runtime, text, unique};

#[test]
fn register_login_and_whoami() {
    let server = homeserver();
    runtime().block_on(async {
        let (registered, name) = new_user(server, "alice", false).await;
        let expected = format!("@{name}:{}", server.server_name());
        assert_eq!(
            registered.whoami().await.expect("whoami").as_str(),
            expected
        );

        let anonymous = Client::connect(&server.base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        let password = Secret::from_string(format!("{name}-password"));
        let (logged_in, device) = anonymous
            .login_password(&name, &password)
            .await
            .expect("login");
        assert!(!device.is_empty());
        assert_eq!(logged_in.whoami().await.expect("whoami").as_str(), expected);
        // The token never shows in Debug output.
        let token = logged_in
            .access_token()
            .expect("token")
            .expose_str()
            .expect("utf-8");
        assert!(!format!("{logged_in:?}").contains(token));

        let wrong = Secret::from_string("wrong".to_owned());
        let error = anonymous
            .login_password(&name, &wrong)
            .await
            .expect_err("bad password");
        assert_eq!(error.errcode(), Some("M_FORBIDDEN"), "{error}");
    });

    // The same through the CLI, with the session saved 0600.
    let name = runtime().block_on(async { new_user(server, "cli", false).await.1 });
    let (_dir, session) = cli_login(server, &name);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&session)
        .expect("session")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let output = bureau(&session, &["whoami", "--json"], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let whoami: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(
        whoami["user_id"],
        format!("@{name}:{}", server.server_name())
    );
}

#[test]
fn bad_token_says_log_in_again_and_unreachable_names_the_url() {
    let server = homeserver();
    runtime().block_on(async {
        let client = Client::connect(&server.base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        let user = bureau::matrix::parse_user_id(&format!("@ghost:{}", server.server_name()))
            .expect("user id");
        let forged = client.with_session(user, Secret::from_string("syt_forged".to_owned()));
        let error = forged.whoami().await.expect_err("forged token");
        assert!(matches!(error, MatrixError::UnknownToken { .. }), "{error}");
        assert!(error.to_string().contains("log in again"), "{error}");
        assert!(
            !error.to_string().contains("syt_forged"),
            "the token leaked: {error}"
        );

        // A port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!(
            "http://127.0.0.1:{}",
            closed.local_addr().expect("addr").port()
        );
        drop(closed);
        let error = Client::connect(&url, &ConnectOptions::default())
            .await
            .expect_err("unreachable");
        assert!(matches!(error, MatrixError::Unreachable { .. }), "{error}");
        assert!(error.to_string().contains(&url), "{error}");
    });
}

#[test]
fn matrix_setup_is_idempotent_with_admin_only_power_levels() {
    let server = homeserver();
    let name = runtime().block_on(async { new_user(server, "admin", true).await.1 });
    let (_dir, session) = cli_login(server, &name);
    let namespace = unique("ns");
    let setup = |session: &Path| {
        let output = bureau(
            session,
            &["matrix", "setup", &namespace, "--fleet", "prod", "--json"],
            None,
        );
        assert!(output.status.success(), "setup: {}", text(&output.stderr));
        serde_json::from_slice::<Value>(&output.stdout).expect("setup json")
    };
    let first = setup(&session);
    let rooms = first.as_array().expect("reports");
    assert_eq!(rooms.len(), 6);
    assert!(rooms.iter().all(|room| room["created"] == true));
    let aliases: Vec<&str> = rooms
        .iter()
        .filter_map(|room| room["alias"].as_str())
        .collect();
    let server_name = server.server_name();
    for expected in [
        format!("#{namespace}:{server_name}"),
        format!("#{namespace}/system:{server_name}"),
        format!("#{namespace}/template:{server_name}"),
        format!("#{namespace}/fleet/prod:{server_name}"),
        format!("#{namespace}/fleet/prod/machine:{server_name}"),
        format!("#{namespace}/fleet/prod/service:{server_name}"),
    ] {
        assert!(
            aliases.contains(&expected.as_str()),
            "{expected} missing from {aliases:?}"
        );
    }
    // Room version 12 IDs have no server part.
    assert!(
        rooms
            .iter()
            .all(|room| !room["room_id"].as_str().unwrap_or(":").contains(':'))
    );

    let second = setup(&session);
    let second = second.as_array().expect("reports");
    for (before, after) in rooms.iter().zip(second) {
        assert_eq!(
            before["room_id"], after["room_id"],
            "same rooms the second time"
        );
        assert_eq!(after["created"], false);
        assert_eq!(after["power_levels_repaired"], false);
    }

    let published: Vec<&Value> = rooms
        .iter()
        .flat_map(|room| room["templates_published"].as_array().into_iter().flatten())
        .collect();
    assert_eq!(published, [&json!("base"), &json!("agent-base")]);
    assert!(
        second
            .iter()
            .all(|room| room["templates_published"] == json!([]))
    );

    let template_room = format!("#{namespace}/template:{server_name}");
    let output = bureau(
        &session,
        &[
            "matrix",
            "state",
            "get",
            &template_room,
            "m.bureau.template",
            "agent-base",
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let agent_base: bureau::schema::Template =
        serde_json::from_slice(&output.stdout).expect("agent-base parses as a template");
    assert_eq!(agent_base, bureau::schema::Template::agent_base());
    let output = bureau(
        &session,
        &[
            "matrix",
            "state",
            "get",
            &template_room,
            "m.room.power_levels",
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let levels: Value = serde_json::from_slice(&output.stdout).expect("levels");
    assert_eq!(levels["events"]["m.bureau.template"], 100);
    assert_eq!(levels["events"]["m.bureau.credentials"], 100);
    assert_eq!(levels["state_default"], 100);

    let output = bureau(
        &session,
        &["matrix", "doctor", &namespace, "--fleet", "prod", "--json"],
        None,
    );
    assert!(
        output.status.success(),
        "doctor: {} {}",
        text(&output.stdout),
        text(&output.stderr)
    );

    // An ordinary member cannot change a template.
    runtime().block_on(async {
        let (member, member_name) = new_user(server, "member", false).await;
        let admin = Client::connect(&server.base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        let (admin, _) = admin
            .login_password(&name, &Secret::from_string(format!("{name}-password")))
            .await
            .expect("admin login");
        let room_id = admin
            .resolve_alias(&template_room)
            .await
            .expect("resolve")
            .expect("room");
        admin
            .invite(&room_id, &format!("@{member_name}:{server_name}"))
            .await
            .expect("invite");
        member.join(room_id.as_str()).await.expect("join");
        let error = member
            .state_put(
                &room_id,
                "m.bureau.template",
                "base",
                &json!({"command": ["sh"]}),
            )
            .await
            .expect_err("members may not change templates");
        assert_eq!(error.errcode(), Some("M_FORBIDDEN"), "{error}");
    });
}

#[test]
fn state_round_trips_through_the_cli_and_the_client() {
    let server = homeserver();
    let name = runtime().block_on(async { new_user(server, "state", true).await.1 });
    let (dir, session) = cli_login(server, &name);
    let namespace = unique("st");
    let output = bureau(&session, &["matrix", "setup", &namespace], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let room = format!("#{namespace}/system:{}", server.server_name());
    let content = json!({"principals": [{"principal": "acme/agent/pm", "template": "agent-base"}]});
    let file = dir.path().join("content.json");
    std::fs::write(&file, content.to_string()).expect("write");
    let output = bureau(
        &session,
        &[
            "matrix",
            "state",
            "set",
            &room,
            "m.bureau.machine_config",
            "acme/machine/box1",
            "--content",
            &format!("@{}", file.display()),
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let output = bureau(
        &session,
        &[
            "matrix",
            "state",
            "get",
            &room,
            "m.bureau.machine_config",
            "acme/machine/box1",
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(read, content);

    // A missing event is an error naming it; bad JSON is refused before anything is sent.
    let output = bureau(
        &session,
        &["matrix", "state", "get", &room, "m.bureau.nothing"],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("m.bureau.nothing"),
        "{}",
        text(&output.stderr)
    );
    let output = bureau(
        &session,
        &[
            "matrix",
            "state",
            "set",
            &room,
            "m.bureau.x",
            "--content",
            "{not json",
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stderr).contains("not JSON"),
        "{}",
        text(&output.stderr)
    );
}

#[test]
fn a_message_from_one_user_arrives_in_anothers_sync_stream() {
    let server = homeserver();
    runtime().block_on(async {
        let (alice, _) = new_user(server, "sender", false).await;
        let (bob, bob_name) = new_user(server, "receiver", false).await;
        let room_id = alice
            .create_room(&bureau::matrix::RoomOptions::default())
            .await
            .expect("create room");
        alice
            .invite(&room_id, &format!("@{bob_name}:{}", server.server_name()))
            .await
            .expect("invite");
        bob.join(room_id.as_str()).await.expect("join");

        let mut stream =
            SyncStream::new(bob.clone(), None, None).with_poll_timeout(Duration::from_secs(10));
        stream.next_batch().await.expect("initial sync");
        let event_id = alice
            .send_text(&room_id, "hello bob", false)
            .await
            .expect("send");
        let received = tokio::time::timeout(Duration::from_secs(20), async {
            loop {
                let batch = stream.next_batch().await.expect("sync");
                if let Some(event) = batch
                    .timeline_of(&room_id)
                    .find(|event| event["event_id"] == event_id.as_str())
                {
                    return event.clone();
                }
            }
        })
        .await
        .expect("the message arrives");
        assert_eq!(received["content"]["body"], "hello bob");
    });
}

#[test]
fn sync_resumes_across_a_homeserver_restart_with_every_event_exactly_once() {
    // A dedicated instance: this test restarts it.
    let mut server = LocalHomeserver::start(HomeserverConfig::default()).expect("start");
    let runtime = runtime();
    let (alice, room_id, mut stream) = runtime.block_on(async {
        let (alice, _) = new_user(&server, "restart", false).await;
        let room_id = alice
            .create_room(&bureau::matrix::RoomOptions::default())
            .await
            .expect("room");
        let mut stream =
            SyncStream::new(alice.clone(), None, None).with_poll_timeout(Duration::from_secs(2));
        stream.next_batch().await.expect("initial sync");
        for index in 0..3 {
            alice
                .send_text(&room_id, &format!("before {index}"), false)
                .await
                .expect("send before");
        }
        (alice, room_id, stream)
    });

    server.restart().expect("restart the homeserver");

    let bodies = runtime.block_on(async {
        for index in 0..3 {
            // The server may still be warming up: retry transient failures briefly.
            let mut attempts = 0;
            loop {
                match alice
                    .send_text(&room_id, &format!("after {index}"), false)
                    .await
                {
                    Ok(_) => break,
                    Err(error) if error.is_transient() && attempts < 20 => {
                        attempts += 1;
                        tokio::time::sleep(Duration::from_millis(250)).await;
                    }
                    Err(error) => panic!("send after restart: {error}"),
                }
            }
        }
        let mut bodies: Vec<String> = Vec::new();
        tokio::time::timeout(Duration::from_secs(60), async {
            while bodies.len() < 6 {
                let batch = stream.next_batch().await.expect("sync after restart");
                bodies.extend(
                    batch
                        .timeline_of(&room_id)
                        .filter_map(|event| event["content"]["body"].as_str())
                        .map(str::to_owned),
                );
            }
        })
        .await
        .expect("all six messages arrive");
        bodies
    });
    assert_eq!(
        bodies,
        [
            "before 0", "before 1", "before 2", "after 0", "after 1", "after 2"
        ],
        "every event exactly once, in order"
    );
}

mod python_support;

/// matrix-nio, pinned, from PyPI (see `python_support`).
fn nio_python() -> PathBuf {
    python_support::python_with("matrix-nio", "0.25.2", "nio")
}

#[test]
fn matrix_nio_reads_what_bureau_created() {
    let server = homeserver();
    let name = runtime().block_on(async { new_user(server, "nio", true).await.1 });
    let (_dir, session) = cli_login(server, &name);
    let namespace = unique("nio");
    let output = bureau(
        &session,
        &["matrix", "setup", &namespace, "--fleet", "prod"],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));
    let server_name = server.server_name();
    let system = format!("#{namespace}/system:{server_name}");
    let content = json!({"algorithm": "age-x25519", "public_key": "age1example"});
    let output = bureau(
        &session,
        &[
            "matrix",
            "state",
            "set",
            &system,
            "m.bureau.machine_key",
            "box1",
            "--content",
            &content.to_string(),
        ],
        None,
    );
    assert!(output.status.success(), "{}", text(&output.stderr));

    let aliases = [
        format!("#{namespace}:{server_name}"),
        format!("#{namespace}/template:{server_name}"),
        format!("#{namespace}/fleet/prod/machine:{server_name}"),
    ];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/nio_read.py");
    let output = Command::new(nio_python())
        .arg(script)
        .args([&server.base_url(), &name, &format!("{name}-password")])
        .args(&aliases)
        .args(["--", &system, "m.bureau.machine_key", "box1"])
        .output()
        .expect("run matrix-nio");
    assert!(output.status.success(), "nio: {}", text(&output.stderr));
    let read: Value = serde_json::from_slice(&output.stdout).expect("nio json");
    for alias in &aliases {
        let room_id = read["aliases"][alias].as_str();
        assert!(
            room_id.is_some_and(|id| id.starts_with('!')),
            "nio could not resolve {alias}: {read}"
        );
    }
    assert_eq!(read["state"], content, "{read}");
}

/// Type → JSON → room state → JSON → type, equal to the original, for one content type.
async fn state_round_trip<T>(
    client: &Client,
    room_id: &ruma::OwnedRoomId,
    key: &str,
    example: Value,
) where
    T: serde::Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let value: T = serde_json::from_value(example).expect("example parses");
    let event_type = format!(
        "m.bureau.test.{}",
        std::any::type_name::<T>()
            .rsplit("::")
            .next()
            .unwrap_or("x")
    );
    let content = serde_json::to_value(&value).expect("encode");
    client
        .state_put(room_id, &event_type, key, &content)
        .await
        .expect("state put");
    let read = client
        .state_get(room_id, &event_type, key)
        .await
        .expect("state get")
        .expect("present");
    let back: T = serde_json::from_value(read).expect("decodes");
    assert_eq!(
        back, value,
        "{event_type} changed on its way through the homeserver"
    );
}

#[test]
fn every_schema_type_round_trips_through_room_state() {
    use bureau::schema::*;
    let server = homeserver();
    runtime().block_on(async {
        let (admin, _) = new_user(server, "schema", true).await;
        let room_id = admin
            .create_room(&bureau::matrix::RoomOptions::default())
            .await
            .expect("room");
        let recipient = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
        state_round_trip::<MachineKey>(&admin, &room_id, "box1",
            json!({"algorithm": "age-x25519", "public_key": recipient})).await;
        state_round_trip::<MachineInfo>(&admin, &room_id, "box1", json!({
            "hostname": "box1", "kernel": "6.18", "cpu_model": "x", "cpu_count": 2,
            "memory_bytes": 25_000_000_000_u64, "bureau_version": "0.1.0", "labels": {"zone": "lab"}
        })).await;
        state_round_trip::<MachineStatus>(&admin, &room_id, "box1", json!({
            "reported_at": 1_718_000_000_000_u64, "cpu_percent": 37,
            "memory_used_bytes": 8_000_000_000_u64, "memory_total_bytes": 64_000_000_000_u64,
            "principals": [{"localpart": "acme/agent/pm", "state": "running", "pid": 4242}],
            "bureau_version": "0.1.0"
        })).await;
        state_round_trip::<MachineConfig>(&admin, &room_id, "", json!({
            "principals": [{
                "principal": "acme/agent/pm", "template": "agent-base",
                "payload": {"task": "triage"}, "restart_policy": "always",
                "authorization": {"grants": [{"actions": ["observe"], "targets": ["acme/agent/**"]}]}
            }],
            "bureau_version": "0.2.0"
        })).await;
        state_round_trip::<Credentials>(&admin, &room_id, "acme/agent/pm", json!({
            "version": 1, "recipients": [recipient], "key_names": ["OPENAI_API_KEY"],
            "ciphertext": "-----BEGIN AGE ENCRYPTED FILE-----\nYWJj\n-----END AGE ENCRYPTED FILE-----\n",
            "updated_at": 1_718_000_000_000_u64
        })).await;
        state_round_trip::<Template>(&admin, &room_id, "agent-base",
            serde_json::to_value(Template::agent_base()).expect("builtin")).await;
        state_round_trip::<Service>(&admin, &room_id, "stt", json!({
            "principal": "@acme/service/stt:bureau.local",
            "machine": "@acme/fleet/prod/machine/box1:bureau.local",
            "capabilities": ["stt"], "endpoints": [{"name": "api", "protocol": "http"}]
        })).await;
        state_round_trip::<Layout>(&admin, &room_id, "", json!({"windows": [
            {"name": "agents", "panes": [{"principal": "acme/agent/pm"},
                {"principal": "acme/agent/dev", "split": "horizontal", "size": 50}]}
        ]})).await;
        state_round_trip::<WebrtcSignal>(&admin, &room_id, "a|b", json!({
            "kind": "offer", "sdp": "v=0\r\n", "created_at": 1_718_000_000_000_u64
        })).await;
        state_round_trip::<TokenSigningKey>(&admin, &room_id, "", json!({
            "algorithm": "ed25519", "public_key": "11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        })).await;
    });
}

#[test]
fn watch_prints_new_events_as_json_lines_and_history_pages() {
    use std::io::{BufRead, BufReader};
    let server = homeserver();
    let name = runtime().block_on(async { new_user(server, "watch", true).await.1 });
    let (_dir, session) = cli_login(server, &name);
    let namespace = unique("w");
    let output = bureau(&session, &["matrix", "setup", &namespace], None);
    assert!(output.status.success(), "{}", text(&output.stderr));
    let room = format!("#{namespace}/system:{}", server.server_name());

    let mut watcher = Command::new(BUREAU)
        .args(["matrix", "watch", &room])
        .env("BUREAU_SESSION_FILE", &session)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watch");
    let mut lines = BufReader::new(watcher.stdout.take().expect("stdout")).lines();
    // A message sent before the watcher's first sync completes belongs to the room as it was
    // and is not printed, so keep sending (bounded) until one is printed. The sender stops the
    // watcher when it gives up, which ends the read below with EOF instead of a hang.
    let printed = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher_pid = watcher.id();
    let sender = {
        let printed = printed.clone();
        let session = session.clone();
        let room = room.clone();
        std::thread::spawn(move || {
            for attempt in 0..60 {
                if printed.load(std::sync::atomic::Ordering::SeqCst) {
                    return;
                }
                let output = bureau(
                    &session,
                    &["matrix", "send", &room, &format!("watched {attempt}")],
                    None,
                );
                assert!(output.status.success(), "{}", text(&output.stderr));
                std::thread::sleep(Duration::from_millis(250));
            }
            let _ = Command::new("kill").arg(watcher_pid.to_string()).status();
        })
    };
    let line = lines.next().and_then(Result::ok);
    printed.store(true, std::sync::atomic::Ordering::SeqCst);
    let _ = watcher.kill();
    let _ = watcher.wait();
    sender.join().expect("sender thread");
    let line = line.expect("watch printed an event within 15 s");
    let event: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(event["type"], "m.room.message");
    assert!(
        event["content"]["body"]
            .as_str()
            .unwrap_or("")
            .starts_with("watched"),
        "{event}"
    );

    runtime().block_on(async {
        let (client, _) = Client::connect(&server.base_url(), &ConnectOptions::default())
            .await
            .expect("connect")
            .login_password(&name, &Secret::from_string(format!("{name}-password")))
            .await
            .expect("login");
        let room_id = client
            .resolve_alias(&room)
            .await
            .expect("resolve")
            .expect("room");
        for index in 0..5 {
            client
                .send_text(&room_id, &format!("page {index}"), true)
                .await
                .expect("send");
        }
        let first = client
            .messages(&room_id, None, true, 3)
            .await
            .expect("page 1");
        assert_eq!(first.events.len(), 3);
        assert_eq!(first.events[0]["content"]["body"], "page 4", "newest first");
        let second = client
            .messages(&room_id, first.end.as_deref(), true, 2)
            .await
            .expect("page 2");
        let bodies: Vec<&str> = second
            .events
            .iter()
            .filter_map(|event| event["content"]["body"].as_str())
            .collect();
        assert_eq!(bodies, ["page 1", "page 0"]);
        client
            .set_presence(true, Some("testing"))
            .await
            .expect("presence");
    });
}

#[test]
fn standard_registration_with_a_registration_token() {
    // A dedicated instance: this one opens /register behind a token.
    let server = LocalHomeserver::start(HomeserverConfig {
        registration_requires_token: true,
        ..HomeserverConfig::default()
    })
    .expect("start");
    runtime().block_on(async {
        let (admin, _) = new_user(&server, "tokenadmin", true).await;
        let created = admin
            .send_json(
                http::Method::POST,
                "/_synapse/admin/v1/registration_tokens/new",
                Some(&json!({"uses_allowed": 1})),
            )
            .await
            .expect("create a registration token");
        let token = Secret::from_string(created["token"].as_str().expect("token").to_owned());
        let anonymous = Client::connect(&server.base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        let password = Secret::from_string("pw-for-newcomer".to_owned());

        let error = anonymous
            .register("newcomer", &password, None)
            .await
            .expect_err("no token, no account");
        assert!(error.to_string().contains("registration token"), "{error}");

        let newcomer = anonymous
            .register("newcomer", &password, Some(&token))
            .await
            .expect("register with the token");
        assert_eq!(
            newcomer.whoami().await.expect("whoami").as_str(),
            format!("@newcomer:{}", server.server_name())
        );
        // The token allowed one use.
        let error = anonymous
            .register("second", &password, Some(&token))
            .await
            .expect_err("token used up");
        assert!(error.errcode().is_some(), "{error}");
    });
}

#[test]
fn kick_leave_and_logout() {
    let server = homeserver();
    runtime().block_on(async {
        let (owner, _) = new_user(server, "owner", false).await;
        let (guest, guest_name) = new_user(server, "guest", false).await;
        let guest_id = format!("@{guest_name}:{}", server.server_name());
        let room_id = owner
            .create_room(&bureau::matrix::RoomOptions::default())
            .await
            .expect("room");
        owner.invite(&room_id, &guest_id).await.expect("invite");
        guest.join(room_id.as_str()).await.expect("join");
        owner
            .kick(&room_id, &guest_id, Some("testing"))
            .await
            .expect("kick");
        let member = owner
            .state_get(&room_id, "m.room.member", &guest_id)
            .await
            .expect("member state")
            .expect("present");
        assert_eq!(member["membership"], "leave");
        assert_eq!(member["reason"], "testing");
        let error = guest
            .send_text(&room_id, "still here?", false)
            .await
            .expect_err("a kicked user cannot send");
        assert_eq!(error.errcode(), Some("M_FORBIDDEN"), "{error}");

        owner.leave(&room_id).await.expect("leave");
        owner.logout().await.expect("logout");
        let error = owner.whoami().await.expect_err("logged out");
        assert!(matches!(error, MatrixError::UnknownToken { .. }), "{error}");
    });
}
