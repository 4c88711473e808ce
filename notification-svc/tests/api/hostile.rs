//! Hostile input: every request field tried with empty, huge, control-character, SQL
//! metacharacter and invalid UTF-8 values gets INVALID_ARGUMENT or succeeds harmlessly;
//! nothing panics and the service keeps working.

use switchboard::proto::notification::v1 as pb;
use tonic::{
    Code, Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
};

use crate::helpers::*;

fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "\0".into(),
        "a\u{0}b".into(),
        "\u{202e}evil".into(),
        "line\r\nbreak".into(),
        "' OR 1=1 --".into(),
        "Robert');DROP_TABLE_notifications;--".into(),
        "%00%zz%".into(),
        "😀".repeat(50),
        "x".repeat(100_000),
        "$1".into(),
        "?".into(),
    ]
}

fn acceptable<T>(what: &str, result: Result<T, Status>) {
    if let Err(status) = result {
        assert!(
            matches!(status.code(), Code::InvalidArgument | Code::OutOfRange),
            "{what}: {status:?}"
        );
    }
}

async fn every_field_survives_hostile_values(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut client = app.user("service");
    for value in hostile_strings() {
        let short: String = value.chars().take(20).collect();
        let base = send_to(&["alice"], "ok");
        acceptable(
            &format!("recipient {short:?}"),
            client
                .send(pb::SendRequest {
                    recipient_ids: vec![value.clone()],
                    ..base.clone()
                })
                .await,
        );
        acceptable(
            &format!("category {short:?}"),
            client
                .send(pb::SendRequest {
                    category: value.clone(),
                    ..base.clone()
                })
                .await,
        );
        acceptable(
            &format!("content {short:?}"),
            client
                .send(pb::SendRequest {
                    content: value.clone(),
                    ..base.clone()
                })
                .await,
        );
        acceptable(
            &format!("link {short:?}"),
            client
                .send(pb::SendRequest {
                    link: value.clone(),
                    ..base.clone()
                })
                .await,
        );
        acceptable(
            &format!("sender {short:?}"),
            client
                .send(pb::SendRequest {
                    sender_id: value.clone(),
                    ..base.clone()
                })
                .await,
        );
        acceptable(
            &format!("key {short:?}"),
            client
                .send(pb::SendRequest {
                    idempotency_key: value.clone(),
                    ..base.clone()
                })
                .await,
        );
        acceptable(
            &format!("list category {short:?}"),
            client
                .list(pb::ListRequest {
                    category: value.clone(),
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("page token {short:?}"),
            client
                .list(pb::ListRequest {
                    page_token: value.clone(),
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("mark ids {short:?}"),
            client
                .mark_read(pb::MarkReadRequest {
                    ids: vec![value.clone()],
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("mark category {short:?}"),
            client
                .mark_read(pb::MarkReadRequest {
                    all: true,
                    category: value.clone(),
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("resume {short:?}"),
            client
                .subscribe(pb::SubscribeRequest {
                    resume_after: value.clone(),
                    ..Default::default()
                })
                .await,
        );
        acceptable(
            &format!("categories {short:?}"),
            client
                .subscribe(pb::SubscribeRequest {
                    categories: vec![value.clone()],
                    ..Default::default()
                })
                .await,
        );
    }
    // Bytes that are not valid protobuf, or not valid UTF-8 in a string field.
    for body in [
        vec![0x1a, 0x02, 0xff, 0xfe],             // category: invalid UTF-8
        vec![0x22, 0x05, b'a'],                   // content: truncated
        vec![0xff, 0xff, 0xff, 0xff, 0xff, 0x0f], // garbage tag
    ] {
        let status = raw_call(
            &app,
            "/switchboard.notification.v1.NotificationService/Send",
            body,
        )
        .await
        .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    }
    // Still serving, and the SQL metacharacters were stored as text where they were valid.
    let page = list_all(&mut app.user("Robert');DROP_TABLE_notifications;--")).await;
    assert_eq!(page.notifications.len(), 1);
    list_all(&mut app.user("alice")).await;
}

/// Sends `body` as the request message bytes, as a hostile client could.
async fn raw_call(app: &TestApp, path: &'static str, body: Vec<u8>) -> Result<(), Status> {
    let mut grpc = tonic::client::Grpc::new(app.channel());
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let mut request = tonic::Request::new(body);
    caller("service", ALL_SCOPES).write_metadata(request.metadata_mut(), INTERNAL_TOKEN);
    grpc.unary(
        request,
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        Raw,
    )
    .await
    .map(|_| ())
}

#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;

    fn encoder(&mut self) -> Raw {
        Raw
    }

    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        let bytes = bytes::Buf::chunk(src).to_vec();
        bytes::Buf::advance(src, bytes.len());
        Ok(Some(bytes))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

switchboard::both_backends!(every_field_survives_hostile_values);
