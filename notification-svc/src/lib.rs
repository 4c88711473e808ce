//! Switchboard notification service: Send, List, MarkRead, the inbox state changes (MarkSeen,
//! MarkUnread, Archive, Unarchive) and Subscribe over gRPC, on SQLite or PostgreSQL.
//!
//! `serve` is the one entry point, used by `main.rs` and by the tests alike.

pub mod api;
pub mod config;
pub mod domain;
pub mod feed;
pub mod group_commit;
pub mod hub;
pub mod metrics;
pub mod preferences;
pub mod store;
pub mod waker;

use std::{future::Future, sync::Arc, time::Duration};

use switchboard::{
    db,
    grpc::{self, Listeners},
    identity::InternalAuthLayer,
    observe::ObserveLayer,
    proto::notification::v1::notification_service_server::NotificationServiceServer,
    tls,
};
use tokio_util::sync::CancellationToken;
use tonic::transport::server::TcpIncoming;

pub use config::Config;

pub use crate::{
    group_commit::CommitStats,
    hub::{Hub, Limits},
    metrics::ServiceMetrics,
};

use crate::{
    api::{NotificationApi, StreamStats},
    feed::Feed,
    group_commit::{Committer, Marks, Sends},
    store::NotificationStore,
    waker::WakeUp,
};

/// How often notifications past the retention are deleted.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);

fn prune_periodically(
    store: Arc<dyn NotificationStore>,
    retention: Duration,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let before = switchboard::time::now_micros()
                - i64::try_from(retention.as_micros()).unwrap_or(i64::MAX);
            match store.prune(before).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "notifications past retention deleted"),
                Err(err) => tracing::warn!(error = %err, "pruning failed; retrying later"),
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(PRUNE_INTERVAL) => {}
            }
        }
    });
}

/// Runs the service on `listeners` until `shutdown` resolves, then drains: health turns
/// NOT_SERVING, Subscribe streams end with UNAVAILABLE, in-flight calls get
/// `config.shutdown_grace` to finish.
pub async fn serve(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let internals = Internals::new(&config);
    serve_with_internals(config, listeners, shutdown, internals).await
}

/// The internals of a service that a caller may create and keep to watch them (tests count
/// open streams and committed batches; the dev stack shows open streams). The service uses
/// them as given: they are shared with the caller, not substitutes.
#[derive(Clone)]
pub struct Internals {
    /// The fan-out to Subscribe streams (its limits apply).
    pub hub: Arc<Hub>,
    /// The Send committer's counters: how many Sends went in how many transactions.
    pub commits: Arc<CommitStats>,
    /// The state-change committer's counters (MarkRead, MarkSeen, ...).
    pub marks: Arc<CommitStats>,
    /// Makes the snooze waker look for due notifications again (a Snooze pokes it; a test
    /// that moved a snooze's time into the past does too).
    pub wake_up: WakeUp,
    /// What the Subscribe streams did (how often they read counts).
    pub streams: Arc<StreamStats>,
}

impl Internals {
    /// Fresh internals for `config`: a hub with its stream caps, counters at zero.
    pub fn new(config: &Config) -> Self {
        Self {
            hub: Arc::new(Hub::with_limits(config.stream_limits())),
            commits: Arc::default(),
            marks: Arc::default(),
            wake_up: WakeUp::default(),
            streams: Arc::default(),
        }
    }
}

/// [`serve`] with internals the caller keeps (see [`Internals`]).
pub async fn serve_with_internals(
    config: Config,
    listeners: impl Into<Listeners>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    internals: Internals,
) -> anyhow::Result<()> {
    let Listeners {
        api: listener,
        metrics: metrics_listener,
    } = listeners.into();
    let Internals {
        hub,
        commits,
        marks,
        wake_up,
        streams,
    } = internals;
    switchboard::identity::require_internal_token(&config.internal_token)?;
    // Before the database: a bad certificate stops start-up at once, naming its files.
    let tls = tls::ServerTls::from_flags(&config.tls, &[tls::ALPN_H2])?;
    // Serves until this function returns, after the drain.
    let metrics_stop = CancellationToken::new();
    let _stop_metrics = metrics_stop.clone().drop_guard();
    let registry = switchboard::metrics::start(
        &config.metrics,
        metrics_listener,
        "notification-svc",
        metrics_stop,
    )
    .await?;
    let database = db::connect(&config.database_url, &store::MIGRATIONS).await?;
    switchboard::metrics::pool_connections(&registry, {
        let database = database.clone();
        move || database.pool_sizes()
    });
    ServiceMetrics::watch_streams(&registry, hub.clone());
    commits.observe_batch_sizes(&registry, "send");
    marks.observe_batch_sizes(&registry, "state");
    let service_metrics = Arc::new(ServiceMetrics::new(&registry));
    let store = store::for_database(&database);
    let stop = CancellationToken::new();
    if let Some(tls) = &tls {
        tls.watch(stop.clone());
    }
    let feed = Feed::start(store.clone(), hub.clone(), stop.clone()).await?;
    prune_periodically(store.clone(), config.retention, stop.clone());
    waker::start(store.clone(), feed.clone(), wake_up.clone(), stop.clone());
    // Its own token, cancelled only once the server has drained: writes still in flight
    // during the grace period must commit.
    let commit_stop = CancellationToken::new();
    let _stop_committer_on_any_exit = commit_stop.clone().drop_guard();
    let (sends, committing_sends) = Committer::start(
        Sends(store.clone()),
        feed.clone(),
        commits,
        commit_stop.clone(),
    );
    let (marks, committing_marks) = Committer::start(
        Marks(store.clone()),
        feed.clone(),
        marks,
        commit_stop.clone(),
    );
    let api = NotificationApi::new(
        store,
        (sends, marks),
        (hub, feed, wake_up, streams),
        service_metrics,
        config.heartbeat_interval,
        config.retention,
        stop.clone(),
    );

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<NotificationServiceServer<NotificationApi>>()
        .await;
    // Its own token: shutdown stops the watcher before it reports NOT_SERVING.
    let database_watch = stop.child_token();
    db::health::watch_database(
        database.clone(),
        health.clone(),
        <NotificationServiceServer<NotificationApi> as tonic::server::NamedService>::NAME,
        database_watch.clone(),
    );
    let (reflection_v1, reflection_v1alpha) = grpc::reflection_services(&[
        <NotificationServiceServer<NotificationApi> as tonic::server::NamedService>::NAME,
    ])?;

    let local_addr = listener.local_addr()?;
    let incoming = tls::accepted(
        TcpIncoming::from(listener).with_nodelay(Some(true)),
        tls.as_ref(),
    );
    let server = grpc::server_builder()
        .layer(ObserveLayer::new(
            &registry,
            &[<NotificationServiceServer<NotificationApi> as tonic::server::NamedService>::NAME],
        ))
        // Every call but health must carry the internal token.
        .layer(InternalAuthLayer::new(&config.internal_token))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(
            NotificationServiceServer::new(api)
                .max_decoding_message_size(grpc::MAX_DECODING_MESSAGE_SIZE),
        )
        .serve_with_incoming_shutdown(incoming, stop.clone().cancelled_owned());

    tracing::info!(%local_addr, backend = database.backend_name(), tls = tls.is_some(), mtls = config.tls.tls_client_ca.is_some(), "notification-svc listening");
    let drain = grpc::Drain {
        health,
        services: vec![
            <NotificationServiceServer<NotificationApi> as tonic::server::NamedService>::NAME,
        ],
        watchers: database_watch,
        stop,
        grace: config.shutdown_grace,
    };
    let served = grpc::run_until_drained(server, shutdown, drain).await;
    // The batches in progress finish; writes still queued are answered UNAVAILABLE.
    commit_stop.cancel();
    for committing in [committing_sends, committing_marks] {
        if let Err(err) = committing.await {
            tracing::error!(error = %err, "group committer failed");
        }
    }
    database.close().await;
    served?;
    tracing::info!("notification-svc stopped");
    Ok(())
}
