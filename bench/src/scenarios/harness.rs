//! What every scenario shares: the run's settings and secrets, starting the servers of a
//! stack, and turning a measured load into a report row.

use std::{future::Future, path::PathBuf};

use switchboard::testing::{Backend, TestDatabase};

use crate::{
    identity::Path,
    load::{self, LoadSpec, Measured, Percentiles, Turn},
    report::Row,
    servers::{Role, Server, Usage},
};

/// Everything a run is told.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The executable re-run as `bench serve <role>`.
    pub exe: PathBuf,
    /// PostgreSQL server, e.g. `postgres://postgres@127.0.0.1:5432`.
    pub postgres_url: String,
    pub load: LoadSpec,
    /// Idle Subscribe streams held open for `fanout` and `idle-streams`.
    pub subscribers: usize,
    /// Broadcasts sent to all of them.
    pub broadcasts: usize,
    /// Direct notifications per second to random subscribers, and for how long.
    pub direct_rate: u32,
    pub direct_seconds: u64,
    /// Users and notifications per user of the large `list` history.
    pub large_users: usize,
    pub rows_per_user: usize,
    /// Scenarios to run (empty: all). The ceiling always runs: every ratio needs it.
    pub only: Vec<String>,
}

/// Every name `--only` takes.
pub const SCENARIOS: [&str; 10] = [
    "list",
    "list-unloaded",
    "send",
    "mark-read",
    "mark-seen",
    "archive",
    "conversation",
    "fanout",
    "list-large",
    "metrics",
];

impl Settings {
    pub fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }

    /// Refuses a name `--only` does not know: a typo would otherwise measure the ceiling alone.
    pub fn check_only(&self) -> anyhow::Result<()> {
        match self.only.iter().find(|s| !SCENARIOS.contains(&s.as_str())) {
            Some(unknown) => anyhow::bail!(
                "unknown scenario {unknown:?} in --only (one of {})",
                SCENARIOS.join(", ")
            ),
            None => Ok(()),
        }
    }

    /// Whether `--only` leaves some scenario out.
    pub fn leaves_scenarios_out(&self) -> bool {
        SCENARIOS.iter().any(|s| !self.wants(s))
    }

    /// The settings of what runs: the load of every unary scenario and the ceiling, the
    /// streams only when fan-out runs, the large history only when list-large does.
    pub fn describe(&self) -> String {
        let mut parts = vec![format!(
            "{} connections, {} in flight, {:?} warm-up + {:?} per scenario",
            self.load.connections, self.load.inflight, self.load.warmup, self.load.duration
        )];
        if self.wants("fanout") {
            parts.push(format!("{} subscribers", self.subscribers));
        }
        if self.wants("list-large") {
            parts.push(format!(
                "{} × {} large history",
                self.large_users, self.rows_per_user
            ));
        }
        parts.join(", ")
    }
}

/// Secrets shared by the stack of one backend.
pub struct Secrets {
    pub internal_token: String,
    pub jwt_secret: String,
}

impl Secrets {
    pub(super) fn generate() -> Self {
        Self {
            internal_token: uuid::Uuid::new_v4().simple().to_string(),
            jwt_secret: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    pub fn direct(&self) -> Path {
        Path::Direct {
            internal_token: self.internal_token.clone(),
        }
    }

    pub fn gateway(&self) -> Path {
        Path::Gateway {
            jwt_secret: self.jwt_secret.clone(),
        }
    }
}

/// The three services of one backend, started for the unary and streaming scenarios.
pub struct Stack {
    pub notification: Server,
    pub conversation: Server,
    pub gateway: Server,
    /// The notification service's database, for [`settle`].
    pub notifications_url: String,
    /// Where each server serves `/metrics`, when the stack keeps metrics.
    pub metrics: Vec<std::net::SocketAddr>,
    /// Held for their drop, which removes them.
    _databases: Vec<TestDatabase>,
}

impl Stack {
    pub(super) async fn start(
        settings: &Settings,
        backend: Backend,
        secrets: &Secrets,
    ) -> anyhow::Result<Self> {
        Self::start_with(settings, backend, secrets, false).await
    }

    /// With `metrics`, every server keeps metrics and serves them on a port of its own.
    pub(super) async fn start_with(
        settings: &Settings,
        backend: Backend,
        secrets: &Secrets,
        metrics: bool,
    ) -> anyhow::Result<Self> {
        let mut addrs = Vec::new();
        if metrics {
            for _ in 0..3 {
                addrs.push(crate::servers::free_port().await?);
            }
        }
        let metrics_flag = |i: usize| -> Vec<String> {
            addrs
                .get(i)
                .map(|addr| vec!["--metrics-listen".to_owned(), addr.to_string()])
                .unwrap_or_default()
        };
        let (notifications, notifications_url) = database(settings, backend, "notif").await?;
        let (conversations, conversations_url) = database(settings, backend, "conv").await?;
        let notification = start_notification_with(
            settings,
            &notifications_url,
            &secrets.internal_token,
            &metrics_flag(0),
        )
        .await?;
        let conversation = Server::start(
            &settings.exe,
            Role::Conversation,
            &[
                args(&[
                    ("--database-url", &conversations_url),
                    ("--internal-token", &secrets.internal_token),
                    ("--notification-addr", &notification.url()),
                ]),
                metrics_flag(1),
            ]
            .concat(),
        )
        .await?;
        let gateway = start_gateway_with(
            settings,
            &notification.url(),
            &conversation.url(),
            secrets,
            &metrics_flag(2),
        )
        .await?;
        Ok(Self {
            notification,
            conversation,
            gateway,
            notifications_url,
            metrics: addrs,
            _databases: vec![notifications, conversations],
        })
    }

    /// Stops the servers; the databases go with `self`.
    pub(super) async fn stop(self) {
        self.gateway.stop().await;
        self.conversation.stop().await;
        self.notification.stop().await;
    }
}

/// A throw-away database for one scenario (dropped with the value).
pub async fn database(
    settings: &Settings,
    backend: Backend,
    file: &str,
) -> anyhow::Result<(TestDatabase, String)> {
    let admin_url = format!("{}/postgres", settings.postgres_url.trim_end_matches('/'));
    TestDatabase::create_on(backend, &admin_url, &format!("{file}.db")).await
}

/// Brings a freshly seeded PostgreSQL database to the state a production server keeps it
/// in: autovacuum vacuums and analyzes a table after enough inserts, setting hint bits and
/// the visibility map and refreshing planner statistics. This machine's server runs with
/// autovacuum off, so without this every List would be the first reader of its rows and pay
/// for writing their hint bits (dirty pages evicted from a 128 MB buffer pool) instead of
/// for reading them. SQLite has no such maintenance and is left as written.
pub async fn settle(backend: Backend, url: &str) -> anyhow::Result<()> {
    use sqlx::Connection;
    if backend == Backend::Postgres {
        let mut connection = sqlx::PgConnection::connect(url).await?;
        sqlx::query("VACUUM (ANALYZE)")
            .execute(&mut connection)
            .await?;
        connection.close().await?;
    }
    Ok(())
}

/// The gateway in front of `notifications` and `conversations`. The per-user rate limit is
/// lifted: the benchmark measures the proxy, and a handful of users calling thousands of
/// times a second is the load, not abuse.
pub(super) async fn start_gateway(
    settings: &Settings,
    notifications: &str,
    conversations: &str,
    secrets: &Secrets,
) -> anyhow::Result<Server> {
    start_gateway_with(settings, notifications, conversations, secrets, &[]).await
}

async fn start_gateway_with(
    settings: &Settings,
    notifications: &str,
    conversations: &str,
    secrets: &Secrets,
    more: &[String],
) -> anyhow::Result<Server> {
    let flags = args(&[
        ("--notification-addr", notifications),
        ("--conversation-addr", conversations),
        ("--internal-token", &secrets.internal_token),
        ("--jwt-secret", &secrets.jwt_secret),
        ("--send-rate", "1000000000"),
        ("--send-burst", "1000000000"),
    ]);
    Server::start(
        &settings.exe,
        Role::Gateway,
        &[flags, more.to_vec()].concat(),
    )
    .await
}

/// A byte relay in front of `upstream` ([`crate::relay`]).
pub async fn start_relay(settings: &Settings, upstream: &Server) -> anyhow::Result<Server> {
    Server::start(
        &settings.exe,
        Role::Relay,
        &args(&[("--upstream", &upstream.addr.to_string())]),
    )
    .await
}

/// One call in flight on one connection: latency without queueing.
pub fn unloaded(load: LoadSpec) -> LoadSpec {
    LoadSpec {
        connections: 1,
        inflight: 1,
        ..load
    }
}

pub async fn start_notification(
    settings: &Settings,
    database_url: &str,
    internal_token: &str,
) -> anyhow::Result<Server> {
    start_notification_with(settings, database_url, internal_token, &[]).await
}

async fn start_notification_with(
    settings: &Settings,
    database_url: &str,
    internal_token: &str,
    more: &[String],
) -> anyhow::Result<Server> {
    let max_streams = (settings.subscribers + 1000).max(50_000).to_string();
    let flags = args(&[
        ("--database-url", database_url),
        ("--internal-token", internal_token),
        ("--max-streams", &max_streams),
    ]);
    Server::start(
        &settings.exe,
        Role::Notification,
        &[flags, more.to_vec()].concat(),
    )
    .await
}

fn args(pairs: &[(&str, &str)]) -> Vec<String> {
    pairs
        .iter()
        .flat_map(|(k, v)| [k.to_string(), v.to_string()])
        .collect()
}

/// What one closed-loop load measured: the client side, the servers' CPU seconds, and the
/// first server's memory at the end.
pub type Measurement = (Measured, f64, Usage);

/// Runs a closed-loop load against `servers` and turns it into a row: CPU is the sum over
/// the servers involved, memory that of the first at the end.
pub async fn measure<F, Fut, E>(spec: LoadSpec, servers: &[&Server], op: F) -> Measurement
where
    F: Fn(Turn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let before: Vec<f64> = servers.iter().map(|s| s.usage().cpu_seconds).collect();
    let measured = load::run(spec, op).await;
    let cpu = servers
        .iter()
        .zip(before)
        .map(|(s, b)| s.usage().cpu_seconds - b)
        .sum();
    let memory = servers.first().map(|s| s.usage()).unwrap_or_default();
    (measured, cpu, memory)
}

/// [`measure`] for calls that take `paths.len()` paths in turn, one [`Measurement`] per path.
/// Each path's CPU is that of its own servers over the whole shared window.
pub async fn measure_interleaved<F, Fut, E>(
    spec: LoadSpec,
    paths: &[&[&Server]],
    op: F,
) -> Vec<Measurement>
where
    F: Fn(Turn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let cpu = |servers: &[&Server]| servers.iter().map(|s| s.usage().cpu_seconds).sum::<f64>();
    let before: Vec<f64> = paths.iter().map(|servers| cpu(servers)).collect();
    let measured = load::run_interleaved(spec, paths.len(), op).await;
    measured
        .into_iter()
        .zip(paths.iter().zip(before))
        .map(|(measured, (servers, before))| {
            let memory = servers.first().map(|s| s.usage()).unwrap_or_default();
            (measured, cpu(servers) - before, memory)
        })
        .collect()
}

pub fn row(
    backend: Backend,
    scenario: &str,
    path: &str,
    (measured, cpu, memory): Measurement,
    note: impl Into<String>,
) -> Row {
    let mut note = note.into();
    if let Some(err) = &measured.first_error {
        note = format!("{note} first error: {err}").trim().to_owned();
    }
    Row {
        backend: backend.name().into(),
        scenario: scenario.into(),
        path: path.into(),
        rps: measured.rps(),
        latency: Percentiles::of(&measured.latency),
        ok: measured.ok,
        errors: measured.errors,
        server_cpu_s: cpu,
        server_rss_mib: memory.rss_kib as f64 / 1024.0,
        server_anon_mib: memory.anon_kib as f64 / 1024.0,
        compared_to: None,
        ratio: None,
        kib_per_stream: None,
        host_stalls: None,
        note,
    }
}
