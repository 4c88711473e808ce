//! Each binary's `/metrics` after real traffic through the gateway: the format Prometheus
//! parses (checked by promtool), and series that move as the calls did.

use devstack::MetricsAddrs;
use e2e::{
    scrape::{Scrape, families, promtool_check, promtool_check_rules, scrape, scrape_until},
    *,
};
use serde_json::json;
use switchboard::proto::notification::v1::{self as npb, SendRequest};
use tonic::Code;

const NOTIFICATIONS: &str = "switchboard.notification.v1.NotificationService";
const CONVERSATIONS: &str = "switchboard.conversation.v1.ConversationService";

async fn with_metrics(backend: Backend) -> E2e {
    start_with(backend, |config| {
        config.metrics = Some(MetricsAddrs::any_free());
    })
    .await
}

fn addrs(e2e: &E2e) -> MetricsAddrs {
    e2e.metrics.expect("the stack keeps metrics")
}

fn method<'a>(kind: &'a str, service: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("grpc_type", kind),
        ("grpc_service", service),
        ("grpc_method", name),
    ]
}

fn with_code<'a>(mut labels: Vec<(&'a str, &'a str)>, code: &'a str) -> Vec<(&'a str, &'a str)> {
    labels.push(("grpc_code", code));
    labels
}

/// What every scrape must be: Prometheus text 0.0.4 that promtool accepts, with the
/// process metrics.
fn assert_well_formed(what: &str, scrape: &Scrape) {
    assert_eq!(scrape.status, 200, "{what}");
    assert_eq!(
        scrape.content_type, "text/plain; version=0.0.4; charset=utf-8",
        "{what}"
    );
    if let Some(verdict) = promtool_check(&scrape.body) {
        verdict.unwrap_or_else(|said| panic!("promtool on {what}: {said}\n{}", scrape.body));
    }
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
    ] {
        assert!(scrape.has(name), "{what} lacks {name}:\n{}", scrape.body);
    }
    for line in scrape.body.lines().filter(|l| !l.starts_with('#')) {
        assert!(
            !line.contains("id-alice"),
            "a user id as a label in {what}: {line}"
        );
    }
}

/// The three scrapes it ends with: notification-svc's, the gateway's, conversation-svc's.
async fn a_send_an_invalid_send_and_a_stream_are_counted_everywhere(
    backend: Backend,
) -> [Scrape; 3] {
    let e2e = with_metrics(backend).await;
    let metrics = addrs(&e2e);
    let alice = e2e.token("alice", "notifications:send");
    let mut client = e2e.notifications(&alice);

    let mut stream = client
        .subscribe(npb::SubscribeRequest::default())
        .await
        .expect("subscribe")
        .into_inner();
    e2e.wait_for_subscribers(1).await;
    scrape_until(metrics.notification, |s| {
        s.value("switchboard_subscribe_streams", &[]) == Some(1.0)
    })
    .await;

    client
        .send(to("alice", "hello"))
        .await
        .expect("a valid send");
    let invalid = client
        .send(SendRequest {
            recipient_ids: vec!["id-alice".into()],
            category: "build".into(),
            content: String::new(),
            ..Default::default()
        })
        .await
        .expect_err("empty content");
    assert_eq!(invalid.code(), Code::InvalidArgument);
    // The notification reaches the stream: its delivery lag is measured.
    loop {
        let event = stream.message().await.expect("event").expect("open");
        if matches!(
            event.event,
            Some(npb::subscribe_response::Event::Notification(_))
        ) {
            break;
        }
    }
    drop(stream);
    e2e.wait_for_subscribers(0).await;

    // An expired token and none at all, refused by the gateway.
    let mut expired = claims("alice", "notifications:send");
    expired["exp"] = json!(in_seconds(-3600));
    let expired = sign_hs256(&e2e.secrets.jwt_secret, &expired);
    for token in [expired.as_str(), ""] {
        let refused = e2e
            .notifications(token)
            .list(npb::ListRequest::default())
            .await
            .expect_err("refused");
        assert_eq!(refused.code(), Code::Unauthenticated);
    }

    let send = method("unary", NOTIFICATIONS, "Send");
    let subscribe = method("server_stream", NOTIFICATIONS, "Subscribe");
    let service = scrape_until(metrics.notification, |s| {
        s.value("switchboard_subscribe_streams", &[]) == Some(0.0)
            && s.count("switchboard_delivery_lag_seconds_count", &[]) >= 1.0
    })
    .await;
    assert_well_formed("notification-svc", &service);
    assert_eq!(service.count("grpc_server_started_total", &send), 2.0);
    assert_eq!(
        service.count("grpc_server_handled_total", &with_code(send.clone(), "OK")),
        1.0
    );
    assert_eq!(
        service.count(
            "grpc_server_handled_total",
            &with_code(send.clone(), "InvalidArgument")
        ),
        1.0
    );
    assert_eq!(
        service.count("grpc_server_handling_seconds_count", &send),
        2.0
    );
    // The stream's counts and the notification, at least.
    assert!(
        service.count("grpc_server_msg_sent_total", &subscribe) >= 2.0,
        "{}",
        service.body
    );
    assert_eq!(
        service.count(
            "switchboard_notifications_stored_total",
            &[("kind", "direct")]
        ),
        1.0
    );
    assert_eq!(
        service.count(
            "switchboard_notifications_stored_total",
            &[("kind", "broadcast")]
        ),
        0.0
    );
    assert!(
        service.count(
            "switchboard_group_commit_batch_size_count",
            &[("committer", "send")]
        ) >= 1.0
    );
    assert!(
        service
            .value("switchboard_db_pool_connections", &[("state", "idle")])
            .is_some()
    );
    assert_eq!(service.count("switchboard_stream_catchups_total", &[]), 0.0);

    let gateway = scrape_until(metrics.gateway, |s| {
        s.count(
            "grpc_client_handled_total",
            &with_code(send.clone(), "InvalidArgument"),
        ) == 1.0
    })
    .await;
    assert_well_formed("gateway", &gateway);
    assert_eq!(
        gateway.count("grpc_server_handled_total", &with_code(send.clone(), "OK")),
        1.0
    );
    assert_eq!(
        gateway.count(
            "grpc_server_handled_total",
            &with_code(send.clone(), "InvalidArgument")
        ),
        1.0
    );
    assert_eq!(
        gateway.count("grpc_client_handled_total", &with_code(send.clone(), "OK")),
        1.0
    );
    assert_eq!(
        gateway.count("grpc_client_handling_seconds_count", &send),
        2.0
    );
    let list = method("unary", NOTIFICATIONS, "List");
    assert_eq!(
        gateway.count(
            "grpc_server_handled_total",
            &with_code(list, "Unauthenticated")
        ),
        2.0
    );
    for (reason, expected) in [("expired", 1.0), ("missing", 1.0), ("bad_signature", 0.0)] {
        assert_eq!(
            gateway.value(
                "switchboard_gateway_auth_failures_total",
                &[("reason", reason)]
            ),
            Some(expected),
            "{reason}"
        );
    }
    for service in [NOTIFICATIONS, CONVERSATIONS] {
        assert_eq!(
            gateway.value("switchboard_gateway_upstream_up", &[("service", service)]),
            Some(1.0),
            "{service}"
        );
    }
    assert_eq!(
        gateway.value("switchboard_gateway_rate_limited_total", &[]),
        Some(0.0)
    );

    let conversation = scrape(metrics.conversation).await;
    assert_well_formed("conversation-svc", &conversation);
    // The gateway's health checks.
    let check = method("unary", "grpc.health.v1.Health", "Check");
    assert!(conversation.count("grpc_server_started_total", &check) >= 1.0);
    assert_eq!(
        conversation.value("switchboard_outbox_pending", &[]),
        Some(0.0)
    );
    assert!(
        conversation
            .value("switchboard_db_pool_connections", &[("state", "in_use")])
            .is_some()
    );
    e2e.stop().await;
    [service, gateway, conversation]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_streams_are_counted_on_postgres() {
    a_send_an_invalid_send_and_a_stream_are_counted_everywhere(Backend::Postgres).await;
}

/// The metric names `text` uses (histogram series under their family's name).
fn names_used(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for word in text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
        if ["switchboard_", "grpc_server_", "grpc_client_", "process_"]
            .iter()
            .any(|p| word.starts_with(p))
        {
            let family = ["_bucket", "_count", "_sum"]
                .iter()
                .find_map(|s| word.strip_suffix(s))
                .unwrap_or(word);
            names.insert(family.to_owned());
        }
    }
    names
}

/// On SQLite, the traffic above, then: the alert rules and the dashboard name only metrics
/// some binary served, and the README's table names every family served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_streams_are_counted_on_sqlite_and_the_docs_use_only_served_metrics() {
    let scrapes = a_send_an_invalid_send_and_a_stream_are_counted_everywhere(Backend::Sqlite).await;
    let served: std::collections::BTreeSet<String> =
        scrapes.iter().flat_map(|s| families(&s.body)).collect();
    let docs = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let alerts = docs.join("alerts.yml");
    if let Some(verdict) = promtool_check_rules(&alerts) {
        verdict.expect("promtool accepts docs/alerts.yml");
    }
    for file in [alerts, docs.join("grafana-dashboard.json")] {
        let text = std::fs::read_to_string(&file).expect("docs file");
        let used = names_used(&text);
        assert!(!used.is_empty(), "{}", file.display());
        let unknown: Vec<_> = used.difference(&served).collect();
        assert!(
            unknown.is_empty(),
            "{} uses {unknown:?}, which no binary serves",
            file.display()
        );
    }
    let readme = std::fs::read_to_string(docs.join("../README.md")).expect("README");
    for family in served.iter().filter(|f| !f.starts_with("process_")) {
        assert!(
            readme.contains(&format!("`{family}`")),
            "the README's table lacks {family}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_method_is_counted_under_one_label_and_rate_limits_are_counted() {
    let e2e = start_with(Backend::Sqlite, |config| {
        config.metrics = Some(MetricsAddrs::any_free());
        config.send_rate = 0.001;
        config.send_burst = 1;
    })
    .await;
    let metrics = addrs(&e2e);
    let alice = e2e.token("alice", "notifications:send");
    let mut client = e2e.notifications(&alice);
    client
        .send(to("alice", "one"))
        .await
        .expect("within the burst");
    let limited = client.send(to("alice", "two")).await.expect_err("limited");
    assert_eq!(limited.code(), Code::ResourceExhausted);

    // A method no contract has, straight at notification-svc (with its internal token).
    let mut unknown = tonic::client::Grpc::new(channel(e2e.notification));
    unknown.ready().await.expect("ready");
    let mut request = tonic::Request::new(npb::ListRequest::default());
    request.metadata_mut().insert(
        "x-switchboard-internal-token",
        e2e.secrets.internal_token.parse().expect("ascii"),
    );
    let status = unknown
        .unary::<_, npb::ListResponse, _>(
            request,
            http::uri::PathAndQuery::from_static("/no.such.Service/Nothing"),
            tonic_prost::ProstCodec::default(),
        )
        .await
        .expect_err("unimplemented");
    assert_eq!(status.code(), Code::Unimplemented);

    let unknown = [
        ("grpc_type", "unknown"),
        ("grpc_service", "unknown"),
        ("grpc_method", "unknown"),
        ("grpc_code", "Unimplemented"),
    ];
    let service = scrape_until(metrics.notification, |s| {
        s.count("grpc_server_handled_total", &unknown) == 1.0
    })
    .await;
    assert!(
        !service.body.contains("no.such.Service"),
        "{}",
        service.body
    );
    let gateway = scrape(metrics.gateway).await;
    assert_eq!(
        gateway.value("switchboard_gateway_rate_limited_total", &[]),
        Some(1.0)
    );
    assert_eq!(
        gateway.count(
            "grpc_server_handled_total",
            &with_code(method("unary", NOTIFICATIONS, "Send"), "ResourceExhausted")
        ),
        1.0
    );
    e2e.stop().await;
}
