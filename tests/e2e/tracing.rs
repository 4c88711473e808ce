//! One SendMessage followed across every binary: the real gateway, conversation-svc and
//! notification-svc export their spans over OTLP to a collector inside the test, and the
//! spans of that call (the outbox's delivery included) share the caller's trace and form one
//! tree.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use e2e::{processes::*, *};
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        ExportTraceServiceRequest, ExportTraceServiceResponse,
        trace_service_server::{TraceService, TraceServiceServer},
    },
    common::v1::any_value::Value,
    trace::v1::Span,
};
use switchboard::{
    proto::{
        conversation::v1::{self as cpb, conversation_service_client::ConversationServiceClient},
        notification::v1::{self as npb, notification_service_client::NotificationServiceClient},
    },
    testing::TestDatabase,
};
use tonic::{Request, Response, Status, transport::server::TcpIncoming};

const INTERNAL_TOKEN: &str = "tracing-internal-token";
const JWT_SECRET: &str = "tracing-jwt-secret";

/// Every span exported to it, with the `service.name` of the binary that sent it.
#[derive(Clone, Default)]
struct Collector {
    spans: Arc<Mutex<Vec<(String, Span)>>>,
}

#[tonic::async_trait]
impl TraceService for Collector {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let mut spans = self.spans.lock().expect("spans");
        for resource_spans in request.into_inner().resource_spans {
            let service = resource_spans
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                .and_then(|value| match value {
                    Value::StringValue(name) => Some(name.clone()),
                    _ => None,
                })
                .unwrap_or_default();
            for scope in resource_spans.scope_spans {
                for span in scope.spans {
                    spans.push((service.clone(), span));
                }
            }
        }
        Ok(Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Collector {
    /// Serves OTLP/gRPC on a free port; its `http://` endpoint.
    async fn start(&self) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("collector port");
        let endpoint = format!("http://{}", listener.local_addr().expect("address"));
        let service = TraceServiceServer::new(self.clone());
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(service)
                .serve_with_incoming(TcpIncoming::from(listener)),
        );
        endpoint
    }

    fn of_trace(&self, trace_id: &[u8]) -> Vec<(String, Span)> {
        let spans = self.spans.lock().expect("spans");
        spans
            .iter()
            .filter(|(_, span)| span.trace_id == trace_id)
            .cloned()
            .collect()
    }
}

fn binary_with_otlp(name: &str, addr: &str, args: &[&str], otlp: &str) -> Process {
    let args = [&["--listen", addr], args].concat();
    Process::start(
        name,
        addr,
        &args,
        &[
            ("SWITCHBOARD_INTERNAL_TOKEN", INTERNAL_TOKEN),
            ("SWITCHBOARD_JWT_SECRET", JWT_SECRET),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", otlp),
            // Export within a tenth of a second rather than the default five.
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    )
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn one_send_message_is_one_trace_across_the_binaries(backend: Backend) {
    let collector = Collector::default();
    let otlp = collector.start().await;
    let (_notifications_db, notifications_url) =
        TestDatabase::create(backend, "notifications.db").await;
    let (_conversations_db, conversations_url) =
        TestDatabase::create(backend, "conversations.db").await;
    let (n_addr, c_addr, g_addr) = (free_addr(), free_addr(), free_addr());
    let _notification = binary_with_otlp(
        "notification-svc",
        &n_addr,
        &["--database-url", &notifications_url],
        &otlp,
    );
    let _conversation = binary_with_otlp(
        "conversation-svc",
        &c_addr,
        &[
            "--database-url",
            &conversations_url,
            "--notification-addr",
            &n_addr,
        ],
        &otlp,
    );
    let _gateway = binary_with_otlp(
        "gateway",
        &g_addr,
        &[
            "--notification-addr",
            &n_addr,
            "--conversation-addr",
            &c_addr,
        ],
        &otlp,
    );
    let channel = channel(g_addr.parse().expect("addr"));
    let client = |user: &str| bearer(&sign_hs256(JWT_SECRET, &claims(user, "notifications:send")));
    let mut bob_inbox = NotificationServiceClient::with_interceptor(channel.clone(), client("bob"));
    let mut bob = ConversationServiceClient::with_interceptor(channel.clone(), client("bob"));
    let mut alice = ConversationServiceClient::with_interceptor(channel.clone(), client("alice"));
    for _ in 0..200 {
        if bob.list(cpb::ListRequest::default()).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let conversation = alice
        .create(cpb::CreateRequest {
            username: "bob".into(),
        })
        .await
        .expect("create")
        .into_inner()
        .conversation
        .expect("conversation");

    // The caller's own trace, as a browser or a service with OpenTelemetry sends it.
    let trace_id = *uuid::Uuid::new_v4().as_bytes();
    let caller_span = [0x0a, 0x0b, 0x0c, 0x0d, 0x01, 0x02, 0x03, 0x04];
    let mut request = Request::new(cpb::SendMessageRequest {
        conversation_id: conversation.id.clone(),
        content: "traced".into(),
        ..Default::default()
    });
    let traceparent = format!("00-{}-{}-01", hex(&trace_id), hex(&caller_span));
    request
        .metadata_mut()
        .insert("traceparent", traceparent.parse().expect("ascii"));
    request
        .metadata_mut()
        .insert("tracestate", "e2e=1".parse().expect("ascii"));
    alice.send_message(request).await.expect("send message");

    // Four spans: the gateway's call, conversation-svc's, its outbox delivery, and
    // notification-svc's Send.
    let mut spans = Vec::new();
    for _ in 0..300 {
        spans = collector.of_trace(&trace_id);
        if spans.len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let find = |service: &str, name: &str| -> Span {
        spans
            .iter()
            .find(|(s, span)| s == service && span.name == name)
            .map(|(_, span)| span.clone())
            .unwrap_or_else(|| {
                let seen: Vec<_> = spans.iter().map(|(s, span)| (s, &span.name)).collect();
                panic!("no {name} span from {service}; the trace has {seen:?}")
            })
    };
    let at_gateway = find(
        "gateway",
        "switchboard.conversation.v1.ConversationService/SendMessage",
    );
    let at_conversations = find(
        "conversation-svc",
        "switchboard.conversation.v1.ConversationService/SendMessage",
    );
    let delivery = find("conversation-svc", "outbox deliver");
    let at_notifications = find(
        "notification-svc",
        "switchboard.notification.v1.NotificationService/Send",
    );
    assert_eq!(
        at_gateway.parent_span_id, caller_span,
        "the gateway continues the caller"
    );
    assert_eq!(at_conversations.parent_span_id, at_gateway.span_id);
    assert_eq!(delivery.parent_span_id, at_conversations.span_id);
    assert_eq!(at_notifications.parent_span_id, delivery.span_id);
    assert_eq!(at_gateway.trace_state, "e2e=1", "tracestate passes on");
    // One tree: every span of the trace hangs from another of it, or from the caller.
    let ids: HashMap<&[u8], &str> = spans
        .iter()
        .map(|(_, span)| (span.span_id.as_slice(), span.name.as_str()))
        .collect();
    for (service, span) in &spans {
        assert!(
            span.parent_span_id == caller_span || ids.contains_key(span.parent_span_id.as_slice()),
            "{service}'s {} hangs from no span of the trace",
            span.name
        );
    }

    let inbox = bob_inbox
        .list(npb::ListRequest::default())
        .await
        .expect("bob's inbox")
        .into_inner();
    assert!(
        inbox
            .notifications
            .iter()
            .any(|n| n.content.ends_with("traced"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_send_message_is_one_trace_on_sqlite() {
    one_send_message_is_one_trace_across_the_binaries(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_send_message_is_one_trace_on_postgres() {
    one_send_message_is_one_trace_across_the_binaries(Backend::Postgres).await;
}
