//! Upstream faults seen through the gateway, with the real binaries: a backend killed under a
//! live stream, a replica killed under steady traffic and brought back.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use e2e::{
    processes::*,
    scrape::{promtool_check, scrape_until},
    *,
};
use switchboard::{
    proto::{
        conversation::v1::{self as cpb, conversation_service_client::ConversationServiceClient},
        notification::v1::{self as npb, notification_service_client::NotificationServiceClient},
    },
    testing::TestDatabase,
};
use tonic::Code;

const INTERNAL_TOKEN: &str = "faults-internal-token";
const JWT_SECRET: &str = "faults-jwt-secret";

fn notification_svc(database_url: &str, addr: &str) -> Process {
    notification_svc_with(database_url, addr, &[])
}

/// With `more` flags.
fn notification_svc_with(database_url: &str, addr: &str, more: &[&str]) -> Process {
    let args = [&["--listen", addr, "--database-url", database_url], more].concat();
    Process::start(
        "notification-svc",
        addr,
        &args,
        &[("SWITCHBOARD_INTERNAL_TOKEN", INTERNAL_TOKEN)],
    )
}

fn conversation_svc(database_url: &str, addr: &str, notification_addrs: &str) -> Process {
    conversation_svc_with(database_url, addr, notification_addrs, &[])
}

fn conversation_svc_with(
    database_url: &str,
    addr: &str,
    notification_addrs: &str,
    more: &[&str],
) -> Process {
    let args = [
        &[
            "--listen",
            addr,
            "--database-url",
            database_url,
            "--notification-addr",
            notification_addrs,
        ],
        more,
    ]
    .concat();
    Process::start(
        "conversation-svc",
        addr,
        &args,
        &[("SWITCHBOARD_INTERNAL_TOKEN", INTERNAL_TOKEN)],
    )
}

/// A gateway in front of `notification_addrs` and `conversation_addrs`, given as the newcomer
/// does: `host:port`, without a scheme.
fn gateway(notification_addrs: &str, conversation_addrs: &str) -> Process {
    gateway_with(notification_addrs, conversation_addrs, &[])
}

fn gateway_with(notification_addrs: &str, conversation_addrs: &str, more: &[&str]) -> Process {
    let addr = free_addr();
    let args = [
        &[
            "--listen",
            &addr,
            "--notification-addr",
            notification_addrs,
            "--conversation-addr",
            conversation_addrs,
        ],
        more,
    ]
    .concat();
    Process::start(
        "gateway",
        &addr,
        &args,
        &[
            ("SWITCHBOARD_INTERNAL_TOKEN", INTERNAL_TOKEN),
            ("SWITCHBOARD_JWT_SECRET", JWT_SECRET),
            ("SEND_RATE", "100000"),
            ("SEND_BURST", "100000"),
        ],
    )
}

fn token(user: &str) -> String {
    sign_hs256(
        JWT_SECRET,
        &claims(user, "notifications:send notifications:broadcast"),
    )
}

fn notifications(gateway: &Process, user: &str) -> Notifications {
    NotificationServiceClient::with_interceptor(
        channel(gateway.addr.parse().expect("addr")),
        bearer(&token(user)),
    )
}

fn conversations(gateway: &Process, user: &str) -> Conversations {
    ConversationServiceClient::with_interceptor(
        channel(gateway.addr.parse().expect("addr")),
        bearer(&token(user)),
    )
}

/// Once the gateway lists: bob signed in, and alice in a conversation with him. Bob's
/// inbox, alice's client and the conversation.
async fn alice_and_bob(gateway: &Process) -> (Notifications, Conversations, cpb::Conversation) {
    let mut bob_inbox = notifications(gateway, "bob");
    until_listing(&mut bob_inbox).await;
    conversations(gateway, "bob")
        .list(cpb::ListRequest::default())
        .await
        .expect("bob signs in");
    let mut alice = conversations(gateway, "alice");
    let conversation = alice
        .create(cpb::CreateRequest {
            username: "bob".into(),
        })
        .await
        .expect("create")
        .into_inner()
        .conversation
        .expect("conversation");
    (bob_inbox, alice, conversation)
}

/// Until a List through the gateway succeeds (the upstreams are up and seen as serving).
async fn until_listing(client: &mut Notifications) {
    for _ in 0..200 {
        if client.list(npb::ListRequest::default()).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the gateway never listed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_backend_ends_a_stream_through_the_gateway_with_unavailable() {
    let (_database, url) = TestDatabase::create(Backend::Sqlite, "notifications.db").await;
    let backend_addr = free_addr();
    let mut backend = notification_svc(&url, &backend_addr);
    let gateway = gateway(&backend_addr, &free_addr());
    let mut alice = notifications(&gateway, "alice");
    until_listing(&mut alice).await;

    let mut stream = alice
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    notifications(&gateway, "ci")
        .send(to("alice", "live"))
        .await
        .expect("send");
    // The stream's counts come first (once it is live), then the notification.
    let first = loop {
        let event = stream.message().await.expect("event").expect("open");
        if !matches!(event.event, Some(npb::subscribe_response::Event::Counts(_))) {
            break event;
        }
    };
    assert!(
        matches!(
            first.event,
            Some(npb::subscribe_response::Event::Notification(_))
        ),
        "{first:?}"
    );

    backend.kill();
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match stream.message().await {
                Ok(Some(_heartbeat)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the stream ends when its backend dies");
    let status = ended.expect_err("ends with a status");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("upstream"), "{status:?}");

    let status = alice
        .list(npb::ListRequest::default())
        .await
        .expect_err("no backend");
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    // grpcurl sees the same, and exits by itself.
    let mut backend = notification_svc(&url, &backend_addr);
    until_listing(&mut alice).await;
    let grpcurl = std::process::Command::new("grpcurl")
        .args(["-plaintext", "-max-time", "30", "-H"])
        .arg(format!("authorization: Bearer {}", token("alice")))
        .args(["-d", "{}", &gateway.addr])
        .arg("switchboard.notification.v1.NotificationService/Subscribe")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("grpcurl must be installed");
    // Until grpcurl's stream is open on the backend.
    tokio::time::sleep(Duration::from_secs(2)).await;
    backend.kill();
    let output = tokio::task::spawn_blocking(move || grpcurl.wait_with_output())
        .await
        .expect("join")
        .expect("grpcurl");
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(printed.contains("Code: Unavailable"), "{printed}");
}

/// What a call ended with, and when.
type Outcomes = Arc<Mutex<Vec<(Instant, Result<(), Code>)>>>;

fn failures_between(outcomes: &Outcomes, from: Instant, to: Instant) -> (usize, usize) {
    let outcomes = outcomes.lock().expect("outcomes");
    let window: Vec<_> = outcomes
        .iter()
        .filter(|(at, _)| *at >= from && *at < to)
        .collect();
    let failed = window.iter().filter(|(_, r)| r.is_err()).count();
    (failed, window.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_replica_leaves_the_balance_and_rejoins_when_it_serves_again() {
    let (_database, url) = TestDatabase::create(Backend::Postgres, "notifications.db").await;
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let mut a = notification_svc(&url, &a_addr);
    let mut b = notification_svc(&url, &b_addr);
    let gateway = gateway(&format!("{a_addr},{b_addr}"), &free_addr());
    until_listing(&mut notifications(&gateway, "alice")).await;

    // Steady traffic: each worker one call at a time, Lists and Sends in turn.
    const WORKERS: usize = 4;
    let outcomes = Outcomes::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (mut client, outcomes, stop) = (
            notifications(&gateway, &format!("w{worker}")),
            outcomes.clone(),
            stop.clone(),
        );
        workers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.is_cancelled() {
                n += 1;
                let result = if n.is_multiple_of(2) {
                    client.list(npb::ListRequest::default()).await.map(drop)
                } else {
                    client.send(to("alice", &format!("n{n}"))).await.map(drop)
                };
                let result = result.map_err(|s| s.code());
                outcomes
                    .lock()
                    .expect("outcomes")
                    .push((Instant::now(), result));
            }
        }));
    }
    let settle = Duration::from_secs(1);
    tokio::time::sleep(settle).await;
    let b_killed = Instant::now();
    b.kill();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let b = notification_svc(&url, &b_addr);
    let b_started = Instant::now();
    // B serves once its process answers health; from then on nothing may fail.
    wait_serving(&b_addr).await;
    let b_serving = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Only B is left: every call after A's own in-flight ones must succeed there.
    let a_killed = Instant::now();
    a.kill();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let end = Instant::now();
    stop.cancel();
    for worker in workers {
        worker.await.expect("worker");
    }
    drop(b);

    let (at_kill, calls_at_kill) = failures_between(&outcomes, b_killed, b_killed + settle);
    let (after_kill, calls_after_kill) = failures_between(&outcomes, b_killed + settle, b_started);
    let (while_back, calls_while_back) = failures_between(&outcomes, b_started, b_serving);
    let (after_back, calls_after_back) = failures_between(&outcomes, b_serving, a_killed);
    let (at_a_kill, _) = failures_between(&outcomes, a_killed, a_killed + settle);
    let (only_b, calls_only_b) = failures_between(&outcomes, a_killed + settle, end);
    println!(
        "failed/calls: first second after B's kill {at_kill}/{calls_at_kill}, rest of the \
         outage {after_kill}/{calls_after_kill}, B starting {while_back}/{calls_while_back}, \
         B serving {after_back}/{calls_after_back}, first second after A's kill {at_a_kill}, \
         only B {only_b}/{calls_only_b}"
    );
    assert!(
        at_kill <= WORKERS,
        "only calls in flight on B may fail: {at_kill}"
    );
    assert_eq!(after_kill, 0, "B left the balance");
    assert_eq!(after_back, 0, "no call fails once B serves again");
    assert!(
        at_a_kill <= WORKERS,
        "only calls in flight on A may fail: {at_a_kill}"
    );
    assert_eq!(only_b, 0, "B rejoined the balance and takes every call");
    assert!(calls_after_kill > 0 && calls_after_back > 0 && calls_only_b > 0);
}

/// Until the process at `addr` answers its health check SERVING.
async fn wait_serving(addr: &str) {
    let mut health =
        tonic_health::pb::health_client::HealthClient::new(channel(addr.parse().expect("addr")));
    for _ in 0..600 {
        let request = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        if let Ok(response) = health.check(request).await
            && response.get_ref().status()
                == tonic_health::pb::health_check_response::ServingStatus::Serving
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{addr} never served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conversation_svc_keeps_notifying_promptly_when_a_notification_replica_dies() {
    let (_notifications_db, notifications_url) =
        TestDatabase::create(Backend::Postgres, "notifications.db").await;
    let (_conversations_db, conversations_url) =
        TestDatabase::create(Backend::Postgres, "conversations.db").await;
    let (a_addr, b_addr, c_addr) = (free_addr(), free_addr(), free_addr());
    let _a = notification_svc(&notifications_url, &a_addr);
    let mut b = notification_svc(&notifications_url, &b_addr);
    let replicas = format!("{a_addr},{b_addr}");
    let _conversation = conversation_svc(&conversations_url, &c_addr, &replicas);
    let gateway = gateway(&a_addr, &c_addr);
    let (mut bob_inbox, mut alice, conversation) = alice_and_bob(&gateway).await;

    // How long each message's notification takes to show in bob's inbox (read from A only).
    let mut delays = Vec::new();
    let mut killed = false;
    for i in 0..24 {
        if i == 4 {
            b.kill();
            killed = true;
        }
        let content = format!("message {i}");
        alice
            .send_message(cpb::SendMessageRequest {
                conversation_id: conversation.id.clone(),
                content: content.clone(),
                ..Default::default()
            })
            .await
            .expect("send message");
        let sent = Instant::now();
        loop {
            let page = bob_inbox
                .list(npb::ListRequest::default())
                .await
                .expect("list")
                .into_inner();
            if page
                .notifications
                .iter()
                .any(|n| n.content.ends_with(&content))
            {
                break;
            }
            assert!(
                sent.elapsed() < Duration::from_secs(20),
                "{content} never notified"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        delays.push((killed, sent.elapsed()));
    }
    let worst_after = delays
        .iter()
        .skip(5)
        .map(|(_, d)| *d)
        .max()
        .expect("delays");
    println!("notification delays: {delays:?}");
    // The outbox retries with backoff (a second, then more) after a failed delivery; a
    // balance that skips the dead replica never needs a retry.
    assert!(
        worst_after < Duration::from_millis(900),
        "a message after the kill waited {worst_after:?}"
    );
}

async fn the_outbox_and_upstream_health_show_a_stopped_notification_svc(backend: Backend) {
    const NOTIFICATIONS: &str = "switchboard.notification.v1.NotificationService";
    const CONVERSATIONS: &str = "switchboard.conversation.v1.ConversationService";
    let (_notifications_db, notifications_url) =
        TestDatabase::create(backend, "notifications.db").await;
    let (_conversations_db, conversations_url) =
        TestDatabase::create(backend, "conversations.db").await;
    let (n_addr, c_addr) = (free_addr(), free_addr());
    let (n_metrics, c_metrics, g_metrics) = (free_addr(), free_addr(), free_addr());
    let (c_scrape, g_scrape) = (
        c_metrics.parse().expect("address"),
        g_metrics.parse().expect("address"),
    );
    let mut notification = notification_svc_with(
        &notifications_url,
        &n_addr,
        &["--metrics-listen", &n_metrics],
    );
    let _conversation = conversation_svc_with(
        &conversations_url,
        &c_addr,
        &n_addr,
        &["--metrics-listen", &c_metrics],
    );
    let gateway = gateway_with(
        &n_addr,
        &c_addr,
        &["--metrics-listen", &g_metrics, "--health-interval", "200ms"],
    );
    let (_bob_inbox, mut alice, conversation) = alice_and_bob(&gateway).await;
    let mut say = async |content: &str| {
        alice
            .send_message(cpb::SendMessageRequest {
                conversation_id: conversation.id.clone(),
                content: content.into(),
                ..Default::default()
            })
            .await
            .expect("send message");
    };
    let up = |service| [("service", service)];

    say("first").await;
    scrape_until(c_scrape, |s| {
        s.value("switchboard_outbox_delivered_total", &[]) == Some(1.0)
            && s.value("switchboard_outbox_pending", &[]) == Some(0.0)
    })
    .await;

    notification.kill();
    say("while notification-svc is down").await;
    let down = scrape_until(c_scrape, |s| {
        s.count("switchboard_outbox_pending", &[]) >= 1.0
            && s.count("switchboard_outbox_failures_total", &[]) >= 1.0
    })
    .await;
    assert!(
        down.count("switchboard_outbox_oldest_age_seconds", &[]) > 0.0,
        "{}",
        down.body
    );
    let gateway_down = scrape_until(g_scrape, |s| {
        s.value("switchboard_gateway_upstream_up", &up(NOTIFICATIONS)) == Some(0.0)
    })
    .await;
    assert_eq!(
        gateway_down.value("switchboard_gateway_upstream_up", &up(CONVERSATIONS)),
        Some(1.0)
    );
    if let Some(verdict) = promtool_check(&down.body) {
        verdict.expect("promtool accepts conversation-svc's metrics");
    }

    let _notification = notification_svc_with(
        &notifications_url,
        &n_addr,
        &["--metrics-listen", &n_metrics],
    );
    scrape_until(c_scrape, |s| {
        s.value("switchboard_outbox_delivered_total", &[]) == Some(2.0)
            && s.value("switchboard_outbox_pending", &[]) == Some(0.0)
            && s.value("switchboard_outbox_oldest_age_seconds", &[]) == Some(0.0)
    })
    .await;
    scrape_until(g_scrape, |s| {
        s.value("switchboard_gateway_upstream_up", &up(NOTIFICATIONS)) == Some(1.0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_notification_svc_shows_in_the_outbox_and_upstream_metrics_on_sqlite() {
    the_outbox_and_upstream_health_show_a_stopped_notification_svc(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_notification_svc_shows_in_the_outbox_and_upstream_metrics_on_postgres() {
    the_outbox_and_upstream_health_show_a_stopped_notification_svc(Backend::Postgres).await;
}
