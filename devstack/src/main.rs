//! `devstack up` runs the whole stack; `devstack token` mints tokens for it.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Parser, Subcommand};
use devstack::{
    MetricsAddrs, Secrets, Stack, StackConfig, StackTls, Storage, certs::DevCerts, token, webapp,
};
use switchboard::{grpc::shutdown_signal, telemetry};

#[derive(Parser)]
#[command(name = "devstack", about = "Switchboard on a laptop")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start gateway + notification-svc + conversation-svc; Ctrl-C stops all three.
    Up {
        /// Where SQLite files and the dev secrets live.
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Use this PostgreSQL server instead of SQLite, e.g. postgres://postgres@127.0.0.1:5432.
        /// The stack creates and uses its own databases there (switchboard_notifications,
        /// switchboard_conversations); a database in the URL (.../mydb) is only the one it
        /// connects to for creating them (default: postgres). User, password and query
        /// string (?sslmode=...) are kept.
        #[arg(long)]
        postgres: Option<String>,
        /// Internal token (default: generated and kept in the data directory).
        #[arg(long, env = "SWITCHBOARD_INTERNAL_TOKEN", hide_env_values = true)]
        internal_token: Option<String>,
        /// HS256 secret for tokens (default: generated and kept in the data directory).
        #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        #[arg(long, default_value = "127.0.0.1:50051")]
        gateway: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:50052")]
        notification: SocketAddr,
        #[arg(long, default_value = "127.0.0.1:50053")]
        conversation: SocketAddr,
        /// Where the gateway serves Prometheus metrics (`/metrics`).
        #[arg(long, default_value = "127.0.0.1:50061")]
        gateway_metrics: SocketAddr,
        /// Where notification-svc serves Prometheus metrics.
        #[arg(long, default_value = "127.0.0.1:50062")]
        notification_metrics: SocketAddr,
        /// Where conversation-svc serves Prometheus metrics.
        #[arg(long, default_value = "127.0.0.1:50063")]
        conversation_metrics: SocketAddr,
        /// Keep no metrics and serve none.
        #[arg(long)]
        no_metrics: bool,
        /// Everything over TLS: the gateway's listener, and mTLS between the gateway and the
        /// services. A development CA and certificates are made in <data-dir>/tls on first
        /// use and kept there (the printed grpcurl line trusts that CA).
        #[arg(long)]
        tls: bool,
        /// Serve this built web app instead of building the checkout's `web/` (npm) when its
        /// build is missing or stale.
        #[arg(long, env = "WEB_DIR")]
        web_dir: Option<PathBuf>,
        /// Serve no web app (and build none).
        #[arg(long, conflicts_with = "web_dir")]
        no_web: bool,
    },
    /// Print a token for a user, signed with the data directory's dev secret (refused when
    /// the data directory has none) or with --jwt-secret.
    Token {
        /// The user id (`sub`).
        #[arg(long)]
        user: String,
        /// The username (`preferred_username`); defaults to the user id.
        #[arg(long)]
        username: Option<String>,
        /// Space-separated scopes.
        #[arg(long, default_value = token::ALL_SCOPES)]
        scopes: String,
        /// Avatar URL (`picture`).
        #[arg(long, default_value = "")]
        picture: String,
        /// How long the token is valid.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        ttl: Duration,
        /// The data directory of the running `devstack up` (relative to the current directory).
        #[arg(long, default_value = "data")]
        data_dir: PathBuf,
        /// Sign with this secret instead of the data directory's, e.g. the production
        /// gateway's; no data directory is needed then.
        #[arg(long, env = "SWITCHBOARD_JWT_SECRET", hide_env_values = true)]
        jwt_secret: Option<String>,
        /// Print a link that opens the web app signed in as this user, instead of the token.
        #[arg(long)]
        link: bool,
        /// The gateway the link points at (with --link).
        #[arg(long, default_value = "http://127.0.0.1:50051")]
        web_url: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::Up {
            data_dir,
            postgres,
            internal_token,
            jwt_secret,
            gateway,
            notification,
            conversation,
            gateway_metrics,
            notification_metrics,
            conversation_metrics,
            no_metrics,
            tls,
            web_dir,
            no_web,
        } => {
            // One process serves all three, so exported spans carry one service name.
            let _telemetry = telemetry::init(telemetry::LogFormat::Text, "switchboard-devstack");
            let shutdown = shutdown_signal();
            let mut secrets = Secrets::load_or_create(&data_dir)?;
            if let Some(token) = internal_token {
                secrets.internal_token = token;
            }
            if let Some(secret) = jwt_secret {
                secrets.jwt_secret = secret;
            }
            let storage = match postgres {
                Some(server) => Storage::Postgres(server),
                None => Storage::Sqlite(data_dir.clone()),
            };
            let dev_token = token::mint(
                &secrets.jwt_secret,
                "dev",
                "dev",
                "",
                token::ALL_SCOPES,
                Duration::from_secs(24 * 3600),
            )?;
            let tls = if tls {
                let dir = std::path::absolute(data_dir.join("tls"))?;
                Some(StackTls {
                    certs: DevCerts::load_or_create(&dir)?,
                    inside: true,
                })
            } else {
                None
            };
            let web_dir = match (web_dir, no_web) {
                (_, true) => None,
                (Some(dir), false) => Some(dir),
                (None, false) => Some(webapp::build_if_stale(&webapp::source_dir())?),
            };
            let web = web_dir.is_some();
            let mut stack = Stack::start(StackConfig {
                gateway,
                notification,
                conversation,
                tls,
                web_dir,
                metrics: (!no_metrics).then_some(MetricsAddrs {
                    gateway: gateway_metrics,
                    notification: notification_metrics,
                    conversation: conversation_metrics,
                }),
                ..StackConfig::new(storage, secrets)
            })
            .await?;
            // grpcurl trusts the dev CA over TLS; -plaintext otherwise.
            let transport = match &stack.tls_ca {
                Some(ca) => format!("-cacert {}", ca.display()),
                None => "-plaintext".to_owned(),
            };
            println!();
            println!(
                "Switchboard is up: gateway {}, notification-svc {}, conversation-svc {}",
                stack.gateway, stack.notification, stack.conversation
            );
            if let Some(metrics) = &stack.metrics {
                println!(
                    "Metrics: http://{}/metrics (gateway), http://{}/metrics (notification-svc), http://{}/metrics (conversation-svc)",
                    metrics.gateway, metrics.notification, metrics.conversation
                );
            }
            println!();
            let scheme = if stack.tls_ca.is_some() {
                "https"
            } else {
                "http"
            };
            let web_url = format!("{scheme}://{}", stack.gateway);
            if web {
                println!("Open the web app as \"dev\" (the token stays in that tab only):");
                println!("  {web_url}/#token={dev_token}");
                println!();
            }
            println!("Token for user \"dev\" (all scopes, 24 h):");
            println!("  export TOKEN={dev_token}");
            println!();
            println!("Try:");
            println!(
                "  grpcurl {transport} -H \"authorization: Bearer $TOKEN\" -d '{{\"recipient_ids\": [\"dev\"], \"category\": \"hello\", \"content\": \"Hello from Switchboard\"}}' {} switchboard.notification.v1.NotificationService/Send",
                stack.gateway
            );
            println!();
            // Absolute, so the line works from any directory.
            let data_dir = std::path::absolute(&data_dir).unwrap_or_else(|_| data_dir.clone());
            println!(
                "More users: cargo run -q -p devstack -- token --user bob --data-dir {}",
                data_dir.display()
            );
            if web {
                println!(
                    "  or a link for a second tab: cargo run -q -p devstack -- token --user bob --link --web-url {web_url} --data-dir {}",
                    data_dir.display()
                );
            }
            println!("Ctrl-C stops everything.");
            tokio::select! {
                () = shutdown => stack.stop().await,
                result = stack.failed() => result,
            }
        }
        Command::Token {
            user,
            username,
            scopes,
            picture,
            ttl,
            data_dir,
            jwt_secret,
            link,
            web_url,
        } => {
            let secret = match jwt_secret {
                Some(secret) => secret,
                None => Secrets::load(&data_dir)?.jwt_secret,
            };
            let username = username.unwrap_or_else(|| user.clone());
            let token = token::mint(&secret, &user, &username, &picture, &scopes, ttl)?;
            if link {
                println!("{}/#token={token}", web_url.trim_end_matches('/'));
            } else {
                println!("{token}");
            }
            Ok(())
        }
    }
}
