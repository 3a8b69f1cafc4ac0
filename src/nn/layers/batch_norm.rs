//! BatchNorm1d over flat features, BatchNorm2d over the channels of
//! images: each feature (channel) normalised by the batch's statistics in
//! training (over the batch, and for images over every position too; they
//! update the running mean and unbiased variance), by the running
//! statistics in evaluation, then scaled by γ and shifted by β.
//!
//! Images are brought to channels-last order (`(N·H·W) × C`), normalised
//! there by the same kernels as flat features, and brought back.

use super::{GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Backend, ChannelBlock};
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
        if input.flat().is_none() && input.image().is_none() {
            return Err(Error::Model(format!(
                "layer {at}: batch norm needs flat features (BatchNorm1d) or [channels, height, \
                 width] images (BatchNorm2d), got shape {input}"
            )));
        }
        Ok(input.clone())
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        let w = input.len() as u64;
        // Statistics, normalisation and its backward: about 10 per element.
        c.flops += 10 * n * w;
        c.parameters += 2 * features(input) as u64;
        *kept += n * w;
    }
}

/// What gets its own statistics: the features of a flat input, the
/// channels of an image.
fn features(input: &Shape) -> usize {
    input.image().map_or(input.len(), |[c, _, _]| c)
}

impl BatchNorm {
    /// The built layer: γ = 1, β = 0, running mean 0 and variance 1.
    pub(crate) fn build<B: Backend>(&self, b: &B, input: &Shape) -> Result<BatchNormModule<B>> {
        let width = features(input);
        Ok(BatchNormModule {
            positions: input.len() / width,
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
    /// Features (channels) normalised.
    width: usize,
    /// Positions per channel (1 for flat features).
    positions: usize,
}

impl<B: Backend> BatchNormModule<B> {
    /// Normalises `x` (channels-last or flat) into `out`.
    fn normalise(
        &mut self,
        b: &B,
        x: &B::Tensor,
        saved: &mut B::Tensor,
        out: &mut B::Tensor,
        mode: Mode,
    ) -> Result<()> {
        match mode {
            Mode::Train => {
                b.batch_norm_train(
                    x,
                    &self.gamma,
                    &self.beta,
                    &mut self.running_mean,
                    &mut self.running_var,
                    saved,
                    out,
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
                out,
                self.spec.eps,
            ),
        }
    }
}

impl<B: Backend> Module<B> for BatchNormModule<B> {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let len = self.width * self.positions;
        let mut stage = Stage::plain(b, rows, len, len)?;
        // The batch mean and 1/std, for the backward pass.
        stage.kept.saved = Some(b.zeros(2, self.width)?);
        // Images: the input, the output (in the backward pass the output's
        // gradient) and the input's gradient, channels-last.
        if self.positions > 1 {
            stage.kept.scratch = (0..3)
                .map(|_| b.zeros(rows * self.positions, self.width))
                .collect::<Result<_>>()?;
        }
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, pass: Pass) -> Result<()> {
        let Kept { saved, scratch, .. } = &mut stage.kept;
        let saved = saved.as_mut().expect("made by stage()");
        if self.positions == 1 {
            return self.normalise(b, x, saved, &mut stage.out, pass.mode);
        }
        let all = ChannelBlock::all(self.width);
        let [input, output, _] = &mut scratch[..] else {
            unreachable!("made by stage()")
        };
        b.channels_last(x, &all, input)?;
        self.normalise(b, input, saved, output, pass.mode)?;
        b.channels_first(output, &all, &mut stage.out)
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
        if self.positions == 1 {
            return b.batch_norm_backward(
                x,
                &self.gamma,
                saved,
                g,
                grad_in.out,
                &mut self.g_gamma,
                &mut self.g_beta,
            );
        }
        let all = ChannelBlock::all(self.width);
        let [input, grad_out, input_grad] = &mut kept.scratch[..] else {
            unreachable!("made by stage()")
        };
        b.channels_last(g, &all, grad_out)?;
        b.batch_norm_backward(
            input,
            &self.gamma,
            saved,
            grad_out,
            input_grad,
            &mut self.g_gamma,
            &mut self.g_beta,
        )?;
        b.channels_first(input_grad, &all, grad_in.out)
    }

    fn parameters<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, B>>) {
        out.push(Parameter {
            name: format!("{prefix}weight"),
            shape: vec![self.width],
            value: &mut self.gamma,
            grad: &mut self.g_gamma,
            is_weight: false,
        });
        out.push(Parameter {
            name: format!("{prefix}bias"),
            shape: vec![self.width],
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
