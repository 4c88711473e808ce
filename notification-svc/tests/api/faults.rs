//! Faults survived: a crash (SIGKILL) under load, and many concurrent SQLite writers.

use std::{collections::HashSet, time::Duration};

use switchboard::{
    identity::ForwardIdentity,
    proto::notification::v1::{
        self as pb, notification_service_client::NotificationServiceClient,
        subscribe_response::Event,
    },
    testing::TestDatabase,
};
use tonic::{Code, transport::Endpoint};

use crate::{binary::start_binary, helpers::*};

fn client_at(
    addr: &str,
    user: &str,
) -> NotificationServiceClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, ForwardIdentity>,
> {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect_timeout(Duration::from_millis(500))
        .connect_lazy();
    NotificationServiceClient::with_interceptor(
        channel,
        ForwardIdentity::new(caller(user, ALL_SCOPES), INTERNAL_TOKEN),
    )
}

/// Commit positions of `ids`, straight from the database.
async fn positions(url: &str, ids: &[String]) -> Vec<i64> {
    let query = "SELECT seq FROM notifications WHERE id = $1";
    let mut out = Vec::new();
    if url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(url).await.unwrap();
        for id in ids {
            out.push(
                sqlx::query_scalar(query)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap(),
            );
        }
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        for id in ids {
            out.push(
                sqlx::query_scalar(query)
                    .bind(id)
                    .fetch_one(&pool)
                    .await
                    .unwrap(),
            );
        }
    }
    out
}

async fn a_crash_under_load_loses_no_acknowledged_notification(backend: Backend) {
    let (_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let mut server = start_binary(&url, None);
    let addr = server.addr.clone();
    let anchor = client_at(&addr, "service")
        .send(send_to(&["alice"], "anchor"))
        .await
        .unwrap()
        .into_inner()
        .notifications
        .remove(0);

    // Senders keep sending through the crash; only acknowledged Sends count.
    let stop_sending = tokio_util::sync::CancellationToken::new();
    let mut senders = Vec::new();
    for worker in 0..4 {
        let addr = addr.clone();
        let stop = stop_sending.clone();
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            let mut i = 0;
            while !stop.is_cancelled() {
                i += 1;
                let request = send_to(&["alice"], &format!("w{worker} n{i}"));
                match client_at(&addr, "service").send(request).await {
                    Ok(response) => acknowledged.extend(ids(&response.into_inner().notifications)),
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                }
            }
            acknowledged
        }));
    }

    // A subscriber reads until the crash ends its stream.
    let mut received = Vec::new();
    let mut stream = client_at(&addr, "alice")
        .subscribe(pb::SubscribeRequest {
            resume_after: anchor.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    while received.len() < 50 {
        if let Some(Event::Notification(n)) = stream.message().await.unwrap().unwrap().event {
            received.push(n.id);
        }
    }
    let status = server.signal_and_wait("-KILL");
    assert!(!status.success(), "killed");
    // Drain what was already on the wire before the crash.
    while let Ok(Some(message)) = stream.message().await {
        if let Some(Event::Notification(n)) = message.event {
            received.push(n.id);
        }
    }

    // Restart on the same database and port; keep sending a little, then stop.
    let _restarted = start_binary(&url, Some(addr.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop_sending.cancel();
    let mut acknowledged = HashSet::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }

    // Resume with the last id seen: every acknowledged notification exactly once, in order.
    let mut stream = client_at(&addr, "alice")
        .subscribe(pb::SubscribeRequest {
            resume_after: received.last().cloned().unwrap_or(anchor.id.clone()),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while !acknowledged.iter().all(|id| received.contains(id)) {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("every acknowledged notification arrives")
            .unwrap()
            .unwrap();
        if let Some(Event::Notification(n)) = message.event {
            received.push(n.id);
        }
    }
    assert_eq!(
        received.iter().collect::<HashSet<_>>().len(),
        received.len(),
        "exactly once"
    );
    let order = positions(&url, &received).await;
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in commit order");
    assert!(
        acknowledged.len() > 50,
        "the test really sent under load ({})",
        acknowledged.len()
    );
}

async fn two_hundred_concurrent_writers_never_see_a_locked_database(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut service = app.user("service");
        let mut reader = app.user(&format!("user-{}", i % 20));
        tasks.push(tokio::spawn(async move {
            service
                .send(send_to(&[&format!("user-{}", i % 20)], &format!("n{i}")))
                .await
                .map(|_| ())?;
            reader
                .mark_read(pb::MarkReadRequest {
                    all: true,
                    ..Default::default()
                })
                .await
                .map(|_| ())
        }));
    }
    for task in tasks {
        if let Err(status) = task.await.unwrap() {
            assert_ne!(status.code(), Code::Unavailable, "{status:?}");
            panic!("a writer failed: {status:?}");
        }
    }
    let mut total = 0;
    for i in 0..20 {
        total += list_all(&mut app.user(&format!("user-{i}")))
            .await
            .notifications
            .len();
    }
    assert_eq!(total, 200);
}

async fn sigterm_drains_in_bounded_time_and_keeps_what_was_acknowledged(backend: Backend) {
    let (_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let mut server = start_binary(&url, None);
    let addr = server.addr.clone();

    // A health watcher, a live stream, and a stream whose client never reads.
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut watch = tonic_health::pb::health_client::HealthClient::new(channel)
        .watch(tonic_health::pb::HealthCheckRequest::default())
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(
        first.status(),
        tonic_health::pb::health_check_response::ServingStatus::Serving
    );
    let mut live = client_at(&addr, "alice")
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let _stalled = client_at(&addr, "bob")
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();

    // Sends in flight while the signal arrives.
    let mut senders = Vec::new();
    for worker in 0..8 {
        let addr = addr.clone();
        senders.push(tokio::spawn(async move {
            let mut acknowledged = Vec::new();
            for i in 0..200 {
                let request = send_to(&["alice", "bob"], &format!("w{worker} n{i}"));
                match client_at(&addr, "service").send(request).await {
                    Ok(response) => acknowledged.extend(ids(&response.into_inner().notifications)),
                    Err(_) => break,
                }
            }
            acknowledged
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    let status = tokio::task::spawn_blocking(move || {
        let status = server.signal_and_wait("-TERM");
        (status, server)
    })
    .await
    .unwrap();
    assert!(status.0.success(), "clean exit: {:?}", status.0);
    assert!(
        started.elapsed() < Duration::from_secs(12),
        "bounded: {:?}",
        started.elapsed()
    );

    // Health said NOT_SERVING before the end; the live stream ended with UNAVAILABLE.
    let mut saw_not_serving = false;
    while let Ok(Some(update)) = watch.message().await {
        saw_not_serving |=
            update.status() == tonic_health::pb::health_check_response::ServingStatus::NotServing;
    }
    assert!(saw_not_serving, "health turned NOT_SERVING while draining");
    let end = loop {
        match live.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(end.code(), Code::Unavailable, "{end:?}");

    // Every acknowledged Send is there after a restart.
    let mut acknowledged = HashSet::new();
    for sender in senders {
        acknowledged.extend(sender.await.unwrap());
    }
    assert!(!acknowledged.is_empty());
    drop(status.1);
    let _restarted = start_binary(&url, Some(addr.clone()));
    let mut stored = HashSet::new();
    for user in ["alice", "bob"] {
        let mut token = String::new();
        loop {
            let page = client_at(&addr, user)
                .list(pb::ListRequest {
                    page_size: 500,
                    page_token: token.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            stored.extend(ids(&page.notifications));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    assert!(
        acknowledged.is_subset(&stored),
        "nothing acknowledged is lost"
    );
}

switchboard::both_backends!(
    sigterm_drains_in_bounded_time_and_keeps_what_was_acknowledged,
    a_crash_under_load_loses_no_acknowledged_notification,
    two_hundred_concurrent_writers_never_see_a_locked_database,
);
