//! Full-batch training (seeds 000 and 001: gradient descent on the whole
//! training set, and the quasi-Newton methods that need it): the loss and
//! gradient over every sample, in chunks that fit the device, as the
//! closure of [`LbfgsOptimizer::step`](crate::optim::LbfgsOptimizer::step);
//! and plain gradient descent "until convergence", stopped by the gradient
//! norm or the change of the loss.

use super::resident::{Resident, Slice};
use crate::backend::{Backend, Loss};
use crate::data::Dataset;
use crate::optim::Optimizer;
use crate::{Error, Model, Result};

/// A data set on the device, evaluated whole: the mean loss over all its
/// samples and, left in the model, the gradient of that mean.
///
/// Each chunk of at most `chunk_rows` rows is one training pass
/// ([`Model::accumulate_backward`] weighted by its share of the rows), so
/// the gradient is the whole set's (up to rounding) whatever the chunk
/// size; with batch norm each chunk uses its own statistics, and dropout
/// is on, as in any training pass.
///
/// ```
/// use wgtrain::optim::{Lbfgs, LineSearch};
/// use wgtrain::train::FullBatch;
/// use wgtrain::{Cpu, Dataset, Init, Loss, Sequential};
/// let cpu = Cpu::<f64>::new();
/// let data = Dataset::classification(vec![0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0], 2, vec![0, 0, 1, 1], 2).unwrap();
/// let mut model = Sequential::new(2).dense(8, Init::XavierUniform).tanh().dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
/// let mut whole = FullBatch::new(&cpu, &data, Loss::SoftmaxCrossEntropy, 3).unwrap();
/// let mut lbfgs = Lbfgs { line_search: Some(LineSearch::StrongWolfe), ..Lbfgs::default() }.build().unwrap();
/// let first = lbfgs.step(&mut model, |m| whole.loss_and_gradient(m)).unwrap();
/// assert!(whole.loss_and_gradient(&mut model).unwrap() < first / 10.0);
/// ```
pub struct FullBatch<B: Backend> {
    data: Resident<B>,
    slices: Vec<Slice>,
    rows: usize,
    loss: Loss,
    sum: B::Tensor,
}

impl<B: Backend> FullBatch<B> {
    /// Uploads `data`, to be evaluated in chunks of at most `chunk_rows`
    /// rows with `loss`.
    pub fn new(b: &B, data: &Dataset, loss: Loss, chunk_rows: usize) -> Result<Self> {
        loss.validate()?;
        if chunk_rows == 0 {
            return Err(Error::InvalidParameter {
                name: "chunk_rows",
                value: 0.0,
                allowed: "at least 1",
            });
        }
        let mut resident = Resident::upload(b, data)?;
        let slices = resident.epoch(b, chunk_rows, false, 0)?;
        Ok(FullBatch {
            data: resident,
            slices,
            rows: data.len(),
            loss,
            sum: b.zeros(1, 1)?,
        })
    }

    /// The samples evaluated.
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether there are none (never: a [`Dataset`] has rows).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The mean loss over every sample at the model's parameters, read back
    /// once; the gradient of that mean is left in the model, as after
    /// `loss.backward()` on the whole set.
    pub fn loss_and_gradient(&mut self, model: &mut Model<B>) -> Result<f64> {
        let b = model.backend().clone();
        b.fill(&mut self.sum, 0.0)?;
        model.zero_grad()?;
        for &s in &self.slices {
            let (x, target) = self.data.gather(&b, s)?;
            let share = s.rows as f64 / self.rows as f64;
            model.accumulate_backward(x, self.loss, target, share)?;
            let loss = model.loss_tensor(s.rows).expect("set by the pass");
            b.axpy(share, loss, &mut self.sum)?;
        }
        Ok(b.download(&self.sum)?[0])
    }
}

/// When [`descend_until_converged`] stops.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Convergence {
    /// At most this many updates.
    pub max_iterations: usize,
    /// Stop when the gradient's L2 norm is at most this.
    pub grad_norm: f64,
    /// Stop when the loss changed by at most this since the last update.
    pub loss_change: f64,
}

impl Default for Convergence {
    fn default() -> Self {
        Convergence {
            max_iterations: 1000,
            grad_norm: 1e-5,
            loss_change: 1e-9,
        }
    }
}

/// Which rule of [`Convergence`] ended the descent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopReason {
    /// The gradient norm fell to `grad_norm`.
    GradientNorm,
    /// The loss changed by at most `loss_change`.
    LossChange,
    /// `max_iterations` updates were taken.
    MaxIterations,
}

/// What [`descend_until_converged`] did.
#[derive(Clone, Debug, PartialEq)]
pub struct Converged {
    /// Updates taken.
    pub iterations: usize,
    /// The full-batch loss before each update, and at the end.
    pub losses: Vec<f64>,
    /// The gradient norm at the end.
    pub grad_norm: f64,
    /// Why it stopped.
    pub reason: StopReason,
}

/// Full-batch gradient descent until convergence: evaluate the loss and
/// gradient over the whole set, stop if a rule of `rule` holds, else take
/// one step of `opt` (plain [`Sgd`](crate::optim::Sgd) is the textbook
/// method; any optimizer works), and repeat.
///
/// ```
/// use wgtrain::optim::{Optim, Sgd};
/// use wgtrain::train::{descend_until_converged, Convergence, FullBatch, StopReason};
/// use wgtrain::{Cpu, Dataset, Init, Loss, Sequential};
/// let cpu = Cpu::<f64>::new();
/// // y = 3x − 1: least squares is convex, so descent converges.
/// let data = Dataset::regression(vec![0.0, 1.0, 2.0, 3.0], 1, vec![-1.0, 2.0, 5.0, 8.0], 1).unwrap();
/// let mut model = Sequential::new(1).dense(1, Init::XavierUniform).build(&cpu, 0).unwrap();
/// let mut whole = FullBatch::new(&cpu, &data, Loss::SquaredError, 4).unwrap();
/// let mut sgd = Optim::new(Sgd { lr: 0.1, ..Sgd::default() }).unwrap();
/// // Stop on the gradient norm alone.
/// let rule = Convergence { grad_norm: 1e-6, loss_change: 0.0, ..Convergence::default() };
/// let done = descend_until_converged(&mut model, &mut sgd, &mut whole, &rule).unwrap();
/// assert_eq!(done.reason, StopReason::GradientNorm);
/// assert!((model.parameter("0.weight").unwrap().2[0] - 3.0).abs() < 1e-4);
/// ```
pub fn descend_until_converged<B: Backend, O: Optimizer<B>>(
    model: &mut Model<B>,
    opt: &mut O,
    data: &mut FullBatch<B>,
    rule: &Convergence,
) -> Result<Converged> {
    if rule.max_iterations == 0 {
        return Err(Error::InvalidParameter {
            name: "max_iterations",
            value: 0.0,
            allowed: "at least 1",
        });
    }
    for (name, v) in [
        ("grad_norm", rule.grad_norm),
        ("loss_change", rule.loss_change),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            return Err(Error::InvalidParameter {
                name,
                value: v,
                allowed: "finite and ≥ 0",
            });
        }
    }
    let b = model.backend().clone();
    let mut losses = Vec::new();
    let mut iterations = 0;
    loop {
        let loss = data.loss_and_gradient(model)?;
        if !loss.is_finite() {
            return Err(Error::Diverged {
                epoch: 0,
                step: iterations,
                what: "the full-batch loss".into(),
                value: loss,
            });
        }
        let mut sq = b.zeros(1, 1)?;
        for p in model.parameters_mut() {
            b.accumulate_sum_squares(p.grad, &mut sq)?;
        }
        let grad_norm = b.download(&sq)?[0].sqrt();
        let change = losses.last().map(|prev: &f64| (prev - loss).abs());
        losses.push(loss);
        let reason = if grad_norm <= rule.grad_norm {
            Some(StopReason::GradientNorm)
        } else if change.is_some_and(|c| c <= rule.loss_change) {
            Some(StopReason::LossChange)
        } else if iterations == rule.max_iterations {
            Some(StopReason::MaxIterations)
        } else {
            None
        };
        if let Some(reason) = reason {
            return Ok(Converged {
                iterations,
                losses,
                grad_norm,
                reason,
            });
        }
        opt.step_model(model)?;
        iterations += 1;
    }
}
