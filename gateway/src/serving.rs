//! Serving connections: HTTP/1.1 and HTTP/2 on one port (hyper-util's auto builder reads the
//! first bytes: the HTTP/2 preface means h2, anything else HTTP/1.1), with explicit limits.
//!
//! tonic's own server has no HTTP/1.1 limits to set, and gRPC-Web from browsers arrives over
//! HTTP/1.1, so the gateway serves its connections itself, with the HTTP/2 settings tonic's
//! were given (`switchboard::grpc`).

use std::{convert::Infallible, io, time::Duration};

use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use switchboard::grpc::{
    HTTP2_KEEPALIVE_INTERVAL, HTTP2_KEEPALIVE_TIMEOUT, MAX_CONCURRENT_STREAMS,
};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;
use tonic::body::Body;

use crate::first_bytes::FirstBytes;

/// The smallest read buffer hyper accepts (it panics below it).
pub const MIN_HTTP1_HEADER_BYTES: usize = 8192;

/// Limits of the HTTP layer, from the configuration.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest HTTP/1.1 request head (request line and headers); larger is answered 431.
    pub http1_max_header_bytes: usize,
    /// How long an HTTP/1.1 connection may take to send its next request's headers: closes
    /// idle keep-alive connections and slow senders. A response in progress (a Subscribe)
    /// is not idle and is not cut.
    pub http1_idle_timeout: Duration,
    /// How long a new connection (after its TLS handshake) may take to send the bytes that
    /// say which protocol it speaks ([`FirstBytes`]); then it is closed.
    pub first_bytes_timeout: Duration,
}

/// A request handler for every connection: cheap to clone (one clone per connection).
pub type HttpService =
    tower::util::BoxCloneService<http::Request<Incoming>, http::Response<Body>, Infallible>;

/// Serves every connection `incoming` yields with `service` until `stop`; then stops
/// accepting, asks each open connection to finish (HTTP/2 GOAWAY, HTTP/1.1 close after the
/// response in progress) and returns once they all have.
pub async fn serve<I, IO>(
    incoming: I,
    service: HttpService,
    limits: Limits,
    stop: CancellationToken,
) where
    I: Stream<Item = io::Result<IO>>,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let builder = builder(limits);
    let graceful = GracefulShutdown::new();
    let mut incoming = std::pin::pin!(incoming);
    loop {
        let io = tokio::select! {
            () = stop.cancelled() => break,
            next = incoming.next() => match next {
                Some(Ok(io)) => io,
                Some(Err(err)) => {
                    tracing::debug!(error = %err, "cannot take a connection");
                    continue;
                }
                None => break,
            },
        };
        let io = FirstBytes::new(io, limits.first_bytes_timeout);
        let connection = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // A client that left mid-request, a header block over the limit, a timeout
                // (no first bytes, no next request's headers).
                tracing::debug!(error = %err, "connection ended with an error");
            }
        });
    }
    graceful.shutdown().await;
}

fn builder(limits: Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        // The read buffer holds the request head, so its size is the head's limit (bodies
        // stream through it).
        .max_buf_size(limits.http1_max_header_bytes.max(MIN_HTTP1_HEADER_BYTES))
        .header_read_timeout(limits.http1_idle_timeout)
        // hyper enforces the header read timeout only with a timer.
        .timer(TokioTimer::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        .keep_alive_interval(HTTP2_KEEPALIVE_INTERVAL)
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT);
    builder
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tonic::codegen::Bytes;

    use super::*;

    /// Answers every request with four chunks, 150 ms apart.
    fn slow_stream() -> HttpService {
        HttpService::new(tower::service_fn(|_: http::Request<Incoming>| async {
            let chunks = futures::stream::unfold(0u8, |n| async move {
                if n == 4 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
                let frame = http_body::Frame::data(Bytes::from_static(b"tick"));
                Some((Ok::<_, Infallible>(frame), n + 1))
            });
            let body = Body::new(http_body_util::StreamBody::new(chunks));
            Ok::<_, Infallible>(http::Response::new(body))
        }))
    }

    /// Serves `service` on a port of its own until the returned token is cancelled.
    async fn start(
        service: HttpService,
        limits: Limits,
    ) -> (
        std::net::SocketAddr,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let incoming = futures::stream::unfold(listener, |listener| async move {
            let accepted = listener.accept().await.map(|(stream, _)| stream);
            Some((accepted, listener))
        });
        let stop = CancellationToken::new();
        let server = tokio::spawn(serve(incoming, service, limits, stop.clone()));
        (addr, stop, server)
    }

    /// Reads until the server closes the connection; panics if it is still open after 10 s.
    async fn closed_by_the_server(client: &mut tokio::net::TcpStream) -> Vec<u8> {
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            let read = tokio::time::timeout(Duration::from_secs(10), client.read(&mut buf))
                .await
                .expect("the server closes the connection");
            match read {
                Ok(0) | Err(_) => return received,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    }

    const LONG: Duration = Duration::from_secs(3600);
    const SHORT: Duration = Duration::from_millis(300);

    /// Connects, sends `first_bytes`, and waits for the server to close without serving.
    async fn stall_after(addr: std::net::SocketAddr, first_bytes: &[u8]) {
        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client.write_all(first_bytes).await.unwrap();
        let answer = closed_by_the_server(&mut client).await;
        let answer = String::from_utf8_lossy(&answer);
        let sent = String::from_utf8_lossy(first_bytes);
        assert!(!answer.contains("tick"), "{sent:?} was served: {answer}");
    }

    #[tokio::test]
    async fn a_connection_that_stalls_before_its_protocol_is_known_is_closed() {
        // The HTTP/1.1 timeout is out of reach: only the first-bytes deadline can close these.
        let limits = Limits {
            http1_max_header_bytes: MIN_HTTP1_HEADER_BYTES,
            http1_idle_timeout: LONG,
            first_bytes_timeout: SHORT,
        };
        let (addr, stop, server) = start(slow_stream(), limits).await;
        // Nothing at all (before the fix: never closed), half of the HTTP/2 preface (likewise).
        stall_after(addr, b"").await;
        stall_after(addr, b"PRI * HTTP/2.0\r\n").await;
        stop.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn half_an_http1_request_line_is_closed_by_the_header_timeout() {
        // Its first byte says HTTP/1.1, so hyper's header timeout applies from there on.
        let limits = Limits {
            http1_max_header_bytes: MIN_HTTP1_HEADER_BYTES,
            http1_idle_timeout: SHORT,
            first_bytes_timeout: LONG,
        };
        let (addr, stop, server) = start(slow_stream(), limits).await;
        stall_after(addr, b"GET /switchboard").await;
        stop.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_long_response_is_not_cut_and_an_idle_keep_alive_connection_is_closed() {
        let limits = Limits {
            http1_max_header_bytes: MIN_HTTP1_HEADER_BYTES,
            http1_idle_timeout: SHORT,
            // Shorter than the response: the deadline is gone once the request has begun.
            first_bytes_timeout: Duration::from_millis(100),
        };
        let (addr, stop, server) = start(slow_stream(), limits).await;

        let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
        client
            .write_all(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
            .await
            .unwrap();
        // The response takes 600 ms, twice the idle timeout, and arrives whole.
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        while !received.ends_with(b"0\r\n\r\n") {
            let n = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
                .await
                .expect("the response goes on")
                .unwrap();
            assert!(n > 0, "cut: {}", String::from_utf8_lossy(&received));
            received.extend_from_slice(&buf[..n]);
        }
        let text = String::from_utf8_lossy(&received);
        assert!(text.starts_with("HTTP/1.1 200"), "{text}");
        assert_eq!(text.matches("tick").count(), 4, "{text}");

        // Then, with no next request, the connection is closed after the idle timeout.
        let idle_since = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(5), client.read(&mut buf))
            .await
            .expect("closed by the server");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        assert!(idle_since.elapsed() >= Duration::from_millis(250));

        stop.cancel();
        server.await.unwrap();
    }
}
