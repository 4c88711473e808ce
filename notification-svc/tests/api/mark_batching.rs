//! Group commit of MarkRead: concurrent MarkReads share a transaction, yet each is answered
//! for itself, as if applied alone in queue order, and the read-event log stays gap-free
//! with one event per MarkRead that changed something.
//!
//! As in `group_commit`, the test holds the read-event log's head (`burst_behind`) so that
//! the first MarkRead's batch waits at it while the others queue: no assertion depends on
//! timing.

use futures::FutureExt;
use switchboard::proto::notification::v1 as pb;
use tonic::Status;

use crate::helpers::*;

fn by_id(id: &str) -> pb::MarkReadRequest {
    pb::MarkReadRequest {
        ids: vec![id.to_owned()],
        ..Default::default()
    }
}

/// The MarkReads in a burst held at the read-event log's head (see [`burst_behind`]);
/// every one must succeed.
async fn burst(
    app: &TestApp,
    requests: Vec<(&str, pb::MarkReadRequest)>,
) -> Vec<pb::MarkReadResponse> {
    let calls = requests
        .into_iter()
        .map(|(user, request)| {
            let mut client = app.user(user);
            async move { client.mark_read(request).await.map(|r| r.into_inner()) }.boxed()
        })
        .collect();
    burst_behind(app, &app.marks, "read_events", calls)
        .await
        .into_iter()
        .enumerate()
        .map(|(i, answer): (usize, Result<_, Status>)| {
            answer.unwrap_or_else(|s| panic!("mark {i}: {s:?}"))
        })
        .collect()
}

async fn concurrent_mark_reads_share_a_transaction_and_each_gets_its_own_answer(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let (mut alice, mut bob) = (Vec::new(), Vec::new());
    for i in 0..12 {
        alice.extend(sent_ids(&mut service, send_to(&["alice"], &format!("a{i}"))).await);
        bob.extend(sent_ids(&mut service, send_to(&["bob"], &format!("b{i}"))).await);
    }
    send(&mut service, send_to(&["dave"], "d0")).await;
    send(&mut service, send_to(&["dave"], "d1")).await;
    let news = sent_ids(&mut app.user("ops"), broadcast("for everyone")).await;

    // (user, request, how many it marks). The first goes alone; the rest race each other
    // into one batch, in no particular order.
    let mut plan = vec![("alice", by_id(&alice[0]), 1)];
    plan.extend((1..10).map(|i| ("alice", by_id(&alice[i]), 1)));
    plan.extend((0..12).map(|i| ("bob", by_id(&bob[i]), 1)));
    plan.push(("alice", by_id(&news[0]), 1));
    plan.push(("bob", by_id(&news[0]), 1));
    // Not hers: marks nothing and leaves no event.
    plan.push(("carol", by_id(&alice[11]), 0));
    plan.push((
        "dave",
        pb::MarkReadRequest {
            all: true,
            category: "test".into(),
            ..Default::default()
        },
        2,
    ));
    // Alice's alice[1] a second time in the same batch: whichever runs first marks it.
    let repeat = plan.len();
    plan.push(("alice", by_id(&alice[1]), 0));
    let before = app.marks.batches();
    let answers = burst(
        &app,
        plan.iter()
            .map(|(user, request, _)| (*user, request.clone()))
            .collect(),
    )
    .await;

    let mut marked: Vec<i64> = answers.iter().map(|a| a.marked).collect();
    assert_eq!(
        marked[1] + marked[repeat],
        1,
        "one of the two counts alice[1]"
    );
    (marked[1], marked[repeat]) = (1, 0);
    let expected: Vec<i64> = plan.iter().map(|(_, _, marked)| *marked).collect();
    assert_eq!(marked, expected, "each MarkRead answered for itself");
    let batches = app.marks.batches() - before;
    assert!(
        batches <= 3,
        "{} MarkReads queued behind one commit went in {batches} transactions",
        plan.len()
    );
    assert_eq!(app.marks.committed(), plan.len() as u64);

    // Alone in the first batch, alice still had 11 direct ones and the broadcast unread.
    assert_eq!(answers[0].total_unread, 12);
    // The others answer with what their user has left once the batch is applied.
    let left = |user: &str| match user {
        "alice" => 2,
        "carol" | "dave" => 1,
        _ => 0,
    };
    for ((user, _, _), answer) in plan.iter().zip(&answers).skip(1) {
        assert_eq!(answer.total_unread, left(user), "{user}");
    }
    for user in ["alice", "bob", "carol", "dave"] {
        assert_eq!(
            list_all(&mut app.user(user)).await.total_unread,
            left(user),
            "{user}"
        );
    }

    let events = expected.iter().filter(|marked| **marked > 0).count() as i64;
    let (_, head) = gap_free_log(&app.database_url, "read_events").await;
    assert_eq!(head, events, "gap-free, one per change");
}

async fn a_read_event_from_a_batch_reaches_the_users_other_session(backend: Backend) {
    use switchboard::testing::next_notification;

    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let mut laptop = subscribe(&mut app.user("alice"), Default::default()).await;
    let sent = sent_ids(&mut service, send_to(&["alice"], "x")).await;
    next_notification(&mut laptop).await;
    let others = sent_ids(&mut service, send_to(&["bob"], "y")).await;
    burst(
        &app,
        vec![("bob", by_id(&others[0])), ("alice", by_id(&sent[0]))],
    )
    .await;
    // One deadline for the whole wait, so heartbeats cannot keep it alive forever.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    let read = loop {
        let message = tokio::time::timeout_at(deadline, laptop.message())
            .await
            .expect("a read event in time")
            .expect("stream")
            .expect("open");
        if let Some(pb::subscribe_response::Event::Read(read)) = message.event {
            break read;
        }
    };
    assert_eq!(read.ids, sent);
}

switchboard::both_backends!(
    concurrent_mark_reads_share_a_transaction_and_each_gets_its_own_answer,
    a_read_event_from_a_batch_reaches_the_users_other_session,
);
