//! The gateway's health per upstream: NOT_SERVING for a service whose upstream is down, so
//! balancers and operators see which half of the system is missing.

use std::time::Duration;

use switchboard::{metrics::Gauge, replicas::Replicas};
use tokio_util::sync::CancellationToken;
use tonic_health::{
    ServingStatus,
    pb::{HealthCheckRequest, health_check_response, health_client::HealthClient},
    server::HealthReporter,
};

/// Polls `service` on `replicas` every `interval` and mirrors the answer under its name (a
/// check goes to a replica that is up, so it says SERVING while any one serves), and in `up`
/// (1 or 0).
pub fn watch(
    reporter: HealthReporter,
    service: &'static str,
    channel: Replicas,
    interval: Duration,
    up: Gauge,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut client = HealthClient::new(channel);
        let mut last = None;
        loop {
            let request = HealthCheckRequest {
                service: service.to_owned(),
            };
            let check =
                tokio::time::timeout(interval.max(Duration::from_secs(1)), client.check(request))
                    .await;
            let status = match check {
                Ok(Ok(response))
                    if response.get_ref().status()
                        == health_check_response::ServingStatus::Serving =>
                {
                    ServingStatus::Serving
                }
                _ => ServingStatus::NotServing,
            };
            up.set(if status == ServingStatus::Serving {
                1.0
            } else {
                0.0
            });
            if last != Some(status) {
                tracing::info!(%service, ?status, "upstream health changed");
                reporter.set_service_status(service, status).await;
                last = Some(status);
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(interval) => {}
            }
        }
    });
}
