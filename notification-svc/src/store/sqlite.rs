//! SQLite backend.

use sqlx::{Sqlite, SqlitePool, Transaction};
use switchboard::db::{self, SqlitePools, WriteHealth};

pub struct SqliteStore {
    /// Reads.
    pool: SqlitePool,
    /// Writes: one connection (see [`SqlitePools`]).
    writer: SqlitePool,
    /// What writes say about the storage, for health.
    writes: WriteHealth,
}

impl SqliteStore {
    pub fn new(pools: SqlitePools) -> Self {
        Self {
            pool: pools.read,
            writer: pools.write,
            writes: pools.writes,
        }
    }

    /// Passes a write's result through, noting whether the storage took it: a full disk
    /// turns health NOT_SERVING until a write succeeds again.
    fn wrote<T>(&self, result: Result<T, switchboard::Error>) -> Result<T, switchboard::Error> {
        self.writes.record(result)
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        db::sqlite_begin_write(&self.writer).await
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Nothing to lock: `BEGIN IMMEDIATE` already keeps every other writer out until the
    /// prune commits, so what it counts is what it deletes.
    async fn lock_prunable(
        _tx: &mut Transaction<'static, Sqlite>,
        _before: i64,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to lock: `BEGIN IMMEDIATE` already runs write transactions one at a time.
    async fn lock_read_events(_tx: &mut Transaction<'static, Sqlite>) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// One process owns a SQLite file: the feed is poked in-process after each commit.
    async fn announce(
        _tx: &mut Transaction<'static, Sqlite>,
        _head: i64,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

super::sql::impl_notification_store!(SqliteStore, Sqlite);
