//! `y = x + f(x)`, with `f` a chain of layers that keeps the shape; the
//! backward pass is `∂ρ/∂x = g + J_fᵀ·g`.

use super::{
    backward_chain, forward_chain, stages, BuildCtx, Chain, GradIn, Kept, LayerUnit, Module, Pass,
    Shape, Stage,
};
use crate::backend::Backend;
use crate::cost::Cost;
use crate::nn::model::{Buffer, Parameter};
use crate::nn::Layer;
use crate::{Error, Result};

impl LayerUnit for Vec<Layer> {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        if self.is_empty() {
            return Err(Error::Model(format!("layer {at}: empty residual block")));
        }
        let out = super::super::chain_shape(self, input, &format!("{at}."))?;
        if out != *input {
            let change = match (input.flat(), out.flat()) {
                (Some(a), Some(b)) => format!("width {a} to {b}"),
                _ => format!("shape {input} to {out}"),
            };
            return Err(Error::Model(format!(
                "layer {at}: residual block maps {change}; y = x + f(x) needs equal shapes"
            )));
        }
        Ok(out)
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        super::super::chain_cost(self, input, false, n, c, kept);
        let w = input.len() as u64;
        c.flops += 2 * n * w;
        *kept += n * w;
    }
}

/// Builds the block on a backend.
pub(crate) fn build<B: Backend>(
    inner: &[Layer],
    b: &B,
    input: &Shape,
    ctx: &mut BuildCtx<'_>,
) -> Result<ResidualModule<B>> {
    Ok(ResidualModule {
        inner: super::super::build_chain(inner, b, input, ctx)?,
        width: input.len(),
    })
}

/// A residual block on a backend.
pub(crate) struct ResidualModule<B: Backend> {
    inner: Chain<B>,
    width: usize,
}

impl<B: Backend> Module<B> for ResidualModule<B> {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let mut stage = Stage::plain(b, rows, self.width, self.width)?;
        stage.kept.sub = stages(b, &self.inner, rows)?;
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, pass: Pass) -> Result<()> {
        forward_chain(b, &mut self.inner, &mut stage.kept.sub, x, pass)?;
        let f = &stage.kept.sub.last().expect("validated: not empty").out;
        b.copy(f, &mut stage.out)?;
        b.axpy(1.0, x, &mut stage.out)
    }

    fn backward(
        &mut self,
        b: &B,
        x: &B::Tensor,
        g: &B::Tensor,
        kept: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        pass: Pass,
    ) -> Result<()> {
        backward_chain(b, &mut self.inner, &mut kept.sub, x, g, true, pass)?;
        if grad_in.needed {
            b.copy(g, grad_in.out)?;
            b.axpy(1.0, &kept.sub[0].grad_in, grad_in.out)?;
        }
        Ok(())
    }

    fn parameters<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, B>>) {
        for (i, m) in self.inner.iter_mut().enumerate() {
            m.parameters(&format!("{prefix}{i}."), out);
        }
    }

    fn relu_outputs<'a>(
        &self,
        name: &str,
        stage: &'a Stage<B>,
        out: &mut Vec<(String, &'a B::Tensor)>,
    ) {
        for (i, (m, s)) in self.inner.iter().zip(&stage.kept.sub).enumerate() {
            m.relu_outputs(&format!("{name}.{i}"), s, out);
        }
    }

    fn parameter_names(&self, prefix: &str, out: &mut Vec<String>) {
        for (i, m) in self.inner.iter().enumerate() {
            m.parameter_names(&format!("{prefix}{i}."), out);
        }
    }

    fn buffers<'a>(
        &'a mut self,
        prefix: &str,
        out: &mut Vec<Buffer<'a, B>>,
        counts: &mut Vec<(String, &'a mut u64)>,
    ) {
        for (i, m) in self.inner.iter_mut().enumerate() {
            m.buffers(&format!("{prefix}{i}."), out, counts);
        }
    }
}
