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

/// Which elements one dropout call keeps: element `i` of the tensor is kept
/// when [`dropout_keep`]`(seed, step, first + i, p)`. `first` places the
/// tensor inside a larger one: a data-parallel replica whose shard starts at
/// row `r` of the global minibatch passes `r × cols`, so the masks depend on
/// the global sample index and not on the number of replicas.
///
/// ```
/// use wgtrain::backend::DropoutMask;
/// let mask = DropoutMask { p: 0.5, seed: 7, step: 3, first: 0 };
/// // Rows 2.. of a batch, as the replica holding them sees them.
/// let shard = DropoutMask { first: 2 * 10, ..mask };
/// assert_eq!(shard.keeps(0), mask.keeps(20));
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DropoutMask {
    /// Drop probability in [0, 1).
    pub p: f64,
    /// The stream's seed (the model's seed mixed with the layer's).
    pub seed: u64,
    /// The training step.
    pub step: u64,
    /// The global index of the tensor's first element (counted modulo 2³²).
    pub first: u64,
}

impl DropoutMask {
    /// Whether element `i` of the tensor is kept.
    pub fn keeps(&self, i: u64) -> bool {
        dropout_keep(
            self.seed,
            self.step,
            self.first.wrapping_add(i) as u32,
            self.p,
        )
    }
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
