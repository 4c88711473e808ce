//! Seen, unread and archived state (issue 19) through MarkSeen, MarkUnread, Archive,
//! Unarchive and MarkRead: each rule of "what a selection covers" and "side effects", per
//! person for broadcasts exactly as for direct notifications, with the counts every answer
//! carries checked against a count from scratch.

use std::collections::HashMap;

use switchboard::proto::notification::v1::{self as pb, ArchiveState, ReadState, SeenState};

use crate::helpers::*;

use StateRpc::*;

/// The one notification `id` as `client` sees it, whatever its state.
async fn get(client: &mut Client, id: &str) -> pb::Notification {
    list_everything(client)
        .await
        .into_iter()
        .find(|n| n.id == id)
        .unwrap_or_else(|| panic!("{id} is not visible"))
}

/// Asserts that `counts` (from an answer) are what the user's notifications add up to.
async fn assert_counts_true(client: &mut Client, counts: &pb::Counts, context: &str) {
    let everything = list_everything(client).await;
    assert_eq!(counts, &inbox_counts_of(&everything), "{context}");
    let page = list_all(client).await;
    assert_eq!(
        page.counts.as_ref(),
        Some(counts),
        "List's counts, {context}"
    );
    assert_eq!(page.total_unread, counts.unread, "{context}");
    assert_eq!(
        page.unread_by_category, counts.unread_by_category,
        "{context}"
    );
}

async fn mark_read(client: &mut Client, ids: &[String]) -> pb::MarkReadResponse {
    client
        .mark_read(pb::MarkReadRequest {
            ids: ids.to_vec(),
            ..Default::default()
        })
        .await
        .expect("mark read")
        .into_inner()
}

async fn mark_seen_marks_only_seen_and_repeating_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice", "bob"], "x")).await;
    let mine = sent_ids(&mut app.user("service"), send_to(&["alice"], "y")).await;
    let mut alice = app.user("alice");
    let before = list_all(&mut alice).await.counts.expect("counts");
    assert_eq!((before.unread, before.unseen), (2, 2));

    // Bob's copy is not alice's: only her own notification changes.
    let (changed, counts) = apply(&mut alice, MarkSeen, select_ids(&sent)).await;
    assert_eq!(changed, 1);
    assert_eq!((counts.unread, counts.unseen), (2, 1));
    assert_counts_true(&mut alice, &counts, "after MarkSeen").await;
    let n = get(&mut alice, &sent[0]).await;
    assert!(n.seen && n.seen_at.is_some(), "{n:?}");
    assert!(!n.read && n.read_at.is_none(), "seeing is not reading");
    assert!(!get(&mut app.user("bob"), &sent[1]).await.seen);

    let (changed, again) = apply(&mut alice, MarkSeen, select_ids(&sent)).await;
    assert_eq!((changed, &again), (0, &counts), "idempotent");
    assert_eq!(get(&mut alice, &sent[0]).await.seen_at, n.seen_at);

    let (changed, counts) =
        apply(&mut alice, MarkSeen, select_all("", ReadState::Unspecified)).await;
    assert_eq!((changed, counts.unseen, counts.unread), (1, 0, 2));
    assert!(get(&mut alice, &mine[0]).await.seen);
}

async fn mark_read_marks_seen_too_and_answers_counts(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice"], "a")).await;
    let seen_first = sent_ids(&mut app.user("service"), send_to(&["alice"], "b")).await;
    let mut alice = app.user("alice");
    apply(&mut alice, MarkSeen, select_ids(&seen_first)).await;
    let seen_at = get(&mut alice, &seen_first[0]).await.seen_at;

    let both: Vec<String> = sent.iter().chain(&seen_first).cloned().collect();
    let marked = mark_read(&mut alice, &both).await;
    assert_eq!(marked.marked, 2);
    let counts = marked.counts.expect("MarkRead answers counts");
    assert_eq!(marked.total_unread, counts.unread);
    assert_eq!((counts.unread, counts.unseen), (0, 0));
    assert_counts_true(&mut alice, &counts, "after MarkRead").await;

    let read = get(&mut alice, &sent[0]).await;
    assert!(read.read && read.seen, "reading implies seen: {read:?}");
    assert_eq!(read.seen_at, read.read_at, "seen when it was read");
    assert_eq!(
        get(&mut alice, &seen_first[0]).await.seen_at,
        seen_at,
        "seen earlier keeps its time"
    );
}

async fn mark_unread_leaves_seen_alone(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice"], "a")).await;
    let news = sent_ids(&mut app.user("service"), broadcast("b")).await;
    let mut alice = app.user("alice");
    let both: Vec<String> = sent.iter().chain(&news).cloned().collect();
    mark_read(&mut alice, &both).await;

    let (changed, counts) = apply(&mut alice, MarkUnread, select_ids(&both)).await;
    assert_eq!(changed, 2);
    assert_eq!((counts.unread, counts.unseen), (2, 0));
    assert_counts_true(&mut alice, &counts, "after MarkUnread").await;
    for id in &both {
        let n = get(&mut alice, id).await;
        assert!(!n.read && n.read_at.is_none() && n.seen, "{n:?}");
    }
    let (changed, _) = apply(&mut alice, MarkUnread, select_ids(&both)).await;
    assert_eq!(changed, 0, "idempotent");

    // Marked read again, it counts as read again.
    let marked = mark_read(&mut alice, &both).await;
    assert_eq!((marked.marked, marked.total_unread), (2, 0));
}

async fn archive_moves_out_of_the_inbox_and_unarchive_back(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let kept = sent_ids(&mut service, send_to(&["alice"], "kept")).await;
    let gone = sent_ids(&mut service, send_to(&["alice"], "archived")).await;
    let mut alice = app.user("alice");
    apply(&mut alice, MarkSeen, select_ids(&gone)).await;

    let (changed_now, counts) = apply(&mut alice, Archive, select_ids(&gone)).await;
    assert_eq!(changed_now, 1);
    assert_eq!((counts.unread, counts.unseen), (1, 1), "out of the counts");
    assert_counts_true(&mut alice, &counts, "after Archive").await;
    let n = get(&mut alice, &gone[0]).await;
    assert!(n.archived && n.archived_at.is_some());
    assert!(n.seen && !n.read, "archive leaves read and seen alone");

    assert_eq!(ids(&list_all(&mut alice).await.notifications), kept);
    let archived = list(
        &mut alice,
        pb::ListRequest {
            archive_state: ArchiveState::Archived.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&archived.notifications), gone);
    assert_eq!(
        archived.counts,
        Some(counts.clone()),
        "counts ignore filters"
    );
    let any = list(
        &mut alice,
        pb::ListRequest {
            archive_state: ArchiveState::Any.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&any.notifications), [gone[0].clone(), kept[0].clone()]);

    let (changed_again, _) = apply(&mut alice, Archive, select_ids(&gone)).await;
    assert_eq!(changed_again, 0, "idempotent");
    assert_eq!(get(&mut alice, &gone[0]).await.archived_at, n.archived_at);

    let (back, counts) = apply(&mut alice, Unarchive, select_ids(&gone)).await;
    assert_eq!(back, 1);
    assert_eq!((counts.unread, counts.unseen), (2, 1));
    assert_counts_true(&mut alice, &counts, "after Unarchive").await;
    let n = get(&mut alice, &gone[0]).await;
    assert!(!n.archived && n.archived_at.is_none() && n.seen);
    let (back_again, _) = apply(&mut alice, Unarchive, select_ids(&gone)).await;
    assert_eq!(back_again, 0, "idempotent");
}

async fn broadcast_state_is_per_person(backend: Backend) {
    let app = spawn_app(backend).await;
    let news = sent_ids(&mut app.user("ops"), broadcast("news")).await;
    let (mut alice, mut bob) = (app.user("alice"), app.user("bob"));

    for rpc in [MarkSeen, Archive] {
        let (changed, _) = apply(&mut alice, rpc, select_ids(&news)).await;
        assert_eq!(changed, 1, "{rpc:?}");
    }
    let n = get(&mut alice, &news[0]).await;
    assert!(n.broadcast && n.seen && n.archived && !n.read, "{n:?}");
    assert!(list_all(&mut alice).await.notifications.is_empty());
    let alice_counts = list_all(&mut alice).await.counts.expect("counts");
    assert_eq!((alice_counts.unread, alice_counts.unseen), (0, 0));

    // Bob's inbox still holds it, unseen and unread.
    let page = list_all(&mut bob).await;
    assert_eq!(ids(&page.notifications), news);
    let b = &page.notifications[0];
    assert!(!b.seen && !b.archived && b.seen_at.is_none() && b.archived_at.is_none());
    let bob_counts = page.counts.clone().expect("counts");
    assert_eq!((bob_counts.unread, bob_counts.unseen), (1, 1));
    assert_counts_true(&mut bob, &bob_counts, "bob").await;

    // Bob reads and archives it his way; alice unarchives hers.
    mark_read(&mut bob, &news).await;
    apply(&mut bob, Archive, select_all("", ReadState::Read)).await;
    let (changed, counts) = apply(&mut alice, Unarchive, select_ids(&news)).await;
    assert_eq!(changed, 1);
    assert_eq!((counts.unread, counts.unseen), (1, 0));
    assert_counts_true(&mut alice, &counts, "alice after unarchiving").await;
    let b = get(&mut bob, &news[0]).await;
    assert!(b.read && b.seen && b.archived);
    let counts = list_all(&mut bob).await.counts.expect("counts");
    assert_counts_true(&mut bob, &counts, "bob after archiving").await;
}

async fn all_acts_on_the_inbox_view_and_unarchive_all_on_the_archive(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let build = |content: &str| pb::SendRequest {
        category: "build".into(),
        ..send_to(&["alice"], content)
    };
    let read_build = sent_ids(&mut service, build("read")).await;
    let unread_build = sent_ids(&mut service, build("unread")).await;
    let archived_build = sent_ids(&mut service, build("archived")).await;
    let chat = sent_ids(
        &mut service,
        pb::SendRequest {
            category: "chat".into(),
            ..send_to(&["alice"], "chat")
        },
    )
    .await;
    let news = sent_ids(&mut service, broadcast("news")).await;
    let mut alice = app.user("alice");
    mark_read(&mut alice, &read_build).await;
    apply(&mut alice, Archive, select_ids(&archived_build)).await;

    // "Archive all read" of one category takes only the read ones of the inbox.
    let (archived, counts) = apply(&mut alice, Archive, select_all("build", ReadState::Read)).await;
    assert_eq!(archived, 1);
    assert!(get(&mut alice, &read_build[0]).await.archived);
    assert!(!get(&mut alice, &unread_build[0]).await.archived);
    assert_counts_true(&mut alice, &counts, "archive all read").await;

    // "All" never reaches into the archive: the archived ones stay unseen.
    let (seen, counts) = apply(&mut alice, MarkSeen, select_all("", ReadState::Unspecified)).await;
    assert_eq!(seen, 3, "unread build, chat and the broadcast");
    assert!(!get(&mut alice, &archived_build[0]).await.seen);
    assert!(get(&mut alice, &news[0]).await.seen);
    assert_eq!(counts.unseen, 0);
    // ... while listed ids act on archived ones too.
    let (seen, _) = apply(&mut alice, MarkSeen, select_ids(&archived_build)).await;
    assert_eq!(seen, 1);

    // Unarchive all acts on the archive, narrowed like any "all".
    let (back, _) = apply(
        &mut alice,
        Unarchive,
        select_all("chat", ReadState::Unspecified),
    )
    .await;
    assert_eq!(back, 0, "nothing of chat is archived");
    let (back, counts) = apply(
        &mut alice,
        Unarchive,
        select_all("build", ReadState::Unread),
    )
    .await;
    assert_eq!(back, 1);
    assert!(!get(&mut alice, &archived_build[0]).await.archived);
    assert!(get(&mut alice, &read_build[0]).await.archived);
    assert_counts_true(&mut alice, &counts, "unarchive all unread build").await;
    let (back, _) = apply(
        &mut alice,
        Unarchive,
        select_all("", ReadState::Unspecified),
    )
    .await;
    assert_eq!(back, 1);

    // MarkRead's "all" is the inbox view too.
    apply(&mut alice, Archive, select_ids(&chat)).await;
    let marked = alice
        .mark_read(pb::MarkReadRequest {
            all: true,
            ..Default::default()
        })
        .await
        .expect("mark all read")
        .into_inner();
    assert_eq!(
        marked.marked, 3,
        "unread build, archived-then-back build, the broadcast"
    );
    assert!(
        !get(&mut alice, &chat[0]).await.read,
        "the archived chat stays unread"
    );
    let counts = marked.counts.expect("counts");
    assert_counts_true(&mut alice, &counts, "mark all read").await;
}

async fn ids_the_caller_cannot_see_are_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let bobs = sent_ids(&mut app.user("service"), send_to(&["bob"], "private")).await;
    let unknown = vec![uuid::Uuid::now_v7().to_string()];
    let mut alice = app.user("alice");
    for rpc in StateRpc::ALL {
        for selection in [&bobs, &unknown] {
            let (changed, counts) = apply(&mut alice, rpc, select_ids(selection)).await;
            assert_eq!((changed, counts), (0, pb::Counts::default()), "{rpc:?}");
        }
    }
    let n = get(&mut app.user("bob"), &bobs[0]).await;
    assert!(
        !n.seen && !n.archived,
        "bob's notification untouched: {n:?}"
    );
}

async fn invalid_selections_are_refused_and_change_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let mut alice = app.user("alice");
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let cases: Vec<(Option<pb::Selection>, &str)> = vec![
        (None, "selection"),
        (Some(pb::Selection::default()), "selection.ids"),
        (
            Some(pb::Selection {
                ids: sent.clone(),
                all: true,
                ..Default::default()
            }),
            "selection.ids",
        ),
        (
            Some(pb::Selection {
                ids: sent.clone(),
                category: "test".into(),
                ..Default::default()
            }),
            "selection.category",
        ),
        (
            Some(pb::Selection {
                ids: sent.clone(),
                state: ReadState::Unread.into(),
                ..Default::default()
            }),
            "selection.state",
        ),
        (
            Some(pb::Selection {
                category: "test".into(),
                ..Default::default()
            }),
            "selection.category",
        ),
        (select_ids(&too_many), "selection.ids"),
        (
            select_ids(&[sent[0].clone(), "not-a-uuid".into()]),
            "selection.ids[1]",
        ),
        (
            select_all("NOT VALID", ReadState::Unspecified),
            "selection.category",
        ),
        (
            Some(pb::Selection {
                all: true,
                state: 7,
                ..Default::default()
            }),
            "selection.state",
        ),
    ];
    for rpc in StateRpc::ALL {
        for (selection, field) in &cases {
            let status = change_state(&mut alice, rpc, selection.clone())
                .await
                .expect_err("refused");
            assert_invalid(&status, field);
        }
    }
    let n = get(&mut alice, &sent[0]).await;
    assert!(!n.seen && !n.read && !n.archived, "nothing changed: {n:?}");
}

async fn list_filters_by_seen_and_archive_state_with_page_tokens_bound_to_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let sent = mixed_history(&mut service, 6, 3, &["alice"]).await;
    let mut alice = app.user("alice");
    // Seen: 0, 1, 2 (a broadcast among them); archived: 1, 4.
    apply(&mut alice, MarkSeen, select_ids(&sent[0..3])).await;
    apply(
        &mut alice,
        Archive,
        select_ids(&[sent[1].clone(), sent[4].clone()]),
    )
    .await;

    let listed = |seen: SeenState, archive: ArchiveState| pb::ListRequest {
        seen_state: seen.into(),
        archive_state: archive.into(),
        ..Default::default()
    };
    let expect = |indexes: &[usize]| -> Vec<String> {
        indexes.iter().rev().map(|&i| sent[i].clone()).collect()
    };
    for (request, expected) in [
        (
            listed(SeenState::Unseen, ArchiveState::Unspecified),
            expect(&[3, 5]),
        ),
        (
            listed(SeenState::Seen, ArchiveState::Unspecified),
            expect(&[0, 2]),
        ),
        (
            listed(SeenState::Seen, ArchiveState::Archived),
            expect(&[1]),
        ),
        (
            listed(SeenState::Unspecified, ArchiveState::Archived),
            expect(&[1, 4]),
        ),
        (
            listed(SeenState::Unseen, ArchiveState::Any),
            expect(&[3, 4, 5]),
        ),
        (
            listed(SeenState::Unspecified, ArchiveState::Any),
            expect(&[0, 1, 2, 3, 4, 5]),
        ),
    ] {
        let page = list(&mut alice, request.clone()).await;
        assert_eq!(ids(&page.notifications), expected, "{request:?}");
    }

    // Paging through the archive-or-not listing two at a time covers it once; its tokens
    // are refused for another filter.
    let mut token = String::new();
    let mut seen = Vec::new();
    loop {
        let page = list(
            &mut alice,
            pb::ListRequest {
                page_size: 2,
                page_token: token.clone(),
                ..listed(SeenState::Unspecified, ArchiveState::Any)
            },
        )
        .await;
        seen.extend(ids(&page.notifications));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        for other in [
            listed(SeenState::Unspecified, ArchiveState::Unspecified),
            listed(SeenState::Seen, ArchiveState::Any),
            pb::ListRequest {
                include_snoozed: true,
                ..listed(SeenState::Unspecified, ArchiveState::Any)
            },
        ] {
            let status = alice
                .list(pb::ListRequest {
                    page_token: token.clone(),
                    ..other
                })
                .await
                .expect_err("a token of another filter");
            assert_invalid(&status, "page_token");
        }
    }
    assert_eq!(seen, expect(&[0, 1, 2, 3, 4, 5]));

    for (request, field) in [
        (
            pb::ListRequest {
                seen_state: 9,
                ..Default::default()
            },
            "seen_state",
        ),
        (
            pb::ListRequest {
                archive_state: 9,
                ..Default::default()
            },
            "archive_state",
        ),
    ] {
        let status = alice.list(request).await.expect_err("refused");
        assert_invalid(&status, field);
    }
    let counts = list_all(&mut alice).await.counts.expect("counts");
    assert_eq!(
        counts.unseen_by_category,
        HashMap::from([("announcement".to_owned(), 1), ("test".to_owned(), 1)])
    );
}

/// A selection's `category` is that category only, unlike a mute: `build` leaves `build.x`
/// alone, direct and broadcast.
async fn a_category_selects_exactly_that_category_not_those_below_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let in_category = |category: &str, request: pb::SendRequest| pb::SendRequest {
        category: category.into(),
        ..request
    };
    let build = sent_ids(&mut service, in_category("build", send_to(&["alice"], "b"))).await;
    let below = sent_ids(
        &mut service,
        in_category("build.x", send_to(&["alice"], "x")),
    )
    .await;
    let broadcast_below = sent_ids(&mut service, in_category("build.x", broadcast("bx"))).await;
    let mut alice = app.user("alice");
    for rpc in [MarkSeen, Archive] {
        let (changed, counts) =
            apply(&mut alice, rpc, select_all("build", ReadState::Unspecified)).await;
        assert_eq!(changed, 1, "{rpc:?}");
        assert_counts_true(&mut alice, &counts, "all of build").await;
    }
    let archived = get(&mut alice, &build[0]).await;
    assert!(archived.seen && archived.archived);
    for id in [&below[0], &broadcast_below[0]] {
        let left = get(&mut alice, id).await;
        assert!(!left.seen && !left.archived, "{id}");
    }
}

/// 1000 ids is the most a selection takes (1001 is refused above): accepted, and ids the
/// caller cannot see change nothing.
async fn a_selection_of_1000_ids_is_accepted(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = sent_ids(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let mut ids: Vec<String> = (0..999).map(|_| uuid::Uuid::now_v7().to_string()).collect();
    ids.extend(sent.iter().cloned());
    let mut alice = app.user("alice");
    let (changed, counts) = apply(&mut alice, MarkSeen, select_ids(&ids)).await;
    assert_eq!(changed, 1);
    assert_eq!(counts.unseen, 0);
}

switchboard::both_backends!(
    mark_seen_marks_only_seen_and_repeating_changes_nothing,
    mark_read_marks_seen_too_and_answers_counts,
    mark_unread_leaves_seen_alone,
    archive_moves_out_of_the_inbox_and_unarchive_back,
    broadcast_state_is_per_person,
    all_acts_on_the_inbox_view_and_unarchive_all_on_the_archive,
    ids_the_caller_cannot_see_are_ignored,
    invalid_selections_are_refused_and_change_nothing,
    list_filters_by_seen_and_archive_state_with_page_tokens_bound_to_them,
    a_category_selects_exactly_that_category_not_those_below_it,
    a_selection_of_1000_ids_is_accepted,
);
