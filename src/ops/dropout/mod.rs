//! Inverted dropout: `out = x ⊙ keep / (1 − p)`, with the mask drawn from
//! the counter-based generator ([`crate::ops::random`]), so both backends
//! drop the same elements; the backward pass is the same call on the
//! gradient. The CPU kernel is `cpu.rs`, the GPU dispatch `gpu.rs`
//! (shaders/dropout/dropout.wgsl); parity in `tests/normalize.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;

use crate::ops::random;
use crate::{Error, Result};

/// The dropout mask of both backends: whether element `i` is kept at
/// `step` for `seed` with drop probability `p`. A counter-based draw, so the
/// CPU and the GPU (shaders/dropout/dropout.wgsl) drop exactly the same elements.
///
/// ```
/// let kept = (0..10_000).filter(|&i| wgtrain::backend::dropout_keep(7, 0, i, 0.3)).count();
/// assert!((6_700..7_300).contains(&kept));
/// ```
pub fn dropout_keep(seed: u64, step: u64, i: u32, p: f64) -> bool {
    keep_keyed(random::key(seed, step), i, p as f32)
}

/// [`dropout_keep`] from the mask's key ([`random::key`]).
pub(crate) fn keep_keyed(key: u32, i: u32, p: f32) -> bool {
    random::uniform(key, i) >= p
}

/// A drop probability in [0, 1).
pub(crate) fn check_p(p: f64) -> Result<()> {
    if !(0.0..1.0).contains(&p) {
        return Err(Error::InvalidParameter {
            name: "dropout p",
            value: p,
            allowed: "in [0, 1)",
        });
    }
    Ok(())
}
