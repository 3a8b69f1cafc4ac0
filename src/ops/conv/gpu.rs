//! The GPU dispatch of the convolution and pooling primitives
//! (shaders/conv/conv.wgsl).

use super::{ChannelBlock, Pool, Window2d};
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, CONV, WG};
use crate::{Result, Shaped};

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
    let params = ConvParams {
        columns: rows.cols() as u32,
        bias: bias.is_some() as u32,
        ..layout(rows.len(), out.cols() / block.channels, block)
    };
    let bias = bias.map_or(&*gpu.dummy, |b| &b.buf);
    run(
        gpu,
        "channel_planes",
        params,
        &[
            Bind::read(&rows.buf),
            Bind::write(&out.buf),
            Bind::read(bias),
        ],
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
