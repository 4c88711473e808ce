//! Several replicas on one PostgreSQL database, and resuming under concurrent writers.

use std::{collections::HashSet, time::Duration};

use switchboard::proto::notification::v1::{self as pb, subscribe_response::Event};
use tonic::{Code, Streaming};

use crate::helpers::*;

async fn next(stream: &mut Streaming<pb::SubscribeResponse>) -> Event {
    // One deadline for the whole wait, so heartbeats cannot keep it alive forever.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("an event in time")
            .expect("stream ok")
            .expect("stream open");
        match message.event.expect("event") {
            // Counts come after every change; `inbox_events.rs` follows them.
            Event::Heartbeat(_) | Event::Counts(_) => continue,
            event => return event,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_on_one_replica_sees_sends_and_reads_through_another() {
    let a = spawn_app(Backend::Postgres).await;
    let b = spawn_replica(&a).await;
    let mut on_a = a
        .user("alice")
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut bob_on_b = b
        .user("bob")
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap()
        .into_inner();

    let sent = send(&mut b.user("service"), send_to(&["alice"], "via b")).await;
    assert_eq!(next(&mut on_a).await, Event::Notification(sent[0].clone()));

    b.user("alice")
        .mark_read(pb::MarkReadRequest {
            ids: ids(&sent),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        next(&mut on_a).await,
        Event::Read(pb::ReadEvent {
            ids: ids(&sent),
            all: false,
            category: String::new(),
        })
    );

    let news = send(&mut a.user("ops"), broadcast("via a")).await;
    assert_eq!(
        next(&mut bob_on_b).await,
        Event::Notification(news[0].clone())
    );
    assert_eq!(next(&mut on_a).await, Event::Notification(news[0].clone()));
}

/// Commit positions of `ids`, read straight from the database.
async fn positions(database_url: &str, ids: &[String]) -> Vec<i64> {
    let pool = sqlx::PgPool::connect(database_url).await.unwrap();
    let mut out = Vec::new();
    for id in ids {
        let seq: i64 = sqlx::query_scalar("SELECT seq FROM notifications WHERE id = $1")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
        out.push(seq);
    }
    pool.close().await;
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_under_concurrent_writers_on_two_replicas_loses_nothing() {
    let a = spawn_app(Backend::Postgres).await;
    let b = spawn_replica(&a).await;
    // The subscriber starts from here; everything after it must arrive.
    let anchor = send(&mut a.user("service"), send_to(&["alice"], "anchor")).await;
    let per_writer = 60;
    let mut writers = Vec::new();
    for writer in 0..6 {
        // Writers on both replicas: ids are minted concurrently and commit out of id order.
        let mut client = if writer % 2 == 0 {
            a.user("service")
        } else {
            b.user("service")
        };
        writers.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..per_writer {
                let request = if i % 10 == 0 {
                    broadcast(&format!("w{writer} b{i}"))
                } else {
                    send_to(&["alice"], &format!("w{writer} n{i}"))
                };
                sent.extend(sent_ids(&mut client, request).await);
            }
            sent
        }));
    }

    // A subscriber that drops its stream every few notifications and resumes with the last
    // id it saw, alternating replicas.
    let total = 6 * per_writer;
    let mut received: Vec<String> = Vec::new();
    let mut last = anchor[0].id.clone();
    let mut reconnects = 0;
    while received.len() < total {
        let replica = if reconnects % 2 == 0 { &a } else { &b };
        let request = pb::SubscribeRequest {
            resume_after: last.clone(),
            ..Default::default()
        };
        let mut stream = replica
            .user("alice")
            .subscribe(request)
            .await
            .unwrap()
            .into_inner();
        for _ in 0..(7 + reconnects % 5) {
            if received.len() == total {
                break;
            }
            if let Event::Notification(n) = next(&mut stream).await {
                last = n.id.clone();
                received.push(n.id);
            }
        }
        reconnects += 1;
    }
    let mut sent = HashSet::new();
    for writer in writers {
        sent.extend(writer.await.unwrap());
    }
    assert!(
        reconnects > 20,
        "the subscriber really reconnected ({reconnects})"
    );
    assert_eq!(
        received.iter().collect::<HashSet<_>>().len(),
        total,
        "exactly once"
    );
    assert_eq!(
        received.iter().cloned().collect::<HashSet<_>>(),
        sent,
        "nothing lost"
    );
    let order = positions(&a.database_url, &received).await;
    assert!(order.windows(2).all(|w| w[0] < w[1]), "in commit order");
}

async fn a_resume_point_past_retention_is_refused_as_such(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.retention = Duration::from_secs(24 * 3600)).await;
    let two_days_ago = uuid::Timestamp::from_unix(
        uuid::NoContext,
        (switchboard::time::now_micros() / 1_000_000 - 2 * 24 * 3600) as u64,
        0,
    );
    let expired = uuid::Uuid::new_v7(two_days_ago).to_string();
    let status = app
        .user("alice")
        .subscribe(pb::SubscribeRequest {
            resume_after: expired,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange, "{status:?}");
    assert!(status.message().contains("retained"), "{status:?}");

    // A recent id the caller cannot see is unknown, not a silent empty replay.
    let bobs = send(&mut app.user("service"), send_to(&["bob"], "private")).await;
    let status = app
        .user("alice")
        .subscribe(pb::SubscribeRequest {
            resume_after: bobs[0].id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "resume_after");
}

/// Two replicas batch MarkReads of the same user's notifications in opposite orders. Were
/// their transactions to lock those rows as they go, they would deadlock (PostgreSQL then
/// aborts one, and its batch is retried one MarkRead at a time): every call succeeds, in
/// whole batches, and the counters match the rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_mark_reads_on_two_replicas_all_succeed() {
    let a = spawn_app(Backend::Postgres).await;
    let b = spawn_replica(&a).await;
    let mut service = a.user("service");
    let mut targets = Vec::new();
    for round in 0..5 {
        for i in 0..20 {
            targets
                .extend(sent_ids(&mut service, send_to(&["alice"], &format!("{round}.{i}"))).await);
        }
        targets.extend(sent_ids(&mut a.user("ops"), broadcast(&format!("news {round}"))).await);
        let mut calls = Vec::new();
        for (replica, order) in [(&a, false), (&b, true)] {
            let mut ids = targets.clone();
            if order {
                ids.reverse();
            }
            for pair in ids.chunks(2) {
                let mut client = replica.user("alice");
                let request = pb::MarkReadRequest {
                    ids: pair.to_vec(),
                    ..Default::default()
                };
                calls.push(tokio::spawn(async move { client.mark_read(request).await }));
            }
        }
        let mut marked = 0;
        for call in calls {
            marked += call
                .await
                .unwrap()
                .expect("every MarkRead succeeds")
                .into_inner()
                .marked;
        }
        assert_eq!(
            marked, 21,
            "round {round}: each of the 21 new ones marked once"
        );
        let page = list_all(&mut a.user("alice")).await;
        assert_eq!(page.total_unread, 0, "round {round}: the counters agree");
    }
    assert_eq!(
        (a.marks.refused(), b.marks.refused()),
        (0, 0),
        "no batch was refused (a deadlock) and retried one MarkRead at a time"
    );
}

switchboard::both_backends!(a_resume_point_past_retention_is_refused_as_such);
