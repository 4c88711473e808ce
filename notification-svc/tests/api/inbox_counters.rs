//! The inbox counters (migration 0005) against the truth they stand for.
//!
//! List and every state change read a user's counts (unread and unseen in the inbox: not
//! archived, not snoozed) from counters kept in step by every write; a write that forgets
//! them, or counts a change twice, shows up here as a difference from an independent count:
//! notifications listed and counted client-side through the API, or a COUNT over history
//! run straight against the database.

use notification_svc::{
    domain::{Audience, Change, Counts, NewSend, ReadFilter, Selection},
    store::{self, MIGRATIONS, NotificationStore},
};
use switchboard::{
    db::{self, Database},
    proto::notification::v1::{self as pb, ReadState, SeenState},
    testing::TestDatabase,
};

use crate::helpers::*;

/// Deterministic pseudo-random numbers (Knuth's MMIX LCG): the same history on every run.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }

    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
}

const USERS: [&str; 4] = ["alice", "bob", "carol", "dave"];
const CATEGORIES: [&str; 3] = ["build", "chat", "task.assigned"];

/// Asserts that List's counts (and its old `total_unread`/`unread_by_category`) for `user`
/// match a client-side count over everything the user can see, and that listing the inbox's
/// unread and unseen ones finds as many. Returns the counts.
async fn assert_counts_match(app: &TestApp, user: &str, context: &str) -> pb::Counts {
    let mut client = app.user(user);
    let counted = inbox_counts_of(&list_everything(&mut client).await);
    let page = list_all(&mut client).await;
    assert_eq!(
        page.counts.as_ref(),
        Some(&counted),
        "{user} after {context}"
    );
    assert_eq!(page.total_unread, counted.unread, "{user} after {context}");
    assert_eq!(
        page.unread_by_category, counted.unread_by_category,
        "{user} after {context}"
    );
    let unread = list(
        &mut client,
        pb::ListRequest {
            state: ReadState::Unread.into(),
            page_size: 500,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        unread.notifications.len() as i64,
        counted.unread,
        "{context}"
    );
    let unseen = list(
        &mut client,
        pb::ListRequest {
            seen_state: SeenState::Unseen.into(),
            page_size: 500,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        unseen.notifications.len() as i64,
        counted.unseen,
        "{context}"
    );
    counted
}

/// A random selection over what was sent: a few ids (with, now and then, one nobody can
/// see), or `all` narrowed by category and read state.
fn random_selection(rng: &mut Lcg, sent: &[String]) -> Option<pb::Selection> {
    if rng.below(3) > 0 && !sent.is_empty() {
        let mut chosen: Vec<String> = (0..1 + rng.below(4)).map(|_| rng.pick(sent)).collect();
        if rng.below(5) == 0 {
            chosen.push(uuid::Uuid::now_v7().to_string());
        }
        return select_ids(&chosen);
    }
    let category = match rng.below(3) {
        0 => String::new(),
        _ => rng.pick(&CATEGORIES).to_string(),
    };
    let state = rng.pick(&[ReadState::Unspecified, ReadState::Unread, ReadState::Read]);
    select_all(&category, state)
}

/// A deterministic mix of every write that moves a counter (direct sends to several users
/// and categories, broadcasts, repeated idempotent sends, MarkRead, MarkSeen, MarkUnread,
/// Archive and Unarchive by ids, foreign and unknown ones included, and by `all` narrowed
/// every way); the counts each change answers and, every few steps and at the end, every
/// user's List are checked against a client-side count.
async fn counters_follow_a_random_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let mut rng = Lcg(0x5eed);
    let mut sent: Vec<String> = Vec::new();
    for step in 0..200 {
        let roll = rng.below(100);
        let context = format!("step {step}");
        if roll < 30 {
            let mut recipients: Vec<&str> =
                (0..1 + rng.below(3)).map(|_| rng.pick(&USERS)).collect();
            recipients.sort();
            recipients.dedup();
            let key = rng.below(8);
            let request = pb::SendRequest {
                category: rng.pick(&CATEGORIES).to_string(),
                // A few keys repeat: the replayed Send must not be counted again.
                idempotency_key: if key == 0 {
                    format!("key-{}", rng.below(3))
                } else {
                    String::new()
                },
                ..send_to(&recipients, &context)
            };
            sent.extend(sent_ids(&mut service, request).await);
        } else if roll < 38 {
            let request = pb::SendRequest {
                category: rng.pick(&CATEGORIES).to_string(),
                ..broadcast(&context)
            };
            sent.extend(sent_ids(&mut service, request).await);
        } else {
            let user = rng.pick(&USERS);
            let mut client = app.user(user);
            let selection = random_selection(&mut rng, &sent);
            let counts = if roll < 50 {
                let selection = selection.unwrap_or_default();
                // MarkRead has no read-state narrowing of its own.
                let request = pb::MarkReadRequest {
                    ids: selection.ids,
                    all: selection.all,
                    category: selection.category,
                };
                let marked = client.mark_read(request).await.expect("mark read");
                let marked = marked.into_inner();
                let counts = marked.counts.expect("counts");
                assert_eq!(marked.total_unread, counts.unread, "{context}");
                counts
            } else {
                let rpc = rng.pick(&StateRpc::ALL);
                apply(&mut client, rpc, selection).await.1
            };
            let truth = assert_counts_match(&app, user, &context).await;
            assert_eq!(counts, truth, "{user}'s answered counts after {context}");
        }
        if step % 25 == 0 {
            for user in USERS {
                assert_counts_match(&app, user, &context).await;
            }
        }
    }
    let mut unread = 0;
    for user in USERS.into_iter().chain(["nobody"]) {
        unread += assert_counts_match(&app, user, "the whole history")
            .await
            .unread;
    }
    assert!(unread > 0, "the history leaves something unread");
}

/// The inbox counts at `at` as a COUNT over the whole history, run straight against the
/// database: what the user can see, not archived, not snoozed, and no non-critical broadcast
/// of a category their mutes in force at `at` cover. The oracle of the store-level tests.
pub async fn counted_by_sql(database: &Database, user: &str, at: i64) -> Counts {
    const COUNT: &str = "SELECT category, SUM(unread) AS unread, SUM(unseen) AS unseen FROM ( \
           SELECT category, CASE WHEN read_at IS NULL THEN 1 ELSE 0 END AS unread, \
             CASE WHEN seen_at IS NULL THEN 1 ELSE 0 END AS unseen \
           FROM notifications WHERE recipient_id = $1 \
             AND archived_at IS NULL AND snoozed_until IS NULL \
           UNION ALL \
           SELECT n.category, CASE WHEN s.read_at IS NULL THEN 1 ELSE 0 END, \
             CASE WHEN s.seen_at IS NULL THEN 1 ELSE 0 END \
           FROM notifications n LEFT JOIN broadcast_states s \
             ON s.notification_id = n.id AND s.user_id = $2 \
           WHERE n.recipient_id IS NULL AND s.archived_at IS NULL AND s.snoozed_until IS NULL \
             AND (n.critical OR NOT EXISTS (SELECT 1 FROM preferences p WHERE p.user_id = $3 \
               AND (p.muted_until IS NULL OR p.muted_until > $4) \
               AND (n.category = p.category OR n.category LIKE p.category || '.%'))) \
         ) AS u GROUP BY category";
    let rows: Vec<(String, i64, i64)> = match database {
        Database::Sqlite(pools) => sqlx::query_as(COUNT)
            .bind(user)
            .bind(user)
            .bind(user)
            .bind(at)
            .fetch_all(&pools.read)
            .await
            .expect("count"),
        Database::Postgres(pool) => sqlx::query_as(COUNT)
            .bind(user)
            .bind(user)
            .bind(user)
            .bind(at)
            .fetch_all(pool)
            .await
            .expect("count"),
    };
    let mut counts = Counts::default();
    for (category, unread, unseen) in rows {
        counts.add(&category, unread, unseen);
    }
    counts.without_zeros()
}

async fn assert_store_matches(
    database: &Database,
    store: &dyn NotificationStore,
    context: &str,
) -> i64 {
    let mut total = 0;
    for user in USERS.into_iter().chain(["nobody"]) {
        // These histories mute nothing: the time of the mutes does not matter.
        let expected = counted_by_sql(database, user, 0).await;
        let counters = store.counts(user, &[]).await.expect("counts");
        assert_eq!(counters, expected, "{user} after {context}");
        total += counters.total_unread() + counters.total_unseen();
    }
    total
}

fn new_send(audience: Audience, category: &str) -> NewSend {
    NewSend {
        caller_id: "service".into(),
        audience,
        category: category.into(),
        content: "x".into(),
        link: String::new(),
        sender_id: "service".into(),
        idempotency_key: None,
        data: None,
        critical: false,
    }
}

/// Hours in microseconds, the store's clock.
const HOUR: i64 = 3_600_000_000;

/// Rows in a table, straight from the database.
async fn rows_in(database: &Database, table: &str) -> i64 {
    let query = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
    match database {
        Database::Sqlite(pools) => sqlx::query_scalar(query).fetch_one(&pools.read).await,
        Database::Postgres(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
    }
    .expect("count rows")
}

/// Prune takes exactly the deleted notifications' share off the counters: old direct
/// notifications and broadcasts in every state (read, seen, archived, unread again, snoozed,
/// woken), by some users and not others, next to newer ones that stay. Wakes are checked
/// too: every hour wakes what came due. Checked against the COUNT over history after each
/// hour and prune; once everything is gone no state, wake or counter row is left.
async fn prune_keeps_counters_exact(backend: Backend) {
    let (_test_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let database = db::connect(&url, &MIGRATIONS).await.expect("connect");
    let store = store::for_database(&database);
    let mut rng = Lcg(42);
    let mut sent = Vec::new();
    let mut woken = 0;
    // Ten "hours" of history, a mix of sends and state changes in each.
    for hour in 0..10 {
        let now = (hour + 1) * HOUR;
        for _ in 0..6 {
            let audience = if rng.below(4) == 0 {
                Audience::Broadcast
            } else {
                let mut users: Vec<String> = (0..1 + rng.below(3))
                    .map(|_| rng.pick(&USERS).to_string())
                    .collect();
                users.sort();
                users.dedup();
                Audience::Recipients(users)
            };
            let category = rng.pick(&CATEGORIES);
            let done = store
                .send_batch(&[new_send(audience, category)], now)
                .await
                .expect("send");
            sent.extend(done.into_iter().flat_map(|s| s.notifications).map(|n| n.id));
        }
        for _ in 0..5 {
            let user = rng.pick(&USERS);
            let selection = if rng.below(4) == 0 {
                Selection::All {
                    category: Some(rng.pick(&CATEGORIES).to_string()),
                    read: rng.pick(&[ReadFilter::All, ReadFilter::Unread, ReadFilter::Read]),
                }
            } else {
                let mut ids: Vec<String> = (0..3).map(|_| rng.pick(&sent)).collect();
                ids.sort();
                ids.dedup();
                Selection::Ids(ids)
            };
            let until = now + HOUR * (1 + rng.below(3) as i64);
            let change = rng.pick(&[
                Change::Read,
                Change::Seen,
                Change::Unread,
                Change::Archive,
                Change::Unarchive,
                Change::Snooze { until },
                Change::Unsnooze,
            ]);
            store
                .change(user, change, &selection, now)
                .await
                .expect("change");
        }
        woken += store.wake_due(now, 1000).await.expect("wake").rows;
        assert_store_matches(&database, store.as_ref(), &format!("hour {hour}")).await;
    }
    assert!(woken > 0, "the history wakes something");
    let before = assert_store_matches(&database, store.as_ref(), "the history").await;
    assert!(before > 0);
    assert!(rows_in(&database, "broadcast_states").await > 0);

    for cutoff_hour in [3, 7, 11] {
        store.prune(cutoff_hour * HOUR).await.expect("prune");
        assert_store_matches(
            &database,
            store.as_ref(),
            &format!("prune before {cutoff_hour}h"),
        )
        .await;
    }
    // Everything pruned: no state or counter row is left behind, not even at zero.
    for table in [
        "broadcast_states",
        "wakes",
        "inbox_counts",
        "broadcast_counts",
        "broadcast_state_counts",
    ] {
        assert_eq!(
            rows_in(&database, table).await,
            0,
            "{table} is empty once everything is pruned"
        );
    }
    // And counting starts again from zero.
    store
        .send_batch(&[new_send(Audience::Broadcast, "build")], 12 * HOUR)
        .await
        .expect("send");
    assert_eq!(
        assert_store_matches(&database, store.as_ref(), "a new broadcast").await,
        10,
        "one unread and unseen broadcast for each of five users"
    );
    database.close().await;
}

/// Counts leave out the non-critical broadcasts of muted categories (a muted `build` hides
/// `build` and `build.*`), and never direct notifications.
async fn counts_leave_out_muted_broadcasts_only(backend: Backend) {
    let (_test_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let database = db::connect(&url, &MIGRATIONS).await.expect("connect");
    let store = store::for_database(&database);
    for (audience, category) in [
        (Audience::Broadcast, "build"),
        (Audience::Broadcast, "build.failed"),
        (Audience::Broadcast, "builder"),
        (Audience::Recipients(vec!["alice".into()]), "build"),
    ] {
        store
            .send_batch(&[new_send(audience, category)], HOUR)
            .await
            .expect("send");
    }
    let counts = |pairs: &[(&str, i64)]| {
        let mut counts = Counts::default();
        for (category, n) in pairs {
            counts.add(category, *n, *n);
        }
        counts
    };
    let muted = ["build".to_owned()];
    assert_eq!(
        store.counts("alice", &muted).await.expect("counts"),
        counts(&[("build", 1), ("builder", 1)]),
        "her own build notification stays, the build broadcasts go"
    );
    assert_eq!(
        store.counts("alice", &[]).await.expect("counts"),
        counts(&[("build", 2), ("build.failed", 1), ("builder", 1)])
    );
    assert_eq!(
        store
            .counts("bob", &["build.failed".to_owned()])
            .await
            .expect("counts"),
        counts(&[("build", 1), ("builder", 1)])
    );
    database.close().await;
}

/// Data stored before migration 0003 gets its counters: the database is migrated up to 0002
/// only (sqlx's `run_to`), given notifications and broadcast reads with plain INSERTs as the
/// old service wrote them, then opened the way the service opens it, which runs 0003 to
/// 0005. This exercises the migrations' own SQL on real old rows (broadcast reads become
/// broadcast states; what was read is seen), rather than re-running the counting in the test.
async fn migration_fills_counters_from_existing_data(backend: Backend) {
    let (_test_database, url) = TestDatabase::create(backend, "notifications.db").await;
    // (id, recipient, category, read_at)
    let rows: [(&str, Option<&str>, &str, Option<i64>); 8] = [
        (
            "0190a000-0000-7000-8000-000000000001",
            Some("alice"),
            "build",
            None,
        ),
        (
            "0190a000-0000-7000-8000-000000000002",
            Some("alice"),
            "build",
            None,
        ),
        (
            "0190a000-0000-7000-8000-000000000003",
            Some("alice"),
            "build",
            Some(5),
        ),
        (
            "0190a000-0000-7000-8000-000000000004",
            Some("alice"),
            "task",
            None,
        ),
        (
            "0190a000-0000-7000-8000-000000000005",
            Some("bob"),
            "task",
            Some(5),
        ),
        (
            "0190a000-0000-7000-8000-000000000006",
            None,
            "announcement",
            None,
        ),
        (
            "0190a000-0000-7000-8000-000000000007",
            None,
            "announcement",
            None,
        ),
        ("0190a000-0000-7000-8000-000000000008", None, "build", None),
    ];
    // (user, broadcast read)
    let reads = [
        ("alice", "0190a000-0000-7000-8000-000000000006"),
        ("bob", "0190a000-0000-7000-8000-000000000006"),
        ("bob", "0190a000-0000-7000-8000-000000000007"),
        ("bob", "0190a000-0000-7000-8000-000000000008"),
    ];
    const INSERT: &str = "INSERT INTO notifications (id, send_id, recipient_id, category, \
         content, link, sender_id, created_at, read_at, seq) \
         VALUES ($1, $2, $3, $4, 'old', '', 'service', 1, $5, $6)";
    const READ: &str =
        "INSERT INTO broadcast_reads (user_id, notification_id, read_at) VALUES ($1, $2, 5)";
    macro_rules! fill_up_to_0002 {
        ($pool:expr, $migrator:expr) => {{
            let pool = $pool;
            $migrator.run_to(2, &pool).await.expect("migrate to 0002");
            for (seq, &(id, recipient, category, read_at)) in rows.iter().enumerate() {
                sqlx::query(INSERT)
                    .bind(id)
                    .bind(id)
                    .bind(recipient)
                    .bind(category)
                    .bind(read_at)
                    .bind(seq as i64 + 1)
                    .execute(&pool)
                    .await
                    .expect("old notification");
            }
            for (user, id) in reads {
                sqlx::query(READ)
                    .bind(user)
                    .bind(id)
                    .execute(&pool)
                    .await
                    .expect("old read");
            }
            pool.close().await;
        }};
    }
    match backend {
        Backend::Sqlite => {
            use std::str::FromStr;
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(&url)
                .expect("url")
                .create_if_missing(true);
            let pool = sqlx::SqlitePool::connect_with(options).await.expect("open");
            fill_up_to_0002!(pool, MIGRATIONS.sqlite);
        }
        Backend::Postgres => {
            let pool = sqlx::PgPool::connect(&url).await.expect("connect");
            fill_up_to_0002!(pool, MIGRATIONS.postgres);
        }
    }

    let database = db::connect(&url, &MIGRATIONS)
        .await
        .expect("migrate to the latest");
    let store = store::for_database(&database);
    // What was read is seen, so unseen equals unread everywhere.
    let counts = |pairs: &[(&str, i64)]| {
        let mut counts = Counts::default();
        for (category, n) in pairs {
            counts.add(category, *n, *n);
        }
        counts
    };
    assert_eq!(
        store.counts("alice", &[]).await.expect("counts"),
        counts(&[("announcement", 1), ("build", 3), ("task", 1)])
    );
    assert_eq!(store.counts("bob", &[]).await.expect("counts"), counts(&[]));
    assert_eq!(
        store.counts("carol", &[]).await.expect("counts"),
        counts(&[("announcement", 2), ("build", 1)])
    );
    assert_store_matches(&database, store.as_ref(), "migration 0005").await;
    assert_eq!(rows_in(&database, "broadcast_states").await, 4);

    // The filled counters are the ones later writes keep moving.
    let all = Selection::All {
        category: None,
        read: ReadFilter::All,
    };
    let marked = store
        .change("alice", Change::Read, &all, 10)
        .await
        .expect("mark all");
    assert_eq!((marked.count, marked.counts), (5, Counts::default()));
    let unread = store
        .change("bob", Change::Unread, &all, 11)
        .await
        .expect("mark all unread");
    assert_eq!(unread.count, 4, "his direct one and three broadcasts");
    assert_eq!(unread.counts.total_unseen(), 0, "still seen");
    assert_store_matches(&database, store.as_ref(), "changes after 0005").await;
    database.close().await;
}

/// Two replicas on one PostgreSQL database take concurrent state changes of the same users'
/// notifications (direct and broadcast, by ids and by `all`) while Sends keep arriving: every
/// counter still equals a count from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_changes_on_two_replicas_keep_counts_exact() {
    let app = spawn_app(Backend::Postgres).await;
    let replica = spawn_replica(&app).await;
    let mut service = app.user("service");
    let sent = mixed_history(&mut service, 20, 4, &["alice", "bob"]).await;
    let mut workers = Vec::new();
    for (w, server) in [&app, &replica, &app, &replica].into_iter().enumerate() {
        let clients = [server.user("alice"), server.user("bob")];
        let sent = sent.clone();
        workers.push(tokio::spawn(async move {
            let mut rng = Lcg(w as u64 + 7);
            let mut clients = clients;
            for _ in 0..40 {
                let client = &mut clients[rng.below(2)];
                let selection = random_selection(&mut rng, &sent);
                let rpc = rng.pick(&StateRpc::ALL);
                apply(client, rpc, selection).await;
            }
        }));
    }
    let sender = tokio::spawn({
        let mut service = replica.user("service");
        async move {
            for i in 0..20 {
                send(
                    &mut service,
                    send_to(&["alice", "bob"], &format!("late {i}")),
                )
                .await;
            }
        }
    });
    for worker in workers {
        worker.await.expect("worker");
    }
    sender.await.expect("sender");
    for user in ["alice", "bob", "carol"] {
        assert_counts_match(&app, user, "concurrent changes").await;
        assert_counts_match(&replica, user, "concurrent changes").await;
    }
}

switchboard::both_backends!(
    counters_follow_a_random_history,
    prune_keeps_counters_exact,
    counts_leave_out_muted_broadcasts_only,
    migration_fills_counters_from_existing_data,
);
