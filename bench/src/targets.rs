//! The performance issue's targets, checked against one run's rows. Reported in the results,
//! never asserted: a benchmark on a shared two-core machine must not fail a build.

use switchboard::testing::Backend;

use crate::report::{Row, Target};

pub fn check(backend: Backend, rows: &[Row]) -> Vec<Target> {
    let find = |scenario: &str, path: &str| {
        rows.iter()
            .find(|r| r.scenario == scenario && r.path == path)
    };
    let mut targets = Vec::new();
    let mut add = |target: String, measured: String, met: bool| {
        targets.push(Target {
            backend: backend.name().into(),
            target,
            measured,
            met,
        })
    };
    if let (Some(direct), Some(gateway)) = (find("list", "direct"), find("list", "gateway")) {
        let share = gateway.rps / direct.rps;
        add(
            "gateway keeps ≥ 70% of direct rps on list".into(),
            format!("{:.1}%", share * 100.0),
            share >= 0.70,
        );
    }
    if let (Some(direct), Some(gateway)) = (
        find("list-unloaded", "direct"),
        find("list-unloaded", "gateway"),
    ) {
        let added = gateway.latency.p50_us - direct.latency.p50_us;
        // What a hop that does nothing adds, in the same turns: the part no proxy can save.
        let floor = find("list-unloaded", "relay")
            .map(|relay| {
                format!(
                    "; a byte relay adds {:.0} µs",
                    relay.latency.p50_us - direct.latency.p50_us
                )
            })
            .unwrap_or_default();
        add(
            "gateway adds < 150 µs p50 on list (one call in flight)".into(),
            format!(
                "{added:.0} µs ({:.0} vs {:.0} µs){floor}",
                gateway.latency.p50_us, direct.latency.p50_us
            ),
            added < 150.0,
        );
    }
    if let (Some(ceiling), Some(send)) = (find("list", "ceiling"), find("send", "direct")) {
        let needed = match backend {
            Backend::Sqlite => 0.25,
            Backend::Postgres => 0.15,
        };
        let share = send.rps / ceiling.rps;
        add(
            format!("send ≥ {:.0}% of the ceiling's rps", needed * 100.0),
            format!(
                "{:.1}% ({:.0} of {:.0} rps)",
                share * 100.0,
                send.rps,
                ceiling.rps
            ),
            share >= needed,
        );
    }
    if let (Some(small), Some(large)) = (find("list", "direct"), find("list-large", "direct")) {
        let share = large.rps / small.rps;
        add(
            "list on the large history within 20% of the 1,000-row rps".into(),
            format!(
                "{:.1}% ({:.0} vs {:.0} rps)",
                share * 100.0,
                large.rps,
                small.rps
            ),
            share >= 0.80,
        );
    }
    // Deliveries: every copy arrived, and the p99 is under the bound.
    for (scenario, what, bound_ms) in [
        ("fanout-broadcast", "broadcast to every subscriber", 250.0),
        ("fanout-direct", "direct notifications to subscribers", 20.0),
    ] {
        if let Some(fanout) = find(scenario, "direct") {
            let p99_ms = fanout.latency.p99_us / 1000.0;
            // The host's own stalls in the same seconds, where measured, to read a tail by.
            let host = fanout
                .host_stalls
                .map(|s| format!("; on this host {}", s.describe()))
                .unwrap_or_default();
            add(
                format!("{what}, p99 < {bound_ms} ms"),
                format!("p99 {p99_ms:.1} ms, {} missing{host}", fanout.errors),
                p99_ms < bound_ms && fanout.errors == 0 && fanout.ok > 0,
            );
        }
    }
    // Over both passes (each order once): the mean rps with metrics over the mean without,
    // and the servers' CPU seconds per call with metrics over those without.
    for scenario in ["list", "send"] {
        let passes = |path: &str| -> Vec<&Row> {
            rows.iter()
                .filter(|r| r.scenario == scenario && r.path == path)
                .collect()
        };
        let (off, on) = (passes("metrics-off"), passes("metrics-on"));
        if off.is_empty() || on.is_empty() {
            continue;
        }
        let mean_rps = |rows: &[&Row]| rows.iter().map(|r| r.rps).sum::<f64>() / rows.len() as f64;
        let cpu_per_call = |rows: &[&Row]| {
            rows.iter().map(|r| r.server_cpu_s).sum::<f64>()
                / rows.iter().map(|r| r.ok as f64).sum::<f64>().max(1.0)
        };
        let share = mean_rps(&on) / mean_rps(&off);
        add(
            format!("{scenario} with metrics kept and scraped within 3% of without (rps)"),
            format!(
                "{:.1}% ({:.0} vs {:.0} rps, both orders)",
                share * 100.0,
                mean_rps(&on),
                mean_rps(&off)
            ),
            share >= 0.97,
        );
        let cpu = cpu_per_call(&on) / cpu_per_call(&off);
        add(
            format!("{scenario}: servers' CPU per call with metrics within 3% of without"),
            format!(
                "{:+.1}% ({:.0} vs {:.0} µs per call)",
                (cpu - 1.0) * 100.0,
                cpu_per_call(&on) * 1e6,
                cpu_per_call(&off) * 1e6
            ),
            cpu <= 1.03,
        );
    }
    if let Some(idle) = find("idle-streams", "direct") {
        let kib = idle.kib_per_stream.unwrap_or(f64::INFINITY);
        add(
            "idle Subscribe stream < 24 KiB server RSS".into(),
            format!("{kib:.1} KiB ({} streams)", idle.ok),
            kib < 24.0 && idle.errors == 0,
        );
    }
    targets
}
