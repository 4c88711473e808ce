//! What every server does around each call: continue the caller's trace in a span, count
//! the call in the gRPC metrics, and write the call's one log line (method, caller, status,
//! latency, request id, trace id) when its response ends, for a stream when the stream ends.
//!
//! The layer sits outermost, so calls refused by the internal-token check are seen too.

use std::{
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use bytes::Bytes;
use http::{HeaderMap, HeaderValue};
use http_body::{Frame, SizeHint};
use tonic::{Code, Status, body::Body};
use tower::{Layer, Service};
use tracing::Instrument;

use opentelemetry::trace::TraceId;

use crate::{
    identity,
    metrics::{
        Registry,
        grpc::{GrpcMetrics, MethodMetrics, Side},
    },
    trace::CallTrace,
};

/// The layer; see the module's documentation.
#[derive(Clone)]
pub struct ObserveLayer {
    metrics: Option<Arc<GrpcMetrics>>,
    log_calls: bool,
}

impl ObserveLayer {
    /// For a server of `services` (full names), recording into `registry`.
    pub fn new(registry: &Registry, services: &[&str]) -> Self {
        ObserveLayer {
            metrics: registry
                .is_enabled()
                .then(|| Arc::new(GrpcMetrics::new(registry, Side::Server, services))),
            log_calls: true,
        }
    }

    /// Without the log line, for a server that writes its own (the gateway's says more).
    pub fn without_log_line(mut self) -> Self {
        self.log_calls = false;
        self
    }
}

impl<S> Layer<S> for ObserveLayer {
    type Service = Observe<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Observe {
            inner,
            layer: self.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Observe<S> {
    inner: S,
    layer: ObserveLayer,
}

type BoxFuture<T, E> = Pin<Box<dyn std::future::Future<Output = Result<T, E>> + Send>>;

impl<S, B> Service<http::Request<B>> for Observe<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>>,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        let path = request.uri().path();
        let method = self.layer.metrics.as_ref().map(|m| m.method(path).clone());
        if let Some(method) = &method {
            method.started();
        }
        let span = tracing::info_span!(
            "grpc",
            otel.name = %path.trim_start_matches('/'),
            otel.kind = "server",
            trace_id = tracing::field::Empty,
        );
        let trace = CallTrace::from_headers(&span, request.headers());
        // Balancers and the gateway check health every few seconds: not news.
        let quiet = path.starts_with("/grpc.health.v1.Health/");
        let logged = self.layer.log_calls
            && if quiet {
                tracing::enabled!(tracing::Level::DEBUG)
            } else {
                tracing::enabled!(tracing::Level::INFO)
            };
        let finish = Finish {
            // Only built when the line will be written: three strings per call otherwise.
            log: logged.then(|| LogLine {
                caller: header(request.headers(), identity::USER_ID),
                request_id: header(request.headers(), identity::REQUEST_ID),
                path: path.to_owned(),
                quiet,
            }),
            method,
            started: Instant::now(),
            trace_id: trace.trace_id(),
            span: span.clone(),
        };
        request.extensions_mut().insert(trace);
        let call = {
            let _entered = span.enter();
            self.inner.call(request)
        };
        Box::pin(async move {
            let response = call.instrument(finish.span.clone()).await?;
            let (parts, body) = response.into_parts();
            // Trailers-only answers (errors) carry their status in the headers.
            let status = parts.headers.get("grpc-status").cloned();
            let body = ObservedBody {
                inner: body,
                status,
                messages: MessageCounter::default(),
                finish: Some(finish),
            };
            Ok(http::Response::from_parts(parts, Body::new(body)))
        })
    }
}

fn header(headers: &HeaderMap, name: &str) -> String {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-")
        .to_owned()
}

struct LogLine {
    path: String,
    caller: String,
    request_id: String,
    /// Written at debug (health checks).
    quiet: bool,
}

/// What happens when a call's response ends.
struct Finish {
    log: Option<LogLine>,
    method: Option<Arc<MethodMetrics>>,
    started: Instant,
    trace_id: TraceId,
    /// Held until the response ends: the span's duration is the call's.
    span: tracing::Span,
}

impl Finish {
    fn done(self, code: Code, messages: u64) {
        let elapsed = self.started.elapsed();
        if let Some(method) = &self.method {
            method.messages(messages);
            method.handled(code, elapsed);
        }
        let Some(log) = &self.log else { return };
        let latency_us = elapsed.as_micros() as u64;
        let trace_id = self.trace_id;
        if log.quiet {
            tracing::debug!(parent: &self.span, method = %log.path, caller = %log.caller, status = ?code, latency_us, request_id = %log.request_id, %trace_id, "call");
        } else {
            tracing::info!(parent: &self.span, method = %log.path, caller = %log.caller, status = ?code, latency_us, request_id = %log.request_id, %trace_id, "call");
        }
    }
}

/// The response body, watched for its messages and its status.
struct ObservedBody {
    inner: Body,
    status: Option<HeaderValue>,
    messages: MessageCounter,
    finish: Option<Finish>,
}

impl http_body::Body for ObservedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let poll = Pin::new(&mut self.inner).poll_frame(cx);
        match &poll {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    let data = data.clone();
                    self.messages.feed(&data);
                } else if let Some(status) = frame.trailers_ref().and_then(|t| t.get("grpc-status"))
                {
                    self.status = Some(status.clone());
                }
            }
            Poll::Ready(Some(Err(_))) => {
                self.status = Some(HeaderValue::from(Code::Internal as i32));
            }
            _ => {}
        }
        poll
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for ObservedBody {
    fn drop(&mut self) {
        // No status: the client left before the call ended.
        let code = self
            .status
            .as_ref()
            .map_or(Code::Cancelled, |s| Code::from_bytes(s.as_bytes()));
        if let Some(finish) = self.finish.take() {
            finish.done(code, self.messages.count);
        }
    }
}

/// Counts the length-prefixed gRPC messages in a response body, whose frames need not align
/// with the messages (a frame may hold several, or part of one).
#[derive(Debug, Default)]
pub struct MessageCounter {
    prefix: [u8; 5],
    prefix_len: usize,
    remaining: u64,
    pub count: u64,
}

impl MessageCounter {
    pub fn feed(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == 5 {
                self.count += 1;
                let [_, a, b, c, d] = self.prefix;
                self.remaining = u64::from(u32::from_be_bytes([a, b, c, d]));
                self.prefix_len = 0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Log output collected in memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("log buffer").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn a_call_is_logged_once_with_its_callers_trace_id_and_counted() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        let _default = tracing::subscriber::set_default(subscriber);
        let registry = Registry::enabled();
        let layer = ObserveLayer::new(
            &registry,
            &["switchboard.notification.v1.NotificationService"],
        );
        let mut service = layer.layer(tower::service_fn(|_request: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>(Status::invalid_argument("no").into_http::<Body>())
        }));
        let request = http::Request::builder()
            .uri("/switchboard.notification.v1.NotificationService/Send")
            .header(
                "traceparent",
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            )
            .header(identity::USER_ID, "alice")
            .body(())
            .expect("request");
        let response = service.call(request).await.expect("answered");
        drop(response);

        let logged = String::from_utf8(captured.0.lock().expect("log").clone()).expect("utf-8");
        let lines: Vec<&str> = logged.lines().filter(|l| l.contains(" call ")).collect();
        assert_eq!(lines.len(), 1, "{logged}");
        assert!(
            lines[0].contains("trace_id=4bf92f3577b34da6a3ce929d0e0e4736"),
            "{logged}"
        );
        assert!(
            lines[0].contains("status=InvalidArgument") && lines[0].contains("caller=alice"),
            "{logged}"
        );
        let text = registry.render();
        assert!(text.contains("grpc_server_handled_total{grpc_type=\"unary\",grpc_service=\"switchboard.notification.v1.NotificationService\",grpc_method=\"Send\",grpc_code=\"InvalidArgument\"} 1"), "{text}");
    }

    fn message(len: u32) -> Vec<u8> {
        let mut bytes = vec![0];
        bytes.extend_from_slice(&len.to_be_bytes());
        bytes.extend(std::iter::repeat_n(7, len as usize));
        bytes
    }

    #[test]
    fn messages_are_counted_however_frames_split_them() {
        let stream: Vec<u8> = [message(3), message(0), message(300), message(1)].concat();
        for chunk in [1, 2, 4, 5, 6, 64, stream.len()] {
            let mut counter = MessageCounter::default();
            for piece in stream.chunks(chunk) {
                counter.feed(piece);
            }
            assert_eq!(counter.count, 4, "chunks of {chunk}");
        }
    }
}
