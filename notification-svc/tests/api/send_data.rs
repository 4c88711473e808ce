//! SendRequest.data: a google.protobuf.Struct kept as compact JSON on every row of the Send
//! and returned as Notification.data wherever a notification is returned.

use prost_types::{ListValue, Struct, Value, value::Kind};
use switchboard::{proto::notification::v1 as pb, testing::next_notification};

use crate::helpers::*;

fn value(kind: Kind) -> Value {
    Value { kind: Some(kind) }
}

fn string(s: &str) -> Value {
    value(Kind::StringValue(s.into()))
}

fn object(fields: Vec<(&str, Value)>) -> Struct {
    Struct {
        fields: fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect(),
    }
}

/// A payload with every kind of value, nested.
fn payload() -> Struct {
    object(vec![
        ("run", value(Kind::NumberValue(42.0))),
        ("passed", value(Kind::BoolValue(true))),
        ("owner", value(Kind::NullValue(0))),
        ("title", string("Nightly \"main\" é")),
        (
            "failures",
            value(Kind::ListValue(ListValue {
                values: vec![
                    value(Kind::StructValue(object(vec![
                        ("test", string("a::b")),
                        ("ms", value(Kind::NumberValue(12.5))),
                    ]))),
                    value(Kind::NumberValue(-3.0)),
                ],
            })),
        ),
    ])
}

/// The compact JSON `payload()` is stored as (keys sorted, no spaces).
const PAYLOAD_JSON: &str = r#"{"failures":[{"ms":12.5,"test":"a::b"},-3.0],"owner":null,"passed":true,"run":42.0,"title":"Nightly \"main\" é"}"#;

/// `data` of every stored notification, by id, read from the database itself.
async fn stored_data(database_url: &str) -> Vec<(String, Option<String>)> {
    let query = "SELECT id, data FROM notifications ORDER BY id";
    if database_url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(database_url).await.unwrap();
        sqlx::query_as(query).fetch_all(&pool).await.unwrap()
    } else {
        let pool = sqlx::PgPool::connect(database_url).await.unwrap();
        sqlx::query_as(query).fetch_all(&pool).await.unwrap()
    }
}

async fn data_is_stored_on_every_row_as_compact_json_and_listed(backend: Backend) {
    let app = spawn_app(backend).await;
    let sent = send(
        &mut app.user("ci"),
        pb::SendRequest {
            data: Some(payload()),
            ..send_to(&["alice", "bob"], "Nightly finished")
        },
    )
    .await;
    assert_eq!(sent.len(), 2);
    for n in &sent {
        assert_eq!(n.data, Some(payload()), "Send answers with the data");
    }
    let rows = stored_data(&app.database_url).await;
    assert_eq!(rows.len(), 2);
    for (_, data) in &rows {
        assert_eq!(data.as_deref(), Some(PAYLOAD_JSON));
    }
    for user in ["alice", "bob"] {
        let page = list_all(&mut app.user(user)).await;
        assert_eq!(page.notifications.len(), 1);
        assert_eq!(page.notifications[0].data, Some(payload()), "{user}");
    }

    let news = send(
        &mut app.user("ops"),
        pb::SendRequest {
            data: Some(object(vec![("severity", string("low"))])),
            ..broadcast("Maintenance")
        },
    )
    .await;
    let listed = list_all(&mut app.user("carol")).await;
    assert_eq!(ids(&listed.notifications), ids(&news));
    assert_eq!(
        listed.notifications[0].data,
        Some(object(vec![("severity", string("low"))]))
    );
}

async fn a_send_without_data_has_none_and_an_empty_struct_is_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ci = app.user("ci");
    let plain = send(&mut ci, send_to(&["alice"], "plain")).await;
    let empty = send(
        &mut ci,
        pb::SendRequest {
            data: Some(Struct::default()),
            ..send_to(&["alice"], "empty")
        },
    )
    .await;
    assert_eq!(
        (plain[0].data.as_ref(), empty[0].data.as_ref()),
        (None, None)
    );
    for (_, data) in stored_data(&app.database_url).await {
        assert_eq!(data, None, "NULL in the database");
    }
    for n in list_all(&mut app.user("alice")).await.notifications {
        assert_eq!(n.data, None);
    }
}

async fn data_reaches_live_streams_replays_and_idempotent_repeats(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut alice = app.user("alice");
    let mut live = subscribe(&mut alice, Default::default()).await;
    let mut ci = app.user("ci");
    let anchor = send(&mut ci, send_to(&["alice"], "anchor")).await;
    let request = pb::SendRequest {
        data: Some(payload()),
        idempotency_key: "nightly-42".into(),
        ..send_to(&["alice"], "Nightly finished")
    };
    let sent = send(&mut ci, request.clone()).await;

    assert_eq!(next_notification(&mut live).await, anchor[0]);
    let streamed = next_notification(&mut live).await;
    assert_eq!(streamed.data, Some(payload()), "live");
    assert_eq!(streamed, sent[0]);

    let mut replay = subscribe(
        &mut alice,
        pb::SubscribeRequest {
            resume_after: anchor[0].id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next_notification(&mut replay).await, sent[0], "replayed");

    let repeated = send(&mut ci, request).await;
    assert_eq!(
        repeated, sent,
        "the repeat answers the original, data included"
    );
}

async fn data_limits_are_violations_on_data_and_store_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ci = app.user("ci");
    let keys = |n: usize| Struct {
        fields: (0..n).map(|i| (format!("k{i}"), string("v"))).collect(),
    };
    // {"k":"<filler>"} is 8 bytes around the filler.
    let sized = |bytes: usize| object(vec![("k", string(&"a".repeat(bytes - 8)))]);
    let nested_number = |n: f64| {
        object(vec![(
            "l",
            value(Kind::ListValue(ListValue {
                values: vec![value(Kind::StructValue(object(vec![(
                    "x",
                    value(Kind::NumberValue(n)),
                )])))],
            })),
        )])
    };

    for ok in [keys(32), sized(4096)] {
        let sent = send(
            &mut ci,
            pb::SendRequest {
                data: Some(ok.clone()),
                ..send_to(&["alice"], "fits")
            },
        )
        .await;
        assert_eq!(sent[0].data, Some(ok));
    }
    let stored = stored_data(&app.database_url).await.len();

    for (bad, why) in [
        (keys(33), "33 top-level keys"),
        (sized(4097), "4097 bytes"),
        (
            object(vec![("k", string(&"é".repeat(2045)))]),
            "4098 bytes of two-byte characters",
        ),
        (nested_number(f64::NAN), "NaN"),
        (nested_number(f64::INFINITY), "infinity"),
        (nested_number(f64::NEG_INFINITY), "-infinity"),
        (
            object(vec![("k", Value { kind: None })]),
            "a value of no kind",
        ),
    ] {
        let status = ci
            .send(pb::SendRequest {
                data: Some(bad),
                ..send_to(&["alice"], "refused")
            })
            .await
            .expect_err(why);
        assert_invalid(&status, "data");
    }
    assert_eq!(
        stored_data(&app.database_url).await.len(),
        stored,
        "nothing refused was stored"
    );
}

/// Strings JSON must escape (a NUL, which PostgreSQL TEXT cannot hold raw, quotes,
/// backslashes, control characters, non-BMP characters) and extreme numbers come back as sent.
async fn hostile_strings_and_extreme_numbers_round_trip(backend: Backend) {
    let app = spawn_app(backend).await;
    let hostile = "nul\u{0} quote\" back\\ tab\t bell\u{7} emoji \u{1F600} rtl \u{202E} end";
    let payload = object(vec![
        (hostile, string(hostile)),
        ("", string("")),
        ("max", value(Kind::NumberValue(f64::MAX))),
        ("tiny", value(Kind::NumberValue(f64::MIN_POSITIVE))),
        ("negative zero", value(Kind::NumberValue(-0.0))),
        ("big int", value(Kind::NumberValue(9_007_199_254_740_993.0))),
    ]);
    let sent = send(
        &mut app.user("ci"),
        pb::SendRequest {
            data: Some(payload.clone()),
            ..send_to(&["alice"], "hostile")
        },
    )
    .await;
    assert_eq!(sent[0].data, Some(payload.clone()));
    let listed = list_all(&mut app.user("alice")).await;
    assert_eq!(listed.notifications[0].data, Some(payload));
}

switchboard::both_backends!(
    hostile_strings_and_extreme_numbers_round_trip,
    data_is_stored_on_every_row_as_compact_json_and_listed,
    a_send_without_data_has_none_and_an_empty_struct_is_none,
    data_reaches_live_streams_replays_and_idempotent_repeats,
    data_limits_are_violations_on_data_and_store_nothing,
);
