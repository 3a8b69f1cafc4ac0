//! The GPU dispatch of the elementwise ops (shaders/elementwise/elementwise.wgsl).

use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, ELEMENTWISE, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/elementwise/elementwise.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ElementwiseParams {
    n: u32,
    /// The fill value, the scale factor or axpy's alpha.
    alpha: f32,
}

/// Runs `entry` over `n` elements.
fn dispatch(
    gpu: &Gpu,
    entry: &'static str,
    n: usize,
    alpha: f32,
    binds: &[Bind<'_>],
) -> Result<()> {
    let kernel = Kernel {
        shader: &ELEMENTWISE,
        entry,
        constants: &[],
    };
    let params = ElementwiseParams { n: n as u32, alpha };
    gpu.ctx
        .dispatch(&kernel, &params, binds, gpu.ctx.linear_groups(n, WG))
}

pub(crate) fn fill(gpu: &Gpu, t: &mut GpuTensor, value: f64) -> Result<()> {
    dispatch(gpu, "fill", t.len(), value as f32, &[Bind::write(&t.buf)])
}

pub(crate) fn scale(gpu: &Gpu, t: &mut GpuTensor, alpha: f64) -> Result<()> {
    dispatch(gpu, "scale", t.len(), alpha as f32, &[Bind::write(&t.buf)])
}

pub(crate) fn axpy(gpu: &Gpu, alpha: f64, x: &GpuTensor, y: &mut GpuTensor) -> Result<()> {
    dispatch(
        gpu,
        "axpy",
        x.len(),
        alpha as f32,
        &[Bind::read(&x.buf), Bind::write(&y.buf)],
    )
}
