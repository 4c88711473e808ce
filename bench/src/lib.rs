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

/// Runs the suite on `backends` and writes the report into `out`. Only a run of every
/// scenario replaces `latest.*`: one that `--only` cut short is written as
/// `partial-<time>.*`, so a quick check never overwrites the committed results.
pub async fn run(settings: &Settings, backends: &[Backend], out: &Path) -> anyhow::Result<Report> {
    settings.check_only()?;
    if backends.is_empty() {
        anyhow::bail!("no backend to measure");
    }
    let started_at = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let mut rows = Vec::new();
    let mut targets = Vec::new();
    for &backend in backends {
        eprintln!("bench: {} ...", backend.name());
        scenarios::run_backend(settings, backend, &mut rows, &mut targets).await?;
    }
    let report = Report {
        started_at,
        machine: machine(),
        settings: settings.describe(),
        backends: backends.iter().map(|b| b.name().to_owned()).collect(),
        ran: report::ran(&rows),
        partial: settings.leaves_scenarios_out(),
        rows,
        targets,
    };
    report.write(out)?;
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
