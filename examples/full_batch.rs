//! Seeds 000 and 001: full-batch gradient descent "until convergence", and
//! the quasi-Newton method that full batches make possible. The same
//! network (784-64-tanh-10) on the same 5,000 MNIST digits, from the same
//! initial weights, by
//!
//! - gradient descent with momentum on the whole set, stopped by the
//!   gradient norm or the change of the loss, and
//! - L-BFGS (`torch.optim.LBFGS`'s algorithm, strong-Wolfe line search),
//!
//! each given the same budget of full-batch evaluations. It prints the
//! loss after each tenth of the budget, the stopping reason, and test
//! accuracy on the official 10,000 test digits.
//!
//! `cargo run --release --example full_batch` (`WGTRAIN_DEVICE=cpu` for
//! the CPU backend)

use std::time::Instant;
use wgtrain::data::mnist;
use wgtrain::optim::{Lbfgs, LineSearch, Optim, Sgd};
use wgtrain::train::{descend_until_converged, evaluate_dataset, Convergence, FullBatch};
use wgtrain::{Backend, Device, Init, Loss, Sequential};

/// Full-batch evaluations each method may spend.
const BUDGET: usize = 200;

fn run<B: Backend>(b: &B) -> wgtrain::Result<()> {
    println!("device: {}", b.describe());
    let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/data/mnist"));
    mnist::ensure(dir)?;
    let sets = mnist::load_mnist(dir)?;
    let train = sets.train.take_first(5_000)?;
    let spec = Sequential::new(784)
        .dense(64, Init::XavierUniform)
        .tanh()
        .dense(10, Init::XavierUniform);
    let loss = Loss::SoftmaxCrossEntropy;
    let mut full = FullBatch::new(b, &train, loss, 1_000)?;
    let every = BUDGET / 10;

    let mut model = spec.build(b, 0)?;
    let mut sgd = Optim::new(Sgd {
        lr: 0.5,
        momentum: 0.9,
        ..Sgd::default()
    })?;
    let start = Instant::now();
    let rule = Convergence {
        max_iterations: BUDGET - 1,
        grad_norm: 1e-4,
        loss_change: 1e-7,
    };
    let done = descend_until_converged(&mut model, &mut sgd, &mut full, &rule)?;
    let seconds = start.elapsed().as_secs_f64();
    let accuracy = evaluate_dataset(&mut model, &sets.test, loss)?
        .1
        .unwrap_or(0.0);
    let marks: Vec<String> = done
        .losses
        .iter()
        .step_by(every)
        .map(|l| format!("{l:.2e}"))
        .collect();
    println!(
        "gradient descent (momentum 0.9, lr 0.5): {} evaluations, stopped by {:?} at loss {:.3e} \
         (gradient norm {:.1e}), {seconds:.1}s; test accuracy {:.2}%",
        done.losses.len(),
        done.reason,
        done.losses.last().copied().unwrap_or(f64::NAN),
        done.grad_norm,
        100.0 * accuracy
    );
    println!("  loss every {every} evaluations: {}", marks.join(" "));

    let mut model = spec.build(b, 0)?;
    let mut lbfgs = Lbfgs {
        history_size: 20,
        line_search: Some(LineSearch::StrongWolfe),
        ..Lbfgs::default()
    }
    .build()?;
    let start = Instant::now();
    let mut marks = Vec::new();
    let mut loss_now = f64::NAN;
    while lbfgs.evaluations() < BUDGET {
        let before = lbfgs.evaluations();
        lbfgs.step(&mut model, |m| full.loss_and_gradient(m))?;
        loss_now = full.loss_and_gradient(&mut model)?;
        if lbfgs.evaluations() / every > before / every {
            marks.push(format!("{loss_now:.2e}"));
        }
        if lbfgs.evaluations() == before + 1 {
            // Converged: a step that only evaluated and stopped.
            break;
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    let accuracy = evaluate_dataset(&mut model, &sets.test, loss)?
        .1
        .unwrap_or(0.0);
    println!(
        "L-BFGS (history 20, strong Wolfe): {} evaluations in {} iterations, loss {loss_now:.3e}, \
         {seconds:.1}s; test accuracy {:.2}%",
        lbfgs.evaluations(),
        lbfgs.iterations(),
        100.0 * accuracy
    );
    println!("  loss every {every} evaluations: {}", marks.join(" "));
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
