//! Database connect + migrate, chosen by URL scheme at start-up.
//!
//! SQLite (`sqlite:path/to/file.db`) is the embedded default; PostgreSQL (`postgres://...`)
//! is for replicas sharing one database. Each service ships one migration set per backend and
//! hands both here; the matching one runs before the service accepts calls.

use std::{str::FromStr, time::Duration};

use anyhow::Context;
use sqlx::{
    PgPool, Postgres, Sqlite, SqlitePool, Transaction,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

/// A connected, migrated database.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// A service's migrations, one set per backend.
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
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
/// A List page of a user with a long history touches one table page per row, scattered over
/// the file; with reads, every page not in the connection's small cache was a system call
/// and a 4 KiB copy. Mapped, it is a memory access into the kernel's page cache
/// (bench/README.md: List over 1 M rows from 52–75% to 89–104% of the 1,000-row rps).
/// The mapped pages are the page cache the reads went through anyway, but they show in the
/// process's RSS (as `RssFile`, once per connection that touched them), not as heap.
/// Only reads go through the map: writes still go to the WAL, and checkpoints use `write()`.
pub const SQLITE_MMAP_SIZE: u64 = 64 << 30;

/// A `LIMIT` written into the SQL text, for every query that takes one.
///
/// Bound as a parameter, a LIMIT is read by SQLite's planner (3.51 here) at prepare time,
/// which marks the statement as depending on that parameter's value; binding it again for
/// the next call, even to the same number, expires the statement, so every execution was
/// parsed and planned anew. That was a fifth of notification-svc's CPU under `List`. As a
/// literal, each distinct limit is one statement prepared once and reused from sqlx's cache.
/// PostgreSQL gains nothing from it either way; one form keeps the SQL shared.
pub fn limit(n: usize) -> String {
    format!(" LIMIT {n}")
}

/// Connects to `url` and runs the matching migrations.
pub async fn connect(url: &str, migrations: &Migrations) -> anyhow::Result<Database> {
    if url.starts_with("sqlite:") {
        let options = SqliteConnectOptions::from_str(url)
            .with_context(|| format!("invalid SQLite URL {url}"))?;
        // A data directory that does not exist yet is created, like the file itself.
        if let Some(dir) = options.get_filename().parent()
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
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open SQLite database {url}"))?;
        migrations
            .sqlite
            .run(&pool)
            .await
            .context("SQLite migrations failed")?;
        spawn_checkpointer(pool.clone());
        Ok(Database::Sqlite(pool))
    } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
        let options = PgConnectOptions::from_str(url).context("invalid PostgreSQL URL")?;
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .context("cannot connect to PostgreSQL")?;
        migrations
            .postgres
            .run(&pool)
            .await
            .context("PostgreSQL migrations failed")?;
        Ok(Database::Postgres(pool))
    } else {
        anyhow::bail!("unsupported database URL {url:?}: use sqlite:<file> or postgres://...")
    }
}

/// Checkpoints the WAL every [`SQLITE_CHECKPOINT_INTERVAL`] from a task of its own, until the
/// pool closes.
///
/// With SQLite's automatic checkpoint, the commit that crosses 1,000 WAL frames copies them
/// back before it returns: Sends rewrite the same hot pages (the tail of the table and of
/// each index, the counters, the log head), which got copied again every few dozen batches,
/// inside the group commit. A PASSIVE checkpoint here copies what is committed without
/// blocking the writer or readers, and each hot page once per interval however often it
/// changed (bench/README.md: Send +17% rps; doing the same with only a larger automatic
/// threshold instead made the commit that crossed it take tens of milliseconds).
fn spawn_checkpointer(pool: SqlitePool) {
    tokio::spawn(async move {
        let mut closed = pool.close_event();
        let mut every = tokio::time::interval(SQLITE_CHECKPOINT_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = &mut closed => return,
                _ = every.tick() => {}
            }
            if let Err(err) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&pool)
                .await
            {
                // Not fatal: the automatic checkpoint is still there as a safety net.
                tracing::warn!(error = %err, "SQLite WAL checkpoint failed");
            }
        }
    });
}

impl Database {
    /// Whether the database answers a trivial query within a second.
    pub async fn ping(&self) -> bool {
        let query = async {
            match self {
                Database::Sqlite(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
                Database::Postgres(pool) => sqlx::query("SELECT 1").execute(pool).await.map(|_| ()),
            }
        };
        matches!(
            tokio::time::timeout(Duration::from_secs(1), query).await,
            Ok(Ok(()))
        )
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
            Database::Sqlite(pool) => pool.close().await,
            Database::Postgres(pool) => pool.close().await,
        }
    }
}

/// Starts a SQLite write transaction. Write transactions that read first must take the write
/// lock up front: a deferred transaction upgrading from read to write fails with SQLITE_BUSY
/// at once, whatever the busy timeout.
pub async fn sqlite_begin_write(
    pool: &SqlitePool,
) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
    pool.begin_with("BEGIN IMMEDIATE").await
}

/// Starts a PostgreSQL read-only transaction on one snapshot, so a page and the totals read
/// beside it agree. (SQLite's deferred `BEGIN` gives the same in WAL mode.)
pub async fn postgres_begin_snapshot(
    pool: &PgPool,
) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    static NO_MIGRATIONS: Migrator = Migrator::DEFAULT;

    /// The memory map is what List over a long history relies on; SQLite clamps a larger
    /// request to its compile-time maximum without an error, so this fails if the build flag
    /// that lifts the maximum is ever lost.
    #[tokio::test]
    async fn sqlite_connections_map_the_whole_database() {
        let dir = std::env::temp_dir().join(format!(
            "switchboard-db-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default()
        ));
        let url = format!("sqlite:{}", dir.join("mmap.db").display());
        let migrations = Migrations {
            sqlite: &NO_MIGRATIONS,
            postgres: &NO_MIGRATIONS,
        };
        let database = connect(&url, &migrations).await.expect("connect");
        let Database::Sqlite(pool) = &database else {
            panic!("a sqlite: URL opens SQLite");
        };
        // Several connections at once, so the pragma is seen on more than the first.
        let mut held = Vec::new();
        for _ in 0..3 {
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
        let _ = std::fs::remove_dir_all(&dir);
    }
}
