//! Send and the recipients' mutes: a Send that is not critical stores nothing for a recipient
//! who muted its category (`build` covers `build.*`) and names them in `muted_recipient_ids`;
//! critical Sends and broadcasts are stored whatever the mutes; a mute that ends lets
//! notifications flow again; an idempotent repeat answers what the original did.

use std::time::Duration;

use futures::{FutureExt, future::BoxFuture};
use notification_svc::{
    domain::{Audience, NewSend},
    preferences::Mute,
    store::{self, MIGRATIONS},
};
use switchboard::{
    db,
    proto::notification::v1 as pb,
    testing::{TestDatabase, next_notification},
    time::{now_micros, to_timestamp},
};
use tonic::Status;

use crate::helpers::*;

fn in_category(category: &str, recipients: &[&str], content: &str) -> pb::SendRequest {
    pb::SendRequest {
        category: category.into(),
        ..send_to(recipients, content)
    }
}

async fn send_full(client: &mut Client, request: pb::SendRequest) -> pb::SendResponse {
    client.send(request).await.expect("send").into_inner()
}

fn recipients(notifications: &[pb::Notification]) -> Vec<&str> {
    notifications
        .iter()
        .map(|n| n.recipient_id.as_str())
        .collect()
}

/// How many notifications the database holds.
async fn stored(database_url: &str) -> i64 {
    let query = "SELECT COUNT(*) FROM notifications";
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        sqlx::query_scalar(query).fetch_one(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        sqlx::query_scalar(query).fetch_one(&pool).await.unwrap()
    }
}

async fn a_muted_recipient_gets_nothing_and_is_named(backend: Backend) {
    let app = spawn_app(backend).await;
    mute(&app, "alice", &["build"], None).await;
    let mut alice = app.user("alice");
    let mut live = subscribe(&mut alice, Default::default()).await;
    let mut ci = app.user("ci");

    let sent = send_full(
        &mut ci,
        in_category("build.ci", &["alice", "bob", "carol"], "nightly failed"),
    )
    .await;
    assert_eq!(recipients(&sent.notifications), ["bob", "carol"]);
    assert_eq!(sent.muted_recipient_ids, ["alice"]);
    let exact = send_full(&mut ci, in_category("build", &["alice", "bob"], "queued")).await;
    assert_eq!(
        exact.muted_recipient_ids,
        ["alice"],
        "the muted category itself"
    );
    // Dot boundaries: `buildx` and `builds.x` are other categories.
    for category in ["buildx", "builds.x"] {
        let other = send_full(&mut ci, in_category(category, &["alice"], category)).await;
        assert_eq!(recipients(&other.notifications), ["alice"], "{category}");
        assert!(other.muted_recipient_ids.is_empty());
    }

    let page = list_all(&mut alice).await;
    let categories: Vec<&str> = page
        .notifications
        .iter()
        .map(|n| n.category.as_str())
        .collect();
    assert_eq!(
        categories,
        ["builds.x", "buildx"],
        "nothing muted was stored for alice"
    );
    assert_eq!(page.total_unread, 2);
    assert_eq!(
        next_notification(&mut live).await.category,
        "buildx",
        "nor streamed"
    );
    assert_eq!(list_all(&mut app.user("bob")).await.notifications.len(), 2);
}

async fn critical_sends_and_broadcasts_ignore_mutes(backend: Backend) {
    let app = spawn_app(backend).await;
    mute(&app, "alice", &["incident", "announcement"], None).await;
    let mut pager = app.user("pager");
    let urgent = send_full(
        &mut pager,
        pb::SendRequest {
            critical: true,
            ..in_category("incident.db", &["alice", "bob"], "database down")
        },
    )
    .await;
    assert_eq!(recipients(&urgent.notifications), ["alice", "bob"]);
    assert!(urgent.muted_recipient_ids.is_empty());
    assert!(urgent.notifications.iter().all(|n| n.critical));

    let news = send_full(&mut app.user("ops"), broadcast("office closed")).await;
    assert_eq!(news.notifications.len(), 1, "a broadcast is stored once");
    assert!(news.muted_recipient_ids.is_empty());
    assert_eq!(stored(&app.database_url).await, 3);
}

async fn when_a_mute_ends_notifications_flow_again(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ci = app.user("ci");
    let until = now_micros() + 2_000_000;
    mute(&app, "alice", &["build"], Some(to_timestamp(until))).await;
    mute(&app, "bob", &["build"], None).await;
    let during = send_full(
        &mut ci,
        in_category("build", &["alice", "bob", "carol"], "during"),
    )
    .await;
    assert_eq!(recipients(&during.notifications), ["carol"]);
    // The store's own clock decides (the deterministic version is the store test below); a
    // machine that stalled past the mute's end before this Send committed leaves nothing to
    // check here.
    let committed = during.notifications[0].created_at.expect("created_at");
    if committed.seconds * 1_000_000 + i64::from(committed.nanos / 1000) < until {
        assert_eq!(during.muted_recipient_ids, ["alice", "bob"]);
    }

    // Wait (generously bounded, not measured) until alice's mute has ended for the service.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut alice = app.user("alice");
    while !alice
        .get_preferences(pb::GetPreferencesRequest {})
        .await
        .expect("get")
        .into_inner()
        .preferences
        .expect("set")
        .categories
        .is_empty()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mute never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let after = send_full(&mut ci, in_category("build", &["alice", "bob"], "after")).await;
    assert_eq!(
        recipients(&after.notifications),
        ["alice"],
        "alice's mute ended"
    );
    assert_eq!(after.muted_recipient_ids, ["bob"], "bob's has no end");

    mute(&app, "bob", &[], None).await;
    let unmuted = send_full(&mut ci, in_category("build", &["bob"], "unmuted")).await;
    assert_eq!(recipients(&unmuted.notifications), ["bob"]);
    for (user, expected) in [("alice", "after"), ("bob", "unmuted"), ("carol", "during")] {
        let page = list_all(&mut app.user(user)).await;
        let contents: Vec<&str> = page
            .notifications
            .iter()
            .map(|n| n.content.as_str())
            .collect();
        assert_eq!(
            contents,
            [expected],
            "{user}: what was skipped stays skipped"
        );
    }
}

async fn a_repeat_answers_what_the_original_did_whatever_the_mutes_now(backend: Backend) {
    let app = spawn_app(backend).await;
    mute(&app, "alice", &["deploy"], None).await;
    mute(&app, "carol", &["deploy"], None).await;
    let mut ci = app.user("ci");
    let request = pb::SendRequest {
        idempotency_key: "deploy-7".into(),
        ..in_category("deploy.prod", &["carol", "bob", "alice"], "deployed")
    };
    let original = send_full(&mut ci, request.clone()).await;
    assert_eq!(recipients(&original.notifications), ["bob"]);
    assert_eq!(
        original.muted_recipient_ids,
        ["carol", "alice"],
        "in request order"
    );

    // Mutes change: alice unmutes, bob mutes. The repeat still answers the original.
    mute(&app, "alice", &[], None).await;
    mute(&app, "bob", &["deploy"], None).await;
    let repeat = send_full(&mut ci, request).await;
    assert_eq!(repeat, original);
    assert!(
        list_all(&mut app.user("alice"))
            .await
            .notifications
            .is_empty()
    );

    // Every recipient muted: nothing stored, not an error, and the same on a repeat.
    let before = stored(&app.database_url).await;
    let all_muted = pb::SendRequest {
        idempotency_key: "deploy-8".into(),
        ..in_category("deploy", &["bob", "carol"], "deployed again")
    };
    let answer = send_full(&mut ci, all_muted.clone()).await;
    assert!(answer.notifications.is_empty());
    assert_eq!(answer.muted_recipient_ids, ["bob", "carol"]);
    assert_eq!(stored(&app.database_url).await, before, "nothing stored");
    mute(&app, "bob", &[], None).await;
    assert_eq!(send_full(&mut ci, all_muted).await, answer, "its repeat");
    assert_eq!(stored(&app.database_url).await, before, "nor by the repeat");
    gap_free_log(&app.database_url, "notifications").await;
}

/// The store on its own clock: a Send at a time before a mute's end skips the person, one at
/// or after it does not; a critical one never does.
async fn the_store_skips_by_the_mutes_in_force_at_the_sends_time(backend: Backend) {
    let (_test_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let database = db::connect(&url, &MIGRATIONS).await.expect("connect");
    let store = store::for_database(&database);
    const HOUR: i64 = 3_600_000_000;
    let until_two = [Mute {
        category: "build".into(),
        until: Some(2 * HOUR),
    }];
    store
        .replace_preferences("alice", &until_two, HOUR)
        .await
        .expect("mute");
    let send = |critical: bool| NewSend {
        caller_id: "ci".into(),
        audience: Audience::Recipients(vec!["alice".into(), "bob".into()]),
        category: "build.ci".into(),
        content: "x".into(),
        link: String::new(),
        sender_id: "ci".into(),
        idempotency_key: None,
        data: None,
        critical,
    };
    let at = |now: i64, critical: bool| {
        let store = store.clone();
        let send = send(critical);
        async move {
            let mut done = store.send_batch(&[send], now).await.expect("send");
            let done = done.pop().expect("one answer");
            let stored: Vec<String> = done
                .notifications
                .into_iter()
                .filter_map(|n| n.recipient_id)
                .collect();
            (stored, done.muted_recipient_ids)
        }
    };
    let (alice, bob) = ("alice".to_owned(), "bob".to_owned());
    assert_eq!(
        at(HOUR, false).await,
        (vec![bob.clone()], vec![alice.clone()])
    );
    assert_eq!(
        at(2 * HOUR - 1, false).await,
        (vec![bob.clone()], vec![alice.clone()])
    );
    assert_eq!(
        at(2 * HOUR - 1, true).await,
        (vec![alice.clone(), bob.clone()], vec![]),
        "critical"
    );
    assert_eq!(
        at(2 * HOUR, false).await,
        (vec![alice, bob], vec![]),
        "ended"
    );
    database.close().await;
}

fn fire(
    app: &TestApp,
    request: pb::SendRequest,
) -> BoxFuture<'static, Result<pb::SendResponse, Status>> {
    let mut client = app.user("ci");
    async move { client.send(request).await.map(|r| r.into_inner()) }.boxed()
}

/// Sends of one batch (held at the log head so they queue together) each skip their own
/// muted recipients: the batch's one mute lookup serves every Send in it.
async fn each_send_of_a_batch_skips_its_own_muted_recipients(backend: Backend) {
    let app = spawn_app(backend).await;
    mute(&app, "alice", &["build"], None).await;
    mute(&app, "bob", &["chat", "build.ci"], None).await;
    let requests = [
        in_category("task", &["alice", "bob"], "first"),
        in_category("build.ci", &["alice", "bob", "carol"], "ci"),
        in_category("build", &["alice", "bob"], "build"),
        in_category("chat", &["alice", "bob"], "chat"),
        pb::SendRequest {
            critical: true,
            ..in_category("chat", &["bob"], "critical chat")
        },
        in_category("chat.dm", &["bob"], "every recipient muted"),
    ];
    let before = app.commits.batches();
    let calls = requests.iter().cloned().map(|r| fire(&app, r)).collect();
    let answers = burst_behind(&app, &app.commits, "notifications", calls).await;
    assert!(
        app.commits.batches() - before <= 2,
        "the Sends were batched"
    );

    let answers: Vec<(Vec<&str>, Vec<&str>)> = answers
        .iter()
        .map(|answer| {
            let answer = answer.as_ref().expect("send");
            let muted = answer
                .muted_recipient_ids
                .iter()
                .map(String::as_str)
                .collect();
            (recipients(&answer.notifications), muted)
        })
        .collect();
    assert_eq!(
        answers,
        [
            (vec!["alice", "bob"], vec![]),
            (vec!["carol"], vec!["alice", "bob"]),
            (vec!["bob"], vec!["alice"]),
            (vec!["alice"], vec!["bob"]),
            (vec!["bob"], vec![]),
            (vec![], vec!["bob"]),
        ]
    );
    gap_free_log(&app.database_url, "notifications").await;
}

switchboard::both_backends!(
    a_muted_recipient_gets_nothing_and_is_named,
    critical_sends_and_broadcasts_ignore_mutes,
    when_a_mute_ends_notifications_flow_again,
    a_repeat_answers_what_the_original_did_whatever_the_mutes_now,
    each_send_of_a_batch_skips_its_own_muted_recipients,
    the_store_skips_by_the_mutes_in_force_at_the_sends_time,
);
