//! The load generator: `inflight` workers share `connections` HTTP/2 connections and call one
//! operation back to back (closed loop) for a warm-up and then a measured window.
//!
//! Closed loop on purpose: with the generator on the same two cores as the servers, an open
//! loop would measure the generator's own queueing. Only operations that finish inside the
//! measured window count, so warm-up (connection set-up, caches) never pollutes the figures.

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::Serialize;

/// How hard and how long to push.
#[derive(Debug, Clone, Copy)]
pub struct LoadSpec {
    pub connections: usize,
    pub inflight: usize,
    pub warmup: Duration,
    pub duration: Duration,
}

/// What one worker call is told: which worker (pick a connection by it) and a global
/// sequence number (pick a user or an id by it).
#[derive(Debug, Clone, Copy)]
pub struct Turn {
    pub worker: usize,
    pub n: u64,
}

/// The outcome of one measured window.
#[derive(Debug, Clone)]
pub struct Measured {
    pub ok: u64,
    pub errors: u64,
    pub elapsed: Duration,
    /// Latency of successful calls, microseconds.
    pub latency: Histogram<u64>,
    pub first_error: Option<String>,
}

/// Latency summary, microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Percentiles {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
}

impl Percentiles {
    pub fn of(histogram: &Histogram<u64>) -> Self {
        if histogram.is_empty() {
            return Self::default();
        }
        Self {
            p50_us: histogram.value_at_quantile(0.5) as f64,
            p99_us: histogram.value_at_quantile(0.99) as f64,
            p999_us: histogram.value_at_quantile(0.999) as f64,
        }
    }
}

impl Measured {
    pub fn rps(&self) -> f64 {
        let seconds = self.elapsed.as_secs_f64();
        if seconds > 0.0 {
            self.ok as f64 / seconds
        } else {
            0.0
        }
    }
}

/// A histogram for microsecond latencies from 1 µs to 100 s, 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 100_000_000, 3).expect("static histogram bounds are valid")
}

/// Runs `op` in a closed loop and measures it.
pub async fn run<F, Fut, E>(spec: LoadSpec, op: F) -> Measured
where
    F: Fn(Turn) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let mut measured = run_interleaved(spec, 1, move |turn, _| op(turn)).await;
    measured.pop().unwrap_or_else(|| empty(spec.duration))
}

/// Runs `op` in a closed loop, each worker taking `paths` paths in turn (`op`'s second
/// argument), and measures each path on its own.
///
/// Why: a latency measured in one window and compared with one measured in the next carries
/// the machine's drift between the windows (on the VM this was written on, ±100 µs at p50
/// minutes apart). Interleaved, both paths see the same moments. With more than one path,
/// a path's `elapsed` is the time spent in its own calls, so its rps is what it would do
/// alone with the same latencies.
pub async fn run_interleaved<F, Fut, E>(spec: LoadSpec, paths: usize, op: F) -> Vec<Measured>
where
    F: Fn(Turn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send,
    E: std::fmt::Display,
{
    let paths = paths.max(1);
    let op = Arc::new(op);
    let counter = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let window_start = start + spec.warmup;
    let window_end = window_start + spec.duration;
    let mut workers = Vec::with_capacity(spec.inflight);
    for worker in 0..spec.inflight {
        let op = op.clone();
        let counter = counter.clone();
        workers.push(tokio::spawn(async move {
            let mut measured: Vec<Measured> = (0..paths).map(|_| empty(Duration::ZERO)).collect();
            let mut turn = worker;
            loop {
                let began = Instant::now();
                if began >= window_end {
                    break;
                }
                let path = turn % paths;
                turn += 1;
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let result = op(Turn { worker, n }, path).await;
                let ended = Instant::now();
                if ended < window_start || ended > window_end {
                    continue;
                }
                let this = &mut measured[path];
                this.elapsed += ended - began;
                match result {
                    Ok(()) => {
                        this.ok += 1;
                        let micros = (ended - began).as_micros().max(1) as u64;
                        let _ = this.latency.record(micros.min(100_000_000));
                    }
                    Err(err) => {
                        this.errors += 1;
                        this.first_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
            measured
        }));
    }
    let mut total: Vec<Measured> = (0..paths).map(|_| empty(Duration::ZERO)).collect();
    for worker in workers {
        if let Ok(measured) = worker.await {
            for (total, part) in total.iter_mut().zip(measured) {
                total.ok += part.ok;
                total.errors += part.errors;
                total.elapsed += part.elapsed;
                if total.first_error.is_none() {
                    total.first_error = part.first_error;
                }
                let _ = total.latency.add(&part.latency);
            }
        }
    }
    for total in &mut total {
        // One path: the window itself, however many workers shared it. Several: the time
        // spent in the path's own calls, divided among the workers that made them.
        total.elapsed = if paths == 1 {
            spec.duration
        } else {
            total.elapsed / spec.inflight.max(1) as u32
        };
    }
    total
}

fn empty(elapsed: Duration) -> Measured {
    Measured {
        ok: 0,
        errors: 0,
        elapsed,
        latency: histogram(),
        first_error: None,
    }
}
