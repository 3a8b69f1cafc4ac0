//! The GPU dispatch of the max-norm constraint: one workgroup per row.

use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, MAX_NORM};
use crate::Result;

/// WebGPU's guaranteed workgroups per dispatch dimension.
const MAX_WORKGROUPS: u32 = 65_535;

/// `Params` of shaders/max_norm/max_norm.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct MaxNormParams {
    rows: u32,
    cols: u32,
    max_norm: f32,
    _pad: u32,
}

pub(crate) fn max_norm_rows(gpu: &Gpu, w: &mut GpuTensor, max_norm: f64) -> Result<()> {
    let kernel = Kernel {
        shader: &MAX_NORM,
        entry: "main",
        constants: &[],
    };
    gpu.ctx.dispatch(
        &kernel,
        &MaxNormParams {
            rows: w.rows as u32,
            cols: w.cols as u32,
            max_norm: max_norm as f32,
            _pad: 0,
        },
        &[Bind::write(&w.buf)],
        // Rows past the dispatch limit loop inside the kernel.
        [(w.rows as u32).min(MAX_WORKGROUPS), 1, 1],
    )
}
