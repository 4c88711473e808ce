use switchboard::proto::notification::v1::{self as pb, ReadState};

use crate::helpers::*;

fn by_ids(ids: Vec<String>) -> pb::MarkReadRequest {
    pb::MarkReadRequest {
        ids,
        ..Default::default()
    }
}

fn all(category: &str) -> pb::MarkReadRequest {
    pb::MarkReadRequest {
        all: true,
        category: category.into(),
        ..Default::default()
    }
}

async fn mark(client: &mut Client, request: pb::MarkReadRequest) -> pb::MarkReadResponse {
    client
        .mark_read(request)
        .await
        .expect("mark read")
        .into_inner()
}

async fn a_broadcast_is_read_per_user(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(&mut app.user("ops"), broadcast("hello all")).await;
    let (mut alice, mut bob) = (app.user("alice"), app.user("bob"));

    let marked = mark(&mut alice, by_ids(ids(&sent))).await;
    assert_eq!((marked.marked, marked.total_unread), (1, 0));

    let alice_view = list_all(&mut alice).await;
    assert!(alice_view.notifications[0].read);
    assert!(alice_view.notifications[0].read_at.is_some());
    assert_eq!(alice_view.total_unread, 0);
    let bob_view = list_all(&mut bob).await;
    assert!(!bob_view.notifications[0].read, "bob has not read it");
    assert_eq!(bob_view.total_unread, 1);

    let marked = mark(&mut bob, all("")).await;
    assert_eq!((marked.marked, marked.total_unread), (1, 0));
}

async fn mark_all_can_be_limited_to_a_category(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    send(&mut service, send_to(&["alice"], "build 1")).await;
    send(&mut service, send_to(&["alice"], "build 2")).await;
    let task = send(
        &mut service,
        pb::SendRequest {
            category: "task".into(),
            ..send_to(&["alice"], "task")
        },
    )
    .await;
    send(&mut service, broadcast("news")).await;
    let mut alice = app.user("alice");

    let marked = mark(&mut alice, all("test")).await;
    assert_eq!((marked.marked, marked.total_unread), (2, 2));
    let unread = list(
        &mut alice,
        pb::ListRequest {
            state: ReadState::Unread.into(),
            ..Default::default()
        },
    )
    .await;
    let mut categories: Vec<_> = unread
        .notifications
        .iter()
        .map(|n| n.category.clone())
        .collect();
    categories.sort();
    assert_eq!(categories, ["announcement", "task"]);
    assert_eq!(
        unread
            .notifications
            .iter()
            .find(|n| n.category == "task")
            .unwrap()
            .id,
        task[0].id
    );

    let marked = mark(&mut alice, all("announcement")).await;
    assert_eq!((marked.marked, marked.total_unread), (1, 1));
    let marked = mark(&mut alice, all("")).await;
    assert_eq!((marked.marked, marked.total_unread), (1, 0));
}

async fn ids_the_caller_cannot_see_are_ignored(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let bobs = send(&mut service, send_to(&["bob"], "private")).await;
    let alices = send(&mut service, send_to(&["alice"], "mine")).await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let marked = mark(
        &mut app.user("alice"),
        by_ids(vec![bobs[0].id.clone(), unknown, alices[0].id.clone()]),
    )
    .await;
    assert_eq!((marked.marked, marked.total_unread), (1, 0));
    let bob_view = list_all(&mut app.user("bob")).await;
    assert!(
        !bob_view.notifications[0].read,
        "bob's notification untouched"
    );
}

async fn marking_is_idempotent(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let mut alice = app.user("alice");
    assert_eq!(mark(&mut alice, by_ids(ids(&sent))).await.marked, 1);
    let first_read_at = list_all(&mut alice).await.notifications[0].read_at;
    assert_eq!(mark(&mut alice, by_ids(ids(&sent))).await.marked, 0);
    assert_eq!(mark(&mut alice, all("")).await.marked, 0);
    assert_eq!(
        list_all(&mut alice).await.notifications[0].read_at,
        first_read_at,
        "read_at keeps the first read"
    );
    // Upper-case ids name the same notification.
    let upper = sent[0].id.to_uppercase();
    assert_eq!(mark(&mut alice, by_ids(vec![upper])).await.marked, 0);
}

async fn invalid_requests_are_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(&mut app.user("service"), send_to(&["alice"], "x")).await;
    let mut alice = app.user("alice");
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::now_v7().to_string())
        .collect();
    let cases = [
        (pb::MarkReadRequest::default(), "ids"),
        (
            pb::MarkReadRequest {
                ids: ids(&sent),
                all: true,
                ..Default::default()
            },
            "ids",
        ),
        (by_ids(too_many), "ids"),
        (
            by_ids(vec![sent[0].id.clone(), "not-a-uuid".into()]),
            "ids[1]",
        ),
        (
            pb::MarkReadRequest {
                ids: ids(&sent),
                category: "test".into(),
                ..Default::default()
            },
            "category",
        ),
        (all("NOT VALID"), "category"),
    ];
    for (request, field) in cases {
        let status = alice.mark_read(request).await.unwrap_err();
        assert_invalid(&status, field);
    }
    assert_eq!(
        list_all(&mut alice).await.total_unread,
        1,
        "nothing was marked"
    );
}

switchboard::both_backends!(
    a_broadcast_is_read_per_user,
    mark_all_can_be_limited_to_a_category,
    ids_the_caller_cannot_see_are_ignored,
    marking_is_idempotent,
    invalid_requests_are_refused,
);
