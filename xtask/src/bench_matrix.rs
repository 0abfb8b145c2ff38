//! `cargo xtask bench matrix`: send → sync delivery latency through Bureau's Matrix client,
//! against a plain Python stdlib client measured in the same run on the same homeserver.
//! Target: ours ≤ 1.1× the stdlib client (p50).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bureau::homeserver::{HomeserverConfig, LocalHomeserver};
use bureau::matrix::{Client, ConnectOptions, RoomOptions, SyncStream};
use bureau::secret::Secret;

const MESSAGES: usize = 60;

pub(crate) fn percentile(sorted: &[f64], fraction: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * fraction).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn account(server: &LocalHomeserver, name: &str) -> Result<Client, String> {
    let client = Client::connect(&server.base_url(), &ConnectOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    client
        .register_with_shared_secret(
            &Secret::from_string(server.shared_secret().to_owned()),
            name,
            &Secret::from_string(format!("{name}-password")),
            false,
        )
        .await
        .map_err(|error| error.to_string())
}

/// Milliseconds from each send until the receiver's `/sync` returned it, through our client.
pub(crate) async fn ours(server: &LocalHomeserver) -> Result<Vec<f64>, String> {
    let sender = account(server, "bench-sender").await?;
    let receiver = account(server, "bench-receiver").await?;
    let room_id = sender
        .create_room(&RoomOptions::default())
        .await
        .map_err(|error| error.to_string())?;
    let receiver_id = receiver
        .user_id()
        .map(ToString::to_string)
        .unwrap_or_default();
    sender
        .invite(&room_id, &receiver_id)
        .await
        .map_err(|error| error.to_string())?;
    receiver
        .join(room_id.as_str())
        .await
        .map_err(|error| error.to_string())?;
    let mut stream = SyncStream::new(receiver, None, None);
    stream
        .next_batch()
        .await
        .map_err(|error| error.to_string())?;
    let mut latencies = Vec::new();
    for index in 0..MESSAGES {
        let body = format!("bench {index}");
        let started = Instant::now();
        let send = sender.send_text(&room_id, &body, false);
        let receive = async {
            loop {
                let batch = stream
                    .next_batch()
                    .await
                    .map_err(|error| error.to_string())?;
                if batch
                    .timeline_of(&room_id)
                    .any(|event| event["content"]["body"] == body.as_str())
                {
                    return Ok::<_, String>(());
                }
            }
        };
        let (sent, received) = tokio::join!(send, receive);
        sent.map_err(|error| error.to_string())?;
        received?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    Ok(latencies)
}

/// The same measurement by `bench_matrix_stdlib.py` (urllib and threads only).
fn stdlib(server: &LocalHomeserver, script: &Path) -> Result<Vec<f64>, String> {
    let output = Command::new("python3")
        .arg(script)
        .args([
            &server.base_url(),
            server.shared_secret(),
            &MESSAGES.to_string(),
        ])
        .output()
        .map_err(|error| format!("python3: {error}"))?;
    if !output.status.success() {
        return Err(format!(
            "the stdlib client failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    serde_json::from_slice(&output.stdout).map_err(|error| format!("stdlib output: {error}"))
}

pub fn run(args: &[String]) -> Result<(), String> {
    if let Some(unknown) = args.first() {
        return Err(format!("bench matrix takes no arguments (got {unknown:?})"));
    }
    println!("starting a local Synapse (tmpfs data) …");
    let server = LocalHomeserver::start(HomeserverConfig::default()).map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    let script = crate::process::workspace_root().join("xtask/src/bench_matrix_stdlib.py");
    let mut ours = runtime
        .block_on(async { tokio::time::timeout(Duration::from_secs(300), ours(&server)).await })
        .map_err(|_| "our client's run timed out".to_owned())??;
    let mut theirs = stdlib(&server, &script)?;
    ours.sort_by(f64::total_cmp);
    theirs.sort_by(f64::total_cmp);
    println!("send → /sync delivery, {MESSAGES} messages each, one homeserver");
    println!("{:28} {:>9} {:>9}", "", "p50 ms", "p95 ms");
    for (name, samples) in [
        ("bureau matrix client", &ours),
        ("python stdlib client", &theirs),
    ] {
        println!(
            "{name:28} {:>9.1} {:>9.1}",
            percentile(samples, 0.5),
            percentile(samples, 0.95)
        );
    }
    println!(
        "ratio ours/stdlib (p50): {:.2}×  (target ≤ 1.1×)",
        percentile(&ours, 0.5) / percentile(&theirs, 0.5)
    );
    Ok(())
}
