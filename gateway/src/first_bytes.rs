//! A deadline on a new connection's first bytes: until they say which protocol it speaks
//! (the whole HTTP/2 preface, or a byte that is not the preface's, which means HTTP/1.1), a
//! read that waits past the deadline fails, and the connection is closed.
//!
//! hyper-util's auto builder reads those bytes with no time limit, and hyper's HTTP/1.1
//! header timeout only starts once they are read, so a client that connected (or finished
//! its TLS handshake) and sent nothing, or half a preface, held a task and a socket forever.
//! Once the protocol is known the deadline is gone: HTTP/1.1 has its header timeout, HTTP/2
//! its keepalive pings, and an idle gRPC client or a long Subscribe is never cut by this.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    time::Sleep,
};

/// What an HTTP/2 client sends first (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// `io`, whose reads fail with `TimedOut` if its protocol is not known within the timeout.
pub struct FirstBytes<IO> {
    io: IO,
    /// Until the protocol is known: the deadline, and how much of the preface was seen.
    waiting: Option<Waiting>,
}

struct Waiting {
    deadline: Pin<Box<Sleep>>,
    timeout: Duration,
    preface_seen: usize,
}

impl Waiting {
    /// Takes in bytes just read; true once they tell the protocol (or the stream ended).
    fn protocol_known(&mut self, read: &[u8]) -> bool {
        if read.is_empty() {
            return true;
        }
        for &byte in read {
            if H2_PREFACE.get(self.preface_seen) != Some(&byte) {
                return true;
            }
            self.preface_seen += 1;
            if self.preface_seen == H2_PREFACE.len() {
                return true;
            }
        }
        false
    }
}

impl<IO> FirstBytes<IO> {
    /// Starts the clock now: call it when the connection is ready to be served.
    pub fn new(io: IO, timeout: Duration) -> Self {
        Self {
            io,
            waiting: Some(Waiting {
                deadline: Box::pin(tokio::time::sleep(timeout)),
                timeout,
                preface_seen: 0,
            }),
        }
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for FirstBytes<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(waiting) = &mut this.waiting
            && waiting.deadline.as_mut().poll(cx).is_ready()
        {
            let timeout = waiting.timeout;
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no HTTP/2 preface or HTTP/1.1 request within {timeout:?}"),
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.io).poll_read(cx, buf);
        if let (Poll::Ready(Ok(())), Some(waiting)) = (&read, &mut this.waiting)
            && waiting.protocol_known(&buf.filled()[before..])
        {
            this.waiting = None;
        }
        read
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for FirstBytes<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const TIMEOUT: Duration = Duration::from_millis(200);

    /// Reads what `sent` holds, then waits well past the deadline and reads again.
    async fn read_after_the_deadline(sent: &[u8]) -> io::Result<usize> {
        let (mut client, server) = tokio::io::duplex(1024);
        let mut server = FirstBytes::new(server, TIMEOUT);
        client.write_all(sent).await?;
        let mut buf = vec![0u8; sent.len()];
        server.read_exact(&mut buf).await?;
        assert_eq!(buf, sent);
        tokio::time::sleep(TIMEOUT * 3).await;
        client.write_all(b"x").await?;
        server.read(&mut [0u8; 1]).await
    }

    #[tokio::test]
    async fn silence_and_half_a_preface_time_out() {
        let (_client, server) = tokio::io::duplex(1024);
        let failed = FirstBytes::new(server, TIMEOUT)
            .read(&mut [0u8; 24])
            .await
            .unwrap_err();
        assert_eq!(failed.kind(), io::ErrorKind::TimedOut);

        // Half a preface tells nothing: the read after the deadline fails, even with a byte
        // waiting by then.
        let half = read_after_the_deadline(&H2_PREFACE[..10])
            .await
            .unwrap_err();
        assert_eq!(half.kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test]
    async fn once_the_protocol_is_known_there_is_no_deadline() {
        // HTTP/2: the whole preface; HTTP/1.1: any first byte that is not the preface's.
        for sent in [H2_PREFACE, b"G", b"PRI * HTTP/1.1"] {
            let read = read_after_the_deadline(sent).await;
            assert_eq!(read.unwrap(), 1, "{:?}", String::from_utf8_lossy(sent));
        }
    }
}
