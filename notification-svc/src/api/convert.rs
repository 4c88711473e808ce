//! Protobuf <-> domain conversion: validation at the edge, so handlers see domain types.

use switchboard::{
    Caller, Error, Violations,
    page_token::Paging,
    proto::notification::v1 as pb,
    time::{from_timestamp, to_timestamp},
};

use super::struct_json;
use crate::{
    domain::{
        self, ArchiveFilter, ChangeKind, Counts, ListQuery, MAX_SELECTION_IDS,
        MAX_SUBSCRIBE_CATEGORIES, NewSend, Notification, ReadFilter, SeenFilter, Selection,
        SelectionFields, SendFields, StateEvent,
    },
    preferences::{self, Mute},
};

pub fn notification(n: &Notification) -> pb::Notification {
    pb::Notification {
        id: n.id.clone(),
        category: n.category.clone(),
        content: n.content.clone(),
        link: n.link.clone(),
        sender_id: n.sender_id.clone(),
        recipient_id: n.recipient_id.clone().unwrap_or_default(),
        broadcast: n.is_broadcast(),
        read: n.read_at.is_some(),
        created_at: Some(to_timestamp(n.created_at)),
        read_at: n.read_at.map(to_timestamp),
        data: n.data.as_deref().and_then(struct_json::from_json_text),
        critical: n.critical,
        seen: n.seen_at.is_some(),
        seen_at: n.seen_at.map(to_timestamp),
        archived: n.archived_at.is_some(),
        archived_at: n.archived_at.map(to_timestamp),
        snoozed_until: n.snoozed_until.map(to_timestamp),
    }
}

pub fn counts(c: &Counts) -> pb::Counts {
    pb::Counts {
        unread: c.total_unread(),
        unseen: c.total_unseen(),
        unread_by_category: c.unread.clone().into_iter().collect(),
        unseen_by_category: c.unseen.clone().into_iter().collect(),
    }
}

/// A state event as the stream sends it: a MarkRead stays a `read` event (as before issue
/// 19), every other change to notifications is a `state` event; a change of preferences is
/// none (the stream sends the preferences it reads then).
pub fn state_event(e: &StateEvent) -> Option<pb::subscribe_response::Event> {
    use pb::subscribe_response::Event;
    let category = e.category.clone().unwrap_or_default();
    let change = match e.change {
        ChangeKind::Read => {
            return Some(Event::Read(pb::ReadEvent {
                ids: e.ids.clone(),
                all: e.all,
                category,
            }));
        }
        ChangeKind::Seen => pb::StateChange::Seen,
        ChangeKind::Unread => pb::StateChange::Unread,
        ChangeKind::Archived => pb::StateChange::Archived,
        ChangeKind::Unarchived => pb::StateChange::Unarchived,
        ChangeKind::Snoozed => pb::StateChange::Snoozed,
        ChangeKind::Unsnoozed => pb::StateChange::Unsnoozed,
        // Told as a `preferences` event, once the stream has read them.
        ChangeKind::Preferences => return None,
    };
    let read_state = match e.read {
        ReadFilter::All => pb::ReadState::Unspecified,
        ReadFilter::Unread => pb::ReadState::Unread,
        ReadFilter::Read => pb::ReadState::Read,
    };
    Some(Event::State(pb::StateEvent {
        change: change.into(),
        ids: e.ids.clone(),
        all: e.all,
        category,
        read_state: read_state.into(),
    }))
}

pub fn send(caller: &Caller, req: pb::SendRequest) -> Result<NewSend, Error> {
    NewSend::parse(
        caller,
        SendFields {
            recipient_ids: req.recipient_ids,
            broadcast: req.broadcast,
            category: req.category,
            content: req.content,
            link: req.link,
            sender_id: req.sender_id,
            idempotency_key: req.idempotency_key,
            data: req.data.map(struct_json::to_json).transpose(),
            critical: req.critical,
        },
    )
}

/// The page-token scope: a token is only valid for the caller and filters it was made for.
/// The filters of issue 19 join the scope only when set, so a token made before them stays
/// valid for the same request.
fn list_scope(caller: &Caller, req: &pb::ListRequest) -> String {
    let mut scope = format!("{}|{}|{}", caller.user_id, req.state, req.category);
    if (req.seen_state, req.archive_state, req.include_snoozed) != (0, 0, false) {
        scope.push_str(&format!(
            "|{}|{}|{}",
            req.seen_state, req.archive_state, req.include_snoozed
        ));
    }
    scope
}

/// A ReadState number as a filter, or why it is refused.
fn read_filter(state: i32) -> Result<ReadFilter, String> {
    match pb::ReadState::try_from(state) {
        Ok(pb::ReadState::Unspecified) => Ok(ReadFilter::All),
        Ok(pb::ReadState::Unread) => Ok(ReadFilter::Unread),
        Ok(pb::ReadState::Read) => Ok(ReadFilter::Read),
        Err(_) => Err(format!("unknown read state {state}")),
    }
}

fn seen_filter(state: i32) -> Result<SeenFilter, String> {
    match pb::SeenState::try_from(state) {
        Ok(pb::SeenState::Unspecified) => Ok(SeenFilter::All),
        Ok(pb::SeenState::Unseen) => Ok(SeenFilter::Unseen),
        Ok(pb::SeenState::Seen) => Ok(SeenFilter::Seen),
        Err(_) => Err(format!("unknown seen state {state}")),
    }
}

fn archive_filter(state: i32) -> Result<ArchiveFilter, String> {
    match pb::ArchiveState::try_from(state) {
        Ok(pb::ArchiveState::Unspecified) => Ok(ArchiveFilter::Inbox),
        Ok(pb::ArchiveState::Archived) => Ok(ArchiveFilter::Archived),
        Ok(pb::ArchiveState::Any) => Ok(ArchiveFilter::Any),
        Err(_) => Err(format!("unknown archive state {state}")),
    }
}

/// A validated List: what the store reads, and how its rows become a page.
pub struct ListParams {
    pub query: ListQuery,
    pub paging: Paging<String>,
}

pub fn list(caller: &Caller, req: &pb::ListRequest) -> Result<ListParams, Error> {
    let mut v = Violations::default();
    let state = v.check("state", read_filter(req.state));
    let seen = v.check("seen_state", seen_filter(req.seen_state));
    let archive = v.check("archive_state", archive_filter(req.archive_state));
    let category = v.check("category", optional_category(&req.category));
    // A decoded position must itself be an id, or the token was forged.
    let paging = Paging::parse(
        &mut v,
        req.page_size,
        &req.page_token,
        list_scope(caller, req),
        |position| domain::notification_id(position).ok(),
    );
    let (((state, (seen, archive)), category), paging) =
        v.finish(state.zip(seen.zip(archive)).zip(category).zip(paging))?;
    Ok(ListParams {
        query: ListQuery {
            state,
            seen,
            archive,
            include_snoozed: req.include_snoozed,
            category,
            before_id: paging.after.clone(),
            limit: paging.fetch_limit(),
        },
        paging,
    })
}

/// MarkRead's ids or `all` (optionally one category), as a selection: its own field names,
/// and no read-state narrowing.
pub fn mark_read(req: pb::MarkReadRequest) -> Result<Selection, Error> {
    let mut v = Violations::default();
    let selection = if req.all {
        if !req.ids.is_empty() {
            v.add("ids", "must be empty when all is set");
        }
        v.check("category", optional_category(&req.category))
            .map(|category| Selection::All {
                category,
                read: ReadFilter::All,
            })
    } else {
        if req.ids.is_empty() {
            v.add("ids", "give at least one id, or set all");
        } else if req.ids.len() > MAX_SELECTION_IDS {
            v.add("ids", format!("at most {MAX_SELECTION_IDS} ids"));
        }
        if !req.category.is_empty() {
            v.add("category", "only allowed together with all");
        }
        // Each refused id is recorded; `finish` below then refuses the whole request.
        let mut ids: Vec<String> = req
            .ids
            .iter()
            .enumerate()
            .filter_map(|(i, id)| v.check(&format!("ids[{i}]"), domain::notification_id(id)))
            .collect();
        ids.sort();
        ids.dedup();
        Some(Selection::Ids(ids))
    };
    v.finish(selection)
}

/// The `selection` of a state-change request (MarkSeen, MarkUnread, Archive, ...), recording
/// its violations under `selection.*`.
fn check_selection(v: &mut Violations, selection: Option<pb::Selection>) -> Option<Selection> {
    let Some(selection) = selection else {
        v.add("selection", "required: give ids, or set all");
        return None;
    };
    Selection::check(
        v,
        "selection",
        SelectionFields {
            ids: selection.ids,
            all: selection.all,
            category: selection.category,
            state: read_filter(selection.state),
        },
    )
}

/// A Snooze: its selection, and its `until` (microseconds) checked against `now` and the
/// retention (microseconds).
pub fn snooze(req: pb::SnoozeRequest, now: i64, retention: i64) -> Result<(Selection, i64), Error> {
    let mut v = Violations::default();
    let selection = check_selection(&mut v, req.selection);
    let until = v.check(
        "until",
        req.until
            .ok_or_else(|| "required: when the notifications wake".to_owned())
            .and_then(|until| from_timestamp(&until))
            .and_then(|until| domain::snooze_until(until, now, retention)),
    );
    v.finish(selection.zip(until))
}

/// The selection of MarkSeen, MarkUnread, Archive, Unarchive or Unsnooze.
pub fn selection(selection: Option<pb::Selection>) -> Result<Selection, Error> {
    let mut v = Violations::default();
    let selection = check_selection(&mut v, selection);
    v.finish(selection)
}

/// A validated Subscribe request.
pub struct SubscribeParams {
    pub resume_after: Option<String>,
    pub categories: Vec<String>,
}

pub fn subscribe(req: pb::SubscribeRequest) -> Result<SubscribeParams, Error> {
    let mut v = Violations::default();
    let resume_after = v.check(
        "resume_after",
        optional(&req.resume_after, domain::notification_id),
    );
    if req.categories.len() > MAX_SUBSCRIBE_CATEGORIES {
        v.add(
            "categories",
            format!("at most {MAX_SUBSCRIBE_CATEGORIES} categories"),
        );
    }
    for (i, category) in req.categories.iter().enumerate() {
        v.check(&format!("categories[{i}]"), domain::category(category));
    }
    let resume_after = v.finish(resume_after)?;
    let mut categories = req.categories;
    categories.sort();
    categories.dedup();
    Ok(SubscribeParams {
        resume_after,
        categories,
    })
}

/// A person's mutes as the contract shows them (every entry stored is muted).
pub fn preferences(mutes: &[Mute]) -> pb::Preferences {
    pb::Preferences {
        categories: mutes
            .iter()
            .map(|mute| pb::CategoryPreference {
                category: mute.category.clone(),
                muted: true,
                muted_until: mute.until.map(to_timestamp),
            })
            .collect(),
    }
}

/// The mutes an UpdatePreferences stores, checked against the clock at `now`. A request
/// without `preferences` is refused rather than read as "clear everything", which an empty
/// `preferences` says explicitly.
pub fn update_preferences(req: pb::UpdatePreferencesRequest, now: i64) -> Result<Vec<Mute>, Error> {
    let Some(set) = req.preferences else {
        return Err(Error::invalid(
            "preferences",
            "required (an empty one clears every mute)",
        ));
    };
    let entries = set
        .categories
        .into_iter()
        .map(|entry| preferences::Entry {
            category: entry.category,
            muted: entry.muted,
            muted_until: entry.muted_until.as_ref().map(from_timestamp),
        })
        .collect();
    preferences::parse(entries, now)
}

/// An optional category filter: empty means none.
fn optional_category(value: &str) -> Result<Option<String>, String> {
    optional(value, |category| {
        domain::category(category).map(|()| category.to_owned())
    })
}

/// An optional field: empty means absent, anything else must pass `parse`.
fn optional<T>(
    value: &str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, String> {
    if value.is_empty() {
        Ok(None)
    } else {
        parse(value).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message;

    use super::*;

    fn caller() -> Caller {
        Caller {
            user_id: "fuzzer".into(),
            username: String::new(),
            avatar_url: String::new(),
            scopes: [
                "notifications:send",
                "notifications:broadcast",
                "notifications:send_as",
            ]
            .map(String::from)
            .into(),
        }
    }

    proptest! {
        // What a fuzzer would do at the edge: arbitrary bytes decoded as each request type,
        // then validated. Decoding may fail; nothing may panic.
        #[test]
        fn arbitrary_bytes_decode_and_validate_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(req) = pb::SendRequest::decode(bytes.as_slice()) {
                let _ = send(&caller(), req);
            }
            if let Ok(req) = pb::ListRequest::decode(bytes.as_slice()) {
                let _ = list(&caller(), &req);
            }
            if let Ok(req) = pb::MarkReadRequest::decode(bytes.as_slice()) {
                let _ = mark_read(req);
            }
            if let Ok(req) = pb::ArchiveRequest::decode(bytes.as_slice()) {
                let _ = selection(req.selection);
            }
            if let Ok(req) = pb::SnoozeRequest::decode(bytes.as_slice()) {
                let _ = snooze(req, 0, i64::MAX);
            }
            if let Ok(req) = pb::SubscribeRequest::decode(bytes.as_slice()) {
                let _ = subscribe(req);
            }
            if let Ok(req) = pb::UpdatePreferencesRequest::decode(bytes.as_slice()) {
                let _ = update_preferences(req, 0);
            }
        }

        #[test]
        fn structured_requests_validate_without_panicking(
            recipients in proptest::collection::vec(".{0,30}", 0..5),
            text in ".{0,50}",
            number in any::<i32>(),
            flag in any::<bool>(),
        ) {
            let _ = send(&caller(), pb::SendRequest {
                recipient_ids: recipients.clone(),
                broadcast: flag,
                category: text.clone(),
                content: text.clone(),
                link: text.clone(),
                sender_id: text.clone(),
                idempotency_key: text.clone(),
                ..Default::default()
            });
            let _ = list(&caller(), &pb::ListRequest { state: number, category: text.clone(), page_size: number, page_token: text.clone(), ..Default::default() });
            let _ = mark_read(pb::MarkReadRequest { ids: recipients.clone(), all: flag, category: text.clone() });
            let _ = selection(Some(pb::Selection { ids: recipients.clone(), all: flag, category: text.clone(), state: number }));
            let _ = subscribe(pb::SubscribeRequest { resume_after: text.clone(), categories: recipients.clone() });
            let _ = update_preferences(pb::UpdatePreferencesRequest {
                preferences: Some(pb::Preferences {
                    categories: recipients.iter().map(|category| pb::CategoryPreference {
                        category: category.clone(),
                        muted: flag,
                        muted_until: Some(prost_types::Timestamp { seconds: i64::from(number) * 1_000_000, nanos: number }),
                    }).collect(),
                }),
            }, 0);
        }
    }
}
