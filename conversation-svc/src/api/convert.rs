//! Protobuf <-> domain conversion.

use switchboard::{proto::conversation::v1 as pb, time::to_timestamp};

use crate::domain::{Conversation, Message, User};

pub fn user(u: &User) -> pb::User {
    pb::User {
        id: u.id.clone(),
        username: u.username.clone(),
        avatar_url: u.avatar_url.clone(),
    }
}

/// A message as `caller_id` sees it (`mine`).
pub fn message(m: &Message, caller_id: &str) -> pb::Message {
    pb::Message {
        id: m.id.clone(),
        conversation_id: m.conversation_id.clone(),
        sender_id: m.sender_id.clone(),
        content: m.content.clone(),
        mine: m.sender_id == caller_id,
        created_at: Some(to_timestamp(m.created_at)),
    }
}

pub fn conversation(c: &Conversation, caller_id: &str) -> pb::Conversation {
    pb::Conversation {
        id: c.id.clone(),
        other_participant: Some(user(&c.other)),
        last_message: c.last_message.as_ref().map(|m| message(m, caller_id)),
        has_unread_messages: c.unread_count > 0,
        unread_count: c.unread_count,
        created_at: Some(to_timestamp(c.created_at)),
    }
}
