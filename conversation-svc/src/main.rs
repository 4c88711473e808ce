use clap::Parser;
use conversation_svc::{Config, serve};
use switchboard::{grpc::shutdown_signal, telemetry};

/// mimalloc: SQLite rows are allocated on sqlx's worker threads and freed on tokio's, a
/// pattern that made glibc's allocator contend on its arena locks (see bench/README.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let shutdown = shutdown_signal();
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    serve(config, listener, shutdown).await
}
