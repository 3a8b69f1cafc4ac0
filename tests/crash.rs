//! Crash consistency: a training process killed (SIGKILL) at random
//! moments, then resumed, ends with the bytes of an uninterrupted run, or
//! is refused with a clear error; nothing temporary is left behind.
//!
//! The child is this test binary itself, re-run on its `child` test with
//! `WGTRAIN_CRASH_DIR` set. `WGTRAIN_CRASH_TRIALS` runs more trials.
mod common;

use common::{random, random_labels};
use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant};
use wgtrain::optim::{Adam, Optim};
use wgtrain::train::{fit, Report, TrainConfig, LAST, OPTIMIZER};
use wgtrain::{Cpu, Dataset, Init, Sequential};

const EPOCHS: usize = 25;

fn train(dir: &Path, resume: bool) -> wgtrain::Result<()> {
    let n = 64;
    let data = Dataset::classification(random(3, n * 5), 5, random_labels(4, n, 3), 3)?;
    let cpu = Cpu::<f32>::new();
    let spec = Sequential::new(5)
        .dense(16, Init::HeNormal)
        .batch_norm()
        .relu()
        .dropout(0.2)
        .dense(3, Init::XavierUniform);
    let mut model = spec.build(&cpu, 7)?;
    let mut opt = Optim::new(Adam::default())?;
    let config = TrainConfig {
        epochs: EPOCHS,
        batch_size: 16,
        report: Report::Quiet,
        checkpoint_dir: Some(dir.to_path_buf()),
        resume_from: resume.then(|| dir.to_path_buf()),
        ..TrainConfig::default()
    };
    fit(&mut model, &mut opt, &data, Some(&data), &config).map(drop)
}

/// The process the parent kills.
#[test]
fn child() {
    if let Ok(dir) = std::env::var("WGTRAIN_CRASH_DIR") {
        let dir = Path::new(&dir);
        train(dir, dir.join("current").exists()).unwrap();
    }
}

fn files(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    (
        std::fs::read(dir.join(LAST)).unwrap(),
        std::fs::read(dir.join(OPTIMIZER)).unwrap(),
    )
}

fn leftovers(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for d in [dir.to_path_buf(), dir.join("sets")] {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.contains(".tmp") {
                found.push(name);
            }
        }
    }
    found
}

/// The child process, training in `dir` (resuming from it if it holds a
/// set).
fn spawn_child(dir: &Path) -> Child {
    Command::new(std::env::current_exe().unwrap())
        .args(["child", "--exact", "--test-threads=1"])
        .env("WGTRAIN_CRASH_DIR", dir)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_bytes() {
    let base = std::env::temp_dir().join(format!("wgtrain-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    // Three uninterrupted children: their bytes are the reference (and must
    // agree), and the median of their times, start-up included, is what the
    // kills are spread over. (Timing the run inside this process instead
    // let a machine that sped up afterwards see its children finish before
    // most kills: 10 of 24 landed mid-run in one CI run.)
    let mut took: Vec<Duration> = (0..3)
        .map(|i| {
            let started = Instant::now();
            let status = spawn_child(&base.join(format!("reference-{i}")))
                .wait()
                .unwrap();
            assert!(status.success(), "uninterrupted child {i}: {status}");
            started.elapsed()
        })
        .collect();
    took.sort();
    let took = took[1];
    let expected = files(&base.join("reference-0"));
    for i in 1..3 {
        assert_eq!(
            files(&base.join(format!("reference-{i}"))),
            expected,
            "reference {i}"
        );
    }
    let trials: usize = std::env::var("WGTRAIN_CRASH_TRIALS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24);
    let (mut killed_mid_run, mut identical, mut refused) = (0, 0, 0);
    for trial in 0..trials {
        let dir = base.join(format!("trial-{trial}"));
        let mut child = spawn_child(&dir);
        // Spread over the run, deterministically.
        let at = took.mul_f64(1.3 * (trial as f64 + 0.5) / trials as f64);
        std::thread::sleep(at);
        if child.try_wait().unwrap().is_none() {
            killed_mid_run += 1;
        }
        child.kill().ok(); // SIGKILL
        child.wait().unwrap();
        // Resume as a user would: from the folder if it holds a set.
        let resume = dir.join("current").exists();
        match train(&dir, resume) {
            Ok(()) => {
                assert_eq!(files(&dir), expected, "trial {trial}: resumed bytes differ");
                identical += 1;
            }
            Err(e) => {
                // A refusal must say what is wrong and what to do.
                let text = e.to_string();
                assert!(
                    text.contains("damaged") || text.contains("resume"),
                    "trial {trial}: {text}"
                );
                refused += 1;
            }
        }
        assert!(
            leftovers(&dir).is_empty(),
            "trial {trial}: {:?}",
            leftovers(&dir)
        );
    }
    println!(
        "{trials} kill trials ({killed_mid_run} killed mid-run): {identical} resumed bit-identical, {refused} refused"
    );
    assert_eq!(identical + refused, trials);
    assert!(killed_mid_run >= trials / 2, "most kills must land mid-run");
    let _ = std::fs::remove_dir_all(&base);
}
