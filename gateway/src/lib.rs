//! Switchboard gateway: authenticates end users (Bearer JWT) and forwards every gRPC call,
//! unary or streaming, to notification-svc or conversation-svc by its path, with the caller's
//! identity and the internal token injected.
//!
//! `serve` is the one entry point, used by `main.rs` and by the tests alike.

pub mod auth;
mod call;
pub mod config;
mod cors;
mod deadline;
mod first_bytes;
mod grpc_web;
mod health;
mod logging;
mod methods;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
mod serving;
pub mod web;
mod workers;

use std::{future::Future, sync::Arc};

use anyhow::Context;
use http::HeaderValue;
use switchboard::{
    grpc::{self, Listeners},
    observe::ObserveLayer,
    replicas::Replicas,
    tls,
};
use tokio_util::sync::CancellationToken;
use tonic::service::Routes;
use tower::Layer;

pub use config::Config;

use crate::{
    auth::{Authenticator, Jwks, layer::AuthLayer},
    metrics::GatewayMetrics,
    proxy::{Conversations, Forwarder, Notifications, Proxy, Upstream},
    workers::{WorkerError, Workers},
};

/// Runs the gateway on `listeners` until `shutdown` resolves.
pub async fn serve(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let Listeners {
        api: listener,
        metrics: metrics_listener,
    } = listeners.into();
    switchboard::identity::require_internal_token(&config.internal_token)?;
    let stop = CancellationToken::new();
    // Serves until this function returns, after the drain.
    let metrics_stop = CancellationToken::new();
    let _stop_metrics = metrics_stop.clone().drop_guard();
    let registry =
        switchboard::metrics::start(&config.metrics, metrics_listener, "gateway", metrics_stop)
            .await?;
    let metrics = Arc::new(GatewayMetrics::new(
        &registry,
        &[Notifications::NAME, Conversations::NAME],
    ));
    // The gateway writes its own log line per call (it knows the caller and the upstream).
    let observe = ObserveLayer::new(&registry, &[Notifications::NAME, Conversations::NAME])
        .without_log_line();
    let tls = tls::ServerTls::from_flags(&config.tls, &[tls::ALPN_H2, tls::ALPN_HTTP1])?;
    if let Some(tls) = &tls {
        tls.watch(stop.clone());
    }
    let upstream_tls = config.upstream_tls.client_config()?;
    let jwks = config
        .jwks_file
        .clone()
        .map(|path| Jwks::watch(path, stop.clone()))
        .transpose()?;
    let auth = Authenticator::new(
        config.jwt_secret.as_deref(),
        jwks,
        config.jwt_issuer.clone(),
        config.jwt_audience.clone(),
    )?;
    let auth = AuthLayer::new(auth, metrics.clone());
    let forwarder = Arc::new(Forwarder {
        internal_token: HeaderValue::from_str(&config.internal_token)
            .context("the internal token must be printable ASCII")?,
        methods: Arc::new(methods::Methods::from_descriptors()?),
        unary_timeout: config.unary_timeout,
        rate_limit: ratelimit::RateLimiter::new(
            ratelimit::Rate {
                per_second: config.send_rate,
                burst: config.send_burst,
            },
            config.scope_rates.clone(),
            config
                .rate_limited_methods
                .iter()
                .map(|m| m.trim().to_owned()),
        ),
        metrics: metrics.clone(),
    });
    // Checked here so a bad address stops start-up; each worker opens its own channels.
    let notifications = Replicas::connect_with_tls(
        &config.notification_addr,
        Notifications::NAME,
        upstream_tls.as_ref(),
    )
    .context("--notification-addr")?;
    let conversations = Replicas::connect_with_tls(
        &config.conversation_addr,
        Conversations::NAME,
        upstream_tls.as_ref(),
    )
    .context("--conversation-addr")?;

    let (health, health_service) = tonic_health::server::health_reporter();
    for (name, channel) in [
        (Notifications::NAME, notifications),
        (Conversations::NAME, conversations),
    ] {
        health::watch(
            health.clone(),
            name,
            channel,
            config.health_interval,
            metrics.upstream_up(name),
            stop.clone(),
        );
    }
    let (reflection_v1, reflection_v1alpha) =
        grpc::reflection_services(&[Notifications::NAME, Conversations::NAME])?;
    let cors = cors::layer(&config.cors_allowed_origins).context("--cors-allowed-origins")?;
    let app = config
        .web_dir
        .as_deref()
        .map(web::WebApp::new)
        .transpose()?;
    let limits = serving::Limits {
        http1_max_header_bytes: config.http1_max_header_bytes,
        http1_idle_timeout: config.http1_idle_timeout,
        first_bytes_timeout: config.first_bytes_timeout,
    };

    let local_addr = listener.local_addr()?;
    let notification_addr = config.notification_addr.clone();
    let conversation_addr = config.conversation_addr.clone();
    let serve_stop = stop.clone();
    // Health and reflection answer without a token; the auth layer guards both proxies.
    let mut workers = Workers::start(config.serving_threads(), tls.clone(), move |incoming| {
        let (health, reflection_v1, reflection_v1alpha) = (
            health_service.clone(),
            reflection_v1.clone(),
            reflection_v1alpha.clone(),
        );
        let (auth, forwarder, stop, cors, app, observe) = (
            auth.clone(),
            forwarder.clone(),
            serve_stop.clone(),
            cors.clone(),
            app.clone(),
            observe.clone(),
        );
        let (notification_addr, conversation_addr, upstream_tls) = (
            notification_addr.clone(),
            conversation_addr.clone(),
            upstream_tls.clone(),
        );
        async move {
            let notifications = Replicas::connect_with_tls(
                &notification_addr,
                Notifications::NAME,
                upstream_tls.as_ref(),
            )
            .map_err(WorkerError::Setup)?;
            let conversations = Replicas::connect_with_tls(
                &conversation_addr,
                Conversations::NAME,
                upstream_tls.as_ref(),
            )
            .map_err(WorkerError::Setup)?;
            let routes = Routes::new(health)
                .add_service(reflection_v1)
                .add_service(reflection_v1alpha)
                .add_service(auth.layer(Proxy::<Notifications>::new(
                    notifications,
                    forwarder.clone(),
                )))
                .add_service(auth.layer(Proxy::<Conversations>::new(conversations, forwarder)));
            serving::serve(
                incoming,
                grpc_web::service(routes, observe, cors, app),
                limits,
                stop,
            )
            .await;
            Ok(())
        }
    })?;
    tokio::spawn(workers.accept(listener, stop.clone()));
    let server = workers.finished();

    if tls.is_none() && !local_addr.ip().to_canonical().is_loopback() {
        tracing::warn!(%local_addr, "serving plaintext on a non-loopback address: bearer tokens cross the network in the clear; give --tls-cert and --tls-key");
    }
    tracing::info!(%local_addr, tls = tls.is_some(), "gateway listening");
    let drain = grpc::Drain {
        health,
        // Upstream statuses stay as the watchers last saw them; "" tells balancers to leave.
        services: Vec::new(),
        watchers: stop.child_token(),
        stop,
        grace: config.shutdown_grace,
    };
    grpc::run_until_drained(server, shutdown, drain).await?;
    tracing::info!("gateway stopped");
    Ok(())
}
