//! A lean HTTP/1.1 keep-alive client for the closed-loop ingress run.
//!
//! Why not reqwest: on a 2-core machine the load generator shares the CPU with the ingress and
//! RabbitMQ, so every microsecond the client spends per request comes out of the throughput being
//! measured. Like `wrk`, this client sends requests rendered before timing starts, one in flight
//! per connection, and reads only the status line and `Content-Length` of each answer.

use std::io;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The most response headers read; the ingress sends about six.
const MAX_HEADERS: usize = 32;

/// `("host:port", "/path")` of a plain-`http` URL (this client speaks no TLS).
pub fn split_http_url(url: &str) -> Result<(String, String), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("`{url}`: the ingress benchmark needs an http:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}

/// A request rendered to its exact bytes: request line, headers and body.
pub fn render_post(host: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut request = Vec::with_capacity(body.len() + 256);
    request.extend_from_slice(format!("POST {path} HTTP/1.1\r\nhost: {host}\r\n").as_bytes());
    for (name, value) in headers {
        request.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    request.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
    request.extend_from_slice(body);
    request
}

/// One keep-alive connection with one request in flight at a time.
pub struct Connection {
    addr: String,
    stream: TcpStream,
    buffer: Vec<u8>,
}

impl Connection {
    pub async fn open(addr: &str) -> io::Result<Self> {
        Ok(Self {
            addr: addr.to_owned(),
            stream: connect(addr).await?,
            buffer: Vec::with_capacity(4096),
        })
    }

    /// Sends `request` and reads the whole answer; returns its status code. A connection the
    /// server closed while it sat idle is reopened, once: closed silently (keep-alive timeout),
    /// or with a 408 (no request came within the server's header deadline, so ours, sent after
    /// it gave up, was never read; the connections wait idle while the baseline runs).
    pub async fn round_trip(&mut self, request: &[u8]) -> io::Result<u16> {
        match self.try_round_trip(request).await {
            Err(error) if self.buffer.is_empty() && is_closed(&error) => {
                self.stream = connect(&self.addr).await?;
                self.try_round_trip(request).await
            }
            Ok(408) => {
                self.buffer.clear();
                self.stream = connect(&self.addr).await?;
                self.try_round_trip(request).await
            }
            answer => answer,
        }
    }

    async fn try_round_trip(&mut self, request: &[u8]) -> io::Result<u16> {
        self.buffer.clear();
        self.stream.write_all(request).await?;
        loop {
            if let Some((status, head_len, body_len)) = parse_head(&self.buffer)? {
                while self.buffer.len() < head_len + body_len {
                    self.fill().await?;
                }
                // One request in flight: nothing may follow the body.
                self.buffer.drain(..head_len + body_len);
                return Ok(status);
            }
            self.fill().await?;
        }
    }

    async fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0_u8; 4096];
        let read = self.stream.read(&mut chunk).await?;
        if read == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "connection closed mid-answer",
            ));
        }
        self.buffer.extend_from_slice(&chunk[..read]);
        Ok(())
    }
}

async fn connect(addr: &str) -> io::Result<TcpStream> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

fn is_closed(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof | io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
    )
}

/// `Some((status, head length, body length))` once the head is complete.
fn parse_head(buffer: &[u8]) -> io::Result<Option<(u16, usize, usize)>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buffer) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(error) => return Err(io::Error::new(io::ErrorKind::InvalidData, error)),
    };
    let status = response.code.unwrap_or_default();
    let mut body_len = None;
    for header in response.headers.iter() {
        if header.name.eq_ignore_ascii_case("content-length") {
            body_len = std::str::from_utf8(header.value)
                .ok()
                .and_then(|v| v.trim().parse().ok());
        } else if header.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "chunked answers are not supported by the benchmark client",
            ));
        }
    }
    let body_len =
        body_len.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "answer without content-length"))?;
    Ok(Some((status, head_len, body_len)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_is_complete_only_with_its_blank_line() {
        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\nContent-Type: text/plain\r\n\r\nhello";
        assert_eq!(parse_head(&answer[..20]).unwrap(), None);
        assert_eq!(parse_head(answer).unwrap(), Some((200, answer.len() - 5, 5)));
        let chunked = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n";
        assert!(parse_head(chunked).is_err());
    }

    #[test]
    fn an_http_url_splits_into_authority_and_path() {
        let split = |url| split_http_url(url).unwrap();
        assert_eq!(
            split("http://127.0.0.1:8080/webhooks/x"),
            ("127.0.0.1:8080".into(), "/webhooks/x".into())
        );
        assert_eq!(split("http://localhost"), ("localhost:80".into(), "/".into()));
        assert!(split_http_url("https://localhost/").is_err());
    }

    #[test]
    fn a_rendered_post_carries_its_length_and_body() {
        let request = render_post("127.0.0.1:8080", "/a", &[("x-a", "1")], b"{}");
        let text = String::from_utf8(request).unwrap();
        assert!(text.starts_with("POST /a HTTP/1.1\r\nhost: 127.0.0.1:8080\r\nx-a: 1\r\n"));
        assert!(text.ends_with("content-length: 2\r\n\r\n{}"));
    }

    #[tokio::test]
    async fn round_trips_against_a_real_server_on_one_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = actix_web::HttpServer::new(|| {
            actix_web::App::new().default_service(actix_web::web::to(|body: bytes::Bytes| async move {
                if body.as_ref() == b"ok" {
                    actix_web::HttpResponse::Ok().body("fine")
                } else {
                    actix_web::HttpResponse::BadRequest().finish()
                }
            }))
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        let mut connection = Connection::open(&addr).await.unwrap();
        for _ in 0..3 {
            let ok = render_post(&addr, "/x", &[], b"ok");
            assert_eq!(connection.round_trip(&ok).await.unwrap(), 200);
            let bad = render_post(&addr, "/x", &[], b"no");
            assert_eq!(connection.round_trip(&bad).await.unwrap(), 400);
        }
        handle.stop(false).await;
    }

    #[tokio::test]
    async fn a_connection_the_server_closed_is_reopened_once() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            // The first connection is closed unanswered, as an idle keep-alive would be.
            let (first, _) = listener.accept().await.unwrap();
            drop(first);
            let (mut second, _) = listener.accept().await.unwrap();
            let mut request = vec![0_u8; 1024];
            let _ = second.read(&mut request).await.unwrap();
            second
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let mut connection = Connection::open(&addr).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let request = render_post(&addr, "/x", &[], b"ok");
        assert_eq!(connection.round_trip(&request).await.unwrap(), 200);
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_408_is_answered_by_sending_again_on_a_new_connection() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let server = tokio::spawn(async move {
            let mut statuses = Vec::new();
            for answer in [
                &b"HTTP/1.1 408 Request Timeout\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"[..],
                b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n",
            ] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut request = vec![0_u8; 1024];
                let _ = stream.read(&mut request).await.unwrap();
                stream.write_all(answer).await.unwrap();
                statuses.push(answer[9..12].to_vec());
            }
            statuses
        });
        let mut connection = Connection::open(&addr).await.unwrap();
        let request = render_post(&addr, "/x", &[], b"ok");
        assert_eq!(connection.round_trip(&request).await.unwrap(), 200);
        assert_eq!(server.await.unwrap(), [b"408".to_vec(), b"200".to_vec()]);
    }
}
