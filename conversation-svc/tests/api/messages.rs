use std::collections::HashSet;

use switchboard::proto::conversation::v1 as pb;

use crate::helpers::*;

fn message_to(conversation_id: &str, content: &str) -> pb::SendMessageRequest {
    pb::SendMessageRequest {
        conversation_id: conversation_id.into(),
        content: content.into(),
        idempotency_key: String::new(),
    }
}

async fn sending_stores_a_trimmed_message_even_when_notifying_fails(backend: Backend) {
    // spawn_app's notification-svc address is closed: the message must be stored anyway.
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let mut alice = app.user("alice");
    let conversation = conversation_with(&mut alice, "bob").await;
    let message = send_message(&mut alice, &conversation.id, "  hello bob \n").await;
    assert_eq!(message.content, "hello bob");
    assert_eq!(message.sender_id, "id-alice");
    assert_eq!(message.conversation_id, conversation.id);
    assert!(message.mine);
    assert!(message.created_at.is_some());
    let seen_by_bob = get(&mut app.user("bob"), &conversation.id).await;
    assert_eq!(seen_by_bob.last_message.unwrap().id, message.id);
}

async fn content_is_validated(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let mut alice = app.user("alice");
    let conversation = conversation_with(&mut alice, "bob").await;
    for (request, field) in [
        (message_to(&conversation.id, ""), "content"),
        (message_to(&conversation.id, "   \n\t "), "content"),
        (message_to(&conversation.id, &"x".repeat(4001)), "content"),
        (message_to(&conversation.id, "bell\u{7}"), "content"),
        (message_to("", "hi"), "conversation_id"),
        (message_to("42", "hi"), "conversation_id"),
        (
            pb::SendMessageRequest {
                idempotency_key: "k".repeat(201),
                ..message_to(&conversation.id, "hi")
            },
            "idempotency_key",
        ),
    ] {
        assert_invalid(&alice.send_message(request).await.unwrap_err(), field);
    }
    // 4000 characters (not bytes) is the limit, after trimming.
    let long = format!("  {}  ", "é".repeat(4000));
    send_message(&mut alice, &conversation.id, &long).await;
    let listed = alice
        .list_messages(pb::ListMessagesRequest {
            conversation_id: conversation.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        listed.messages.len(),
        1,
        "only the valid message was stored"
    );
}

async fn unread_counts_follow_both_sides(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let (mut alice, mut bob) = (app.user("alice"), app.user("bob"));
    let id = conversation_with(&mut alice, "bob").await.id;
    send_message(&mut alice, &id, "one").await;
    send_message(&mut alice, &id, "two").await;

    let for_bob = get(&mut bob, &id).await;
    assert_eq!(
        (for_bob.unread_count, for_bob.has_unread_messages),
        (2, true)
    );
    let for_alice = get(&mut alice, &id).await;
    assert_eq!(
        (for_alice.unread_count, for_alice.has_unread_messages),
        (0, false)
    );

    send_message(&mut bob, &id, "three").await;
    assert_eq!(get(&mut alice, &id).await.unread_count, 1);
    assert_eq!(
        get(&mut bob, &id).await.unread_count,
        2,
        "own messages do not count"
    );

    let read = pb::MarkReadRequest {
        conversation_id: id.clone(),
    };
    bob.mark_read(read.clone()).await.unwrap();
    let for_bob = get(&mut bob, &id).await;
    assert_eq!(
        (for_bob.unread_count, for_bob.has_unread_messages),
        (0, false)
    );
    bob.mark_read(read).await.expect("idempotent");
    assert_eq!(
        get(&mut alice, &id).await.unread_count,
        1,
        "alice's count untouched"
    );
    let listed = list(&mut bob).await;
    assert!(!listed[0].has_unread_messages);
}

async fn outsiders_cannot_touch_a_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob", "carol"]).await;
    let id = conversation_with(&mut app.user("alice"), "bob").await.id;
    let mut carol = app.user("carol");
    assert_not_found(carol.send_message(message_to(&id, "let me in")).await);
    assert_not_found(
        carol
            .list_messages(pb::ListMessagesRequest {
                conversation_id: id.clone(),
                ..Default::default()
            })
            .await,
    );
    assert_not_found(
        carol
            .mark_read(pb::MarkReadRequest {
                conversation_id: id.clone(),
            })
            .await,
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_not_found(carol.send_message(message_to(&unknown, "hi")).await);
    assert!(
        get(&mut app.user("alice"), &id)
            .await
            .last_message
            .is_none()
    );
    assert_eq!(get(&mut app.user("bob"), &id).await.unread_count, 0);
}

async fn messages_page_newest_first_with_mine_set(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let (mut alice, mut bob) = (app.user("alice"), app.user("bob"));
    let id = conversation_with(&mut alice, "bob").await.id;
    let mut sent = Vec::new();
    for i in 0..11 {
        let client = if i % 3 == 0 { &mut bob } else { &mut alice };
        sent.push(send_message(client, &id, &format!("m{i}")).await);
    }
    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .list_messages(pb::ListMessagesRequest {
                conversation_id: id.clone(),
                page_size: 4,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        seen.extend(page.messages);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<_> = sent.iter().rev().map(|m| m.id.clone()).collect();
    assert_eq!(
        seen.iter().map(|m| m.id.clone()).collect::<Vec<_>>(),
        expected
    );
    for message in &seen {
        assert_eq!(message.mine, message.sender_id == "id-alice");
    }
    assert_eq!(seen.iter().filter(|m| !m.mine).count(), 4);

    // Tokens belong to one conversation and caller; sizes are bounded.
    let bad = [
        (
            pb::ListMessagesRequest {
                conversation_id: id.clone(),
                page_size: -1,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListMessagesRequest {
                conversation_id: id.clone(),
                page_token: "zzz".into(),
                ..Default::default()
            },
            "page_token",
        ),
        (
            pb::ListMessagesRequest {
                conversation_id: "bad".into(),
                ..Default::default()
            },
            "conversation_id",
        ),
    ];
    for (request, field) in bad {
        assert_invalid(&alice.list_messages(request).await.unwrap_err(), field);
    }
}

async fn a_repeated_idempotency_key_returns_the_original_message(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let mut alice = app.user("alice");
    let id = conversation_with(&mut alice, "bob").await.id;
    let request = pb::SendMessageRequest {
        idempotency_key: "draft-7".into(),
        ..message_to(&id, "only once")
    };
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let mut client = app.user("alice");
        let request = request.clone();
        tasks.push(tokio::spawn(async move {
            client
                .send_message(request)
                .await
                .map(|r| r.into_inner().message.unwrap().id)
        }));
    }
    let mut ids = HashSet::new();
    for task in tasks {
        ids.insert(task.await.unwrap().expect("send"));
    }
    assert_eq!(ids.len(), 1);
    assert_eq!(
        get(&mut app.user("bob"), &id).await.unread_count,
        1,
        "counted once"
    );
    let listed = alice
        .list_messages(pb::ListMessagesRequest {
            conversation_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.messages.len(), 1);
}

/// AIP-158: a page size above the maximum is coerced to it, not refused.
async fn a_page_size_over_the_maximum_lists_the_maximum(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let mut alice = app.user("alice");
    let conversation = conversation_with(&mut alice, "bob").await;
    let max = switchboard::page_token::MAX_PAGE_SIZE;
    for i in 0..=max {
        send_message(&mut alice, &conversation.id, &format!("m{i}")).await;
    }
    for page_size in [501, i32::MAX] {
        let page = alice
            .list_messages(pb::ListMessagesRequest {
                conversation_id: conversation.id.clone(),
                page_size,
                ..Default::default()
            })
            .await
            .expect("list messages")
            .into_inner();
        assert_eq!(page.messages.len(), max, "page_size {page_size}");
        assert!(!page.next_page_token.is_empty(), "one more follows");
    }
}

switchboard::both_backends!(
    a_page_size_over_the_maximum_lists_the_maximum,
    sending_stores_a_trimmed_message_even_when_notifying_fails,
    content_is_validated,
    unread_counts_follow_both_sides,
    outsiders_cannot_touch_a_conversation,
    messages_page_newest_first_with_mine_set,
    a_repeated_idempotency_key_returns_the_original_message,
);
