//! Switchboard conversation service: 1:1 conversations and messages over gRPC, on SQLite or
//! PostgreSQL, notifying the other participant through notification-svc.
//!
//! `serve` is the one entry point, used by `main.rs` and by the tests alike.

pub mod api;
pub mod config;
pub mod domain;
pub mod outbox;
pub mod store;
pub mod users;

use anyhow::Context;
use std::future::Future;

use switchboard::{
    db,
    grpc::{self, Listeners},
    identity::InternalAuthLayer,
    metrics,
    observe::ObserveLayer,
    proto::conversation::v1::conversation_service_server::ConversationServiceServer,
    tls,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

pub use config::Config;

use crate::{api::ConversationApi, outbox::Delivery};

type Server = ConversationServiceServer<ConversationApi>;

/// Runs the service on `listeners` until `shutdown` resolves, then drains: health turns
/// NOT_SERVING, in-flight calls get `config.shutdown_grace`; undelivered notifications stay
/// in the outbox for the next start.
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
    // Before the database: bad TLS files stop start-up at once, naming themselves.
    let tls = tls::ServerTls::from_flags(&config.tls, &[tls::ALPN_H2])?;
    let upstream_tls = config.upstream_tls.client_config()?;
    // Serves until this function returns, after the drain.
    let metrics_stop = CancellationToken::new();
    let _stop_metrics = metrics_stop.clone().drop_guard();
    let registry = metrics::start(
        &config.metrics,
        metrics_listener,
        "conversation-svc",
        metrics_stop,
    )
    .await?;
    let database = db::connect(&config.database_url, &store::MIGRATIONS).await?;
    metrics::pool_connections(&registry, {
        let database = database.clone();
        move || database.pool_sizes()
    });
    let store = store::for_database(&database);
    let stop = CancellationToken::new();
    if let Some(tls) = &tls {
        tls.watch(stop.clone());
    }
    let outbox = Delivery::start(
        store.clone(),
        &config.notification_addr,
        upstream_tls.as_ref(),
        &config.internal_token,
        &registry,
        stop.clone(),
    )
    .context("--notification-addr")?;
    let api = ConversationApi::new(store, outbox);

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<Server>().await;
    // Its own token: shutdown stops the watcher before it reports NOT_SERVING.
    let database_watch = stop.child_token();
    db::health::watch_database(
        database.clone(),
        health.clone(),
        <Server as tonic::server::NamedService>::NAME,
        database_watch.clone(),
    );
    let (reflection_v1, reflection_v1alpha) =
        grpc::reflection_services(&[<Server as tonic::server::NamedService>::NAME])?;

    let local_addr = listener.local_addr()?;
    let incoming = tls::accepted(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        tls.as_ref(),
    );
    let server = grpc::server_builder()
        .layer(ObserveLayer::new(
            &registry,
            &[<Server as tonic::server::NamedService>::NAME],
        ))
        // Every call but health must carry the internal token.
        .layer(InternalAuthLayer::new(&config.internal_token))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(Server::new(api).max_decoding_message_size(grpc::MAX_DECODING_MESSAGE_SIZE))
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());

    tracing::info!(%local_addr, backend = database.backend_name(), tls = tls.is_some(), mtls = config.tls.tls_client_ca.is_some(), "conversation-svc listening");
    let drain = grpc::Drain {
        health,
        services: vec![<Server as tonic::server::NamedService>::NAME],
        watchers: database_watch,
        stop,
        grace: config.shutdown_grace,
    };
    grpc::run_until_drained(server, shutdown, drain).await?;
    database.close().await;
    tracing::info!("conversation-svc stopped");
    Ok(())
}
