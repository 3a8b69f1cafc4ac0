//! A dense layer's backward pass on the CPU backend, two ways, taking
//! turns: `Backend::dense_backward` (both products and the bias sums as
//! one job on the backend's threads) and the three ops it replaces, one
//! after another (`matmul` for `gᵀ·x`, `sum_rows`, `matmul` for `g·W`
//! with the ReLU gate), at the peer network's layer shapes (784-512-512-10)
//! and at batch 64. Medians and 10th percentiles of 400 calls each, µs.
//!
//! `cargo run --release --example dense_backward`

use std::time::Instant;
use wgtrain::{Activation, Backend, Cpu, CpuTensor, DenseGrads, MatmulSpec};

/// A layer's operands and gradients.
struct Layer {
    g: CpuTensor<f32>,
    x: CpuTensor<f32>,
    w: CpuTensor<f32>,
    z: CpuTensor<f32>,
    gw: CpuTensor<f32>,
    gb: CpuTensor<f32>,
    gx: CpuTensor<f32>,
    /// Whether the input gradient is wanted (not for the first layer).
    input: bool,
}

fn main() -> wgtrain::Result<()> {
    let cpu = Cpu::<f32>::new();
    println!("threads: {}", rayon::current_num_threads());
    for (rows, outs, ins, input) in [
        (256, 512, 784, false),
        (256, 512, 512, true),
        (256, 10, 512, true),
        (64, 512, 784, false),
        (64, 512, 512, true),
    ] {
        // Deterministic values in [-0.5, 0.5).
        let values = |n: usize| -> Vec<f32> {
            (0..n)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        };
        let mut l = Layer {
            g: cpu.upload(rows, outs, &values(rows * outs))?,
            x: cpu.upload(rows, ins, &values(rows * ins))?,
            w: cpu.upload(outs, ins, &values(outs * ins))?,
            z: cpu.upload(rows, ins, &values(rows * ins + 1)[1..])?,
            gw: cpu.zeros(outs, ins)?,
            gb: cpu.zeros(1, outs)?,
            gx: cpu.zeros(rows, ins)?,
            input,
        };
        let (mut joint, mut in_turn) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            joint.push(timed(|| jointly(&cpu, &mut l))?);
            in_turn.push(timed(|| one_by_one(&cpu, &mut l))?);
        }
        let (j, j10) = median_p10(&mut joint);
        let (t, t10) = median_p10(&mut in_turn);
        println!(
            "batch {rows:3}, {ins:3} -> {outs:3}, input gradient {input:5}: \
             joint {j:6.0} µs (p10 {j10:6.0}), in turn {t:6.0} µs (p10 {t10:6.0}): {:.3}x",
            t / j
        );
    }
    Ok(())
}

fn jointly(cpu: &Cpu<f32>, l: &mut Layer) -> wgtrain::Result<()> {
    let grads = DenseGrads {
        weight: &mut l.gw,
        bias: Some(&mut l.gb),
        input: l
            .input
            .then_some((&mut l.gx, Some((Activation::Relu, &l.z)))),
    };
    cpu.dense_backward(&l.g, &l.x, &l.w, grads)
}

fn one_by_one(cpu: &Cpu<f32>, l: &mut Layer) -> wgtrain::Result<()> {
    let weight = MatmulSpec {
        transpose_a: true,
        ..MatmulSpec::default()
    };
    cpu.matmul(&l.g, &l.x, &mut l.gw, weight)?;
    cpu.sum_rows(&l.g, &mut l.gb)?;
    if l.input {
        let gated = MatmulSpec {
            gate: Some((Activation::Relu, &l.z)),
            ..MatmulSpec::default()
        };
        cpu.matmul(&l.g, &l.w, &mut l.gx, gated)?;
    }
    Ok(())
}

/// µs one call of `f` took.
fn timed(f: impl FnOnce() -> wgtrain::Result<()>) -> wgtrain::Result<f64> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64() * 1e6)
}

fn median_p10(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[v.len() / 10])
}
