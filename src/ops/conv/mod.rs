//! The primitives 2-D convolution and pooling are built from, over batches
//! of NCHW samples (a batch is `N × (C·H·W)`, each row one sample in
//! PyTorch's memory order):
//!
//! - `im2col`: the receptive fields of one group of channels as rows, so
//!   that a convolution is one product with the tuned matmul
//!   (`cols · Wᵀ`), and its weight gradient another (`δᵀ · cols`);
//! - `col2im`: the adjoint, gathering each input pixel's share of the
//!   columns' gradient (a gather, not a scatter: no atomics, and the order
//!   of additions is fixed, so both backends add alike);
//! - `channels_last` / `channels_first`: between NCHW rows and the
//!   `(N·H·W) × C` layout the products and batch norm work in;
//! - `pool2d` / `pool2d_backward`: max (saving each window's winner) and
//!   average pooling, and their gradients, again as gathers;
//! - `conv2d` / `conv2d_backward`: one group of a convolution, forward and
//!   backward. Their default (`lowered.rs`, what the GPU runs) is the
//!   composite of the primitives above and the matmul; the CPU backend
//!   runs its own (`cpu.rs`): one sample per task, its columns built
//!   transposed in cache and multiplied there, the output written straight
//!   into NCHW (no `channels_first`/`channels_last` pass, no batch-sized
//!   columns travelling through memory).
//!
//! The checks are here, the CPU kernels in `cpu.rs`, the GPU dispatch in
//! `gpu.rs` (shaders/conv/conv.wgsl); parity in `tests.rs`. The layers
//! that use them are in `src/nn/layers/conv.rs` and `pool.rs`.

pub(crate) mod cpu;
pub(crate) mod gpu;
pub(crate) mod lowered;
#[cfg(test)]
mod tests;

use crate::backend::checks::shape_err;
use crate::backend::Shaped;
use crate::{Error, Result};

/// A sliding 2-D window over images of `channels × height × width`, with
/// PyTorch's meaning of each setting (`nn.Conv2d`, `nn.MaxPool2d`); each
/// pair is `[along height, along width]`.
///
/// ```
/// use wgtrain::ops::conv::Window2d;
/// let w = Window2d::new([1, 28, 28], [5, 5]).padding([2, 2]);
/// assert_eq!(w.output_size().unwrap(), [28, 28]);
/// let pool = Window2d::new([6, 28, 28], [2, 2]).stride([2, 2]);
/// assert_eq!(pool.output_size().unwrap(), [14, 14]);
/// // A 5x5 kernel does not fit a 3x3 image without padding.
/// assert!(Window2d::new([1, 3, 3], [5, 5]).output_size().is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Window2d {
    /// Channels of the input image.
    pub channels: usize,
    /// Input height.
    pub height: usize,
    /// Input width.
    pub width: usize,
    /// Window size.
    pub kernel: [usize; 2],
    /// Step between windows.
    pub stride: [usize; 2],
    /// Implicit border on each side (zeros for convolution and average
    /// pooling, −∞ for max pooling).
    pub padding: [usize; 2],
    /// Spacing of the window's taps.
    pub dilation: [usize; 2],
}

impl Window2d {
    /// A `kernel` window over images of `[channels, height, width]`,
    /// stride 1, no padding, no dilation.
    pub fn new(image: [usize; 3], kernel: [usize; 2]) -> Window2d {
        Window2d {
            channels: image[0],
            height: image[1],
            width: image[2],
            kernel,
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }

    /// With this stride.
    pub fn stride(self, stride: [usize; 2]) -> Window2d {
        Window2d { stride, ..self }
    }

    /// With this padding.
    pub fn padding(self, padding: [usize; 2]) -> Window2d {
        Window2d { padding, ..self }
    }

    /// With this dilation.
    pub fn dilation(self, dilation: [usize; 2]) -> Window2d {
        Window2d { dilation, ..self }
    }

    /// Values of one input image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Taps of the window.
    pub fn taps(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }

    /// `[out_height, out_width]`, PyTorch's
    /// `⌊(size + 2·padding − dilation·(kernel − 1) − 1) / stride⌋ + 1`; an
    /// [`Error::Model`] when a setting is zero or the dilated kernel is
    /// larger than the padded input.
    pub fn output_size(&self) -> Result<[usize; 2]> {
        let mut out = [0; 2];
        let size = [self.height, self.width];
        for axis in 0..2 {
            let (k, s, p, d) = (
                self.kernel[axis],
                self.stride[axis],
                self.padding[axis],
                self.dilation[axis],
            );
            let along = ["height", "width"][axis];
            if k == 0 || s == 0 || d == 0 || size[axis] == 0 || self.channels == 0 {
                return Err(Error::Model(format!(
                    "window {self}: kernel, stride, dilation, channels and image size must be \
                     positive"
                )));
            }
            let span = d * (k - 1) + 1;
            if span > size[axis] + 2 * p {
                return Err(Error::Model(format!(
                    "window {self}: the kernel spans {span} along the {along}, more than the \
                     padded input's {}",
                    size[axis] + 2 * p
                )));
            }
            out[axis] = (size[axis] + 2 * p - span) / s + 1;
        }
        Ok(out)
    }

    /// Output positions per image (`out_height · out_width`); the window
    /// must be valid.
    pub(crate) fn positions(&self) -> usize {
        let [oh, ow] = self.output_size().expect("checked window");
        oh * ow
    }
}

impl std::fmt::Display for Window2d {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}x{} over {}x{}x{} (stride {}x{}, padding {}x{}, dilation {}x{})",
            self.kernel[0],
            self.kernel[1],
            self.channels,
            self.height,
            self.width,
            self.stride[0],
            self.stride[1],
            self.padding[0],
            self.padding[1],
            self.dilation[0],
            self.dilation[1]
        )
    }
}

/// Which pooling.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Pool {
    /// The window's largest value (its first, in row-major order, on ties,
    /// as PyTorch); padding counts as −∞.
    Max,
    /// The window's mean, padding counted as zeros (PyTorch's default
    /// `count_include_pad=True`).
    Average,
}

/// A block of channels `[first, first + count)` of a `channels`-channel image.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ChannelBlock {
    /// Channels of the whole image.
    pub channels: usize,
    /// First channel of the block.
    pub first: usize,
    /// Channels in the block.
    pub count: usize,
}

impl ChannelBlock {
    /// All `channels` channels.
    pub fn all(channels: usize) -> ChannelBlock {
        ChannelBlock {
            channels,
            first: 0,
            count: channels,
        }
    }
}

/// One group of a 2-D convolution: the window over the input images, and
/// the group's block of input and of output channels. The group's weight
/// is `output.count × (input.count·KH·KW)` (its rows of `nn.Conv2d`'s
/// `[out, in/groups, kh, kw]` weight), its bias `1 × output.count`.
///
/// ```
/// use wgtrain::ops::conv::{ChannelBlock, ConvGroup, Window2d};
/// // The second of two groups of a 4 → 6 channel 3×3 convolution.
/// let g = ConvGroup {
///     window: Window2d::new([4, 8, 8], [3, 3]).padding([1, 1]),
///     input: ChannelBlock { channels: 4, first: 2, count: 2 },
///     output: ChannelBlock { channels: 6, first: 3, count: 3 },
/// };
/// assert_eq!(g.weight_shape(), (3, 18));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGroup {
    /// The window over the whole input image.
    pub window: Window2d,
    /// The group's input channels.
    pub input: ChannelBlock,
    /// The group's output channels.
    pub output: ChannelBlock,
}

impl ConvGroup {
    /// `(rows, cols)` of the group's weight.
    pub fn weight_shape(&self) -> (usize, usize) {
        (self.output.count, self.input.count * self.window.taps())
    }
}

/// What the backward pass of one convolution group writes: its weight
/// gradient (shaped as the group's weight), its bias gradient if it has a
/// bias, and, unless the layer is the first, the input gradient of its
/// block of input channels (the other channels are left as they are).
#[derive(Debug)]
pub struct ConvGrads<'a, T> {
    /// `∂L/∂W` of the group.
    pub weight: &'a mut T,
    /// `∂L/∂b` of the group.
    pub bias: Option<&'a mut T>,
    /// `∂L/∂x`, the group's input channels.
    pub input: Option<&'a mut T>,
}

/// `x`: `N × (C·H·W)`; `w` the group's weight; `bias`: `1 × count`;
/// `out` (the output, or its gradient): `N × (O·P)`; `scratch`: the two
/// tensors of `scratch_shapes` (the device's
/// [`conv2d_scratch_shapes`](crate::Backend::conv2d_scratch_shapes)).
#[allow(clippy::too_many_arguments)]
pub(crate) fn check_conv2d(
    op: &'static str,
    x: &impl Shaped,
    w: &impl Shaped,
    bias: Option<&impl Shaped>,
    g: &ConvGroup,
    scratch: &[impl Shaped],
    scratch_shapes: [(usize, usize); 2],
    out: &impl Shaped,
) -> Result<()> {
    check_window(op, &g.window)?;
    check_block(op, &g.input, g.window.channels)?;
    check_block(op, &g.output, g.output.channels)?;
    let (rows, p) = (x.rows(), g.window.positions());
    expect(op, "the images", x, rows, g.window.image_len())?;
    let (wr, wc) = g.weight_shape();
    expect(op, "the weight", w, wr, wc)?;
    if let Some(bias) = bias {
        expect(op, "the bias", bias, 1, wr)?;
    }
    expect(op, "the output", out, rows, g.output.channels * p)?;
    if scratch.len() != 2 {
        return Err(shape_err(
            op,
            format!(
                "needs 2 scratch tensors (made by conv2d_scratch), got {}",
                scratch.len()
            ),
        ));
    }
    for (t, (r, c)) in scratch.iter().zip(scratch_shapes) {
        expect(op, "a scratch tensor (made by conv2d_scratch)", t, r, c)?;
    }
    Ok(())
}

fn check_window(op: &'static str, w: &Window2d) -> Result<()> {
    w.output_size().map(|_| ()).map_err(|e| match e {
        Error::Model(m) => shape_err(op, m),
        e => e,
    })
}

fn check_block(op: &'static str, block: &ChannelBlock, channels: usize) -> Result<()> {
    if block.channels != channels || block.count == 0 || block.first + block.count > channels {
        return Err(shape_err(
            op,
            format!(
                "channels {}..{} of {} do not lie in an image of {channels} channels",
                block.first,
                block.first + block.count,
                block.channels
            ),
        ));
    }
    Ok(())
}

fn expect(op: &'static str, what: &str, t: &impl Shaped, rows: usize, cols: usize) -> Result<()> {
    if t.rows() != rows || t.cols() != cols {
        return Err(shape_err(
            op,
            format!("{what} is {}, expected {rows}x{cols}", t.shape_str()),
        ));
    }
    Ok(())
}

/// `x`: `N × (C·H·W)`; `cols`: `(count·KH·KW) × (N·OH·OW)`.
pub(crate) fn check_im2col(
    op: &'static str,
    x: &impl Shaped,
    w: &Window2d,
    block: &ChannelBlock,
    cols: &impl Shaped,
) -> Result<()> {
    check_window(op, w)?;
    check_block(op, block, w.channels)?;
    expect(op, "the images", x, x.rows(), w.image_len())?;
    expect(
        op,
        "the columns",
        cols,
        block.count * w.taps(),
        x.rows() * w.positions(),
    )
}

/// The positions per channel of NCHW rows `x` (`N × (C·P)`) holding
/// `block`'s channels.
fn channel_positions(op: &'static str, x: &impl Shaped, block: &ChannelBlock) -> Result<usize> {
    check_block(op, block, block.channels)?;
    if !x.cols().is_multiple_of(block.channels) {
        return Err(shape_err(
            op,
            format!(
                "rows of {} values are not {} channels",
                x.cols(),
                block.channels
            ),
        ));
    }
    Ok(x.cols() / block.channels)
}

/// `x`: `N × (C·P)`; `out`: `(N·P) × count`.
pub(crate) fn check_channels_last(
    op: &'static str,
    x: &impl Shaped,
    block: &ChannelBlock,
    out: &impl Shaped,
) -> Result<()> {
    let positions = channel_positions(op, x, block)?;
    expect(op, "the output", out, x.rows() * positions, block.count)
}

/// A bias of one value per channel: `1 × count`.
pub(crate) fn check_bias(op: &'static str, bias: &impl Shaped, count: usize) -> Result<()> {
    expect(op, "the bias", bias, 1, count)
}

/// `x`: `N × (C·P)`; `rows`: `count × (N·P)`.
pub(crate) fn check_channel_rows(
    op: &'static str,
    x: &impl Shaped,
    block: &ChannelBlock,
    rows: &impl Shaped,
) -> Result<()> {
    let positions = channel_positions(op, x, block)?;
    expect(
        op,
        "the channel rows",
        rows,
        block.count,
        x.rows() * positions,
    )
}

/// `x`: `N × (C·H·W)`; `out` (and `argmax`): `N × (C·OH·OW)`.
pub(crate) fn check_pool(
    op: &'static str,
    x: &impl Shaped,
    w: &Window2d,
    out: &impl Shaped,
) -> Result<()> {
    check_window(op, w)?;
    expect(op, "the images", x, x.rows(), w.image_len())?;
    expect(
        op,
        "the pooled images",
        out,
        x.rows(),
        w.channels * w.positions(),
    )
}
