//! BatchNorm1d: per-feature statistics of the batch in training (updating
//! the running mean and the unbiased running variance), the running
//! statistics in evaluation, and the backward pass for the input, γ and β
//! in one kernel. The checks are here, the CPU reference in `cpu.rs`, the
//! GPU dispatch in `gpu.rs` (shaders/batch_norm/batch_norm.wgsl); parity
//! and PyTorch vectors in `tests/normalize.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;

use crate::backend::checks::{check_same, shape_err};
use crate::backend::Shaped;
use crate::{Error, Result};

/// Checks batch-norm operands: `x` and `out` of one shape, the per-feature
/// tensors `1 × cols`, and in training (`saved` given, `2 × cols`) more than
/// one row, as PyTorch requires.
pub(crate) fn check<T: Shaped>(
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

/// Checks `batch_norm_backward`: gradients shaped as what they differentiate.
pub(crate) fn check_backward<T: Shaped>(
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
