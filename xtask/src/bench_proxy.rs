//! `cargo xtask bench proxy [--seconds N]`: the credential-injecting proxy's throughput, latency
//! and memory, against nginx doing the same job, measured in the same run with the same load.
//!
//! Three paths to one upstream (hyper, current-thread, in its own process on 127.0.0.1, so each
//! process's CPU time is its own), each loaded by the same generator (this process: tokio, two
//! workers, one hyper HTTP/1.1 client per keep-alive connection, `GET …/ping`, an 18-byte body):
//! - direct: the generator talks to the upstream and sends the `Authorization` header itself;
//! - ours: `dist/bureau proxy` on a Unix socket, service `up` injecting `Authorization: Bearer`
//!   from a credential, requests to `/http/up/ping`;
//! - nginx: Debian's nginx on a Unix socket, `worker_processes 1` (our proxy is single-threaded),
//!   `proxy_set_header Authorization`, upstream keepalive, and an access log (one line per
//!   request to a file, as our proxy writes one per request to its log).
//!
//! The upstream answers `/ping` only when it sees exactly the injected header (401 otherwise, which
//! fails the run), so a broken path cannot be measured by mistake; `/check` reports what it saw.
//! Printed: req/s, p50/p99 latency, each process's CPU during the window, ours/nginx (target
//! ≥ 1.0×) and the p50 ours − direct (target ≤ 50 µs); then the idle RSS of one proxy after one
//! request (target ≤ 4 MiB) and the summed PSS and RSS of 1,000 idle proxies.
//!
//! The debug xtask (`cargo xtask`) builds the release xtask and runs the benchmark in it, so the
//! generator and upstream are optimised; the proxy under test is the static `dist/bureau` (or
//! the build `$BUREAU_BENCH_PROXY_BINARY` names, e.g. an unstripped one to profile with perf).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, HOST, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

use crate::process::{self, cargo, find_on_path, workspace_root};

const USAGE: &str = "usage: cargo xtask bench proxy [--seconds N]";
/// The hidden mode in which this binary is the upstream server (a separate process).
const UPSTREAM_FLAG: &str = "--serve-upstream";
/// Names another build of `bureau` to measure instead of `dist/bureau`.
const BINARY_OVERRIDE: &str = "BUREAU_BENCH_PROXY_BINARY";
/// Set when the debug xtask has handed over to the release build.
const RELEASE_MARK: &str = "BUREAU_BENCH_PROXY_RELEASE";

const CONNECTIONS: usize = 64;
const WARM_UP: Duration = Duration::from_secs(1);
/// The upstream's answer to `/ping`.
const PONG: &[u8] = b"{\"status\":\"pong\"}\n";
const IDLE_PROXIES: usize = 1000;
/// The credential's name in the proxy's payload.
const CREDENTIAL: &str = "UP_KEY";

pub fn run(args: &[String]) -> Result<(), String> {
    let seconds: u64 = match args {
        [flag] if flag == UPSTREAM_FLAG => return serve_upstream(),
        [] => 5,
        [flag, value] if flag == "--seconds" => match value.parse() {
            Ok(seconds) if seconds > 0 => seconds,
            _ => return Err(format!("--seconds takes a positive number, not {value:?}")),
        },
        _ => return Err(USAGE.to_owned()),
    };
    if cfg!(debug_assertions) && std::env::var_os(RELEASE_MARK).is_none() {
        return hand_over_to_release(args);
    }
    let binary = shipped_binary()?;
    let nginx = ensure_nginx()?;
    let dir = TempDir::new()?;
    let key = random_hex(16)?;
    let upstream = Upstream::start(&key)?;
    let window = Duration::from_secs(seconds);

    println!(
        "\nproxy benchmark: GET /ping ({} B body), {CONNECTIONS} keep-alive HTTP/1.1 connections, \
         {} s warm-up + {seconds} s each",
        PONG.len(),
        WARM_UP.as_secs()
    );
    println!(
        "upstream: hyper, one thread, own process, 127.0.0.1:{}; load generator: this process \
         (tokio, 2 workers); {} CPUs",
        upstream.address.port(),
        std::thread::available_parallelism().map_or(0, usize::from)
    );

    if let Ok(load) = std::fs::read_to_string("/proc/loadavg") {
        let one_minute = load.split_whitespace().next().unwrap_or("?");
        println!(
            "load average before the run: {one_minute} (other work here lowers req/s; CPU µs per \
             request is steadier)"
        );
    }

    let ours = start_proxy(&binary, dir.path(), "bench", upstream.address, &key)?;
    let nginx = Nginx::start(&nginx, dir.path(), upstream.address, &key)?;
    println!(
        "{}: worker_processes 1 (our proxy is single-threaded), Unix socket, upstream keepalive \
         {CONNECTIONS}, access log on (like ours)",
        nginx.version
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the load generator's runtime: {error}"))?;
    let bearer = format!("Bearer {key}");
    let targets = [
        Target {
            name: "direct (no proxy)",
            endpoint: Endpoint::Tcp(upstream.address),
            path: "/ping",
            authorization: Some(bearer.clone()),
            pids: vec![],
        },
        Target {
            name: "ours (bureau proxy)",
            endpoint: Endpoint::Unix(ours.socket.clone()),
            path: "/http/up/ping",
            authorization: None,
            pids: vec![ours.pid()],
        },
        Target {
            name: "nginx",
            endpoint: Endpoint::Unix(nginx.socket.clone()),
            path: "/ping",
            authorization: None,
            pids: nginx.pids(),
        },
    ];
    runtime.block_on(async {
        for target in &targets[1..] {
            check_injection(target, &bearer).await?;
        }
        Ok::<_, String>(())
    })?;
    println!(
        "checked: through ours and through nginx the upstream saw exactly one Authorization \
         header, the injected one (the agent's own was replaced)"
    );

    let ticks = clock_ticks();
    let upstream_pid = upstream.child.0.id();
    let mut loaded = Vec::new();
    for target in &targets {
        let result = runtime.block_on(load(target, CONNECTIONS, window, upstream_pid, ticks))?;
        loaded.push(result);
    }
    table(&format!("{CONNECTIONS} connections"), &targets, &loaded);
    let [direct, ours_result, nginx_result] = &loaded[..] else {
        return Err("three contenders were measured".to_owned());
    };
    println!(
        "ratio ours/nginx (req/s): {:.2}×  (target ≥ 1.0×)",
        ours_result.rate() / nginx_result.rate()
    );
    println!(
        "ratio ours/nginx (proxy CPU per request): {:.2}×",
        ours_result.proxy_cpu_per_request() / nginx_result.proxy_cpu_per_request()
    );
    println!(
        "added p50 latency under load, ours − direct: {:.0} µs  (target ≤ 50 µs; nginx − direct: \
         {:.0} µs)",
        ours_result.p50_micros() - direct.p50_micros(),
        nginx_result.p50_micros() - direct.p50_micros()
    );

    let mut single = Vec::new();
    for target in &targets {
        single.push(runtime.block_on(load(target, 1, window, upstream_pid, ticks))?);
    }
    table("1 connection", &targets, &single);
    if let [direct, ours_result, nginx_result] = &single[..] {
        println!(
            "added p50 latency unloaded, ours − direct: {:.0} µs  (target ≤ 50 µs; nginx − \
             direct: {:.0} µs)",
            ours_result.p50_micros() - direct.p50_micros(),
            nginx_result.p50_micros() - direct.p50_micros()
        );
    }
    let sum = |pids: &[u32], file: &str, field: &str| {
        pids.iter()
            .map(|pid| proc_kb(*pid, file, field))
            .sum::<Result<u64, String>>()
    };
    println!(
        "\nafter the load: ours VmRSS {:.1} MiB, Pss {:.1} MiB; nginx master + worker VmRSS {:.1} \
         MiB, Pss {:.1} MiB",
        mib(sum(&[ours.pid()], "status", "VmRSS:")?),
        mib(sum(&[ours.pid()], "smaps_rollup", "Pss:")?),
        mib(sum(&nginx.pids(), "status", "VmRSS:")?),
        mib(sum(&nginx.pids(), "smaps_rollup", "Pss:")?),
    );
    drop(nginx);
    drop(ours);

    println!("\nmemory (dist/bureau proxy, one service, one credential)");
    idle_memory(&binary, dir.path(), upstream.address, &key)?;
    many_idle(&binary, dir.path(), upstream.address, &key)?;
    upstream.stop();
    Ok(())
}

/// The proxy's share of the profile `cargo xtask dist` builds the shipped binary with (see
/// `pgo.rs`): an agent's `Authorization` replaced by the injected one, then requests through a
/// proxy injecting a credential at 64 connections and at one, one request on its own
/// connection, and 1,000 proxies started at once. Proxies are stopped with SIGTERM (see
/// `Killed`), so each exits normally and writes its profile.
pub fn train(binary: &Path) -> Result<(), String> {
    const ROUND: Duration = Duration::from_secs(1);
    let dir = TempDir::new()?;
    let key = random_hex(16)?;
    let upstream = Upstream::start(&key)?;
    let proxy = start_proxy(binary, dir.path(), "train", upstream.address, &key)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|error| format!("cannot start the training load's runtime: {error}"))?;
    let through = |path| Target {
        name: "training",
        endpoint: Endpoint::Unix(proxy.socket.clone()),
        path,
        authorization: None,
        pids: vec![proxy.pid()],
    };
    let (ticks, upstream_pid) = (clock_ticks(), upstream.child.0.id());
    runtime.block_on(async {
        check_injection(&through("/http/up/ping"), &format!("Bearer {key}")).await?;
        for connections in [CONNECTIONS, 1] {
            load(
                &through("/http/up/ping"),
                connections,
                ROUND,
                upstream_pid,
                ticks,
            )
            .await?;
        }
        Ok::<_, String>(())
    })?;
    // The benchmark's idle proxy answers one request on its own connection: the `Connection`
    // header's hop-by-hop handling runs only then (measured: without it in the profile, that
    // code sat apart from the rest and an idle proxy mapped ~0.3 MiB more of the binary).
    one_request(&proxy.socket)?;
    drop(proxy);
    // As many starts as the benchmark's idle proxies: with fewer, start-up code counts as
    // lukewarm and is laid out among the rest instead of with the hot code, and an idle proxy
    // then maps more of the binary (measured before the link-time layout, `layout.rs`: VmRSS
    // 4.7–5.0 MiB with 1,000 starts, 6.2 with 4).
    drop(start_many(
        binary,
        dir.path(),
        IDLE_PROXIES,
        upstream.address,
        &key,
    )?);
    upstream.stop();
    Ok(())
}

/// One table: a row per contender; CPU columns are % of one CPU during the measured window.
fn table(title: &str, targets: &[Target], results: &[Measured]) {
    println!(
        "\n{title:27} {:>9} {:>8} {:>8} {:>10} {:>10} {:>9} {:>9}",
        "req/s", "p50 µs", "p99 µs", "proxy CPU", "CPU µs/req", "upstream", "generator"
    );
    for (target, result) in targets.iter().zip(results) {
        result.print(target.name, !target.pids.is_empty());
    }
}

/// `cargo xtask` builds in debug; the generator and upstream must not be the bottleneck, so the
/// benchmark runs in a release build of xtask. It is built for the musl target in release, like
/// `dist`, so it reuses the `bureau` library `dist` just compiled instead of building it again.
fn hand_over_to_release(args: &[String]) -> Result<(), String> {
    if std::env::var_os(BINARY_OVERRIDE).is_none() {
        crate::dist::run(&[])?;
    }
    let root = workspace_root();
    println!("building xtask in release (the load generator and upstream run optimised) …");
    process::run(cargo().current_dir(&root).args([
        "build",
        "--release",
        "--locked",
        "--quiet",
        "--package",
        "xtask",
        "--target",
        MUSL_TARGET,
    ]))?;
    process::run(
        Command::new(root.join("target").join(MUSL_TARGET).join("release/xtask"))
            .args(["bench", "proxy"])
            .args(args)
            .env(RELEASE_MARK, "1"),
    )
}

/// The target `dist` builds for (see `dist.rs`).
const MUSL_TARGET: &str = "x86_64-unknown-linux-musl";

/// `dist/bureau`, built by `cargo xtask dist` unless the debug xtask that handed over did so;
/// or the build named by `$BUREAU_BENCH_PROXY_BINARY` (e.g. an unstripped one to profile).
fn shipped_binary() -> Result<PathBuf, String> {
    if let Some(binary) = std::env::var_os(BINARY_OVERRIDE) {
        let binary = PathBuf::from(binary);
        println!("measuring {} (from ${BINARY_OVERRIDE})", binary.display());
        return Ok(binary);
    }
    if std::env::var_os(RELEASE_MARK).is_none() {
        crate::dist::run(&[])?;
    }
    Ok(workspace_root().join("dist/bureau"))
}

/// nginx from PATH or /usr/sbin; as root on Debian, installs the `nginx` package if missing.
fn ensure_nginx() -> Result<PathBuf, String> {
    let find = || find_on_path("nginx").or_else(|| Some(PathBuf::from("/usr/sbin/nginx")));
    if let Some(nginx) = find().filter(|path| path.exists()) {
        return Ok(nginx);
    }
    let is_root = process::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0");
    if !is_root || find_on_path("apt-get").is_none() {
        return Err("nginx is not installed (the bench's named peer): \
             `sudo apt-get install nginx-light` (or nginx), then run again"
            .to_owned());
    }
    println!("installing nginx (the bench's named peer) …");
    process::run(
        Command::new("apt-get")
            .args(["install", "-y", "--no-install-recommends", "nginx"])
            .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    find()
        .filter(|path| path.exists())
        .ok_or_else(|| "nginx is still not on PATH after apt-get install nginx".to_owned())
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<Self, String> {
        let path = std::env::temp_dir().join(format!("bureau-bench-proxy-{}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|error| format!("cannot clear {}: {error}", path.display()))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|error| format!("cannot create {}: {error}", path.display()))?;
        Ok(Self(path))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child stopped and reaped on drop, whatever happened in between: SIGTERM first, so a
/// proxy exits as it would under the launcher (flushing its log, and writing its profile when it
/// is an instrumented build), then SIGKILL if it has not exited within two seconds.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let terminated = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if terminated {
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = self.0.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn random_hex(bytes: usize) -> Result<String, String> {
    let mut buffer = vec![0u8; bytes];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut file| file.read_exact(&mut buffer))
        .map_err(|error| format!("/dev/urandom: {error}"))?;
    Ok(buffer.iter().map(|byte| format!("{byte:02x}")).collect())
}

// ---------------------------------------------------------------------------------------------
// The upstream: this binary again, in its own process.

struct Upstream {
    child: Killed,
    /// Held open: the upstream exits when it reads EOF, so it dies with us.
    stdin: Option<ChildStdin>,
    address: SocketAddr,
}

impl Upstream {
    fn start(key: &str) -> Result<Self, String> {
        let exe = std::env::current_exe().map_err(|error| format!("current_exe: {error}"))?;
        let mut child = Killed(
            Command::new(&exe)
                .args(["bench", "proxy", UPSTREAM_FLAG])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .map_err(|error| {
                    format!("cannot start the upstream ({}): {error}", exe.display())
                })?,
        );
        let mut stdin = child.0.stdin.take();
        stdin
            .as_mut()
            .map(|stdin| writeln!(stdin, "{key}"))
            .transpose()
            .map_err(|error| format!("giving the upstream its key: {error}"))?;
        let mut line = String::new();
        child
            .0
            .stdout
            .take()
            .map(|stdout| BufReader::new(stdout).read_line(&mut line))
            .transpose()
            .map_err(|error| format!("reading the upstream's port: {error}"))?;
        let port: u16 = line
            .trim()
            .parse()
            .map_err(|_| format!("the upstream did not start (it said {line:?})"))?;
        Ok(Self {
            child,
            stdin,
            address: SocketAddr::from(([127, 0, 0, 1], port)),
        })
    }

    fn stop(mut self) {
        drop(self.stdin.take());
    }
}

/// The upstream process: reads the key from stdin, prints its port, serves until stdin closes.
fn serve_upstream() -> Result<(), String> {
    let mut key = String::new();
    std::io::stdin()
        .read_line(&mut key)
        .map_err(|error| format!("upstream: reading the key: {error}"))?;
    let expected = HeaderValue::try_from(format!("Bearer {}", key.trim()))
        .map_err(|error| format!("upstream: the key: {error}"))?;
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::stdin().read_to_end(&mut sink);
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| format!("upstream runtime: {error}"))?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|error| format!("upstream: binding 127.0.0.1: {error}"))?;
        let port = listener
            .local_addr()
            .map_err(|error| format!("upstream: {error}"))?
            .port();
        let mut stdout = std::io::stdout();
        writeln!(stdout, "{port}")
            .and_then(|()| stdout.flush())
            .map_err(|error| format!("upstream: {error}"))?;
        let expected = Arc::new(expected);
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = stream.set_nodelay(true);
            let expected = expected.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let response = answer(&request, &expected);
                    async move { Ok::<_, std::convert::Infallible>(response) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    })
}

fn answer(request: &Request<Incoming>, expected: &HeaderValue) -> Response<Full<Bytes>> {
    let seen: Vec<&HeaderValue> = request.headers().get_all(AUTHORIZATION).iter().collect();
    let (status, body) = match request.uri().path() {
        "/ping" if seen == [expected] => (StatusCode::OK, Bytes::from_static(PONG)),
        "/ping" => (
            StatusCode::UNAUTHORIZED,
            Bytes::from_static(b"missing or wrong Authorization header\n"),
        ),
        "/check" => (
            StatusCode::OK,
            Bytes::from(
                seen.iter()
                    .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
                    .collect::<Vec<_>>()
                    .join("\n"),
            ),
        ),
        _ => (StatusCode::NOT_FOUND, Bytes::new()),
    };
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response
}

// ---------------------------------------------------------------------------------------------
// The contenders.

/// One running `bureau proxy`.
struct Proxy {
    child: Killed,
    socket: PathBuf,
}

/// Writes the services file and payload for one proxy named `name` and starts it; returns once
/// its agent socket accepts.
fn start_proxy(
    binary: &Path,
    dir: &Path,
    name: &str,
    upstream: SocketAddr,
    key: &str,
) -> Result<Proxy, String> {
    let proxy = spawn_proxy(binary, dir, name, upstream, key)?;
    wait_accepting(&mut [(&proxy.socket, &mut Some(proxy.pid()))], dir)?;
    Ok(proxy)
}

impl Proxy {
    fn pid(&self) -> u32 {
        self.child.0.id()
    }
}

/// Starts one proxy without waiting for it.
fn spawn_proxy(
    binary: &Path,
    dir: &Path,
    name: &str,
    upstream: SocketAddr,
    key: &str,
) -> Result<Proxy, String> {
    let services = dir.join("services.json");
    if !services.exists() {
        let config = serde_json::json!({"up": {
            "upstream_url": format!("http://{upstream}"),
            "inject_headers": {"Authorization": CREDENTIAL},
            "auth_scheme": "Bearer",
        }});
        std::fs::write(&services, config.to_string())
            .map_err(|error| format!("writing {}: {error}", services.display()))?;
    }
    let socket = dir.join(format!("{name}.proxy.sock"));
    let log = dir.join(format!("{name}.log"));
    let stderr = std::fs::File::create(&log)
        .map_err(|error| format!("creating {}: {error}", log.display()))?;
    let mut child = Killed(
        Command::new(binary)
            .arg("proxy")
            .arg("--socket")
            .arg(&socket)
            .arg("--admin-socket")
            .arg(dir.join(format!("{name}.admin.sock")))
            .arg("--services")
            .arg(&services)
            .args(["--stdin-format", "json"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|error| format!("cannot start {} proxy: {error}", binary.display()))?,
    );
    let payload = serde_json::json!({"credentials": {CREDENTIAL: key}});
    if let Some(mut stdin) = child.0.stdin.take() {
        stdin
            .write_all(payload.to_string().as_bytes())
            .map_err(|error| format!("writing the proxy's payload: {error}"))?;
    }
    Ok(Proxy { child, socket })
}

/// Waits until every socket accepts; `pid` is the process behind it, for a useful error if it
/// died. Entries are set to `None` once they accept.
fn wait_accepting(entries: &mut [(&Path, &mut Option<u32>)], dir: &Path) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let mut pending = 0;
        for (socket, pid) in entries.iter_mut() {
            let socket: &Path = socket;
            let Some(id) = **pid else { continue };
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                **pid = None;
                continue;
            }
            if !Path::new(&format!("/proc/{id}")).exists() || is_zombie(id) {
                let name = socket
                    .file_name()
                    .map(|name| name.to_string_lossy().replace(".proxy.sock", ""))
                    .unwrap_or_default();
                let log =
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                return Err(format!(
                    "proxy {name} (pid {id}) exited before its socket {} accepted: {}",
                    socket.display(),
                    log.trim()
                ));
            }
            pending += 1;
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("{pending} proxies did not accept within 120 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn is_zombie(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|fields| fields.first().is_some_and(|state| state == "Z"))
}

/// nginx in the foreground with its own prefix, config and Unix socket.
struct Nginx {
    master: Killed,
    workers: Vec<u32>,
    socket: PathBuf,
    version: String,
}

impl Nginx {
    fn start(nginx: &Path, dir: &Path, upstream: SocketAddr, key: &str) -> Result<Self, String> {
        let prefix = dir.join("nginx");
        std::fs::create_dir_all(&prefix)
            .map_err(|error| format!("creating {}: {error}", prefix.display()))?;
        let socket = prefix.join("nginx.sock");
        let prefix_text = prefix.display();
        let config = format!(
            "worker_processes 1;\n\
             pid {prefix_text}/nginx.pid;\n\
             error_log {prefix_text}/error.log warn;\n\
             events {{ worker_connections 1024; }}\n\
             http {{\n\
             \x20 # One line per request, like ours (the proxy must log every request).\n\
             \x20 access_log {prefix_text}/access.log;\n\
             \x20 client_body_temp_path {prefix_text}/body;\n\
             \x20 proxy_temp_path {prefix_text}/proxy;\n\
             \x20 fastcgi_temp_path {prefix_text}/fastcgi;\n\
             \x20 uwsgi_temp_path {prefix_text}/uwsgi;\n\
             \x20 scgi_temp_path {prefix_text}/scgi;\n\
             \x20 keepalive_requests 1000000;\n\
             \x20 upstream up {{\n\
             \x20   server {upstream};\n\
             \x20   keepalive {CONNECTIONS};\n\
             \x20   keepalive_requests 1000000;\n\
             \x20 }}\n\
             \x20 server {{\n\
             \x20   listen unix:{socket};\n\
             \x20   location / {{\n\
             \x20     proxy_pass http://up;\n\
             \x20     proxy_http_version 1.1;\n\
             \x20     proxy_set_header Connection \"\";\n\
             \x20     proxy_set_header Authorization \"Bearer {key}\";\n\
             \x20   }}\n\
             \x20 }}\n\
             }}\n",
            socket = socket.display(),
        );
        let config_path = prefix.join("nginx.conf");
        std::fs::write(&config_path, config)
            .map_err(|error| format!("writing {}: {error}", config_path.display()))?;
        // `nginx -v` prints "nginx version: nginx/1.22.1" on stderr.
        let version = Command::new(nginx)
            .arg("-v")
            .output()
            .map(|output| {
                String::from_utf8_lossy(&output.stderr)
                    .trim()
                    .trim_start_matches("nginx version: ")
                    .to_owned()
            })
            .unwrap_or_else(|_| "nginx".to_owned());
        let log = prefix.join("stderr.log");
        let stderr = std::fs::File::create(&log)
            .map_err(|error| format!("creating {}: {error}", log.display()))?;
        let master = Killed(
            Command::new(nginx)
                .arg("-p")
                .arg(&prefix)
                .arg("-e")
                .arg(prefix.join("error.log"))
                .arg("-c")
                .arg(&config_path)
                .args(["-g", "daemon off;"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(stderr)
                .spawn()
                .map_err(|error| format!("cannot start {}: {error}", nginx.display()))?,
        );
        let mut started = Self {
            master,
            workers: Vec::new(),
            socket,
            version,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = started.master.0.try_wait() {
                let errors = std::fs::read_to_string(prefix.join("error.log")).unwrap_or_default();
                let stderr = std::fs::read_to_string(&log).unwrap_or_default();
                return Err(format!(
                    "nginx exited ({status}): {}{}",
                    stderr.trim(),
                    errors.trim()
                ));
            }
            let workers = children_of(started.master.0.id());
            if !workers.is_empty()
                && std::os::unix::net::UnixStream::connect(&started.socket).is_ok()
            {
                started.workers = workers;
                return Ok(started);
            }
            if Instant::now() > deadline {
                return Err("nginx did not accept on its socket within 20 s".to_owned());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.master.0.id()];
        pids.extend(&self.workers);
        pids
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown stops the workers too; then make sure.
        let _ = Command::new("kill")
            .args(["-TERM", &self.master.0.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline && matches!(self.master.0.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(10));
        }
        for worker in &self.workers {
            if proc_stat(*worker).is_some() {
                let _ = Command::new("kill")
                    .args(["-KILL", &worker.to_string()])
                    .status();
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// /proc accounting.

/// The fields of `/proc/PID/stat` after the command name (state is first).
fn proc_stat(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// User + system CPU time of `pid` so far, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    proc_stat(pid)
        .map(|fields| {
            // After the name: state ppid … utime is field 14 of the line, index 11 here.
            fields
                .get(11)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
                + fields
                    .get(12)
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
        })
        .unwrap_or(0)
}

fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            proc_stat(*pid)
                .and_then(|fields| fields.get(1)?.parse::<u32>().ok())
                .is_some_and(|ppid| ppid == parent)
        })
        .collect()
}

fn clock_ticks() -> f64 {
    process::output(Command::new("getconf").arg("CLK_TCK"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A `kB` field of a /proc file (`VmRSS:` in status, `Pss:` in smaps_rollup), in kB.
fn proc_kb(pid: u32, file: &str, field: &str) -> Result<u64, String> {
    let path = format!("/proc/{pid}/{file}");
    let text =
        std::fs::read_to_string(&path).map_err(|error| format!("reading {path}: {error}"))?;
    text.lines()
        .find_map(|line| {
            line.strip_prefix(field)?
                .trim()
                .strip_suffix("kB")?
                .trim()
                .parse()
                .ok()
        })
        .ok_or_else(|| format!("{path} has no {field} line"))
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

// ---------------------------------------------------------------------------------------------
// The load generator.

enum Endpoint {
    Tcp(SocketAddr),
    Unix(PathBuf),
}

struct Target {
    name: &'static str,
    endpoint: Endpoint,
    path: &'static str,
    /// Sent by the generator (direct only: there is no proxy to inject it).
    authorization: Option<String>,
    /// The proxy's processes, for CPU accounting (none for direct).
    pids: Vec<u32>,
}

/// What one contender did in the measured window.
struct Measured {
    requests: usize,
    window: Duration,
    /// Sorted latencies, nanoseconds.
    latencies: Vec<u64>,
    /// CPU seconds during the window.
    proxy_cpu: f64,
    upstream_cpu: f64,
    generator_cpu: f64,
}

impl Measured {
    fn rate(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    fn percentile_micros(&self, fraction: f64) -> f64 {
        if self.latencies.is_empty() {
            return f64::NAN;
        }
        let index = ((self.latencies.len() as f64 - 1.0) * fraction).round() as usize;
        self.latencies[index.min(self.latencies.len() - 1)] as f64 / 1000.0
    }

    fn p50_micros(&self) -> f64 {
        self.percentile_micros(0.5)
    }

    fn proxy_cpu_per_request(&self) -> f64 {
        self.proxy_cpu / self.requests.max(1) as f64 * 1e6
    }

    fn print(&self, name: &str, has_proxy: bool) {
        let seconds = self.window.as_secs_f64();
        let percent = |cpu: f64| format!("{:.0}%", cpu / seconds * 100.0);
        let (proxy, per_request) = if has_proxy {
            (
                percent(self.proxy_cpu),
                format!("{:.1}", self.proxy_cpu_per_request()),
            )
        } else {
            ("-".to_owned(), "-".to_owned())
        };
        println!(
            "{name:27} {:>9.0} {:>8.0} {:>8.0} {proxy:>10} {per_request:>10} {:>9} {:>9}",
            self.rate(),
            self.p50_micros(),
            self.percentile_micros(0.99),
            percent(self.upstream_cpu),
            percent(self.generator_cpu),
        );
    }
}

/// Loads `target` with `connections` keep-alive connections: warm-up, then `window` measured.
async fn load(
    target: &Target,
    connections: usize,
    window: Duration,
    upstream_pid: u32,
    ticks: f64,
) -> Result<Measured, String> {
    let start = tokio::time::Instant::now() + WARM_UP;
    let end = start + window;
    let request = Arc::new(RequestTemplate {
        path: target.path,
        authorization: target
            .authorization
            .as_deref()
            .map(HeaderValue::try_from)
            .transpose()
            .map_err(|error| format!("authorization header: {error}"))?,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..connections {
        let connection = connect(&target.endpoint).await?;
        tasks.spawn(drive(
            connection,
            request.clone(),
            start.into_std(),
            end.into_std(),
        ));
    }
    let sample = |pids: &[u32]| pids.iter().map(|pid| cpu_ticks(*pid)).sum::<u64>();
    let own = std::process::id();
    tokio::time::sleep_until(start).await;
    let before = (
        sample(&target.pids),
        cpu_ticks(upstream_pid),
        cpu_ticks(own),
    );
    tokio::time::sleep_until(end).await;
    let after = (
        sample(&target.pids),
        cpu_ticks(upstream_pid),
        cpu_ticks(own),
    );
    let mut latencies = Vec::new();
    while let Some(joined) = tasks.join_next().await {
        let mut samples = joined.map_err(|error| format!("load task: {error}"))??;
        latencies.append(&mut samples);
    }
    latencies.sort_unstable();
    let seconds = |from: u64, to: u64| to.saturating_sub(from) as f64 / ticks;
    Ok(Measured {
        requests: latencies.len(),
        window,
        latencies,
        proxy_cpu: seconds(before.0, after.0),
        upstream_cpu: seconds(before.1, after.1),
        generator_cpu: seconds(before.2, after.2),
    })
    .inspect(|measured| {
        if measured.requests == 0 {
            eprintln!(
                "warning: {} completed no request in the window",
                target.name
            );
        }
    })
}

struct RequestTemplate {
    path: &'static str,
    authorization: Option<HeaderValue>,
}

impl RequestTemplate {
    fn build(&self) -> Result<Request<Empty<Bytes>>, String> {
        let mut request = Request::get(self.path)
            .header(HOST, "localhost")
            .body(Empty::new())
            .map_err(|error| format!("request: {error}"))?;
        if let Some(value) = &self.authorization {
            request.headers_mut().insert(AUTHORIZATION, value.clone());
        }
        Ok(request)
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Empty<Bytes>>;

async fn connect(endpoint: &Endpoint) -> Result<Sender, String> {
    match endpoint {
        Endpoint::Tcp(address) => {
            let stream = tokio::net::TcpStream::connect(address)
                .await
                .map_err(|error| format!("connecting to {address}: {error}"))?;
            stream
                .set_nodelay(true)
                .map_err(|error| format!("TCP_NODELAY: {error}"))?;
            handshake(stream, &address.to_string()).await
        }
        Endpoint::Unix(path) => {
            let stream = tokio::net::UnixStream::connect(path)
                .await
                .map_err(|error| format!("connecting to {}: {error}", path.display()))?;
            handshake(stream, &path.display().to_string()).await
        }
    }
}

async fn handshake<S>(stream: S, name: &str) -> Result<Sender, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|error| format!("HTTP handshake with {name}: {error}"))?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(sender)
}

/// One connection's request loop until `end`; latencies (ns) of requests started after `start`
/// and finished by `end`. Any answer but 200 with the upstream's body fails the run.
async fn drive(
    mut sender: Sender,
    request: Arc<RequestTemplate>,
    start: Instant,
    end: Instant,
) -> Result<Vec<u64>, String> {
    let mut latencies = Vec::new();
    loop {
        let began = Instant::now();
        if began >= end {
            return Ok(latencies);
        }
        let response = sender
            .send_request(request.build()?)
            .await
            .map_err(|error| format!("GET {}: {error}", request.path))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|error| format!("GET {} body: {error}", request.path))?
            .to_bytes();
        let finished = Instant::now();
        if status != StatusCode::OK || body != PONG {
            return Err(format!(
                "GET {} answered {status}: {}",
                request.path,
                String::from_utf8_lossy(&body).trim()
            ));
        }
        if began >= start && finished <= end {
            latencies.push(u64::try_from((finished - began).as_nanos()).unwrap_or(u64::MAX));
        }
    }
}

/// One request to `/check` through the proxy with the agent's own `Authorization`: the upstream
/// must have seen exactly the injected value.
async fn check_injection(target: &Target, bearer: &str) -> Result<(), String> {
    let mut sender = connect(&target.endpoint).await?;
    let path = target.path.replace("/ping", "/check");
    let request = Request::get(path.as_str())
        .header(HOST, "localhost")
        .header(AUTHORIZATION, "Bearer agent-own-value")
        .body(Empty::new())
        .map_err(|error| format!("request: {error}"))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|error| format!("{}: GET {path}: {error}", target.name))?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|error| format!("{}: GET {path} body: {error}", target.name))?
        .to_bytes();
    if status != StatusCode::OK || body != bearer.as_bytes() {
        let seen = String::from_utf8_lossy(&body).replace(bearer, "Bearer <the key>");
        return Err(format!(
            "{}: the upstream did not receive the injected Authorization header \
             ({status}; it saw {seen:?}), so there is nothing valid to measure",
            target.name
        ));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Memory.

/// One fresh proxy, one request through it, then its VmRSS and Pss.
fn idle_memory(binary: &Path, dir: &Path, upstream: SocketAddr, key: &str) -> Result<(), String> {
    let proxy = start_proxy(binary, dir, "idle", upstream, key)?;
    one_request(&proxy.socket)?;
    std::thread::sleep(Duration::from_millis(200));
    let pid = proxy.pid();
    let rss = proc_kb(pid, "status", "VmRSS:")?;
    let pss = proc_kb(pid, "smaps_rollup", "Pss:")?;
    let anonymous = proc_kb(pid, "status", "RssAnon:")?;
    let file = proc_kb(pid, "status", "RssFile:")?;
    let threads = proc_kb_free(pid, "status", "Threads:").unwrap_or(0);
    println!(
        "one idle proxy after one request: VmRSS {:.2} MiB (target ≤ 4 MiB), Pss {:.2} MiB, \
         {threads} thread(s)",
        mib(rss),
        mib(pss)
    );
    // The file-backed part is pages of the binary itself, shared by every bureau process (the
    // kernel maps 64 KiB around each code page fault); the anonymous part is the proxy's own.
    println!(
        "  of which anonymous {:.2} MiB, file-backed (the shared binary) {:.2} MiB",
        mib(anonymous),
        mib(file)
    );
    Ok(())
}

/// One request on its own connection (`Connection: close`), as a script or an SDK without
/// keep-alive sends it; the proxy must answer the upstream's 200.
fn one_request(socket: &Path) -> Result<(), String> {
    let mut stream = std::os::unix::net::UnixStream::connect(socket)
        .map_err(|error| format!("connecting to {}: {error}", socket.display()))?;
    stream
        .write_all(b"GET /http/up/ping HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .map_err(|error| format!("one request through the proxy: {error}"))?;
    let mut answer = Vec::new();
    stream
        .read_to_end(&mut answer)
        .map_err(|error| format!("the answer to one request through the proxy: {error}"))?;
    if answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(PONG) {
        Ok(())
    } else {
        Err(format!(
            "one request through the proxy failed: {}",
            String::from_utf8_lossy(&answer)
        ))
    }
}

/// A numeric field without a unit (`Threads:`).
fn proc_kb_free(pid: u32, file: &str, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.trim().parse().ok())
}

/// 1,000 proxies at once, each with its own sockets: summed Pss and RSS once all accept.
fn many_idle(binary: &Path, dir: &Path, upstream: SocketAddr, key: &str) -> Result<(), String> {
    // Every proxy is stopped and reaped when `proxies` is dropped, on success or error.
    let (proxies, up_after) = start_many(binary, dir, IDLE_PROXIES, upstream, key)?;
    std::thread::sleep(Duration::from_millis(500));
    let (mut pss, mut rss) = (0u64, 0u64);
    for proxy in &proxies {
        let pid = proxy.pid();
        pss += proc_kb(pid, "smaps_rollup", "Pss:")?;
        rss += proc_kb(pid, "status", "VmRSS:")?;
    }
    println!(
        "{IDLE_PROXIES} idle proxies (all accepting {:.1} s after the first spawn): \
         Pss total {:.0} MiB ({:.2} MiB each), RSS total {:.0} MiB ({:.2} MiB each)",
        up_after.as_secs_f64(),
        mib(pss),
        mib(pss) / IDLE_PROXIES as f64,
        mib(rss),
        mib(rss) / IDLE_PROXIES as f64
    );
    drop(proxies);
    Ok(())
}

/// Starts `count` proxies at once (in `dir/many`); returns them once all accept, with the time
/// that took.
fn start_many(
    binary: &Path,
    dir: &Path,
    count: usize,
    upstream: SocketAddr,
    key: &str,
) -> Result<(Vec<Proxy>, Duration), String> {
    let many = dir.join("many");
    std::fs::create_dir_all(&many)
        .map_err(|error| format!("creating {}: {error}", many.display()))?;
    let started = Instant::now();
    let mut proxies = Vec::with_capacity(count);
    for index in 0..count {
        proxies.push(spawn_proxy(
            binary,
            &many,
            &format!("p{index}"),
            upstream,
            key,
        )?);
    }
    let mut pids: Vec<Option<u32>> = proxies.iter().map(|proxy| Some(proxy.pid())).collect();
    let mut entries: Vec<(&Path, &mut Option<u32>)> = proxies
        .iter()
        .map(|proxy| proxy.socket.as_path())
        .zip(pids.iter_mut())
        .collect();
    wait_accepting(&mut entries, &many)?;
    Ok((proxies, started.elapsed()))
}
