//! What data parallelism costs: the ring all-reduce of `parallel::mpi`
//! timed over message sizes and fitted to the α–β model, the all-reduce
//! per step against the step for two networks, and the model's prediction
//! for large clusters. Run under MPI (built with `--features mpi`):
//!
//! ```text
//! cargo build --release --features mpi --example allreduce
//! mpirun --allow-run-as-root -np 2 target/release/examples/allreduce
//! mpirun --allow-run-as-root -np 2 --mca btl tcp,self target/release/examples/allreduce
//! mpirun --allow-run-as-root -np 3 target/release/examples/allreduce --check
//! ```
//!
//! `--check` only verifies the ring's sums at awkward sizes (exact integer
//! sums, so any wrong chunk shows) and exits non-zero on a mismatch.

use clap::Parser;
use wgtrain::optim::{Adam, Optim};
use wgtrain::parallel::mpi::MpiWorld;
use wgtrain::parallel::Collective;
use wgtrain::train::{fit_replica, Report, TrainConfig};
use wgtrain::{Cpu, Dataset, Init, Sequential};

#[derive(Parser)]
struct Args {
    /// Only check the sums at awkward sizes.
    #[arg(long)]
    check: bool,
    /// Hidden widths of the 784-w-w-10 networks whose steps are timed.
    #[arg(long, value_delimiter = ',', default_value = "512,4096")]
    widths: Vec<usize>,
    /// Global batch of the timed steps.
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Timed steps per network.
    #[arg(long, default_value_t = 8)]
    steps: usize,
}

fn main() {
    let args = Args::parse();
    let mut world = MpiWorld::init().expect("MPI initialises");
    let (rank, p) = (world.rank(), world.size());
    if args.check {
        let wrong = check(&mut world);
        println!("rank {rank} of {p}: {wrong} wrong sums");
        drop(world); // MPI_Finalize before exiting
        std::process::exit(i32::from(wrong > 0));
    }
    let say = |line: String| {
        if rank == 0 {
            println!("{line}");
        }
    };
    say(format!(
        "ring all-reduce over {p} ranks (transport: {})",
        std::env::var("OMPI_MCA_btl")
            .unwrap_or_else(|_| "Open MPI's default, shared memory".into())
    ));

    // 1. The sweep: median time of the all-reduce of n f32, n = 2^8 … 2^22
    //    (none with one rank: the baseline steps alone).
    let mut points = Vec::new();
    for log in (8..=22).step_by(2).filter(|_| p > 1) {
        let n = 1usize << log;
        let reps = ((1 << 24) / n).clamp(5, 200);
        let mut v = vec![1.0f32; n];
        let mut times = Vec::with_capacity(reps);
        for _ in 0..reps {
            let mut sync = [0.0];
            world.broadcast_f64(&mut sync, 0).unwrap(); // start together
            let t = std::time::Instant::now();
            world.all_reduce_sum(&mut v).unwrap();
            times.push(t.elapsed().as_secs_f64());
            v.fill(1.0);
        }
        times.sort_by(f64::total_cmp);
        let median = times[reps / 2];
        // Every rank's median; the slowest counts (a step waits for it).
        let mut all = vec![0.0; p];
        all[rank] = median;
        world.all_reduce_sum_f64(&mut all).unwrap();
        let slowest = all.iter().copied().fold(0.0, f64::max);
        say(format!(
            "{{\"ranks\":{p},\"floats\":{n},\"bytes\":{},\"seconds\":{slowest:.4e}}}",
            4 * n
        ));
        points.push((4.0 * n as f64, slowest));
    }
    // 2. α–β: T(bytes) = 2(p−1)·α + 2(p−1)/p·bytes·β, least squares in
    //    relative error (small messages fix α, large ones β).
    let (alpha, beta) = if p > 1 {
        let (a, b) = least_squares(&points);
        (
            a / (2.0 * (p as f64 - 1.0)),
            b / (2.0 * (p as f64 - 1.0) / p as f64),
        )
    } else {
        (0.0, 0.0)
    };
    if p > 1 {
        say(format!(
            "fit: α = {:.2} µs per message, β = {:.3} ns per byte ({:.2} GB/s per link)",
            alpha * 1e6,
            beta * 1e9,
            1e-9 / beta
        ));
    }

    // 3. Steps of real networks on the CPU backend, one replica per rank.
    for &width in &args.widths {
        let spec = Sequential::new(784)
            .dense(width, Init::HeNormal)
            .relu()
            .dense(width, Init::HeNormal)
            .relu()
            .dense(10, Init::XavierUniform);
        let n = args.batch * args.steps;
        let features: Vec<f32> = (0..n * 784)
            .map(|i| ((i * 7919) % 255) as f32 / 255.0)
            .collect();
        let labels: Vec<u32> = (0..n as u32).map(|i| i % 10).collect();
        let data = Dataset::classification(features, 784, labels, 10).unwrap();
        let cpu = Cpu::<f32>::new();
        let mut model = spec.build(&cpu, 0).unwrap();
        let mut opt = Optim::new(Adam::default()).unwrap();
        let config = TrainConfig {
            epochs: 2, // the first warms the buffers up
            batch_size: args.batch,
            report: Report::Quiet,
            report_every: args.steps,
            ..TrainConfig::default()
        };
        let before = world.stats();
        let history = fit_replica(
            &mut model,
            &mut opt,
            &data,
            None,
            &config,
            Vec::new(),
            &mut world,
        )
        .unwrap();
        let comm = world.stats();
        let steps = 2 * args.steps;
        let step_ms = 1e3 * history.epochs.iter().map(|e| e.seconds).sum::<f64>() / steps as f64;
        let reduce_ms = 1e3 * (comm.seconds - before.seconds) / steps as f64;
        let params = model
            .parameter_names()
            .iter()
            .map(|k| model.parameter(k).unwrap().2.len())
            .sum::<usize>();
        let bytes = 4.0 * params as f64;
        let predicted = 1e3
            * (2.0 * (p as f64 - 1.0) * alpha + 2.0 * (p as f64 - 1.0) / p as f64 * bytes * beta);
        say(format!(
            "{{\"network\":\"784-{width}-{width}-10\",\"ranks\":{p},\"batch\":{},\"parameters\":{params},\"step_ms\":{step_ms:.3},\"all_reduce_ms\":{reduce_ms:.3},\"all_reduce_share\":{:.3},\"alpha_beta_ms\":{predicted:.3}}}",
            args.batch,
            reduce_ms / step_ms
        ));
    }
}

/// The line a + b·x minimising Σ ((y − a − b·x) / y)²: (a, b).
fn least_squares(points: &[(f64, f64)]) -> (f64, f64) {
    // Normal equations of the weighted problem, weights 1/y².
    let (mut s, mut sx, mut sxx, mut sy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    for &(x, y) in points {
        let w = 1.0 / (y * y);
        s += w;
        sx += w * x;
        sxx += w * x * x;
        sy += w * y;
        sxy += w * x * y;
    }
    let slope = (s * sxy - sx * sy) / (s * sxx - sx * sx);
    ((sy - slope * sx) / s, slope)
}

/// The ring's sums at awkward sizes against exact integer sums.
fn check(world: &mut MpiWorld) -> usize {
    let (rank, p) = (world.rank(), world.size());
    let mut wrong = 0;
    for n in [1usize, 2, 7, 33, 257, 1000, 100_003] {
        let value = |i: usize, r: usize| ((i % 1000) * 8 + r) as f32;
        let mut v: Vec<f32> = (0..n).map(|i| value(i, rank)).collect();
        world.all_reduce_sum(&mut v).unwrap();
        wrong += (0..n)
            .filter(|&i| v[i] != (0..p).map(|r| value(i, r)).sum::<f32>())
            .count();
        let mut w: Vec<f64> = (0..n).map(|i| value(i, rank) as f64).collect();
        world.all_reduce_sum_f64(&mut w).unwrap();
        wrong += (0..n)
            .filter(|&i| w[i] != (0..p).map(|r| value(i, r) as f64).sum::<f64>())
            .count();
    }
    wrong
}
