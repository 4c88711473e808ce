//! The SQL of per-person state and the inbox counters (migration 0005), shared by both
//! backends and stamped out per backend by [`impl_inbox_state!`], like `sql.rs`.
//!
//! Counts are read from counter rows kept in step by every write, in the write's own
//! transaction: direct notifications per (user, category) in `inbox_counts`; broadcasts as
//! `broadcast_counts.total` per (category, critical) minus what each user's state takes out of
//! their inbox (`broadcast_state_counts`). A state change computes every changed row's move
//! in and out of "unread in the inbox" and "unseen in the inbox" (`steps.rs`) and adds the
//! deltas once per batch, so nothing ever counts over history.

use std::collections::BTreeMap;

use crate::domain::{Counts, State};

/// A user's counter rows: direct ones per category (`kind` 0), then the broadcasts' per
/// (category, critical) (`kind` 1), a handful of primary-key rows however long the history
/// is. The caller binds the user id twice. Rows as [`COUNTS_AND_MUTES`]' (no mutes).
pub const COUNTS: &str = "SELECT 0 AS kind, category, (1 = 0) AS critical, \
       unread, unseen, CAST(NULL AS BIGINT) AS muted_until \
     FROM inbox_counts WHERE user_id = $1 \
     UNION ALL \
     SELECT 1, b.category, b.critical, b.total - COALESCE(s.not_unread, 0), \
       b.total - COALESCE(s.not_unseen, 0), CAST(NULL AS BIGINT) \
     FROM broadcast_counts b LEFT JOIN broadcast_state_counts s \
       ON s.user_id = $2 AND s.category = b.category AND s.critical = b.critical";

/// [`COUNTS`] and, in the same statement, the user's mutes in force at `$4` (the user bound
/// a third time as `$3`): what a List and a stream's counts read need, in one round trip.
/// `kind` tells the rows apart: 0 a direct counter, 1 a broadcast counter, 2 a mute (its
/// `muted_until` set or NULL for none; the counts are 0).
pub const COUNTS_AND_MUTES: &str = "SELECT 0 AS kind, category, (1 = 0) AS critical, \
       unread, unseen, CAST(NULL AS BIGINT) AS muted_until \
     FROM inbox_counts WHERE user_id = $1 \
     UNION ALL \
     SELECT 1, b.category, b.critical, b.total - COALESCE(s.not_unread, 0), \
       b.total - COALESCE(s.not_unseen, 0), CAST(NULL AS BIGINT) \
     FROM broadcast_counts b LEFT JOIN broadcast_state_counts s \
       ON s.user_id = $2 AND s.category = b.category AND s.critical = b.critical \
     UNION ALL \
     SELECT 2, category, (1 = 0), 0, 0, muted_until FROM preferences \
     WHERE user_id = $3 AND (muted_until IS NULL OR muted_until > $4)";

/// One row of [`COUNTS_AND_MUTES`] (or of [`COUNTS`]).
#[derive(sqlx::FromRow)]
pub struct CountOrMuteRow {
    pub kind: i32,
    pub category: String,
    pub critical: bool,
    pub unread: i64,
    pub unseen: i64,
    pub muted_until: Option<i64>,
}

/// New broadcasts of a Send batch (positions `$1..=$2`) into their totals. Read back from the
/// rows just inserted, so the critical flag is counted as stored.
pub const COUNT_NEW_BROADCASTS: &str = "INSERT INTO broadcast_counts (category, critical, total) \
     SELECT category, critical, COUNT(*) FROM notifications \
     WHERE seq >= $1 AND seq <= $2 AND recipient_id IS NULL GROUP BY category, critical \
     ON CONFLICT (category, critical) DO UPDATE SET total = broadcast_counts.total + excluded.total";

/// Columns a state change returns for a direct row it changed (its state after the change).
pub const RETURNING_DIRECT: &str =
    " RETURNING id, category, read_at, seen_at, archived_at, snoozed_until";

/// Columns a state change returns for a broadcast state it changed, with the broadcast's
/// category and critical flag (an INSERT or UPDATE returns only its own table's columns).
pub const RETURNING_BROADCAST: &str = " RETURNING notification_id, read_at, seen_at, \
     archived_at, snoozed_until, \
     (SELECT bn.category FROM notifications bn WHERE bn.id = broadcast_states.notification_id) \
       AS category, \
     (SELECT bn.critical FROM notifications bn WHERE bn.id = broadcast_states.notification_id) \
       AS critical";

/// Takes the counters' share of the notifications about to be pruned off them. Each statement
/// counts what the deletes that follow will remove, in the same transaction, with no other
/// writer able to change those rows in between (see `lock_prunable` of each backend).
pub const PRUNE_COUNTERS: [&str; 3] = [
    "UPDATE inbox_counts SET unread = unread - d.du, unseen = unseen - d.ds FROM ( \
       SELECT recipient_id AS user_id, category, \
         SUM(CASE WHEN read_at IS NULL AND archived_at IS NULL AND snoozed_until IS NULL \
           THEN 1 ELSE 0 END) AS du, \
         SUM(CASE WHEN seen_at IS NULL AND archived_at IS NULL AND snoozed_until IS NULL \
           THEN 1 ELSE 0 END) AS ds \
       FROM notifications WHERE created_at < $1 AND recipient_id IS NOT NULL \
       GROUP BY recipient_id, category) AS d \
     WHERE inbox_counts.user_id = d.user_id AND inbox_counts.category = d.category",
    "UPDATE broadcast_counts SET total = total - d.n FROM ( \
       SELECT category, critical, COUNT(*) AS n FROM notifications \
       WHERE created_at < $1 AND recipient_id IS NULL GROUP BY category, critical) AS d \
     WHERE broadcast_counts.category = d.category AND broadcast_counts.critical = d.critical",
    "UPDATE broadcast_state_counts SET not_unread = not_unread - d.nu, \
       not_unseen = not_unseen - d.ns FROM ( \
       SELECT s.user_id, n.category, n.critical, \
         SUM(CASE WHEN s.read_at IS NOT NULL OR s.archived_at IS NOT NULL \
           OR s.snoozed_until IS NOT NULL THEN 1 ELSE 0 END) AS nu, \
         SUM(CASE WHEN s.seen_at IS NOT NULL OR s.archived_at IS NOT NULL \
           OR s.snoozed_until IS NOT NULL THEN 1 ELSE 0 END) AS ns \
       FROM broadcast_states s JOIN notifications n ON n.id = s.notification_id \
       WHERE n.created_at < $1 AND n.recipient_id IS NULL \
       GROUP BY s.user_id, n.category, n.critical) AS d \
     WHERE broadcast_state_counts.user_id = d.user_id \
       AND broadcast_state_counts.category = d.category \
       AND broadcast_state_counts.critical = d.critical",
];

/// The states of the broadcasts about to be pruned (after [`PRUNE_COUNTERS`]).
pub const PRUNE_BROADCAST_STATES: &str = "DELETE FROM broadcast_states WHERE notification_id IN \
     (SELECT id FROM notifications WHERE created_at < $1)";

/// Counter rows that reached zero: dropped after a prune so the tables stay the size of the
/// live data (a later write recreates a row through its upsert).
pub const DROP_ZERO_COUNTERS: [&str; 3] = [
    "DELETE FROM inbox_counts WHERE unread = 0 AND unseen = 0",
    "DELETE FROM broadcast_counts WHERE total = 0",
    "DELETE FROM broadcast_state_counts WHERE not_unread = 0 AND not_unseen = 0",
];

/// Counter rows per upsert: keeps bind counts far below both backends' limits.
pub const COUNTER_CHUNK: usize = 500;

/// A direct notification a state change changed, as it is afterwards.
#[derive(sqlx::FromRow)]
pub struct DirectStateRow {
    pub id: String,
    pub category: String,
    pub read_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub archived_at: Option<i64>,
    pub snoozed_until: Option<i64>,
}

impl DirectStateRow {
    pub fn state(&self) -> State {
        state(
            self.read_at,
            self.seen_at,
            self.archived_at,
            self.snoozed_until,
        )
    }
}

/// A user's state of a broadcast that a state change changed, as it is afterwards.
#[derive(sqlx::FromRow)]
pub struct BroadcastStateRow {
    pub notification_id: String,
    pub read_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub archived_at: Option<i64>,
    pub snoozed_until: Option<i64>,
    pub category: String,
    pub critical: bool,
}

impl BroadcastStateRow {
    pub fn state(&self) -> State {
        state(
            self.read_at,
            self.seen_at,
            self.archived_at,
            self.snoozed_until,
        )
    }
}

fn state(
    read_at: Option<i64>,
    seen_at: Option<i64>,
    archived_at: Option<i64>,
    snoozed_until: Option<i64>,
) -> State {
    State {
        read: read_at.is_some(),
        seen: seen_at.is_some(),
        archived: archived_at.is_some(),
        snoozed: snoozed_until.is_some(),
    }
}

/// What a batch adds to the counters, gathered before one upsert per table. Keys are ordered
/// (`BTreeMap`), so concurrent PostgreSQL writers lock counter rows in one order and cannot
/// deadlock on them; each key appears once, as `ON CONFLICT DO UPDATE` requires.
#[derive(Debug, Default)]
pub struct CounterDeltas {
    /// (user, category) -> (unread, unseen) of `inbox_counts`.
    pub direct: BTreeMap<(String, String), (i64, i64)>,
    /// (user, category, critical) -> (not_unread, not_unseen) of `broadcast_state_counts`.
    pub broadcast: BTreeMap<(String, String, bool), (i64, i64)>,
}

impl CounterDeltas {
    /// `counts` (a user's, read before the batch) with the batch's deltas of that user added:
    /// what the counters give once the batch is applied.
    pub fn applied_to(&self, user_id: &str, mut counts: Counts) -> Counts {
        for ((user, category), &(unread, unseen)) in &self.direct {
            if user == user_id {
                counts.add(category, unread, unseen);
            }
        }
        for ((user, category, _), &(not_unread, not_unseen)) in &self.broadcast {
            if user == user_id {
                counts.add(category, -not_unread, -not_unseen);
            }
        }
        counts.without_zeros()
    }

    /// A direct row's move in the inbox counts.
    pub fn direct(&mut self, user_id: &str, category: &str, (unread, unseen): (i64, i64)) {
        if (unread, unseen) != (0, 0) {
            let entry = self
                .direct
                .entry((user_id.to_owned(), category.to_owned()))
                .or_default();
            entry.0 += unread;
            entry.1 += unseen;
        }
    }

    /// A broadcast's move in a user's inbox counts: what enters the inbox leaves the user's
    /// "not counted" and the other way round.
    pub fn broadcast(
        &mut self,
        user_id: &str,
        category: &str,
        critical: bool,
        (unread, unseen): (i64, i64),
    ) {
        if (unread, unseen) != (0, 0) {
            let entry = self
                .broadcast
                .entry((user_id.to_owned(), category.to_owned(), critical))
                .or_default();
            entry.0 -= unread;
            entry.1 -= unseen;
        }
    }
}

macro_rules! impl_inbox_state {
    ($backend:ty) => {
        // A block of its own, so the macro's names do not clash with the calling module's.
        const _: () = {
            use sqlx::QueryBuilder;
            use switchboard::{Error, db::Backend};

            use $crate::domain::{Counts, NewMark, Notification, ReadFilter, Selection, View};
            use $crate::preferences::{Mute, is_muted};
            use $crate::store::{
                SqlStore,
                inbox_sql::{
                    self, BroadcastStateRow, CountOrMuteRow, CounterDeltas, DirectStateRow,
                },
                steps::{self, Pin, Step, Value},
            };

            /// The sqlx database of this backend.
            type Db = <$backend as Backend>::Db;
            type Conn = <Db as sqlx::Database>::Connection;

            /// Counts from counter rows (`kind` 0 direct, 1 broadcast), leaving out the
            /// non-critical broadcasts of `muted` categories.
            fn counts_of<M: AsRef<str>>(rows: Vec<CountOrMuteRow>, muted: &[M]) -> Counts {
                let mut counts = Counts::default();
                for row in rows {
                    if row.kind == 1 && !row.critical && is_muted(&row.category, muted) {
                        continue;
                    }
                    counts.add(&row.category, row.unread, row.unseen);
                }
                counts.without_zeros()
            }

            fn push_pin(qb: &mut QueryBuilder<Db>, column: &str, pin: Pin) {
                match pin {
                    Pin::Unset => {
                        qb.push(format!(" AND {column} IS NULL"));
                    }
                    Pin::Set => {
                        qb.push(format!(" AND {column} IS NOT NULL"));
                    }
                    Pin::SetOtherThan(value) => {
                        qb.push(format!(" AND {column} IS NOT NULL AND {column} <> "));
                        qb.push_bind(value);
                    }
                }
            }

            fn push_pins(qb: &mut QueryBuilder<Db>, table: &str, step: &Step) {
                for &(column, pin) in &step.pins {
                    push_pin(qb, &format!("{table}.{}", column.name()), pin);
                }
            }

            fn push_value(qb: &mut QueryBuilder<Db>, value: Value, now: i64) {
                match value {
                    Value::Now => {
                        qb.push_bind(now);
                    }
                    Value::At(at) => {
                        qb.push_bind(at);
                    }
                    Value::Unset => {
                        qb.push("NULL");
                    }
                }
            }

            /// The selection's filters on the notification (`table` names its row): the ids,
            /// or the category of `All`.
            fn push_notification_scope(
                qb: &mut QueryBuilder<Db>,
                table: &str,
                selection: &Selection,
            ) {
                match selection {
                    Selection::Ids(ids) => {
                        qb.push(format!(" AND {table}.id IN ("));
                        let mut list = qb.separated(", ");
                        for id in ids {
                            list.push_bind(id.clone());
                        }
                        qb.push(")");
                    }
                    Selection::All { category, .. } => {
                        if let Some(category) = category {
                            qb.push(format!(" AND {table}.category = "));
                            qb.push_bind(category.clone());
                        }
                    }
                }
            }

            /// The selection's filters on the user's state (`table` names its row): for
            /// `All`, the change's view and the read state; listed ids take any state.
            fn push_state_scope(qb: &mut QueryBuilder<Db>, table: &str, mark: &NewMark) {
                let Selection::All { read, .. } = &mark.selection else {
                    return;
                };
                qb.push(match mark.change.view() {
                    View::Inbox => format!(
                        " AND {table}.archived_at IS NULL AND {table}.snoozed_until IS NULL"
                    ),
                    View::Archived => format!(" AND {table}.archived_at IS NOT NULL"),
                    View::Snoozed => format!(" AND {table}.snoozed_until IS NOT NULL"),
                });
                match read {
                    ReadFilter::All => {}
                    ReadFilter::Unread => {
                        qb.push(format!(" AND {table}.read_at IS NULL"));
                    }
                    ReadFilter::Read => {
                        qb.push(format!(" AND {table}.read_at IS NOT NULL"));
                    }
                }
            }

            impl SqlStore<$backend> {
                /// Leaves out the non-critical broadcasts of the `muted` categories (`table`
                /// names the notification row): a mute of `build` hides `build` and
                /// `build.*`, the rule of [`crate::preferences::is_muted`] in SQL. Direct
                /// notifications are never hidden: one stored before a mute stays.
                pub(crate) fn push_not_muted(
                    qb: &mut QueryBuilder<Db>,
                    table: &str,
                    muted: &[Mute],
                ) {
                    if muted.is_empty() {
                        return;
                    }
                    qb.push(format!(
                        " AND ({table}.recipient_id IS NOT NULL OR {table}.critical OR NOT ("
                    ));
                    for (
                        i,
                        Mute {
                            category: prefix, ..
                        },
                    ) in muted.iter().enumerate()
                    {
                        if i > 0 {
                            qb.push(" OR ");
                        }
                        qb.push(format!("{table}.category = "));
                        qb.push_bind(prefix.clone());
                        qb.push(format!(" OR substr({table}.category, 1, "));
                        // Categories are at most 64 bytes: the length always fits.
                        qb.push_bind(i32::try_from(prefix.len() + 1).unwrap_or(i32::MAX));
                        qb.push(") = ");
                        qb.push_bind(format!("{prefix}."));
                    }
                    qb.push("))");
                }

                /// The user's inbox counts from the counters, leaving out the non-critical
                /// broadcasts of `muted` categories (each hides itself and its `.` children).
                pub(crate) async fn counts_in<M: AsRef<str> + Sync>(
                    conn: &mut Conn,
                    user_id: &str,
                    muted: &[M],
                ) -> Result<Counts, Error> {
                    let rows: Vec<CountOrMuteRow> = sqlx::query_as(inbox_sql::COUNTS)
                        .bind(user_id)
                        .bind(user_id)
                        .fetch_all(&mut *conn)
                        .await?;
                    Ok(counts_of(rows, muted))
                }

                /// The user's mutes in force at `now` (by category) and their inbox counts
                /// under those mutes, from one statement.
                pub(crate) async fn inbox_in(
                    conn: &mut Conn,
                    user_id: &str,
                    now: i64,
                ) -> Result<(Vec<Mute>, Counts), Error> {
                    let rows: Vec<CountOrMuteRow> = sqlx::query_as(inbox_sql::COUNTS_AND_MUTES)
                        .bind(user_id)
                        .bind(user_id)
                        .bind(user_id)
                        .bind(now)
                        .fetch_all(&mut *conn)
                        .await?;
                    let (mutes, counters): (Vec<_>, Vec<_>) =
                        rows.into_iter().partition(|row| row.kind == 2);
                    let mut mutes: Vec<Mute> = mutes
                        .into_iter()
                        .map(|row| Mute {
                            category: row.category,
                            until: row.muted_until,
                        })
                        .collect();
                    // By bytes, whatever the database's collation.
                    mutes.sort_by(|a, b| a.category.cmp(&b.category));
                    let counts = counts_of(counters, &mutes);
                    Ok((mutes, counts))
                }

                /// Applies one state change to what its user can see, step by step, adding
                /// each changed row's counter deltas to `deltas`; the broadcasts the user's
                /// `muted` categories hide are not theirs to change. Returns the ids it
                /// reports changed (sorted; empty for `All`) and how many.
                pub(crate) async fn change_rows(
                    conn: &mut Conn,
                    mark: &NewMark,
                    now: i64,
                    muted: &[Mute],
                    deltas: &mut CounterDeltas,
                ) -> Result<(Vec<String>, i64), Error> {
                    let mut changed = Vec::new();
                    let mut count = 0;
                    for step in steps::steps(mark.change) {
                        let column = step.column.name();
                        let mut direct = QueryBuilder::<Db>::new(format!(
                            "UPDATE notifications SET {column} = "
                        ));
                        push_value(&mut direct, step.value, now);
                        direct.push(" WHERE notifications.recipient_id = ");
                        direct.push_bind(mark.user_id.clone());
                        push_pins(&mut direct, "notifications", &step);
                        push_notification_scope(&mut direct, "notifications", &mark.selection);
                        push_state_scope(&mut direct, "notifications", mark);
                        direct.push(inbox_sql::RETURNING_DIRECT);
                        let rows: Vec<DirectStateRow> =
                            direct.build_query_as().fetch_all(&mut *conn).await?;
                        for row in &rows {
                            deltas.direct(&mark.user_id, &row.category, step.deltas(row.state()));
                        }

                        let mut broadcast = if step.value == Value::Unset {
                            // Nothing to unset where the user has no state row.
                            let mut qb = QueryBuilder::<Db>::new(format!(
                                "UPDATE broadcast_states SET {column} = NULL \
                                 WHERE broadcast_states.user_id = "
                            ));
                            qb.push_bind(mark.user_id.clone());
                            push_pins(&mut qb, "broadcast_states", &step);
                            push_state_scope(&mut qb, "broadcast_states", mark);
                            qb.push(
                                " AND broadcast_states.notification_id IN (SELECT n.id \
                                 FROM notifications n WHERE n.recipient_id IS NULL",
                            );
                            push_notification_scope(&mut qb, "n", &mark.selection);
                            Self::push_not_muted(&mut qb, "n", muted);
                            qb.push(")");
                            qb
                        } else {
                            // A missing state row is all unset: inserted with the new value,
                            // or updated when the pins hold on the row as it is.
                            let mut qb = QueryBuilder::<Db>::new(format!(
                                "INSERT INTO broadcast_states (user_id, notification_id, \
                                 {column}) SELECT "
                            ));
                            qb.push_bind(mark.user_id.clone());
                            qb.push(", n.id, ");
                            push_value(&mut qb, step.value, now);
                            qb.push(
                                " FROM notifications n LEFT JOIN broadcast_states s \
                                 ON s.notification_id = n.id AND s.user_id = ",
                            );
                            qb.push_bind(mark.user_id.clone());
                            qb.push(" WHERE n.recipient_id IS NULL");
                            push_pins(&mut qb, "s", &step);
                            push_notification_scope(&mut qb, "n", &mark.selection);
                            Self::push_not_muted(&mut qb, "n", muted);
                            push_state_scope(&mut qb, "s", mark);
                            qb.push(format!(
                                " ON CONFLICT (user_id, notification_id) DO UPDATE \
                                 SET {column} = excluded.{column} WHERE 1 = 1"
                            ));
                            push_pins(&mut qb, "broadcast_states", &step);
                            qb
                        };
                        broadcast.push(inbox_sql::RETURNING_BROADCAST);
                        let states: Vec<BroadcastStateRow> =
                            broadcast.build_query_as().fetch_all(&mut *conn).await?;
                        for row in &states {
                            deltas.broadcast(
                                &mark.user_id,
                                &row.category,
                                row.critical,
                                step.deltas(row.state()),
                            );
                        }
                        if step.reported {
                            count += (rows.len() + states.len()) as i64;
                            if matches!(mark.selection, Selection::Ids(_)) {
                                changed.extend(rows.into_iter().map(|r| r.id));
                                changed.extend(states.into_iter().map(|s| s.notification_id));
                            }
                        }
                    }
                    changed.sort();
                    changed.dedup();
                    Ok((changed, count))
                }

                /// Adds a batch's deltas to the counters: one upsert per table and chunk.
                pub(crate) async fn add_counter_deltas(
                    conn: &mut Conn,
                    deltas: &CounterDeltas,
                ) -> Result<(), Error> {
                    let direct: Vec<_> = deltas.direct.iter().collect();
                    for chunk in direct.chunks(inbox_sql::COUNTER_CHUNK) {
                        let mut qb = QueryBuilder::<Db>::new(
                            "INSERT INTO inbox_counts (user_id, category, unread, unseen) ",
                        );
                        qb.push_values(
                            chunk,
                            |mut row, ((user_id, category), (unread, unseen))| {
                                row.push_bind(user_id.clone())
                                    .push_bind(category.clone())
                                    .push_bind(*unread)
                                    .push_bind(*unseen);
                            },
                        );
                        qb.push(
                            " ON CONFLICT (user_id, category) DO UPDATE \
                             SET unread = inbox_counts.unread + excluded.unread, \
                             unseen = inbox_counts.unseen + excluded.unseen",
                        );
                        qb.build().execute(&mut *conn).await?;
                    }
                    let broadcast: Vec<_> = deltas.broadcast.iter().collect();
                    for chunk in broadcast.chunks(inbox_sql::COUNTER_CHUNK) {
                        let mut qb = QueryBuilder::<Db>::new(
                            "INSERT INTO broadcast_state_counts \
                             (user_id, category, critical, not_unread, not_unseen) ",
                        );
                        qb.push_values(
                            chunk,
                            |mut row, ((user_id, category, critical), (unread, unseen))| {
                                row.push_bind(user_id.clone())
                                    .push_bind(category.clone())
                                    .push_bind(*critical)
                                    .push_bind(*unread)
                                    .push_bind(*unseen);
                            },
                        );
                        qb.push(
                            " ON CONFLICT (user_id, category, critical) DO UPDATE \
                             SET not_unread = broadcast_state_counts.not_unread \
                               + excluded.not_unread, \
                             not_unseen = broadcast_state_counts.not_unseen \
                               + excluded.not_unseen",
                        );
                        qb.build().execute(&mut *conn).await?;
                    }
                    Ok(())
                }

                /// Counts newly stored notifications into the counters: each direct one is
                /// unread and unseen in its recipient's inbox, each broadcast adds to its
                /// (category, critical) total. Takes any batch, grouped here, so one call
                /// after the inserts costs a statement or two whatever the batch size. Must
                /// run in the transaction that inserts them.
                pub(crate) async fn count_new(
                    conn: &mut Conn,
                    notifications: &[Notification],
                ) -> Result<(), Error> {
                    let mut deltas = CounterDeltas::default();
                    let mut broadcasts = None::<(i64, i64)>;
                    for n in notifications {
                        match &n.recipient_id {
                            Some(recipient) => deltas.direct(recipient, &n.category, (1, 1)),
                            None => {
                                let (first, last) = broadcasts.get_or_insert((n.seq, n.seq));
                                *first = (*first).min(n.seq);
                                *last = (*last).max(n.seq);
                            }
                        }
                    }
                    Self::add_counter_deltas(&mut *conn, &deltas).await?;
                    if let Some((first, last)) = broadcasts {
                        sqlx::query(inbox_sql::COUNT_NEW_BROADCASTS)
                            .bind(first)
                            .bind(last)
                            .execute(&mut *conn)
                            .await?;
                    }
                    Ok(())
                }
            }
        };
    };
}

pub(crate) use impl_inbox_state;
