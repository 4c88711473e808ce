//! SQLite's dialect hook: nothing to lock.

use sqlx::{Sqlite, Transaction};
use switchboard::db::SqliteBackend;

use super::dialect::ConversationBackend;

impl ConversationBackend for SqliteBackend {
    /// `BEGIN IMMEDIATE` already serialises every write transaction.
    async fn lock_username(
        _tx: &mut Transaction<'static, Sqlite>,
        _key: &str,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }
}

super::sql::impl_conversation_store!(SqliteBackend);
