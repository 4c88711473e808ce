//! Persistence of notifications: one trait, one implementation over either database.
//!
//! Both databases share one schema shape and the same SQL text (`sql.rs`, stamped out once
//! per [`Backend`](switchboard::db::Backend)); what differs is behind `dialect.rs`: a few
//! locks, and how other processes hear of a commit (PostgreSQL `NOTIFY`/`LISTEN`). What a
//! Send batch decides without the database is in `plan.rs`.
//!
//! Notifications and read events are also two commit-ordered logs (`seq`), which the feed
//! tails to drive live delivery and Subscribe resumes by. Per-person state (read, seen,
//! archived, snoozed) and the inbox counters kept beside it are in `inbox_sql.rs`; what a
//! state change does to each row, decided without the database, in `steps.rs`; snoozed
//! notifications waking, as entries of the notification log, in `wake_sql.rs`.

mod dialect;
mod inbox_sql;
mod plan;
mod postgres;
mod sql;
mod sqlite;
mod steps;
mod wake_sql;

use std::sync::Arc;

use async_trait::async_trait;
use switchboard::{
    Error,
    db::{Database, PostgresBackend, SqliteBackend},
};

use crate::{
    domain::{
        Change, Counts, ListQuery, LogEntry, Marked, NewMark, NewSend, Notification, Page,
        Selection, StateEvent,
    },
    preferences::Mute,
};

/// Migrations of this service, one set per backend, embedded in the binary.
pub static MIGRATIONS: switchboard::db::Migrations = switchboard::db::Migrations {
    service: "notification-svc",
    sqlite: &sqlx::migrate!("./migrations/sqlite"),
    postgres: &sqlx::migrate!("./migrations/postgres"),
};

/// What one Send did: the notifications it stored, or those of the earlier Send it repeats.
#[derive(Debug, Clone)]
pub struct SendOutcome {
    pub notifications: Vec<Notification>,
    /// Recipients it stored nothing for because they muted the category, in request order.
    /// A repeat reports the recipients the original stored nothing for, so a retry of the
    /// same request gets the original's answer whatever the mutes are by then.
    pub muted_recipient_ids: Vec<String>,
    /// False when an earlier Send with the same idempotency key was returned instead.
    pub created: bool,
}

/// What one wake-up transaction did ([`NotificationStore::wake_due`]).
#[derive(Debug, Clone, Default)]
pub struct Woken {
    /// Rows whose snooze ended (direct notifications and broadcast states).
    pub rows: usize,
    /// A limit was reached: more may be due already.
    pub full: bool,
    /// Wake entries appended to the notification log (one per notification woken into an
    /// inbox; one woken into the archive has none).
    pub entries: usize,
}

/// The one write the group committer needs, apart from the rest of the store so the
/// committer depends on nothing else.
#[async_trait]
pub trait SendBatches: Send + Sync + 'static {
    /// Stores many Sends in one transaction (group commit: one head bump, one announcement,
    /// one commit for all of them) and answers each, in order. A recipient who muted the
    /// category at `now` gets nothing from a Send that is not critical (the mutes are read in
    /// the same transaction, one lookup for the batch); broadcasts are stored whatever the
    /// mutes. A repeated idempotency key
    /// returns the original send's notifications with `created = false`, whether the
    /// original committed earlier or is an earlier send of the same batch. Positions follow
    /// batch order. All or nothing: on error no send of the batch is stored.
    async fn send_batch(&self, sends: &[NewSend], now: i64) -> Result<Vec<SendOutcome>, Error>;
}

/// The write the state-change committer (MarkRead, MarkSeen, ...) needs (see [`SendBatches`]).
#[async_trait]
pub trait MarkBatches: Send + Sync + 'static {
    /// Applies many state changes (MarkRead, MarkSeen, ...) in one transaction (one head bump
    /// for their events, one announcement, one commit) and answers each, in order. Each
    /// changes only what its user can see; `counts` are the user's once the whole batch is
    /// applied. All or nothing.
    async fn mark_batch(&self, marks: &[NewMark], now: i64) -> Result<Vec<Marked>, Error>;
}

#[async_trait]
pub trait NotificationStore: SendBatches + MarkBatches {
    /// At most `query.limit` of the user's notifications, newest first, with their inbox counts.
    async fn list(&self, user_id: &str, query: &ListQuery) -> Result<Page, Error>;

    /// Applies one state change to the notifications the user can see (others are ignored)
    /// and, when anything changed, appends an event for the user's other sessions: a batch of
    /// one, outside the committer (the service always goes through it; tests of the store
    /// need not).
    async fn change(
        &self,
        user_id: &str,
        change: Change,
        selection: &Selection,
        now: i64,
    ) -> Result<Marked, Error> {
        let mark = NewMark {
            user_id: user_id.to_owned(),
            change,
            selection: selection.clone(),
        };
        self.mark_batch(std::slice::from_ref(&mark), now)
            .await?
            .pop()
            .ok_or_else(|| Error::Internal(anyhow::anyhow!("the store answered no change of one")))
    }

    /// Up to `limit` notifications visible to the user after position `after_seq`, in commit
    /// order, optionally of the given categories (empty: all). Feeds Subscribe replay and the
    /// catch-up of a subscriber that fell behind. A notification that woke for the user
    /// comes once, at the position of its latest wake (its `seq`), not where it was sent.
    async fn replay(
        &self,
        user_id: &str,
        after_seq: i64,
        categories: &[String],
        limit: usize,
    ) -> Result<Vec<Notification>, Error>;

    /// The position of notification `id` if the user can see it.
    async fn seq_of(&self, user_id: &str, id: &str) -> Result<Option<i64>, Error>;

    /// Every entry of the notification log after `after_seq` (new notifications and wakes),
    /// in commit order: the live feed.
    async fn tail(&self, after_seq: i64, limit: usize) -> Result<Vec<LogEntry>, Error>;

    /// Every state event (MarkRead, MarkSeen, ...) after `after_seq`, in commit order.
    async fn tail_reads(&self, after_seq: i64, limit: usize) -> Result<Vec<StateEvent>, Error>;

    /// The newest positions of the notification and read-event logs.
    async fn heads(&self) -> Result<(i64, i64), Error>;

    /// Deletes notifications (with every person's state of them and their share of the
    /// counters), read events and idempotency keys created before `before` (microseconds),
    /// and mutes that ended before it; returns how many notifications went.
    async fn prune(&self, before: i64) -> Result<u64, Error>;

    /// Wakes the snoozed notifications due at `now` (at most `limit` direct ones and `limit`
    /// broadcast states): their snooze ends, the counters take them back, and each woken
    /// into an inbox gets a wake entry in the notification log. The `UPDATE` that clears a
    /// row is its claim, so with several replicas a row wakes once.
    async fn wake_due(&self, now: i64, limit: usize) -> Result<Woken, Error>;

    /// When the next snoozed notification is due or the next timed mute ends, if any.
    async fn next_wake(&self) -> Result<Option<i64>, Error>;

    /// The user's inbox counts, from the counters. Non-critical broadcasts of the `muted`
    /// category prefixes are left out (`build` hides `build` and `build.*`).
    async fn counts(&self, user_id: &str, muted: &[String]) -> Result<Counts, Error>;

    /// The user's mutes in force at `now` (by category) and their counts under those mutes,
    /// read together (one statement): what a stream sends as `preferences` and `counts`.
    async fn inbox(&self, user_id: &str, now: i64) -> Result<(Vec<Mute>, Counts), Error>;

    /// Starts listening for commits of other processes to the logs (see [`News`]).
    async fn news(&self) -> Result<Box<dyn News>, Error>;

    /// The user's mutes in force at `now` (those that ended are left out), by category.
    async fn preferences(&self, user_id: &str, now: i64) -> Result<Vec<Mute>, Error>;

    /// Replaces the user's whole set of mutes with `mutes` (validated, one per category),
    /// stamped `now`, and returns what is stored. A set that differs from the one in force
    /// gets a `preferences` entry in the state-event log (see [`Self::end_mutes`]).
    async fn replace_preferences(
        &self,
        user_id: &str,
        mutes: &[Mute],
        now: i64,
    ) -> Result<Vec<Mute>, Error>;

    /// Ends the timed mutes that are over at `now` (at most `limit` of them): their rows go,
    /// and each of their users gets a `preferences` entry in the state-event log, so their
    /// streams on every replica send the preferences and counts that follow. The `DELETE` is
    /// the claim, so with several replicas a mute ends once. Returns how many ended.
    async fn end_mutes(&self, now: i64, limit: usize) -> Result<usize, Error>;
}

/// Commits of other processes, as the feed waits for them: each arrival means "the logs may
/// have moved, tail them". A lost connection counts as news too, since what was announced
/// meanwhile is not redelivered.
#[async_trait]
pub trait News: Send + 'static {
    async fn arrived(&mut self);
}

/// No other process writes (SQLite: one process owns the file, and its own commits poke the
/// feed in-process), or nobody listens (the feed then only polls).
struct NoNews;

#[async_trait]
impl News for NoNews {
    async fn arrived(&mut self) {
        std::future::pending::<()>().await;
    }
}

/// The store over one database backend: the shared SQL of `sql.rs` with that database's
/// dialect hooks, implemented once per backend type.
pub struct SqlStore<B> {
    backend: B,
}

/// The store for a connected database.
pub fn for_database(db: &Database) -> Arc<dyn NotificationStore> {
    match db {
        Database::Sqlite(pools) => Arc::new(SqlStore {
            backend: SqliteBackend::new(pools.clone()),
        }),
        Database::Postgres(pool) => Arc::new(SqlStore {
            backend: PostgresBackend::new(pool.clone()),
        }),
    }
}
