//! Inverted dropout: `y = x ⊙ keep / (1 − p)` in training, the identity in
//! evaluation; the mask is drawn from (seed, step, element), so both
//! backends drop the same elements.

use super::{BuildCtx, GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Backend, DropoutMask};
use crate::cost::Cost;
use crate::nn::Mode;
use crate::{Error, Result};

/// A dropout layer's description.
///
/// Training scales kept units by 1/(1−p), so evaluation needs no change;
/// this equals the seeds' form (no scaling in training, multiply by 1−p at
/// test time) up to a constant factor on every later activation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Dropout {
    /// Drop probability in [0, 1).
    pub p: f64,
}

impl LayerUnit for Dropout {
    fn output_shape(&self, input: &Shape, _at: &str) -> Result<Shape> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(Error::InvalidParameter {
                name: "dropout p",
                value: self.p,
                allowed: "in [0, 1)",
            });
        }
        Ok(input.clone())
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        let w = input.len() as u64;
        c.flops += 2 * n * w;
        *kept += n * w;
    }
}

impl Dropout {
    /// The built layer, with the next mask stream.
    pub(crate) fn build(&self, width: usize, ctx: &mut BuildCtx<'_>) -> DropoutModule {
        *ctx.streams += 1;
        DropoutModule {
            p: self.p,
            stream: *ctx.streams,
            width,
        }
    }
}

/// Dropout on a backend.
pub(crate) struct DropoutModule {
    p: f64,
    /// Makes this layer's masks independent of the other dropout layers'.
    stream: u64,
    width: usize,
}

impl DropoutModule {
    /// This pass's mask: the model's seed mixed with the layer's stream, and
    /// the batch's place in the global minibatch.
    fn mask(&self, pass: Pass) -> DropoutMask {
        DropoutMask {
            p: self.p,
            seed: pass.stream_seed(self.stream),
            step: pass.step,
            first: pass.first_element(self.width),
        }
    }
}

impl<B: Backend> Module<B> for DropoutModule {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        Stage::plain(b, rows, self.width, self.width)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, pass: Pass) -> Result<()> {
        match pass.mode {
            Mode::Train => b.dropout(x, &mut stage.out, &self.mask(pass)),
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
        pass: Pass,
    ) -> Result<()> {
        if grad_in.needed {
            // The same mask on the gradient.
            b.dropout(g, grad_in.out, &self.mask(pass))?;
        }
        Ok(())
    }
}
