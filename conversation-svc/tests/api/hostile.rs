//! Hostile input to every field: INVALID_ARGUMENT, NOT_FOUND or a harmless success; nothing
//! panics and the service keeps working.

use switchboard::proto::conversation::v1 as pb;
use tonic::{Code, Status};

use crate::helpers::*;

fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        "\0".into(),
        "a\u{0}b".into(),
        "\u{202e}evil".into(),
        "' OR 1=1 --".into(),
        "bob'; DROP TABLE users; --".into(),
        "😀".repeat(50),
        "x".repeat(100_000),
        "$1".into(),
    ]
}

fn acceptable<T>(what: &str, result: Result<T, Status>) {
    if let Err(status) = result {
        assert!(
            matches!(
                status.code(),
                Code::InvalidArgument | Code::NotFound | Code::OutOfRange
            ),
            "{what}: {status:?}"
        );
    }
}

async fn every_field_survives_hostile_values(backend: Backend) {
    let app = spawn_app(backend).await;
    app.sign_in(&["bob"]).await;
    let mut alice = app.user("alice");
    let id = conversation_with(&mut alice, "bob").await.id;
    for value in hostile_strings() {
        let short: String = value.chars().take(20).collect();
        acceptable(
            &format!("username {short:?}"),
            alice
                .create(pb::CreateRequest {
                    username: value.clone(),
                })
                .await,
        );
        acceptable(
            &format!("get {short:?}"),
            alice.get(pb::GetRequest { id: value.clone() }).await,
        );
        acceptable(
            &format!("list token {short:?}"),
            alice
                .list(pb::ListRequest {
                    page_token: value.clone(),
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("content {short:?}"),
            alice
                .send_message(pb::SendMessageRequest {
                    conversation_id: id.clone(),
                    content: value.clone(),
                    idempotency_key: String::new(),
                })
                .await,
        );
        acceptable(
            &format!("key {short:?}"),
            alice
                .send_message(pb::SendMessageRequest {
                    conversation_id: id.clone(),
                    content: "hi".into(),
                    idempotency_key: value.clone(),
                })
                .await,
        );
        acceptable(
            &format!("conversation {short:?}"),
            alice
                .send_message(pb::SendMessageRequest {
                    conversation_id: value.clone(),
                    content: "hi".into(),
                    idempotency_key: String::new(),
                })
                .await,
        );
        acceptable(
            &format!("messages token {short:?}"),
            alice
                .list_messages(pb::ListMessagesRequest {
                    conversation_id: id.clone(),
                    page_token: value.clone(),
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("mark {short:?}"),
            alice
                .mark_read(pb::MarkReadRequest {
                    conversation_id: value.clone(),
                })
                .await,
        );
    }
    // A hostile identity (a NUL smuggled through percent-encoding) is refused at the door.
    let mut evil = person("mallory");
    evil.user_id = "id-\u{0}".into();
    let status = app
        .as_caller(evil)
        .list(pb::ListRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert_eq!(
        list(&mut alice).await.len(),
        1,
        "still serving, data intact"
    );
}

switchboard::both_backends!(every_field_survives_hostile_values);
