//! SQLite backend.

use sqlx::{Sqlite, SqlitePool, Transaction};

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    /// Write transactions that read first must take the write lock up front: a deferred
    /// transaction upgrading from read to write fails with SQLITE_BUSY at once, whatever the
    /// busy timeout.
    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin_with("BEGIN IMMEDIATE").await
    }

    /// Reads in one transaction see one snapshot (a page and its unread totals agree).
    async fn begin_read(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.pool.begin().await
    }
}

super::sql::impl_notification_store!(SqliteStore, Sqlite);
