//! Results: one row per measurement, written as JSON and as a markdown table, with every
//! figure also given as a ratio to the ceiling or to the direct call of the same run.

use std::{fmt::Write as _, path::Path};

use serde::Serialize;

use crate::load::Percentiles;

/// One measured scenario on one path.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub backend: String,
    pub scenario: String,
    /// `direct`, `gateway` or `ceiling`.
    pub path: String,
    pub rps: f64,
    #[serde(flatten)]
    pub latency: Percentiles,
    pub ok: u64,
    pub errors: u64,
    /// CPU seconds the servers involved used during the measured window (and warm-up).
    pub server_cpu_s: f64,
    /// Resident memory of the main server at the end, MiB (VmRSS).
    pub server_rss_mib: f64,
    /// The part of it that is the server's own (RssAnon): RSS also counts the SQLite file
    /// pages it has mapped, which are the kernel's page cache.
    pub server_anon_mib: f64,
    /// What `ratio` compares with: `ceiling` (rps) or `direct` (rps).
    pub compared_to: Option<String>,
    pub ratio: Option<f64>,
    /// `idle-streams` only: server RSS per open stream, KiB.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kib_per_stream: Option<f64>,
    /// `fanout-direct` only: how late a 1 ms sleep woke on this host in the same window.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_stalls: Option<crate::stalls::Stalls>,
    pub note: String,
}

/// A target of the performance issue, checked against this run (reported, never asserted).
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub backend: String,
    pub target: String,
    pub measured: String,
    pub met: bool,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub started_at: String,
    pub machine: String,
    /// The settings of the scenarios that ran, and only those.
    pub settings: String,
    pub backends: Vec<String>,
    /// What was measured: `ceiling`, then each scenario with a row of its own.
    pub ran: Vec<String>,
    /// `--only` left some scenario out: written as `partial-*`, never as `latest`.
    pub partial: bool,
    pub rows: Vec<Row>,
    pub targets: Vec<Target>,
}

/// The names of what `rows` measured, in order, once each; the ceiling rows count as one.
pub fn ran(rows: &[Row]) -> Vec<String> {
    let mut ran: Vec<String> = Vec::new();
    for row in rows {
        let name = if row.path == "ceiling" {
            "ceiling"
        } else {
            row.scenario.as_str()
        };
        if !ran.iter().any(|r| r == name) {
            ran.push(name.to_owned());
        }
    }
    ran
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# Switchboard benchmark, {}\n", self.started_at);
        let _ = writeln!(
            out,
            "Machine: {}. Settings: {}.\n",
            self.machine, self.settings
        );
        let _ = writeln!(
            out,
            "Ran: {} on {}.{}\n",
            self.ran.join(", "),
            self.backends.join(", "),
            if self.partial {
                " A partial run (--only): not every scenario."
            } else {
                ""
            }
        );
        let mut backends: Vec<&str> = self.rows.iter().map(|r| r.backend.as_str()).collect();
        backends.dedup();
        for backend in backends {
            let _ = writeln!(out, "## {backend}\n");
            let _ = writeln!(
                out,
                "| scenario | path | rps | p50 µs | p99 µs | p99.9 µs | ok | errors | server CPU s | RSS MiB | anon MiB | ratio | note |"
            );
            let _ = writeln!(
                out,
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|"
            );
            for row in self.rows.iter().filter(|r| r.backend == backend) {
                let ratio = match (&row.compared_to, row.ratio) {
                    (Some(to), Some(ratio)) => format!("{:.1}% of {to}", ratio * 100.0),
                    _ => String::new(),
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {} | {} | {:.2} | {:.1} | {:.1} | {} | {} |",
                    row.scenario,
                    row.path,
                    row.rps,
                    row.latency.p50_us,
                    row.latency.p99_us,
                    row.latency.p999_us,
                    row.ok,
                    row.errors,
                    row.server_cpu_s,
                    row.server_rss_mib,
                    row.server_anon_mib,
                    ratio,
                    row.note
                );
            }
            let _ = writeln!(out);
            let targets: Vec<&Target> = self
                .targets
                .iter()
                .filter(|t| t.backend == backend)
                .collect();
            if !targets.is_empty() {
                let _ = writeln!(out, "| target | measured | met |\n|---|---|---|");
                for t in targets {
                    let met = if t.met { "yes" } else { "**no**" };
                    let _ = writeln!(out, "| {} | {} | {met} |", t.target, t.measured);
                }
                let _ = writeln!(out);
            }
        }
        out
    }

    /// `run-<time>` for a full run, `partial-<time>` for a partial one.
    pub fn file_stem(&self) -> String {
        let kind = if self.partial { "partial" } else { "run" };
        format!("{kind}-{}", self.started_at.replace(':', "-"))
    }

    /// Writes `<stem>.json` and `<stem>.md` into `dir`, and, for a full run only, the same
    /// as `latest.*`: the committed results are replaced only by results of the same kind.
    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(dir)?;
        let json = serde_json::to_string_pretty(self)?;
        let markdown = self.markdown();
        let stem = self.file_stem();
        let names: &[&str] = if self.partial {
            &[&stem]
        } else {
            &[&stem, "latest"]
        };
        for name in names {
            std::fs::write(dir.join(format!("{name}.json")), &json)?;
            std::fs::write(dir.join(format!("{name}.md")), &markdown)?;
        }
        Ok(())
    }
}
