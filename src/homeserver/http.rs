//! The readiness probe: one raw HTTP/1.1 request over `TcpStream`, no HTTP client.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// The path whose `200` means Synapse serves the client API.
pub(crate) const VERSIONS_PATH: &str = "/_matrix/client/versions";

/// `GET path` on `127.0.0.1:port`; the response's status code. Connecting waits at most
/// `timeout`, and so does each read and write.
pub(crate) fn get_status(port: u16, path: &str, timeout: Duration) -> std::io::Result<u16> {
    let address = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&address, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAccept: application/json\r\n\
         Connection: close\r\n\r\n"
    )?;
    // The status line is all we need; read until it is complete.
    let mut head = Vec::new();
    let mut buffer = [0_u8; 512];
    while !head.windows(2).any(|pair| pair == b"\r\n") {
        let read = stream.read(&mut buffer)?;
        if read == 0 || head.len() > 8192 {
            break;
        }
        head.extend_from_slice(&buffer[..read]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {line:.80}")))
}

/// Whether `/_matrix/client/versions` answers 200 on `127.0.0.1:port` right now.
pub(crate) fn versions_ready(port: u16) -> bool {
    get_status(port, VERSIONS_PATH, Duration::from_secs(2)).is_ok_and(|status| status == 200)
}
