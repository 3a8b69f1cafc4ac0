//! Dropout and batch normalisation: kernel parity, the running statistics
//! against their formula, gradient checks, a training step on both backends,
//! and bad hyperparameters.

mod common;

use common::{assert_parity, gpu, random, random_labels};
use wgtrain::backend::DropoutMask;
use wgtrain::diagnostics::{gradient_check, HostTarget};
use wgtrain::{Backend, Cpu, Error, Init, Loss, Mode, Sequential, Target};

fn dropout<B: Backend>(b: &B, rows: usize, cols: usize, p: f64) -> Vec<f64> {
    let x = b.upload(rows, cols, &random(3, rows * cols)).unwrap();
    let mut y = b.zeros(rows, cols).unwrap();
    b.dropout(
        &x,
        &mut y,
        &DropoutMask {
            p,
            seed: 0xDEAD_BEEF_0000_0001,
            step: 5,
            first: 0,
        },
    )
    .unwrap();
    b.download(&y).unwrap()
}

#[test]
fn dropout_masks_are_identical_on_both_backends() {
    let cpu = Cpu::<f32>::new();
    for &p in &[0.0, 0.1, 0.5, 0.9] {
        let c = dropout(&cpu, 257, 33, p);
        let kept = c.iter().filter(|v| **v != 0.0).count() as f64 / c.len() as f64;
        assert!((kept - (1.0 - p)).abs() < 0.02, "p={p}: kept {kept}");
        if let Some(g) = gpu() {
            let gv = dropout(&g, 257, 33, p);
            // Same mask, and one correctly rounded f32 product by the same
            // scale per kept element: identical values on any adapter.
            assert!(
                gv.iter().zip(&c).all(|(a, b)| (*a == 0.0) == (*b == 0.0)),
                "masks differ at p={p}"
            );
            assert_parity(&format!("dropout p={p}"), &gv, &c, 0.0);
        }
    }
    // Another step draws another mask.
    let mask = |step| DropoutMask {
        p: 0.5,
        seed: 1,
        step,
        first: 0,
    };
    let x = cpu.upload(1, 1000, &[1.0; 1000]).unwrap();
    let (mut a, mut b) = (cpu.zeros(1, 1000).unwrap(), cpu.zeros(1, 1000).unwrap());
    cpu.dropout(&x, &mut a, &mask(1)).unwrap();
    cpu.dropout(&x, &mut b, &mask(2)).unwrap();
    assert_ne!(cpu.download(&a).unwrap(), cpu.download(&b).unwrap());
}

/// A replica holding rows 7.. of a 33-row batch passes `first = 7 × cols`
/// and drops what one device drops in those rows, on both backends.
fn shard_masks_are_slices_of_the_whole_batch<B: Backend>(b: &B, label: &str) {
    let (rows, cols, split) = (33, 257, 7);
    let data = random(11, rows * cols);
    let whole_mask = DropoutMask {
        p: 0.4,
        seed: 9,
        step: 2,
        first: 0,
    };
    let x = b.upload(rows, cols, &data).unwrap();
    let mut y = b.zeros(rows, cols).unwrap();
    b.dropout(&x, &mut y, &whole_mask).unwrap();
    let whole = b.download(&y).unwrap();
    let tail = b.upload(rows - split, cols, &data[split * cols..]).unwrap();
    let mut t = b.zeros(rows - split, cols).unwrap();
    let shard_mask = DropoutMask {
        first: (split * cols) as u64,
        ..whole_mask
    };
    b.dropout(&tail, &mut t, &shard_mask).unwrap();
    assert_eq!(b.download(&t).unwrap(), whole[split * cols..], "{label}");
}

backend_tests!(shard_masks: shard_masks_are_slices_of_the_whole_batch on cpu_f32, cpu_f64, gpu);

fn batch_norm<B: Backend>(b: &B, rows: usize, cols: usize) -> Vec<f64> {
    let x = b
        .upload(
            rows,
            cols,
            &random(rows as u64, rows * cols)
                .iter()
                .map(|v| 3.0 * v + 1.0)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let gamma = b.upload(1, cols, &random(1, cols)).unwrap();
    let beta = b.upload(1, cols, &random(2, cols)).unwrap();
    let (mut rm, mut rv) = (
        b.zeros(1, cols).unwrap(),
        b.upload(1, cols, &vec![1.0; cols]).unwrap(),
    );
    let mut saved = b.zeros(2, cols).unwrap();
    let mut y = b.zeros(rows, cols).unwrap();
    b.batch_norm_train(
        &x, &gamma, &beta, &mut rm, &mut rv, &mut saved, &mut y, 0.1, 1e-5,
    )
    .unwrap();
    let g = b.upload(rows, cols, &random(9, rows * cols)).unwrap();
    let (mut dx, mut dg, mut db) = (
        b.zeros(rows, cols).unwrap(),
        b.zeros(1, cols).unwrap(),
        b.zeros(1, cols).unwrap(),
    );
    b.batch_norm_backward(&x, &gamma, &saved, &g, &mut dx, &mut dg, &mut db)
        .unwrap();
    let mut ye = b.zeros(rows, cols).unwrap();
    b.batch_norm_eval(&x, &gamma, &beta, &rm, &rv, &mut ye, 1e-5)
        .unwrap();
    let mut out = Vec::new();
    for t in [&y, &rm, &rv, &saved, &dx, &dg, &db, &ye] {
        out.extend(b.download(t).unwrap());
    }
    out
}

#[test]
fn batch_norm_kernels_match_cpu() {
    let Some(g) = gpu() else { return };
    let cpu = Cpu::<f32>::new();
    for &(rows, cols) in &[(2, 1), (3, 7), (33, 65), (257, 10), (1000, 33)] {
        // Means and variances over ≤1000 rows in f32, then normalised values
        // of order 3: 1e-5 of max(1, |value|).
        assert_parity(
            &format!("batch norm {rows}x{cols}"),
            &batch_norm(&g, rows, cols),
            &batch_norm(&cpu, rows, cols),
            1e-5,
        );
    }
}

#[test]
fn running_statistics_follow_the_formula() {
    // Independently of the kernels: running ← (1−m)·running + m·stat, with the
    // unbiased variance, after several batches, as torch.nn.BatchNorm1d.
    let cpu = Cpu::<f64>::new();
    let spec = Sequential::new(3)
        .dense(4, Init::XavierUniform)
        .batch_norm();
    let mut model = spec.build(&cpu, 1).unwrap();
    let (rows, m) = (6, 0.1);
    let (mut mean_ref, mut var_ref) = (vec![0.0; 4], vec![1.0; 4]);
    let w = model.parameter("0.weight").unwrap().2;
    for step in 0..5u64 {
        let xs: Vec<f64> = random(step, rows * 3).iter().map(|&v| v as f64).collect();
        let x = cpu.upload_f64(rows, 3, &xs).unwrap();
        model.forward(&x, Mode::Train).unwrap();
        for j in 0..4 {
            let z: Vec<f64> = (0..rows)
                .map(|i| (0..3).map(|k| xs[i * 3 + k] * w[j * 3 + k]).sum::<f64>())
                .collect();
            let mean = z.iter().sum::<f64>() / rows as f64;
            let unbiased = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (rows - 1) as f64;
            mean_ref[j] = (1.0 - m) * mean_ref[j] + m * mean;
            var_ref[j] = (1.0 - m) * var_ref[j] + m * unbiased;
        }
    }
    let (buffers, counts) = model.buffers_mut();
    let got: Vec<Vec<f64>> = buffers
        .iter()
        .map(|b| cpu.download(b.value).unwrap())
        .collect();
    assert_eq!(buffers[0].name, "1.running_mean");
    assert_eq!(*counts[0].1, 5);
    for j in 0..4 {
        assert!((got[0][j] - mean_ref[j]).abs() < 1e-12, "mean {j}");
        assert!((got[1][j] - var_ref[j]).abs() < 1e-12, "var {j}");
    }
}

#[test]
fn gradient_check_with_batch_norm_and_dropout() {
    let x: Vec<f64> = random(4, 6 * 5).iter().map(|&v| v as f64).collect();
    let labels = HostTarget::Labels(random_labels(5, 6, 3), 3);
    let bn = Sequential::new(5)
        .dense(7, Init::XavierUniform)
        .batch_norm()
        .tanh()
        .dense(3, Init::XavierUniform);
    let r = gradient_check(&bn, 2, Loss::SoftmaxCrossEntropy, &x, 6, &labels, 100).unwrap();
    for t in &r.tensors {
        println!(
            "gradcheck batch norm {}: {:.2e}",
            t.name, t.worst_relative_error
        );
    }
    assert!(r.worst() < 1e-5, "batch norm: {:.2e}", r.worst());
    let drop = Sequential::new(5)
        .dense(8, Init::XavierUniform)
        .relu()
        .dropout(0.4)
        .dense(3, Init::XavierUniform);
    let r = gradient_check(&drop, 2, Loss::SoftmaxCrossEntropy, &x, 6, &labels, 100).unwrap();
    println!("gradcheck dropout: {:.2e}", r.worst());
    assert!(r.worst() < 1e-5, "dropout: {:.2e}", r.worst());
}

fn step_with_bn_and_dropout<B: Backend>(b: &B) -> Vec<f64> {
    let spec = Sequential::new(30)
        .dense(64, Init::HeNormal)
        .batch_norm()
        .relu()
        .dropout(0.3)
        .dense(10, Init::XavierUniform);
    let mut model = spec.build(b, 8).unwrap();
    let x = b.upload(33, 30, &random(1, 33 * 30)).unwrap();
    let y = b.indices(&random_labels(2, 33, 10), 10).unwrap();
    let mut out = Vec::new();
    for _ in 0..3 {
        model
            .forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y))
            .unwrap();
        out.push(model.loss_value(33).unwrap());
        model.sgd_step(0.05).unwrap();
    }
    out.extend(b.download(model.forward(&x, Mode::Eval).unwrap()).unwrap());
    out
}

#[test]
fn training_with_batch_norm_and_dropout_gpu_matches_cpu() {
    let Some(g) = gpu() else { return };
    assert_parity(
        "3 steps with batch norm + dropout",
        &step_with_bn_and_dropout(&g),
        &step_with_bn_and_dropout(&Cpu::<f32>::new()),
        1e-5,
    );
}

#[test]
fn bad_dropout_and_batch_norm_settings() {
    let cpu = Cpu::<f32>::new();
    for p in [1.0, -0.1, f64::NAN] {
        let e = Sequential::new(3)
            .dense(3, Init::XavierUniform)
            .dropout(p)
            .build(&cpu, 0)
            .err()
            .unwrap();
        assert!(
            matches!(
                e,
                Error::InvalidParameter {
                    name: "dropout p",
                    ..
                }
            ),
            "{e}"
        );
    }
    let e = Sequential::new(3)
        .dense(3, Init::XavierUniform)
        .batch_norm_with(0.1, 0.0)
        .build(&cpu, 0)
        .err()
        .unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidParameter {
                name: "batch norm eps",
                ..
            }
        ),
        "{e}"
    );
    let mut model = Sequential::new(3)
        .dense(3, Init::XavierUniform)
        .batch_norm()
        .build(&cpu, 0)
        .unwrap();
    let one = cpu.upload(1, 3, &[0.1, 0.2, 0.3]).unwrap();
    let e = model.forward(&one, Mode::Train).err().unwrap();
    assert!(
        matches!(
            e,
            Error::InvalidParameter {
                name: "batch size",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        model.forward(&one, Mode::Eval).is_ok(),
        "evaluation works on a single sample"
    );
}
