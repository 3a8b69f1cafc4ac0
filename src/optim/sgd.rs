//! Stochastic gradient descent with momentum, as `torch.optim.SGD`.

use super::{check_lr, check_weight_decay, require, OptimizerConfig};
use crate::backend::UpdateMethod;
use crate::Result;

/// `torch.optim.SGD`. With gradient `g` (after clipping, L1 and
/// `g += weight_decay·θ`), momentum μ and dampening τ:
///
/// ```text
/// b₁ = g₁                        (PyTorch starts the buffer at the gradient)
/// bₜ = μ·bₜ₋₁ + (1 − τ)·gₜ
/// d  = gₜ + μ·bₜ if nesterov, else bₜ   (d = gₜ when μ = 0)
/// θ  = θ − lr·d
/// ```
///
/// The seed's form `u = γ·u − η·g; θ = θ + u` is the same rule with τ = 0
/// and the learning rate folded into the buffer: it differs only when η
/// changes between steps, and in starting from `u = 0` (so PyTorch's first
/// step equals the seed's). Its Nesterov form evaluates the gradient at the
/// look-ahead point; PyTorch's (used here) is Sutskever's reformulation in
/// terms of the current parameters, which needs no second gradient.
///
/// ```
/// use wgtrain::optim::{Optim, Optimizer, ParamRef, Sgd};
/// use wgtrain::{Backend, Cpu};
/// let cpu = Cpu::<f64>::new();
/// let mut w = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let g = cpu.upload_f64(1, 1, &[1.0]).unwrap();
/// let mut opt = Optim::new(Sgd { lr: 0.1, momentum: 0.9, ..Sgd::default() }).unwrap();
/// for _ in 0..2 {
///     opt.step(&cpu, &mut [ParamRef::new("w", &mut w, &g)]).unwrap();
/// }
/// // b₁ = 1, θ₁ = 0.9; b₂ = 0.9 + 1 = 1.9, θ₂ = 0.9 − 0.19.
/// assert!((cpu.download(&w).unwrap()[0] - 0.71).abs() < 1e-12);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sgd {
    /// Learning rate; default 1e-3 (PyTorch ≥ 2.2).
    pub lr: f64,
    /// Momentum factor μ ≥ 0; default 0 (no buffer).
    pub momentum: f64,
    /// Dampening τ in [0, 1]; default 0.
    pub dampening: f64,
    /// Coupled L2 coefficient; default 0.
    pub weight_decay: f64,
    /// Nesterov momentum (needs μ > 0 and τ = 0); default false.
    pub nesterov: bool,
}

impl Default for Sgd {
    fn default() -> Self {
        Sgd {
            lr: 1e-3,
            momentum: 0.0,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
        }
    }
}

impl OptimizerConfig for Sgd {
    fn validate(&self) -> Result<()> {
        check_lr(self.lr)?;
        require(
            "momentum",
            self.momentum,
            self.momentum >= 0.0 && self.momentum.is_finite(),
            "finite and ≥ 0",
        )?;
        require(
            "dampening",
            self.dampening,
            (0.0..=1.0).contains(&self.dampening),
            "in [0, 1]",
        )?;
        check_weight_decay(self.weight_decay)?;
        require(
            "nesterov",
            1.0,
            !self.nesterov || (self.momentum > 0.0 && self.dampening == 0.0),
            "used only with momentum > 0 and dampening = 0",
        )
    }

    fn method(&self) -> UpdateMethod {
        UpdateMethod::Sgd {
            momentum: self.momentum,
            dampening: self.dampening,
            nesterov: self.nesterov,
        }
    }

    fn lr(&self) -> f64 {
        self.lr
    }

    fn weight_decay(&self) -> f64 {
        self.weight_decay
    }
}
