//! A minimal HTTP/1.1 client over unix sockets (one request per connection): `qstore volume`
//! and the tests talk to the plugin with it, and the plugin asks Docker's API which
//! containers run.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

/// POST `body` to `endpoint` (e.g. `/VolumeDriver.List`) and return the JSON answer.
pub fn call(
    socket: &Path,
    endpoint: &str,
    body: &serde_json::Value,
) -> Result<serde_json::Value, String> {
    request(socket, "POST", endpoint, Some(body))
}

/// One request; the answer's body as JSON (any status other than 200 is an error).
pub fn request(
    socket: &Path,
    method: &str,
    endpoint: &str,
    body: Option<&serde_json::Value>,
) -> Result<serde_json::Value, String> {
    let mut s = UnixStream::connect(socket).map_err(|e| format!("{}: {e}", socket.display()))?;
    s.set_read_timeout(Some(std::time::Duration::from_secs(120)))
        .map_err(|e| e.to_string())?;
    let b = body.map(|b| b.to_string()).unwrap_or_default();
    let req = format!(
        "{method} {endpoint} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/vnd.docker.plugins.v1.2+json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{b}",
        b.len()
    );
    s.write_all(req.as_bytes()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    let (head, payload) = text
        .split_once("\r\n\r\n")
        .ok_or("the answer has no body")?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "{endpoint} answered {}",
            head.lines().next().unwrap_or("")
        ));
    }
    let payload = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(payload)
    } else {
        payload.to_string()
    };
    serde_json::from_str(&payload).map_err(|e| format!("the answer is not JSON: {e}"))
}

/// The body of a chunked answer.
fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}
