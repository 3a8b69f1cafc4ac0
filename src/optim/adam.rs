//! Adam and AdamW, as `torch.optim.Adam` and `torch.optim.AdamW`.

use super::{check_beta, check_eps, check_lr, check_weight_decay, OptimizerConfig};
use crate::backend::UpdateMethod;
use crate::Result;

/// `torch.optim.Adam` (Kingma & Ba 2014), bias-corrected as PyTorch does:
///
/// ```text
/// mₜ = β₁·mₜ₋₁ + (1 − β₁)·gₜ,   vₜ = β₂·vₜ₋₁ + (1 − β₂)·gₜ²
/// v̂ = max(v̂, vₜ) with amsgrad, else vₜ
/// θ  = θ − (lr / (1 − β₁ᵗ)) · mₜ / (√v̂ / √(1 − β₂ᵗ) + eps)
/// ```
///
/// The seed writes `m̂/(√v̂ + ε)` with both moments corrected; PyTorch (and
/// this) adds `eps` after dividing by `√(1 − β₂ᵗ)`, which is the same formula.
/// `weight_decay` is added to the gradient (L2); see [`AdamW`] for the
/// decoupled form.
///
/// ```
/// use wgtrain::optim::{Adam, Optim, Optimizer, ParamRef};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 2, &[1.0, 1.0]).unwrap();
/// let g = cpu.upload_f64(1, 2, &[5.0, -0.01]).unwrap();
/// let mut opt = Optim::new(Adam { lr: 0.1, ..Adam::default() }).unwrap();
/// opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)]).unwrap();
/// // The first step is lr·g/(|g| + eps): about lr against the gradient's sign.
/// let w1 = cpu.download(&w).unwrap();
/// assert!((w1[0] - 0.9).abs() < 1e-7 && (w1[1] - 1.1).abs() < 1e-6);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Adam {
    /// Learning rate; default 1e-3.
    pub lr: f64,
    /// (β₁, β₂), each in [0, 1); default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the corrected root of the second moment; default 1e-8.
    pub eps: f64,
    /// Coupled L2 coefficient; default 0.
    pub weight_decay: f64,
    /// Use the running maximum of the second moment; default false.
    pub amsgrad: bool,
}

impl Default for Adam {
    fn default() -> Self {
        Adam {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
            amsgrad: false,
        }
    }
}

/// `torch.optim.AdamW` (Loshchilov & Hutter 2017): [`Adam`] with the weight
/// decay applied to the parameter, not the gradient, before the Adam step:
/// `θ ← θ·(1 − lr·weight_decay)`.
///
/// ```
/// use wgtrain::optim::{AdamW, Optim, Optimizer, ParamRef};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 1, &[2.0]).unwrap();
/// let g = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let mut opt = Optim::new(AdamW { lr: 0.1, ..AdamW::default() }).unwrap();
/// opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)]).unwrap();
/// // 2·(1 − 0.1·0.01) − 0.1·1/(1 + 1e-8).
/// assert!((cpu.download(&w).unwrap()[0] - 1.898).abs() < 1e-7);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamW {
    /// Learning rate; default 1e-3.
    pub lr: f64,
    /// (β₁, β₂), each in [0, 1); default (0.9, 0.999).
    pub betas: (f64, f64),
    /// Added to the corrected root of the second moment; default 1e-8.
    pub eps: f64,
    /// Decoupled decay coefficient; default 1e-2.
    pub weight_decay: f64,
    /// Use the running maximum of the second moment; default false.
    pub amsgrad: bool,
}

impl Default for AdamW {
    fn default() -> Self {
        AdamW {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 1e-2,
            amsgrad: false,
        }
    }
}

fn validate(lr: f64, betas: (f64, f64), eps: f64, weight_decay: f64) -> Result<()> {
    check_lr(lr)?;
    check_beta("beta1", betas.0)?;
    check_beta("beta2", betas.1)?;
    check_eps(eps)?;
    check_weight_decay(weight_decay)
}

fn method(betas: (f64, f64), eps: f64, amsgrad: bool) -> UpdateMethod {
    UpdateMethod::Adam {
        beta1: betas.0,
        beta2: betas.1,
        eps,
        amsgrad,
    }
}

impl OptimizerConfig for Adam {
    fn validate(&self) -> Result<()> {
        validate(self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn method(&self) -> UpdateMethod {
        method(self.betas, self.eps, self.amsgrad)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
}

impl OptimizerConfig for AdamW {
    fn validate(&self) -> Result<()> {
        validate(self.lr, self.betas, self.eps, self.weight_decay)
    }

    fn method(&self) -> UpdateMethod {
        method(self.betas, self.eps, self.amsgrad)
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }

    fn decoupled_weight_decay(&self) -> bool {
        true
    }
}
