//! Settings: flags with environment fallbacks.

use std::{net::SocketAddr, time::Duration};

use clap::Parser;
use switchboard::telemetry::LogFormat;

#[derive(Debug, Clone, Parser)]
#[command(
    name = "notification-svc",
    version,
    about = "Switchboard notification service"
)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50052")]
    pub listen: SocketAddr,

    /// `sqlite:<file>` (created if missing) or `postgres://user@host/db`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:notifications.db")]
    pub database_url: String,

    /// Shared secret the gateway and trusted services present; required.
    #[arg(long, env = switchboard::identity::INTERNAL_TOKEN_ENV, hide_env_values = true)]
    pub internal_token: String,

    /// Interval between Subscribe heartbeats, e.g. `15s`, `500ms`.
    #[arg(long, env = "HEARTBEAT_INTERVAL", default_value = "15s", value_parser = humantime::parse_duration)]
    pub heartbeat_interval: Duration,

    /// How long notifications are kept (then pruned, hourly); a Subscribe resuming from
    /// before that is told so (OUT_OF_RANGE).
    #[arg(long, env = "RETENTION", default_value = "90days", value_parser = humantime::parse_duration)]
    pub retention: Duration,

    /// Open Subscribe streams one user may hold on this server (RESOURCE_EXHAUSTED past it).
    #[arg(long, env = "MAX_STREAMS_PER_USER", default_value_t = 16)]
    pub max_streams_per_user: usize,

    /// Open Subscribe streams this server holds in total (RESOURCE_EXHAUSTED past it).
    #[arg(long, env = "MAX_STREAMS", default_value_t = 50_000)]
    pub max_streams: usize,

    /// Log format: `text` or `json` (filter with `RUST_LOG`).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// How long shutdown waits for in-flight calls before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,
}

impl Config {
    /// The caps on Subscribe streams, as the hub takes them.
    pub fn stream_limits(&self) -> crate::hub::Limits {
        crate::hub::Limits {
            per_user: self.max_streams_per_user,
            total: self.max_streams,
        }
    }
}
