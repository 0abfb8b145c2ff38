//! One HTTP/1.1 request to the principal's proxy over its Unix socket, with the response body
//! streamed to a writer as it arrives (so server-sent events come through live). This is
//! `bureau-proxy-call`, for scripts inside a sandbox that have no curl.
//!
//! Invariant: a 2xx response body is written byte for byte, each chunk flushed as soon as it
//! arrives, and nothing else is written to that output; any other status writes nothing there
//! and is reported (with the `error` of a JSON error body) through [`Outcome::failure_line`].
//!
//! Example: `GET /v1/identity` on `/run/bureau/proxy.sock` → `{"user_id": …}` on stdout, exit 0;
//! a missing grant → `bureau-proxy-call: POST /v1/matrix/join: 403 Forbidden: … (M_FORBIDDEN)`
//! on stderr, exit 1.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::uri::PathAndQuery;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::net::UnixStream;

/// The proxy socket inside every sandbox (the design card's sandbox contract).
pub const DEFAULT_PROXY_SOCKET: &str = "/run/bureau/proxy.sock";

/// The environment variable the launcher sets to the proxy socket's path inside the sandbox.
pub const PROXY_SOCKET_ENV: &str = "BUREAU_PROXY_SOCKET";

/// The content type sent with a request body unless a `Content-Type` header is given: the
/// proxy's own API takes JSON.
pub const DEFAULT_BODY_CONTENT_TYPE: &str = "application/json";

/// How much of a non-2xx response body is kept to explain the failure.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// How much of a non-JSON error body is shown on one line.
const ERROR_TEXT_LIMIT: usize = 1000;

/// The proxy socket to use: `explicit` (a command-line option) if given, else
/// `$BUREAU_PROXY_SOCKET` if set and not empty, else `/run/bureau/proxy.sock`.
pub fn proxy_socket_path(explicit: Option<PathBuf>) -> PathBuf {
    explicit
        .or_else(|| {
            std::env::var_os(PROXY_SOCKET_ENV)
                .filter(|value| !value.is_empty())
                .map(PathBuf::from)
        })
        .unwrap_or_else(|| PathBuf::from(DEFAULT_PROXY_SOCKET))
}

/// A bad invocation: the request could not be formed (exit status 2 in the applet).
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("METHOD {method:?} is not an HTTP method (e.g. GET, POST, PUT, DELETE)")]
    Method { method: String },
    #[error("PATH {path:?} must start with \"/\" (e.g. /v1/identity or /http/openai/v1/models)")]
    PathNotAbsolute { path: String },
    #[error("PATH {path:?} is not a valid request path: {reason}")]
    Path { path: String, reason: String },
    #[error("--header {line:?}: {reason} (expected 'Name: value')")]
    Header { line: String, reason: String },
    #[error("--data @{}: cannot read the file: {source}", path.display())]
    DataFile { path: PathBuf, source: io::Error },
    #[error("--data -: cannot read stdin: {source}")]
    DataStdin { source: io::Error },
}

/// The request was formed but the exchange with the proxy failed (exit status 1 in the applet).
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(
        "cannot connect to proxy socket {}: {source}\nHint: the proxy is not running or its \
         socket is not mounted in this sandbox; --socket or ${PROXY_SOCKET_ENV} names another \
         socket",
        socket.display()
    )]
    Connect { socket: PathBuf, source: io::Error },
    #[error("HTTP exchange with the proxy on {} failed while {stage}: {source}", socket.display())]
    Http {
        socket: PathBuf,
        stage: &'static str,
        source: hyper::Error,
    },
    #[error("writing the response body failed: {source}")]
    Output { source: io::Error },
}

/// One request to the proxy, checked as it is built.
#[derive(Debug)]
pub struct ProxyRequest {
    method: Method,
    path: PathAndQuery,
    headers: HeaderMap,
    body: Option<Bytes>,
}

impl ProxyRequest {
    /// A request with no body and no extra headers. `method` is case-insensitive (`get` is
    /// `GET`); `path` must start with `/` and may carry a query (`/v1/matrix/sync?timeout=0`).
    pub fn new(method: &str, path: &str) -> Result<Self, UsageError> {
        let method_error = || UsageError::Method {
            method: method.to_owned(),
        };
        if method.is_empty() {
            return Err(method_error());
        }
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| method_error())?;
        if !path.starts_with('/') {
            return Err(UsageError::PathNotAbsolute {
                path: path.to_owned(),
            });
        }
        let path = path
            .parse::<PathAndQuery>()
            .map_err(|error| UsageError::Path {
                path: path.to_owned(),
                reason: error.to_string(),
            })?;
        Ok(Self {
            method,
            path,
            headers: HeaderMap::new(),
            body: None,
        })
    }

    /// Adds a header given as `Name: value` (what `--header` takes). Repeating a name sends it
    /// more than once.
    pub fn add_header(&mut self, line: &str) -> Result<(), UsageError> {
        let header_error = |reason: &str| UsageError::Header {
            line: line.to_owned(),
            reason: reason.to_owned(),
        };
        let Some((name, value)) = line.split_once(':') else {
            return Err(header_error("no ':' between the name and the value"));
        };
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| header_error("the name is not a valid header name"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| header_error("the value holds a control character"))?;
        self.headers.append(name, value);
        Ok(())
    }

    /// Sets the request body. Unless a `Content-Type` header is given, it is sent as
    /// [`DEFAULT_BODY_CONTENT_TYPE`].
    pub fn set_body(&mut self, body: Bytes) {
        self.body = Some(body);
    }

    pub fn method(&self) -> &Method {
        &self.method
    }

    pub fn path(&self) -> &str {
        self.path.as_str()
    }

    /// The request as hyper sends it, with the defaults filled in: `Host: localhost` (HTTP/1.1
    /// requires one; the proxy does not route on it), a `User-Agent`, and the body's content type.
    fn into_http(self) -> http::Request<Full<Bytes>> {
        let mut headers = self.headers;
        if !headers.contains_key(HOST) {
            headers.insert(HOST, HeaderValue::from_static("localhost"));
        }
        if !headers.contains_key(USER_AGENT) {
            headers.insert(
                USER_AGENT,
                HeaderValue::from_static(concat!("bureau-proxy-call/", env!("CARGO_PKG_VERSION"))),
            );
        }
        if self.body.is_some() && !headers.contains_key(CONTENT_TYPE) {
            headers.insert(
                CONTENT_TYPE,
                HeaderValue::from_static(DEFAULT_BODY_CONTENT_TYPE),
            );
        }
        let mut request = http::Request::new(Full::new(self.body.unwrap_or_default()));
        *request.method_mut() = self.method;
        *request.uri_mut() = self.path.into();
        *request.headers_mut() = headers;
        request
    }
}

/// Reads a request body as `--data` names it: `@FILE` (the file's bytes), `-` (all of `stdin`),
/// or anything else (the argument's own bytes, e.g. `{"body": "hi"}`).
pub fn read_data(argument: &str, stdin: &mut dyn Read) -> Result<Bytes, UsageError> {
    if argument == "-" {
        let mut bytes = Vec::new();
        stdin
            .read_to_end(&mut bytes)
            .map_err(|source| UsageError::DataStdin { source })?;
        return Ok(Bytes::from(bytes));
    }
    if let Some(file) = argument.strip_prefix('@') {
        let path = PathBuf::from(file);
        return match std::fs::read(&path) {
            Ok(bytes) => Ok(Bytes::from(bytes)),
            Err(source) => Err(UsageError::DataFile { path, source }),
        };
    }
    Ok(Bytes::copy_from_slice(argument.as_bytes()))
}

/// What came back.
#[derive(Debug)]
pub struct Outcome {
    pub status: StatusCode,
    /// The start (up to 64 KiB) of a non-2xx response's body; empty for a 2xx, whose body went
    /// to the output.
    pub error_body: Bytes,
}

impl Outcome {
    pub fn is_success(&self) -> bool {
        self.status.is_success()
    }

    /// What the error body says: the `error` field of a JSON body `{"error": …}` (with its
    /// `errcode` in parentheses; an `error` object's `message`), else the body's text, trimmed
    /// and shortened to one line; `None` for an empty or binary body.
    pub fn error_text(&self) -> Option<String> {
        if let Ok(serde_json::Value::Object(fields)) =
            serde_json::from_slice::<serde_json::Value>(&self.error_body)
            && let Some(error) = fields.get("error")
        {
            let mut text = match error {
                serde_json::Value::String(text) => text.clone(),
                serde_json::Value::Object(inner) => match inner.get("message") {
                    Some(serde_json::Value::String(message)) => message.clone(),
                    _ => error.to_string(),
                },
                other => other.to_string(),
            };
            if let Some(serde_json::Value::String(errcode)) = fields.get("errcode") {
                text.push_str(&format!(" ({errcode})"));
            }
            return Some(text);
        }
        let text = std::str::from_utf8(&self.error_body).ok()?;
        let one_line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        if one_line.is_empty() {
            return None;
        }
        Some(match one_line.char_indices().nth(ERROR_TEXT_LIMIT) {
            Some((cut, _)) => format!("{}…", &one_line[..cut]),
            None => one_line,
        })
    }

    /// The line to print for a non-2xx status, e.g.
    /// `bureau-proxy-call: GET /v1/grants: 403 Forbidden: missing grant (M_FORBIDDEN)`.
    pub fn failure_line(&self, command_name: &str, method: &Method, path: &str) -> String {
        let mut line = format!("{command_name}: {method} {path}: {}", self.status);
        if let Some(text) = self.error_text() {
            line.push_str(": ");
            line.push_str(&text);
        }
        line
    }
}

/// Sends `request` to the proxy on `socket` and streams a 2xx response body into `output`,
/// flushing after every chunk. A non-2xx body is not written; its start is kept in the
/// [`Outcome`] to explain the failure.
pub async fn call<W>(
    socket: &Path,
    request: ProxyRequest,
    output: &mut W,
) -> Result<Outcome, CallError>
where
    W: AsyncWrite + Unpin,
{
    let http_error = |stage: &'static str| {
        move |source: hyper::Error| CallError::Http {
            socket: socket.to_path_buf(),
            stage,
            source,
        }
    };
    let stream = UnixStream::connect(socket)
        .await
        .map_err(|source| CallError::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http_error("starting the connection"))?;
    // The connection task drives the socket; it ends when the response body is done or dropped.
    let connection = tokio::spawn(connection);

    let response = sender
        .send_request(request.into_http())
        .await
        .map_err(http_error("sending the request"))?;
    let status = response.status();
    let mut body = response.into_body();
    let mut error_body = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(http_error("receiving the response body"))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if status.is_success() {
            output
                .write_all(&data)
                .await
                .map_err(|source| CallError::Output { source })?;
            output
                .flush()
                .await
                .map_err(|source| CallError::Output { source })?;
        } else {
            let room = ERROR_BODY_LIMIT - error_body.len();
            error_body.extend_from_slice(&data[..data.len().min(room)]);
            if error_body.len() == ERROR_BODY_LIMIT {
                break;
            }
        }
    }
    drop(body);
    drop(sender);
    connection.abort();
    Ok(Outcome {
        status,
        error_body: Bytes::from(error_body),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: u16, body: &str) -> Outcome {
        Outcome {
            status: StatusCode::from_u16(status).expect("valid status"),
            error_body: Bytes::copy_from_slice(body.as_bytes()),
        }
    }

    #[test]
    fn method_is_case_insensitive_and_path_must_be_absolute() {
        let request = ProxyRequest::new("get", "/v1/identity?x=1").expect("valid");
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.path(), "/v1/identity?x=1");
        assert!(matches!(
            ProxyRequest::new("GET", "v1/identity"),
            Err(UsageError::PathNotAbsolute { .. })
        ));
        assert!(matches!(
            ProxyRequest::new("GE T", "/x"),
            Err(UsageError::Method { .. })
        ));
        assert!(matches!(
            ProxyRequest::new("GET", "/a b"),
            Err(UsageError::Path { .. })
        ));
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        let mut request = ProxyRequest::new("POST", "/x").expect("valid");
        request.add_header("X-Trace:  abc ").expect("valid header");
        request.add_header("x-trace: def").expect("repeatable");
        assert_eq!(request.headers.get_all("x-trace").iter().count(), 2);
        assert!(request.add_header("no colon").is_err());
        assert!(request.add_header("bad name: v").is_err());
    }

    #[test]
    fn body_defaults_to_json_unless_a_content_type_is_given() {
        let mut request = ProxyRequest::new("POST", "/x").expect("valid");
        request.set_body(Bytes::from_static(b"{}"));
        let http = request.into_http();
        assert_eq!(http.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(http.headers()[HOST], "localhost");

        let mut request = ProxyRequest::new("POST", "/x").expect("valid");
        request
            .add_header("Content-Type: text/plain")
            .expect("valid");
        request.set_body(Bytes::from_static(b"hi"));
        assert_eq!(request.into_http().headers()[CONTENT_TYPE], "text/plain");

        let request = ProxyRequest::new("GET", "/x").expect("valid");
        assert!(!request.into_http().headers().contains_key(CONTENT_TYPE));
    }

    #[test]
    fn data_argument_is_a_file_stdin_or_the_literal() {
        let mut stdin: &[u8] = b"from stdin";
        assert_eq!(read_data("-", &mut stdin).expect("stdin"), "from stdin");
        assert_eq!(
            read_data("{\"a\":1}", &mut &b""[..]).expect("literal"),
            "{\"a\":1}"
        );
        let file = tempfile::NamedTempFile::new().expect("tempfile");
        std::fs::write(file.path(), b"from a file").expect("write");
        let argument = format!("@{}", file.path().display());
        assert_eq!(
            read_data(&argument, &mut &b""[..]).expect("file"),
            "from a file"
        );
        let error = read_data("@/nonexistent/body.json", &mut &b""[..]).expect_err("missing");
        assert!(
            error.to_string().contains("/nonexistent/body.json"),
            "{error}"
        );
    }

    #[test]
    fn error_text_prefers_the_json_error_field() {
        let forbidden = outcome(
            403,
            r#"{"error": "no grant for matrix/join", "errcode": "M_FORBIDDEN"}"#,
        );
        assert_eq!(
            forbidden.failure_line("bureau-proxy-call", &Method::POST, "/v1/matrix/join"),
            "bureau-proxy-call: POST /v1/matrix/join: 403 Forbidden: no grant for matrix/join \
             (M_FORBIDDEN)"
        );
        let upstream = outcome(
            400,
            r#"{"error": {"message": "bad model", "type": "invalid"}}"#,
        );
        assert_eq!(upstream.error_text().as_deref(), Some("bad model"));
        let plain = outcome(502, "upstream\n  unreachable\n");
        assert_eq!(plain.error_text().as_deref(), Some("upstream unreachable"));
        assert_eq!(outcome(500, "").error_text(), None);
    }

    #[test]
    fn socket_option_wins_over_the_default() {
        let explicit = PathBuf::from("/tmp/x.sock");
        assert_eq!(proxy_socket_path(Some(explicit.clone())), explicit);
    }
}
