//! Authentication as a tower layer around each proxy: a call without a valid token is
//! answered UNAUTHENTICATED here and never reaches the forwarding code; an authenticated one
//! carries its [`Caller`] in the request extensions.

use std::{
    convert::Infallible,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Instant,
};

use switchboard::Caller;
use tonic::{Status, body::Body, server::NamedService};
use tower::{Layer, Service};

use super::Authenticator;
use crate::{
    call::{request_id, respond, trace_id},
    metrics::GatewayMetrics,
};

#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Authenticator>,
    metrics: Arc<GatewayMetrics>,
}

impl AuthLayer {
    pub fn new(auth: Authenticator, metrics: Arc<GatewayMetrics>) -> Self {
        Self {
            auth: Arc::new(auth),
            metrics,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = Authenticated<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Authenticated {
            inner,
            auth: self.auth.clone(),
            metrics: self.metrics.clone(),
        }
    }
}

#[derive(Clone)]
pub struct Authenticated<S> {
    inner: S,
    auth: Arc<Authenticator>,
    metrics: Arc<GatewayMetrics>,
}

/// Mounted under the same path prefix as the service it guards.
impl<S: NamedService> NamedService for Authenticated<S> {
    const NAME: &'static str = S::NAME;
}

impl<S> Service<http::Request<Body>> for Authenticated<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        match self.auth.authenticate(request.headers()) {
            Ok(caller) => {
                request.extensions_mut().insert::<Caller>(caller);
                // The clone is not ready; swap so the ready service handles this call.
                let clone = self.inner.clone();
                let mut inner = std::mem::replace(&mut self.inner, clone);
                Box::pin(inner.call(request))
            }
            Err(err) => {
                self.metrics.auth_failed(&err);
                let started = Instant::now();
                let request_id = request_id(request.headers());
                let status = Status::unauthenticated(err.to_string());
                tracing::info!(
                    method = %request.uri().path(),
                    caller = "-",
                    status = ?status.code(),
                    latency_us = started.elapsed().as_micros() as u64,
                    %request_id,
                    trace_id = %trace_id(&request),
                    reason = %err,
                    "call refused"
                );
                Box::pin(async move { Ok(respond(status, &request_id)) })
            }
        }
    }
}
