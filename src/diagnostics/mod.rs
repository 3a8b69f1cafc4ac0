//! "Babysitting" a network (seed 001): gradient checks against finite
//! differences, the first-step loss check, and the overfit-a-tiny-subset check.

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
