//! The GPU dispatch of the convolution and pooling primitives
//! (shaders/conv/conv.wgsl), and the GPU's convolution: the lowered form,
//! or its products as an implicit GEMM (shaders/conv/implicit.wgsl).

use super::lowered::{self, Columns};
use super::{ChannelBlock, ConvGrads, ConvGroup, Pool, Window2d};
use crate::backend::Kernels;
use crate::gpu::runtime::Buf;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::shaders::{CONV_IMPLICIT, CONV_IMPLICIT_SHARED};
use crate::gpu::{Gpu, GpuTensor, CONV, WG};
use crate::ops::matmul::gpu::{register_split_k, run_product, Product, MATMUL_TILE};
use crate::{MatmulKernel, Result, Shaped};

/// `Params` of shaders/conv/conv.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, Default, bytemuck::Pod, bytemuck::Zeroable)]
struct ConvParams {
    n: u32,
    channels: u32,
    height: u32,
    width: u32,
    kh: u32,
    kw: u32,
    sh: u32,
    sw: u32,
    ph: u32,
    pw: u32,
    dh: u32,
    dw: u32,
    oh: u32,
    ow: u32,
    first: u32,
    count: u32,
    positions: u32,
    average: u32,
    winners: u32,
    columns: u32,
    bias: u32,
    _pad: [u32; 3],
}

impl ConvParams {
    fn window(n: usize, w: &Window2d) -> ConvParams {
        let [oh, ow] = w.output_size().expect("checked window");
        ConvParams {
            n: n as u32,
            channels: w.channels as u32,
            height: w.height as u32,
            width: w.width as u32,
            kh: w.kernel[0] as u32,
            kw: w.kernel[1] as u32,
            sh: w.stride[0] as u32,
            sw: w.stride[1] as u32,
            ph: w.padding[0] as u32,
            pw: w.padding[1] as u32,
            dh: w.dilation[0] as u32,
            dw: w.dilation[1] as u32,
            oh: oh as u32,
            ow: ow as u32,
            ..ConvParams::default()
        }
    }

    fn block(self, block: &ChannelBlock) -> ConvParams {
        ConvParams {
            first: block.first as u32,
            count: block.count as u32,
            ..self
        }
    }

    /// The pipeline constants of shaders/conv/conv.wgsl: the divisors of
    /// the index arithmetic, from these parameters.
    fn constants(&self) -> [(&'static str, f64); 9] {
        let c = |v: u32| v.max(1) as f64;
        [
            ("KH", c(self.kh)),
            ("KW", c(self.kw)),
            ("OW", c(self.ow)),
            ("OHW", c(self.oh * self.ow)),
            ("COUNT", c(self.count)),
            ("IW", c(self.width)),
            (
                "PLANE",
                c(if self.positions > 0 {
                    self.positions
                } else {
                    self.height * self.width
                }),
            ),
            ("STRIDE_Y", c(self.sh)),
            ("STRIDE_X", c(self.sw)),
        ]
    }
}

fn run(gpu: &Gpu, entry: &'static str, params: ConvParams, binds: &[Bind<'_>]) -> Result<()> {
    let constants = params.constants();
    let kernel = Kernel {
        shader: &CONV,
        entry,
        constants: &constants,
    };
    let groups = gpu.ctx.linear_groups(params.n as usize, WG);
    gpu.ctx.dispatch(&kernel, &params, binds, groups)
}

pub(crate) fn im2col(
    gpu: &Gpu,
    x: &GpuTensor,
    w: &Window2d,
    block: &ChannelBlock,
    cols: &mut GpuTensor,
) -> Result<()> {
    // One invocation per output line of each tap of each sample.
    let lines = cols.len() / w.output_size()?[1];
    let params = ConvParams {
        columns: cols.cols() as u32,
        ..ConvParams::window(lines, w).block(block)
    };
    run(
        gpu,
        "im2col",
        params,
        &[Bind::read(&x.buf), Bind::write(&cols.buf)],
    )
}

pub(crate) fn col2im(
    gpu: &Gpu,
    cols: &GpuTensor,
    w: &Window2d,
    block: &ChannelBlock,
    x: &mut GpuTensor,
) -> Result<()> {
    let n = x.rows() * block.count * w.height * w.width;
    let params = ConvParams {
        columns: cols.cols() as u32,
        ..ConvParams::window(n, w).block(block)
    };
    run(
        gpu,
        "col2im",
        params,
        &[Bind::read(&cols.buf), Bind::write(&x.buf)],
    )
}

/// Whether group `g` runs its forward product and weight gradient with the
/// columns gathered as they are read ([`implicit_product`]) rather than
/// written by im2col: on the register kernels, when its output channels fit
/// one row of their workgroup tiles. Then each gathered value feeds one
/// workgroup; with more channels every row of tiles gathers it again.
/// Measured on lavapipe (PERFORMANCE.md, "Convolutions"): LeNet's first
/// layer (6 channels) forward 8.3 ms implicit against 12.4 ms for im2col and
/// `W·cols`, its second (16) 7.8 against 13.1 (4.3 with shared reads of A);
/// at 64 channels im2col won, 177 ms to 297, before the shared reads, and
/// after them the two 64-channel layers were no faster implicit in
/// interleaved runs. The tiled kernels of real GPUs have no implicit form.
pub(crate) fn runs_implicit(gpu: &Gpu, g: &ConvGroup) -> bool {
    gpu.settings().matmul_kernel != MatmulKernel::Workgroup
        && g.output.count <= MATMUL_TILE.rows as usize
}

/// [`Kernels::conv2d`] on the GPU: implicit where [`runs_implicit`] says,
/// then back to NCHW with the bias; else the lowered form.
pub(crate) fn conv2d(
    gpu: &Gpu,
    x: &GpuTensor,
    w: &GpuTensor,
    bias: Option<&GpuTensor>,
    g: &ConvGroup,
    scratch: &mut [GpuTensor],
    out: &mut GpuTensor,
) -> Result<()> {
    if !runs_implicit(gpu, g) {
        return lowered::conv2d(gpu, x, w, bias, g, scratch, out);
    }
    let [_, z] = scratch else {
        unreachable!("checked: two scratch tensors")
    };
    implicit_product(gpu, w, x, g, ImplicitProduct::Forward, z)?;
    gpu.channel_planes(z, &g.output, bias, out)
}

/// Whether group `g`'s input gradient, for `samples` images, runs as the
/// implicit forward product of its transposed convolution
/// ([`ImplicitProduct::InputGrad`]) into the columns' scratch `cols`
/// rather than as `Wᵀ·δz` and col2im: at stride 1, on the register kernels,
/// when the group's input channels (the product's rows) fill at least a
/// quarter of a tile's rows and at most one, and its rows fit in `cols`.
/// Measured on lavapipe (PERFORMANCE.md, "Convolutions"), four interleaved
/// rounds at batch 64: 16 input channels (5×5) 37–48 ms against 35–63
/// lowered, 32 (cnn-bn's conv2) 145–183 against 134–186; even at 6 and 64;
/// at 1 (LeNet's conv1, whose input gradient training never asks for)
/// 12–34 against 10–22, as each row of lanes gathers its `δ` values for
/// one useful row.
pub(crate) fn runs_implicit_input_grad(
    gpu: &Gpu,
    g: &ConvGroup,
    samples: usize,
    cols: &GpuTensor,
) -> bool {
    let w = &g.window;
    let tile_rows = MATMUL_TILE.rows as usize;
    gpu.settings().matmul_kernel != MatmulKernel::Workgroup
        && w.stride == [1, 1]
        && (tile_rows / 4..=tile_rows).contains(&g.input.count)
        && cols.len() >= g.input.count * samples * w.height * w.width
}

/// [`Kernels::conv2d_backward`] on the GPU: the lowered form, with the
/// weight gradient implicit where [`runs_implicit`] says (the forward pass
/// then kept no columns, whatever `columns_kept` says) and the input
/// gradient where [`runs_implicit_input_grad`] says.
#[allow(clippy::too_many_arguments)]
pub(crate) fn conv2d_backward(
    gpu: &Gpu,
    x: &GpuTensor,
    w: &GpuTensor,
    grad_out: &GpuTensor,
    g: &ConvGroup,
    scratch: &mut [GpuTensor],
    columns_kept: bool,
    grads: ConvGrads<'_, GpuTensor>,
) -> Result<()> {
    let weight_grad = |dz: &GpuTensor, gw: &mut GpuTensor| {
        implicit_product(gpu, dz, x, g, ImplicitProduct::WeightGrad, gw)
    };
    let columns = if runs_implicit(gpu, g) {
        Columns::Implicit(&weight_grad)
    } else {
        Columns::kept(columns_kept)
    };
    let implicit_input = runs_implicit_input_grad(gpu, g, x.rows(), &scratch[0]);
    let (grads, grad_in) = match grads.input {
        Some(grad_in) if implicit_input => {
            let lowered = ConvGrads {
                input: None,
                ..grads
            };
            (lowered, grad_in)
        }
        _ => return lowered::conv2d_backward(gpu, x, w, grad_out, g, scratch, columns, grads),
    };
    lowered::conv2d_backward(gpu, x, w, grad_out, g, scratch, columns, grads)?;
    // The columns' scratch, read by the weight gradient above, takes the
    // input gradient's rows.
    let rows = &mut scratch[0];
    implicit_product(gpu, w, grad_out, g, ImplicitProduct::InputGrad, rows)?;
    let positions = g.window.height * g.window.width;
    planes(
        gpu,
        &rows.buf,
        x.rows() * positions,
        &g.input,
        None,
        grad_in,
    )
}

/// Which of the lowered convolution's products [`implicit_product`] runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ImplicitProduct {
    /// `z = W·cols`.
    Forward,
    /// `∂W = δz·colsᵀ`.
    WeightGrad,
    /// `δx` of a stride-1 convolution, one row per input channel of the
    /// group: the forward product of the transposed convolution,
    /// `W'·cols(δ)` (shaders/conv/implicit.wgsl), in place of `Wᵀ·δz`
    /// and col2im.
    InputGrad,
}

/// `out = lhs·cols` ([`ImplicitProduct::Forward`], `lhs` = W) or
/// `lhs·colsᵀ` ([`ImplicitProduct::WeightGrad`], `lhs` = δz) for group
/// `g`, with `cols = im2col(images)` gathered as it is read
/// (shaders/conv/implicit.wgsl) instead of written and read back; or
/// ([`ImplicitProduct::InputGrad`], `lhs` = W, `images` = δ in NCHW)
/// the input gradient's rows, `g.input.count × (N·H·W)`.
pub(crate) fn implicit_product(
    gpu: &Gpu,
    lhs: &GpuTensor,
    images: &GpuTensor,
    g: &ConvGroup,
    which: ImplicitProduct,
    out: &mut GpuTensor,
) -> Result<()> {
    let w = &g.window;
    let [oh, ow] = w.output_size()?;
    let [kh, kw] = w.kernel;
    let (dims, gather) = match which {
        ImplicitProduct::Forward | ImplicitProduct::WeightGrad => {
            let positions = images.rows() * oh * ow;
            let taps = g.input.count * kh * kw;
            let dims = if which == ImplicitProduct::WeightGrad {
                (lhs.rows(), taps, positions)
            } else {
                (lhs.rows(), positions, taps)
            };
            (dims, Gather::forward(w, g.input.first))
        }
        ImplicitProduct::InputGrad => {
            let positions = images.rows() * w.height * w.width;
            let dims = (g.input.count, positions, g.output.count * kh * kw);
            (dims, Gather::transposed(w, [oh, ow], g.output.first))
        }
    };
    let (_, n, k) = dims;
    let flag = |on: bool| on as u32 as f64;
    let constants = [
        ("TB", flag(which == ImplicitProduct::WeightGrad)),
        ("FLIP_A", flag(which == ImplicitProduct::InputGrad)),
        ("KH", kh as f64),
        ("KW", kw as f64),
        ("OW", gather.output[1] as f64),
        ("OHW", (gather.output[0] * gather.output[1]) as f64),
        ("IH", gather.image[0] as f64),
        ("IW", gather.image[1] as f64),
        ("IMAGE", images.cols() as f64),
        ("FIRST", gather.first as f64),
        ("SY", gather.stride[0] as f64),
        ("SX", gather.stride[1] as f64),
        ("PY", gather.padding[0] as f64),
        ("PX", gather.padding[1] as f64),
        ("DY", w.dilation[0] as f64),
        ("DX", w.dilation[1] as f64),
    ];
    let shared =
        gpu.shares_subgroups() && gpu.settings().matmul_kernel == MatmulKernel::RegistersShared;
    let product = Product {
        shader: if shared {
            &CONV_IMPLICIT_SHARED
        } else {
            &CONV_IMPLICIT
        },
        tile: MATMUL_TILE,
        split_k: register_split_k(dims.0, n, k),
        dims,
        constants: &constants,
        partial_constants: &constants,
        act_param: 0.0,
        gate_param: 0.0,
    };
    let operands = [&lhs.buf, &images.buf, &*gpu.dummy, &*gpu.dummy];
    run_product(gpu, &product, operands, &out.buf)
}

/// What shaders/conv/implicit.wgsl gathers its columns from: images of
/// `image` (height, width) whose channels start at `first`, windows over
/// them at `output` positions, `stride` apart, from `-padding`.
struct Gather {
    image: [usize; 2],
    output: [usize; 2],
    first: usize,
    stride: [usize; 2],
    padding: [i64; 2],
}

impl Gather {
    /// The convolution's own columns, over its input.
    fn forward(w: &Window2d, first: usize) -> Gather {
        Gather {
            image: [w.height, w.width],
            output: w.output_size().expect("checked window"),
            first,
            stride: w.stride,
            padding: w.padding.map(|p| p as i64),
        }
    }

    /// The columns of its transposed convolution (stride 1 only), over
    /// `δ` of `[oh, ow]`, back to the input's size: padding `(K−1)·D − P`.
    fn transposed(w: &Window2d, output: [usize; 2], first: usize) -> Gather {
        let reach = |axis: usize| ((w.kernel[axis] - 1) * w.dilation[axis]) as i64;
        Gather {
            image: output,
            output: [w.height, w.width],
            first,
            stride: [1, 1],
            padding: [0, 1].map(|axis| reach(axis) - w.padding[axis] as i64),
        }
    }
}

fn layout(n: usize, positions: usize, block: &ChannelBlock) -> ConvParams {
    ConvParams {
        n: n as u32,
        channels: block.channels as u32,
        positions: positions as u32,
        ..ConvParams::default()
    }
    .block(block)
}

pub(crate) fn channels_last(
    gpu: &Gpu,
    x: &GpuTensor,
    block: &ChannelBlock,
    out: &mut GpuTensor,
) -> Result<()> {
    let params = layout(out.len(), x.cols() / block.channels, block);
    run(
        gpu,
        "channels_last",
        params,
        &[Bind::read(&x.buf), Bind::write(&out.buf)],
    )
}

pub(crate) fn channels_first(
    gpu: &Gpu,
    z: &GpuTensor,
    block: &ChannelBlock,
    out: &mut GpuTensor,
) -> Result<()> {
    let params = layout(z.len(), out.cols() / block.channels, block);
    run(
        gpu,
        "channels_first",
        params,
        &[Bind::read(&z.buf), Bind::write(&out.buf)],
    )
}

pub(crate) fn channel_rows(
    gpu: &Gpu,
    x: &GpuTensor,
    block: &ChannelBlock,
    out: &mut GpuTensor,
) -> Result<()> {
    let params = ConvParams {
        columns: out.cols() as u32,
        ..layout(out.len(), x.cols() / block.channels, block)
    };
    run(
        gpu,
        "channel_rows",
        params,
        &[Bind::read(&x.buf), Bind::write(&out.buf)],
    )
}

pub(crate) fn channel_planes(
    gpu: &Gpu,
    rows: &GpuTensor,
    block: &ChannelBlock,
    bias: Option<&GpuTensor>,
    out: &mut GpuTensor,
) -> Result<()> {
    planes(gpu, &rows.buf, rows.cols(), block, bias, out)
}

/// [`channel_planes`] from the first `block.count` rows of `columns`
/// values in `rows`.
fn planes(
    gpu: &Gpu,
    rows: &Buf,
    columns: usize,
    block: &ChannelBlock,
    bias: Option<&GpuTensor>,
    out: &mut GpuTensor,
) -> Result<()> {
    let params = ConvParams {
        columns: columns as u32,
        bias: bias.is_some() as u32,
        ..layout(block.count * columns, out.cols() / block.channels, block)
    };
    let bias = bias.map_or(&*gpu.dummy, |b| &b.buf);
    run(
        gpu,
        "channel_planes",
        params,
        &[Bind::read(rows), Bind::write(&out.buf), Bind::read(bias)],
    )
}

pub(crate) fn pool2d(
    gpu: &Gpu,
    kind: Pool,
    x: &GpuTensor,
    w: &Window2d,
    out: &mut GpuTensor,
    argmax: Option<&mut GpuTensor>,
) -> Result<()> {
    let params = ConvParams {
        average: (kind == Pool::Average) as u32,
        winners: argmax.is_some() as u32,
        ..ConvParams::window(out.len(), w)
    };
    let winners = argmax.map_or(&*gpu.dummy, |a| &a.buf);
    run(
        gpu,
        "pool",
        params,
        &[
            Bind::read(&x.buf),
            Bind::write(&out.buf),
            Bind::write(winners),
        ],
    )
}

pub(crate) fn pool2d_backward(
    gpu: &Gpu,
    kind: Pool,
    w: &Window2d,
    grad_out: &GpuTensor,
    argmax: Option<&GpuTensor>,
    grad_in: &mut GpuTensor,
) -> Result<()> {
    let params = ConvParams {
        average: (kind == Pool::Average) as u32,
        ..ConvParams::window(grad_in.len(), w)
    };
    let winners = argmax.map_or(&*gpu.dummy, |a| &a.buf);
    run(
        gpu,
        "pool_backward",
        params,
        &[
            Bind::read(&grad_out.buf),
            Bind::read(winners),
            Bind::write(&grad_in.buf),
        ],
    )
}
