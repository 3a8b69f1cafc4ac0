//! The step-driven trainer: `train_step` runs backward, the gradient
//! synchronisation hook, then the optimizer; clipping sees the synchronised
//! gradients; callbacks change the learning rate.
mod common;

use common::{random, random_labels};
use wgtrain::optim::{Optim, Optimizer, Sgd};
use wgtrain::train::{
    fit_with_callbacks, train_step, Control, GradSync, LocalSync, Report, StepOptions, TrainConfig,
};
use wgtrain::{Backend, Cpu, Dataset, GradClip, Init, Model, Sequential, Target};

/// Multiplies every gradient by a constant: what a sum over `k` identical
/// replicas does.
struct Scale(f64);

impl<B: Backend> GradSync<B> for Scale {
    fn sync(
        &mut self,
        backend: &B,
        grads: &mut [&mut B::Tensor],
        flat: Option<&mut B::Tensor>,
    ) -> wgtrain::Result<()> {
        match flat {
            Some(all) => backend.scale(all, self.0),
            None => grads.iter_mut().try_for_each(|g| backend.scale(g, self.0)),
        }
    }
}

/// Counts the gradients it is handed.
struct Count(Vec<usize>);

impl<B: Backend> GradSync<B> for Count {
    fn sync(
        &mut self,
        _: &B,
        grads: &mut [&mut B::Tensor],
        _: Option<&mut B::Tensor>,
    ) -> wgtrain::Result<()> {
        self.0.push(grads.len());
        Ok(())
    }
}

fn model(cpu: &Cpu<f64>) -> Model<Cpu<f64>> {
    Sequential::new(5)
        .dense(7, Init::HeNormal)
        .batch_norm()
        .tanh()
        .dense(3, Init::XavierUniform)
        .build(cpu, 11)
        .unwrap()
}

fn params(m: &mut Model<Cpu<f64>>) -> Vec<f64> {
    let names = m.parameter_names();
    names
        .iter()
        .flat_map(|n| m.parameter(n).unwrap().2)
        .collect()
}

/// Three steps on a fixed batch with `opt` and `sync`.
fn run(opt: &mut dyn Optimizer<Cpu<f64>>, sync: &mut dyn GradSync<Cpu<f64>>) -> Vec<f64> {
    let cpu = Cpu::<f64>::new();
    let mut m = model(&cpu);
    let x = cpu.upload(9, 5, &random(3, 45)).unwrap();
    let y = cpu.indices(&random_labels(4, 9, 3), 3).unwrap();
    for _ in 0..3 {
        train_step(
            &mut m,
            opt,
            &x,
            Target::Labels(&y),
            &StepOptions::default(),
            sync,
        )
        .unwrap();
    }
    params(&mut m)
}

fn sgd(lr: f64) -> Optim<Cpu<f64>, Sgd> {
    Optim::new(Sgd {
        lr,
        ..Sgd::default()
    })
    .unwrap()
}

fn max_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn the_hook_sees_every_gradient_of_every_step() {
    let mut count = Count(Vec::new());
    run(&mut sgd(0.1), &mut count);
    // Two dense layers and a batch norm, each with a weight and a bias.
    assert_eq!(count.0, vec![6, 6, 6]);
}

#[test]
fn the_optimizer_steps_on_the_synchronised_gradients() {
    let doubled = run(&mut sgd(0.05), &mut Scale(2.0));
    let plain = run(&mut sgd(0.1), &mut LocalSync);
    let untouched = run(&mut sgd(0.05), &mut LocalSync);
    let d = max_diff(&doubled, &plain);
    assert!(d <= 1e-14, "2·g at lr/2 equals g at lr: {d:e}");
    assert!(
        max_diff(&doubled, &untouched) > 1e-3,
        "the hook changed the step"
    );
}

#[test]
fn clipping_by_global_norm_uses_the_synchronised_gradients() {
    // The norm is always above the threshold, so the clipped gradient is
    // g·c/(‖g‖ + 1e-6) (PyTorch's clip_grad_norm_): for 10·g the same as for
    // g up to that 1e-6 (about 1e-10 here), if the norm is taken after the
    // hook has scaled g; a norm taken before would make the steps 10× larger.
    let clipped = |sync: &mut dyn GradSync<Cpu<f64>>| {
        let mut opt = sgd(0.1).with_clip(GradClip::Norm(1e-3)).unwrap();
        run(&mut opt, sync)
    };
    let scaled = clipped(&mut Scale(10.0));
    let plain = clipped(&mut LocalSync);
    let d = max_diff(&scaled, &plain);
    assert!(d <= 1e-8, "clipped steps differ by {d:e}");
    let start = params(&mut model(&Cpu::new()));
    assert!(
        max_diff(&plain, &start) > 1e-4,
        "the steps moved the parameters"
    );
}

#[test]
fn a_callback_changes_the_learning_rate() {
    let cpu = Cpu::<f32>::new();
    let labels: Vec<u32> = random_labels(1, 40, 2);
    let data = Dataset::classification(random(2, 80), 2, labels, 2).unwrap();
    let mut m = Sequential::new(2)
        .dense(2, Init::XavierUniform)
        .build(&cpu, 0)
        .unwrap();
    let mut opt = Optim::new(Sgd::default()).unwrap();
    let config = TrainConfig {
        epochs: 3,
        batch_size: 8,
        report: Report::Quiet,
        ..TrainConfig::default()
    };
    let cb = Box::new(|r: &wgtrain::train::EpochRecord| {
        if r.epoch == 1 {
            Control::SetLr(0.25)
        } else {
            Control::Continue
        }
    });
    let h = fit_with_callbacks(&mut m, &mut opt, &data, None, &config, vec![cb]).unwrap();
    let lrs: Vec<f64> = h.epochs.iter().map(|r| r.lr).collect();
    assert_eq!(lrs, vec![Sgd::default().lr, 0.25, 0.25]);
}

/// The peers' workload (784-512-512-10, Adam, batch 256) records at most 16
/// dispatches per step on lavapipe: 5 forward, 1 loss, 8 backward (the
/// ReLU derivatives fused into the input-gradient products) and 1 optimizer
/// step over the flat parameters. Split-k on real GPUs adds passes.
#[test]
fn the_peer_step_records_at_most_16_dispatches() {
    let Some(g) = common::gpu() else { return };
    let spec = Sequential::new(784)
        .dense_with(512, Init::TorchDefault, Init::TorchDefault)
        .relu()
        .dense_with(512, Init::TorchDefault, Init::TorchDefault)
        .relu()
        .dense_with(10, Init::TorchDefault, Init::TorchDefault);
    let mut m = spec.build(&g, 0).unwrap();
    let mut opt = Optim::new(wgtrain::optim::Adam::default()).unwrap();
    let x = g.upload(256, 784, &random(1, 256 * 784)).unwrap();
    let y = g.indices(&random_labels(2, 256, 10), 10).unwrap();
    let options = StepOptions::default();
    let mut step = |m: &mut Model<wgtrain::Gpu>| {
        train_step(
            m,
            &mut opt,
            &x,
            Target::Labels(&y),
            &options,
            &mut LocalSync,
        )
        .unwrap()
    };
    step(&mut m);
    let (before, _) = g.counters();
    for _ in 0..3 {
        step(&mut m);
    }
    let per_step = (g.counters().0 - before) / 3;
    println!("dispatches per step: {per_step} on {}", g.describe());
    if g.is_software() {
        assert!(per_step <= 16, "{per_step} dispatches per step");
    }
    assert!(m.loss_value(256).unwrap().is_finite());
}

/// `n` steps of `opt` on a GPU model, through the flat path (`train_step`,
/// one optimizer dispatch) or tensor by tensor (`Optimizer::step`).
fn gpu_params<O: Optimizer<wgtrain::Gpu>>(g: &wgtrain::Gpu, mut opt: O, flat: bool) -> Vec<f64> {
    let mut m = Sequential::new(9)
        .dense(17, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(5, Init::XavierUniform)
        .build(g, 3)
        .unwrap();
    let x = g.upload(13, 9, &random(7, 13 * 9)).unwrap();
    let y = g.indices(&random_labels(8, 13, 5), 5).unwrap();
    for _ in 0..4 {
        if flat {
            let options = StepOptions::default();
            train_step(
                &mut m,
                &mut opt,
                &x,
                Target::Labels(&y),
                &options,
                &mut LocalSync,
            )
            .unwrap();
        } else {
            m.forward_backward(&x, wgtrain::Loss::SoftmaxCrossEntropy, Target::Labels(&y))
                .unwrap();
            let mut refs: Vec<wgtrain::ParamRef<'_, wgtrain::Gpu>> = m
                .parameters_mut()
                .into_iter()
                .map(|p| wgtrain::ParamRef::new(p.name, p.value, p.grad))
                .collect();
            opt.step(g, &mut refs).unwrap();
        }
    }
    let names = m.parameter_names();
    names
        .iter()
        .flat_map(|n| m.parameter(n).unwrap().2)
        .collect()
}

/// One dispatch over the flat parameters gives the very values of one
/// dispatch per tensor, for every update rule (the same arithmetic on each
/// element; the padding between views stays zero).
#[test]
fn the_flat_optimizer_step_equals_the_per_tensor_step() {
    use wgtrain::optim::{Adagrad, Adam, AdamW, EmaMomentum, RmsProp};
    let Some(g) = common::gpu() else { return };
    macro_rules! same {
        ($name:expr, $config:expr) => {
            let flat = gpu_params(&g, Optim::new($config).unwrap(), true);
            let apart = gpu_params(&g, Optim::new($config).unwrap(), false);
            assert_eq!(flat, apart, "{}", $name);
        };
    }
    same!(
        "Adam",
        Adam {
            weight_decay: 0.01,
            ..Adam::default()
        }
    );
    same!(
        "AdamW amsgrad",
        AdamW {
            amsgrad: true,
            ..AdamW::default()
        }
    );
    same!(
        "SGD nesterov",
        Sgd {
            lr: 0.1,
            momentum: 0.9,
            nesterov: true,
            ..Sgd::default()
        }
    );
    same!("EMA momentum", EmaMomentum::default());
    same!(
        "Adagrad",
        Adagrad {
            initial_accumulator_value: 0.1,
            ..Adagrad::default()
        }
    );
    same!(
        "RMSprop centered",
        RmsProp {
            centered: true,
            momentum: 0.5,
            ..RmsProp::default()
        }
    );
}
