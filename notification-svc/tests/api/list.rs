use std::collections::{HashMap, HashSet};

use switchboard::proto::notification::v1::{self as pb, ReadState};

use crate::helpers::*;

async fn shows_own_and_broadcast_newest_first(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let first = send(&mut service, send_to(&["alice"], "first")).await;
    send(&mut service, send_to(&["bob"], "for bob only")).await;
    let second = send(&mut service, broadcast("second")).await;
    let third = send(&mut service, send_to(&["alice"], "third")).await;

    let page = list_all(&mut app.user("alice")).await;
    assert_eq!(
        ids(&page.notifications),
        [&third[0].id, &second[0].id, &first[0].id].map(String::clone)
    );
    assert!(page.next_page_token.is_empty());
}

async fn filters_by_state_and_category_with_totals_ignoring_them(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let mut alice = app.user("alice");
    let build = send(&mut service, send_to(&["alice"], "build")).await;
    send(
        &mut service,
        pb::SendRequest {
            category: "task.assigned".into(),
            ..send_to(&["alice"], "task")
        },
    )
    .await;
    send(&mut service, broadcast("news")).await;
    alice
        .mark_read(pb::MarkReadRequest {
            ids: ids(&build),
            ..Default::default()
        })
        .await
        .unwrap();

    let unread = list(
        &mut alice,
        pb::ListRequest {
            state: ReadState::Unread.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(unread.notifications.len(), 2);
    assert!(unread.notifications.iter().all(|n| !n.read));
    let read = list(
        &mut alice,
        pb::ListRequest {
            state: ReadState::Read.into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(ids(&read.notifications), ids(&build));
    assert!(read.notifications[0].read && read.notifications[0].read_at.is_some());
    let tasks = list(
        &mut alice,
        pb::ListRequest {
            category: "task.assigned".into(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(tasks.notifications.len(), 1);
    assert_eq!(tasks.notifications[0].content, "task");

    for page in [unread, read, tasks] {
        assert_eq!(page.total_unread, 2);
        assert_eq!(
            page.unread_by_category,
            HashMap::from([
                ("task.assigned".to_owned(), 1),
                ("announcement".to_owned(), 1)
            ])
        );
    }
}

async fn pages_cover_everything_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let mut sent = mixed_history(&mut service, 23, 5, &["alice"]).await;
    let mut alice = app.user("alice");
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page = list(
            &mut alice,
            pb::ListRequest {
                page_size: 5,
                page_token: token.clone(),
                ..Default::default()
            },
        )
        .await;
        pages += 1;
        assert!(page.notifications.len() <= 5);
        assert_eq!(page.total_unread, 23, "totals ignore the page");
        seen.extend(ids(&page.notifications));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(pages, 5);
    sent.reverse();
    assert_eq!(seen, sent, "newest first, no gap, no duplicate");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 23);
}

async fn a_page_that_ends_exactly_has_no_next_token(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    for i in 0..4 {
        send(&mut service, send_to(&["alice"], &format!("n{i}"))).await;
    }
    let page = list(
        &mut app.user("alice"),
        pb::ListRequest {
            page_size: 4,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(page.notifications.len(), 4);
    assert!(page.next_page_token.is_empty());
}

async fn page_size_and_tokens_are_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    for i in 0..3 {
        send(&mut service, send_to(&["alice", "bob"], &format!("n{i}"))).await;
    }
    let mut alice = app.user("alice");
    let first = list(
        &mut alice,
        pb::ListRequest {
            page_size: 1,
            ..Default::default()
        },
    )
    .await;
    let token = first.next_page_token;
    assert!(!token.is_empty());

    let bad = [
        (
            pb::ListRequest {
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListRequest {
                page_token: "garbage".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListRequest {
                page_token: format!("{token}x"),
                ..Default::default()
            },
            "page_token",
        ),
        // A token is bound to the filters it was issued for.
        (
            pb::ListRequest {
                page_token: token.clone(),
                state: ReadState::Unread.into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListRequest {
                state: 7,
                ..Default::default()
            },
            "state",
        ),
        (
            pb::ListRequest {
                category: "Bad!".into(),
                ..Default::default()
            },
            "category",
        ),
    ];
    for (request, field) in bad {
        let status = alice.list(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
    // ...and to the caller it was issued to.
    let status = app
        .user("bob")
        .list(pb::ListRequest {
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "page_token");

    let max = list(
        &mut alice,
        pb::ListRequest {
            page_size: 500,
            ..Default::default()
        },
    )
    .await;
    assert_eq!(max.notifications.len(), 3);
}

/// AIP-158: a page size above the maximum is coerced to it, not refused.
async fn a_page_size_over_the_maximum_lists_the_maximum(backend: Backend) {
    let app = spawn_app(backend).await;
    let max = switchboard::page_token::MAX_PAGE_SIZE;
    let mut senders = Vec::new();
    for worker in 0..4 {
        let mut service = app.user("service");
        senders.push(tokio::spawn(async move {
            for i in (worker..=max).step_by(4) {
                send(&mut service, send_to(&["alice"], &format!("n{i}"))).await;
            }
        }));
    }
    for sender in senders {
        sender.await.expect("sender");
    }
    let mut alice = app.user("alice");
    for page_size in [501, 10_000, i32::MAX] {
        let page = list(
            &mut alice,
            pb::ListRequest {
                page_size,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(page.notifications.len(), max, "page_size {page_size}");
        assert!(!page.next_page_token.is_empty(), "one more follows");
        let rest = list(
            &mut alice,
            pb::ListRequest {
                page_size,
                page_token: page.next_page_token,
                ..Default::default()
            },
        )
        .await;
        assert_eq!(rest.notifications.len(), 1);
    }
}

switchboard::both_backends!(
    a_page_size_over_the_maximum_lists_the_maximum,
    shows_own_and_broadcast_newest_first,
    filters_by_state_and_category_with_totals_ignoring_them,
    pages_cover_everything_once,
    a_page_that_ends_exactly_has_no_next_token,
    page_size_and_tokens_are_validated,
);
