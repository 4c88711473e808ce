//! Where this service's SQL differs between the databases, on top of [`Backend`].

use std::future::Future;

use sqlx::Transaction;
use switchboard::db::Backend;

/// The hook the shared store (`sql.rs`) calls where SQLite and PostgreSQL need different
/// statements. SQLite runs one write transaction at a time (`BEGIN IMMEDIATE`); on
/// PostgreSQL, under READ COMMITTED, unique keys (the participant pair, the idempotency key,
/// the username) settle every race but one: claimants of one username must take turns.
pub trait ConversationBackend: Backend {
    /// Makes claims of the username `key` take turns until `tx` ends.
    fn lock_username(
        tx: &mut Transaction<'static, Self::Db>,
        key: &str,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;
}
