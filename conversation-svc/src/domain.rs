//! Conversation domain types and the validation rules of the contract.

use uuid::Uuid;

pub const MAX_USERNAME_BYTES: usize = 200;
pub const MAX_MESSAGE_CHARS: usize = 4000;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;
/// Characters of a message quoted in the notification to the other participant.
pub const NOTIFICATION_EXCERPT_CHARS: usize = 140;
pub const NOTIFICATION_CATEGORY: &str = "conversation.message";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub username: String,
    pub avatar_url: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub sender_id: String,
    pub content: String,
    pub created_at: i64,
}

/// A conversation as one participant sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conversation {
    pub id: String,
    pub other: User,
    pub last_message: Option<Message>,
    pub unread_count: i64,
    pub created_at: i64,
    /// Last message time, else creation: what List orders by.
    pub last_activity_at: i64,
}

/// A validated SendMessage.
#[derive(Debug, Clone)]
pub struct NewMessage {
    pub conversation_id: String,
    pub sender_id: String,
    pub content: String,
    pub idempotency_key: Option<String>,
    /// The author's display name, for the other participant's notification.
    pub author_name: String,
    /// The SendMessage's trace, which the notification's delivery continues.
    pub trace: TraceContext,
}

/// What waits in the outbox.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutboxBacklog {
    pub pending: u64,
    /// When the oldest waiting entry was queued (µs since the epoch).
    pub oldest_created_at: Option<i64>,
}

/// A W3C trace context as stored with an outbox entry (`traceparent`, `tracestate`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceContext {
    pub traceparent: Option<String>,
    pub tracestate: Option<String>,
}

/// A notification waiting in the outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingNotification {
    pub message_id: String,
    pub recipient_id: String,
    pub sender_id: String,
    pub content: String,
    pub link: String,
    pub attempts: i32,
    /// When SendMessage queued it (µs since the epoch).
    pub created_at: i64,
    pub trace: TraceContext,
}

/// A message SendMessage stored, or the earlier one its idempotency key returned.
#[derive(Debug, Clone)]
pub struct StoredMessage {
    pub message: Message,
    /// Who to notify.
    pub recipient_id: String,
    /// False when an earlier SendMessage with the same idempotency key was returned.
    pub created: bool,
}

/// Where a List page starts: strictly after this (activity, id) in descending order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationCursor {
    pub last_activity_at: i64,
    pub id: String,
}

impl ConversationCursor {
    pub fn encode(&self) -> String {
        format!("{}:{}", self.last_activity_at, self.id)
    }

    pub fn decode(position: &str) -> Option<Self> {
        let (at, id) = position.split_once(':')?;
        Some(Self {
            last_activity_at: at.parse().ok()?,
            id: conversation_id(id).ok()?,
        })
    }
}

/// The two participants of a conversation in the order its unique key stores them, so the
/// pair is the same whichever of them starts it.
pub fn ordered_pair<'a>(a: &'a str, b: &'a str) -> (&'a str, &'a str) {
    if a < b { (a, b) } else { (b, a) }
}

/// Usernames compare case-insensitively: this is the key they are unique by.
pub fn username_key(username: &str) -> String {
    username.to_lowercase()
}

/// A trimmed, non-empty username of reasonable size.
pub fn username(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("username required".into());
    }
    if trimmed.len() > MAX_USERNAME_BYTES {
        return Err(format!("at most {MAX_USERNAME_BYTES} bytes"));
    }
    if trimmed.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// Message content: trimmed, 1 to 4000 characters, no control characters but newline/tab.
pub fn content(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err("content required".into());
    }
    if trimmed.chars().count() > MAX_MESSAGE_CHARS {
        return Err(format!("at most {MAX_MESSAGE_CHARS} characters"));
    }
    if trimmed
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(trimmed.to_owned())
}

/// A conversation id: a UUID, normalised to the stored lowercase form.
pub fn conversation_id(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("required".into());
    }
    Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| "must be a conversation id (UUID)".into())
}

pub fn idempotency_key(value: &str) -> Result<Option<String>, String> {
    match value {
        "" => Ok(None),
        key if key.len() > MAX_IDEMPOTENCY_KEY_BYTES => {
            Err(format!("at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"))
        }
        key if key.chars().any(char::is_control) => {
            Err("must not contain control characters".into())
        }
        key => Ok(Some(key.to_owned())),
    }
}

/// What the other participant's notification says: "<username>: <first 140 characters>".
pub fn notification_text(author: &str, content: &str) -> String {
    let excerpt: String = content.chars().take(NOTIFICATION_EXCERPT_CHARS).collect();
    format!("{author}: {excerpt}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_are_trimmed_and_required() {
        assert_eq!(username("  bob \n").unwrap(), "bob");
        assert_eq!(username("   ").unwrap_err(), "username required");
        assert!(username(&"x".repeat(201)).is_err());
        assert_eq!(username_key("BoB"), "bob");
    }

    #[test]
    fn content_is_trimmed_and_bounded() {
        assert_eq!(content("  hi  ").unwrap(), "hi");
        assert!(content(" \n ").is_err());
        assert!(content(&"é".repeat(4000)).is_ok());
        assert!(content(&"é".repeat(4001)).is_err());
        assert!(content("a\u{1b}[31m").is_err());
    }

    #[test]
    fn notification_text_quotes_140_characters() {
        let text = notification_text("alice", &"é".repeat(200));
        assert_eq!(text.chars().count(), "alice: ".len() + 140);
        assert_eq!(notification_text("alice", "hi"), "alice: hi");
    }

    #[test]
    fn cursors_round_trip_and_refuse_garbage() {
        let cursor = ConversationCursor {
            last_activity_at: 42,
            id: Uuid::now_v7().to_string(),
        };
        assert_eq!(ConversationCursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(ConversationCursor::decode("x:y"), None);
        assert_eq!(ConversationCursor::decode("42"), None);
    }

    proptest::proptest! {
        #[test]
        fn the_pair_key_does_not_depend_on_who_starts(a in ".{1,40}", b in ".{1,40}") {
            proptest::prop_assume!(a != b);
            let (low, high) = ordered_pair(&a, &b);
            proptest::prop_assert_eq!(ordered_pair(&b, &a), (low, high));
            proptest::prop_assert!(low < high);
        }

        #[test]
        fn validators_never_panic(text in ".*") {
            let _ = username(&text);
            let _ = content(&text);
            let _ = conversation_id(&text);
            let _ = idempotency_key(&text);
            let _ = ConversationCursor::decode(&text);
        }

        #[test]
        fn usernames_compare_without_case(name in "[a-zA-Z0-9]{1,30}") {
            proptest::prop_assert_eq!(username_key(&name), username_key(&name.to_uppercase()));
        }
    }
}
