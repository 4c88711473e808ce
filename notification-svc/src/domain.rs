//! Notification domain types and the validation rules of the contract.
//!
//! Everything here is plain Rust: the API layer converts protobuf into these types (and
//! refuses what does not validate), the store persists them.

mod inbox;

pub use inbox::*;

use std::collections::BTreeSet;

use switchboard::{Caller, Error, Violations, identity::scope};
use uuid::Uuid;

pub const MAX_RECIPIENTS: usize = 1000;
pub const MAX_CONTENT_CHARS: usize = 2000;
pub const MAX_LINK_BYTES: usize = 2048;
pub const MAX_CATEGORY_LEN: usize = 64;
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 200;
pub const MAX_USER_ID_BYTES: usize = 200;
pub const MAX_SUBSCRIBE_CATEGORIES: usize = 100;
/// A Send's `data`, as compact JSON.
pub const MAX_DATA_BYTES: usize = 4096;
pub const MAX_DATA_KEYS: usize = 32;

/// A Send's structured payload: a JSON object (the API converts it from and to
/// `google.protobuf.Struct`; the store keeps its compact text).
pub type Data = serde_json::Map<String, serde_json::Value>;

/// A stored notification as one user sees it (read state is that user's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub category: String,
    pub content: String,
    pub link: String,
    pub sender_id: String,
    /// `None` for a broadcast.
    pub recipient_id: Option<String>,
    pub created_at: i64,
    pub read_at: Option<i64>,
    pub seen_at: Option<i64>,
    pub archived_at: Option<i64>,
    /// Set only while snoozed: when it wakes.
    pub snoozed_until: Option<i64>,
    /// Position in the commit-ordered log (see docs/subscribe-cursor.md): where it was sent,
    /// or, delivered as a wake, where it woke.
    pub seq: i64,
    /// The sender's payload as compact JSON (an object), as validated by [`data`].
    pub data: Option<String>,
    /// Sent as critical: delivered whatever the recipients' preferences.
    pub critical: bool,
}

impl Notification {
    pub fn is_broadcast(&self) -> bool {
        self.recipient_id.is_none()
    }

    /// Whether `user_id` may see it.
    pub fn is_visible_to(&self, user_id: &str) -> bool {
        self.recipient_id.as_deref().is_none_or(|r| r == user_id)
    }
}

/// An entry of the commit-ordered notification log, as the feed publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A new notification, for its recipient (everyone, for a broadcast).
    Sent(Notification),
    /// A snoozed notification woke for one person: their state of it, at the wake's own
    /// position (`notification.seq`).
    Woke {
        user_id: String,
        notification: Notification,
    },
}

impl LogEntry {
    /// Its position in the log.
    pub fn seq(&self) -> i64 {
        match self {
            LogEntry::Sent(n)
            | LogEntry::Woke {
                notification: n, ..
            } => n.seq,
        }
    }
}

/// Who a Send addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Audience {
    Recipients(Vec<String>),
    Broadcast,
}

/// A validated Send.
#[derive(Debug, Clone)]
pub struct NewSend {
    /// The caller, for idempotency: keys are per caller.
    pub caller_id: String,
    pub audience: Audience,
    pub category: String,
    pub content: String,
    pub link: String,
    pub sender_id: String,
    pub idempotency_key: Option<String>,
    /// Compact JSON of the payload, stored on every row of the Send; `None` when empty.
    pub data: Option<String>,
    /// Ignores the recipients' mutes (needs [`scope::CRITICAL`]).
    pub critical: bool,
}

impl NewSend {
    /// How many notifications it stores: one per recipient, one for a broadcast.
    pub fn row_count(&self) -> usize {
        match &self.audience {
            Audience::Recipients(ids) => ids.len(),
            Audience::Broadcast => 1,
        }
    }
}

/// The raw fields of a Send request.
pub struct SendFields {
    pub recipient_ids: Vec<String>,
    pub broadcast: bool,
    pub category: String,
    pub content: String,
    pub link: String,
    pub sender_id: String,
    pub idempotency_key: String,
    /// The payload, or why it cannot be JSON (a number that is NaN or infinite, ...).
    pub data: Result<Option<Data>, String>,
    pub critical: bool,
}

impl NewSend {
    /// Validates every field (all violations reported at once), then checks scopes.
    pub fn parse(caller: &Caller, fields: SendFields) -> Result<NewSend, Error> {
        let mut v = Violations::default();
        let audience = if fields.broadcast {
            if !fields.recipient_ids.is_empty() {
                v.add("recipient_ids", "must be empty when broadcast is set");
            }
            Audience::Broadcast
        } else {
            if fields.recipient_ids.is_empty() {
                v.add("recipient_ids", "at least one recipient, or set broadcast");
            } else if fields.recipient_ids.len() > MAX_RECIPIENTS {
                v.add(
                    "recipient_ids",
                    format!("at most {MAX_RECIPIENTS} recipients"),
                );
            }
            let mut seen = BTreeSet::new();
            let mut recipients = Vec::with_capacity(fields.recipient_ids.len());
            for (i, id) in fields.recipient_ids.into_iter().enumerate() {
                if let Some(id) = v.check(&format!("recipient_ids[{i}]"), user_id(&id))
                    && seen.insert(id.clone())
                {
                    recipients.push(id);
                }
            }
            Audience::Recipients(recipients)
        };
        v.check("category", category(&fields.category));
        v.check("content", content(&fields.content));
        v.check("link", link(&fields.link));
        let data = match fields.data {
            Ok(None) => None,
            Ok(Some(object)) => v.check("data", data(object)).flatten(),
            Err(why) => {
                v.add("data", why);
                None
            }
        };
        let sender_id = if fields.sender_id.is_empty() {
            caller.user_id.clone()
        } else {
            v.check("sender_id", user_id(&fields.sender_id));
            fields.sender_id
        };
        let idempotency_key = match fields.idempotency_key.as_str() {
            "" => None,
            key if key.len() > MAX_IDEMPOTENCY_KEY_BYTES => {
                v.add(
                    "idempotency_key",
                    format!("at most {MAX_IDEMPOTENCY_KEY_BYTES} bytes"),
                );
                None
            }
            key if key.chars().any(char::is_control) => {
                v.add("idempotency_key", "must not contain control characters");
                None
            }
            key => Some(key.to_owned()),
        };
        v.into_result()?;

        match audience {
            Audience::Broadcast => caller.require_scope(scope::BROADCAST)?,
            Audience::Recipients(_) => caller.require_scope(scope::SEND)?,
        }
        if sender_id != caller.user_id {
            caller.require_scope(scope::SEND_AS)?;
        }
        if fields.critical {
            caller.require_scope(scope::CRITICAL)?;
        }
        Ok(NewSend {
            caller_id: caller.user_id.clone(),
            audience,
            category: fields.category,
            content: fields.content,
            link: fields.link,
            sender_id,
            idempotency_key,
            data,
            critical: fields.critical,
        })
    }
}

/// Read-state filter of List.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadFilter {
    All,
    Unread,
    Read,
}

/// A validated List.
#[derive(Debug, Clone)]
pub struct ListQuery {
    pub state: ReadFilter,
    pub seen: SeenFilter,
    pub archive: ArchiveFilter,
    /// Snoozed notifications are hidden unless this is set.
    pub include_snoozed: bool,
    pub category: Option<String>,
    /// List notifications strictly older (smaller id) than this one.
    pub before_id: Option<String>,
    /// At most this many notifications (the api asks for one more than a page holds).
    pub limit: usize,
}

/// The newest notifications of a List (at most its `limit`), with the caller's inbox counts.
#[derive(Debug, Clone)]
pub struct Page {
    pub notifications: Vec<Notification>,
    pub counts: Counts,
}

/// A state change a user made (MarkRead, MarkSeen, ..., Unsnooze), as their other sessions
/// hear of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateEvent {
    pub user_id: String,
    pub change: ChangeKind,
    /// The ids that changed (empty for `all`).
    pub ids: Vec<String>,
    pub all: bool,
    pub category: Option<String>,
    /// With `all`: the read state the change was narrowed to.
    pub read: ReadFilter,
    /// Position in the commit-ordered log of state events.
    pub seq: i64,
}

/// Which notifications a state change acts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// Listed ids, normalised, sorted and unique: any notification the caller can see
    /// (archived and snoozed ones included); the others are ignored.
    Ids(Vec<String>),
    /// Every notification of the change's view ([`Change::view`]), optionally of one category
    /// (exact match) and one read state.
    All {
        category: Option<String>,
        read: ReadFilter,
    },
}

/// The raw fields of a selection, as a request carries them.
pub struct SelectionFields {
    pub ids: Vec<String>,
    pub all: bool,
    pub category: String,
    /// The read-state filter, or why its value is unknown.
    pub state: Result<ReadFilter, String>,
}

impl Selection {
    /// Validates a selection whose fields are named `<prefix>.ids`, `<prefix>.category`, ...,
    /// recording every violation in `v`.
    pub fn check(v: &mut Violations, prefix: &str, fields: SelectionFields) -> Option<Selection> {
        let field = |name: &str| format!("{prefix}.{name}");
        let read = match fields.state {
            Ok(read) => Some(read),
            Err(why) => {
                v.add(field("state"), why);
                None
            }
        };
        if fields.all {
            if !fields.ids.is_empty() {
                v.add(field("ids"), "must be empty when all is set");
            }
            let category = if fields.category.is_empty() {
                Some(None)
            } else {
                v.check(&field("category"), category(&fields.category))
                    .map(|()| Some(fields.category))
            };
            let (category, read) = category.zip(read)?;
            return Some(Selection::All { category, read });
        }
        if fields.ids.is_empty() {
            v.add(field("ids"), "give 1 to 1000 ids, or set all");
        } else if fields.ids.len() > MAX_SELECTION_IDS {
            v.add(field("ids"), format!("at most {MAX_SELECTION_IDS} ids"));
        }
        if !fields.category.is_empty() {
            v.add(field("category"), "only allowed together with all");
        }
        if read.is_some_and(|read| read != ReadFilter::All) {
            v.add(field("state"), "only allowed together with all");
        }
        let mut ids: Vec<String> = fields
            .ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| v.check(&format!("{prefix}.ids[{i}]"), notification_id(id)))
            .collect();
        ids.sort();
        ids.dedup();
        Some(Selection::Ids(ids))
    }

    /// How many rows it names: its ids, or one for `All` (whose size only the store knows).
    pub fn row_count(&self) -> usize {
        match self {
            Selection::Ids(ids) => ids.len().max(1),
            Selection::All { .. } => 1,
        }
    }
}

/// One caller's state change (MarkRead, MarkSeen, ..., Unsnooze), as the group committer
/// queues it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMark {
    pub user_id: String,
    pub change: Change,
    pub selection: Selection,
}

impl NewMark {
    /// How many rows it names (see [`Selection::row_count`]).
    pub fn row_count(&self) -> usize {
        self.selection.row_count()
    }
}

/// What a state change changed.
#[derive(Debug, Clone, Default)]
pub struct Marked {
    /// Ids that changed (empty for `All`, which can be large).
    pub ids: Vec<String>,
    pub count: i64,
    /// The user's inbox counts once the whole batch is applied.
    pub counts: Counts,
}

/// `[a-z][a-z0-9_.-]{0,63}`.
pub fn category(value: &str) -> Result<(), String> {
    let mut chars = value.chars();
    let valid = match chars.next() {
        None => return Err("required".into()),
        Some(first) => {
            first.is_ascii_lowercase()
                && value.len() <= MAX_CATEGORY_LEN
                && chars.all(|c| {
                    c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')
                })
        }
    };
    if valid {
        Ok(())
    } else {
        Err("must match [a-z][a-z0-9_.-]{0,63}".into())
    }
}

/// 1 to 2000 characters, not only whitespace, no control characters but newline and tab.
pub fn content(value: &str) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err("required".into());
    }
    if value.chars().count() > MAX_CONTENT_CHARS {
        return Err(format!("at most {MAX_CONTENT_CHARS} characters"));
    }
    if value
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

/// Empty, an absolute http(s) URL with a host, or a path starting with `/` (not `//`, which
/// browsers treat as another host).
pub fn link(value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if value.len() > MAX_LINK_BYTES {
        return Err(format!("at most {MAX_LINK_BYTES} bytes"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    if value.starts_with('/') && !value.starts_with("//") {
        return match value.parse::<http::uri::PathAndQuery>() {
            Ok(_) => Ok(()),
            Err(_) => Err("not a valid path".into()),
        };
    }
    let uri: http::Uri = value
        .parse()
        .map_err(|_| "must be an absolute http(s) URL or a path starting with /".to_owned())?;
    let scheme_ok = matches!(uri.scheme_str(), Some("http" | "https"));
    let host_ok = uri.host().is_some_and(|h| !h.is_empty());
    if scheme_ok && host_ok {
        Ok(())
    } else {
        Err("must be an absolute http(s) URL or a path starting with /".into())
    }
}

/// A Send's payload: at most [`MAX_DATA_KEYS`] top-level keys and [`MAX_DATA_BYTES`] as
/// compact JSON, which is what it returns; an empty object is no payload (`None`), so a
/// notification either has data worth showing or none.
pub fn data(value: Data) -> Result<Option<String>, String> {
    if value.len() > MAX_DATA_KEYS {
        return Err(format!("at most {MAX_DATA_KEYS} top-level keys"));
    }
    if value.is_empty() {
        return Ok(None);
    }
    let json = serde_json::Value::Object(value).to_string();
    if json.len() > MAX_DATA_BYTES {
        return Err(format!(
            "at most {MAX_DATA_BYTES} bytes as compact JSON (this is {})",
            json.len()
        ));
    }
    Ok(Some(json))
}

/// A user id: 1 to 200 bytes, no whitespace or control characters.
pub fn user_id(value: &str) -> Result<String, String> {
    if value.is_empty() {
        return Err("required".into());
    }
    if value.len() > MAX_USER_ID_BYTES {
        return Err(format!("at most {MAX_USER_ID_BYTES} bytes"));
    }
    if value.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err("must not contain spaces or control characters".into());
    }
    Ok(value.to_owned())
}

/// A notification id: a UUID, normalised to the lowercase hyphenated form stored.
pub fn notification_id(value: &str) -> Result<String, String> {
    Uuid::parse_str(value)
        .map(|id| id.hyphenated().to_string())
        .map_err(|_| "must be a notification id (UUID)".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(ids: &[&str], all: bool, category: &str, state: ReadFilter) -> SelectionFields {
        SelectionFields {
            ids: ids.iter().map(|s| s.to_string()).collect(),
            all,
            category: category.into(),
            state: Ok(state),
        }
    }

    fn violations(fields: SelectionFields) -> Vec<String> {
        let mut v = Violations::default();
        let selection = Selection::check(&mut v, "selection", fields);
        match v.finish(selection) {
            Ok(selection) => panic!("accepted {selection:?}"),
            Err(Error::InvalidArgument(list)) => list.into_iter().map(|f| f.field).collect(),
            Err(other) => panic!("{other:?}"),
        }
    }

    const ID: &str = "0190a000-0000-7000-8000-000000000001";

    #[test]
    fn selections_that_are_refused_name_their_fields() {
        let too_many: Vec<String> = (0..1001).map(|i| format!("{ID:.30}{i:06}")).collect();
        let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();
        for (fields, expected) in [
            (
                fields(&[], false, "", ReadFilter::All),
                vec!["selection.ids"],
            ),
            (
                fields(&[ID], true, "", ReadFilter::All),
                vec!["selection.ids"],
            ),
            (
                fields(&[ID], false, "build", ReadFilter::All),
                vec!["selection.category"],
            ),
            (
                fields(&[ID], false, "", ReadFilter::Read),
                vec!["selection.state"],
            ),
            (
                fields(&[ID, "nope"], false, "", ReadFilter::All),
                vec!["selection.ids[1]"],
            ),
            (
                fields(&[], true, "Not Valid", ReadFilter::All),
                vec!["selection.category"],
            ),
            (
                fields(&too_many, false, "", ReadFilter::All),
                vec!["selection.ids"],
            ),
            (
                SelectionFields {
                    state: Err("unknown read state 9".into()),
                    ..fields(&[], true, "", ReadFilter::All)
                },
                vec!["selection.state"],
            ),
        ] {
            assert_eq!(violations(fields), expected);
        }
    }

    #[test]
    fn ids_are_normalised_and_all_keeps_its_narrowing() {
        let mut v = Violations::default();
        let upper = ID.to_uppercase();
        let ids = Selection::check(
            &mut v,
            "s",
            fields(&[&upper, ID], false, "", ReadFilter::All),
        );
        assert_eq!(ids, Some(Selection::Ids(vec![ID.to_owned()])));
        let all = Selection::check(&mut v, "s", fields(&[], true, "build", ReadFilter::Read));
        assert_eq!(
            all,
            Some(Selection::All {
                category: Some("build".into()),
                read: ReadFilter::Read
            })
        );
        assert!(v.is_empty());
    }

    #[test]
    fn categories() {
        for ok in [
            "a",
            "conversation.message",
            "build-2_x",
            &format!("a{}", "b".repeat(63)),
        ] {
            assert!(category(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "A",
            "1abc",
            "a b",
            "a/b",
            "é",
            &format!("a{}", "b".repeat(64)),
        ] {
            assert!(category(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn links() {
        for ok in [
            "",
            "/x",
            "/conversations/1?a=b#c",
            "https://example.com/a",
            "http://h:8080",
        ] {
            assert!(link(ok).is_ok(), "{ok}");
        }
        for bad in [
            "relative/path",
            "//evil.example",
            "javascript:alert(1)",
            "ftp://host/x",
            "https://",
            "/a b",
            "https://ex ample.com",
        ] {
            assert!(link(bad).is_err(), "{bad}");
        }
        assert!(link(&format!("/{}", "a".repeat(MAX_LINK_BYTES))).is_err());
    }

    #[test]
    fn contents() {
        assert!(content("hello\nworld").is_ok());
        assert!(content(&"é".repeat(2000)).is_ok());
        assert!(content(&"é".repeat(2001)).is_err());
        assert!(content("   ").is_err());
        assert!(content("bell\u{7}").is_err());
    }

    #[test]
    fn data_is_bounded_in_keys_and_compact_bytes() {
        let keys = |n: usize| -> Data {
            (0..n)
                .map(|i| (format!("k{i}"), serde_json::Value::Null))
                .collect()
        };
        assert!(data(keys(MAX_DATA_KEYS)).is_ok());
        assert!(data(keys(MAX_DATA_KEYS + 1)).is_err());
        assert_eq!(data(Data::new()), Ok(None), "empty is no data");
        let sized = |filler: &str| -> Data {
            [("k".to_owned(), serde_json::Value::String(filler.to_owned()))]
                .into_iter()
                .collect()
        };
        // {"k":"..."}: 8 bytes around the filler.
        let fits = "a".repeat(MAX_DATA_BYTES - 8);
        assert_eq!(
            data(sized(&fits)).map(|json| json.map(|j| j.len())),
            Ok(Some(MAX_DATA_BYTES))
        );
        assert!(data(sized(&format!("{fits}a"))).is_err());
        assert!(
            data(sized(&"é".repeat(MAX_DATA_BYTES / 2))).is_err(),
            "bytes, not chars"
        );
    }

    proptest::proptest! {
        #[test]
        fn validators_never_panic(text in "\\PC*|.*") {
            let _ = category(&text);
            let _ = content(&text);
            let _ = link(&text);
            let _ = user_id(&text);
            let _ = notification_id(&text);
        }

        #[test]
        fn every_category_of_the_contract_is_accepted(c in "[a-z][a-z0-9_.-]{0,63}") {
            proptest::prop_assert!(category(&c).is_ok());
        }

        #[test]
        fn a_category_outside_the_pattern_is_refused(c in "[A-Z0-9_.-][a-z]{0,10}|[a-z]{65,70}") {
            proptest::prop_assert!(category(&c).is_err());
        }

        #[test]
        fn absolute_http_links_and_paths_are_accepted(
            scheme in "https?",
            host in "[a-z]{1,20}(\\.[a-z]{2,5})?",
            path in "(/[a-zA-Z0-9_-]{0,10}){0,5}",
        ) {
            let url = format!("{scheme}://{host}{path}");
            proptest::prop_assert!(link(&url).is_ok(), "{}", url);
            if !path.is_empty() && !path.starts_with("//") {
                proptest::prop_assert!(link(&path).is_ok(), "{}", path);
            }
        }
    }
}
