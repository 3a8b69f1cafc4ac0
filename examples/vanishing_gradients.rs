//! Seed 002: "the gradient does not reach the first layers", and its fix.
//! Three 10-layer networks of the same width train for one epoch on MNIST
//! with plain SGD, recording each layer's gradient norm (RMS over the
//! epoch's steps, `TrainConfig::layer_stats`):
//!
//! - sigmoid units: σ' ≤ 1/4 shrinks the gradient at every layer on the way
//!   back, so the first layers barely learn;
//! - ReLU units: a derivative of 1 where active, so the norm holds;
//! - the sigmoid network with residual blocks `y = x + f(x)`: the identity
//!   path carries the gradient past every block.
//!
//! It prints the norms by layer, the first-to-last ratio and each network's
//! test accuracy, and (with `--features plot`) draws them into
//! `runs/vanishing_gradients/gradient_norms.png`.
//!
//! `cargo run --release --features plot --example vanishing_gradients`
//! (`WGTRAIN_DEVICE=cpu` for the CPU backend)

use wgtrain::data::mnist;
use wgtrain::optim::{Optim, Sgd};
use wgtrain::train::{evaluate_dataset, fit, Report, TrainConfig};
use wgtrain::{Backend, Device, Init, Loss, Sequential};

/// Hidden width and hidden layers (ten weight layers with the output).
const WIDTH: usize = 64;
const HIDDEN: usize = 9;

fn networks() -> Vec<(&'static str, Sequential)> {
    let mut sigmoid = Sequential::new(784);
    let mut relu = Sequential::new(784);
    for _ in 0..HIDDEN {
        sigmoid = sigmoid.dense(WIDTH, Init::XavierUniform).sigmoid();
        relu = relu.dense(WIDTH, Init::HeNormal).relu();
    }
    // The first layer maps to the width; each later one is a block.
    let mut residual = Sequential::new(784)
        .dense(WIDTH, Init::XavierUniform)
        .sigmoid();
    for _ in 1..HIDDEN {
        residual = residual.residual(|b| b.dense(WIDTH, Init::XavierUniform).sigmoid());
    }
    vec![
        ("sigmoid", sigmoid.dense(10, Init::XavierUniform)),
        ("ReLU", relu.dense(10, Init::XavierUniform)),
        (
            "sigmoid + residual blocks",
            residual.dense(10, Init::XavierUniform),
        ),
    ]
}

fn run<B: Backend>(b: &B) -> wgtrain::Result<()> {
    println!("device: {}", b.describe());
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"));
    mnist::ensure(dir)?;
    let sets = mnist::load_mnist(dir)?;
    // 12,000 training digits: one epoch shows the effect in seconds.
    let train = sets.train.take_first(12_000)?;
    let test = sets.test;
    let config = TrainConfig {
        epochs: 1,
        batch_size: 64,
        layer_stats: true,
        report: Report::Quiet,
        ..TrainConfig::default()
    };
    let mut curves = Vec::new();
    for (name, spec) in networks() {
        let mut model = spec.build(b, 0)?;
        let mut opt = Optim::new(Sgd {
            lr: 0.1,
            ..Sgd::default()
        })?;
        let history = fit(&mut model, &mut opt, &train, None, &config)?;
        let record = history.epochs.last().expect("one epoch");
        let norms: Vec<f64> = record
            .grad_norms
            .iter()
            .filter(|(n, _)| n.ends_with("weight"))
            .map(|(_, v)| *v)
            .collect();
        let (_, accuracy) = evaluate_dataset(&mut model, &test, Loss::SoftmaxCrossEntropy)?;
        println!(
            "{name:<26} first/last layer gradient {:.1e}  test accuracy {:.2}%",
            norms[0] / norms[norms.len() - 1],
            100.0 * accuracy.expect("MNIST has labels")
        );
        println!(
            "  by layer: {}",
            norms
                .iter()
                .map(|v| format!("{v:.1e}"))
                .collect::<Vec<_>>()
                .join(" ")
        );
        curves.push((name.to_string(), norms));
    }
    #[cfg(feature = "plot")]
    {
        let out = std::path::Path::new(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/runs/vanishing_gradients"
        ));
        std::fs::create_dir_all(out).map_err(|source| wgtrain::Error::Io {
            path: out.to_path_buf(),
            source,
        })?;
        let path = out.join("gradient_norms.png");
        wgtrain::train::plot_layer_norms(
            &curves,
            &path,
            "gradient norm by layer, 10-layer nets, 1 epoch of MNIST (SGD, lr 0.1)",
        )?;
        println!("plot: {}", path.display());
    }
    #[cfg(not(feature = "plot"))]
    println!("(build with --features plot for the PNG)");
    Ok(())
}

fn main() {
    let result = match Device::from_env() {
        Ok(Device::Gpu(g)) => run(&g),
        Ok(Device::Cpu(c)) => run(&c),
        Err(e) => Err(e),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
