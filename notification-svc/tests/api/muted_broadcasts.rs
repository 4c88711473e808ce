//! Mutes and broadcasts: while a person has a category muted, its non-critical broadcasts
//! are hidden from their List, counts, `all` selections and stream (live and replay), and
//! come back when the mute ends (they are stored once). Critical broadcasts and direct
//! notifications stored before the mute stay visible.

use switchboard::{proto::notification::v1 as pb, testing::next_notification};

use crate::helpers::*;

fn broadcast_in(category: &str, content: &str, critical: bool) -> pb::SendRequest {
    pb::SendRequest {
        category: category.into(),
        critical,
        ..broadcast(content)
    }
}

fn contents(listed: &pb::ListResponse) -> Vec<&str> {
    listed
        .notifications
        .iter()
        .map(|n| n.content.as_str())
        .collect()
}

async fn a_mute_hides_non_critical_broadcasts_from_list_counts_and_all_until_it_ends(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    send(
        &mut service,
        pb::SendRequest {
            category: "build".into(),
            ..send_to(&["alice"], "direct before the mute")
        },
    )
    .await;
    mute(&app, "alice", &["build"], None).await;
    for request in [
        broadcast_in("build.nightly", "muted broadcast", false),
        broadcast_in("build", "critical broadcast", true),
        broadcast_in("announcement", "other broadcast", false),
    ] {
        send(&mut service, request).await;
    }

    let mut alice = app.user("alice");
    let listed = list_all(&mut alice).await;
    assert_eq!(
        contents(&listed),
        [
            "other broadcast",
            "critical broadcast",
            "direct before the mute"
        ]
    );
    let counts = listed.counts.expect("counts");
    assert_eq!((counts.unread, counts.unseen), (3, 3));
    assert_eq!(listed.total_unread, 3);
    assert_eq!(counts.unread_by_category.get("build"), Some(&2));
    assert_eq!(counts.unread_by_category.get("build.nightly"), None);

    // Bob has muted nothing: he sees every broadcast.
    let bobs = list_all(&mut app.user("bob")).await;
    assert_eq!(bobs.counts.expect("counts").unread, 3);

    // `all` acts on what alice sees: the hidden broadcast stays unread and unseen.
    let marked = alice
        .mark_read(pb::MarkReadRequest {
            all: true,
            ..Default::default()
        })
        .await
        .expect("mark read")
        .into_inner();
    assert_eq!(marked.marked, 3);
    assert_eq!(marked.counts.expect("counts").unread, 0);
    let (archived, _) = apply(
        &mut alice,
        StateRpc::Archive,
        Some(pb::Selection {
            all: true,
            ..Default::default()
        }),
    )
    .await;
    assert_eq!(archived, 3);

    // The mute ends: the broadcast is back, unread, in List and the counts.
    mute(&app, "alice", &[], None).await;
    let listed = list_all(&mut alice).await;
    assert_eq!(contents(&listed), ["muted broadcast"]);
    assert!(!listed.notifications[0].read && !listed.notifications[0].seen);
    let counts = listed.counts.expect("counts");
    assert_eq!((counts.unread, counts.unseen), (1, 1));
    assert_eq!(counts.unread_by_category.get("build.nightly"), Some(&1));
}

async fn a_muted_broadcast_is_neither_streamed_nor_replayed_and_a_critical_one_is(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let first = send(&mut service, broadcast("before")).await;
    mute(&app, "alice", &["build"], None).await;
    let mut alice = app.user("alice");
    let mut live = subscribe(&mut alice, Default::default()).await;
    for request in [
        broadcast_in("build", "muted broadcast", false),
        broadcast_in("build.nightly", "critical broadcast", true),
        broadcast_in("announcement", "other broadcast", false),
    ] {
        send(&mut service, request).await;
    }
    assert_eq!(
        next_notification(&mut live).await.content,
        "critical broadcast"
    );
    assert_eq!(
        next_notification(&mut live).await.content,
        "other broadcast"
    );

    // A resume from before them replays the same two, not the muted one.
    let mut replay = subscribe(
        &mut alice,
        pb::SubscribeRequest {
            resume_after: first[0].id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        next_notification(&mut replay).await.content,
        "critical broadcast"
    );
    assert_eq!(
        next_notification(&mut replay).await.content,
        "other broadcast"
    );

    // Bob, who muted nothing, is streamed all three.
    let mut bob = app.user("bob");
    let mut bobs = subscribe(
        &mut bob,
        pb::SubscribeRequest {
            resume_after: first[0].id.clone(),
            ..Default::default()
        },
    )
    .await;
    for expected in ["muted broadcast", "critical broadcast", "other broadcast"] {
        assert_eq!(next_notification(&mut bobs).await.content, expected);
    }
}

switchboard::both_backends!(
    a_mute_hides_non_critical_broadcasts_from_list_counts_and_all_until_it_ends,
    a_muted_broadcast_is_neither_streamed_nor_replayed_and_a_critical_one_is,
);
