//! Real external clients against the gateway: grpcurl through reflection, and buf curl.

use std::process::Command;

use e2e::*;

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} must be installed: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

fn field(json: &str, name: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(json).expect("json");
    value
        .pointer(name)
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("{name} in {json}"))
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpcurl_and_buf_curl_hold_a_conversation_through_the_gateway() {
    let app = start(Backend::Sqlite).await;
    let addr = app.gateway.to_string();
    let alice = format!("authorization: Bearer {}", app.token("alice", ""));
    let bob = format!("authorization: Bearer {}", app.token("bob", ""));

    // Reflection needs no token at the gateway.
    let services = run("grpcurl", &["-plaintext", &addr, "list"]);
    assert!(
        services.contains("switchboard.notification.v1.NotificationService"),
        "{services}"
    );
    assert!(
        services.contains("switchboard.conversation.v1.ConversationService"),
        "{services}"
    );

    run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &bob,
            "-d",
            "{}",
            &addr,
            "switchboard.conversation.v1.ConversationService/List",
        ],
    );
    let created = run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &alice,
            "-d",
            r#"{"username": "bob"}"#,
            &addr,
            "switchboard.conversation.v1.ConversationService/Create",
        ],
    );
    let id = field(&created, "/conversation/id");
    let body = format!(r#"{{"conversation_id": "{id}", "content": "Hi from grpcurl"}}"#);
    run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &alice,
            "-d",
            &body,
            &addr,
            "switchboard.conversation.v1.ConversationService/SendMessage",
        ],
    );

    // buf curl (reflection v1) reads it back as bob.
    let url = format!("http://{addr}/switchboard.conversation.v1.ConversationService/ListMessages");
    let body = format!(r#"{{"conversation_id": "{id}"}}"#);
    let messages = run(
        "buf",
        &[
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "-H",
            &bob,
            "-d",
            &body,
            &url,
        ],
    );
    assert!(messages.contains("Hi from grpcurl"), "{messages}");
    let listed = run(
        "grpcurl",
        &[
            "-plaintext",
            "-H",
            &bob,
            "-d",
            "{}",
            &addr,
            "switchboard.conversation.v1.ConversationService/List",
        ],
    );
    assert!(listed.contains("\"unreadCount\": \"1\""), "{listed}");
    app.stop().await;
}
