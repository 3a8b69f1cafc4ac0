//! Convolution GFLOP/s, forward and backward, on each backend, on the
//! layer shapes of examples/lenet.rs and a 3×3 one: exactly the work a
//! `Conv2d` layer does ([`Backend::conv2d`] and
//! [`Backend::conv2d_backward`]; on the GPU: im2col, `cols·Wᵀ + b`, back to
//! NCHW, then to channels-last, `δᵀ·cols` and the bias sums, `δ·W`,
//! col2im; on the CPU: the same products one sample per task, in cache).
//! `scripts/conv_torch_bench.py` times PyTorch's CPU convolutions on the
//! same shapes; `scripts/bench_conv.sh` runs both in one go.
//!
//! ```text
//! cargo run --release --example conv_bench -- [--backend cpu|gpu|both] [--batch 64]
//! ```
//!
//! A lavapipe figure is a CPU figure (lavapipe is a software adapter).

use std::time::Instant;
use wgtrain::ops::conv::{ChannelBlock, ConvGrads, ConvGroup, Window2d};
use wgtrain::{Backend, Cpu, Gpu, Shaped};

/// `(name, [in channels, height, width], out channels, kernel, padding)`.
const SHAPES: [(&str, [usize; 3], usize, usize, usize); 4] = [
    ("lenet5 conv1", [1, 28, 28], 6, 5, 2),
    ("lenet5 conv2", [6, 14, 14], 16, 5, 0),
    ("cnn-bn conv2", [32, 14, 14], 64, 5, 2),
    ("3x3 64->64", [64, 14, 14], 64, 3, 1),
];

/// The tensors of one convolution at batch `n`.
struct Conv<B: Backend> {
    group: ConvGroup,
    x: B::Tensor,
    w: B::Tensor,
    bias: B::Tensor,
    /// The columns and the product.
    scratch: Vec<B::Tensor>,
    out: B::Tensor,
    gw: B::Tensor,
    gb: B::Tensor,
    grad_in: B::Tensor,
}

impl<B: Backend> Conv<B> {
    fn new(
        b: &B,
        n: usize,
        image: [usize; 3],
        outs: usize,
        k: usize,
        pad: usize,
    ) -> wgtrain::Result<Self> {
        let window = Window2d::new(image, [k, k]).padding([pad, pad]);
        let group = ConvGroup {
            window,
            input: ChannelBlock::all(image[0]),
            output: ChannelBlock::all(outs),
        };
        let p = window.output_size()?.iter().product::<usize>();
        let taps = image[0] * k * k;
        let fill = |len: usize| -> Vec<f32> {
            (0..len)
                .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
                .collect()
        };
        Ok(Conv {
            x: b.upload(n, window.image_len(), &fill(n * window.image_len()))?,
            w: b.upload(outs, taps, &fill(outs * taps))?,
            bias: b.zeros(1, outs)?,
            scratch: b.conv2d_scratch(n, &group)?,
            out: b.upload(n, outs * p, &fill(n * outs * p))?,
            gw: b.zeros(outs, taps)?,
            gb: b.zeros(1, outs)?,
            grad_in: b.zeros(n, window.image_len())?,
            group,
        })
    }

    /// FLOPs of one of the three products.
    fn product_flops(&self) -> f64 {
        let [oh, ow] = self.group.window.output_size().expect("a valid window");
        let positions = oh * ow * self.x.rows();
        2.0 * (positions * self.w.cols() * self.w.rows()) as f64
    }

    fn forward(&mut self, b: &B) -> wgtrain::Result<()> {
        let bias = Some(&self.bias);
        b.conv2d(
            &self.x,
            &self.w,
            bias,
            &self.group,
            &mut self.scratch,
            &mut self.out,
        )
    }

    /// Both gradients; the output's gradient is `out` itself.
    fn backward(&mut self, b: &B) -> wgtrain::Result<()> {
        let grads = ConvGrads {
            weight: &mut self.gw,
            bias: Some(&mut self.gb),
            input: Some(&mut self.grad_in),
        };
        b.conv2d_backward(
            &self.x,
            &self.w,
            &self.out,
            &self.group,
            &mut self.scratch,
            true,
            grads,
        )
    }
}

/// Median seconds of 5 repeats of `reps` calls, after a warm-up.
fn seconds<B: Backend>(
    b: &B,
    reps: usize,
    op: &mut dyn FnMut() -> wgtrain::Result<()>,
) -> wgtrain::Result<f64> {
    op()?;
    b.synchronize()?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        for _ in 0..reps {
            op()?;
        }
        b.synchronize()?;
        times.push(t.elapsed().as_secs_f64() / reps as f64);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[2])
}

/// Every dispatch of one forward and backward pass of each layer, timed by
/// GPU timestamp queries (µs, in order).
fn kernel_times(gpu: &Gpu, n: usize) -> wgtrain::Result<()> {
    if !gpu.supports_timestamps() {
        println!("  (this adapter has no timestamp queries)");
        return Ok(());
    }
    for (name, image, outs, k, pad) in SHAPES {
        let mut conv = Conv::new(gpu, n, image, outs, k, pad)?;
        conv.forward(gpu)?;
        conv.backward(gpu)?;
        gpu.synchronize()?;
        gpu.start_profiling(64)?;
        conv.forward(gpu)?;
        conv.backward(gpu)?;
        let times = gpu.finish_profiling()?;
        let parts: Vec<String> = times
            .iter()
            .map(|t| format!("{}::{} {:.0}", t.shader, t.entry, t.seconds * 1e6))
            .collect();
        println!("  {name:<14} µs: {}", parts.join(" | "));
    }
    Ok(())
}

fn bench<B: Backend>(b: &B, n: usize) -> wgtrain::Result<()> {
    println!("{}", b.describe());
    println!(
        "  {:<14} {:>10} {:>12} {:>12} {:>12}",
        "layer", "GFLOP/pass", "fwd GFLOP/s", "bwd GFLOP/s", "fwd+bwd ms"
    );
    for (name, image, outs, k, pad) in SHAPES {
        let mut conv = Conv::new(b, n, image, outs, k, pad)?;
        let flops = conv.product_flops();
        let reps = ((2e9 / flops) as usize).clamp(2, 50);
        let fwd = seconds(b, reps, &mut || conv.forward(b))?;
        let bwd = seconds(b, reps, &mut || conv.backward(b))?;
        println!(
            "  {name:<14} {:>10.3} {:>12.1} {:>12.1} {:>12.2}",
            flops / 1e9,
            flops / fwd / 1e9,
            2.0 * flops / bwd / 1e9,
            (fwd + bwd) * 1e3
        );
    }
    Ok(())
}

fn main() -> wgtrain::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut which, mut n) = ("both".to_string(), 64);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        match flag.as_str() {
            "--backend" => which = value,
            "--batch" => {
                n = value
                    .parse()
                    .map_err(|_| wgtrain::Error::Model(format!("--batch {value}: not a number")))?
            }
            _ => {
                return Err(wgtrain::Error::Model(format!(
                    "unknown option {flag} (--backend, --batch)"
                )))
            }
        }
    }
    println!("conv2d at batch {n}: forward with bias; backward = weight, bias and input gradients");
    if which != "gpu" {
        bench(&Cpu::<f32>::new(), n)?;
    }
    if which != "cpu" {
        let gpu = Gpu::new()?;
        bench(&gpu, n)?;
        kernel_times(&gpu, n)?;
    }
    Ok(())
}
