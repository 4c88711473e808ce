use std::collections::HashSet;

use switchboard::proto::conversation::v1 as pb;
use tonic::Code;

use crate::helpers::*;

async fn starts_a_conversation_by_username(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let response = create(&mut app.user("alice"), "bob").await;
    assert!(response.created);
    let conversation = response.conversation.unwrap();
    let other = conversation.other_participant.unwrap();
    assert_eq!(other.id, "id-bob");
    assert_eq!(other.username, "bob");
    assert_eq!(other.avatar_url, "https://avatars.example/bob.png");
    assert!(conversation.last_message.is_none());
    assert!(!conversation.has_unread_messages);
    assert_eq!(conversation.unread_count, 0);
    assert!(conversation.created_at.is_some());
    assert_eq!(
        uuid::Uuid::parse_str(&conversation.id)
            .unwrap()
            .get_version_num(),
        7
    );
}

async fn the_username_is_trimmed_and_case_insensitive(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["Bob"]).await;
    let response = create(&mut app.user("alice"), "  bOB \t").await;
    assert_eq!(
        response
            .conversation
            .unwrap()
            .other_participant
            .unwrap()
            .username,
        "Bob"
    );
}

async fn an_empty_username_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    for username in ["", "   ", "\t\n"] {
        let status = app
            .user("alice")
            .create(pb::CreateRequest {
                username: username.into(),
            })
            .await
            .unwrap_err();
        assert_invalid(&status, "username");
        assert!(status.message().contains("username required"), "{status:?}");
    }
}

async fn an_unknown_user_is_not_found(backend: Backend) {
    let app = spawn_app(backend).await;
    let result = app
        .user("alice")
        .create(pb::CreateRequest {
            username: "nobody".into(),
        })
        .await;
    assert_not_found(result);
}

async fn a_conversation_with_yourself_is_refused(backend: Backend) {
    let app = spawn_app(backend).await;
    let status = app
        .user("alice")
        .create(pb::CreateRequest {
            username: "ALICE".into(),
        })
        .await
        .unwrap_err();
    assert_invalid(&status, "username");
    assert!(list(&mut app.user("alice")).await.is_empty());
}

async fn an_existing_conversation_is_returned_from_either_side(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["alice", "bob"]).await;
    let first = create(&mut app.user("alice"), "bob").await;
    let again = create(&mut app.user("alice"), "bob").await;
    let reverse = create(&mut app.user("bob"), "alice").await;
    assert!(first.created);
    assert!(!again.created && !reverse.created);
    let id = first.conversation.unwrap().id;
    assert_eq!(again.conversation.unwrap().id, id);
    let reverse = reverse.conversation.unwrap();
    assert_eq!(reverse.id, id);
    assert_eq!(reverse.other_participant.unwrap().username, "alice");
    assert_eq!(list(&mut app.user("alice")).await.len(), 1);
    assert_eq!(list(&mut app.user("bob")).await.len(), 1);
}

async fn concurrent_creates_from_both_sides_make_one_conversation(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["alice", "bob"]).await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (me, other) = if i % 2 == 0 {
            ("alice", "bob")
        } else {
            ("bob", "alice")
        };
        let mut client = app.user(me);
        tasks.push(tokio::spawn(async move {
            client
                .create(pb::CreateRequest {
                    username: other.into(),
                })
                .await
                .map(|r| r.into_inner())
        }));
    }
    let mut ids = HashSet::new();
    let mut created = 0;
    for task in tasks {
        let response = task.await.unwrap().expect("no Create fails under the race");
        created += usize::from(response.created);
        ids.insert(response.conversation.unwrap().id);
    }
    assert_eq!(ids.len(), 1, "one conversation");
    assert_eq!(created, 1, "created exactly once");
    assert_eq!(list(&mut app.user("alice")).await.len(), 1);
    assert_eq!(list(&mut app.user("bob")).await.len(), 1);
}

async fn a_caller_without_identity_is_unauthenticated(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut nobody = person("x");
    nobody.user_id = String::new();
    let status = app
        .as_caller(nobody)
        .list(pb::ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
}

switchboard::both_backends!(
    starts_a_conversation_by_username,
    the_username_is_trimmed_and_case_insensitive,
    an_empty_username_is_refused,
    an_unknown_user_is_not_found,
    a_conversation_with_yourself_is_refused,
    an_existing_conversation_is_returned_from_either_side,
    concurrent_creates_from_both_sides_make_one_conversation,
    a_caller_without_identity_is_unauthenticated,
);
