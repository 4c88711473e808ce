//! What Subscribe says about the inbox (issue 19): `state` events for state changes made in
//! any of the person's sessions (MarkRead stays a `read` event), and `counts`: once when the
//! stream is live, then after every change to the person's counts, read once per burst;
//! across replicas too. Every counts event is checked against a count from scratch.

use std::time::Duration;

use futures::FutureExt;
use switchboard::proto::notification::v1::{
    self as pb, ReadState, StateChange, subscribe_response::Event,
};
use tonic::Streaming;

use crate::helpers::*;

use StateRpc::*;

/// The next event that is not a heartbeat.
async fn next_event(stream: &mut Streaming<pb::SubscribeResponse>) -> Event {
    switchboard::testing::next_event(stream, |e| matches!(e, Event::Heartbeat(_))).await
}

/// The next `state` or `read` event, skipping notifications and counts.
async fn next_change(stream: &mut Streaming<pb::SubscribeResponse>) -> Event {
    switchboard::testing::next_event(stream, |e| !matches!(e, Event::State(_) | Event::Read(_)))
        .await
}

/// The next `counts` event, skipping every other kind.
async fn next_counts(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Counts {
    match switchboard::testing::next_event(stream, |e| !matches!(e, Event::Counts(_))).await {
        Event::Counts(counts) => counts,
        other => unreachable!("skipped above: {other:?}"),
    }
}

/// Every non-heartbeat event that arrives before a short quiet spell.
async fn drain(stream: &mut Streaming<pb::SubscribeResponse>) -> Vec<Event> {
    let mut events = Vec::new();
    while let Ok(event) = tokio::time::timeout(Duration::from_millis(400), next_event(stream)).await
    {
        events.push(event);
    }
    events
}

/// Asserts that no `state` or `read` event arrives for a short while.
async fn assert_no_change(stream: &mut Streaming<pb::SubscribeResponse>) {
    let changes: Vec<Event> = drain(stream)
        .await
        .into_iter()
        .filter(|e| matches!(e, Event::State(_) | Event::Read(_)))
        .collect();
    assert!(changes.is_empty(), "unexpected {changes:?}");
}

/// The counts of `user` counted from scratch.
async fn truth(app: &TestApp, user: &str) -> pb::Counts {
    inbox_counts_of(&list_everything(&mut app.user(user)).await)
}

fn state(change: StateChange, ids: &[String]) -> Event {
    let mut ids = ids.to_vec();
    ids.sort();
    Event::State(pb::StateEvent {
        change: change.into(),
        ids,
        ..Default::default()
    })
}

fn state_all(change: StateChange, category: &str, read_state: ReadState) -> Event {
    Event::State(pb::StateEvent {
        change: change.into(),
        all: true,
        category: category.into(),
        read_state: read_state.into(),
        ..Default::default()
    })
}

/// A state event names only the ids that changed: of a selection where some already were
/// in the new state (and one the caller cannot see), the others.
async fn a_state_event_names_only_the_ids_that_changed(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let seen_already = sent_ids(&mut service, send_to(&["alice"], "a")).await;
    let unseen = sent_ids(&mut service, send_to(&["alice"], "b")).await;
    let news = sent_ids(&mut service, broadcast("news")).await;
    let bobs = sent_ids(&mut service, send_to(&["bob"], "not hers")).await;
    let mut alice = app.user("alice");
    let mut laptop = subscribe(&mut alice, Default::default()).await;
    apply(&mut alice, MarkSeen, select_ids(&seen_already)).await;
    assert_eq!(
        next_change(&mut laptop).await,
        state(StateChange::Seen, &seen_already)
    );

    let selected: Vec<String> = [&seen_already, &unseen, &news, &bobs]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    let (changed, _) = apply(&mut alice, MarkSeen, select_ids(&selected)).await;
    assert_eq!(changed, 2);
    let changed_ids: Vec<String> = unseen.iter().chain(&news).cloned().collect();
    assert_eq!(
        next_change(&mut laptop).await,
        state(StateChange::Seen, &changed_ids)
    );
}

async fn state_changes_reach_every_session_as_state_events(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let sent = sent_ids(&mut service, send_to(&["alice"], "a")).await;
    let news = sent_ids(&mut service, broadcast("news")).await;
    let both: Vec<String> = sent.iter().chain(&news).cloned().collect();
    let mut alice = app.user("alice");
    let mut phone = subscribe(&mut alice, Default::default()).await;
    let mut laptop = subscribe(&mut alice, Default::default()).await;
    let mut bob = subscribe(&mut app.user("bob"), Default::default()).await;

    let steps: Vec<(StateRpc, Option<pb::Selection>, Event)> = vec![
        (MarkSeen, select_ids(&both), state(StateChange::Seen, &both)),
        (
            Archive,
            select_all("announcement", ReadState::Unread),
            state_all(StateChange::Archived, "announcement", ReadState::Unread),
        ),
        (
            Unarchive,
            select_all("", ReadState::Unspecified),
            state_all(StateChange::Unarchived, "", ReadState::Unspecified),
        ),
        (
            Snooze,
            select_ids(&sent),
            state(StateChange::Snoozed, &sent),
        ),
        (
            Unsnooze,
            select_all("", ReadState::Unspecified),
            state_all(StateChange::Unsnoozed, "", ReadState::Unspecified),
        ),
    ];
    for (rpc, selection, expected) in steps {
        let (changed, _) = apply(&mut alice, rpc, selection.clone()).await;
        assert!(changed > 0, "{rpc:?}");
        assert_eq!(next_change(&mut phone).await, expected, "{rpc:?}");
        assert_eq!(next_change(&mut laptop).await, expected, "{rpc:?}");
        // A change of nothing tells nobody (a Snooze again would be to a new `until`).
        if rpc != Snooze {
            let (changed, _) = apply(&mut alice, rpc, selection).await;
            assert_eq!(changed, 0, "{rpc:?} again");
        }
    }
    // MarkRead stays a read event; MarkUnread is a state event.
    alice
        .mark_read(pb::MarkReadRequest {
            ids: sent.clone(),
            ..Default::default()
        })
        .await
        .expect("mark read");
    let read = Event::Read(pb::ReadEvent {
        ids: sent.clone(),
        ..Default::default()
    });
    assert_eq!(next_change(&mut phone).await, read);
    apply(&mut alice, MarkUnread, select_ids(&sent)).await;
    assert_eq!(
        next_change(&mut phone).await,
        state(StateChange::Unread, &sent)
    );
    assert_no_change(&mut phone).await;
    assert_no_change(&mut bob).await;
}

async fn counts_come_when_live_and_after_every_change(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let first = sent_ids(&mut service, send_to(&["alice"], "first")).await;
    let mut alice = app.user("alice");

    // Live at once: the counts first; resuming: after the replay.
    let mut stream = subscribe(&mut alice, Default::default()).await;
    assert_eq!(
        next_event(&mut stream).await,
        Event::Counts(truth(&app, "alice").await)
    );
    let second = sent_ids(&mut service, send_to(&["alice"], "second")).await;
    assert_eq!(next_counts(&mut stream).await, truth(&app, "alice").await);
    let mut resumed = subscribe(
        &mut alice,
        pb::SubscribeRequest {
            resume_after: first[0].clone(),
            ..Default::default()
        },
    )
    .await;
    assert!(matches!(next_event(&mut resumed).await, Event::Notification(n) if n.id == second[0]));
    assert_eq!(
        next_event(&mut resumed).await,
        Event::Counts(truth(&app, "alice").await)
    );
    // A stream filtered to other categories still follows every count.
    let mut other = subscribe(
        &mut alice,
        pb::SubscribeRequest {
            categories: vec!["other".into()],
            ..Default::default()
        },
    )
    .await;
    next_counts(&mut other).await;

    // Each change: a new notification, a state change of each kind (Unsnooze included), a
    // broadcast, a wake.
    let mut bob = subscribe(&mut app.user("bob"), Default::default()).await;
    let bob_first = next_counts(&mut bob).await;
    let changes: Vec<(&str, futures::future::BoxFuture<'static, ()>)> = vec![
        ("send", {
            let mut service = app.user("service");
            async move {
                send(&mut service, send_to(&["alice"], "third")).await;
            }
            .boxed()
        }),
        ("mark seen", {
            let mut alice = app.user("alice");
            let ids = first.clone();
            async move {
                apply(&mut alice, MarkSeen, select_ids(&ids)).await;
            }
            .boxed()
        }),
        ("mark read", {
            let mut alice = app.user("alice");
            let ids = second.clone();
            async move {
                alice
                    .mark_read(pb::MarkReadRequest {
                        ids,
                        ..Default::default()
                    })
                    .await
                    .expect("mark read");
            }
            .boxed()
        }),
        ("mark unread", {
            let mut alice = app.user("alice");
            let ids = second.clone();
            async move {
                apply(&mut alice, MarkUnread, select_ids(&ids)).await;
            }
            .boxed()
        }),
        ("archive", {
            let mut alice = app.user("alice");
            async move {
                apply(&mut alice, Archive, select_all("", ReadState::Unread)).await;
            }
            .boxed()
        }),
        ("unarchive", {
            let mut alice = app.user("alice");
            async move {
                apply(
                    &mut alice,
                    Unarchive,
                    select_all("", ReadState::Unspecified),
                )
                .await;
            }
            .boxed()
        }),
        ("snooze", {
            let mut alice = app.user("alice");
            let ids = first.clone();
            async move {
                apply(&mut alice, Snooze, select_ids(&ids)).await;
            }
            .boxed()
        }),
        ("snooze another", {
            let mut alice = app.user("alice");
            let ids = second.clone();
            async move {
                apply(&mut alice, Snooze, select_ids(&ids)).await;
            }
            .boxed()
        }),
        ("unsnooze", {
            let mut alice = app.user("alice");
            let ids = second.clone();
            async move {
                apply(&mut alice, Unsnooze, select_ids(&ids)).await;
            }
            .boxed()
        }),
        ("broadcast", {
            let mut ops = app.user("ops");
            async move {
                send(&mut ops, broadcast("news")).await;
            }
            .boxed()
        }),
    ];
    for (what, change) in changes {
        change.await;
        let expected = truth(&app, "alice").await;
        assert_eq!(next_counts(&mut stream).await, expected, "after {what}");
        assert_eq!(
            next_counts(&mut other).await,
            expected,
            "filtered, after {what}"
        );
    }
    assert_ne!(next_counts(&mut bob).await, bob_first, "the broadcast");
    let last = drain(&mut resumed)
        .await
        .into_iter()
        .rev()
        .find_map(|e| match e {
            Event::Counts(counts) => Some(counts),
            _ => None,
        });
    assert_eq!(
        last,
        Some(truth(&app, "alice").await),
        "the resumed stream too"
    );

    // The wake: the notification again, then the counts with it.
    make_due(&app.database_url, &first).await;
    app.wake_up.poke();
    assert!(matches!(next_event(&mut stream).await, Event::Notification(n) if n.id == first[0]));
    assert_eq!(next_counts(&mut stream).await, truth(&app, "alice").await);

    // A change that leaves the counts as they are sends none: reading an archived one.
    apply(&mut alice, Archive, select_ids(&first)).await;
    next_counts(&mut stream).await;
    let marked = alice
        .mark_read(pb::MarkReadRequest {
            ids: first.clone(),
            ..Default::default()
        })
        .await
        .expect("mark read")
        .into_inner();
    assert_eq!(marked.marked, 1);
    let after: Vec<Event> = drain(&mut stream).await;
    assert!(
        after.iter().any(|e| matches!(e, Event::Read(_))),
        "{after:?}"
    );
    assert!(
        after.iter().all(|e| !matches!(e, Event::Counts(_))),
        "unchanged counts are not sent again: {after:?}"
    );
}

/// Thirty notifications for one user committed in two transactions: one notification event
/// each, but the counts are read once or twice, not thirty times, and end true.
async fn a_burst_costs_one_counts_read_not_one_per_event(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut stream = subscribe(&mut app.user("alice"), Default::default()).await;
    next_counts(&mut stream).await;
    let before = app.streams.counts_reads();
    let calls: Vec<futures::future::BoxFuture<'static, Vec<String>>> = (0..30)
        .map(|i| {
            let mut service = app.user("service");
            async move { sent_ids(&mut service, send_to(&["alice"], &format!("n{i}"))).await }
                .boxed()
        })
        .collect();
    burst_behind(&app, &app.commits, "notifications", calls).await;
    let mut notifications = 0;
    let mut last_counts = None;
    while notifications < 30 || last_counts.as_ref().map(|c: &pb::Counts| c.unread) != Some(30) {
        match next_event(&mut stream).await {
            Event::Notification(_) => notifications += 1,
            Event::Counts(counts) => last_counts = Some(counts),
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(last_counts, Some(truth(&app, "alice").await));
    let reads = app.streams.counts_reads() - before;
    eprintln!("30 notifications in 2 transactions: {reads} counts reads");
    assert!(reads * 5 <= 30, "{reads} counts reads for 30 events");
}

/// A stream on one replica hears state changes and follows the counts of what is done
/// through another: state events, sends and a wake.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn state_and_counts_cross_replicas() {
    let app = spawn_app(Backend::Postgres).await;
    let replica = spawn_replica(&app).await;
    let mut there = subscribe(&mut replica.user("alice"), Default::default()).await;
    next_counts(&mut there).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice"], "x")).await;
    assert_eq!(
        next_counts(&mut there).await,
        truth(&replica, "alice").await
    );

    let mut alice = app.user("alice");
    apply(&mut alice, MarkSeen, select_ids(&sent)).await;
    assert_eq!(
        next_change(&mut there).await,
        state(StateChange::Seen, &sent)
    );
    assert_eq!(
        next_counts(&mut there).await,
        truth(&replica, "alice").await
    );
    apply(&mut alice, Snooze, select_ids(&sent)).await;
    assert_eq!(
        next_change(&mut there).await,
        state(StateChange::Snoozed, &sent)
    );
    assert_eq!(next_counts(&mut there).await, pb::Counts::default());

    // Woken by the first replica's waker, delivered and counted on the other.
    make_due(&app.database_url, &sent).await;
    app.wake_up.poke();
    assert!(
        matches!(next_event(&mut there).await, Event::Notification(n) if n.id == sent[0] && n.snoozed_until.is_none())
    );
    assert_eq!(
        next_counts(&mut there).await,
        truth(&replica, "alice").await
    );
}

switchboard::both_backends!(
    state_changes_reach_every_session_as_state_events,
    a_state_event_names_only_the_ids_that_changed,
    counts_come_when_live_and_after_every_change,
    a_burst_costs_one_counts_read_not_one_per_event,
);
