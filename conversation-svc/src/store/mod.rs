//! Persistence of users, conversations and messages: one trait, one implementation over
//! either database, sharing the SQL (`sql.rs`, stamped out once per
//! [`Backend`](switchboard::db::Backend)) as notification-svc's store does; the one hook
//! where the databases differ is in `dialect.rs`.

mod dialect;
mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use switchboard::{
    Error,
    db::{Database, PostgresBackend, SqliteBackend},
};

use crate::domain::{
    Conversation, ConversationCursor, Message, NewMessage, OutboxBacklog, PendingNotification,
    StoredMessage, User,
};

pub static MIGRATIONS: switchboard::db::Migrations = switchboard::db::Migrations {
    service: "conversation-svc",
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

#[async_trait]
pub trait ConversationStore: Send + Sync + 'static {
    /// Records a user's current profile. A username another id held passes to this one
    /// (the identity provider's newest claim wins).
    async fn record_user(&self, user: &User, now: i64) -> Result<(), Error>;

    /// The user holding `username` (case-insensitive).
    async fn find_user_by_username(&self, username: &str) -> Result<Option<User>, Error>;

    /// Creates the conversation of two users, or finds the existing one. Returns it as
    /// `caller_id` sees it, and whether it was created.
    async fn create_conversation(
        &self,
        caller_id: &str,
        other_id: &str,
        now: i64,
    ) -> Result<(Conversation, bool), Error>;

    /// One conversation as `user_id` sees it; `None` unless they take part.
    async fn conversation(&self, user_id: &str, id: &str) -> Result<Option<Conversation>, Error>;

    /// A page of the user's conversations, most recent activity first, plus one extra row
    /// when more follow.
    async fn conversations(
        &self,
        user_id: &str,
        after: Option<&ConversationCursor>,
        limit: usize,
    ) -> Result<Vec<Conversation>, Error>;

    /// Stores a message, makes it the last one, bumps the other participant's unread count
    /// and queues their notification in the outbox, in one transaction. `NotFound` unless the
    /// sender takes part.
    async fn send_message(&self, message: &NewMessage, now: i64) -> Result<StoredMessage, Error>;

    /// A page of messages, newest first, plus one extra row when more follow. `None` unless
    /// the user takes part.
    async fn messages(
        &self,
        user_id: &str,
        conversation_id: &str,
        before_id: Option<&str>,
        limit: usize,
    ) -> Result<Option<Vec<Message>>, Error>;

    /// Sets the user's unread count to zero; false unless they take part.
    async fn mark_read(&self, user_id: &str, conversation_id: &str) -> Result<bool, Error>;

    /// Outbox entries due at `now`, oldest first.
    async fn due_notifications(
        &self,
        now: i64,
        limit: usize,
    ) -> Result<Vec<PendingNotification>, Error>;

    /// How many outbox entries wait, and since when the oldest does.
    async fn outbox_backlog(&self) -> Result<OutboxBacklog, Error>;

    /// Removes a delivered outbox entry.
    async fn notification_delivered(&self, message_id: &str) -> Result<(), Error>;

    /// Counts a failed attempt and schedules the next one.
    async fn notification_failed(&self, message_id: &str, retry_at: i64) -> Result<(), Error>;
}

/// The store over one database backend: the shared SQL of `sql.rs` with that database's
/// dialect hook, implemented once per backend type.
pub struct SqlStore<B> {
    backend: B,
}

/// The store for a connected database.
pub fn for_database(db: &Database) -> Arc<dyn ConversationStore> {
    match db {
        Database::Sqlite(pools) => Arc::new(SqlStore {
            backend: SqliteBackend::new(pools.clone()),
        }),
        Database::Postgres(pool) => Arc::new(SqlStore {
            backend: PostgresBackend::new(pool.clone()),
        }),
    }
}
