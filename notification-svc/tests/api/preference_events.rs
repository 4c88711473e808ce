//! Preferences on the stream (issue 19): a change of a person's preferences reaches their
//! other sessions as a `preferences` event with the counts it changed (muting hides
//! broadcasts), on every replica; a set replaced by the same set sends nothing; a timed mute
//! that ends sends the preferences without it and the counts with its broadcasts back.

use switchboard::{
    proto::notification::v1::{self as pb, subscribe_response::Event},
    time::{now_micros, to_timestamp},
};
use tonic::Streaming;

use crate::helpers::*;

/// The next `preferences` event, skipping every other kind.
async fn next_preferences(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Preferences {
    match switchboard::testing::next_event(stream, |e| !matches!(e, Event::Preferences(_))).await {
        Event::Preferences(preferences) => preferences,
        other => unreachable!("skipped above: {other:?}"),
    }
}

/// The next `counts` event, skipping every other kind.
async fn next_counts(stream: &mut Streaming<pb::SubscribeResponse>) -> pb::Counts {
    match switchboard::testing::next_event(stream, |e| !matches!(e, Event::Counts(_))).await {
        Event::Counts(counts) => counts,
        other => unreachable!("skipped above: {other:?}"),
    }
}

/// The categories a `preferences` event mutes.
fn muted(preferences: &pb::Preferences) -> Vec<&str> {
    preferences
        .categories
        .iter()
        .filter(|c| c.muted)
        .map(|c| c.category.as_str())
        .collect()
}

/// A broadcast in `category` and one in `chat`, both unread for everyone.
async fn two_broadcasts(app: &TestApp, category: &str) {
    let mut service = app.user("service");
    for category in [category, "chat"] {
        send(
            &mut service,
            pb::SendRequest {
                category: category.into(),
                ..broadcast(category)
            },
        )
        .await;
    }
}

async fn a_preference_change_reaches_other_sessions_with_the_counts_it_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    two_broadcasts(&app, "build").await;
    let mut laptop = subscribe(&mut app.user("alice"), Default::default()).await;
    assert_eq!(next_counts(&mut laptop).await.unread, 2);

    // Muted from the phone: the laptop hears the new set, then counts without the build one.
    mute(&app, "alice", &["build"], None).await;
    assert_eq!(muted(&next_preferences(&mut laptop).await), ["build"]);
    let counts = next_counts(&mut laptop).await;
    assert_eq!((counts.unread, counts.unseen), (1, 1));
    assert_eq!(counts.unread_by_category.get("build"), None);

    // The same set again changes nothing and tells nobody: the next event is the unmute's.
    mute(&app, "alice", &["build"], None).await;
    mute(&app, "alice", &[], None).await;
    assert_eq!(
        next_preferences(&mut laptop).await,
        pb::Preferences::default()
    );
    assert_eq!(next_counts(&mut laptop).await.unread, 2);
}

async fn a_timed_mute_that_ends_sends_the_preferences_and_counts_that_follow(backend: Backend) {
    let app = spawn_app(backend).await;
    two_broadcasts(&app, "build.nightly").await;
    // Long enough for the stream below to be live well before it ends.
    let until = to_timestamp(now_micros() + 3_000_000);
    mute(&app, "alice", &["build"], Some(until)).await;
    let mut alice = app.user("alice");
    let mut stream = subscribe(&mut alice, Default::default()).await;
    assert_eq!(next_counts(&mut stream).await.unread, 1);

    // The waker ends it: nothing is muted any more, and the hidden broadcast is counted.
    assert_eq!(
        next_preferences(&mut stream).await,
        pb::Preferences::default()
    );
    let counts = next_counts(&mut stream).await;
    assert_eq!(counts.unread, 2);
    assert_eq!(counts.unread_by_category.get("build.nightly"), Some(&1));
    assert_eq!(list_all(&mut alice).await.counts, Some(counts));
    let stored = alice
        .get_preferences(pb::GetPreferencesRequest {})
        .await
        .expect("get preferences")
        .into_inner();
    assert_eq!(stored.preferences, Some(pb::Preferences::default()));
}

switchboard::both_backends!(
    a_preference_change_reaches_other_sessions_with_the_counts_it_changes,
    a_timed_mute_that_ends_sends_the_preferences_and_counts_that_follow,
);

/// Replicas share the state-event log: a mute made through one reaches a stream on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_preference_change_on_one_replica_reaches_a_stream_on_another() {
    let app = spawn_app(Backend::Postgres).await;
    let replica = spawn_replica(&app).await;
    two_broadcasts(&app, "build").await;
    let mut there = subscribe(&mut replica.user("alice"), Default::default()).await;
    assert_eq!(next_counts(&mut there).await.unread, 2);

    mute(&app, "alice", &["build", "deploy"], None).await;
    assert_eq!(
        muted(&next_preferences(&mut there).await),
        ["build", "deploy"]
    );
    assert_eq!(next_counts(&mut there).await.unread, 1);
}
