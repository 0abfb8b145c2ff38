//! The quickstart's demo: a small HTTP service that wants a bearer token, and the template of a
//! principal that greets its room through its proxy and calls that service. `cargo xtask
//! quickstart` and the runtime tests use the same pieces, so the demo a newcomer runs is the one
//! CI checks.
//!
//! Invariant: the demo service records what it was sent (the `Authorization` header) so a
//! caller can prove the credential was injected by the proxy — the principal's script never
//! has it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};
use tokio::net::TcpListener;

/// The credential the demo service wants, and the proxy service name it is reached under.
pub const DEMO_CREDENTIAL: &str = "DEMO_TOKEN";

/// The proxy service name: the principal calls `/http/demo/…`.
pub const DEMO_SERVICE: &str = "demo";

/// The template name the quickstart publishes.
pub const DEMO_TEMPLATE: &str = "demo-greeter";

/// A running demo service on `127.0.0.1`.
#[derive(Debug)]
pub struct DemoService {
    address: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

async fn answer(
    State(seen): State<Arc<Mutex<Vec<String>>>>,
    uri: Uri,
    headers: HeaderMap,
) -> (StatusCode, String) {
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let allowed = authorization.starts_with("Bearer ") && authorization.len() > "Bearer ".len();
    seen.lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .push(authorization);
    if allowed {
        (
            StatusCode::OK,
            format!("demo service: hello, authorized caller of {}\n", uri.path()),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            "demo service: a bearer token is required\n".to_owned(),
        )
    }
}

impl DemoService {
    /// Starts the service on a free port (on the current tokio runtime).
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let app = Router::new().fallback(answer).with_state(Arc::clone(&seen));
        let task = tokio::spawn(async move {
            if let Err(error) = axum::serve(listener, app).await {
                tracing::error!(%error, "demo service stopped");
            }
        });
        Ok(Self {
            address,
            seen,
            task,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Every `Authorization` header received so far (empty strings for requests without one).
    pub fn authorizations(&self) -> Vec<String> {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for DemoService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The shell script the demo principal runs: greet the room named in the payload through the
/// proxy (`/v1/matrix/message`), call the demo service through `/http/demo/…` (the proxy adds
/// the token), report both, then wait (or exit with the payload's `exit_code`, for tests).
pub const DEMO_SCRIPT: &str = r#"set -u
payload=$(cat /run/bureau/payload.json)
field() { printf '%s' "$payload" | sed -n "s/.*\"$1\":\"\{0,1\}\([^\",}]*\).*/\1/p"; }
room=$(field room)
if [ -n "$room" ]; then
  printf '{"room":"%s","body":"hello from %s"}' "$room" "$BUREAU_PRINCIPAL_NAME" > /tmp/message.json
  if bureau-proxy-call POST /v1/matrix/message --data @/tmp/message.json > /dev/null; then
    echo "greeting: sent to $room"
  else
    echo "greeting: FAILED"
  fi
fi
if bureau-proxy-call GET /http/demo/hello; then
  echo "demo service: called"
else
  echo "demo service: FAILED"
fi
echo "printenv: $(env | cut -d= -f1 | sort | tr '\n' ' ')"
code=$(field exit_code)
if [ -n "$code" ]; then
  echo "exiting with $code as the payload asks"
  exit "$code"
fi
exec sleep 2147483647
"#;

/// The demo principal's template: [`DEMO_SCRIPT`] on top of `agent-base`, with the demo
/// service at `upstream_url` behind `/http/demo/` and [`DEMO_CREDENTIAL`] injected as a bearer
/// token.
///
/// Example: `demo_template("http://127.0.0.1:8080")["proxy_services"]["demo"]["upstream_url"]`
/// → `"http://127.0.0.1:8080"`.
///
/// ```
/// use bureau::schema::Template;
///
/// let template: Template = serde_json::from_value(bureau::demo::demo_template("http://127.0.0.1:1"))?;
/// template.validate()?;
/// assert_eq!(template.required_credentials, ["DEMO_TOKEN"]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn demo_template(upstream_url: &str) -> Value {
    json!({
        "description": "Bureau quickstart demo: greets its room through its proxy and calls a \
                        service with a credential it never sees",
        "inherits": "agent-base",
        "command": ["/bin/sh", "-c", DEMO_SCRIPT],
        "required_credentials": [DEMO_CREDENTIAL],
        "proxy_services": {
            DEMO_SERVICE: {
                "upstream_url": upstream_url,
                "inject_headers": {"Authorization": DEMO_CREDENTIAL},
                "auth_scheme": "Bearer",
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_demo_service_records_and_requires_a_bearer_token() {
        let service = DemoService::start().await.unwrap();
        let mut stream = tokio::net::TcpStream::connect(service.address)
            .await
            .unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).await.unwrap();
        assert!(reply.starts_with("HTTP/1.1 401"), "{reply}");
        assert_eq!(service.authorizations(), [""]);
    }
}
