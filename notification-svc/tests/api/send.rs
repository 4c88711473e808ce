use std::collections::HashSet;

use switchboard::{identity::scope, proto::notification::v1 as pb};
use tonic::Code;

use crate::helpers::*;

async fn stores_one_notification_per_distinct_recipient(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(
        &mut app.user("service"),
        pb::SendRequest {
            link: "https://ci.example.com/runs/7".into(),
            ..send_to(&["alice", "bob", "alice"], "Your test run finished")
        },
    )
    .await;
    assert_eq!(sent.len(), 2, "duplicates are notified once");
    let recipients: HashSet<_> = sent.iter().map(|n| n.recipient_id.as_str()).collect();
    assert_eq!(recipients, HashSet::from(["alice", "bob"]));
    for n in &sent {
        assert_eq!(n.sender_id, "service", "sender defaults to the caller");
        assert_eq!(n.category, "test");
        assert_eq!(n.link, "https://ci.example.com/runs/7");
        assert!(!n.read && !n.broadcast && n.read_at.is_none());
        assert!(n.created_at.is_some());
        assert_eq!(uuid::Uuid::parse_str(&n.id).unwrap().get_version_num(), 7);
    }
    let alice = list_all(&mut app.user("alice")).await;
    assert_eq!(ids(&alice.notifications), [sent[0].id.clone()]);
    assert_eq!(alice.notifications[0].content, "Your test run finished");
}

async fn broadcast_is_stored_once_and_seen_by_everyone(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(&mut app.user("ops"), broadcast("Maintenance at 22:00")).await;
    assert_eq!(sent.len(), 1);
    assert!(sent[0].broadcast);
    assert_eq!(sent[0].recipient_id, "");
    for user in ["alice", "bob", "someone-new"] {
        let page = list_all(&mut app.user(user)).await;
        assert_eq!(ids(&page.notifications), ids(&sent), "{user}");
        assert_eq!(page.total_unread, 1);
    }
}

async fn every_invalid_field_is_refused_and_nothing_is_written(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut client = app.user("service");
    let cases: Vec<(pb::SendRequest, &str)> = vec![
        (send_to(&[], "x"), "recipient_ids"),
        (
            pb::SendRequest {
                broadcast: true,
                ..send_to(&["alice"], "x")
            },
            "recipient_ids",
        ),
        (
            pb::SendRequest {
                recipient_ids: (0..1001).map(|i| format!("user-{i}")).collect(),
                ..send_to(&[], "x")
            },
            "recipient_ids",
        ),
        (send_to(&[""], "x"), "recipient_ids[0]"),
        (send_to(&["alice", "has space"], "x"), "recipient_ids[1]"),
        (
            pb::SendRequest {
                category: "".into(),
                ..send_to(&["alice"], "x")
            },
            "category",
        ),
        (
            pb::SendRequest {
                category: "Upper".into(),
                ..send_to(&["alice"], "x")
            },
            "category",
        ),
        (
            pb::SendRequest {
                category: "9lives".into(),
                ..send_to(&["alice"], "x")
            },
            "category",
        ),
        (
            pb::SendRequest {
                category: format!("a{}", "b".repeat(64)),
                ..send_to(&["alice"], "x")
            },
            "category",
        ),
        (send_to(&["alice"], ""), "content"),
        (send_to(&["alice"], &"x".repeat(2001)), "content"),
        (send_to(&["alice"], "nul\0byte"), "content"),
        (
            pb::SendRequest {
                link: "ftp://example.com".into(),
                ..send_to(&["alice"], "x")
            },
            "link",
        ),
        (
            pb::SendRequest {
                link: "relative".into(),
                ..send_to(&["alice"], "x")
            },
            "link",
        ),
        (
            pb::SendRequest {
                link: "//evil.example".into(),
                ..send_to(&["alice"], "x")
            },
            "link",
        ),
        (
            pb::SendRequest {
                link: format!("/{}", "a".repeat(2048)),
                ..send_to(&["alice"], "x")
            },
            "link",
        ),
        (
            pb::SendRequest {
                sender_id: "bad id".into(),
                ..send_to(&["alice"], "x")
            },
            "sender_id",
        ),
        (
            pb::SendRequest {
                idempotency_key: "k".repeat(201),
                ..send_to(&["alice"], "x")
            },
            "idempotency_key",
        ),
    ];
    for (request, field) in cases {
        let status = client.send(request).await.expect_err(field);
        assert_invalid(&status, field);
    }
    // Limits are inclusive.
    send(&mut client, send_to(&["alice"], &"é".repeat(2000))).await;
    let page = list_all(&mut app.user("alice")).await;
    assert_eq!(
        page.notifications.len(),
        1,
        "only the valid Send was stored"
    );
}

async fn all_violations_are_reported_at_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .user("service")
        .send(pb::SendRequest::default())
        .await
        .unwrap_err();
    for field in ["recipient_ids", "category", "content"] {
        assert_invalid(&status, field);
    }
}

async fn scopes_are_enforced(backend: Backend) {
    let app = spawn_app(backend).await;
    let cases = [
        (vec![], send_to(&["alice"], "x")),
        (vec![scope::SEND], broadcast("x")),
        (
            vec![scope::SEND],
            pb::SendRequest {
                sender_id: "someone-else".into(),
                ..send_to(&["alice"], "x")
            },
        ),
    ];
    for (scopes, request) in cases {
        let status = app
            .user_with_scopes("service", &scopes)
            .send(request)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{scopes:?}: {status:?}"
        );
    }
    assert!(
        list_all(&mut app.user("alice"))
            .await
            .notifications
            .is_empty()
    );

    // With send_as, the named sender is stored; naming yourself needs no extra scope.
    let sent = send(
        &mut app.user_with_scopes("service", &[scope::SEND, scope::SEND_AS]),
        pb::SendRequest {
            sender_id: "bob".into(),
            ..send_to(&["alice"], "x")
        },
    )
    .await;
    assert_eq!(sent[0].sender_id, "bob");
    let sent = send(
        &mut app.user_with_scopes("service", &[scope::SEND]),
        pb::SendRequest {
            sender_id: "service".into(),
            ..send_to(&["alice"], "x")
        },
    )
    .await;
    assert_eq!(sent[0].sender_id, "service");
}

async fn a_repeated_idempotency_key_returns_the_original(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut service = app.user("service");
    let request = pb::SendRequest {
        idempotency_key: "run-42-finished".into(),
        ..send_to(&["alice", "bob"], "Run 42 finished")
    };
    let first = send(&mut service, request.clone()).await;
    let again = send(&mut service, request.clone()).await;
    assert_eq!(first, again);
    // Even with a different body, the key wins: the original is returned.
    let changed = send(
        &mut service,
        pb::SendRequest {
            content: "changed".into(),
            ..request.clone()
        },
    )
    .await;
    assert_eq!(ids(&changed), ids(&first));
    assert_eq!(
        list_all(&mut app.user("alice")).await.notifications.len(),
        1
    );

    // Keys are per caller.
    let other = send(&mut app.user("other-service"), request).await;
    assert_ne!(ids(&other), ids(&first));
    assert_eq!(
        list_all(&mut app.user("alice")).await.notifications.len(),
        2
    );
}

async fn concurrent_sends_with_one_key_create_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let request = pb::SendRequest {
        idempotency_key: "same".into(),
        ..send_to(&["alice"], "once")
    };
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let mut client = app.user("service");
        let request = request.clone();
        tasks.push(tokio::spawn(
            async move { send(&mut client, request).await },
        ));
    }
    let mut seen = HashSet::new();
    for task in tasks {
        seen.insert(ids(&task.await.unwrap()));
    }
    assert_eq!(seen.len(), 1, "every caller got the same notification");
    assert_eq!(
        list_all(&mut app.user("alice")).await.notifications.len(),
        1
    );
}

async fn a_thousand_recipients_fit_in_one_send(backend: Backend) {
    let app = spawn_app(backend).await;
    let recipients: Vec<String> = (0..1000).map(|i| format!("user-{i}")).collect();
    let sent = send(
        &mut app.user("service"),
        pb::SendRequest {
            recipient_ids: recipients,
            ..send_to(&[], "hello everyone")
        },
    )
    .await;
    assert_eq!(sent.len(), 1000);
    let page = list_all(&mut app.user("user-999")).await;
    assert_eq!(page.notifications.len(), 1);
}

switchboard::both_backends!(
    stores_one_notification_per_distinct_recipient,
    broadcast_is_stored_once_and_seen_by_everyone,
    every_invalid_field_is_refused_and_nothing_is_written,
    all_violations_are_reported_at_once,
    scopes_are_enforced,
    a_repeated_idempotency_key_returns_the_original,
    concurrent_sends_with_one_key_create_once,
    a_thousand_recipients_fit_in_one_send,
);
