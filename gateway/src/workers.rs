//! Thread-per-core serving: one single-threaded tokio runtime per core, each serving the
//! connections dealt to it, with its own channels to the upstreams.
//!
//! A proxied call is a chain of hand-offs between tasks (client connection, call, upstream
//! channel, upstream connection and back), and on a multi-threaded runtime each hand-off may
//! wake another thread. Here a connection never leaves its thread, so every task of its calls
//! runs where it was woken, and the gateway still uses every core (bench/README.md, "What
//! each change bought", change 12). The cost is no work stealing: connections are dealt out
//! in turn, and a few very busy ones can load the threads unevenly.

use std::{
    future::Future,
    io,
    net::TcpStream as StdTcpStream,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use switchboard::tls;
use tokio::{
    net::{TcpListener, TcpStream},
    sync::{mpsc, oneshot},
};
use tokio_util::sync::CancellationToken;

/// Why serving stopped on a worker thread.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    #[error("cannot set up a worker: {0:#}")]
    Setup(anyhow::Error),
    #[error("cannot start worker thread {0}: {1}")]
    Start(usize, io::Error),
    #[error("worker thread {0} stopped without finishing (panicked)")]
    Lost(usize),
}

/// The connections dealt to one worker, as the stream its server accepts from: with TLS,
/// each is handshaken on that worker's thread, off its accept path.
pub struct Incoming {
    connections: tls::Accepted<Dealt>,
}

impl futures::Stream for Incoming {
    type Item = io::Result<tls::Connection>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        futures::Stream::poll_next(Pin::new(&mut self.connections), cx)
    }
}

/// The TCP connections dealt to one worker.
pub struct Dealt {
    connections: mpsc::UnboundedReceiver<StdTcpStream>,
}

impl futures::Stream for Dealt {
    type Item = io::Result<TcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.connections.poll_recv(cx).map(|next| {
            next.map(|stream| {
                // Registered with this thread's runtime, where it is first polled.
                let stream = TcpStream::from_std(stream)?;
                stream.set_nodelay(true)?;
                Ok(stream)
            })
        })
    }
}

/// The running worker threads.
pub struct Workers {
    connections: Vec<mpsc::UnboundedSender<StdTcpStream>>,
    finished: Vec<oneshot::Receiver<Result<(), WorkerError>>>,
    /// Ends every worker at once, open calls included: cancelled when [`Workers`] is dropped,
    /// that is once the gateway has drained or its grace period is over.
    abort: CancellationToken,
}

impl Workers {
    /// Starts `count` threads (at least one). On each, `serve` builds the server around its
    /// [`Incoming`] (handshaken with `tls` when set), inside that thread's runtime, so
    /// whatever it spawns stays there.
    pub fn start<S, F>(
        count: usize,
        tls: Option<tls::ServerTls>,
        serve: S,
    ) -> Result<Self, WorkerError>
    where
        S: Fn(Incoming) -> F + Clone + Send + 'static,
        F: Future<Output = Result<(), WorkerError>> + 'static,
    {
        let abort = CancellationToken::new();
        let mut connections = Vec::new();
        let mut finished = Vec::new();
        for index in 0..count.max(1) {
            let (sender, receiver) = mpsc::unbounded_channel();
            let (done, finished_one) = oneshot::channel();
            let serve = serve.clone();
            let abort = abort.clone();
            let tls = tls.clone();
            std::thread::Builder::new()
                .name(format!("gateway-worker-{index}"))
                .spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(err) => {
                            tracing::error!(error = %err, "cannot build a worker runtime");
                            return;
                        }
                    };
                    let result = runtime.block_on(async move {
                        tokio::select! {
                            result = serve(Incoming {
                                connections: tls::accepted(
                                    Dealt { connections: receiver },
                                    tls.as_ref(),
                                ),
                            }) => result,
                            () = abort.cancelled() => Ok(()),
                        }
                    });
                    let _ = done.send(result);
                })
                .map_err(|err| WorkerError::Start(index, err))?;
            connections.push(sender);
            finished.push(finished_one);
        }
        Ok(Self {
            connections,
            finished,
            abort,
        })
    }

    /// Deals the listener's connections out to the workers in turn until `stop`, then closes
    /// the listener so new clients are refused rather than left hanging during the drain.
    pub fn accept(
        &self,
        listener: TcpListener,
        stop: CancellationToken,
    ) -> impl Future<Output = ()> + Send + 'static {
        let workers = self.connections.clone();
        async move {
            let mut next = 0usize;
            loop {
                let accepted = tokio::select! {
                    () = stop.cancelled() => break,
                    accepted = listener.accept() => accepted,
                };
                match accepted.and_then(|(stream, _)| stream.into_std()) {
                    Ok(stream) => {
                        let _ = workers[next % workers.len()].send(stream);
                        next = next.wrapping_add(1);
                    }
                    Err(err) => {
                        // Out of file descriptors and the like: back off rather than spin.
                        tracing::warn!(error = %err, "cannot accept a connection");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
        }
    }

    /// Resolves when every worker's server has finished (each drains on the stop signal the
    /// caller gave it), with the first error.
    pub fn finished(&mut self) -> impl Future<Output = Result<(), WorkerError>> + use<> {
        let finished = std::mem::take(&mut self.finished);
        async move {
            let mut first_error = None;
            for (index, worker) in finished.into_iter().enumerate() {
                let result = match worker.await {
                    Ok(result) => result,
                    Err(_) => Err(WorkerError::Lost(index)),
                };
                if let Err(err) = result {
                    first_error.get_or_insert(err);
                }
            }
            first_error.map_or(Ok(()), Err)
        }
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        self.abort.cancel();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn connections_are_dealt_to_every_worker_in_turn_and_refused_after_stop() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let stop = CancellationToken::new();
        let mut workers = Workers::start(2, None, {
            let (seen, stop) = (seen.clone(), stop.clone());
            move |mut incoming: Incoming| {
                let (seen, stop) = (seen.clone(), stop.clone());
                async move {
                    let mut open = Vec::new();
                    loop {
                        tokio::select! {
                            () = stop.cancelled() => return Ok(()),
                            next = incoming.next() => {
                                let stream = next.expect("the sender outlives the test").expect("a socket");
                                let name = std::thread::current().name().map(str::to_owned);
                                seen.lock().unwrap().push(name.unwrap_or_default());
                                open.push(stream);
                            }
                        }
                    }
                }
            }
        })
        .unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepting = tokio::spawn(workers.accept(listener, stop.clone()));

        let mut clients = Vec::new();
        for _ in 0..4 {
            clients.push(TcpStream::connect(addr).await.unwrap());
        }
        while seen.lock().unwrap().len() < 4 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let mut threads = seen.lock().unwrap().clone();
        threads.sort();
        assert_eq!(
            threads,
            [
                "gateway-worker-0",
                "gateway-worker-0",
                "gateway-worker-1",
                "gateway-worker-1"
            ]
        );

        stop.cancel();
        accepting.await.unwrap();
        workers.finished().await.unwrap();
        assert!(
            TcpStream::connect(addr).await.is_err(),
            "the listener closes when the gateway stops"
        );
    }
}
