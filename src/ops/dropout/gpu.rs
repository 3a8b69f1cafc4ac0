//! The GPU dispatch of dropout (shaders/dropout/dropout.wgsl).

use super::DropoutMask;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, DROPOUT, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/dropout/dropout.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct DropoutParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step_lo: u32,
    step_hi: u32,
    p: f32,
    scale: f32,
    first: u32,
}

pub(crate) fn dropout(
    gpu: &Gpu,
    x: &GpuTensor,
    out: &mut GpuTensor,
    mask: &DropoutMask,
) -> Result<()> {
    let DropoutMask {
        p,
        seed,
        step,
        first,
    } = *mask;
    let kernel = Kernel {
        shader: &DROPOUT,
        entry: "dropout",
        constants: &[],
    };
    let params = DropoutParams {
        n: x.len() as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        step_lo: step as u32,
        step_hi: (step >> 32) as u32,
        p: p as f32,
        // 1 / (1 − p) rounded to f32 once, as Cpu<f32> computes it.
        scale: 1.0 / (1.0 - p as f32),
        first: first as u32,
    };
    gpu.ctx.dispatch(
        &kernel,
        &params,
        &[Bind::read(&x.buf), Bind::write(&out.buf)],
        gpu.ctx.linear_groups(x.len(), WG),
    )
}
