//! The max-norm constraint of Srivastava et al. (2014), the companion of
//! dropout: after each update, every unit's incoming weight vector (a row
//! of a `[out, in]` dense weight, or of a conv weight flattened to
//! `[out, in/groups·kh·kw]`) whose L2 norm exceeds `c` is scaled back onto
//! the ball of radius `c`, as `torch.renorm(w, 2, 0, c)` does (scale
//! `c / (‖w‖ + 1e-7)`). CPU reference `cpu.rs`, GPU dispatch `gpu.rs`
//! (shaders/max_norm/max_norm.wgsl), parity and PyTorch's numbers in
//! `tests.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

use crate::{Error, Result};

/// PyTorch's `renorm` adds this to the norm before dividing.
pub(crate) const RENORM_EPS: f64 = 1e-7;

/// A max-norm radius must be finite and positive.
pub(crate) fn check(max_norm: f64) -> Result<()> {
    if max_norm > 0.0 && max_norm.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "max_norm",
            value: max_norm,
            allowed: "finite and > 0",
        })
    }
}
