//! Convolutional networks: gradients against f64 finite differences, the
//! layers' shapes and errors, and 20 training steps against PyTorch
//! (tests/data/conv_torch.json, written by scripts/conv_torch.py) on every
//! backend.

mod common;

use serde_json::Value;
use wgtrain::checkpoint::{self, HostData, HostTensor};
use wgtrain::diagnostics::{gradient_check, HostTarget};
use wgtrain::nn::{Conv2d, Pool2d, Shape};
use wgtrain::optim::{Adam, Optim, OptimizerConfig, Sgd};
use wgtrain::train::{LocalSync, StepOptions};
use wgtrain::{Backend, Init, Loss, Mode, Sequential, Target};

/// The network of scripts/conv_torch.py: every image layer kind.
fn torch_net() -> Sequential {
    Sequential::with_input_shape(Shape::new(&[1, 12, 12]))
        .conv2d(Conv2d::new(4, 3).padding(1))
        .relu()
        .max_pool2d(2)
        .conv2d(Conv2d::new(6, 3).stride(2).padding(1).groups(2).no_bias())
        .batch_norm()
        .relu()
        .pool2d(Pool2d::average(3).stride(1).padding(1))
        .conv2d(Conv2d::new(6, 1))
        .flatten()
        .dense(5, Init::TorchDefault)
}

fn reference() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/conv_torch.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect()
}

/// Builds the network on `b` with PyTorch's initial weights (state-dict
/// names and shapes must match exactly: `load_state_dict` checks).
fn torch_model<B: Backend>(b: &B, r: &Value) -> wgtrain::Model<B> {
    let mut model = torch_net().build(b, 0).unwrap();
    let mut tensors: Vec<HostTensor> = r["initial"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, t)| HostTensor {
            name: name.clone(),
            shape: t["shape"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_u64().unwrap() as usize)
                .collect(),
            data: HostData::F32(floats(&t["values"]).iter().map(|&v| v as f32).collect()),
        })
        .collect();
    tensors.push(HostTensor {
        name: "4.num_batches_tracked".into(),
        shape: vec![],
        data: HostData::I64(vec![0]),
    });
    checkpoint::load_state_dict(&mut model, &tensors, "conv_torch.json".as_ref()).unwrap();
    model
}

/// The reference's batch on a backend: the host inputs, and the inputs
/// and labels uploaded.
struct Batch<B: Backend> {
    x: Vec<f32>,
    rows: usize,
    xt: B::Tensor,
    yt: B::Index,
}

fn batch<B: Backend>(b: &B, r: &Value) -> Batch<B> {
    let x: Vec<f32> = floats(&r["x"]).iter().map(|&v| v as f32).collect();
    let labels: Vec<u32> = r["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect();
    let rows = labels.len();
    Batch {
        xt: b.upload(rows, 144, &x).unwrap(),
        yt: b.indices(&labels, 5).unwrap(),
        x,
        rows,
    }
}

/// One full-batch training step with softmax cross-entropy.
fn step<B: Backend>(
    model: &mut wgtrain::Model<B>,
    opt: &mut impl wgtrain::optim::Optimizer<B>,
    batch: &Batch<B>,
) {
    let options = StepOptions {
        loss: Loss::SoftmaxCrossEntropy,
        ..StepOptions::default()
    };
    wgtrain::train::train_step(
        model,
        opt,
        &batch.xt,
        Target::Labels(&batch.yt),
        &options,
        &mut LocalSync,
    )
    .unwrap();
}

fn train_like_torch<B: Backend, C: OptimizerConfig>(
    b: &B,
    label: &str,
    r: &Value,
    name: &str,
    config: C,
    tol: f64,
) {
    let mut model = torch_model(b, r);
    let mut opt = Optim::new(config).unwrap();
    let data = batch(b, r);
    let want = &r[name];
    let mut worst_loss: f64 = 0.0;
    for (i, expected) in floats(&want["losses"]).iter().enumerate() {
        step(&mut model, &mut opt, &data);
        let loss = model.loss_value(data.rows).unwrap();
        let err = (loss - expected).abs() / expected.abs().max(1.0);
        assert!(
            err < tol,
            "{label} {name}: step {i} loss {loss} vs PyTorch {expected} ({err:e})"
        );
        worst_loss = worst_loss.max(err);
    }
    let names = model.parameter_names();
    let state = checkpoint::state_dict(&mut model).unwrap();
    let mut worst_param: f64 = 0.0;
    for (key, values) in want["final"].as_object().unwrap() {
        // Parameters at the backend's precision; the running statistics
        // through the state dict, which stores f32.
        let (got, tol) = if names.contains(key) {
            (model.parameter(key).unwrap().2, tol)
        } else {
            let t = state
                .iter()
                .find(|t| &t.name == key)
                .unwrap_or_else(|| panic!("{key} missing"));
            let HostData::F32(got) = &t.data else {
                panic!("{key} not f32")
            };
            (got.iter().map(|&v| v as f64).collect(), tol.max(1e-7))
        };
        let err = common::parity_error(&got, &floats(values));
        assert!(
            err < tol,
            "{label} {name}: {key} differs from PyTorch by {err:e}"
        );
        worst_param = worst_param.max(err);
    }
    let logits = model.forward(&data.xt, Mode::Eval).unwrap();
    let err = common::parity_error(&b.download(logits).unwrap(), &floats(&want["eval_logits"]));
    assert!(
        err < tol,
        "{label} {name}: evaluation logits differ by {err:e}"
    );
    println!("{label} {name}: 20 steps, worst loss error {worst_loss:.1e}, parameters {worst_param:.1e}, eval logits {err:.1e} (tolerance {tol:e})");
}

/// f32 backends: 20 steps of rounding (about 1e-7 each, grown by the
/// steps' sensitivity) stay within 1e-5 of PyTorch's f64 run; the f64 CPU
/// backend starts from the same f32-exact values and agrees to 1e-10.
fn tolerance<B: Backend>() -> f64 {
    if std::mem::size_of::<B::Scalar>() == 8 {
        1e-10
    } else {
        1e-5
    }
}

fn sgd_matches_torch<B: Backend>(b: &B, label: &str) {
    let config = Sgd {
        lr: 0.05,
        momentum: 0.9,
        ..Sgd::default()
    };
    train_like_torch(b, label, &reference(), "sgd", config, tolerance::<B>());
}

fn adam_matches_torch<B: Backend>(b: &B, label: &str) {
    let config = Adam {
        lr: 0.01,
        ..Adam::default()
    };
    train_like_torch(b, label, &reference(), "adam", config, tolerance::<B>());
}

backend_tests!(sgd_like_pytorch: sgd_matches_torch on cpu_f32, cpu_f64, gpu);
backend_tests!(adam_like_pytorch: adam_matches_torch on cpu_f32, cpu_f64, gpu);

#[test]
fn gradients_match_finite_differences() {
    // Every layer kind, and the settings that change index arithmetic:
    // stride, padding, dilation, groups, 1x1 / 5x5 / 7x7 / non-square kernels.
    let nets = [
        torch_net(),
        Sequential::with_input_shape(Shape::new(&[2, 9, 8]))
            .conv2d(Conv2d::new(3, 5).padding(2).dilation(1))
            .tanh()
            .conv2d(
                Conv2d::new(4, 3)
                    .kernel(3, 2)
                    .dilation(2)
                    .stride(2)
                    .padding(1),
            )
            .batch_norm()
            .pool2d(Pool2d::max(3).stride(2).padding(1))
            .flatten()
            .dense(3, Init::XavierUniform),
        // A residual CNN: y = x + f(x) over [channels, height, width].
        Sequential::with_input_shape(Shape::new(&[2, 6, 6]))
            .conv2d(Conv2d::new(3, 3).padding(1))
            .residual(|b| {
                b.conv2d(Conv2d::new(3, 3).padding(1).no_bias())
                    .batch_norm()
                    .relu()
                    .conv2d(Conv2d::new(3, 1))
            })
            .relu()
            .avg_pool2d(2)
            .flatten()
            .dense(3, Init::XavierUniform),
        Sequential::with_input_shape(Shape::new(&[4, 7, 7]))
            .conv2d(Conv2d::new(4, 7).padding(3).groups(4))
            .sigmoid()
            .avg_pool2d(2)
            .flatten()
            .dense(3, Init::XavierUniform),
    ];
    for (i, spec) in nets.iter().enumerate() {
        let rows = 3;
        let x: Vec<f64> = common::random(40 + i as u64, rows * spec.input_width())
            .iter()
            .map(|&v| v as f64)
            .collect();
        let classes = spec.output_width();
        let target = HostTarget::Labels(
            vec![0, 1, 2]
                .into_iter()
                .map(|c| c % classes as u32)
                .collect(),
            classes,
        );
        let report =
            gradient_check(spec, 3, Loss::SoftmaxCrossEntropy, &x, rows, &target, 60).unwrap();
        // A wrong index or a missing term is off by O(1). What remains is
        // the differences' rounding (~1e-10 absolute), which a batch norm
        // over 3 samples amplifies: up to 1.6e-6 on the conv before it.
        for t in &report.tensors {
            assert!(
                t.worst_relative_error < 1e-5,
                "net {i}: {} off by {:e}",
                t.name,
                t.worst_relative_error
            );
        }
        println!(
            "net {i}: worst relative gradient error {:.1e} over {} tensors",
            report.worst(),
            report.tensors.len()
        );
    }
}

#[test]
fn bad_layers_are_typed_errors_at_build_time() {
    let image = || Sequential::with_input_shape(Shape::new(&[3, 8, 8]));
    let dense_end = |s: Sequential| s.flatten().dense(2, Init::Zeros);
    let cases: Vec<(Sequential, &str)> = vec![
        (dense_end(image().conv2d(Conv2d::new(4, 11))), "spans 11"),
        (
            dense_end(image().conv2d(Conv2d::new(4, 3).stride(0))),
            "must be positive",
        ),
        (
            dense_end(image().conv2d(Conv2d::new(4, 3).groups(2))),
            "not divisible by 2 groups",
        ),
        (
            dense_end(image().conv2d(Conv2d::new(4, 3).kernel(3, 0))),
            "must be positive",
        ),
        (
            Sequential::new(64)
                .conv2d(Conv2d::new(4, 3))
                .dense(2, Init::Zeros),
            "needs [channels, height, width]",
        ),
        (dense_end(image().max_pool2d(9)), "spans 9"),
        (
            dense_end(image().pool2d(Pool2d::max(2).padding(2))),
            "more than half the kernel",
        ),
        (
            dense_end(image().pool2d(Pool2d::average(2).dilation(2))),
            "no dilation",
        ),
        (image().dense(2, Init::Zeros), "needs flat features"),
    ];
    for (spec, expected) in cases {
        let err = spec.validate().unwrap_err().to_string();
        assert!(err.contains(expected), "{err:?} should say {expected:?}");
    }
    // A batch of the wrong width is refused with both shapes named.
    let cpu = wgtrain::Cpu::<f32>::new();
    let mut model = dense_end(image().conv2d(Conv2d::new(4, 3)))
        .build(&cpu, 0)
        .unwrap();
    let x = cpu.zeros(2, 100).unwrap();
    let err = model.forward(&x, Mode::Eval).unwrap_err().to_string();
    assert!(err.contains("192") && err.contains("100"), "{err}");
}

#[test]
fn a_cnn_round_trips_through_its_description() {
    let spec = torch_net();
    let again = Sequential::from_description(&spec.describe()).unwrap();
    assert_eq!(again.describe(), spec.describe());
    assert_eq!(again.output_shape(), &Shape::features(5));
}

/// A trained CNN shipped to a file and loaded back (on the same and on
/// the other backend) predicts exactly what it predicted before.
fn shipped_cnn_predicts_alike<B: Backend>(b: &B, label: &str) {
    let r = reference();
    let mut model = torch_model(b, &r);
    let data = batch(b, &r);
    let mut opt = Optim::new(Adam::default()).unwrap();
    for _ in 0..3 {
        step(&mut model, &mut opt, &data);
    }
    let x = &data.x;
    let before = model.predict_proba(x, 3).unwrap();
    let path = std::env::temp_dir().join(format!(
        "wgtrain-{label}-{}.safetensors",
        std::process::id()
    ));
    wgtrain::shipped::save(&path, &mut model, None, Default::default()).unwrap();
    let mut again = wgtrain::shipped::load(&path, b).unwrap().model;
    assert_eq!(
        again.predict_proba(x, 5).unwrap(),
        before,
        "{label}: reloaded predictions differ"
    );
    let mut on_cpu = wgtrain::shipped::load(&path, &wgtrain::Cpu::<f32>::new())
        .unwrap()
        .model;
    let cpu = on_cpu.predict_proba(x, 8).unwrap();
    let err = before
        .iter()
        .zip(&cpu)
        .map(|(a, c)| (a - c).abs())
        .fold(0f32, f32::max);
    assert!(
        err < 1e-5,
        "{label}: CPU predictions of the shipped model differ by {err:e}"
    );
    std::fs::remove_file(&path).unwrap();
}

backend_tests!(shipped_cnn: shipped_cnn_predicts_alike on cpu_f32, gpu);
