//! The gateway's own series: its upstream calls (go-grpc-middleware's client names), refused
//! tokens by reason, rate-limited calls and whether each upstream is up. The per-call server
//! series come from `switchboard::observe`.

use std::collections::HashMap;

use switchboard::metrics::{
    Counter, Gauge, Registry,
    grpc::{GrpcMetrics, Side},
};

use crate::auth::AuthError;

/// Every `reason` an auth failure is counted under (all rendered from the start, at 0).
pub const AUTH_FAILURE_REASONS: [&str; 10] = [
    "missing",
    "malformed",
    "bad_signature",
    "expired",
    "not_yet_valid",
    "wrong_issuer",
    "wrong_audience",
    "unknown_key",
    "algorithm",
    "other",
];

pub struct GatewayMetrics {
    pub upstream_calls: GrpcMetrics,
    auth_failures: HashMap<&'static str, Counter>,
    rate_limited: Counter,
    registry: Registry,
}

impl GatewayMetrics {
    /// For a gateway in front of `upstreams` (full service names).
    pub fn new(registry: &Registry, upstreams: &[&str]) -> Self {
        let auth_failures = AUTH_FAILURE_REASONS
            .into_iter()
            .map(|reason| {
                let counter = registry.counter(
                    "switchboard_gateway_auth_failures_total",
                    "Calls refused UNAUTHENTICATED, by why the token was refused.",
                    vec![("reason", reason.into())],
                );
                (reason, counter)
            })
            .collect();
        GatewayMetrics {
            upstream_calls: GrpcMetrics::new(registry, Side::Client, upstreams),
            auth_failures,
            rate_limited: registry.counter(
                "switchboard_gateway_rate_limited_total",
                "Calls refused RESOURCE_EXHAUSTED by the per-user rate limits.",
                Vec::new(),
            ),
            registry: registry.clone(),
        }
    }

    pub fn auth_failed(&self, err: &AuthError) {
        if let Some(counter) = self.auth_failures.get(err.reason()) {
            counter.increment(1);
        }
    }

    pub fn rate_limited(&self) {
        self.rate_limited.increment(1);
    }

    /// `switchboard_gateway_upstream_up{service}`: 1 while `service`'s health check passes.
    pub fn upstream_up(&self, service: &'static str) -> Gauge {
        self.registry.gauge(
            "switchboard_gateway_upstream_up",
            "Whether the upstream service answers its health check SERVING (1) or not (0).",
            vec![("service", service.into())],
        )
    }
}
