//! PostgreSQL's dialect hooks: row locks for writers on several replicas, and both halves of
//! the feed's `NOTIFY`/`LISTEN` protocol.

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Postgres, Transaction, postgres::PgListener};
use switchboard::db::{Backend, PostgresBackend};

use super::{News, NoNews, dialect::NotificationBackend};

/// `NOTIFY` channel telling every replica that a log moved; the payload is only the new head
/// (a pointer), replicas read the rows themselves.
const FEED_CHANNEL: &str = "switchboard_feed";

/// Pause before a listener that lost its connection reconnects; the feed's poll covers the
/// gap.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

impl NotificationBackend for PostgresBackend {
    const PAGE_EACH_BRANCH: bool = true;

    /// Locks the notifications a prune is about to delete. State changes already wait for the
    /// prune (it takes [`lock_read_events`](NotificationBackend::lock_read_events) first);
    /// this keeps any other writer of those rows out between the prune's counting and its
    /// delete, where the counters would take a change into account twice (or not at all).
    /// `FOR UPDATE` also conflicts with the key-share lock a new `broadcast_states` row takes
    /// on its broadcast; writers of newer rows are not held up.
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

    /// Takes the read-event log's head row first thing in a state-change batch (or a prune),
    /// so they run one at a time across replicas. Batches queue on this row at their head
    /// bump anyway; taken later, after each batch has locked its users' rows in its own queue
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

    /// `LISTEN` on its own connection. A server that refuses the `LISTEN` leaves live delivery
    /// to the feed's poll, logged once.
    async fn news(&self) -> Result<Box<dyn News>, sqlx::Error> {
        let mut listener = PgListener::connect_with(self.read_pool()).await?;
        if let Err(err) = listener.listen(FEED_CHANNEL).await {
            tracing::error!(error = %err, "cannot LISTEN; live delivery falls back to polling");
            return Ok(Box::new(NoNews));
        }
        Ok(Box::new(Announcements {
            listener,
            lost: false,
        }))
    }
}

/// Every replica's announcements on [`FEED_CHANNEL`].
struct Announcements {
    listener: PgListener,
    /// The last wait ended with the connection lost: pause before reconnecting.
    lost: bool,
}

#[async_trait]
impl News for Announcements {
    /// A `NOTIFY` from any replica, or a lost connection (what was announced meanwhile is not
    /// redelivered, so the feed catches up at once; the next wait reconnects).
    async fn arrived(&mut self) {
        if self.lost {
            tokio::time::sleep(RECONNECT_PAUSE).await;
            self.lost = false;
        }
        if let Err(err) = self.listener.try_recv().await {
            tracing::warn!(error = %err, "feed listener lost its connection; reconnecting");
            self.lost = true;
        }
    }
}

super::sql::impl_notification_store!(PostgresBackend);
super::inbox_sql::impl_inbox_state!(PostgresBackend);
super::wake_sql::impl_wakes!(PostgresBackend);
