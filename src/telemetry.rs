//! Logging and tracing set-up shared by every binary: `tracing` with `RUST_LOG` filtering, as
//! text for a terminal or JSON for a log pipeline, and spans exported over OTLP/gRPC when the
//! standard `OTEL_EXPORTER_OTLP_ENDPOINT` is set (nothing is exported, and no OpenTelemetry
//! layer installed, when it is not).
//!
//! Logs go to stderr, so what a binary prints on stdout (devstack's banner and tokens) can be
//! captured on its own, and they are coloured only when stderr is a terminal (and `NO_COLOR`
//! is unset), so a file or a pipe gets no escape codes.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::{Resource, trace::SdkTracerProvider};
use tracing_subscriber::{
    EnvFilter, Layer, filter::LevelFilter, fmt, layer::SubscriberExt, util::SubscriberInitExt,
};

/// The standard variable naming the OTLP collector (`http://host:4317`).
pub const OTLP_ENDPOINT_ENV: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

/// Flushes exported spans when dropped: hold it until the binary ends.
#[must_use = "spans still queued are lost unless this lives until the end of main"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued, off the runtime's threads: the exporter's connection
    /// is driven by the runtime, which a current-thread runtime blocked here could not do.
    pub async fn shutdown(mut self) {
        if let Some(provider) = self.provider.take() {
            let finished = tokio::task::spawn_blocking(move || provider.shutdown()).await;
            if let Ok(Err(err)) = finished {
                eprintln!("exporting the last spans failed: {err}");
            }
        }
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("exporting the last spans failed: {err}");
        }
    }
}

/// Installs the global subscriber for the binary `service` (its `service.name` in exported
/// spans; `OTEL_SERVICE_NAME` wins). `RUST_LOG` wins; otherwise `info`. Call it inside the
/// Tokio runtime: the OTLP exporter's channel lives there.
pub fn init(format: LogFormat, service: &'static str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = fmt::layer()
        .with_target(true)
        .with_writer(std::io::stderr)
        .with_ansi(colours_wanted());
    let logs = match format {
        LogFormat::Text => logs.boxed(),
        LogFormat::Json => logs.json().boxed(),
    };
    let (provider, exporter_error) = match tracer_provider(service) {
        Ok(provider) => (provider, None),
        Err(err) => (None, Some(err)),
    };
    // Spans are exported at INFO whatever RUST_LOG says: quieter logs must not break traces.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer(service))
            .with_filter(LevelFilter::INFO)
    });
    // try_init: a second call (tests) keeps the first subscriber instead of panicking.
    let installed = tracing_subscriber::registry()
        .with(logs.with_filter(filter))
        .with(spans)
        .try_init()
        .is_ok();
    if let Some(err) = exporter_error {
        tracing::error!(error = %err, "{OTLP_ENDPOINT_ENV} is set but spans cannot be exported");
    }
    if installed && provider.is_some() {
        crate::trace::set_exporting();
        tracing::info!(endpoint = %std::env::var(OTLP_ENDPOINT_ENV).unwrap_or_default(), "exporting spans over OTLP");
    }
    Telemetry { provider }
}

/// A provider exporting in batches to the OTLP endpoint, or none when it is unset.
fn tracer_provider(service: &'static str) -> anyhow::Result<Option<SdkTracerProvider>> {
    if std::env::var_os(OTLP_ENDPOINT_ENV).is_none_or(|v| v.is_empty()) {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| service.to_owned());
    let provider = SdkTracerProvider::builder()
        .with_resource(Resource::builder().with_service_name(service).build())
        .with_batch_exporter(exporter)
        .build();
    Ok(Some(provider))
}

/// Colour only for a person reading a terminal; `NO_COLOR` (any value) turns it off.
fn colours_wanted() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// For tests: silent unless `TEST_LOG` is set, so failures stay readable.
pub fn init_for_tests() {
    if std::env::var_os("TEST_LOG").is_some() {
        // Tests never export: dropping the guard at once is fine.
        let _ = init(LogFormat::Text, "test");
    }
}
