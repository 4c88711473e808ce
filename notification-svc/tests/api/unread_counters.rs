//! The unread counters (migration 0003) against the truth they stand for.
//!
//! List and MarkRead read unread totals from counters kept in step by every write; a write
//! that forgets them, or counts a change twice, shows up here as a difference from an
//! independent count: notifications listed and counted client-side through the API, or the
//! COUNT over history the counters replaced, run straight against the database.

use std::collections::BTreeMap;

use notification_svc::{
    domain::{Audience, MarkTarget, NewSend, UnreadCounts},
    store::{self, MIGRATIONS, NotificationStore},
};
use switchboard::{
    db::{self, Database},
    proto::notification::v1::{self as pb, ReadState},
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

/// The user's unread notifications counted client-side: every notification listed page by
/// page (state unspecified), the unread ones counted by category. Also returns the totals the
/// first page reported.
async fn counted_by_listing(client: &mut Client) -> (BTreeMap<String, i64>, pb::ListResponse) {
    let mut counted = BTreeMap::new();
    let mut token = String::new();
    let mut first = None;
    loop {
        let page = list(
            client,
            pb::ListRequest {
                page_size: 500,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        for n in page.notifications.iter().filter(|n| !n.read) {
            *counted.entry(n.category.clone()).or_insert(0) += 1;
        }
        token = page.next_page_token.clone();
        first.get_or_insert(page);
        if token.is_empty() {
            break;
        }
    }
    (counted, first.expect("one page at least"))
}

/// Asserts that List's totals for `user` match a client-side count, with every state filter
/// (the totals ignore it) and a state-filtered listing agreeing on the total.
async fn assert_totals_match(app: &TestApp, user: &str, context: &str) -> i64 {
    let mut client = app.user(user);
    let (counted, page) = counted_by_listing(&mut client).await;
    let total: i64 = counted.values().sum();
    let reported: BTreeMap<String, i64> = page.unread_by_category.clone().into_iter().collect();
    assert_eq!(reported, counted, "{user} by category after {context}");
    assert_eq!(page.total_unread, total, "{user} total after {context}");
    let unread_only = list(
        &mut client,
        pb::ListRequest {
            state: ReadState::Unread.into(),
            page_size: 500,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(unread_only.notifications.len() as i64, total, "{context}");
    assert_eq!(unread_only.total_unread, total, "{context}");
    total
}

/// A deterministic mix of every write that moves a counter (direct sends to several users
/// and categories, broadcasts, repeated idempotent sends, marks by id including already
/// read, foreign, unknown and broadcast ids, mark-all with and without a category); after each
/// MarkRead its `total_unread` and, every few steps and at the end, List's totals of every
/// user are checked against a client-side count.
async fn counters_follow_a_random_history(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let mut rng = Lcg(0x5eed);
    let mut sent: Vec<String> = Vec::new();
    for step in 0..150 {
        let roll = rng.below(100);
        let context = format!("step {step}");
        if roll < 40 {
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
        } else if roll < 50 {
            let request = pb::SendRequest {
                category: rng.pick(&CATEGORIES).to_string(),
                ..broadcast(&context)
            };
            sent.extend(sent_ids(&mut service, request).await);
        } else {
            let request = if roll < 85 && !sent.is_empty() {
                let mut chosen: Vec<String> =
                    (0..1 + rng.below(4)).map(|_| rng.pick(&sent)).collect();
                if rng.below(5) == 0 {
                    chosen.push(uuid::Uuid::now_v7().to_string());
                }
                pb::MarkReadRequest {
                    ids: chosen,
                    ..Default::default()
                }
            } else {
                let category = match rng.below(3) {
                    0 => String::new(),
                    _ => rng.pick(&CATEGORIES).to_string(),
                };
                pb::MarkReadRequest {
                    all: true,
                    category,
                    ..Default::default()
                }
            };
            let user = rng.pick(&USERS);
            let marked = app
                .user(user)
                .mark_read(request)
                .await
                .expect("mark read")
                .into_inner();
            let total = assert_totals_match(&app, user, &context).await;
            assert_eq!(marked.total_unread, total, "unread_left after {context}");
        }
        if step % 25 == 0 {
            for user in USERS {
                assert_totals_match(&app, user, &context).await;
            }
        }
    }
    let mut grand_total = 0;
    for user in USERS.into_iter().chain(["nobody"]) {
        grand_total += assert_totals_match(&app, user, "the whole history").await;
    }
    assert!(grand_total > 0, "the history leaves something unread");
}

/// The COUNT over history that the counters replaced (the query List ran before migration
/// 0003), run straight against the database: the oracle of the store-level tests.
async fn counted_by_sql(database: &Database, user: &str) -> UnreadCounts {
    const COUNT: &str = "SELECT category, COUNT(*) AS unread FROM ( \
           SELECT category FROM notifications WHERE recipient_id = $1 AND read_at IS NULL \
           UNION ALL \
           SELECT n.category FROM notifications n WHERE n.recipient_id IS NULL \
             AND NOT EXISTS (SELECT 1 FROM broadcast_reads br \
                             WHERE br.notification_id = n.id AND br.user_id = $2) \
         ) AS u GROUP BY category ORDER BY category";
    let by_category: Vec<(String, i64)> = match database {
        Database::Sqlite(pools) => sqlx::query_as(COUNT)
            .bind(user)
            .bind(user)
            .fetch_all(&pools.read)
            .await
            .expect("count"),
        Database::Postgres(pool) => sqlx::query_as(COUNT)
            .bind(user)
            .bind(user)
            .fetch_all(pool)
            .await
            .expect("count"),
    };
    UnreadCounts { by_category }
}

async fn assert_store_matches(
    database: &Database,
    store: &dyn NotificationStore,
    context: &str,
) -> i64 {
    let mut total = 0;
    for user in USERS.into_iter().chain(["nobody"]) {
        let expected = counted_by_sql(database, user).await;
        let counters = store.unread(user).await.expect("unread");
        assert_eq!(counters, expected, "{user} after {context}");
        total += counters.total();
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

/// Prune takes exactly the deleted notifications' share off the counters: old unread and read
/// direct notifications, old broadcasts read by some users and not others, next to newer ones
/// that stay. Checked against the COUNT over history after each prune.
async fn prune_keeps_counters_exact(backend: Backend) {
    let (_test_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let database = db::connect(&url, &MIGRATIONS).await.expect("connect");
    let store = store::for_database(&database);
    let mut rng = Lcg(42);
    let mut sent = Vec::new();
    // Ten "hours" of history, a mix of sends and reads in each.
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
        for _ in 0..3 {
            let user = rng.pick(&USERS);
            let target = if rng.below(4) == 0 {
                MarkTarget::All {
                    category: Some(rng.pick(&CATEGORIES).to_string()),
                }
            } else {
                MarkTarget::Ids((0..3).map(|_| rng.pick(&sent)).collect())
            };
            store
                .mark_read(user, &target, now)
                .await
                .expect("mark read");
        }
    }
    let before = assert_store_matches(&database, store.as_ref(), "the history").await;
    assert!(before > 0);

    for cutoff_hour in [3, 7, 11] {
        store.prune(cutoff_hour * HOUR).await.expect("prune");
        assert_store_matches(
            &database,
            store.as_ref(),
            &format!("prune before {cutoff_hour}h"),
        )
        .await;
    }
    // Everything pruned: no counter row is left behind, not even at zero.
    for table in ["unread_counts", "broadcast_counts", "broadcast_read_counts"] {
        let query = sqlx::AssertSqlSafe(format!("SELECT COUNT(*) FROM {table}"));
        let rows: i64 = match &database {
            Database::Sqlite(pools) => sqlx::query_scalar(query).fetch_one(&pools.read).await,
            Database::Postgres(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
        }
        .expect("count rows");
        assert_eq!(rows, 0, "{table} is empty once everything is pruned");
    }
    // And counting starts again from zero.
    store
        .send_batch(&[new_send(Audience::Broadcast, "build")], 12 * HOUR)
        .await
        .expect("send");
    assert_eq!(
        assert_store_matches(&database, store.as_ref(), "a new broadcast").await,
        5
    );
    database.close().await;
}

/// Data stored before migration 0003 gets its counters: the database is migrated up to 0002
/// only (sqlx's `run_to`), given notifications and broadcast reads with plain INSERTs as the
/// old service wrote them, then opened the way the service opens it, which runs 0003. This
/// exercises the migration's own SQL on real pre-0003 rows, rather than re-running the
/// counting in the test.
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
        .expect("migrate to 0003");
    let store = store::for_database(&database);
    let unread = |pairs: &[(&str, i64)]| UnreadCounts {
        by_category: pairs.iter().map(|(c, n)| (c.to_string(), *n)).collect(),
    };
    assert_eq!(
        store.unread("alice").await.expect("unread"),
        unread(&[("announcement", 1), ("build", 3), ("task", 1)])
    );
    assert_eq!(store.unread("bob").await.expect("unread"), unread(&[]));
    assert_eq!(
        store.unread("carol").await.expect("unread"),
        unread(&[("announcement", 2), ("build", 1)])
    );
    assert_store_matches(&database, store.as_ref(), "migration 0003").await;

    // The filled counters are the ones later writes keep moving.
    let marked = store
        .mark_read("alice", &MarkTarget::All { category: None }, 10)
        .await
        .expect("mark all");
    assert_eq!((marked.count, marked.unread_left), (5, 0));
    assert_store_matches(&database, store.as_ref(), "mark all after 0003").await;
    database.close().await;
}

switchboard::both_backends!(
    counters_follow_a_random_history,
    prune_keeps_counters_exact,
    migration_fills_counters_from_existing_data,
);
