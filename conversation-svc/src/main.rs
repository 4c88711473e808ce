use clap::Parser;
use conversation_svc::{Config, serve};
use switchboard::{
    grpc::{bind, shutdown_signal},
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    telemetry::init(config.log_format);
    let shutdown = shutdown_signal();
    let listener = bind(config.listen, "conversation-svc").await?;
    serve(config, listener, shutdown).await
}
