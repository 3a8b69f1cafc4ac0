//! The training loop: convergence, early stopping, checkpoints that load
//! into an identical model, exact resumption, divergence and bad input.

mod common;

use common::{gpu, random};
use std::path::{Path, PathBuf};
use wgtrain::optim::{Adam, Optim, Optimizer, Sgd};
use wgtrain::train::{
    fit, fit_with_callbacks, Control, EarlyStopping, Monitor, Report, TrainConfig,
};
use wgtrain::{checkpoint, Backend, Cpu, Dataset, Error, Init, Mode, Sequential};

/// Three Gaussian blobs in 8 dimensions; `noise_labels` replaces labels with random ones.
fn blobs(n: usize, seed: u64, noise_labels: bool) -> Dataset {
    let x = random(seed, n * 8);
    let mut features = Vec::with_capacity(n * 8);
    let mut labels = Vec::with_capacity(n);
    let shuffled = common::random_labels(seed + 1, n, 3);
    for i in 0..n {
        let class = (i % 3) as u32;
        for j in 0..8 {
            let center = if j % 3 == class as usize { 2.0 } else { 0.0 };
            features.push(center + x[i * 8 + j]);
        }
        labels.push(if noise_labels { shuffled[i] } else { class });
    }
    Dataset::classification(features, 8, labels, 3).unwrap()
}

fn spec() -> Sequential {
    Sequential::new(8)
        .dense(16, Init::HeNormal)
        .batch_norm()
        .relu()
        .dropout(0.2)
        .dense(3, Init::XavierUniform)
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn quiet(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        report: Report::Quiet,
        report_every: 3,
        ..TrainConfig::default()
    }
}

#[test]
fn learns_separable_blobs() {
    let cpu = Cpu::<f32>::new();
    let (train, val) = (blobs(300, 1, false), blobs(90, 2, false));
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Adam {
        lr: 1e-2,
        ..Adam::default()
    })
    .unwrap();
    let h = fit(&mut model, &mut opt, &train, Some(&val), &quiet(8)).unwrap();
    let last = h.epochs.last().unwrap();
    assert!(last.val_accuracy.unwrap() > 0.95, "{last:?}");
    assert!(last.train_loss < h.epochs[0].train_loss);
    assert_eq!(h.epochs.len(), 8);
    assert!(h.to_csv().lines().count() == 9 && h.to_json().contains("\"val_accuracy\""));
}

#[test]
fn early_stopping_restores_the_best_epoch() {
    let cpu = Cpu::<f32>::new();
    // Random validation labels: validation loss rises as the model fits the training set.
    let (train, val) = (blobs(300, 1, false), blobs(90, 5, true));
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Adam {
        lr: 3e-2,
        ..Adam::default()
    })
    .unwrap();
    let es = EarlyStopping {
        monitor: Monitor::ValLoss,
        patience: 2,
        min_delta: 0.0,
        restore_best: true,
    };
    let config = TrainConfig {
        early_stopping: Some(es),
        ..quiet(50)
    };
    let h = fit(&mut model, &mut opt, &train, Some(&val), &config).unwrap();
    assert!(
        h.stopped_early,
        "should stop long before 50 epochs: {} epochs",
        h.epochs.len()
    );
    let best = h.best_epoch.unwrap();
    let best_loss = h.epochs[best - 1].val_loss.unwrap();
    assert!(h.epochs.iter().all(|e| e.val_loss.unwrap() >= best_loss));
    assert_eq!(
        h.epochs.len(),
        best + 2,
        "stops after `patience` epochs without improvement"
    );
    let (now, _) =
        wgtrain::train::evaluate_dataset(&mut model, &val, wgtrain::Loss::SoftmaxCrossEntropy)
            .unwrap();
    assert!(
        (now - best_loss).abs() < 1e-5,
        "restored weights give the best epoch's loss: {now} vs {best_loss}"
    );
}

fn predictions<B: Backend>(model: &mut wgtrain::Model<B>, data: &Dataset) -> Vec<f64> {
    let b = model.backend().clone();
    let x = b.upload(data.len(), data.dim(), data.features()).unwrap();
    b.download(model.forward(&x, Mode::Eval).unwrap()).unwrap()
}

fn checkpoint_round_trip<B: Backend>(b: &B, name: &str) {
    let dir = temp_dir(name);
    let train = blobs(120, 1, false);
    let mut model = spec().build(b, 3).unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    fit(
        &mut model,
        &mut opt,
        &train,
        None,
        &TrainConfig {
            checkpoint_dir: Some(dir.clone()),
            ..quiet(2)
        },
    )
    .unwrap();
    let mut fresh = spec().build(b, 99).unwrap();
    assert_ne!(
        predictions(&mut model, &train),
        predictions(&mut fresh, &train)
    );
    checkpoint::load_model(&dir.join("last.safetensors"), &mut fresh).unwrap();
    assert_eq!(
        predictions(&mut model, &train),
        predictions(&mut fresh, &train),
        "identical predictions after loading"
    );
    // PyTorch names and shapes.
    let (tensors, _) = checkpoint::read(&dir.join("last.safetensors")).unwrap();
    let names: Vec<(&str, &[usize])> = tensors
        .iter()
        .map(|t| (t.name.as_str(), t.shape.as_slice()))
        .collect();
    for expected in [
        ("0.weight", &[16, 8][..]),
        ("0.bias", &[16][..]),
        ("1.weight", &[16][..]),
        ("1.running_mean", &[16][..]),
        ("1.running_var", &[16][..]),
        ("1.num_batches_tracked", &[][..]),
        ("4.weight", &[3, 16][..]),
    ] {
        assert!(names.contains(&expected), "{expected:?} in {names:?}");
    }
    std::fs::remove_dir_all(dir).unwrap();
}

backend_tests!(checkpoints_round_trip: checkpoint_round_trip on cpu_f32, gpu);

#[test]
fn a_checkpoint_of_another_architecture_is_refused() {
    let cpu = Cpu::<f32>::new();
    let dir = temp_dir("arch");
    let path = dir.join("m.safetensors");
    checkpoint::save_model(&path, &mut spec().build(&cpu, 1).unwrap()).unwrap();
    let mut other = Sequential::new(8)
        .dense(32, Init::HeNormal)
        .relu()
        .dense(3, Init::HeNormal)
        .build(&cpu, 1)
        .unwrap();
    let before = other.parameter("0.weight").unwrap();
    let e = checkpoint::load_model(&path, &mut other).unwrap_err();
    let msg = e.to_string();
    assert!(matches!(e, Error::Format { .. }), "{e}");
    assert!(
        msg.contains("0.weight has shape [16, 8] in the file but [32, 8]")
            && msg.contains("unexpected 1.running_mean"),
        "{msg}"
    );
    assert_eq!(
        other.parameter("0.weight").unwrap(),
        before,
        "nothing changed"
    );
    std::fs::write(&path, b"not a safetensors file").unwrap();
    assert!(matches!(
        checkpoint::load_model(&path, &mut other),
        Err(Error::Format { .. })
    ));
    assert!(matches!(
        checkpoint::load_model(&dir.join("missing"), &mut other),
        Err(Error::Io { .. })
    ));
    std::fs::remove_dir_all(dir).unwrap();
}

fn params<B: Backend>(model: &mut wgtrain::Model<B>) -> Vec<f64> {
    model
        .parameter_names()
        .iter()
        .flat_map(|n| model.parameter(n).unwrap().2)
        .collect()
}

fn resume_equals_uninterrupted<B: Backend>(b: &B, name: &str) {
    let train = blobs(100, 1, false);
    let val = blobs(30, 2, false);
    let config = |dir: &Path, epochs| TrainConfig {
        checkpoint_dir: Some(dir.to_path_buf()),
        schedule: Some(wgtrain::Schedule::cosine(1e-2, 4, 0.0).unwrap()),
        ..quiet(epochs)
    };
    let (d1, d2) = (
        temp_dir(&format!("{name}-a")),
        temp_dir(&format!("{name}-b")),
    );
    let mut straight = spec().build(b, 3).unwrap();
    let mut opt = Optim::new(Adam {
        lr: 1e-2,
        ..Adam::default()
    })
    .unwrap();
    let h_straight = fit(&mut straight, &mut opt, &train, Some(&val), &config(&d1, 4)).unwrap();

    let mut first = spec().build(b, 3).unwrap();
    let mut opt1 = Optim::new(Adam {
        lr: 1e-2,
        ..Adam::default()
    })
    .unwrap();
    fit(&mut first, &mut opt1, &train, Some(&val), &config(&d2, 2)).unwrap();
    // A new process: new model, new optimizer, everything from the folder.
    let mut resumed = spec().build(b, 77).unwrap();
    let mut opt2 = Optim::new(Adam {
        lr: 1e-2,
        ..Adam::default()
    })
    .unwrap();
    let h_resumed = fit(
        &mut resumed,
        &mut opt2,
        &train,
        Some(&val),
        &TrainConfig {
            resume_from: Some(d2.clone()),
            ..config(&d2, 4)
        },
    )
    .unwrap();
    assert_eq!(h_resumed.epochs.len(), 4, "the history continues");
    assert_eq!(
        params(&mut straight),
        params(&mut resumed),
        "{name}: resumed training equals uninterrupted training"
    );
    assert_eq!(h_straight.epochs[3].val_loss, h_resumed.epochs[3].val_loss);
    let _ = std::fs::remove_dir_all(d1);
    let _ = std::fs::remove_dir_all(d2);
}

backend_tests!(resumed_training_equals_uninterrupted_training: resume_equals_uninterrupted on cpu_f32, gpu);

#[test]
fn divergence_stops_cleanly_and_keeps_the_last_good_checkpoint() {
    let cpu = Cpu::<f32>::new();
    let dir = temp_dir("nan");
    let train = blobs(120, 1, false);
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Sgd {
        lr: 0.01,
        ..Sgd::default()
    })
    .unwrap();
    fit(
        &mut model,
        &mut opt,
        &train,
        None,
        &TrainConfig {
            checkpoint_dir: Some(dir.clone()),
            ..quiet(1)
        },
    )
    .unwrap();
    let good = std::fs::read(dir.join("last.safetensors")).unwrap();
    // Epoch 2 with an absurd learning rate: the weights overflow to inf, the loss to NaN.
    let mut opt = Optim::new(Sgd {
        lr: 1e38,
        ..Sgd::default()
    })
    .unwrap();
    let config = TrainConfig {
        checkpoint_dir: Some(dir.clone()),
        resume_from: Some(dir.clone()),
        ..quiet(3)
    };
    let e = fit(&mut model, &mut opt, &train, None, &config).unwrap_err();
    let Error::Diverged { epoch, step, .. } = e else {
        panic!("expected Diverged, got {e}")
    };
    assert_eq!(epoch, 2);
    assert!(
        (1..=8).contains(&step),
        "detected within report_every steps: {step}"
    );
    assert_eq!(
        std::fs::read(dir.join("last.safetensors")).unwrap(),
        good,
        "the last good checkpoint is intact"
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary files left");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn bad_training_input_is_a_typed_error() {
    let cpu = Cpu::<f32>::new();
    let train = blobs(30, 1, false);
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    for bs in [0, 31] {
        let e = fit(
            &mut model,
            &mut opt,
            &train,
            None,
            &TrainConfig {
                batch_size: bs,
                ..quiet(1)
            },
        )
        .unwrap_err();
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
    }
    let wide = Dataset::classification(vec![0.5; 30 * 9], 9, vec![0; 30], 3).unwrap();
    assert!(matches!(
        fit(&mut model, &mut opt, &wide, None, &quiet(1)),
        Err(Error::Shape { .. })
    ));
    let early = TrainConfig {
        early_stopping: Some(EarlyStopping::default()),
        ..quiet(1)
    };
    assert!(matches!(
        fit(&mut model, &mut opt, &train, None, &early),
        Err(Error::Model(_))
    ));
    // A checkpoint folder that cannot be created (its parent is a file).
    let file = temp_dir("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let e = fit(
        &mut model,
        &mut opt,
        &train,
        None,
        &TrainConfig {
            checkpoint_dir: Some(file.join("sub")),
            ..quiet(1)
        },
    )
    .unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e}");
    std::fs::remove_file(file).unwrap();
    assert!(matches!(
        Dataset::classification(vec![0.0; 8], 8, vec![3], 3),
        Err(Error::LabelRange { .. })
    ));
}

#[test]
fn callbacks_see_every_epoch_and_can_stop() {
    let cpu = Cpu::<f32>::new();
    let train = blobs(60, 1, false);
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    let mut seen = Vec::new();
    let h = fit_with_callbacks(
        &mut model,
        &mut opt,
        &train,
        None,
        &quiet(10),
        vec![Box::new(|r: &wgtrain::train::EpochRecord| {
            seen.push(r.epoch);
            if r.epoch == 3 {
                Control::Stop
            } else {
                Control::Continue
            }
        })],
    )
    .unwrap();
    assert_eq!(seen, vec![1, 2, 3]);
    assert!(h.stopped_early);
    assert_eq!(opt.lr(), 1e-3);
}

/// A callback that asks for steps hears every `report_every` steps and at
/// the end of each epoch, and its last window of an epoch agrees with the
/// epoch's record (the same sums, read at the same point).
#[test]
fn step_callbacks_see_every_window_and_end_on_the_epoch_figures() {
    use wgtrain::train::{EpochRecord, StepRecord, TrainCallback};
    #[derive(Default)]
    struct Log {
        steps: Vec<StepRecord>,
        epochs: Vec<EpochRecord>,
    }
    impl TrainCallback for &mut Log {
        fn on_epoch(&mut self, r: &EpochRecord) -> Control {
            self.epochs.push(r.clone());
            Control::Continue
        }
        fn on_steps(&mut self, r: &StepRecord) {
            self.steps.push(*r);
        }
        fn wants_steps(&self) -> bool {
            true
        }
    }
    let cpu = Cpu::<f32>::new();
    // 70 rows in batches of 8: 9 steps an epoch, the last of 6 rows.
    let train = blobs(70, 1, false);
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    let mut log = Log::default();
    let config = TrainConfig {
        batch_size: 8,
        report_every: 4,
        ..quiet(2)
    };
    fit_with_callbacks(
        &mut model,
        &mut opt,
        &train,
        None,
        &config,
        vec![Box::new(&mut log)],
    )
    .unwrap();
    let at: Vec<(usize, usize, usize)> = log
        .steps
        .iter()
        .map(|r| (r.epoch, r.step, r.steps_done))
        .collect();
    assert_eq!(
        at,
        [
            (1, 4, 4),
            (1, 8, 8),
            (1, 9, 9),
            (2, 4, 13),
            (2, 8, 17),
            (2, 9, 18)
        ]
    );
    for (window, epoch) in log.steps.iter().filter(|r| r.step == 9).zip(&log.epochs) {
        assert_eq!(window.train_loss, epoch.train_loss);
        assert_eq!(window.train_accuracy, epoch.train_accuracy);
        assert_eq!(window.steps, 9);
    }
    assert!(log
        .steps
        .iter()
        .all(|r| r.train_loss.is_finite() && r.samples_per_sec > 0.0));
}

/// Once warm, a training step creates no device buffer and no bind group,
/// and reading the loss creates nothing either (issue "Speed", item 3).
/// Also with the workgroup kernel, whose split-k products take a scratch
/// buffer from the pool on every call.
#[test]
fn a_warm_training_step_creates_no_gpu_resources() {
    let Some(g) = gpu() else { return };
    for kernel in [g.matmul_kernel(), wgtrain::MatmulKernel::Workgroup] {
        g.set_matmul_kernel(kernel);
        let spec = Sequential::new(784)
            .dense(512, Init::HeNormal)
            .batch_norm()
            .relu()
            .dropout(0.2)
            .dense(10, Init::XavierUniform);
        let mut model = spec.build(&g, 1).unwrap();
        let mut opt = Optim::new(Adam::default()).unwrap();
        let x = g.upload(64, 784, &random(1, 64 * 784)).unwrap();
        let y = g.indices(&common::random_labels(2, 64, 10), 10).unwrap();
        let mut step = |model: &mut wgtrain::Model<wgtrain::Gpu>| {
            model
                .forward_backward(
                    &x,
                    wgtrain::Loss::SoftmaxCrossEntropy,
                    wgtrain::Target::Labels(&y),
                )
                .unwrap();
            let mut refs: Vec<wgtrain::ParamRef<'_, wgtrain::Gpu>> = model
                .parameters_mut()
                .into_iter()
                .map(|p| wgtrain::ParamRef::new(p.name, p.value, p.grad))
                .collect();
            opt.step(&g, &mut refs).unwrap();
            model.loss_value(64).unwrap()
        };
        for _ in 0..3 {
            step(&mut model);
        }
        let warm = g.created();
        for _ in 0..5 {
            assert!(step(&mut model).is_finite());
        }
        assert_eq!(
            g.created(),
            warm,
            "{kernel:?}: (buffers, bind groups) created during warm steps"
        );
    }
}

/// Two identical seeded runs write identical checkpoint files, byte for
/// byte: a run can be compared with another by hash.
#[test]
fn identical_runs_write_identical_checkpoint_bytes() {
    let cpu = Cpu::<f32>::new();
    let train = blobs(60, 1, false);
    let val = blobs(30, 2, false);
    let dirs = [temp_dir("bytes-a"), temp_dir("bytes-b")];
    for dir in &dirs {
        let mut model = spec().build(&cpu, 3).unwrap();
        let mut opt = Optim::new(Adam::default()).unwrap();
        let config = TrainConfig {
            checkpoint_dir: Some(dir.clone()),
            ..quiet(2)
        };
        fit(&mut model, &mut opt, &train, Some(&val), &config).unwrap();
    }
    for name in [
        wgtrain::train::LAST,
        wgtrain::train::BEST,
        wgtrain::train::OPTIMIZER,
    ] {
        let a = std::fs::read(dirs[0].join(name)).unwrap();
        let b = std::fs::read(dirs[1].join(name)).unwrap();
        assert!(a == b, "{name} differs between identical runs");
    }
    for dir in dirs {
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
fn half_and_double_precision_state_dicts_load() {
    // A PyTorch state dict saved after `model.half()`, `.bfloat16()` or
    // `.double()`: the weights widen (exactly) to the model's precision.
    use safetensors::tensor::{Dtype, TensorView};
    let cpu = Cpu::<f32>::new();
    let mut model = Sequential::new(3)
        .dense(2, Init::HeNormal)
        .build(&cpu, 0)
        .unwrap();
    let weight = [0.5f32, -1.25, 3.0e-3, 7.0, -0.1, 65504.0];
    let bias = [0.3f32, -2.5];
    let f16: Vec<u8> = weight
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    let bf16: Vec<u8> = bias
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    let dir = temp_dir("half");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("half.safetensors");
    let views = [
        (
            "0.weight",
            TensorView::new(Dtype::F16, vec![2, 3], &f16).unwrap(),
        ),
        (
            "0.bias",
            TensorView::new(Dtype::BF16, vec![2], &bf16).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &path).unwrap();
    checkpoint::load_model(&path, &mut model).unwrap();
    let rounded = |v: &[f32], f: fn(f32) -> f32| v.iter().map(|&x| f(x) as f64).collect::<Vec<_>>();
    assert_eq!(
        model.parameter("0.weight").unwrap().2,
        rounded(&weight, |x| half::f16::from_f32(x).to_f32())
    );
    assert_eq!(
        model.parameter("0.bias").unwrap().2,
        rounded(&bias, |x| half::bf16::from_f32(x).to_f32())
    );
    let f64s: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
    let views = [
        (
            "0.weight",
            TensorView::new(Dtype::F16, vec![2, 3], &f16).unwrap(),
        ),
        (
            "0.bias",
            TensorView::new(Dtype::F64, vec![2], &f64s).unwrap(),
        ),
    ];
    safetensors::serialize_to_file(views, None, &path).unwrap();
    checkpoint::load_model(&path, &mut model).unwrap();
    assert_eq!(model.parameter("0.bias").unwrap().2, [1.0, 2.0]);
    // Other dtypes are refused by name.
    let u8s = [0u8; 2];
    let views = [("0.bias", TensorView::new(Dtype::U8, vec![2], &u8s).unwrap())];
    safetensors::serialize_to_file(views, None, &path).unwrap();
    let e = checkpoint::read(&path).unwrap_err();
    assert!(e.to_string().contains("0.bias has dtype U8"), "{e}");
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn reduce_lr_on_plateau_matches_pytorch() {
    use wgtrain::train::{PlateauConfig, PlateauMode, ReduceLrOnPlateau, ThresholdMode};
    let data: serde_json::Value =
        serde_json::from_str(include_str!("data/plateau_torch.json")).unwrap();
    let initial = data["lr"].as_f64().unwrap();
    for case in data["cases"].as_array().unwrap() {
        let s = &case["settings"];
        let d = PlateauConfig::default();
        let number = |key: &str, default: f64| s[key].as_f64().unwrap_or(default);
        let config = PlateauConfig {
            mode: match s["mode"].as_str() {
                Some("max") => PlateauMode::Max,
                _ => PlateauMode::Min,
            },
            factor: number("factor", d.factor),
            patience: number("patience", d.patience as f64) as usize,
            threshold: number("threshold", d.threshold),
            threshold_mode: match s["threshold_mode"].as_str() {
                Some("abs") => ThresholdMode::Absolute,
                _ => ThresholdMode::Relative,
            },
            cooldown: number("cooldown", d.cooldown as f64) as usize,
            min_lr: number("min_lr", d.min_lr),
            eps: number("eps", d.eps),
        };
        let mut plateau = ReduceLrOnPlateau::new(config).unwrap();
        let mut lr = initial;
        let metrics = case["metrics"].as_array().unwrap();
        for (i, (m, want)) in metrics
            .iter()
            .zip(case["lrs"].as_array().unwrap())
            .enumerate()
        {
            lr = plateau.step(m.as_f64().unwrap(), lr);
            let want = want.as_f64().unwrap();
            assert!(
                (lr - want).abs() <= 1e-15 * want,
                "{s}: step {i}: lr {lr}, PyTorch {want}"
            );
        }
    }
}

#[test]
fn reduce_lr_on_plateau_drives_the_loop_and_checks_its_settings() {
    use wgtrain::train::{PlateauConfig, ReduceLrOnPlateau};
    // A relative threshold of 100% is never beaten after the first epoch:
    // with patience 0 every later epoch halves the rate.
    let plateau = ReduceLrOnPlateau::new(PlateauConfig {
        factor: 0.5,
        patience: 0,
        threshold: 1.0,
        ..Default::default()
    })
    .unwrap()
    .watching(Monitor::ValAccuracy);
    let cpu = Cpu::<f32>::new();
    let (train, val) = (blobs(60, 1, false), blobs(30, 2, false));
    let mut model = spec().build(&cpu, 3).unwrap();
    let mut opt = Optim::new(Adam::default()).unwrap();
    let h = fit_with_callbacks(
        &mut model,
        &mut opt,
        &train,
        Some(&val),
        &quiet(4),
        vec![Box::new(plateau)],
    )
    .unwrap();
    let lrs: Vec<f64> = h.epochs.iter().map(|e| e.lr).collect();
    assert_eq!(
        lrs,
        [1e-3, 1e-3, 5e-4, 2.5e-4],
        "the rate each epoch trained at"
    );
    assert_eq!(opt.lr(), 1.25e-4);
    for (factor, threshold) in [(1.0, 1e-4), (0.0, 1e-4), (0.5, -1.0), (0.5, f64::NAN)] {
        let bad = ReduceLrOnPlateau::new(PlateauConfig {
            factor,
            threshold,
            ..Default::default()
        });
        assert!(
            matches!(bad, Err(Error::InvalidParameter { .. })),
            "{factor} {threshold}: {bad:?}"
        );
    }
}

fn max_norm_holds_after_training<B: Backend>(b: &B, _label: &str) {
    let c = 0.5;
    let mut model = spec().build(b, 3).unwrap();
    let mut opt = Optim::new(Sgd {
        lr: 0.5,
        ..Sgd::default()
    })
    .unwrap();
    let config = TrainConfig {
        max_norm: Some(c),
        ..quiet(3)
    };
    fit(&mut model, &mut opt, &blobs(60, 1, false), None, &config).unwrap();
    let weights: Vec<String> = model
        .parameters_mut()
        .iter()
        .filter(|p| p.is_weight)
        .map(|p| p.name.clone())
        .collect();
    for name in weights {
        let (rows, cols, w) = model.parameter(&name).unwrap();
        let norms: Vec<f64> = (0..rows)
            .map(|r| {
                w[r * cols..(r + 1) * cols]
                    .iter()
                    .map(|v| v * v)
                    .sum::<f64>()
                    .sqrt()
            })
            .collect();
        // Rows of 8 and 16 weights: f32 norms within 1e-6.
        assert!(norms.iter().all(|&n| n <= c + 1e-6), "{name}: {norms:?}");
        assert!(
            norms.iter().any(|&n| n > c - 1e-3),
            "{name}: the constraint bit: {norms:?}"
        );
    }
    let bad = TrainConfig {
        max_norm: Some(-1.0),
        ..quiet(1)
    };
    let e = fit(&mut model, &mut opt, &blobs(60, 1, false), None, &bad);
    assert!(
        matches!(
            e,
            Err(Error::InvalidParameter {
                name: "max_norm",
                ..
            })
        ),
        "{e:?}"
    );
}

backend_tests!(max_norm_constraint_holds_on_every_unit: max_norm_holds_after_training on cpu_f32, gpu);

fn lr_range_test_restores_and_stops<B: Backend>(b: &B, _label: &str) {
    use wgtrain::train::{lr_find, LrFinder};
    let data = blobs(90, 1, false);
    let mut model = spec().build(b, 3).unwrap();
    let mut opt = Optim::new(Sgd {
        lr: 0.05,
        momentum: 0.9,
        ..Sgd::default()
    })
    .unwrap();
    // Some optimizer state to put back.
    fit(&mut model, &mut opt, &data, None, &quiet(1)).unwrap();
    let before = params(&mut model);
    let state = opt.export_state(b).unwrap();
    let finder = LrFinder {
        start_lr: 1e-4,
        end_lr: 1e4,
        steps: 80,
        batch_size: 16,
        ..LrFinder::default()
    };
    let found = lr_find(&mut model, &mut opt, &data, &finder).unwrap();
    // Geometric steps from start_lr, a factor of 10^(8/79) apart.
    let ratio = (1e8f64).powf(1.0 / 79.0);
    assert!((found.lrs[0] - 1e-4).abs() < 1e-18);
    assert!(found
        .lrs
        .windows(2)
        .all(|w| (w[1] / w[0] - ratio).abs() < 1e-9));
    // SGD at rates up to 1e4 blows up, and the sweep stops there.
    let stop = found.diverged_at.expect("the loss blows up before 1e4");
    assert_eq!(found.lrs.len(), stop + 1);
    assert!(found.lrs[stop] > 1.0, "stopped at {}", found.lrs[stop]);
    let lr = found.suggestion.expect("enough steps to suggest");
    assert!(lr > 1e-4 && lr < found.lrs[stop], "{lr}");
    // Everything as it was.
    assert_eq!(params(&mut model), before);
    assert_eq!(opt.lr(), 0.05);
    assert_eq!(opt.export_state(b).unwrap(), state);
    for bad in [
        LrFinder {
            start_lr: 0.0,
            ..finder
        },
        LrFinder {
            end_lr: 1e-5,
            ..finder
        },
        LrFinder { steps: 1, ..finder },
        LrFinder {
            batch_size: 0,
            ..finder
        },
        LrFinder {
            smoothing: 1.0,
            ..finder
        },
        LrFinder {
            diverge_factor: 1.0,
            ..finder
        },
    ] {
        let e = lr_find(&mut model, &mut opt, &data, &bad);
        assert!(
            matches!(e, Err(Error::InvalidParameter { .. })),
            "{bad:?}: {e:?}"
        );
    }
}

backend_tests!(lr_range_test: lr_range_test_restores_and_stops on cpu_f32, gpu);
