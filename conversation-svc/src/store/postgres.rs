//! PostgreSQL's dialect hook: an advisory lock per username.

use sqlx::{Postgres, Transaction};
use switchboard::db::PostgresBackend;

use super::dialect::ConversationBackend;

impl ConversationBackend for PostgresBackend {
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

super::sql::impl_conversation_store!(PostgresBackend);
