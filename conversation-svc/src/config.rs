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

    /// notification-svc replicas: comma-separated `http://host:port` (or `https://` with
    /// --upstream-ca), balanced.
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

    #[command(flatten)]
    pub metrics: switchboard::metrics::MetricsFlags,

    #[command(flatten)]
    pub tls: switchboard::tls::ServerFlags,

    /// How notification-svc is reached at `https://` addresses.
    #[command(flatten)]
    pub upstream_tls: switchboard::tls::UpstreamFlags,
}

impl Config {
    /// Every flag at its default (as `--help` shows it), with the database and the internal
    /// token: what tests and launchers start from, so a new flag is added in one place. Unlike
    /// the binary it ignores the environment, so a developer's exported `DATABASE_URL` or
    /// `NOTIFICATION_SVC_ADDR` never leaks into a test.
    pub fn new(database_url: &str, internal_token: &str) -> Self {
        let args = [
            "conversation-svc".to_owned(),
            format!("--database-url={database_url}"),
            format!("--internal-token={internal_token}"),
        ];
        switchboard::flags::parse_without_environment(args)
            .unwrap_or_else(|err| panic!("conversation-svc's flag defaults do not parse: {err}"))
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
        assert_eq!(config.notification_addr, "http://127.0.0.1:50052");
        assert_eq!(config.shutdown_grace, Duration::from_secs(10));
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
