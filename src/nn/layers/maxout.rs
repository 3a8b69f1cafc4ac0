//! Maxout (Goodfellow et al. 2013; seed 002): `hᵢ = maxⱼ zᵢⱼ` over groups of
//! `pieces` consecutive features, so a dense layer of `units × pieces`
//! outputs followed by this layer is a layer of `units` maxout units, each
//! a learned convex piecewise-linear activation. PyTorch has no module for
//! it; its idiom is `z.view(n, units, pieces).max(-1).values`, which this
//! computes.
//!
//! It is max pooling (`src/ops/conv`, the pooling kernels) over each sample
//! seen as a `[units, pieces, 1]` image with a `pieces × 1` window: the
//! winners are kept, and the backward pass sends each gradient to its
//! group's winner, as PyTorch's `max` does (the first of equal maxima).

use super::{GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Backend, Pool, Window2d};
use crate::cost::Cost;
use crate::{Error, Result};

/// A maxout layer's description: the pieces per unit.
///
/// ```
/// use wgtrain::{Cpu, Init, Sequential};
/// // 784 → 240 maxout units of 5 pieces → 10.
/// let spec = Sequential::new(784).maxout(240, 5, Init::XavierUniform).dense(10, Init::XavierUniform);
/// assert_eq!(spec.build(&Cpu::<f32>::new(), 0).unwrap().parameter_names()[0], "0.weight");
/// // 7 features do not split into pieces of 2.
/// assert!(Sequential::new(7).maxout_pieces(2).dense(1, Init::XavierUniform).validate().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Maxout {
    /// Features per unit (k ≥ 1): the unit outputs their maximum.
    pub pieces: usize,
}

impl Maxout {
    /// The pooling window over one sample of `width` features.
    fn window(&self, width: usize) -> Window2d {
        Window2d::new([width / self.pieces, self.pieces, 1], [self.pieces, 1])
            .stride([self.pieces, 1])
    }
}

impl LayerUnit for Maxout {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        let bad = |detail: String| Err(Error::Model(format!("layer {at}: maxout {detail}")));
        let Some(width) = input.flat() else {
            return bad(format!("needs flat features, got shape {input}"));
        };
        if self.pieces == 0 {
            return Err(Error::InvalidParameter {
                name: "maxout pieces",
                value: 0.0,
                allowed: "at least 1",
            });
        }
        if !width.is_multiple_of(self.pieces) {
            return bad(format!(
                "of {} pieces after width {width}, which is not a multiple of {}",
                self.pieces, self.pieces
            ));
        }
        Ok(Shape::features(width / self.pieces))
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        let width = input.len() as u64;
        // A comparison per feature forward, a scatter per unit backward.
        c.flops += 2 * n * width;
        *kept += 2 * n * width / self.pieces as u64;
    }
}

impl Maxout {
    pub(crate) fn build(&self, input: &Shape) -> MaxoutModule {
        MaxoutModule {
            window: self.window(input.len()),
        }
    }
}

/// Maxout on a backend: no parameters.
pub(crate) struct MaxoutModule {
    window: Window2d,
}

impl<B: Backend> Module<B> for MaxoutModule {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let units = self.window.channels;
        let mut stage = Stage::plain(b, rows, self.window.image_len(), units)?;
        stage.kept.saved = Some(b.zeros(rows, units)?);
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        let winners = stage.kept.saved.as_mut();
        b.pool2d(Pool::Max, x, &self.window, &mut stage.out, winners)
    }

    fn backward(
        &mut self,
        b: &B,
        _x: &B::Tensor,
        g: &B::Tensor,
        kept: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        _: Pass,
    ) -> Result<()> {
        if grad_in.needed {
            b.pool2d_backward(Pool::Max, &self.window, g, kept.saved.as_ref(), grad_in.out)?;
        }
        Ok(())
    }
}
