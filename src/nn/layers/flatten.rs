//! `nn.Flatten`: a sample of any shape as flat features. The values are
//! already in that order (a batch is `N × (C·H·W)` either way), so the
//! passes are copies.

use super::{GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::Backend;
use crate::cost::Cost;
use crate::Result;

/// Flattening's description (no settings: `start_dim=1`, as PyTorch's default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Flatten;

impl LayerUnit for Flatten {
    fn output_shape(&self, input: &Shape, _at: &str) -> Result<Shape> {
        Ok(Shape::features(input.len()))
    }

    fn cost(&self, _input: &Shape, _n: u64, _first: bool, _c: &mut Cost, _kept: &mut u64) {}
}

/// Flattening on a backend.
pub(crate) struct FlattenModule {
    pub width: usize,
}

impl<B: Backend> Module<B> for FlattenModule {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        Stage::plain(b, rows, self.width, self.width)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        b.copy(x, &mut stage.out)
    }

    fn backward(
        &mut self,
        b: &B,
        _x: &B::Tensor,
        g: &B::Tensor,
        _: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        _: Pass,
    ) -> Result<()> {
        if grad_in.needed {
            b.copy(g, grad_in.out)?;
        }
        Ok(())
    }
}
