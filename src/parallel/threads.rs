//! The replicas of one process: threads that meet at each collective,
//! where member 0 combines everyone's values in member order (and, in a
//! run of several processes, with the other processes through its outer
//! collective) and the others copy the result.

use super::{Collective, CommStats};
use crate::{Error, Result};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use web_time::Instant;

/// One member of a group of threads training together; made by
/// [`ThreadGroup::new`], one per thread.
///
/// ```
/// use wgtrain::parallel::{Collective, ThreadGroup};
/// let sums: Vec<Vec<f32>> = std::thread::scope(|s| {
///     let handles: Vec<_> = ThreadGroup::new(3)
///         .into_iter()
///         .map(|mut member| s.spawn(move || {
///             let mut v = vec![member.rank() as f32; 2];
///             member.all_reduce_sum(&mut v).unwrap();
///             v
///         }))
///         .collect();
///     handles.into_iter().map(|h| h.join().unwrap()).collect()
/// });
/// assert!(sums.iter().all(|v| v == &[3.0, 3.0])); // 0 + 1 + 2
/// ```
pub struct ThreadGroup {
    shared: Arc<Shared>,
    /// Index among this process's threads.
    local: usize,
    /// The rank of member 0 in the whole run, and the run's size.
    base: usize,
    world: usize,
    /// Member 0's link to the other processes.
    outer: Option<Outer>,
    stats: CommStats,
    /// `all_reduce_sum`'s values widened to f64, kept between calls.
    wide: Vec<f64>,
}

/// The collective across processes, used only on the thread that made the
/// group (MPI's `Funneled` level), which is checked at every use.
struct Outer {
    link: std::mem::ManuallyDrop<Box<dyn Collective>>,
    thread: std::thread::ThreadId,
}

// SAFETY: `link` is used (and dropped) only on `thread`, the thread that
// created it: `Outer::get` checks before every use, and `Drop` leaks it on
// any other thread. Moving the box between threads touches no MPI state.
unsafe impl Send for Outer {}

impl Outer {
    fn get(&mut self) -> Result<&mut dyn Collective> {
        if std::thread::current().id() != self.thread {
            return Err(Error::Model(
                "the cross-process collective was used from a thread other than the one \
                 that made the group (replica 0 must run on it)"
                    .into(),
            ));
        }
        Ok(&mut **self.link)
    }
}

impl Drop for Outer {
    fn drop(&mut self) {
        if std::thread::current().id() == self.thread {
            // SAFETY: dropped once, here, on its own thread.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.link) }
        }
    }
}

struct Shared {
    members: usize,
    state: Mutex<State>,
    turn: Condvar,
}

#[derive(Default)]
struct State {
    /// Each member's values for the collective under way.
    slots: Vec<Vec<f64>>,
    arrived: usize,
    /// Collectives completed.
    round: u64,
    result: Vec<f64>,
    /// The first failure: (rank, what happened).
    failed: Option<(usize, String)>,
}

/// What a collective makes of the members' values.
#[derive(Clone, Copy)]
enum Combine {
    /// Their sum; `wire_f32`: the outer collective moves f32.
    Sum { wire_f32: bool },
    /// Those of the replica with this rank in the whole run.
    From(usize),
}

impl ThreadGroup {
    /// A group of `members` threads, alone in the run.
    pub fn new(members: usize) -> Vec<ThreadGroup> {
        Self::make(members, None)
    }

    /// A group of `members` threads inside a run of several processes that
    /// `outer` connects: member 0 holds `outer` (so the thread that calls
    /// it is the one that owns it, as MPI's `Funneled` level asks), and
    /// the members' ranks are `outer.rank() × members + i`.
    pub fn across(members: usize, outer: Box<dyn Collective>) -> Vec<ThreadGroup> {
        Self::make(members, Some(outer))
    }

    fn make(members: usize, outer: Option<Box<dyn Collective>>) -> Vec<ThreadGroup> {
        let (base, world) = outer
            .as_ref()
            .map_or((0, members), |o| (o.rank() * members, o.size() * members));
        let shared = Arc::new(Shared {
            members,
            state: Mutex::new(State {
                slots: vec![Vec::new(); members],
                ..State::default()
            }),
            turn: Condvar::new(),
        });
        let mut outer = outer.map(|link| Outer {
            link: std::mem::ManuallyDrop::new(link),
            thread: std::thread::current().id(),
        });
        (0..members)
            .map(|local| ThreadGroup {
                shared: shared.clone(),
                local,
                base,
                world,
                outer: if local == 0 { outer.take() } else { None },
                stats: CommStats::default(),
                wide: Vec::new(),
            })
            .collect()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A member that panicked while holding the lock has also marked the
        // group failed (see Drop), which every member checks.
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn failure(&self, state: &State) -> Result<()> {
        match &state.failed {
            Some((rank, detail)) => Err(Error::Replica {
                rank: *rank,
                size: self.world,
                detail: detail.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Deposits `values`, waits for every member, and leaves the combined
    /// values in `values`.
    fn exchange(&mut self, values: &mut [f64], combine: Combine) -> Result<()> {
        let shared = self.shared.clone();
        let mut state = self.lock();
        self.failure(&state)?;
        let slot = &mut state.slots[self.local];
        slot.clear();
        slot.extend_from_slice(values);
        state.arrived += 1;
        if self.local != 0 {
            let round = state.round;
            shared.turn.notify_all();
            while state.round == round && state.failed.is_none() {
                state = shared.turn.wait(state).unwrap_or_else(|e| e.into_inner());
            }
            self.failure(&state)?;
            values.copy_from_slice(&state.result);
            return Ok(());
        }
        while state.arrived < shared.members && state.failed.is_none() {
            state = shared.turn.wait(state).unwrap_or_else(|e| e.into_inner());
        }
        self.failure(&state)?;
        let mut result = std::mem::take(&mut state.result);
        match combine {
            Combine::Sum { .. } => {
                // In member order: the same additions whatever the timing.
                result.clear();
                result.extend_from_slice(&state.slots[0]);
                for slot in &state.slots[1..] {
                    result.iter_mut().zip(slot).for_each(|(r, v)| *r += v);
                }
            }
            Combine::From(root) => {
                result.clear();
                result.extend_from_slice(&state.slots[root % shared.members]);
            }
        }
        drop(state);
        let outer_result = self.combine_outer(&mut result, combine);
        let mut state = self.lock();
        if let Err(e) = outer_result {
            state.failed.get_or_insert((self.base, e.to_string()));
            shared.turn.notify_all();
            return Err(e);
        }
        values.copy_from_slice(&result);
        state.result = result;
        state.arrived = 0;
        state.round += 1;
        shared.turn.notify_all();
        Ok(())
    }

    /// The step across processes, on member 0's thread.
    fn combine_outer(&mut self, values: &mut [f64], combine: Combine) -> Result<()> {
        let Some(outer) = self.outer.as_mut() else {
            return Ok(());
        };
        let outer = outer.get()?;
        match combine {
            Combine::Sum { wire_f32: true } => {
                let mut wire: Vec<f32> = values.iter().map(|&v| v as f32).collect();
                outer.all_reduce_sum(&mut wire)?;
                values
                    .iter_mut()
                    .zip(&wire)
                    .for_each(|(v, w)| *v = *w as f64);
                Ok(())
            }
            Combine::Sum { wire_f32: false } => outer.all_reduce_sum_f64(values),
            Combine::From(root) => outer.broadcast_f64(values, root / self.shared.members),
        }
    }

    fn timed(&mut self, n: usize, values: &mut [f64], combine: Combine) -> Result<()> {
        let start = Instant::now();
        let result = self.exchange(values, combine);
        self.stats.all_reduces += 1;
        self.stats.elements += n as u64;
        self.stats.seconds += start.elapsed().as_secs_f64();
        result
    }
}

impl Collective for ThreadGroup {
    fn rank(&self) -> usize {
        self.base + self.local
    }

    fn size(&self) -> usize {
        self.world
    }

    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()> {
        // Summed in f64 and rounded once: the sum of N f32 gradients is then
        // the exact one rounded, whatever N.
        let mut wide = std::mem::take(&mut self.wide);
        wide.clear();
        wide.extend(values.iter().map(|&v| v as f64));
        let result = self.timed(values.len(), &mut wide, Combine::Sum { wire_f32: true });
        if result.is_ok() {
            values
                .iter_mut()
                .zip(&wide)
                .for_each(|(v, w)| *v = *w as f32);
        }
        self.wide = wide;
        result
    }

    fn all_reduce_sum_f64(&mut self, values: &mut [f64]) -> Result<()> {
        self.timed(values.len(), values, Combine::Sum { wire_f32: false })
    }

    fn broadcast_f64(&mut self, values: &mut [f64], root: usize) -> Result<()> {
        self.exchange(values, Combine::From(root))
    }

    fn abort(&mut self, error: &Error) {
        let mut state = self.lock();
        if state.failed.is_none() {
            state.failed = Some((self.rank(), error.to_string()));
        }
        self.shared.turn.notify_all();
        drop(state);
        if let Some(outer) = self.outer.as_mut().and_then(|o| o.get().ok()) {
            outer.abort(error);
        }
    }

    fn stats(&self) -> CommStats {
        // Member 0's time includes the cross-process part.
        self.stats
    }

    fn describe(&self) -> String {
        match &self.outer {
            Some(outer) => format!(
                "{} threads × {}",
                self.shared.members,
                outer.link.describe()
            ),
            None if self.world == 1 => "1 thread".into(),
            None => format!("{} threads", self.world),
        }
    }
}

impl Drop for ThreadGroup {
    /// A member whose thread panics fails the group, so the others stop
    /// instead of waiting for it.
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.abort(&Error::Model("the replica's thread panicked".into()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run<T: Send>(n: usize, f: impl Fn(ThreadGroup) -> T + Sync) -> Vec<T> {
        std::thread::scope(|s| {
            let handles: Vec<_> = ThreadGroup::new(n)
                .into_iter()
                .map(|m| s.spawn(|| f(m)))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    }

    /// Many rounds back to back: no member reads a later round's result,
    /// and the sum is the same on every member.
    #[test]
    fn rounds_do_not_mix() {
        let out = run(4, |mut m| {
            let mut seen = Vec::new();
            for round in 0..200 {
                let mut v = vec![(m.rank() * 1000 + round) as f64; 3];
                m.all_reduce_sum_f64(&mut v).unwrap();
                let mut b = vec![m.rank() as f64 + round as f64];
                m.broadcast_f64(&mut b, round % 4).unwrap();
                seen.push((v[0], b[0]));
            }
            seen
        });
        for (round, &(sum, from)) in out[0].iter().enumerate() {
            assert_eq!(sum, (6000 + 4 * round) as f64);
            assert_eq!(from, (round % 4 + round) as f64);
        }
        assert!(out.iter().all(|s| s == &out[0]));
    }

    /// A member that fails wakes the others with its error instead of
    /// leaving them waiting.
    #[test]
    fn a_failure_stops_every_member() {
        let out = run(3, |mut m| {
            if m.rank() == 2 {
                m.abort(&Error::Model("disk full".into()));
                return None;
            }
            Some(m.all_reduce_sum(&mut [1.0]))
        });
        for r in out.into_iter().flatten() {
            match r {
                Err(Error::Replica {
                    rank: 2,
                    size: 3,
                    detail,
                }) => assert!(detail.contains("disk full")),
                other => panic!("{other:?}"),
            }
        }
    }

    /// A panicking thread fails the group too.
    #[test]
    fn a_panic_stops_every_member() {
        let results = std::thread::scope(|s| {
            let mut members = ThreadGroup::new(2);
            let second = members.pop().unwrap();
            let mut first = members.pop().unwrap();
            let h = s.spawn(move || {
                let _held = second;
                panic!("replica 1 panics");
            });
            let r = first.all_reduce_sum(&mut [1.0]);
            assert!(h.join().is_err());
            r
        });
        assert!(
            matches!(results, Err(Error::Replica { rank: 1, .. })),
            "{results:?}"
        );
    }
}
