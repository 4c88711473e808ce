use std::{collections::HashSet, time::Duration};

use switchboard::proto::notification::v1::{self as pb, subscribe_response::Event};
use tonic::{Code, Streaming};

use crate::helpers::*;

const WAIT: Duration = Duration::from_secs(20);

/// The next event other than a heartbeat or counts.
async fn next_event(stream: &mut Streaming<pb::SubscribeResponse>) -> Event {
    // Counts come after every change; `inbox_events.rs` follows them.
    switchboard::testing::next_event(stream, |e| {
        matches!(e, Event::Heartbeat(_) | Event::Counts(_))
    })
    .await
}

async fn next_notification(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Notification {
    match next_event(stream).await {
        Event::Notification(n) => n,
        other => panic!("expected a notification, got {other:?}"),
    }
}

/// Asserts that nothing but heartbeats arrives for a short while.
async fn assert_quiet(stream: &mut Streaming<pb::SubscribeResponse>) {
    let quiet = tokio::time::timeout(Duration::from_millis(300), next_event(stream)).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
}

async fn delivers_own_and_broadcast_notifications_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = subscribe(&mut app.user("alice"), Default::default()).await;
    let mut service = app.user("service");
    send(&mut service, send_to(&["bob"], "not for alice")).await;
    let direct = send(&mut service, send_to(&["alice"], "for alice")).await;
    let news = send(&mut service, broadcast("for everyone")).await;
    assert_eq!(next_notification(&mut stream).await, direct[0]);
    assert_eq!(next_notification(&mut stream).await, news[0]);
    assert_quiet(&mut stream).await;
}

async fn resume_after_replays_oldest_first_then_continues_live(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let mut sent = Vec::new();
    for i in 0..5 {
        sent.extend(send(&mut service, send_to(&["alice"], &format!("n{i}"))).await);
    }
    let mut stream = subscribe(
        &mut app.user("alice"),
        pb::SubscribeRequest {
            resume_after: sent[1].id.clone(),
            ..Default::default()
        },
    )
    .await;
    for expected in &sent[2..] {
        assert_eq!(&next_notification(&mut stream).await, expected);
    }
    let live = send(&mut service, send_to(&["alice"], "live")).await;
    assert_eq!(next_notification(&mut stream).await, live[0]);
    assert_quiet(&mut stream).await;
}

async fn resume_has_no_gap_and_no_duplicate_under_concurrent_sends(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let anchor = send(&mut service, send_to(&["alice"], "anchor")).await;
    let total = 300;
    let sender = tokio::spawn({
        let mut service = app.user("service");
        async move {
            let mut sent = Vec::new();
            for i in 0..total {
                sent.extend(sent_ids(&mut service, send_to(&["alice"], &format!("n{i}"))).await);
            }
            sent
        }
    });
    // Subscribe while the sender is in full flow.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut stream = subscribe(
        &mut app.user("alice"),
        pb::SubscribeRequest {
            resume_after: anchor[0].id.clone(),
            ..Default::default()
        },
    )
    .await;
    let mut received = Vec::new();
    while received.len() < total {
        received.push(next_notification(&mut stream).await.id);
    }
    let sent = sender.await.unwrap();
    assert_eq!(
        received.iter().collect::<HashSet<_>>().len(),
        total,
        "no duplicate"
    );
    assert_eq!(
        received.iter().collect::<HashSet<_>>(),
        sent.iter().collect::<HashSet<_>>(),
        "no gap"
    );
    assert_quiet(&mut stream).await;
}

async fn read_events_reach_every_session_of_the_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let mut phone = subscribe(&mut app.user("alice"), Default::default()).await;
    let mut laptop = subscribe(&mut app.user("alice"), Default::default()).await;
    let mut bob = subscribe(&mut app.user("bob"), Default::default()).await;
    let mut alice = app.user("alice");
    alice
        .mark_read(pb::MarkReadRequest {
            ids: ids(&sent),
            ..Default::default()
        })
        .await
        .unwrap();
    let expected = pb::ReadEvent {
        ids: ids(&sent),
        all: false,
        category: String::new(),
    };
    assert_eq!(next_event(&mut phone).await, Event::Read(expected.clone()));
    assert_eq!(next_event(&mut laptop).await, Event::Read(expected));

    send(&mut app.user("service"), send_to(&["alice"], "y")).await;
    next_notification(&mut phone).await;
    alice
        .mark_read(pb::MarkReadRequest {
            all: true,
            category: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let all = pb::ReadEvent {
        ids: vec![],
        all: true,
        category: "test".into(),
    };
    assert_eq!(next_event(&mut phone).await, Event::Read(all));
    assert_quiet(&mut bob).await;
}

async fn categories_filter_notifications(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = subscribe(
        &mut app.user("alice"),
        pb::SubscribeRequest {
            categories: vec!["task".into(), "announcement".into()],
            ..Default::default()
        },
    )
    .await;
    let mut service = app.user("service");
    send(&mut service, send_to(&["alice"], "filtered out")).await;
    let task = send(
        &mut service,
        pb::SendRequest {
            category: "task".into(),
            ..send_to(&["alice"], "task")
        },
    )
    .await;
    let news = send(&mut service, broadcast("news")).await;
    assert_eq!(next_notification(&mut stream).await, task[0]);
    assert_eq!(next_notification(&mut stream).await, news[0]);
    assert_quiet(&mut stream).await;
}

async fn heartbeats_keep_coming(backend: Backend) {
    let app = spawn_app_with(backend, |c| {
        c.heartbeat_interval = Duration::from_millis(100)
    })
    .await;
    let mut stream = subscribe(&mut app.user("alice"), Default::default()).await;
    let mut heartbeats = 0;
    while heartbeats < 3 {
        let message = tokio::time::timeout(WAIT, stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        match message.event {
            Some(Event::Heartbeat(h)) => {
                assert!(h.server_time.is_some());
                heartbeats += 1;
            }
            // The stream's counts, once it is live.
            Some(Event::Counts(_)) => continue,
            other => panic!("expected a heartbeat, got {other:?}"),
        }
    }
}

async fn a_subscriber_that_does_not_read_still_gets_every_notification(backend: Backend) {
    let app = spawn_app(backend).await;
    // A small HTTP/2 window, so the client cannot soak everything up in its own buffers
    // and the server-side queue really overflows.
    let mut stream = subscribe(
        &mut app.user_on_small_window("alice").await,
        Default::default(),
    )
    .await;
    let mut bob = subscribe(&mut app.user("bob"), Default::default()).await;
    // Thousands of Sends while the subscriber reads nothing: far more than its queue holds.
    // Messages above 256 bytes: h2 clients refuse to buffer many small DATA frames unread
    // (a flood protection that answers with GOAWAY), which is not what this test is about.
    const PADDING: &str = concat!(
        "padding padding padding padding padding padding padding padding padding padding ",
        "padding padding padding padding padding padding padding padding padding padding ",
        "padding padding padding padding padding padding padding padding padding padding ",
    );
    let total = 3000;
    let mut senders = Vec::new();
    for worker in 0..6 {
        let mut service = app.user("service");
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            for i in 0..total / 6 {
                let request = send_to(&["alice"], &format!("w{worker} n{i} {PADDING}"));
                sent.extend(sent_ids(&mut service, request).await);
            }
            sent
        }));
    }
    let mut sent = HashSet::new();
    for sender in senders {
        sent.extend(sender.await.unwrap());
    }
    assert_eq!(sent.len(), total);
    // Alice's stalled stream holds up nobody else.
    let for_bob = send(&mut app.user("service"), send_to(&["bob"], "still live")).await;
    assert_eq!(next_notification(&mut bob).await, for_bob[0]);

    let mut received = HashSet::new();
    while received.len() < total {
        let id = next_notification(&mut stream).await.id;
        assert!(received.insert(id), "duplicate delivery");
    }
    assert_eq!(received, sent);
    assert_quiet(&mut stream).await;
}

async fn shutdown_ends_streams_with_unavailable(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let mut stream = subscribe(&mut app.user("alice"), Default::default()).await;
    let stopped = tokio::spawn(async move { app.stop().await });
    let status = loop {
        match tokio::time::timeout(WAIT, stream.message())
            .await
            .expect("stream ends")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("stream ended without a status"),
            Err(status) => break status,
        }
    };
    assert_eq!(status.code(), Code::Unavailable);
    tokio::time::timeout(WAIT, stopped)
        .await
        .expect("serve returns promptly")
        .unwrap()
        .expect("clean shutdown");
}

async fn invalid_requests_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    let cases = [
        (
            pb::SubscribeRequest {
                resume_after: "yesterday".into(),
                ..Default::default()
            },
            "resume_after",
        ),
        (
            pb::SubscribeRequest {
                categories: vec!["ok".into(), "Not OK".into()],
                ..Default::default()
            },
            "categories[1]",
        ),
        (
            pb::SubscribeRequest {
                categories: (0..101).map(|i| format!("c{i}")).collect(),
                ..Default::default()
            },
            "categories",
        ),
    ];
    for (request, field) in cases {
        let status = alice.subscribe(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
}

async fn open_streams_are_capped_per_user(backend: Backend) {
    let app = spawn_app_with(backend, |c| c.max_streams_per_user = 2).await;
    let first = subscribe(&mut app.user("alice"), Default::default()).await;
    let _second = subscribe(&mut app.user("alice"), Default::default()).await;
    let status = app
        .user("alice")
        .subscribe(pb::SubscribeRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    // Others are not affected, and closing a stream makes room again.
    let _bob = subscribe(&mut app.user("bob"), Default::default()).await;
    drop(first);
    let mut reopened = None;
    for _ in 0..100 {
        if let Ok(stream) = app
            .user("alice")
            .subscribe(pb::SubscribeRequest::default())
            .await
        {
            reopened = Some(stream);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(reopened.is_some(), "a closed stream frees its slot");
}

switchboard::both_backends!(
    open_streams_are_capped_per_user,
    delivers_own_and_broadcast_notifications_live,
    resume_after_replays_oldest_first_then_continues_live,
    resume_has_no_gap_and_no_duplicate_under_concurrent_sends,
    read_events_reach_every_session_of_the_user,
    categories_filter_notifications,
    heartbeats_keep_coming,
    a_subscriber_that_does_not_read_still_gets_every_notification,
    shutdown_ends_streams_with_unavailable,
    invalid_requests_are_refused,
);
