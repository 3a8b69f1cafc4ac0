//! "Babysitting" a network (seed 001): gradient checks against finite
//! differences, the first-step loss check, the regularisation check (the
//! objective with λΩ(θ) must rise above the loss), and the
//! overfit-a-tiny-subset check.

mod gradcheck;

pub use gradcheck::{gradient_check, GradCheckReport, HostTarget, TensorCheck};

use crate::backend::{Backend, Loss, Shaped, Target};
use crate::{Error, Model, Result};

/// Result of [`first_step_loss_check`].
#[derive(Clone, Copy, Debug)]
pub struct FirstLossCheck {
    /// The loss of the freshly initialised model.
    pub loss: f64,
    /// ln C, the loss of a uniform guess over C classes.
    pub expected: f64,
    /// Whether `|loss − ln C| ≤ tolerance · ln C`.
    pub ok: bool,
}

/// Seed 001: a fresh softmax classifier should score about ln C, the loss of
/// a uniform guess. A loss far from it means bad initial scales or a bug.
/// `tolerance` is relative (0.25 is a sensible default).
pub fn first_step_loss_check<B: Backend>(
    model: &mut Model<B>,
    x: &B::Tensor,
    labels: &B::Index,
    tolerance: f64,
) -> Result<FirstLossCheck> {
    let classes = model.spec().output_width();
    model.forward_backward(x, Loss::SoftmaxCrossEntropy, Target::Labels(labels))?;
    let loss = model.loss_value(x.rows())?;
    let expected = (classes as f64).ln();
    Ok(FirstLossCheck {
        loss,
        expected,
        ok: (loss - expected).abs() <= tolerance * expected,
    })
}

/// `Ω(θ) = ½ Σ ‖w‖²` over the weights (dense and conv; biases and batch-norm
/// parameters are exempt, as from weight decay): the penalty whose gradient
/// `λ·w` coupled weight decay adds, so `loss + λ·Ω` is the objective such a
/// run minimises. Summed on the device, one number read back.
pub fn l2_penalty<B: Backend>(model: &mut Model<B>) -> Result<f64> {
    let b = model.backend().clone();
    let mut sum = b.zeros(1, 1)?;
    for p in model.parameters_mut().into_iter().filter(|p| p.is_weight) {
        b.accumulate_sum_squares(p.value, &mut sum)?;
    }
    Ok(0.5 * b.download(&sum)?[0])
}

/// Result of [`regularisation_check`].
#[derive(Clone, Copy, Debug)]
pub struct RegularisationCheck {
    /// The data loss alone.
    pub loss: f64,
    /// Ω(θ), see [`l2_penalty`].
    pub penalty: f64,
    /// `loss + λ·Ω(θ)`: the regularised objective.
    pub objective: f64,
    /// Whether turning the regularisation on raised the reported objective.
    pub ok: bool,
}

/// Seed 001: "turn on regularisation: the loss should increase". The loss
/// of `x` with the penalty `λ·Ω(θ)` added; `ok` when it is above the loss
/// alone. A λ that does not raise it (or a model without weights) says the
/// regularisation is not wired in. λ must be finite and > 0.
///
/// ```
/// use wgtrain::diagnostics::regularisation_check;
/// use wgtrain::{Backend, Cpu, Init, Loss, Sequential, Target};
/// let cpu = Cpu::<f64>::new();
/// let mut model = Sequential::new(3).dense(2, Init::XavierUniform).build(&cpu, 0).unwrap();
/// let (x, y) = (cpu.upload_f64(1, 3, &[1.0, 2.0, 3.0]).unwrap(), cpu.indices(&[1], 2).unwrap());
/// let check = regularisation_check(&mut model, &x, Target::Labels(&y), Loss::SoftmaxCrossEntropy, 1e-2).unwrap();
/// assert!(check.ok && (check.objective - check.loss - 1e-2 * check.penalty).abs() < 1e-15);
/// ```
pub fn regularisation_check<B: Backend>(
    model: &mut Model<B>,
    x: &B::Tensor,
    target: Target<'_, B>,
    loss: Loss,
    lambda: f64,
) -> Result<RegularisationCheck> {
    if !(lambda > 0.0 && lambda.is_finite()) {
        return Err(Error::InvalidParameter {
            name: "regularisation lambda",
            value: lambda,
            allowed: "finite and > 0",
        });
    }
    model.forward_backward(x, loss, target)?;
    let data_loss = model.loss_value(x.rows())?;
    let penalty = l2_penalty(model)?;
    let objective = data_loss + lambda * penalty;
    Ok(RegularisationCheck {
        loss: data_loss,
        penalty,
        objective,
        ok: objective > data_loss,
    })
}

/// Seed 001: with regularisation off, a network must drive the loss on a
/// handful of samples towards zero. Runs `steps` plain gradient-descent steps
/// at `lr` and returns the loss before and after every step (`steps + 1` values).
pub fn overfit_tiny_subset<B: Backend>(
    model: &mut Model<B>,
    x: &B::Tensor,
    target: Target<'_, B>,
    loss: Loss,
    lr: f64,
    steps: usize,
) -> Result<Vec<f64>> {
    let mut history = Vec::with_capacity(steps + 1);
    for step in 0..=steps {
        model.forward_backward(x, loss, target)?;
        let value = model.loss_value(x.rows())?;
        if !value.is_finite() {
            return Err(Error::Diverged {
                epoch: 1,
                step: step + 1,
                what: "the loss".into(),
                value,
            });
        }
        history.push(value);
        if step < steps {
            model.sgd_step(lr)?;
        }
    }
    Ok(history)
}
