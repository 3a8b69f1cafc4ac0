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
//!
//! A product cut into one piece per thread cannot be shared that way:
//! more, smaller pieces would each pack their own copy of the other
//! operand, and on a 2-vCPU AMD EPYC that cost more than it balanced
//! (the step 1.005–1.06× as long). Yet there one core ran up to 22% slower
//! than the other for seconds at a time, and the faster waited at the end
//! of every job. [`balanced`] cuts a range into one piece per thread, each
//! as long as its thread's recent speed predicts; each thread runs its own
//! piece (another takes it only if its owner is late), and the pieces'
//! times update the prediction.

use std::ops::Range;
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

/// Runs `piece(range)` over `0..len` cut into one range per thread (the
/// caller's first), each as long as its thread's share of the recent
/// speed ([`Shares`]), so that the threads of a core that ran slower get
/// less. Every index runs exactly once. The ranges start at multiples of
/// `align` and are at least `least` long (a multiple of `align`), the
/// last included; a `len` under `2·least` is one range. With one thread,
/// or when the pool is busy, the shares are even.
pub(crate) fn balanced(
    len: usize,
    (align, least): (usize, usize),
    piece: &(dyn Fn(Range<usize>) + Sync),
) {
    let cut = (align.max(1), least.max(align).max(1));
    match pool() {
        Some(pool) => pool.run_balanced(len, cut, piece),
        None => {
            let ranges = Shares::even(rayon::current_num_threads()).cut(len, cut);
            for_each_piece(ranges.len(), &|i| piece(ranges[i].clone()));
        }
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
        let pool: &'static Pool = Box::leak(Box::new(Pool::new(threads)));
        let started = (1..threads).all(|w| {
            std::thread::Builder::new()
                .name(format!("wgtrain-cpu-{w}"))
                .spawn(move || pool.work(w))
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

struct Pool {
    /// The current job: its epoch, piece count, whether its pieces have
    /// owners, and which are claimed ([`Claims`]), in one word, so that a
    /// claim is made against one job's view and cannot land in another.
    state: AtomicU64,
    /// The current job ([`Job`], its lifetime erased).
    job: AtomicPtr<Job<'static>>,
    /// Pieces of the current job that have finished.
    done: AtomicUsize,
    /// Whether a piece of the current job panicked.
    panicked: AtomicBool,
    /// For each piece of an owned job: the thread that ran it and its time
    /// in nanoseconds.
    runs: Box<[(AtomicUsize, AtomicU64)]>,
    /// Held by the submitting thread for the whole job.
    busy: Mutex<Busy>,
    /// Workers asleep; they wait on `wake` under `sleep`.
    sleepers: AtomicUsize,
    sleep: Mutex<()>,
    wake: Condvar,
}

/// What only the submitting thread touches: the last job's epoch and the
/// threads' predicted speeds.
struct Busy {
    epoch: u32,
    shares: Shares,
}

/// The current job as one word: `epoch` (23 bits), `owned`, `count` and
/// `claimed` (20 bits each). `claimed` is the next piece to claim, or,
/// for an owned job (at most [`OWNED_MAX`] pieces), one bit per piece.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
struct Claims {
    epoch: u32,
    owned: bool,
    count: usize,
    claimed: u32,
}

/// The epoch's bits: it only has to differ from the last few jobs'.
const EPOCH_MASK: u32 = (1 << 23) - 1;
/// Pieces a job may have (more go to rayon).
const MAX_PIECES: usize = (1 << 20) - 1;
/// Pieces an owned job may have: one bit each.
const OWNED_MAX: usize = 20;

impl Claims {
    fn pack(self) -> u64 {
        (u64::from(self.epoch & EPOCH_MASK) << 41)
            | (u64::from(self.owned) << 40)
            | ((self.count as u64) << 20)
            | u64::from(self.claimed)
    }

    fn unpack(word: u64) -> Claims {
        Claims {
            epoch: (word >> 41) as u32 & EPOCH_MASK,
            owned: (word >> 40) & 1 == 1,
            count: ((word >> 20) as usize) & MAX_PIECES,
            claimed: (word as u32) & (MAX_PIECES as u32),
        }
    }

    /// The piece thread `me` claims next, and the claims after it; `None`
    /// when every piece is claimed. In an owned job a thread takes its own
    /// piece first, then the first one left.
    fn next(self, me: usize) -> Option<(usize, Claims)> {
        let piece = if self.owned {
            let free = !self.claimed & ((1u32 << self.count) - 1);
            if free == 0 {
                return None;
            }
            if me < self.count && free & (1 << me) != 0 {
                me
            } else {
                free.trailing_zeros() as usize
            }
        } else {
            let next = self.claimed as usize;
            if next >= self.count {
                return None;
            }
            next
        };
        let claimed = if self.owned {
            self.claimed | 1 << piece
        } else {
            self.claimed + 1
        };
        Some((piece, Claims { claimed, ..self }))
    }
}

/// Each thread's share of the pool's speed, summing to 1: what
/// [`balanced`] cuts by. Each balanced job's times move the shares
/// towards the speeds it measured, by [`Shares::RATE`] of the way for a
/// job whose longest piece took a millisecond or more, less for a shorter
/// one, whose times say less (a 20 µs piece is mostly the claim and the
/// caches). Weighting by length made the balance pay more often: the peer
/// step faster in 64% of 360 block pairs against 59% of 300 unweighted.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Shares(Vec<f64>);

impl Shares {
    /// How far one job's measurement moves the shares: about the last
    /// five long jobs count (a training step runs a dozen jobs).
    const RATE: f64 = 0.3;
    /// A job whose longest piece took this long moves the shares by the
    /// whole [`Shares::RATE`].
    const FULL_WEIGHT_NANOS: f64 = 1e6;
    /// No share moves further than about this factor from an even one
    /// (after the shares are scaled back to a sum of 1, a thread's stays
    /// above 1/((LIMIT + 1)·threads)): a thread that was descheduled for a
    /// few jobs is not written off.
    const LIMIT: f64 = 2.0;

    fn even(threads: usize) -> Shares {
        let threads = threads.max(1);
        Shares(vec![1.0 / threads as f64; threads])
    }

    /// `0..len` in one range per share, in order, each starting at a
    /// multiple of `align` and at least `least` long (the last included);
    /// a share too small for that gives no range.
    fn cut(&self, len: usize, (align, least): (usize, usize)) -> Vec<Range<usize>> {
        let mut ranges = Vec::with_capacity(self.0.len());
        let mut start = 0;
        let mut share_sum = 0.0;
        // The last cut that leaves `least` for the last range.
        let last_cut = len.saturating_sub(least) / align * align;
        for (i, share) in self.0.iter().enumerate() {
            share_sum += share;
            let ideal = (share_sum * len as f64 / align as f64).round() as usize * align;
            let end = if i + 1 == self.0.len() || start + least > last_cut {
                len
            } else {
                ideal.clamp(start + least, last_cut)
            };
            ranges.push(start..end);
            start = end;
            if end == len {
                break;
            }
        }
        ranges
    }

    /// Moves the shares towards the speeds of `pieces`, (length, time in
    /// ns) for each thread in order; leaves them unless every piece was
    /// measured (a piece run by another thread than its own counts as
    /// unmeasured, 0 ns).
    fn update(&mut self, pieces: &[(usize, u64)]) {
        let n = self.0.len();
        if pieces.len() != n || pieces.iter().any(|&(_, ns)| ns == 0) {
            return;
        }
        let speed = |(len, ns): (usize, u64)| len as f64 / ns as f64;
        let total: f64 = pieces.iter().map(|&p| speed(p)).sum();
        if total <= 0.0 {
            return;
        }
        let longest = pieces.iter().map(|&(_, ns)| ns).max().unwrap_or(0) as f64;
        let rate = Self::RATE * (longest / Self::FULL_WEIGHT_NANOS).min(1.0);
        let (lo, hi) = (1.0 / (Self::LIMIT * n as f64), Self::LIMIT / n as f64);
        for (share, &piece) in self.0.iter_mut().zip(pieces) {
            *share = ((1.0 - rate) * *share + rate * speed(piece) / total).clamp(lo, hi);
        }
        let sum: f64 = self.0.iter().sum();
        self.0.iter_mut().for_each(|s| *s /= sum);
    }
}

impl Pool {
    fn new(threads: usize) -> Pool {
        Pool {
            state: AtomicU64::new(0),
            job: AtomicPtr::new(std::ptr::null_mut()),
            done: AtomicUsize::new(0),
            panicked: AtomicBool::new(false),
            runs: (0..OWNED_MAX)
                .map(|_| (AtomicUsize::new(0), AtomicU64::new(0)))
                .collect(),
            busy: Mutex::new(Busy {
                epoch: 0,
                shares: Shares::even(threads),
            }),
            sleepers: AtomicUsize::new(0),
            sleep: Mutex::new(()),
            wake: Condvar::new(),
        }
    }

    /// The submitting thread's hold on the pool, or `None` while another
    /// job runs.
    fn hold(&self) -> Option<std::sync::MutexGuard<'_, Busy>> {
        match self.busy.try_lock() {
            Ok(busy) => Some(busy),
            // A panic raised again out of an earlier job poisons the
            // lock; the pool itself is whole (every piece had finished).
            Err(TryLockError::Poisoned(e)) => Some(e.into_inner()),
            Err(TryLockError::WouldBlock) => None,
        }
    }

    fn run(&self, count: usize, piece: &(dyn Fn(usize) + Sync)) {
        match self.hold() {
            Some(mut busy) if count <= MAX_PIECES => self.job(&mut busy, count, false, piece),
            _ => rayon_pieces(count, piece),
        }
    }

    /// [`balanced`] on the pool: one owned piece per thread, cut by the
    /// shares, which the pieces' times then update.
    fn run_balanced(&self, len: usize, cut: (usize, usize), piece: &(dyn Fn(Range<usize>) + Sync)) {
        let Some(mut busy) = self.hold() else {
            let ranges = Shares::even(rayon::current_num_threads()).cut(len, cut);
            return rayon_pieces(ranges.len(), &|i| piece(ranges[i].clone()));
        };
        let ranges = busy.shares.cut(len, cut);
        if busy.shares.0.len() > OWNED_MAX {
            return self.job(&mut busy, ranges.len(), false, &|i| {
                piece(ranges[i].clone())
            });
        }
        self.job(&mut busy, ranges.len(), true, &|i| piece(ranges[i].clone()));
        // Only a job whose every thread ran its own piece measures them all.
        if ranges.len() == busy.shares.0.len() {
            let pieces: Vec<(usize, u64)> = ranges
                .iter()
                .zip(self.runs.iter())
                .enumerate()
                .map(|(i, (range, (thread, nanos)))| {
                    let own = thread.load(Ordering::Relaxed) == i;
                    (
                        range.len(),
                        if own {
                            nanos.load(Ordering::Relaxed)
                        } else {
                            0
                        },
                    )
                })
                .collect();
            busy.shares.update(&pieces);
        }
    }

    /// Runs a job of `count` pieces (owned: piece `t` for thread `t` first)
    /// and returns when every piece has finished.
    fn job(&self, busy: &mut Busy, count: usize, owned: bool, piece: &(dyn Fn(usize) + Sync)) {
        busy.epoch = busy.epoch.wrapping_add(1) & EPOCH_MASK;
        let job = Job { piece };
        self.job.store(
            (&job as *const Job<'_>).cast_mut().cast(),
            Ordering::Release,
        );
        self.done.store(0, Ordering::Release);
        self.panicked.store(false, Ordering::Release);
        let claims = Claims {
            epoch: busy.epoch,
            owned,
            count,
            claimed: 0,
        };
        // Publishing the claims starts the job. SeqCst, with the sleeper
        // count's below and in `work`: either a worker going to sleep sees
        // the new epoch, or this thread sees it asleep and wakes it.
        self.state.store(claims.pack(), Ordering::SeqCst);
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            drop(self.sleep.lock().unwrap_or_else(|e| e.into_inner()));
            self.wake.notify_all();
        }
        self.claim_pieces(busy.epoch, 0);
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

    /// Claims and runs pieces of the job of `epoch` until none is left, as
    /// thread `me` (0: the submitting thread).
    fn claim_pieces(&self, epoch: u32, me: usize) {
        loop {
            let state = self.state.load(Ordering::Acquire);
            let claims = Claims::unpack(state);
            if claims.epoch != epoch {
                return;
            }
            let Some((next, after)) = claims.next(me) else {
                return;
            };
            if self
                .state
                .compare_exchange_weak(state, after.pack(), Ordering::AcqRel, Ordering::Acquire)
                .is_err()
            {
                continue;
            }
            // SAFETY: the claim succeeded in `epoch`, whose job is still
            // running (this piece has not finished), so `job` has not
            // returned and the job it stored is alive.
            let job = unsafe { &*self.job.load(Ordering::Acquire) };
            let start = Instant::now();
            if catch_unwind(AssertUnwindSafe(|| (job.piece)(next))).is_err() {
                self.panicked.store(true, Ordering::Release);
            }
            if claims.owned {
                let (thread, nanos) = &self.runs[next];
                thread.store(me, Ordering::Relaxed);
                nanos.store(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            // (Release: the submitting thread reads `runs` after it sees
            // every piece done.)
            self.done.fetch_add(1, Ordering::AcqRel);
        }
    }

    fn epoch(&self) -> u32 {
        Claims::unpack(self.state.load(Ordering::SeqCst)).epoch
    }

    /// Worker `me` (1 and up): runs pieces of each new job, polling for
    /// [`SPIN`] after each before it sleeps.
    fn work(&self, me: usize) {
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
            self.claim_pieces(seen, me);
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
        jobs_from_three_threads(|t, job| {
            let count = 1 + (job * 7 + t) % 37;
            let hits: Vec<AtomicUsize> = (0..count).map(|_| AtomicUsize::new(0)).collect();
            for_each_piece(count, &|i| {
                hits[i].fetch_add(1, Ordering::Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1));
        });
    }

    /// `job(thread, job)` for 200 jobs back to back on each of three
    /// threads at once.
    fn jobs_from_three_threads(job: impl Fn(usize, usize) + Sync) {
        let job = &job;
        std::thread::scope(|s| {
            for t in 0..3 {
                s.spawn(move || (0..200).for_each(|j| job(t, j)));
            }
        });
    }

    #[test]
    fn balanced_jobs_cover_their_range_once_in_aligned_pieces() {
        // Back to back and from several threads at once (then on rayon),
        // at lengths under, at and over one alignment, and with the shares
        // moving between jobs: every index once, each piece at least the
        // least length and starting at a multiple of the alignment.
        jobs_from_three_threads(|t, job| {
            let len = [1, 7, 16, 33, 257, 1000][(job + t) % 6];
            let (align, least) = [(1, 1), (16, 16), (16, 80)][job % 3];
            let hits: Vec<AtomicUsize> = (0..len).map(|_| AtomicUsize::new(0)).collect();
            let pieces = Mutex::new(Vec::new());
            balanced(len, (align, least), &|range| {
                for i in range.clone() {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                }
                pieces.lock().unwrap().push(range);
            });
            assert!(hits.iter().all(|h| h.load(Ordering::Relaxed) == 1), "{len}");
            let mut pieces = pieces.into_inner().unwrap();
            pieces.sort_by_key(|r| r.start);
            assert!(pieces.len() <= rayon::current_num_threads().max(1));
            assert!(pieces.len() == 1 || pieces.iter().all(|r| r.len() >= least));
            assert!(pieces.iter().all(|r| r.start % align == 0), "{pieces:?}");
        });
    }

    #[test]
    fn claims_survive_packing_and_owned_pieces_go_to_their_threads_first() {
        for claims in [
            Claims {
                epoch: EPOCH_MASK,
                owned: true,
                count: OWNED_MAX,
                claimed: 0b1010,
            },
            Claims {
                epoch: 5,
                owned: false,
                count: MAX_PIECES,
                claimed: MAX_PIECES as u32,
            },
            Claims {
                epoch: 0,
                owned: false,
                count: 0,
                claimed: 0,
            },
        ] {
            assert_eq!(Claims::unpack(claims.pack()), claims);
        }
        // Owned: thread 1 takes piece 1; then its own is gone, so the first
        // left (0); a thread past the count takes the first left (2).
        let owned = Claims {
            epoch: 1,
            owned: true,
            count: 3,
            claimed: 0,
        };
        let (piece, owned) = owned.next(1).unwrap();
        assert_eq!(piece, 1);
        let (piece, owned) = owned.next(1).unwrap();
        assert_eq!(piece, 0);
        let (piece, owned) = owned.next(7).unwrap();
        assert_eq!(piece, 2);
        assert_eq!(owned.next(2), None);
        // Not owned: in order, whoever asks.
        let counted = Claims {
            epoch: 1,
            owned: false,
            count: 2,
            claimed: 0,
        };
        let (piece, counted) = counted.next(1).unwrap();
        assert_eq!(piece, 0);
        let (piece, counted) = counted.next(1).unwrap();
        assert_eq!(piece, 1);
        assert_eq!(counted.next(0), None);
    }

    #[test]
    fn shares_cut_ranges_in_proportion_and_follow_measured_speeds() {
        let cut = (16, 16);
        assert_eq!(
            Shares(vec![0.25, 0.75]).cut(1024, cut),
            vec![0..256, 256..1024]
        );
        assert_eq!(Shares::even(2).cut(1000, cut), vec![0..496, 496..1000]);
        assert_eq!(Shares::even(3).cut(100, cut), vec![0..32, 32..64, 64..100]);
        // No piece under the least length: a small share is raised to it,
        // a large one lowered to leave it to the last; a range under two
        // least lengths is one piece.
        assert_eq!(
            Shares(vec![0.1, 0.9]).cut(1000, (16, 160)),
            vec![0..160, 160..1000]
        );
        assert_eq!(
            Shares(vec![0.9, 0.1]).cut(1000, (16, 160)),
            vec![0..832, 832..1000]
        );
        assert_eq!(Shares(vec![0.9, 0.1]).cut(20, cut), vec![0..20]);
        assert_eq!(
            Shares::even(4).cut(100, (16, 32)),
            vec![0..32, 32..64, 64..100]
        );
        // Thread 1 twice as slow on 2 ms pieces: the shares settle at 2:1.
        let mut shares = Shares::even(2);
        for _ in 0..60 {
            shares.update(&[(100, 1_000_000), (100, 2_000_000)]);
        }
        assert!((shares.0[0] - 2.0 / 3.0).abs() < 1e-6, "{shares:?}");
        // Shorter pieces move them less.
        let (mut short, mut long) = (Shares::even(2), Shares::even(2));
        short.update(&[(100, 10_000), (100, 20_000)]);
        long.update(&[(100, 1_000_000), (100, 2_000_000)]);
        assert!(
            0.5 < short.0[0] && short.0[0] < long.0[0],
            "{short:?} {long:?}"
        );
        // A piece its own thread did not run measures nothing.
        let mut unmeasured = Shares::even(2);
        unmeasured.update(&[(100, 1_000_000), (100, 0)]);
        assert_eq!(unmeasured, Shares::even(2));
        // A thread 100 times slower keeps a share (LIMIT).
        let mut slow = Shares::even(2);
        for _ in 0..100 {
            slow.update(&[(100, 1_000_000), (100, 100_000_000)]);
        }
        let floor = 1.0 / ((Shares::LIMIT + 1.0) * 2.0);
        assert!(slow.0[1] >= floor, "{slow:?}");
        assert!((slow.0.iter().sum::<f64>() - 1.0).abs() < 1e-12);
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
