//! A client built on the contract before issue 19 (`fixtures/notification_service_before_issue_19.proto`)
//! keeps working: grpcurl with that file (not reflection) sends, lists, marks read and
//! subscribes through the gateway, and every answer reads as it did before.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use e2e::*;
use serde_json::Value;

const OLD_PROTO: &str = "notification_service_before_issue_19.proto";
const SERVICE: &str = "switchboard.notification.v1.NotificationService";

/// grpcurl with the old contract, printing zero values too, so "0" and "false" are checked.
fn old_client(addr: &str, token: &str, method: &str, body: &str) -> Value {
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let output = Command::new("grpcurl")
        .args(["-plaintext", "-emit-defaults", "-import-path", fixtures])
        .args(["-proto", OLD_PROTO, "-H"])
        .arg(format!("authorization: Bearer {token}"))
        .args(["-d", body, addr])
        .arg(format!("{SERVICE}/{method}"))
        .output()
        .expect("grpcurl must be installed");
    assert!(
        output.status.success(),
        "{method} {body} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_the_contract_before_issue_19_sends_lists_and_marks_read_as_before() {
    let app = start(Backend::Sqlite).await;
    let addr = app.gateway.to_string();
    let ops = app.token("ops", "notifications:send notifications:broadcast");
    let alice = app.token("alice", "");

    let sent = old_client(
        &addr,
        &ops,
        "Send",
        r#"{"recipient_ids": ["id-alice"], "category": "build", "content": "old client"}"#,
    );
    let id = sent["notifications"][0]["id"]
        .as_str()
        .expect("an id")
        .to_owned();
    old_client(
        &addr,
        &ops,
        "Send",
        r#"{"broadcast": true, "category": "news", "content": "to everyone"}"#,
    );

    let listed = old_client(&addr, &alice, "List", "{}");
    assert_eq!(listed["totalUnread"], "2", "{listed}");
    assert_eq!(
        listed["unreadByCategory"],
        serde_json::json!({"build": "1", "news": "1"}),
        "{listed}"
    );
    let contents: Vec<&str> = listed["notifications"]
        .as_array()
        .expect("notifications")
        .iter()
        .map(|n| n["content"].as_str().expect("content"))
        .collect();
    assert_eq!(contents, ["to everyone", "old client"], "{listed}");
    assert_eq!(listed["notifications"][1]["read"], false, "{listed}");

    let marked = old_client(
        &addr,
        &alice,
        "MarkRead",
        &format!(r#"{{"ids": ["{id}"]}}"#),
    );
    assert_eq!(marked["marked"], "1", "{marked}");
    assert_eq!(marked["totalUnread"], "1", "{marked}");
    let again = old_client(
        &addr,
        &alice,
        "MarkRead",
        &format!(r#"{{"ids": ["{id}"]}}"#),
    );
    assert_eq!(again["marked"], "0", "a repeat changes nothing: {again}");

    let unread = old_client(&addr, &alice, "List", r#"{"state": "READ_STATE_UNREAD"}"#);
    assert_eq!(
        unread["notifications"].as_array().map(Vec::len),
        Some(1),
        "{unread}"
    );
    assert_eq!(
        unread["notifications"][0]["content"], "to everyone",
        "{unread}"
    );
    let all = old_client(&addr, &alice, "MarkRead", r#"{"all": true}"#);
    assert_eq!(
        (&all["marked"], &all["totalUnread"]),
        (&"1".into(), &"0".into()),
        "{all}"
    );
    let listed = old_client(&addr, &alice, "List", "{}");
    assert_eq!(listed["totalUnread"], "0", "{listed}");
    for n in listed["notifications"].as_array().expect("notifications") {
        assert_eq!(n["read"], true, "{n}");
        assert!(n["readAt"].is_string(), "{n}");
    }
    app.stop().await;
}

/// The stream's new events (`counts`, `state`) reach an old client as messages whose event
/// it does not know: it sees an empty response and goes on; its notifications and read
/// events arrive as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_old_subscriber_gets_its_notifications_and_read_events_and_skips_what_it_cannot_read() {
    let app = start(Backend::Sqlite).await;
    let addr = app.gateway.to_string();
    let ops = app.token("ops", "notifications:send");
    let alice = app.token("alice", "");
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let stream = Command::new("grpcurl")
        .args(["-plaintext", "-import-path", fixtures, "-proto", OLD_PROTO])
        .args(["-max-time", "4", "-H"])
        .arg(format!("authorization: Bearer {alice}"))
        .args(["-d", "{}", &addr])
        .arg(format!("{SERVICE}/Subscribe"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("grpcurl must be installed");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let sent = old_client(
        &addr,
        &ops,
        "Send",
        r#"{"recipient_ids": ["id-alice"], "category": "build", "content": "live"}"#,
    );
    let id = sent["notifications"][0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    old_client(
        &addr,
        &alice,
        "MarkRead",
        &format!(r#"{{"ids": ["{id}"]}}"#),
    );
    let output = tokio::task::spawn_blocking(move || stream.wait_with_output())
        .await
        .expect("join")
        .expect("grpcurl ran");
    // grpcurl prints one JSON object per message and ends with DeadlineExceeded at -max-time.
    let stdout = String::from_utf8_lossy(&output.stdout);
    let messages: Vec<Value> = serde_json::Deserializer::from_str(&stdout)
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("messages: {e}: {stdout}"));
    let notification = messages
        .iter()
        .position(|m| m["notification"]["id"] == id.as_str())
        .unwrap_or_else(|| panic!("the notification arrived: {stdout}"));
    let read = messages
        .iter()
        .position(|m| m["read"]["ids"][0] == id.as_str())
        .unwrap_or_else(|| panic!("the read event arrived: {stdout}"));
    assert!(notification < read, "{stdout}");
    assert!(
        messages
            .iter()
            .any(|m| m.as_object().is_some_and(|o| o.is_empty())),
        "the counts came as messages the old contract cannot read (empty): {stdout}"
    );
    for m in &messages {
        let known = ["notification", "read", "heartbeat"];
        assert!(
            m.as_object()
                .is_some_and(|o| o.keys().all(|k| known.contains(&k.as_str()))),
            "only what the old contract knows: {m}"
        );
    }
    app.stop().await;
}
