//! gRPC server plumbing every binary shares: limits, reflection, listeners, shutdown signal.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use tokio::net::TcpListener;
use tonic::transport::Server;

use crate::proto::FILE_DESCRIPTOR_SET;

/// Largest request a server decodes. Generous for the biggest legitimate request (1000
/// recipient ids plus 2000 characters of content is well under 100 KiB) and small enough
/// that a hostile client cannot make the server buffer megabytes per call.
pub const MAX_DECODING_MESSAGE_SIZE: usize = 1024 * 1024;

/// Streams one HTTP/2 connection may hold open (unlimited by default in tonic and hyper).
pub const MAX_CONCURRENT_STREAMS: u32 = 4096;

/// HTTP/2 pings find dead subscribers (a laptop that went to sleep) so their streams and
/// tasks are freed instead of lingering until the next write fails.
pub const HTTP2_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(30);

/// How long a keepalive ping may go unanswered before the connection is closed.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// A tonic server builder with the limits tonic leaves open by default.
pub fn server_builder() -> Server {
    Server::builder()
        .max_concurrent_streams(Some(MAX_CONCURRENT_STREAMS))
        .http2_keepalive_interval(Some(HTTP2_KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(HTTP2_KEEPALIVE_TIMEOUT))
        .tcp_nodelay(true)
}

/// Server reflection v1 and v1alpha: grpcurl up to 1.8 only speaks v1alpha, newer clients v1.
/// Advertises health plus `services` (fully qualified names), so a binary lists only what it
/// serves even though the descriptor set holds every contract. The `google.rpc` error
/// details are registered too, so grpcurl prints field violations instead of raw bytes.
pub fn reflection_services(
    services: &[&str],
) -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<
            impl tonic_reflection::server::v1::ServerReflection,
        >,
        tonic_reflection::server::v1alpha::ServerReflectionServer<
            impl tonic_reflection::server::v1alpha::ServerReflection,
        >,
    ),
    tonic_reflection::server::Error,
> {
    let builder = || {
        let mut builder = tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
            .with_service_name(HEALTH_SERVICE);
        for service in services {
            builder = builder.with_service_name(*service);
        }
        builder
    };
    Ok((builder().build_v1()?, builder().build_v1alpha()?))
}

/// Binds `addr` for `what` (a service's name). The error names both: the bare OS error
/// ("Address already in use") says neither which address nor which of several listeners.
pub async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .with_context(|| format!("{what} cannot listen on {addr}"))
}

/// The listeners a server is given: its API's and, when a launcher bound it first (to know
/// its port), its metrics endpoint's. A bare API listener converts into one.
pub struct Listeners {
    pub api: TcpListener,
    pub metrics: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(api: TcpListener) -> Self {
        Listeners { api, metrics: None }
    }
}

/// The standard health service's name.
pub const HEALTH_SERVICE: &str = "grpc.health.v1.Health";

/// What a server does when its shutdown signal fires.
pub struct Drain {
    pub health: tonic_health::server::HealthReporter,
    /// Services to report NOT_SERVING (the server as a whole, `""`, always is).
    pub services: Vec<&'static str>,
    /// Cancelled first: watchers that would otherwise report SERVING again while draining.
    pub watchers: tokio_util::sync::CancellationToken,
    /// Cancelled after health turned: ends open streams and stops accepting calls (the server
    /// must be served with `stop.cancelled_owned()` as its shutdown signal).
    pub stop: tokio_util::sync::CancellationToken,
    /// How long in-flight calls may take after that.
    pub grace: Duration,
}

/// Runs `server` until it ends. When `signal` resolves: health NOT_SERVING first, so
/// balancers move away, then `stop`; in-flight calls get `grace`, after which this returns
/// even if some are still open (tonic alone would wait forever on open streams).
pub async fn run_until_drained<E>(
    server: impl std::future::Future<Output = Result<(), E>>,
    signal: impl std::future::Future<Output = ()> + Send + 'static,
    drain: Drain,
) -> anyhow::Result<()>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let Drain {
        health,
        services,
        watchers,
        stop,
        grace,
    } = drain;
    tokio::spawn({
        let stop = stop.clone();
        async move {
            signal.await;
            watchers.cancel();
            for service in services {
                health
                    .set_service_status(service, tonic_health::ServingStatus::NotServing)
                    .await;
            }
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            stop.cancel();
        }
    });
    tokio::select! {
        result = server => result.map_err(|err| anyhow::Error::new(err).context("gRPC server failed"))?,
        () = async { stop.cancelled().await; tokio::time::sleep(grace).await } => {
            tracing::warn!(?grace, "shutdown grace period elapsed with calls still open");
        }
    }
    Ok(())
}

/// How long connecting to an upstream (or checking its health) may take: a replica that is
/// down must fail calls fast (UNAVAILABLE) rather than hold them.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// Resolves on SIGTERM or Ctrl-C, whichever comes first.
///
/// The handlers are installed when this is called, not when the future is first polled:
/// call it before binding the listener, so a SIGTERM that arrives while the service is still
/// migrating its database shuts it down gracefully instead of killing it.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        async move {
            match (interrupt, terminate) {
                (Ok(mut interrupt), Ok(mut terminate)) => tokio::select! {
                    _ = interrupt.recv() => tracing::info!("Ctrl-C received, shutting down"),
                    _ = terminate.recv() => tracing::info!("SIGTERM received, shutting down"),
                },
                (Err(err), _) | (_, Err(err)) => {
                    tracing::error!(error = %err, "cannot install signal handlers; stop with SIGKILL");
                    std::future::pending::<()>().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        if tokio::signal::ctrl_c().await.is_ok() {
            tracing::info!("Ctrl-C received, shutting down");
        } else {
            std::future::pending::<()>().await;
        }
    }
}
