//! SQL shared by both backends and the one implementation of the store, stamped out per
//! backend by [`impl_notification_store!`].
//!
//! sqlx's generic executors need a wall of trait bounds per function; a macro over the
//! concrete database type keeps one readable copy of the logic instead.
//! Queries are built with `QueryBuilder` + `push_bind` so placeholders fit either dialect.

use std::collections::{BTreeMap, btree_map::Entry};

use crate::domain::{NewSend, Notification, ReadEvent};

/// Columns of a notification as one user sees it. The caller binds the user id right after
/// this text, for the per-user broadcast read state.
pub const SELECT_VISIBLE: &str = "SELECT n.id, n.category, n.content, n.link, n.sender_id, \
     n.recipient_id, n.created_at, COALESCE(n.read_at, br.read_at) AS read_at, n.seq \
     FROM notifications n \
     LEFT JOIN broadcast_reads br \
     ON n.recipient_id IS NULL AND br.notification_id = n.id AND br.user_id = ";

pub const INSERT_NOTIFICATIONS: &str = "INSERT INTO notifications \
     (id, send_id, recipient_id, category, content, link, sender_id, created_at, read_at, seq) ";

/// Moves a log's head by `$1` and returns the new head. The row lock (SQLite: the write
/// lock) is held until commit, so positions are handed out in commit order.
pub const BUMP_HEAD: &str = "UPDATE feed_heads SET seq = seq + $1 WHERE name = $2 RETURNING seq";

pub const HEADS: &str = "SELECT name, seq FROM feed_heads";

pub const INSERT_READ_EVENT: &str = "INSERT INTO read_events \
     (seq, user_id, ids, all_read, category, created_at) VALUES ($1, $2, $3, $4, $5, $6)";

pub const TAIL: &str = "SELECT id, category, content, link, sender_id, recipient_id, \
     created_at, read_at, seq FROM notifications WHERE seq > $1 ORDER BY seq LIMIT $2";

pub const TAIL_READS: &str = "SELECT seq, user_id, ids, all_read, category FROM read_events \
     WHERE seq > $1 ORDER BY seq LIMIT $2";

/// Followed by `VALUES` rows of (caller, key, send id, now), then [`CLAIMED`].
pub const CLAIM_IDEMPOTENCY_KEYS: &str = "INSERT INTO idempotency_keys \
     (caller_id, idempotency_key, send_id, created_at) ";

/// Keys already taken are left alone; the ones returned were claimed by this statement.
pub const CLAIMED: &str = " ON CONFLICT DO NOTHING RETURNING caller_id, idempotency_key";

pub const IDEMPOTENT_SEND_ID: &str =
    "SELECT send_id FROM idempotency_keys WHERE caller_id = $1 AND idempotency_key = $2";

pub const NOTIFICATIONS_OF_SEND: &str = "SELECT id, category, content, link, sender_id, \
     recipient_id, created_at, read_at, seq FROM notifications WHERE send_id = $1 ORDER BY id";

/// Unread direct notifications plus broadcasts without a read row, by category.
pub const UNREAD_BY_CATEGORY: &str = "SELECT category, COUNT(*) AS unread FROM ( \
       SELECT category FROM notifications WHERE recipient_id = $1 AND read_at IS NULL \
       UNION ALL \
       SELECT n.category FROM notifications n WHERE n.recipient_id IS NULL \
         AND NOT EXISTS (SELECT 1 FROM broadcast_reads br \
                         WHERE br.notification_id = n.id AND br.user_id = $2) \
     ) AS u GROUP BY category ORDER BY category";

/// Rows go into the database in chunks: one statement per chunk keeps bind counts far below
/// both backends' limits (SQLite 32766, PostgreSQL 65535) for 1000 recipients.
pub const INSERT_CHUNK: usize = 500;

/// Where a send of a batch stands once idempotency keys are sorted out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Stored as a new send (its key, if any, is claimed for it).
    New,
    /// Its key belongs to a send committed earlier: that send's notifications.
    Committed(Vec<Notification>),
    /// Same caller and key as the send at this (earlier) index of the batch: it gets that
    /// send's notifications, which are not in the database yet when the key is looked at.
    SameAs(usize),
}

/// The idempotency work of a batch, before the database is asked anything.
#[derive(Debug, PartialEq, Eq)]
pub struct ClaimPlan {
    /// One per send: `SameAs` for a repeat of a key earlier in the batch, else `New` (until
    /// the database says the key was taken before).
    pub claims: Vec<Claim>,
    /// The first send of each distinct (caller, key), sorted by (caller, key): the order
    /// every batch claims keys in.
    pub keyed: Vec<usize>,
}

impl ClaimPlan {
    pub fn of(sends: &[NewSend]) -> ClaimPlan {
        let mut first: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        let claims = sends
            .iter()
            .enumerate()
            .map(|(i, send)| match &send.idempotency_key {
                None => Claim::New,
                Some(key) => match first.entry((send.caller_id.as_str(), key.as_str())) {
                    Entry::Occupied(earlier) => Claim::SameAs(*earlier.get()),
                    Entry::Vacant(slot) => {
                        slot.insert(i);
                        Claim::New
                    }
                },
            })
            .collect();
        ClaimPlan {
            claims,
            keyed: first.into_values().collect(),
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct NotificationRow {
    pub id: String,
    pub category: String,
    pub content: String,
    pub link: String,
    pub sender_id: String,
    pub recipient_id: Option<String>,
    pub created_at: i64,
    pub read_at: Option<i64>,
    pub seq: i64,
}

#[derive(sqlx::FromRow)]
pub struct ReadEventRow {
    pub seq: i64,
    pub user_id: String,
    pub ids: String,
    pub all_read: bool,
    pub category: Option<String>,
}

impl From<ReadEventRow> for ReadEvent {
    fn from(row: ReadEventRow) -> Self {
        ReadEvent {
            user_id: row.user_id,
            ids: row.ids.split_whitespace().map(str::to_owned).collect(),
            all: row.all_read,
            category: row.category,
            seq: row.seq,
        }
    }
}

impl From<NotificationRow> for Notification {
    fn from(row: NotificationRow) -> Self {
        Notification {
            id: row.id,
            category: row.category,
            content: row.content,
            link: row.link,
            sender_id: row.sender_id,
            recipient_id: row.recipient_id,
            created_at: row.created_at,
            read_at: row.read_at,
            seq: row.seq,
        }
    }
}

macro_rules! impl_notification_store {
    ($store:ty, $db:ty) => {
        use async_trait::async_trait;
        use sqlx::QueryBuilder;
        use switchboard::Error;
        use uuid::Uuid;

        use $crate::domain::{
            Audience, ListQuery, MarkTarget, Marked, NewSend, Notification, Page, ReadEvent,
            ReadFilter, UnreadCounts,
        };
        use std::collections::HashSet;

        use $crate::store::sql::{self, Claim, ClaimPlan, NotificationRow, ReadEventRow};
        use $crate::store::{NotificationStore, Sent};

        /// `SELECT_VISIBLE ... WHERE <visible to user>`, ready for more `AND` filters.
        fn visible_to(user_id: &str) -> QueryBuilder<$db> {
            let mut qb = QueryBuilder::<$db>::new(sql::SELECT_VISIBLE);
            qb.push_bind(user_id.to_owned());
            qb.push(" WHERE (n.recipient_id = ");
            qb.push_bind(user_id.to_owned());
            qb.push(" OR n.recipient_id IS NULL)");
            qb
        }

        fn push_in_list(qb: &mut QueryBuilder<$db>, column: &str, values: &[String]) {
            qb.push(format!(" AND {column} IN ("));
            let mut list = qb.separated(", ");
            for value in values {
                list.push_bind(value.clone());
            }
            qb.push(")");
        }

        async fn unread_counts(
            conn: &mut <$db as sqlx::Database>::Connection,
            user_id: &str,
        ) -> Result<UnreadCounts, Error> {
            let rows: Vec<(String, i64)> = sqlx::query_as(sql::UNREAD_BY_CATEGORY)
                .bind(user_id)
                .bind(user_id)
                .fetch_all(&mut *conn)
                .await?;
            Ok(UnreadCounts { by_category: rows })
        }

        #[async_trait]
        impl NotificationStore for $store {
            async fn send_batch(&self, sends: &[NewSend], now: i64) -> Result<Vec<Sent>, Error> {
                let mut tx = self.begin_write().await?;
                // Minted up front (cheap) so a send's id is at hand wherever its key is
                // claimed; ids of sends that turn out to be repeats are simply unused.
                let send_ids: Vec<String> = sends.iter().map(|_| Uuid::now_v7().to_string()).collect();
                let ClaimPlan { mut claims, keyed } = ClaimPlan::of(sends);

                // Claim every distinct key in one statement per chunk. `keyed` is in
                // (caller, key) order, so on PostgreSQL two batches that wait on each other's
                // uncommitted claims always wait in the same order and cannot deadlock.
                let mut claimed: HashSet<(String, String)> = HashSet::new();
                for chunk in keyed.chunks(sql::INSERT_CHUNK) {
                    let mut qb = QueryBuilder::<$db>::new(sql::CLAIM_IDEMPOTENCY_KEYS);
                    qb.push_values(chunk, |mut row, &i| {
                        row.push_bind(sends[i].caller_id.clone())
                            .push_bind(sends[i].idempotency_key.clone())
                            .push_bind(send_ids[i].clone())
                            .push_bind(now);
                    });
                    qb.push(sql::CLAIMED);
                    let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *tx).await?;
                    claimed.extend(rows);
                }
                // A key that was not claimed belongs to a send committed earlier (on
                // PostgreSQL the claim waited for it to commit): answer with its rows.
                for &i in &keyed {
                    let send = &sends[i];
                    let Some(key) = &send.idempotency_key else { continue };
                    if claimed.contains(&(send.caller_id.clone(), key.clone())) {
                        continue;
                    }
                    let original: String = sqlx::query_scalar(sql::IDEMPOTENT_SEND_ID)
                        .bind(&send.caller_id)
                        .bind(key)
                        .fetch_one(&mut *tx)
                        .await?;
                    let rows: Vec<NotificationRow> = sqlx::query_as(sql::NOTIFICATIONS_OF_SEND)
                        .bind(&original)
                        .fetch_all(&mut *tx)
                        .await?;
                    claims[i] = Claim::Committed(rows.into_iter().map(Into::into).collect());
                }

                // The rows of every new send, in batch order; `owner` is each row's send.
                let mut created: Vec<Notification> = Vec::new();
                let mut owner: Vec<usize> = Vec::new();
                let mut spans = vec![0..0; sends.len()];
                for (i, send) in sends.iter().enumerate() {
                    if !matches!(claims[i], Claim::New) {
                        continue;
                    }
                    let recipients: Vec<Option<String>> = match &send.audience {
                        Audience::Broadcast => vec![None],
                        Audience::Recipients(ids) => ids.iter().cloned().map(Some).collect(),
                    };
                    let start = created.len();
                    for recipient_id in recipients {
                        created.push(Notification {
                            id: Uuid::now_v7().to_string(),
                            category: send.category.clone(),
                            content: send.content.clone(),
                            link: send.link.clone(),
                            sender_id: send.sender_id.clone(),
                            recipient_id,
                            created_at: now,
                            read_at: None,
                            seq: 0,
                        });
                        owner.push(i);
                    }
                    spans[i] = start..created.len();
                }

                if !created.is_empty() {
                    // Positions last: the head's lock is then held only for the inserts. One
                    // bump for the whole batch, positions in batch order.
                    let count = created.len() as i64;
                    let head: i64 = sqlx::query_scalar(sql::BUMP_HEAD)
                        .bind(count)
                        .bind("notifications")
                        .fetch_one(&mut *tx)
                        .await?;
                    for (notification, seq) in created.iter_mut().zip(head - count + 1..) {
                        notification.seq = seq;
                    }
                    for (chunk, owners) in created
                        .chunks(sql::INSERT_CHUNK)
                        .zip(owner.chunks(sql::INSERT_CHUNK))
                    {
                        let mut qb = QueryBuilder::<$db>::new(sql::INSERT_NOTIFICATIONS);
                        qb.push_values(chunk.iter().zip(owners), |mut row, (n, &i)| {
                            row.push_bind(n.id.clone())
                                .push_bind(send_ids[i].clone())
                                .push_bind(n.recipient_id.clone())
                                .push_bind(n.category.clone())
                                .push_bind(n.content.clone())
                                .push_bind(n.link.clone())
                                .push_bind(n.sender_id.clone())
                                .push_bind(n.created_at)
                                .push_bind(None::<i64>)
                                .push_bind(n.seq);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                    // COUNTERS: count_new(&mut *tx, &created).await?;
                    <$store>::announce(&mut tx, head).await?;
                }
                tx.commit().await?;

                let mut sent: Vec<Sent> = Vec::with_capacity(sends.len());
                for (i, claim) in claims.into_iter().enumerate() {
                    let result = match claim {
                        Claim::New => Sent {
                            notifications: created[spans[i].clone()].to_vec(),
                            created: true,
                        },
                        Claim::Committed(notifications) => Sent {
                            notifications,
                            created: false,
                        },
                        // The first send of the key is earlier in the batch, so already here.
                        Claim::SameAs(first) => Sent {
                            notifications: sent
                                .get(first)
                                .map(|s| s.notifications.clone())
                                .ok_or_else(|| {
                                    Error::Internal(anyhow::anyhow!(
                                        "send {i} repeats send {first}, which is not before it"
                                    ))
                                })?,
                            created: false,
                        },
                    };
                    sent.push(result);
                }
                Ok(sent)
            }

            async fn list(&self, user_id: &str, query: &ListQuery) -> Result<Page, Error> {
                let mut tx = self.begin_read().await?;
                let mut qb = visible_to(user_id);
                match query.state {
                    ReadFilter::All => {}
                    ReadFilter::Unread => {
                        qb.push(" AND COALESCE(n.read_at, br.read_at) IS NULL");
                    }
                    ReadFilter::Read => {
                        qb.push(" AND COALESCE(n.read_at, br.read_at) IS NOT NULL");
                    }
                }
                if let Some(category) = &query.category {
                    qb.push(" AND n.category = ");
                    qb.push_bind(category.clone());
                }
                if let Some(before) = &query.before_id {
                    qb.push(" AND n.id < ");
                    qb.push_bind(before.clone());
                }
                // One extra row tells whether another page follows.
                qb.push(" ORDER BY n.id DESC LIMIT ");
                qb.push_bind(query.page_size as i64 + 1);
                let mut rows: Vec<NotificationRow> =
                    qb.build_query_as().fetch_all(&mut *tx).await?;
                let more = rows.len() > query.page_size;
                rows.truncate(query.page_size);
                let notifications: Vec<Notification> = rows.into_iter().map(Into::into).collect();
                let next_after = if more {
                    notifications.last().map(|n| n.id.clone())
                } else {
                    None
                };
                let unread = unread_counts(&mut *tx, user_id).await?;
                tx.commit().await?;
                Ok(Page {
                    notifications,
                    next_after,
                    unread,
                })
            }

            async fn mark_read(
                &self,
                user_id: &str,
                target: &MarkTarget,
                now: i64,
            ) -> Result<Marked, Error> {
                let mut tx = self.begin_write().await?;
                let mut marked = Marked::default();
                match target {
                    MarkTarget::Ids(ids) => {
                        let mut direct = QueryBuilder::<$db>::new("UPDATE notifications SET read_at = ");
                        direct.push_bind(now);
                        direct.push(" WHERE read_at IS NULL AND recipient_id = ");
                        direct.push_bind(user_id.to_owned());
                        push_in_list(&mut direct, "id", ids);
                        direct.push(" RETURNING id");
                        let mut changed: Vec<String> =
                            direct.build_query_scalar().fetch_all(&mut *tx).await?;

                        let mut broadcast = QueryBuilder::<$db>::new(
                            "INSERT INTO broadcast_reads (user_id, notification_id, read_at) SELECT ",
                        );
                        broadcast.push_bind(user_id.to_owned());
                        broadcast.push(", id, ");
                        broadcast.push_bind(now);
                        broadcast.push(" FROM notifications WHERE recipient_id IS NULL");
                        push_in_list(&mut broadcast, "id", ids);
                        broadcast.push(" ON CONFLICT DO NOTHING RETURNING notification_id");
                        let read: Vec<String> =
                            broadcast.build_query_scalar().fetch_all(&mut *tx).await?;
                        changed.extend(read);
                        changed.sort();
                        marked.count = changed.len() as i64;
                        marked.ids = changed;
                    }
                    MarkTarget::All { category } => {
                        let mut direct = QueryBuilder::<$db>::new("UPDATE notifications SET read_at = ");
                        direct.push_bind(now);
                        direct.push(" WHERE read_at IS NULL AND recipient_id = ");
                        direct.push_bind(user_id.to_owned());
                        if let Some(category) = category {
                            direct.push(" AND category = ");
                            direct.push_bind(category.clone());
                        }
                        let direct_count = direct.build().execute(&mut *tx).await?.rows_affected();

                        let mut broadcast = QueryBuilder::<$db>::new(
                            "INSERT INTO broadcast_reads (user_id, notification_id, read_at) SELECT ",
                        );
                        broadcast.push_bind(user_id.to_owned());
                        broadcast.push(", n.id, ");
                        broadcast.push_bind(now);
                        broadcast.push(" FROM notifications n WHERE n.recipient_id IS NULL");
                        if let Some(category) = category {
                            broadcast.push(" AND n.category = ");
                            broadcast.push_bind(category.clone());
                        }
                        broadcast.push(
                            " AND NOT EXISTS (SELECT 1 FROM broadcast_reads br \
                             WHERE br.notification_id = n.id AND br.user_id = ",
                        );
                        broadcast.push_bind(user_id.to_owned());
                        broadcast.push(") ON CONFLICT DO NOTHING");
                        let broadcast_count =
                            broadcast.build().execute(&mut *tx).await?.rows_affected();
                        marked.count = (direct_count + broadcast_count) as i64;
                    }
                }
                marked.unread_left = unread_counts(&mut *tx, user_id).await?.total();
                if marked.count > 0 {
                    let head: i64 = sqlx::query_scalar(sql::BUMP_HEAD)
                        .bind(1_i64)
                        .bind("read_events")
                        .fetch_one(&mut *tx)
                        .await?;
                    let (all, category) = match target {
                        MarkTarget::Ids(_) => (false, None),
                        MarkTarget::All { category } => (true, category.clone()),
                    };
                    sqlx::query(sql::INSERT_READ_EVENT)
                        .bind(head)
                        .bind(user_id)
                        .bind(marked.ids.join(" "))
                        .bind(all)
                        .bind(category)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    <$store>::announce(&mut tx, head).await?;
                }
                tx.commit().await?;
                Ok(marked)
            }

            async fn replay(
                &self,
                user_id: &str,
                after_seq: i64,
                categories: &[String],
                limit: usize,
            ) -> Result<Vec<Notification>, Error> {
                let mut qb = visible_to(user_id);
                qb.push(" AND n.seq > ");
                qb.push_bind(after_seq);
                if !categories.is_empty() {
                    push_in_list(&mut qb, "n.category", categories);
                }
                qb.push(" ORDER BY n.seq ASC LIMIT ");
                qb.push_bind(limit as i64);
                let rows: Vec<NotificationRow> = qb.build_query_as().fetch_all(&self.pool).await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn seq_of(&self, user_id: &str, id: &str) -> Result<Option<i64>, Error> {
                let mut qb = visible_to(user_id);
                qb.push(" AND n.id = ");
                qb.push_bind(id.to_owned());
                let row: Option<NotificationRow> =
                    qb.build_query_as().fetch_optional(&self.pool).await?;
                Ok(row.map(|r| r.seq))
            }

            async fn tail(&self, after_seq: i64, limit: usize) -> Result<Vec<Notification>, Error> {
                let rows: Vec<NotificationRow> = sqlx::query_as(sql::TAIL)
                    .bind(after_seq)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn tail_reads(&self, after_seq: i64, limit: usize) -> Result<Vec<ReadEvent>, Error> {
                let rows: Vec<ReadEventRow> = sqlx::query_as(sql::TAIL_READS)
                    .bind(after_seq)
                    .bind(limit as i64)
                    .fetch_all(&self.pool)
                    .await?;
                Ok(rows.into_iter().map(Into::into).collect())
            }

            async fn heads(&self) -> Result<(i64, i64), Error> {
                let rows: Vec<(String, i64)> =
                    sqlx::query_as(sql::HEADS).fetch_all(&self.pool).await?;
                let head = |name: &str| rows.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
                Ok((head("notifications"), head("read_events")))
            }

            async fn prune(&self, before: i64) -> Result<u64, Error> {
                let mut tx = self.begin_write().await?;
                sqlx::query(
                    "DELETE FROM broadcast_reads WHERE notification_id IN \
                     (SELECT id FROM notifications WHERE created_at < $1)",
                )
                .bind(before)
                .execute(&mut *tx)
                .await?;
                let pruned = sqlx::query("DELETE FROM notifications WHERE created_at < $1")
                    .bind(before)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                for table in ["read_events", "idempotency_keys"] {
                    sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DELETE FROM {table} WHERE created_at < $1"
                    )))
                    .bind(before)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(pruned)
            }

            async fn unread(&self, user_id: &str) -> Result<UnreadCounts, Error> {
                let mut conn = self.pool.acquire().await?;
                unread_counts(&mut *conn, user_id).await
            }
        }
    };
}

pub(crate) use impl_notification_store;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::Audience;

    fn send(caller: &str, key: Option<&str>) -> NewSend {
        NewSend {
            caller_id: caller.into(),
            audience: Audience::Broadcast,
            category: "test".into(),
            content: "x".into(),
            link: String::new(),
            sender_id: caller.into(),
            idempotency_key: key.map(Into::into),
        }
    }

    #[test]
    fn repeats_inside_a_batch_point_at_the_first_send_of_their_key() {
        let plan = ClaimPlan::of(&[
            send("b", Some("k")),
            send("a", Some("k")),
            send("b", None),
            send("b", Some("k")),
            send("a", Some("j")),
            send("b", None),
            send("a", Some("k")),
        ]);
        use Claim::*;
        assert_eq!(plan.claims, [New, New, New, SameAs(0), New, New, SameAs(1)]);
        // (a, j), (a, k), (b, k): the one claim order of every batch.
        assert_eq!(plan.keyed, [4, 1, 0]);
    }
}
