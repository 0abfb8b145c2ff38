//! An HTTP service the proxy forwards to: where it is, which credential headers to inject, what
//! the agent may call, and how fast. Registered through the admin socket (or `--services`).
//!
//! Example (`PUT /v1/admin/services/openai`):
//! ```json
//! {"upstream_url": "https://api.openai.com",
//!  "inject_headers": {"Authorization": "OPENAI_API_KEY"}, "auth_scheme": "Bearer",
//!  "rules": [{"methods": ["POST"], "paths": ["/v1/chat/**"]}],
//!  "rate": {"per_second": 10, "burst": 20}, "timeout_ms": 60000}
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::upstream::{UpstreamUrlProblem, check_upstream_url};

/// A service's configuration (never holds a secret: headers name credentials).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceConfig {
    /// `http://host[:port][/base]` or `https://…`; names are resolved by the proxy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_url: Option<String>,
    /// A Unix socket speaking HTTP/1.1 (instead of `upstream_url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream_unix: Option<PathBuf>,
    /// Header name → credential name; any same-named header from the agent is removed first.
    #[serde(default)]
    pub inject_headers: BTreeMap<String, String>,
    /// A scheme put before each injected value (`Bearer` → `Authorization: Bearer sk-…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_scheme: Option<String>,
    /// Headers removed from the agent's request.
    #[serde(default)]
    pub strip_headers: Vec<String>,
    /// Allow rules; once any exists, a request must match one (deny by default).
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// A token bucket for this service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate: Option<Rate>,
    /// Time allowed for the upstream's response headers (default 60 s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Largest request body accepted (default 256 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<u64>,
}

/// One allow rule: any of `methods` (empty = any) on any of `paths` (globs over the path after
/// the service name: `*` within a segment, `**` across segments).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    #[serde(default)]
    pub methods: Vec<String>,
    pub paths: Vec<String>,
}

/// A token bucket: `per_second` sustained, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

impl Eq for Rate {}

/// A service configuration that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServiceError {
    #[error("service name {0:?} is invalid: use 1-64 of a-z, 0-9, '-' and '_'")]
    BadName(String),
    #[error("service {0}: give exactly one of upstream_url or upstream_unix")]
    Upstream(String),
    // URL errors name the service, never the URL: one can carry a secret (`?key=…`, `user:…@`).
    #[error("service {0}: upstream_url must be http:// or https:// with a host")]
    BadUrl(String),
    #[error(
        "service {0}: upstream_url must not carry credentials (user:password@host); give them \
         to the proxy as credentials and name them in inject_headers"
    )]
    UrlCredentials(String),
    #[error(
        "service {0}: upstream_url must not have a query or fragment (`?`, `#`): request paths \
         are appended to it; give keys as credentials in inject_headers"
    )]
    UrlQuery(String),
    #[error("service {name}: upstream_unix {path:?} must be an absolute path")]
    RelativeSocket { name: String, path: String },
    #[error(
        "service {name}: inject_headers maps {header:?} to {credential:?}, which is not a credential name (A-Z, 0-9, _)"
    )]
    BadCredential {
        name: String,
        header: String,
        credential: String,
    },
    #[error("service {name}: header name {header:?} is invalid")]
    BadHeader { name: String, header: String },
    #[error("service {name}: rate needs per_second > 0 and burst >= 1")]
    BadRate { name: String },
    #[error("service {name}: rule path {path:?} must start with '/'")]
    BadRulePath { name: String, path: String },
}

/// Service names: `[a-z0-9_-]{1,64}` (they are one URL path segment).
pub fn is_service_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

impl ServiceConfig {
    pub fn validate(&self, name: &str) -> Result<(), ServiceError> {
        let named = || name.to_owned();
        if !is_service_name(name) {
            return Err(ServiceError::BadName(named()));
        }
        match (&self.upstream_url, &self.upstream_unix) {
            (Some(url), None) => match check_upstream_url(url) {
                Ok(()) => {}
                Err(UpstreamUrlProblem::Credentials) => {
                    return Err(ServiceError::UrlCredentials(named()));
                }
                Err(UpstreamUrlProblem::QueryOrFragment) => {
                    return Err(ServiceError::UrlQuery(named()));
                }
                Err(UpstreamUrlProblem::NotHttpWithHost) => {
                    return Err(ServiceError::BadUrl(named()));
                }
            },
            (None, Some(path)) if !path.is_absolute() => {
                return Err(ServiceError::RelativeSocket {
                    name: named(),
                    path: path.display().to_string(),
                });
            }
            (None, Some(_)) => {}
            _ => return Err(ServiceError::Upstream(named())),
        }
        for (header, credential) in &self.inject_headers {
            if http::HeaderName::try_from(header.as_str()).is_err() {
                return Err(ServiceError::BadHeader {
                    name: named(),
                    header: header.clone(),
                });
            }
            if !super::payload::is_credential_name(credential) {
                return Err(ServiceError::BadCredential {
                    name: named(),
                    header: header.clone(),
                    credential: credential.clone(),
                });
            }
        }
        for header in &self.strip_headers {
            if http::HeaderName::try_from(header.as_str()).is_err() {
                return Err(ServiceError::BadHeader {
                    name: named(),
                    header: header.clone(),
                });
            }
        }
        if let Some(rate) = self.rate
            && (rate.per_second.is_nan() || rate.per_second <= 0.0 || rate.burst < 1.0)
        {
            return Err(ServiceError::BadRate { name: named() });
        }
        for rule in &self.rules {
            for path in &rule.paths {
                if !path.starts_with('/') {
                    return Err(ServiceError::BadRulePath {
                        name: named(),
                        path: path.clone(),
                    });
                }
            }
        }
        Ok(())
    }

    /// Whether the rules allow `method` on `path` (no rules: everything is allowed).
    pub fn allows(&self, method: &str, path: &str) -> bool {
        self.rules.is_empty()
            || self.rules.iter().any(|rule| {
                (rule.methods.is_empty()
                    || rule
                        .methods
                        .iter()
                        .any(|allowed| allowed.eq_ignore_ascii_case(method)))
                    && rule.paths.iter().any(|glob| path_glob_matches(glob, path))
            })
    }
}

/// `*` matches within one `/`-separated segment, `**` any number of whole segments.
///
/// Example: `/v1/chat/**` matches `/v1/chat/completions`; `/v1/*/list` matches `/v1/files/list`
/// but not `/v1/a/b/list`.
pub fn path_glob_matches(glob: &str, path: &str) -> bool {
    let glob: Vec<&str> = glob.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    // Segment-level dynamic programming: reachable[j] = glob[..i] matches path[..j].
    let mut reachable = vec![false; path.len() + 1];
    reachable[0] = true;
    for segment in &glob {
        let mut next = vec![false; path.len() + 1];
        if *segment == "**" {
            let mut any = false;
            for j in 0..=path.len() {
                any |= reachable[j];
                next[j] = any;
            }
        } else {
            for j in 0..path.len() {
                if reachable[j] && segment_matches(segment.as_bytes(), path[j].as_bytes()) {
                    next[j + 1] = true;
                }
            }
        }
        reachable = next;
    }
    reachable[path.len()]
}

/// `*` (any run) and literal bytes within one segment, by two-pointer backtracking.
fn segment_matches(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((star_p, star_t)) = star {
            p = star_p + 1;
            t = star_t + 1;
            star = Some((star_p, star_t + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|byte| *byte == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(json: &str) -> ServiceConfig {
        serde_json::from_str(json).expect("service json")
    }

    #[test]
    fn path_globs_follow_segment_rules() {
        assert!(path_glob_matches("/v1/chat/**", "/v1/chat/completions"));
        assert!(path_glob_matches("/v1/chat/**", "/v1/chat"));
        assert!(path_glob_matches("/v1/*/list", "/v1/files/list"));
        assert!(!path_glob_matches("/v1/*/list", "/v1/a/b/list"));
        assert!(path_glob_matches("/v1/models*", "/v1/models-extra"));
        assert!(!path_glob_matches("/v1/models", "/v1/models/x"));
        assert!(path_glob_matches("/**", "/anything/at/all"));
    }

    #[test]
    fn rules_deny_by_default_once_present() {
        let open = service(r#"{"upstream_url": "http://127.0.0.1:1"}"#);
        assert!(open.allows("DELETE", "/anything"));
        let ruled = service(
            r#"{"upstream_url": "http://127.0.0.1:1",
                "rules": [{"methods": ["GET", "post"], "paths": ["/v1/**"]}]}"#,
        );
        assert!(ruled.allows("POST", "/v1/chat"));
        assert!(!ruled.allows("DELETE", "/v1/chat"));
        assert!(!ruled.allows("GET", "/admin"));
    }

    #[test]
    fn validation_names_the_problem() {
        let both = service(r#"{"upstream_url": "http://a", "upstream_unix": "/s"}"#);
        assert_eq!(both.validate("x"), Err(ServiceError::Upstream("x".into())));
        let bad_credential = service(
            r#"{"upstream_url": "http://a", "inject_headers": {"Authorization": "lower"}}"#,
        );
        assert!(
            bad_credential
                .validate("x")
                .expect_err("bad")
                .to_string()
                .contains("lower")
        );
        let ok = service(r#"{"upstream_url": "https://api.example.com/base"}"#);
        assert!(ok.validate("openai").is_ok());
        assert!(matches!(
            ok.validate("Bad Name"),
            Err(ServiceError::BadName(_))
        ));
        let unknown = serde_json::from_str::<ServiceConfig>(r#"{"upstream": "http://a"}"#);
        assert!(unknown.is_err(), "misspelt fields are refused");
    }

    #[test]
    fn upstreams_with_credentials_queries_or_relative_sockets_are_refused() {
        let userinfo = service(r#"{"upstream_url": "https://me:sk-secret@api.example.com"}"#);
        let error = userinfo.validate("x").expect_err("userinfo");
        assert_eq!(error, ServiceError::UrlCredentials("x".into()));
        assert!(
            !error.to_string().contains("sk-secret"),
            "the URL is not echoed: {error}"
        );
        let query = service(r#"{"upstream_url": "https://api.example.com/v1?key=k"}"#);
        let error = query.validate("x").expect_err("query");
        assert_eq!(error, ServiceError::UrlQuery("x".into()));
        assert!(!error.to_string().contains("key=k"), "{error}");
        let relative = service(r#"{"upstream_unix": "run/api.sock"}"#);
        assert!(matches!(
            relative.validate("x"),
            Err(ServiceError::RelativeSocket { .. })
        ));
        assert!(
            service(r#"{"upstream_unix": "/run/api.sock"}"#)
                .validate("x")
                .is_ok()
        );
    }
}
