//! The vocabulary of the backend interface: which loss, which matmul form,
//! which reduction. (Activations live with their kernels in
//! [`crate::ops::activation`].)

pub use crate::ops::activation::Activation;
pub use crate::ops::loss::Loss;
pub use crate::ops::reduce::Reduce;

use super::{Backend, Shaped};

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
