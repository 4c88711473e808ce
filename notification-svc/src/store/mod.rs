//! Persistence of notifications: one trait, one implementation per backend.
//!
//! Both backends share one schema shape and the same SQL text (`sql.rs`); what differs is
//! how a write transaction starts (SQLite needs `BEGIN IMMEDIATE`) and the driver types, so
//! each backend module is a few lines around the shared implementation.

mod postgres;
mod sql;
mod sqlite;

use std::sync::Arc;

use async_trait::async_trait;
use switchboard::{Error, db::Database};

use crate::domain::{ListQuery, MarkTarget, Marked, NewSend, Notification, Page, UnreadCounts};

pub use postgres::PostgresStore;
pub use sqlite::SqliteStore;

/// Migrations of this service, one set per backend, embedded in the binary.
pub static MIGRATIONS: switchboard::db::Migrations = switchboard::db::Migrations {
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

/// The result of a Send.
#[derive(Debug, Clone)]
pub struct Sent {
    pub notifications: Vec<Notification>,
    /// False when an earlier Send with the same idempotency key was returned instead.
    pub created: bool,
}

#[async_trait]
pub trait NotificationStore: Send + Sync + 'static {
    /// Stores a Send in one transaction, or returns the original one for a repeated
    /// idempotency key.
    async fn send(&self, send: &NewSend, now: i64) -> Result<Sent, Error>;

    /// One page of the user's notifications, newest first, with unread totals.
    async fn list(&self, user_id: &str, query: &ListQuery) -> Result<Page, Error>;

    /// Marks notifications the user can see read; others are ignored.
    async fn mark_read(
        &self,
        user_id: &str,
        target: &MarkTarget,
        now: i64,
    ) -> Result<Marked, Error>;

    /// Up to `limit` notifications visible to the user with an id greater than `after_id`,
    /// oldest first, optionally of the given categories (empty: all). Feeds Subscribe replay
    /// and the catch-up of a subscriber that fell behind.
    async fn after(
        &self,
        user_id: &str,
        after_id: &str,
        categories: &[String],
        limit: usize,
    ) -> Result<Vec<Notification>, Error>;

    /// The user's unread counts by category.
    async fn unread(&self, user_id: &str) -> Result<UnreadCounts, Error>;
}

/// The store for a connected database.
pub fn for_database(db: &Database) -> Arc<dyn NotificationStore> {
    match db {
        Database::Sqlite(pool) => Arc::new(SqliteStore::new(pool.clone())),
        Database::Postgres(pool) => Arc::new(PostgresStore::new(pool.clone())),
    }
}
