//! The training options the lecture notes ask for, on every backend:
//! gradient accumulation in `fit`, noise on the weights, the regularised
//! objective in the history, the train/validation gap warning, and the
//! per-layer statistics (gradient norms, dead ReLUs).

mod common;

use common::random;
use wgtrain::diagnostics::l2_penalty;
use wgtrain::optim::{AdamW, Optim, Sgd};
use wgtrain::train::{fit, History, Report, TrainConfig};
use wgtrain::{Backend, Dataset, Error, Init, Loss, Sequential, Target};

/// Three Gaussian blobs in 8 dimensions, or random labels (`noise_labels`).
fn blobs(n: usize, seed: u64, noise_labels: bool) -> Dataset {
    let x = random(seed, n * 8);
    let shuffled = common::random_labels(seed + 1, n, 3);
    let mut features = Vec::with_capacity(n * 8);
    let mut labels = Vec::with_capacity(n);
    for i in 0..n {
        let class = i % 3;
        for j in 0..8 {
            let centre = if j % 3 == class { 2.0 } else { 0.0 };
            features.push(centre + x[i * 8 + j]);
        }
        labels.push(if noise_labels {
            shuffled[i]
        } else {
            class as u32
        });
    }
    Dataset::classification(features, 8, labels, 3).unwrap()
}

fn quiet(epochs: usize, batch_size: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size,
        report: Report::Quiet,
        report_every: 3,
        ..TrainConfig::default()
    }
}

/// f64 on the CPU agrees to rounding; f32 and the GPU to f32's.
fn tolerance(label: &str) -> f64 {
    if label.ends_with("cpu_f64") {
        1e-12
    } else {
        1e-5
    }
}

fn max_rel_diff(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs() / x.abs().max(1.0))
        .fold(0.0, f64::max)
}

fn sgd<B: Backend>(lr: f64, weight_decay: f64) -> Optim<B, Sgd> {
    Optim::new(Sgd {
        lr,
        momentum: 0.9,
        weight_decay,
        ..Sgd::default()
    })
    .unwrap()
}

/// Micro-batches add up to the whole batch: without batch norm or dropout,
/// `accumulation = 3` trains the same weights as one piece (up to the order
/// of additions).
fn accumulation_equals_one_piece<B: Backend>(b: &B, label: &str) {
    let spec = Sequential::new(8)
        .dense(16, Init::HeNormal)
        .tanh()
        .dense(3, Init::XavierUniform);
    let data = blobs(90, 1, false);
    let train = |accumulation: usize| {
        let mut model = spec.build(b, 3).unwrap();
        let mut opt = sgd(0.05, 1e-3);
        let config = TrainConfig {
            accumulation,
            ..quiet(2, 20)
        };
        let h = fit(&mut model, &mut opt, &data, None, &config).unwrap();
        let weights: Vec<f64> = model
            .parameter_names()
            .iter()
            .flat_map(|n| model.parameter(n).unwrap().2)
            .collect();
        (h, weights)
    };
    let (whole, w1) = train(1);
    let (parts, w3) = train(3);
    let diff = max_rel_diff(&w1, &w3);
    assert!(
        diff < tolerance(label),
        "{label}: weights differ by {diff:e}"
    );
    for (a, c) in whole.epochs.iter().zip(&parts.epochs) {
        assert!((a.train_loss - c.train_loss).abs() < tolerance(label) * 10.0);
        assert_eq!(a.train_accuracy, c.train_accuracy);
    }
}

backend_tests!(accumulation_trains_as_one_batch: accumulation_equals_one_piece on cpu_f64, cpu_f32, gpu);

#[test]
fn accumulation_is_checked() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let data = blobs(60, 1, false);
    let with_bn = Sequential::new(8)
        .dense(8, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(3, Init::XavierUniform);
    let mut model = with_bn.build(&cpu, 0).unwrap();
    let mut opt = sgd(0.05, 0.0);
    for bad in [0, 21] {
        let config = TrainConfig {
            accumulation: bad,
            ..quiet(1, 20)
        };
        let e = fit(&mut model, &mut opt, &data, None, &config);
        assert!(
            matches!(
                e,
                Err(Error::InvalidParameter {
                    name: "accumulation",
                    ..
                })
            ),
            "{e:?}"
        );
    }
    // Batches of 20 in 10 parts of 2 rows are fine for batch norm; of 21 in
    // 20 parts some part has one row, which batch norm cannot normalise.
    let ok = TrainConfig {
        accumulation: 10,
        ..quiet(1, 20)
    };
    fit(&mut model, &mut opt, &data, None, &ok).unwrap();
    let one_row = TrainConfig {
        accumulation: 20,
        ..quiet(1, 30)
    };
    let e = fit(&mut model, &mut opt, &data, None, &one_row).unwrap_err();
    assert!(e.to_string().contains("single row"), "{e}");
}

/// The gradient of a pass with weight noise is the clean network's gradient
/// at `w + σ·z`, with `z` the draws [`Model::weight_noise_draw`] names; the
/// clean weights come back unchanged.
fn weight_noise_is_the_gradient_at_noisy_weights<B: Backend>(b: &B, label: &str) {
    let spec = Sequential::new(8)
        .dense(6, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform);
    let data = random(5, 7 * 8);
    let x = b.upload(7, 8, &data).unwrap();
    let y = b.indices(&common::random_labels(6, 7, 3), 3).unwrap();
    let target = Target::Labels(&y);
    let mut noisy = spec.build(b, 2).unwrap();
    noisy.set_weight_noise(0.3).unwrap();
    let names = noisy.parameter_names();
    let clean: Vec<Vec<f64>> = names
        .iter()
        .map(|n| noisy.parameter(n).unwrap().2)
        .collect();
    let step = noisy.step();
    noisy
        .forward_backward(&x, Loss::SoftmaxCrossEntropy, target)
        .unwrap();
    for (n, w) in names.iter().zip(&clean) {
        assert_eq!(&noisy.parameter(n).unwrap().2, w, "{label}: {n} restored");
    }
    // The same pass by hand: the weights (not the biases) moved by the draws.
    let mut by_hand = spec.build(b, 2).unwrap();
    let mut weight = 0;
    for (n, w) in names.iter().zip(&clean) {
        if n.ends_with("weight") {
            let draw = noisy.weight_noise_draw(weight, step);
            let moved: Vec<f64> = w
                .iter()
                .enumerate()
                .map(|(i, v)| (*v as f32 + draw.noise(i as u64)) as f64)
                .collect();
            by_hand.set_parameter(n, &moved).unwrap();
            weight += 1;
        }
    }
    by_hand
        .forward_backward(&x, Loss::SoftmaxCrossEntropy, target)
        .unwrap();
    for n in &names {
        let (g, want) = (noisy.gradient(n).unwrap(), by_hand.gradient(n).unwrap());
        let diff = max_rel_diff(&g, &want);
        // In f64 the hand-made weights were rounded through f32 once.
        let tol = if label.ends_with("cpu_f64") {
            1e-6
        } else {
            1e-5
        };
        assert!(diff < tol, "{label}: {n} gradient off by {diff:e}");
    }
    let (l1, l2) = (noisy.last_loss().unwrap(), by_hand.last_loss().unwrap());
    assert!((l1 - l2).abs() < 1e-5, "{label}: loss {l1} vs {l2}");
    // A clean pass differs: the noise did something.
    let mut plain = spec.build(b, 2).unwrap();
    plain
        .forward_backward(&x, Loss::SoftmaxCrossEntropy, target)
        .unwrap();
    assert!((plain.last_loss().unwrap() - l1).abs() > 1e-4);
    // In fit, weight noise still trains.
    let mut model = spec.build(b, 2).unwrap();
    let mut opt = sgd(0.05, 0.0);
    let config = TrainConfig {
        weight_noise: Some(0.05),
        ..quiet(5, 15)
    };
    let h = fit(&mut model, &mut opt, &blobs(90, 1, false), None, &config).unwrap();
    let (first, last) = (h.epochs[0].train_loss, h.epochs[4].train_loss);
    assert!(last < first * 0.7, "{label}: {first} -> {last}");
    assert_eq!(
        model.weight_noise(),
        0.0,
        "fit puts the model's own setting back"
    );
}

backend_tests!(weight_noise_trains_on_noisy_weights: weight_noise_is_the_gradient_at_noisy_weights on cpu_f64, cpu_f32, gpu);

#[test]
fn weight_noise_and_gap_warning_are_checked() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let spec = Sequential::new(8).dense(3, Init::XavierUniform);
    let mut model = spec.build(&cpu, 0).unwrap();
    assert!(matches!(
        model.set_weight_noise(f64::NAN),
        Err(Error::InvalidParameter {
            name: "weight_noise",
            ..
        })
    ));
    let mut opt = sgd(0.05, 0.0);
    let data = blobs(30, 1, false);
    let bad = [
        (
            TrainConfig {
                weight_noise: Some(-0.1),
                ..quiet(1, 10)
            },
            "weight_noise",
        ),
        (
            TrainConfig {
                gap_warning: Some(-1.0),
                ..quiet(1, 10)
            },
            "gap_warning",
        ),
    ];
    for (config, name) in bad {
        let e = fit(&mut model, &mut opt, &data, None, &config);
        assert!(
            matches!(&e, Err(Error::InvalidParameter { name: n, .. }) if *n == name),
            "{e:?}"
        );
    }
}

/// With coupled weight decay λ the history reports `loss + λ·Ω(θ)`;
/// with decoupled decay (AdamW) or none it reports no objective.
fn objective_includes_the_penalty<B: Backend>(b: &B, label: &str) {
    let spec = Sequential::new(8)
        .dense(16, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform);
    let data = blobs(60, 1, false);
    let mut model = spec.build(b, 1).unwrap();
    let lambda = 1e-2;
    let h = fit(
        &mut model,
        &mut sgd(0.05, lambda),
        &data,
        None,
        &quiet(2, 20),
    )
    .unwrap();
    let last = h.epochs.last().unwrap();
    let want = last.train_loss + lambda * l2_penalty(&mut model).unwrap();
    let got = last.objective.expect("coupled decay reports the objective");
    assert!(
        (got - want).abs() < 1e-12 * want,
        "{label}: {got} vs {want}"
    );
    assert!(got > last.train_loss);
    assert!(h
        .to_csv()
        .lines()
        .last()
        .unwrap()
        .ends_with(&got.to_string()));
    let mut adamw = Optim::new(AdamW {
        lr: 1e-3,
        weight_decay: lambda,
        ..AdamW::default()
    })
    .unwrap();
    let h = fit(&mut model, &mut adamw, &data, None, &quiet(1, 20)).unwrap();
    assert_eq!(h.epochs[0].objective, None, "{label}: decoupled decay");
    let h = fit(&mut model, &mut sgd(0.05, 0.0), &data, None, &quiet(1, 20)).unwrap();
    assert_eq!(h.epochs[0].objective, None, "{label}: no decay");
}

backend_tests!(reported_objective_adds_lambda_omega: objective_includes_the_penalty on cpu_f64, gpu);

/// Random labels, a wide network and no regularisation: training accuracy
/// runs away from validation accuracy, and the run says so once.
#[test]
fn a_growing_gap_is_warned_about_once() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let spec = Sequential::new(8)
        .dense(128, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform);
    let (train, val) = (blobs(120, 1, true), blobs(60, 9, true));
    let mut opt = Optim::new(wgtrain::optim::Adam {
        lr: 1e-2,
        ..Default::default()
    })
    .unwrap();
    let run = |gap: Option<f64>, opt: &mut _| -> History {
        let mut model = spec.build(&cpu, 0).unwrap();
        let config = TrainConfig {
            gap_warning: gap,
            ..quiet(60, 20)
        };
        fit(&mut model, opt, &train, Some(&val), &config).unwrap()
    };
    let h = run(Some(0.05), &mut opt);
    let last = h.epochs.last().unwrap();
    assert!(last.train_accuracy.unwrap() - last.val_accuracy.unwrap() > 0.2);
    assert_eq!(h.warnings.len(), 1, "{:?}", h.warnings);
    assert!(h.warnings[0].contains("overfitting"), "{}", h.warnings[0]);
    // It survives the history's round trip through JSON.
    let back = History::from_json(&h.to_json(), std::path::Path::new("h.json")).unwrap();
    assert_eq!(back.warnings, h.warnings);
    let mut opt2 = Optim::new(wgtrain::optim::Adam {
        lr: 1e-2,
        ..Default::default()
    })
    .unwrap();
    assert!(run(None, &mut opt2).warnings.is_empty());
}

/// One step per epoch (the batch is the data set): the recorded gradient
/// norm is that step's, which the model still holds; a layer whose units
/// are all dead stays dead and is reported as 100% dead.
fn layer_stats_are_the_gradients_and_dead_units<B: Backend>(b: &B, label: &str) {
    let spec = Sequential::new(8)
        .dense(6, Init::HeNormal)
        .relu()
        .residual(|r| r.dense(6, Init::HeNormal).relu())
        .dense(3, Init::XavierUniform);
    let data = blobs(30, 1, false);
    let mut model = spec.build(b, 4).unwrap();
    let config = TrainConfig {
        layer_stats: true,
        shuffle: false,
        ..quiet(2, 30)
    };
    let h = fit(&mut model, &mut sgd(0.05, 0.0), &data, None, &config).unwrap();
    let record = h.epochs.last().unwrap();
    let names: Vec<String> = record.grad_norms.iter().map(|(n, _)| n.clone()).collect();
    assert_eq!(names, model.parameter_names());
    for (name, norm) in &record.grad_norms {
        let g = model.gradient(name).unwrap();
        let want = g.iter().map(|v| v * v).sum::<f64>().sqrt();
        assert!(
            (norm - want).abs() <= 1e-5 * want.max(1e-30),
            "{label}: {name}: {norm} vs {want}"
        );
    }
    let relus: Vec<&str> = record.dead_relu.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(relus, ["1", "2.1"], "{label}");
    // Kill the first layer: a bias of -100 leaves no unit alive, and no
    // gradient reaches it to bring one back.
    let mut dead = spec.build(b, 4).unwrap();
    dead.set_parameter("0.bias", &[-100.0; 6]).unwrap();
    let h = fit(&mut dead, &mut sgd(0.05, 0.0), &data, None, &config).unwrap();
    let record = h.epochs.last().unwrap();
    assert_eq!(record.dead_relu[0], ("1".to_string(), 1.0), "{label}");
    assert_eq!(
        record.grad_norms[0].1, 0.0,
        "{label}: no gradient reaches 0.weight"
    );
    let back = History::from_json(&h.to_json(), std::path::Path::new("h.json")).unwrap();
    for (a, c) in back.epochs.iter().zip(&h.epochs) {
        assert_eq!((&a.grad_norms, &a.dead_relu), (&c.grad_norms, &c.dead_relu));
    }
}

backend_tests!(layer_stats_record_gradients_and_dead_relus: layer_stats_are_the_gradients_and_dead_units on cpu_f32, gpu);

/// Seed 002's vanishing gradient, as `layer_stats` records it: through ten
/// sigmoid layers the first layer's gradient is orders of magnitude below
/// the last's; residual blocks carry it back.
#[test]
fn deep_sigmoid_gradients_vanish_and_residual_blocks_carry_them() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let (mut plain, mut residual) = (
        Sequential::new(8),
        Sequential::new(8).dense(32, Init::XavierUniform).sigmoid(),
    );
    for i in 0..9 {
        plain = plain.dense(32, Init::XavierUniform).sigmoid();
        if i > 0 {
            residual = residual.residual(|b| b.dense(32, Init::XavierUniform).sigmoid());
        }
    }
    let ratio = |spec: Sequential| {
        let mut model = spec.dense(3, Init::XavierUniform).build(&cpu, 0).unwrap();
        let config = TrainConfig {
            layer_stats: true,
            ..quiet(1, 10)
        };
        let h = fit(
            &mut model,
            &mut sgd(0.1, 0.0),
            &blobs(90, 1, false),
            None,
            &config,
        )
        .unwrap();
        let weights: Vec<f64> = h.epochs[0]
            .grad_norms
            .iter()
            .filter(|(n, _)| n.ends_with("weight"))
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(weights.len(), 10);
        weights[0] / weights[9]
    };
    let (vanishing, carried) = (ratio(plain), ratio(residual));
    assert!(vanishing < 1e-3, "plain sigmoid: first/last {vanishing:e}");
    assert!(carried > 1e-2, "residual: first/last {carried:e}");
}

/// The verification mode replays steps of a real run on the CPU reference
/// in f64 and finds them within f32's reach: batch norm, dropout, weight
/// noise, gradient accumulation, Adam and the max-norm constraint included.
fn verified_runs_agree_with_the_reference<B: Backend>(b: &B, label: &str) {
    let spec = Sequential::new(8)
        .dense_no_bias(16, Init::HeNormal)
        .batch_norm()
        .relu()
        .dropout(0.2)
        .dense(3, Init::XavierUniform);
    let data = blobs(90, 1, false);
    let runs = [
        (
            TrainConfig {
                verify_every: Some(2),
                accumulation: 2,
                ..quiet(2, 20)
            },
            true,
        ),
        (
            TrainConfig {
                verify_every: Some(3),
                weight_noise: Some(0.05),
                max_norm: Some(1.0),
                ..quiet(2, 15)
            },
            false,
        ),
    ];
    for (config, adam) in runs {
        let mut model = spec.build(b, 5).unwrap();
        let h = if adam {
            let mut opt = Optim::new(wgtrain::optim::Adam {
                lr: 1e-2,
                weight_decay: 1e-3,
                ..Default::default()
            })
            .unwrap();
            fit(&mut model, &mut opt, &data, None, &config).unwrap()
        } else {
            fit(&mut model, &mut sgd(0.05, 1e-3), &data, None, &config).unwrap()
        };
        let steps = 2 * data.len().div_ceil(config.batch_size);
        let every = config.verify_every.unwrap();
        assert_eq!(h.verifications.len(), steps / every, "{label}");
        for v in &h.verifications {
            assert_eq!(v.step % every, 0);
            assert!(v.seconds > 0.0);
            // A CPU f32 step against f64 differs by f32 rounding alone.
            let worst = v.loss.max(v.gradients).max(v.parameters);
            assert!(
                worst < 1e-5,
                "{label}: step {} divergence {worst:e}",
                v.step
            );
        }
        let back = History::from_json(&h.to_json(), std::path::Path::new("h.json")).unwrap();
        assert_eq!(back.verifications, h.verifications);
    }
}

backend_tests!(verification_mode_checks_real_steps: verified_runs_agree_with_the_reference on cpu_f32, gpu);

/// A gradient hook that gets the arithmetic wrong (scales by 1.01): the
/// verification catches it at the first checked step, loudly.
#[test]
fn verification_catches_a_wrong_step() {
    struct Off;
    impl<B: Backend> wgtrain::train::GradSync<B> for Off {
        fn sync(
            &mut self,
            b: &B,
            grads: &mut [&mut B::Tensor],
            _: Option<&mut B::Tensor>,
        ) -> wgtrain::Result<()> {
            grads.iter_mut().try_for_each(|g| b.scale(g, 1.01))
        }
    }
    let cpu = wgtrain::Cpu::<f32>::new();
    let mut model = Sequential::new(8)
        .dense(3, Init::XavierUniform)
        .build(&cpu, 0)
        .unwrap();
    let config = TrainConfig {
        verify_every: Some(4),
        ..quiet(1, 10)
    };
    let e = wgtrain::train::fit_with_sync(
        &mut model,
        &mut sgd(0.1, 0.0),
        &blobs(60, 1, false),
        None,
        &config,
        Vec::new(),
        &mut Off,
    )
    .unwrap_err();
    let Error::Verification {
        step,
        what,
        divergence,
        ..
    } = e
    else {
        panic!("expected a verification error, got {e}")
    };
    assert_eq!((step, what), (4, "the gradients"));
    assert!(divergence > 1e-3, "{divergence}");
    for (bad, name) in [
        (
            TrainConfig {
                verify_every: Some(0),
                ..quiet(1, 10)
            },
            "verify_every",
        ),
        (
            TrainConfig {
                verify_every: Some(1),
                verify_tolerance: 0.0,
                ..quiet(1, 10)
            },
            "verify_tolerance",
        ),
    ] {
        let e = fit(
            &mut model,
            &mut sgd(0.1, 0.0),
            &blobs(60, 1, false),
            None,
            &bad,
        );
        assert!(
            matches!(&e, Err(Error::InvalidParameter { name: n, .. }) if *n == name),
            "{e:?}"
        );
    }
}

/// Both samplers train on every backend, reproducibly from the seed; the
/// loss-weighted one keeps learning the blobs with a quarter of the labels
/// flipped (capped, the noisy samples cannot take over).
fn samplers_train<B: Backend>(b: &B, label: &str) {
    use wgtrain::train::Sampler;
    let spec = Sequential::new(8)
        .dense(16, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform);
    let clean = blobs(120, 1, false);
    let mut labels = clean.labels().unwrap().to_vec();
    for l in labels.iter_mut().step_by(4) {
        *l = (*l + 1) % 3;
    }
    let noisy = Dataset::classification(clean.features().to_vec(), 8, labels, 3).unwrap();
    for (sampler, data) in [
        (Sampler::Stratified, &clean),
        (Sampler::LossWeighted { cap: 3.0 }, &noisy),
    ] {
        let run = || {
            let mut model = spec.build(b, 2).unwrap();
            let config = TrainConfig {
                sampler,
                ..quiet(15, 12)
            };
            let h = fit(&mut model, &mut sgd(0.05, 0.0), data, None, &config).unwrap();
            let eval =
                wgtrain::train::evaluate_dataset(&mut model, &clean, Loss::SoftmaxCrossEntropy)
                    .unwrap();
            (
                h.epochs.iter().map(|e| e.train_loss).collect::<Vec<_>>(),
                eval.1.unwrap(),
            )
        };
        let (losses, accuracy) = run();
        assert!(
            accuracy > 0.9,
            "{label} {sampler:?}: accuracy {accuracy} on the clean labels"
        );
        assert!(losses[14] < losses[0], "{label} {sampler:?}: {losses:?}");
        assert_eq!(
            run().0,
            losses,
            "{label} {sampler:?}: the seed fixes the run"
        );
    }
    // Stratification needs labels; a cap below 1 is refused.
    let regression = Dataset::regression(vec![0.0; 16], 8, vec![0.0; 2], 1).unwrap();
    let mut model = Sequential::new(8)
        .dense(1, Init::XavierUniform)
        .build(b, 0)
        .unwrap();
    let config = TrainConfig {
        sampler: Sampler::Stratified,
        loss: Loss::SquaredError,
        ..quiet(1, 2)
    };
    let e = fit(&mut model, &mut sgd(0.05, 0.0), &regression, None, &config).unwrap_err();
    assert!(e.to_string().contains("class labels"), "{e}");
    for cap in [0.0, -1.0, 0.5, f64::NAN] {
        let config = TrainConfig {
            sampler: Sampler::LossWeighted { cap },
            ..quiet(1, 10)
        };
        let e = fit(&mut model, &mut sgd(0.05, 0.0), &clean, None, &config);
        assert!(
            matches!(
                e,
                Err(Error::InvalidParameter {
                    name: "sampler cap",
                    ..
                })
            ),
            "{e:?}"
        );
    }
}

backend_tests!(stratified_and_loss_weighted_samplers: samplers_train on cpu_f32, gpu);
