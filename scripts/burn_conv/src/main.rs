//! Burn 0.22.1's wgpu convolutions (fusion and autotune on, as in
//! shared/peers/burn_mlp) on examples/conv_bench.rs's layer shapes: the
//! forward pass, and forward plus backward (input, weight and bias
//! gradients), in the units conv_bench prints.
//!
//!     burn_conv [batch] [repeats]
use burn::prelude::*;
use burn::tensor::Distribution;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use std::time::Instant;

/// name, (channels, height, width), outputs, kernel, padding: conv_bench's list.
const SHAPES: [(&str, [usize; 3], usize, usize, usize); 5] = [
    ("lenet5 conv1", [1, 28, 28], 6, 5, 2),
    ("lenet5 conv2", [6, 14, 14], 16, 5, 0),
    ("cnn-bn conv2", [32, 14, 14], 64, 5, 2),
    ("3x3 64->64", [64, 14, 14], 64, 3, 1),
    ("5x5 16->32", [16, 14, 14], 32, 5, 2),
];

/// Median seconds per call of `op`, over `repeats` timed runs of `reps` calls
/// each; `op` returns a scalar tensor whose read waits for the device.
fn seconds(reps: usize, repeats: usize, mut op: impl FnMut() -> f32) -> f64 {
    op();
    op();
    let mut times: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            for _ in 0..reps {
                std::hint::black_box(op());
            }
            start.elapsed().as_secs_f64() / reps as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let batch: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(64);
    let repeats: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let base = Device::wgpu(DeviceKind::DefaultDevice);
    let device = base.clone().autodiff();
    device.seed(7);
    println!("Burn 0.22.1 wgpu (fusion, autotune), device {base:?}, batch {batch}");
    println!(
        "  {:<14} {:>10} {:>12} {:>12} {:>12}",
        "layer", "GFLOP/pass", "fwd GFLOP/s", "bwd GFLOP/s", "fwd+bwd ms"
    );
    for (name, [c, h, w], outs, k, pad) in SHAPES {
        let normal = Distribution::Normal(0.0, 1.0);
        let x = Tensor::<4>::random([batch, c, h, w], normal, &device).require_grad();
        let weight = Tensor::<4>::random([outs, c, k, k], normal, &device).require_grad();
        let bias = Tensor::<1>::random([outs], normal, &device).require_grad();
        let options = ConvOptions::new([1, 1], [pad, pad], [1, 1], 1);
        let (oh, ow) = (h + 2 * pad - k + 1, w + 2 * pad - k + 1);
        let flops = 2.0 * (batch * oh * ow * outs * c * k * k) as f64;
        let upstream = Tensor::<4>::random([batch, outs, oh, ow], normal, &device);
        let reps = (2e9 / flops).clamp(2.0, 20.0) as usize;

        // Forward alone, without the tape.
        let (xf, wf, bf) = (x.clone().detach(), weight.clone().detach(), bias.clone().detach());
        let forward = seconds(reps, repeats, || {
            let y = conv2d(xf.clone(), wf.clone(), Some(bf.clone()), options.clone());
            y.slice([0..1, 0..1, 0..1, 0..1]).into_scalar::<f32>()
        });
        // Forward and backward: the loss Σ y·g has g as its upstream gradient.
        let both = seconds(reps, repeats, || {
            let y = conv2d(x.clone(), weight.clone(), Some(bias.clone()), options.clone());
            let grads = (y * upstream.clone()).sum().backward();
            let gx = x.grad(&grads).unwrap();
            let gw = weight.grad(&grads).unwrap();
            let gb = bias.grad(&grads).unwrap();
            // One element of each gradient read back: all three are done.
            let read = gx.slice([0..1, 0..1, 0..1, 0..1]).sum()
                + gw.slice([0..1, 0..1, 0..1, 0..1]).sum()
                + gb.slice([0..1]).sum();
            read.into_scalar::<f32>()
        });
        let backward = (both - forward).max(f64::MIN_POSITIVE);
        println!(
            "  {name:<14} {:>10.3} {:>12.1} {:>12.1} {:>12.2}",
            flops / 1e9,
            flops / forward / 1e9,
            2.0 * flops / backward / 1e9,
            both * 1e3
        );
    }
}
