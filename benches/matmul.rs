//! Matmul throughput on the GPU backend, the CPU backend (matrixmultiply)
//! and the CPU reference loop, in GFLOP/s.
//!
//! Cases: square 256, 512, 1024, 2048, and the nine products of one training
//! step of a 784-512-512-10 network at batch 256 (forward `X·Wᵀ`, weight
//! gradient `δᵀ·X`, input gradient `δ·W`, per layer).
//!
//! ```text
//! cargo bench --bench matmul                      # everything (a few minutes)
//! WGTRAIN_BENCH=quick cargo bench --bench matmul  # 256, 512 and the MLP shapes
//! WGTRAIN_BENCH=gpu cargo bench --bench matmul    # one backend: gpu, cpu or cpu-ref
//! cargo bench --bench matmul -- gpu/square-1024   # a criterion filter
//! ```
//!
//! Criterion reports elements/s with one element per FLOP (`2·m·n·k` per
//! product); each case also prints one `GFLOP/s` line with the median over
//! its samples, so the numbers can be read without converting units.

use criterion::{
    criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode, Throughput,
};
use std::cell::RefCell;
use std::time::{Duration, Instant};
use wgtrain::backend::reference_matmul;
use wgtrain::{Backend, Cpu, Gpu, MatmulSpec};

/// One product `op(A)·op(B)` with `op(A)` of shape `m×k` and `op(B)` `k×n`.
struct Case {
    name: &'static str,
    m: usize,
    n: usize,
    k: usize,
    ta: bool,
    tb: bool,
}

impl Case {
    const fn new(name: &'static str, (m, n, k): (usize, usize, usize), ta: bool, tb: bool) -> Case {
        Case {
            name,
            m,
            n,
            k,
            ta,
            tb,
        }
    }

    const fn square(name: &'static str, n: usize) -> Case {
        Case::new(name, (n, n, n), false, false)
    }

    fn flop(&self) -> u64 {
        2 * (self.m * self.n * self.k) as u64
    }

    /// Square cases larger than this are left out of `WGTRAIN_BENCH=quick`.
    fn is_quick(&self) -> bool {
        self.flop() <= 2 * 512 * 512 * 512
    }
}

const SQUARE: [Case; 4] = [
    Case::square("square-256", 256),
    Case::square("square-512", 512),
    Case::square("square-1024", 1024),
    Case::square("square-2048", 2048),
];

/// Batch 256 through 784 → 512 → 512 → 10: `X·Wᵀ` forward, `δᵀ·X` for the
/// weight gradient (`out × in`), `δ·W` for the input gradient.
const MLP: [Case; 9] = [
    Case::new("mlp-fwd-784-512", (256, 512, 784), false, true),
    Case::new("mlp-wgrad-784-512", (512, 784, 256), true, false),
    Case::new("mlp-igrad-784-512", (256, 784, 512), false, false),
    Case::new("mlp-fwd-512-512", (256, 512, 512), false, true),
    Case::new("mlp-wgrad-512-512", (512, 512, 256), true, false),
    Case::new("mlp-igrad-512-512", (256, 512, 512), false, false),
    Case::new("mlp-fwd-512-10", (256, 10, 512), false, true),
    Case::new("mlp-wgrad-512-10", (10, 512, 256), true, false),
    Case::new("mlp-igrad-512-10", (256, 512, 10), false, false),
];

/// Deterministic values in [-1, 1): the bench measures speed, not accuracy.
fn values(seed: usize, len: usize) -> Vec<f32> {
    (0..len)
        .map(|i| ((i * 7919 + seed * 104_729) % 2001) as f32 / 1000.0 - 1.0)
        .collect()
}

/// A matmul entry point: [`Backend::matmul`] or the CPU reference loop.
type Product<B> = fn(
    &B,
    &<B as Backend>::Tensor,
    &<B as Backend>::Tensor,
    &mut <B as Backend>::Tensor,
    MatmulSpec<'_, <B as Backend>::Tensor>,
) -> wgtrain::Result<()>;

/// Benchmarks one case on one backend and prints its median GFLOP/s.
fn bench_case<B: Backend>(
    c: &mut Criterion,
    label: &str,
    backend: &B,
    product: Product<B>,
    case: &Case,
) {
    let (ar, ac) = if case.ta {
        (case.k, case.m)
    } else {
        (case.m, case.k)
    };
    let (br, bc) = if case.tb {
        (case.n, case.k)
    } else {
        (case.k, case.n)
    };
    let a = backend
        .upload(ar, ac, &values(1, ar * ac))
        .expect("upload A");
    let b = backend
        .upload(br, bc, &values(2, br * bc))
        .expect("upload B");
    let mut out = backend.zeros(case.m, case.n).expect("allocate the output");
    let spec = MatmulSpec {
        transpose_a: case.ta,
        transpose_b: case.tb,
        ..Default::default()
    };
    // The first product builds the pipeline (seconds on lavapipe): keep it out of the samples.
    product(backend, &a, &b, &mut out, spec).expect("matmul");
    backend.synchronize().expect("synchronize");

    // Seconds per product of every sample, for the GFLOP/s line.
    let per_product = RefCell::new(Vec::new());
    let mut group = c.benchmark_group(label);
    group.sample_size(10).sampling_mode(SamplingMode::Flat);
    group
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2));
    group.throughput(Throughput::Elements(case.flop()));
    group.bench_function(BenchmarkId::from_parameter(case.name), |bencher| {
        bencher.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                product(backend, &a, &b, &mut out, spec).expect("matmul");
            }
            backend.synchronize().expect("synchronize");
            let elapsed = start.elapsed();
            per_product
                .borrow_mut()
                .push(elapsed.as_secs_f64() / iters as f64);
            elapsed
        })
    });
    group.finish();

    let mut times = per_product.into_inner();
    if times.is_empty() {
        return; // filtered out by a criterion filter
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "GFLOP/s {label}/{}: {:.2} ({}x{}x{}, median of {} timed runs, {:.2} ms per product)",
        case.name,
        case.flop() as f64 / median / 1e9,
        case.m,
        case.n,
        case.k,
        times.len(),
        median * 1e3,
    );
}

/// Which cases and backends `WGTRAIN_BENCH` asks for (`quick`, `gpu`, `cpu`,
/// `cpu-ref`: the reference loop; comma-separated; empty means everything).
struct Selection {
    quick: bool,
    backends: Vec<String>,
}

impl Selection {
    fn from_env() -> Selection {
        let words: Vec<String> = std::env::var("WGTRAIN_BENCH")
            .unwrap_or_default()
            .split(',')
            .map(|w| w.trim().to_lowercase())
            .filter(|w| !w.is_empty())
            .collect();
        let quick = words.iter().any(|w| w == "quick");
        let backends = words.into_iter().filter(|w| w != "quick").collect();
        Selection { quick, backends }
    }

    fn wants(&self, backend: &str) -> bool {
        self.backends.is_empty() || self.backends.iter().any(|b| b == backend)
    }

    fn cases(&self) -> impl Iterator<Item = &'static Case> + '_ {
        SQUARE
            .iter()
            .filter(|c| !self.quick || c.is_quick())
            .chain(MLP.iter())
    }
}

fn matmul(c: &mut Criterion) {
    let sel = Selection::from_env();
    if sel.wants("gpu") {
        match Gpu::new() {
            Ok(gpu) => {
                println!("{}", gpu.describe());
                for case in sel.cases() {
                    bench_case(c, "gpu", &gpu, Gpu::matmul, case);
                }
            }
            Err(e) => println!("SKIPPED the GPU backend (no adapter): {e}"),
        }
    }
    let cpu = Cpu::<f32>::new();
    if sel.wants("cpu") {
        println!("{} (matrixmultiply)", cpu.describe());
        for case in sel.cases() {
            bench_case(c, "cpu", &cpu, Cpu::matmul, case);
        }
    }
    if sel.wants("cpu-ref") {
        println!("CPU reference loop (f32)");
        for case in sel.cases() {
            // The triple loop needs minutes for 2048³ at this sample count.
            if case.flop() > 2 * 1024 * 1024 * 1024 {
                println!(
                    "SKIPPED cpu-ref/{}: too slow for the reference loop",
                    case.name
                );
                continue;
            }
            bench_case(
                c,
                "cpu-ref",
                &cpu,
                |_, a, b, out, spec| reference_matmul(a, b, out, spec),
                case,
            );
        }
    }
}

criterion_group!(benches, matmul);
criterion_main!(benches);
