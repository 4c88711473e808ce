//! conversation-svc and notification-svc both really running: a message reaches the other
//! participant's Subscribe stream.

use std::time::Duration;

use switchboard::proto::{conversation::v1 as pb, notification::v1 as npb};

use switchboard::testing::next_notification;

use crate::helpers::*;

async fn a_message_notifies_the_other_participant_live(backend: Backend) {
    let app = spawn_app_with_notifications(backend).await;
    app.sign_in(&["bob"]).await;
    let mut bob_stream = app
        .notifications_of("bob")
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();

    let mut alice = app.user("alice");
    let id = conversation_with(&mut alice, "bob").await.id;
    let long = "x".repeat(300);
    let message = send_message(&mut alice, &id, &format!("hello bob {long}")).await;

    let n = next_notification(&mut bob_stream).await;
    assert_eq!(n.category, "conversation.message");
    assert_eq!(n.link, format!("/conversations/{id}"));
    assert_eq!(n.sender_id, "id-alice");
    assert_eq!(n.recipient_id, "id-bob");
    let expected: String = format!("hello bob {long}").chars().take(140).collect();
    assert_eq!(n.content, format!("alice: {expected}"));

    // Retrying the same message (same idempotency key) does not notify twice.
    let request = pb::SendMessageRequest {
        conversation_id: id.clone(),
        content: "retry me".into(),
        idempotency_key: "k1".into(),
    };
    let first = alice
        .send_message(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = alice.send_message(request).await.unwrap().into_inner();
    assert_eq!(first.message, again.message);
    send_message(&mut alice, &id, "after the retry").await;
    // Notifications are sent in the background, so these two may arrive in either order.
    let mut contents = vec![
        next_notification(&mut bob_stream).await.content,
        next_notification(&mut bob_stream).await.content,
    ];
    contents.sort();
    assert_eq!(contents, ["alice: after the retry", "alice: retry me"]);
    let quiet = tokio::time::timeout(
        Duration::from_millis(500),
        next_notification(&mut bob_stream),
    )
    .await;
    assert!(quiet.is_err(), "no duplicate notification: {quiet:?}");

    let listed = app
        .notifications_of("bob")
        .list(npb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.notifications.len(), 3);
    assert_eq!(
        listed.unread_by_category.get("conversation.message"),
        Some(&3)
    );
    assert_eq!(message.conversation_id, id);
}

switchboard::both_backends!(a_message_notifies_the_other_participant_live);
