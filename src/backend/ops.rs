//! The vocabulary of the backend interface: which activation, which loss,
//! which matmul form. Shape checks live here too, so both backends reject
//! exactly the same inputs with exactly the same errors.

use super::{Backend, IndexVector, Shaped};
use crate::{Error, Result};
use num_traits::Float;

/// An elementwise nonlinearity σ and its derivative σ'.
///
/// ```
/// use wgtrain::Activation;
/// assert_eq!(Activation::Relu.apply(-2.0_f64), 0.0);
/// assert!((Activation::Sigmoid.derivative(0.0_f64) - 0.25).abs() < 1e-15);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Activation {
    /// `x`.
    Identity,
    /// `1 / (1 + e^(−x))`.
    Sigmoid,
    /// `tanh(x)`.
    Tanh,
    /// LeCun's `1.7159 · tanh(2x/3)`.
    ScaledTanh,
    /// `tanh(x) + β·x`, which keeps a gradient of at least β in saturation.
    TanhPlusLinear {
        /// The slope β of the linear term.
        beta: f32,
    },
    /// `max(0, x)`.
    Relu,
    /// `x` for `x > 0`, `slope · x` otherwise (PyTorch's default slope is 0.01).
    LeakyRelu {
        /// The slope for negative inputs.
        slope: f32,
    },
}

/// LeCun's scaled tanh constants.
const SCALED_TANH_A: f64 = 1.7159;
const SCALED_TANH_B: f64 = 2.0 / 3.0;

impl Activation {
    /// The code of this activation in the WGSL kernels (`ACT` override constant).
    pub(crate) fn code(self) -> u32 {
        match self {
            Activation::Identity => 0,
            Activation::Sigmoid => 1,
            Activation::Tanh => 2,
            Activation::ScaledTanh => 3,
            Activation::TanhPlusLinear { .. } => 4,
            Activation::Relu => 5,
            Activation::LeakyRelu { .. } => 6,
        }
    }

    /// The activation's parameter (β or the slope), 0 for the others.
    pub(crate) fn param(self) -> f32 {
        match self {
            Activation::TanhPlusLinear { beta } => beta,
            Activation::LeakyRelu { slope } => slope,
            _ => 0.0,
        }
    }

    /// σ(x), the reference formula both backends are checked against.
    pub fn apply<T: Float>(self, x: T) -> T {
        let c = |v: f64| T::from(v).unwrap();
        match self {
            Activation::Identity => x,
            // Two branches so that neither exp overflows: the stable sigmoid.
            Activation::Sigmoid => {
                if x >= T::zero() {
                    T::one() / (T::one() + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (T::one() + e)
                }
            }
            Activation::Tanh => x.tanh(),
            Activation::ScaledTanh => c(SCALED_TANH_A) * (c(SCALED_TANH_B) * x).tanh(),
            Activation::TanhPlusLinear { beta } => x.tanh() + c(beta as f64) * x,
            Activation::Relu => x.max(T::zero()),
            Activation::LeakyRelu { slope } => {
                if x > T::zero() {
                    x
                } else {
                    c(slope as f64) * x
                }
            }
        }
    }

    /// σ'(x) at the activation's input `x`.
    pub fn derivative<T: Float>(self, x: T) -> T {
        let c = |v: f64| T::from(v).unwrap();
        match self {
            Activation::Identity => T::one(),
            Activation::Sigmoid => {
                let s = self.apply(x);
                s * (T::one() - s)
            }
            Activation::Tanh => {
                let t = x.tanh();
                T::one() - t * t
            }
            Activation::ScaledTanh => {
                let t = (c(SCALED_TANH_B) * x).tanh();
                c(SCALED_TANH_A * SCALED_TANH_B) * (T::one() - t * t)
            }
            Activation::TanhPlusLinear { beta } => {
                let t = x.tanh();
                T::one() - t * t + c(beta as f64)
            }
            // The subgradient at 0 is taken as 0, as PyTorch does.
            Activation::Relu => {
                if x > T::zero() {
                    T::one()
                } else {
                    T::zero()
                }
            }
            Activation::LeakyRelu { slope } => {
                if x > T::zero() {
                    T::one()
                } else {
                    c(slope as f64)
                }
            }
        }
    }

    /// All activations with typical parameters, for tests and examples.
    pub fn all() -> [Activation; 7] {
        [
            Activation::Identity,
            Activation::Sigmoid,
            Activation::Tanh,
            Activation::ScaledTanh,
            Activation::TanhPlusLinear { beta: 0.1 },
            Activation::Relu,
            Activation::LeakyRelu { slope: 0.01 },
        ]
    }
}

/// Which form of matrix product, and what to fuse into its epilogue.
///
/// `out = act(op(A)·op(B) + bias)` where `op(A) = Aᵀ` if `transpose_a`.
/// `bias`, if given, is a `1 × n` row added to every row of the product.
///
/// ```
/// use wgtrain::{MatmulSpec, Activation, CpuTensor};
/// // Z = X·Wᵀ + b, then ReLU: the forward pass of a dense layer.
/// let spec: MatmulSpec<'_, CpuTensor<f32>> =
///     MatmulSpec { transpose_b: true, act: Activation::Relu, ..Default::default() };
/// assert!(!spec.transpose_a);
/// ```
#[derive(Debug)]
pub struct MatmulSpec<'a, T> {
    /// Use `Aᵀ` (A is stored `k × m`).
    pub transpose_a: bool,
    /// Use `Bᵀ` (B is stored `n × k`).
    pub transpose_b: bool,
    /// A `1 × n` row added to every row of the product.
    pub bias: Option<&'a T>,
    /// Applied after the bias.
    pub act: Activation,
    /// Multiplies the result elementwise by `act'(z)` with `z` a tensor
    /// shaped like the output: the backward pass of the activation before a
    /// dense layer, fused into the product that computes `δ·W`.
    pub gate: Option<(Activation, &'a T)>,
}

impl<T> Default for MatmulSpec<'_, T> {
    fn default() -> Self {
        MatmulSpec {
            transpose_a: false,
            transpose_b: false,
            bias: None,
            act: Activation::Identity,
            gate: None,
        }
    }
}

impl<T> Clone for MatmulSpec<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for MatmulSpec<'_, T> {}

/// A reduction of all elements to one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// Σ x.
    Sum,
    /// Σ x / len.
    Mean,
    /// max x.
    Max,
}

/// A loss: summed over the output columns, averaged over the batch rows.
///
/// | ours | target | PyTorch equivalent |
/// |---|---|---|
/// | `SoftmaxCrossEntropy` | labels or soft targets | `CrossEntropyLoss()` |
/// | `SquaredError` ½‖y−a‖² | dense | `MSELoss(reduction='sum') / (2N)` |
/// | `L1` ‖y−a‖₁ | dense | `L1Loss(reduction='sum') / N` |
/// | `Hinge` Σ_{c≠y} max(0, a_c − a_y + 1) | labels | `MultiMarginLoss() · C` |
/// | `SquaredHinge` Σ_{c≠y} max(0, a_c − a_y + 1)² | labels | `MultiMarginLoss(p=2) · C` |
/// | `BinaryCrossEntropy` on logits | dense in \[0, 1\] | `BCEWithLogitsLoss(reduction='sum') / N` |
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Loss {
    /// Softmax then cross-entropy, computed together with a stable log-sum-exp.
    SoftmaxCrossEntropy,
    /// ½‖y − a‖², the seeds' squared error.
    SquaredError,
    /// ‖y − a‖₁, with the subgradient 0 at equality.
    L1,
    /// The multi-class SVM loss with margin 1.
    Hinge,
    /// The squared multi-class SVM loss with margin 1.
    SquaredHinge,
    /// Sigmoid then binary cross-entropy per output (multi-label), stable form.
    BinaryCrossEntropy,
}

impl Loss {
    /// The code of this loss in `shaders/loss.wgsl`.
    pub(crate) fn code(self) -> u32 {
        match self {
            Loss::SoftmaxCrossEntropy => 0,
            Loss::SquaredError => 1,
            Loss::L1 => 2,
            Loss::Hinge => 3,
            Loss::SquaredHinge => 4,
            Loss::BinaryCrossEntropy => 5,
        }
    }

    /// All losses, for tests and examples.
    pub fn all() -> [Loss; 6] {
        [
            Loss::SoftmaxCrossEntropy,
            Loss::SquaredError,
            Loss::L1,
            Loss::Hinge,
            Loss::SquaredHinge,
            Loss::BinaryCrossEntropy,
        ]
    }

    /// Whether this loss takes class labels (else dense targets).
    /// Softmax cross-entropy takes either.
    pub fn takes_labels(self) -> bool {
        matches!(
            self,
            Loss::SoftmaxCrossEntropy | Loss::Hinge | Loss::SquaredHinge
        )
    }

    /// Whether this loss takes dense targets of the prediction's shape.
    pub fn takes_dense(self) -> bool {
        !matches!(self, Loss::Hinge | Loss::SquaredHinge)
    }
}

/// What a loss compares the prediction with.
pub enum Target<'a, B: Backend> {
    /// One class index per row.
    Labels(&'a B::Index),
    /// A target row per prediction row (one-hot, soft or real-valued).
    Dense(&'a B::Tensor),
}

impl<B: Backend> Clone for Target<'_, B> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<B: Backend> Copy for Target<'_, B> {}

pub(crate) fn shape_err(op: &'static str, detail: String) -> Error {
    Error::Shape { op, detail }
}

pub(crate) fn check_same(
    op: &'static str,
    what: &str,
    a: &impl Shaped,
    b: &impl Shaped,
) -> Result<()> {
    if a.rows() != b.rows() || a.cols() != b.cols() {
        return Err(shape_err(
            op,
            format!("{what}: {} vs {}", a.shape_str(), b.shape_str()),
        ));
    }
    Ok(())
}

pub(crate) fn check_nonempty(op: &'static str, rows: usize, cols: usize) -> Result<()> {
    if rows == 0 || cols == 0 {
        return Err(Error::Empty { op, rows, cols });
    }
    Ok(())
}

pub(crate) fn check_len(op: &'static str, expected: usize, got: usize) -> Result<()> {
    if expected != got {
        return Err(Error::Length { op, expected, got });
    }
    Ok(())
}

/// Checks a matmul's operands and returns `(m, n, k)`.
pub(crate) fn check_matmul<T: Shaped>(
    a: &T,
    b: &T,
    out: &T,
    spec: &MatmulSpec<'_, T>,
) -> Result<(usize, usize, usize)> {
    let (m, ka) = if spec.transpose_a {
        (a.cols(), a.rows())
    } else {
        (a.rows(), a.cols())
    };
    let (kb, n) = if spec.transpose_b {
        (b.cols(), b.rows())
    } else {
        (b.rows(), b.cols())
    };
    let form = match (spec.transpose_a, spec.transpose_b) {
        (false, false) => "A·B",
        (true, false) => "Aᵀ·B",
        (false, true) => "A·Bᵀ",
        (true, true) => "Aᵀ·Bᵀ",
    };
    if ka != kb {
        return Err(shape_err(
            "matmul",
            format!(
                "{form} with A {} and B {}: inner dimensions {ka} and {kb} differ",
                a.shape_str(),
                b.shape_str()
            ),
        ));
    }
    if out.rows() != m || out.cols() != n {
        return Err(shape_err(
            "matmul",
            format!("{form} gives {m}x{n} but the output is {}", out.shape_str()),
        ));
    }
    if let Some(bias) = spec.bias {
        if bias.rows() != 1 || bias.cols() != n {
            return Err(shape_err(
                "matmul",
                format!("bias must be 1x{n}, got {}", bias.shape_str()),
            ));
        }
    }
    if let Some((_, z)) = spec.gate {
        if z.rows() != m || z.cols() != n {
            return Err(shape_err(
                "matmul",
                format!(
                    "gate must be {m}x{n} like the output, got {}",
                    z.shape_str()
                ),
            ));
        }
    }
    Ok((m, n, ka))
}

/// Checks a loss's operands (the label range was checked when the labels were written).
pub(crate) fn check_loss<B: Backend>(
    kind: Loss,
    pred: &B::Tensor,
    target: &Target<'_, B>,
    grad: &B::Tensor,
    loss: &B::Tensor,
) -> Result<()> {
    check_same("loss", "gradient vs prediction", grad, pred)?;
    if loss.rows() != 1 || loss.cols() != 1 {
        return Err(shape_err(
            "loss",
            format!("the loss output must be 1x1, got {}", loss.shape_str()),
        ));
    }
    match target {
        Target::Labels(labels) => {
            if !kind.takes_labels() {
                return Err(shape_err(
                    "loss",
                    format!("{kind:?} needs dense targets, got class labels"),
                ));
            }
            if labels.len() != pred.rows() {
                return Err(shape_err(
                    "loss",
                    format!(
                        "{} labels for a batch of {} rows",
                        labels.len(),
                        pred.rows()
                    ),
                ));
            }
            if labels.bound() > pred.cols() {
                return Err(shape_err(
                    "loss",
                    format!(
                        "labels may go up to {} but the prediction has {} classes",
                        labels.bound() - 1,
                        pred.cols()
                    ),
                ));
            }
        }
        Target::Dense(t) => {
            if !kind.takes_dense() {
                return Err(shape_err(
                    "loss",
                    format!("{kind:?} needs class labels, got dense targets"),
                ));
            }
            check_same("loss", "target vs prediction", *t, pred)?;
        }
    }
    Ok(())
}

pub(crate) fn check_indices(op: &'static str, data: &[u32], bound: usize) -> Result<()> {
    check_nonempty(op, 1, data.len())?;
    if let Some((position, &index)) = data.iter().enumerate().find(|(_, &v)| v as usize >= bound) {
        return Err(Error::IndexRange {
            op,
            index,
            position,
            bound,
        });
    }
    Ok(())
}

/// Checks batch-norm operands: `x` and `out` of one shape, the per-feature
/// tensors `1 × cols`, and in training (`saved` given, `2 × cols`) more than
/// one row, as PyTorch requires.
pub(crate) fn check_batch_norm<T: Shaped>(
    x: &T,
    gamma: &T,
    beta: &T,
    mean: &T,
    var: &T,
    out: &T,
    saved: Option<&T>,
) -> Result<()> {
    check_same("batch_norm", "output vs input", out, x)?;
    for (what, t) in [
        ("γ", gamma),
        ("β", beta),
        ("running mean", mean),
        ("running variance", var),
    ] {
        if t.rows() != 1 || t.cols() != x.cols() {
            return Err(shape_err(
                "batch_norm",
                format!("{what} must be 1x{}, got {}", x.cols(), t.shape_str()),
            ));
        }
    }
    if let Some(saved) = saved {
        if saved.rows() != 2 || saved.cols() != x.cols() {
            return Err(shape_err(
                "batch_norm",
                format!(
                    "saved statistics must be 2x{}, got {}",
                    x.cols(),
                    saved.shape_str()
                ),
            ));
        }
    }
    if saved.is_some() && x.rows() < 2 {
        return Err(Error::InvalidParameter {
            name: "batch size",
            value: x.rows() as f64,
            allowed: "at least 2 in training mode (batch statistics of one sample are undefined)",
        });
    }
    Ok(())
}

/// Checks `activation_backward`: `z`, `grad_out` and `grad_in` of one shape.
pub(crate) fn check_activation_backward<T: Shaped>(z: &T, grad_out: &T, grad_in: &T) -> Result<()> {
    check_same(
        "activation_backward",
        "pre-activation vs gradient",
        z,
        grad_out,
    )?;
    check_same(
        "activation_backward",
        "pre-activation vs input gradient",
        z,
        grad_in,
    )
}

/// Checks `batch_norm_backward`: gradients shaped as what they differentiate.
pub(crate) fn check_batch_norm_backward<T: Shaped>(
    x: &T,
    gamma: &T,
    grad_out: &T,
    grad_in: &T,
    grad_gamma: &T,
    grad_beta: &T,
) -> Result<()> {
    check_same("batch_norm_backward", "gradient vs input", grad_out, x)?;
    check_same("batch_norm_backward", "input gradient vs input", grad_in, x)?;
    check_same("batch_norm_backward", "γ gradient vs γ", grad_gamma, gamma)?;
    check_same("batch_norm_backward", "β gradient vs γ", grad_beta, gamma)
}
