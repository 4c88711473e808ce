//! The contracts as other languages see them: the field names in `../shared/BRIEF.md` are
//! binding, so they are checked against the compiled descriptor set, and `buf lint` (STANDARD)
//! must pass on `proto/`.

use std::{collections::BTreeSet, process::Command};

use prost::Message;
use prost_types::FileDescriptorSet;
use switchboard::proto::FILE_DESCRIPTOR_SET;

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

fn fields(package: &str, message: &str) -> BTreeSet<String> {
    let set = descriptors();
    let file = set
        .file
        .iter()
        .find(|f| f.package() == package && f.message_type.iter().any(|m| m.name() == message))
        .unwrap_or_else(|| panic!("{package}.{message} not found"));
    let message = file
        .message_type
        .iter()
        .find(|m| m.name() == message)
        .expect("message");
    message.field.iter().map(|f| f.name().to_owned()).collect()
}

fn methods(package: &str, service: &str) -> BTreeSet<String> {
    let set = descriptors();
    set.file
        .iter()
        .filter(|f| f.package() == package)
        .flat_map(|f| f.service.iter())
        .find(|s| s.name() == service)
        .unwrap_or_else(|| panic!("{package}.{service} not found"))
        .method
        .iter()
        .map(|m| m.name().to_owned())
        .collect()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| s.to_string()).collect()
}

#[test]
fn notification_contract_matches_the_brief() {
    let p = "switchboard.notification.v1";
    assert_eq!(
        methods(p, "NotificationService"),
        set(&["Send", "List", "MarkRead", "Subscribe"])
    );
    let expected: &[(&str, &[&str])] = &[
        (
            "SendRequest",
            &[
                "recipient_ids",
                "broadcast",
                "category",
                "content",
                "link",
                "sender_id",
                "idempotency_key",
            ],
        ),
        ("SendResponse", &["notifications"]),
        (
            "ListRequest",
            &["state", "category", "page_size", "page_token"],
        ),
        (
            "ListResponse",
            &[
                "notifications",
                "next_page_token",
                "total_unread",
                "unread_by_category",
            ],
        ),
        ("MarkReadRequest", &["ids", "all", "category"]),
        ("MarkReadResponse", &["marked", "total_unread"]),
        ("SubscribeRequest", &["resume_after", "categories"]),
        ("SubscribeResponse", &["notification", "read", "heartbeat"]),
        (
            "Notification",
            &[
                "id",
                "category",
                "content",
                "link",
                "sender_id",
                "recipient_id",
                "broadcast",
                "read",
                "created_at",
                "read_at",
            ],
        ),
        ("ReadEvent", &["ids", "all", "category"]),
        ("Heartbeat", &["server_time"]),
    ];
    for (message, names) in expected {
        assert_eq!(fields(p, message), set(names), "{message}");
    }
}

#[test]
fn conversation_contract_matches_the_brief() {
    let p = "switchboard.conversation.v1";
    assert_eq!(
        methods(p, "ConversationService"),
        set(&[
            "Create",
            "List",
            "Get",
            "SendMessage",
            "ListMessages",
            "MarkRead"
        ])
    );
    let expected: &[(&str, &[&str])] = &[
        ("CreateRequest", &["username"]),
        ("CreateResponse", &["conversation", "created"]),
        ("ListRequest", &["page_size", "page_token"]),
        ("ListResponse", &["conversations", "next_page_token"]),
        ("GetRequest", &["id"]),
        ("GetResponse", &["conversation"]),
        (
            "SendMessageRequest",
            &["conversation_id", "content", "idempotency_key"],
        ),
        ("SendMessageResponse", &["message"]),
        (
            "ListMessagesRequest",
            &["conversation_id", "page_size", "page_token"],
        ),
        ("ListMessagesResponse", &["messages", "next_page_token"]),
        ("MarkReadRequest", &["conversation_id"]),
        ("MarkReadResponse", &[]),
        ("User", &["id", "username", "avatar_url"]),
        (
            "Message",
            &[
                "id",
                "conversation_id",
                "sender_id",
                "content",
                "mine",
                "created_at",
            ],
        ),
        (
            "Conversation",
            &[
                "id",
                "other_participant",
                "last_message",
                "has_unread_messages",
                "unread_count",
                "created_at",
            ],
        ),
    ];
    for (message, names) in expected {
        assert_eq!(fields(p, message), set(names), "{message}");
    }
}

#[test]
fn buf_lint_passes() {
    let output = Command::new("buf")
        .arg("lint")
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/proto"))
        .output()
        .expect("buf must be installed (pip install buf-bin)");
    assert!(
        output.status.success(),
        "buf lint failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
