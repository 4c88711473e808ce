//! W3C trace context (`traceparent`, `tracestate`) from the gateway through the services and
//! the outbox, so that one call can be followed across every binary it touches.
//!
//! When spans are exported (OTLP, set up by telemetry), the ids are OpenTelemetry's:
//! each call's span continues its caller's. When they are not, the ids are still carried and
//! logged (a trace id to grep for across the binaries' logs) without building spans.

use std::sync::atomic::{AtomicBool, Ordering};

use http::{HeaderMap, HeaderName, HeaderValue};
use opentelemetry::{
    Context,
    propagation::{Extractor, Injector, TextMapPropagator},
    trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId},
};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

pub const TRACEPARENT: &str = "traceparent";
pub const TRACESTATE: &str = "tracestate";

static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Set once by telemetry when an OTLP exporter (and the OpenTelemetry layer) is installed.
pub(crate) fn set_exporting() {
    EXPORTING.store(true, Ordering::Relaxed);
}

fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// The trace context of one unit of work (a call, an outbox delivery): what its log lines
/// carry and what it passes on to the calls it makes.
#[derive(Debug, Clone, PartialEq)]
pub struct CallTrace(SpanContext);

impl CallTrace {
    /// Continues the trace `headers` carry (a new trace when they carry none, or a malformed
    /// one) as `span`, which must declare an empty `trace_id` field; it is recorded here.
    pub fn from_headers(span: &tracing::Span, headers: &HeaderMap) -> Self {
        Self::continuing(span, &extract(headers))
    }

    /// Continues `parent` (a new trace when it is invalid) as `span`.
    pub fn continuing(span: &tracing::Span, parent: &SpanContext) -> Self {
        let own = if exporting() {
            let parent_cx = if parent.is_valid() {
                Context::new().with_remote_span_context(parent.clone())
            } else {
                Context::new()
            };
            // Fails only when the span is disabled or already started; then the ids below.
            let _ = span.set_parent(parent_cx);
            Some(span.context().span().span_context().clone()).filter(SpanContext::is_valid)
        } else {
            None
        };
        let own = own.unwrap_or_else(|| {
            let (trace_id, flags) = if parent.is_valid() {
                (parent.trace_id(), parent.trace_flags())
            } else {
                (random_trace_id(), TraceFlags::SAMPLED)
            };
            SpanContext::new(
                trace_id,
                random_span_id(),
                flags,
                false,
                parent.trace_state().clone(),
            )
        });
        span.record("trace_id", tracing::field::display(own.trace_id()));
        CallTrace(own)
    }

    pub fn trace_id(&self) -> TraceId {
        self.0.trace_id()
    }

    pub fn span_context(&self) -> &SpanContext {
        &self.0
    }

    /// This context as a `traceparent` value (the caller of the next hop).
    pub fn traceparent(&self) -> String {
        let mut fields = Fields::default();
        TraceContextPropagator::new().inject_context(
            &Context::new().with_remote_span_context(self.0.clone()),
            &mut fields,
        );
        fields.traceparent.unwrap_or_default()
    }

    /// The `tracestate` value, `None` when empty.
    pub fn tracestate(&self) -> Option<String> {
        Some(self.0.trace_state().header()).filter(|s| !s.is_empty())
    }

    /// Writes `traceparent` (and `tracestate`) into an outgoing call's headers, replacing
    /// whatever the incoming call carried.
    pub fn inject(&self, headers: &mut HeaderMap) {
        if let Ok(value) = HeaderValue::from_str(&self.traceparent()) {
            headers.insert(HeaderName::from_static(TRACEPARENT), value);
        }
        headers.remove(TRACESTATE);
        if let Some(value) = self
            .tracestate()
            .and_then(|s| HeaderValue::from_str(&s).ok())
        {
            headers.insert(HeaderName::from_static(TRACESTATE), value);
        }
    }
}

impl CallTrace {
    /// [`CallTrace::inject`] for a tonic request's metadata.
    pub fn inject_metadata(&self, metadata: &mut tonic::metadata::MetadataMap) {
        if let Ok(value) = self.traceparent().parse() {
            metadata.insert(TRACEPARENT, value);
        }
        metadata.remove(TRACESTATE);
        if let Some(value) = self.tracestate().and_then(|s| s.parse().ok()) {
            metadata.insert(TRACESTATE, value);
        }
    }
}

/// The remote parent stored values describe (an outbox row's); invalid when absent or
/// malformed, which starts a new trace.
pub fn parent_from(traceparent: Option<&str>, tracestate: Option<&str>) -> SpanContext {
    let mut headers = HeaderMap::new();
    for (name, value) in [(TRACEPARENT, traceparent), (TRACESTATE, tracestate)] {
        if let Some(value) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
            headers.insert(HeaderName::from_static(name), value);
        }
    }
    extract(&headers)
}

/// The caller's span context from `traceparent`/`tracestate`, invalid when there is none.
fn extract(headers: &HeaderMap) -> SpanContext {
    if !headers.contains_key(TRACEPARENT) {
        return SpanContext::empty_context();
    }
    let cx = TraceContextPropagator::new().extract(&Headers(headers));
    cx.span().span_context().clone()
}

fn random_trace_id() -> TraceId {
    TraceId::from_bytes(uuid::Uuid::new_v4().into_bytes())
}

fn random_span_id() -> SpanId {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut id = [0u8; 8];
    id.copy_from_slice(&bytes[8..16]);
    // All zeros is invalid; a v4 UUID's variant bits make that impossible here.
    SpanId::from_bytes(id)
}

struct Headers<'a>(&'a HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(HeaderName::as_str).collect()
    }
}

#[derive(Default)]
struct Fields {
    traceparent: Option<String>,
}

impl Injector for Fields {
    fn set(&mut self, key: &str, value: String) {
        if key == TRACEPARENT {
            self.traceparent = Some(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span() -> tracing::Span {
        tracing::info_span!("call", trace_id = tracing::field::Empty)
    }

    #[test]
    fn a_call_continues_its_callers_trace_with_a_span_of_its_own() {
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        let trace = CallTrace::from_headers(&span(), &headers);
        assert_eq!(
            trace.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        let next = trace.traceparent();
        assert!(
            next.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
            "{next}"
        );
        assert!(!next.contains("00f067aa0ba902b7"), "a new span id: {next}");
        assert!(next.ends_with("-01"), "{next}");
        assert_eq!(trace.tracestate().as_deref(), Some("vendor=x"));
    }

    #[test]
    fn a_missing_or_malformed_traceparent_starts_a_new_trace() {
        let fresh = CallTrace::from_headers(&span(), &HeaderMap::new());
        assert!(fresh.span_context().is_valid());
        let mut headers = HeaderMap::new();
        headers.insert(TRACEPARENT, HeaderValue::from_static("00-zz-yy-01"));
        let other = CallTrace::from_headers(&span(), &headers);
        assert!(other.span_context().is_valid());
        assert_ne!(fresh.trace_id(), other.trace_id());
    }

    #[test]
    fn stored_context_round_trips() {
        let trace = CallTrace::from_headers(&span(), &HeaderMap::new());
        let parent = parent_from(Some(&trace.traceparent()), None);
        assert_eq!(parent.trace_id(), trace.trace_id());
        assert_eq!(parent.span_id(), trace.span_context().span_id());
        assert!(!parent_from(Some("garbage"), None).is_valid());
        assert!(!parent_from(None, None).is_valid());
    }

    #[test]
    fn injecting_replaces_the_incoming_headers() {
        let trace = CallTrace::from_headers(&span(), &HeaderMap::new());
        let mut headers = HeaderMap::new();
        headers.insert(
            TRACEPARENT,
            HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
        headers.insert(TRACESTATE, HeaderValue::from_static("vendor=x"));
        trace.inject(&mut headers);
        assert_eq!(headers[TRACEPARENT], trace.traceparent().as_str());
        assert!(!headers.contains_key(TRACESTATE));
    }
}
