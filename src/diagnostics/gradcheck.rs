//! Gradient check: analytic gradients of any model and loss against central
//! finite differences, both computed in f64 on the CPU backend.

use crate::backend::{Backend, Cpu, Loss, Target};
use crate::{Error, Result, Sequential};

/// The target of a gradient check, as host data.
#[derive(Clone, Debug)]
pub enum HostTarget {
    /// Class labels and the number of classes.
    Labels(Vec<u32>, usize),
    /// Dense targets, `rows × output width`.
    Dense(Vec<f64>),
}

/// The check of one parameter tensor.
#[derive(Clone, Debug)]
pub struct TensorCheck {
    /// State-dict name, e.g. `0.weight`.
    pub name: String,
    /// Worst `|analytic − numeric| / max(|analytic|, |numeric|, FLOOR)` over the
    /// checked elements, with FLOOR = 1e-4 (see [`gradient_check`]).
    pub worst_relative_error: f64,
    /// Elements checked (all of them for small tensors).
    pub checked: usize,
}

/// A gradient check of every parameter tensor.
#[derive(Clone, Debug)]
pub struct GradCheckReport {
    /// One entry per parameter tensor, in state-dict order.
    pub tensors: Vec<TensorCheck>,
}

impl GradCheckReport {
    /// The worst relative error over all tensors.
    pub fn worst(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.worst_relative_error)
            .fold(0.0, f64::max)
    }
}

/// Step of the central difference. With f64 the truncation error is O(h²) ≈
/// 1e-12 and the rounding error ≈ 1e-16/h ≈ 1e-10, both far below the
/// 1e-6 that an analytic mistake produces.
const H: f64 = 1e-6;

/// Gradients smaller than this are compared absolutely: central differences
/// carry about 1e-10 of rounding noise, which would make a gradient that is
/// exactly 0 (a bias in front of a batch norm) look wrong relative to itself.
const FLOOR: f64 = 1e-4;

/// Builds `spec` on `Cpu<f64>` from `seed`, computes the loss of a batch `x`
/// (`rows × input width`) and its analytic gradients, then compares every
/// parameter element (at most `max_per_tensor` of them, evenly spaced) with
/// `(ρ(θ + h) − ρ(θ − h)) / 2h`. Dropout masks are held fixed and batch
/// norm runs in training mode (batch statistics).
///
/// ```
/// use wgtrain::{Sequential, Init, Loss};
/// use wgtrain::diagnostics::{gradient_check, HostTarget};
/// let spec = Sequential::new(3).dense(4, Init::XavierUniform).tanh().dense(2, Init::XavierUniform);
/// let x = [0.1, -0.2, 0.3, 0.5, 0.4, -0.6];
/// let report = gradient_check(&spec, 1, Loss::SoftmaxCrossEntropy, &x, 2, &HostTarget::Labels(vec![0, 1], 2), 100).unwrap();
/// assert!(report.worst() < 1e-6);
/// ```
pub fn gradient_check(
    spec: &Sequential,
    seed: u64,
    loss: Loss,
    x: &[f64],
    rows: usize,
    target: &HostTarget,
    max_per_tensor: usize,
) -> Result<GradCheckReport> {
    let cpu = Cpu::<f64>::new();
    let mut model = spec.build(&cpu, seed)?;
    // Finite differences need the same function at every probe.
    model.freeze_dropout_masks(true);
    let xt = cpu.upload_f64(rows, spec.input_width(), x)?;
    let (labels, dense) = match target {
        HostTarget::Labels(l, classes) => (Some(cpu.indices(l, *classes)?), None),
        HostTarget::Dense(d) => (None, Some(cpu.upload_f64(rows, spec.output_width(), d)?)),
    };
    let target = match (&labels, &dense) {
        (Some(l), _) => Target::Labels(l),
        (_, Some(d)) => Target::Dense(d),
        _ => unreachable!("one of the two was built"),
    };
    let eval = |model: &mut crate::Model<Cpu<f64>>| -> Result<f64> {
        model.forward_backward(&xt, loss, target)?;
        model.loss_value(rows)
    };
    eval(&mut model)?;
    let names = model.parameter_names();
    let mut analytic = Vec::new();
    for name in &names {
        analytic.push(model.gradient(name)?);
    }
    let mut tensors = Vec::new();
    for (name, grad) in names.iter().zip(&analytic) {
        let (_, _, theta) = model.parameter(name)?;
        let stride = theta.len().div_ceil(max_per_tensor.max(1));
        let mut worst: f64 = 0.0;
        let mut checked = 0;
        let mut probe = theta.clone();
        for i in (0..theta.len()).step_by(stride) {
            probe[i] = theta[i] + H;
            model.set_parameter(name, &probe)?;
            let plus = eval(&mut model)?;
            probe[i] = theta[i] - H;
            model.set_parameter(name, &probe)?;
            let minus = eval(&mut model)?;
            probe[i] = theta[i];
            let numeric = (plus - minus) / (2.0 * H);
            if !numeric.is_finite() {
                return Err(Error::NonFinite {
                    what: format!("finite difference of {name}"),
                    index: i,
                    value: numeric,
                });
            }
            let err = (grad[i] - numeric).abs() / grad[i].abs().max(numeric.abs()).max(FLOOR);
            worst = worst.max(err);
            checked += 1;
        }
        model.set_parameter(name, &theta)?;
        tensors.push(TensorCheck {
            name: name.clone(),
            worst_relative_error: worst,
            checked,
        });
    }
    Ok(GradCheckReport { tensors })
}
