//! GetPreferences / UpdatePreferences: a caller's whole set of category mutes, replaced at
//! once, validated per entry; and the store's "muted prefixes of user U at time T".

use std::time::Duration;

use notification_svc::{
    preferences::Mute,
    store::{self, MIGRATIONS},
};
use prost_types::Timestamp;
use switchboard::{
    db,
    proto::notification::v1 as pb,
    testing::TestDatabase,
    time::{now_micros, to_timestamp},
};

use tonic::Code;

use crate::helpers::*;

const HOUR: i64 = 3_600_000_000;

fn mute(category: &str, until: Option<Timestamp>) -> pb::CategoryPreference {
    pb::CategoryPreference {
        category: category.into(),
        muted: true,
        muted_until: until,
    }
}

fn set(categories: Vec<pb::CategoryPreference>) -> pb::UpdatePreferencesRequest {
    pb::UpdatePreferencesRequest {
        preferences: Some(pb::Preferences { categories }),
    }
}

async fn get(client: &mut Client) -> Vec<pb::CategoryPreference> {
    client
        .get_preferences(pb::GetPreferencesRequest {})
        .await
        .expect("get preferences")
        .into_inner()
        .preferences
        .expect("preferences set")
        .categories
}

async fn update(
    client: &mut Client,
    categories: Vec<pb::CategoryPreference>,
) -> Vec<pb::CategoryPreference> {
    client
        .update_preferences(set(categories))
        .await
        .expect("update preferences")
        .into_inner()
        .preferences
        .expect("preferences set")
        .categories
}

/// A time `micros` from now, as the wire has it (whole microseconds, as stored).
fn in_micros(micros: i64) -> Timestamp {
    to_timestamp(now_micros() + micros)
}

async fn an_update_replaces_the_callers_whole_set(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    assert!(get(&mut alice).await.is_empty(), "nothing muted at first");

    let later = in_micros(HOUR);
    let stored = update(
        &mut alice,
        vec![
            mute("deploy", Some(later)),
            pb::CategoryPreference {
                category: "chat".into(),
                muted: false,
                muted_until: None,
            },
            mute("build", None),
        ],
    )
    .await;
    let expected = vec![mute("build", None), mute("deploy", Some(later))];
    assert_eq!(
        stored, expected,
        "by category; the unmuted entry is not stored"
    );
    assert_eq!(get(&mut alice).await, expected);
    assert!(get(&mut app.user("bob")).await.is_empty(), "per caller");

    assert_eq!(
        update(&mut alice, vec![mute("chat", None)]).await,
        [mute("chat", None)]
    );
    assert_eq!(
        get(&mut alice).await,
        [mute("chat", None)],
        "replaced, not merged"
    );
    assert!(update(&mut alice, Vec::new()).await.is_empty());
    assert!(
        get(&mut alice).await.is_empty(),
        "an empty set clears every mute"
    );

    let most: Vec<_> = (0..200).map(|i| mute(&format!("c{i:03}"), None)).collect();
    assert_eq!(update(&mut alice, most.clone()).await, most);
    assert_eq!(get(&mut alice).await, most, "200 entries fit");
}

async fn every_invalid_entry_is_refused_and_nothing_changes(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    let kept = vec![mute("build", None)];
    update(&mut alice, kept.clone()).await;

    let past = in_micros(-1);
    let cases: Vec<(pb::UpdatePreferencesRequest, &str)> = vec![
        (
            set((0..201).map(|i| mute(&format!("c{i}"), None)).collect()),
            "preferences.categories",
        ),
        (
            set(vec![mute("chat", None), mute("Chat", None)]),
            "preferences.categories[1].category",
        ),
        (
            set(vec![mute("", None)]),
            "preferences.categories[0].category",
        ),
        (
            set(vec![
                mute("chat", None),
                mute("task", None),
                mute("chat", None),
            ]),
            "preferences.categories[2].category",
        ),
        (
            set(vec![mute("chat", None), mute("task", Some(past))]),
            "preferences.categories[1].muted_until",
        ),
        (
            set(vec![pb::CategoryPreference {
                muted: false,
                ..mute("chat", Some(past))
            }]),
            "preferences.categories[0].muted_until",
        ),
        (
            set(vec![mute(
                "chat",
                Some(Timestamp {
                    seconds: now_micros() / 1_000_000 + 3600,
                    nanos: -1,
                }),
            )]),
            "preferences.categories[0].muted_until",
        ),
        (
            set(vec![mute(
                "chat",
                Some(Timestamp {
                    seconds: i64::MAX,
                    nanos: 0,
                }),
            )]),
            "preferences.categories[0].muted_until",
        ),
        (
            pb::UpdatePreferencesRequest { preferences: None },
            "preferences",
        ),
    ];
    for (request, field) in cases {
        let status = alice.update_preferences(request).await.expect_err(field);
        assert_invalid(&status, field);
    }
    assert_eq!(
        get(&mut alice).await,
        kept,
        "no refused update changed anything"
    );
}

async fn a_mute_that_ends_is_left_out_and_one_without_an_end_stays(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    // Two seconds: enough for the update to arrive while it is still in the future.
    let soon = in_micros(2_000_000);
    update(
        &mut alice,
        vec![mute("build", None), mute("deploy", Some(soon))],
    )
    .await;
    // Waiting for the clock to pass the mute's end, with a generous bound; not a measurement.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = get(&mut alice).await;
        if now == [mute("build", None)] {
            break;
        }
        assert_eq!(now, [mute("build", None), mute("deploy", Some(soon))]);
        assert!(
            tokio::time::Instant::now() < deadline,
            "the mute never ended"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Preferences belong to the caller the metadata names, so both RPCs need one, vouched for by
/// the internal token.
async fn preferences_need_the_internal_token_and_a_caller(backend: Backend) {
    let app = spawn_app(backend).await;
    let clients = [
        app.client_as(Some(caller("alice", ALL_SCOPES)), None),
        app.client_as(Some(caller("alice", ALL_SCOPES)), Some("wrong-token")),
        app.client_as(None, Some(INTERNAL_TOKEN)),
    ];
    for mut client in clients {
        let got = client.get_preferences(pb::GetPreferencesRequest {}).await;
        assert_eq!(got.expect_err("refused").code(), Code::Unauthenticated);
        let put = client
            .update_preferences(set(vec![mute("build", None)]))
            .await;
        assert_eq!(put.expect_err("refused").code(), Code::Unauthenticated);
    }
    assert!(get(&mut app.user("alice")).await.is_empty());
}

/// Concurrent replacements of one person's set (two sessions, or two replicas of the service
/// on one PostgreSQL): each is whole, the last one wins, none is merged into another.
async fn concurrent_updates_each_replace_the_whole_set(backend: Backend) {
    let app = spawn_app(backend).await;
    for round in 0..20 {
        let sets: Vec<Vec<pb::CategoryPreference>> = ["x", "y", "z"]
            .iter()
            .map(|name| {
                (0..5)
                    .map(|i| mute(&format!("{name}{round}.{i}"), None))
                    .collect()
            })
            .collect();
        let updates = sets.iter().map(|categories| {
            let mut alice = app.user("alice");
            let categories = categories.clone();
            async move { update(&mut alice, categories).await }
        });
        futures::future::join_all(updates).await;
        let now = get(&mut app.user("alice")).await;
        assert!(sets.contains(&now), "round {round}: a merged set {now:?}");
    }
}

/// The store's view on its own clock: what is muted at a given time, and what pruning leaves.
async fn mutes_in_force_follow_the_time_asked_and_prune_drops_ended_mutes(backend: Backend) {
    let (_test_database, url) = TestDatabase::create(backend, "notifications.db").await;
    let database = db::connect(&url, &MIGRATIONS).await.expect("connect");
    let store = store::for_database(&database);
    let mutes = [
        Mute {
            category: "build".into(),
            until: None,
        },
        Mute {
            category: "deploy".into(),
            until: Some(10 * HOUR),
        },
        Mute {
            category: "task.assigned".into(),
            until: Some(20 * HOUR),
        },
    ];
    store
        .replace_preferences("alice", &mutes, HOUR)
        .await
        .expect("replace");
    store
        .replace_preferences("bob", &mutes[..1], HOUR)
        .await
        .expect("replace");
    let at = |t| {
        let store = store.clone();
        async move {
            let mutes = store.preferences("alice", t).await.expect("muted");
            mutes
                .into_iter()
                .map(|mute| mute.category)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(at(2 * HOUR).await, ["build", "deploy", "task.assigned"]);
    assert_eq!(
        at(10 * HOUR - 1).await,
        ["build", "deploy", "task.assigned"]
    );
    assert_eq!(
        at(10 * HOUR).await,
        ["build", "task.assigned"],
        "ends at muted_until"
    );
    assert_eq!(at(30 * HOUR).await, ["build"]);
    assert_eq!(
        store.preferences("alice", 15 * HOUR).await.expect("get"),
        [mutes[0].clone(), mutes[2].clone()]
    );
    assert_eq!(
        store.preferences("carol", 0).await.expect("muted"),
        Vec::<Mute>::new()
    );

    store.prune(15 * HOUR).await.expect("prune");
    assert_eq!(
        store.preferences("alice", 0).await.expect("get"),
        [mutes[0].clone(), mutes[2].clone()],
        "only the mute that ended before the horizon went"
    );
    assert_eq!(
        store.preferences("bob", 0).await.expect("get"),
        [mutes[0].clone()]
    );
    database.close().await;
}

switchboard::both_backends!(
    an_update_replaces_the_callers_whole_set,
    every_invalid_entry_is_refused_and_nothing_changes,
    a_mute_that_ends_is_left_out_and_one_without_an_end_stays,
    concurrent_updates_each_replace_the_whole_set,
    preferences_need_the_internal_token_and_a_caller,
    mutes_in_force_follow_the_time_asked_and_prune_drops_ended_mutes,
);
