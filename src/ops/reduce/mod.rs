//! Reductions: column sums (the bias gradients), a whole tensor to one
//! number, and the count of rows whose label is among the top k scores.
//! Every order of summation is fixed by the sizes alone, so results are the
//! same from run to run. The CPU reference is `cpu.rs`, the GPU dispatch
//! `gpu.rs` (shaders/reduce/reduce.wgsl); parity in `tests/kernels.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

use crate::backend::checks::shape_err;
use crate::backend::{IndexVector, Shaped};
use crate::{Error, Result};

/// A reduction of all elements to one number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reduce {
    /// Σ x.
    Sum,
    /// Σ x / len.
    Mean,
    /// max x.
    Max,
    /// max |x|: the ℓ∞ norm (`x.abs().max()`).
    AbsMax,
    /// Σ |x|: the ℓ1 norm (`x.abs().sum()`).
    AbsSum,
}

/// `out` is `1 × x.cols()`, for column sums.
pub(crate) fn check_sum_rows(x: &impl Shaped, out: &impl Shaped) -> Result<()> {
    if out.rows() != 1 || out.cols() != x.cols() {
        return Err(shape_err(
            "sum_rows",
            format!(
                "input {} needs output 1x{}, got {}",
                x.shape_str(),
                x.cols(),
                out.shape_str()
            ),
        ));
    }
    Ok(())
}

/// `out` is `1 × x.rows()`, for row sums.
pub(crate) fn check_sum_cols(x: &impl Shaped, out: &impl Shaped) -> Result<()> {
    if out.rows() != 1 || out.cols() != x.rows() {
        return Err(shape_err(
            "sum_cols",
            format!(
                "input {} needs output 1x{}, got {}",
                x.shape_str(),
                x.rows(),
                out.shape_str()
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_top_k(
    pred: &impl Shaped,
    labels: &impl IndexVector,
    k: usize,
    correct: &impl Shaped,
) -> Result<()> {
    if labels.len() != pred.rows() || labels.bound() > pred.cols() {
        return Err(shape_err(
            "count_top_k",
            format!(
                "{} labels below {} for predictions {}",
                labels.len(),
                labels.bound(),
                pred.shape_str()
            ),
        ));
    }
    if correct.len() != 1 {
        return Err(shape_err(
            "count_top_k",
            format!("the count must be 1x1, got {}", correct.shape_str()),
        ));
    }
    if k == 0 {
        return Err(Error::InvalidParameter {
            name: "k",
            value: 0.0,
            allowed: "at least 1",
        });
    }
    Ok(())
}
