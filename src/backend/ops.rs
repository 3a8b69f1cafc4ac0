//! The vocabulary of the backend interface: which activation, which loss,
//! which matmul form. Shape checks live here too, so both backends reject
//! exactly the same inputs with exactly the same errors.

use super::{Backend, Shaped};
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

impl<T: Shaped> MatmulSpec<'_, T> {
    /// `(m, n, k)` of `op(A)·op(B)` read off the operands, which the front
    /// has checked agree.
    pub(crate) fn dims(&self, a: &T, b: &T) -> (usize, usize, usize) {
        let (m, k) = if self.transpose_a {
            (a.cols(), a.rows())
        } else {
            (a.rows(), a.cols())
        };
        let n = if self.transpose_b { b.rows() } else { b.cols() };
        (m, n, k)
    }
}

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
