//! SQLite backend.

use sqlx::{Sqlite, SqlitePool, Transaction};
use switchboard::db;

pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    pub fn new(pool: SqlitePool) -> Self {
        Self { pool }
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        db::sqlite_begin_write(&self.pool).await
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
