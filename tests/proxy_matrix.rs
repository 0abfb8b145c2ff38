//! The proxy's `/v1/matrix/*` routes against a real Synapse: the agent acts in Matrix with its
//! principal's token without ever holding it.

use bureau::homeserver::{HomeserverConfig, LocalHomeserver};
use bureau::matrix::{Client, ConnectOptions};
use bureau::secret::Secret;
use serde_json::json;

mod proxy_support;
use proxy_support::{RunningProxy, raw_call as call};

#[test]
fn the_agent_uses_matrix_through_its_proxy_with_grants() {
    let server = LocalHomeserver::start(HomeserverConfig::default()).expect("homeserver");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (token, user_id) = runtime.block_on(async {
        let client = Client::connect(&server.base_url(), &ConnectOptions::default())
            .await
            .expect("connect");
        let agent = client
            .register_with_shared_secret(
                &Secret::from_string(server.shared_secret().to_owned()),
                "agent",
                &Secret::from_string("agent-password".to_owned()),
                false,
            )
            .await
            .expect("register");
        let token = agent
            .access_token()
            .and_then(Secret::expose_str)
            .expect("token")
            .to_owned();
        (token, agent.user_id().expect("user").to_string())
    });

    let payload = json!({
        "identity": {"homeserver_url": server.base_url(), "user_id": user_id, "access_token": token},
        "credentials": {},
        "grants": [{"actions": ["matrix/create-room", "matrix/send", "matrix/read",
                                "matrix/read-state", "matrix/write-state", "matrix/sync"]}]
    });
    let proxy = RunningProxy::start(None, "agent", &json!({}), &payload, &[]);
    let socket = proxy.socket.clone();

    let (status, whoami) = call(&socket, "GET", "/v1/matrix/whoami", None);
    assert_eq!(
        (status, whoami["user_id"].as_str()),
        (200, Some(user_id.as_str()))
    );
    let (status, identity) = call(&socket, "GET", "/v1/identity", None);
    assert_eq!(status, 200);
    assert!(
        !identity.to_string().contains(&token),
        "the token leaked: {identity}"
    );

    let (status, room) = call(
        &socket,
        "POST",
        "/v1/matrix/room",
        Some(&json!({"name": "work"})),
    );
    assert_eq!(status, 200, "{room}");
    let room_id = room["room_id"].as_str().expect("room id").to_owned();
    let (status, sent) = call(
        &socket,
        "POST",
        "/v1/matrix/message",
        Some(&json!({"room": room_id, "body": "hello from the agent"})),
    );
    assert_eq!(status, 200, "{sent}");
    let (status, page) = call(
        &socket,
        "GET",
        &format!("/v1/matrix/messages?room={}&limit=5", urlencode(&room_id)),
        None,
    );
    assert_eq!(status, 200, "{page}");
    assert!(
        page["events"]
            .as_array()
            .expect("events")
            .iter()
            .any(|event| event["content"]["body"] == "hello from the agent"),
        "{page}"
    );
    let (status, _) = call(
        &socket,
        "PUT",
        "/v1/matrix/state",
        Some(&json!({"room": room_id, "type": "m.bureau.note", "key": "k", "content": {"n": 1}})),
    );
    assert_eq!(status, 200);
    let (status, content) = call(
        &socket,
        "GET",
        &format!(
            "/v1/matrix/state?room={}&type=m.bureau.note&key=k",
            urlencode(&room_id)
        ),
        None,
    );
    assert_eq!((status, content), (200, json!({"n": 1})));
    let (status, batch) = call(&socket, "GET", "/v1/matrix/sync?timeout_ms=0", None);
    assert_eq!(status, 200);
    assert!(batch["next_batch"].is_string(), "{batch}");

    // Not granted: joining.
    let (status, refused) = call(
        &socket,
        "POST",
        "/v1/matrix/join",
        Some(&json!({"room": room_id})),
    );
    assert_eq!(
        (status, refused["errcode"].as_str()),
        (403, Some("M_FORBIDDEN"))
    );
    drop(proxy);
}

fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (byte as char).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}
