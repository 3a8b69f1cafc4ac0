//! One convolution group lowered onto the matmul: the default of
//! [`Kernels::conv2d`] and [`Kernels::conv2d_backward`], what the GPU
//! runs (with `z = W·cols` and `∂W` as an implicit GEMM for narrow groups:
//! `gpu.rs`). The columns are kept transposed, one row per tap
//! (`K × N·P`), and the product one row per output channel, so that every
//! layout pass walks whole image lines and the three products take the
//! forms the tuned matmul runs fastest. Per group:
//!
//! - forward: `cols = im2col(x)`, `z = W·cols`, then `z`'s rows (plus the
//!   bias) become the output block's channels (`channel_planes`);
//! - backward: `δz = channel_rows(δ)`, `∂W = δz·colsᵀ`, `∂b` = the row sums
//!   of `δz`, `δx = col2im(Wᵀ·δz)`.
//!
//! The CPU backend's own form (`cpu.rs`) is tested against this one.

use super::{ConvGrads, ConvGroup};
use crate::backend::{Kernels, MatmulSpec};
use crate::Result;

/// The columns `(count_in·KH·KW) × (N·P)` and the product `count_out × (N·P)`.
pub(crate) fn scratch_shapes(rows: usize, g: &ConvGroup) -> [(usize, usize); 2] {
    let (p, (o, k)) = (g.window.positions(), g.weight_shape());
    [(k, rows * p), (o, rows * p)]
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
    k.matmul(w, cols, z, MatmulSpec::default())?;
    k.channel_planes(z, &g.output, bias, out)
}

/// Where the backward pass finds `cols = im2col(x)` for the weight
/// gradient `δz·colsᵀ`.
pub(crate) enum Columns<'a, T> {
    /// In `scratch`, from the forward pass.
    Kept,
    /// Nowhere yet: they are rebuilt in `scratch`.
    Rebuilt,
    /// Never built: this computes `δz·colsᵀ` from `δz` into the weight
    /// gradient with the columns gathered as they are read.
    Implicit(&'a dyn Fn(&T, &mut T) -> Result<()>),
}

impl<T> Columns<'_, T> {
    /// [`Columns::Kept`] or [`Columns::Rebuilt`].
    pub(crate) fn kept(kept: bool) -> Self {
        if kept {
            Columns::Kept
        } else {
            Columns::Rebuilt
        }
    }
}

/// The group's gradients from `grad_out` (`N × (O·P)`), the columns found
/// as `columns` says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward<K: Kernels>(
    k: &K,
    x: &K::Tensor,
    w: &K::Tensor,
    grad_out: &K::Tensor,
    g: &ConvGroup,
    scratch: &mut [K::Tensor],
    columns: Columns<'_, K::Tensor>,
    grads: ConvGrads<'_, K::Tensor>,
) -> Result<()> {
    let [cols, dz] = scratch else {
        unreachable!("checked: two scratch tensors")
    };
    k.channel_rows(grad_out, &g.output, dz)?;
    match columns {
        Columns::Implicit(weight_grad) => weight_grad(dz, grads.weight)?,
        Columns::Kept | Columns::Rebuilt => {
            if let Columns::Rebuilt = columns {
                k.im2col(x, &g.window, &g.input, cols)?;
            }
            let weight_grad = MatmulSpec {
                transpose_b: true,
                ..Default::default()
            };
            k.matmul(dz, cols, grads.weight, weight_grad)?;
        }
    }
    if let Some(gb) = grads.bias {
        k.sum_cols(dz, gb)?;
    }
    if let Some(grad_in) = grads.input {
        // The columns' gradient overwrites the columns, read above.
        let input_grad = MatmulSpec {
            transpose_a: true,
            ..Default::default()
        };
        k.matmul(w, dz, cols, input_grad)?;
        k.col2im(cols, &g.window, &g.input, grad_in)?;
    }
    Ok(())
}
