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
        self.ok as f64 / self.elapsed.as_secs_f64()
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
            let mut latency = histogram();
            let (mut ok, mut errors, mut first_error) = (0u64, 0u64, None);
            loop {
                let began = Instant::now();
                if began >= window_end {
                    break;
                }
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let result = op(Turn { worker, n }).await;
                let ended = Instant::now();
                if ended < window_start || ended > window_end {
                    continue;
                }
                match result {
                    Ok(()) => {
                        ok += 1;
                        let micros = (ended - began).as_micros().max(1) as u64;
                        let _ = latency.record(micros.min(100_000_000));
                    }
                    Err(err) => {
                        errors += 1;
                        first_error.get_or_insert_with(|| err.to_string());
                    }
                }
            }
            (ok, errors, first_error, latency)
        }));
    }
    let mut measured = Measured {
        ok: 0,
        errors: 0,
        elapsed: spec.duration,
        latency: histogram(),
        first_error: None,
    };
    for worker in workers {
        if let Ok((ok, errors, first_error, latency)) = worker.await {
            measured.ok += ok;
            measured.errors += errors;
            if measured.first_error.is_none() {
                measured.first_error = first_error;
            }
            let _ = measured.latency.add(&latency);
        }
    }
    measured
}
