//! Networks: gradient checks against finite differences (f64), one training
//! step on the GPU against the CPU, the worked example of seed 004, the cost
//! model, the babysitting checks, and bad input.

mod common;
#[path = "../examples/worked_example.rs"]
mod worked_example;

use common::{assert_parity, gpu, json_floats, random, random_labels};
use wgtrain::diagnostics::{
    first_step_loss_check, gradient_check, overfit_tiny_subset, HostTarget,
};
use wgtrain::{Activation, Backend, Cpu, Error, Init, Loss, Mode, Sequential, Target};

fn host(seed: u64, n: usize) -> Vec<f64> {
    random(seed, n).iter().map(|&v| v as f64).collect()
}

/// A target suited to each loss: labels for the classification losses,
/// values in (0, 1) for BCE, values in [-1, 1] otherwise.
fn target_for(loss: Loss, rows: usize, cols: usize, seed: u64) -> HostTarget {
    match loss {
        Loss::SoftmaxCrossEntropy
        | Loss::SmoothedCrossEntropy { .. }
        | Loss::Hinge
        | Loss::SquaredHinge => HostTarget::Labels(random_labels(seed, rows, cols), cols),
        Loss::BinaryCrossEntropy => HostTarget::Dense(
            host(seed, rows * cols)
                .iter()
                .map(|v| (v + 1.0) / 2.0)
                .collect(),
        ),
        Loss::SquaredError | Loss::L1 | Loss::RbfEuclidean { .. } => {
            HostTarget::Dense(host(seed, rows * cols))
        }
    }
}

// Central differences in f64 (h = 1e-6) carry an absolute error of about
// 1e-11, so a correct gradient agrees to ~1e-8 relative where it is O(1) and
// to ~1e-6 where it has vanished to ~1e-5 (six tanh layers deep). A wrong
// formula misses by O(1) (see gradient_check_catches_a_wrong_gradient).
const GRADCHECK_TOL: f64 = 1e-5;

fn check(name: &str, spec: &Sequential, loss: Loss, rows: usize) {
    let x = host(7, rows * spec.input_width());
    let target = target_for(loss, rows, spec.output_width(), 8);
    let report = gradient_check(spec, 3, loss, &x, rows, &target, 200).unwrap();
    for t in &report.tensors {
        println!(
            "gradcheck {name} {}: {:.2e} over {} elements",
            t.name, t.worst_relative_error, t.checked
        );
    }
    assert!(
        report.worst() < GRADCHECK_TOL,
        "{name}: worst relative error {:.2e}",
        report.worst()
    );
}

#[test]
fn gradient_check_every_activation() {
    for act in Activation::all() {
        let spec = Sequential::new(5)
            .dense_with(7, Init::XavierUniform, Init::TorchDefault)
            .act(act)
            .dense(4, Init::XavierUniform);
        check(&format!("{act:?}"), &spec, Loss::SoftmaxCrossEntropy, 6);
    }
}

#[test]
fn gradient_check_every_loss() {
    for loss in Loss::all() {
        let spec = Sequential::new(4)
            .dense(6, Init::XavierUniform)
            .tanh()
            .dense(3, Init::XavierUniform);
        check(&format!("{loss:?}"), &spec, loss, 5);
    }
    // Soft targets for cross-entropy.
    let spec = Sequential::new(4).dense(3, Init::XavierUniform);
    let soft: Vec<f64> = host(2, 15).iter().map(|v| (v + 1.0) / 2.0).collect();
    let report = gradient_check(
        &spec,
        1,
        Loss::SoftmaxCrossEntropy,
        &host(1, 20),
        5,
        &HostTarget::Dense(soft),
        100,
    )
    .unwrap();
    assert!(
        report.worst() < GRADCHECK_TOL,
        "soft targets: {:.2e}",
        report.worst()
    );
}

#[test]
fn gradient_check_deep_stack_and_residual_block() {
    let deep = (0..6)
        .fold(Sequential::new(3), |s, _| {
            s.dense_with(5, Init::XavierUniform, Init::TorchDefault)
                .tanh()
        })
        .dense(2, Init::XavierUniform);
    check("deep tanh stack", &deep, Loss::SoftmaxCrossEntropy, 4);
    let residual = Sequential::new(4)
        .dense(6, Init::XavierUniform)
        .residual(|b| {
            b.dense_with(6, Init::XavierUniform, Init::TorchDefault)
                .act(Activation::LeakyRelu { slope: 0.1 })
                .dense(6, Init::XavierUniform)
        })
        .sigmoid()
        .residual(|b| b.residual(|c| c.dense(6, Init::XavierUniform).tanh()))
        .dense(3, Init::XavierUniform);
    check("residual blocks", &residual, Loss::SquaredError, 5);
}

#[test]
fn gradient_check_rbf_units() {
    // Centres, widths and the input's gradient, under a dense read-out,
    // with a tanh before them so the input gradient is also checked.
    let spec = Sequential::new(3)
        .dense(4, Init::XavierUniform)
        .tanh()
        .rbf(5, 0.7)
        .dense(2, Init::XavierUniform);
    check("rbf units", &spec, Loss::SquaredError, 6);
    check(
        "rbf units, RBF loss",
        &spec,
        Loss::RbfEuclidean { beta: 0.5 },
        4,
    );
}

/// The seed's RBF network `a = Σⱼ uⱼ exp(−βⱼ(x − wⱼ)²)` fits sin on
/// [−3, 3] with 12 units, on every backend.
fn rbf_network_fits_a_curve<B: Backend>(b: &B, label: &str) {
    use wgtrain::optim::{Adam, Optim};
    use wgtrain::train::{fit, Report, TrainConfig};
    let n = 64;
    let xs: Vec<f32> = (0..n)
        .map(|i| -3.0 + 6.0 * i as f32 / (n - 1) as f32)
        .collect();
    let ys: Vec<f32> = xs.iter().map(|x| x.sin()).collect();
    let data = wgtrain::Dataset::regression(xs, 1, ys, 1).unwrap();
    let mut model = Sequential::new(1)
        .rbf(12, 1.0)
        .dense(1, Init::XavierUniform)
        .build(b, 3)
        .unwrap();
    let mut opt = Optim::new(Adam {
        lr: 0.05,
        ..Adam::default()
    })
    .unwrap();
    let config = TrainConfig {
        epochs: 300,
        batch_size: 16,
        loss: Loss::SquaredError,
        report: Report::Quiet,
        ..TrainConfig::default()
    };
    let h = fit(&mut model, &mut opt, &data, None, &config).unwrap();
    let last = h.epochs.last().unwrap().train_loss;
    // ½ mean squared error 1e-3: within about 0.045 of sin everywhere.
    assert!(last < 1e-3, "{label}: {} -> {last}", h.epochs[0].train_loss);
}

backend_tests!(rbf_network_fits_sin: rbf_network_fits_a_curve on cpu_f32, gpu);

#[test]
fn gradient_check_maxout() {
    // Random inputs make ties (where the max has no derivative) improbable.
    let spec = Sequential::new(6)
        .maxout(5, 3, Init::XavierUniform)
        .maxout(4, 2, Init::XavierUniform)
        .dense(3, Init::XavierUniform);
    check("maxout", &spec, Loss::SoftmaxCrossEntropy, 7);
    let single = Sequential::new(4).maxout(3, 1, Init::XavierUniform);
    check("maxout of one piece", &single, Loss::SquaredError, 2);
}

/// Maxout's forward pass is `z.view(n, units, pieces).max(-1)` (PyTorch's
/// idiom), at awkward sizes, on every backend.
fn maxout_is_the_max_of_each_group<B: Backend>(b: &B, label: &str) {
    for (units, pieces, rows) in [(1, 1, 1), (7, 2, 3), (33, 5, 7), (257, 3, 2)] {
        let width = units * pieces;
        let spec = Sequential::new(width)
            .maxout_pieces(pieces)
            .dense(2, Init::XavierUniform);
        let mut model = spec.build(b, 0).unwrap();
        let z = random(units as u64, rows * width);
        let want: Vec<f64> = z
            .chunks(pieces)
            .map(|g| g.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64)
            .collect();
        // A model needs a layer with parameters: the dense layer after the
        // maxout reads out its first and last unit (weights [1, 0, …] and
        // [0, …, 1], zero bias).
        let mut w = vec![0.0; 2 * units];
        w[0] = 1.0;
        w[2 * units - 1] = 1.0;
        model.set_parameter("1.weight", &w).unwrap();
        let x = b.upload(rows, width, &z).unwrap();
        let out = b.download(model.forward(&x, Mode::Eval).unwrap()).unwrap();
        for r in 0..rows {
            let (first, last) = (want[r * units], want[r * units + units - 1]);
            assert_eq!(out[2 * r], first, "{label}: {units}x{pieces} row {r}");
            assert!((out[2 * r + 1] - last).abs() <= 1e-7 * last.abs().max(1.0));
        }
    }
}

backend_tests!(maxout_forward: maxout_is_the_max_of_each_group on cpu_f32, gpu);

#[test]
fn maxout_bad_input_is_a_typed_error() {
    let e = Sequential::new(7)
        .maxout_pieces(2)
        .dense(2, Init::XavierUniform)
        .validate()
        .unwrap_err();
    assert!(e.to_string().contains("not a multiple of 2"), "{e}");
    let e = Sequential::new(6)
        .maxout_pieces(0)
        .dense(2, Init::XavierUniform)
        .validate();
    assert!(matches!(
        e,
        Err(Error::InvalidParameter {
            name: "maxout pieces",
            ..
        })
    ));
    let image = Sequential::with_input_shape(wgtrain::nn::Shape::new(&[1, 4, 4]))
        .maxout_pieces(2)
        .flatten()
        .dense(2, Init::XavierUniform);
    let e = image.validate().unwrap_err();
    assert!(e.to_string().contains("needs flat features"), "{e}");
    // RBF units: a width ≤ 0, no units, images: typed errors naming them.
    let rbf = |units, beta| {
        Sequential::new(3)
            .rbf(units, beta)
            .dense(1, Init::XavierUniform)
    };
    assert!(matches!(
        rbf(4, 0.0).validate(),
        Err(Error::InvalidParameter {
            name: "rbf beta",
            ..
        })
    ));
    assert!(rbf(0, 1.0)
        .validate()
        .unwrap_err()
        .to_string()
        .contains("rbf of 0 units"));
    let on_image = Sequential::with_input_shape(wgtrain::nn::Shape::new(&[1, 2, 2]))
        .rbf(3, 1.0)
        .dense(1, Init::XavierUniform);
    assert!(on_image.validate().is_err());
    let spec = Sequential::new(3)
        .rbf(5, 0.25)
        .dense(1, Init::XavierUniform);
    let back = Sequential::from_description(&spec.describe()).unwrap();
    assert_eq!(back.layers()[0], spec.layers()[0]);
    // The description round-trips through a checkpoint's architecture.
    let spec = Sequential::new(6)
        .maxout(4, 3, Init::XavierUniform)
        .dense(2, Init::XavierUniform);
    let back = Sequential::from_description(&spec.describe()).unwrap();
    assert_eq!(back.layers()[1], spec.layers()[1]);
    assert_eq!(back.output_shape(), spec.output_shape());
}

#[test]
fn gradient_check_bias_free_dense_layers() {
    // Alone (the product without a bias) and in front of a batch norm,
    // where PyTorch users drop the bias.
    let plain = Sequential::new(5)
        .dense_no_bias(4, Init::XavierUniform)
        .tanh()
        .dense_no_bias(3, Init::XavierUniform);
    check("bias-free dense", &plain, Loss::SoftmaxCrossEntropy, 3);
    let normed = Sequential::new(6)
        .dense_no_bias(7, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(2, Init::XavierUniform);
    check(
        "bias-free dense, batch norm",
        &normed,
        Loss::SquaredError,
        9,
    );
}

#[test]
fn bias_free_dense_has_no_bias_parameter() {
    let cpu = Cpu::<f32>::new();
    let spec = Sequential::new(3)
        .dense_no_bias(4, Init::HeNormal)
        .relu()
        .dense(2, Init::XavierUniform);
    let model = spec.build(&cpu, 0).unwrap();
    assert_eq!(model.parameter_names(), ["0.weight", "2.weight", "2.bias"]);
    assert_eq!(wgtrain::cost::cost(&spec, 8).parameters, 3 * 4 + 4 * 2 + 2);
    // The architecture description keeps the missing bias, so a shipped
    // model rebuilds with the same tensors.
    let rebuilt = Sequential::from_description(&spec.describe()).unwrap();
    assert_eq!(rebuilt.describe(), spec.describe());
    assert_eq!(
        rebuilt.build(&cpu, 0).unwrap().parameter_names(),
        model.parameter_names()
    );
    // Descriptions from before bias-free layers (no "bias" key) still read.
    let old = serde_json::json!({"input": [3], "layers": [{"dense": {"outputs": 2}}]});
    let old = Sequential::from_description(&old).unwrap();
    assert_eq!(
        old.build(&cpu, 0).unwrap().parameter_names(),
        ["0.weight", "0.bias"]
    );
}

#[test]
fn gradient_check_catches_a_wrong_gradient() {
    // The check must be able to fail: compare a correct gradient with one
    // from a different data point and expect a large error.
    let spec = Sequential::new(3).dense(2, Init::XavierUniform);
    let ok = gradient_check(
        &spec,
        1,
        Loss::SquaredError,
        &host(1, 6),
        2,
        &HostTarget::Dense(host(2, 4)),
        10,
    )
    .unwrap();
    assert!(ok.worst() < GRADCHECK_TOL);
    let cpu = Cpu::<f64>::new();
    let mut m = spec.build(&cpu, 1).unwrap();
    let (x, y) = (
        cpu.upload_f64(2, 3, &host(1, 6)).unwrap(),
        cpu.upload_f64(2, 2, &host(2, 4)).unwrap(),
    );
    m.forward_backward(&x, Loss::SquaredError, Target::Dense(&y))
        .unwrap();
    let right = m.gradient("0.weight").unwrap();
    let x2 = cpu.upload_f64(2, 3, &host(5, 6)).unwrap();
    m.forward_backward(&x2, Loss::SquaredError, Target::Dense(&y))
        .unwrap();
    let wrong = m.gradient("0.weight").unwrap();
    let err = right
        .iter()
        .zip(&wrong)
        .map(|(a, b)| (a - b).abs() / a.abs().max(b.abs()))
        .fold(0.0, f64::max);
    assert!(
        err > 1e-2,
        "different data should give a different gradient"
    );
}

/// One full SGD step; returns the loss, the output and every parameter after the step.
fn train_step<B: Backend>(b: &B, spec: &Sequential, loss: Loss, rows: usize) -> Vec<f64> {
    let mut model = spec.build(b, 11).unwrap();
    let x = b
        .upload(
            rows,
            spec.input_width(),
            &random(21, rows * spec.input_width()),
        )
        .unwrap();
    let labels = b
        .indices(
            &random_labels(22, rows, spec.output_width()),
            spec.output_width(),
        )
        .unwrap();
    let dense = b
        .upload(
            rows,
            spec.output_width(),
            &random(23, rows * spec.output_width()),
        )
        .unwrap();
    let target = if loss.takes_labels() {
        Target::Labels(&labels)
    } else {
        Target::Dense(&dense)
    };
    model.forward_backward(&x, loss, target).unwrap();
    let mut out = vec![model.loss_value(rows).unwrap()];
    model.sgd_step(0.1).unwrap();
    out.extend(b.download(model.forward(&x, Mode::Eval).unwrap()).unwrap());
    for name in model.parameter_names() {
        out.extend(model.parameter(&name).unwrap().2);
    }
    out
}

#[test]
fn training_step_gpu_matches_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    let mlp = Sequential::new(784)
        .dense(512, Init::HeNormal)
        .relu()
        .dense(512, Init::HeNormal)
        .relu()
        .dense(10, Init::XavierUniform);
    let cases = [
        (
            "784-512-512-10 relu, batch 256",
            mlp,
            Loss::SoftmaxCrossEntropy,
            256,
        ),
        (
            "33-65-7 sigmoid/tanh, batch 7",
            Sequential::new(33)
                .dense(65, Init::XavierUniformSigmoid)
                .sigmoid()
                .dense(7, Init::XavierUniform)
                .tanh(),
            Loss::SquaredError,
            7,
        ),
        (
            "residual leaky-relu, batch 1",
            Sequential::new(9)
                .dense(16, Init::HeNormal)
                .residual(|b| {
                    b.dense(16, Init::HeNormal)
                        .act(Activation::LeakyRelu { slope: 0.01 })
                })
                .dense(5, Init::XavierUniform),
            Loss::Hinge,
            1,
        ),
        (
            "input noise, dropout, batch 9",
            Sequential::new(13)
                .gaussian_noise(0.3)
                .dense(10, Init::HeNormal)
                .relu()
                .dropout(0.25)
                .dense(3, Init::XavierUniform),
            Loss::SoftmaxCrossEntropy,
            9,
        ),
        (
            "bias-free dense, batch norm, batch 33",
            Sequential::new(17)
                .dense_no_bias(12, Init::HeNormal)
                .batch_norm()
                .relu()
                .dense(4, Init::XavierUniform),
            Loss::SoftmaxCrossEntropy,
            33,
        ),
        (
            "rbf 9 units, RBF loss, batch 7",
            Sequential::new(3).rbf(9, 0.5).dense(2, Init::XavierUniform),
            Loss::RbfEuclidean { beta: 0.5 },
            7,
        ),
        (
            "maxout 7x3 and 5x2, batch 33",
            Sequential::new(19)
                .maxout(7, 3, Init::XavierUniform)
                .maxout(5, 2, Init::XavierUniform)
                .dense(4, Init::XavierUniform),
            Loss::SoftmaxCrossEntropy,
            33,
        ),
        (
            "scaled tanh, BCE, batch 65",
            Sequential::new(20)
                .dense(31, Init::LeCunUniform)
                .act(Activation::ScaledTanh)
                .dense(6, Init::XavierUniform),
            Loss::BinaryCrossEntropy,
            65,
        ),
    ];
    for (name, spec, loss, rows) in cases {
        // A step is several f32 matmuls of length ≤ 784 and a reduction over
        // the batch; the two backends order their sums differently: 1e-5.
        assert_parity(
            &format!("train step {name}"),
            &train_step(&g, &spec, loss, rows),
            &train_step(&cpu, &spec, loss, rows),
            1e-5,
        );
    }
}

#[test]
fn worked_example_seed_004() {
    let r = worked_example::run(&Cpu::<f64>::new()).unwrap();
    let round9 = |v: f64| (v * 1e9).round() / 1e9;
    assert_eq!(round9(r.out_h[0]), 0.593269992);
    assert_eq!(round9(r.out_h[1]), 0.596884378);
    assert_eq!(round9(r.out_o[0]), 0.751365070);
    assert_eq!(round9(r.out_o[1]), 0.772928465);
    assert_eq!(round9(r.e_total), 0.298371109);
    assert_eq!(round9(r.de_dw5), 0.082167041);
    for (i, (w, s)) in r.updated.iter().zip(SEED_UPDATED).enumerate() {
        assert_eq!(round9(*w), s, "w{}+", i + 1);
    }
}

/// The seed's updated weights w1+ … w8+.
const SEED_UPDATED: [f64; 8] = [
    0.149780716,
    0.199561432,
    0.249751144,
    0.299502287,
    0.358916480,
    0.408666186,
    0.511301270,
    0.561370121,
];

#[test]
fn worked_example_seed_004_on_the_gpu() {
    let Some(g) = gpu() else { return };
    let r32 = worked_example::run(&g).unwrap();
    let mut got = vec![
        r32.out_h[0],
        r32.out_h[1],
        r32.out_o[0],
        r32.out_o[1],
        r32.e_total,
        r32.de_dw5,
    ];
    got.extend(r32.updated);
    let mut want = vec![
        0.593269992,
        0.596884378,
        0.751365070,
        0.772928465,
        0.298371109,
        0.082167041,
    ];
    want.extend(SEED_UPDATED);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (g - w).abs() / w.abs())
        .fold(0.0, f64::max);
    println!("worked example on the GPU: worst relative error {worst:.2e}");
    assert!(
        worst < 1e-6,
        "GPU worked example: relative error {worst:.2e}"
    );
}

#[test]
fn cost_model_matches_seed_formulas() {
    let spec = Sequential::new(784)
        .dense(512, Init::HeNormal)
        .relu()
        .dense(512, Init::HeNormal)
        .relu()
        .dense(10, Init::HeNormal);
    let c = wgtrain::cost::cost(&spec, 256);
    // 0.82 GFLOP of matmul per step, as the peers count it.
    assert_eq!(c.matmul_flops, 821_559_296);
    let (seed_ops, seed_params, seed_mem) = wgtrain::cost::seed003(256, 2, 784, 512, 10);
    // The seed's parameter count omits the first layer's bias.
    assert_eq!(c.parameters, seed_params + 512);
    // The seed counts about one operation per multiply-add.
    assert!(
        (c.matmul_flops as f64 / 2.0 / seed_ops as f64 - 1.0).abs() < 0.1,
        "{} vs {seed_ops}",
        c.matmul_flops
    );
    assert!(c.backprop_floats > seed_mem);
}

#[test]
fn first_step_loss_and_overfitting_a_tiny_subset() {
    let cpu = Cpu::<f32>::new();
    let spec = Sequential::new(20)
        .dense(64, Init::HeNormal)
        .relu()
        .dense(10, Init::XavierUniform);
    let mut model = spec.build(&cpu, 5).unwrap();
    let x = cpu.upload(64, 20, &random(1, 64 * 20)).unwrap();
    let y = cpu.indices(&random_labels(2, 64, 10), 10).unwrap();
    let first = first_step_loss_check(&mut model, &x, &y, 0.25).unwrap();
    assert!(first.ok, "{first:?}");
    assert!((first.expected - 10f64.ln()).abs() < 1e-12);

    let x5 = cpu.upload(5, 20, &random(3, 100)).unwrap();
    let y5 = cpu.indices(&[0, 3, 5, 7, 9], 10).unwrap();
    let history = overfit_tiny_subset(
        &mut model,
        &x5,
        Target::Labels(&y5),
        Loss::SoftmaxCrossEntropy,
        0.5,
        200,
    )
    .unwrap();
    println!("overfit: {:.3} -> {:.5}", history[0], history[200]);
    assert!(
        history[200] < 0.01 * history[0],
        "{} -> {}",
        history[0],
        history[200]
    );

    // A model scaled up tenfold fails the first-step check.
    let mut loud = Sequential::new(20)
        .dense_with(10, Init::Constant(1.0), Init::Zeros)
        .build(&cpu, 0)
        .unwrap();
    loud.set_parameter(
        "0.weight",
        &host(4, 200).iter().map(|v| 30.0 * v).collect::<Vec<_>>(),
    )
    .unwrap();
    assert!(!first_step_loss_check(&mut loud, &x, &y, 0.25).unwrap().ok);
}

fn bad_network_input<B: Backend>(b: &B, _label: &str) {
    let spec = Sequential::new(4).dense(3, Init::XavierUniform);
    let mut model = spec.build(b, 0).unwrap();
    let wrong_width = b.zeros(2, 5).unwrap();
    let e = model.forward(&wrong_width, Mode::Eval).unwrap_err();
    assert!(
        matches!(e, Error::Shape { .. }) && e.to_string().contains("4 features"),
        "{e}"
    );
    let x = b.upload(2, 4, &random(1, 8)).unwrap();
    let wide_target = b.zeros(2, 4).unwrap();
    assert!(matches!(
        model.forward_backward(&x, Loss::SquaredError, Target::Dense(&wide_target)),
        Err(Error::Shape { .. })
    ));
    let too_many_classes = b.indices(&[0, 4], 5).unwrap();
    assert!(matches!(
        model.forward_backward(
            &x,
            Loss::SoftmaxCrossEntropy,
            Target::Labels(&too_many_classes)
        ),
        Err(Error::Shape { .. })
    ));
    assert!(
        matches!(
            b.indices(&[0, 3], 3),
            Err(Error::IndexRange { index: 3, .. })
        ),
        "label ≥ classes"
    );
    assert!(matches!(
        Sequential::new(4).relu().build(b, 0),
        Err(Error::Model(_))
    ));
    assert!(matches!(
        Sequential::new(4).build(b, 0),
        Err(Error::Model(_))
    ));
    let changes_width = Sequential::new(4).residual(|r| r.dense(5, Init::XavierUniform));
    let e = changes_width
        .build(b, 0)
        .err()
        .expect("a residual block must keep its width");
    assert!(e.to_string().contains("width 4 to 5"), "{e}");
}

backend_tests!(bad_network_input_is_a_typed_error: bad_network_input on cpu_f64, gpu);

#[test]
fn input_gradient_matches_finite_differences() {
    let cpu = Cpu::<f64>::new();
    let spec = Sequential::new(4)
        .dense(6, Init::XavierUniform)
        .tanh()
        .residual(|r| r.dense(6, Init::XavierUniform).sigmoid())
        .dense(3, Init::XavierUniform);
    let mut model = spec.build(&cpu, 9).unwrap();
    let xs = host(3, 2 * 4);
    let y = cpu.indices(&[2, 0], 3).unwrap();
    let loss_at = |model: &mut wgtrain::Model<Cpu<f64>>, xs: &[f64]| {
        let x = cpu.upload_f64(2, 4, xs).unwrap();
        model
            .forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y))
            .unwrap();
        model.loss_value(2).unwrap()
    };
    let x = cpu.upload_f64(2, 4, &xs).unwrap();
    let analytic = cpu
        .download(
            model
                .forward_backward_input(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y))
                .unwrap(),
        )
        .unwrap();
    let h = 1e-6;
    let mut worst: f64 = 0.0;
    for i in 0..xs.len() {
        let (mut plus, mut minus) = (xs.clone(), xs.clone());
        plus[i] += h;
        minus[i] -= h;
        let numeric = (loss_at(&mut model, &plus) - loss_at(&mut model, &minus)) / (2.0 * h);
        worst = worst
            .max((analytic[i] - numeric).abs() / analytic[i].abs().max(numeric.abs()).max(1e-4));
    }
    println!("gradcheck input gradient: {worst:.2e}");
    assert!(worst < GRADCHECK_TOL, "input gradient: {worst:.2e}");
}

/// PyTorch's gradient accumulation (`scripts/accumulate_torch.py`): two
/// rounds of micro-batches of 5 and 3 rows through a bias-free linear
/// layer, BatchNorm1d, ReLU and a linear layer, an SGD step after each.
fn accumulation_against_pytorch<B: Backend>(b: &B, tolerance: f64) {
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/accumulate_torch.json")).unwrap();
    let size = |key: &str| data[key].as_u64().unwrap() as usize;
    let (rows, features, classes) = (size("rows"), size("features"), size("classes"));
    let spec = Sequential::new(features)
        .dense_no_bias(8, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(classes, Init::XavierUniform);
    let mut model = spec.build(b, 0).unwrap();
    let initial = &data["initial"];
    for name in model.parameter_names() {
        model
            .set_parameter(&name, &json_floats(&initial[&name]))
            .unwrap();
    }
    for buffer in model.buffers_mut().0 {
        b.write(buffer.value, &json_floats(&initial[&buffer.name]))
            .unwrap();
    }
    let lr = data["lr"].as_f64().unwrap();
    for (round, want) in data["rounds"].as_array().unwrap().iter().enumerate() {
        let (x, y) = (json_floats(&want["x"]), json_floats(&want["y"]));
        model.zero_grad().unwrap();
        let mut start = 0;
        for part in data["parts"].as_array().unwrap() {
            let part = part.as_u64().unwrap() as usize;
            let xb = b.upload_f64(
                part,
                features,
                &x[start * features..(start + part) * features],
            );
            let labels: Vec<u32> = y[start..start + part].iter().map(|&v| v as u32).collect();
            let yb = b.indices(&labels, classes).unwrap();
            let weight = part as f64 / rows as f64;
            model
                .accumulate_backward(
                    &xb.unwrap(),
                    Loss::SoftmaxCrossEntropy,
                    Target::Labels(&yb),
                    weight,
                )
                .unwrap();
            start += part;
        }
        for name in model.parameter_names() {
            assert_parity(
                &format!("accumulated gradient, round {round}, {name}"),
                &model.gradient(&name).unwrap(),
                &json_floats(&want["grads"][&name]),
                tolerance,
            );
        }
        model.sgd_step(lr).unwrap();
    }
    let last = &data["final"];
    for name in model.parameter_names() {
        let (_, _, values) = model.parameter(&name).unwrap();
        assert_parity(
            &format!("final {name}"),
            &values,
            &json_floats(&last[&name]),
            tolerance,
        );
    }
    for buffer in model.buffers_mut().0 {
        assert_parity(
            &format!("final {}", buffer.name),
            &b.download(buffer.value).unwrap(),
            &json_floats(&last[&buffer.name]),
            tolerance,
        );
    }
}

#[test]
fn gradient_accumulation_matches_pytorch() {
    accumulation_against_pytorch(&Cpu::<f64>::new(), 1e-12);
    // f32: a batch norm over 3 rows divides by small deviations: 1e-5.
    accumulation_against_pytorch(&Cpu::<f32>::new(), 1e-5);
    if let Some(g) = gpu() {
        accumulation_against_pytorch(&g, 1e-5);
    }
}

#[test]
fn accumulation_adds_until_zeroed() {
    // Without batch norm, micro-batches with weights rows_i / rows give the
    // whole batch's gradient; a second pass without zero_grad adds again.
    let cpu = Cpu::<f64>::new();
    let spec = Sequential::new(4)
        .dense(5, Init::XavierUniform)
        .tanh()
        .dense(3, Init::XavierUniform);
    let x = host(3, 7 * 4);
    let labels = random_labels(4, 7, 3);
    let whole_grad = {
        let mut m = spec.build(&cpu, 1).unwrap();
        let (xb, yb) = (
            cpu.upload_f64(7, 4, &x).unwrap(),
            cpu.indices(&labels, 3).unwrap(),
        );
        m.forward_backward(&xb, Loss::SoftmaxCrossEntropy, Target::Labels(&yb))
            .unwrap();
        m.gradient("0.weight").unwrap()
    };
    let mut m = spec.build(&cpu, 1).unwrap();
    let accumulate = |m: &mut wgtrain::Model<Cpu<f64>>| {
        for (lo, hi) in [(0, 1), (1, 5), (5, 7)] {
            let xb = cpu.upload_f64(hi - lo, 4, &x[lo * 4..hi * 4]).unwrap();
            let yb = cpu.indices(&labels[lo..hi], 3).unwrap();
            let w = (hi - lo) as f64 / 7.0;
            m.accumulate_backward(&xb, Loss::SoftmaxCrossEntropy, Target::Labels(&yb), w)
                .unwrap();
        }
    };
    accumulate(&mut m);
    assert_parity(
        "micro-batches = batch",
        &m.gradient("0.weight").unwrap(),
        &whole_grad,
        1e-14,
    );
    accumulate(&mut m);
    let twice: Vec<f64> = whole_grad.iter().map(|g| 2.0 * g).collect();
    assert_parity(
        "no zero_grad: twice",
        &m.gradient("0.weight").unwrap(),
        &twice,
        1e-14,
    );
    m.zero_grad().unwrap();
    assert!(m.gradient("0.weight").unwrap().iter().all(|&g| g == 0.0));
    let xb = cpu.upload_f64(1, 4, &x[..4]).unwrap();
    let yb = cpu.indices(&labels[..1], 3).unwrap();
    let bad = m.accumulate_backward(
        &xb,
        Loss::SoftmaxCrossEntropy,
        Target::Labels(&yb),
        f64::NAN,
    );
    assert!(
        matches!(
            bad,
            Err(Error::InvalidParameter {
                name: "accumulation weight",
                ..
            })
        ),
        "{bad:?}"
    );
}

#[test]
fn last_loss_needs_a_training_pass() {
    let cpu = Cpu::<f32>::new();
    let mut model = Sequential::new(2)
        .dense(2, Init::XavierUniform)
        .build(&cpu, 0)
        .unwrap();
    assert!(matches!(model.last_loss(), Err(Error::Model(_))));
    let (x, y) = (
        cpu.upload_f64(1, 2, &[1.0, -1.0]).unwrap(),
        cpu.indices(&[1], 2).unwrap(),
    );
    model
        .forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y))
        .unwrap();
    assert_eq!(model.last_loss().unwrap(), model.loss_value(1).unwrap());
}

#[test]
fn gaussian_noise_layer_trains_noisy_and_evaluates_clean() {
    let cpu = Cpu::<f64>::new();
    let spec = Sequential::new(6)
        .gaussian_noise(0.5)
        .dense(4, Init::XavierUniform)
        .tanh()
        .dense(3, Init::XavierUniform);
    let x = host(5, 2 * 6);
    let xb = cpu.upload_f64(2, 6, &x).unwrap();
    let yb = cpu.indices(&[0, 2], 3).unwrap();
    let mut model = spec.build(&cpu, 1).unwrap();
    let mut clean = Sequential::new(6)
        .dense(4, Init::XavierUniform)
        .tanh()
        .dense(3, Init::XavierUniform)
        .build(&cpu, 1)
        .unwrap();
    for name in clean.parameter_names() {
        let from = format!("{}.{}", name[..1].parse::<usize>().unwrap() + 1, &name[2..]);
        let (_, _, v) = model.parameter(&from).unwrap();
        clean.set_parameter(&name, &v).unwrap();
    }
    // Evaluation: the identity, so the same outputs as without the layer.
    let eval = model.forward(&xb, Mode::Eval).unwrap().clone();
    let want = clean.forward(&xb, Mode::Eval).unwrap().clone();
    assert_eq!(cpu.download(&eval).unwrap(), cpu.download(&want).unwrap());
    // Training: other outputs, and new noise each step.
    let first = cpu
        .download(model.forward(&xb, Mode::Train).unwrap())
        .unwrap();
    let second = cpu
        .download(model.forward(&xb, Mode::Train).unwrap())
        .unwrap();
    assert_ne!(first, cpu.download(&want).unwrap());
    assert_ne!(first, second);
    // The gradient through the noise is the gradient at the noisy input:
    // with the noise frozen, finite differences agree.
    check("gaussian noise", &spec, Loss::SoftmaxCrossEntropy, 3);
    // The description keeps it.
    let rebuilt = Sequential::from_description(&spec.describe()).unwrap();
    assert_eq!(rebuilt.describe(), spec.describe());
    model
        .forward_backward(&xb, Loss::SoftmaxCrossEntropy, Target::Labels(&yb))
        .unwrap();
    assert!(model.last_loss().unwrap().is_finite());
}

#[test]
fn every_initialiser_has_its_variance() {
    use rand::SeedableRng;
    // (initialiser, variance it promises for fan_in 300, fan_out 200).
    let (fi, fo) = (300.0f64, 200.0f64);
    let cases = [
        (Init::XavierUniform, 2.0 / (fi + fo)),
        (Init::XavierUniformSigmoid, 16.0 * 2.0 / (fi + fo)),
        (Init::XavierNormal, 1.0 / fi),
        (Init::HeNormal, 2.0 / fi),
        (Init::LeCunUniform, 1.0 / fi),
        (Init::TorchDefault, 1.0 / (3.0 * fi)),
        (Init::Zeros, 0.0),
        (Init::Constant(0.5), 0.0),
        (Init::Normal(0.7), 0.49),
    ];
    let n = 200_000;
    for (init, want) in cases {
        let mut rng = rand::rngs::StdRng::seed_from_u64(9);
        let v = init.sample(&mut rng, fi as usize, fo as usize, n);
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        // The sample variance of 2e5 draws is within ~0.5% of the truth
        // (√(2/n) for a normal, less for a uniform): 2% is far from a
        // wrong formula (a factor of 2 or 3).
        assert!(
            (var - want).abs() <= 0.02 * want + 1e-15,
            "{init:?}: variance {var:.3e}, expected {want:.3e}"
        );
        if !matches!(init, Init::Constant(_)) {
            assert!(
                mean.abs() < 3.0 * (want / n as f64).sqrt() + 1e-15,
                "{init:?}: mean {mean}"
            );
        }
    }
}

#[test]
fn zero_initialisation_does_not_break_symmetry() {
    // Seed 001: with every weight equal, every hidden unit computes the same
    // function and receives the same gradient, so training never tells
    // them apart; a random initialisation does.
    let cpu = Cpu::<f64>::new();
    let x = host(1, 16 * 5);
    let labels = random_labels(2, 16, 3);
    let (xb, yb) = (
        cpu.upload_f64(16, 5, &x).unwrap(),
        cpu.indices(&labels, 3).unwrap(),
    );
    let train = |init: Init| {
        let spec = Sequential::new(5)
            .dense_with(6, init, Init::Zeros)
            .tanh()
            .dense_with(3, init, Init::Zeros);
        let mut model = spec.build(&cpu, 4).unwrap();
        for _ in 0..50 {
            model
                .forward_backward(&xb, Loss::SoftmaxCrossEntropy, Target::Labels(&yb))
                .unwrap();
            model.sgd_step(0.5).unwrap();
        }
        let (rows, cols, w) = model.parameter("0.weight").unwrap();
        (0..rows)
            .map(|r| w[r * cols..(r + 1) * cols].to_vec())
            .collect::<Vec<_>>()
    };
    for init in [Init::Zeros, Init::Constant(0.1)] {
        let rows = train(init);
        assert!(
            rows.iter().all(|row| row == &rows[0]),
            "{init:?}: equal weights stay equal, every hidden unit is the same unit"
        );
    }
    let random = train(Init::XavierUniform);
    assert!(random.iter().skip(1).all(|row| row != &random[0]));
}

fn regularised_objective_rises<B: Backend>(b: &B, _label: &str) {
    use wgtrain::diagnostics::{l2_penalty, regularisation_check};
    let spec = Sequential::new(6)
        .dense(5, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(3, Init::XavierUniform);
    let mut model = spec.build(b, 2).unwrap();
    // Ω over the weights only: biases and batch-norm γ, β are exempt.
    let mut want = 0.0;
    for name in ["0.weight", "3.weight"] {
        want += 0.5
            * model
                .parameter(name)
                .unwrap()
                .2
                .iter()
                .map(|w| w * w)
                .sum::<f64>();
    }
    let omega = l2_penalty(&mut model).unwrap();
    // f32 sums of 45 squares: 1e-6 relative.
    assert!((omega - want).abs() <= 1e-6 * want, "{omega} vs {want}");
    let x = b.upload(8, 6, &random(3, 48)).unwrap();
    let y = b.indices(&random_labels(4, 8, 3), 3).unwrap();
    let check = regularisation_check(
        &mut model,
        &x,
        Target::Labels(&y),
        Loss::SoftmaxCrossEntropy,
        0.1,
    )
    .unwrap();
    assert!(check.ok, "{check:?}");
    assert!(
        (check.objective - check.loss - 0.1 * omega).abs() < 1e-6,
        "{check:?}"
    );
    for lambda in [0.0, -1.0, f64::NAN] {
        let bad = regularisation_check(
            &mut model,
            &x,
            Target::Labels(&y),
            Loss::SoftmaxCrossEntropy,
            lambda,
        );
        assert!(
            matches!(bad, Err(Error::InvalidParameter { .. })),
            "{lambda}: {bad:?}"
        );
    }
}

backend_tests!(regularisation_check_sees_the_penalty: regularised_objective_rises on cpu_f32, gpu);
