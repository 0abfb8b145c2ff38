//! The Matrix client: ruma's request/response types over a hyper-util HTTP/1.1 client with
//! rustls (compiled-in web PKI roots, plus an optional CA file for private homeservers).
//!
//! `Client` is cheap to clone (shared connection pool). Every call goes through [`Client::send`]
//! (ruma endpoints) or [`Client::send_json`] (Synapse admin API), which map failures to
//! [`MatrixError`] with the homeserver's URL, the method and path — never the access token.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use ruma::api::auth_scheme::{AuthScheme, SendAccessToken};
use ruma::api::path_builder::PathBuilder;
use ruma::api::{IncomingResponseExt, OutgoingRequest, OutgoingRequestExt, SupportedVersions};
use ruma::{OwnedRoomId, OwnedUserId};
use serde_json::Value;

use super::error::MatrixError;
use crate::secret::Secret;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;

/// How long an ordinary request may take. Long-polls add their own timeout on top.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Connection options.
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// A PEM file of extra CA certificates trusted besides the compiled-in roots.
    pub ca_file: Option<std::path::PathBuf>,
}

/// A Matrix client for one homeserver, optionally logged in.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

struct Inner {
    http: HttpClient<Connector, Full<Bytes>>,
    base_url: String,
    versions: SupportedVersions,
    session: Option<(OwnedUserId, Secret)>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base_url)
            .field("user_id", &self.user_id())
            .finish_non_exhaustive()
    }
}

fn tls_config(options: &ConnectOptions) -> Result<rustls::ClientConfig, MatrixError> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca_file) = &options.ca_file {
        let invalid = |reason: String| {
            MatrixError::Invalid(format!("CA file {}: {reason}", ca_file.display()))
        };
        let pem = std::fs::read(ca_file).map_err(|error| invalid(error.to_string()))?;
        for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
            let certificate = certificate.map_err(|error| invalid(error.to_string()))?;
            roots
                .add(certificate)
                .map_err(|error| invalid(error.to_string()))?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| MatrixError::Invalid(format!("TLS setup: {error}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

/// Splits a `http::Request<Vec<u8>>` into a hyper request with a `Full` body.
fn to_hyper(request: http::Request<Vec<u8>>) -> http::Request<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    http::Request::from_parts(parts, Full::new(Bytes::from(body)))
}

/// The `errcode`/`error`/`retry_after_ms` of a Matrix error body, if it is one.
fn matrix_error_body(body: &[u8]) -> (String, String, Option<Duration>) {
    let json: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let errcode = json["errcode"].as_str().unwrap_or("M_UNKNOWN").to_owned();
    let message = json["error"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned());
    let retry_after = json["retry_after_ms"].as_u64().map(Duration::from_millis);
    (errcode, message, retry_after)
}

impl Client {
    /// Connects to `base_url` (e.g. `https://matrix.example.org`) and reads the homeserver's
    /// supported versions. Fails with [`MatrixError::Unreachable`] naming the URL.
    pub async fn connect(base_url: &str, options: &ConnectOptions) -> Result<Self, MatrixError> {
        let base_url = base_url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("http://") || base_url.starts_with("https://")) {
            return Err(MatrixError::Invalid(format!(
                "homeserver URL {base_url:?} must start with http:// or https://"
            )));
        }
        // Small requests on kept-alive connections: without TCP_NODELAY, Nagle's algorithm and
        // delayed ACKs can hold a request back for tens of milliseconds.
        let mut http_connector = HttpConnector::new();
        http_connector.set_nodelay(true);
        http_connector.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls_config(options)?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http_connector);
        let http = HttpClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector);
        let mut client = Inner {
            http,
            base_url,
            versions: SupportedVersions {
                versions: Default::default(),
                features: Default::default(),
            },
            session: None,
        };
        let versions = Self::fetch_versions(&client).await?;
        client.versions = versions;
        Ok(Self {
            inner: Arc::new(client),
        })
    }

    async fn fetch_versions(inner: &Inner) -> Result<SupportedVersions, MatrixError> {
        let request = http::Request::get(format!("{}/_matrix/client/versions", inner.base_url))
            .body(Vec::new())
            .map_err(|error| MatrixError::Invalid(error.to_string()))?;
        let response = Self::round_trip(inner, request, REQUEST_TIMEOUT).await?;
        let json: Value =
            serde_json::from_slice(response.body()).map_err(|error| MatrixError::BadResponse {
                url: inner.base_url.clone(),
                method: "GET".into(),
                path: "/_matrix/client/versions".into(),
                reason: format!("not a Matrix homeserver ({error})"),
            })?;
        let versions: Vec<String> =
            serde_json::from_value(json["versions"].clone()).unwrap_or_default();
        let features =
            serde_json::from_value(json["unstable_features"].clone()).unwrap_or_default();
        if versions.is_empty() {
            return Err(MatrixError::BadResponse {
                url: inner.base_url.clone(),
                method: "GET".into(),
                path: "/_matrix/client/versions".into(),
                reason: "no client-server API versions advertised".into(),
            });
        }
        Ok(SupportedVersions::from_parts(&versions, &features))
    }

    /// The same homeserver connection, acting as `user_id` with `access_token`.
    pub fn with_session(&self, user_id: OwnedUserId, access_token: Secret) -> Self {
        Self {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                base_url: self.inner.base_url.clone(),
                versions: self.inner.versions.clone(),
                session: Some((user_id, access_token)),
            }),
        }
    }

    pub fn base_url(&self) -> &str {
        &self.inner.base_url
    }

    /// The logged-in user, if any.
    pub fn user_id(&self) -> Option<&OwnedUserId> {
        self.inner.session.as_ref().map(|(user_id, _)| user_id)
    }

    /// The homeserver's advertised client-server API versions (e.g. `["v1.1", …, "v1.15"]`).
    pub fn versions(&self) -> &SupportedVersions {
        &self.inner.versions
    }

    /// The access token, for handing to a process that acts as this user (the proxy).
    pub fn access_token(&self) -> Option<&Secret> {
        self.inner.session.as_ref().map(|(_, token)| token)
    }

    fn token(&self) -> SendAccessToken<'_> {
        match self
            .inner
            .session
            .as_ref()
            .and_then(|(_, token)| token.expose_str())
        {
            Some(token) => SendAccessToken::IfRequired(token),
            None => SendAccessToken::None,
        }
    }

    /// Sends one HTTP request and collects the whole response.
    async fn round_trip(
        inner: &Inner,
        request: http::Request<Vec<u8>>,
        timeout: Duration,
    ) -> Result<http::Response<Vec<u8>>, MatrixError> {
        let method = request.method().to_string();
        let path = request.uri().path().to_owned();
        let url = inner.base_url.clone();
        let exchange = async {
            let response = inner
                .http
                .request(to_hyper(request))
                .await
                .map_err(|error| MatrixError::Unreachable {
                    url: url.clone(),
                    reason: describe_connect_error(&error),
                })?;
            let (parts, body) = response.into_parts();
            let body = body
                .collect()
                .await
                .map_err(|error| MatrixError::Unreachable {
                    url: url.clone(),
                    reason: format!("connection lost while reading the response: {error}"),
                })?
                .to_bytes();
            Ok::<_, MatrixError>(http::Response::from_parts(parts, body.to_vec()))
        };
        tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| MatrixError::Timeout {
                url: url.clone(),
                method,
                path,
                after: timeout,
            })?
    }

    /// Maps an HTTP error status to the matching [`MatrixError`].
    pub(super) fn status_error(
        &self,
        method: &str,
        path: &str,
        response: &http::Response<Vec<u8>>,
    ) -> MatrixError {
        let url = self.inner.base_url.clone();
        let (errcode, message, retry_after) = matrix_error_body(response.body());
        match errcode.as_str() {
            "M_UNKNOWN_TOKEN" | "M_MISSING_TOKEN" => MatrixError::UnknownToken {
                url,
                errcode,
                message,
            },
            "M_LIMIT_EXCEEDED" => MatrixError::LimitExceeded {
                url,
                message,
                retry_after,
            },
            _ => MatrixError::Server {
                url,
                method: method.to_owned(),
                path: path.to_owned(),
                status: response.status().as_u16(),
                errcode,
                message,
            },
        }
    }

    /// Sends a ruma client-server request with this client's access token.
    pub async fn send<R>(&self, request: R) -> Result<R::IncomingResponse, MatrixError>
    where
        R: OutgoingRequest,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
        for<'a> R::PathBuilder: PathBuilder<Input<'a> = Cow<'a, SupportedVersions>>,
    {
        self.send_with_timeout(request, REQUEST_TIMEOUT).await
    }

    /// [`Client::send`] with an explicit timeout (long-polls).
    pub async fn send_with_timeout<R>(
        &self,
        request: R,
        timeout: Duration,
    ) -> Result<R::IncomingResponse, MatrixError>
    where
        R: OutgoingRequest,
        for<'a> R::Authentication: AuthScheme<Input<'a> = SendAccessToken<'a>>,
        for<'a> R::PathBuilder: PathBuilder<Input<'a> = Cow<'a, SupportedVersions>>,
    {
        let http_request: http::Request<Vec<u8>> = request
            .try_into_http_request(
                &self.inner.base_url,
                self.token(),
                Cow::Borrowed(&self.inner.versions),
            )
            .map_err(|error| MatrixError::Invalid(format!("building the request: {error}")))?;
        let method = http_request.method().to_string();
        let path = http_request.uri().path().to_owned();
        let response = Self::round_trip(&self.inner, http_request, timeout).await?;
        if response.status().as_u16() >= 400 {
            return Err(self.status_error(&method, &path, &response));
        }
        let (parts, body) = response.into_parts();
        R::IncomingResponse::try_from_http_response(http::Response::from_parts(
            parts,
            body.as_slice(),
        ))
        .map_err(|error| MatrixError::BadResponse {
            url: self.inner.base_url.clone(),
            method,
            path,
            reason: error.to_string(),
        })
    }

    /// Sends a JSON request to a path outside ruma's endpoints (Synapse's admin API) and returns
    /// the JSON response; an error status becomes a [`MatrixError`].
    pub async fn send_json(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, MatrixError> {
        let (status, json, response) = self
            .send_json_with_status(method.clone(), path, body)
            .await?;
        if status >= 400 {
            return Err(self.status_error(method.as_str(), path, &response));
        }
        Ok(json)
    }

    /// Like [`Client::send_json`] but returns the status and body of error responses too (for
    /// flows where an error status carries data, such as user-interactive auth's 401).
    pub async fn send_json_with_status(
        &self,
        method: http::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(u16, Value, http::Response<Vec<u8>>), MatrixError> {
        let mut builder = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.inner.base_url))
            .header(http::header::CONTENT_TYPE, "application/json");
        if let Some(token) = self.access_token().and_then(Secret::expose_str) {
            builder = builder.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(body) => serde_json::to_vec(body)
                .map_err(|error| MatrixError::Invalid(format!("encoding the body: {error}")))?,
            None => Vec::new(),
        };
        let request = builder
            .body(body)
            .map_err(|error| MatrixError::Invalid(error.to_string()))?;
        let response = Self::round_trip(&self.inner, request, REQUEST_TIMEOUT).await?;
        let status = response.status().as_u16();
        let json = if response.body().is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(response.body()).map_err(|error| MatrixError::BadResponse {
                url: self.inner.base_url.clone(),
                method: method.to_string(),
                path: path.to_owned(),
                reason: error.to_string(),
            })?
        };
        Ok((status, json, response))
    }
}

/// A connect error's cause chain as one line (hyper's top-level message is just "client error").
fn describe_connect_error(error: &hyper_util::client::legacy::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Parses a room ID (`!opaque` of room version 12, or `!local:server` of older versions).
pub fn parse_room_id(value: &str) -> Result<OwnedRoomId, MatrixError> {
    OwnedRoomId::try_from(value)
        .map_err(|error| MatrixError::Invalid(format!("room ID {value:?}: {error}")))
}

/// Parses a Matrix user ID.
pub fn parse_user_id(value: &str) -> Result<OwnedUserId, MatrixError> {
    OwnedUserId::try_from(value)
        .map_err(|error| MatrixError::Invalid(format!("user ID {value:?}: {error}")))
}
