//! The optimizer update, one fused pass per (flat) parameter tensor: which
//! rule, with which hyperparameters, and the per-step scalars (bias
//! corrections, decayed learning rates) that both backends compute on the
//! host in `f64` so that they round the same way. All of it is here and in
//! `shaders/optimizer/`:
//!
//! - this file: the rules, their state, their scalars, the check, and the
//!   WGSL constants naming each rule and clipping (generated, so the shader
//!   has no number of its own);
//! - `cpu.rs`: one monomorphised loop per rule; `gpu.rs`: the dispatch and
//!   its parameter struct, and the global squared norm for clipping;
//! - `shaders/optimizer/update.wgsl`: one case per rule;
//! - `tests/optim.rs`: every rule and option against PyTorch.
//!
//! The optimizers users build ([`crate::optim`]) pick a rule and its
//! hyperparameters; they hold no arithmetic.

pub(crate) mod cpu;
pub(crate) mod gpu;

use crate::backend::checks::{check_same, shape_err};
use crate::backend::Shaped;
use crate::{Error, Result};

/// The elementwise rule of an optimizer, with PyTorch's hyperparameter names.
/// The formulas are written out on the optimizers in [`crate::optim`].
///
/// ```
/// use wgtrain::UpdateMethod;
/// let adam = UpdateMethod::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, amsgrad: false };
/// assert_eq!(adam.state_names(), vec!["exp_avg", "exp_avg_sq"]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpdateMethod {
    /// `torch.optim.SGD`: heavy-ball momentum with dampening, optionally Nesterov.
    Sgd {
        /// Momentum factor μ (0 disables the buffer).
        momentum: f64,
        /// Dampening τ of the gradient added to the buffer.
        dampening: f64,
        /// Nesterov's look-ahead form.
        nesterov: bool,
    },
    /// The seed's exponentially averaged momentum `v = β·v + (1−β)·g`.
    EmaMomentum {
        /// Averaging factor β.
        beta: f64,
        /// Divide `v` by `1 − βᵗ`.
        bias_correction: bool,
    },
    /// `torch.optim.Adagrad`.
    Adagrad {
        /// The learning rate at step t is `lr / (1 + (t−1)·lr_decay)`.
        lr_decay: f64,
        /// The value the sum of squares starts from.
        initial_accumulator_value: f64,
        /// Added to the root of the sum of squares.
        eps: f64,
    },
    /// `torch.optim.RMSprop`.
    RmsProp {
        /// Smoothing constant of the squared-gradient average.
        alpha: f64,
        /// Added to the root of the average.
        eps: f64,
        /// Momentum factor (0 disables the buffer).
        momentum: f64,
        /// Normalise by the variance estimate instead of the second moment.
        centered: bool,
        /// `√(s + eps)` (seed 000) instead of `√s + eps` (PyTorch).
        eps_inside: bool,
    },
    /// `torch.optim.Adam` (and `AdamW` with decoupled weight decay).
    Adam {
        /// Decay of the first-moment average.
        beta1: f64,
        /// Decay of the second-moment average.
        beta2: f64,
        /// Added to the bias-corrected root of the second moment.
        eps: f64,
        /// Use the running maximum of the second moment (AMSGrad).
        amsgrad: bool,
    },
}

/// Gradient clipping applied before any regularisation term is added, as
/// `torch.nn.utils.clip_grad_value_` / `clip_grad_norm_` are called before
/// `optimizer.step()`.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub enum GradClip {
    /// No clipping.
    #[default]
    None,
    /// Clamp every gradient element to `[−c, c]`.
    Value(f64),
    /// Scale all gradients by `min(1, max_norm / (‖g‖₂ + 1e−6))`, the norm
    /// taken over every parameter of the step together.
    Norm(f64),
}

/// One step of [`UpdateMethod`] for one parameter tensor, with the
/// regularisation that applies to it.
///
/// ```
/// use wgtrain::{GradClip, UpdateMethod, UpdateRule};
/// let rule = UpdateRule {
///     method: UpdateMethod::Sgd { momentum: 0.9, dampening: 0.0, nesterov: true },
///     lr: 0.1,
///     weight_decay: 1e-4,
///     decoupled_weight_decay: false,
///     l1: 0.0,
///     clip: GradClip::None,
/// };
/// assert_eq!(rule.method.state_names(), vec!["momentum_buffer"]);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UpdateRule {
    /// The elementwise rule.
    pub method: UpdateMethod,
    /// The learning rate at this step (after any schedule).
    pub lr: f64,
    /// L2 coefficient λ: `g ← g + λ·θ` (PyTorch's `weight_decay`), or with
    /// `decoupled_weight_decay`, `θ ← θ·(1 − lr·λ)` (AdamW).
    pub weight_decay: f64,
    /// Apply `weight_decay` to the parameter directly instead of the gradient.
    pub decoupled_weight_decay: bool,
    /// L1 coefficient: `g ← g + l1·sign(θ)` (the subgradient 0 at θ = 0).
    pub l1: f64,
    /// Clipping of the raw gradient.
    pub clip: GradClip,
}

/// The per-step constants of a rule, in the form both backends use. Computed
/// in `f64` once per step, then rounded to the backend's scalar.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StepScalars {
    /// 1 at the first step: SGD's buffer starts as the gradient itself.
    pub first: bool,
    /// The multiplier of the final update direction: `lr`, `lr/(1−βᵗ)`,
    /// `lr/(1−β₁ᵗ)` or Adagrad's decayed rate.
    pub step_size: f64,
    /// Coupled L2 coefficient (0 when decoupled).
    pub weight_decay: f64,
    /// `1 − lr·λ` when decoupled, else 1.
    pub decay: f64,
    pub l1: f64,
    /// The clip value or the maximum norm.
    pub clip: f64,
    /// μ (SGD, RMSprop momentum), β (EMA), α (RMSprop), β₁ (Adam).
    pub a: f64,
    /// `1 − dampening` (SGD), `1 − β`, `1 − α`, `1 − β₁`.
    pub a_c: f64,
    /// RMSprop's momentum, Adam's β₂.
    pub b: f64,
    /// `1 − β₂` (Adam); RMSprop's ε under the root (0 in PyTorch's form).
    pub b_c: f64,
    pub eps: f64,
    /// Adam: `√(1 − β₂ᵗ)`.
    pub bc2_sqrt: f64,
}

impl UpdateMethod {
    /// The names of the state tensors this rule keeps per parameter, in the
    /// order [`Backend::optimizer_update`](super::Backend::optimizer_update)
    /// expects them (PyTorch's `state_dict` names).
    pub fn state_names(&self) -> Vec<&'static str> {
        self.slots()
            .iter()
            .flatten()
            .map(|(name, _)| *name)
            .collect()
    }

    /// The value each state tensor starts from, in [`Self::state_names`] order.
    pub fn state_init(&self) -> Vec<f64> {
        self.slots().iter().flatten().map(|(_, v)| *v).collect()
    }

    /// The three fixed state positions of the kernels, `None` where unused.
    pub(crate) fn slots(&self) -> [Option<(&'static str, f64)>; 3] {
        match *self {
            UpdateMethod::Sgd { momentum, .. } => [
                (momentum != 0.0).then_some(("momentum_buffer", 0.0)),
                None,
                None,
            ],
            UpdateMethod::EmaMomentum { .. } => [Some(("exp_avg", 0.0)), None, None],
            UpdateMethod::Adagrad {
                initial_accumulator_value,
                ..
            } => [Some(("sum", initial_accumulator_value)), None, None],
            UpdateMethod::RmsProp {
                momentum, centered, ..
            } => [
                Some(("square_avg", 0.0)),
                centered.then_some(("grad_avg", 0.0)),
                (momentum > 0.0).then_some(("momentum_buffer", 0.0)),
            ],
            UpdateMethod::Adam { amsgrad, .. } => [
                Some(("exp_avg", 0.0)),
                Some(("exp_avg_sq", 0.0)),
                amsgrad.then_some(("max_exp_avg_sq", 0.0)),
            ],
        }
    }

    /// The code of this rule in the kernel (`RULE`), named in WGSL by the
    /// constant [`wgsl_constants`] gives it.
    pub(crate) fn code(&self) -> u32 {
        self.named_code().1
    }

    /// `(WGSL constant, code)` of this rule.
    fn named_code(&self) -> (&'static str, u32) {
        match self {
            UpdateMethod::Sgd { .. } => ("RULE_SGD", 0),
            UpdateMethod::EmaMomentum { .. } => ("RULE_EMA_MOMENTUM", 1),
            UpdateMethod::Adagrad { .. } => ("RULE_ADAGRAD", 2),
            UpdateMethod::RmsProp { .. } => ("RULE_RMSPROP", 3),
            UpdateMethod::Adam { .. } => ("RULE_ADAM", 4),
        }
    }

    /// One rule of each kind, for the generated constants and the tests.
    pub(crate) fn kinds() -> [UpdateMethod; 5] {
        [
            UpdateMethod::Sgd {
                momentum: 0.0,
                dampening: 0.0,
                nesterov: false,
            },
            UpdateMethod::EmaMomentum {
                beta: 0.9,
                bias_correction: false,
            },
            UpdateMethod::Adagrad {
                lr_decay: 0.0,
                initial_accumulator_value: 0.0,
                eps: 1e-10,
            },
            UpdateMethod::RmsProp {
                alpha: 0.99,
                eps: 1e-8,
                momentum: 0.0,
                centered: false,
                eps_inside: false,
            },
            UpdateMethod::Adam {
                beta1: 0.9,
                beta2: 0.999,
                eps: 1e-8,
                amsgrad: false,
            },
        ]
    }

    /// The kernel's switches `(FLAG, MOMENTUM)`: FLAG is Nesterov, centred or
    /// AMSGrad depending on the rule (the EMA's bias correction lives in the
    /// step size); MOMENTUM says a momentum buffer is kept.
    pub(crate) fn switches(&self) -> (bool, bool) {
        match *self {
            UpdateMethod::Sgd {
                nesterov, momentum, ..
            } => (nesterov, momentum != 0.0),
            UpdateMethod::EmaMomentum { .. } | UpdateMethod::Adagrad { .. } => (false, false),
            UpdateMethod::RmsProp {
                centered, momentum, ..
            } => (centered, momentum > 0.0),
            UpdateMethod::Adam { amsgrad, .. } => (amsgrad, false),
        }
    }
}

impl GradClip {
    /// The code of this clipping in the kernel (`CLIP`).
    pub(crate) fn code(&self) -> u32 {
        self.named_code().1
    }

    /// `(WGSL constant, code)` of this clipping.
    fn named_code(&self) -> (&'static str, u32) {
        match self {
            GradClip::None => ("CLIP_NONE", 0),
            GradClip::Value(_) => ("CLIP_VALUE", 1),
            GradClip::Norm(_) => ("CLIP_NORM", 2),
        }
    }
}

/// The WGSL constants naming every rule and clipping by its code, placed
/// before shaders/optimizer/update.wgsl: the shader switches on names, and
/// the numbers come from the exhaustive matches above alone.
pub(crate) fn wgsl_constants() -> String {
    let clips = [GradClip::None, GradClip::Value(1.0), GradClip::Norm(1.0)];
    let rules = UpdateMethod::kinds();
    let lines: Vec<String> = rules
        .iter()
        .map(|m| m.named_code())
        .chain(clips.iter().map(|c| c.named_code()))
        .map(|(name, code)| format!("const {name}: u32 = {code}u;"))
        .collect();
    format!(
        "// Generated by ops::optimizer::wgsl_constants.\n{}\n",
        lines.join("\n")
    )
}

impl UpdateRule {
    /// The constants of step `step` (1-based, as PyTorch counts).
    pub(crate) fn scalars(&self, step: u64) -> StepScalars {
        let t = step as f64;
        let (weight_decay, decay) = if self.decoupled_weight_decay {
            (0.0, 1.0 - self.lr * self.weight_decay)
        } else {
            (self.weight_decay, 1.0)
        };
        let clip = match self.clip {
            GradClip::None => 0.0,
            GradClip::Value(c) | GradClip::Norm(c) => c,
        };
        let base = StepScalars {
            first: step == 1,
            step_size: self.lr,
            weight_decay,
            decay,
            l1: self.l1,
            clip,
            ..Default::default()
        };
        match self.method {
            UpdateMethod::Sgd {
                momentum,
                dampening,
                ..
            } => StepScalars {
                a: momentum,
                a_c: 1.0 - dampening,
                ..base
            },
            UpdateMethod::EmaMomentum {
                beta,
                bias_correction,
            } => {
                let step_size = if bias_correction {
                    self.lr / (1.0 - beta.powf(t))
                } else {
                    self.lr
                };
                StepScalars {
                    step_size,
                    a: beta,
                    a_c: 1.0 - beta,
                    ..base
                }
            }
            UpdateMethod::Adagrad { lr_decay, eps, .. } => StepScalars {
                step_size: self.lr / (1.0 + (t - 1.0) * lr_decay),
                eps,
                ..base
            },
            UpdateMethod::RmsProp {
                alpha,
                eps,
                momentum,
                eps_inside,
                ..
            } => StepScalars {
                a: alpha,
                a_c: 1.0 - alpha,
                b: momentum,
                // The denominator is √(s + b_c) + eps: one of the two is ε.
                b_c: if eps_inside { eps } else { 0.0 },
                eps: if eps_inside { 0.0 } else { eps },
                ..base
            },
            UpdateMethod::Adam {
                beta1, beta2, eps, ..
            } => StepScalars {
                step_size: self.lr / (1.0 - beta1.powf(t)),
                a: beta1,
                a_c: 1.0 - beta1,
                b: beta2,
                b_c: 1.0 - beta2,
                eps,
                bc2_sqrt: (1.0 - beta2.powf(t)).sqrt(),
                ..base
            },
        }
    }
}

/// Checks the operands of an optimizer update.
pub(crate) fn check<T: Shaped>(
    rule: &UpdateRule,
    step: u64,
    param: &T,
    grad: &T,
    state: &[T],
    grad_sq_norm: Option<&T>,
) -> Result<()> {
    const OP: &str = "optimizer_update";
    check_same(OP, "gradient vs parameter", grad, param)?;
    let names = rule.method.state_names();
    if state.len() != names.len() {
        return Err(shape_err(
            OP,
            format!(
                "{:?} keeps {} state tensors {names:?}, got {}",
                rule.method,
                names.len(),
                state.len()
            ),
        ));
    }
    for (s, name) in state.iter().zip(&names) {
        check_same(OP, name, s, param)?;
    }
    if step == 0 {
        return Err(Error::InvalidParameter {
            name: "step",
            value: 0.0,
            allowed: "at least 1 (steps count from 1)",
        });
    }
    match (rule.clip, grad_sq_norm) {
        (GradClip::Norm(_), None) => Err(shape_err(
            OP,
            "clipping by norm needs the 1x1 squared gradient norm".into(),
        )),
        (GradClip::Norm(_), Some(n)) if n.len() != 1 => Err(shape_err(
            OP,
            format!(
                "the squared gradient norm must be 1x1, got {}",
                n.shape_str()
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every rule's and clipping's constant is generated once, with its own
    /// code, and the shader has a case (or a test) for each.
    #[test]
    fn every_rule_and_clipping_is_named_in_the_shader() {
        let wgsl = include_str!("../../../shaders/optimizer/update.wgsl");
        let constants = wgsl_constants();
        let rules = UpdateMethod::kinds();
        for (i, m) in rules.iter().enumerate() {
            let (name, code) = m.named_code();
            assert_eq!(code as usize, i, "{name}");
            assert!(constants.contains(&format!("const {name}: u32 = {code}u;")));
            assert!(
                wgsl.contains(&format!("case {name}")),
                "update.wgsl has case {name}"
            );
        }
        for clip in [GradClip::Value(1.0), GradClip::Norm(1.0)] {
            let (name, _) = clip.named_code();
            assert!(
                wgsl.contains(&format!("CLIP == {name}")),
                "update.wgsl tests {name}"
            );
        }
        assert!(
            !wgsl.contains("case 0u") && !wgsl.contains("CLIP == 1u"),
            "no bare codes"
        );
    }
}
