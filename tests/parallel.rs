//! Data-parallel training in one process: N replicas give one device's
//! result (to f32 summation tolerance), the same N gives the same bits run
//! to run, dropout does not depend on N, batch norm follows DDP's default,
//! and bad configurations and failing replicas are typed errors, not hangs.
mod common;

use common::{random, random_labels};
use std::sync::atomic::{AtomicUsize, Ordering};
use wgtrain::optim::{Optim, Sgd};
use wgtrain::parallel::DataParallel;
use wgtrain::train::{fit, Report, TrainConfig};
use wgtrain::{Backend, Cpu, Dataset, Error, Gpu, Init, Loss, Model, Sequential, Target};

/// 103 samples: with batch 24 the epoch ends on a batch of 7 rows, which 2
/// replicas split 3 + 4 and 4 replicas 1 + 2 + 2 + 2 (unequal weights).
fn data() -> Dataset {
    let n = 103;
    Dataset::classification(random(1, n * 13), 13, random_labels(2, n, 5), 5).unwrap()
}

/// With dropout, so that the masks' independence of N is tested too.
fn spec(batch_norm: bool) -> Sequential {
    let mut s = Sequential::new(13).dense(33, Init::HeNormal);
    if batch_norm {
        s = s.batch_norm();
    }
    s.relu().dropout(0.3).dense(5, Init::XavierUniform)
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 24,
        seed: 5,
        report: Report::Quiet,
        ..TrainConfig::default()
    }
}

fn sgd<B: Backend>() -> Optim<B, Sgd> {
    Optim::new(Sgd {
        lr: 0.1,
        momentum: 0.9,
        ..Sgd::default()
    })
    .unwrap()
}

fn parameters<B: Backend>(model: &mut Model<B>) -> Vec<f64> {
    let names = model.parameter_names();
    names
        .iter()
        .flat_map(|n| model.parameter(n).unwrap().2)
        .collect()
}

fn one_device<B: Backend>(b: &B, epochs: usize) -> (Vec<f64>, f64) {
    let mut model = spec(false).build(b, 3).unwrap();
    let h = fit(&mut model, &mut sgd(), &data(), None, &config(epochs)).unwrap();
    (parameters(&mut model), h.epochs.last().unwrap().train_loss)
}

fn replicas<B: Backend>(backends: Vec<B>, epochs: usize, batch_norm: bool) -> (Vec<f64>, f64) {
    let wgtrain::parallel::Trained {
        mut model,
        history: h,
        ..
    } = DataParallel::new(backends)
        .unwrap()
        .fit(
            |b| Ok((spec(batch_norm).build(b, 3)?, sgd())),
            &data(),
            None,
            &config(epochs),
            Vec::new(),
        )
        .unwrap();
    (parameters(&mut model), h.epochs.last().unwrap().train_loss)
}

fn max_error(a: &[f64], b: &[f64]) -> f64 {
    common::parity_error(a, b)
}

/// f32: after 3 epochs (15 SGD-momentum steps) the replicas' weights differ
/// from one device's only by the reordered f32 sums over the batch (a few
/// ulp per step's gradient, carried by momentum): measured 7.5e-8 on the
/// CPU and 1.2e-7 on lavapipe (max |Δ| / max(1, |w|)). The tolerance, 1e-6,
/// leaves 8× room; masks drawn by local instead of global row index give
/// 0.22, a wrong shard weight more.
#[test]
fn cpu_replicas_match_one_cpu() {
    let cpu = Cpu::<f32>::new();
    let (single, single_loss) = one_device(&cpu, 3);
    for n in [2, 4] {
        let (multi, loss) = replicas(vec![cpu; n], 3, false);
        let e = max_error(&multi, &single);
        println!("Cpu<f32>, {n} replicas vs 1: weights {e:.2e}, loss {loss} vs {single_loss}");
        assert!(e < 1e-6, "{n} replicas: {e:e}");
        assert!((loss - single_loss).abs() < 1e-6);
    }
}

/// f64: the same to 1e-12 (f64 rounding of the reordered sums; measured 1.7e-16).
#[test]
fn f64_replicas_match_one_f64_device() {
    let cpu = Cpu::<f64>::new();
    let (single, _) = one_device(&cpu, 3);
    let (multi, _) = replicas(vec![cpu; 3], 3, false);
    let e = max_error(&multi, &single);
    println!("Cpu<f64>, 3 replicas vs 1: {e:.2e}");
    assert!(e < 1e-12, "{e:e}");
}

/// Several devices on one adapter: how the multi-device path is tested on
/// lavapipe. Fails, not skips, under CI=true without an adapter.
fn gpus(n: usize) -> Option<Vec<Gpu>> {
    common::gpu()?;
    Some(Gpu::open_many(&vec!["0"; n].join(",")).expect("several devices on adapter 0"))
}

#[test]
fn two_gpus_match_one_gpu() {
    let Some(devices) = gpus(2) else { return };
    let (single, _) = one_device(&devices[0], 3);
    let (multi, _) = replicas(devices, 3, false);
    let e = max_error(&multi, &single);
    println!("2 GPUs vs 1: {e:.2e}");
    assert!(e < 1e-6, "{e:e}");
}

/// The same N twice: the same bits, on the CPU and on two GPU devices.
#[test]
fn replicas_are_bit_identical_run_to_run() {
    let cpu = Cpu::<f32>::new();
    let a = replicas(vec![cpu; 3], 2, true);
    let b = replicas(vec![cpu; 3], 2, true);
    assert_eq!(a, b);
    if let Some(devices) = gpus(2) {
        let a = replicas(devices.clone(), 2, true);
        let b = replicas(devices, 2, true);
        assert_eq!(a, b);
    }
}

/// DDP's default for batch norm: each replica normalises with its own
/// shard's statistics; the running statistics are replica 0's. Checked
/// against one step written out by hand: two models on the two halves of
/// a batch, their gradients averaged, one SGD step.
#[test]
fn batch_norm_uses_each_replicas_statistics_and_replica_0s_buffers() {
    let cpu = Cpu::<f64>::new();
    let n = 24;
    let d = Dataset::classification(random(7, n * 13), 13, random_labels(8, n, 5), 5).unwrap();
    let spec = Sequential::new(13)
        .dense(9, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(5, Init::XavierUniform);
    let plain_sgd = || {
        Optim::new(Sgd {
            lr: 0.5,
            ..Sgd::default()
        })
        .unwrap()
    };
    let config = TrainConfig {
        epochs: 1,
        batch_size: n,
        shuffle: false,
        report: Report::Quiet,
        ..TrainConfig::default()
    };
    let mut model = DataParallel::new(vec![cpu, cpu])
        .unwrap()
        .fit(
            |b| Ok((spec.build(b, 1)?, plain_sgd())),
            &d,
            None,
            &config,
            Vec::new(),
        )
        .unwrap()
        .model;

    // By hand: halves of the (unshuffled) batch on two models.
    let half = |rows: std::ops::Range<usize>| {
        let mut m = spec.build(&cpu, 1).unwrap();
        let x = cpu
            .upload(
                rows.len(),
                13,
                &d.features()[rows.start * 13..rows.end * 13],
            )
            .unwrap();
        let labels: Vec<u32> = match d.targets() {
            wgtrain::Targets::Labels { labels, .. } => labels[rows].to_vec(),
            _ => unreachable!(),
        };
        let y = cpu.indices(&labels, 5).unwrap();
        m.forward_backward(&x, Loss::SoftmaxCrossEntropy, Target::Labels(&y))
            .unwrap();
        m
    };
    let (mut first, mut second) = (half(0..n / 2), half(n / 2..n));
    let mut expected = Vec::new();
    for name in first.parameter_names() {
        let (_, _, w) = first.parameter(&name).unwrap();
        let g1 = first.gradient(&name).unwrap();
        let g2 = second.gradient(&name).unwrap();
        expected.extend(
            w.iter()
                .zip(g1.iter().zip(&g2))
                .map(|(w, (a, b))| w - 0.5 * (a + b) / 2.0),
        );
    }
    let e = max_error(&parameters(&mut model), &expected);
    assert!(e < 1e-12, "weights: {e:e}");
    let buffers = |m: &mut Model<Cpu<f64>>| -> Vec<f64> {
        let (buffers, _) = m.buffers_mut();
        buffers
            .iter()
            .flat_map(|b| cpu.download(b.value).unwrap())
            .collect()
    };
    assert_eq!(
        buffers(&mut model),
        buffers(&mut first),
        "replica 0's running statistics"
    );
    assert_ne!(buffers(&mut first), buffers(&mut second));
}

#[test]
fn bad_configurations_are_typed_errors() {
    let cpu = Cpu::<f32>::new();
    let run = |n: usize, batch_size: usize, data: &Dataset| {
        DataParallel::new(vec![cpu; n])
            .unwrap()
            .fit(
                |b| Ok((spec(false).build(b, 0)?, sgd())),
                data,
                None,
                &TrainConfig {
                    batch_size,
                    ..config(1)
                },
                Vec::new(),
            )
            .map(drop)
    };
    // A global batch that does not split evenly.
    let e = run(4, 30, &data()).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidParameter {
                name: "batch_size",
                ..
            }
        ),
        "{e}"
    );
    assert!(
        e.to_string().contains("multiple of the number of replicas"),
        "{e}"
    );
    // More replicas than samples.
    let tiny = Dataset::classification(random(1, 3 * 13), 13, vec![0, 1, 2], 5).unwrap();
    let e = run(4, 3, &tiny).unwrap_err();
    assert!(
        e.to_string()
            .contains("at most the number of training samples"),
        "{e}"
    );
    // No backend at all.
    assert!(DataParallel::<Cpu<f32>>::new(Vec::new()).is_err());
}

/// A replica that fails stops the others, and the error returned is its
/// own: here replica 2 of 3 cannot build its model, and, in a second run,
/// replica 1 builds a different network.
#[test]
fn a_failing_replica_stops_every_replica() {
    let cpu = Cpu::<f32>::new();
    let calls = AtomicUsize::new(0);
    let e = DataParallel::new(vec![cpu; 3])
        .unwrap()
        .fit(
            |b| {
                if calls.fetch_add(1, Ordering::SeqCst) == 2 {
                    return Err(Error::Model("replica cannot build".into()));
                }
                Ok((spec(false).build(b, 0)?, sgd()))
            },
            &data(),
            None,
            &config(1),
            Vec::new(),
        )
        .map(drop)
        .unwrap_err();
    assert!(e.to_string().contains("replica cannot build"), "{e}");

    let calls = AtomicUsize::new(0);
    let e = DataParallel::new(vec![cpu; 2])
        .unwrap()
        .fit(
            |b| {
                let width = if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    33
                } else {
                    34
                };
                let s = Sequential::new(13)
                    .dense(width, Init::HeNormal)
                    .relu()
                    .dense(5, Init::XavierUniform);
                Ok((s.build(b, 0)?, sgd()))
            },
            &data(),
            None,
            &config(1),
            Vec::new(),
        )
        .map(drop)
        .unwrap_err();
    assert!(e.to_string().contains("must build the same network"), "{e}");
}

/// Replica 0 alone writes the checkpoints, of an epoch every replica
/// finished; they load back into a single-device model.
#[test]
fn replica_zero_writes_checkpoints_that_load() {
    let cpu = Cpu::<f32>::new();
    let dir = std::env::temp_dir().join(format!("wgtrain-parallel-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = TrainConfig {
        checkpoint_dir: Some(dir.clone()),
        ..config(2)
    };
    let wgtrain::parallel::Trained {
        mut model, history, ..
    } = DataParallel::new(vec![cpu; 2])
        .unwrap()
        .fit(
            |b| Ok((spec(false).build(b, 0)?, sgd())),
            &data(),
            None,
            &config,
            Vec::new(),
        )
        .unwrap();
    assert_eq!(history.epochs.len(), 2);
    let mut loaded = spec(false).build(&cpu, 9).unwrap();
    wgtrain::checkpoint::load_model(&dir.join(wgtrain::train::LAST), &mut loaded).unwrap();
    assert_eq!(parameters(&mut loaded), parameters(&mut model));
    std::fs::remove_dir_all(&dir).unwrap();
}
