//! Protobuf <-> domain conversion: validation at the edge, so handlers see domain types.

use switchboard::{
    Caller, Error, Violations, page_token::Paging, proto::conversation::v1 as pb,
    time::to_timestamp,
};

use crate::domain::{
    self, Conversation, ConversationCursor, Message, NewMessage, TraceContext, User,
};

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

/// Create's username, trimmed.
pub fn create(req: &pb::CreateRequest) -> Result<String, Error> {
    domain::username(&req.username).map_err(|description| Error::invalid("username", description))
}

/// Get's conversation id.
pub fn get(req: &pb::GetRequest) -> Result<String, Error> {
    conversation_id("id", &req.id)
}

/// MarkRead's conversation id.
pub fn mark_read(req: &pb::MarkReadRequest) -> Result<String, Error> {
    conversation_id("conversation_id", &req.conversation_id)
}

fn conversation_id(field: &str, value: &str) -> Result<String, Error> {
    domain::conversation_id(value).map_err(|description| Error::invalid(field, description))
}

/// A SendMessage by `author` (the recorded caller).
pub fn send_message(author: &User, req: pb::SendMessageRequest) -> Result<NewMessage, Error> {
    let mut v = Violations::default();
    let conversation_id = v.check(
        "conversation_id",
        domain::conversation_id(&req.conversation_id),
    );
    let content = v.check("content", domain::content(&req.content));
    let idempotency_key = v.check(
        "idempotency_key",
        domain::idempotency_key(&req.idempotency_key),
    );
    let (conversation_id, (content, idempotency_key)) =
        v.finish(conversation_id.zip(content.zip(idempotency_key)))?;
    Ok(NewMessage {
        conversation_id,
        sender_id: author.id.clone(),
        content,
        idempotency_key,
        author_name: display_name(author),
        trace: TraceContext::default(),
    })
}

/// What the other participant's notification calls the author: the username, else the id.
fn display_name(author: &User) -> String {
    if author.username.is_empty() {
        author.id.clone()
    } else {
        author.username.clone()
    }
}

/// A validated List: the caller's conversations after a (last activity, id) position.
pub fn list(caller: &Caller, req: &pb::ListRequest) -> Result<Paging<ConversationCursor>, Error> {
    let mut v = Violations::default();
    let paging = Paging::parse(
        &mut v,
        req.page_size,
        &req.page_token,
        format!("conversations|{}", caller.user_id),
        ConversationCursor::decode,
    );
    v.finish(paging)
}

/// Where the List page after `last` starts.
pub fn list_position(last: &Conversation) -> String {
    ConversationCursor {
        last_activity_at: last.last_activity_at,
        id: last.id.clone(),
    }
    .encode()
}

/// A validated ListMessages: one conversation's messages before a message id.
pub struct ListMessagesParams {
    pub conversation_id: String,
    pub paging: Paging<String>,
}

pub fn list_messages(
    caller: &Caller,
    req: &pb::ListMessagesRequest,
) -> Result<ListMessagesParams, Error> {
    let mut v = Violations::default();
    let conversation_id = v.check(
        "conversation_id",
        domain::conversation_id(&req.conversation_id),
    );
    // A token belongs to one conversation; for an invalid id the scope holds the raw value,
    // which no token was made for, so the token is refused too.
    let scope_id = conversation_id.as_deref().unwrap_or(&req.conversation_id);
    let paging = Paging::parse(
        &mut v,
        req.page_size,
        &req.page_token,
        format!("messages|{}|{scope_id}", caller.user_id),
        // Message ids are UUIDs like conversation ids: anything else is a forged token.
        |position| domain::conversation_id(position).ok(),
    );
    let (conversation_id, paging) = v.finish(conversation_id.zip(paging))?;
    Ok(ListMessagesParams {
        conversation_id,
        paging,
    })
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use prost::Message as _;
    use switchboard::page_token;

    use super::*;

    fn caller() -> Caller {
        Caller {
            user_id: "alice-id".into(),
            username: "alice".into(),
            avatar_url: String::new(),
            scopes: Default::default(),
        }
    }

    fn author() -> User {
        User {
            id: "alice-id".into(),
            username: "alice".into(),
            avatar_url: String::new(),
        }
    }

    fn fields(err: Error) -> Vec<String> {
        match err {
            Error::InvalidArgument(violations) => violations.into_iter().map(|v| v.field).collect(),
            other => panic!("unexpected {other:?}"),
        }
    }

    const ID: &str = "0190a0b1-0000-7000-8000-000000000001";

    #[test]
    fn a_valid_message_is_trimmed_and_normalised() {
        let new = send_message(
            &author(),
            pb::SendMessageRequest {
                conversation_id: ID.to_uppercase(),
                content: "  hi \n".into(),
                idempotency_key: String::new(),
            },
        )
        .unwrap();
        assert_eq!(new.conversation_id, ID);
        assert_eq!(new.content, "hi");
        assert_eq!(new.idempotency_key, None);
        assert_eq!(
            (new.sender_id.as_str(), new.author_name.as_str()),
            ("alice-id", "alice")
        );
    }

    #[test]
    fn an_author_without_username_is_named_by_id() {
        let author = User {
            username: String::new(),
            ..author()
        };
        let req = pb::SendMessageRequest {
            conversation_id: ID.into(),
            content: "hi".into(),
            idempotency_key: "k".into(),
        };
        assert_eq!(send_message(&author, req).unwrap().author_name, "alice-id");
    }

    #[test]
    fn every_bad_field_of_a_message_is_reported_at_once() {
        let err = send_message(
            &author(),
            pb::SendMessageRequest {
                conversation_id: "nope".into(),
                content: " ".into(),
                idempotency_key: "\u{0}".into(),
            },
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            ["conversation_id", "content", "idempotency_key"]
        );
    }

    #[test]
    fn a_messages_token_belongs_to_its_conversation() {
        let other = "0190a0b1-0000-7000-8000-000000000002";
        let token = page_token::encode(&format!("messages|alice-id|{ID}"), other);
        let req = |conversation_id: &str| pb::ListMessagesRequest {
            conversation_id: conversation_id.into(),
            page_size: 0,
            page_token: token.clone(),
        };
        let list = list_messages(&caller(), &req(ID)).unwrap();
        assert_eq!(list.paging.after.as_deref(), Some(other));
        assert_eq!(
            fields(list_messages(&caller(), &req(other)).err().unwrap()),
            ["page_token"]
        );
        assert_eq!(
            fields(list_messages(&caller(), &req("bad")).err().unwrap()),
            ["conversation_id", "page_token"]
        );
    }

    #[test]
    fn a_forged_list_position_is_refused() {
        let req = pb::ListRequest {
            page_size: 0,
            page_token: page_token::encode("conversations|alice-id", "not-a-cursor"),
        };
        assert_eq!(fields(list(&caller(), &req).unwrap_err()), ["page_token"]);
    }

    proptest! {
        // What a fuzzer would do at the edge: arbitrary bytes decoded as each request type,
        // then validated. Decoding may fail; nothing may panic.
        #[test]
        fn arbitrary_bytes_decode_and_validate_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            if let Ok(req) = pb::CreateRequest::decode(bytes.as_slice()) {
                let _ = create(&req);
            }
            if let Ok(req) = pb::GetRequest::decode(bytes.as_slice()) {
                let _ = get(&req);
            }
            if let Ok(req) = pb::SendMessageRequest::decode(bytes.as_slice()) {
                let _ = send_message(&author(), req);
            }
            if let Ok(req) = pb::ListRequest::decode(bytes.as_slice()) {
                let _ = list(&caller(), &req);
            }
            if let Ok(req) = pb::ListMessagesRequest::decode(bytes.as_slice()) {
                let _ = list_messages(&caller(), &req);
            }
            if let Ok(req) = pb::MarkReadRequest::decode(bytes.as_slice()) {
                let _ = mark_read(&req);
            }
        }
    }
}
