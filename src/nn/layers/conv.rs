//! `nn.Conv2d` over NCHW samples: one [`Backend::conv2d`] (and
//! [`Backend::conv2d_backward`]) per group of channels. On the GPU that is
//! lowered onto the tuned matmul (`im2col`, `cols·W_gᵀ + b_g`, back to
//! NCHW; see `src/ops/conv/lowered.rs`); the CPU runs each sample's
//! product in cache (`src/ops/conv/cpu.rs`).
//!
//! With one group the columns of the forward pass are kept for the weight
//! gradient; with more, each group's are rebuilt in the backward pass, and
//! the group's block of `W` is copied out and its gradient copied back
//! ([`copy_range`](crate::Backend::copy_range)).

use super::{BuildCtx, GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Backend, ChannelBlock, ConvGrads, ConvGroup, Shaped, Window2d};
use crate::cost::Cost;
use crate::nn::model::Parameter;
use crate::{Error, Init, Result};

/// A 2-D convolution's description, with `nn.Conv2d`'s settings and
/// defaults (stride 1, no padding, no dilation, one group, a bias, and
/// PyTorch's initialisation).
///
/// ```
/// use wgtrain::nn::{Conv2d, Shape};
/// use wgtrain::{Cpu, Sequential};
/// let spec = Sequential::with_input_shape(Shape::new(&[1, 28, 28]))
///     .conv2d(Conv2d::new(6, 5).padding(2))
///     .relu()
///     .max_pool2d(2)
///     .flatten()
///     .dense(10, wgtrain::Init::TorchDefault);
/// assert_eq!(spec.layers().len(), 5);
/// let model = spec.build(&Cpu::<f32>::new(), 0).unwrap();
/// assert_eq!(model.parameter_names()[0], "0.weight"); // [6, 1, 5, 5] in the state dict
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct Conv2d {
    /// Input channels (set from the stack's shape by
    /// [`Sequential::conv2d`](crate::Sequential::conv2d)).
    pub in_channels: usize,
    /// Output channels.
    pub out_channels: usize,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub stride: [usize; 2],
    /// Zeros added on each side, `[ph, pw]`.
    pub padding: [usize; 2],
    /// `[dh, dw]`.
    pub dilation: [usize; 2],
    /// Channel groups: each output channel sees `in_channels / groups` inputs.
    pub groups: usize,
    /// Whether there is a bias (`bias=False` before a batch norm).
    pub bias: bool,
    /// How the weight is drawn.
    pub weight_init: Init,
    /// How the bias is drawn.
    pub bias_init: Init,
}

impl Conv2d {
    /// `out_channels` square `kernel × kernel` filters, PyTorch's defaults otherwise.
    pub fn new(out_channels: usize, kernel: usize) -> Conv2d {
        Conv2d {
            in_channels: 0,
            out_channels,
            kernel: [kernel, kernel],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            groups: 1,
            bias: true,
            weight_init: Init::TorchDefault,
            bias_init: Init::TorchDefault,
        }
    }

    /// A non-square kernel.
    pub fn kernel(self, kh: usize, kw: usize) -> Conv2d {
        Conv2d {
            kernel: [kh, kw],
            ..self
        }
    }

    /// The same stride along both axes.
    pub fn stride(self, s: usize) -> Conv2d {
        Conv2d {
            stride: [s, s],
            ..self
        }
    }

    /// The same padding on every side.
    pub fn padding(self, p: usize) -> Conv2d {
        Conv2d {
            padding: [p, p],
            ..self
        }
    }

    /// The same dilation along both axes.
    pub fn dilation(self, d: usize) -> Conv2d {
        Conv2d {
            dilation: [d, d],
            ..self
        }
    }

    /// Channel groups.
    pub fn groups(self, groups: usize) -> Conv2d {
        Conv2d { groups, ..self }
    }

    /// Without a bias.
    pub fn no_bias(self) -> Conv2d {
        Conv2d {
            bias: false,
            ..self
        }
    }

    /// With these initialisers.
    pub fn init(self, weight_init: Init, bias_init: Init) -> Conv2d {
        Conv2d {
            weight_init,
            bias_init,
            ..self
        }
    }

    /// The window over an input image of shape `image`.
    pub(crate) fn window(&self, image: [usize; 3]) -> Window2d {
        Window2d::new(image, self.kernel)
            .stride(self.stride)
            .padding(self.padding)
            .dilation(self.dilation)
    }

    /// Taps of one filter over one group's channels: `in/groups · kh · kw`.
    fn fan_in(&self) -> usize {
        self.in_channels / self.groups.max(1) * self.kernel[0] * self.kernel[1]
    }
}

impl LayerUnit for Conv2d {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        let bad = |detail: String| Err(Error::Model(format!("layer {at}: conv2d {detail}")));
        let Some(image) = input.image() else {
            return bad(format!(
                "needs [channels, height, width] samples, got shape {input}"
            ));
        };
        if image[0] != self.in_channels {
            return bad(format!(
                "expects {} input channels, got shape {input}",
                self.in_channels
            ));
        }
        if self.out_channels == 0 || self.groups == 0 {
            return bad("needs at least one output channel and one group".into());
        }
        if !self.in_channels.is_multiple_of(self.groups)
            || !self.out_channels.is_multiple_of(self.groups)
        {
            return bad(format!(
                "{} input and {} output channels are not divisible by {} groups",
                self.in_channels, self.out_channels, self.groups
            ));
        }
        let [oh, ow] = self
            .window(image)
            .output_size()
            .map_err(|e| Error::Model(format!("layer {at}: conv2d {e}")))?;
        Ok(Shape::new(&[self.out_channels, oh, ow]))
    }

    fn cost(&self, input: &Shape, n: u64, first: bool, c: &mut Cost, kept: &mut u64) {
        let image = input.image().expect("validated");
        let positions = self.window(image).positions() as u64;
        let (o, k) = (self.out_channels as u64, self.fan_in() as u64);
        let products = if first { 2 } else { 3 };
        let macs = n * positions * o * k;
        c.matmul_flops += products * 2 * macs;
        c.flops += products * 2 * macs + if self.bias { 2 * n * positions * o } else { 0 };
        c.parameters += o * k + if self.bias { o } else { 0 };
        // The output, and the columns (one group's) for the weight gradient.
        *kept += n * positions * (o + k);
    }
}

impl Conv2d {
    /// The built layer, its weight then bias drawn from `ctx.rng`.
    pub(crate) fn build<B: Backend>(
        &self,
        b: &B,
        input: &Shape,
        ctx: &mut BuildCtx<'_>,
    ) -> Result<Conv2dModule<B>> {
        let image = input.image().expect("validated");
        let (o, k) = (self.out_channels, self.fan_in());
        let taps = self.kernel[0] * self.kernel[1];
        let weight = self.weight_init.sample(ctx.rng, k, o * taps, o * k);
        let bias = self
            .bias
            .then(|| self.bias_init.sample(ctx.rng, k, o * taps, o));
        let per_group = o / self.groups;
        let group = (self.groups > 1)
            .then(|| -> Result<_> {
                Ok(GroupBuffers {
                    w: b.zeros(per_group, k)?,
                    gw: b.zeros(per_group, k)?,
                    b: b.zeros(1, per_group)?,
                    gb: b.zeros(1, per_group)?,
                })
            })
            .transpose()?;
        Ok(Conv2dModule {
            w: b.upload_f64(o, k, &weight)?,
            gw: b.zeros(o, k)?,
            b: bias.as_ref().map(|v| b.upload_f64(1, o, v)).transpose()?,
            gb: bias.as_ref().map(|_| b.zeros(1, o)).transpose()?,
            group,
            window: self.window(image),
            groups: self.groups,
        })
    }
}

/// One group's block of the weight and bias and their gradients.
struct GroupBuffers<B: Backend> {
    w: B::Tensor,
    gw: B::Tensor,
    b: B::Tensor,
    gb: B::Tensor,
}

/// A convolution on a backend.
pub(crate) struct Conv2dModule<B: Backend> {
    w: B::Tensor,
    gw: B::Tensor,
    b: Option<B::Tensor>,
    gb: Option<B::Tensor>,
    /// With more than one group: the group's slices.
    group: Option<GroupBuffers<B>>,
    window: Window2d,
    groups: usize,
}

impl<B: Backend> Conv2dModule<B> {
    /// Output channels: the weight's rows.
    fn out_channels(&self) -> usize {
        self.w.rows()
    }

    fn in_block(&self, g: usize) -> ChannelBlock {
        let count = self.window.channels / self.groups;
        ChannelBlock {
            channels: self.window.channels,
            first: g * count,
            count,
        }
    }

    fn out_block(&self, g: usize) -> ChannelBlock {
        let count = self.out_channels() / self.groups;
        ChannelBlock {
            channels: self.out_channels(),
            first: g * count,
            count,
        }
    }

    /// The weight and bias group `g`'s products use: the whole tensors
    /// with one group, else the group's block copied out of them.
    fn group_params(&mut self, b: &B, g: usize) -> Result<(&B::Tensor, Option<&B::Tensor>)> {
        let Some(group) = self.group.as_mut() else {
            return Ok((&self.w, self.b.as_ref()));
        };
        let (wl, bl) = (group.w.len(), group.b.len());
        b.copy_range(&self.w, g * wl, &mut group.w, 0, wl)?;
        if let Some(bias) = &self.b {
            b.copy_range(bias, g * bl, &mut group.b, 0, bl)?;
        }
        Ok((&group.w, self.b.as_ref().map(|_| &group.b)))
    }

    /// Group `g`'s channels and window.
    fn group(&self, g: usize) -> ConvGroup {
        ConvGroup {
            window: self.window,
            input: self.in_block(g),
            output: self.out_block(g),
        }
    }
}

impl<B: Backend> Module<B> for Conv2dModule<B> {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let positions = self.window.positions();
        let mut stage = Stage::plain(
            b,
            rows,
            self.window.image_len(),
            self.out_channels() * positions,
        )?;
        // The device's working space: on the GPU the columns (in the
        // backward pass also their gradient) and the product in
        // channels-last order (its gradient there); on the CPU a chunk of
        // them per thread.
        stage.kept.scratch = b.conv2d_scratch(rows, &self.group(0))?;
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        let Stage { out, kept, .. } = stage;
        for g in 0..self.groups {
            let group = self.group(g);
            let (w, bias) = self.group_params(b, g)?;
            b.conv2d(x, w, bias, &group, &mut kept.scratch, out)?;
        }
        Ok(())
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
        let mut grad_in = grad_in.needed.then_some(grad_in.out);
        let has_bias = self.b.is_some();
        for index in 0..self.groups {
            let group = self.group(index);
            // The group's block of the weight (a no-op with one group).
            self.group_params(b, index)?;
            let Some(block) = self.group.as_mut() else {
                // One group: the layer's own tensors, and the columns the
                // forward pass left are still this group's.
                let grads = ConvGrads {
                    weight: &mut self.gw,
                    bias: self.gb.as_mut(),
                    input: grad_in.as_deref_mut(),
                };
                return b.conv2d_backward(x, &self.w, g, &group, &mut kept.scratch, true, grads);
            };
            let grads = ConvGrads {
                weight: &mut block.gw,
                bias: has_bias.then_some(&mut block.gb),
                input: grad_in.as_deref_mut(),
            };
            b.conv2d_backward(x, &block.w, g, &group, &mut kept.scratch, false, grads)?;
            let wl = block.gw.len();
            b.copy_range(&block.gw, 0, &mut self.gw, index * wl, wl)?;
            if let Some(gb) = self.gb.as_mut() {
                let bl = block.gb.len();
                b.copy_range(&block.gb, 0, gb, index * bl, bl)?;
            }
        }
        Ok(())
    }

    fn parameters<'a>(&'a mut self, prefix: &str, out: &mut Vec<Parameter<'a, B>>) {
        let [kh, kw] = self.window.kernel;
        let outs = self.out_channels();
        let shape = vec![outs, self.window.channels / self.groups, kh, kw];
        out.push(Parameter {
            name: format!("{prefix}weight"),
            shape,
            value: &mut self.w,
            grad: &mut self.gw,
            is_weight: true,
        });
        if let (Some(value), Some(grad)) = (self.b.as_mut(), self.gb.as_mut()) {
            out.push(Parameter {
                name: format!("{prefix}bias"),
                shape: vec![outs],
                value,
                grad,
                is_weight: false,
            });
        }
    }

    fn parameter_names(&self, prefix: &str, out: &mut Vec<String>) {
        out.push(format!("{prefix}weight"));
        if self.b.is_some() {
            out.push(format!("{prefix}bias"));
        }
    }
}
