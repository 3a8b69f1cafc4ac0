//! Full-batch training: the chunked loss and gradient equal the whole
//! batch's, gradient descent until convergence reaches the least-squares
//! solution, L-BFGS over chunks equals L-BFGS over one batch, bad settings.

mod common;

use common::random;
use wgtrain::optim::{Lbfgs, LineSearch, Optim, Sgd};
use wgtrain::train::{descend_until_converged, Convergence, FullBatch, StopReason};
use wgtrain::{Backend, Dataset, Error, Init, Loss, Sequential, Target};

/// y = X·w* + b* + small noise, 23 rows of 4 features.
fn regression() -> (Dataset, Vec<f64>, Vec<f64>) {
    let n = 23;
    let x: Vec<f32> = random(3, n * 4);
    let noise = random(4, n);
    let w = [1.5, -2.0, 0.5, 3.0];
    let y: Vec<f32> = (0..n)
        .map(|i| {
            let dot: f32 = (0..4).map(|j| x[i * 4 + j] * w[j]).sum();
            dot + 0.25 + 0.05 * noise[i]
        })
        .collect();
    let xs = x.iter().map(|&v| v as f64).collect();
    let ys = y.iter().map(|&v| v as f64).collect();
    (Dataset::regression(x, 4, y, 1).unwrap(), xs, ys)
}

/// The least-squares weights and bias from the normal equations, solved on
/// the host in f64 by Gaussian elimination with partial pivoting.
fn least_squares(x: &[f64], y: &[f64], dim: usize) -> Vec<f64> {
    let k = dim + 1;
    let mut a = vec![vec![0.0; k + 1]; k];
    for (row, &t) in x.chunks(dim).zip(y) {
        let z: Vec<f64> = row.iter().copied().chain([1.0]).collect();
        for i in 0..k {
            for j in 0..k {
                a[i][j] += z[i] * z[j];
            }
            a[i][k] += z[i] * t;
        }
    }
    for c in 0..k {
        let p = (c..k)
            .max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))
            .unwrap();
        a.swap(c, p);
        let pivot = a[c].clone();
        for (r, row) in a.iter_mut().enumerate() {
            if r != c {
                let f = row[c] / pivot[c];
                for (v, p) in row.iter_mut().zip(&pivot).skip(c) {
                    *v -= f * p;
                }
            }
        }
    }
    (0..k).map(|i| a[i][k] / a[i][i]).collect()
}

fn tolerance(label: &str) -> f64 {
    if label.ends_with("cpu_f64") {
        1e-12
    } else {
        1e-5
    }
}

/// Chunks of 1, 7 and all 23 rows give the whole batch's loss and gradient.
fn chunks_equal_the_whole_batch<B: Backend>(b: &B, label: &str) {
    let (data, xs, _) = regression();
    let spec = Sequential::new(4)
        .dense(6, Init::XavierUniform)
        .tanh()
        .dense(1, Init::XavierUniform);
    let mut whole = spec.build(b, 1).unwrap();
    let x = b.upload_f64(23, 4, &xs).unwrap();
    let y = b.upload(23, 1, data.dense_targets().unwrap()).unwrap();
    whole
        .forward_backward(&x, Loss::SquaredError, Target::Dense(&y))
        .unwrap();
    let want_loss = whole.last_loss().unwrap();
    for chunk in [1, 7, 23, 100] {
        let mut model = spec.build(b, 1).unwrap();
        let mut full = FullBatch::new(b, &data, Loss::SquaredError, chunk).unwrap();
        assert_eq!(full.len(), 23);
        let loss = full.loss_and_gradient(&mut model).unwrap();
        assert!(
            (loss - want_loss).abs() <= tolerance(label) * want_loss.max(1.0),
            "{label} chunk {chunk}: loss {loss} vs {want_loss}"
        );
        for name in model.parameter_names() {
            let (g, w) = (
                model.gradient(&name).unwrap(),
                whole.gradient(&name).unwrap(),
            );
            let diff = g
                .iter()
                .zip(&w)
                .map(|(a, c)| (a - c).abs() / c.abs().max(1.0))
                .fold(0.0, f64::max);
            assert!(
                diff <= tolerance(label),
                "{label} chunk {chunk}: {name} off by {diff:e}"
            );
        }
    }
}

backend_tests!(full_batch_gradient: chunks_equal_the_whole_batch on cpu_f64, cpu_f32, gpu);

/// Linear least squares is convex: full-batch gradient descent stops on
/// the gradient norm at the normal equations' solution.
fn descent_reaches_least_squares<B: Backend>(b: &B, label: &str) {
    let (data, xs, ys) = regression();
    let exact = least_squares(&xs, &ys, 4);
    let mut model = Sequential::new(4)
        .dense(1, Init::XavierUniform)
        .build(b, 0)
        .unwrap();
    let mut full = FullBatch::new(b, &data, Loss::SquaredError, 8).unwrap();
    let mut sgd = Optim::new(Sgd {
        lr: 0.2,
        momentum: 0.5,
        ..Sgd::default()
    })
    .unwrap();
    let f64_backend = label.ends_with("cpu_f64");
    let rule = Convergence {
        max_iterations: 20_000,
        // f32 gradients bottom out near 2e-5 (lavapipe), where the loss
        // stops changing in its last bit.
        grad_norm: if f64_backend { 1e-10 } else { 1e-4 },
        loss_change: 0.0,
    };
    let done = descend_until_converged(&mut model, &mut sgd, &mut full, &rule).unwrap();
    assert_eq!(done.reason, StopReason::GradientNorm, "{label}: {done:?}");
    assert!(done.grad_norm <= rule.grad_norm);
    assert_eq!(done.losses.len(), done.iterations + 1);
    assert!(done.losses.last() < done.losses.first());
    let w = model.parameter("0.weight").unwrap().2;
    let bias = model.parameter("0.bias").unwrap().2[0];
    let got: Vec<f64> = w.into_iter().chain([bias]).collect();
    let tol = if f64_backend { 1e-8 } else { 1e-3 };
    for (g, e) in got.iter().zip(&exact) {
        assert!((g - e).abs() < tol, "{label}: {got:?} vs {exact:?}");
    }
    // Out of iterations is a stop too, and says so.
    let mut again = Sequential::new(4)
        .dense(1, Init::XavierUniform)
        .build(b, 0)
        .unwrap();
    let short = Convergence {
        max_iterations: 3,
        ..rule
    };
    let done = descend_until_converged(&mut again, &mut sgd, &mut full, &short).unwrap();
    assert_eq!(
        (done.reason, done.iterations),
        (StopReason::MaxIterations, 3)
    );
}

backend_tests!(descent_until_convergence: descent_reaches_least_squares on cpu_f64, cpu_f32, gpu);

/// L-BFGS over the chunked full batch takes the steps it takes over one
/// batch of every row.
#[test]
fn lbfgs_over_chunks_equals_lbfgs_over_one_batch() {
    let cpu = wgtrain::Cpu::<f64>::new();
    let (data, xs, _) = regression();
    let spec = Sequential::new(4)
        .dense(5, Init::XavierUniform)
        .tanh()
        .dense(1, Init::XavierUniform);
    let config = Lbfgs {
        line_search: Some(LineSearch::StrongWolfe),
        history_size: 5,
        ..Lbfgs::default()
    };
    let x = cpu.upload_f64(23, 4, &xs).unwrap();
    let y = cpu.upload(23, 1, data.dense_targets().unwrap()).unwrap();
    let mut one = spec.build(&cpu, 2).unwrap();
    let mut opt = config.build().unwrap();
    let mut chunked = spec.build(&cpu, 2).unwrap();
    let mut opt2 = config.build().unwrap();
    let mut full = FullBatch::new(&cpu, &data, Loss::SquaredError, 5).unwrap();
    for _ in 0..3 {
        opt.step(&mut one, |m| {
            m.forward_backward(&x, Loss::SquaredError, Target::Dense(&y))?;
            m.last_loss()
        })
        .unwrap();
        opt2.step(&mut chunked, |m| full.loss_and_gradient(m))
            .unwrap();
    }
    assert_eq!(opt.evaluations(), opt2.evaluations());
    for name in one.parameter_names() {
        let (a, c) = (
            one.parameter(&name).unwrap().2,
            chunked.parameter(&name).unwrap().2,
        );
        let diff = a
            .iter()
            .zip(&c)
            .map(|(u, v)| (u - v).abs())
            .fold(0.0, f64::max);
        // The chunks sum in another order (1e-16 per gradient); three
        // steps of up to 20 quasi-Newton iterations amplify it to ~1e-8.
        assert!(diff < 1e-7, "{name}: {diff:e}");
    }
    let loss = full.loss_and_gradient(&mut chunked).unwrap();
    assert!(loss < 1e-2, "L-BFGS fits the regression: {loss}");
}

#[test]
fn bad_full_batch_and_lbfgs_settings_are_typed_errors() {
    let cpu = wgtrain::Cpu::<f32>::new();
    let (data, _, _) = regression();
    let named = |e: Error| match e {
        Error::InvalidParameter { name, .. } => name,
        other => panic!("{other}"),
    };
    let e = FullBatch::new(&cpu, &data, Loss::SquaredError, 0)
        .err()
        .unwrap();
    assert_eq!(named(e), "chunk_rows");
    let mut model = Sequential::new(4)
        .dense(1, Init::XavierUniform)
        .build(&cpu, 0)
        .unwrap();
    let mut full = FullBatch::new(&cpu, &data, Loss::SquaredError, 4).unwrap();
    let mut sgd = Optim::new(Sgd::default()).unwrap();
    for (rule, name) in [
        (
            Convergence {
                max_iterations: 0,
                ..Convergence::default()
            },
            "max_iterations",
        ),
        (
            Convergence {
                grad_norm: -1.0,
                ..Convergence::default()
            },
            "grad_norm",
        ),
        (
            Convergence {
                loss_change: f64::NAN,
                ..Convergence::default()
            },
            "loss_change",
        ),
    ] {
        let e = descend_until_converged(&mut model, &mut sgd, &mut full, &rule).unwrap_err();
        assert_eq!(named(e), name);
    }
    for (config, name) in [
        (
            Lbfgs {
                history_size: 0,
                ..Lbfgs::default()
            },
            "history_size",
        ),
        (
            Lbfgs {
                max_iter: 0,
                ..Lbfgs::default()
            },
            "max_iter",
        ),
        (
            Lbfgs {
                max_eval: Some(0),
                ..Lbfgs::default()
            },
            "max_eval",
        ),
        (
            Lbfgs {
                lr: -1.0,
                ..Lbfgs::default()
            },
            "lr",
        ),
        (
            Lbfgs {
                tolerance_grad: -1e-7,
                ..Lbfgs::default()
            },
            "tolerance_grad",
        ),
        (
            Lbfgs {
                tolerance_change: f64::INFINITY,
                ..Lbfgs::default()
            },
            "tolerance_change",
        ),
    ] {
        let e = config.build::<wgtrain::Cpu<f32>>().err().unwrap();
        assert_eq!(named(e), name);
    }
    // A closure whose loss is not finite stops the step with an error.
    let mut lbfgs = Lbfgs::default().build().unwrap();
    let e = lbfgs.step(&mut model, |_| Ok(f64::NAN)).unwrap_err();
    assert!(matches!(e, Error::NonFinite { .. }), "{e}");
}
