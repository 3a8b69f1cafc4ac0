//! Losses, value and gradient: the GPU against the CPU backend.

use crate::ops::testing::{assert_parity, gpu, json_floats, random, random_labels};
use crate::{Backend, Cpu, Loss, Target};

fn loss<B: Backend>(b: &B, kind: Loss, rows: usize, cols: usize, labels: bool) -> Vec<f64> {
    let pred: Vec<f32> = random(rows as u64 + 17, rows * cols)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let p = b.upload(rows, cols, &pred).unwrap();
    let mut grad = b.zeros(rows, cols).unwrap();
    let mut l = b.zeros(1, 1).unwrap();
    let mut per_row = b.zeros(rows, 1).unwrap();
    if labels {
        let y = b
            .indices(&random_labels(rows as u64, rows, cols), cols)
            .unwrap();
        b.loss(kind, &p, Target::Labels(&y), &mut grad, &mut l)
            .unwrap();
        b.loss_per_row(kind, &p, Target::Labels(&y), &mut per_row)
            .unwrap();
    } else {
        // Targets in [0, 1]: valid for BCE, soft targets for cross-entropy.
        let t: Vec<f32> = random(rows as u64 + 3, rows * cols)
            .iter()
            .map(|v| (v + 1.0) / 2.0)
            .collect();
        let t = b.upload(rows, cols, &t).unwrap();
        b.loss(kind, &p, Target::Dense(&t), &mut grad, &mut l)
            .unwrap();
        b.loss_per_row(kind, &p, Target::Dense(&t), &mut per_row)
            .unwrap();
    }
    let mut out = b.download(&l).unwrap();
    out.extend(b.download(&grad).unwrap());
    // The rows' losses, and their mean, which is the loss.
    let rows_loss = b.download(&per_row).unwrap();
    let mean = rows_loss.iter().sum::<f64>() / rows as f64;
    assert!(
        (mean - out[0]).abs() <= 1e-5 * out[0].abs().max(1.0),
        "{kind:?} {rows}x{cols}: mean of rows {mean} vs loss {}",
        out[0]
    );
    out.extend(rows_loss);
    out
}

#[test]
fn losses_value_and_gradient() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for kind in Loss::all() {
        for labels in [true, false] {
            if (labels && !kind.takes_labels()) || (!labels && !kind.takes_dense()) {
                continue;
            }
            for &(rows, cols) in &[(1, 1), (1, 10), (7, 3), (33, 10), (257, 7), (1000, 10)] {
                if labels && kind != Loss::SoftmaxCrossEntropy && cols == 1 {
                    continue;
                }
                let what = format!(
                    "{kind:?} {} {rows}x{cols}",
                    if labels { "labels" } else { "dense" }
                );
                // Sums over ≤1000 rows of O(10) terms in f32: 1e-5 of max(1, |loss|).
                assert_parity(
                    &what,
                    &loss(&g, kind, rows, cols, labels),
                    &loss(&cpu, kind, rows, cols, labels),
                    1e-5,
                );
            }
        }
    }
}

#[test]
fn every_loss_is_named_in_the_shader() {
    let wgsl = include_str!("../../../shaders/loss/loss.wgsl");
    for (i, l) in Loss::all().iter().enumerate() {
        let (name, code) = l.named_code();
        assert_eq!(code as usize, i);
        assert!(wgsl.contains(name), "loss.wgsl handles {name}");
    }
    assert!(!wgsl.contains("case 0u"), "no bare codes");
}

/// PyTorch's `cross_entropy(..., label_smoothing=ε)` and its gradient
/// (float64, `scripts/label_smoothing_torch.py`) against one backend.
fn smoothed_against_pytorch<B: Backend>(b: &B, tolerance: f64) {
    let data: serde_json::Value = serde_json::from_str(include_str!(
        "../../../tests/data/label_smoothing_torch.json"
    ))
    .unwrap();
    let numbers = |key: &str| json_floats(&data[key]);
    let (rows, cols) = (
        data["rows"].as_u64().unwrap() as usize,
        data["classes"].as_u64().unwrap() as usize,
    );
    let z = b.upload_f64(rows, cols, &numbers("logits")).unwrap();
    let labels: Vec<u32> = numbers("labels").iter().map(|&v| v as u32).collect();
    let labels = b.indices(&labels, cols).unwrap();
    let soft = b.upload_f64(rows, cols, &numbers("soft")).unwrap();
    for case in data["cases"].as_array().unwrap() {
        let smoothing = case["smoothing"].as_f64().unwrap();
        let target = match case["target"].as_str().unwrap() {
            "labels" => Target::Labels(&labels),
            _ => Target::Dense(&soft),
        };
        let (mut grad, mut loss) = (b.zeros(rows, cols).unwrap(), b.zeros(1, 1).unwrap());
        let kind = Loss::SmoothedCrossEntropy { smoothing };
        b.loss(kind, &z, target, &mut grad, &mut loss).unwrap();
        let mut ours = b.download(&loss).unwrap();
        ours.extend(b.download(&grad).unwrap());
        let mut torch = vec![case["loss"].as_f64().unwrap()];
        torch.extend(json_floats(&case["grad"]));
        assert_parity(
            &format!("smoothed cross-entropy ε {smoothing} {}", case["target"]),
            &ours,
            &torch,
            tolerance,
        );
    }
}

#[test]
fn smoothed_cross_entropy_matches_pytorch() {
    // f64 against f64: only the order of additions differs.
    smoothed_against_pytorch(&Cpu::<f64>::new(), 1e-12);
    // f32: logits up to ~10, a log-sum-exp and 5-term sums: 1e-6.
    smoothed_against_pytorch(&Cpu::<f32>::new(), 1e-6);
    if let Some(g) = gpu() {
        smoothed_against_pytorch(&g, 1e-6);
    }
}

#[test]
fn label_smoothing_outside_0_1_is_a_typed_error() {
    let cpu = Cpu::<f32>::new();
    let z = cpu.zeros(2, 3).unwrap();
    let y = cpu.indices(&[0, 2], 3).unwrap();
    let (mut grad, mut loss) = (cpu.zeros(2, 3).unwrap(), cpu.zeros(1, 1).unwrap());
    for smoothing in [-0.1, 1.5, f64::NAN] {
        let kind = Loss::SmoothedCrossEntropy { smoothing };
        let err = cpu.loss(kind, &z, Target::Labels(&y), &mut grad, &mut loss);
        assert!(
            matches!(
                err,
                Err(crate::Error::InvalidParameter {
                    name: "label smoothing",
                    ..
                })
            ),
            "{smoothing}: {err:?}"
        );
    }
}

/// The RBF-on-Euclidean loss by hand: 0 on target, `1 − e^(−β d²)` per
/// output, `β·d²` (twice the squared error's ½d², times β) for small d,
/// and at most 1 per output however far the outlier.
#[test]
fn rbf_loss_is_euclidean_near_and_bounded_far() {
    let cpu = Cpu::<f64>::new();
    let beta = 0.5;
    let kind = Loss::RbfEuclidean { beta };
    let value = |pred: &[f64], target: &[f64]| {
        let p = cpu.upload_f64(1, pred.len(), pred).unwrap();
        let t = cpu.upload_f64(1, target.len(), target).unwrap();
        let (mut g, mut l) = (cpu.zeros(1, pred.len()).unwrap(), cpu.zeros(1, 1).unwrap());
        cpu.loss(kind, &p, Target::Dense(&t), &mut g, &mut l)
            .unwrap();
        (cpu.download(&l).unwrap()[0], cpu.download(&g).unwrap())
    };
    assert_eq!(value(&[0.3, -1.0], &[0.3, -1.0]).0, 0.0);
    let (l, g) = value(&[2.0], &[0.0]);
    assert!((l - (1.0 - (-beta * 4.0f64).exp())).abs() < 1e-15);
    assert!((g[0] - 2.0 * beta * 2.0 * (-beta * 4.0f64).exp()).abs() < 1e-15);
    let (small, _) = value(&[1e-4], &[0.0]);
    assert!((small - beta * 1e-8).abs() < 1e-6 * beta * 1e-8);
    let (far, g_far) = value(&[1e6, -1e6], &[0.0, 0.0]);
    assert!(far <= 2.0 && far > 1.999 && g_far.iter().all(|v| v.abs() < 1e-12));
    assert!(Loss::RbfEuclidean { beta: 0.0 }.validate().is_err());
}
