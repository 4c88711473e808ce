//! Group commit: concurrent Sends share transactions, yet every Send keeps its own answer,
//! idempotency holds inside a batch and across batches, and the log stays gap-free.
//!
//! To make batching deterministic, the tests hold the log head from a connection of their
//! own (`HeadLock`): the batch the committer is working on waits at its first write, every
//! Send arriving meanwhile queues, and releasing the lock lets the queue go in as one batch.
//! No assertion depends on timing.

use std::collections::{HashMap, HashSet};

use futures::{
    FutureExt,
    future::{BoxFuture, join_all},
};
use switchboard::{proto::notification::v1 as pb, testing::next_notification};
use tonic::{Code, Status};

use crate::helpers::*;

fn fire(
    app: &TestApp,
    user: &str,
    request: pb::SendRequest,
) -> BoxFuture<'static, Result<Vec<pb::Notification>, Status>> {
    let mut client = app.user(user);
    async move {
        client
            .send(request)
            .await
            .map(|r| r.into_inner().notifications)
    }
    .boxed()
}

/// The Sends in a burst held at the notification log's head (see [`burst_behind`]).
async fn burst(
    app: &TestApp,
    requests: Vec<(&str, pb::SendRequest)>,
) -> Vec<Result<Vec<pb::Notification>, Status>> {
    let calls = requests
        .into_iter()
        .map(|(user, request)| fire(app, user, request))
        .collect();
    burst_behind(app, &app.commits, "notifications", calls).await
}

async fn fifty_concurrent_sends_commit_in_at_most_three_transactions(backend: Backend) {
    let app = spawn_app(backend).await;
    let before = app.commits.batches();
    let requests = (0..50)
        .map(|i| ("service", send_to(&["alice"], &format!("burst {i}"))))
        .collect();
    let results = burst(&app, requests).await;
    let mut sent = HashSet::new();
    for result in results {
        let notifications = result.expect("send");
        assert_eq!(notifications.len(), 1);
        assert!(sent.insert(notifications[0].id.clone()), "ids are distinct");
    }
    let batches = app.commits.batches() - before;
    assert!(
        batches <= 3,
        "50 Sends queued behind one commit went in {batches} transactions"
    );
    assert_eq!(app.commits.committed(), 50);
    let stored: HashSet<_> = ids(&list_all(&mut app.user("alice")).await.notifications)
        .into_iter()
        .collect();
    assert_eq!(stored, sent, "every acknowledged Send is stored, once");
}

async fn repeated_keys_inside_one_batch_and_across_batches_create_once(backend: Backend) {
    let app = spawn_app(backend).await;
    // A key committed before the burst: its repeats must come from the database.
    let earlier = send(
        &mut app.user("svc-a"),
        pb::SendRequest {
            idempotency_key: "earlier".into(),
            ..send_to(&["alice", "bob"], "earlier")
        },
    )
    .await;

    // Each of two callers (keys are per caller) uses k0..k3 several times and one more key
    // (svc-a: the earlier one), with Sends without a key in between.
    let mut requests = Vec::new();
    for i in 0..48 {
        let (user, j) = (if i % 2 == 0 { "svc-a" } else { "svc-b" }, i / 2);
        let key = match j % 6 {
            0 => String::new(),
            5 if user == "svc-a" => "earlier".to_owned(),
            5 => "k4".to_owned(),
            n => format!("k{}", n % 4),
        };
        let request = pb::SendRequest {
            idempotency_key: key,
            ..send_to(&["alice", "bob"], &format!("send {i}"))
        };
        requests.push((user, request));
    }
    let keys: Vec<(String, String)> = requests
        .iter()
        .map(|(user, r)| (user.to_string(), r.idempotency_key.clone()))
        .collect();
    let before = app.commits.batches();
    let results = burst(&app, requests).await;
    assert!(
        app.commits.batches() - before <= 2,
        "the repeats were committed together, not one by one"
    );

    let mut by_key: HashMap<(String, String), Vec<String>> = HashMap::new();
    let mut every_id = HashSet::new();
    let mut unkeyed = 0;
    for ((user, key), result) in keys.into_iter().zip(results) {
        let got = ids(&result.expect("send"));
        if key == "earlier" {
            assert_eq!(
                got,
                ids(&earlier),
                "a key committed earlier returns the original"
            );
        }
        if key.is_empty() {
            unkeyed += 1;
            assert_eq!(got.len(), 2);
            assert!(got.iter().all(|id| every_id.insert(id.clone())));
            continue;
        }
        match by_key.get(&(user.clone(), key.clone())) {
            Some(first) => assert_eq!(&got, first, "{user}/{key}: every repeat gets the same ids"),
            None => {
                assert_eq!(got.len(), 2);
                assert!(
                    got.iter().all(|id| every_id.insert(id.clone())),
                    "{user}/{key}: distinct keys never share notifications"
                );
                by_key.insert((user, key), got);
            }
        }
    }
    // Two callers x five keys (svc-a's "earlier" stored before the burst).
    assert_eq!((by_key.len(), unkeyed), (10, 8));
    let stored = list(
        &mut app.user("bob"),
        pb::ListRequest {
            page_size: 500,
            ..Default::default()
        },
    )
    .await
    .notifications;
    let stored_ids: Vec<String> = ids(&stored);
    let distinct: HashSet<_> = stored_ids.iter().cloned().collect();
    assert_eq!(distinct.len(), stored_ids.len(), "nothing stored twice");
    assert_eq!(
        stored.len(),
        by_key.len() + unkeyed,
        "one notification for bob per distinct key and per Send without one"
    );
}

/// `user`'s Subscribe stream resuming after notification `id`.
async fn subscribe_after(
    app: &TestApp,
    user: &str,
    id: &str,
) -> tonic::Streaming<pb::SubscribeResponse> {
    let request = pb::SubscribeRequest {
        resume_after: id.to_owned(),
        ..Default::default()
    };
    subscribe(&mut app.user(user), request).await
}

async fn concurrent_sends_leave_a_gap_free_log_seen_exactly_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let anchor = send(&mut app.user("service"), send_to(&["reader"], "anchor")).await;
    let mut live = subscribe_after(&app, "reader", &anchor[0].id).await;

    // Natural batching (nothing held): direct Sends, Sends to several people, broadcasts.
    const SENDS: usize = 120;
    let calls: Vec<_> = (0..SENDS)
        .map(|i| {
            let content = format!("concurrent {i}");
            let request = match i % 3 {
                0 => broadcast(&content),
                1 => send_to(&["reader"], &content),
                _ => send_to(&[&format!("x{i}"), "reader", &format!("y{i}")], &content),
            };
            tokio::spawn(fire(&app, "service", request))
        })
        .collect();
    let mut expected = HashSet::new();
    for call in join_all(calls).await {
        for n in call.expect("send task").expect("send") {
            if n.broadcast || n.recipient_id == "reader" {
                expected.insert(n.id);
            }
        }
    }
    assert_eq!(expected.len(), SENDS);
    let end = send(&mut app.user("service"), send_to(&["reader"], "end")).await;

    // The log: positions 1..=head, no gap, no repeat.
    let (rows, _) = gap_free_log(&app.database_url, "notifications").await;
    let position: HashMap<String, i64> = rows.into_iter().collect();

    // Live and resumed from the start, the reader sees each exactly once, in log order.
    let mut resumed = subscribe_after(&app, "reader", &anchor[0].id).await;
    for (name, stream) in [("live", &mut live), ("resumed", &mut resumed)] {
        let mut seen = Vec::new();
        loop {
            let n = next_notification(stream).await;
            if n.id == end[0].id {
                break;
            }
            seen.push(n.id);
        }
        let distinct: HashSet<String> = seen.iter().cloned().collect();
        assert_eq!(distinct.len(), seen.len(), "{name}: no duplicate");
        assert_eq!(distinct, expected, "{name}: every notification");
        let order: Vec<i64> = seen.iter().map(|id| position[id]).collect();
        assert!(order.is_sorted(), "{name}: in log order");
    }
}

/// Makes the database refuse any notification whose content is `poison`, as a constraint
/// or a disk problem would refuse one Send.
async fn install_poison(database_url: &str) {
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        sqlx::query(
            "CREATE TRIGGER poison BEFORE INSERT ON notifications WHEN NEW.content = 'poison' \
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
        )
        .execute(&pool)
        .await
        .unwrap();
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        sqlx::raw_sql(
            "CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
               IF NEW.content = 'poison' THEN RAISE EXCEPTION 'poisoned'; END IF; \
               RETURN NEW; END $$; \
             CREATE TRIGGER poison BEFORE INSERT ON notifications \
               FOR EACH ROW EXECUTE FUNCTION poison();",
        )
        .execute(&pool)
        .await
        .unwrap();
    }
}

async fn a_send_the_database_refuses_fails_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    install_poison(&app.database_url).await;
    let requests = (0..20)
        .map(|i| {
            let content = if i == 7 {
                "poison".to_owned()
            } else {
                format!("fine {i}")
            };
            ("service", send_to(&["alice"], &content))
        })
        .collect();
    let results = burst(&app, requests).await;
    let mut stored = HashSet::new();
    for (i, result) in results.into_iter().enumerate() {
        if i == 7 {
            let status = result.expect_err("the poisoned Send fails");
            assert_eq!(status.code(), Code::Internal, "{status:?}");
            assert!(!status.message().contains("poisoned"), "no detail leaks");
        } else {
            stored.extend(ids(&result.unwrap_or_else(|s| panic!("send {i}: {s:?}"))));
        }
    }
    let listed: HashSet<_> = ids(&list_all(&mut app.user("alice")).await.notifications)
        .into_iter()
        .collect();
    assert_eq!(listed.len(), 19);
    assert_eq!(listed, stored, "the other 19 are stored, once");
}

switchboard::both_backends!(
    fifty_concurrent_sends_commit_in_at_most_three_transactions,
    repeated_keys_inside_one_batch_and_across_batches_create_once,
    concurrent_sends_leave_a_gap_free_log_seen_exactly_once,
    a_send_the_database_refuses_fails_alone,
);
