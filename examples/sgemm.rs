//! Matmul GFLOP/s of every GPU kernel family and tiled plan on this adapter,
//! for square products and the products of one training step of the peers'
//! 784-512-512-10 network at batch 256 (and of the 4096-wide one). Each result is checked against the
//! CPU backend before it is timed. The line marked `*` is what training runs
//! (the kernel family `Gpu::new` chose, and for `Workgroup` the plan chosen by
//! shape); compare it with cuBLAS from `scripts/torch_cuda_mlp.py`.
//!
//! `cargo run --release --example sgemm -- [SIZES]` (default 1024,2048,4096;
//! on lavapipe try 256,512: every figure there is a CPU timing).

use std::time::Instant;
use wgtrain::{Backend, Cpu, Gpu, MatmulKernel, MatmulSpec, TiledPlan, TiledTile};

/// `(label, m, n, k, transpose_a, transpose_b)`.
type Shape = (String, usize, usize, usize, bool, bool);

fn shapes(squares: &[usize]) -> Vec<Shape> {
    let mut v: Vec<Shape> = squares
        .iter()
        .map(|&s| (format!("square {s}"), s, s, s, false, false))
        .collect();
    for (label, m, n, k, ta, tb) in [
        ("fwd 784-512 X·Wᵀ", 256, 512, 784, false, true),
        ("wgrad 784-512 δᵀ·X", 512, 784, 256, true, false),
        ("fwd 512-512 X·Wᵀ", 256, 512, 512, false, true),
        ("wgrad 512-512 δᵀ·X", 512, 512, 256, true, false),
        ("igrad 512-512 δ·W", 256, 512, 512, false, false),
        ("fwd 512-10 X·Wᵀ", 256, 10, 512, false, true),
        // The 784-4096-4096-10 network of the width sweep, where the step
        // is nearly all matmul.
        ("fwd 4096-4096 X·Wᵀ", 256, 4096, 4096, false, true),
        ("wgrad 4096-4096 δᵀ·X", 4096, 4096, 256, true, false),
        ("igrad 4096-4096 δ·W", 256, 4096, 4096, false, false),
    ] {
        v.push((label.to_string(), m, n, k, ta, tb));
    }
    v
}

fn spec<'a, T>(transpose_a: bool, transpose_b: bool) -> MatmulSpec<'a, T> {
    MatmulSpec {
        transpose_a,
        transpose_b,
        ..Default::default()
    }
}

fn show(plan: TiledPlan) -> String {
    let loads = if plan.vec4 { "vec4" } else { "scalar" };
    format!(
        "Workgroup {:?}, k split {}, {loads}",
        plan.tile, plan.split_k
    )
}

fn values(seed: u64, n: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
}

fn main() -> wgtrain::Result<()> {
    let squares: Vec<usize> = match std::env::args().nth(1) {
        Some(list) => list
            .split(',')
            .map(|s| s.trim().parse().expect("SIZES: comma-separated integers"))
            .collect(),
        None => vec![1024, 2048, 4096],
    };
    let gpu = Gpu::new()?;
    println!("{}", gpu.describe());
    if gpu.is_software() {
        println!("software adapter: these GPU timings are CPU timings");
    }
    let chosen = gpu.matmul_kernel();
    let cpu = Cpu::<f32>::new();
    let mut configs: Vec<(String, MatmulKernel, Option<TiledPlan>)> = vec![
        ("Registers".into(), MatmulKernel::Registers, None),
        ("Workgroup by shape".into(), MatmulKernel::Workgroup, None),
    ];
    for tile in [TiledTile::Large, TiledTile::Small] {
        for split_k in [1, 2, 4, 8] {
            for vec4 in [true, false] {
                let plan = TiledPlan {
                    tile,
                    split_k,
                    vec4,
                };
                configs.push((show(plan), MatmulKernel::Workgroup, Some(plan)));
            }
        }
    }
    println!(
        "{:<22} {:<44} {:>9} {:>10} {:>9}",
        "product", "kernel", "ms", "GFLOP/s", "parity"
    );
    let mut failures = Vec::new();
    for (label, m, n, k, ta, tb) in shapes(&squares) {
        let (ar, ac) = if ta { (k, m) } else { (m, k) };
        let (br, bc) = if tb { (n, k) } else { (k, n) };
        let (ha, hb) = (values(1, m * k), values(2, k * n));
        let (ca, cb) = (cpu.upload(ar, ac, &ha)?, cpu.upload(br, bc, &hb)?);
        let mut cout = cpu.zeros(m, n)?;
        cpu.matmul(&ca, &cb, &mut cout, spec(ta, tb))?;
        let want = cpu.download(&cout)?;
        let (a, b) = (gpu.upload(ar, ac, &ha)?, gpu.upload(br, bc, &hb)?);
        let mut out = gpu.zeros(m, n)?;
        let spec = spec(ta, tb);
        let flop = 2.0 * (m * n * k) as f64;
        // Fresh buffers ran several times slower for their first ~100 ms on
        // an H100 (whichever kernel ran first): warm them up before timing.
        gpu.set_matmul_kernel(MatmulKernel::Workgroup);
        gpu.set_tiled_plan(None);
        let warm = Instant::now();
        while warm.elapsed().as_secs_f64() < 0.3 {
            gpu.matmul(&a, &b, &mut out, spec)?;
            gpu.synchronize()?;
        }
        for (name, kernel, plan) in &configs {
            gpu.set_matmul_kernel(*kernel);
            gpu.set_tiled_plan(*plan);
            gpu.matmul(&a, &b, &mut out, spec)?;
            let got = gpu.download(&out)?;
            let parity = got
                .iter()
                .zip(&want)
                .map(|(g, c)| (g - c).abs() / c.abs().max(1.0))
                .fold(0.0, f64::max);
            // Enough products per timed run that submission latency does not count.
            let iters = ((2e10 / flop) as usize).clamp(3, 2000);
            let mut runs = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                for _ in 0..iters {
                    gpu.matmul(&a, &b, &mut out, spec)?;
                }
                gpu.synchronize()?;
                runs.push(t.elapsed().as_secs_f64() / iters as f64);
            }
            runs.sort_by(f64::total_cmp);
            let median = runs[runs.len() / 2];
            let in_use = *kernel == chosen && plan.is_none();
            // The tolerance of tests/kernels.rs, 1e-4 up to k = 2048, grown with
            // k beyond: rounding error grows with the length of the dot products.
            if parity > 1e-4 * (k as f64 / 2048.0).max(1.0) {
                failures.push(format!("{label} {name}: parity {parity:.1e}"));
            }
            let shown = match (kernel, plan) {
                (MatmulKernel::Workgroup, None) => {
                    format!("{name}: {}", show(TiledPlan::for_shape(m, n, k)))
                }
                _ => name.clone(),
            };
            println!(
                "{:<22} {:<44} {:>9.4} {:>10.1} {:>9.1e}{}",
                label,
                shown,
                median * 1e3,
                flop / median / 1e9,
                parity,
                if in_use { " *" } else { "" }
            );
        }
    }
    if !failures.is_empty() {
        eprintln!("results that do not match the CPU backend: {failures:?}");
        std::process::exit(1);
    }
    Ok(())
}
