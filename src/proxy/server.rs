//! The two sockets: the agent's (`/health`, `/v1/identity`, `/v1/grants`, `/v1/services`,
//! `/http/<service>/…`, `/v1/matrix/*`) and the daemon-only admin socket (services, grants,
//! credentials). One log line per request (see `access_log`): method, service, path, status,
//! bytes, duration — never a header value or a body.

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, put};
use serde_json::{Value, json};

use super::access_log::{self, RequestLine};
use super::forward::{forward, read_body};
use super::matrix::{MatrixRoutes, matrix_router};
use super::payload::{Grant, GrantWire, accept_grants, is_credential_name};
use super::service::ServiceConfig;
use super::state::{ProxyError, ProxyState};
use super::upstream::Upstreams;
use crate::secret::{Secret, zeroize};

/// What every handler shares. axum clones the state for each request, so it is one `Arc`.
#[derive(Clone)]
pub struct AppState(Arc<Shared>);

pub struct Shared {
    pub proxy: Arc<ProxyState>,
    pub upstreams: Arc<Upstreams>,
    pub matrix: Arc<MatrixRoutes>,
}

impl AppState {
    pub fn new(shared: Shared) -> Self {
        Self(Arc::new(shared))
    }
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// The agent socket's routes.
pub fn agent_router(state: AppState) -> Router {
    Router::new()
        .route(
            "/health",
            get(|| async { axum::Json(json!({"status": "ok"})) }),
        )
        .route("/v1/identity", get(identity))
        .route("/v1/grants", get(grants))
        .route("/v1/services", get(list_services))
        .route("/http/{service}", any(forward_root))
        .route("/http/{service}/", any(forward_root))
        .route("/http/{service}/{*path}", any(forward_path))
        .merge(matrix_router())
        .fallback(|| async {
            ProxyError::new(
                StatusCode::NOT_FOUND,
                "no such route: see GET /v1/services, /http/<service>/<path>, /v1/matrix/*",
            )
        })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

/// The admin socket's routes (daemon only; never mounted into a sandbox).
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .route("/v1/admin/services", get(list_services))
        .route(
            "/v1/admin/services/{name}",
            put(put_service).delete(delete_service),
        )
        .route("/v1/admin/grants", put(put_grants))
        .route("/v1/admin/credentials", put(put_credentials))
        .fallback(|| async { ProxyError::new(StatusCode::NOT_FOUND, "no such admin route") })
        .layer(middleware::from_fn(log_request))
        .with_state(state)
}

async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    // A `Uri` clone shares its bytes: nothing is copied on the hot path.
    let uri = request.uri().clone();
    let response = next.run(request).await;
    let path = uri.path();
    let service = path
        .strip_prefix("/http/")
        .map_or("-", |rest| rest.split('/').next().unwrap_or_default());
    let bytes = response
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("stream");
    access_log::record(&RequestLine {
        method: method.as_str(),
        service,
        path,
        status: response.status().as_u16(),
        bytes,
        duration: started.elapsed(),
    });
    response
}

async fn identity(State(state): State<AppState>) -> Response {
    match &state.proxy.identity {
        Some(identity) => axum::Json(json!({
            "user_id": identity.user_id,
            "homeserver_url": identity.homeserver_url,
        }))
        .into_response(),
        None => ProxyError::new(StatusCode::NOT_FOUND, "this proxy holds no Matrix identity")
            .into_response(),
    }
}

/// The grants that apply now, with their expiry (an expired one is not listed).
async fn grants(State(state): State<AppState>) -> axum::Json<Vec<Grant>> {
    axum::Json(state.proxy.active_grants())
}

/// Service names, upstreams and rules; header names but never a credential value.
async fn list_services(State(state): State<AppState>) -> axum::Json<Value> {
    let services: serde_json::Map<String, Value> = state
        .proxy
        .services()
        .into_iter()
        .map(|(name, service)| {
            (
                name,
                serde_json::to_value(&service.config).unwrap_or(Value::Null),
            )
        })
        .collect();
    axum::Json(Value::Object(services))
}

async fn forward_root(
    State(state): State<AppState>,
    Path(service): Path<String>,
    request: Request,
) -> Response {
    run_forward(state, &service, "/", request).await
}

async fn forward_path(
    State(state): State<AppState>,
    Path((service, path)): Path<(String, String)>,
    request: Request,
) -> Response {
    run_forward(state, &service, &format!("/{path}"), request).await
}

async fn run_forward(state: AppState, service: &str, path: &str, request: Request) -> Response {
    match forward(&state.proxy, &state.upstreams, service, path, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn json_body(body: Body) -> Result<Value, ProxyError> {
    let bytes = read_body(body, 1024 * 1024).await?;
    serde_json::from_slice(&bytes).map_err(|error| {
        ProxyError::new(
            StatusCode::BAD_REQUEST,
            format!("body is not JSON: {error}"),
        )
    })
}

async fn put_service(
    State(state): State<AppState>,
    Path(name): Path<String>,
    request: Request,
) -> Result<Response, ProxyError> {
    let body = json_body(request.into_body()).await?;
    let config: ServiceConfig = serde_json::from_value(body).map_err(|error| {
        ProxyError::new(StatusCode::BAD_REQUEST, format!("service {name}: {error}"))
    })?;
    config
        .validate(&name)
        .map_err(|error| ProxyError::new(StatusCode::BAD_REQUEST, error.to_string()))?;
    state.proxy.put_service(&name, config);
    Ok((StatusCode::OK, axum::Json(json!({"service": name}))).into_response())
}

async fn delete_service(
    State(state): State<AppState>,
    Path(name): Path<String>,
) -> Result<Response, ProxyError> {
    if state.proxy.remove_service(&name) {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(ProxyError::new(
            StatusCode::NOT_FOUND,
            format!("no service named {name:?}"),
        ))
    }
}

async fn put_grants(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ProxyError> {
    let body = json_body(request.into_body()).await?;
    let wire: Vec<GrantWire> = serde_json::from_value(body)
        .map_err(|error| ProxyError::new(StatusCode::BAD_REQUEST, format!("grants: {error}")))?;
    let grants =
        accept_grants(wire).map_err(|message| ProxyError::new(StatusCode::BAD_REQUEST, message))?;
    let count = grants.len();
    state.proxy.replace_grants(grants);
    Ok(axum::Json(json!({"grants": count})).into_response())
}

/// Replaces every credential: in-flight requests finish with the old values, new ones use the
/// new; the old values are zeroed once unused. The body is zeroed after parsing.
async fn put_credentials(
    State(state): State<AppState>,
    request: Request,
) -> Result<Response, ProxyError> {
    let mut bytes = read_body(request.into_body(), 1024 * 1024).await?.to_vec();
    let parsed: Result<std::collections::BTreeMap<String, String>, _> =
        serde_json::from_slice(&bytes);
    zeroize(&mut bytes);
    let parsed = parsed.map_err(|error| {
        ProxyError::new(
            StatusCode::BAD_REQUEST,
            format!("credentials must be a JSON object of NAME: value ({error})"),
        )
    })?;
    let mut credentials = std::collections::BTreeMap::new();
    let mut names = Vec::new();
    for (name, value) in parsed {
        let value = Secret::from_string(value);
        if !is_credential_name(&name) {
            return Err(ProxyError::new(
                StatusCode::BAD_REQUEST,
                format!("credential name {name:?} is invalid: use A-Z, 0-9 and _"),
            ));
        }
        names.push(name.clone());
        credentials.insert(name, value);
    }
    state.proxy.replace_credentials(credentials);
    Ok(axum::Json(json!({"credentials": names})).into_response())
}
