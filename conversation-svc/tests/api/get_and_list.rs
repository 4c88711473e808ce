use std::collections::HashSet;

use switchboard::proto::conversation::v1 as pb;

use crate::helpers::*;

fn ids(conversations: &[pb::Conversation]) -> Vec<String> {
    conversations.iter().map(|c| c.id.clone()).collect()
}

async fn list_orders_by_recent_activity_including_silent_conversations(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob", "carol", "dave"]).await;
    let mut alice = app.user("alice");
    let with_bob = conversation_with(&mut alice, "bob").await;
    let with_carol = conversation_with(&mut alice, "carol").await;
    let with_dave = conversation_with(&mut alice, "dave").await;
    assert_eq!(
        ids(&list(&mut alice).await),
        [&with_dave.id, &with_carol.id, &with_bob.id].map(String::clone),
        "newest creation first while nobody wrote"
    );

    send_message(&mut alice, &with_bob.id, "hi bob").await;
    let listed = list(&mut alice).await;
    assert_eq!(
        ids(&listed),
        [&with_bob.id, &with_dave.id, &with_carol.id].map(String::clone),
        "a message moves its conversation to the top"
    );
    let last = listed[0].last_message.as_ref().expect("last message");
    assert_eq!(last.content, "hi bob");
    assert!(last.mine);
    assert!(listed[1].last_message.is_none(), "unset when there is none");

    let reply = send_message(&mut app.user("carol"), &with_carol.id, "hi alice").await;
    let listed = list(&mut alice).await;
    assert_eq!(listed[0].id, with_carol.id);
    let last = listed[0].last_message.as_ref().unwrap();
    assert_eq!(last.id, reply.id);
    assert!(!last.mine);
    assert!(listed[0].has_unread_messages);
}

async fn list_pages_cover_everything_once(backend: Backend) {
    let app = spawn_app(backend).await;
    let others: Vec<String> = (0..7).map(|i| format!("friend{i}")).collect();
    let names: Vec<&str> = others.iter().map(String::as_str).collect();
    app.sign_in(&names).await;
    let mut alice = app.user("alice");
    let mut created = Vec::new();
    for name in &names {
        created.push(conversation_with(&mut alice, name).await.id);
    }
    // Activity in an old one, so activity order differs from creation order.
    send_message(&mut alice, &created[2], "bump").await;

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = alice
            .list(pb::ListRequest {
                page_size: 3,
                page_token: token.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.conversations.len() <= 3);
        seen.extend(ids(&page.conversations));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(
        seen,
        ids(&list(&mut alice).await),
        "pages match the full list"
    );
    assert_eq!(seen.len(), 7);
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);
    assert_eq!(seen[0], created[2]);
}

async fn list_refuses_bad_paging(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    for (request, field) in [
        (
            pb::ListRequest {
                page_size: -5,
                ..Default::default()
            },
            "page_size",
        ),
        (
            pb::ListRequest {
                page_token: "nope".into(),
                ..Default::default()
            },
            "page_token",
        ),
    ] {
        assert_invalid(&alice.list(request).await.unwrap_err(), field);
    }
}

async fn get_shows_the_conversation_to_participants_only(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob", "carol"]).await;
    let created = conversation_with(&mut app.user("alice"), "bob").await;
    let seen_by_alice = get(&mut app.user("alice"), &created.id).await;
    assert_eq!(seen_by_alice, created);
    let seen_by_bob = get(&mut app.user("bob"), &created.id).await;
    assert_eq!(seen_by_bob.other_participant.unwrap().username, "alice");

    assert_not_found(
        app.user("carol")
            .get(pb::GetRequest {
                id: created.id.clone(),
            })
            .await,
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_not_found(app.user("alice").get(pb::GetRequest { id: unknown }).await);
    for bad in ["", "not-a-uuid", "'; DROP TABLE conversations; --"] {
        let status = app
            .user("alice")
            .get(pb::GetRequest { id: bad.into() })
            .await
            .unwrap_err();
        assert_invalid(&status, "id");
    }
}

switchboard::both_backends!(
    list_orders_by_recent_activity_including_silent_conversations,
    list_pages_cover_everything_once,
    list_refuses_bad_paging,
    get_shows_the_conversation_to_participants_only,
);
