//! `/sync` as a stream of batches: long-polls in a loop, resumes from the last `next_batch`
//! (which the caller may persist and hand back after a restart), and rides out homeserver
//! restarts and network trouble with backoff from 1 s doubling to 30 s. Only an unknown token is
//! fatal (logging in again is the operator's decision).
//!
//! The backoff policy is a pure value ([`Backoff`]); the stream is a thin driver around it.

use std::time::Duration;

use ruma::OwnedRoomId;
use ruma::api::client::sync::sync_events::v3::{Response, State};
use serde_json::Value;

use super::client::Client;
use super::error::MatrixError;

/// Exponential backoff: 1 s, 2 s, 4 s, … capped at 30 s; reset by a success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    next: Duration,
}

impl Backoff {
    pub const FIRST: Duration = Duration::from_secs(1);
    pub const MAX: Duration = Duration::from_secs(30);

    pub fn new() -> Self {
        Self { next: Self::FIRST }
    }

    /// The delay before the next retry; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(Self::MAX);
        delay
    }

    pub fn reset(&mut self) {
        self.next = Self::FIRST;
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Self::new()
    }
}

/// The events of one room in one batch.
#[derive(Debug, Clone, Default)]
pub struct RoomEvents {
    pub room_id: Option<OwnedRoomId>,
    /// Timeline events, oldest first (messages and state changes as they happened).
    pub timeline: Vec<Value>,
    /// State events (the room's state before the timeline, on an initial sync).
    pub state: Vec<Value>,
}

/// What one `/sync` returned.
#[derive(Debug, Clone, Default)]
pub struct SyncBatch {
    pub next_batch: String,
    pub joined: Vec<RoomEvents>,
    pub invited: Vec<OwnedRoomId>,
    pub left: Vec<OwnedRoomId>,
}

impl SyncBatch {
    fn from_response(response: Response) -> Self {
        let to_values = |events: Vec<String>| -> Vec<Value> {
            events
                .iter()
                .filter_map(|json| serde_json::from_str(json).ok())
                .collect()
        };
        let joined = response
            .rooms
            .join
            .into_iter()
            .map(|(room_id, room)| {
                let state = match room.state {
                    State::Before(events) | State::After(events) => events.events,
                    _ => Vec::new(),
                };
                RoomEvents {
                    room_id: Some(room_id),
                    timeline: to_values(
                        room.timeline
                            .events
                            .iter()
                            .map(|event| event.json().get().to_owned())
                            .collect(),
                    ),
                    state: to_values(
                        state
                            .iter()
                            .map(|event| event.json().get().to_owned())
                            .collect(),
                    ),
                }
            })
            .collect();
        Self {
            next_batch: response.next_batch,
            joined,
            invited: response.rooms.invite.into_keys().collect(),
            left: response.rooms.leave.into_keys().collect(),
        }
    }

    /// The timeline events of `room_id` in this batch.
    pub fn timeline_of(&self, room_id: &OwnedRoomId) -> impl Iterator<Item = &Value> {
        self.joined
            .iter()
            .filter(move |room| room.room_id.as_ref() == Some(room_id))
            .flat_map(|room| room.timeline.iter())
    }
}

/// A resumable `/sync` loop.
pub struct SyncStream {
    client: Client,
    since: Option<String>,
    filter: Option<Value>,
    poll_timeout: Duration,
    backoff: Backoff,
}

impl SyncStream {
    /// Starts from `since` (a saved `next_batch`) or from scratch.
    pub fn new(client: Client, since: Option<String>, filter: Option<Value>) -> Self {
        Self {
            client,
            since,
            filter,
            poll_timeout: Duration::from_secs(30),
            backoff: Backoff::new(),
        }
    }

    /// How long the server may hold each long-poll (default 30 s).
    pub fn with_poll_timeout(mut self, timeout: Duration) -> Self {
        self.poll_timeout = timeout;
        self
    }

    /// The position to resume from: persist it to survive a restart.
    pub fn since(&self) -> Option<&str> {
        self.since.as_deref()
    }

    /// The next batch. Retries transient failures (unreachable, timeouts, 5xx, rate limits)
    /// with backoff, forever; returns an error only for one that retrying cannot fix.
    pub async fn next_batch(&mut self) -> Result<SyncBatch, MatrixError> {
        loop {
            // The first sync returns at once with the current state; later ones long-poll.
            let timeout = if self.since.is_some() {
                self.poll_timeout
            } else {
                Duration::ZERO
            };
            match self
                .client
                .sync_once(self.since.as_deref(), self.filter.as_ref(), timeout)
                .await
            {
                Ok(response) => {
                    self.backoff.reset();
                    let batch = SyncBatch::from_response(response);
                    self.since = Some(batch.next_batch.clone());
                    return Ok(batch);
                }
                Err(error) if error.is_transient() => {
                    let delay = match &error {
                        MatrixError::LimitExceeded {
                            retry_after: Some(after),
                            ..
                        } => *after,
                        _ => self.backoff.next_delay(),
                    };
                    tracing::warn!(%error, ?delay, "sync failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                Err(error) => return Err(error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_and_resets() {
        let mut backoff = Backoff::new();
        let delays: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_secs(1));
    }
}
