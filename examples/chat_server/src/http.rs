//! The HTTP side of a connection: read the request head as bytes, then either answer
//! it (the page, 404, 400, …) or accept the WebSocket upgrade.
//!
//! The head is read into a byte buffer and parsed with `httparse`, which takes header
//! values as bytes: a header with a non-UTF-8 byte (`X-Name: caf\xe9`) still gets the
//! page, and a request line that is not valid HTTP (a non-UTF-8 byte in the path
//! included) gets `400 Bad Request`. Nothing is converted to a string to be measured
//! again: the head's length is where `httparse` says it ended, and any bytes after it
//! (a client may send its first WebSocket frame right behind the upgrade) are handed to
//! the WebSocket layer untouched.
//!
//! The head may be at most [`MAX_HEAD`] bytes and [`MAX_HEADERS`] headers (else 431) and
//! must arrive within the handshake timeout (else 408).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The page `GET /` serves: plain HTML with inline JavaScript, no build step.
pub const INDEX_HTML: &str = include_str!("index.html");

/// Largest request head accepted, in bytes.
pub const MAX_HEAD: usize = 8 * 1024;

/// Most headers accepted in a request.
pub const MAX_HEADERS: usize = 32;

/// What a request head asks for.
#[derive(Debug)]
pub enum Request {
    /// A WebSocket upgrade: answer with [`switching_protocols`], then speak WebSocket.
    /// `rest` is what the client sent after the head.
    Upgrade { key: Vec<u8>, rest: Vec<u8> },
    /// Anything else: this response, then close.
    Respond(Response),
    /// `GET /metrics` (or `HEAD`): the Prometheus text, from `operating.rs`.
    Metrics { head_only: bool },
}

/// A plain HTTP response.
#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
    /// One extra header line (without CRLF), e.g. `Allow: GET, HEAD`.
    pub extra: Option<&'static str>,
    /// HEAD: send the headers only.
    pub head_only: bool,
}

impl Response {
    fn text(status: &'static str, body: &'static str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body,
            extra: None,
            head_only: false,
        }
    }

    /// The bytes on the wire.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\
             Cache-Control: no-store\r\nConnection: close\r\n",
            self.status,
            self.content_type,
            self.body.len()
        );
        if let Some(extra) = self.extra {
            out.push_str(extra);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        if !self.head_only {
            out.push_str(self.body);
        }
        out.into_bytes()
    }
}

/// Reads a request head off `stream` within `limit` and decides what to do with it.
/// `None`: the client went away (or the head timed out and was answered with 408).
pub async fn read_request(stream: &mut TcpStream, limit: Duration) -> Option<Request> {
    let mut buf = Vec::with_capacity(1024);
    let read = async {
        loop {
            if buf.len() >= MAX_HEAD {
                return Some(Request::Respond(Response::text(
                    "431 Request Header Fields Too Large",
                    "request head too large\n",
                )));
            }
            let mut chunk = [0u8; 1024];
            let room = (MAX_HEAD - buf.len()).min(chunk.len());
            match stream.read(&mut chunk[..room]).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            if let Some(request) = parse(&buf) {
                return Some(request);
            }
        }
    };
    match timeout(limit, read).await {
        Ok(request) => request,
        Err(_) => {
            let late = Response::text("408 Request Timeout", "request head too slow\n");
            let _ = stream.write_all(&late.to_bytes()).await;
            None
        }
    }
}

/// Parses a head read so far: `None` while it is incomplete.
pub fn parse(buf: &[u8]) -> Option<Request> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut headers);
    let len = match request.parse(buf) {
        Ok(httparse::Status::Partial) => return None,
        Ok(httparse::Status::Complete(len)) => len,
        Err(httparse::Error::TooManyHeaders) => {
            return Some(Request::Respond(Response::text(
                "431 Request Header Fields Too Large",
                "too many headers\n",
            )))
        }
        Err(_) => {
            return Some(Request::Respond(Response::text(
                "400 Bad Request",
                "not an HTTP/1.1 request\n",
            )))
        }
    };
    let header = |name: &str| {
        request
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    };
    let has_token = |name: &str, token: &str| {
        header(name).is_some_and(|value| {
            value
                .split(|&b| b == b',')
                .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
        })
    };
    let method = request.method.unwrap_or("");
    let path = request.path.unwrap_or("");

    if has_token("upgrade", "websocket") {
        if method != "GET" {
            return Some(Request::Respond(Response {
                extra: Some("Allow: GET"),
                ..Response::text("405 Method Not Allowed", "a WebSocket upgrade is a GET\n")
            }));
        }
        if header("sec-websocket-version").map(<[u8]>::trim_ascii) != Some(b"13") {
            return Some(Request::Respond(Response {
                extra: Some("Sec-WebSocket-Version: 13"),
                ..Response::text("426 Upgrade Required", "WebSocket version 13 only\n")
            }));
        }
        let key = header("sec-websocket-key").map(<[u8]>::trim_ascii);
        return Some(match key {
            Some(key) if !key.is_empty() && has_token("connection", "upgrade") => {
                Request::Upgrade {
                    key: key.to_vec(),
                    rest: buf[len..].to_vec(),
                }
            }
            _ => Request::Respond(Response::text(
                "400 Bad Request",
                "a WebSocket upgrade needs Connection: Upgrade and Sec-WebSocket-Key\n",
            )),
        });
    }
    let path = path.split('?').next().unwrap_or("");
    let response = match (method, path) {
        ("GET" | "HEAD", "/metrics") => {
            return Some(Request::Metrics {
                head_only: method == "HEAD",
            })
        }
        ("GET" | "HEAD", "/" | "/index.html") => Response {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            body: INDEX_HTML,
            extra: None,
            head_only: method == "HEAD",
        },
        ("GET" | "HEAD", _) => Response {
            head_only: method == "HEAD",
            ..Response::text("404 Not Found", "not found\n")
        },
        _ => Response {
            extra: Some("Allow: GET, HEAD"),
            ..Response::text("405 Method Not Allowed", "only GET\n")
        },
    };
    Some(Request::Respond(response))
}

/// The `101 Switching Protocols` answer to an upgrade with this `Sec-WebSocket-Key`.
pub fn switching_protocols(key: &[u8]) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key)
    )
    .into_bytes()
}

/// Sends `response`, then closes the connection politely: our side first (FIN), then
/// whatever the client still sends is read and discarded, briefly, so the close does
/// not turn into a reset that could destroy the response before the client reads it.
pub async fn respond(mut stream: TcpStream, response: &Response, linger: Duration) {
    if stream.write_all(&response.to_bytes()).await.is_ok() {
        let _ = stream.shutdown().await;
        drain(&mut stream, linger, 64 * 1024).await;
    }
}

/// Reads and discards up to `max` bytes for up to `limit`, or until the peer closes.
pub async fn drain(stream: &mut TcpStream, limit: Duration, max: usize) {
    let discard = async {
        let mut sink = [0u8; 1024];
        let mut seen = 0;
        while seen < max {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen += n,
            }
        }
    };
    let _ = timeout(limit, discard).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn respond(head: &[u8]) -> Response {
        match parse(head) {
            Some(Request::Respond(response)) => response,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn heads_are_parsed_as_bytes() {
        assert_eq!(
            respond(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").status,
            "200 OK"
        );
        // A non-UTF-8 header value: still the page, and the head ends where it ends.
        let page = respond(b"GET / HTTP/1.1\r\nX-Name: caf\xe9\r\n\r\n");
        assert_eq!(page.status, "200 OK");
        // A non-UTF-8 byte in the path: a proper 400.
        assert_eq!(
            respond(b"GET /\xff HTTP/1.1\r\n\r\n").status,
            "400 Bad Request"
        );
        assert_eq!(respond(b"GET /x HTTP/1.1\r\n\r\n").status, "404 Not Found");
        assert_eq!(
            respond(b"POST / HTTP/1.1\r\n\r\n").status,
            "405 Method Not Allowed"
        );
        assert!(
            parse(b"GET / HTTP/1.1\r\nHost: x\r\n").is_none(),
            "incomplete"
        );
        let upgrade =
            b"GET / HTTP/1.1\r\nUpgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n\
            Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n\x81";
        match parse(upgrade) {
            Some(Request::Upgrade { key, rest }) => {
                assert_eq!(key, b"dGhlIHNhbXBsZSBub25jZQ==");
                assert_eq!(rest, b"\x81");
            }
            other => panic!("{other:?}"),
        }
        let text = String::from_utf8(switching_protocols(b"dGhlIHNhbXBsZSBub25jZQ==")).unwrap();
        assert!(text.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    }
}
