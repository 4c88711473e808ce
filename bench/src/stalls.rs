//! How late a sleeping thread wakes on this host, measured beside a latency window.
//!
//! Why: a VM's vCPU is not always running. On the sixth session's host, a thread asked to
//! sleep 1 ms woke more than 10 ms late 14 times in 20 idle seconds (up to 17 ms), and a
//! delivery that crosses the generator, a service and its database inherits such stalls in
//! its tail. The probe puts that count beside the tail it may explain, from the same seconds.
//!
//! It is not free of effect: waking 1,000 times a second keeps one vCPU busier than it would
//! be, which can shorten other processes' wake-ups. The direct-delivery tails with it (run 4
//! and the sixth session's probed runs) and without it (earlier) fall in the same range.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use serde::Serialize;

/// What the probe asks for each time.
const NAP: Duration = Duration::from_millis(1);

/// Oversleeps of a 1 ms sleep over one window.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Stalls {
    pub naps: u64,
    pub over_5ms: u64,
    pub over_10ms: u64,
    pub max_ms: f64,
}

impl Stalls {
    /// For a row's note and the target lines.
    pub fn describe(&self) -> String {
        format!(
            "a 1 ms sleep woke over 10 ms late {} times (over 5 ms {} times, worst {:.1} ms) in {} naps",
            self.over_10ms, self.over_5ms, self.max_ms, self.naps
        )
    }
}

/// A thread that naps until told to stop.
pub struct StallProbe {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Stalls>,
}

impl StallProbe {
    pub fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut stalls = Stalls::default();
                while !stop.load(Ordering::Relaxed) {
                    let started = Instant::now();
                    std::thread::sleep(NAP);
                    let late = started.elapsed().saturating_sub(NAP);
                    stalls.naps += 1;
                    stalls.over_5ms += u64::from(late > Duration::from_millis(5));
                    stalls.over_10ms += u64::from(late > Duration::from_millis(10));
                    stalls.max_ms = stalls.max_ms.max(late.as_secs_f64() * 1000.0);
                }
                stalls
            }
        });
        Self { stop, thread }
    }

    pub fn finish(self) -> Stalls {
        self.stop.store(true, Ordering::Relaxed);
        // A probe that panicked reports nothing rather than failing the run.
        self.thread.join().unwrap_or_default()
    }
}
