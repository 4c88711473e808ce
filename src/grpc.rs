//! gRPC server plumbing every binary shares: limits, reflection, shutdown signal.

use std::time::Duration;

use tonic::transport::Server;

use crate::proto::FILE_DESCRIPTOR_SET;

/// Largest request a server decodes. Generous for the biggest legitimate request (1000
/// recipient ids plus 2000 characters of content is well under 100 KiB) and small enough
/// that a hostile client cannot make the server buffer megabytes per call.
pub const MAX_DECODING_MESSAGE_SIZE: usize = 1024 * 1024;

/// A tonic server builder with the limits tonic leaves open by default.
pub fn server_builder() -> Server {
    Server::builder()
        // Unlimited by default: bound the streams one connection may hold open.
        .max_concurrent_streams(Some(4096))
        // HTTP/2 pings find dead subscribers (a laptop that went to sleep) so their streams
        // and tasks are freed instead of lingering until the next write fails.
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true)
}

/// Server reflection v1 and v1alpha: grpcurl up to 1.8 only speaks v1alpha, newer clients v1.
/// The `google.rpc` error details are registered too, so grpcurl prints field violations
/// instead of raw bytes.
pub fn reflection_services() -> Result<
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
    let v1 = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1()?;
    let v1alpha = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_types::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()?;
    Ok((v1, v1alpha))
}

/// Resolves on SIGTERM or Ctrl-C, whichever comes first.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for Ctrl-C");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C received, shutting down"),
        () = term => tracing::info!("SIGTERM received, shutting down"),
    }
}
