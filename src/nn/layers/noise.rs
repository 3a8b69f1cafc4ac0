//! Gaussian noise injection (seed 002, "adding noise"; Keras'
//! `GaussianNoise`): `y = x + σ·z` with `z ~ N(0, 1)` in training, the
//! identity in evaluation. The noise is drawn from (seed, step, element)
//! like dropout's masks, so both backends add the same noise; the gradient
//! passes through unchanged.

use super::{BuildCtx, GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::Backend;
use crate::cost::Cost;
use crate::nn::Mode;
use crate::ops::noise::{check_std, NoiseDraw};
use crate::Result;

/// A noise layer's description.
///
/// ```
/// use wgtrain::{Cpu, Init, Sequential};
/// // Noise on the input pixels, as a regulariser.
/// let spec = Sequential::new(784).gaussian_noise(0.1).dense(10, Init::XavierUniform);
/// assert!(spec.build(&Cpu::<f32>::new(), 0).is_ok());
/// assert!(Sequential::new(4).gaussian_noise(-1.0).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GaussianNoise {
    /// Standard deviation σ ≥ 0 of the added noise.
    pub std: f64,
}

impl LayerUnit for GaussianNoise {
    fn output_shape(&self, input: &Shape, _at: &str) -> Result<Shape> {
        check_std(self.std)?;
        Ok(input.clone())
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, _kept: &mut u64) {
        c.flops += 2 * n * input.len() as u64;
    }
}

impl GaussianNoise {
    /// The built layer, with the next random stream.
    pub(crate) fn build(&self, width: usize, ctx: &mut BuildCtx<'_>) -> NoiseModule {
        *ctx.streams += 1;
        NoiseModule {
            std: self.std,
            stream: *ctx.streams,
            width,
        }
    }
}

/// Noise injection on a backend.
pub(crate) struct NoiseModule {
    std: f64,
    /// Makes this layer's noise independent of the other random layers'.
    stream: u64,
    width: usize,
}

impl<B: Backend> Module<B> for NoiseModule {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        Stage::plain(b, rows, self.width, self.width)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, pass: Pass) -> Result<()> {
        match pass.mode {
            Mode::Train => {
                let draw = NoiseDraw {
                    std: self.std,
                    seed: pass.stream_seed(self.stream),
                    step: pass.step,
                    first: pass.first_element(self.width),
                };
                b.add_noise(x, &mut stage.out, &draw)
            }
            Mode::Eval => b.copy(x, &mut stage.out),
        }
    }

    fn backward(
        &mut self,
        b: &B,
        _: &B::Tensor,
        g: &B::Tensor,
        _: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        _: Pass,
    ) -> Result<()> {
        if grad_in.needed {
            // ∂(x + σz)/∂x = 1.
            b.copy(g, grad_in.out)?;
        }
        Ok(())
    }
}
