//! Trains the same small network on the GPU and the CPU backend side by side,
//! from the same seed on the same minibatches, and prints after every epoch
//! the largest divergence of the parameters and of the predictions,
//! `max|gpu − cpu| / max(1, |cpu|)`, beside the loss on each backend.
//!
//! One parameter stands out, and should: the bias of the dense layer in front
//! of the batch norm (`0.bias`). Batch norm subtracts the batch mean, so that
//! bias's true gradient is exactly zero and what each backend computes is
//! rounding noise of either sign; Adam divides by the noise's own magnitude
//! and moves it by about ±lr per step, differently on each backend (PyTorch
//! shows the same). In training the batch mean cancels it exactly; in
//! evaluation the running mean follows it a few steps late, which is most of
//! the prediction divergence. The column beside it gives the largest
//! divergence of every other parameter.
//!
//! `cargo run --release --example parity [-- --epochs N]`

use wgtrain::optim::{Adam, Optim, Optimizer, ParamRef};
use wgtrain::{Backend, Cpu, Gpu, Init, Loss, Mode, Model, Sequential, Target};

/// A fixed synthetic task: 512 samples of 20 features, 5 classes.
fn data() -> (Vec<f32>, Vec<u32>) {
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift64*: a fixed, dependency-free stream for the example's data.
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        (state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    };
    let x: Vec<f32> = (0..512 * 20).map(|_| next()).collect();
    let y = x
        .chunks(20)
        .map(|r| {
            (r.iter()
                .take(5)
                .enumerate()
                .fold(0.0, |s, (i, v)| s + v * (i + 1) as f32)
                .abs()
                * 2.0) as u32
                % 5
        })
        .collect();
    (x, y)
}

struct Side<B: Backend> {
    b: B,
    model: Model<B>,
    opt: Optim<B, Adam>,
    x: B::Tensor,
    y: B::Index,
}

impl<B: Backend> Side<B> {
    fn new(b: B, spec: &Sequential, x: &[f32], y: &[u32]) -> wgtrain::Result<Self> {
        Ok(Side {
            model: spec.build(&b, 7)?,
            opt: Optim::new(Adam {
                lr: 3e-3,
                ..Adam::default()
            })?,
            x: b.upload(y.len(), 20, x)?,
            y: b.indices(y, 5)?,
            b,
        })
    }

    /// One epoch of 8 minibatches of 64 (the same slices on both sides); returns the mean loss.
    fn epoch(&mut self) -> wgtrain::Result<f64> {
        let mut total = 0.0;
        for batch in 0..8 {
            let rows: Vec<u32> = (batch * 64..(batch + 1) * 64).collect();
            let idx = self.b.indices(&rows, 512)?;
            let mut xb = self.b.zeros(64, 20)?;
            self.b.gather_rows(&self.x, &idx, 0, &mut xb)?;
            let mut yb = self.b.indices(&[0; 64], 5)?;
            self.b.gather_indices(&self.y, &idx, 0, &mut yb)?;
            self.model
                .forward_backward(&xb, Loss::SoftmaxCrossEntropy, Target::Labels(&yb))?;
            total += self.model.loss_value(64)?;
            let mut refs: Vec<ParamRef<'_, B>> = self
                .model
                .parameters_mut()
                .into_iter()
                .map(|p| ParamRef::new(p.name, p.value, p.grad))
                .collect();
            self.opt.step(&self.b, &mut refs)?;
        }
        Ok(total / 8.0)
    }

    fn parameters(&mut self) -> wgtrain::Result<Vec<(String, Vec<f64>)>> {
        let mut all = Vec::new();
        for name in self.model.parameter_names() {
            all.push((name.clone(), self.model.parameter(&name)?.2));
        }
        Ok(all)
    }

    fn predictions(&mut self) -> wgtrain::Result<Vec<f64>> {
        let out = self.model.forward(&self.x, Mode::Eval)?;
        self.b.download(out)
    }
}

fn divergence(gpu: &[f64], cpu: &[f64]) -> f64 {
    gpu.iter()
        .zip(cpu)
        .map(|(g, c)| (g - c).abs() / c.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn main() -> wgtrain::Result<()> {
    let epochs = std::env::args()
        .skip_while(|a| a != "--epochs")
        .nth(1)
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let gpu = Gpu::new()?;
    println!(
        "GPU: {}\nCPU: {}",
        gpu.describe(),
        Cpu::<f32>::new().describe()
    );
    let spec = Sequential::new(20)
        .dense(64, Init::HeNormal)
        .batch_norm()
        .relu()
        .dropout(0.1)
        .residual(|r| r.dense(64, Init::HeNormal).tanh())
        .dense(5, Init::XavierUniform);
    let (x, y) = data();
    let mut g = Side::new(gpu, &spec, &x, &y)?;
    let mut c = Side::new(Cpu::<f32>::new(), &spec, &x, &y)?;
    println!("network 20-64(bn, relu, dropout 0.1)-residual(64 tanh)-5, Adam, 8 minibatches of 64 per epoch");
    println!("epoch  loss(gpu)   loss(cpu)   max param divergence   without 0.bias  max prediction divergence");
    for epoch in 1..=epochs {
        let (lg, lc) = (g.epoch()?, c.epoch()?);
        let per_tensor: Vec<(String, f64)> = g
            .parameters()?
            .into_iter()
            .zip(c.parameters()?)
            .map(|((name, gv), (_, cv))| (name, divergence(&gv, &cv)))
            .collect();
        let (worst, dp) =
            per_tensor.iter().fold(
                ("", 0.0),
                |w, (n, d)| if *d > w.1 { (n.as_str(), *d) } else { w },
            );
        let (_, rest) =
            per_tensor
                .iter()
                .filter(|(n, _)| n != "0.bias")
                .fold(
                    ("", 0.0f64),
                    |w, (n, d)| if *d > w.1 { (n.as_str(), *d) } else { w },
                );
        let dy = divergence(&g.predictions()?, &c.predictions()?);
        println!(
            "{epoch:>5}  {lg:<10.6}  {lc:<10.6}  {dp:.3e} ({worst:<8})  {rest:<12.3e}  {dy:.3e}"
        );
    }
    Ok(())
}
