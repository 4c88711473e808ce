//! Accepted connections with their TLS handshakes done off the accept path.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::TcpStream,
    task::JoinSet,
};
use tokio_rustls::{TlsAcceptor, server::TlsStream};
use tokio_stream::Stream;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// How long a client may take to complete its handshake before its connection is dropped:
/// a client that connects and says nothing must not hold a socket and a task forever.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// An accepted connection: TLS when the server has it, plain TCP otherwise.
pub enum Connection {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Connection {
    fn tcp(&self) -> &TcpStream {
        match self {
            Connection::Plain(tcp) => tcp,
            Connection::Tls(tls) => tls.get_ref().0,
        }
    }

    /// The protocol agreed by ALPN (`h2`, `http/1.1`); `None` for plain TCP or a client that
    /// offered none.
    pub fn alpn(&self) -> Option<&[u8]> {
        match self {
            Connection::Plain(_) => None,
            Connection::Tls(tls) => tls.get_ref().1.alpn_protocol(),
        }
    }
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.tcp().connect_info()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_write_vectored(cx, bufs),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Connection::Plain(tcp) => tcp.is_write_vectored(),
            Connection::Tls(tls) => tls.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Connection::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Connection::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}

/// The connections of a TCP stream, handshaken when TLS is on: each handshake runs on a task
/// of its own (on the runtime that polls this), so a slow client holds up nobody else, and a
/// failed one is logged at debug level and dropped (it is the client's failure, not ours).
pub struct Accepted<S> {
    tcp: S,
    tcp_ended: bool,
    tls: Option<(TlsAcceptor, JoinSet<Option<Connection>>)>,
}

impl<S> Accepted<S> {
    pub fn new(tcp: S, tls: Option<TlsAcceptor>) -> Self {
        Self {
            tcp,
            tcp_ended: false,
            tls: tls.map(|acceptor| (acceptor, JoinSet::new())),
        }
    }
}

impl<S> Stream for Accepted<S>
where
    S: Stream<Item = io::Result<TcpStream>> + Unpin,
{
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        let Some((acceptor, handshakes)) = &mut this.tls else {
            return Pin::new(&mut this.tcp)
                .poll_next(cx)
                .map(|next| next.map(|accepted| accepted.map(Connection::Plain)));
        };
        while !this.tcp_ended {
            match Pin::new(&mut this.tcp).poll_next(cx) {
                Poll::Ready(Some(Ok(tcp))) => {
                    handshakes.spawn(handshake(acceptor.clone(), tcp));
                }
                Poll::Ready(Some(Err(err))) => return Poll::Ready(Some(Err(err))),
                Poll::Ready(None) => this.tcp_ended = true,
                Poll::Pending => break,
            }
        }
        loop {
            match handshakes.poll_join_next(cx) {
                Poll::Ready(Some(Ok(Some(connection)))) => {
                    return Poll::Ready(Some(Ok(connection)));
                }
                Poll::Ready(Some(Ok(None))) => {}
                Poll::Ready(Some(Err(err))) => {
                    tracing::warn!(error = %err, "a TLS handshake task failed");
                }
                Poll::Ready(None) if this.tcp_ended => return Poll::Ready(None),
                Poll::Ready(None) | Poll::Pending => return Poll::Pending,
            }
        }
    }
}

async fn handshake(acceptor: TlsAcceptor, tcp: TcpStream) -> Option<Connection> {
    let peer = tcp.peer_addr().ok();
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => Some(Connection::Tls(Box::new(tls))),
        Ok(Err(err)) => {
            tracing::debug!(?peer, error = %err, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(?peer, timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out");
            None
        }
    }
}
