//! SendRequest.critical: needs scope `notifications:critical`, is stored on every row and
//! returned as Notification.critical wherever a notification is returned.

use switchboard::{identity::scope, proto::notification::v1 as pb, testing::next_notification};
use tonic::Code;

use crate::helpers::*;

/// `critical` of every stored notification, in id order, read from the database itself.
async fn stored_critical(database_url: &str) -> Vec<bool> {
    let query = "SELECT critical FROM notifications ORDER BY id";
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        sqlx::query_scalar(query).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        sqlx::query_scalar(query).fetch_all(&pool).await.unwrap()
    }
}

fn critical(request: pb::SendRequest) -> pb::SendRequest {
    pb::SendRequest {
        critical: true,
        ..request
    }
}

async fn critical_needs_its_scope_and_stores_nothing_without_it(backend: Backend) {
    let app = spawn_app(backend).await;
    let without = [
        (vec![scope::SEND], critical(send_to(&["alice"], "outage"))),
        (
            vec![scope::SEND, scope::BROADCAST, scope::SEND_AS],
            critical(broadcast("outage")),
        ),
        // The scope alone does not allow a broadcast either.
        (
            vec![scope::SEND, scope::CRITICAL],
            critical(broadcast("outage")),
        ),
    ];
    for (scopes, request) in without {
        let status = app
            .user_with_scopes("pager", &scopes)
            .send(request)
            .await
            .expect_err("refused");
        assert_eq!(
            status.code(),
            Code::PermissionDenied,
            "{scopes:?}: {status:?}"
        );
    }
    assert!(stored_critical(&app.database_url).await.is_empty());

    let mut pager = app.user_with_scopes("pager", &[scope::SEND, scope::CRITICAL]);
    let sent = send(&mut pager, critical(send_to(&["alice"], "outage"))).await;
    assert!(sent[0].critical);
    let mut ops = app.user_with_scopes("ops", &[scope::BROADCAST, scope::CRITICAL]);
    let news = send(&mut ops, critical(broadcast("outage"))).await;
    assert!(news[0].critical && news[0].broadcast);
}

async fn critical_is_stored_per_row_and_returned_everywhere(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    let mut live = subscribe(&mut alice, Default::default()).await;
    let mut pager = app.user("pager");
    let plain = send(&mut pager, send_to(&["alice", "bob"], "fyi")).await;
    let request = pb::SendRequest {
        idempotency_key: "incident-7".into(),
        ..critical(send_to(&["alice", "bob"], "outage"))
    };
    let urgent = send(&mut pager, request.clone()).await;
    assert!(plain.iter().all(|n| !n.critical), "false unless asked");
    assert!(urgent.iter().all(|n| n.critical));
    assert_eq!(
        stored_critical(&app.database_url).await,
        [false, false, true, true]
    );

    let listed = list_all(&mut alice).await.notifications;
    assert_eq!(
        listed.iter().map(|n| n.critical).collect::<Vec<_>>(),
        [true, false],
        "newest first"
    );
    let alices_plain = next_notification(&mut live).await;
    assert!(!alices_plain.critical);
    let alices_urgent = next_notification(&mut live).await;
    assert!(alices_urgent.critical, "live");
    assert_eq!(listed[0], alices_urgent);

    let mut replay = subscribe(
        &mut alice,
        pb::SubscribeRequest {
            resume_after: alices_plain.id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        next_notification(&mut replay).await,
        alices_urgent,
        "replayed"
    );
    assert_eq!(send(&mut pager, request).await, urgent, "the repeat");
}

switchboard::both_backends!(
    critical_needs_its_scope_and_stores_nothing_without_it,
    critical_is_stored_per_row_and_returned_everywhere,
);
