//! Radial-basis-function units (seed 001, "RBFs vs sigmoids"): unit `j`
//! has a centre `cⱼ` in input space and a width `βⱼ`, and outputs
//! `hⱼ(x) = exp(−βⱼ‖x − cⱼ‖²)`, local where a sigmoid covers the whole
//! space; a dense layer after them gives the seed's `a = Σⱼ uⱼ hⱼ(x)`.
//!
//! With `a = −2βⱼ·gₙⱼ·hₙⱼ` (g the gradient at the output, d the squared
//! distance the forward pass keeps):
//!
//! ```text
//! ∂ρ/∂xₙₖ = Σⱼ aₙⱼ (xₙₖ − cⱼₖ)
//! ∂ρ/∂cⱼₖ = −Σₙ aₙⱼ (xₙₖ − cⱼₖ)
//! ∂ρ/∂βⱼ  = −Σₙ gₙⱼ hₙⱼ dₙⱼ
//! ```
//!
//! The distance is summed directly, Σₖ (xₙₖ − cⱼₖ)², not as
//! ‖x‖² − 2x·c + ‖c‖², whose cancellation would lose f32's digits exactly
//! where the unit responds. CPU reference `cpu.rs`, GPU dispatch `gpu.rs`
//! (shaders/rbf/rbf.wgsl, one invocation per output element; the backward
//! pass recomputes h from the kept distance, bit for bit), parity in
//! `tests.rs`; the layer is `src/nn/layers/rbf.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

use crate::backend::Shaped;
use crate::{Error, Result};

/// The shapes of one call: `x` n×k, centres m×k, β 1×m, outputs n×m.
pub(crate) fn check(
    x: &impl Shaped,
    centres: &impl Shaped,
    beta: &impl Shaped,
    out: &impl Shaped,
    dist: &impl Shaped,
) -> Result<()> {
    let (n, k, m) = (x.rows(), x.cols(), centres.rows());
    let ok = centres.cols() == k
        && beta.rows() == 1
        && beta.cols() == m
        && (out.rows(), out.cols()) == (n, m)
        && (dist.rows(), dist.cols()) == (n, m);
    if ok {
        Ok(())
    } else {
        Err(Error::Shape {
            op: "rbf",
            detail: format!(
                "x {}, centres {}, beta {}, out {}, distances {}: need n×k, m×k, 1×m, n×m, n×m",
                x.shape_str(),
                centres.shape_str(),
                beta.shape_str(),
                out.shape_str(),
                dist.shape_str()
            ),
        })
    }
}
