//! The backward pass of a dense layer `y = x·Wᵀ + b` in one call: the
//! weight gradient `gᵀ·x`, the bias gradient (the column sums of `g`) and
//! the input gradient `(g·W) ⊙ gate'(z)`, from `g = ∂L/∂y`.
//!
//! Every device has the composite default, two products and a sum
//! ([`Kernels::dense_backward`](crate::backend::Kernels::dense_backward)),
//! which is what the GPU runs. The CPU runs all three as one job on its
//! threads (`cpu.rs`): one wait instead of three, the two products on a
//! core each where that balances, and the column sums on whichever core
//! finishes first. Each element is summed in the
//! same order either way (`tests.rs` checks the bits).

pub(crate) mod cpu;
#[cfg(test)]
mod tests;

use crate::backend::{Kernels, Shaped};
use crate::ops::activation::Activation;
use crate::ops::matmul::{check_matmul, MatmulSpec};
use crate::ops::reduce::check_sum_rows;
use crate::Result;

/// Where [`Backend::dense_backward`](crate::Backend::dense_backward) writes
/// the gradients of a dense layer with weights `W` (`out × in`).
///
/// ```
/// use wgtrain::{Activation, Backend, Cpu, DenseGrads};
/// let cpu = Cpu::<f64>::new();
/// // One row in, two out: y = x·Wᵀ + b, and g = ∂L/∂y.
/// let x = cpu.upload_f64(1, 3, &[1.0, 2.0, 3.0]).unwrap();
/// let w = cpu.upload_f64(2, 3, &[1.0, 0.0, -1.0, 0.5, 0.5, 0.5]).unwrap();
/// let g = cpu.upload_f64(1, 2, &[2.0, -1.0]).unwrap();
/// let (mut gw, mut gb, mut gx) = (cpu.zeros(2, 3).unwrap(), cpu.zeros(1, 2).unwrap(), cpu.zeros(1, 3).unwrap());
/// // The input came out of a ReLU whose input z was (1, -1, 2).
/// let z = cpu.upload_f64(1, 3, &[1.0, -1.0, 2.0]).unwrap();
/// let grads = DenseGrads { weight: &mut gw, bias: Some(&mut gb), input: Some((&mut gx, Some((Activation::Relu, &z)))) };
/// cpu.dense_backward(&g, &x, &w, grads).unwrap();
/// assert_eq!(cpu.download(&gw).unwrap(), [2.0, 4.0, 6.0, -1.0, -2.0, -3.0]);
/// assert_eq!(cpu.download(&gb).unwrap(), [2.0, -1.0]);
/// // g·W = (1.5, -0.5, -2.5), then zero where z ≤ 0.
/// assert_eq!(cpu.download(&gx).unwrap(), [1.5, 0.0, -2.5]);
/// ```
pub struct DenseGrads<'a, T> {
    /// `∂L/∂W = gᵀ·x`, `out × in`.
    pub weight: &'a mut T,
    /// `∂L/∂b`, `1 × out`: the column sums of `g`; `None` without a bias.
    pub bias: Option<&'a mut T>,
    /// `∂L/∂x = g·W`, `rows × in`, times `gate'(z)` elementwise when a
    /// gate (the activation before the layer and its input `z`) is given;
    /// `None` where the input needs no gradient (the first layer).
    pub input: Option<(&'a mut T, Option<(Activation, &'a T)>)>,
}

/// The weight gradient's product: `gᵀ·x`.
pub(crate) fn weight_spec<'a, T>() -> MatmulSpec<'a, T> {
    MatmulSpec {
        transpose_a: true,
        ..MatmulSpec::default()
    }
}

/// The input gradient's product: `g·W`, gated.
pub(crate) fn input_spec<T>(gate: Option<(Activation, &T)>) -> MatmulSpec<'_, T> {
    MatmulSpec {
        gate,
        ..MatmulSpec::default()
    }
}

/// The two products and the column sums in turn: every device's default,
/// and the CPU's where its library does not run products in pieces.
pub(crate) fn in_turn<K: Kernels>(
    k: &K,
    g: &K::Tensor,
    x: &K::Tensor,
    w: &K::Tensor,
    grads: DenseGrads<'_, K::Tensor>,
) -> Result<()> {
    k.matmul(g, x, grads.weight, weight_spec())?;
    if let Some(bias) = grads.bias {
        k.sum_rows(g, bias)?;
    }
    if let Some((input, gate)) = grads.input {
        k.matmul(g, w, input, input_spec(gate))?;
    }
    Ok(())
}

/// The checks of its three parts, each as the op on its own makes them.
pub(crate) fn check_dense_backward<T: Shaped>(
    g: &T,
    x: &T,
    w: &T,
    grads: &DenseGrads<'_, T>,
) -> Result<()> {
    check_matmul(g, x, grads.weight, &weight_spec())?;
    if let Some(bias) = &grads.bias {
        check_sum_rows(g, *bias)?;
    }
    if let Some((input, gate)) = &grads.input {
        check_matmul(g, w, *input, &input_spec(*gate))?;
    }
    Ok(())
}
