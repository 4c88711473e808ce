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

    /// Where a write outside [`Self::begin_write`] (one statement, autocommit) runs.
    fn write_pool(&self) -> &SqlitePool {
        &self.writer
    }

    /// `BEGIN IMMEDIATE` already serialises every write transaction.
    async fn lock_username(
        _tx: &mut Transaction<'static, Sqlite>,
        _key: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

super::sql::impl_conversation_store!(SqliteStore, Sqlite);
