//! An elementwise activation `σ(x)` (the functions are listed in
//! [`Activation`]); its backward pass is `δ ⊙ σ'(x)`, fused into the
//! product of a dense layer right after it when there is one.

use super::{GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Activation, Backend, Shaped};
use crate::cost::Cost;
use crate::Result;

impl LayerUnit for Activation {
    fn output_shape(&self, input: &Shape, _at: &str) -> Result<Shape> {
        Ok(input.clone())
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        let w = input.len() as u64;
        c.flops += 2 * n * w;
        *kept += n * w;
    }
}

/// An activation on a backend: no parameters.
pub(crate) struct ActivationModule {
    pub act: Activation,
    pub width: usize,
}

impl<B: Backend> Module<B> for ActivationModule {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        Stage::plain(b, rows, self.width, self.width)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        b.activation(self.act, x, &mut stage.out)
    }

    fn backward(
        &mut self,
        b: &B,
        x: &B::Tensor,
        g: &B::Tensor,
        _: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        _: Pass,
    ) -> Result<()> {
        debug_assert_eq!(x.cols(), self.width);
        if grad_in.needed {
            b.activation_backward(self.act, x, g, grad_in.out)?;
        }
        Ok(())
    }

    fn activation(&self) -> Option<Activation> {
        Some(self.act)
    }
}
