//! Database connect + migrate, chosen by URL scheme at start-up.
//!
//! SQLite (`sqlite:path/to/file.db`) is the embedded default; PostgreSQL (`postgres://...`)
//! is for replicas sharing one database. Each service ships one migration set per backend and
//! hands both here; the matching one runs before the service accepts calls.

pub mod fault;
pub mod health;

use std::{future::Future, pin::Pin, str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    Connection, PgPool, SqlitePool,
    migrate::Migrator,
    pool::PoolConnectionMetadata,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

mod backend;
mod sqlite_pools;
pub use backend::{Backend, PostgresBackend, SqliteBackend};
pub use sqlite_pools::{SqlitePools, WriteHealth};

/// A connected, migrated database.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePools),
    Postgres(PgPool),
}

/// A service's migrations, one set per backend.
pub struct Migrations {
    /// The service they belong to (`notification-svc`), for messages and
    /// [`SERVICE_TABLES`].
    pub service: &'static str,
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

/// Tables only one service creates: how a database that belongs to another service is told
/// apart before migrating it. The services' environment names are shared (`DATABASE_URL`),
/// so one exported value points both at one database; sqlx then only says that migrations
/// are missing or modified (both number theirs from 1).
pub const SERVICE_TABLES: &[(&str, &[&str])] = &[
    ("notification-svc", &["notifications", "feed_heads"]),
    ("conversation-svc", &["conversations", "outbox"]),
];

/// Refuses a database holding another service's tables, saying whose it is.
fn check_owner(service: &str, tables: &[String]) -> anyhow::Result<()> {
    for (owner, owned) in SERVICE_TABLES {
        if *owner == service {
            continue;
        }
        let found: Vec<&str> = owned
            .iter()
            .copied()
            .filter(|table| tables.iter().any(|t| t == table))
            .collect();
        if !found.is_empty() {
            anyhow::bail!(
                "this database belongs to {owner} (it has its tables {}); give {service} its own \
                 database (--database-url, or DATABASE_URL set for that process only)",
                found.join(", ")
            );
        }
    }
    Ok(())
}

/// What a failed migration means, in words: a migration the binary does not know was
/// applied by another service or a newer build of this one.
fn migration_failed(service: &str, err: sqlx::migrate::MigrateError) -> anyhow::Error {
    match err {
        sqlx::migrate::MigrateError::VersionMissing(version) => anyhow::anyhow!(
            "migrations failed: the database has migration {version}, which this {service} does \
             not know: another service or a newer {service} migrated it; give {service} its own \
             database"
        ),
        other => anyhow::Error::new(other).context("migrations failed"),
    }
}

/// How long a call waits for a pooled connection before failing with UNAVAILABLE: long
/// enough to ride out a burst, short enough that a dead database fails calls fast.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// How long SQLite waits on a lock held by another connection before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// How often [`spawn_checkpointer`] copies the WAL back into the database file.
const SQLITE_CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

/// WAL frames after which a commit checkpoints by itself (SQLite's default is 1,000, about
/// 4 MB). Only a safety net: the background checkpointer normally gets there first, so no
/// commit pays for a checkpoint. Up to about 40 MB of WAL if it ever falls behind.
const SQLITE_WAL_AUTOCHECKPOINT: u32 = 10_000;

/// Rows a SQLite statement may run ahead of its reader: more than the largest page (List and
/// ListMessages answer at most 100 items plus one to tell whether more follow).
const SQLITE_ROW_BUFFER: usize = 256;

/// Bytes of the SQLite database file each connection reads through a memory map instead of
/// `read()` calls: 64 GiB, so in practice the whole file (SQLite's own build caps it at 2 GiB;
/// `SQLITE_MAX_MMAP_SIZE` in `.cargo/config.toml` lifts that, and a test checks it took).
///
/// A List over a long history reads one scattered table page per row: mapped, each is a
/// memory access instead of a system call and a copy (bench/README.md, "What each change
/// bought", change 9). Only reads use the map; its pages count in RSS as `RssFile`, not heap.
pub const SQLITE_MMAP_SIZE: u64 = 64 << 30;

/// A `LIMIT` written into the SQL text, for every query that takes one.
///
/// SQLite's planner reads a bound LIMIT at prepare time and expires the statement when it is
/// bound again, so every call was parsed and planned anew; as a literal, each distinct limit
/// is one statement prepared once and kept in sqlx's cache (bench/README.md, "What each
/// change bought", change 7). PostgreSQL does not care; one form keeps the SQL shared.
pub fn limit(n: usize) -> String {
    format!(" LIMIT {n}")
}

/// A fixed statement with its [`limit`] appended, ready for `sqlx::query_as`.
pub fn limited(statement: &str, n: usize) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(format!("{statement}{}", limit(n)))
}

/// Connects to `url` and runs the matching migrations.
pub async fn connect(url: &str, migrations: &Migrations) -> anyhow::Result<Database> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url}"))?;
        let database_file = options.get_filename().to_path_buf();
        // A data directory that does not exist yet is created, like the file itself.
        if let Some(dir) = database_file.parent()
            && !dir.as_os_str().is_empty()
        {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create directory {}", dir.display()))?;
        }
        let options = options
            .create_if_missing(true)
            // WAL lets readers run beside the one writer; NORMAL sync is durable across
            // process crashes in WAL mode, which is what the service promises.
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(SQLITE_BUSY_TIMEOUT)
            .foreign_keys(true)
            // A multi-row INSERT inside a transaction keeps a statement journal of every page
            // it changes; past 64 KiB SQLite spills it to a temporary file, which showed up
            // as file writes under every group-committed Send. Kept in memory instead.
            .pragma("temp_store", "memory")
            .pragma("wal_autocheckpoint", SQLITE_WAL_AUTOCHECKPOINT.to_string())
            // Rows travel from sqlx's worker thread through a bounded channel (50 by default);
            // a full List page (up to 101 rows) made the worker block mid-query and wait to
            // be woken, twice the thread hand-offs for one statement.
            .row_buffer_size(SQLITE_ROW_BUFFER)
            .pragma("mmap_size", SQLITE_MMAP_SIZE.to_string());
        // A writer waits for the one write connection as long as it would have waited for
        // SQLite's write lock: a long write (a prune, a full batch) is not an outage.
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .acquire_timeout(SQLITE_BUSY_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(checked_before_use)
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        let tables: Vec<String> =
            sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
                .fetch_all(&write)
                .await
                .with_context(|| format!("cannot read SQLite database {url}"))?;
        check_owner(migrations.service, &tables)?;
        migrations
            .sqlite
            .run(&write)
            .await
            .map_err(|err| migration_failed(migrations.service, err))
            .context("SQLite")?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(checked_before_use)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        let pools = SqlitePools {
            read,
            write,
            writes: WriteHealth::new(&database_file),
        };
        spawn_checkpointer(pools.clone());
        Ok(Database::Sqlite(pools))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
        first_postgres_connection(&options).await?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .test_before_acquire(false)
            .before_acquire(checked_before_use)
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL")?;
        let tables: Vec<String> = sqlx::query_scalar(
            "SELECT table_name::text FROM information_schema.tables \
             WHERE table_schema = current_schema()",
        )
        .fetch_all(&pool)
        .await
        .context("cannot list the PostgreSQL database's tables")?;
        check_owner(migrations.service, &tables)?;
        migrations
            .postgres
            .run(&pool)
            .await
            .map_err(|err| migration_failed(migrations.service, err))
            .context("PostgreSQL")?;
        Ok(Database::Postgres(pool))
    } else {
        anyhow::bail!("unsupported database URL {url:?}: use sqlite:<file> or postgres://...")
    }
}

/// Connects once, outside any pool, so a server that cannot be reached is reported with where
/// and why (the pool says only `pool timed out`): the host, port, database and user, never
/// the password, and the cause (connection refused, authentication failed, unknown
/// database). A refused connection is retried for [`ACQUIRE_TIMEOUT`], as the pool would,
/// so a service may start a moment before its database.
async fn first_postgres_connection(options: &PgConnectOptions) -> anyhow::Result<()> {
    let target = postgres_target(options);
    let deadline = tokio::time::Instant::now() + ACQUIRE_TIMEOUT;
    loop {
        let attempt = tokio::time::timeout_at(deadline, sqlx::PgConnection::connect_with(options));
        let err = match attempt.await {
            Ok(Ok(connection)) => {
                let _ = connection.close().await;
                return Ok(());
            }
            Ok(Err(err)) => err,
            Err(_) => anyhow::bail!(
                "cannot connect to PostgreSQL at {target}: no answer within {ACQUIRE_TIMEOUT:?}"
            ),
        };
        let refused = matches!(&err, sqlx::Error::Io(io) if io.kind() == std::io::ErrorKind::ConnectionRefused);
        if !refused || tokio::time::Instant::now() + CONNECT_RETRY >= deadline {
            let cause = match &err {
                sqlx::Error::Io(io) => io.to_string(),
                sqlx::Error::Database(db) => db.message().to_owned(),
                other => other.to_string(),
            };
            anyhow::bail!("cannot connect to PostgreSQL at {target}: {cause}");
        }
        tokio::time::sleep(CONNECT_RETRY).await;
    }
}

/// Pause between two start-up connection attempts to a server that refused.
const CONNECT_RETRY: Duration = Duration::from_millis(100);

/// `host:port/database as user` (or the socket), for messages: everything but the password.
fn postgres_target(options: &PgConnectOptions) -> String {
    let place = match options.get_socket() {
        Some(socket) => socket.display().to_string(),
        None => format!("{}:{}", options.get_host(), options.get_port()),
    };
    let database = options.get_database().unwrap_or(options.get_username());
    format!("{place}/{database} as {}", options.get_username())
}

/// How long a pooled connection may sit idle before it is pinged on the way out. The pools
/// do not ping on every acquire (`test_before_acquire(false)`): under load that round trip
/// (a wake-up of SQLite's worker thread, a message to PostgreSQL) was one in five or six of a
/// List's. Connections that sat out a database outage have been idle, so they are still
/// tested and replaced before a request meets them.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// The pools' check of an idle connection before handing it out: one still inside a
/// transaction is closed (the pool opens a fresh one) instead of failing every later write
/// with "begin_with at non-zero transaction depth", and one idle for [`PING_IF_IDLE_FOR`]
/// that does not answer a ping is closed too.
///
/// A transaction dropped without COMMIT, or whose COMMIT failed, is rolled back when its
/// connection returns to the pool. When that ROLLBACK fails too (SQLite rolls back by itself
/// on a full disk, so ROLLBACK finds no transaction), sqlx still counts the transaction as
/// open; on SQLite's single write connection that stopped every write until a restart.
/// Reading the depth here is exact: the pool pings a returned connection (which waits for
/// the queued ROLLBACK) before it can be handed out again.
fn checked_before_use<C: Connection>(
    connection: &mut C,
    meta: PoolConnectionMetadata,
) -> Pin<Box<dyn Future<Output = Result<bool, sqlx::Error>> + Send + '_>> {
    Box::pin(async move {
        if connection.is_in_transaction() {
            tracing::warn!(
                "a pooled connection was left inside a failed transaction; reopening it"
            );
            return Ok(false);
        }
        if meta.idle_for >= PING_IF_IDLE_FOR
            && let Err(error) = connection.ping().await
        {
            tracing::info!(%error, "an idle pooled connection did not answer; reopening it");
            return Ok(false);
        }
        Ok(true)
    })
}

/// Checkpoints the WAL every [`SQLITE_CHECKPOINT_INTERVAL`] from a task of its own, until the
/// pools close.
///
/// SQLite's automatic checkpoint runs inside the commit that crosses its threshold, while a
/// PASSIVE one on a read connection blocks no one and copies each hot page once per interval.
/// That one never quite catches up under steady writes, and the WAL restarts only after one
/// that did, so a second follows on the write connection, between two write transactions
/// (bench/README.md, "What each change bought", changes 6 and 11).
fn spawn_checkpointer(pools: SqlitePools) {
    tokio::spawn(async move {
        let mut closed = pools.write.close_event();
        let mut every = tokio::time::interval(SQLITE_CHECKPOINT_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut closed => return,
                _ = every.tick() => {}
            }
            for pool in [&pools.read, &pools.write] {
                // Shutdown closes one pool after the other.
                if pool.is_closed() {
                    return;
                }
                let result = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                    .execute(pool)
                    .await
                    .map(|_| ());
                // Not fatal in itself (the automatic checkpoint is still there as a safety
                // net), but a full disk shows here first; logged when it starts and stops.
                pools.writes.record_checkpoint(&result);
            }
        }
    });
}

impl Database {
    /// Whether writes can succeed: false after the SQLite storage failed a write or a
    /// checkpoint ([`WriteHealth`]), until the space probe can write its file beside the
    /// database and a real write succeeds (a header rewrite that changes nothing, one page in
    /// the WAL). Always true on PostgreSQL, whose storage is the server's (its disk-full
    /// errors still fail calls with UNAVAILABLE).
    pub async fn writable(&self) -> bool {
        let Database::Sqlite(pools) = self else {
            return true;
        };
        if !pools.writes.failing() {
            return true;
        }
        if !pools.writes.room_to_write().await {
            return false;
        }
        let probe = tokio::time::timeout(WRITE_PROBE_TIMEOUT, probe_write(&pools.write)).await;
        let result = match probe {
            Ok(result) => result.map_err(crate::Error::from),
            Err(_) => Err(crate::Error::Unavailable("write probe timed out".into())),
        };
        let writable = pools.writes.record(result).is_ok();
        if writable {
            pools.writes.set(false);
        }
        writable
    }

    /// The write health of a SQLite database (none on PostgreSQL).
    pub fn write_health(&self) -> Option<&WriteHealth> {
        match self {
            Database::Sqlite(pools) => Some(&pools.writes),
            Database::Postgres(_) => None,
        }
    }

    /// Connections open and, of those, idle (both SQLite pools together), for the metrics.
    pub fn pool_sizes(&self) -> (u32, u32) {
        match self {
            Database::Sqlite(pools) => (
                pools.read.size() + pools.write.size(),
                (pools.read.num_idle() + pools.write.num_idle()) as u32,
            ),
            Database::Postgres(pool) => (pool.size(), pool.num_idle() as u32),
        }
    }

    /// "sqlite" or "postgres", for logs.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Database::Sqlite(_) => "sqlite",
            Database::Postgres(_) => "postgres",
        }
    }

    /// Closes the pool, waiting for connections in use to be returned.
    pub async fn close(&self) {
        match self {
            Database::Sqlite(pools) => {
                pools.read.close().await;
                pools.write.close().await;
            }
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// How long [`Database::writable`]'s probe may wait for the write connection.
const WRITE_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// A real write that changes nothing: `user_version` set to what it is (no migration uses
/// it) rewrites the database header, so the commit appends a page to the WAL and fails
/// while the disk is full.
async fn probe_write(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut tx = backend::sqlite_begin_write(pool).await?;
    let version: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut *tx)
        .await?;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA user_version = {version}"
    )))
    .execute(&mut *tx)
    .await?;
    tx.commit().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{Backend, TestDatabase};

    static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

    fn no_migrations() -> Migrations {
        Migrations {
            service: "test-svc",
            sqlite: &NO_MIGRATIONS,
            postgres: &NO_MIGRATIONS,
        }
    }

    async fn connect_error(url: &str) -> String {
        let started = std::time::Instant::now();
        let err = connect(url, &no_migrations())
            .await
            .err()
            .unwrap_or_else(|| panic!("{url} must not connect"));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "gave up in time: {:?}",
            started.elapsed()
        );
        format!("{err:#}")
    }

    #[test]
    fn a_database_with_another_services_tables_is_refused_by_name() {
        let tables = ["_sqlx_migrations", "users", "conversations", "outbox"].map(String::from);
        let err = check_owner("notification-svc", &tables).unwrap_err();
        assert_eq!(
            err.to_string(),
            "this database belongs to conversation-svc (it has its tables conversations, \
             outbox); give notification-svc its own database (--database-url, or DATABASE_URL \
             set for that process only)"
        );
        assert!(check_owner("conversation-svc", &tables).is_ok());
        let tables = ["notifications", "feed_heads"].map(String::from);
        let err = check_owner("conversation-svc", &tables).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("this database belongs to notification-svc"),
            "{err}"
        );
        assert!(check_owner("notification-svc", &[]).is_ok());
    }

    /// Said `pool timed out`, naming neither the server nor the cause.
    #[tokio::test]
    async fn an_unreachable_postgres_is_named_with_the_cause() {
        let message = connect_error("postgres://postgres:hunter2@127.0.0.1:1/switchboard").await;
        assert!(
            message.contains("127.0.0.1:1/switchboard as postgres"),
            "{message}"
        );
        assert!(
            message.to_lowercase().contains("connection refused"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "no password: {message}");
    }

    #[tokio::test]
    async fn an_unknown_postgres_database_or_user_is_named() {
        let admin = std::env::var("TEST_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
        let options = PgConnectOptions::from_str(&admin).expect("TEST_POSTGRES_URL");
        let server = format!("{}:{}", options.get_host(), options.get_port());
        let message = connect_error(&format!(
            "postgres://postgres:hunter2@{server}/sb_no_such_database"
        ))
        .await;
        assert!(
            message.contains(&format!("{server}/sb_no_such_database as postgres")),
            "{message}"
        );
        assert!(
            message.contains("database \"sb_no_such_database\" does not exist"),
            "{message}"
        );
        assert!(!message.contains("hunter2"), "no password: {message}");
        // With trust authentication, an unknown role is what authentication refuses.
        let message = connect_error(&format!("postgres://sb_no_such_user@{server}/postgres")).await;
        assert!(
            message.contains("role \"sb_no_such_user\" does not exist"),
            "{message}"
        );
    }

    /// The memory map is what List over a long history relies on; SQLite clamps a larger
    /// request to its compile-time maximum without an error, so this fails if the build flag
    /// that lifts the maximum is ever lost.
    #[tokio::test]
    async fn sqlite_connections_map_the_whole_database() {
        let (_test_database, url) = TestDatabase::create(Backend::Sqlite, "mmap.db").await;
        let migrations = Migrations {
            service: "test-svc",
            sqlite: &NO_MIGRATIONS,
            postgres: &NO_MIGRATIONS,
        };
        let database = connect(&url, &migrations).await.expect("connect");
        let Database::Sqlite(pools) = &database else {
            panic!("a sqlite: URL opens SQLite");
        };
        // Several connections at once, so the pragma is seen on more than the first.
        let mut held = Vec::new();
        for pool in [&pools.write, &pools.read, &pools.read, &pools.read] {
            let mut connection = pool.acquire().await.expect("acquire");
            let (mapped,): (i64,) = sqlx::query_as("PRAGMA mmap_size")
                .fetch_one(&mut *connection)
                .await
                .expect("read mmap_size");
            assert_eq!(mapped as u64, SQLITE_MMAP_SIZE);
            held.push(connection);
        }
        drop(held);
        database.close().await;
    }
}
