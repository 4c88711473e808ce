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

switchboard::both_backends!(
    a_crash_under_load_loses_no_acknowledged_notification,
    two_hundred_concurrent_writers_never_see_a_locked_database,
);
