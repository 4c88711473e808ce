//! SQLite on a full disk: SendMessage fails with UNAVAILABLE and a message that says why,
//! health turns NOT_SERVING, and once space is freed writes work again without a restart:
//! every acknowledged message is kept, its notification leaves the outbox, and the database
//! is intact. Runs on a small tmpfs of its own (root only: the test says so loudly and skips
//! elsewhere, and fails under CI=true).

use std::{collections::HashSet, time::Duration};

use switchboard::{
    proto::{conversation::v1 as pb, notification::v1 as npb},
    testing::SmallFilesystem,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::helpers::*;

/// Waits up to 10 s for conversation-svc's health to say `expected`.
async fn eventually_health(app: &TestApp, expected: ServingStatus) {
    for _ in 0..200 {
        if app.health().await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health never became {expected:?}");
}

/// Ids of every message of the conversation, paging through all of them.
async fn message_ids(client: &mut Client, conversation_id: &str) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = client
            .list_messages(pb::ListMessagesRequest {
                conversation_id: conversation_id.to_owned(),
                page_size: 500,
                page_token: page_token.clone(),
            })
            .await
            .expect("list messages")
            .into_inner();
        ids.extend(page.messages.into_iter().map(|m| m.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}

/// How many notifications bob has in notification-svc, paging through all of them.
async fn notification_count(client: &mut NotificationClient) -> usize {
    let mut count = 0;
    let mut page_token = String::new();
    loop {
        let page = client
            .list(npb::ListRequest {
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            })
            .await
            .expect("list notifications")
            .into_inner();
        count += page.notifications.len();
        if page.next_page_token.is_empty() {
            return count;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_messages_clearly_and_writes_recover_once_space_is_freed() {
    let Some(fs) = SmallFilesystem::mount(8) else {
        return;
    };
    let url = format!("sqlite:{}", fs.path().join("conversations.db").display());
    let app = spawn_app_with_notifications_on(&url).await;
    app.sign_in(&["alice", "bob"]).await;
    let mut alice = app.user("alice");
    let conversation = conversation_with(&mut alice, "bob").await.id;
    let mut acknowledged = vec![send_message(&mut alice, &conversation, "before").await.id];

    let filler = fs.fill();
    let content = "x".repeat(4000);
    let mut refused = None;
    for _ in 0..20_000 {
        let sent = alice
            .send_message(pb::SendMessageRequest {
                conversation_id: conversation.clone(),
                content: content.clone(),
                idempotency_key: String::new(),
            })
            .await;
        match sent {
            Ok(response) => acknowledged.extend(response.into_inner().message.map(|m| m.id)),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("a SendMessage fails once the disk is full");
    eprintln!(
        "disk full: {} messages acknowledged, then {refused:?}",
        acknowledged.len()
    );
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::ResourceExhausted),
        "{refused:?}"
    );
    assert!(
        refused.message().contains("disk is full"),
        "the message says why: {refused:?}"
    );
    eventually_health(&app, ServingStatus::NotServing).await;

    std::fs::remove_file(&filler).expect("remove filler");
    eventually_health(&app, ServingStatus::Serving).await;
    acknowledged.push(send_message(&mut alice, &conversation, "after").await.id);
    app.user("bob")
        .mark_read(pb::MarkReadRequest {
            conversation_id: conversation.clone(),
        })
        .await
        .expect("MarkRead works again too");

    let listed = message_ids(&mut alice, &conversation).await;
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !listed.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged messages lost: {lost:?}");
    // Every acknowledged message's notification leaves the outbox, once.
    let mut bob = app.notifications_of("bob");
    let mut notified = 0;
    for _ in 0..150 {
        notified = notification_count(&mut bob).await;
        if notified >= acknowledged.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(notified, acknowledged.len(), "one notification per message");

    let pool = sqlx::SqlitePool::connect(&url).await.expect("reopen");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    pool.close().await;
}
