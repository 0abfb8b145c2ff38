//! `bureau-proxy` as a real process on real Unix sockets, in front of real upstream servers
//! started by the tests.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request};
use axum::routing::{any, get, post};
use bytes::Bytes;
use http_body_util::{BodyExt, StreamBody};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::Notify;

const CANARY: &str = "canary-7f3a9c1e-secret-value";

/// Where the SSE route waits before finishing the stream.
static SSE_RELEASE: std::sync::OnceLock<Arc<Notify>> = std::sync::OnceLock::new();

/// The upstream: echoes what it received (headers, method, path, body size), streams on demand.
async fn upstream() -> (String, tokio::task::JoinHandle<()>) {
    let release = SSE_RELEASE.get_or_init(|| Arc::new(Notify::new())).clone();
    let app = Router::new()
        .route(
            "/echo/{*rest}",
            any(|request: Request| async move {
                let headers: HashMap<String, String> = request
                    .headers()
                    .iter()
                    .map(|(name, value)| {
                        (name.to_string(), value.to_str().unwrap_or("").to_owned())
                    })
                    .collect();
                let method = request.method().to_string();
                let uri = request.uri().to_string();
                let body = request
                    .into_body()
                    .collect()
                    .await
                    .map(|b| b.to_bytes().len());
                axum::Json(json!({"headers": headers, "method": method, "uri": uri,
                                  "body_bytes": body.unwrap_or(0)}))
            }),
        )
        .route("/quiet", get(|| async { axum::Json(json!({"ok": true})) }))
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .route(
            "/upload",
            post(|request: Request| async move {
                let mut body = request.into_body();
                let mut total: u64 = 0;
                while let Some(frame) = body.frame().await {
                    if let Ok(data) = frame.expect("frame").into_data() {
                        total += data.len() as u64;
                    }
                }
                axum::Json(json!({"received": total}))
            }),
        )
        .route(
            "/download",
            get(|Query(query): Query<HashMap<String, u64>>| async move {
                let total = query.get("bytes").copied().unwrap_or(0);
                let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                let chunks = (0..total.div_ceil(chunk.len() as u64)).map(move |index| {
                    let remaining = total - index * chunk.len() as u64;
                    let piece = chunk.slice(..(remaining.min(chunk.len() as u64) as usize));
                    Ok::<_, std::io::Error>(hyper::body::Frame::data(piece))
                });
                Body::new(StreamBody::new(futures_stream(chunks)))
            }),
        )
        .route(
            "/sse",
            get(move || {
                let release = release.clone();
                async move {
                    let (sender, receiver) = tokio::sync::mpsc::channel::<
                        Result<hyper::body::Frame<Bytes>, std::io::Error>,
                    >(4);
                    tokio::spawn(async move {
                        let _ = sender
                            .send(Ok(hyper::body::Frame::data(Bytes::from_static(
                                b"data: first\n\n",
                            ))))
                            .await;
                        release.notified().await;
                        let _ = sender
                            .send(Ok(hyper::body::Frame::data(Bytes::from_static(
                                b"data: last\n\n",
                            ))))
                            .await;
                    });
                    axum::response::Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(Body::new(StreamBody::new(ReceiverStream(receiver))))
                        .expect("response")
                }
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let handle = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, handle)
}

/// A `Stream` over an iterator (no futures crate needed).
fn futures_stream<I: Iterator + Unpin>(iter: I) -> IterStream<I> {
    IterStream(iter)
}

struct IterStream<I>(I);

impl<I: Iterator + Unpin> futures_core_like::Stream for IterStream<I> {
    type Item = I::Item;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        std::task::Poll::Ready(self.0.next())
    }
}

struct ReceiverStream<T>(tokio::sync::mpsc::Receiver<T>);

impl<T> futures_core_like::Stream for ReceiverStream<T> {
    type Item = T;
    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        context: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<T>> {
        self.0.poll_recv(context)
    }
}

/// `StreamBody` wants `futures_core::Stream`; it is re-exported by http-body-util's dependency.
mod futures_core_like {
    pub use futures_core::Stream;
}

mod proxy_support;
use proxy_support::RunningProxy;

fn start_proxy(services: Value, payload: Value, extra: &[&str]) -> RunningProxy {
    RunningProxy::start(None, "pm", &services, &payload, extra)
}

fn payload() -> Value {
    json!({"credentials": {"API_KEY": CANARY, "OTHER": "other-value"},
           "grants": [{"actions": ["matrix/send"], "targets": ["#allowed/**"]}]})
}

/// One request over a Unix socket; returns status, headers and the whole body.
async fn call(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> (u16, http::HeaderMap, Bytes) {
    let response = send(socket, method, path, headers, body).await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, headers, body)
}

async fn send(
    socket: &Path,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Body,
) -> http::Response<hyper::body::Incoming> {
    let stream = tokio::net::UnixStream::connect(socket)
        .await
        .expect("connect");
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(connection);
    let mut request = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "proxy");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    sender
        .send_request(request.body(body).expect("request"))
        .await
        .expect("send")
}

fn json_of(body: &Bytes) -> Value {
    serde_json::from_slice(body).unwrap_or_else(|_| json!({"raw": String::from_utf8_lossy(body)}))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn injects_the_credential_and_replaces_the_agents_authorization() {
    runtime().block_on(async {
        let (upstream_url, _server) = upstream().await;
        let proxy = start_proxy(
            json!({"api": {"upstream_url": upstream_url, "auth_scheme": "Bearer",
                           "inject_headers": {"Authorization": "API_KEY"},
                           "strip_headers": ["X-Agent-Secret"]}}),
            payload(),
            &[],
        );
        let (status, _, body) = call(
            &proxy.socket,
            "POST",
            "/http/api/echo/v1/chat?model=x",
            &[
                ("authorization", "Bearer agent-made-this-up"),
                ("x-agent-secret", "1"),
                ("x-kept", "yes"),
            ],
            Body::from("hello"),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let seen = json_of(&body);
        assert_eq!(seen["headers"]["authorization"], format!("Bearer {CANARY}"));
        assert_eq!(seen["headers"]["x-kept"], "yes");
        assert!(seen["headers"].get("x-agent-secret").is_none());
        assert_eq!(seen["method"], "POST");
        assert_eq!(seen["uri"], "/echo/v1/chat?model=x");
        assert_eq!(seen["body_bytes"], 5);
    });
}

#[test]
fn the_canary_secret_never_reaches_the_agent_the_logs_or_proc() {
    let runtime = runtime();
    let (proxy, responses) = runtime.block_on(async {
        let (upstream_url, _server) = upstream().await;
        let proxy = start_proxy(
            json!({
                "api": {"upstream_url": upstream_url, "inject_headers": {"X-Key": "API_KEY"}},
                "down": {"upstream_url": "http://127.0.0.1:9", "inject_headers": {"X-Key": "API_KEY"}},
                "slow": {"upstream_url": upstream_url, "inject_headers": {"X-Key": "API_KEY"}, "timeout_ms": 200},
                "ruled": {"upstream_url": upstream_url, "inject_headers": {"X-Key": "API_KEY"},
                          "rules": [{"methods": ["GET"], "paths": ["/quiet"]}]}
            }),
            payload(),
            &[],
        );
        let mut responses = String::new();
        for (method, path) in [
            ("GET", "/health"),
            ("GET", "/v1/services"),
            ("GET", "/v1/grants"),
            ("GET", "/v1/identity"),
            ("GET", "/http/api/quiet"),
            ("GET", "/http/down/quiet"),
            ("GET", "/http/slow/slow"),
            ("DELETE", "/http/ruled/quiet"),
            ("GET", "/http/nosuch/x"),
            ("POST", "/v1/matrix/join"),
        ] {
            let (status, headers, body) =
                call(&proxy.socket, method, path, &[("content-type", "application/json")], Body::from("{\"room\":\"#x:y\"}")).await;
            responses.push_str(&format!("{status} {headers:?} {}\n", String::from_utf8_lossy(&body)));
        }
        (proxy, responses)
    });
    assert!(responses.contains("502") && responses.contains("504") && responses.contains("403"));
    assert!(
        !responses.contains(CANARY),
        "a response carried the secret:\n{responses}"
    );
    let pid = proxy.child.id();
    for file in ["cmdline", "environ"] {
        let contents = std::fs::read(format!("/proc/{pid}/{file}")).unwrap_or_default();
        assert!(
            !String::from_utf8_lossy(&contents).contains(CANARY),
            "the secret is in /proc/{pid}/{file}"
        );
    }
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    assert!(
        status.contains("\nDumpable:\t0") || !status.contains("Dumpable"),
        "{status}"
    );
    let output = std::fs::read_to_string(&proxy.log).expect("log");
    assert!(!output.contains(CANARY), "the secret is in the proxy's log");
    assert!(
        output.contains("/http/down/quiet"),
        "one log line per request: {output}"
    );
}

#[test]
fn server_sent_events_stream_through_as_they_arrive() {
    runtime().block_on(async {
        let (upstream_url, _server) = upstream().await;
        let proxy = start_proxy(
            json!({"api": {"upstream_url": upstream_url}}),
            payload(),
            &[],
        );
        let response = send(&proxy.socket, "GET", "/http/api/sse", &[], Body::empty()).await;
        assert_eq!(response.status(), 200);
        let mut body = response.into_body();
        let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
            .await
            .expect("the first event arrives before the upstream finishes")
            .expect("frame")
            .expect("frame ok")
            .into_data()
            .expect("data");
        assert_eq!(&first[..], b"data: first\n\n");
        SSE_RELEASE.get().expect("release").notify_one();
        let rest = body.collect().await.expect("rest").to_bytes();
        assert_eq!(&rest[..], b"data: last\n\n");
    });
}

/// Peak resident memory of a process (`VmHWM`), in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|value| value.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_100_mb_upload_and_download_keep_the_proxy_small() {
    const SIZE: u64 = 100 * 1024 * 1024;
    runtime().block_on(async {
        let (upstream_url, _server) = upstream().await;
        let proxy = start_proxy(
            json!({"api": {"upstream_url": upstream_url}}),
            payload(),
            &[],
        );
        let chunk = Bytes::from(vec![b'u'; 256 * 1024]);
        let chunks = (0..SIZE / chunk.len() as u64)
            .map(move |_| Ok::<_, std::io::Error>(hyper::body::Frame::data(chunk.clone())));
        let (status, _, body) = call(
            &proxy.socket,
            "POST",
            "/http/api/upload",
            &[],
            Body::new(StreamBody::new(futures_stream(chunks))),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(json_of(&body)["received"], SIZE);

        let response = send(
            &proxy.socket,
            "GET",
            &format!("/http/api/download?bytes={SIZE}"),
            &[],
            Body::empty(),
        )
        .await;
        let mut body = response.into_body();
        let mut received: u64 = 0;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.expect("frame").into_data() {
                received += data.len() as u64;
            }
        }
        assert_eq!(received, SIZE);
        let peak = peak_rss_kib(proxy.child.id());
        assert!(
            peak < 48 * 1024,
            "the proxy's peak RSS grew to {peak} KiB for 2×100 MB"
        );
    });
}

#[test]
fn errors_are_clear_json_with_the_right_status() {
    runtime().block_on(async {
        let (upstream_url, _server) = upstream().await;
        let proxy = start_proxy(
            json!({
                "down": {"upstream_url": "http://127.0.0.1:9"},
                "slow": {"upstream_url": upstream_url, "timeout_ms": 300},
                "small": {"upstream_url": upstream_url, "max_body_bytes": 1000},
                "limited": {"upstream_url": upstream_url, "rate": {"per_second": 0.5, "burst": 1}},
                "ruled": {"upstream_url": upstream_url,
                          "rules": [{"methods": ["GET"], "paths": ["/quiet"]}]}
            }),
            payload(),
            &[],
        );
        let check = |status: u16, body: &Bytes, expected_status: u16, needle: &str| {
            let json = json_of(body);
            assert_eq!(status, expected_status, "{json}");
            let error = json["error"].as_str().unwrap_or_default();
            assert!(
                error.contains(needle),
                "{expected_status}: {error:?} should mention {needle:?}"
            );
        };
        let (status, _, body) =
            call(&proxy.socket, "GET", "/http/down/x", &[], Body::empty()).await;
        check(status, &body, 502, "service down is unreachable");
        let (status, _, body) =
            call(&proxy.socket, "GET", "/http/slow/slow", &[], Body::empty()).await;
        check(status, &body, 504, "did not answer within 300 ms");
        let (status, _, body) = call(
            &proxy.socket,
            "POST",
            "/http/small/echo/x",
            &[],
            Body::from(vec![0u8; 2000]),
        )
        .await;
        check(status, &body, 413, "limit of 1000 bytes");
        let (status, _, _) = call(
            &proxy.socket,
            "GET",
            "/http/limited/quiet",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(status, 200);
        let (status, headers, body) = call(
            &proxy.socket,
            "GET",
            "/http/limited/quiet",
            &[],
            Body::empty(),
        )
        .await;
        check(status, &body, 429, "rate limit of service limited");
        assert_eq!(
            headers.get("retry-after").and_then(|v| v.to_str().ok()),
            Some("2")
        );
        let (status, _, body) = call(
            &proxy.socket,
            "DELETE",
            "/http/ruled/quiet",
            &[],
            Body::empty(),
        )
        .await;
        check(status, &body, 403, "rules do not allow DELETE /quiet");
        let (status, _, _) = call(
            &proxy.socket,
            "GET",
            "/http/ruled/quiet",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(status, 200, "the allowed method and path pass");
        let (status, _, body) =
            call(&proxy.socket, "GET", "/http/nosuch/x", &[], Body::empty()).await;
        check(status, &body, 404, "no service named \"nosuch\"");
    });
}

#[test]
fn matrix_routes_need_a_grant() {
    runtime().block_on(async {
        let proxy = start_proxy(json!({}), payload(), &[]);
        for (path, body) in [
            (
                "/v1/matrix/join",
                json!({"room": "#acme/fleet:bureau.local"}),
            ),
            (
                "/v1/matrix/invite",
                json!({"room": "#acme:bureau.local", "user_id": "@x:bureau.local"}),
            ),
            ("/v1/matrix/room", json!({"alias": "acme/new"})),
            (
                "/v1/matrix/message",
                json!({"room": "#other:bureau.local", "body": "hi"}),
            ),
        ] {
            let (status, _, reply) = call(
                &proxy.socket,
                "POST",
                path,
                &[("content-type", "application/json")],
                Body::from(body.to_string()),
            )
            .await;
            let reply = json_of(&reply);
            assert_eq!(status, 403, "{path}: {reply}");
            assert_eq!(reply["errcode"], "M_FORBIDDEN", "{path}: {reply}");
            assert!(
                reply["error"].as_str().unwrap_or("").contains("matrix/"),
                "{reply}"
            );
        }
        // The grant's own action on a matching target gets past the gate (and then fails only
        // because this proxy holds no Matrix identity).
        let (status, _, reply) = call(
            &proxy.socket,
            "POST",
            "/v1/matrix/message",
            &[("content-type", "application/json")],
            Body::from(json!({"room": "#allowed/room:bureau.local", "body": "hi"}).to_string()),
        )
        .await;
        assert_eq!(status, 404, "{}", json_of(&reply));
        assert!(
            json_of(&reply)["error"]
                .as_str()
                .unwrap_or("")
                .contains("no Matrix identity")
        );
    });
}

#[test]
fn an_expired_grant_is_neither_honoured_nor_listed() {
    runtime().block_on(async {
        // Expired long ago, and expiring in the year 2286: only the second applies.
        let payload = json!({"grants": [
            {"actions": ["matrix/send"], "targets": ["#expired/**"], "expires_at": 1},
            {"actions": ["matrix/send"], "targets": ["#current/**"],
             "expires_at": 9_999_999_999_999_u64}]});
        let proxy = start_proxy(json!({}), payload, &[]);
        let message = |room: &str| {
            call(
                &proxy.socket,
                "POST",
                "/v1/matrix/message",
                &[("content-type", "application/json")],
                Body::from(json!({"room": room, "body": "hi"}).to_string()),
            )
        };
        let (status, _, reply) = message("#expired/room:bureau.local").await;
        assert_eq!(status, 403, "{}", json_of(&reply));
        assert_eq!(json_of(&reply)["errcode"], "M_FORBIDDEN");
        // Past the gate (then refused only for want of a Matrix identity).
        let (status, _, reply) = message("#current/room:bureau.local").await;
        assert_eq!(status, 404, "{}", json_of(&reply));
        let (_, _, grants) = call(&proxy.socket, "GET", "/v1/grants", &[], Body::empty()).await;
        let grants = json_of(&grants);
        assert_eq!(grants.as_array().map(Vec::len), Some(1), "{grants}");
        assert_eq!(grants[0]["targets"][0], "#current/**");
        assert_eq!(grants[0]["expires_at"], 9_999_999_999_999_u64);
    });
}

#[test]
fn admin_socket_manages_services_grants_and_rotates_credentials_live() {
    use std::os::unix::fs::PermissionsExt;
    runtime().block_on(async {
        let (upstream_url, _server) = upstream().await;
        let proxy = start_proxy(json!({}), payload(), &[]);
        let mode = std::fs::metadata(&proxy.admin)
            .expect("admin")
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "the admin socket is owner-only");

        let service = json!({"upstream_url": upstream_url, "inject_headers": {"X-Key": "API_KEY"}});
        let (status, _, body) = call(
            &proxy.admin,
            "PUT",
            "/v1/admin/services/api",
            &[],
            Body::from(service.to_string()),
        )
        .await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let (status, _, body) = call(
            &proxy.admin,
            "PUT",
            "/v1/admin/services/Bad%20Name",
            &[],
            Body::from(service.to_string()),
        )
        .await;
        assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
        let (_, _, listed) = call(
            &proxy.admin,
            "GET",
            "/v1/admin/services",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(
            json_of(&listed)["api"]["inject_headers"]["X-Key"],
            "API_KEY"
        );
        // The agent socket has no admin routes.
        let (status, _, _) = call(
            &proxy.socket,
            "PUT",
            "/v1/admin/credentials",
            &[],
            Body::from("{}"),
        )
        .await;
        assert_eq!(status, 404);

        // Rotation under load: 4 workers keep calling; no request fails; afterwards the new
        // value is what the upstream sees.
        // Rotation happens after the workers completed 40 requests, and they stop 40 requests
        // after it: waits on the count of finished requests, not on time.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (finished, mut finished_count) = tokio::sync::watch::channel(0usize);
        let finished = Arc::new(finished);
        let mut workers = Vec::new();
        for _ in 0..4 {
            let socket = proxy.socket.clone();
            let stop = stop.clone();
            let finished = finished.clone();
            workers.push(tokio::spawn(async move {
                let mut seen = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let (status, _, body) =
                        call(&socket, "GET", "/http/api/echo/x", &[], Body::empty()).await;
                    assert_eq!(status, 200, "a request failed during rotation");
                    seen.push(
                        json_of(&body)["headers"]["x-key"]
                            .as_str()
                            .unwrap_or("")
                            .to_owned(),
                    );
                    finished.send_modify(|count| *count += 1);
                }
                seen
            }));
        }
        finished_count
            .wait_for(|count| *count >= 40)
            .await
            .expect("workers running");
        let (status, _, body) = call(
            &proxy.admin,
            "PUT",
            "/v1/admin/credentials",
            &[],
            Body::from(json!({"API_KEY": "rotated-value"}).to_string()),
        )
        .await;
        assert_eq!(status, 200);
        assert!(
            !String::from_utf8_lossy(&body).contains("rotated-value"),
            "values are never echoed"
        );
        let rotated_at = *finished_count.borrow();
        finished_count
            .wait_for(|count| *count >= rotated_at + 40)
            .await
            .expect("workers running");
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let mut all = Vec::new();
        for worker in workers {
            all.extend(worker.await.expect("worker"));
        }
        assert!(
            all.iter()
                .all(|value| value == CANARY || value == "rotated-value")
        );
        assert!(all.iter().any(|value| value == "rotated-value"));
        let (_, _, body) = call(&proxy.socket, "GET", "/http/api/echo/x", &[], Body::empty()).await;
        assert_eq!(json_of(&body)["headers"]["x-key"], "rotated-value");

        let (status, _, _) = call(
            &proxy.admin,
            "PUT",
            "/v1/admin/grants",
            &[],
            Body::from(json!([{"actions": ["matrix/join"]}]).to_string()),
        )
        .await;
        assert_eq!(status, 200);
        let (_, _, grants) = call(&proxy.socket, "GET", "/v1/grants", &[], Body::empty()).await;
        assert_eq!(json_of(&grants)[0]["actions"][0], "matrix/join");
        // A grant that allows nothing, or with a misspelt field (here an expiry that would
        // otherwise be ignored, leaving the grant in force for good), is a mistake, named,
        // and changes nothing.
        for (grants, named) in [
            (
                json!([{"actions": ["matrix/join"]}, {"actions": []}]),
                "grants[1] has no actions",
            ),
            (
                json!([{"actions": ["matrix/join"], "expires": 5}]),
                "unknown field `expires`",
            ),
        ] {
            let (status, _, reply) = call(
                &proxy.admin,
                "PUT",
                "/v1/admin/grants",
                &[],
                Body::from(grants.to_string()),
            )
            .await;
            assert_eq!(status, 400);
            assert!(
                json_of(&reply)["error"]
                    .as_str()
                    .unwrap_or("")
                    .contains(named),
                "{}",
                json_of(&reply)
            );
        }
        let (_, _, grants) = call(&proxy.socket, "GET", "/v1/grants", &[], Body::empty()).await;
        assert_eq!(json_of(&grants).as_array().map(Vec::len), Some(1));
        let (status, _, _) = call(
            &proxy.admin,
            "DELETE",
            "/v1/admin/services/api",
            &[],
            Body::empty(),
        )
        .await;
        assert_eq!(status, 204);
        let (status, _, _) =
            call(&proxy.socket, "GET", "/http/api/echo/x", &[], Body::empty()).await;
        assert_eq!(status, 404);
    });
}

/// A raw HTTP/1.1 upstream that counts connections and records each request's head. With
/// `close_after_each`, it closes every connection after one response without saying so (no
/// `Connection: close`), as an upstream's idle timeout does.
struct CountingUpstream {
    connections: Arc<std::sync::atomic::AtomicUsize>,
    heads: Arc<std::sync::Mutex<Vec<String>>>,
}

impl CountingUpstream {
    fn new() -> Self {
        Self {
            connections: Arc::default(),
            heads: Arc::default(),
        }
    }

    async fn serve<S>(&self, mut stream: S, close_after_each: bool)
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        self.connections
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut buffer = Vec::new();
        loop {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(read) => buffer.extend_from_slice(&chunk[..read]),
            }
            while let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
                let head: Vec<u8> = buffer.drain(..end + 4).collect();
                self.heads
                    .lock()
                    .expect("heads")
                    .push(String::from_utf8_lossy(&head).into_owned());
                let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                if stream.write_all(reply).await.is_err() {
                    return;
                }
                if close_after_each {
                    return;
                }
            }
        }
    }

    fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }
}

async fn serve_tcp(upstream: Arc<CountingUpstream>, close_after_each: bool) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move { upstream.serve(stream, close_after_each).await });
        }
    });
    address.to_string()
}

#[test]
fn upstream_connections_are_kept_alive_and_a_closed_one_is_replaced_without_an_error() {
    runtime().block_on(async {
        let kept = Arc::new(CountingUpstream::new());
        let kept_address = serve_tcp(kept.clone(), false).await;
        let closing = Arc::new(CountingUpstream::new());
        let closing_address = serve_tcp(closing.clone(), true).await;
        let unix = Arc::new(CountingUpstream::new());
        let directory = tempfile::tempdir().expect("tempdir");
        let unix_path = directory.path().join("upstream.sock");
        let listener = tokio::net::UnixListener::bind(&unix_path).expect("bind unix");
        let unix_server = unix.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let upstream = unix_server.clone();
                tokio::spawn(async move { upstream.serve(stream, false).await });
            }
        });
        let proxy = start_proxy(
            json!({"kept": {"upstream_url": format!("http://{kept_address}/base/")},
                   "closing": {"upstream_url": format!("http://{closing_address}")},
                   "local": {"upstream_unix": unix_path}}),
            payload(),
            &[],
        );
        for round in 0..4 {
            for service in ["kept", "closing", "local"] {
                let (status, _, body) = call(
                    &proxy.socket,
                    "GET",
                    &format!("/http/{service}/item/{round}"),
                    &[],
                    Body::empty(),
                )
                .await;
                assert_eq!(
                    (status, body.as_ref()),
                    (200, b"ok".as_ref()),
                    "round {round}, service {service}"
                );
            }
        }
        assert_eq!(
            kept.connections(),
            1,
            "four requests, one kept-alive connection"
        );
        assert_eq!(unix.connections(), 1, "Unix upstreams are pooled too");
        assert_eq!(closing.connections(), 4, "a closed connection is replaced");
        let heads = kept.heads.lock().expect("heads").clone();
        assert!(
            heads[3].starts_with("GET /base/item/3 HTTP/1.1\r\n"),
            "{}",
            heads[3]
        );
        assert!(
            heads[3]
                .to_ascii_lowercase()
                .contains(&format!("host: {kept_address}\r\n")),
            "the upstream sees its own authority as Host: {}",
            heads[3]
        );
    });
}
