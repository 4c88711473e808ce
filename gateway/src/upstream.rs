//! The gateway's channels to one upstream: one per replica, each over coalescing sockets
//! ([`CoalescedIo`]), calls dealt to the replicas in turn.
//!
//! Why not tonic's balanced channel: it connects with its own connector, and the point here is
//! the socket under the connection. A request's headers and message are queued by two tasks
//! (the call and hyper's body pipe); coalesced, they reach the service in one write, so it is
//! woken once per call instead of twice. Dealing in turn is what the balanced channel did in
//! effect: a replica that is down fails the calls dealt to it fast (UNAVAILABLE, within the
//! connect timeout) either way, and every channel reconnects on its own.

use std::{
    io,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
};

use http::Uri;
use hyper_util::rt::TokioIo;
use switchboard::grpc;
use tokio::net::TcpStream;
use tonic::transport::Channel;

use switchboard::coalesce::CoalescedIo;

/// Lazily connected channels to every replica of one upstream.
#[derive(Clone)]
pub struct Replicas {
    channels: Arc<[Channel]>,
    next: Arc<AtomicUsize>,
}

impl Replicas {
    /// One channel per address in `addresses` (comma-separated `http://host:port`). Nothing
    /// connects until the first call, so the gateway starts while an upstream is down.
    pub fn connect_lazy(addresses: &str) -> anyhow::Result<Self> {
        let channels = grpc::endpoints(addresses)?
            .iter()
            .map(|endpoint| endpoint.connect_with_connector_lazy(tower::service_fn(connect)))
            .collect();
        Ok(Self {
            channels,
            next: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// The channel for the next call.
    pub fn next(&self) -> Channel {
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        self.channels[turn % self.channels.len()].clone()
    }
}

/// Opens the TCP connection under one channel.
async fn connect(uri: Uri) -> io::Result<TokioIo<CoalescedIo<TcpStream>>> {
    let host = uri.host().ok_or_else(|| {
        io::Error::new(io::ErrorKind::InvalidInput, "no host in upstream address")
    })?;
    // An IPv6 literal comes bracketed in a URI but not in a socket address.
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host, port)).await?;
    stream.set_nodelay(true)?;
    Ok(TokioIo::new(CoalescedIo::new(stream)))
}
