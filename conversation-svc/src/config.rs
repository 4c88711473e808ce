//! Settings: flags with environment fallbacks.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use switchboard::telemetry::LogFormat;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "conversation-svc",
    version,
    about = "Switchboard conversation service"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50053")]
    pub listen: SocketAddr,

    /// `sqlite:<file>` (created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:conversations.db")]
    pub database_url: String,

    /// Shared secret the gateway and trusted services present; required. Also used to call
    /// notification-svc.
    #[arg(long, env = switchboard::identity::INTERNAL_TOKEN_ENV, hide_env_values = true)]
    pub internal_token: String,

    /// notification-svc replicas: comma-separated `http://host:port`, balanced.
    #[arg(
        long,
        env = "NOTIFICATION_SVC_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub notification_addr: String,

    /// Log format: `text` or `json` (filter with `RUST_LOG`).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// How long shutdown waits for in-flight calls before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}
