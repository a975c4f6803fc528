//! Plain HTTP/1.0 over a `TcpStream`: enough for `/metrics`, `/healthz` and `/readyz`, and for
//! JSON calls to Kafka Connect's REST API, without pulling an HTTP client into the tests. HTTP/1.0 keeps the server from using
//! chunked encoding and makes it close the connection after the body.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Status code and body of one response.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    pub body: String,
}

/// `GET path` against `addr`. Panics on I/O errors or a malformed status line.
pub fn get(addr: SocketAddr, path: &str) -> HttpResponse {
    try_get(addr, path, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("GET http://{addr}{path}: {e}"))
}

/// `GET path` against `addr`, every step bounded by `timeout`: for callers to whom a refused
/// connection or a bad answer is an outcome, not a test failure (the kubelet stand-in's
/// readiness probe).
pub fn try_get(addr: SocketAddr, path: &str, timeout: Duration) -> io::Result<HttpResponse> {
    request(addr, "GET", path, None, timeout)
}

/// `method path` with an optional JSON body against `addr`, every step bounded by `timeout`.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    json: Option<&str>,
    timeout: Duration,
) -> io::Result<HttpResponse> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    let mut message = format!("{method} {path} HTTP/1.0\r\nHost: {addr}\r\n");
    if let Some(body) = json {
        message.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        ));
    } else {
        message.push_str("\r\n");
    }
    // One write: a server that answers after its first read must see the whole request.
    stream.write_all(message.as_bytes())?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let malformed =
        |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{what}: {text:?}"));
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| malformed("no header/body separator in the response"))?;
    let status = head
        .lines()
        .next()
        .and_then(|status_line| status_line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| malformed("bad status line"))?;
    Ok(HttpResponse {
        status,
        body: body.to_string(),
    })
}

/// One sample line of Prometheus text exposition: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// Label pairs in the order they appear, values unescaped only for `\"` and `\\`.
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

impl Sample {
    pub fn label(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Parses Prometheus text format, skipping comments. Panics on a line it cannot read, because
/// a scraper would reject the whole page too.
pub fn parse_prometheus(body: &str) -> Vec<Sample> {
    body.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| parse_sample(line).unwrap_or_else(|| panic!("bad metrics line: {line:?}")))
        .collect()
}

fn parse_sample(line: &str) -> Option<Sample> {
    let (name, labels, rest) = match line.find('{') {
        Some(open) => {
            let close = line.rfind('}')?;
            (
                &line[..open],
                parse_labels(&line[open + 1..close])?,
                &line[close + 1..],
            )
        }
        None => {
            let (name, rest) = line.split_once(' ')?;
            (name, Vec::new(), rest)
        }
    };
    let value_text = rest.split_whitespace().next()?;
    let value = match value_text {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some(Sample {
        name: name.to_string(),
        labels,
        value,
    })
}

fn parse_labels(text: &str) -> Option<Vec<(String, String)>> {
    let mut labels = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(' ') | Some(',')) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Some(labels);
        }
        let key: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if chars.next()? != '"' {
            return None;
        }
        let mut value = String::new();
        loop {
            match chars.next()? {
                '\\' => value.push(chars.next()?),
                '"' => break,
                c => value.push(c),
            }
        }
        labels.push((key.trim().to_string(), value));
    }
}
