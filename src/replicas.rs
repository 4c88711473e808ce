//! Calls to a service that runs as several replicas: each call goes to a replica that is up,
//! in turn, and a call that never reached a replica is sent to another one.
//!
//! tonic's balanced channel keeps handing calls to a replica whose connection fails: its
//! reconnecting service answers "ready" and then fails the call it is given, so a dead replica
//! took its share of calls (a third, with three) for as long as it stayed dead. Here a replica
//! leaves the balance as soon as a call to it fails at the transport level or its health
//! check does not say SERVING (a probe every [`PROBE_INTERVAL`]), and rejoins when the check
//! says SERVING again. Request bodies are kept until the call has a response, so a call the
//! replica provably never received (connection refused, stream refused, connection closed
//! before sending) can be replayed elsewhere; nothing that may have been received is ever
//! sent twice.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        Arc, Weak,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    task::{Context, Poll},
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use tonic::{
    body::Body,
    transport::{Channel, ClientTlsConfig, Endpoint},
};
use tonic_health::pb::{HealthCheckRequest, health_check_response, health_client::HealthClient};
use tower::{Service, ServiceExt};

use crate::grpc::{CONNECT_TIMEOUT, MAX_DECODING_MESSAGE_SIZE};

/// How often each replica's health is checked: how long, at most, a replica that stopped
/// serving without failing a call (drained, lost its database) keeps getting new calls, and
/// how soon one that is back gets them again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(500);

/// The largest request body kept for a replay: one message of the largest size a server
/// decodes, with its 5-byte gRPC frame header and room to spare.
const MAX_REPLAYABLE_BODY: usize = MAX_DECODING_MESSAGE_SIZE + 64 * 1024;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call has no response.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The request body was larger than a server accepts.
    #[error("request too large")]
    TooLarge,
    /// The caller's request body failed (the client went away mid-request).
    #[error("request body failed: {0}")]
    Request(BoxError),
    /// The caller's deadline (`grpc-timeout`) passed before the replica answered: the
    /// caller's doing, so the replica stays in the balance.
    #[error("{address}: deadline exceeded before the replica answered")]
    Deadline {
        address: String,
        #[source]
        source: BoxError,
    },
    /// No replica answered: the error of the last one tried.
    #[error("{address}: {source}")]
    Upstream {
        address: String,
        #[source]
        source: BoxError,
    },
}

/// The replicas of one service, cheap to clone (every clone shares the same state).
#[derive(Clone)]
pub struct Replicas {
    inner: Arc<Inner>,
}

struct Inner {
    replicas: Vec<Replica>,
    /// Where the next pick starts, so calls go round the replicas in turn.
    next: AtomicUsize,
}

struct Replica {
    address: String,
    channel: Channel,
    up: AtomicBool,
}

impl Replicas {
    /// Lazily connected channels to `addresses` (comma-separated; `host:port` means
    /// `http://host:port`), each checked for `health_service` until the last clone is dropped.
    /// Must be called inside a tokio runtime, which runs the probes.
    pub fn connect(addresses: &str, health_service: &'static str) -> anyhow::Result<Self> {
        Self::connect_with_tls(addresses, health_service, None)
    }

    /// [`Replicas::connect`], with `https://` addresses reached over `tls`
    /// (`tls::UpstreamFlags::client_config`); without it only `http://` ones are accepted.
    pub fn connect_with_tls(
        addresses: &str,
        health_service: &'static str,
        tls: Option<&ClientTlsConfig>,
    ) -> anyhow::Result<Self> {
        let endpoints = parse_addresses(addresses, tls)?;
        let replicas = endpoints
            .into_iter()
            .map(|(address, endpoint)| Replica {
                address,
                channel: endpoint.connect_lazy(),
                // Up until shown otherwise, so a fresh process serves at once.
                up: AtomicBool::new(true),
            })
            .collect();
        let inner = Arc::new(Inner {
            replicas,
            next: AtomicUsize::new(0),
        });
        for (index, replica) in inner.replicas.iter().enumerate() {
            tokio::spawn(probe(
                Arc::downgrade(&inner),
                index,
                replica.channel.clone(),
                health_service,
            ));
        }
        Ok(Replicas { inner })
    }

    /// Whether at least one replica is in the balance.
    pub fn any_up(&self) -> bool {
        self.inner
            .replicas
            .iter()
            .any(|r| r.up.load(Ordering::Relaxed))
    }

    /// Sends `request` to a replica that is up. With `replayable`, the request body is read
    /// first (it must end: unary and server-streaming calls), so a call no replica received
    /// can go to the next one; a client-streaming call cannot be replayed and goes to one.
    pub async fn call(
        &self,
        request: http::Request<Body>,
        replayable: bool,
    ) -> Result<http::Response<Body>, CallError> {
        if !replayable {
            let index = self.pick(&[]).unwrap_or_default();
            return self.send(index, request).await;
        }
        let (parts, body) = request.into_parts();
        let body = Limited::new(body, MAX_REPLAYABLE_BODY)
            .collect()
            .await
            .map_err(|err| {
                if err.is::<http_body_util::LengthLimitError>() {
                    CallError::TooLarge
                } else {
                    CallError::Request(err)
                }
            })?
            .to_bytes();
        let mut tried = Vec::new();
        loop {
            let index = self.pick(&tried).unwrap_or_default();
            tried.push(index);
            let attempt = rebuild(&parts, body.clone());
            match self.send(index, attempt).await {
                Err(CallError::Upstream { address, source })
                    if never_sent(&*source) && tried.len() < self.inner.replicas.len() =>
                {
                    tracing::info!(%address, error = %chain(&*source), "replica refused a call; trying another");
                }
                outcome => return outcome,
            }
        }
    }

    async fn send(
        &self,
        index: usize,
        request: http::Request<Body>,
    ) -> Result<http::Response<Body>, CallError> {
        let replica = &self.inner.replicas[index];
        let outcome = replica.channel.clone().oneshot(request).await;
        outcome.map_err(|err| {
            let err: BoxError = Box::new(err);
            // tonic's channel enforces the request's `grpc-timeout` itself: a short client
            // deadline says nothing about the replica, which stays in the balance.
            if sources(&*err).any(|e| e.is::<tonic::TimeoutExpired>()) {
                return CallError::Deadline {
                    address: replica.address.clone(),
                    source: err,
                };
            }
            // A transport error, never a gRPC status (those arrive as responses): the
            // replica leaves the balance until its health check says otherwise.
            if replica.up.swap(false, Ordering::Relaxed) {
                tracing::warn!(address = %replica.address, error = %chain(&*err), "replica left the balance: a call failed");
            }
            CallError::Upstream {
                address: replica.address.clone(),
                source: err,
            }
        })
    }

    /// The next replica in turn that is up and not in `tried`; if none is up, the next one
    /// not tried (it may be back before its probe noticed); `None` when all were tried.
    fn pick(&self, tried: &[usize]) -> Option<usize> {
        let replicas = &self.inner.replicas;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let candidates = || {
            (0..replicas.len())
                .map(move |k| (start + k) % replicas.len())
                .filter(|i| !tried.contains(i))
        };
        candidates()
            .find(|&i| replicas[i].up.load(Ordering::Relaxed))
            .or_else(|| candidates().next())
    }
}

/// For tonic clients (`NotificationServiceClient::new(replicas)`): every call is replayable,
/// which holds for unary and server-streaming methods.
impl Service<http::Request<Body>> for Replicas {
    type Response = http::Response<Body>;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let replicas = self.clone();
        Box::pin(async move { Ok(replicas.call(request, true).await?) })
    }
}

/// Checks one replica's health every [`PROBE_INTERVAL`] and moves it in or out of the
/// balance; ends when the replicas are dropped.
async fn probe(inner: Weak<Inner>, index: usize, channel: Channel, service: &'static str) {
    let mut client = HealthClient::new(channel);
    loop {
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let check = tokio::time::timeout(CONNECT_TIMEOUT, client.check(request)).await;
        let serving = matches!(
            &check,
            Ok(Ok(response))
                if response.get_ref().status() == health_check_response::ServingStatus::Serving
        );
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let replica = &inner.replicas[index];
        if replica.up.swap(serving, Ordering::Relaxed) != serving {
            if serving {
                tracing::info!(address = %replica.address, "replica serving; back in the balance");
            } else {
                let why = match check {
                    Ok(Ok(response)) => format!("health {:?}", response.get_ref().status()),
                    Ok(Err(status)) => format!("health check failed: {}", status.message()),
                    Err(_) => "health check timed out".to_owned(),
                };
                tracing::warn!(address = %replica.address, %why, "replica left the balance");
            }
        }
        drop(inner);
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Endpoints for a comma-separated address list. `host:port` is taken as `http://host:port`
/// (as `--listen` takes it); anything else must be an `http://` URL with a host and a port,
/// or an `https://` one when `tls` says how to reach it.
pub fn parse_addresses(
    addresses: &str,
    tls: Option<&ClientTlsConfig>,
) -> anyhow::Result<Vec<(String, Endpoint)>> {
    let endpoints = addresses
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|address| {
            let url = if address.contains("://") {
                address.to_owned()
            } else {
                format!("http://{address}")
            };
            let uri: http::Uri = url
                .parse()
                .map_err(|err| anyhow::anyhow!("invalid upstream address {address:?}: {err}"))?;
            let https = uri.scheme_str() == Some("https");
            anyhow::ensure!(
                uri.scheme_str() == Some("http") || https,
                "invalid upstream address {address:?}: use host:port, http://host:port or https://host:port"
            );
            anyhow::ensure!(
                !https || tls.is_some(),
                "upstream address {address:?} is https:// but no CA is given to check its \
                 certificate against (--upstream-ca, SWITCHBOARD_UPSTREAM_CA)"
            );
            anyhow::ensure!(
                uri.host().is_some_and(|h| !h.is_empty()) && uri.port_u16().is_some(),
                "invalid upstream address {address:?}: a host and a port are required"
            );
            let endpoint = Endpoint::from(uri)
                .connect_timeout(CONNECT_TIMEOUT)
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(30))
                .keep_alive_timeout(Duration::from_secs(10))
                .keep_alive_while_idle(true);
            let endpoint = match tls {
                Some(tls) if https => endpoint.tls_config(tls.clone()).map_err(|err| {
                    anyhow::anyhow!("upstream address {address:?}: {}", chain(&err))
                })?,
                _ => endpoint,
            };
            Ok((url, endpoint))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    anyhow::ensure!(!endpoints.is_empty(), "no upstream address given");
    Ok(endpoints)
}

/// A copy of a request whose body was read into `body`.
fn rebuild(parts: &http::request::Parts, body: Bytes) -> http::Request<Body> {
    let mut request = http::Request::new(Body::new(Full::new(body)));
    *request.method_mut() = parts.method.clone();
    *request.uri_mut() = parts.uri.clone();
    *request.version_mut() = parts.version;
    *request.headers_mut() = parts.headers.clone();
    request
}

/// Whether `err` proves the replica never received the call: the connection could not be
/// made, HTTP/2 refused the stream (RFC 9113 §8.7: not processed), or the connection was
/// gone before the request was handed to it.
pub fn never_sent(err: &(dyn std::error::Error + 'static)) -> bool {
    sources(err).any(|e| {
        e.is::<tonic::ConnectError>()
            || e.downcast_ref::<h2::Error>()
                .is_some_and(|h2| h2.reason() == Some(h2::Reason::REFUSED_STREAM))
            || e.downcast_ref::<hyper::Error>()
                .is_some_and(hyper::Error::is_canceled)
    })
}

/// `err` and its sources, outermost first.
fn sources<'a>(
    err: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(Some(err), |e| e.source())
}

/// Every message in `err`'s chain, for a log line that says what happened.
pub fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    for e in sources(err) {
        let message = e.to_string();
        if !text.is_empty() {
            if text.ends_with(&message) {
                continue;
            }
            text.push_str(": ");
        }
        text.push_str(&message);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_take_host_port_or_http_urls() {
        let parsed = parse_addresses("127.0.0.1:50052, http://[::1]:7,localhost:9", None).unwrap();
        let urls: Vec<_> = parsed.iter().map(|(url, _)| url.as_str()).collect();
        assert_eq!(
            urls,
            [
                "http://127.0.0.1:50052",
                "http://[::1]:7",
                "http://localhost:9"
            ]
        );
        for bad in [
            "",
            " , ",
            "ftp://h:1",
            "http://h",
            "127.0.0.1",
            "http://:80",
            "h:x",
        ] {
            assert!(parse_addresses(bad, None).is_err(), "{bad:?}");
        }
        let tls = ClientTlsConfig::new();
        assert!(
            parse_addresses("https://127.0.0.1:7", None).is_err(),
            "https without a CA"
        );
        let parsed = parse_addresses("https://127.0.0.1:7,127.0.0.1:8", Some(&tls)).unwrap();
        let urls: Vec<_> = parsed.iter().map(|(url, _)| url.as_str()).collect();
        assert_eq!(urls, ["https://127.0.0.1:7", "http://127.0.0.1:8"]);
    }

    #[test]
    fn only_proof_of_not_sending_allows_a_replay() {
        let refused = h2::Error::from(h2::Reason::REFUSED_STREAM);
        assert!(never_sent(&refused));
        let reset = h2::Error::from(h2::Reason::INTERNAL_ERROR);
        assert!(!never_sent(&reset));
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset");
        assert!(!never_sent(&io));
        let wrapped = tonic::ConnectError(Box::new(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        )));
        assert!(never_sent(&wrapped));
    }

    /// A gRPC service that answers every call after [`SlowService::DELAY`] with an OK status.
    #[derive(Clone)]
    struct SlowService;

    impl SlowService {
        const DELAY: Duration = Duration::from_millis(300);
    }

    impl tonic::server::NamedService for SlowService {
        const NAME: &'static str = "test.Slow";
    }

    impl Service<http::Request<Body>> for SlowService {
        type Response = http::Response<Body>;
        type Error = std::convert::Infallible;
        type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn call(&mut self, _request: http::Request<Body>) -> Self::Future {
            Box::pin(async {
                tokio::time::sleep(Self::DELAY).await;
                let mut response = http::Response::new(Body::empty());
                response.headers_mut().insert(
                    "content-type",
                    http::HeaderValue::from_static("application/grpc"),
                );
                response
                    .headers_mut()
                    .insert("grpc-status", http::HeaderValue::from_static("0"));
                Ok(response)
            })
        }
    }

    fn slow_call(grpc_timeout: Option<&'static str>) -> http::Request<Body> {
        let mut request = http::Request::new(Body::new(Full::new(Bytes::from_static(&[0; 5]))));
        *request.method_mut() = http::Method::POST;
        *request.uri_mut() = http::Uri::from_static("http://replica/test.Slow/Call");
        let headers = request.headers_mut();
        headers.insert(
            "content-type",
            http::HeaderValue::from_static("application/grpc"),
        );
        headers.insert("te", http::HeaderValue::from_static("trailers"));
        if let Some(timeout) = grpc_timeout {
            headers.insert("grpc-timeout", http::HeaderValue::from_static(timeout));
        }
        request
    }

    #[tokio::test]
    async fn a_caller_deadline_that_passes_keeps_the_replica_in_the_balance() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (_reporter, health) = tonic_health::server::health_reporter();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(health)
                .add_service(SlowService)
                .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
        );
        let replicas = Replicas::connect(&addr.to_string(), "").unwrap();
        // The connection is made and the replica answers when nobody is in a hurry.
        let response = replicas.call(slow_call(None), true).await.unwrap();
        assert_eq!(response.headers()["grpc-status"], "0");

        for timeout in ["1n", "1m", "50m"] {
            let outcome = replicas.call(slow_call(Some(timeout)), true).await;
            assert!(
                matches!(outcome, Err(CallError::Deadline { .. })),
                "grpc-timeout {timeout}: {outcome:?}"
            );
            assert!(
                replicas.any_up(),
                "grpc-timeout {timeout}: the replica left the balance"
            );
        }
    }

    #[tokio::test]
    async fn a_replica_that_is_down_is_passed_over() {
        let replicas = Replicas::connect("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3", "x").unwrap();
        replicas.inner.replicas[1]
            .up
            .store(false, Ordering::Relaxed);
        let picks: Vec<_> = (0..6).filter_map(|_| replicas.pick(&[])).collect();
        assert!(!picks.contains(&1), "{picks:?}");
        assert!(picks.contains(&0) && picks.contains(&2), "{picks:?}");
        assert_eq!(
            replicas.pick(&[0, 2]),
            Some(1),
            "down, but all others tried"
        );
        assert_eq!(replicas.pick(&[0, 1, 2]), None);
        for replica in &replicas.inner.replicas {
            replica.up.store(false, Ordering::Relaxed);
        }
        assert!(!replicas.any_up());
        assert!(replicas.pick(&[]).is_some(), "none up: still try one");
    }
}
