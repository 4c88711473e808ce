//! The SQL of snooze wake-ups (migration 0006), shared by both backends and stamped out per
//! backend by [`impl_wakes!`], like `sql.rs`.
//!
//! Waking is one transaction per batch of due rows: the `UPDATE` that clears `snoozed_until`
//! is the claim (a row another replica woke first no longer matches), the counters move as
//! for an Unsnooze, and each woken notification still outside the archive gets a wake entry
//! at the next positions of the notification log, announced like a Send, so every replica's
//! streams deliver it once and Subscribe replays it.

/// Direct notifications due (at most `$2`, earliest first) as of `$1`, cleared and returned
/// as they are afterwards. The outer condition is checked again on the row being changed, so
/// a row cleared meanwhile is not claimed twice.
pub const WAKE_DIRECT: &str = "UPDATE notifications SET snoozed_until = NULL \
     WHERE id IN (SELECT id FROM notifications \
       WHERE snoozed_until IS NOT NULL AND snoozed_until <= $1 ORDER BY snoozed_until LIMIT $2) \
     AND snoozed_until IS NOT NULL AND snoozed_until <= $1 \
     RETURNING id, recipient_id, category, read_at, seen_at, archived_at, snoozed_until";

/// The broadcast states due, likewise, with the broadcast's category and critical flag.
pub const WAKE_BROADCASTS: &str = "UPDATE broadcast_states SET snoozed_until = NULL \
     WHERE (user_id, notification_id) IN (SELECT user_id, notification_id FROM broadcast_states \
       WHERE snoozed_until IS NOT NULL AND snoozed_until <= $1 ORDER BY snoozed_until LIMIT $2) \
     AND snoozed_until IS NOT NULL AND snoozed_until <= $1";

/// Followed by `VALUES` rows of (seq, user_id, notification_id, created_at).
pub const INSERT_WAKES: &str = "INSERT INTO wakes (seq, user_id, notification_id, created_at) ";

/// When the next snoozed notification is due or the next timed mute ends, from the three
/// partial indexes.
pub const NEXT_WAKE: &str = "SELECT MIN(due) FROM ( \
       SELECT MIN(snoozed_until) AS due FROM notifications WHERE snoozed_until IS NOT NULL \
       UNION ALL \
       SELECT MIN(snoozed_until) FROM broadcast_states WHERE snoozed_until IS NOT NULL \
       UNION ALL \
       SELECT MIN(muted_until) FROM preferences WHERE muted_until IS NOT NULL \
     ) AS next";

/// The wakes of the notifications about to be pruned.
pub const PRUNE_WAKES: &str = "DELETE FROM wakes WHERE notification_id IN \
     (SELECT id FROM notifications WHERE created_at < $1)";

/// A direct notification that woke.
#[derive(sqlx::FromRow)]
pub struct WokenDirect {
    pub recipient_id: Option<String>,
    #[sqlx(flatten)]
    pub row: super::inbox_sql::DirectStateRow,
}

/// A broadcast that woke for one user.
#[derive(sqlx::FromRow)]
pub struct WokenBroadcast {
    pub user_id: String,
    #[sqlx(flatten)]
    pub row: super::inbox_sql::BroadcastStateRow,
}

macro_rules! impl_wakes {
    ($backend:ty) => {
        // A block of its own, so the macro's names do not clash with the calling module's.
        const _: () = {
            use sqlx::QueryBuilder;
            use switchboard::{Error, db::Backend};

            use $crate::store::{
                SqlStore, Woken,
                dialect::NotificationBackend,
                inbox_sql::{self, CounterDeltas},
                sql, steps,
                wake_sql::{self, WokenBroadcast, WokenDirect},
            };

            /// The sqlx database of this backend.
            type Db = <$backend as Backend>::Db;

            impl SqlStore<$backend> {
                /// Wakes at most `limit` direct rows and `limit` broadcast states due at
                /// `now`, in one transaction.
                pub(crate) async fn wake_due_tx(
                    &self,
                    now: i64,
                    limit: usize,
                ) -> Result<Woken, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    // Like every writer of per-person state, before any row (dialect.rs).
                    <$backend as NotificationBackend>::lock_read_events(&mut tx).await?;
                    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
                    let direct: Vec<WokenDirect> = sqlx::query_as(wake_sql::WAKE_DIRECT)
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;
                    let broadcasts: Vec<WokenBroadcast> =
                        sqlx::query_as(sqlx::AssertSqlSafe(format!(
                            "{}{}, user_id",
                            wake_sql::WAKE_BROADCASTS,
                            inbox_sql::RETURNING_BROADCAST
                        )))
                        .bind(now)
                        .bind(limit)
                        .fetch_all(&mut *tx)
                        .await?;

                    let wake = steps::wake();
                    let mut deltas = CounterDeltas::default();
                    // (user, notification) of every wake the streams hear of: woken into the
                    // inbox, not into the archive.
                    let mut entries: Vec<(String, String)> = Vec::new();
                    for woken in &direct {
                        let Some(user_id) = &woken.recipient_id else {
                            continue;
                        };
                        let state = woken.row.state();
                        deltas.direct(user_id, &woken.row.category, wake.deltas(state));
                        if state.in_inbox() {
                            entries.push((user_id.clone(), woken.row.id.clone()));
                        }
                    }
                    for woken in &broadcasts {
                        let state = woken.row.state();
                        deltas.broadcast(
                            &woken.user_id,
                            &woken.row.category,
                            woken.row.critical,
                            wake.deltas(state),
                        );
                        if state.in_inbox() {
                            entries
                                .push((woken.user_id.clone(), woken.row.notification_id.clone()));
                        }
                    }
                    // Positions before the counters: a Send holds the head while it counts, so
                    // taking the head first keeps the two from waiting on each other.
                    if !entries.is_empty() {
                        let count = entries.len() as i64;
                        let head: i64 = sqlx::query_scalar(sql::BUMP_HEAD)
                            .bind(count)
                            .bind("notifications")
                            .fetch_one(&mut *tx)
                            .await?;
                        let numbered: Vec<(i64, &(String, String))> =
                            (head - count + 1..).zip(&entries).collect();
                        for chunk in numbered.chunks(sql::INSERT_CHUNK) {
                            let mut qb = QueryBuilder::<Db>::new(wake_sql::INSERT_WAKES);
                            qb.push_values(chunk, |mut row, (seq, (user_id, id))| {
                                row.push_bind(*seq)
                                    .push_bind(user_id.clone())
                                    .push_bind(id.clone())
                                    .push_bind(now);
                            });
                            qb.build().execute(&mut *tx).await?;
                        }
                        <$backend as NotificationBackend>::announce(&mut tx, head).await?;
                    }
                    Self::add_counter_deltas(&mut *tx, &deltas).await?;
                    tx.commit().await?;
                    Ok(Woken {
                        rows: direct.len() + broadcasts.len(),
                        full: direct.len() as i64 == limit || broadcasts.len() as i64 == limit,
                        entries: entries.len(),
                    })
                }

                pub(crate) async fn next_wake_at(&self) -> Result<Option<i64>, Error> {
                    Ok(sqlx::query_scalar(wake_sql::NEXT_WAKE)
                        .fetch_one(self.backend.read_pool())
                        .await?)
                }
            }
        };
    };
}

pub(crate) use impl_wakes;
