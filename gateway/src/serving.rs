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
        let connection = builder
            .serve_connection(TokioIo::new(io), TowerToHyperService::new(service.clone()))
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // A client that left mid-request, a header block over the limit, a timeout.
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
