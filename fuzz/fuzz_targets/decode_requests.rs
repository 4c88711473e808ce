//! Arbitrary bytes decoded as every request type of both contracts, then validated the way
//! the services do at their edge. Decoding may fail; nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use switchboard::{
    Caller,
    proto::{conversation::v1 as cpb, notification::v1 as npb},
};

fn caller() -> Caller {
    Caller {
        user_id: "fuzzer".into(),
        username: "fuzzer".into(),
        avatar_url: String::new(),
        scopes: ["notifications:send", "notifications:broadcast", "notifications:send_as"]
            .map(String::from)
            .into(),
    }
}

fuzz_target!(|data: &[u8]| {
    use notification_svc::api::convert;
    if let Ok(req) = npb::SendRequest::decode(data) {
        let _ = convert::send(&caller(), req);
    }
    if let Ok(req) = npb::ListRequest::decode(data) {
        let _ = convert::list(&caller(), &req);
    }
    if let Ok(req) = npb::MarkReadRequest::decode(data) {
        let _ = convert::mark_read(req);
    }
    if let Ok(req) = npb::SubscribeRequest::decode(data) {
        let _ = convert::subscribe(req);
    }

    use conversation_svc::domain;
    if let Ok(req) = cpb::CreateRequest::decode(data) {
        let _ = domain::username(&req.username);
    }
    if let Ok(req) = cpb::GetRequest::decode(data) {
        let _ = domain::conversation_id(&req.id);
    }
    if let Ok(req) = cpb::SendMessageRequest::decode(data) {
        let _ = domain::conversation_id(&req.conversation_id);
        let _ = domain::content(&req.content);
        let _ = domain::idempotency_key(&req.idempotency_key);
    }
    if let Ok(req) = cpb::ListRequest::decode(data) {
        let _ = switchboard::page_token::page_size(req.page_size);
        let _ = switchboard::page_token::decode("page_token", &req.page_token, "fuzz");
        if let Some(position) = std::str::from_utf8(data).ok() {
            let _ = domain::ConversationCursor::decode(position);
        }
    }
    if let Ok(req) = cpb::ListMessagesRequest::decode(data) {
        let _ = domain::conversation_id(&req.conversation_id);
        let _ = switchboard::page_token::page_size(req.page_size);
    }
    let _ = switchboard::identity::decode_value(data);
});
