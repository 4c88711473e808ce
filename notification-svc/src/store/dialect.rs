//! Where this service's SQL differs between the databases, on top of [`Backend`].

use std::future::Future;

use sqlx::Transaction;
use switchboard::db::Backend;

use super::News;

/// The hooks the shared store (`sql.rs`) calls where SQLite and PostgreSQL need different
/// statements. SQLite runs one write transaction at a time (`BEGIN IMMEDIATE`) in one
/// process, so its locks and announcements are empty. PostgreSQL's writers on several
/// replicas run under READ COMMITTED (idempotency keys' primary key serialises repeated
/// Sends, the log heads' row locks order commits): prunes and writers of per-person state need
/// the two locks below on top, and replicas tell each other of commits by `NOTIFY`/`LISTEN`.
pub trait NotificationBackend: Backend {
    /// How a List merges the user's own rows with the broadcasts, two index-ordered ranges.
    /// PostgreSQL plans a Merge Append that stops at the page only when each branch has its
    /// own `ORDER BY ... LIMIT` (without, it sorts both ranges whole); SQLite's MERGE (UNION
    /// ALL) stops at the page on the bare compound, and per-branch pages make it sort them in
    /// a temporary B-tree.
    const PAGE_EACH_BRANCH: bool;

    /// Keeps every other writer off the notifications a prune is about to count and delete.
    fn lock_prunable(
        tx: &mut Transaction<'static, Self::Db>,
        before: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Taken first thing by every writer of per-person state (a batch of state changes, a
    /// wake, a replacement or end of mutes, a prune), so they run one at a time across
    /// replicas.
    fn lock_read_events(
        tx: &mut Transaction<'static, Self::Db>,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Tells the other processes, once `tx` commits, that a log moved to `head`.
    fn announce(
        tx: &mut Transaction<'static, Self::Db>,
        head: i64,
    ) -> impl Future<Output = Result<(), sqlx::Error>> + Send;

    /// Listens for the other processes' announcements.
    fn news(&self) -> impl Future<Output = Result<Box<dyn News>, sqlx::Error>> + Send;
}
