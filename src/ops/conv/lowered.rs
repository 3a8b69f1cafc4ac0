//! One convolution group lowered onto the matmul: the default of
//! [`Kernels::conv2d`] and [`Kernels::conv2d_backward`], what the GPU
//! runs. Per group:
//!
//! - forward: `cols = im2col(x)` (`(N·P) × K`), `z = cols·Wᵀ + b`, then
//!   `z`'s columns become the output block's channels (`channels_first`);
//! - backward: `δz = channels_last(δ)`, `∂W = δzᵀ·cols`, `∂b = Σ δz`,
//!   `δx = col2im(δz·W)`.
//!
//! The CPU backend's own form (`cpu.rs`) is tested against this one.

use super::{ConvGrads, ConvGroup};
use crate::backend::{Kernels, MatmulSpec};
use crate::Result;

/// The columns `(N·P) × (count_in·KH·KW)` and the product `(N·P) × count_out`.
pub(crate) fn scratch_shapes(rows: usize, g: &ConvGroup) -> [(usize, usize); 2] {
    let (p, (o, k)) = (g.window.positions(), g.weight_shape());
    [(rows * p, k), (rows * p, o)]
}

/// `out`'s block of channels = the group's convolution of `x`; `scratch`
/// is `[cols, z]`, and the columns stay there for the backward pass.
pub(crate) fn conv2d<K: Kernels>(
    k: &K,
    x: &K::Tensor,
    w: &K::Tensor,
    bias: Option<&K::Tensor>,
    g: &ConvGroup,
    scratch: &mut [K::Tensor],
    out: &mut K::Tensor,
) -> Result<()> {
    let [cols, z] = scratch else {
        unreachable!("checked: two scratch tensors")
    };
    k.im2col(x, &g.window, &g.input, cols)?;
    let spec = MatmulSpec {
        transpose_b: true,
        bias,
        ..Default::default()
    };
    k.matmul(cols, w, z, spec)?;
    k.channels_first(z, &g.output, out)
}

/// The group's gradients from `grad_out` (`N × (O·P)`); `columns_kept`
/// says whether `scratch`'s columns still hold this group's `im2col(x)`
/// from the forward pass (they are rebuilt otherwise).
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward<K: Kernels>(
    k: &K,
    x: &K::Tensor,
    w: &K::Tensor,
    grad_out: &K::Tensor,
    g: &ConvGroup,
    scratch: &mut [K::Tensor],
    columns_kept: bool,
    grads: ConvGrads<'_, K::Tensor>,
) -> Result<()> {
    let [cols, dz] = scratch else {
        unreachable!("checked: two scratch tensors")
    };
    k.channels_last(grad_out, &g.output, dz)?;
    if !columns_kept {
        k.im2col(x, &g.window, &g.input, cols)?;
    }
    let weight_grad = MatmulSpec {
        transpose_a: true,
        ..Default::default()
    };
    k.matmul(dz, cols, grads.weight, weight_grad)?;
    if let Some(gb) = grads.bias {
        k.sum_rows(dz, gb)?;
    }
    if let Some(grad_in) = grads.input {
        // The columns' gradient overwrites the columns, read above.
        k.matmul(dz, w, cols, MatmulSpec::default())?;
        k.col2im(cols, &g.window, &g.input, grad_in)?;
    }
    Ok(())
}
