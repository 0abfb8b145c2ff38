//! `/v1/matrix/*`: the principal's Matrix access through its own token, which stays in the
//! proxy. Each route needs a grant (`matrix/join`, `matrix/invite`, `matrix/create-room`,
//! `matrix/send`, `matrix/read`, `matrix/read-state`, `matrix/write-state`, `matrix/sync`;
//! `matrix/*` covers them all) whose targets match the room; without one the answer is
//! `403 {"errcode": "M_FORBIDDEN", "error": …}` and nothing reaches the homeserver.
//!
//! Rooms are named in the query or the JSON body (`"room": "#acme/fleet/prod:bureau.local"` or
//! a room ID), never in the path, because aliases contain `/`.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ruma::OwnedRoomId;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::OnceCell;

use super::server::AppState;
use super::state::ProxyError;
use crate::matrix::{
    Client, ConnectOptions, MatrixError, RoomOptions, parse_room_id, parse_user_id,
};

/// The lazily connected Matrix client of the proxy's principal.
#[derive(Default)]
pub struct MatrixRoutes {
    client: OnceCell<Client>,
}

impl MatrixRoutes {
    async fn client(&self, state: &AppState) -> Result<&Client, ProxyError> {
        let identity = state.proxy.identity.as_ref().ok_or_else(|| {
            ProxyError::new(StatusCode::NOT_FOUND, "this proxy holds no Matrix identity")
        })?;
        self.client
            .get_or_try_init(|| async {
                let client = Client::connect(&identity.homeserver_url, &ConnectOptions::default())
                    .await
                    .map_err(matrix_error)?;
                let user_id = parse_user_id(&identity.user_id).map_err(matrix_error)?;
                Ok(client.with_session(user_id, identity.access_token.duplicate()))
            })
            .await
    }
}

/// A homeserver error, passed on with its status and errcode (never the token).
fn matrix_error(error: MatrixError) -> ProxyError {
    let status = match &error {
        MatrixError::Server { status, .. } => {
            StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
        }
        MatrixError::UnknownToken { .. } => StatusCode::UNAUTHORIZED,
        MatrixError::LimitExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
        MatrixError::Invalid(_) => StatusCode::BAD_REQUEST,
        MatrixError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::BAD_GATEWAY,
    };
    ProxyError {
        status,
        errcode: error.errcode().map(str::to_owned),
        message: error.to_string(),
        retry_after: None,
    }
}

pub fn matrix_router() -> Router<AppState> {
    Router::new()
        .route("/v1/matrix/whoami", get(whoami))
        .route("/v1/matrix/state", get(state_get).put(state_put))
        .route("/v1/matrix/message", post(send_message))
        .route("/v1/matrix/messages", get(messages))
        .route("/v1/matrix/sync", get(sync))
        .route("/v1/matrix/join", post(join))
        .route("/v1/matrix/invite", post(invite))
        .route("/v1/matrix/room", post(create_room))
}

/// Refuses unless a grant allows `action` on `target`.
fn require(state: &AppState, action: &str, target: Option<&str>) -> Result<(), ProxyError> {
    if state.proxy.allows(action, target) {
        Ok(())
    } else {
        Err(ProxyError::forbidden_matrix(action, target))
    }
}

async fn resolve(client: &Client, room: &str) -> Result<OwnedRoomId, ProxyError> {
    if room.starts_with('#') {
        client
            .resolve_alias(room)
            .await
            .map_err(matrix_error)?
            .ok_or_else(|| ProxyError::new(StatusCode::NOT_FOUND, format!("no room {room}")))
    } else {
        parse_room_id(room).map_err(matrix_error)
    }
}

fn routes(state: &AppState) -> Arc<MatrixRoutes> {
    state.matrix.clone()
}

async fn whoami(State(state): State<AppState>) -> Result<Response, ProxyError> {
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let user_id = client.whoami().await.map_err(matrix_error)?;
    Ok(axum::Json(json!({"user_id": user_id.to_string()})).into_response())
}

#[derive(Deserialize)]
struct StateQuery {
    room: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    key: String,
}

async fn state_get(
    State(state): State<AppState>,
    Query(query): Query<StateQuery>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/read-state", Some(&query.room))?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let room_id = resolve(client, &query.room).await?;
    match client
        .state_get(&room_id, &query.event_type, &query.key)
        .await
        .map_err(matrix_error)?
    {
        Some(content) => Ok(axum::Json(content).into_response()),
        None => Err(ProxyError {
            status: StatusCode::NOT_FOUND,
            errcode: Some("M_NOT_FOUND".to_owned()),
            message: format!(
                "{} has no {} with key {:?}",
                query.room, query.event_type, query.key
            ),
            retry_after: None,
        }),
    }
}

#[derive(Deserialize)]
struct StatePut {
    room: String,
    #[serde(rename = "type")]
    event_type: String,
    #[serde(default)]
    key: String,
    content: Value,
}

async fn state_put(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<StatePut>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/write-state", Some(&body.room))?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let room_id = resolve(client, &body.room).await?;
    let event_id = client
        .state_put(&room_id, &body.event_type, &body.key, &body.content)
        .await
        .map_err(matrix_error)?;
    Ok(axum::Json(json!({"event_id": event_id.to_string()})).into_response())
}

#[derive(Deserialize)]
struct MessageBody {
    room: String,
    /// Plain text (an `m.room.message` of `msgtype`, default `m.text`)…
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    msgtype: Option<String>,
    /// …or a whole event of `type` with this `content`.
    #[serde(default, rename = "type")]
    event_type: Option<String>,
    #[serde(default)]
    content: Option<Value>,
}

async fn send_message(
    State(state): State<AppState>,
    axum::Json(message): axum::Json<MessageBody>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/send", Some(&message.room))?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let room_id = resolve(client, &message.room).await?;
    let (event_type, content) = match (message.body, message.content) {
        (Some(text), None) => (
            "m.room.message".to_owned(),
            json!({"msgtype": message.msgtype.unwrap_or_else(|| "m.text".to_owned()), "body": text}),
        ),
        (None, Some(content)) => (
            message
                .event_type
                .unwrap_or_else(|| "m.room.message".to_owned()),
            content,
        ),
        _ => {
            return Err(ProxyError::new(
                StatusCode::BAD_REQUEST,
                "give either \"body\" (text) or \"content\" (a whole event content)",
            ));
        }
    };
    let event_id = client
        .send_event(&room_id, &event_type, &content)
        .await
        .map_err(matrix_error)?;
    Ok(
        axum::Json(json!({"event_id": event_id.to_string(), "room_id": room_id.to_string()}))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct MessagesQuery {
    room: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    limit: Option<u32>,
}

async fn messages(
    State(state): State<AppState>,
    Query(query): Query<MessagesQuery>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/read", Some(&query.room))?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let room_id = resolve(client, &query.room).await?;
    let page = client
        .messages(
            &room_id,
            query.from.as_deref(),
            true,
            query.limit.unwrap_or(20).min(1000),
        )
        .await
        .map_err(matrix_error)?;
    Ok(axum::Json(json!({"events": page.events, "end": page.end})).into_response())
}

#[derive(Deserialize)]
struct SyncQuery {
    #[serde(default)]
    since: Option<String>,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

async fn sync(
    State(state): State<AppState>,
    Query(query): Query<SyncQuery>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/sync", None)?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let timeout = Duration::from_millis(query.timeout_ms.unwrap_or(30_000).min(120_000));
    let response = client
        .sync_once(query.since.as_deref(), None, timeout)
        .await
        .map_err(matrix_error)?;
    let rooms: Vec<Value> = response
        .rooms
        .join
        .iter()
        .map(|(room_id, room)| {
            let events: Vec<Value> = room
                .timeline
                .events
                .iter()
                .filter_map(|event| serde_json::from_str(event.json().get()).ok())
                .collect();
            json!({"room_id": room_id.to_string(), "timeline": events})
        })
        .collect();
    let invites: Vec<String> = response
        .rooms
        .invite
        .keys()
        .map(ToString::to_string)
        .collect();
    Ok(
        axum::Json(json!({"next_batch": response.next_batch, "rooms": rooms, "invites": invites}))
            .into_response(),
    )
}

#[derive(Deserialize)]
struct RoomBody {
    room: String,
}

async fn join(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<RoomBody>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/join", Some(&body.room))?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let room_id = client.join(&body.room).await.map_err(matrix_error)?;
    Ok(axum::Json(json!({"room_id": room_id.to_string()})).into_response())
}

#[derive(Deserialize)]
struct InviteBody {
    room: String,
    user_id: String,
}

async fn invite(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<InviteBody>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/invite", Some(&body.room))?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let room_id = resolve(client, &body.room).await?;
    client
        .invite(&room_id, &body.user_id)
        .await
        .map_err(matrix_error)?;
    Ok(axum::Json(json!({"room_id": room_id.to_string()})).into_response())
}

#[derive(Deserialize)]
struct CreateRoomBody {
    #[serde(default)]
    alias: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    invite: Vec<String>,
}

async fn create_room(
    State(state): State<AppState>,
    axum::Json(body): axum::Json<CreateRoomBody>,
) -> Result<Response, ProxyError> {
    require(&state, "matrix/create-room", body.alias.as_deref())?;
    let matrix = routes(&state);
    let client = matrix.client(&state).await?;
    let invite = body
        .invite
        .iter()
        .map(|user| parse_user_id(user))
        .collect::<Result<Vec<_>, _>>()
        .map_err(matrix_error)?;
    let options = RoomOptions {
        alias_localpart: body.alias.clone(),
        name: body.name.clone(),
        invite,
        ..RoomOptions::default()
    };
    let room_id = client.create_room(&options).await.map_err(matrix_error)?;
    Ok(axum::Json(json!({"room_id": room_id.to_string()})).into_response())
}
