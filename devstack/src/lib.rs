//! The whole Switchboard stack in one process, for a laptop and for end-to-end tests:
//! notification-svc, conversation-svc and the gateway, each started through its own `serve`
//! on its own port, talking to each other only over gRPC. Production runs the three binaries.

pub mod certs;
pub mod postgres;
pub mod token;
pub mod webapp;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use std::sync::Arc;

use anyhow::Context;
use notification_svc::Hub;
use serde::{Deserialize, Serialize};
use switchboard::grpc::{Listeners, bind};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Secrets of a dev stack, generated once per data directory and kept there so tokens stay
/// valid across restarts and `devstack token` can sign with the same secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Secrets {
    pub internal_token: String,
    pub jwt_secret: String,
}

impl Secrets {
    pub fn file(data_dir: &Path) -> PathBuf {
        data_dir.join("dev-secrets.json")
    }

    /// Reads the data directory's secrets, failing when there are none: `devstack token`
    /// must sign with the secret the running stack has, never with a new one of its own.
    pub fn load(data_dir: &Path) -> anyhow::Result<Secrets> {
        let path = Secrets::file(data_dir);
        match std::fs::read(&path) {
            Ok(contents) => serde_json::from_slice(&contents)
                .with_context(|| format!("invalid {}", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let shown = std::path::absolute(&path).unwrap_or(path);
                anyhow::bail!(
                    "no dev secrets at {}\n\
                     `devstack up` keeps them in its data directory, and a token signed with \
                     any other secret is refused (invalid signature). Run this where \
                     `devstack up` runs, pass --data-dir <its data directory>, or pass \
                     --jwt-secret (env SWITCHBOARD_JWT_SECRET) with the gateway's secret.",
                    shown.display()
                )
            }
            Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Reads the data directory's secrets, creating them if there are none.
    pub fn load_or_create(data_dir: &Path) -> anyhow::Result<Secrets> {
        let path = Secrets::file(data_dir);
        if path.exists() {
            return Secrets::load(data_dir);
        }
        let random = || {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        };
        let secrets = Secrets {
            internal_token: random(),
            jwt_secret: random(),
        };
        std::fs::create_dir_all(data_dir)?;
        std::fs::write(&path, serde_json::to_vec_pretty(&secrets)?)
            .with_context(|| format!("cannot write {}", path.display()))?;
        Ok(secrets)
    }
}

/// Where the stack keeps its data.
#[derive(Debug, Clone)]
pub enum Storage {
    /// SQLite files in this directory.
    Sqlite(PathBuf),
    /// Databases `switchboard_notifications` and `switchboard_conversations` on this
    /// PostgreSQL server (created if missing), e.g. `postgres://postgres@127.0.0.1:5432`.
    /// A database in the URL (`.../mydb`) is only where they are created from
    /// (`postgres::derive_urls`).
    Postgres(String),
    /// Exactly these database URLs (tests make their own).
    Databases {
        notification: String,
        conversation: String,
    },
}

impl Storage {
    async fn database_urls(&self) -> anyhow::Result<(String, String)> {
        match self {
            Storage::Sqlite(dir) => Ok((
                format!("sqlite:{}", dir.join("notifications.db").display()),
                format!("sqlite:{}", dir.join("conversations.db").display()),
            )),
            Storage::Postgres(url) => {
                let urls = postgres::derive_urls(url)?;
                for name in postgres::DATABASES {
                    create_database(&urls.admin, name).await?;
                }
                Ok((urls.notification, urls.conversation))
            }
            Storage::Databases {
                notification,
                conversation,
            } => Ok((notification.clone(), conversation.clone())),
        }
    }
}

async fn create_database(admin_url: &str, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .with_context(|| format!("cannot connect to {admin_url}"))?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await?;
    }
    Ok(())
}

/// Ports and settings of one stack.
#[derive(Debug, Clone)]
pub struct StackConfig {
    pub storage: Storage,
    pub secrets: Secrets,
    pub gateway: SocketAddr,
    pub notification: SocketAddr,
    pub conversation: SocketAddr,
    pub heartbeat_interval: Duration,
    /// The `iss` and `aud` the gateway requires, when set.
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub jwks_file: Option<PathBuf>,
    /// The gateway's cap on unary calls.
    pub unary_timeout: Duration,
    /// The gateway's per-user rate (calls/s) and burst for Send and SendMessage.
    pub send_rate: f64,
    pub send_burst: u32,
    /// The gateway's own rates for tokens with these scopes (`--scope-rate`).
    pub scope_rates: Vec<gateway::ratelimit::ScopeRate>,
    /// Origins the gateway answers CORS for (`--cors-allowed-origins`).
    pub cors_allowed_origins: Vec<String>,
    /// How long the gateway waits for a new connection's first bytes (`--first-bytes-timeout`).
    pub first_bytes_timeout: Duration,
    /// TLS with these certificates (`None`: plaintext everywhere).
    pub tls: Option<StackTls>,
    /// The built web app the gateway serves at `/` (`--web-dir`).
    pub web_dir: Option<PathBuf>,
    /// Where each binary serves `/metrics` (port 0 picks a free one); `None`: no metrics.
    pub metrics: Option<MetricsAddrs>,
}

/// One address per binary: where its `/metrics` is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsAddrs {
    pub gateway: SocketAddr,
    pub notification: SocketAddr,
    pub conversation: SocketAddr,
}

impl MetricsAddrs {
    /// Free ports on 127.0.0.1 for all three.
    pub fn any_free() -> Self {
        let any = SocketAddr::from(([127, 0, 0, 1], 0));
        MetricsAddrs {
            gateway: any,
            notification: any,
            conversation: any,
        }
    }
}

/// Which parts of a stack speak TLS, with which certificates.
#[derive(Debug, Clone)]
pub struct StackTls {
    pub certs: certs::DevCerts,
    /// Also between the gateway and the services and between the services, with client
    /// certificates required (mTLS); otherwise only the gateway's listener.
    pub inside: bool,
}

impl StackConfig {
    /// A stack on `storage` with `secrets`, on the binaries' default ports and with their
    /// defaults for every other setting (taken from their flags, so they agree).
    pub fn new(storage: Storage, secrets: Secrets) -> Self {
        let notification = notification_svc::Config::new("", &secrets.internal_token);
        let conversation = conversation_svc::Config::new("", &secrets.internal_token);
        let gateway = gateway::Config::new(&secrets.internal_token);
        StackConfig {
            storage,
            secrets,
            gateway: gateway.listen,
            notification: notification.listen,
            conversation: conversation.listen,
            heartbeat_interval: notification.heartbeat_interval,
            jwt_issuer: gateway.jwt_issuer,
            jwt_audience: gateway.jwt_audience,
            jwks_file: gateway.jwks_file,
            unary_timeout: gateway.unary_timeout,
            send_rate: gateway.send_rate,
            send_burst: gateway.send_burst,
            scope_rates: gateway.scope_rates,
            cors_allowed_origins: gateway.cors_allowed_origins,
            first_bytes_timeout: gateway.first_bytes_timeout,
            tls: None,
            web_dir: None,
            metrics: None,
        }
    }
}

/// A running stack.
pub struct Stack {
    /// notification-svc's live fan-out, to see how many Subscribe streams are open.
    pub hub: Arc<Hub>,
    pub gateway: SocketAddr,
    pub notification: SocketAddr,
    pub conversation: SocketAddr,
    /// The CA clients must trust when the stack speaks TLS.
    pub tls_ca: Option<PathBuf>,
    /// Where each binary's `/metrics` is, when the stack keeps metrics.
    pub metrics: Option<MetricsAddrs>,
    stop: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
}

impl Stack {
    /// Binds the three listeners (port 0 picks free ones) and starts the three services.
    pub async fn start(config: StackConfig) -> anyhow::Result<Stack> {
        // Listeners first: a port in use fails before any database is created.
        let notification = bind(config.notification, "notification-svc").await?;
        let conversation = bind(config.conversation, "conversation-svc").await?;
        let gateway = bind(config.gateway, "gateway").await?;
        let (mut notification_metrics, mut conversation_metrics, mut gateway_metrics) =
            (None, None, None);
        if let Some(addrs) = config.metrics {
            notification_metrics =
                Some(bind(addrs.notification, "notification-svc's metrics").await?);
            conversation_metrics =
                Some(bind(addrs.conversation, "conversation-svc's metrics").await?);
            gateway_metrics = Some(bind(addrs.gateway, "gateway's metrics").await?);
        }
        let bound = |listener: &Option<tokio::net::TcpListener>| {
            listener.as_ref().and_then(|l| l.local_addr().ok())
        };
        let metrics_addrs = match (
            bound(&notification_metrics),
            bound(&conversation_metrics),
            bound(&gateway_metrics),
        ) {
            (Some(notification), Some(conversation), Some(gateway)) => Some(MetricsAddrs {
                notification,
                conversation,
                gateway,
            }),
            _ => None,
        };
        let (notification_db, conversation_db) = config.storage.database_urls().await?;
        let addrs = (
            notification.local_addr()?,
            conversation.local_addr()?,
            gateway.local_addr()?,
        );
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();
        let token = config.secrets.internal_token.clone();
        let grace = Duration::from_secs(5);
        let inside = config.tls.as_ref().filter(|tls| tls.inside);
        let scheme = if inside.is_some() { "https" } else { "http" };
        let server_tls =
            |name| inside.map_or_else(Default::default, |tls| tls.certs.server_flags(name, true));
        let upstream_tls = inside.map_or_else(Default::default, |tls| tls.certs.upstream_flags());

        let notification_config = notification_svc::Config {
            listen: addrs.0,
            heartbeat_interval: config.heartbeat_interval,
            shutdown_grace: grace,
            tls: server_tls("notification-svc"),
            ..notification_svc::Config::new(&notification_db, &token)
        };
        let internals = notification_svc::Internals::new(&notification_config);
        let hub = internals.hub.clone();
        tasks.spawn(notification_svc::serve_with_internals(
            notification_config,
            Listeners {
                api: notification,
                metrics: notification_metrics,
            },
            stop.clone().cancelled_owned(),
            internals,
        ));
        tasks.spawn(conversation_svc::serve(
            conversation_svc::Config {
                listen: addrs.1,
                notification_addr: format!("{scheme}://{}", addrs.0),
                shutdown_grace: grace,
                tls: server_tls("conversation-svc"),
                upstream_tls: upstream_tls.clone(),
                ..conversation_svc::Config::new(&conversation_db, &token)
            },
            Listeners {
                api: conversation,
                metrics: conversation_metrics,
            },
            stop.clone().cancelled_owned(),
        ));
        tasks.spawn(gateway::serve(
            gateway::Config {
                listen: addrs.2,
                notification_addr: format!("{scheme}://{}", addrs.0),
                conversation_addr: format!("{scheme}://{}", addrs.1),
                tls: config.tls.as_ref().map_or_else(Default::default, |tls| {
                    tls.certs.server_flags("gateway", false)
                }),
                upstream_tls,
                jwt_secret: Some(config.secrets.jwt_secret.clone()),
                jwks_file: config.jwks_file.clone(),
                jwt_issuer: config.jwt_issuer.clone(),
                jwt_audience: config.jwt_audience.clone(),
                unary_timeout: config.unary_timeout,
                send_rate: config.send_rate,
                send_burst: config.send_burst,
                scope_rates: config.scope_rates.clone(),
                cors_allowed_origins: config.cors_allowed_origins.clone(),
                first_bytes_timeout: config.first_bytes_timeout,
                web_dir: config.web_dir.clone(),
                health_interval: Duration::from_millis(500),
                shutdown_grace: grace,
                ..gateway::Config::new(&token)
            },
            Listeners {
                api: gateway,
                metrics: gateway_metrics,
            },
            stop.clone().cancelled_owned(),
        ));
        Ok(Stack {
            hub,
            notification: addrs.0,
            conversation: addrs.1,
            gateway: addrs.2,
            tls_ca: config.tls.as_ref().map(|tls| tls.certs.ca()),
            metrics: metrics_addrs,
            stop,
            tasks,
        })
    }

    /// Stops all three and waits for them; the first error wins.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let mut result = Ok(());
        while let Some(joined) = self.tasks.join_next().await {
            let outcome = joined.map_err(anyhow::Error::from).and_then(|r| r);
            if result.is_ok() {
                result = outcome;
            }
        }
        result
    }

    /// Resolves when one of the services ends on its own (an error at start-up, say).
    pub async fn failed(&mut self) -> anyhow::Result<()> {
        match self.tasks.join_next().await {
            Some(joined) => joined.map_err(anyhow::Error::from).and_then(|r| r),
            None => Ok(()),
        }
    }
}
