//! The GPU dispatch of the activations: shaders/activation/kernels.wgsl,
//! with the function chosen by the `ACT` override constant.

use super::Activation;
use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, ACTIVATION, WG};
use crate::{Result, Shaped};

/// `Params` of shaders/activation/kernels.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct ActivationParams {
    n: u32,
    param: f32,
}

/// Runs `entry` of the activation kernels for `act` over `n` elements.
fn dispatch(
    gpu: &Gpu,
    entry: &'static str,
    act: Activation,
    n: usize,
    binds: &[Bind<'_>],
) -> Result<()> {
    let kernel = Kernel {
        shader: &ACTIVATION,
        entry,
        constants: &[("ACT", act.code() as f64)],
    };
    let params = ActivationParams {
        n: n as u32,
        param: act.param(),
    };
    gpu.ctx
        .dispatch(&kernel, &params, binds, gpu.ctx.linear_groups(n, WG))
}

/// `out = σ(x)`.
pub(crate) fn forward(
    gpu: &Gpu,
    act: Activation,
    x: &GpuTensor,
    out: &mut GpuTensor,
) -> Result<()> {
    dispatch(
        gpu,
        "act_forward",
        act,
        x.len(),
        &[Bind::read(&x.buf), Bind::write(&out.buf)],
    )
}

/// `grad_in = grad_out ⊙ σ'(z)`.
pub(crate) fn backward(
    gpu: &Gpu,
    act: Activation,
    z: &GpuTensor,
    grad_out: &GpuTensor,
    grad_in: &mut GpuTensor,
) -> Result<()> {
    dispatch(
        gpu,
        "act_backward",
        act,
        z.len(),
        &[
            Bind::read(&z.buf),
            Bind::read(&grad_out.buf),
            Bind::write(&grad_in.buf),
        ],
    )
}
