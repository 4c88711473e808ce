//! PostgreSQL backend.

use sqlx::{PgPool, Postgres, Transaction};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// Writes say nothing to health on PostgreSQL: its storage is the server's, and health
    /// follows whether the server answers.
    fn wrote<T>(&self, result: Result<T, switchboard::Error>) -> Result<T, switchboard::Error> {
        result
    }

    /// READ COMMITTED: every race is settled by a unique key (the participant pair, the
    /// idempotency key, the username) or a single conditional UPDATE, not by isolation.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    /// Where a write outside [`Self::begin_write`] (one statement, autocommit) runs.
    fn write_pool(&self) -> &PgPool {
        &self.pool
    }

    /// Claims of one username queue behind each other for the rest of the transaction;
    /// without it, concurrent claimants keep colliding on the unique index.
    async fn lock_username(
        tx: &mut Transaction<'static, Postgres>,
        key: &str,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
            .bind(key)
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }
}

super::sql::impl_conversation_store!(PostgresStore, Postgres);
