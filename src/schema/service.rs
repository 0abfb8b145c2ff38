//! Service registrations (`m.bureau.service`, state key = the service principal's localpart,
//! in the fleet's service room): the fleet's service directory.
//!
//! Invariant: a registration says who provides a service and where it runs; it grants nothing.
//! Reaching a service still needs a grant, checked by the daemon that mints the service token.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::is_lowercase_token;
use crate::naming::UserId;

/// One service principal's registration.
///
/// Example:
/// ```json
/// {"principal": "@acme/service/stt:bureau.local",
///  "machine": "@acme/fleet/prod/machine/box1:bureau.local",
///  "description": "Whisper speech-to-text",
///  "capabilities": ["stt", "stt/streaming"],
///  "endpoints": [{"name": "api", "protocol": "http", "path": "/v1"},
///                {"name": "events", "protocol": "cbor"}]}
/// ```
///
/// ```
/// use bureau::schema::Service;
///
/// let service: Service = serde_json::from_str(r#"{
///     "principal": "@acme/service/stt:bureau.local",
///     "machine": "@acme/fleet/prod/machine/box1:bureau.local",
///     "capabilities": ["stt"],
///     "endpoints": [{"name": "api", "protocol": "http"}]}"#)?;
/// service.validate()?;
/// assert_eq!(service.principal.localpart().as_str(), "acme/service/stt");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Service {
    /// The principal that provides the service.
    pub principal: UserId,
    /// The machine it runs on.
    pub machine: UserId,
    /// What it is, for humans.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// What it can do, for discovery: lowercase names, `/` for sub-capabilities.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    /// How to talk to it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub endpoints: Vec<ServiceEndpoint>,
}

/// One way to talk to a service.
///
/// Example: `{"name": "api", "protocol": "http", "path": "/v1"}` — HTTP requests under `/v1`
/// on the service's socket.
///
/// ```
/// use bureau::schema::ServiceEndpoint;
///
/// let endpoint: ServiceEndpoint = serde_json::from_str(r#"{"name": "events", "protocol": "cbor"}"#)?;
/// assert_eq!(endpoint.path, None);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEndpoint {
    /// The endpoint's name, unique within the service.
    pub name: String,
    /// The protocol spoken, e.g. `http` or `cbor` (open-ended: newer protocols read as text).
    pub protocol: String,
    /// The path prefix, for HTTP endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// Why a [`Service`] registration cannot be used. Messages name the service principal.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServiceError {
    /// A capability that is not a lowercase name.
    ///
    /// Example: `"Speech To Text"` → `service "@acme/service/stt:bureau.local": capabilities[0]
    /// "Speech To Text" is not a capability name; use lowercase a-z, 0-9, '.', '_', '-' and '/'
    /// between parts, like "stt/streaming"`.
    #[error(
        "service {service:?}: capabilities[{index}] {capability:?} is not a capability name; use \
         lowercase a-z, 0-9, '.', '_', '-' and '/' between parts, like \"stt/streaming\""
    )]
    BadCapability {
        /// The service principal.
        service: String,
        /// The capability's index.
        index: usize,
        /// The capability.
        capability: String,
    },

    /// An endpoint name that is not a lowercase name.
    ///
    /// Example: `""` → `service "@acme/service/stt:bureau.local": endpoints[0].name "" is not an
    /// endpoint name; use lowercase a-z, 0-9, '.', '_' and '-', like "api"`.
    #[error(
        "service {service:?}: endpoints[{index}].name {name:?} is not an endpoint name; use \
         lowercase a-z, 0-9, '.', '_' and '-', like \"api\""
    )]
    BadEndpointName {
        /// The service principal.
        service: String,
        /// The endpoint's index.
        index: usize,
        /// The name.
        name: String,
    },

    /// Two endpoints with one name.
    ///
    /// Example: → `service "@acme/service/stt:bureau.local": endpoints[0] and endpoints[1] are
    /// both named "api"; give each endpoint its own name`.
    #[error(
        "service {service:?}: endpoints[{first}] and endpoints[{second}] are both named {name:?}; \
         give each endpoint its own name"
    )]
    DuplicateEndpoint {
        /// The service principal.
        service: String,
        /// The name.
        name: String,
        /// The first endpoint's index.
        first: usize,
        /// The second endpoint's index.
        second: usize,
    },

    /// An endpoint without a protocol.
    ///
    /// Example: → `service "@acme/service/stt:bureau.local": endpoints[0].protocol is empty;
    /// name the protocol, like "http" or "cbor"`.
    #[error(
        "service {service:?}: endpoints[{index}].protocol is empty; name the protocol, like \
         \"http\" or \"cbor\""
    )]
    EmptyProtocol {
        /// The service principal.
        service: String,
        /// The endpoint's index.
        index: usize,
    },

    /// An endpoint path that does not start with `/`.
    ///
    /// Example: `"v1"` → `service "@acme/service/stt:bureau.local": endpoints[0].path "v1" must
    /// start with '/', like "/v1"`.
    #[error(
        "service {service:?}: endpoints[{index}].path {path:?} must start with '/', like \"/v1\""
    )]
    BadEndpointPath {
        /// The service principal.
        service: String,
        /// The endpoint's index.
        index: usize,
        /// The path.
        path: String,
    },
}

/// Whether `capability` is `/`-separated lowercase tokens.
fn is_capability(capability: &str) -> bool {
    capability.split('/').all(is_lowercase_token)
}

impl Service {
    /// Checks capability names, endpoint names (unique), protocols and paths.
    ///
    /// Example: two endpoints named `api` → `Err(service "@…": endpoints[0] and endpoints[1] are
    /// both named "api"; …)`.
    ///
    /// ```
    /// use bureau::schema::Service;
    ///
    /// let service: Service = serde_json::from_str(r#"{
    ///     "principal": "@acme/service/stt:bureau.local",
    ///     "machine": "@acme/machine/box1:bureau.local",
    ///     "capabilities": ["Speech To Text"]}"#)?;
    /// assert!(service.validate().unwrap_err().to_string().contains("is not a capability name"));
    /// # Ok::<(), serde_json::Error>(())
    /// ```
    pub fn validate(&self) -> Result<(), ServiceError> {
        let service = || self.principal.to_string();
        for (index, capability) in self.capabilities.iter().enumerate() {
            if !is_capability(capability) {
                return Err(ServiceError::BadCapability {
                    service: service(),
                    index,
                    capability: capability.clone(),
                });
            }
        }
        let mut names: HashMap<&str, usize> = HashMap::new();
        for (index, endpoint) in self.endpoints.iter().enumerate() {
            if !is_lowercase_token(&endpoint.name) {
                return Err(ServiceError::BadEndpointName {
                    service: service(),
                    index,
                    name: endpoint.name.clone(),
                });
            }
            if let Some(first) = names.insert(&endpoint.name, index) {
                return Err(ServiceError::DuplicateEndpoint {
                    service: service(),
                    name: endpoint.name.clone(),
                    first,
                    second: index,
                });
            }
            if endpoint.protocol.is_empty() {
                return Err(ServiceError::EmptyProtocol {
                    service: service(),
                    index,
                });
            }
            if let Some(path) = &endpoint.path
                && !path.starts_with('/')
            {
                return Err(ServiceError::BadEndpointPath {
                    service: service(),
                    index,
                    path: path.clone(),
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::super::test_support::{parse_error, round_trip, tolerates_unknown_fields};
    use super::*;

    fn service_json() -> serde_json::Value {
        json!({
            "principal": "@acme/service/stt:bureau.local",
            "machine": "@acme/fleet/prod/machine/box1:bureau.local",
            "description": "Whisper speech-to-text",
            "capabilities": ["stt", "stt/streaming"],
            "endpoints": [
                {"name": "api", "protocol": "http", "path": "/v1"},
                {"name": "events", "protocol": "cbor"}
            ]
        })
    }

    fn service() -> Service {
        serde_json::from_value(service_json()).unwrap()
    }

    fn error_text(service: &Service) -> String {
        service.validate().unwrap_err().to_string()
    }

    #[test]
    fn round_trips_and_validates() {
        let service: Service = round_trip(service_json());
        service.validate().unwrap();
        assert_eq!(service.machine.server().as_str(), "bureau.local");
        tolerates_unknown_fields::<Service>(service_json());
        tolerates_unknown_fields::<ServiceEndpoint>(json!({"name": "api", "protocol": "http"}));
    }

    #[test]
    fn requires_full_user_ids() {
        let mut json = service_json();
        json["principal"] = json!("acme/service/stt");
        let error = parse_error::<Service>(json);
        assert!(error.contains("must start with '@'"), "{error}");
    }

    #[test]
    fn refuses_bad_capabilities() {
        for capability in ["Speech To Text", "stt/", "", "/stt"] {
            let mut service = service();
            service.capabilities = vec![capability.to_owned()];
            assert_eq!(
                error_text(&service),
                format!(
                    "service \"@acme/service/stt:bureau.local\": capabilities[0] {capability:?} is \
                     not a capability name; use lowercase a-z, 0-9, '.', '_', '-' and '/' between \
                     parts, like \"stt/streaming\""
                )
            );
        }
    }

    #[test]
    fn refuses_bad_endpoint_names() {
        let mut service = service();
        service.endpoints[1].name = "Events".to_owned();
        assert_eq!(
            error_text(&service),
            "service \"@acme/service/stt:bureau.local\": endpoints[1].name \"Events\" is not an \
             endpoint name; use lowercase a-z, 0-9, '.', '_' and '-', like \"api\""
        );
    }

    #[test]
    fn refuses_duplicate_endpoint_names() {
        let mut service = service();
        service.endpoints[1].name = "api".to_owned();
        assert_eq!(
            error_text(&service),
            "service \"@acme/service/stt:bureau.local\": endpoints[0] and endpoints[1] are both \
             named \"api\"; give each endpoint its own name"
        );
    }

    #[test]
    fn refuses_an_empty_protocol() {
        let mut service = service();
        service.endpoints[0].protocol.clear();
        assert_eq!(
            error_text(&service),
            "service \"@acme/service/stt:bureau.local\": endpoints[0].protocol is empty; name the \
             protocol, like \"http\" or \"cbor\""
        );
    }

    #[test]
    fn refuses_a_relative_endpoint_path() {
        let mut service = service();
        service.endpoints[0].path = Some("v1".to_owned());
        assert_eq!(
            error_text(&service),
            "service \"@acme/service/stt:bureau.local\": endpoints[0].path \"v1\" must start with \
             '/', like \"/v1\""
        );
    }
}
