//! PostgreSQL backend.

use sqlx::{PgPool, Postgres, Transaction};
use switchboard::db;

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// READ COMMITTED is enough: the idempotency key's primary key serialises repeated
    /// Sends, and every other write is a single conditional statement.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        db::postgres_begin_snapshot(&self.pool).await
    }
}

super::sql::impl_notification_store!(PostgresStore, Postgres);
