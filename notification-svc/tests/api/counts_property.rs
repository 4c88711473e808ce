//! The property of issue 19's counts: after any sequence of Sends (direct and broadcast),
//! MarkRead, MarkSeen, MarkUnread, Archive, Unarchive, Snooze, Unsnooze, wakes and mutes
//! (permanent and timed, which the moving clock ends) over a few users, every user's counts
//! (and the counts each change answers) equal a count from scratch. Random sequences from proptest, shrunk to a minimal one on failure; on SQLite
//! through the store, with the clock moved by the test so snoozes come due.

use notification_svc::{
    domain::{Audience, Change, NewSend, ReadFilter, Selection},
    preferences::Mute,
    store::{self, MIGRATIONS, NotificationStore},
};
use proptest::{collection::vec, option, prelude::*};
use switchboard::{
    db::{self, Database},
    testing::{Backend, TestDatabase},
};

use crate::inbox_counters::counted_by_sql;

const USERS: [&str; 3] = ["alice", "bob", "carol"];
const CATEGORIES: [&str; 3] = ["build", "build.failed", "chat"];
const MINUTE: i64 = 60_000_000;
const HOUR: i64 = 60 * MINUTE;

#[derive(Debug, Clone)]
enum Pick {
    /// Indexes into what was sent so far (modulo its length).
    Ids(Vec<usize>),
    All {
        category: Option<usize>,
        read: usize,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Send {
        recipients: Vec<usize>,
        category: usize,
    },
    Broadcast {
        category: usize,
    },
    Change {
        user: usize,
        change: usize,
        pick: Pick,
        snooze_hours: i64,
    },
    /// The clock moves this many hours, and what came due wakes.
    Wake {
        hours: i64,
    },
    /// The user's mutes become these categories, for this many hours (none: until unmuted).
    Mute {
        user: usize,
        categories: Vec<usize>,
        hours: Option<i64>,
    },
}

fn pick() -> impl Strategy<Value = Pick> {
    prop_oneof![
        vec(0..64usize, 1..4).prop_map(Pick::Ids),
        (option::of(0..CATEGORIES.len()), 0..3usize)
            .prop_map(|(category, read)| Pick::All { category, read }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (vec(0..USERS.len(), 1..3), 0..CATEGORIES.len())
            .prop_map(|(recipients, category)| Op::Send { recipients, category }),
        1 => (0..CATEGORIES.len()).prop_map(|category| Op::Broadcast { category }),
        6 => (0..USERS.len(), 0..7usize, pick(), 1..4i64).prop_map(
            |(user, change, pick, snooze_hours)| Op::Change { user, change, pick, snooze_hours }
        ),
        2 => (0..3i64).prop_map(|hours| Op::Wake { hours }),
        2 => (0..USERS.len(), vec(0..CATEGORIES.len(), 0..3), option::of(1..3i64)).prop_map(
            |(user, categories, hours)| Op::Mute { user, categories, hours }
        ),
    ]
}

fn new_send(audience: Audience, category: usize) -> NewSend {
    NewSend {
        caller_id: "service".into(),
        audience,
        category: CATEGORIES[category].into(),
        content: "x".into(),
        link: String::new(),
        sender_id: "service".into(),
        idempotency_key: None,
        data: None,
        critical: false,
    }
}

async fn assert_every_user_true(
    database: &Database,
    store: &dyn NotificationStore,
    now: i64,
    step: usize,
) {
    for user in USERS.into_iter().chain(["nobody"]) {
        let (_, counts) = store.inbox(user, now).await.expect("counts");
        assert_eq!(
            counts,
            counted_by_sql(database, user, now).await,
            "{user} after step {step}"
        );
    }
}

async fn run(ops: Vec<Op>) {
    let (_test_database, url) = TestDatabase::create(Backend::Sqlite, "notifications.db").await;
    let database = db::connect(&url, &MIGRATIONS).await.expect("connect");
    let store = store::for_database(&database);
    let mut now = HOUR;
    let mut sent: Vec<String> = Vec::new();
    for (step, op) in ops.into_iter().enumerate() {
        now += MINUTE;
        match op {
            Op::Send {
                recipients,
                category,
            } => {
                let mut users: Vec<String> =
                    recipients.iter().map(|&u| USERS[u].to_owned()).collect();
                users.sort();
                users.dedup();
                let send = new_send(Audience::Recipients(users), category);
                let done = store.send_batch(&[send], now).await.expect("send");
                sent.extend(done.into_iter().flat_map(|s| s.notifications).map(|n| n.id));
            }
            Op::Broadcast { category } => {
                let send = new_send(Audience::Broadcast, category);
                let done = store.send_batch(&[send], now).await.expect("send");
                sent.extend(done.into_iter().flat_map(|s| s.notifications).map(|n| n.id));
            }
            Op::Change {
                user,
                change,
                pick,
                snooze_hours,
            } => {
                let change = [
                    Change::Read,
                    Change::Seen,
                    Change::Unread,
                    Change::Archive,
                    Change::Unarchive,
                    Change::Snooze {
                        until: now + snooze_hours * HOUR,
                    },
                    Change::Unsnooze,
                ][change];
                let selection = match pick {
                    Pick::Ids(_) if sent.is_empty() => continue,
                    Pick::Ids(indexes) => {
                        let mut ids: Vec<String> = indexes
                            .iter()
                            .map(|&i| sent[i % sent.len()].clone())
                            .collect();
                        ids.sort();
                        ids.dedup();
                        Selection::Ids(ids)
                    }
                    Pick::All { category, read } => Selection::All {
                        category: category.map(|c| CATEGORIES[c].to_owned()),
                        read: [ReadFilter::All, ReadFilter::Unread, ReadFilter::Read][read],
                    },
                };
                let marked = store
                    .change(USERS[user], change, &selection, now)
                    .await
                    .expect("change");
                assert_eq!(
                    marked.counts,
                    counted_by_sql(&database, USERS[user], now).await,
                    "the counts {change:?} answered at step {step}"
                );
            }
            Op::Wake { hours } => {
                now += hours * HOUR;
                store.wake_due(now, 1000).await.expect("wake");
                store.end_mutes(now, 1000).await.expect("end mutes");
            }
            Op::Mute {
                user,
                mut categories,
                hours,
            } => {
                categories.sort();
                categories.dedup();
                let mutes: Vec<Mute> = categories
                    .into_iter()
                    .map(|c| Mute {
                        category: CATEGORIES[c].to_owned(),
                        until: hours.map(|hours| now + hours * HOUR),
                    })
                    .collect();
                store
                    .replace_preferences(USERS[user], &mutes, now)
                    .await
                    .expect("mute");
            }
        }
        assert_every_user_true(&database, store.as_ref(), now, step).await;
    }
    database.close().await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]

    #[test]
    fn counts_equal_a_count_from_scratch_after_every_step(ops in vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(run(ops));
    }
}
