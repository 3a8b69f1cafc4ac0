//! BatchNorm1d: each feature normalised by the batch's statistics in
//! training (which update the running mean and unbiased variance), by the
//! running statistics in evaluation, then scaled by γ and shifted by β.

use super::{GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::Backend;
use crate::cost::Cost;
use crate::nn::model::{Buffer, Parameter};
use crate::nn::Mode;
use crate::{Error, Result};

/// A batch norm's description.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BatchNorm {
    /// Running-statistics momentum (PyTorch's default 0.1).
    pub momentum: f64,
    /// Added to the variance (PyTorch's default 1e-5).
    pub eps: f64,
}

impl LayerUnit for BatchNorm {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        if !(0.0..=1.0).contains(&self.momentum) {
            return Err(Error::InvalidParameter {
                name: "batch norm momentum",
                value: self.momentum,
                allowed: "in [0, 1]",
            });
        }
        if self.eps.is_nan() || self.eps <= 0.0 {
            return Err(Error::InvalidParameter {
                name: "batch norm eps",
                value: self.eps,
                allowed: "> 0",
            });
        }
        if input.flat().is_none() {
            return Err(Error::Model(format!(
                "layer {at}: BatchNorm1d needs flat features, got shape {input}"
            )));
        }
        Ok(input.clone())
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        let w = input.len() as u64;
        // Statistics, normalisation and its backward: about 10 per element.
        c.flops += 10 * n * w;
        c.parameters += 2 * w;
        *kept += n * w;
    }
}

impl BatchNorm {
    /// The built layer: γ = 1, β = 0, running mean 0 and variance 1.
    pub(crate) fn build<B: Backend>(&self, b: &B, width: usize) -> Result<BatchNormModule<B>> {
        Ok(BatchNormModule {
            gamma: b.upload_f64(1, width, &vec![1.0; width])?,
            beta: b.zeros(1, width)?,
            g_gamma: b.zeros(1, width)?,
            g_beta: b.zeros(1, width)?,
            running_mean: b.zeros(1, width)?,
            running_var: b.upload_f64(1, width, &vec![1.0; width])?,
            batches: 0,
            spec: *self,
            width,
        })
    }
}

/// A batch norm on a backend.
pub(crate) struct BatchNormModule<B: Backend> {
    gamma: B::Tensor,
    beta: B::Tensor,
    g_gamma: B::Tensor,
    g_beta: B::Tensor,
    running_mean: B::Tensor,
    running_var: B::Tensor,
    /// Training batches seen, as PyTorch's `num_batches_tracked`.
    batches: u64,
    spec: BatchNorm,
    width: usize,
}

impl<B: Backend> Module<B> for BatchNormModule<B> {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let mut stage = Stage::plain(b, rows, self.width, self.width)?;
        // The batch mean and 1/std, for the backward pass.
        stage.kept.saved = Some(b.zeros(2, self.width)?);
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, pass: Pass) -> Result<()> {
        match pass.mode {
            Mode::Train => {
                let saved = stage.kept.saved.as_mut().expect("made by stage()");
                b.batch_norm_train(
                    x,
                    &self.gamma,
                    &self.beta,
                    &mut self.running_mean,
                    &mut self.running_var,
                    saved,
                    &mut stage.out,
                    self.spec.momentum,
                    self.spec.eps,
                )?;
                self.batches += 1;
                Ok(())
            }
            Mode::Eval => b.batch_norm_eval(
                x,
                &self.gamma,
                &self.beta,
                &self.running_mean,
                &self.running_var,
                &mut stage.out,
                self.spec.eps,
            ),
        }
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
        // One kernel for all three gradients: γ and β need theirs even when
        // the input gradient is not read.
        let saved = kept.saved.as_ref().expect("made by stage()");
        b.batch_norm_backward(
            x,
            &self.gamma,
            saved,
            g,
            grad_in.out,
            &mut self.g_gamma,
            &mut self.g_beta,
        )
    }

    fn parameters<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, B>>) {
        out.push(Parameter {
            name: format!("{prefix}weight"),
            value: &mut self.gamma,
            grad: &mut self.g_gamma,
            is_weight: false,
        });
        out.push(Parameter {
            name: format!("{prefix}bias"),
            value: &mut self.beta,
            grad: &mut self.g_beta,
            is_weight: false,
        });
    }

    fn parameter_names(&self, prefix: &str, out: &mut Vec<String>) {
        out.push(format!("{prefix}weight"));
        out.push(format!("{prefix}bias"));
    }

    fn buffers<'a>(
        &'a mut self,
        prefix: &str,
        out: &mut Vec<Buffer<'a, B>>,
        counts: &mut Vec<(String, &'a mut u64)>,
    ) {
        out.push(Buffer {
            name: format!("{prefix}running_mean"),
            value: &mut self.running_mean,
        });
        out.push(Buffer {
            name: format!("{prefix}running_var"),
            value: &mut self.running_var,
        });
        counts.push((format!("{prefix}num_batches_tracked"), &mut self.batches));
    }
}
