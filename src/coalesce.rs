//! Write coalescing for our HTTP/2 connections: the frames h2 writes in one turn of a
//! connection leave in one system call.
//!
//! Why: h2 keeps a DATA payload of 256 bytes or more out of its buffer and writes it before it
//! encodes the next frame, so a unary answer with a message of that size left as two writes,
//! the headers and message first and the trailers (the status) after; and a request's headers
//! and message, queued by two tasks, went out as two writes too. The peer cannot finish the
//! call before the last piece, and on a host whose idle CPUs halt (a VM's vCPUs), each write
//! that finds the peer asleep wakes it again: on our benchmark host that is tens of
//! microseconds a time, and a proxied call paid it at every hop (`bench/README.md`, change 15).
//!
//! How: writes are copied into a buffer. The first flush of a batch only arms it and
//! schedules the writing task to run again; the next flush, at the end of the same turn or in
//! the turn the wake brings, writes everything at once. h2 flushes at the end of every turn of
//! its connection task, so nothing waits longer than one more turn of that task.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll, ready},
};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Above this many buffered bytes a write goes out at once instead of waiting for the flush.
const MAX_BUFFERED: usize = 256 * 1024;

/// A buffer that grew past this is given back once drained, so an idle connection holds little.
const KEEP_CAPACITY: usize = 64 * 1024;

/// An I/O object whose writes are gathered until the second flush.
///
/// Only for writers that flush on every turn, as h2's connection task does: one that flushes
/// once and then waits for an answer would wait with its request still buffered.
pub struct CoalescedIo<T> {
    inner: T,
    pending: Vec<u8>,
    /// How much of `pending` has already been written.
    written: usize,
    /// A flush has been put off; the next one writes.
    armed: bool,
}

impl<T> CoalescedIo<T> {
    pub fn new(inner: T) -> Self {
        Self {
            inner,
            pending: Vec::new(),
            written: 0,
            armed: false,
        }
    }
}

impl<T: AsyncWrite + Unpin> CoalescedIo<T> {
    /// Writes out everything buffered.
    fn poll_drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.pending.len() {
            let n =
                ready!(Pin::new(&mut self.inner).poll_write(cx, &self.pending[self.written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.written += n;
        }
        self.pending.clear();
        if self.pending.capacity() > KEEP_CAPACITY {
            self.pending = Vec::new();
        }
        self.written = 0;
        self.armed = false;
        Poll::Ready(Ok(()))
    }

    /// Makes room for `len` more bytes: drains first when they would not fit.
    fn poll_room(&mut self, cx: &mut Context<'_>, len: usize) -> Poll<io::Result<()>> {
        if !self.pending.is_empty() && self.pending.len() + len > MAX_BUFFERED {
            ready!(self.poll_drain(cx))?;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for CoalescedIo<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for CoalescedIo<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_room(cx, buf.len()))?;
        self.pending.extend_from_slice(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let len = bufs.iter().map(|b| b.len()).sum();
        ready!(self.poll_room(cx, len))?;
        for buf in bufs {
            self.pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(len))
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.pending.is_empty() {
            return Pin::new(&mut self.inner).poll_flush(cx);
        }
        if !self.armed {
            // Claimed flushed; the wake guarantees the second flush comes.
            self.armed = true;
            cx.waker().wake_by_ref();
            return Poll::Ready(Ok(()));
        }
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_drain(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<T: tonic::transport::server::Connected> tonic::transport::server::Connected
    for CoalescedIo<T>
{
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use std::{
        future::poll_fn,
        sync::{
            Arc,
            atomic::{AtomicUsize, Ordering},
        },
        task::{Wake, Waker},
        time::Duration,
    };

    use tokio::{
        io::{AsyncReadExt, AsyncWriteExt},
        net::{TcpListener, TcpStream},
    };

    use super::*;

    /// A connected pair: our coalescing end and the plain peer.
    async fn pair() -> (CoalescedIo<TcpStream>, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ours = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (peer, _) = listener.accept().await.unwrap();
        (CoalescedIo::new(ours), peer)
    }

    /// Counts wakes, to see the first flush ask for another turn.
    #[derive(Default)]
    struct Wakes(AtomicUsize);
    impl Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    /// Nothing has arrived at `peer` (loopback delivers within the write call).
    async fn nothing_arrived(peer: &TcpStream) {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let mut byte = [0u8; 1];
        assert_eq!(
            peer.try_read(&mut byte).map_err(|e| e.kind()),
            Err(io::ErrorKind::WouldBlock),
            "bytes left before the second flush"
        );
    }

    fn poll_once<T>(f: impl FnOnce(&mut Context<'_>) -> Poll<T>, waker: &Waker) -> T {
        match f(&mut Context::from_waker(waker)) {
            Poll::Ready(value) => value,
            Poll::Pending => panic!("a loopback socket with room should not be pending"),
        }
    }

    #[tokio::test]
    async fn the_frames_of_one_turn_leave_in_one_write_at_the_second_flush() {
        let (mut ours, mut peer) = pair().await;
        let wakes = Arc::new(Wakes::default());
        let waker = Waker::from(wakes.clone());

        // As h2 writes a unary answer: headers with the message, flush, then the trailers.
        let (head, message) = (b"headers".as_slice(), vec![7u8; 8 * 1024]);
        let slices = [io::IoSlice::new(head), io::IoSlice::new(&message)];
        let n = poll_once(
            |cx| Pin::new(&mut ours).poll_write_vectored(cx, &slices),
            &waker,
        );
        assert_eq!(n.unwrap(), head.len() + message.len());
        poll_once(|cx| Pin::new(&mut ours).poll_flush(cx), &waker).unwrap();
        assert_eq!(
            wakes.0.load(Ordering::SeqCst),
            1,
            "the put-off flush asks for a turn"
        );
        nothing_arrived(&peer).await;

        poll_once(|cx| Pin::new(&mut ours).poll_write(cx, b"trailers"), &waker).unwrap();
        poll_once(|cx| Pin::new(&mut ours).poll_flush(cx), &waker).unwrap();

        let mut want = head.to_vec();
        want.extend_from_slice(&message);
        want.extend_from_slice(b"trailers");
        let mut got = vec![0u8; want.len()];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(got, want);
    }

    #[tokio::test]
    async fn a_lone_batch_leaves_at_the_flush_of_the_next_turn() {
        let (mut ours, mut peer) = pair().await;
        ours.write_all(b"ping").await.unwrap();
        ours.flush().await.unwrap();
        nothing_arrived(&peer).await;

        // The turn the wake brings: h2 flushes on every turn, here by hand.
        poll_fn(|cx| Pin::new(&mut ours).poll_flush(cx))
            .await
            .unwrap();
        let mut got = [0u8; 4];
        peer.read_exact(&mut got).await.unwrap();
        assert_eq!(&got, b"ping");
    }

    #[tokio::test]
    async fn shutdown_writes_what_is_buffered_first() {
        let (mut ours, mut peer) = pair().await;
        ours.write_all(b"goaway").await.unwrap();
        ours.flush().await.unwrap();
        ours.shutdown().await.unwrap();
        let mut got = Vec::new();
        peer.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"goaway");
    }

    #[tokio::test]
    async fn more_than_the_buffer_holds_goes_out_whole_and_in_order() {
        let (mut ours, mut peer) = pair().await;
        let sent: Vec<u8> = (0..3 * MAX_BUFFERED).map(|i| (i % 251) as u8).collect();
        let expected = sent.clone();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            peer.read_to_end(&mut got).await.unwrap();
            got
        });
        for chunk in sent.chunks(100 * 1024) {
            ours.write_all(chunk).await.unwrap();
        }
        ours.flush().await.unwrap();
        ours.shutdown().await.unwrap();
        assert_eq!(reader.await.unwrap(), expected);
    }
}
