//! Adagrad, as `torch.optim.Adagrad`.

use super::{check_eps, check_lr, check_weight_decay, require, OptimizerConfig};
use crate::backend::UpdateMethod;
use crate::Result;

/// `torch.optim.Adagrad` (Duchi et al. 2011):
///
/// ```text
/// sₜ = sₜ₋₁ + gₜ²                (s₀ = initial_accumulator_value)
/// θ  = θ − lrₜ·gₜ / (√sₜ + eps),   lrₜ = lr / (1 + (t − 1)·lr_decay)
/// ```
///
/// The seed's form `θ − η·g/(√r + ε)` is the same with `lr_decay = 0`.
///
/// ```
/// use wgtrain::optim::{Adagrad, Optim, Optimizer, ParamRef};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let g = cpu.upload_f64(1, 1, &[3.0]).unwrap();
/// let mut opt = Optim::new(Adagrad::default()).unwrap();
/// opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)]).unwrap();
/// // s = 9, step = 1e-2 · 3 / (3 + 1e-10).
/// assert!((cpu.download(&w).unwrap()[0] - 0.99).abs() < 1e-9);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adagrad {
    /// Learning rate; default 1e-2.
    pub lr: f64,
    /// Decay of the learning rate per step; default 0.
    pub lr_decay: f64,
    /// Coupled L2 coefficient; default 0.
    pub weight_decay: f64,
    /// Starting value of the sum of squares; default 0.
    pub initial_accumulator_value: f64,
    /// Added to the root of the sum; default 1e-10.
    pub eps: f64,
}

impl Default for Adagrad {
    fn default() -> Self {
        Adagrad {
            lr: 1e-2,
            lr_decay: 0.0,
            weight_decay: 0.0,
            initial_accumulator_value: 0.0,
            eps: 1e-10,
        }
    }
}

impl OptimizerConfig for Adagrad {
    fn validate(&self) -> Result<()> {
        check_lr(self.lr)?;
        require(
            "lr_decay",
            self.lr_decay,
            self.lr_decay >= 0.0 && self.lr_decay.is_finite(),
            "finite and ≥ 0",
        )?;
        check_weight_decay(self.weight_decay)?;
        let v = self.initial_accumulator_value;
        require(
            "initial_accumulator_value",
            v,
            v >= 0.0 && v.is_finite(),
            "finite and ≥ 0",
        )?;
        check_eps(self.eps)
    }

    fn method(&self) -> UpdateMethod {
        UpdateMethod::Adagrad {
            lr_decay: self.lr_decay,
            initial_accumulator_value: self.initial_accumulator_value,
            eps: self.eps,
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
}
