//! The conversation -> notification path is durable: a message's notification waits in the
//! outbox while notification-svc is down (even across a conversation-svc restart) and is
//! delivered once it is back, exactly once.

use std::{net::SocketAddr, time::Duration};

use switchboard::{
    identity::ForwardIdentity,
    proto::{
        conversation::v1::{self as pb, conversation_service_client::ConversationServiceClient},
        notification::v1::{self as npb, notification_service_client::NotificationServiceClient},
    },
    testing::TestDatabase,
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::transport::Endpoint;

use crate::helpers::*;

fn free_port() -> SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

fn conversations_at(url: &str, notification_addr: SocketAddr) -> conversation_svc::Config {
    conversation_svc::Config {
        notification_addr: format!("http://{notification_addr}"),
        shutdown_grace: Duration::from_secs(2),
        ..conversation_svc::Config::new(url, INTERNAL_TOKEN)
    }
}

type Server = (
    SocketAddr,
    oneshot::Sender<()>,
    JoinHandle<anyhow::Result<()>>,
);

async fn run_conversations(config: conversation_svc::Config) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(conversation_svc::serve(config, listener, async {
        let _ = stopped.await;
    }));
    (addr, stop, task)
}

fn client(addr: SocketAddr, username: &str) -> Client {
    let channel = Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    ConversationServiceClient::with_interceptor(
        channel,
        ForwardIdentity::new(person(username), INTERNAL_TOKEN),
    )
}

async fn eventually<T>(mut attempt: impl AsyncFnMut() -> Option<T>) -> T {
    for _ in 0..150 {
        if let Some(value) = attempt().await {
            return value;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("condition not met within 15 s");
}

async fn messages_sent_while_notifications_are_down_are_notified_once_it_is_back(backend: Backend) {
    let notification_addr = free_port();
    let (_conversations_db, url) = TestDatabase::create(backend, "conversations.db").await;

    // conversation-svc runs while notification-svc is down; Alice writes to Bob.
    let (addr, stop, task) = run_conversations(conversations_at(&url, notification_addr)).await;
    let mut bob = client(addr, "bob");
    eventually(async || bob.list(pb::ListRequest::default()).await.ok()).await;
    let mut alice = client(addr, "alice");
    let id = conversation_with(&mut alice, "bob").await.id;
    send_message(&mut alice, &id, "first, while down").await;
    send_message(&mut alice, &id, "second, while down").await;

    // conversation-svc restarts before notification-svc is back: the outbox survives.
    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let (addr, stop, task) = run_conversations(conversations_at(&url, notification_addr)).await;
    let mut alice = client(addr, "alice");
    eventually(async || alice.list(pb::ListRequest::default()).await.ok()).await;

    // notification-svc comes up where conversation-svc expects it.
    let (_notifications_db, notifications_url) =
        TestDatabase::create(backend, "notifications.db").await;
    let (stop_notifications, notifications_stopped) = oneshot::channel::<()>();
    let notifications = tokio::spawn(notification_svc::serve(
        notification_svc::Config {
            listen: notification_addr,
            shutdown_grace: Duration::from_secs(2),
            ..notification_svc::Config::new(&notifications_url, INTERNAL_TOKEN)
        },
        TcpListener::bind(notification_addr).await.unwrap(),
        async {
            let _ = notifications_stopped.await;
        },
    ));
    let channel = Endpoint::from_shared(format!("http://{notification_addr}"))
        .unwrap()
        .connect_lazy();
    let mut bob_notifications = NotificationServiceClient::with_interceptor(
        channel,
        ForwardIdentity::new(person("bob"), INTERNAL_TOKEN),
    );
    let listed = eventually(async || {
        let page = bob_notifications
            .list(npb::ListRequest::default())
            .await
            .ok()?
            .into_inner();
        (page.notifications.len() >= 2).then_some(page)
    })
    .await;
    let mut contents: Vec<_> = listed
        .notifications
        .iter()
        .map(|n| n.content.clone())
        .collect();
    contents.sort();
    assert_eq!(
        contents,
        ["alice: first, while down", "alice: second, while down"]
    );

    // Exactly once: nothing more arrives, and a later message is notified promptly.
    send_message(&mut alice, &id, "third, live").await;
    let listed = eventually(async || {
        let page = bob_notifications
            .list(npb::ListRequest::default())
            .await
            .ok()?
            .into_inner();
        (page.notifications.len() >= 3).then_some(page)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = bob_notifications
        .list(npb::ListRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.notifications.len(), 3, "{:?}", listed.notifications);

    let _ = stop.send(());
    task.await.unwrap().unwrap();
    let _ = stop_notifications.send(());
    notifications.await.unwrap().unwrap();
}

switchboard::both_backends!(
    messages_sent_while_notifications_are_down_are_notified_once_it_is_back
);
