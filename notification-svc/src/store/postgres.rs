//! PostgreSQL backend.

use sqlx::{PgPool, Postgres, Transaction};
use switchboard::db;

/// `NOTIFY` channel telling every replica that a log moved; the payload is only the new head
/// (a pointer), replicas read the rows themselves.
pub const FEED_CHANNEL: &str = "switchboard_feed";

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

    /// READ COMMITTED is enough: the idempotency key's primary key serialises repeated
    /// Sends, the feed head's row lock orders commits, and every other write is a single
    /// conditional statement.
    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.pool.begin().await
    }

    async fn begin_read(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        db::postgres_begin_snapshot(&self.pool).await
    }

    /// Locks the notifications a prune is about to delete. Under READ COMMITTED a MarkRead
    /// could otherwise mark one read, or read a broadcast, between the prune's counting and
    /// its delete, and the counters would take that change into account twice (or not at
    /// all). `FOR UPDATE` also conflicts with the key-share lock a new `broadcast_reads` row
    /// takes on its broadcast, so such writers wait until the rows are gone; writers of newer
    /// rows are not held up.
    async fn lock_prunable(
        tx: &mut Transaction<'static, Postgres>,
        before: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query(
            "SELECT COUNT(*) FROM (SELECT 1 FROM notifications WHERE created_at < $1 \
             FOR UPDATE) AS locked",
        )
        .bind(before)
        .execute(&mut **tx)
        .await
        .map(|_| ())
    }

    /// Takes the read-event log's head row first thing in a MarkRead batch, so batches of
    /// different replicas run one at a time. They queue on this row at their head bump
    /// anyway; taken later, after each batch has locked its users' rows in its own queue
    /// order, two batches marking one user's notifications in opposite orders deadlock.
    async fn lock_read_events(tx: &mut Transaction<'static, Postgres>) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT seq FROM feed_heads WHERE name = 'read_events' FOR UPDATE")
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }

    /// Delivered to every listening replica when (and only if) the transaction commits.
    async fn announce(
        tx: &mut Transaction<'static, Postgres>,
        head: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(FEED_CHANNEL)
            .bind(head.to_string())
            .execute(&mut **tx)
            .await
            .map(|_| ())
    }
}

super::sql::impl_notification_store!(PostgresStore, Postgres);
