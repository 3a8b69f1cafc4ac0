//! Gaussian noise injection (seed 002, "adding noise"): `out = x + σ·z`
//! with `z ~ N(0, 1)` drawn by Box–Muller from two counter-based uniforms
//! per element ([`crate::ops::random`]), so both backends add the same
//! noise, and so do any number of replicas. The layer that uses it is
//! `src/nn/layers/noise.rs`; the CPU kernel is `cpu.rs`, the GPU dispatch
//! `gpu.rs` (shaders/noise/noise.wgsl); parity and statistics in `tests.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
#[cfg(test)]
mod tests;

use crate::ops::random;
use crate::{Error, Result};

/// Which noise one call adds: element `i` of the tensor gets
/// `std · normal(seed, step, first + i)`.
///
/// ```
/// use wgtrain::ops::noise::NoiseDraw;
/// let draw = NoiseDraw { std: 0.5, seed: 7, step: 0, first: 0 };
/// let z: Vec<f64> = (0..20_000).map(|i| draw.noise(i) as f64).collect();
/// let mean = z.iter().sum::<f64>() / z.len() as f64;
/// let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
/// assert!(mean.abs() < 0.02 && (var.sqrt() - 0.5).abs() < 0.02);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NoiseDraw {
    /// Standard deviation σ ≥ 0.
    pub std: f64,
    /// The stream's seed (the model's seed mixed with the layer's).
    pub seed: u64,
    /// The training step.
    pub step: u64,
    /// The global index of the tensor's first element (counted modulo 2³²).
    pub first: u64,
}

impl NoiseDraw {
    /// The noise added to element `i` of the tensor.
    pub fn noise(&self, i: u64) -> f32 {
        self.std as f32
            * normal(
                random::key(self.seed, self.step),
                self.first.wrapping_add(i) as u32,
            )
    }
}

/// A standard normal draw for element `j` under `key`: Box–Muller on the
/// uniforms of counters `2j` and `2j + 1` (1 − u keeps the logarithm finite).
pub(crate) fn normal(key: u32, j: u32) -> f32 {
    let u1 = 1.0 - random::uniform(key, j.wrapping_mul(2));
    let u2 = random::uniform(key, j.wrapping_mul(2).wrapping_add(1));
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A standard deviation must be finite and ≥ 0.
pub(crate) fn check_std(std: f64) -> Result<()> {
    if std >= 0.0 && std.is_finite() {
        Ok(())
    } else {
        Err(Error::InvalidParameter {
            name: "noise std",
            value: std,
            allowed: "finite and ≥ 0",
        })
    }
}
