use clap::Parser;
use conversation_svc::{Config, serve};
use switchboard::{
    grpc::{bind, shutdown_signal},
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init(config.log_format, "conversation-svc");
    let shutdown = shutdown_signal();
    let listener = bind(config.listen, "conversation-svc").await?;
    let served = serve(config, listener, shutdown).await;
    telemetry.shutdown().await;
    served
}
