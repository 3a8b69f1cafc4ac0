//! Convolution GFLOP/s, forward and backward, on each backend, on the
//! layer shapes of examples/lenet.rs, a 3×3 one and a 16-channel 5×5 one: exactly the work a
//! `Conv2d` layer does ([`Backend::conv2d`] and
//! [`Backend::conv2d_backward`]; on the GPU: im2col into one row per tap,
//! `W·cols`, back to NCHW with the bias, then `δ` to one row per channel,
//! `δ·colsᵀ` and the bias sums, `Wᵀ·δ`, col2im, with `W·cols` and
//! `δ·colsᵀ` an implicit GEMM for up to 32 output channels on the register
//! kernels (LeNet's layers), and `Wᵀ·δ` with col2im the implicit GEMM of
//! the transposed convolution for 8 to 32 input channels at stride 1 (the
//! 16- and 32-channel layers); on the CPU: the same
//! products a chunk of samples per task, in cache).
//! `scripts/conv_torch_bench.py` times PyTorch's CPU convolutions on the
//! same shapes; `scripts/bench_conv.sh` runs both in one go.
//!
//! Then whole training steps (forward, backward, Adam lr 2e-3) of LeNet-5
//! and of the cnn-bn network on one random batch, in samples/s, with the
//! protocol of `scripts/lenet_torch.py` (10 warm-up steps, median of 5
//! repeats of 50; `--steps` sets the 50, for a slow adapter), which times
//! PyTorch's.
//!
//! ```text
//! cargo run --release --example conv_bench -- [--backend cpu|gpu|both] [--batch 64] [--steps 50]
//! ```
//!
//! A lavapipe figure is a CPU figure (lavapipe is a software adapter).

use std::time::Instant;
use wgtrain::nn::{Conv2d, Shape};
use wgtrain::ops::conv::{ChannelBlock, ConvGrads, ConvGroup, Window2d};
use wgtrain::optim::{Adam, Optim};
use wgtrain::train::{LocalSync, StepOptions};
use wgtrain::{Backend, Cpu, Gpu, Init, Loss, Sequential, Shaped, Target};

/// `(name, [in channels, height, width], out channels, kernel, padding)`.
const SHAPES: [(&str, [usize; 3], usize, usize, usize); 5] = [
    ("lenet5 conv1", [1, 28, 28], 6, 5, 2),
    ("lenet5 conv2", [6, 14, 14], 16, 5, 0),
    ("cnn-bn conv2", [32, 14, 14], 64, 5, 2),
    ("3x3 64->64", [64, 14, 14], 64, 3, 1),
    ("5x5 16->32", [16, 14, 14], 32, 5, 2),
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

/// The networks of `scripts/lenet_torch.py`.
fn network(name: &str) -> Sequential {
    let image = Sequential::with_input_shape(Shape::new(&[1, 28, 28]));
    match name {
        "lenet5" => image
            .conv2d(Conv2d::new(6, 5).padding(2))
            .relu()
            .max_pool2d(2)
            .conv2d(Conv2d::new(16, 5))
            .relu()
            .max_pool2d(2)
            .flatten()
            .dense(120, Init::TorchDefault)
            .relu()
            .dense(84, Init::TorchDefault)
            .relu()
            .dense(10, Init::TorchDefault),
        _ => image
            .conv2d(Conv2d::new(32, 5).padding(2).no_bias())
            .batch_norm()
            .relu()
            .max_pool2d(2)
            .conv2d(Conv2d::new(64, 5).padding(2).no_bias())
            .batch_norm()
            .relu()
            .max_pool2d(2)
            .flatten()
            .dense(256, Init::TorchDefault)
            .relu()
            .dropout(0.3)
            .dense(10, Init::TorchDefault),
    }
}

/// Training steps per second of each network on one random batch of `n`.
fn training_steps<B: Backend>(b: &B, n: usize, steps: usize) -> wgtrain::Result<()> {
    let x = b.upload(
        n,
        784,
        &(0..n * 784)
            .map(|i| ((i * 7919) % 1000) as f32 / 500.0 - 1.0)
            .collect::<Vec<_>>(),
    )?;
    let y = b.indices(&(0..n as u32).map(|i| i % 10).collect::<Vec<_>>(), 10)?;
    let options = StepOptions {
        loss: Loss::SoftmaxCrossEntropy,
        ..StepOptions::default()
    };
    for name in ["lenet5", "cnn-bn"] {
        let mut model = network(name).build(b, 0)?;
        let mut opt = Optim::new(Adam {
            lr: 2e-3,
            ..Adam::default()
        })?;
        let mut step = || {
            wgtrain::train::train_step(
                &mut model,
                &mut opt,
                &x,
                Target::Labels(&y),
                &options,
                &mut LocalSync,
            )
        };
        for _ in 0..10 {
            step()?;
        }
        b.synchronize()?;
        let mut rates = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            for _ in 0..steps {
                step()?;
            }
            b.synchronize()?;
            rates.push((steps * n) as f64 / t.elapsed().as_secs_f64());
        }
        rates.sort_by(f64::total_cmp);
        println!(
            "  training step {name:<7} batch {n}: {:.0} samples/s [{:.0}-{:.0}]",
            rates[2], rates[0], rates[4]
        );
    }
    Ok(())
}

fn main() -> wgtrain::Result<()> {
    let mut args = std::env::args().skip(1);
    let (mut which, mut n, mut steps) = ("both".to_string(), 64, 50);
    while let Some(flag) = args.next() {
        let value = args.next().unwrap_or_default();
        let number = || {
            value
                .parse::<usize>()
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| {
                    wgtrain::Error::Model(format!("{flag} {value}: not a positive number"))
                })
        };
        match flag.as_str() {
            "--backend" => which = value.clone(),
            "--batch" => n = number()?,
            "--steps" => steps = number()?,
            _ => {
                return Err(wgtrain::Error::Model(format!(
                    "unknown option {flag} (--backend, --batch, --steps)"
                )))
            }
        }
    }
    println!("conv2d at batch {n}: forward with bias; backward = weight, bias and input gradients");
    if which != "gpu" {
        let cpu = Cpu::<f32>::new();
        bench(&cpu, n)?;
        training_steps(&cpu, n, steps)?;
    }
    if which != "cpu" {
        let gpu = Gpu::new()?;
        bench(&gpu, n)?;
        kernel_times(&gpu, n)?;
        training_steps(&gpu, n, steps)?;
    }
    Ok(())
}
