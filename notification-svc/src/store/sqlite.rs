//! SQLite's dialect hooks: nothing to lock and nobody to tell.

use sqlx::{Sqlite, Transaction};
use switchboard::db::SqliteBackend;

use super::{News, NoNews, dialect::NotificationBackend};

impl NotificationBackend for SqliteBackend {
    const PAGE_EACH_BRANCH: bool = false;

    /// Nothing to lock: `BEGIN IMMEDIATE` already keeps every other writer out until the
    /// prune commits, so what it counts is what it deletes.
    async fn lock_prunable(
        _tx: &mut Transaction<'static, Sqlite>,
        _before: i64,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// Nothing to lock: `BEGIN IMMEDIATE` already runs write transactions one at a time.
    async fn lock_read_events(_tx: &mut Transaction<'static, Sqlite>) -> Result<(), sqlx::Error> {
        Ok(())
    }

    /// One process owns a SQLite file: the feed is poked in-process after each commit.
    async fn announce(
        _tx: &mut Transaction<'static, Sqlite>,
        _head: i64,
    ) -> Result<(), sqlx::Error> {
        Ok(())
    }

    async fn news(&self) -> Result<Box<dyn News>, sqlx::Error> {
        Ok(Box::new(NoNews))
    }
}

super::sql::impl_notification_store!(SqliteBackend);
super::inbox_sql::impl_inbox_state!(SqliteBackend);
super::wake_sql::impl_wakes!(SqliteBackend);
