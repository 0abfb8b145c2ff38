//! `/http/<service>/<path>`: the streaming reverse proxy.
//!
//! Order: service lookup (404) → allow rules (403) → rate limits, principal then service (429
//! with `Retry-After`) → body size (413) → headers (hop-by-hop and `strip_headers` removed, any
//! agent header with an injected name removed, then the credentials injected) → upstream over
//! http, https or a Unix socket, with a timeout on the response headers (504) and a clear 502
//! when it cannot be reached. Bodies stream both ways: nothing is buffered, so SSE events and
//! large transfers flow as they arrive and memory stays flat.
//!
//! Invariant: no error message, log line or response to the agent contains a credential value.

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode, Uri, header};
use http_body_util::{BodyExt, Limited};

use super::service::ServiceConfig;
use super::state::{ProxyError, ProxyState, Service};
use super::upstream::{Endpoint, Upstreams, describe_error};

/// Default time for an upstream's response headers.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// Default largest request body.
const DEFAULT_MAX_BODY: u64 = 256 * 1024 * 1024;

/// Headers that belong to one connection and are never forwarded (RFC 9110 §7.6.1).
static HOP_BY_HOP: [HeaderName; 8] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

fn remove_hop_by_hop(headers: &mut HeaderMap) {
    // The common case, on every request and response: none is present (one pass, no hashing).
    if !headers.keys().any(|name| HOP_BY_HOP.contains(name)) {
        return;
    }
    let named_by_connection: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .filter_map(|name| HeaderName::try_from(name.trim()).ok())
        .collect();
    for name in named_by_connection {
        headers.remove(name);
    }
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
}

/// Forwards one request to `service_name` with `path` (starting with `/`).
pub async fn forward(
    state: &ProxyState,
    upstreams: &Upstreams,
    service_name: &str,
    path: &str,
    request: Request<Body>,
) -> Result<Response<Body>, ProxyError> {
    let Some(service) = state.service(service_name) else {
        let known: Vec<String> = state.services().into_keys().collect();
        return Err(ProxyError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no service named {service_name:?} on this proxy (services: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            ),
        ));
    };
    let method = request.method().clone();
    if !service.config.allows(method.as_str(), path) {
        return Err(ProxyError::new(
            StatusCode::FORBIDDEN,
            format!(
                "service {service_name}'s rules do not allow {method} {path} (rules: {})",
                serde_json::to_string(&service.config.rules).unwrap_or_default()
            ),
        ));
    }
    if let Err(wait) = state.take_principal_token() {
        return Err(rate_limited("this principal", wait));
    }
    if let Err(wait) = service.take_token() {
        return Err(rate_limited(&format!("service {service_name}"), wait));
    }
    let max_body = service.config.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY);
    let declared_length = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared_length.is_some_and(|length| length > max_body) {
        return Err(too_large(service_name, max_body));
    }

    let (mut parts, body) = request.into_parts();
    prepare_headers(&mut parts.headers, &service, state)?;
    let query = parts.uri.query().map(str::to_owned);
    let limited = Body::new(Limited::new(
        body,
        usize::try_from(max_body).unwrap_or(usize::MAX),
    ));
    let timeout = service
        .config
        .timeout_ms
        .map(Duration::from_millis)
        .unwrap_or(DEFAULT_TIMEOUT);

    let (endpoint, prefix) = match (&service.config.upstream_url, &service.config.upstream_unix) {
        (Some(base), _) => Endpoint::from_url(base).ok_or_else(|| {
            ProxyError::new(
                StatusCode::BAD_GATEWAY,
                format!("service {service_name}'s upstream_url is not http(s)://host"),
            )
        })?,
        (None, Some(socket)) => (Endpoint::Unix(socket), ""),
        (None, None) => {
            return Err(ProxyError::new(
                StatusCode::BAD_GATEWAY,
                format!("service {service_name} has no upstream"),
            ));
        }
    };
    parts.uri = target(prefix, path, query.as_deref()).map_err(|error| {
        ProxyError::new(
            StatusCode::BAD_REQUEST,
            format!("path {path:?} does not make a valid upstream URL: {error}"),
        )
    })?;
    let host = match endpoint.host() {
        Some(host) => HeaderValue::from_str(host).map_err(|_| {
            ProxyError::new(
                StatusCode::BAD_GATEWAY,
                format!("service {service_name}'s upstream host {host:?} is not a valid Host"),
            )
        })?,
        None => HeaderValue::from_static("localhost"),
    };
    parts.headers.insert(header::HOST, host);
    let request = Request::from_parts(parts, limited);
    let sent = tokio::time::timeout(timeout, upstreams.send(endpoint, request)).await;
    let response = match sent {
        Err(_) => {
            return Err(ProxyError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "service {service_name} did not answer within {} ms",
                    timeout.as_millis()
                ),
            ));
        }
        Ok(Err(reason)) if reason.contains("length limit exceeded") => {
            return Err(too_large(service_name, max_body));
        }
        Ok(Err(reason)) => {
            return Err(ProxyError::new(
                StatusCode::BAD_GATEWAY,
                format!("service {service_name} is unreachable: {reason}"),
            ));
        }
        Ok(Ok(response)) => response,
    };
    let (mut parts, body) = response.into_parts();
    remove_hop_by_hop(&mut parts.headers);
    Ok(Response::from_parts(parts, Body::new(body)))
}

/// `prefix` + `path` + `?query`, built in one buffer that becomes the `Uri` without a copy.
fn target(prefix: &str, path: &str, query: Option<&str>) -> Result<Uri, http::uri::InvalidUri> {
    let mut text =
        String::with_capacity(prefix.len() + path.len() + query.map_or(0, |query| query.len() + 1));
    text.push_str(prefix);
    text.push_str(path);
    if let Some(query) = query {
        text.push('?');
        text.push_str(query);
    }
    Uri::try_from(text)
}

fn rate_limited(who: &str, wait_seconds: u64) -> ProxyError {
    ProxyError {
        status: StatusCode::TOO_MANY_REQUESTS,
        errcode: None,
        message: format!("rate limit of {who} reached; retry in {wait_seconds} s"),
        retry_after: Some(wait_seconds),
    }
}

fn too_large(service_name: &str, max_body: u64) -> ProxyError {
    ProxyError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body larger than service {service_name}'s limit of {max_body} bytes"),
    )
}

/// Removes what must not reach the upstream and injects the service's credentials.
fn prepare_headers(
    headers: &mut HeaderMap,
    service: &Service,
    state: &ProxyState,
) -> Result<(), ProxyError> {
    remove_hop_by_hop(headers);
    for name in &service.config.strip_headers {
        headers.remove(name.as_str());
    }
    let credentials = state.credentials();
    let config: &ServiceConfig = &service.config;
    for (header_name, credential) in &config.inject_headers {
        headers.remove(header_name.as_str());
        let Some(secret) = credentials.get(credential) else {
            return Err(ProxyError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "service {} injects credential {credential}, which this proxy does not hold",
                    service.name
                ),
            ));
        };
        let value = match &config.auth_scheme {
            Some(scheme) => {
                let mut value = Vec::with_capacity(scheme.len() + 1 + secret.len());
                value.extend_from_slice(scheme.as_bytes());
                value.push(b' ');
                value.extend_from_slice(secret.expose());
                let header = HeaderValue::from_bytes(&value);
                crate::secret::zeroize(&mut value);
                header
            }
            None => HeaderValue::from_bytes(secret.expose()),
        };
        let mut value = value.map_err(|_| {
            ProxyError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("credential {credential} cannot be sent as an HTTP header value"),
            )
        })?;
        value.set_sensitive(true);
        let name = HeaderName::try_from(header_name.as_str()).map_err(|_| {
            ProxyError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("header name {header_name:?} is invalid"),
            )
        })?;
        headers.insert(name, value);
    }
    Ok(())
}

/// Drains a body (tests and admin routes read whole small bodies).
pub async fn read_body(body: Body, limit: usize) -> Result<bytes::Bytes, ProxyError> {
    Limited::new(body, limit)
        .collect()
        .await
        .map(|collected| collected.to_bytes())
        .map_err(|error| {
            ProxyError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body: {}", describe_error(error.as_ref())),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_and_connection_named_headers_are_removed() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONNECTION,
            HeaderValue::from_static("x-private, close"),
        );
        headers.insert("x-private", HeaderValue::from_static("1"));
        headers.insert(
            header::TRANSFER_ENCODING,
            HeaderValue::from_static("chunked"),
        );
        headers.insert("x-kept", HeaderValue::from_static("1"));
        remove_hop_by_hop(&mut headers);
        assert!(headers.get("x-private").is_none());
        assert!(headers.get(header::TRANSFER_ENCODING).is_none());
        assert!(headers.get("x-kept").is_some());
    }
}
