//! Server streaming through the gateway.

use std::time::Duration;

use e2e::*;
use switchboard::proto::notification::v1::{self as npb, subscribe_response::Event};
use switchboard::{
    proto::notification::v1::notification_service_client::NotificationServiceClient,
    testing::TestDatabase,
};
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_stays_open_across_heartbeats_and_cancelling_frees_the_upstream() {
    let app = start_with(Backend::Sqlite, |c| {
        c.heartbeat_interval = Duration::from_millis(200);
    })
    .await;
    let token = app.token("dana", "");
    let mut stream = app
        .notifications(&token)
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    app.wait_for_subscribers(1).await;

    let mut heartbeats = 0;
    while heartbeats < 3 {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .expect("heartbeat in time")
            .expect("stream ok")
            .expect("stream open");
        if let Some(Event::Heartbeat(_)) = message.event {
            heartbeats += 1;
        }
    }
    // Still delivering after the heartbeats (longer than the unary timeout would allow too).
    let sender = app.token("ci", "notifications:send");
    app.notifications(&sender)
        .send(npb::SendRequest {
            recipient_ids: vec!["id-dana".into()],
            category: "build".into(),
            content: "done".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    loop {
        let message = tokio::time::timeout(Duration::from_secs(10), stream.message())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        if let Some(Event::Notification(n)) = message.event {
            assert_eq!(n.content, "done");
            break;
        }
    }

    drop(stream);
    app.wait_for_subscribers(0).await;
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_unary_cap_does_not_cut_subscribe_and_client_deadlines_pass_on() {
    let app = start_with(Backend::Sqlite, |c| {
        c.heartbeat_interval = Duration::from_millis(100);
        c.unary_timeout = Duration::from_millis(300);
    })
    .await;
    let token = app.token("erin", "");
    let mut stream = app
        .notifications(&token)
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    // Well past the 300 ms unary cap, the stream still delivers heartbeats.
    let open_since = std::time::Instant::now();
    while open_since.elapsed() < Duration::from_millis(1500) {
        let message = tokio::time::timeout(Duration::from_secs(5), stream.message())
            .await
            .expect("heartbeat in time");
        assert!(matches!(message, Ok(Some(_))), "stream cut: {message:?}");
    }

    // A client deadline shorter than anything the server can answer in is enforced.
    let mut request = tonic::Request::new(npb::ListRequest::default());
    request.set_timeout(Duration::from_nanos(1));
    let status = app.notifications(&token).list(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::DeadlineExceeded | Code::Cancelled),
        "{status:?}"
    );
    // Unary calls within the cap succeed.
    app.notifications(&token)
        .list(npb::ListRequest::default())
        .await
        .expect("list within the cap");
    drop(stream);
    app.stop().await;
}

async fn notification_health(addr: std::net::SocketAddr) -> ServingStatus {
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel(addr));
    health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "switchboard.notification.v1.NotificationService".into(),
        })
        .await
        .expect("gateway health")
        .into_inner()
        .status()
}

async fn eventually_health(addr: std::net::SocketAddr, expected: ServingStatus) {
    for _ in 0..100 {
        if notification_health(addr).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("gateway health never became {expected:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_down_upstream_fails_fast_and_calls_succeed_once_it_is_back() {
    let app = start(Backend::Sqlite).await;
    // A port with nothing listening, where notification-svc will start later.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let later = free.local_addr().unwrap();
    drop(free);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let config = gateway::Config {
        listen: addr,
        notification_addr: format!("http://{later}"),
        conversation_addr: format!("http://{}", app.conversation),
        jwt_secret: Some(app.secrets.jwt_secret.clone()),
        health_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(1),
        ..gateway::Config::new(&app.secrets.internal_token)
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(gateway::serve(config, listener, async {
        let _ = stopped.await;
    }));
    let mut client =
        NotificationServiceClient::with_interceptor(channel(addr), bearer(&app.token("frank", "")));

    let started = std::time::Instant::now();
    let status = client.list(npb::ListRequest::default()).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "failed fast: {:?}",
        started.elapsed()
    );
    eventually_health(addr, ServingStatus::NotServing).await;

    // notification-svc comes up where the gateway expects it: no gateway restart needed.
    let (_database, url) = TestDatabase::create(Backend::Sqlite, "late.db").await;
    let (stop_late, late_stopped) = tokio::sync::oneshot::channel::<()>();
    let late = tokio::spawn(notification_svc::serve(
        notification_svc::Config {
            listen: later,
            shutdown_grace: Duration::from_secs(1),
            ..notification_svc::Config::new(&url, &app.secrets.internal_token)
        },
        tokio::net::TcpListener::bind(later).await.unwrap(),
        async {
            let _ = late_stopped.await;
        },
    ));
    eventually_health(addr, ServingStatus::Serving).await;
    let mut recovered = false;
    for _ in 0..50 {
        if client.list(npb::ListRequest::default()).await.is_ok() {
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(recovered, "calls succeed again once the upstream is back");

    let _ = stop_late.send(());
    late.await.unwrap().unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_refuses_to_start_without_a_key_source() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    // No --jwt-secret and no --jwks-file: the defaults have neither.
    let config = gateway::Config {
        listen: listener.local_addr().unwrap(),
        notification_addr: "http://127.0.0.1:1".into(),
        conversation_addr: "http://127.0.0.1:1".into(),
        shutdown_grace: Duration::from_secs(1),
        ..gateway::Config::new("t")
    };
    let err = gateway::serve(config, listener, std::future::pending())
        .await
        .expect_err("no key source");
    assert!(err.to_string().contains("no JWT key configured"), "{err}");
}
