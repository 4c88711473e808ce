//! The binary on an address that is taken: the error says which address, not only
//! "Address already in use".

use std::process::Command;

use crate::helpers::INTERNAL_TOKEN;

#[test]
fn an_address_in_use_is_named_in_the_error() {
    let occupied = std::net::TcpListener::bind("127.0.0.1:0").expect("a port to occupy");
    let addr = occupied.local_addr().expect("address").to_string();
    let dir = tempfile::tempdir().expect("temporary directory");
    let database_url = format!("sqlite:{}", dir.path().join("notifications.db").display());
    let output = Command::new(env!("CARGO_BIN_EXE_notification-svc"))
        .args(["--listen", &addr, "--database-url", &database_url])
        .env("SWITCHBOARD_INTERNAL_TOKEN", INTERNAL_TOKEN)
        .env("RUST_LOG", "warn")
        .output()
        .expect("notification-svc runs");
    drop(occupied);

    assert!(!output.status.success(), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("notification-svc cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.contains("Address already in use"), "{stderr}");
}
