//! "Babysitting" a network before a long run (seed 001): a gradient check,
//! the first-step loss against ln C, the objective rising when
//! regularisation is turned on, and overfitting a tiny subset with
//! regularisation off, on the MNIST digits the main job uses.
//!
//! `cargo run --release --example babysitting`

use wgtrain::data::mnist;
use wgtrain::diagnostics::{
    first_step_loss_check, gradient_check, overfit_tiny_subset, regularisation_check, HostTarget,
};
use wgtrain::{Backend, Device, Init, Loss, Sequential, Target};

fn run<B: Backend>(b: &B) -> wgtrain::Result<()> {
    println!("device: {}", b.describe());
    // The project's data folder wherever this runs from (fetched there, announced, if missing).
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"));
    mnist::ensure(dir)?;
    let data = mnist::load_mnist(dir)?.train;

    // 1. Analytic gradients against central differences in f64, on a narrow
    // version of the network (up to 300 evenly spaced elements per tensor).
    let small = Sequential::new(784)
        .dense(16, Init::HeNormal)
        .batch_norm()
        .relu()
        .dense(10, Init::XavierUniform);
    let x8: Vec<f64> = data.features()[..8 * 784]
        .iter()
        .map(|&v| v as f64)
        .collect();
    let labels8 = data.labels().expect("MNIST has labels")[..8].to_vec();
    let report = gradient_check(
        &small,
        0,
        Loss::SoftmaxCrossEntropy,
        &x8,
        8,
        &HostTarget::Labels(labels8, 10),
        300,
    )?;
    println!("1. gradient check (784-16-bn-relu-10, 8 digits, f64):");
    for t in &report.tensors {
        println!(
            "   {:<12} worst relative error {:.2e} over {} elements",
            t.name, t.worst_relative_error, t.checked
        );
    }

    // 2. A fresh classifier should score ln 10: a uniform guess.
    let spec = Sequential::new(784)
        .dense(512, Init::HeNormal)
        .relu()
        .dense(512, Init::HeNormal)
        .relu()
        .dense(10, Init::XavierUniform);
    let n = 256;
    let x = b.upload(n, 784, &data.features()[..n * 784])?;
    let y = b.indices(&data.labels().expect("MNIST has labels")[..n], 10)?;
    let mut model = spec.build(b, 0)?;
    let first = first_step_loss_check(&mut model, &x, &y, 0.25)?;
    println!(
        "2. first-step loss {:.4} vs ln 10 = {:.4}: {}",
        first.loss,
        first.expected,
        if first.ok {
            "as expected"
        } else {
            "far off: check the initial scales"
        }
    );

    // 2b. Turning regularisation on must raise the reported objective.
    let lambda = 1e-3;
    let reg = regularisation_check(
        &mut model,
        &x,
        Target::Labels(&y),
        Loss::SoftmaxCrossEntropy,
        lambda,
    )?;
    println!(
        "   regularisation on (λ = {lambda}, Ω = ½‖W‖² = {:.2}): loss {:.4} → objective {:.4}: {}",
        reg.penalty,
        reg.loss,
        reg.objective,
        if reg.ok {
            "it rises, as it should"
        } else {
            "it does not rise: the penalty is not in the objective"
        }
    );

    // 3. With no regularisation, 32 digits must be learnt by heart.
    let x32 = b.upload(32, 784, &data.features()[..32 * 784])?;
    let y32 = b.indices(&data.labels().expect("MNIST has labels")[..32], 10)?;
    let mut model = spec.build(b, 0)?;
    let history = overfit_tiny_subset(
        &mut model,
        &x32,
        Target::Labels(&y32),
        Loss::SoftmaxCrossEntropy,
        0.05,
        100,
    )?;
    let shown: Vec<String> = history
        .iter()
        .step_by(20)
        .map(|l| format!("{l:.4}"))
        .collect();
    println!(
        "3. overfitting 32 digits, plain gradient descent lr 0.05: loss every 20 steps {}",
        shown.join(" → ")
    );
    println!(
        "   {}",
        if history[100] < 0.05 * history[0] {
            "the network can fit: ready for the real run"
        } else {
            "the loss does not fall: look for a bug before training longer"
        }
    );
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
