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
    if let Ok(req) = npb::ArchiveRequest::decode(data) {
        let _ = convert::selection(req.selection);
    }
    if let Ok(req) = npb::SubscribeRequest::decode(data) {
        let _ = convert::subscribe(req);
    }

    use conversation_svc::{api::convert as conversation, domain::User};
    let author = User {
        id: "fuzzer".into(),
        username: "fuzzer".into(),
        avatar_url: String::new(),
    };
    if let Ok(req) = cpb::CreateRequest::decode(data) {
        let _ = conversation::create(&req);
    }
    if let Ok(req) = cpb::GetRequest::decode(data) {
        let _ = conversation::get(&req);
    }
    if let Ok(req) = cpb::SendMessageRequest::decode(data) {
        let _ = conversation::send_message(&author, req);
    }
    if let Ok(req) = cpb::ListRequest::decode(data) {
        let _ = conversation::list(&caller(), &req);
    }
    if let Ok(req) = cpb::ListMessagesRequest::decode(data) {
        let _ = conversation::list_messages(&caller(), &req);
    }
    if let Ok(req) = cpb::MarkReadRequest::decode(data) {
        let _ = conversation::mark_read(&req);
    }
    let _ = switchboard::identity::decode_value(data);
});
