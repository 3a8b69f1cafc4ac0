//! Losses, value and gradient: the GPU against the CPU backend.

use crate::ops::testing::{assert_parity, gpu, random, random_labels};
use crate::{Backend, Cpu, Loss, Target};

fn loss<B: Backend>(b: &B, kind: Loss, rows: usize, cols: usize, labels: bool) -> Vec<f64> {
    let pred: Vec<f32> = random(rows as u64 + 17, rows * cols)
        .iter()
        .map(|v| v * 4.0)
        .collect();
    let p = b.upload(rows, cols, &pred).unwrap();
    let mut grad = b.zeros(rows, cols).unwrap();
    let mut l = b.zeros(1, 1).unwrap();
    if labels {
        let y = b
            .indices(&random_labels(rows as u64, rows, cols), cols)
            .unwrap();
        b.loss(kind, &p, Target::Labels(&y), &mut grad, &mut l)
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
    }
    let mut out = b.download(&l).unwrap();
    out.extend(b.download(&grad).unwrap());
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
