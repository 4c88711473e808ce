//! Snooze, Unsnooze and waking (issue 19): a snoozed notification leaves the inbox and the
//! counts until its `until`, then wakes: back in List and counts, and delivered again to live
//! streams as a `notification` event, once per stream, across replicas and restarts, and
//! replayed once by a resume from before its wake.
//!
//! Nothing here waits a minute for a snooze to come due: the test moves the stored time into
//! the past (`make_due`) and pokes the real waker, which then finds it due as it would.

use std::{collections::HashSet, time::Duration};

use switchboard::proto::notification::v1::{
    self as pb, ArchiveState, ReadState, subscribe_response::Event,
};
use tonic::Streaming;

use crate::helpers::*;

use StateRpc::*;

const WAIT: Duration = Duration::from_secs(20);

/// The next notification event, skipping every other kind of event.
async fn next_notification(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Notification {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .expect("a notification within the timeout")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Event::Notification(n)) = message.event {
            return n;
        }
    }
}

/// Asserts that no notification event arrives for a short while (other events may).
async fn assert_no_notification(stream: &mut Streaming<pb::SubscribeResponse>) {
    let quiet = tokio::time::timeout(Duration::from_millis(300), next_notification(stream)).await;
    assert!(quiet.is_err(), "unexpected notification {quiet:?}");
}

async fn snooze(
    client: &mut Client,
    selection: Option<pb::Selection>,
    until: Option<prost_types::Timestamp>,
) -> Result<(i64, pb::Counts), tonic::Status> {
    let answer = client
        .snooze(pb::SnoozeRequest { selection, until })
        .await?
        .into_inner();
    Ok((answer.changed, answer.counts.expect("counts")))
}

async fn get(client: &mut Client, id: &str) -> pb::Notification {
    list_everything(client)
        .await
        .into_iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("{id} is not visible"))
}

async fn assert_counts_true(client: &mut Client, counts: &pb::Counts, context: &str) {
    assert_eq!(
        counts,
        &inbox_counts_of(&list_everything(client).await),
        "{context}"
    );
    assert_eq!(
        list_all(client).await.counts.as_ref(),
        Some(counts),
        "{context}"
    );
}

async fn snoozed_notifications_leave_the_inbox_until_they_wake(backend: Backend) {
    let app = spawn_app(backend).await;
    let (mut alice, mut bob) = (app.user("alice"), app.user("bob"));
    let mut stream = subscribe(&mut alice, Default::default()).await;
    let mut bob_stream = subscribe(&mut bob, Default::default()).await;
    let direct = sent_ids(&mut app.user("service"), send_to(&["alice"], "direct")).await;
    let news = sent_ids(&mut app.user("ops"), broadcast("news")).await;
    assert_eq!(next_notification(&mut stream).await.id, direct[0]);
    assert_eq!(next_notification(&mut stream).await.id, news[0]);
    assert_eq!(next_notification(&mut bob_stream).await.id, news[0]);
    apply(&mut alice, MarkSeen, select_ids(&direct)).await;
    let both = vec![direct[0].clone(), news[0].clone()];

    let until = minutes_ahead(2);
    let (changed, counts) = snooze(&mut alice, select_ids(&both), until).await.unwrap();
    assert_eq!(changed, 2);
    assert_eq!((counts.unread, counts.unseen), (0, 0), "out of the counts");
    assert_counts_true(&mut alice, &counts, "snoozed").await;
    assert!(list_all(&mut alice).await.notifications.is_empty());
    let snoozed = list(
        &mut alice,
        pb::ListRequest {
            include_snoozed: true,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        ids(&snoozed.notifications),
        [news[0].clone(), direct[0].clone()]
    );
    for n in &snoozed.notifications {
        let expected = until.map(|t| (t.seconds, t.nanos / 1000));
        let stored = n.snoozed_until.map(|t| (t.seconds, t.nanos / 1000));
        assert_eq!(stored, expected, "{n:?}");
        assert!(!n.read, "a snooze leaves read alone");
    }
    assert!(get(&mut alice, &direct[0]).await.seen, "and seen");
    // Bob's copy of the broadcast is his own.
    assert_eq!(ids(&list_all(&mut bob).await.notifications), news);

    // The same `until` again changes nothing; another one moves both.
    let (changed, _) = snooze(&mut alice, select_ids(&both), until).await.unwrap();
    assert_eq!(changed, 0, "idempotent");
    let later = minutes_ahead(3);
    let (changed, moved) = snooze(&mut alice, select_ids(&both), later).await.unwrap();
    assert_eq!((changed, &moved), (2, &counts));
    assert_eq!(
        get(&mut alice, &news[0])
            .await
            .snoozed_until
            .map(|t| t.seconds),
        later.map(|t| t.seconds)
    );

    make_due(&app.database_url, &both).await;
    app.wake_up.poke();
    until_woken(&mut alice, &both).await;
    let page = list_all(&mut alice).await;
    assert_eq!(
        ids(&page.notifications),
        [news[0].clone(), direct[0].clone()]
    );
    let counts = page.counts.clone().expect("counts");
    assert_eq!(
        (counts.unread, counts.unseen),
        (2, 1),
        "read and seen as they were"
    );
    assert_counts_true(&mut alice, &counts, "woken").await;

    // Live streams receive them again, once, with snoozed_until unset; Bob's does not.
    let woke: HashSet<String> = [
        next_notification(&mut stream).await,
        next_notification(&mut stream).await,
    ]
    .into_iter()
    .map(|n| {
        assert!(n.snoozed_until.is_none(), "{n:?}");
        n.id
    })
    .collect();
    assert_eq!(woke, both.iter().cloned().collect());
    app.wake_up.poke();
    assert_no_notification(&mut stream).await;
    assert_no_notification(&mut bob_stream).await;
}

async fn archived_ones_stay_put_and_unsnooze_wakes_now(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let a = sent_ids(&mut service, send_to(&["alice"], "a")).await;
    let b = sent_ids(&mut service, send_to(&["alice"], "b")).await;
    let c = sent_ids(&mut service, broadcast("c")).await;
    let mut alice = app.user("alice");
    apply(&mut alice, Archive, select_ids(&a)).await;

    let (changed, _) = snooze(&mut alice, select_ids(&a), minutes_ahead(5))
        .await
        .unwrap();
    assert_eq!(
        changed, 0,
        "a Snooze of an archived notification changes nothing"
    );
    assert!(get(&mut alice, &a[0]).await.snoozed_until.is_none());
    let everything = select_all("", ReadState::Unspecified);
    let (changed, counts) = snooze(&mut alice, everything.clone(), minutes_ahead(5))
        .await
        .unwrap();
    assert_eq!(changed, 2, "all: the inbox, b and c");
    assert_eq!(counts, pb::Counts::default());
    let (changed, _) = snooze(&mut alice, everything.clone(), minutes_ahead(9))
        .await
        .unwrap();
    assert_eq!(changed, 0, "nothing is left in the inbox to snooze");

    let (changed, counts) = apply(&mut alice, Unsnooze, select_ids(&b)).await;
    assert_eq!(changed, 1);
    assert_eq!(counts.unread, 1);
    assert_counts_true(&mut alice, &counts, "unsnoozed b").await;
    let (changed, counts) = apply(&mut alice, Unsnooze, everything.clone()).await;
    assert_eq!(changed, 1, "all: every snoozed one, here c");
    assert!(get(&mut alice, &c[0]).await.snoozed_until.is_none());
    assert_counts_true(&mut alice, &counts, "unsnoozed all").await;
    let (changed, _) = apply(&mut alice, Unsnooze, everything).await;
    assert_eq!(changed, 0, "idempotent");

    // Listed ids reach snoozed ones: archived while snoozed, b wakes into the archive, out of
    // the inbox and the streams.
    snooze(&mut alice, select_ids(&b), minutes_ahead(5))
        .await
        .unwrap();
    apply(&mut alice, Archive, select_ids(&b)).await;
    let mut stream = subscribe(&mut alice, Default::default()).await;
    make_due(&app.database_url, &b).await;
    app.wake_up.poke();
    until_woken(&mut alice, &b).await;
    let archived = list(
        &mut alice,
        pb::ListRequest {
            archive_state: ArchiveState::Archived.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&archived.notifications), [b[0].clone(), a[0].clone()]);
    assert_counts_true(
        &mut alice,
        &archived.counts.expect("counts"),
        "woken archived",
    )
    .await;
    assert_no_notification(&mut stream).await;
}

async fn until_is_validated_with_the_selection(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let mut alice = app.user("alice");
    let far =
        switchboard::time::to_timestamp(switchboard::time::now_micros() + 91 * 24 * 60 * MINUTE);
    let cases: Vec<(
        Option<pb::Selection>,
        Option<prost_types::Timestamp>,
        &[&str],
    )> = vec![
        (select_ids(&sent), None, &["until"]),
        (select_ids(&sent), minutes_ahead(0), &["until"]),
        (select_ids(&sent), Some(far), &["until"]),
        (
            select_ids(&sent),
            Some(prost_types::Timestamp {
                seconds: 4_000_000_000,
                nanos: -1,
            }),
            &["until"],
        ),
        (None, None, &["selection", "until"]),
        (
            select_ids(&["nope".to_owned()]),
            minutes_ahead(5),
            &["selection.ids[0]"],
        ),
    ];
    for (selection, until, fields) in cases {
        let status = snooze(&mut alice, selection, until)
            .await
            .expect_err("refused");
        for field in fields {
            assert_invalid(&status, field);
        }
    }
    let status = change_state(&mut alice, Unsnooze, None)
        .await
        .expect_err("refused");
    assert_invalid(&status, "selection");
    assert!(
        get(&mut alice, &sent[0]).await.snoozed_until.is_none(),
        "nothing changed"
    );
}

async fn a_resume_replays_a_woken_notification_once_at_its_wake(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let anchor = sent_ids(&mut service, send_to(&["alice"], "anchor")).await;
    let x = sent_ids(&mut service, send_to(&["alice"], "x")).await;
    let y = sent_ids(&mut service, send_to(&["alice"], "y")).await;
    let news = sent_ids(&mut service, broadcast("news")).await;
    let mut alice = app.user("alice");
    let snoozed = vec![x[0].clone(), news[0].clone()];
    snooze(&mut alice, select_ids(&snoozed), minutes_ahead(5))
        .await
        .unwrap();
    make_due(&app.database_url, &snoozed).await;
    app.wake_up.poke();
    until_woken(&mut alice, &snoozed).await;

    // Each notification once, woken ones where they woke (after everything sent before),
    // then what each round sent live.
    let mut lives: Vec<String> = Vec::new();
    for (resume_after, woken) in [
        (&anchor[0], vec![&y[0], &x[0], &news[0]]),
        (&x[0], vec![&y[0], &x[0], &news[0]]),
        (&news[0], vec![&x[0], &news[0]]),
    ] {
        let expected: Vec<&String> = woken.into_iter().chain(&lives).collect();
        let mut stream = subscribe(
            &mut alice,
            pb::SubscribeRequest {
                resume_after: resume_after.clone(),
                ..Default::default()
            },
        )
        .await;
        for id in expected {
            let n = next_notification(&mut stream).await;
            assert_eq!(&n.id, id, "resuming after {resume_after}");
            assert!(n.snoozed_until.is_none());
        }
        let live = sent_ids(&mut service, send_to(&["alice"], "live")).await;
        assert_eq!(next_notification(&mut stream).await.id, live[0]);
        assert_no_notification(&mut stream).await;
        lives.extend(live);
    }
    let (entries, _) = gap_free_log(&app.database_url, "notifications").await;
    assert_eq!(entries.len(), 4 + 3 + 2, "sent, live, and one wake each");
}

async fn a_snooze_that_came_due_while_down_wakes_at_restart(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let x = sent_ids(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let y = sent_ids(&mut app.user("service"), send_to(&["alice"], "y")).await;
    snooze(&mut app.user("alice"), select_ids(&x), minutes_ahead(5))
        .await
        .unwrap();
    app.stop().await.expect("clean stop");
    make_due(&app.database_url, &x).await;

    let restarted = spawn_on(&app.database_url).await;
    let mut alice = restarted.user("alice");
    until_woken(&mut alice, &x).await;
    let mut stream = subscribe(
        &mut alice,
        pb::SubscribeRequest {
            resume_after: y[0].clone(),
            ..Default::default()
        },
    )
    .await;
    let woke = next_notification(&mut stream).await;
    assert_eq!(woke.id, x[0]);
    assert!(woke.snoozed_until.is_none());
    assert_no_notification(&mut stream).await;
    let counts = list_all(&mut alice).await.counts.expect("counts");
    assert_eq!(counts.unread, 2);
}

/// Two replicas' wakers race for the same due rows: each row wakes once, and a stream on
/// either replica receives each woken notification exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_replicas_wake_each_row_once() {
    let app = spawn_app(Backend::Postgres).await;
    let replica = spawn_replica(&app).await;
    let mut service = app.user("service");
    let snoozed = mixed_history(&mut service, 30, 5, &["alice"]).await;
    let mut alice = app.user("alice");
    let (changed, _) = snooze(&mut alice, select_ids(&snoozed), minutes_ahead(5))
        .await
        .unwrap();
    assert_eq!(changed, 30);
    let mut here = subscribe(&mut alice, Default::default()).await;
    let mut there = subscribe(&mut replica.user("alice"), Default::default()).await;
    make_due(&app.database_url, &snoozed).await;
    app.wake_up.poke();
    replica.wake_up.poke();
    for stream in [&mut here, &mut there] {
        let mut woke = Vec::new();
        for _ in 0..snoozed.len() {
            woke.push(next_notification(stream).await.id);
        }
        woke.sort();
        let mut expected = snoozed.clone();
        expected.sort();
        assert_eq!(woke, expected, "each woken notification once");
        assert_no_notification(stream).await;
    }
    let (entries, _) = gap_free_log(&app.database_url, "notifications").await;
    assert_eq!(entries.len(), 60, "thirty sent, thirty wakes");
    let counts = list_all(&mut replica.user("alice"))
        .await
        .counts
        .expect("counts");
    assert_eq!(counts.unread, 30);
}

switchboard::both_backends!(
    snoozed_notifications_leave_the_inbox_until_they_wake,
    archived_ones_stay_put_and_unsnooze_wakes_now,
    until_is_validated_with_the_selection,
    a_resume_replays_a_woken_notification_once_at_its_wake,
    a_snooze_that_came_due_while_down_wakes_at_restart,
);
