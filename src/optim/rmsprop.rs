//! RMSprop, as `torch.optim.RMSprop`.

use super::{check_beta, check_eps, check_lr, check_weight_decay, require, OptimizerConfig};
use crate::backend::UpdateMethod;
use crate::Result;

/// `torch.optim.RMSprop`:
///
/// ```text
/// sₜ = α·sₜ₋₁ + (1 − α)·gₜ²
/// centered: aₜ = aₜ₋₁ + (1 − α)·(gₜ − aₜ₋₁),  den = √(sₜ − aₜ²) + eps
/// else:                                          den = √sₜ + eps
/// eps_inside_sqrt (seed 000's form):             den = √(sₜ + eps), √(sₜ − aₜ² + eps)
/// momentum μ > 0: bₜ = μ·bₜ₋₁ + gₜ/den,  θ = θ − lr·bₜ
/// else:                                  θ = θ − lr·gₜ/den
/// ```
///
/// The seed writes the average as `α·Σ… + (1 − α)·g²`, which is this
/// recursion; its `α` is PyTorch's `alpha`.
///
/// ```
/// use wgtrain::optim::{Optim, Optimizer, ParamRef, RmsProp};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let g = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let mut opt = Optim::new(RmsProp::default()).unwrap();
/// opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)]).unwrap();
/// // s = 0.01, so the step is 1e-2 · 1 / (0.1 + 1e-8) ≈ 0.1.
/// assert!((cpu.download(&w).unwrap()[0] - 0.9).abs() < 1e-6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsProp {
    /// Learning rate; default 1e-2.
    pub lr: f64,
    /// Smoothing constant α in [0, 1); default 0.99.
    pub alpha: f64,
    /// Added to the root of the average; default 1e-8.
    pub eps: f64,
    /// Coupled L2 coefficient; default 0.
    pub weight_decay: f64,
    /// Momentum factor ≥ 0; default 0 (no buffer).
    pub momentum: f64,
    /// Normalise by an estimate of the variance; default false.
    pub centered: bool,
    /// Add `eps` under the square root, as seed 000 writes RMSprop
    /// (`g / √(s + ε)`), instead of after it as PyTorch does (`g / (√s + ε)`);
    /// default false. The seed's form bounds the step by `|g|/√ε` at `s = 0`.
    pub eps_inside_sqrt: bool,
}

impl Default for RmsProp {
    fn default() -> Self {
        RmsProp {
            lr: 1e-2,
            alpha: 0.99,
            eps: 1e-8,
            weight_decay: 0.0,
            momentum: 0.0,
            centered: false,
            eps_inside_sqrt: false,
        }
    }
}

impl OptimizerConfig for RmsProp {
    fn validate(&self) -> Result<()> {
        check_lr(self.lr)?;
        check_beta("alpha", self.alpha)?;
        check_eps(self.eps)?;
        check_weight_decay(self.weight_decay)?;
        require(
            "momentum",
            self.momentum,
            self.momentum >= 0.0 && self.momentum.is_finite(),
            "finite and ≥ 0",
        )
    }

    fn method(&self) -> UpdateMethod {
        UpdateMethod::RmsProp {
            alpha: self.alpha,
            eps: self.eps,
            momentum: self.momentum,
            centered: self.centered,
            eps_inside: self.eps_inside_sqrt,
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
}
