//! The GPU dispatch of batch normalisation (shaders/batch_norm/batch_norm.wgsl).

use crate::gpu::runtime::{Bind, Kernel};
use crate::gpu::{Gpu, GpuTensor, BATCH_NORM, WG};
use crate::{Result, Shaped};

/// Feature columns per workgroup of `bn_train` and `bn_backward` (their
/// `@workgroup_size`): one invocation per column.
const COLS_PER_GROUP: u32 = 64;

/// `Params` of shaders/batch_norm/batch_norm.wgsl, field for field.
#[repr(C)]
#[derive(Clone, Copy, bytemuck::Pod, bytemuck::Zeroable)]
struct BatchNormParams {
    rows: u32,
    cols: u32,
    momentum: f32,
    eps: f32,
}

impl BatchNormParams {
    fn new(x: &GpuTensor, momentum: f64, eps: f64) -> Self {
        BatchNormParams {
            rows: x.rows as u32,
            cols: x.cols as u32,
            momentum: momentum as f32,
            eps: eps as f32,
        }
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_train(
    gpu: &Gpu,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    running_mean: &mut GpuTensor,
    running_var: &mut GpuTensor,
    saved: &mut GpuTensor,
    out: &mut GpuTensor,
    momentum: f64,
    eps: f64,
) -> Result<()> {
    let kernel = Kernel {
        shader: &BATCH_NORM,
        entry: "bn_train",
        constants: &[],
    };
    gpu.ctx.dispatch(
        &kernel,
        &BatchNormParams::new(x, momentum, eps),
        &[
            Bind::read(&x.buf),
            Bind::read(&gamma.buf),
            Bind::read(&beta.buf),
            Bind::write(&running_mean.buf),
            Bind::write(&running_var.buf),
            Bind::write(&saved.buf),
            Bind::write(&out.buf),
        ],
        [(x.cols as u32).div_ceil(COLS_PER_GROUP), 1, 1],
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_eval(
    gpu: &Gpu,
    x: &GpuTensor,
    gamma: &GpuTensor,
    beta: &GpuTensor,
    running_mean: &GpuTensor,
    running_var: &GpuTensor,
    out: &mut GpuTensor,
    eps: f64,
) -> Result<()> {
    let kernel = Kernel {
        shader: &BATCH_NORM,
        entry: "bn_eval",
        constants: &[],
    };
    gpu.ctx.dispatch(
        &kernel,
        &BatchNormParams::new(x, 0.0, eps),
        &[
            Bind::read(&x.buf),
            Bind::read(&gamma.buf),
            Bind::read(&beta.buf),
            Bind::read(&running_mean.buf),
            Bind::read(&running_var.buf),
            Bind::write(&out.buf),
        ],
        gpu.ctx.linear_groups(x.len(), WG),
    )
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn batch_norm_backward(
    gpu: &Gpu,
    x: &GpuTensor,
    gamma: &GpuTensor,
    saved: &GpuTensor,
    grad_out: &GpuTensor,
    grad_in: &mut GpuTensor,
    grad_gamma: &mut GpuTensor,
    grad_beta: &mut GpuTensor,
) -> Result<()> {
    let kernel = Kernel {
        shader: &BATCH_NORM,
        entry: "bn_backward",
        constants: &[],
    };
    gpu.ctx.dispatch(
        &kernel,
        &BatchNormParams::new(x, 0.0, 0.0),
        &[
            Bind::read(&x.buf),
            Bind::read(&gamma.buf),
            Bind::read(&saved.buf),
            Bind::read(&grad_out.buf),
            Bind::write(&grad_in.buf),
            Bind::write(&grad_gamma.buf),
            Bind::write(&grad_beta.buf),
        ],
        [(x.cols as u32).div_ceil(COLS_PER_GROUP), 1, 1],
    )
}
