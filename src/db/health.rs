//! The database's side of gRPC health: a probe of whether it answers and takes writes, and
//! the watcher that turns the service NOT_SERVING while it does not.

use std::time::Duration;

use sqlx::Connection;

use super::Database;

/// Mirrors the database's reachability into health: `service` and the server as a whole turn
/// NOT_SERVING while the database does not answer, or (SQLite) while its storage refuses
/// writes, and SERVING again when it works, so balancers route around a replica that cannot
/// work. Stops (leaving the status alone) when `stop` is cancelled, since shutdown sets its
/// own.
pub fn watch_database(
    database: Database,
    health: tonic_health::server::HealthReporter,
    service: &'static str,
    stop: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut probe = HealthProbe::new(database.clone());
        let mut last = None;
        loop {
            let up = probe.check().await;
            if stop.is_cancelled() {
                return;
            }
            if last != Some(up) {
                let status = if up {
                    tonic_health::ServingStatus::Serving
                } else {
                    tracing::warn!("database unreachable or not writable; reporting NOT_SERVING");
                    tonic_health::ServingStatus::NotServing
                };
                health.set_service_status(service, status).await;
                health.set_service_status("", status).await;
                last = Some(up);
            }
            // A write that failed for want of storage is reported at once, not at the next
            // tick.
            let write_failed = async {
                match database.write_health() {
                    Some(writes) => writes.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = stop.cancelled() => return,
                () = write_failed => {}
                () = tokio::time::sleep(DATABASE_CHECK_INTERVAL) => {}
            }
        }
    });
}

/// How often a service checks that its database answers: with the probe failing as soon as
/// the server refuses or drops connections, health turns within half a second of an outage
/// (within 1.5 s when the server stops answering without refusing, the probe's timeout).
const DATABASE_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// What the health watcher asks the database: whether it answers, and (SQLite) whether it
/// takes writes ([`Database::writable`]).
///
/// On PostgreSQL it asks on a connection of its own, outside the pool, so an outage shows at
/// once: through the pool, a `SELECT 1` on a stopped server waited out its whole timeout,
/// because the pool retries a refused connection until its acquire deadline; on its own
/// connection the query fails as the server closes it, and reconnecting is refused at once.
/// It also keeps a busy pool from looking like a dead database.
struct HealthProbe {
    database: Database,
    /// PostgreSQL only: opened on first use and after every failure.
    connection: Option<sqlx::PgConnection>,
}

/// How long the database may take to answer the health probe: a server that does not answer
/// (a network partition, no refusal) is down after this long.
const PING_TIMEOUT: Duration = Duration::from_secs(1);

impl HealthProbe {
    fn new(database: Database) -> Self {
        HealthProbe {
            database,
            connection: None,
        }
    }

    /// Whether the database answers within [`PING_TIMEOUT`] and takes writes.
    async fn check(&mut self) -> bool {
        self.answers().await && self.database.writable().await
    }

    async fn answers(&mut self) -> bool {
        let HealthProbe {
            database,
            connection,
        } = self;
        match database {
            Database::Sqlite(pools) => matches!(
                tokio::time::timeout(PING_TIMEOUT, sqlx::query("SELECT 1").execute(&pools.read))
                    .await,
                Ok(Ok(_))
            ),
            Database::Postgres(pool) => {
                let ping = async {
                    let connection = match connection {
                        Some(connection) => connection,
                        None => connection.insert(
                            sqlx::PgConnection::connect_with(&pool.connect_options()).await?,
                        ),
                    };
                    sqlx::query("SELECT 1").execute(&mut *connection).await
                };
                let answered = matches!(tokio::time::timeout(PING_TIMEOUT, ping).await, Ok(Ok(_)));
                if !answered {
                    *connection = None;
                }
                answered
            }
        }
    }
}
