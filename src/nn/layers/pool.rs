//! `nn.MaxPool2d` and `nn.AvgPool2d` over NCHW samples: max pooling keeps
//! each window's winner for its backward pass, which sends the gradient
//! there; average pooling spreads it evenly over the window.

use super::{GradIn, Kept, LayerUnit, Module, Pass, Shape, Stage};
use crate::backend::{Backend, Pool, Window2d};
use crate::cost::Cost;
use crate::{Error, Result};

/// A pooling layer's description, with PyTorch's settings: the stride
/// defaults to the kernel, padding to 0 (at most half the kernel),
/// dilation to 1 (max pooling only); the average counts padding as zeros
/// (`count_include_pad=True`), and output sizes round down
/// (`ceil_mode=False`).
///
/// ```
/// use wgtrain::nn::{Pool2d, Shape};
/// use wgtrain::Sequential;
/// let spec = Sequential::with_input_shape(Shape::new(&[3, 7, 7]))
///     .pool2d(Pool2d::max(3).stride(2).padding(1));
/// assert_eq!(spec.output_shape(), &Shape::new(&[3, 4, 4]));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pool2d {
    /// Max or average.
    pub kind: Pool,
    /// `[kh, kw]`.
    pub kernel: [usize; 2],
    /// `[sh, sw]`.
    pub stride: [usize; 2],
    /// `[ph, pw]`.
    pub padding: [usize; 2],
    /// `[dh, dw]` (max pooling).
    pub dilation: [usize; 2],
}

impl Pool2d {
    /// Max pooling over `kernel × kernel` windows, stride `kernel`.
    pub fn max(kernel: usize) -> Pool2d {
        Pool2d {
            kind: Pool::Max,
            kernel: [kernel, kernel],
            stride: [kernel, kernel],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }

    /// Average pooling over `kernel × kernel` windows, stride `kernel`.
    pub fn average(kernel: usize) -> Pool2d {
        Pool2d {
            kind: Pool::Average,
            ..Pool2d::max(kernel)
        }
    }

    /// The same stride along both axes.
    pub fn stride(self, s: usize) -> Pool2d {
        Pool2d {
            stride: [s, s],
            ..self
        }
    }

    /// The same padding on every side.
    pub fn padding(self, p: usize) -> Pool2d {
        Pool2d {
            padding: [p, p],
            ..self
        }
    }

    /// The same dilation along both axes (max pooling).
    pub fn dilation(self, d: usize) -> Pool2d {
        Pool2d {
            dilation: [d, d],
            ..self
        }
    }

    fn window(&self, image: [usize; 3]) -> Window2d {
        Window2d::new(image, self.kernel)
            .stride(self.stride)
            .padding(self.padding)
            .dilation(self.dilation)
    }

    /// `max_pool2d` or `avg_pool2d`: what errors and descriptions call it.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            Pool::Max => "max_pool2d",
            Pool::Average => "avg_pool2d",
        }
    }
}

impl LayerUnit for Pool2d {
    fn output_shape(&self, input: &Shape, at: &str) -> Result<Shape> {
        let name = self.kind_name();
        let bad = |detail: String| Err(Error::Model(format!("layer {at}: {name} {detail}")));
        let Some(image) = input.image() else {
            return bad(format!(
                "needs [channels, height, width] samples, got shape {input}"
            ));
        };
        if (0..2).any(|a| 2 * self.padding[a] > self.kernel[a]) {
            return bad(format!(
                "padding {:?} is more than half the kernel {:?} (PyTorch's limit)",
                self.padding, self.kernel
            ));
        }
        if self.kind == Pool::Average && self.dilation != [1, 1] {
            return bad("has no dilation (nn.AvgPool2d)".into());
        }
        let [oh, ow] = self
            .window(image)
            .output_size()
            .map_err(|e| Error::Model(format!("layer {at}: {name} {e}")))?;
        Ok(Shape::new(&[image[0], oh, ow]))
    }

    fn cost(&self, input: &Shape, n: u64, _first: bool, c: &mut Cost, kept: &mut u64) {
        let image = input.image().expect("validated");
        let outputs = (image[0] * self.window(image).positions()) as u64;
        let taps = (self.kernel[0] * self.kernel[1]) as u64;
        // A comparison or addition per tap, forward and backward.
        c.flops += 2 * n * outputs * taps;
        *kept += 2 * n * outputs;
    }
}

impl Pool2d {
    pub(crate) fn build(&self, input: &Shape) -> PoolModule {
        PoolModule {
            kind: self.kind,
            window: self.window(input.image().expect("validated")),
        }
    }
}

/// A pooling layer on a backend: no parameters.
pub(crate) struct PoolModule {
    kind: Pool,
    window: Window2d,
}

impl<B: Backend> Module<B> for PoolModule {
    fn stage(&self, b: &B, rows: usize) -> Result<Stage<B>> {
        let outputs = self.window.channels * self.window.positions();
        let mut stage = Stage::plain(b, rows, self.window.image_len(), outputs)?;
        if self.kind == Pool::Max {
            stage.kept.saved = Some(b.zeros(rows, outputs)?);
        }
        Ok(stage)
    }

    fn forward(&mut self, b: &B, x: &B::Tensor, stage: &mut Stage<B>, _: Pass) -> Result<()> {
        let winners = stage.kept.saved.as_mut();
        b.pool2d(self.kind, x, &self.window, &mut stage.out, winners)
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
            b.pool2d_backward(self.kind, &self.window, g, kept.saved.as_ref(), grad_in.out)?;
        }
        Ok(())
    }
}
