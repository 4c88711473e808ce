//! Switchboard's benchmark harness.
//!
//! `run` measures the suite on each backend and writes `bench/results/`; the servers are
//! child processes of this same binary (`bench serve <role>`), each running the `serve` its
//! production binary runs. See bench/README.md for what is measured and what it bought.

pub mod ceiling;
pub mod identity;
pub mod load;
pub mod relay;
pub mod report;
pub mod scenarios;
pub mod servers;
pub mod stalls;
pub mod targets;

use std::path::Path;

pub use scenarios::Settings;
pub use switchboard::testing::Backend;

use report::Report;

/// Runs the whole suite on `backends` and writes the report into `out`.
pub async fn run(settings: &Settings, backends: &[Backend], out: &Path) -> anyhow::Result<Report> {
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for &backend in backends {
        eprintln!("bench: {} ...", backend.name());
        scenarios::run_backend(settings, backend, &mut rows, &mut targets).await?;
    }
    let report = Report {
        started_at: started_at.clone(),
        machine: machine(),
        settings: format!(
            "{} connections, {} in flight, {:?} warm-up + {:?} per scenario, {} subscribers, {} × {} large history",
            settings.load.connections,
            settings.load.inflight,
            settings.load.warmup,
            settings.load.duration,
            settings.subscribers,
            settings.large_users,
            settings.rows_per_user
        ),
        rows,
        targets,
    };
    let stem = format!("run-{}", started_at.replace(':', "-"));
    report.write(out, &stem)?;
    Ok(report)
}

fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{cores} cores, {model}; generator on the same machine")
}
