//! The admin endpoint: `/healthz`, `/readyz` and `/metrics` over HTTP/1.1.
//!
//! It is a syncnet server itself (its own workers, short timeouts, no
//! connection logs) whose handler parses one request head with `httparse`
//! and answers it, so it inherits the bounded pool, the timeouts and the
//! accept-error handling instead of being a second server design.
//!
//! Slow clients must not starve the probes: a client that trickles its
//! request head one byte at a time gets `408` once [`HEAD_DEADLINE`] has
//! passed, however steadily it sends (a total deadline, not an idle one),
//! and there are more workers ([`WORKERS`], started only when needed) than
//! such clients are likely to hold at once, so `/healthz` keeps answering
//! while they trickle.

use std::io::{self, Read, Write};
use std::sync::Arc;
use std::time::Duration;

use crate::Conn;
use crate::config::ServerConfig;

/// Largest request head we read; a longer one gets 431.
const MAX_HEAD: usize = 8 * 1024;

/// The whole request head must arrive within this long of the connection
/// being picked up; after that the client gets `408 Request Timeout`.
pub(crate) const HEAD_DEADLINE: Duration = Duration::from_secs(2);

/// Admin workers: threads start on demand, so an idle endpoint costs one or
/// two; under a trickling attack each slow client holds one for at most
/// about [`HEAD_DEADLINE`] plus one idle timeout.
const WORKERS: usize = 128;

/// What the admin endpoint may see of the server it reports on: its
/// readiness and its metrics, nothing else.
pub(crate) trait Status: Send + Sync + 'static {
    /// True while `/readyz` should answer 200 (the server is not shutting down).
    fn is_ready(&self) -> bool;
    /// The Prometheus text exposition of the server's metrics.
    fn metrics_text(&self) -> Vec<u8>;
}

/// The admin server's own settings: a few workers, short timeouts, no
/// connection logs, no drain.
pub(crate) fn settings() -> ServerConfig {
    ServerConfig {
        listen: String::new(),
        workers: WORKERS,
        queue: 64,
        queue_timeout: Duration::from_secs(2),
        idle_timeout: HEAD_DEADLINE,
        write_timeout: Duration::from_secs(10),
        // A backstop for a client that reads a large /metrics very slowly.
        max_lifetime: Duration::from_secs(30),
        shutdown_delay: Duration::ZERO,
        drain_timeout: Duration::ZERO,
        keepalive: Duration::ZERO,
        nodelay: true,
        backlog: 128,
        worker_stack_size: crate::DEFAULT_WORKER_STACK_SIZE,
        admin: None,
        log_connections: false,
        ..ServerConfig::default()
    }
}

/// The admin endpoint's connection handler, reporting on `status`.
pub(crate) fn handler(
    status: Arc<dyn Status>,
) -> impl Fn(&mut Conn) -> io::Result<()> + Send + Sync + 'static {
    move |conn: &mut Conn| answer(conn, |path| route(path, status.as_ref()))
}

/// A response: status line, content type and body.
struct Response {
    status: u16,
    content_type: &'static str,
    body: Vec<u8>,
}

impl Response {
    fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

fn route(path: &str, status: &dyn Status) -> Response {
    match path {
        "/healthz" => Response::text(200, "ok\n"),
        "/readyz" if status.is_ready() => Response::text(200, "ready\n"),
        "/readyz" => Response::text(503, "draining\n"),
        "/metrics" => Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: status.metrics_text(),
        },
        _ => Response::text(404, "not found\n"),
    }
}

/// Reads one request head from `stream`, answers it with `route`, and closes.
/// Generic over the stream so it can be tested without sockets.
fn answer<S: Read + Write>(stream: &mut S, route: impl Fn(&str) -> Response) -> io::Result<()> {
    let mut head = [0u8; MAX_HEAD];
    let mut len = 0;
    let deadline = std::time::Instant::now() + HEAD_DEADLINE;
    let mut is_head = false;
    let response = loop {
        let n = stream.read(&mut head[len..])?;
        if n == 0 {
            return Ok(()); // closed before a whole request arrived
        }
        len += n;
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&head[..len]) {
            Ok(httparse::Status::Complete(_)) => {
                let path = request.path.unwrap_or("/");
                let path = path.split('?').next().unwrap_or(path);
                is_head = request.method == Some("HEAD");
                break match request.method {
                    Some("GET") | Some("HEAD") => route(path),
                    _ => Response::text(405, "method not allowed\n"),
                };
            }
            Ok(httparse::Status::Partial) if len == head.len() => {
                break Response::text(431, "request head too large\n");
            }
            Ok(httparse::Status::Partial) if std::time::Instant::now() > deadline => {
                break Response::text(408, "request head took too long\n");
            }
            Ok(httparse::Status::Partial) => continue,
            Err(httparse::Error::TooManyHeaders) => {
                break Response::text(431, "too many request headers\n");
            }
            Err(_) => break Response::text(400, "bad request\n"),
        }
    };
    let reason = match response.status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        431 => "Request Header Fields Too Large",
        _ => "Service Unavailable",
    };
    let header = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    );
    stream.write_all(header.as_bytes())?;
    if !is_head {
        // HEAD gets the headers of the GET reply, Content-Length included, but no body.
        stream.write_all(&response.body)?;
    }
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    /// An in-memory stream: reads `input`, collects what is written.
    struct Fake {
        input: Cursor<Vec<u8>>,
        output: Vec<u8>,
    }

    impl Read for Fake {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.input.read(buf)
        }
    }
    impl Write for Fake {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.output.write(buf)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn ask(request: &str) -> String {
        let mut fake = Fake {
            input: Cursor::new(request.as_bytes().to_vec()),
            output: Vec::new(),
        };
        answer(&mut fake, |path| match path {
            "/healthz" => Response::text(200, "ok\n"),
            _ => Response::text(404, "not found\n"),
        })
        .unwrap();
        String::from_utf8(fake.output).unwrap()
    }

    #[test]
    fn routes_get_requests() {
        let reply = ask("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\nok\n"));
        assert!(ask("GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404"));
        assert!(ask("GET /healthz?verbose=1 HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 200"));
    }

    #[test]
    fn head_gets_the_headers_without_the_body() {
        let reply = ask("HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("Content-Length: 3\r\n"), "{reply}");
        assert!(reply.ends_with("\r\n\r\n"), "no body: {reply:?}");
    }

    #[test]
    fn too_many_headers_is_431() {
        let headers: String = (0..33).map(|i| format!("X-{i}: y\r\n")).collect();
        let reply = ask(&format!("GET /healthz HTTP/1.1\r\n{headers}\r\n"));
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    }

    #[test]
    fn rejects_what_is_not_a_get() {
        assert!(ask("POST /healthz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
        assert!(ask("\x16\x03\x01garbage\r\n\r\n").starts_with("HTTP/1.1 400"));
        assert!(
            ask("GET /healthz HTTP/1.1\r\n").is_empty(),
            "no reply to half a head"
        );
    }
}
