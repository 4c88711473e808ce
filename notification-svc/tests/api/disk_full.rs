//! SQLite on a full disk: Sends fail with UNAVAILABLE and a message that says why, health
//! turns NOT_SERVING, and once space is freed writes work again without a restart, with
//! every acknowledged Send kept and the database intact. Runs on a small tmpfs of its own
//! (root only: the test says so loudly and skips elsewhere, and fails under CI=true).

use std::{collections::HashSet, time::Duration};

use switchboard::{proto::notification::v1 as pb, testing::SmallFilesystem};
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::helpers::*;

const SERVICE: &str = "switchboard.notification.v1.NotificationService";

async fn health(app: &TestApp) -> ServingStatus {
    let mut client = HealthClient::new(app.channel());
    client
        .check(HealthCheckRequest {
            service: SERVICE.into(),
        })
        .await
        .map(|r| r.into_inner().status())
        .unwrap_or(ServingStatus::Unknown)
}

/// Waits up to 10 s for health to say `expected`.
async fn eventually_health(app: &TestApp, expected: ServingStatus) {
    for _ in 0..200 {
        if health(app).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("health never became {expected:?}");
}

/// Every notification alice can list, paging through all of them.
async fn listed_ids(client: &mut Client) -> HashSet<String> {
    let mut ids = HashSet::new();
    let mut page_token = String::new();
    loop {
        let page = list(
            client,
            pb::ListRequest {
                page_size: 500,
                page_token: page_token.clone(),
                ..Default::default()
            },
        )
        .await;
        ids.extend(page.notifications.into_iter().map(|n| n.id));
        if page.next_page_token.is_empty() {
            return ids;
        }
        page_token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_sends_clearly_and_writes_recover_once_space_is_freed() {
    let Some(fs) = SmallFilesystem::mount(8) else {
        return;
    };
    let url = format!("sqlite:{}", fs.path().join("notifications.db").display());
    let mut app = spawn_on(&url).await;
    let mut service = app.user("service");
    let content = "x".repeat(2000);
    let mut acknowledged: Vec<String> = Vec::new();
    acknowledged.extend(sent_ids(&mut service, send_to(&["alice"], "before")).await);

    let filler = fs.fill();
    let mut refused = None;
    for _ in 0..20_000 {
        match service.send(send_to(&["alice"], &content)).await {
            Ok(response) => acknowledged.extend(ids(&response.into_inner().notifications)),
            Err(status) => {
                refused = Some(status);
                break;
            }
        }
    }
    let refused = refused.expect("a Send fails once the disk is full");
    eprintln!(
        "disk full: {} Sends acknowledged, then {refused:?}",
        acknowledged.len()
    );
    assert!(
        matches!(refused.code(), Code::Unavailable | Code::ResourceExhausted),
        "{refused:?}"
    );
    assert!(
        refused.message().contains("disk is full"),
        "the message says why: {refused:?}"
    );
    eventually_health(&app, ServingStatus::NotServing).await;
    let still_full = service.send(send_to(&["alice"], "still full")).await;
    assert!(still_full.is_err(), "no space yet: {still_full:?}");

    std::fs::remove_file(&filler).expect("remove filler");
    eventually_health(&app, ServingStatus::Serving).await;
    let after = service
        .send(send_to(&["alice"], "after"))
        .await
        .expect("Send works again without a restart");
    acknowledged.extend(ids(&after.into_inner().notifications));
    let marked = app
        .user("alice")
        .mark_read(pb::MarkReadRequest {
            all: true,
            ..Default::default()
        })
        .await
        .expect("MarkRead works again too");
    assert_eq!(marked.into_inner().total_unread, 0);

    let listed = listed_ids(&mut app.user("alice")).await;
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !listed.contains(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged Sends lost: {lost:?}");
    app.stop().await.expect("clean stop");

    let pool = sqlx::SqlitePool::connect(&url).await.expect("reopen");
    let integrity: String = sqlx::query_scalar("PRAGMA integrity_check")
        .fetch_one(&pool)
        .await
        .expect("integrity_check");
    assert_eq!(integrity, "ok");
    pool.close().await;
}
