//! LeNet-5 on the official MNIST: the main job (examples/mnist.rs: data,
//! progress, curves, checkpoints, the cost model, the shipped model, the
//! published rows) with `--model lenet5` and this network's defaults. Every
//! option of the main job applies and overrides them; `--model cnn-bn` is
//! the modern variant with batch norm (LeNet-5's `--no-batch-norm` default
//! is left out for it).
//!
//! ```text
//! cargo run --release --example lenet -- --device cpu
//! cargo run --release --example lenet -- --model cnn-bn --epochs 12
//! ```

#[allow(dead_code)]
#[path = "mnist.rs"]
mod job;

use clap::Parser;

/// Where the run goes (the main job's is runs/mnist).
const RUN_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/runs/lenet");

/// LeNet-5's defaults: the original's convolutions (with biases, no batch
/// norm), dropout 0.3 after the two hidden dense layers, Adam (lr 2e-3, no
/// weight decay) with a cosine schedule over 15 epochs, batch 64, plain
/// cross-entropy (the main job's label smoothing off; see PERFORMANCE.md,
/// "Convolutions").
const DEFAULTS: [&str; 17] = [
    "--model",
    "lenet5",
    "--no-batch-norm",
    "--dropout",
    "0.3",
    "--optimizer",
    "adam",
    "--lr",
    "2e-3",
    "--weight-decay",
    "0",
    "--epochs",
    "15",
    "--batch-size",
    "64",
    "--label-smoothing",
    "0",
];

fn main() {
    let mut argv: Vec<String> = std::env::args().take(1).collect();
    let user: Vec<String> = std::env::args().skip(1).collect();
    // cnn-bn is defined by its batch norm: LeNet-5's `--no-batch-norm`
    // default does not apply to it (a flag cannot be turned back on).
    let modern = user.iter().any(|a| a == "cnn-bn" || a == "--model=cnn-bn");
    let defaults = DEFAULTS
        .iter()
        .filter(|d| !(modern && **d == "--no-batch-norm"));
    argv.extend(defaults.map(|s| s.to_string()));
    argv.extend(["--out".to_string(), RUN_DIR.to_string()]);
    argv.extend(user);
    job::run_job(job::Args::parse_from(argv));
}
