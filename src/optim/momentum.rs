//! The seed's momentum: an exponential moving average of the gradients.

use super::{check_beta, check_lr, check_weight_decay, OptimizerConfig};
use crate::backend::UpdateMethod;
use crate::Result;

/// Gradient descent along an exponential average of the gradients (seed 000,
/// "SGD w/ Momentum"), with optional bias correction:
///
/// ```text
/// vₜ = β·vₜ₋₁ + (1 − β)·gₜ       (v₀ = 0)
/// θ  = θ − lr·vₜ / (1 − βᵗ)       (without correction: θ − lr·vₜ)
/// ```
///
/// PyTorch has no direct equivalent: `SGD(momentum=β, dampening=1−β)` is the
/// same recursion except that PyTorch starts the buffer at `g₁` instead of
/// `(1 − β)·g₁`, which is what the bias correction repairs here.
///
/// ```
/// use wgtrain::optim::{EmaMomentum, Optim, Optimizer, ParamRef};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let g = cpu.upload_f64(1, 1, &[2.0]).unwrap();
/// let mut opt = Optim::new(EmaMomentum { lr: 0.1, ..EmaMomentum::default() }).unwrap();
/// opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)]).unwrap();
/// // v₁ = 0.1·2 = 0.2, corrected 0.2 / (1 − 0.9) = 2: a plain gradient step.
/// assert!((cpu.download(&w).unwrap()[0] - 0.8).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EmaMomentum {
    /// Learning rate; default 1e-2.
    pub lr: f64,
    /// Averaging factor β in [0, 1); default 0.9 (the seed's example).
    pub beta: f64,
    /// Divide by `1 − βᵗ`; default true (the seed adds it).
    pub bias_correction: bool,
    /// Coupled L2 coefficient; default 0.
    pub weight_decay: f64,
}

impl Default for EmaMomentum {
    fn default() -> Self {
        EmaMomentum {
            lr: 1e-2,
            beta: 0.9,
            bias_correction: true,
            weight_decay: 0.0,
        }
    }
}

impl OptimizerConfig for EmaMomentum {
    fn validate(&self) -> Result<()> {
        check_lr(self.lr)?;
        check_beta("beta", self.beta)?;
        check_weight_decay(self.weight_decay)
    }

    fn method(&self) -> UpdateMethod {
        UpdateMethod::EmaMomentum {
            beta: self.beta,
            bias_correction: self.bias_correction,
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
}
