//! The seed story, through the gateway only, on SQLite and on PostgreSQL: in plaintext, and
//! through a TLS gateway to backends that require client certificates (mTLS on every hop).

use devstack::{StackTls, certs::DevCerts};
use e2e::*;
use switchboard::proto::{conversation::v1 as cpb, notification::v1 as npb};
use switchboard::testing::next_notification;
use tonic::transport::Endpoint;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

async fn alice_and_bob_talk_and_read_a_broadcast(backend: Backend) {
    seed_story(start(backend).await).await;
}

async fn alice_and_bob_talk_and_read_a_broadcast_over_tls_and_mtls(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let certs = DevCerts::create(dir.path()).expect("certificates");
    let app = start_with(backend, |config| {
        config.tls = Some(StackTls {
            certs: certs.clone(),
            inside: true,
        });
    })
    .await;
    every_hop_requires_tls(&app, &certs).await;
    seed_story(app).await;
}

/// Guards the TLS variant against quietly running in plaintext: the gateway refuses a
/// plaintext client, and each service serves a TLS caller with the callers' client
/// certificate but refuses one without, so the story's calls (conversation-svc's
/// notification included) can only have gone over mTLS.
async fn every_hop_requires_tls(app: &E2e, certs: &DevCerts) {
    let check = |channel| async move {
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
    };
    let plaintext = check(channel(app.gateway)).await;
    assert!(plaintext.is_err(), "a plaintext client got {plaintext:?}");
    let caller = certs
        .upstream_flags()
        .client_config()
        .expect("the callers' TLS configuration")
        .expect("TLS for callers");
    for (name, addr) in [
        ("notification-svc", app.notification),
        ("conversation-svc", app.conversation),
    ] {
        let with_certificate = Endpoint::from_shared(format!("https://{addr}"))
            .expect("endpoint")
            .tls_config(caller.clone())
            .expect("TLS configuration")
            .connect_lazy();
        check(with_certificate)
            .await
            .unwrap_or_else(|e| panic!("{name} refused a caller with a certificate: {e:?}"));
        let anonymous = check(tls_endpoint(addr, &certs.ca()).connect_lazy()).await;
        assert!(
            anonymous.is_err(),
            "{name} served a caller without a client certificate: {anonymous:?}"
        );
    }
}

/// Alice and Bob's story, through whichever gateway `app` runs (its clients follow its TLS).
async fn seed_story(app: E2e) {
    let alice_token = app.token("alice", "");
    let bob_token = app.token("bob", "");
    let ops_token = app.token("ops", "notifications:broadcast");

    // Bob signs in and keeps a live stream open.
    let mut bob_conversations = app.conversations(&bob_token);
    bob_conversations
        .list(cpb::ListRequest::default())
        .await
        .expect("bob signs in");
    let mut bob_notifications = app.notifications(&bob_token);
    let mut bob_stream = bob_notifications
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe through the gateway")
        .into_inner();

    // Alice starts a conversation with bob and writes.
    let mut alice_conversations = app.conversations(&alice_token);
    let created = alice_conversations
        .create(cpb::CreateRequest {
            username: "bob".into(),
        })
        .await
        .expect("create")
        .into_inner();
    assert!(created.created);
    let conversation = created.conversation.unwrap();
    assert_eq!(
        conversation.other_participant.as_ref().unwrap().id,
        "id-bob"
    );
    let message = alice_conversations
        .send_message(cpb::SendMessageRequest {
            conversation_id: conversation.id.clone(),
            content: "Hi Bob, lunch?".into(),
            idempotency_key: String::new(),
        })
        .await
        .expect("send message")
        .into_inner()
        .message
        .unwrap();
    assert_eq!(message.sender_id, "id-alice");

    // Bob's stream shows the notification.
    let notified = next_notification(&mut bob_stream).await;
    assert_eq!(notified.category, "conversation.message");
    assert_eq!(notified.content, "alice: Hi Bob, lunch?");
    assert_eq!(notified.link, format!("/conversations/{}", conversation.id));
    assert_eq!(notified.sender_id, "id-alice");

    // Bob sees the conversation unread, with its last message, then reads it.
    let listed = bob_conversations
        .list(cpb::ListRequest::default())
        .await
        .unwrap()
        .into_inner()
        .conversations;
    assert_eq!(listed.len(), 1);
    assert!(listed[0].has_unread_messages);
    assert_eq!(listed[0].unread_count, 1);
    assert_eq!(
        listed[0].last_message.as_ref().unwrap().content,
        "Hi Bob, lunch?"
    );
    assert_eq!(
        listed[0].other_participant.as_ref().unwrap().avatar_url,
        "https://avatars.example/alice.png"
    );
    bob_conversations
        .mark_read(cpb::MarkReadRequest {
            conversation_id: conversation.id.clone(),
        })
        .await
        .unwrap();
    let listed = bob_conversations
        .list(cpb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(!listed.conversations[0].has_unread_messages);

    // Bob lists his notifications and marks all read.
    let page = bob_notifications
        .list(npb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.total_unread, 1);
    assert_eq!(page.notifications[0].id, notified.id);
    let marked = bob_notifications
        .mark_read(npb::MarkReadRequest {
            all: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((marked.marked, marked.total_unread), (1, 0));

    // A broadcast reaches both, and each reads it separately.
    let broadcast = app
        .notifications(&ops_token)
        .send(npb::SendRequest {
            broadcast: true,
            category: "announcement".into(),
            content: "Office closed on Friday".into(),
            ..Default::default()
        })
        .await
        .expect("broadcast")
        .into_inner()
        .notifications
        .remove(0);
    assert_eq!(next_notification(&mut bob_stream).await.id, broadcast.id);
    let mut alice_notifications = app.notifications(&alice_token);
    let alice_page = alice_notifications
        .list(npb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(alice_page.total_unread, 1);
    alice_notifications
        .mark_read(npb::MarkReadRequest {
            ids: vec![broadcast.id.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        alice_notifications
            .list(npb::ListRequest::default())
            .await
            .unwrap()
            .into_inner()
            .total_unread,
        0
    );
    assert_eq!(
        bob_notifications
            .list(npb::ListRequest::default())
            .await
            .unwrap()
            .into_inner()
            .total_unread,
        1,
        "bob has not read the broadcast"
    );
    drop(bob_stream);
    app.stop().await;
}

switchboard::both_backends!(
    alice_and_bob_talk_and_read_a_broadcast,
    alice_and_bob_talk_and_read_a_broadcast_over_tls_and_mtls
);
