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

    #[command(flatten)]
    pub metrics: switchboard::metrics::MetricsFlags,

    #[command(flatten)]
    pub tls: switchboard::tls::ServerFlags,
}

impl Config {
    /// Every flag at its default (as `--help` shows it), with the database and the internal
    /// token: what tests and launchers start from, so a new flag is added in one place. Unlike
    /// the binary it ignores the environment, so a developer's exported `DATABASE_URL` or
    /// `LISTEN_ADDR` never leaks into a test.
    pub fn new(database_url: &str, internal_token: &str) -> Self {
        let args = [
            "notification-svc".to_owned(),
            format!("--database-url={database_url}"),
            format!("--internal-token={internal_token}"),
        ];
        switchboard::flags::parse_without_environment(args)
            .unwrap_or_else(|err| panic!("notification-svc's flag defaults do not parse: {err}"))
    }

    /// The caps on Subscribe streams, as the hub takes them.
    pub fn stream_limits(&self) -> crate::hub::Limits {
        crate::hub::Limits {
            per_user: self.max_streams_per_user,
            total: self.max_streams,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn new_takes_the_flag_defaults() {
        let config = Config::new("sqlite:test.db", "secret");
        assert_eq!(config.database_url, "sqlite:test.db");
        assert_eq!(config.internal_token, "secret");
        assert_eq!(config.listen, "127.0.0.1:50052".parse().unwrap());
        assert_eq!(config.heartbeat_interval, Duration::from_secs(15));
        let limits = config.stream_limits();
        assert_eq!((limits.per_user, limits.total), (16, 50_000));
    }

    #[test]
    fn new_reads_no_environment_but_the_binary_does() {
        let defaults = switchboard::flags::without_environment::<Config>();
        assert!(defaults.get_arguments().all(|arg| arg.get_env().is_none()));
        let binary = Config::command();
        assert!(
            binary
                .get_arguments()
                .any(|arg| arg.get_env() == Some("DATABASE_URL".as_ref()))
        );
    }
}
