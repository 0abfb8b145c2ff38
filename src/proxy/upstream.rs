//! Connections to upstreams: a keep-alive pool per upstream (an `http(s)://host:port` origin or
//! a Unix socket), on hyper's connection-level HTTP/1 client.
//!
//! A request takes a pooled connection whose last exchange is over (`is_ready`), else opens a
//! new one; the connection goes back to the pool as soon as the response head arrives and is
//! taken again once hyper has read that response's body. A request that a reused connection
//! could not even start to send (the upstream closed it while it sat idle) is retried once on a
//! new connection; a request that was sent is never retried.
//!
//! Why not hyper-util's pooled client: it spawns a task per request to return the connection to
//! its pool, and its checkout path showed in the proxy's profile (`cargo xtask bench proxy`).
//! Unix-socket upstreams share the pool too, instead of a connection per request.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper::client::conn::http1::{SendRequest, handshake};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tower_service::Service as _;

type Connector = hyper_rustls::HttpsConnector<HttpConnector>;
type Sender = SendRequest<Body>;

/// Connections idle longer than this are closed rather than reused. Short, because an upstream
/// may close an idle connection just as a request is written to it, and a request that was
/// written is not retried: many servers close idle connections after 5 s (Node.js, uvicorn),
/// while under load a connection is reused within milliseconds.
const IDLE_TIMEOUT: Duration = Duration::from_secs(4);
/// Connections kept per upstream (busy or idle); more are closed after their exchange.
const MAX_PER_UPSTREAM: usize = 256;
/// How often pooled connections are checked for idleness (see [`Upstreams::sweep_idle`]).
const SWEEP_EVERY: Duration = Duration::from_secs(10);

/// Where a service's requests go.
#[derive(Debug, Clone, Copy)]
pub enum Endpoint<'a> {
    /// `origin` is `http(s)://authority`, without a path.
    Url {
        origin: &'a str,
        authority: &'a str,
    },
    Unix(&'a Path),
}

/// What is wrong with an upstream URL. Holds nothing of the URL: one with `user:password@`
/// or `?key=…` carries a secret, so errors name the service, never the URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamUrlProblem {
    /// `user:password@` in the authority.
    Credentials,
    /// A `?query` or `#fragment` (request paths are appended to the URL).
    QueryOrFragment,
    /// Not `http(s)://host[…]` as the proxy can connect to it.
    NotHttpWithHost,
}

/// The one judgement of an `upstream_url`: the proxy's services (`ServiceConfig::validate`) and
/// the templates they come from (`schema::template`) both use it, so a template the daemon
/// accepts never names an upstream the proxy refuses. Secret-bearing forms are found first,
/// on the same split the proxy connects with (`Endpoint::from_url`), so even a URL that does
/// not otherwise parse is never echoed for holding a password.
pub fn check_upstream_url(url: &str) -> Result<(), UpstreamUrlProblem> {
    let Some((Endpoint::Url { authority, .. }, _)) = Endpoint::from_url(url) else {
        return Err(UpstreamUrlProblem::NotHttpWithHost);
    };
    if authority.contains('@') {
        return Err(UpstreamUrlProblem::Credentials);
    }
    if url.contains(['?', '#']) {
        return Err(UpstreamUrlProblem::QueryOrFragment);
    }
    let parses = url
        .parse::<Uri>()
        .is_ok_and(|uri| uri.host().is_some_and(|host| !host.is_empty()));
    if parses {
        Ok(())
    } else {
        Err(UpstreamUrlProblem::NotHttpWithHost)
    }
}

impl<'a> Endpoint<'a> {
    /// Splits an `upstream_url` (validated: `http(s)://authority[/prefix]`) into the endpoint and
    /// the path prefix (no trailing `/`) that each request's path is appended to.
    pub fn from_url(url: &'a str) -> Option<(Self, &'a str)> {
        let scheme_end = url
            .strip_prefix("http://")
            .or_else(|| url.strip_prefix("https://"))
            .map(|rest| url.len() - rest.len())?;
        let authority_end = url[scheme_end..]
            .find('/')
            .map_or(url.len(), |at| scheme_end + at);
        let authority = &url[scheme_end..authority_end];
        if authority.is_empty() {
            return None;
        }
        let endpoint = Endpoint::Url {
            origin: &url[..authority_end],
            authority,
        };
        Some((endpoint, url[authority_end..].trim_end_matches('/')))
    }

    /// The `Host` an upstream URL's requests carry: its authority without a default port.
    pub fn host(&self) -> Option<&'a str> {
        let Endpoint::Url { origin, authority } = *self else {
            return None;
        };
        let default_port = if origin.starts_with("https://") {
            ":443"
        } else {
            ":80"
        };
        Some(authority.strip_suffix(default_port).unwrap_or(authority))
    }
}

struct Pooled {
    sender: Sender,
    since: Instant,
}

impl Pooled {
    /// Whether the connection may still be used: open, and not idle past [`IDLE_TIMEOUT`].
    fn usable(&self, now: Instant) -> bool {
        !self.sender.is_closed() && now.duration_since(self.since) < IDLE_TIMEOUT
    }
}

/// The connection pools: one per origin, one per Unix socket (two maps, so a socket path can
/// never share a pool with an origin that happens to be spelt the same).
#[derive(Default)]
struct Pools {
    origins: HashMap<String, Vec<Pooled>>,
    sockets: HashMap<PathBuf, Vec<Pooled>>,
}

impl Pools {
    fn get_mut(&mut self, endpoint: Endpoint<'_>) -> Option<&mut Vec<Pooled>> {
        match endpoint {
            Endpoint::Url { origin, .. } => self.origins.get_mut(origin),
            Endpoint::Unix(path) => self.sockets.get_mut(path),
        }
    }

    fn insert(&mut self, endpoint: Endpoint<'_>, pool: Vec<Pooled>) {
        match endpoint {
            Endpoint::Url { origin, .. } => {
                self.origins.insert(origin.to_owned(), pool);
            }
            Endpoint::Unix(path) => {
                self.sockets.insert(path.to_owned(), pool);
            }
        }
    }

    fn drop_unusable(&mut self, now: Instant) {
        let keep = |pool: &mut Vec<Pooled>| {
            pool.retain(|pooled| pooled.usable(now));
            !pool.is_empty()
        };
        self.origins.retain(|_, pool| keep(pool));
        self.sockets.retain(|_, pool| keep(pool));
    }
}

/// The upstream client shared by every service: TLS settings and the connection pools.
pub struct Upstreams {
    connector: Connector,
    pools: Mutex<Pools>,
}

impl Upstreams {
    /// Trusts the compiled-in web PKI roots plus `extra_ca` (PEM) if given.
    pub fn new(extra_ca: Option<&Path>) -> Result<Arc<Self>, String> {
        let mut roots = rustls::RootCertStore::empty();
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        if let Some(path) = extra_ca {
            let pem = std::fs::read(path)
                .map_err(|error| format!("CA file {}: {error}", path.display()))?;
            for certificate in rustls_pemfile::certs(&mut pem.as_slice()) {
                let certificate =
                    certificate.map_err(|error| format!("CA file {}: {error}", path.display()))?;
                roots
                    .add(certificate)
                    .map_err(|error| format!("CA file {}: {error}", path.display()))?;
            }
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|error| format!("TLS setup: {error}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        Ok(Arc::new(Self {
            connector,
            pools: Mutex::new(Pools::default()),
        }))
    }

    /// Sends `request` (origin-form URI, `Host` set) and returns the response head; the body
    /// streams from the connection. The error is one line, without the request's headers.
    pub async fn send(
        &self,
        endpoint: Endpoint<'_>,
        request: Request<Body>,
    ) -> Result<Response<Incoming>, String> {
        let (mut sender, reused) = match self.take(endpoint) {
            Some(sender) => (sender, true),
            None => (self.connect(endpoint).await?, false),
        };
        match sender.try_send_request(request).await {
            Ok(response) => {
                self.give_back(endpoint, sender);
                Ok(response)
            }
            Err(mut failed) => match failed.take_message() {
                Some(request) if reused => {
                    let mut sender = self.connect(endpoint).await?;
                    let response = sender
                        .send_request(request)
                        .await
                        .map_err(|error| describe_error(&error))?;
                    self.give_back(endpoint, sender);
                    Ok(response)
                }
                _ => Err(describe_error(failed.error())),
            },
        }
    }

    /// Every [`SWEEP_EVERY`], closes the pooled connections that are closed or idle past
    /// [`IDLE_TIMEOUT`], so an idle proxy does not hold connections to its upstreams forever.
    /// Runs until dropped.
    ///
    /// Its timer being always pending also spares each request a wake-up of the event loop:
    /// tokio wakes its driver (an eventfd write) whenever a new timer — here the request's
    /// upstream timeout — is due before every pending one, which with no other timer is always.
    pub async fn sweep_idle(self: Arc<Self>) {
        let mut ticks = tokio::time::interval(SWEEP_EVERY);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            ticks.tick().await;
            self.pools().drop_unusable(Instant::now());
        }
    }

    fn pools(&self) -> MutexGuard<'_, Pools> {
        match self.pools.lock() {
            Ok(pools) => pools,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// A pooled connection ready for a new exchange; closed and stale ones are dropped.
    fn take(&self, endpoint: Endpoint<'_>) -> Option<Sender> {
        let mut pools = self.pools();
        let pool = pools.get_mut(endpoint)?;
        let now = Instant::now();
        pool.retain(|pooled| pooled.usable(now));
        let ready = pool.iter().rposition(|pooled| pooled.sender.is_ready())?;
        Some(pool.swap_remove(ready).sender)
    }

    fn give_back(&self, endpoint: Endpoint<'_>, sender: Sender) {
        let mut pools = self.pools();
        let pooled = Pooled {
            sender,
            since: Instant::now(),
        };
        match pools.get_mut(endpoint) {
            Some(pool) if pool.len() < MAX_PER_UPSTREAM => pool.push(pooled),
            Some(_) => {}
            None => pools.insert(endpoint, vec![pooled]),
        }
    }

    async fn connect(&self, endpoint: Endpoint<'_>) -> Result<Sender, String> {
        match endpoint {
            Endpoint::Url { origin, .. } => {
                let uri = Uri::try_from(origin).map_err(|error| format!("{origin}: {error}"))?;
                let stream = self
                    .connector
                    .clone()
                    .call(uri)
                    .await
                    .map_err(|error| describe_error(error.as_ref()))?;
                start(stream, origin).await
            }
            Endpoint::Unix(path) => {
                let stream = tokio::net::UnixStream::connect(path)
                    .await
                    .map_err(|error| format!("connecting to {}: {error}", path.display()))?;
                start(TokioIo::new(stream), &path.display().to_string()).await
            }
        }
    }
}

/// HTTP/1 over `stream`; the connection is driven by its own task until it closes.
async fn start<S>(stream: S, name: &str) -> Result<Sender, String>
where
    S: hyper::rt::Read + hyper::rt::Write + Send + Unpin + 'static,
{
    let (sender, connection) = handshake(stream)
        .await
        .map_err(|error| format!("HTTP handshake with {name}: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// An error with its causes, on one line.
pub fn describe_error(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_split_into_origin_authority_and_prefix() {
        let (endpoint, prefix) =
            Endpoint::from_url("https://api.example.com:8443/v1/").expect("valid");
        let Endpoint::Url { origin, authority } = endpoint else {
            panic!("a URL endpoint");
        };
        assert_eq!(origin, "https://api.example.com:8443");
        assert_eq!(authority, "api.example.com:8443");
        assert_eq!(prefix, "/v1");
        let (endpoint, prefix) = Endpoint::from_url("http://127.0.0.1:9").expect("valid");
        assert_eq!(endpoint.host(), Some("127.0.0.1:9"));
        assert_eq!(prefix, "");
        let (endpoint, _) = Endpoint::from_url("https://api.example.com:443").expect("valid");
        assert_eq!(
            endpoint.host(),
            Some("api.example.com"),
            "default port left out"
        );
        let (endpoint, _) = Endpoint::from_url("http://api.example.com:80/x").expect("valid");
        assert_eq!(endpoint.host(), Some("api.example.com"));
        let (endpoint, _) = Endpoint::from_url("https://api.example.com:80").expect("valid");
        assert_eq!(endpoint.host(), Some("api.example.com:80"));
        assert!(Endpoint::from_url("ftp://host").is_none());
        assert!(Endpoint::from_url("http:///path").is_none());
    }

    #[test]
    fn upstream_urls_are_judged_secrets_first() {
        use UpstreamUrlProblem::*;
        for (url, judged) in [
            ("https://api.example.com/v1", Ok(())),
            ("http://127.0.0.1:8080", Ok(())),
            ("https://me:sk@api.example.com", Err(Credentials)),
            // A password in a URL that is otherwise malformed is still found as one.
            ("https://me:sk@api example.com", Err(Credentials)),
            ("https://api.example.com/v1?key=sk", Err(QueryOrFragment)),
            ("https://api.example.com/v1#sk", Err(QueryOrFragment)),
            ("https://api example.com", Err(NotHttpWithHost)),
            ("ftp://host", Err(NotHttpWithHost)),
            ("api.example.com", Err(NotHttpWithHost)),
        ] {
            assert_eq!(check_upstream_url(url), judged, "{url}");
        }
    }
}
