//! The CPU backend's own worker threads, which spin between jobs.
//!
//! A training step hands the cores a dozen or more short jobs (the pieces
//! of each product, of each elementwise pass), a few microseconds to a
//! millisecond each. Rayon's workers go to sleep soon after they run out of
//! work, and waking one took a median 50–100 µs on the 2-vCPU virtual
//! machine this was measured on (`examples/thread_wake.rs`), longer than
//! many of the step's jobs: the calling thread then ran most pieces
//! itself. Like OpenMP's (which PyTorch's MKL uses), these workers keep
//! polling for [`SPIN`] after each job before they sleep, so a job that
//! follows soon after starts on every core within a microsecond or two.
//!
//! Every parallel loop of the CPU backend runs here: the products' pieces,
//! elementwise passes ([`par::split`](super::par::split)), and the
//! convolution, pooling, batch norm and augmentation loops ([`OnPool`]).
//! With some of them on rayon, its workers and these, polling, would share
//! the cores (LeNet-5's CPU step ran 1.5–2× slower that way).
//!
//! A job is a count of pieces and a function of the piece's index; the
//! threads claim pieces one at a time, so a core that runs slower (a busy
//! neighbour on a shared machine) takes fewer. Which thread runs a piece
//! never changes what the piece computes, so results do not depend on it.
//! One job runs at a time: a job submitted while another runs (from
//! another thread, or from inside a piece) goes to rayon's pool instead.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex, OnceLock, TryLockError};
use std::time::{Duration, Instant};

/// How long an idle worker keeps polling for the next job before it
/// sleeps. The gaps between a step's jobs are mostly under 100 µs; a
/// longer spin only burns a core after the last step (Intel's OpenMP
/// spins for 200 ms by default, GNU's for about 0.3 ms).
const SPIN: Duration = Duration::from_millis(2);

/// Runs `piece(i)` for every `i` in `0..count`, on the calling thread and
/// the pool's workers, and returns when all have run (a panic in a piece is
/// raised again here). The pool has as many threads, the caller included,
/// as rayon's (`RAYON_NUM_THREADS`, else one per core).
pub(crate) fn for_each_piece(count: usize, piece: &(dyn Fn(usize) + Sync)) {
    match pool() {
        Some(pool) if count > 1 => pool.run(count, piece),
        None if count > 1 && rayon::current_num_threads() > 1 => rayon_pieces(count, piece),
        // One piece, or one thread: in order, here. (Rayon would run them
        // on its one worker while this thread sleeps, two context switches
        // a job.)
        _ => (0..count).for_each(piece),
    }
}

/// `for_each` and `map` over an iterator's items with the items shared
/// among the pool's threads: the CPU kernels' parallel loops (a chunk of
/// samples, an image, a row of an im2col matrix each), in place of rayon's
/// parallel iterators, so that rayon's workers and this pool's never
/// share the cores.
///
/// The items are collected first; each runs exactly once, on one thread.
pub(crate) trait OnPool: Iterator + Sized
where
    Self::Item: Send,
{
    /// `f` on every item.
    fn for_each_on_pool(self, f: impl Fn(Self::Item) + Sync) {
        let items: Vec<Mutex<Option<Self::Item>>> = self.map(|i| Mutex::new(Some(i))).collect();
        for_each_piece(items.len(), &|i| {
            if let Some(item) = take(&items[i]) {
                f(item)
            }
        });
    }

    /// `f` of every item, in the items' order.
    fn map_on_pool<R: Send>(self, f: impl Fn(Self::Item) -> R + Sync) -> Vec<R> {
        let items: Vec<Mutex<Option<Self::Item>>> = self.map(|i| Mutex::new(Some(i))).collect();
        let results: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
        for_each_piece(items.len(), &|i| {
            if let Some(item) = take(&items[i]) {
                *results[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(f(item));
            }
        });
        results
            .into_iter()
            .map(|r| r.into_inner().ok().flatten().expect("every piece ran"))
            .collect()
    }
}

impl<I: Iterator> OnPool for I where I::Item: Send {}

/// The item in `slot`, taken by the one piece that runs it.
fn take<T>(slot: &Mutex<Option<T>>) -> Option<T> {
    slot.lock().unwrap_or_else(|e| e.into_inner()).take()
}

/// The pieces on rayon's pool: for a job that finds the pool busy, or
/// where no worker thread could be started.
fn rayon_pieces(count: usize, piece: &(dyn Fn(usize) + Sync)) {
    use rayon::iter::{IntoParallelIterator, ParallelIterator};
    (0..count).into_par_iter().for_each(piece);
}

/// The process's pool, started at the first job; `None` with one thread
/// (or where no thread can be started, as in a browser).
fn pool() -> Option<&'static Pool> {
    static POOL: OnceLock<Option<&'static Pool>> = OnceLock::new();
    *POOL.get_or_init(|| {
        let threads = rayon::current_num_threads();
        if threads <= 1 {
            return None;
        }
        let pool: &'static Pool = Box::leak(Box::default());
        let started = (1..threads).all(|w| {
            std::thread::Builder::new()
                .name(format!("wgtrain-cpu-{w}"))
                .spawn(move || pool.work())
                .is_ok()
        });
        // Workers that did start only ever help: a job never waits for a
        // particular one.
        started.then_some(pool)
    })
}

/// A job: the function that runs one piece. It lives on the submitting
/// thread's stack; [`Pool::run`] returns only after every piece has run,
/// and a worker only reads it after claiming a piece of the job's epoch.
struct Job<'a> {
    piece: &'a (dyn Fn(usize) + Sync),
}

#[derive(Default)]
struct Pool {
    /// The current job's epoch (high 32 bits) and next unclaimed piece
    /// (low 32): one word, so that a claim cannot land in a later job.
    state: AtomicU64,
    /// The current job's piece count.
    count: AtomicUsize,
    /// The current job ([`Job`], its lifetime erased).
    job: AtomicPtr<Job<'static>>,
    /// Pieces of the current job that have finished.
    done: AtomicUsize,
    /// Whether a piece of the current job panicked.
    panicked: AtomicBool,
    /// Held by the submitting thread for the whole job.
    busy: Mutex<u32>,
    /// Workers asleep; they wait on `wake` under `sleep`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

impl Pool {
    fn run(&self, count: usize, piece: &(dyn Fn(usize) + Sync)) {
        let mut epoch = match self.busy.try_lock() {
            Ok(epoch) => epoch,
            // A panic raised again out of an earlier job poisons the
            // lock; the pool itself is whole (every piece had finished).
            Err(TryLockError::Poisoned(e)) => e.into_inner(),
            Err(TryLockError::WouldBlock) => return rayon_pieces(count, piece),
        };
        *epoch = epoch.wrapping_add(1);
        let job = Job { piece };
        self.job.store(
            (&job as *const Job<'_>).cast_mut().cast(),
            Ordering::Release,
        );
        self.count.store(count, Ordering::Release);
        self.done.store(0, Ordering::Release);
        self.panicked.store(false, Ordering::Release);
        // Publishing the epoch starts the job. SeqCst, with the sleeper
        // count's below and in `work`: either a worker going to sleep sees
        // the new epoch, or this thread sees it asleep and wakes it.
        self.state.store(u64::from(*epoch) << 32, Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_all();
        }
        self.claim_pieces(*epoch);
        let mut polls = 0u32;
        while self.done.load(Ordering::Acquire) < count {
            polls = polls.wrapping_add(1);
            if polls.is_multiple_of(1024) {
                // A worker descheduled by the OS: let it have the core.
                std::thread::yield_now();
            }
            std::hint::spin_loop();
        }
        if self.panicked.load(Ordering::Acquire) {
            resume_unwind(Box::new("a piece of a CPU job panicked"));
        }
    }

    /// Claims and runs pieces of the job of `epoch` until none is left.
    fn claim_pieces(&self, epoch: u32) {
        loop {
            let state = self.state.load(Ordering::Acquire);
            let next = (state & u64::from(u32::MAX)) as usize;
            if (state >> 32) as u32 != epoch || next >= self.count.load(Ordering::Acquire) {
                return;
            }
            if self
                .state
                .compare_exchange_weak(state, state + 1, Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // SAFETY: the claim succeeded in `epoch`, whose job is still
            // running (this piece has not finished), so `run` has not
            // returned and the job it stored is alive.
            let job = unsafe { &*self.job.load(Ordering::Acquire) };
            if catch_unwind(AssertUnwindSafe(|| (job.piece)(next))).is_err() {
                self.panicked.store(true, Ordering::Release);
            }
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn epoch(&self) -> u32 {
        (self.state.load(Ordering::SeqCst) >> 32) as u32
    }

    /// A worker: runs pieces of each new job, polling for [`SPIN`] after
    /// each before it sleeps.
    fn work(&self) {
        let mut seen = self.epoch();
        loop {
            let idle_since = Instant::now();
            let mut polls = 0u32;
            while self.epoch() == seen {
                polls = polls.wrapping_add(1);
                if polls.is_multiple_of(256) && idle_since.elapsed() > SPIN {
                    let mut guard = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
                    self.sleepers.fetch_add(1, Ordering::SeqCst);
                    while self.epoch() == seen {
                        guard = self.wake.wait(guard).unwrap_or_else(|e| e.into_inner());
                    }
                    self.sleepers.fetch_sub(1, Ordering::SeqCst);
                    break;
                }
                std::hint::spin_loop();
            }
            seen = self.epoch();
            self.claim_pieces(seen);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_piece_runs_once_in_consecutive_and_concurrent_jobs() {
        // Jobs back to back, and from several threads at once (all but one
        // find the pool busy and go to rayon), each piece exactly once.
        std::thread::scope(|s| {
            for t in 0..3 {
                s.spawn(move || {
                    for job in 0..200 {
                        let count = 1 + (job * 7 + t) % 37;
                        let hits: Vec<AtomicUsize> =
                            (0..count).map(|_| AtomicUsize::new(0)).collect();
                        for_each_piece(count, &|i| {
                            hits[i].fetch_add(1, Ordering::Relaxed);
                        });
                        assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
                    }
                });
            }
        });
    }

    #[test]
    fn a_job_after_the_workers_slept_still_runs_everywhere() {
        for_each_piece(4, &|_| {});
        std::thread::sleep(SPIN * 3);
        let hits = AtomicUsize::new(0);
        for_each_piece(64, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.into_inner(), 64);
    }

    #[test]
    fn a_panicking_piece_panics_the_caller_and_the_pool_still_works() {
        let caught = catch_unwind(|| for_each_piece(8, &|i| assert_ne!(i, 5, "piece five")));
        assert!(caught.is_err());
        let hits = AtomicUsize::new(0);
        for_each_piece(8, &|_| {
            hits.fetch_add(1, Ordering::Relaxed);
        });
        assert_eq!(hits.into_inner(), 8);
    }
}
