//! Per-method gRPC metrics under go-grpc-middleware's names and labels
//! (`grpc_server_handled_total{grpc_type,grpc_service,grpc_method,grpc_code}` and friends), so
//! the dashboards people already have for Go and Java services work unchanged.
//!
//! Methods come from the contracts' descriptors, so labels are bounded: a path that names no
//! known method is counted under `grpc_service="unknown", grpc_method="unknown"`.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
    time::Duration,
};

use metrics::{Counter, Histogram};
use prost::Message;
use tonic::Code;

use super::{Labels, Registry};

/// Whether the metrics describe calls this binary answers or calls it makes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Server,
    Client,
}

/// The label value of a method or service not in the table.
pub const UNKNOWN: &str = "unknown";

/// Go's names of the codes (`codes.Code.String()`), which the convention's `grpc_code` uses.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "Canceled",
        Code::Unknown => "Unknown",
        Code::InvalidArgument => "InvalidArgument",
        Code::DeadlineExceeded => "DeadlineExceeded",
        Code::NotFound => "NotFound",
        Code::AlreadyExists => "AlreadyExists",
        Code::PermissionDenied => "PermissionDenied",
        Code::ResourceExhausted => "ResourceExhausted",
        Code::FailedPrecondition => "FailedPrecondition",
        Code::Aborted => "Aborted",
        Code::OutOfRange => "OutOfRange",
        Code::Unimplemented => "Unimplemented",
        Code::Internal => "Internal",
        Code::Unavailable => "Unavailable",
        Code::DataLoss => "DataLoss",
        Code::Unauthenticated => "Unauthenticated",
    }
}

/// One method's series.
pub struct MethodMetrics {
    side: Side,
    registry: Registry,
    labels: [(&'static str, String); 3],
    started: Counter,
    /// Server only: a proxy's client side passes bodies through without counting messages.
    msg_sent: Option<Counter>,
    handling: Histogram,
    /// Registered on first use: most methods only ever see a few codes.
    handled: [OnceLock<Counter>; 17],
}

impl MethodMetrics {
    fn new(registry: &Registry, side: Side, service: &str, method: &str, kind: &str) -> Self {
        let labels = [
            ("grpc_type", kind.to_owned()),
            ("grpc_service", service.to_owned()),
            ("grpc_method", method.to_owned()),
        ];
        let base = || -> Labels { labels.iter().map(|(k, v)| (*k, v.clone().into())).collect() };
        let (started, msg_sent, handling) = match side {
            Side::Server => (
                registry.counter(
                    "grpc_server_started_total",
                    "Total number of RPCs started on the server.",
                    base(),
                ),
                Some(registry.counter(
                    "grpc_server_msg_sent_total",
                    "Total number of gRPC stream messages sent by the server.",
                    base(),
                )),
                registry.histogram(
                    "grpc_server_handling_seconds",
                    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                    base(),
                ),
            ),
            Side::Client => (
                registry.counter(
                    "grpc_client_started_total",
                    "Total number of RPCs started on the client.",
                    base(),
                ),
                None,
                registry.histogram(
                    "grpc_client_handling_seconds",
                    "Histogram of response latency (seconds) of the gRPC until it is finished by the application.",
                    base(),
                ),
            ),
        };
        MethodMetrics {
            side,
            registry: registry.clone(),
            labels,
            started,
            msg_sent,
            handling,
            handled: Default::default(),
        }
    }

    pub fn started(&self) {
        self.started.increment(1);
    }

    /// Messages the server sent in this call's response.
    pub fn messages(&self, count: u64) {
        if let Some(sent) = &self.msg_sent {
            sent.increment(count);
        }
    }

    pub fn handled(&self, code: Code, elapsed: Duration) {
        self.handling.record(elapsed.as_secs_f64());
        let slot = &self.handled[(code as usize).min(16)];
        slot.get_or_init(|| {
            let mut labels: Labels = self
                .labels
                .iter()
                .map(|(k, v)| (*k, v.clone().into()))
                .collect();
            labels.push(("grpc_code", code_name(code).into()));
            match self.side {
                Side::Server => self.registry.counter(
                    "grpc_server_handled_total",
                    "Total number of RPCs completed on the server, regardless of success or failure.",
                    labels,
                ),
                Side::Client => self.registry.counter(
                    "grpc_client_handled_total",
                    "Total number of RPCs completed by the client, regardless of success or failure.",
                    labels,
                ),
            }
        })
        .increment(1);
    }
}

/// The series of every method a binary serves (or calls), by request path.
pub struct GrpcMetrics {
    methods: HashMap<String, Arc<MethodMetrics>>,
    unknown: Arc<MethodMetrics>,
}

impl GrpcMetrics {
    /// Series for the methods of `services` (full names), plus health and reflection on a
    /// server (every binary serves them).
    pub fn new(registry: &Registry, side: Side, services: &[&str]) -> Self {
        let mut methods = HashMap::new();
        for (service, method, kind) in known_methods() {
            let always = side == Side::Server
                && (service.starts_with("grpc.health.") || service.starts_with("grpc.reflection."));
            let wanted = always || services.contains(&service.as_str());
            if wanted {
                let path = format!("/{service}/{method}");
                let metrics = MethodMetrics::new(registry, side, &service, &method, kind);
                methods.insert(path, Arc::new(metrics));
            }
        }
        let unknown = Arc::new(MethodMetrics::new(
            registry, side, UNKNOWN, UNKNOWN, UNKNOWN,
        ));
        GrpcMetrics { methods, unknown }
    }

    /// The series of the method at `path` (`/package.Service/Method`).
    pub fn method(&self, path: &str) -> &Arc<MethodMetrics> {
        self.methods.get(path).unwrap_or(&self.unknown)
    }
}

/// (service, method, grpc_type) of every method in the contracts, health and reflection.
fn known_methods() -> Vec<(String, String, &'static str)> {
    let sets: [&[u8]; 4] = [
        crate::proto::FILE_DESCRIPTOR_SET,
        tonic_health::pb::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1::FILE_DESCRIPTOR_SET,
        tonic_reflection::pb::v1alpha::FILE_DESCRIPTOR_SET,
    ];
    let mut methods = Vec::new();
    for set in sets {
        let Ok(set) = prost_types::FileDescriptorSet::decode(set) else {
            continue;
        };
        for file in set.file {
            let package = file.package.unwrap_or_default();
            for service in file.service {
                let name = match (&package, service.name) {
                    (package, Some(name)) if !package.is_empty() => format!("{package}.{name}"),
                    (_, Some(name)) => name,
                    (_, None) => continue,
                };
                for method in service.method {
                    let kind = match (method.client_streaming(), method.server_streaming()) {
                        (false, false) => "unary",
                        (false, true) => "server_stream",
                        (true, false) => "client_stream",
                        (true, true) => "bidi_stream",
                    };
                    if let Some(method) = method.name {
                        methods.push((name.clone(), method, kind));
                    }
                }
            }
        }
    }
    methods
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_are_labelled_by_the_contracts_and_unknown_paths_share_one_series() {
        let registry = Registry::enabled();
        let metrics = GrpcMetrics::new(
            &registry,
            Side::Server,
            &["switchboard.notification.v1.NotificationService"],
        );
        let subscribe =
            metrics.method("/switchboard.notification.v1.NotificationService/Subscribe");
        subscribe.started();
        subscribe.handled(Code::Ok, Duration::from_millis(2));
        metrics
            .method("/x.Y/Z")
            .handled(Code::Unimplemented, Duration::ZERO);
        metrics
            .method("/switchboard.conversation.v1.ConversationService/SendMessage")
            .handled(Code::Unimplemented, Duration::ZERO);
        let text = registry.render();
        assert!(text.contains("grpc_server_handled_total{grpc_type=\"server_stream\",grpc_service=\"switchboard.notification.v1.NotificationService\",grpc_method=\"Subscribe\",grpc_code=\"OK\"} 1"), "{text}");
        assert!(text.contains("grpc_server_handled_total{grpc_type=\"unknown\",grpc_service=\"unknown\",grpc_method=\"unknown\",grpc_code=\"Unimplemented\"} 2"), "{text}");
        assert!(text.contains("grpc_server_started_total{grpc_type=\"unary\",grpc_service=\"grpc.health.v1.Health\",grpc_method=\"Check\"} 0"), "{text}");
    }

    #[test]
    fn every_code_has_its_go_name() {
        assert_eq!(code_name(Code::Cancelled), "Canceled");
        assert_eq!(code_name(Code::from_i32(16)), "Unauthenticated");
    }
}
