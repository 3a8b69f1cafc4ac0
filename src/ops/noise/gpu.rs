//! The GPU dispatch of Gaussian noise injection (shaders/noise/noise.wgsl).

use super::NoiseDraw;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, NOISE, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/noise/noise.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct NoiseParams {
    n: u32,
    seed_lo: u32,
    seed_hi: u32,
    step_lo: u32,
    step_hi: u32,
    sigma: f32,
    first: u32,
    _pad: u32,
}

pub(crate) fn add_noise(
    gpu: &Gpu,
    x: &GpuTensor,
    out: &mut GpuTensor,
    draw: &NoiseDraw,
) -> Result<()> {
    let kernel = Kernel {
        shader: &NOISE,
        entry: "add_noise",
        constants: &[],
    };
    let params = NoiseParams {
        n: x.len() as u32,
        seed_lo: draw.seed as u32,
        seed_hi: (draw.seed >> 32) as u32,
        step_lo: draw.step as u32,
        step_hi: (draw.step >> 32) as u32,
        sigma: draw.std as f32,
        first: draw.first as u32,
        _pad: 0,
    };
    gpu.ctx.dispatch(
        &kernel,
        &params,
        &[Bind::read(&x.buf), Bind::write(&out.buf)],
        gpu.ctx.linear_groups(x.len(), WG),
    )
}
