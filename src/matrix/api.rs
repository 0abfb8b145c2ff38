//! The calls Bureau makes, as methods on [`Client`]: each one ruma request, typed inputs,
//! plain outputs. Custom state (`m.bureau.*`) and message contents travel as `serde_json::Value`
//! so the `schema` module owns their shape.

use std::time::Duration;

use ruma::api::client::{
    account::whoami, alias::get_alias, membership::invite_user,
    membership::join_room_by_id_or_alias, membership::kick_user, membership::leave_room,
    message::get_message_events, message::send_message_event, presence::set_presence,
    room::create_room, session::login, session::logout, state::get_state_event_for_key,
    state::get_state_events, state::send_state_event, sync::sync_events,
};
use ruma::events::{AnyMessageLikeEventContent, AnyStateEventContent, StateEventType};
use ruma::presence::PresenceState;
use ruma::serde::Raw;
use ruma::{
    OwnedEventId, OwnedRoomAliasId, OwnedRoomId, OwnedRoomOrAliasId, OwnedTransactionId,
    OwnedUserId, UInt,
};
use serde_json::Value;

use super::client::{Client, parse_user_id};
use super::error::MatrixError;
use crate::secret::Secret;

/// A new room's settings (see [`Client::create_room`]).
#[derive(Debug, Clone, Default)]
pub struct RoomOptions {
    /// The alias localpart: `acme/system` makes `#acme/system:<server>`.
    pub alias_localpart: Option<String>,
    pub name: Option<String>,
    pub topic: Option<String>,
    /// A space (`m.space`) rather than a room.
    pub space: bool,
    /// `m.room.power_levels` overrides, as JSON (`{"events": {...}, "users": {...}}`).
    pub power_levels: Option<Value>,
    /// Initial state events: (type, state key, content).
    pub initial_state: Vec<(String, String, Value)>,
    pub invite: Vec<OwnedUserId>,
}

/// One message or event from `/messages`.
#[derive(Debug, Clone)]
pub struct MessagesPage {
    pub events: Vec<Value>,
    /// The token to continue from, when there is more.
    pub end: Option<String>,
}

fn invalid<E: std::fmt::Display>(what: &str, value: &str) -> impl FnOnce(E) -> MatrixError {
    let message = format!("{what} {value:?}");
    move |error| MatrixError::Invalid(format!("{message}: {error}"))
}

fn raw<T>(value: &Value) -> Result<Raw<T>, MatrixError> {
    Raw::new(value)
        .map(Raw::cast_unchecked)
        .map_err(|error| MatrixError::Invalid(format!("encoding content: {error}")))
}

/// A fresh transaction ID: unique per call, so a retried send is deduplicated by the server
/// only when the caller reuses the same ID (see [`Client::send_event_with_txn`]).
pub fn new_transaction_id() -> OwnedTransactionId {
    ruma::TransactionId::new()
}

impl Client {
    /// Logs in with a password; returns a client acting as that user and the device ID.
    pub async fn login_password(
        &self,
        user: &str,
        password: &Secret,
    ) -> Result<(Client, String), MatrixError> {
        let password = password
            .expose_str()
            .ok_or_else(|| MatrixError::Invalid("the password is not UTF-8".to_owned()))?;
        let identifier = ruma::api::client::uiaa::UserIdentifier::Matrix(
            ruma::api::client::uiaa::MatrixUserIdentifier::new(user.to_owned()),
        );
        let info = login::v3::LoginInfo::Password(login::v3::Password::new(
            identifier,
            password.to_owned(),
        ));
        let mut request = login::v3::Request::new(info);
        request.initial_device_display_name = Some("bureau".to_owned());
        let response = self.send(request).await?;
        let token = Secret::from_string(response.access_token);
        Ok((
            self.with_session(response.user_id, token),
            response.device_id.to_string(),
        ))
    }

    /// Who the access token belongs to.
    pub async fn whoami(&self) -> Result<OwnedUserId, MatrixError> {
        Ok(self.send(whoami::v3::Request::new()).await?.user_id)
    }

    /// Invalidates the access token.
    pub async fn logout(&self) -> Result<(), MatrixError> {
        self.send(logout::v3::Request::new()).await.map(drop)
    }

    /// Creates a room (or space) and returns its ID.
    pub async fn create_room(&self, options: &RoomOptions) -> Result<OwnedRoomId, MatrixError> {
        let mut request = create_room::v3::Request::new();
        request.room_alias_name = options.alias_localpart.clone();
        request.name = options.name.clone();
        request.topic = options.topic.clone();
        request.invite = options.invite.clone();
        if options.space {
            request.creation_content = Some(raw(&serde_json::json!({"type": "m.space"}))?);
        }
        if let Some(power_levels) = &options.power_levels {
            request.power_level_content_override = Some(raw(power_levels)?);
        }
        request.initial_state = options
            .initial_state
            .iter()
            .map(|(event_type, state_key, content)| {
                raw(&serde_json::json!({
                    "type": event_type,
                    "state_key": state_key,
                    "content": content,
                }))
            })
            .collect::<Result<_, _>>()?;
        Ok(self.send(request).await?.room_id)
    }

    /// Joins a room by ID (`!…`) or alias (`#…`); returns the room ID.
    pub async fn join(&self, room: &str) -> Result<OwnedRoomId, MatrixError> {
        let target = OwnedRoomOrAliasId::try_from(room).map_err(invalid("room", room))?;
        let request = join_room_by_id_or_alias::v3::Request::new(target);
        Ok(self.send(request).await?.room_id)
    }

    pub async fn invite(&self, room_id: &OwnedRoomId, user_id: &str) -> Result<(), MatrixError> {
        let user_id = parse_user_id(user_id)?;
        let recipient = invite_user::v3::InvitationRecipient::UserId(
            invite_user::v3::InviteUserId::new(user_id),
        );
        self.send(invite_user::v3::Request::new(room_id.clone(), recipient))
            .await
            .map(drop)
    }

    pub async fn kick(
        &self,
        room_id: &OwnedRoomId,
        user_id: &str,
        reason: Option<&str>,
    ) -> Result<(), MatrixError> {
        let mut request = kick_user::v3::Request::new(room_id.clone(), parse_user_id(user_id)?);
        request.reason = reason.map(str::to_owned);
        self.send(request).await.map(drop)
    }

    pub async fn leave(&self, room_id: &OwnedRoomId) -> Result<(), MatrixError> {
        self.send(leave_room::v3::Request::new(room_id.clone()))
            .await
            .map(drop)
    }

    /// The room an alias points to, or `None` when the alias does not exist.
    pub async fn resolve_alias(&self, alias: &str) -> Result<Option<OwnedRoomId>, MatrixError> {
        let alias = OwnedRoomAliasId::try_from(alias).map_err(invalid("room alias", alias))?;
        match self.send(get_alias::v3::Request::new(alias)).await {
            Ok(response) => Ok(Some(response.room_id)),
            Err(error) if error.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// The content of a state event, or `None` when there is none.
    pub async fn state_get(
        &self,
        room_id: &OwnedRoomId,
        event_type: &str,
        state_key: &str,
    ) -> Result<Option<Value>, MatrixError> {
        let request = get_state_event_for_key::v3::Request::new(
            room_id.clone(),
            StateEventType::from(event_type),
            state_key.to_owned(),
        );
        match self.send(request).await {
            Ok(response) => serde_json::from_str(response.event_or_content.get())
                .map(Some)
                .map_err(|error| MatrixError::Invalid(format!("state content: {error}"))),
            Err(error) if error.errcode() == Some("M_NOT_FOUND") => Ok(None),
            Err(error) => Err(error),
        }
    }

    /// Every current state event of a room (whole events, with `type`, `state_key` and
    /// `content`).
    pub async fn room_state(&self, room_id: &OwnedRoomId) -> Result<Vec<Value>, MatrixError> {
        let response = self
            .send(get_state_events::v3::Request::new(room_id.clone()))
            .await?;
        Ok(response
            .room_state
            .iter()
            .filter_map(|event| serde_json::from_str(event.json().get()).ok())
            .collect())
    }

    /// Sets a state event; returns its event ID.
    pub async fn state_put(
        &self,
        room_id: &OwnedRoomId,
        event_type: &str,
        state_key: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        let body: Raw<AnyStateEventContent> = raw(content)?;
        let request = send_state_event::v3::Request::new_raw(
            room_id.clone(),
            StateEventType::from(event_type),
            state_key.to_owned(),
            body,
        );
        Ok(self.send(request).await?.event_id)
    }

    /// Sends a plain-text `m.room.message` (`m.text`, or `m.notice` when `notice`).
    pub async fn send_text(
        &self,
        room_id: &OwnedRoomId,
        text: &str,
        notice: bool,
    ) -> Result<OwnedEventId, MatrixError> {
        let msgtype = if notice { "m.notice" } else { "m.text" };
        let content = serde_json::json!({"msgtype": msgtype, "body": text});
        self.send_event(room_id, "m.room.message", &content).await
    }

    /// Sends a message-like event with a fresh transaction ID.
    pub async fn send_event(
        &self,
        room_id: &OwnedRoomId,
        event_type: &str,
        content: &Value,
    ) -> Result<OwnedEventId, MatrixError> {
        self.send_event_with_txn(room_id, event_type, content, &new_transaction_id())
            .await
    }

    /// Sends a message-like event with the caller's transaction ID: retrying with the same ID
    /// after a failure does not duplicate the event.
    pub async fn send_event_with_txn(
        &self,
        room_id: &OwnedRoomId,
        event_type: &str,
        content: &Value,
        txn_id: &OwnedTransactionId,
    ) -> Result<OwnedEventId, MatrixError> {
        let body: Raw<AnyMessageLikeEventContent> = raw(content)?;
        let request = send_message_event::v3::Request::new_raw(
            room_id.clone(),
            txn_id.clone(),
            event_type.into(),
            body,
        );
        Ok(self.send(request).await?.event_id)
    }

    /// One page of a room's history, newest first when `backwards`.
    pub async fn messages(
        &self,
        room_id: &OwnedRoomId,
        from: Option<&str>,
        backwards: bool,
        limit: u32,
    ) -> Result<MessagesPage, MatrixError> {
        let direction = if backwards {
            ruma::api::Direction::Backward
        } else {
            ruma::api::Direction::Forward
        };
        let mut request = get_message_events::v3::Request::new(room_id.clone(), direction);
        request.from = from.map(str::to_owned);
        request.limit = UInt::from(limit);
        let response = self.send(request).await?;
        let events = response
            .chunk
            .iter()
            .filter_map(|event| serde_json::from_str(event.json().get()).ok())
            .collect();
        Ok(MessagesPage {
            events,
            end: response.end,
        })
    }

    /// One `/sync` long-poll. `timeout` is how long the server may hold the request.
    pub async fn sync_once(
        &self,
        since: Option<&str>,
        filter: Option<&Value>,
        timeout: Duration,
    ) -> Result<sync_events::v3::Response, MatrixError> {
        let mut request = sync_events::v3::Request::new();
        request.since = since.map(str::to_owned);
        request.timeout = Some(timeout);
        if let Some(filter) = filter {
            let definition = serde_json::from_value(filter.clone())
                .map_err(|error| MatrixError::Invalid(format!("sync filter: {error}")))?;
            request.filter = Some(sync_events::v3::Filter::FilterDefinition(definition));
        }
        // The server holds the request for `timeout`; give the round trip that plus a margin.
        self.send_with_timeout(request, timeout + super::client::REQUEST_TIMEOUT)
            .await
    }

    /// Sets this user's presence.
    pub async fn set_presence(
        &self,
        online: bool,
        status: Option<&str>,
    ) -> Result<(), MatrixError> {
        let user_id = self
            .user_id()
            .cloned()
            .ok_or_else(|| MatrixError::Invalid("set_presence needs a logged-in client".into()))?;
        let state = if online {
            PresenceState::Online
        } else {
            PresenceState::Unavailable
        };
        let mut request = set_presence::v3::Request::new(user_id, state);
        request.status_msg = status.map(str::to_owned);
        self.send(request).await.map(drop)
    }
}
