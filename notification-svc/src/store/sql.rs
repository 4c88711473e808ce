//! SQL shared by both backends and the one implementation of the store, stamped out per
//! backend by [`impl_notification_store!`].
//!
//! sqlx's generic executors need a wall of trait bounds per function; a macro over the
//! concrete backend type keeps one readable copy of the logic instead. The macro reaches the
//! backend only through [`switchboard::db::Backend`] and this service's
//! `NotificationBackend` (`dialect.rs`), so each backend's part is checked by the compiler.
//! Queries are built with `QueryBuilder` + `push_bind` so placeholders fit either dialect.

use switchboard::Error;

use crate::domain::{ChangeKind, LogEntry, Notification, ReadFilter, StateEvent};

/// Columns of a notification as one user sees it. The caller binds the user id right after
/// this text, for the per-user broadcast state (`s`).
pub const SELECT_VISIBLE: &str = "SELECT n.id, n.category, n.content, n.link, n.sender_id, \
     n.recipient_id, n.created_at, COALESCE(n.read_at, s.read_at) AS read_at, \
     COALESCE(n.seen_at, s.seen_at) AS seen_at, \
     COALESCE(n.archived_at, s.archived_at) AS archived_at, \
     COALESCE(n.snoozed_until, s.snoozed_until) AS snoozed_until, n.seq, \
     n.data, n.critical FROM notifications n \
     LEFT JOIN broadcast_states s \
     ON n.recipient_id IS NULL AND s.notification_id = n.id AND s.user_id = ";

/// The same columns for a notification that woke, at the wake's position, with the state of
/// the user it woke for; the caller binds the user id right after.
pub const SELECT_WOKEN: &str = "SELECT n.id, n.category, n.content, n.link, n.sender_id, \
     n.recipient_id, n.created_at, COALESCE(n.read_at, s.read_at) AS read_at, \
     COALESCE(n.seen_at, s.seen_at) AS seen_at, \
     COALESCE(n.archived_at, s.archived_at) AS archived_at, \
     COALESCE(n.snoozed_until, s.snoozed_until) AS snoozed_until, w.seq AS seq, \
     n.data, n.critical FROM wakes w JOIN notifications n ON n.id = w.notification_id \
     LEFT JOIN broadcast_states s \
     ON n.recipient_id IS NULL AND s.notification_id = n.id AND s.user_id = w.user_id \
     WHERE w.user_id = ";

/// Columns of the user's own notifications; the caller binds the user id right after.
pub const SELECT_DIRECT: &str = "SELECT n.id, n.category, n.content, n.link, n.sender_id, \
     n.recipient_id, n.created_at, n.read_at, n.seen_at, n.archived_at, n.snoozed_until, n.seq, \
     n.data, n.critical FROM notifications n WHERE n.recipient_id = ";

pub const INSERT_NOTIFICATIONS: &str = "INSERT INTO notifications \
     (id, send_id, recipient_id, category, content, link, sender_id, created_at, read_at, seq, \
     data, critical) ";

/// Moves a log's head by `$1` and returns the new head. The row lock (SQLite: the write
/// lock) is held until commit, so positions are handed out in commit order.
pub const BUMP_HEAD: &str = "UPDATE feed_heads SET seq = seq + $1 WHERE name = $2 RETURNING seq";

pub const HEADS: &str = "SELECT name, seq FROM feed_heads";

/// Followed by `VALUES` rows of (seq, user_id, ids, all_read, category, change, read_state,
/// created_at): one state event per change (`all_read` is "all").
pub const INSERT_READ_EVENTS: &str = "INSERT INTO read_events \
     (seq, user_id, ids, all_read, category, change, read_state, created_at) ";

/// One entry for the state-event log, before it has a position.
pub struct NewStateEvent {
    pub user_id: String,
    /// The ids that changed, space-separated (empty for `all` and for preferences).
    pub ids: String,
    pub all: bool,
    pub category: Option<String>,
    pub change: &'static str,
    pub read_state: Option<&'static str>,
}

/// How `read_events.read_state` stores the read state an `all` change was narrowed to.
pub fn stored_read_state(read: ReadFilter) -> Option<&'static str> {
    match read {
        ReadFilter::All => None,
        ReadFilter::Unread => Some("unread"),
        ReadFilter::Read => Some("read"),
    }
}

/// Every entry of the notification log after `$1` (bound twice): new notifications, and
/// wakes with the state of the user each is for (`woke_for`).
pub const TAIL: &str = "SELECT * FROM ( \
       SELECT id, category, content, link, sender_id, recipient_id, created_at, read_at, \
         seen_at, archived_at, snoozed_until, seq, data, critical, CAST(NULL AS TEXT) AS woke_for \
       FROM notifications WHERE seq > $1 \
       UNION ALL \
       SELECT n.id, n.category, n.content, n.link, n.sender_id, n.recipient_id, n.created_at, \
         COALESCE(n.read_at, s.read_at), COALESCE(n.seen_at, s.seen_at), \
         COALESCE(n.archived_at, s.archived_at), COALESCE(n.snoozed_until, s.snoozed_until), \
         w.seq, n.data, n.critical, w.user_id \
       FROM wakes w JOIN notifications n ON n.id = w.notification_id \
       LEFT JOIN broadcast_states s \
         ON n.recipient_id IS NULL AND s.notification_id = n.id AND s.user_id = w.user_id \
       WHERE w.seq > $2 \
     ) AS entries ORDER BY seq";

pub const TAIL_READS: &str = "SELECT seq, user_id, ids, all_read, category, change, read_state \
     FROM read_events WHERE seq > $1 ORDER BY seq";

/// Followed by `VALUES` rows of (caller, key, send id, now), then [`CLAIMED`].
pub const CLAIM_IDEMPOTENCY_KEYS: &str = "INSERT INTO idempotency_keys \
     (caller_id, idempotency_key, send_id, created_at) ";

/// Keys already taken are left alone; the ones returned were claimed by this statement.
pub const CLAIMED: &str = " ON CONFLICT DO NOTHING RETURNING caller_id, idempotency_key";

pub const IDEMPOTENT_SEND_ID: &str =
    "SELECT send_id FROM idempotency_keys WHERE caller_id = $1 AND idempotency_key = $2";

pub const NOTIFICATIONS_OF_SEND: &str = "SELECT id, category, content, link, sender_id, \
     recipient_id, created_at, read_at, seen_at, archived_at, snoozed_until, seq, data, critical \
     FROM notifications WHERE send_id = $1 ORDER BY id";

/// A user's mutes in force at `$2`, by category.
pub const PREFERENCES: &str = "SELECT category, muted_until FROM preferences \
     WHERE user_id = $1 AND (muted_until IS NULL OR muted_until > $2) ORDER BY category";

/// The timed mutes over at `$1` (at most `$2`, earliest first), deleted, with their users.
/// The outer condition is checked again on the row being deleted, as for wakes.
pub const END_MUTES: &str = "DELETE FROM preferences \
     WHERE (user_id, category) IN (SELECT user_id, category FROM preferences \
       WHERE muted_until IS NOT NULL AND muted_until <= $1 ORDER BY muted_until LIMIT $2) \
     AND muted_until IS NOT NULL AND muted_until <= $1 \
     RETURNING user_id";

/// Mutes in force at the time bound next, followed by `AND user_id IN (...)` and
/// `AND category IN (...)`: the primary key `(user_id, category)` answers it.
pub const MUTES_AMONG: &str = "SELECT user_id, category FROM preferences \
     WHERE (muted_until IS NULL OR muted_until > ";

/// Recipients per mute lookup: a whole batch of the group committer (2,000 rows at most), so
/// a batch costs one statement, far below both backends' bind limits.
pub const MUTE_LOOKUP_USERS: usize = 2000;

/// Mutes that ended before `$1`.
pub const PRUNE_ENDED_MUTES: &str =
    "DELETE FROM preferences WHERE muted_until IS NOT NULL AND muted_until < $1";

/// Rows go into the database in chunks: one statement per chunk keeps bind counts far below
/// both backends' limits (SQLite 32766, PostgreSQL 65535) for 1000 recipients.
pub const INSERT_CHUNK: usize = 500;

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
    pub seen_at: Option<i64>,
    pub archived_at: Option<i64>,
    pub snoozed_until: Option<i64>,
    pub seq: i64,
    pub data: Option<String>,
    pub critical: bool,
}

/// An entry of [`TAIL`].
#[derive(sqlx::FromRow)]
pub struct LogRow {
    #[sqlx(flatten)]
    pub notification: NotificationRow,
    pub woke_for: Option<String>,
}

impl From<LogRow> for LogEntry {
    fn from(row: LogRow) -> Self {
        let notification = row.notification.into();
        match row.woke_for {
            None => LogEntry::Sent(notification),
            Some(user_id) => LogEntry::Woke {
                user_id,
                notification,
            },
        }
    }
}

#[derive(sqlx::FromRow)]
pub struct ReadEventRow {
    pub seq: i64,
    pub user_id: String,
    pub ids: String,
    pub all_read: bool,
    pub category: Option<String>,
    pub change: String,
    pub read_state: Option<String>,
}

impl TryFrom<ReadEventRow> for StateEvent {
    type Error = Error;

    /// A row only this service writes: a value it does not know is a bug, not bad input.
    fn try_from(row: ReadEventRow) -> Result<Self, Error> {
        let change = ChangeKind::parse(&row.change).ok_or_else(|| {
            anyhow::anyhow!(
                "state event {} has an unknown change {:?}",
                row.seq,
                row.change
            )
        })?;
        let read = match row.read_state.as_deref() {
            None => ReadFilter::All,
            Some("unread") => ReadFilter::Unread,
            Some("read") => ReadFilter::Read,
            Some(other) => {
                return Err(anyhow::anyhow!(
                    "state event {} has an unknown read state {other:?}",
                    row.seq
                )
                .into());
            }
        };
        Ok(StateEvent {
            user_id: row.user_id,
            change,
            ids: row.ids.split_whitespace().map(str::to_owned).collect(),
            all: row.all_read,
            category: row.category,
            read,
            seq: row.seq,
        })
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
            seen_at: row.seen_at,
            archived_at: row.archived_at,
            snoozed_until: row.snoozed_until,
            seq: row.seq,
            data: row.data,
            critical: row.critical,
        }
    }
}

macro_rules! impl_notification_store {
    ($backend:ty) => {
        // A block of its own, so the macro's names do not clash with the calling module's.
        const _: () = {
            use std::collections::{BTreeMap, HashSet};

            use async_trait::async_trait;
            use sqlx::QueryBuilder;
            use switchboard::{Error, db::Backend};
            use uuid::Uuid;

            use $crate::domain::{
                ArchiveFilter, ChangeKind, Counts, ListQuery, LogEntry, Marked, NewMark, NewSend,
                Notification, Page, ReadFilter, SeenFilter, Selection, StateEvent,
            };
            use $crate::preferences::Mute;
            use $crate::store::{
                MarkBatches, News, NotificationStore, SendBatches, SendOutcome, SqlStore, Woken,
                dialect::NotificationBackend,
                inbox_sql::{self, CounterDeltas},
                plan::{Claim, ClaimPlan, MuteLookup, Mutes, NewRows},
                sql::{self, LogRow, NotificationRow, ReadEventRow},
                wake_sql,
            };

            /// The sqlx database of this backend.
            type Db = <$backend as Backend>::Db;

            /// `SELECT_VISIBLE ... WHERE <visible to user>`, ready for more `AND` filters.
            fn visible_to(user_id: &str) -> QueryBuilder<Db> {
                let mut qb = QueryBuilder::<Db>::new(sql::SELECT_VISIBLE);
                qb.push_bind(user_id.to_owned());
                qb.push(" WHERE (n.recipient_id = ");
                qb.push_bind(user_id.to_owned());
                qb.push(" OR n.recipient_id IS NULL)");
                qb
            }

            /// The List filters of one branch: read, seen, archive and snooze state on the
            /// user's state columns (`state` names their row: `n` for direct notifications,
            /// the broadcast state `s` for broadcasts), category and page position.
            fn push_page_filters(qb: &mut QueryBuilder<Db>, query: &ListQuery, state: &str) {
                let mut filter = |condition: String| {
                    qb.push(format!(" AND {state}.{condition}"));
                };
                match query.state {
                    ReadFilter::All => {}
                    ReadFilter::Unread => filter("read_at IS NULL".into()),
                    ReadFilter::Read => filter("read_at IS NOT NULL".into()),
                }
                match query.seen {
                    SeenFilter::All => {}
                    SeenFilter::Unseen => filter("seen_at IS NULL".into()),
                    SeenFilter::Seen => filter("seen_at IS NOT NULL".into()),
                }
                match query.archive {
                    ArchiveFilter::Any => {}
                    ArchiveFilter::Inbox => filter("archived_at IS NULL".into()),
                    ArchiveFilter::Archived => filter("archived_at IS NOT NULL".into()),
                }
                if !query.include_snoozed {
                    filter("snoozed_until IS NULL".into());
                }
                if let Some(category) = &query.category {
                    qb.push(" AND n.category = ");
                    qb.push_bind(category.clone());
                }
                if let Some(before) = &query.before_id {
                    qb.push(" AND n.id < ");
                    qb.push_bind(before.clone());
                }
            }

            fn push_in_list(qb: &mut QueryBuilder<Db>, column: &str, values: &[String]) {
                qb.push(format!(" AND {column} IN ("));
                let mut list = qb.separated(", ");
                for value in values {
                    list.push_bind(value.clone());
                }
                qb.push(")");
            }

            /// The user's mutes in force at `at`, by category (bytes, whatever the
            /// database's collation), on any connection (inside a transaction too, so a
            /// change or replay reads them in its own snapshot).
            async fn mutes_in(
                conn: &mut <Db as sqlx::Database>::Connection,
                user_id: &str,
                at: i64,
            ) -> Result<Vec<Mute>, Error> {
                let rows: Vec<(String, Option<i64>)> = sqlx::query_as(sql::PREFERENCES)
                    .bind(user_id)
                    .bind(at)
                    .fetch_all(&mut *conn)
                    .await?;
                let mut mutes: Vec<Mute> = rows
                    .into_iter()
                    .map(|(category, until)| Mute { category, until })
                    .collect();
                mutes.sort_by(|a, b| a.category.cmp(&b.category));
                Ok(mutes)
            }

            /// The mutes in force at `at` of the lookup's users, among its categories: one
            /// statement for a batch of the group committer (at most
            /// [`sql::MUTE_LOOKUP_USERS`] recipients), none when no send can be muted.
            async fn mutes_among(
                conn: &mut <Db as sqlx::Database>::Connection,
                lookup: &MuteLookup,
                at: i64,
            ) -> Result<Mutes, Error> {
                let mut mutes = Mutes::new();
                if lookup.categories.is_empty() {
                    return Ok(mutes);
                }
                for users in lookup.users.chunks(sql::MUTE_LOOKUP_USERS) {
                    let mut qb = QueryBuilder::<Db>::new(sql::MUTES_AMONG);
                    qb.push_bind(at);
                    qb.push(")");
                    push_in_list(&mut qb, "user_id", users);
                    push_in_list(&mut qb, "category", &lookup.categories);
                    let rows: Vec<(String, String)> =
                        qb.build_query_as().fetch_all(&mut *conn).await?;
                    for (user_id, category) in rows {
                        mutes.entry(user_id).or_default().push(category);
                    }
                }
                Ok(mutes)
            }

            // The write transactions, apart from the trait methods below, which tell the store
            // what each result says about the storage (`wrote`: on SQLite, health follows it).
            impl SqlStore<$backend> {
                async fn mark_batch_tx(
                    &self,
                    marks: &[NewMark],
                    now: i64,
                ) -> Result<Vec<Marked>, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    // Before any row: two replicas' batches could otherwise take one user's rows in
                    // opposite orders and deadlock.
                    <$backend as NotificationBackend>::lock_read_events(&mut tx).await?;
                    // In queue order, so each user's changes apply in the order they came.
                    let mut marked = Vec::with_capacity(marks.len());
                    let mut deltas = CounterDeltas::default();
                    // Each user's mutes and counts, read once per batch in its transaction (one
                    // statement each). The lock keeps every other writer of state and mutes out
                    // until commit, so the counts after the batch are these plus its deltas.
                    let mut inbox = BTreeMap::<&str, (Vec<Mute>, Counts)>::new();
                    for mark in marks {
                        if !inbox.contains_key(mark.user_id.as_str()) {
                            let read = Self::inbox_in(&mut *tx, &mark.user_id, now).await?;
                            inbox.insert(&mark.user_id, read);
                        }
                    }
                    for mark in marks {
                        let (ids, count) = Self::change_rows(
                            &mut *tx,
                            mark,
                            now,
                            &inbox[mark.user_id.as_str()].0,
                            &mut deltas,
                        )
                        .await?;
                        marked.push(Marked {
                            ids,
                            count,
                            counts: Counts::default(),
                        });
                    }
                    Self::add_counter_deltas(&mut *tx, &deltas).await?;
                    // What each user has when answered: once per user, after the whole batch.
                    let after: BTreeMap<&str, Counts> = inbox
                        .into_iter()
                        .map(|(user_id, (_, counts))| (user_id, deltas.applied_to(user_id, counts)))
                        .collect();
                    for (mark, marked) in marks.iter().zip(&mut marked) {
                        marked.counts = after[mark.user_id.as_str()].clone();
                    }

                    // One state event per change that changed something, in queue order, for
                    // the user's other sessions (a change of nothing tells nobody).
                    let entries: Vec<sql::NewStateEvent> = marks
                        .iter()
                        .zip(&marked)
                        .filter(|(_, marked)| marked.count > 0)
                        .map(|(mark, marked)| {
                            let (all, category, read) = match &mark.selection {
                                Selection::Ids(_) => (false, None, ReadFilter::All),
                                Selection::All { category, read } => {
                                    (true, category.clone(), *read)
                                }
                            };
                            sql::NewStateEvent {
                                user_id: mark.user_id.clone(),
                                ids: marked.ids.join(" "),
                                all,
                                category,
                                change: mark.change.kind().as_str(),
                                read_state: sql::stored_read_state(read),
                            }
                        })
                        .collect();
                    Self::append_state_events(&mut tx, &entries, now).await?;
                    tx.commit().await?;
                    Ok(marked)
                }

                async fn send_batch_tx(
                    &self,
                    sends: &[NewSend],
                    now: i64,
                ) -> Result<Vec<SendOutcome>, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    // Minted up front (cheap) so a send's id is at hand wherever its key is
                    // claimed; ids of sends that turn out to be repeats are simply unused.
                    let send_ids: Vec<String> =
                        sends.iter().map(|_| Uuid::now_v7().to_string()).collect();
                    let plan = ClaimPlan::of(sends);

                    // Claim every distinct key in one statement per chunk. `keyed` is in
                    // (caller, key) order, so on PostgreSQL two batches that wait on each other's
                    // uncommitted claims always wait in the same order and cannot deadlock.
                    let mut claimed: HashSet<(String, String)> = HashSet::new();
                    for chunk in plan.keyed.chunks(sql::INSERT_CHUNK) {
                        let mut qb = QueryBuilder::<Db>::new(sql::CLAIM_IDEMPOTENCY_KEYS);
                        qb.push_values(chunk, |mut row, &i| {
                            row.push_bind(sends[i].caller_id.clone())
                                .push_bind(sends[i].idempotency_key.clone())
                                .push_bind(send_ids[i].clone())
                                .push_bind(now);
                        });
                        qb.push(sql::CLAIMED);
                        let rows: Vec<(String, String)> =
                            qb.build_query_as().fetch_all(&mut *tx).await?;
                        claimed.extend(rows);
                    }
                    // A key that was not claimed belongs to a send committed earlier (on
                    // PostgreSQL the claim waited for it to commit): answer with its rows.
                    let taken = plan.taken_before(sends, &claimed);
                    let mut claims = plan.claims;
                    for (i, caller_id, key) in taken {
                        let original: String = sqlx::query_scalar(sql::IDEMPOTENT_SEND_ID)
                            .bind(caller_id)
                            .bind(key)
                            .fetch_one(&mut *tx)
                            .await?;
                        let rows: Vec<NotificationRow> = sqlx::query_as(sql::NOTIFICATIONS_OF_SEND)
                            .bind(&original)
                            .fetch_all(&mut *tx)
                            .await?;
                        claims[i] = Claim::Committed(rows.into_iter().map(Into::into).collect());
                    }

                    // Whose mutes matter, read once for the batch, after the claims (which may
                    // have waited for other batches), in this transaction.
                    let mutes = mutes_among(&mut *tx, &MuteLookup::of(sends, &claims), now).await?;
                    let mut created = NewRows::of(sends, &claims, &mutes, now);
                    if !created.is_empty() {
                        // Positions last: the head's lock is then held only for the inserts. One
                        // bump for the whole batch, positions in batch order.
                        let head: i64 = sqlx::query_scalar(sql::BUMP_HEAD)
                            .bind(created.len() as i64)
                            .bind("notifications")
                            .fetch_one(&mut *tx)
                            .await?;
                        created.position_up_to(head);
                        for (chunk, owners) in created
                            .notifications
                            .chunks(sql::INSERT_CHUNK)
                            .zip(created.owners.chunks(sql::INSERT_CHUNK))
                        {
                            let mut qb = QueryBuilder::<Db>::new(sql::INSERT_NOTIFICATIONS);
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
                                    .push_bind(n.seq)
                                    .push_bind(n.data.clone())
                                    .push_bind(n.critical);
                            });
                            qb.build().execute(&mut *tx).await?;
                        }
                        Self::count_new(&mut *tx, &created.notifications).await?;
                        <$backend as NotificationBackend>::announce(&mut tx, head).await?;
                    }
                    tx.commit().await?;
                    created.outcomes(sends, claims)
                }

                async fn replace_preferences_tx(
                    &self,
                    user_id: &str,
                    mutes: &[Mute],
                    now: i64,
                ) -> Result<Vec<Mute>, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    // Like every writer of the state-event log, before any row (dialect.rs).
                    // It also runs two replacements of one user's set one after the other, so
                    // the last one wins whole.
                    <$backend as NotificationBackend>::lock_read_events(&mut tx).await?;
                    let before = mutes_in(&mut *tx, user_id, now).await?;
                    sqlx::query("DELETE FROM preferences WHERE user_id = $1")
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    for chunk in mutes.chunks(sql::INSERT_CHUNK) {
                        let mut qb = QueryBuilder::<Db>::new(
                            "INSERT INTO preferences (user_id, category, muted_until, updated_at) ",
                        );
                        qb.push_values(chunk, |mut row, mute| {
                            row.push_bind(user_id.to_owned())
                                .push_bind(mute.category.clone())
                                .push_bind(mute.until)
                                .push_bind(now);
                        });
                        qb.build().execute(&mut *tx).await?;
                    }
                    if before != mutes {
                        Self::log_preferences_changed(&mut tx, &[user_id.to_owned()], now).await?;
                    }
                    tx.commit().await?;
                    Ok(mutes.to_vec())
                }

                async fn end_mutes_tx(&self, now: i64, limit: usize) -> Result<usize, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    <$backend as NotificationBackend>::lock_read_events(&mut tx).await?;
                    let mut users: Vec<String> = sqlx::query_scalar(sql::END_MUTES)
                        .bind(now)
                        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
                        .fetch_all(&mut *tx)
                        .await?;
                    let ended = users.len();
                    users.sort();
                    users.dedup();
                    Self::log_preferences_changed(&mut tx, &users, now).await?;
                    tx.commit().await?;
                    Ok(ended)
                }

                /// Appends a `preferences` entry per user to the state-event log: each of
                /// their streams, on every replica, re-reads preferences and counts.
                async fn log_preferences_changed(
                    tx: &mut sqlx::Transaction<'static, Db>,
                    users: &[String],
                    now: i64,
                ) -> Result<(), Error> {
                    let entries: Vec<sql::NewStateEvent> = users
                        .iter()
                        .map(|user_id| sql::NewStateEvent {
                            user_id: user_id.clone(),
                            ids: String::new(),
                            all: false,
                            category: None,
                            change: ChangeKind::Preferences.as_str(),
                            read_state: None,
                        })
                        .collect();
                    Self::append_state_events(tx, &entries, now).await
                }

                /// Gives `entries` the next positions of the state-event log, in order,
                /// stores them and announces the new head (nothing when there are none).
                /// The caller holds `lock_read_events`, so positions follow commit order.
                async fn append_state_events(
                    tx: &mut sqlx::Transaction<'static, Db>,
                    entries: &[sql::NewStateEvent],
                    now: i64,
                ) -> Result<(), Error> {
                    if entries.is_empty() {
                        return Ok(());
                    }
                    let count = entries.len() as i64;
                    let head: i64 = sqlx::query_scalar(sql::BUMP_HEAD)
                        .bind(count)
                        .bind("read_events")
                        .fetch_one(&mut **tx)
                        .await?;
                    let numbered: Vec<(i64, &sql::NewStateEvent)> =
                        (head - count + 1..).zip(entries).collect();
                    for chunk in numbered.chunks(sql::INSERT_CHUNK) {
                        let mut qb = QueryBuilder::<Db>::new(sql::INSERT_READ_EVENTS);
                        qb.push_values(chunk, |mut row, (seq, entry)| {
                            row.push_bind(*seq)
                                .push_bind(entry.user_id.clone())
                                .push_bind(entry.ids.clone())
                                .push_bind(entry.all)
                                .push_bind(entry.category.clone())
                                .push_bind(entry.change)
                                .push_bind(entry.read_state)
                                .push_bind(now);
                        });
                        qb.build().execute(&mut **tx).await?;
                    }
                    <$backend as NotificationBackend>::announce(tx, head).await?;
                    Ok(())
                }

                async fn prune_tx(&self, before: i64) -> Result<u64, Error> {
                    let mut tx = self.backend.begin_write().await?;
                    // State changes first (they take this lock first too), so none changes a
                    // row between the counting below and the deletes.
                    <$backend as NotificationBackend>::lock_read_events(&mut tx).await?;
                    <$backend as NotificationBackend>::lock_prunable(&mut tx, before).await?;
                    for statement in inbox_sql::PRUNE_COUNTERS {
                        sqlx::query(statement)
                            .bind(before)
                            .execute(&mut *tx)
                            .await?;
                    }
                    for statement in [inbox_sql::PRUNE_BROADCAST_STATES, wake_sql::PRUNE_WAKES] {
                        sqlx::query(statement)
                            .bind(before)
                            .execute(&mut *tx)
                            .await?;
                    }
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
                    // A mute that ended covers nothing any more: only its row is left to go.
                    sqlx::query(sql::PRUNE_ENDED_MUTES)
                        .bind(before)
                        .execute(&mut *tx)
                        .await?;
                    for statement in inbox_sql::DROP_ZERO_COUNTERS {
                        sqlx::query(statement).execute(&mut *tx).await?;
                    }
                    tx.commit().await?;
                    Ok(pruned)
                }
            }

            #[async_trait]
            impl MarkBatches for SqlStore<$backend> {
                async fn mark_batch(
                    &self,
                    marks: &[NewMark],
                    now: i64,
                ) -> Result<Vec<Marked>, Error> {
                    self.backend.wrote(self.mark_batch_tx(marks, now).await)
                }
            }

            #[async_trait]
            impl SendBatches for SqlStore<$backend> {
                async fn send_batch(
                    &self,
                    sends: &[NewSend],
                    now: i64,
                ) -> Result<Vec<SendOutcome>, Error> {
                    self.backend.wrote(self.send_batch_tx(sends, now).await)
                }
            }

            #[async_trait]
            impl NotificationStore for SqlStore<$backend> {
                async fn list(&self, user_id: &str, query: &ListQuery) -> Result<Page, Error> {
                    // The user's own rows and the broadcasts are two index-ordered ranges
                    // (`notifications_recipient`, `notifications_broadcast`) merged up to the
                    // page, in the shape each planner does without a sort (PAGE_EACH_BRANCH).
                    // A single `recipient_id = $1 OR recipient_id IS NULL` made SQLite sort the
                    // user's whole history and PostgreSQL walk the primary key through
                    // everyone's rows.
                    let limit = query.limit;
                    let each = <$backend as NotificationBackend>::PAGE_EACH_BRANCH;
                    let page_of = |qb: &mut QueryBuilder<Db>, name: &str| {
                        if each {
                            qb.push(" ORDER BY n.id DESC");
                            qb.push(switchboard::db::limit(limit));
                            qb.push(format!(") AS {name}"));
                        }
                    };
                    let mut tx = self.backend.begin_read().await?;
                    let (mutes, counts) =
                        Self::inbox_in(&mut *tx, user_id, switchboard::time::now_micros()).await?;
                    let mut qb = QueryBuilder::<Db>::new(if each {
                        "SELECT * FROM (SELECT * FROM ("
                    } else {
                        ""
                    });
                    qb.push(sql::SELECT_DIRECT);
                    qb.push_bind(user_id.to_owned());
                    push_page_filters(&mut qb, query, "n");
                    page_of(&mut qb, "direct");
                    qb.push(if each {
                        " UNION ALL SELECT * FROM ("
                    } else {
                        " UNION ALL "
                    });
                    qb.push(sql::SELECT_VISIBLE);
                    qb.push_bind(user_id.to_owned());
                    qb.push(" WHERE n.recipient_id IS NULL");
                    Self::push_not_muted(&mut qb, "n", &mutes);
                    push_page_filters(&mut qb, query, "s");
                    page_of(&mut qb, "broadcasts");
                    if each {
                        qb.push(") AS visible");
                    }
                    qb.push(" ORDER BY id DESC");
                    qb.push(switchboard::db::limit(limit));
                    let rows: Vec<NotificationRow> =
                        qb.build_query_as().fetch_all(&mut *tx).await?;
                    let notifications: Vec<Notification> =
                        rows.into_iter().map(Into::into).collect();
                    tx.commit().await?;
                    Ok(Page {
                        notifications,
                        counts,
                    })
                }

                async fn replay(
                    &self,
                    user_id: &str,
                    after_seq: i64,
                    categories: &[String],
                    limit: usize,
                ) -> Result<Vec<Notification>, Error> {
                    // Broadcasts the user's mutes hide now are not replayed (List hides them
                    // too); they reappear in List when the mute ends.
                    let mut tx = self.backend.begin_read().await?;
                    let muted =
                        mutes_in(&mut *tx, user_id, switchboard::time::now_micros()).await?;
                    // New notifications and the user's wakes, each notification once: at its
                    // latest entry (a later wake of it replaces the earlier entries).
                    let mut qb = QueryBuilder::<Db>::new("SELECT * FROM (");
                    qb.push(sql::SELECT_VISIBLE);
                    qb.push_bind(user_id.to_owned());
                    qb.push(" WHERE (n.recipient_id = ");
                    qb.push_bind(user_id.to_owned());
                    qb.push(" OR n.recipient_id IS NULL) AND n.seq > ");
                    qb.push_bind(after_seq);
                    if !categories.is_empty() {
                        push_in_list(&mut qb, "n.category", categories);
                    }
                    Self::push_not_muted(&mut qb, "n", &muted);
                    qb.push(
                        " AND NOT EXISTS (SELECT 1 FROM wakes w \
                         WHERE w.notification_id = n.id AND w.user_id = ",
                    );
                    qb.push_bind(user_id.to_owned());
                    qb.push(") UNION ALL ");
                    qb.push(sql::SELECT_WOKEN);
                    qb.push_bind(user_id.to_owned());
                    qb.push(" AND w.seq > ");
                    qb.push_bind(after_seq);
                    if !categories.is_empty() {
                        push_in_list(&mut qb, "n.category", categories);
                    }
                    Self::push_not_muted(&mut qb, "n", &muted);
                    qb.push(
                        " AND NOT EXISTS (SELECT 1 FROM wakes later \
                         WHERE later.notification_id = w.notification_id \
                         AND later.user_id = w.user_id AND later.seq > w.seq)) AS entries \
                         ORDER BY seq ASC",
                    );
                    qb.push(switchboard::db::limit(limit));
                    let rows: Vec<NotificationRow> =
                        qb.build_query_as().fetch_all(&mut *tx).await?;
                    tx.commit().await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn seq_of(&self, user_id: &str, id: &str) -> Result<Option<i64>, Error> {
                    let mut qb = visible_to(user_id);
                    qb.push(" AND n.id = ");
                    qb.push_bind(id.to_owned());
                    let row: Option<NotificationRow> = qb
                        .build_query_as()
                        .fetch_optional(self.backend.read_pool())
                        .await?;
                    Ok(row.map(|r| r.seq))
                }

                async fn tail(&self, after_seq: i64, limit: usize) -> Result<Vec<LogEntry>, Error> {
                    let rows: Vec<LogRow> =
                        sqlx::query_as(switchboard::db::limited(sql::TAIL, limit))
                            .bind(after_seq)
                            .bind(after_seq)
                            .fetch_all(self.backend.read_pool())
                            .await?;
                    Ok(rows.into_iter().map(Into::into).collect())
                }

                async fn tail_reads(
                    &self,
                    after_seq: i64,
                    limit: usize,
                ) -> Result<Vec<StateEvent>, Error> {
                    let rows: Vec<ReadEventRow> =
                        sqlx::query_as(switchboard::db::limited(sql::TAIL_READS, limit))
                            .bind(after_seq)
                            .fetch_all(self.backend.read_pool())
                            .await?;
                    rows.into_iter().map(TryInto::try_into).collect()
                }

                async fn heads(&self) -> Result<(i64, i64), Error> {
                    let rows: Vec<(String, i64)> = sqlx::query_as(sql::HEADS)
                        .fetch_all(self.backend.read_pool())
                        .await?;
                    let head =
                        |name: &str| rows.iter().find(|(n, _)| n == name).map_or(0, |(_, s)| *s);
                    Ok((head("notifications"), head("read_events")))
                }

                async fn prune(&self, before: i64) -> Result<u64, Error> {
                    self.backend.wrote(self.prune_tx(before).await)
                }

                async fn wake_due(&self, now: i64, limit: usize) -> Result<Woken, Error> {
                    self.backend.wrote(self.wake_due_tx(now, limit).await)
                }

                async fn next_wake(&self) -> Result<Option<i64>, Error> {
                    self.next_wake_at().await
                }

                async fn counts(&self, user_id: &str, muted: &[String]) -> Result<Counts, Error> {
                    let mut conn = self.backend.read_pool().acquire().await?;
                    Self::counts_in(&mut *conn, user_id, muted).await
                }

                async fn news(&self) -> Result<Box<dyn News>, Error> {
                    Ok(self.backend.news().await?)
                }

                async fn preferences(&self, user_id: &str, now: i64) -> Result<Vec<Mute>, Error> {
                    mutes_in(
                        &mut *self.backend.read_pool().acquire().await?,
                        user_id,
                        now,
                    )
                    .await
                }

                async fn replace_preferences(
                    &self,
                    user_id: &str,
                    mutes: &[Mute],
                    now: i64,
                ) -> Result<Vec<Mute>, Error> {
                    self.backend
                        .wrote(self.replace_preferences_tx(user_id, mutes, now).await)
                }

                async fn inbox(
                    &self,
                    user_id: &str,
                    now: i64,
                ) -> Result<(Vec<Mute>, Counts), Error> {
                    let mut conn = self.backend.read_pool().acquire().await?;
                    Self::inbox_in(&mut *conn, user_id, now).await
                }

                async fn end_mutes(&self, now: i64, limit: usize) -> Result<usize, Error> {
                    self.backend.wrote(self.end_mutes_tx(now, limit).await)
                }
            }
        };
    };
}

pub(crate) use impl_notification_store;
