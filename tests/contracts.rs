//! The contracts as other languages see them: the field names in `../shared/BRIEF.md` are
//! binding, so they are checked against the compiled descriptor set, and `buf lint` (STANDARD)
//! must pass on `proto/`.

use std::{collections::BTreeSet, process::Command};

use prost::Message;
use prost_types::{DescriptorProto, FileDescriptorProto, FileDescriptorSet};
use switchboard::proto::FILE_DESCRIPTOR_SET;

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("descriptor set decodes")
}

/// The files of `package`.
fn package(package: &str) -> Vec<FileDescriptorProto> {
    descriptors()
        .file
        .into_iter()
        .filter(|f| f.package() == package)
        .collect()
}

fn message(package_name: &str, name: &str) -> DescriptorProto {
    package(package_name)
        .into_iter()
        .flat_map(|f| f.message_type)
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("{package_name}.{name} not found"))
}

fn fields(package: &str, name: &str) -> BTreeSet<String> {
    message(package, name)
        .field
        .iter()
        .map(|f| f.name().to_owned())
        .collect()
}

/// `(number, name)` of every field of `message`: for the issue-19 contract, where the
/// numbers are binding too.
fn numbered(package: &str, name: &str) -> BTreeSet<(i32, String)> {
    message(package, name)
        .field
        .iter()
        .map(|f| (f.number(), f.name().to_owned()))
        .collect()
}

/// Enum values as `(number, name)`.
fn enum_values(package_name: &str, name: &str) -> BTreeSet<(i32, String)> {
    package(package_name)
        .into_iter()
        .flat_map(|f| f.enum_type)
        .find(|e| e.name() == name)
        .unwrap_or_else(|| panic!("{package_name}.{name} not found"))
        .value
        .iter()
        .map(|v| (v.number(), v.name().to_owned()))
        .collect()
}

fn with_numbers(fields: &[(i32, &str)]) -> BTreeSet<(i32, String)> {
    fields.iter().map(|&(n, f)| (n, f.to_owned())).collect()
}

fn methods(package_name: &str, service: &str) -> BTreeSet<String> {
    package(package_name)
        .into_iter()
        .flat_map(|f| f.service)
        .find(|s| s.name() == service)
        .unwrap_or_else(|| panic!("{package_name}.{service} not found"))
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
        set(&[
            "Send",
            "List",
            "MarkRead",
            "Subscribe",
            "MarkSeen",
            "MarkUnread",
            "Archive",
            "Unarchive",
            "Snooze",
            "Unsnooze",
            "GetPreferences",
            "UpdatePreferences",
        ])
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
                "data",
                "critical",
            ],
        ),
        ("SendResponse", &["notifications", "muted_recipient_ids"]),
        (
            "ListRequest",
            &[
                "state",
                "category",
                "page_size",
                "page_token",
                "seen_state",
                "archive_state",
                "include_snoozed",
            ],
        ),
        (
            "ListResponse",
            &[
                "notifications",
                "next_page_token",
                "total_unread",
                "unread_by_category",
                "counts",
            ],
        ),
        ("MarkReadRequest", &["ids", "all", "category"]),
        ("MarkReadResponse", &["marked", "total_unread", "counts"]),
        ("SubscribeRequest", &["resume_after", "categories"]),
        (
            "SubscribeResponse",
            &[
                "notification",
                "read",
                "heartbeat",
                "state",
                "counts",
                "preferences",
            ],
        ),
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
                "seen",
                "seen_at",
                "archived",
                "archived_at",
                "snoozed_until",
                "data",
                "critical",
            ],
        ),
        ("ReadEvent", &["ids", "all", "category"]),
        ("Heartbeat", &["server_time"]),
    ];
    for (message, names) in expected {
        assert_eq!(fields(p, message), set(names), "{message}");
    }
}

/// The inbox model's additions, names and numbers as issue 19 binds them.
#[test]
fn inbox_contract_matches_issue_19_with_its_field_numbers() {
    let p = "switchboard.notification.v1";
    let additions: &[(&str, &[(i32, &str)])] = &[
        (
            "Notification",
            &[
                (11, "seen"),
                (12, "seen_at"),
                (13, "archived"),
                (14, "archived_at"),
                (15, "snoozed_until"),
                (16, "data"),
                (17, "critical"),
            ],
        ),
        ("SendRequest", &[(8, "data"), (9, "critical")]),
        ("SendResponse", &[(2, "muted_recipient_ids")]),
        (
            "ListRequest",
            &[
                (5, "seen_state"),
                (6, "archive_state"),
                (7, "include_snoozed"),
            ],
        ),
        ("ListResponse", &[(5, "counts")]),
        ("MarkReadResponse", &[(3, "counts")]),
        (
            "SubscribeResponse",
            &[(4, "state"), (5, "counts"), (6, "preferences")],
        ),
    ];
    for (message, wanted) in additions {
        let have = numbered(p, message);
        for field in with_numbers(wanted) {
            assert!(have.contains(&field), "{message} lacks {field:?}");
        }
    }
    let whole: &[(&str, &[(i32, &str)])] = &[
        (
            "Counts",
            &[
                (1, "unread"),
                (2, "unseen"),
                (3, "unread_by_category"),
                (4, "unseen_by_category"),
            ],
        ),
        (
            "Selection",
            &[(1, "ids"), (2, "all"), (3, "category"), (4, "state")],
        ),
        ("SnoozeRequest", &[(1, "selection"), (2, "until")]),
        (
            "StateEvent",
            &[
                (1, "change"),
                (2, "ids"),
                (3, "all"),
                (4, "category"),
                (5, "read_state"),
            ],
        ),
        ("GetPreferencesRequest", &[]),
        ("GetPreferencesResponse", &[(1, "preferences")]),
        ("UpdatePreferencesRequest", &[(1, "preferences")]),
        ("UpdatePreferencesResponse", &[(1, "preferences")]),
        ("Preferences", &[(1, "categories")]),
        (
            "CategoryPreference",
            &[(1, "category"), (2, "muted"), (3, "muted_until")],
        ),
    ];
    for (message, wanted) in whole {
        assert_eq!(numbered(p, message), with_numbers(wanted), "{message}");
    }
    for rpc in ["MarkSeen", "MarkUnread", "Archive", "Unarchive", "Unsnooze"] {
        assert_eq!(
            numbered(p, &format!("{rpc}Request")),
            with_numbers(&[(1, "selection")]),
            "{rpc}Request"
        );
    }
    for rpc in [
        "MarkSeen",
        "MarkUnread",
        "Archive",
        "Unarchive",
        "Snooze",
        "Unsnooze",
    ] {
        assert_eq!(
            numbered(p, &format!("{rpc}Response")),
            with_numbers(&[(1, "changed"), (2, "counts")]),
            "{rpc}Response"
        );
    }
    let enums: &[(&str, &[(i32, &str)])] = &[
        (
            "SeenState",
            &[
                (0, "SEEN_STATE_UNSPECIFIED"),
                (1, "SEEN_STATE_UNSEEN"),
                (2, "SEEN_STATE_SEEN"),
            ],
        ),
        (
            "ArchiveState",
            &[
                (0, "ARCHIVE_STATE_UNSPECIFIED"),
                (1, "ARCHIVE_STATE_ARCHIVED"),
                (2, "ARCHIVE_STATE_ANY"),
            ],
        ),
        (
            "StateChange",
            &[
                (0, "STATE_CHANGE_UNSPECIFIED"),
                (1, "STATE_CHANGE_SEEN"),
                (2, "STATE_CHANGE_UNREAD"),
                (3, "STATE_CHANGE_ARCHIVED"),
                (4, "STATE_CHANGE_UNARCHIVED"),
                (5, "STATE_CHANGE_SNOOZED"),
                (6, "STATE_CHANGE_UNSNOOZED"),
            ],
        ),
    ];
    for (name, wanted) in enums {
        assert_eq!(enum_values(p, name), with_numbers(wanted), "{name}");
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
