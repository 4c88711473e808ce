//! Prometheus metrics: one registry per server, exposed at `GET /metrics` on a port of its own.
//!
//! Each server owns a [`Registry`], not a process-wide recorder: the dev stack and the tests
//! run all three servers in one process, and each must expose only its own series. A
//! disabled registry (no `--metrics-listen`) hands out no-op handles, so code records
//! unconditionally and pays nothing when nobody scrapes.
//!
//! Storage and the text format are `metrics-exporter-prometheus`'s; process metrics are
//! `metrics-process`'s, collected at each scrape.

pub mod exporter;
pub mod grpc;

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use metrics::{Key, Label, Metadata, Recorder, SharedString};
use metrics_exporter_prometheus::{
    Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder,
};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::exporter::{Exposition, serve};

/// The handles services record through (no-ops from a disabled registry).
pub use metrics::{Counter, Gauge, Histogram};

/// The flag every binary shares.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct MetricsFlags {
    /// Serve Prometheus metrics at http://ADDR/metrics (plain HTTP, a port of its own);
    /// unset: no metrics are kept.
    #[arg(long, env = "METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
}

/// A server's registry, serving its scrape endpoint on `listener` (bound by a launcher that
/// needs to know the port first) or else on `flags.metrics_listen`, until `stop`. Disabled
/// when neither is given.
pub async fn start(
    flags: &MetricsFlags,
    listener: Option<TcpListener>,
    what: &str,
    stop: CancellationToken,
) -> anyhow::Result<Registry> {
    let listener = match (listener, flags.metrics_listen) {
        (Some(listener), _) => listener,
        (None, Some(addr)) => crate::grpc::bind(addr, &format!("{what}'s metrics")).await?,
        (None, None) => return Ok(Registry::disabled()),
    };
    let registry = Registry::enabled();
    serve(listener, registry.clone(), stop);
    Ok(registry)
}

/// Buckets of every duration histogram, in seconds: 100 µs to 10 s.
pub const SECONDS_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// Buckets of batch sizes (requests per group commit).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// A metric's labels, bounded by construction: callers pass fixed names and values from
/// small sets (codes, kinds, method names from the contracts), never ids.
pub type Labels = Vec<(&'static str, SharedString)>;

/// Computes gauges just before a scrape renders (open streams, pool connections).
type Collector = Box<dyn Fn(&Registry) + Send + Sync>;

struct Inner {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    process: metrics_process::Collector,
    collectors: Mutex<Vec<Collector>>,
}

/// One server's metrics, cheap to clone; [`Registry::disabled`] records nothing.
#[derive(Clone, Default)]
pub struct Registry(Option<Arc<Inner>>);

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Registry").field(&self.is_enabled()).finish()
    }
}

impl Registry {
    /// A registry that records, with histograms in the buckets above (the exporter would
    /// otherwise render summaries, which cannot be aggregated across replicas).
    pub fn enabled() -> Self {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
            .and_then(|b| {
                b.set_buckets_for_metric(Matcher::Suffix("_batch_size".into()), BATCH_BUCKETS)
            });
        let recorder = match builder {
            Ok(builder) => builder.build_recorder(),
            // Only empty bucket lists are refused; ours are constants.
            Err(_) => PrometheusBuilder::new().build_recorder(),
        };
        let handle = recorder.handle();
        let process = metrics_process::Collector::default();
        metrics::with_local_recorder(&recorder, || process.describe());
        Registry(Some(Arc::new(Inner {
            recorder,
            handle,
            process,
            collectors: Mutex::default(),
        })))
    }

    /// A registry that hands out no-op handles.
    pub fn disabled() -> Self {
        Registry(None)
    }

    pub fn is_enabled(&self) -> bool {
        self.0.is_some()
    }

    pub fn counter(&self, name: &'static str, help: &'static str, labels: Labels) -> Counter {
        match &self.0 {
            Some(inner) => {
                inner
                    .recorder
                    .describe_counter(name.into(), None, help.into());
                inner
                    .recorder
                    .register_counter(&key(name, labels), &metadata())
            }
            None => Counter::noop(),
        }
    }

    pub fn gauge(&self, name: &'static str, help: &'static str, labels: Labels) -> Gauge {
        match &self.0 {
            Some(inner) => {
                inner
                    .recorder
                    .describe_gauge(name.into(), None, help.into());
                inner
                    .recorder
                    .register_gauge(&key(name, labels), &metadata())
            }
            None => Gauge::noop(),
        }
    }

    /// A histogram; its buckets follow from its name's suffix (`_seconds`, `_batch_size`).
    pub fn histogram(&self, name: &'static str, help: &'static str, labels: Labels) -> Histogram {
        match &self.0 {
            Some(inner) => {
                inner
                    .recorder
                    .describe_histogram(name.into(), None, help.into());
                inner
                    .recorder
                    .register_histogram(&key(name, labels), &metadata())
            }
            None => Histogram::noop(),
        }
    }

    /// Runs `collect` before every scrape (for gauges read from elsewhere: a pool, a hub).
    pub fn on_scrape(&self, collect: impl Fn(&Registry) + Send + Sync + 'static) {
        if let Some(inner) = &self.0
            && let Ok(mut collectors) = inner.collectors.lock()
        {
            collectors.push(Box::new(collect));
        }
    }

    /// The Prometheus text format (0.0.4) of everything recorded, after the collectors ran.
    pub fn render(&self) -> String {
        let Some(inner) = &self.0 else {
            return String::new();
        };
        metrics::with_local_recorder(&inner.recorder, || inner.process.collect());
        if let Ok(collectors) = inner.collectors.lock() {
            for collect in collectors.iter() {
                collect(self);
            }
        }
        inner.handle.render()
    }

    /// Drains histogram samples into their buckets; the endpoint runs it periodically so
    /// unscraped histograms do not grow.
    fn run_upkeep(&self) {
        if let Some(inner) = &self.0 {
            inner.handle.run_upkeep();
        }
    }
}

impl Exposition for Registry {
    fn render(&self) -> String {
        Registry::render(self)
    }

    fn upkeep(&self) {
        self.run_upkeep();
    }
}

fn key(name: &'static str, labels: Labels) -> Key {
    let labels: Vec<Label> = labels.into_iter().map(|(k, v)| Label::new(k, v)).collect();
    Key::from_parts(name, labels)
}

fn metadata() -> Metadata<'static> {
    Metadata::new("switchboard", metrics::Level::INFO, None)
}

/// The gauge `switchboard_db_pool_connections{state}` (`idle`, `in_use`) of a pool whose
/// sizes `sizes` reads at scrape time as (open, idle).
pub fn pool_connections(
    registry: &Registry,
    sizes: impl Fn() -> (u32, u32) + Send + Sync + 'static,
) {
    const NAME: &str = "switchboard_db_pool_connections";
    const HELP: &str = "Database pool connections by state (idle or in_use).";
    let idle = registry.gauge(NAME, HELP, vec![("state", "idle".into())]);
    let in_use = registry.gauge(NAME, HELP, vec![("state", "in_use".into())]);
    registry.on_scrape(move |_| {
        let (open, idle_now) = sizes();
        idle.set(f64::from(idle_now));
        in_use.set(f64::from(open.saturating_sub(idle_now)));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disabled_registry_renders_nothing_and_its_handles_do_nothing() {
        let registry = Registry::disabled();
        registry.counter("x_total", "x", Vec::new()).increment(1);
        assert_eq!(registry.render(), "");
    }

    #[test]
    fn series_render_with_help_type_and_labels() {
        let registry = Registry::enabled();
        registry
            .counter("demo_total", "A demo.", vec![("kind", "a".into())])
            .increment(2);
        registry
            .histogram("demo_seconds", "Demo time.", Vec::new())
            .record(0.003);
        let text = registry.render();
        assert!(
            text.contains(
                "# HELP demo_total A demo.\n# TYPE demo_total counter\ndemo_total{kind=\"a\"} 2\n"
            ),
            "{text}"
        );
        assert!(
            text.contains("demo_seconds_bucket{le=\"0.005\"} 1"),
            "{text}"
        );
        assert!(
            text.contains("demo_seconds_bucket{le=\"0.0025\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE process_resident_memory_bytes gauge"),
            "{text}"
        );
    }

    #[test]
    fn gauges_read_at_scrape_time() {
        let registry = Registry::enabled();
        pool_connections(&registry, || (5, 2));
        let text = registry.render();
        assert!(
            text.contains("switchboard_db_pool_connections{state=\"in_use\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("switchboard_db_pool_connections{state=\"idle\"} 2"),
            "{text}"
        );
    }
}
