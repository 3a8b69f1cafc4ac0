//! Replicas in several processes, under `mpirun`: one rank per process
//! (cargo feature `mpi`; the `mpi` crate over the system's Open MPI or
//! MPICH).
//!
//! The gradient all-reduce is a ring written over point-to-point messages
//! (reduce-scatter, then all-gather: each rank sends and receives
//! `2 (p−1)/p` of the buffer, the bandwidth-optimal schedule), so that the
//! order of the additions is fixed by the number of ranks alone, and so
//! that its cost is the α–β model PERFORMANCE.md fits. MPI cannot cancel a
//! collective other ranks are waiting in, so [`Collective::abort`] prints
//! the error and ends the whole job with `MPI_Abort`.
//!
//! ```no_run
//! use wgtrain::parallel::mpi::MpiWorld;
//! use wgtrain::parallel::Collective;
//! let mut world = MpiWorld::init().unwrap(); // once per process
//! let mut v = vec![world.rank() as f32; 4];
//! world.all_reduce_sum(&mut v).unwrap(); // 0 + 1 + … on every rank
//! ```

use super::{Collective, CommStats};
use crate::{Error, Result};
use mpi::datatype::Equivalence;
use mpi::environment::Universe;
use mpi::topology::{Communicator, SimpleCommunicator};
use mpi::traits::Root;
use std::ops::AddAssign;
use web_time::Instant;

/// This process's place in an MPI job.
pub struct MpiWorld {
    world: SimpleCommunicator,
    stats: CommStats,
    // Finalizes MPI when dropped: declared last, so dropped after the
    // communicator that belongs to it.
    _universe: Universe,
}

impl MpiWorld {
    /// Initialises MPI (the `Funneled` threading level: only the thread
    /// that made the world calls MPI, which is what [`super::DataParallel`]
    /// does). A process started without `mpirun` is a world of one rank.
    pub fn init() -> Result<MpiWorld> {
        let (universe, _) = mpi::initialize_with_threading(mpi::Threading::Funneled)
            .ok_or_else(|| Error::Model("MPI was already initialised in this process".into()))?;
        let world = universe.world();
        Ok(MpiWorld {
            _universe: universe,
            world,
            stats: CommStats::default(),
        })
    }

    /// The rank's index among the ranks on its own machine (which device it
    /// should take when every rank takes one), from Open MPI's or MPICH's
    /// environment; 0 when neither says.
    pub fn local_rank() -> usize {
        [
            "OMPI_COMM_WORLD_LOCAL_RANK",
            "MPI_LOCALRANKID",
            "PMI_LOCAL_RANK",
        ]
        .iter()
        .find_map(|k| std::env::var(k).ok()?.parse().ok())
        .unwrap_or(0)
    }

    /// Ring all-reduce (sum) of `values`: reduce-scatter, then all-gather.
    fn ring<T: Equivalence + Copy + AddAssign + Default>(&mut self, values: &mut [T]) {
        let (p, r) = (self.world.size() as usize, self.world.rank() as usize);
        if p == 1 {
            return;
        }
        let n = values.len();
        let chunk = |c: usize| n * c / p..n * (c + 1) / p;
        let right = self.world.process_at_rank(((r + 1) % p) as i32);
        let left = self.world.process_at_rank(((r + p - 1) % p) as i32);
        let mut incoming = vec![T::default(); n.div_ceil(p)];
        // After step k, rank r holds the sum of chunk (r−k−1) over ranks
        // r−k−1 … r: always added in the same order.
        for k in 0..p - 1 {
            let send = chunk((r + p - k) % p);
            let recv = chunk((r + 2 * p - k - 1) % p);
            let buf = &mut incoming[..recv.len()];
            mpi::point_to_point::send_receive_into(&values[send], &right, buf, &left);
            values[recv]
                .iter_mut()
                .zip(buf.iter())
                .for_each(|(v, x)| *v += *x);
        }
        for k in 0..p - 1 {
            let send = chunk((r + 1 + p - k) % p);
            let recv = chunk((r + p - k) % p);
            let buf = &mut incoming[..recv.len()];
            mpi::point_to_point::send_receive_into(&values[send], &right, buf, &left);
            values[recv].copy_from_slice(buf);
        }
    }

    fn timed<T: Equivalence + Copy + AddAssign + Default>(&mut self, values: &mut [T]) {
        let start = Instant::now();
        self.ring(values);
        self.stats.all_reduces += 1;
        self.stats.elements += values.len() as u64;
        self.stats.seconds += start.elapsed().as_secs_f64();
    }
}

impl Collective for MpiWorld {
    fn rank(&self) -> usize {
        self.world.rank() as usize
    }

    fn size(&self) -> usize {
        self.world.size() as usize
    }

    fn all_reduce_sum(&mut self, values: &mut [f32]) -> Result<()> {
        self.timed(values);
        Ok(())
    }

    fn all_reduce_sum_f64(&mut self, values: &mut [f64]) -> Result<()> {
        self.timed(values);
        Ok(())
    }

    fn broadcast_f64(&mut self, values: &mut [f64], root: usize) -> Result<()> {
        self.world
            .process_at_rank(root as i32)
            .broadcast_into(values);
        Ok(())
    }

    fn abort(&mut self, error: &Error) {
        eprintln!(
            "error on MPI rank {} of {}: {error}; aborting every rank",
            self.rank(),
            self.size()
        );
        self.world.abort(1)
    }

    fn stats(&self) -> CommStats {
        self.stats
    }

    fn describe(&self) -> String {
        format!("MPI, {} ranks", self.size())
    }
}
