//! The main job's shipped model, used as a user would: one epoch of
//! `examples/mnist.rs` writes `model.safetensors`, and `examples/predict.rs`
//! loads it and reproduces the test accuracy the job printed, to the digit.
//! (`cargo test` builds the examples beside this test.)

use std::path::PathBuf;
use std::process::Command;

fn example(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let examples = exe.parent().unwrap().parent().unwrap().join("examples");
    let path = examples.join(name);
    assert!(path.exists(), "{} not built", path.display());
    path
}

fn run(cmd: &mut Command) -> String {
    let o = cmd
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(o.status.success(), "{cmd:?} failed:\n{text}");
    text
}

#[test]
fn predict_reproduces_the_main_jobs_test_accuracy() {
    let out = std::env::temp_dir().join(format!("wgtrain-shipped-job-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let job = run(Command::new(example("mnist"))
        .args(["--epochs", "1", "--device", "cpu", "--quiet", "--out"])
        .arg(&out));
    let printed = job
        .lines()
        .find_map(|l| l.strip_prefix("test accuracy "))
        .and_then(|l| l.split('%').next())
        .unwrap_or_else(|| panic!("no test accuracy in:\n{job}"))
        .to_string();
    let model = out.join("model.safetensors");
    let predict = run(Command::new(example("predict"))
        .args(["--device", "cpu", "--model"])
        .arg(&model)
        .arg("--wrong")
        .arg(out.join("wrong.png")));
    assert!(
        predict.contains(&format!("accuracy {printed}% (")),
        "the job printed {printed}%, predict says:\n{predict}"
    );
    assert!(
        predict.contains(&format!("the model recorded {printed}%")),
        "{predict}"
    );
    assert!(predict.contains("confusion matrix"), "{predict}");
    // Images of another size than the model takes are refused, named.
    let small = out.join("small-idx3-ubyte");
    let labels = out.join("small-idx1-ubyte");
    wgtrain::data::write_idx_images(&small, 4, 4, &[0; 32]).unwrap();
    wgtrain::data::write_idx_labels(&labels, &[0, 1]).unwrap();
    let o = Command::new(example("predict"))
        .args(["--device", "cpu", "--model"])
        .arg(&model)
        .arg("--images")
        .arg(&small)
        .arg("--labels")
        .arg(&labels)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("4×4 images, the model takes 784"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&out);
}

/// `--hidden`, `--activation`, `--optimizer` and `--schedule` reach the
/// network and the run (the shipped model's architecture says so), and a
/// name the library does not know is refused with the names it knows.
#[test]
fn the_main_jobs_architecture_and_optimizer_flags() {
    let out = std::env::temp_dir().join(format!("wgtrain-job-flags-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    let job = run(Command::new(example("mnist"))
        .args([
            "--epochs",
            "1",
            "--device",
            "cpu",
            "--hidden",
            "64,32",
            "--activation",
            "tanh",
        ])
        .args([
            "--optimizer",
            "sgd",
            "--lr",
            "0.05",
            "--schedule",
            "step:1:0.5",
            "--out",
        ])
        .arg(&out));
    assert!(
        job.contains("model: 784-64-32-10: dense 64 no bias, batch norm, tanh"),
        "{job}"
    );
    assert!(job.contains("sgd lr 0.05"), "{job}");
    let cpu = wgtrain::Cpu::<f32>::new();
    let shipped = wgtrain::shipped::load(&out.join("model.safetensors"), &cpu).unwrap();
    let description = shipped.model.spec().describe().to_string();
    assert!(
        description.contains(r#"{"dense":{"bias":false,"outputs":64}}"#)
            && description.contains(r#""tanh""#),
        "{description}"
    );
    for (flag, value, known) in [
        ("--optimizer", "lbfgs", "adamw"),
        ("--activation", "swish", "leaky_relu"),
        ("--schedule", "warm", "exponential"),
    ] {
        let o = Command::new(example("mnist"))
            .args(["--epochs", "1", "--device", "cpu", flag, value, "--out"])
            .arg(&out)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            !o.status.success() && err.contains(value) && err.contains(known),
            "{flag} {value}: {err}"
        );
    }
    let _ = std::fs::remove_dir_all(&out);
}
