//! `bench` runs the benchmark suite; `bench serve <role>` is how it starts its servers.

use std::{path::PathBuf, time::Duration};

use bench::{Backend, Settings, load::LoadSpec, servers::Role};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "bench", about = "Switchboard benchmark suite")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Internal: serve one role with the flags after `--` (started by the suite itself).
    Serve {
        role: Role,
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args)]
struct RunArgs {
    /// Backends to measure.
    #[arg(long, value_delimiter = ',', default_value = "sqlite,postgres")]
    backends: Vec<Backend>,
    /// PostgreSQL server (databases are created and dropped on it).
    #[arg(
        long,
        env = "BENCH_POSTGRES_URL",
        default_value = "postgres://postgres@127.0.0.1:5432"
    )]
    postgres_url: String,
    /// HTTP/2 connections per client.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Calls in flight (closed loop).
    #[arg(long, default_value_t = 64)]
    inflight: usize,
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    warmup: Duration,
    /// Measured window of each unary scenario.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    duration: Duration,
    /// Idle Subscribe streams for fanout and idle-streams.
    #[arg(long, default_value_t = 10_000)]
    subscribers: usize,
    #[arg(long, default_value_t = 5)]
    broadcasts: usize,
    /// Direct notifications per second to random subscribers.
    #[arg(long, default_value_t = 50)]
    direct_rate: u32,
    #[arg(long, default_value_t = 5)]
    direct_seconds: u64,
    /// Users of the large history (each gets --rows-per-user notifications).
    #[arg(long, default_value_t = 10_000)]
    large_users: usize,
    #[arg(long, default_value_t = 100)]
    rows_per_user: usize,
    /// Only these scenarios (comma-separated: list, list-unloaded, send, mark-read,
    /// mark-seen, archive, conversation, fanout, list-large, metrics); the ceiling always runs. A run that leaves a
    /// scenario out writes partial-<time>.* and leaves latest.* alone.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Where the JSON and markdown results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // As in gateway's main.rs: its calls are served on threads of their own; the runtime it
    // is started on only accepts connections and watches health.
    // The relay, the floor under the gateway's hop, runs on one such thread too.
    let runtime = if matches!(
        cli.command,
        Some(Command::Serve {
            role: Role::Gateway | Role::Relay,
            ..
        })
    ) {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
    };
    match cli.command {
        Some(Command::Serve { role, args }) => {
            runtime.block_on(bench::servers::serve_role(role, args))
        }
        None => {
            let run = cli.run;
            let settings = Settings {
                exe: bench::servers::default_exe()?,
                postgres_url: run.postgres_url,
                load: LoadSpec {
                    connections: run.connections,
                    inflight: run.inflight,
                    warmup: run.warmup,
                    duration: run.duration,
                },
                subscribers: run.subscribers,
                broadcasts: run.broadcasts,
                direct_rate: run.direct_rate,
                direct_seconds: run.direct_seconds,
                large_users: run.large_users,
                rows_per_user: run.rows_per_user,
                only: run.only,
            };
            let report = runtime.block_on(bench::run(&settings, &run.backends, &run.out))?;
            println!("{}", report.markdown());
            let written = run.out.join(report.file_stem());
            if report.partial {
                eprintln!(
                    "bench: partial run written to {}.{{md,json}} (latest.* is left alone)",
                    written.display()
                );
            } else {
                eprintln!(
                    "bench: results written to {}.{{md,json}} and latest.{{md,json}}",
                    written.display()
                );
            }
            Ok(())
        }
    }
}
