//! What the gateway knows of one call before an upstream answers it: its request id, what
//! its log line needs, and how to answer it with a status of the gateway's own. The auth
//! layer, the forwarding and the log line all need these, so they live here, below all three.

use std::{sync::Arc, time::Instant};

use http::{HeaderMap, HeaderValue};
use switchboard::{identity, metrics::grpc::MethodMetrics, trace::CallTrace};
use tonic::{Code, Status, body::Body};

/// What the per-call log line (and the upstream call's metrics) need.
pub struct LogContext {
    pub method: String,
    pub caller: String,
    pub request_id: String,
    pub started: Instant,
    /// `-` when the call carries no trace (it always does behind the observe layer).
    pub trace_id: String,
    /// The upstream call's series and when it started, once it was made.
    pub upstream: Option<(Arc<MethodMetrics>, Instant)>,
}

impl LogContext {
    /// Logs and answers a call that never reached a response from the upstream.
    pub fn finish(self, status: Status, request_id: &str) -> http::Response<Body> {
        self.done(status.code(), "-");
        respond(status, request_id)
    }

    /// The call ended with `code`: its log line, and the upstream call's metrics.
    pub fn done(&self, code: Code, upstream_error: &str) {
        if let Some((metrics, started)) = &self.upstream {
            metrics.handled(code, started.elapsed());
        }
        tracing::info!(
            method = %self.method,
            caller = %self.caller,
            status = ?code,
            latency_us = self.started.elapsed().as_micros() as u64,
            request_id = %self.request_id,
            trace_id = %self.trace_id,
            upstream = upstream_error,
            "call"
        );
    }
}

/// The trace id of a call, for log lines (`-` without one).
pub fn trace_id(request: &http::Request<Body>) -> String {
    request
        .extensions()
        .get::<CallTrace>()
        .map_or_else(|| "-".to_owned(), |trace| trace.trace_id().to_string())
}

/// Answers a call with `status` (a trailers-only response) and its request id.
pub fn respond(status: Status, request_id: &str) -> http::Response<Body> {
    let mut response = status.into_http::<Body>();
    if let Ok(value) = HeaderValue::from_str(request_id) {
        response.headers_mut().insert(identity::REQUEST_ID, value);
    }
    response
}

/// The client's `x-request-id` when it is a sane token, else a new UUIDv7.
pub fn request_id(headers: &HeaderMap) -> String {
    headers
        .get(identity::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 128
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(request_id: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            identity::REQUEST_ID,
            HeaderValue::from_str(request_id).expect("a header value"),
        );
        headers
    }

    #[test]
    fn a_sane_client_request_id_is_kept_and_any_other_replaced() {
        assert_eq!(request_id(&headers("req-1.a_b:c")), "req-1.a_b:c");
        for bad in ["", "has space", "semi;colon", &"x".repeat(129)] {
            let minted = request_id(&headers(bad));
            assert_ne!(minted, bad);
            assert!(uuid::Uuid::parse_str(&minted).is_ok(), "{minted}");
        }
        assert!(uuid::Uuid::parse_str(&request_id(&HeaderMap::new())).is_ok());
    }

    #[test]
    fn an_answer_carries_its_status_and_request_id() {
        let response = respond(Status::unauthenticated("no token"), "req-7");
        assert_eq!(response.headers()[identity::REQUEST_ID], "req-7");
        let status = Status::from_header_map(response.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::Unauthenticated);
        assert_eq!(status.message(), "no token");
    }
}
