use clap::Parser;
use notification_svc::{Config, serve};
use switchboard::{
    grpc::{bind, shutdown_signal},
    telemetry,
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let telemetry = telemetry::init(config.log_format, "notification-svc");
    let shutdown = shutdown_signal();
    let listener = bind(config.listen, "notification-svc").await?;
    let served = serve(config, listener, shutdown).await;
    telemetry.shutdown().await;
    served
}
