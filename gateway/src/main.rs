use clap::Parser;
use gateway::{Config, serve};
use switchboard::{
    grpc::{bind, shutdown_signal},
    telemetry,
};

/// Single-threaded: calls are served on `serve`'s own worker threads (one per core); this
/// runtime only accepts connections and watches upstream health and key files.
#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init(config.log_format, "gateway");
    let shutdown = shutdown_signal();
    let listener = bind(config.listen, "gateway").await?;
    let served = serve(config, listener, shutdown).await;
    telemetry.shutdown().await;
    served
}
