//! How long rayon's pool takes to start the second half of a
//! `rayon::join` once its workers have been idle for a while: the reason
//! the CPU backend runs its jobs on its own spinning threads
//! (`src/backend/pool.rs`).
//!
//! ```text
//! cargo run --release --example thread_wake
//! ```
//!
//! Each line idles the calling thread for a given time, then joins a 30 µs
//! busy loop with a closure that records when it started; the median and
//! 90th percentile of 200 tries are printed. With one thread the second
//! half always waits for the first (about 30 µs).

use std::time::{Duration, Instant};

fn busy(d: Duration) {
    let t = Instant::now();
    while t.elapsed() < d {
        std::hint::spin_loop();
    }
}

fn main() {
    println!(
        "rayon pool of {} threads; second half of a join starts after:",
        rayon::current_num_threads()
    );
    for idle_us in [0u64, 20, 50, 100, 300, 1000] {
        let mut starts: Vec<f64> = (0..200)
            .map(|_| {
                busy(Duration::from_micros(idle_us));
                let t0 = Instant::now();
                let ((), start) = rayon::join(|| busy(Duration::from_micros(30)), || t0.elapsed());
                start.as_secs_f64() * 1e6
            })
            .collect();
        starts.sort_by(f64::total_cmp);
        println!(
            "  idle {idle_us:>4} µs before: median {:6.1} µs, p90 {:6.1} µs",
            starts[100], starts[180]
        );
    }
}
