//! The GPU dispatch of the gathers (shaders/gather/gather.wgsl), on raw
//! 32-bit words, so one kernel gathers f32 features and u32 labels.

use crate::gpu::runtime::{Bind, Buf, Kernel};
use crate::gpu::{Gpu, GpuIndex, GpuTensor, GATHER, WG};
use crate::Result;

/// `Params` of shaders/gather/gather.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct GatherParams {
    rows: u32,
    /// Row width in 32-bit words.
    cols: u32,
    /// First index used.
    offset: u32,
}

/// `out[i, :] = src[idx[offset + i], :]` for `rows` rows of `cols` words.
fn dispatch(
    gpu: &Gpu,
    src: &Buf,
    idx: &Buf,
    offset: usize,
    out: &Buf,
    rows: usize,
    cols: usize,
) -> Result<()> {
    let kernel = Kernel {
        shader: &GATHER,
        entry: "gather_rows",
        constants: &[],
    };
    let params = GatherParams {
        rows: rows as u32,
        cols: cols as u32,
        offset: offset as u32,
    };
    gpu.ctx.dispatch(
        &kernel,
        &params,
        &[Bind::read(src), Bind::read(idx), Bind::write(out)],
        gpu.ctx.linear_groups(rows * cols, WG),
    )
}

pub(crate) fn gather_rows(
    gpu: &Gpu,
    src: &GpuTensor,
    idx: &GpuIndex,
    offset: usize,
    out: &mut GpuTensor,
) -> Result<()> {
    dispatch(
        gpu, &src.buf, &idx.buf, offset, &out.buf, out.rows, src.cols,
    )
}

pub(crate) fn gather_indices(
    gpu: &Gpu,
    src: &GpuIndex,
    idx: &GpuIndex,
    offset: usize,
    out: &mut GpuIndex,
) -> Result<()> {
    dispatch(gpu, &src.buf, &idx.buf, offset, &out.buf, out.len, 1)
}
