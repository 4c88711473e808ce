//! PostgreSQL backend.

use sqlx::{PgPool, Postgres, Transaction};

pub struct PostgresStore {
    pool: PgPool,
}

impl PostgresStore {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }

    /// READ COMMITTED: every race is settled by a unique key (the participant pair, the
    /// idempotency key, the username) or a single conditional UPDATE, not by isolation.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }
}

super::sql::impl_conversation_store!(PostgresStore, Postgres);
