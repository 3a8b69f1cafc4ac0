//! `Z = X·Wᵀ + b` (`nn.Linear`), with `W` of shape `[outputs, inputs]`, or
//! `Z = X·Wᵀ` without a bias (`nn.Linear(..., bias=False)`, the layer before
//! a batch norm: a bias there has a true gradient of zero).
//!
//! Backward (seeds 000/004): `∂ρ/∂W = δᵀ·X`, `∂ρ/∂b = Σᵢ δᵢ`, `δ_in = δ·W`,
//! with the derivative of an activation before the layer applied in the
//! same product (`δ_in ⊙ σ'(z)`): all three by one
//! [`Backend::dense_backward`] call.

use super::{BuildCtx, GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Activation, Backend, DenseGrads, MatmulSpec, Shaped};
use crate::cost::Cost;
use crate::nn::model::Parameter;
use crate::{Init, Result};

/// A dense layer's description.
#[derive(Clone, Debug, PartialEq)]
pub struct Dense {
    /// Input width.
    pub inputs: usize,
    /// Output width.
    pub outputs: usize,
    /// How W is drawn.
    pub weight_init: Init,
    /// How b is drawn (zeros by default).
    pub bias_init: Init,
    /// Whether there is a bias.
    pub bias: bool,
}

impl LayerUnit for Dense {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        let detail = match input.flat() {
            Some(width) if width == self.inputs && self.outputs > 0 => {
                return Ok(Shape::features(self.outputs))
            }
            Some(width) => format!(
                "dense {}->{} after width {width}",
                self.inputs, self.outputs
            ),
            None => format!(
                "dense {}->{} needs flat features, got shape {input}",
                self.inputs, self.outputs
            ),
        };
        Err(crate::Error::Model(format!("layer {at}: {detail}")))
    }

    fn cost(&self, _input: &Shape, n: u64, first: bool, c: &mut Cost, kept: &mut u64) {
        let (i, o) = (self.inputs as u64, self.outputs as u64);
        // Forward, weight gradient and (unless first) input gradient.
        let products = if first { 2 } else { 3 };
        c.matmul_flops += products * 2 * n * i * o;
        let bias = if self.bias { o } else { 0 };
        c.flops += products * 2 * n * i * o + 2 * n * bias;
        c.parameters += i * o + bias;
        *kept += n * o;
    }
}

impl Dense {
    /// The built layer, its weight and (if any) bias drawn from `ctx.rng` in that order.
    pub(crate) fn build<B: Backend>(
        &self,
        b: &B,
        ctx: &mut BuildCtx<'_>,
    ) -> Result<DenseModule<B>> {
        let (i, o) = (self.inputs, self.outputs);
        // The gradients first: their allocation checks the size (overflow,
        // the device's limit) before the initial values are drawn on the host.
        let gw = b.zeros(o, i)?;
        let host_bytes = (i as u64 * o as u64).saturating_mul(8);
        if host_bytes > crate::backend::cpu::host_memory_bytes() {
            return Err(crate::Error::TooLarge {
                what: format!("the initial values of a {o}x{i} weight (drawn in f64 on the host)"),
                bytes: host_bytes,
                limit: crate::backend::cpu::host_memory_bytes(),
            });
        }
        let w = self.weight_init.sample(ctx.rng, i, o, i * o);
        let bias = match self.bias {
            true => {
                let values = self.bias_init.sample(ctx.rng, i, o, o);
                Some(Bias {
                    value: b.upload_f64(1, o, &values)?,
                    grad: b.zeros(1, o)?,
                })
            }
            false => None,
        };
        Ok(DenseModule {
            w: b.upload_f64(o, i, &w)?,
            gw,
            bias,
        })
    }
}

/// A dense layer on a backend.
pub(crate) struct DenseModule<B: Backend> {
    w: B::Tensor,
    gw: B::Tensor,
    bias: Option<Bias<B>>,
}

/// A bias row and its gradient.
struct Bias<B: Backend> {
    value: B::Tensor,
    grad: B::Tensor,
}

impl<B: Backend> Module<B> for DenseModule<B> {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        Stage::plain(b, rows, self.w.cols(), self.w.rows())
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        self.forward_fused(b, x, Activation::Identity, &mut stage.out)
            .map(|_| ())
    }

    fn forward_fused(
        &mut self,
        b: &B,
        x: &B::Tensor,
        act: Activation,
        out: &mut B::Tensor,
    ) -> Result<bool> {
        let spec = MatmulSpec {
            transpose_b: true,
            bias: self.bias.as_ref().map(|bias| &bias.value),
            act,
            ..Default::default()
        };
        b.matmul(x, &self.w, out, spec)?;
        Ok(true)
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
        let grads = DenseGrads {
            weight: &mut self.gw,
            bias: self.bias.as_mut().map(|bias| &mut bias.grad),
            input: grad_in.needed.then_some((grad_in.out, grad_in.gate)),
        };
        b.dense_backward(g, x, &self.w, grads)
    }

    fn takes_gate(&self) -> bool {
        true
    }

    fn parameters<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, B>>) {
        out.push(Parameter {
            name: format!("{prefix}weight"),
            shape: vec![self.w.rows(), self.w.cols()],
            value: &mut self.w,
            grad: &mut self.gw,
            is_weight: true,
        });
        if let Some(bias) = &mut self.bias {
            out.push(Parameter {
                name: format!("{prefix}bias"),
                shape: vec![bias.value.cols()],
                value: &mut bias.value,
                grad: &mut bias.grad,
                is_weight: false,
            });
        }
    }

    fn parameter_names(&self, prefix: &str, out: &mut Vec<String>) {
        out.push(format!("{prefix}weight"));
        if self.bias.is_some() {
            out.push(format!("{prefix}bias"));
        }
    }
}
