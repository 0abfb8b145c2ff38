//! The proxy's live state: services, credentials, grants and rate limits, each replaceable at
//! run time through the admin socket.
//!
//! Credential rotation is a pointer swap: a request takes a snapshot (`Arc`) of the credential
//! map when it starts, so in-flight requests finish with the old values and new requests see
//! the new ones; the old map's secrets are zeroed when the last request holding it ends.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::payload::{Grant, Identity, Payload};
use super::ratelimit::TokenBucket;
use super::service::{Rate, ServiceConfig, path_glob_matches};
use crate::secret::Secret;

/// The credential map (name → value).
pub type Credentials = BTreeMap<String, Secret>;

/// A registered service with its rate limiter.
#[derive(Debug)]
pub struct Service {
    pub name: String,
    pub config: ServiceConfig,
    bucket: Option<Mutex<TokenBucket>>,
}

impl Service {
    pub fn new(name: String, config: ServiceConfig) -> Self {
        let bucket = config.rate.map(|rate| {
            Mutex::new(TokenBucket::new(
                rate.per_second,
                rate.burst,
                Instant::now(),
            ))
        });
        Self {
            name,
            config,
            bucket,
        }
    }

    /// Takes a token from the service's bucket; the error is the wait in whole seconds.
    pub fn take_token(&self) -> Result<(), u64> {
        take(self.bucket.as_ref())
    }
}

fn take(bucket: Option<&Mutex<TokenBucket>>) -> Result<(), u64> {
    let Some(bucket) = bucket else {
        return Ok(());
    };
    let mut bucket = match bucket.lock() {
        Ok(bucket) => bucket,
        Err(poisoned) => poisoned.into_inner(),
    };
    bucket
        .try_take(Instant::now())
        .map_err(|wait| wait.as_secs_f64().ceil().max(1.0) as u64)
}

/// Everything the proxy serves from.
pub struct ProxyState {
    services: RwLock<BTreeMap<String, Arc<Service>>>,
    credentials: RwLock<Arc<Credentials>>,
    grants: RwLock<Arc<Vec<Grant>>>,
    pub identity: Option<Identity>,
    principal_bucket: Option<Mutex<TokenBucket>>,
}

fn read<T: Clone>(lock: &RwLock<T>) -> T {
    match lock.read() {
        Ok(guard) => guard.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    }
}

fn write<T>(lock: &RwLock<T>, value: T) {
    match lock.write() {
        Ok(mut guard) => *guard = value,
        Err(poisoned) => *poisoned.into_inner() = value,
    }
}

impl ProxyState {
    /// State from the payload, with an optional per-principal rate limit.
    pub fn new(payload: Payload, principal_rate: Option<Rate>) -> Self {
        Self {
            services: RwLock::new(BTreeMap::new()),
            credentials: RwLock::new(Arc::new(payload.credentials)),
            grants: RwLock::new(Arc::new(payload.grants)),
            identity: payload.identity,
            principal_bucket: principal_rate.map(|rate| {
                Mutex::new(TokenBucket::new(
                    rate.per_second,
                    rate.burst,
                    Instant::now(),
                ))
            }),
        }
    }

    /// The service `name` (one `Arc` clone under a read lock: this is on every request).
    pub fn service(&self, name: &str) -> Option<Arc<Service>> {
        match self.services.read() {
            Ok(services) => services.get(name).cloned(),
            Err(poisoned) => poisoned.into_inner().get(name).cloned(),
        }
    }

    pub fn services(&self) -> BTreeMap<String, Arc<Service>> {
        read(&self.services)
    }

    /// Adds or replaces a service (validated by the caller).
    pub fn put_service(&self, name: &str, config: ServiceConfig) {
        let mut services = read(&self.services);
        services.insert(
            name.to_owned(),
            Arc::new(Service::new(name.to_owned(), config)),
        );
        write(&self.services, services);
    }

    /// Removes a service; false when there was none.
    pub fn remove_service(&self, name: &str) -> bool {
        let mut services = read(&self.services);
        let removed = services.remove(name).is_some();
        write(&self.services, services);
        removed
    }

    /// A snapshot of the credentials, valid for one request.
    pub fn credentials(&self) -> Arc<Credentials> {
        read(&self.credentials)
    }

    /// Replaces every credential at once (live rotation).
    pub fn replace_credentials(&self, credentials: Credentials) {
        write(&self.credentials, Arc::new(credentials));
    }

    pub fn grants(&self) -> Arc<Vec<Grant>> {
        read(&self.grants)
    }

    pub fn replace_grants(&self, grants: Vec<Grant>) {
        write(&self.grants, Arc::new(grants));
    }

    /// Takes a token from the principal's bucket; the error is the wait in whole seconds.
    pub fn take_principal_token(&self) -> Result<(), u64> {
        take(self.principal_bucket.as_ref())
    }

    /// Whether an unexpired grant allows `action` on `target` now (see [`grant_allows`]).
    pub fn allows(&self, action: &str, target: Option<&str>) -> bool {
        grant_allows(&self.grants(), action, target, crate::schema::now_ms())
    }

    /// The grants that apply now (an expired one is kept, but no longer shown or honoured).
    pub fn active_grants(&self) -> Vec<Grant> {
        let now = crate::schema::now_ms();
        self.grants()
            .iter()
            .filter(|grant| grant.is_active_at(now))
            .cloned()
            .collect()
    }
}

/// A grant allows `action` at `now` (milliseconds since the Unix epoch) when it has not
/// expired, one of its actions is the action, `*`, or a `prefix/*` covering it, and — when
/// there is a target — one of its targets (if it lists any) matches the target as a segment
/// glob (`*` within a segment, `**` across).
pub fn grant_allows(grants: &[Grant], action: &str, target: Option<&str>, now: u64) -> bool {
    grants
        .iter()
        .filter(|grant| grant.is_active_at(now))
        .any(|grant| {
            let action_matches = grant.actions.iter().any(|granted| {
                granted == action
                    || granted == "*"
                    || granted
                        .strip_suffix("/*")
                        .is_some_and(|prefix| action.starts_with(&format!("{prefix}/")))
            });
            let target_matches = match target {
                _ if grant.targets.is_empty() => true,
                Some(target) => grant
                    .targets
                    .iter()
                    .any(|glob| glob == target || path_glob_matches(glob, target)),
                None => true,
            };
            action_matches && target_matches
        })
}

/// An error response: JSON `{"error": …, "errcode"?: …}` with a status.
#[derive(Debug)]
pub struct ProxyError {
    pub status: StatusCode,
    pub errcode: Option<String>,
    pub message: String,
    /// Seconds for a `Retry-After` header (429).
    pub retry_after: Option<u64>,
}

impl ProxyError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            errcode: None,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn forbidden_matrix(action: &str, target: Option<&str>) -> Self {
        let on = target
            .map(|target| format!(" on {target}"))
            .unwrap_or_default();
        Self {
            status: StatusCode::FORBIDDEN,
            errcode: Some("M_FORBIDDEN".to_owned()),
            message: format!("no grant allows {action}{on} for this principal"),
            retry_after: None,
        }
    }
}

impl IntoResponse for ProxyError {
    fn into_response(self) -> Response {
        let mut body = json!({"error": self.message});
        if let Some(errcode) = self.errcode {
            body["errcode"] = json!(errcode);
        }
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after
            && let Ok(value) = axum::http::HeaderValue::from_str(&seconds.to_string())
        {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(actions: &[&str], targets: &[&str]) -> Grant {
        Grant {
            actions: actions.iter().map(|a| (*a).to_owned()).collect(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            expires_at: None,
        }
    }

    /// Any time will do for grants without an expiry.
    const NOW: u64 = 1_795_600_000_000;

    #[test]
    fn grants_match_actions_prefixes_and_target_globs() {
        let grants = [
            grant(&["matrix/join"], &["#acme/fleet/**"]),
            grant(&["matrix/*"], &["#acme/agent/pm:bureau.local"]),
        ];
        assert!(grant_allows(
            &grants,
            "matrix/join",
            Some("#acme/fleet/prod:bureau.local"),
            NOW
        ));
        assert!(!grant_allows(
            &grants,
            "matrix/join",
            Some("#other:bureau.local"),
            NOW
        ));
        assert!(grant_allows(
            &grants,
            "matrix/invite",
            Some("#acme/agent/pm:bureau.local"),
            NOW
        ));
        assert!(!grant_allows(
            &grants,
            "matrix/invite",
            Some("#acme/fleet/prod:bureau.local"),
            NOW
        ));
        assert!(!grant_allows(&[], "matrix/join", None, NOW));
        assert!(grant_allows(
            &[grant(&["*"], &[])],
            "matrix/create-room",
            None,
            NOW
        ));
    }

    #[test]
    fn an_expired_grant_allows_nothing_from_the_moment_it_expires() {
        let mut expiring = grant(&["matrix/join"], &[]);
        expiring.expires_at = Some(NOW);
        let grants = [expiring];
        assert!(grant_allows(&grants, "matrix/join", None, NOW - 1));
        assert!(!grant_allows(&grants, "matrix/join", None, NOW));
        assert!(!grant_allows(&grants, "matrix/join", None, NOW + 1));
    }

    #[test]
    fn credential_rotation_keeps_old_snapshots_alive_until_dropped() {
        let state = ProxyState::new(Payload::default(), None);
        state.replace_credentials(BTreeMap::from([(
            "KEY".to_owned(),
            Secret::from_string("old".to_owned()),
        )]));
        let in_flight = state.credentials();
        state.replace_credentials(BTreeMap::from([(
            "KEY".to_owned(),
            Secret::from_string("new".to_owned()),
        )]));
        assert!(in_flight["KEY"].constant_time_eq(b"old"));
        assert!(state.credentials()["KEY"].constant_time_eq(b"new"));
    }
}
