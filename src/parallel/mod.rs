//! Data-parallel training: several replicas of one model, each on its own
//! device and its own shard of every global minibatch, made to take the same
//! step by summing their gradients before the optimizer.
//!
//! - **Replicas in one process** ([`DataParallel`]): one thread per device
//!   (several devices may be opened on one adapter). wgpu cannot share
//!   buffers between devices, so each replica reads its flat gradient back,
//!   the group sums them on the host in replica order 0, 1, …, N−1, in f64,
//!   and every replica writes the same sum back ([`ThreadGroup`]).
//! - **Processes through MPI** (cargo feature `mpi`, [`mpi::MpiWorld`]):
//!   one rank per process, the flat gradient all-reduced with a ring
//!   (reduce-scatter, then all-gather) whose order of additions is fixed for
//!   a given number of ranks. A rank may itself hold several devices:
//!   [`DataParallel::across`] sums them first, then across ranks.
//!
//! What holds, and why:
//!
//! - **Same answer as one device.** Replica `r` of `N` takes rows
//!   [`shard`]`(n, r, N)` of each global batch of `n` rows (the same
//!   shuffled order on every replica), and its gradient, the mean over its
//!   rows, is weighted by `rows / n` before the sum, so the sum is the
//!   gradient of the global batch's mean loss. It differs from one device's
//!   only by the order of f32 additions (a matmul's sum over the batch split
//!   in N parts, then added): about `log2(N)·ε·|g|` per gradient element.
//! - **Run to run bit-identical** for the same `N`: every sum is taken in
//!   a fixed order, whatever the threads' or ranks' timing.
//! - **Dropout** masks are drawn from (seed, step, global sample index)
//!   ([`Model::set_first_row`]), never from the number of replicas.
//! - **Batch norm** follows PyTorch DDP's default: each replica normalises
//!   with its own shard's batch statistics, and the running statistics used
//!   for validation and saved in checkpoints are replica 0's (broadcast to
//!   the others before every evaluation, as DDP's `broadcast_buffers`). With
//!   batch norm the result therefore differs from one device's (smaller
//!   batches for the statistics), as in DDP. `SyncBatchNorm` is not built.
//! - **Decisions** (divergence, early stopping, callbacks' controls) are
//!   taken on metrics summed over all replicas, or broadcast from replica 0,
//!   so every replica takes the same ones; replica 0 alone prints and writes
//!   checkpoints, after every replica has finished the epoch.
//! - **A failing replica stops every replica** with [`Error::Replica`]
//!   instead of leaving them waiting in a collective; under MPI the whole
//!   job is aborted (`MPI_Abort`) once the error is printed.
//!
//! ```
//! use wgtrain::optim::{Optim, Sgd};
//! use wgtrain::parallel::DataParallel;
//! use wgtrain::train::{Report, TrainConfig};
//! use wgtrain::{Cpu, Dataset, Init, Sequential};
//! let data = Dataset::classification(vec![0.0, 1.0, 1.0, 0.0, 0.5, 0.5, 1.0, 1.0], 2, vec![0, 1, 0, 1], 2).unwrap();
//! let spec = Sequential::new(2).dense(4, Init::HeNormal).relu().dense(2, Init::XavierUniform);
//! let config = TrainConfig { epochs: 3, batch_size: 4, report: Report::Quiet, ..TrainConfig::default() };
//! // Two replicas (here two CPU backends), each taking 2 rows of every batch of 4.
//! let run = DataParallel::new(vec![Cpu::<f32>::new(), Cpu::<f32>::new()]).unwrap();
//! let trained = run
//!     .fit(|cpu| Ok((spec.build(cpu, 0)?, Optim::new(Sgd::default())?)), &data, None, &config, Vec::new())
//!     .unwrap();
//! assert_eq!(trained.history.epochs.len(), 3);
//! // Per epoch (one step): the gradients; at the readback, the divergence
//! // check and the loss; the epoch's metrics.
//! assert_eq!(trained.comm.all_reduces, 3 * 4);
//! ```

#[cfg(feature = "mpi")]
pub mod mpi;
mod threads;

pub use threads::ThreadGroup;

use crate::backend::Backend;
use crate::data::Dataset;
use crate::optim::Optimizer;
use crate::train::{fit_replica, Callback, History, TrainConfig};
use crate::{Error, Model, Result};
use std::ops::Range;

/// The replicas of one run, as seen by one of them: the collective
/// operations the training loop synchronises through. Every replica calls
/// the same operations in the same order with slices of the same length.
///
/// Implemented by [`Solo`] (one replica), [`ThreadGroup`] (threads of one
/// process) and, with the `mpi` feature, [`mpi::MpiWorld`]. Not `Send`:
/// an MPI world must stay on the thread that initialised it.
pub trait Collective {
    /// This replica's index, `0..size()`.
    fn rank(&self) -> usize;
    /// The number of replicas.
    fn size(&self) -> usize;
    /// Replaces `values` by their element-wise sum over every replica,
    /// added in an order that depends on `size()` alone.
    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()>;
    /// As [`Collective::all_reduce_sum`], in f64 (the loop's metrics).
    fn all_reduce_sum_f64(&mut self, values: &mut [f64]) -> Result<()>;
    /// Replaces `values` by replica `root`'s.
    fn broadcast_f64(&mut self, values: &mut [f64], root: usize) -> Result<()>;
    /// Tells every other replica that this one failed with `error`, so that
    /// their pending and later operations return [`Error::Replica`].
    fn abort(&mut self, error: &Error);
    /// Time and volume of the all-reduces so far.
    fn stats(&self) -> CommStats;
    /// In words, e.g. "2 threads" or "MPI, 4 ranks".
    fn describe(&self) -> String;
}

/// What a replica's collectives have cost so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CommStats {
    /// All-reduce calls.
    pub all_reduces: u64,
    /// Elements summed, over all calls.
    pub elements: u64,
    /// Wall-clock seconds inside the all-reduces (waiting for the slowest
    /// replica included).
    pub seconds: f64,
}

/// One replica alone: every collective is the identity.
#[derive(Clone, Copy, Debug, Default)]
pub struct Solo;

impl Collective for Solo {
    fn rank(&self) -> usize {
        0
    }
    fn size(&self) -> usize {
        1
    }
    fn all_reduce_sum(&mut self, _: &mut [f32]) -> Result<()> {
        Ok(())
    }
    fn all_reduce_sum_f64(&mut self, _: &mut [f64]) -> Result<()> {
        Ok(())
    }
    fn broadcast_f64(&mut self, _: &mut [f64], _: usize) -> Result<()> {
        Ok(())
    }
    fn abort(&mut self, _: &Error) {}
    fn stats(&self) -> CommStats {
        CommStats::default()
    }
    fn describe(&self) -> String {
        "1 replica".into()
    }
}

/// The rows of a global batch of `rows` that replica `rank` of `size`
/// takes: contiguous, sizes differing by at most one (possibly empty when
/// the batch has fewer rows than there are replicas).
///
/// ```
/// use wgtrain::parallel::shard;
/// assert_eq!(shard(10, 0, 4), 0..2);
/// assert_eq!(shard(10, 3, 4), 7..10);
/// assert_eq!(shard(1, 0, 2), 0..0); // nothing left for replica 0
/// assert_eq!(shard(1, 1, 2), 0..1);
/// ```
pub fn shard(rows: usize, rank: usize, size: usize) -> Range<usize> {
    rows * rank / size..rows * (rank + 1) / size
}

/// What [`DataParallel::fit`] returns.
pub struct Trained<B: Backend> {
    /// Replica 0's model (every replica's parameters are the same).
    pub model: Model<B>,
    /// The run's history (the same on every replica).
    pub history: History,
    /// Replica 0's collectives: all-reduce calls, volume and time.
    pub comm: CommStats,
}

/// Replicas on several devices in this process, one thread each (replica
/// 0 on the calling thread), optionally inside a larger run of several
/// processes. See the [module documentation](self) for what it guarantees.
pub struct DataParallel<B: Backend> {
    backends: Vec<B>,
    outer: Option<Box<dyn Collective>>,
}

impl<B: Backend> DataParallel<B> {
    /// One replica per backend, in the order given (replica 0 first).
    pub fn new(backends: Vec<B>) -> Result<Self> {
        if backends.is_empty() {
            return Err(Error::InvalidParameter {
                name: "devices",
                value: 0.0,
                allowed: "at least one backend",
            });
        }
        Ok(DataParallel {
            backends,
            outer: None,
        })
    }

    /// Joins a run of several processes: `outer` connects this process to
    /// the others (e.g. [`mpi::MpiWorld`]); the replicas of every process
    /// count as one group of `outer.size() × backends` replicas, this
    /// process's ranked `outer.rank() × backends ..`. Every process must
    /// bring the same number of backends.
    pub fn across(mut self, outer: Box<dyn Collective>) -> Self {
        self.outer = Some(outer);
        self
    }

    /// Replicas in the whole run.
    pub fn size(&self) -> usize {
        self.backends.len() * self.outer.as_ref().map_or(1, |o| o.size())
    }

    /// Builds a model and optimizer on every backend with `build` (the
    /// replicas start from replica 0's weights whatever `build` draws),
    /// trains them together with [`fit_replica`], and returns replica 0's
    /// model with the run's history and what its collectives cost. `callbacks` run on replica 0, and the
    /// controls they return apply to every replica. The error of the
    /// replica that failed first is returned, not the others' reports of it.
    pub fn fit<O, F>(
        self,
        build: F,
        train: &Dataset,
        val: Option<&Dataset>,
        config: &TrainConfig,
        callbacks: Vec<Callback<'_>>,
    ) -> Result<Trained<B>>
    where
        O: Optimizer<B>,
        F: Fn(&B) -> Result<(Model<B>, O)> + Sync,
    {
        let mut members = match self.outer {
            Some(outer) => ThreadGroup::across(self.backends.len(), outer),
            None => ThreadGroup::new(self.backends.len()),
        };
        let others = members.split_off(1);
        let mut first = members.pop().expect("at least one backend");
        let backends = &self.backends;
        let build = &build;
        std::thread::scope(|scope| {
            let handles: Vec<_> = others
                .into_iter()
                .zip(&backends[1..])
                .map(|(mut member, backend)| {
                    scope.spawn(move || -> Result<()> {
                        let (mut model, mut opt) =
                            build(backend).inspect_err(|e| member.abort(e))?;
                        fit_replica(
                            &mut model,
                            &mut opt,
                            train,
                            val,
                            config,
                            Vec::new(),
                            &mut member,
                        )
                        .map(drop)
                    })
                })
                .collect();
            let mine = build(&backends[0])
                .inspect_err(|e| first.abort(e))
                .and_then(|(mut model, mut opt)| {
                    let history = fit_replica(
                        &mut model, &mut opt, train, val, config, callbacks, &mut first,
                    )?;
                    Ok(Trained {
                        model,
                        history,
                        comm: first.stats(),
                    })
                });
            let theirs: Vec<Result<()>> = handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Model("a replica panicked".into())))
                })
                .collect();
            root_cause(mine, theirs)
        })
    }
}

/// Replica 0's result, unless it only reports another replica's failure:
/// then that replica's own error.
fn root_cause<T>(mine: Result<T>, theirs: Vec<Result<()>>) -> Result<T> {
    match mine {
        Err(report @ Error::Replica { .. }) => {
            let cause = theirs
                .into_iter()
                .filter_map(|r| r.err())
                .find(|e| !matches!(e, Error::Replica { .. }));
            Err(cause.unwrap_or(report))
        }
        Ok(_) => match theirs.into_iter().find_map(|r| r.err()) {
            Some(e) => Err(e),
            None => mine,
        },
        Err(e) => Err(e),
    }
}
