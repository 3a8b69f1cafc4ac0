//! A layer of radial-basis-function units (seed 001): `hⱼ = exp(−βⱼ‖x − cⱼ‖²)`
//! with learned centres `cⱼ` (`{i}.centres`, `[units, inputs]`) and widths
//! `βⱼ` (`{i}.beta`, `[units]`). A dense layer after it makes the seed's
//! RBF network `a = Σⱼ uⱼ hⱼ(x)`. The op is `src/ops/rbf`.

use super::{BuildCtx, GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Backend, Shaped};
use crate::cost::Cost;
use crate::nn::model::Parameter;
use crate::{Error, Init, Result};

/// An RBF layer's description.
///
/// ```
/// use wgtrain::{Cpu, Init, Sequential};
/// // Two inputs, 16 RBF units, a linear read-out: the seed's RBF network.
/// let spec = Sequential::new(2).rbf(16, 1.0).dense(1, Init::XavierUniform);
/// let model = spec.build(&Cpu::<f64>::new(), 0).unwrap();
/// assert_eq!(model.parameter_names()[..2], ["0.centres", "0.beta"]);
/// assert!(Sequential::new(2).rbf(4, -1.0).dense(1, Init::XavierUniform).validate().is_err());
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Rbf {
    /// Input width.
    pub inputs: usize,
    /// Units (centres).
    pub units: usize,
    /// How the centres are drawn (`Init::Normal(1.0)` by default: inputs
    /// standardised to unit variance).
    pub centre_init: Init,
    /// Every unit's starting width β > 0.
    pub beta: f64,
}

impl LayerUnit for Rbf {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        if !(self.beta > 0.0 && self.beta.is_finite()) {
            return Err(Error::InvalidParameter {
                name: "rbf beta",
                value: self.beta,
                allowed: "finite and > 0",
            });
        }
        match input.flat() {
            Some(width) if width == self.inputs && self.units > 0 => {
                Ok(Shape::features(self.units))
            }
            _ => Err(Error::Model(format!(
                "layer {at}: rbf of {} units on {} inputs after shape {input}",
                self.units, self.inputs
            ))),
        }
    }

    fn cost(&self, _input: &Shape, n: u64, first: bool, c: &mut Cost, kept: &mut u64) {
        let (k, m) = (self.inputs as u64, self.units as u64);
        // A difference, a square and an addition per (row, unit, feature),
        // forward; two such passes backward (three with the input's).
        let passes = if first { 3 } else { 4 };
        c.flops += passes * 3 * n * m * k;
        c.parameters += m * k + m;
        *kept += 2 * n * m;
    }
}

impl Rbf {
    pub(crate) fn build<B: Backend>(&self, b: &B, ctx: &mut BuildCtx<'_>) -> Result<RbfModule<B>> {
        let (k, m) = (self.inputs, self.units);
        let centres = self.centre_init.sample(ctx.rng, k, m, m * k);
        Ok(RbfModule {
            centres: b.upload_f64(m, k, &centres)?,
            grad_centres: b.zeros(m, k)?,
            beta: b.upload_f64(1, m, &vec![self.beta; m])?,
            grad_beta: b.zeros(1, m)?,
        })
    }
}

/// RBF units on a backend.
pub(crate) struct RbfModule<B: Backend> {
    centres: B::Tensor,
    grad_centres: B::Tensor,
    beta: B::Tensor,
    grad_beta: B::Tensor,
}

impl<B: Backend> Module<B> for RbfModule<B> {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let mut stage = Stage::plain(b, rows, self.centres.cols(), self.centres.rows())?;
        stage.kept.saved = Some(b.zeros(rows, self.centres.rows())?);
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        let dist = stage.kept.saved.as_mut().expect("made by stage");
        b.rbf_forward(x, &self.centres, &self.beta, &mut stage.out, dist)
    }

    fn backward(
        &mut self,
        b: &B,
        x: &B::Tensor,
        g: &B::Tensor,
        kept: &mut Kept<B>,
        grad_in: GradIn<'_, B>,
        _: Pass,
    ) -> Result<()> {
        // The outputs are recomputed from the kept distances inside.
        let dist = kept.saved.as_ref().expect("made by stage");
        b.rbf_backward(
            x,
            &self.centres,
            &self.beta,
            dist,
            g,
            &mut self.grad_centres,
            &mut self.grad_beta,
            grad_in.needed.then_some(grad_in.out),
        )
    }

    fn parameters<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, B>>) {
        out.push(Parameter {
            name: format!("{prefix}centres"),
            shape: vec![self.centres.rows(), self.centres.cols()],
            value: &mut self.centres,
            grad: &mut self.grad_centres,
            // Not a weight: no decay pulling the centres to the origin.
            is_weight: false,
        });
        out.push(Parameter {
            name: format!("{prefix}beta"),
            shape: vec![self.beta.cols()],
            value: &mut self.beta,
            grad: &mut self.grad_beta,
            is_weight: false,
        });
    }

    fn parameter_names(&self, prefix: &str, out: &mut Vec<String>) {
        out.push(format!("{prefix}centres"));
        out.push(format!("{prefix}beta"));
    }
}
