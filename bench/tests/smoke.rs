//! The harness itself, run small on both backends: every scenario produces its row with
//! successful calls and no errors, the targets are evaluated, and both result files are
//! written. Nothing here looks at speed: figures belong to `cargo run -p bench`, not to CI.

use std::time::Duration;

use bench::{Backend, Settings, load::LoadSpec};

fn settings(out: &std::path::Path) -> (Settings, std::path::PathBuf) {
    let settings = Settings {
        exe: env!("CARGO_BIN_EXE_bench").into(),
        postgres_url: std::env::var("BENCH_POSTGRES_URL")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into()),
        load: LoadSpec {
            connections: 2,
            inflight: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
        },
        subscribers: 40,
        broadcasts: 2,
        direct_rate: 20,
        direct_seconds: 1,
        large_users: 30,
        rows_per_user: 5,
        only: Vec::new(),
    };
    (settings, out.to_path_buf())
}

async fn runs_every_scenario(backend: Backend) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (settings, out) = settings(dir.path());
    let report = bench::run(&settings, &[backend], &out)
        .await
        .expect("the suite runs");

    let expected = [
        ("list", "ceiling"),
        ("list-unloaded", "ceiling"),
        ("empty-unloaded", "gateway"),
        ("empty-unloaded", "relay"),
        ("list", "direct"),
        ("list", "gateway"),
        ("list-unloaded", "direct"),
        ("list-unloaded", "gateway"),
        ("list-unloaded", "relay"),
        ("send", "direct"),
        ("send", "gateway"),
        ("mark-read", "direct"),
        ("mark-read", "gateway"),
        ("mark-seen", "direct"),
        ("mark-seen", "gateway"),
        ("archive", "direct"),
        ("archive", "gateway"),
        ("conversation", "direct"),
        ("conversation", "gateway"),
        ("idle-streams", "direct"),
        ("fanout-broadcast", "direct"),
        ("fanout-direct", "direct"),
        ("list-large", "direct"),
        ("list", "metrics-off"),
        ("list", "metrics-on"),
        ("send", "metrics-off"),
        ("send", "metrics-on"),
    ];
    for (scenario, path) in expected {
        let row = report
            .rows
            .iter()
            .find(|r| r.scenario == scenario && r.path == path)
            .unwrap_or_else(|| panic!("no row for {scenario} {path}"));
        assert!(
            row.ok > 0,
            "{scenario} {path}: nothing succeeded ({})",
            row.note
        );
        assert_eq!(row.errors, 0, "{scenario} {path}: {}", row.note);
    }
    // Every copy of every broadcast reached every subscriber, and each direct one its own.
    let fanout = report
        .rows
        .iter()
        .find(|r| r.scenario == "fanout-broadcast")
        .expect("fanout row");
    assert_eq!(fanout.ok, 40 * 2);
    let idle = report
        .rows
        .iter()
        .find(|r| r.scenario == "idle-streams")
        .expect("idle row");
    assert!(idle.kib_per_stream.is_some());
    // Direct deliveries are reported beside how late the host woke a sleeping thread.
    let direct = report
        .rows
        .iter()
        .find(|r| r.scenario == "fanout-direct")
        .expect("fanout-direct row");
    let stalls = direct.host_stalls.expect("the stall probe ran");
    assert!(stalls.naps > 0, "{stalls:?}");
    assert!(direct.note.contains("a 1 ms sleep woke"), "{}", direct.note);
    assert!(direct.note.contains(&stalls.describe()), "{}", direct.note);
    assert!(
        report
            .targets
            .iter()
            .any(|t| t.target.starts_with("direct notifications")
                && t.measured.contains(&stalls.describe())),
        "{:?}",
        report.targets
    );
    // Gateway rows are compared with their direct twin, direct rows with the ceiling.
    let gateway_list = report
        .rows
        .iter()
        .find(|r| r.scenario == "list" && r.path == "gateway")
        .expect("gateway list row");
    assert_eq!(gateway_list.compared_to.as_deref(), Some("direct"));
    // The metrics scenario: both orders, each operation's on row a share of its pass's off row.
    for scenario in ["list", "send"] {
        let on: Vec<_> = report
            .rows
            .iter()
            .filter(|r| r.scenario == scenario && r.path == "metrics-on")
            .collect();
        assert_eq!(on.len(), 2, "{scenario}: one row per order");
        assert!(
            on.iter()
                .all(|r| r.compared_to.as_deref() == Some("metrics-off") && r.ratio.is_some())
        );
    }
    assert_eq!(report.targets.len(), 11, "{:?}", report.targets);
    // The added-latency target names the floor a byte relay measured in the same turns.
    assert!(
        report
            .targets
            .iter()
            .any(|t| t.target.starts_with("gateway adds") && t.measured.contains("byte relay")),
        "{:?}",
        report.targets
    );

    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("latest.json")).expect("latest.json written"),
    )
    .expect("valid JSON");
    assert_eq!(
        json["rows"].as_array().map(Vec::len),
        Some(report.rows.len())
    );
    let markdown = std::fs::read_to_string(out.join("latest.md")).expect("latest.md written");
    assert!(markdown.contains("| fanout-broadcast | direct |"));
    // A full run says so, and its header has the settings of every scenario.
    assert!(!report.partial);
    assert!(out.join(format!("{}.md", report.file_stem())).exists());
    assert!(markdown.contains("40 subscribers") && markdown.contains("30 × 5 large history"));
    assert!(
        markdown.contains(&format!("on {}.\n", backend.name())),
        "{markdown}"
    );
}

/// Every file in `dir`, by name.
fn files(dir: &std::path::Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("results directory")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_run_leaves_latest_alone_and_names_only_what_ran() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut settings, out) = settings(dir.path());
    settings.only = vec!["send".into()];
    // What a checkout has: the committed results of a full run.
    std::fs::write(out.join("latest.md"), "committed markdown").expect("write");
    std::fs::write(out.join("latest.json"), "{\"committed\": true}").expect("write");

    let report = bench::run(&settings, &[Backend::Sqlite], &out)
        .await
        .expect("the partial suite runs");

    assert!(report.partial);
    assert_eq!(report.ran, ["ceiling", "send"]);
    assert_eq!(
        std::fs::read_to_string(out.join("latest.md")).expect("latest.md"),
        "committed markdown"
    );
    assert_eq!(
        std::fs::read_to_string(out.join("latest.json")).expect("latest.json"),
        "{\"committed\": true}"
    );
    let stem = report.file_stem();
    assert!(stem.starts_with("partial-"), "{stem}");
    assert_eq!(
        files(&out),
        [
            "latest.json".to_owned(),
            "latest.md".to_owned(),
            format!("{stem}.json"),
            format!("{stem}.md"),
        ]
    );

    let markdown = std::fs::read_to_string(out.join(format!("{stem}.md"))).expect("partial md");
    let header: String = markdown
        .lines()
        .take_while(|l| !l.starts_with("## "))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        header.contains("Ran: ceiling, send on sqlite. A partial run"),
        "{header}"
    );
    assert!(header.contains("2 connections, 4 in flight"), "{header}");
    for not_run in [
        "subscribers",
        "large history",
        "fanout",
        "list-large",
        "postgres",
    ] {
        assert!(!header.contains(not_run), "{not_run} in {header}");
    }
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join(format!("{stem}.json"))).expect("partial json"),
    )
    .expect("valid JSON");
    assert_eq!(json["partial"], true);
    assert_eq!(json["ran"], serde_json::json!(["ceiling", "send"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_scenario_is_refused_before_anything_runs() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let (mut settings, out) = settings(dir.path());
    settings.only = vec!["lsit".into()];
    let err = bench::run(&settings, &[Backend::Sqlite], &out)
        .await
        .expect_err("a typo in --only is refused");
    assert!(err.to_string().contains("\"lsit\""), "{err}");
    assert!(files(&out).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_on_sqlite() {
    runs_every_scenario(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_suite_runs_on_postgres() {
    runs_every_scenario(Backend::Postgres).await;
}
