//! Settings: flags with environment fallbacks.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::Parser;
use switchboard::telemetry::LogFormat;

#[derive(Debug, Clone, Parser)]
#[command(name = "gateway", version, about = "Switchboard gateway")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "LISTEN_ADDR", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// notification-svc replicas: comma-separated `http://host:port` (or `https://` with
    /// --upstream-ca), balanced.
    #[arg(
        long,
        env = "NOTIFICATION_SVC_ADDR",
        default_value = "http://127.0.0.1:50052"
    )]
    pub notification_addr: String,

    /// conversation-svc replicas: comma-separated `http://host:port` (or `https://` with
    /// --upstream-ca), balanced.
    #[arg(
        long,
        env = "CONVERSATION_SVC_ADDR",
        default_value = "http://127.0.0.1:50053"
    )]
    pub conversation_addr: String,

    /// Shared secret injected for the backends; required.
    #[arg(long, env = switchboard::identity::INTERNAL_TOKEN_ENV, hide_env_values = true)]
    pub internal_token: String,

    /// HS256 secret for end-user tokens.
    #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
    pub jwt_secret: Option<String>,

    /// JWKS file with RS256/ES256/EdDSA public keys (chosen by `kid`); re-read every second
    /// and reloaded when its contents change (an unreadable or invalid file keeps the keys).
    #[arg(long, env = "SWITCHBOARD_JWKS_FILE")]
    pub jwks_file: Option<PathBuf>,

    /// Required `iss` claim, when set.
    #[arg(long, env = "SWITCHBOARD_JWT_ISSUER")]
    pub jwt_issuer: Option<String>,

    /// Required `aud` claim, when set.
    #[arg(long, env = "SWITCHBOARD_JWT_AUDIENCE")]
    pub jwt_audience: Option<String>,

    /// Upper bound on unary calls (a client's shorter `grpc-timeout` wins); not applied to
    /// server-streaming calls such as Subscribe.
    #[arg(long, env = "UNARY_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub unary_timeout: Duration,

    /// Per-user rate of the rate-limited methods, calls per second.
    #[arg(long, env = "SEND_RATE", default_value_t = 20.0)]
    pub send_rate: f64,

    /// Per-user burst of the rate-limited methods.
    #[arg(long, env = "SEND_BURST", default_value_t = 40)]
    pub send_burst: u32,

    /// Callers whose token carries SCOPE get their own rate instead of the per-user one:
    /// `SCOPE=RATE[:BURST]` (burst defaults to twice the rate), comma-separated, first match
    /// wins; e.g. `notifications:send=500:1000` for service tokens.
    #[arg(long = "scope-rate", env = "SCOPE_RATES", value_delimiter = ',')]
    pub scope_rates: Vec<crate::ratelimit::ScopeRate>,

    /// Methods under the per-user rate limit (full paths, comma-separated).
    #[arg(
        long,
        env = "RATE_LIMITED_METHODS",
        value_delimiter = ',',
        default_value = "/switchboard.notification.v1.NotificationService/Send,/switchboard.conversation.v1.ConversationService/SendMessage"
    )]
    pub rate_limited_methods: Vec<String>,

    /// How often upstream health is checked.
    #[arg(long, env = "HEALTH_INTERVAL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,

    /// Log format: `text` or `json` (filter with `RUST_LOG`).
    #[arg(long, env = "LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,

    /// How long shutdown waits for in-flight calls before exiting anyway.
    #[arg(long, env = "SHUTDOWN_GRACE", default_value = "10s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// Serving threads, each with its own single-threaded runtime; 0 means one per core.
    #[arg(long, env = "GATEWAY_WORKER_THREADS", default_value_t = 0)]
    pub worker_threads: usize,

    /// Browser origins allowed to call from another origin (gRPC-Web with CORS): exact
    /// `scheme://host[:port]`, comma-separated; empty means same-origin only (no CORS headers).
    #[arg(long, env = "CORS_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub cors_allowed_origins: Vec<String>,

    /// Serve the built web app (`web/dist`) from this directory at `/`: static files for GET
    /// and HEAD, `index.html` for any other path the app routes. Unset: no web app.
    #[arg(long, env = "WEB_DIR")]
    pub web_dir: Option<std::path::PathBuf>,

    /// Largest HTTP/1.1 request head (request line and headers), in bytes; larger is answered
    /// 431. At least 8192.
    #[arg(
        long,
        env = "HTTP1_MAX_HEADER_BYTES",
        default_value_t = 16384,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(8192..)
    )]
    pub http1_max_header_bytes: usize,

    /// How long an HTTP/1.1 connection may take to send its next request's headers: closes
    /// idle keep-alive connections and slow senders (a streaming response is not idle).
    #[arg(long, env = "HTTP1_IDLE_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
    pub http1_idle_timeout: Duration,

    /// How long a new connection (after its TLS handshake) may take to send its first bytes
    /// (the HTTP/2 preface, or the start of an HTTP/1.1 request) before it is closed.
    #[arg(long, env = "FIRST_BYTES_TIMEOUT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub first_bytes_timeout: Duration,

    /// TLS on the listener (ALPN `h2` and `http/1.1`).
    #[command(flatten)]
    pub metrics: switchboard::metrics::MetricsFlags,

    #[command(flatten)]
    pub tls: switchboard::tls::ServerFlags,

    /// How the upstreams are reached at `https://` addresses.
    #[command(flatten)]
    pub upstream_tls: switchboard::tls::UpstreamFlags,
}

impl Config {
    /// Every flag at its default (as `--help` shows it), with the internal token: what tests
    /// and launchers start from, so a new flag is added in one place. Unlike the binary it
    /// ignores the environment, so a developer's exported `SWITCHBOARD_JWT_SECRET` or
    /// `NOTIFICATION_SVC_ADDR` never leaks into a test.
    pub fn new(internal_token: &str) -> Self {
        let args = [
            "gateway".to_owned(),
            format!("--internal-token={internal_token}"),
        ];
        switchboard::flags::parse_without_environment(args)
            .unwrap_or_else(|err| panic!("the gateway's flag defaults do not parse: {err}"))
    }

    /// `worker_threads`, with 0 resolved to the number of cores this process may use.
    pub fn serving_threads(&self) -> usize {
        match self.worker_threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn new_takes_the_flag_defaults() {
        let config = Config::new("secret");
        assert_eq!(config.internal_token, "secret");
        assert_eq!(config.jwt_secret, None);
        assert_eq!(config.conversation_addr, "http://127.0.0.1:50053");
        assert_eq!(config.rate_limited_methods.len(), 2);
        assert_eq!(config.health_interval, Duration::from_secs(2));
        assert!(config.cors_allowed_origins.is_empty(), "same-origin only");
        assert_eq!(config.http1_max_header_bytes, 16384);
        assert_eq!(config.http1_idle_timeout, Duration::from_secs(30));
        assert_eq!(config.first_bytes_timeout, Duration::from_secs(10));
    }

    #[test]
    fn http1_header_limit_is_at_least_what_hyper_accepts() {
        let parse = |value: &str| {
            let args = [
                "gateway",
                "--internal-token=t",
                "--http1-max-header-bytes",
                value,
            ];
            switchboard::flags::parse_without_environment::<Config, _, _>(args)
        };
        assert!(parse("4096").is_err());
        assert_eq!(parse("8192").unwrap().http1_max_header_bytes, 8192);
        let origins = switchboard::flags::parse_without_environment::<Config, _, _>([
            "gateway",
            "--internal-token=t",
            "--cors-allowed-origins=https://a.example,http://localhost:5173",
        ])
        .unwrap()
        .cors_allowed_origins;
        assert_eq!(origins, ["https://a.example", "http://localhost:5173"]);
    }

    #[test]
    fn new_reads_no_environment_but_the_binary_does() {
        let defaults = switchboard::flags::without_environment::<Config>();
        assert!(defaults.get_arguments().all(|arg| arg.get_env().is_none()));
        let binary = Config::command();
        assert!(
            binary
                .get_arguments()
                .any(|arg| arg.get_env() == Some("SWITCHBOARD_JWT_SECRET".as_ref()))
        );
    }
}
