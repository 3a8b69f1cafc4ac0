//! A trainer that never loses work: divergence stops at the step it
//! appears, alike on both backends, and nothing non-finite reaches the
//! disk; the best checkpoint changes only on improvement.
mod common;

use common::{random, random_labels};
use std::path::PathBuf;
use wgtrain::checkpoint::{self, HostData, HostTensor};
use wgtrain::optim::{Optim, Sgd};
use wgtrain::train::{fit, Report, TrainConfig, BEST, LAST};
use wgtrain::{Backend, Dataset, Error, Init, Sequential};

fn data() -> Dataset {
    let n = 96;
    Dataset::classification(random(1, n * 6), 6, random_labels(2, n, 3), 3).unwrap()
}

fn spec() -> Sequential {
    Sequential::new(6)
        .dense(12, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform)
}

fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wgtrain-rel-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn config(epochs: usize, dir: &std::path::Path) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        report: Report::Quiet,
        checkpoint_dir: Some(dir.to_path_buf()),
        ..TrainConfig::default()
    }
}

/// An absurd learning rate: the weights overflow. The run stops with the
/// 1-based epoch and the exact step (not the next readback's), names the
/// parameter, and leaves no checkpoint with a NaN in it. Returns (epoch, step).
fn diverge<B: Backend>(b: &B, label: &str) -> (usize, usize) {
    let dir = temp_dir(label);
    let mut model = spec().build(b, 1).unwrap();
    // Past what the element type holds after a step or two.
    let lr = if std::mem::size_of::<B::Scalar>() > 4 {
        1e300
    } else {
        1e30
    };
    let mut opt = Optim::new(Sgd {
        lr,
        ..Sgd::default()
    })
    .unwrap();
    let e = fit(&mut model, &mut opt, &data(), None, &config(3, &dir)).unwrap_err();
    let Error::Diverged {
        epoch,
        step,
        what,
        value,
    } = &e
    else {
        panic!("{label}: expected Diverged, got {e}")
    };
    assert!(!value.is_finite(), "{e}");
    assert!(what.contains("parameter") || what.contains("loss"), "{e}");
    // Nothing was written: the first epoch did not finish.
    assert!(
        !dir.join(LAST).exists(),
        "{label}: a checkpoint of a diverged epoch"
    );
    let _ = std::fs::remove_dir_all(&dir);
    (*epoch, *step)
}

fn divergence_is_caught_at_its_step<B: Backend>(b: &B, label: &str) {
    let (epoch, step) = diverge(b, label);
    assert_eq!(epoch, 1, "{label}");
    assert!(step < 6, "{label}: caught late, at step {step}");
    if std::mem::size_of::<B::Scalar>() == 4 {
        // The same step as the CPU's f32 reference.
        let reference = diverge(&wgtrain::Cpu::<f32>::new(), &format!("{label}-ref"));
        assert_eq!((epoch, step), reference, "{label}: backends disagree");
    }
}

backend_tests!(divergence: divergence_is_caught_at_its_step on cpu_f32, cpu_f64, gpu);

/// A step deep inside a readback window: the rate jumps to an absurd value
/// at step 7 (a step schedule counted in iterations), between readbacks
/// every 5 steps. The guard's per-step slots sit at aligned offsets of one
/// tensor on the GPU; each is read at its own offset, so the step is exact.
fn divergence_inside_a_window_is_pinned<B: Backend>(b: &B, label: &str) {
    let mut model = spec().build(b, 1).unwrap();
    let mut opt = Optim::new(Sgd::default()).unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 8,
        shuffle: false,
        report: Report::Quiet,
        report_every: 5,
        // Built by hand: `Schedule::step` refuses a growing rate, rightly.
        schedule: Some(wgtrain::schedule::Schedule::Step {
            lr: 1e-3,
            step_size: 6,
            gamma: 1e300,
        }),
        schedule_unit: wgtrain::train::ScheduleUnit::Iteration,
        ..TrainConfig::default()
    };
    let e = fit(&mut model, &mut opt, &data(), None, &config).unwrap_err();
    let Error::Diverged { epoch, step, .. } = e else {
        panic!("{label}: expected Diverged, got {e}")
    };
    assert_eq!((epoch, step), (1, 7), "{label}");
}

backend_tests!(divergence_in_window: divergence_inside_a_window_is_pinned on cpu_f32, gpu);

/// Parameters that are NaN before training (a NaN initialiser) are refused
/// before the first step, naming the parameter.
fn nan_parameters_are_refused<B: Backend>(b: &B, label: &str) {
    let spec = Sequential::new(6).dense(3, Init::Constant(f64::NAN));
    let mut model = spec.build(b, 0).unwrap();
    let mut opt = Optim::new(Sgd::default()).unwrap();
    let dir = temp_dir(label);
    let e = fit(&mut model, &mut opt, &data(), None, &config(1, &dir)).unwrap_err();
    assert!(
        matches!(&e, Error::NonFinite { what, .. } if what.contains("0.weight") && what.contains("before training")),
        "{label}: {e}"
    );
    assert!(!dir.exists() || !dir.join(LAST).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

backend_tests!(nan_start: nan_parameters_are_refused on cpu_f32, gpu);

/// best.safetensors is the best epoch's, not the last one's: a resumed run
/// at a rate that makes things worse leaves it as it was.
#[test]
fn best_checkpoint_changes_only_on_improvement() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let dir = temp_dir("best");
    let mut model = spec().build(&cpu, 1).unwrap();
    let mut opt = Optim::new(Sgd {
        lr: 0.1,
        ..Sgd::default()
    })
    .unwrap();
    fit(
        &mut model,
        &mut opt,
        &data(),
        Some(&data()),
        &config(3, &dir),
    )
    .unwrap();
    let best = std::fs::read(dir.join(BEST)).unwrap();
    // Far too large a rate: worse, but finite.
    let mut opt = Optim::new(Sgd {
        lr: 30.0,
        ..Sgd::default()
    })
    .unwrap();
    let resumed = TrainConfig {
        resume_from: Some(dir.clone()),
        ..config(5, &dir)
    };
    let h = fit(&mut model, &mut opt, &data(), Some(&data()), &resumed).unwrap();
    let val: Vec<f64> = h.epochs.iter().map(|e| e.val_loss.unwrap()).collect();
    assert!(
        val[3] > val[2] && val[4] > val[2],
        "the large rate did not hurt: {val:?}"
    );
    assert_eq!(
        std::fs::read(dir.join(BEST)).unwrap(),
        best,
        "best was overwritten"
    );
    assert_ne!(std::fs::read(dir.join(LAST)).unwrap(), best);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A tensor holding NaN is refused when written and when read.
#[test]
fn nothing_non_finite_is_written_or_read() {
    let dir = temp_dir("nonfinite");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("x.safetensors");
    let tensor = |v: f32| HostTensor {
        name: "w".into(),
        shape: vec![2],
        data: HostData::F32(vec![1.0, v]),
    };
    let e = checkpoint::write_atomic(&path, &[tensor(f32::NAN)], Default::default()).unwrap_err();
    assert!(matches!(e, Error::NonFinite { index: 1, .. }), "{e}");
    assert!(!path.exists());
    // A file with an infinity in it (written by hand: its last 4 bytes).
    checkpoint::write_atomic(&path, &[tensor(2.0)], Default::default()).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 4..].copy_from_slice(&f32::INFINITY.to_le_bytes());
    std::fs::write(&path, bytes).unwrap();
    let e = checkpoint::read(&path).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A byte flipped in the current set is found by its manifest: the resume
/// is refused, saying the set is damaged and what to do.
#[test]
fn a_damaged_checkpoint_set_is_refused_on_resume() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let dir = temp_dir("damaged");
    let mut model = spec().build(&cpu, 1).unwrap();
    let mut opt = Optim::new(Sgd::default()).unwrap();
    fit(&mut model, &mut opt, &data(), None, &config(2, &dir)).unwrap();
    let last = std::fs::canonicalize(dir.join(LAST)).unwrap();
    assert!(last.starts_with(std::fs::canonicalize(dir.join("sets")).unwrap()));
    let mut bytes = std::fs::read(&last).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40; // a weight's last byte: still finite, silently different
                          // Replace rather than write through: the file may be hard-linked into an older set.
    std::fs::remove_file(&last).unwrap();
    std::fs::write(&last, bytes).unwrap();
    let resumed = TrainConfig {
        resume_from: Some(dir.clone()),
        ..config(3, &dir)
    };
    let e = fit(&mut model, &mut opt, &data(), None, &resumed).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("damaged") && text.contains("last.safetensors"),
        "{text}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// Oversize requests run in a child process (an abort would end the test
/// binary): each is a typed `TooLarge`, and the child exits cleanly.
#[test]
fn oversize_requests_are_typed_errors_not_aborts() {
    if std::env::var("WGTRAIN_OVERSIZE_CHILD").is_ok() {
        fn attempts<B: Backend>(b: &B) -> Vec<String> {
            let outcome = |r: wgtrain::Result<()>| match r {
                Err(Error::TooLarge { what, .. }) => format!("TooLarge: {what}"),
                Err(e) => format!("other error: {e}"),
                Ok(()) => "ok".into(),
            };
            vec![
                // 80 GB of f64 initial values, 40 GB of f32 weights.
                outcome(
                    Sequential::new(100_000)
                        .dense(100_000, Init::HeNormal)
                        .build(b, 0)
                        .map(drop),
                ),
                // 2^64 elements: the size arithmetic would wrap.
                outcome(
                    Sequential::new(1 << 62)
                        .dense(4, Init::HeNormal)
                        .build(b, 0)
                        .map(drop),
                ),
                outcome(b.zeros(1 << 31, 1 << 31).map(drop)),
                outcome(b.zeros(usize::MAX, 2).map(drop)),
            ]
        }
        for line in attempts(&wgtrain::Cpu::<f32>::new()) {
            println!("cpu {line}");
        }
        if let Some(g) = common::gpu() {
            for line in attempts(&g) {
                println!("gpu {line}");
            }
        }
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "oversize_requests_are_typed_errors_not_aborts",
            "--exact",
            "--nocapture",
        ])
        .env("WGTRAIN_OVERSIZE_CHILD", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the child did not exit cleanly: {:?}\n{stdout}",
        out.status
    );
    let lines: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with("cpu ") || l.starts_with("gpu "))
        .collect();
    assert!(lines.len() >= 4, "{stdout}");
    for line in &lines {
        assert!(line.contains("TooLarge"), "{line}");
    }
}

/// What can be known before training is refused before the first step,
/// naming the real problem.
#[test]
fn late_failures_are_caught_up_front() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let dir = temp_dir("upfront");
    // Batch norm with a last minibatch of one row (97 = 6 × 16 + 1).
    let n = 97;
    let odd = Dataset::classification(random(5, n * 6), 6, random_labels(6, n, 3), 3).unwrap();
    let bn = Sequential::new(6)
        .dense(8, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(3, Init::XavierUniform);
    let mut model = bn.build(&cpu, 0).unwrap();
    let mut opt = Optim::new(Sgd::default()).unwrap();
    let e = fit(&mut model, &mut opt, &odd, None, &config(1, &dir)).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("single row") && text.contains("batches of 16") && text.contains("e.g."),
        "{text}"
    );
    assert_eq!(model.step(), 0, "refused before the first step");
    // No epochs at all.
    let e = fit(
        &mut model,
        &mut opt,
        &data(),
        None,
        &TrainConfig {
            epochs: 0,
            ..config(1, &dir)
        },
    )
    .unwrap_err();
    assert!(
        matches!(e, Error::InvalidParameter { name: "epochs", .. }),
        "{e}"
    );
    // Optimizer state of another network, on resume (in a folder of plain
    // files, which has no manifest to catch the mix first).
    let momentum = || {
        Optim::new(Sgd {
            momentum: 0.9,
            ..Sgd::default()
        })
        .unwrap()
    };
    let run = |spec: Sequential, dir: &std::path::Path| {
        let mut m = spec.build(&cpu, 0).unwrap();
        fit(&mut m, &mut momentum(), &data(), None, &config(1, dir)).unwrap();
    };
    let narrow = Sequential::new(6)
        .dense(4, Init::HeNormal)
        .relu()
        .dense(3, Init::XavierUniform);
    let narrow_dir = temp_dir("upfront-narrow");
    run(spec(), &dir);
    run(narrow, &narrow_dir);
    let mixed = temp_dir("upfront-mixed");
    std::fs::create_dir_all(&mixed).unwrap();
    for (from, file) in [
        (&dir, LAST),
        (&narrow_dir, wgtrain::train::OPTIMIZER),
        (&dir, "history.json"),
    ] {
        std::fs::copy(from.join(file), mixed.join(file)).unwrap();
    }
    let mut model = spec().build(&cpu, 0).unwrap();
    let resumed = TrainConfig {
        resume_from: Some(mixed.clone()),
        ..config(2, &mixed)
    };
    let e = fit(&mut model, &mut momentum(), &data(), None, &resumed).unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains("is 1x4, but the model's 0.bias is 1x12") && text.contains("another network"),
        "{text}"
    );
    for d in [dir, narrow_dir, mixed] {
        let _ = std::fs::remove_dir_all(d);
    }
}

#[test]
fn a_bad_device_setting_is_named() {
    std::env::set_var("WGTRAIN_DEVICE", "bogus");
    let e = wgtrain::Device::from_env().map(drop).unwrap_err();
    std::env::remove_var("WGTRAIN_DEVICE");
    assert!(
        matches!(
            &e,
            Error::Setting {
                name: "WGTRAIN_DEVICE",
                ..
            }
        ),
        "{e}"
    );
    assert!(e.to_string().contains("gpu, cpu or auto"), "{e}");
}

/// A device lost mid-run (here `Gpu::destroy` after epoch 1, as a driver
/// reset or a browser would) ends the run with an `Error::Gpu` saying so,
/// instead of hanging or panicking; epoch 1's checkpoint set is intact, and
/// a new device resumes from it to the same weights as a run never
/// interrupted.
#[test]
fn a_lost_device_is_an_error_and_the_run_resumes_on_a_new_one() {
    use wgtrain::train::{fit_with_callbacks, Control, EpochRecord};
    let Some(gpu) = common::gpu() else { return };
    let dir = temp_dir("lost-device");
    let sgd = || {
        Optim::new(Sgd {
            lr: 0.1,
            momentum: 0.9,
            ..Sgd::default()
        })
        .unwrap()
    };
    let mut model = spec().build(&gpu, 3).unwrap();
    let mut opt = sgd();
    let lose = gpu.clone();
    let e = fit_with_callbacks(
        &mut model,
        &mut opt,
        &data(),
        None,
        &config(3, &dir),
        vec![Box::new(move |r: &EpochRecord| {
            if r.epoch == 1 {
                lose.destroy();
            }
            Control::Continue
        })],
    )
    .unwrap_err();
    assert!(
        matches!(&e, Error::Gpu(m) if m.contains("lost") && m.contains("resume")),
        "{e}"
    );

    let fresh = wgtrain::Gpu::new().unwrap();
    let mut resumed = spec().build(&fresh, 3).unwrap();
    let mut opt = sgd();
    let resume = TrainConfig {
        resume_from: Some(dir.clone()),
        ..config(3, &dir)
    };
    let history = fit(&mut resumed, &mut opt, &data(), None, &resume).unwrap();
    assert_eq!(history.epochs.len(), 3);

    let mut whole = spec().build(&fresh, 3).unwrap();
    let mut opt = sgd();
    let other = temp_dir("lost-device-whole");
    fit(&mut whole, &mut opt, &data(), None, &config(3, &other)).unwrap();
    assert_eq!(
        checkpoint::state_dict(&mut resumed).unwrap(),
        checkpoint::state_dict(&mut whole).unwrap()
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}
