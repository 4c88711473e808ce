//! One `DATABASE_URL` exported for both services points them at one database: the second to
//! start must say whose the database is instead of sqlx's "missing migrations", in both
//! directions and on both backends.

use std::time::Duration;

use switchboard::testing::TestDatabase;
use tokio::{net::TcpListener, sync::oneshot};

use crate::helpers::*;

fn notification_config(url: &str) -> notification_svc::Config {
    notification_svc::Config {
        shutdown_grace: Duration::from_secs(2),
        ..notification_svc::Config::new(url, INTERNAL_TOKEN)
    }
}

fn conversation_config(url: &str) -> conversation_svc::Config {
    conversation_svc::Config {
        notification_addr: "http://127.0.0.1:1".to_owned(),
        shutdown_grace: Duration::from_secs(2),
        ..conversation_svc::Config::new(url, INTERNAL_TOKEN)
    }
}

/// Runs one service's `serve` on `url` until it is up (it migrated the database), then stops
/// it; or returns its start-up error.
async fn start_and_stop(service: &str, url: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = oneshot::channel::<()>();
    let signal = async {
        let _ = stopped.await;
    };
    let mut server = match service {
        "notification-svc" => tokio::spawn(notification_svc::serve(
            notification_config(url),
            listener,
            signal,
        )),
        _ => tokio::spawn(conversation_svc::serve(
            conversation_config(url),
            listener,
            signal,
        )),
    };
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    for _ in 0..200 {
        if server.is_finished() {
            return (&mut server).await.expect("server task");
        }
        let up = health
            .check(tonic_health::pb::HealthCheckRequest::default())
            .await
            .is_ok();
        if up {
            let _ = stop.send(());
            return server.await.expect("server task");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{service} neither served nor failed");
}

async fn assert_refused_as_the_others(first: &str, second: &str, backend: Backend) {
    let (_database, url) = TestDatabase::create(backend, "shared.db").await;
    start_and_stop(first, &url)
        .await
        .unwrap_or_else(|err| panic!("{first} on a fresh database: {err:#}"));
    let err = start_and_stop(second, &url)
        .await
        .expect_err("the second service must refuse the first one's database");
    let message = format!("{err:#}");
    assert!(
        message.contains(&format!(
            "this database belongs to {first} (it has its tables"
        )) && message.contains(&format!("give {second} its own database")),
        "{message}"
    );
    // The first service still starts on its own database: nothing was changed.
    start_and_stop(first, &url)
        .await
        .unwrap_or_else(|err| panic!("{first} again: {err:#}"));
}

async fn conversation_svc_refuses_notification_svcs_database(backend: Backend) {
    assert_refused_as_the_others("notification-svc", "conversation-svc", backend).await;
}

async fn notification_svc_refuses_conversation_svcs_database(backend: Backend) {
    assert_refused_as_the_others("conversation-svc", "notification-svc", backend).await;
}

switchboard::both_backends!(
    conversation_svc_refuses_notification_svcs_database,
    notification_svc_refuses_conversation_svcs_database,
);
