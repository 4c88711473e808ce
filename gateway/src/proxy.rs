//! Forwarding: one generic service per upstream, mounted under its gRPC path prefix.
//!
//! There is no per-method code: a call (authenticated by the layer around the proxy) has its
//! metadata rewritten and its HTTP/2 request streamed to the upstream as is; the response
//! (headers, messages, trailers, status and details) streams back untouched. Dropping the client's call drops the upstream
//! one, so a cancelled Subscribe frees its stream on the backend.

use std::{
    convert::Infallible,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::{Duration, Instant},
};

use http::{HeaderMap, HeaderName, HeaderValue};
use switchboard::{
    Caller,
    identity::{self, encode_value},
    replicas::{CallError, Replicas, chain},
    trace::CallTrace,
};
use tonic::{Status, body::Body, server::NamedService};
use tower::Service;

use crate::{
    call::{LogContext, request_id, respond, trace_id},
    deadline,
    logging::LoggedBody,
    methods::Methods,
    metrics::GatewayMetrics,
    ratelimit::RateLimiter,
};

/// How long a streaming call may wait for the upstream's response headers. Unary calls use
/// their deadline instead.
const STREAM_OPEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Everything the forwarding of one call needs.
pub struct Forwarder {
    pub internal_token: HeaderValue,
    /// Which methods stream, from the descriptors.
    pub methods: Arc<Methods>,
    pub unary_timeout: Duration,
    /// Per-user limit on the calls that create things for others.
    pub rate_limit: RateLimiter,
    pub metrics: Arc<GatewayMetrics>,
}

/// Names an upstream service: the path prefix its calls arrive under.
pub trait Upstream: Send + Sync + 'static {
    const NAME: &'static str;
}

pub struct Notifications;
impl Upstream for Notifications {
    const NAME: &'static str =
        switchboard::proto::notification::v1::notification_service_server::SERVICE_NAME;
}

pub struct Conversations;
impl Upstream for Conversations {
    const NAME: &'static str =
        switchboard::proto::conversation::v1::conversation_service_server::SERVICE_NAME;
}

/// Forwards every call under `/<U::NAME>/` to one of `replicas`.
pub struct Proxy<U> {
    replicas: Replicas,
    forwarder: Arc<Forwarder>,
    upstream: PhantomData<fn() -> U>,
}

impl<U> Clone for Proxy<U> {
    fn clone(&self) -> Self {
        Self {
            replicas: self.replicas.clone(),
            forwarder: self.forwarder.clone(),
            upstream: PhantomData,
        }
    }
}

impl<U: Upstream> Proxy<U> {
    pub fn new(replicas: Replicas, forwarder: Arc<Forwarder>) -> Self {
        Self {
            replicas,
            forwarder,
            upstream: PhantomData,
        }
    }
}

impl<U: Upstream> NamedService for Proxy<U> {
    const NAME: &'static str = U::NAME;
}

impl<U: Upstream> Service<http::Request<Body>> for Proxy<U> {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        // Readiness of the upstream is awaited per call, with a timeout.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let replicas = self.replicas.clone();
        let forwarder = self.forwarder.clone();
        Box::pin(async move { Ok(forwarder.forward(&replicas, request).await) })
    }
}

impl Forwarder {
    async fn forward(
        &self,
        replicas: &Replicas,
        mut request: http::Request<Body>,
    ) -> http::Response<Body> {
        let started = Instant::now();
        let method = request.uri().path().to_owned();
        let request_id = request_id(request.headers());
        // Set by the auth layer; without it (a wiring mistake) the call fails closed.
        let Some(caller) = request.extensions_mut().remove::<Caller>() else {
            return respond(Status::unauthenticated("not authenticated"), &request_id);
        };
        let trace_id = trace_id(&request);
        if let Err(err) = self.rate_limit.check(&method, &caller) {
            self.metrics.rate_limited();
            let status = Status::from(err);
            tracing::info!(%method, caller = %caller.user_id, status = ?status.code(), %request_id, %trace_id, "call refused");
            return respond(status, &request_id);
        }
        rewrite_metadata(
            request.headers_mut(),
            &caller,
            &self.internal_token,
            &request_id,
        );
        // The upstream's span is a child of this call's.
        if let Some(trace) = request.extensions().get::<CallTrace>().cloned() {
            trace.inject(request.headers_mut());
        }

        let streaming = self.methods.server_streams(&method);
        let replayable = !self.methods.client_streams(&method);
        let wait = if streaming {
            STREAM_OPEN_TIMEOUT
        } else {
            let deadline = deadline::effective(request.headers(), self.unary_timeout);
            deadline::set(request.headers_mut(), deadline);
            deadline
        };
        let upstream = self.metrics.upstream_calls.method(&method).clone();
        upstream.started();
        let call = replicas.call(request, replayable);
        let log = LogContext {
            method,
            caller: caller.user_id,
            request_id: request_id.clone(),
            started,
            trace_id,
            upstream: Some((upstream, Instant::now())),
        };
        match tokio::time::timeout(wait, call).await {
            Ok(Ok(response)) => {
                let (mut parts, body) = response.into_parts();
                if let Ok(value) = HeaderValue::from_str(&request_id) {
                    parts.headers.insert(identity::REQUEST_ID, value);
                }
                // A trailers-only response carries its status in the headers.
                let status = parts.headers.get("grpc-status").cloned();
                http::Response::from_parts(parts, Body::new(LoggedBody::new(body, status, log)))
            }
            Ok(Err(CallError::TooLarge)) => log.finish(
                Status::resource_exhausted("request larger than the servers accept"),
                &request_id,
            ),
            Ok(Err(CallError::Request(err))) => log.finish(
                Status::cancelled(format!("request failed: {err}")),
                &request_id,
            ),
            Ok(Err(CallError::Deadline { .. })) => {
                log.finish(Status::deadline_exceeded("deadline exceeded"), &request_id)
            }
            Ok(Err(err)) => {
                tracing::warn!(method = %log.method, error = %chain(&err), "upstream unreachable");
                log.finish(Status::unavailable("upstream unavailable"), &request_id)
            }
            Err(_) if streaming => {
                log.finish(Status::unavailable("upstream did not answer"), &request_id)
            }
            Err(_) => log.finish(Status::deadline_exceeded("deadline exceeded"), &request_id),
        }
    }
}

/// Removes what a client must not choose and sets what the backends trust. Identity reaches a
/// backend only from this allowlist, filled from the verified token; every client key that
/// looks like ours (`x-switchboard-*`, `x_switchboard_*`, any case: HTTP/2 names arrive lower
/// case) is dropped, as is the bearer token. Other metadata passes unchanged.
pub(crate) fn rewrite_metadata(
    headers: &mut HeaderMap,
    caller: &Caller,
    internal_token: &HeaderValue,
    request_id: &str,
) {
    let spoofable: Vec<HeaderName> = headers
        .keys()
        .filter(|name| looks_like_ours(name.as_str()))
        .cloned()
        .collect();
    for name in spoofable {
        headers.remove(&name);
    }
    headers.remove(http::header::AUTHORIZATION);
    let scopes = caller.scopes.iter().cloned().collect::<Vec<_>>().join(" ");
    let allowlist = [
        (identity::USER_ID, caller.user_id.as_str()),
        (identity::USERNAME, caller.username.as_str()),
        (identity::AVATAR_URL, caller.avatar_url.as_str()),
        (identity::SCOPES, scopes.as_str()),
        (identity::REQUEST_ID, request_id),
    ];
    for (name, value) in allowlist {
        if let Ok(value) = HeaderValue::from_str(&encode_value(value)) {
            headers.insert(name, value);
        }
    }
    headers.insert(identity::INTERNAL_TOKEN, internal_token.clone());
}

/// `x-switchboard` as a prefix, in any case and with `_` for `-`. Compared in place, as it
/// runs on every header of every call.
fn looks_like_ours(name: &str) -> bool {
    const PREFIX: &[u8] = b"x-switchboard";
    let name = name.as_bytes();
    name.len() >= PREFIX.len()
        && name.iter().zip(PREFIX).all(|(&byte, &want)| {
            let byte = byte.to_ascii_lowercase();
            want == if byte == b'_' { b'-' } else { byte }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_allowlisted_identity_reaches_a_backend() {
        let mut headers = HeaderMap::new();
        for (name, value) in [
            ("x-switchboard-user-id", "bob"),
            ("x_switchboard_user_id", "bob"),
            ("x-switchboard_scopes", "notifications:broadcast"),
            ("x-switchboardish", "x"),
            ("x-switchboard-internal-token", "guess"),
            ("authorization", "Bearer t"),
            ("x-client-version", "7"),
        ] {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        let caller = Caller {
            user_id: "alice".into(),
            username: "Alice".into(),
            avatar_url: String::new(),
            scopes: Default::default(),
        };
        rewrite_metadata(
            &mut headers,
            &caller,
            &HeaderValue::from_static("real"),
            "req-1",
        );
        let mut names: Vec<_> = headers.keys().map(|n| n.as_str().to_owned()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "x-client-version",
                "x-request-id",
                "x-switchboard-avatar-url",
                "x-switchboard-internal-token",
                "x-switchboard-scopes",
                "x-switchboard-user-id",
                "x-switchboard-username",
            ]
        );
        assert_eq!(headers["x-switchboard-user-id"], "alice");
        assert_eq!(headers["x-switchboard-internal-token"], "real");
        assert_eq!(headers["x-switchboard-scopes"], "");
    }

    #[test]
    fn our_prefix_is_recognised_in_any_case_and_with_underscores() {
        for name in [
            "x-switchboard-user-id",
            "X-Switchboard-User-Id",
            "x_switchboard_scopes",
            "X_SWITCHBOARD",
            "x-switchboardish",
        ] {
            assert!(looks_like_ours(name), "{name}");
        }
        for name in ["x-switchboar", "x-client-version", "switchboard", ""] {
            assert!(!looks_like_ours(name), "{name}");
        }
    }
}
