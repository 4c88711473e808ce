use clap::Parser;
use gateway::{Config, serve};
use switchboard::{grpc::shutdown_signal, telemetry};

/// Single-threaded: calls are served on `serve`'s own worker threads (one per core); this
/// runtime only accepts connections and watches upstream health and key files.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    serve(config, listener, shutdown).await
}
